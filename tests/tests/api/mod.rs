//! The HTTP API (SPEC §6, issue #4's acceptance) against the real wrapperd, with real ffmpeg
//! where the answers are about ffmpeg, and the scripted fake where a test needs an exact number
//! of lines, a stall, a failing encode or a child that ignores SIGINT.
//!
//! Where an exact comparison needs a ring that does not move, ffmpeg is paused with `SIGSTOP`
//! (and the wait is for `check.last_output_age_s` to show that nothing arrives any more).
//!
//! [`endpoints`]: every endpoint and parameter form; [`access`]: health, the token, the API at
//! exit; [`load`]: two hundred clients at once; [`control`]: `POST /stop` and `POST /restart`,
//! who may, and `/runs` (SPEC §10). This file holds what they share.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, NaiveDateTime};
use nix::sys::signal::Signal;
use serde_json::Value;
use shared::api::{FfmpegStatus, Health, State, Status};
use shared::client::{Answer, Client, Target};
use tests::http::{header, raw, unix};
use tests::*;

mod access;
mod control;
mod endpoints;
mod load;

const T: Duration = Duration::from_secs(60);
const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
/// An argument with spaces, both quotes, a backslash, `=` and non-ASCII text.
const TITLE: &str = "title=a b  \"quoted\" 'single' back\\slash ünïcødé ✓";

/// SPEC §6's example of `GET /status`: every key of it must be in the real answer.
const SPEC_STATUS: &str = r#"{
  "version": "0.1.0",
  "state": "running",
  "health": "ok",
  "reason": null,
  "pid": 1,
  "ffmpeg_pid": 7,
  "workdir": "/tmp/ff_wrapper",
  "start_time": "2026-11-23T23:54:00.123Z",
  "uptime_s": 123.4,
  "cmd": ["-re", "-i", "rtmp://..."],
  "progress": {"at": "2026-11-23T23:56:03.456Z", "frame": 3075, "fps": 25.0, "speed": 1.0,
               "bitrate_kbps": 1024.5, "total_size": 15728640, "out_time_us": 123000000,
               "dup_frames": 0, "drop_frames": 0},
  "rates": {"fps": 24.9, "speed": 0.99, "window_s": 10.0},
  "check": {"active": true, "base_fps": 25.0, "min_fps": 15.0, "min_speed": 0.85,
            "failing_for_s": 0.0, "last_output_age_s": 0.4},
  "counters": {"log_lines": 48211, "progress_blocks": 246},
  "exit": null
}"#;

/// The metrics SPEC §6 and §10 name that always have a sample
/// (`ffwrapper_last_exit_timestamp_seconds` has one only once a run has ended).
const METRICS: &[&str] = &[
    "ffwrapper_up",
    "ffwrapper_fps",
    "ffwrapper_speed",
    "ffwrapper_bitrate_kbps",
    "ffwrapper_frames",
    "ffwrapper_dup_frames",
    "ffwrapper_drop_frames",
    "ffwrapper_out_time_seconds",
    "ffwrapper_health",
    "ffwrapper_log_lines_total",
    "ffwrapper_progress_blocks_total",
    "ffwrapper_uptime_seconds",
    "ffwrapper_runs_total",
    "ffwrapper_restarts_total",
    "ffwrapper_info",
];

/// A light real-time encode: 160x120 at 25 fps, mpeg4.
fn light_input() -> Vec<String> {
    ["-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25"]
        .map(String::from)
        .to_vec()
}

fn get(d: &Daemon, path: &str) -> Answer {
    d.get(path)
}

/// `GET path`: 200, text/plain, no trailing newline.
fn text(d: &Daemon, path: &str) -> String {
    let a = get(d, path);
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    assert_eq!(a.content_type, TEXT, "{path}");
    assert!(!a.body.ends_with('\n'), "{path}: no trailing newline");
    a.body
}

/// `GET path`: 200, application/json.
fn json(d: &Daemon, path: &str) -> String {
    let a = get(d, path);
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    assert_eq!(a.content_type, JSON, "{path}");
    a.body
}

/// A `400` with a one-line message.
fn assert_400(d: &Daemon, path: &str) {
    let a = get(d, path);
    assert_eq!(a.status, 400, "{path}: {}", a.body);
    assert_eq!(a.content_type, TEXT, "{path}");
    assert!(
        !a.body.is_empty() && !a.body.contains('\n'),
        "{path}: one line: {:?}",
        a.body
    );
}

fn status_value(d: &Daemon) -> Value {
    serde_json::from_str(&json(d, "/status")).unwrap()
}

/// Polls `/status` until `pred` holds; returns that status.
fn wait_status(
    d: &Daemon,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Status) -> bool,
) -> Status {
    let mut last = None;
    let ok = wait_until(timeout, || {
        let st = d.status();
        let done = pred(&st);
        last = Some(st);
        done
    });
    assert!(ok, "{what}: last status {last:#?}");
    last.unwrap()
}

/// Pauses ffmpeg and waits until wrapperd has read everything it printed.
fn freeze(d: &Daemon, ffmpeg: i32) -> Status {
    kill(ffmpeg, Signal::SIGSTOP);
    wait_status(d, Duration::from_secs(10), "output stops", |s| {
        s.check.last_output_age_s.is_some_and(|a| a >= 0.5)
    })
}

fn kill(pid: i32, sig: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
}

/// A `/last_*` text line: `<YYYY-MM-DD HH:MM:SS> line`, its local time and its text.
fn split_line(l: &str) -> (NaiveDateTime, &str) {
    assert!(
        l.len() > 23 && l.starts_with('<') && &l[20..22] == "> ",
        "not `<YYYY-MM-DD HH:MM:SS> line`: {l:?}"
    );
    let t = NaiveDateTime::parse_from_str(&l[1..20], "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("{l:?}: {e}"));
    (t, &l[22..])
}

/// Every line well formed, times in order and within `[from, now]`.
fn check_lines(body: &str, from: NaiveDateTime) -> Vec<String> {
    let now = Local::now().naive_local() + chrono::Duration::seconds(1);
    let mut prev = from;
    body.split('\n')
        .map(|l| {
            let (t, line) = split_line(l);
            assert!(t >= prev && t <= now, "time out of order or range: {l}");
            prev = t;
            line.to_string()
        })
        .collect()
}

/// The JSON answer a text answer of `/last_*` must have: `[["time", "line"], ...]`, separators
/// as in SPEC's example, non-ASCII kept.
fn json_of_text(body: &str) -> String {
    if body.is_empty() {
        return "[]".into();
    }
    let items: Vec<String> = body
        .split('\n')
        .map(|l| {
            format!(
                "[\"{}\", {}]",
                &l[1..20],
                serde_json::to_string(&l[22..]).unwrap()
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// The last `n` lines of `lines`, joined as an answer is.
fn tail(lines: &[&str], n: usize) -> String {
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every key of SPEC's example (nested objects too) is in `v`.
fn assert_spec_keys(v: &Value) {
    fn walk(example: &Value, v: &Value, at: &str) {
        let (Value::Object(e), Value::Object(o)) = (example, v) else {
            return;
        };
        for (k, ev) in e {
            let Some(ov) = o.get(k) else {
                panic!("{at}{k} missing in {v}");
            };
            walk(ev, ov, &format!("{at}{k}."));
        }
    }
    let example: Value = serde_json::from_str(SPEC_STATUS).unwrap();
    walk(&example, v, "");
    for k in ["progress", "rates", "check", "counters"] {
        assert!(v[k].is_object(), "{k} is an object: {v}");
    }
}

/// status.json after exit: every key, and `exit` as SPEC says.
fn assert_exit_status(wd: &Wd, code: i32, ffmpeg_status: FfmpegStatus) -> Status {
    let v = wd.status_json().expect("status.json");
    assert_spec_keys(&v);
    let exit = v["exit"].as_object().expect("exit is an object");
    let mut keys: Vec<&str> = exit.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "ffmpeg_status", "reason"], "{v}");
    let st: Status = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(st.state, State::Exited);
    assert_eq!(st.health, Health::Exited);
    let e = st.exit.as_ref().unwrap();
    assert_eq!(e.code, code, "{v}");
    assert_eq!(e.ffmpeg_status, ffmpeg_status, "{v}");
    assert!(!e.reason.is_empty());
    st
}

fn scrape(body: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of an unlabelled sample.
fn sample(s: &prometheus_parse::Scrape, name: &str) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && x.labels.is_empty())
        .map(|x| match x.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        })
}

/// `ffwrapper_health{state=...}`: exactly one is 1; returns it.
fn health_metric(s: &prometheus_parse::Scrape) -> String {
    let states: Vec<(String, f64)> = s
        .samples
        .iter()
        .filter(|x| x.metric == "ffwrapper_health")
        .map(|x| {
            let prometheus_parse::Value::Gauge(v) = x.value else {
                panic!("{x:?}")
            };
            (x.labels.get("state").unwrap().to_string(), v)
        })
        .collect();
    let words: Vec<&str> = states.iter().map(|(w, _)| w.as_str()).collect();
    for h in Health::ALL {
        assert!(words.contains(&h.as_str()), "{h:?} in {states:?}");
    }
    let on: Vec<&(String, f64)> = states.iter().filter(|(_, v)| *v == 1.0).collect();
    assert_eq!(on.len(), 1, "{states:?}");
    assert!(states.iter().all(|(_, v)| *v == 0.0 || *v == 1.0));
    on[0].0.clone()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}
