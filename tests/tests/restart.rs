//! Restarts and run history (SPEC §10, issue 12), through the real binary: the fake ffmpeg for
//! the policy's rules and timing, real ffmpeg for the ends (its own error in the exit reason,
//! `MAX_RUNTIME` splitting a recording).
//!
//! Delays are measured from `status/runs.jsonl` (one run's `end` to the next one's `start`,
//! milliseconds), which is what the policy promises.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use shared::api::{Health, RunRecord, State};
use tests::*;

const T: Duration = Duration::from_secs(60);

/// The records of `status/runs.jsonl`, oldest first.
fn runs(wd: &Wd) -> Vec<RunRecord> {
    std::fs::read_to_string(wd.path.join("status/runs.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Waits until `runs.jsonl` holds at least `n` records; returns them.
fn wait_runs(wd: &Wd, n: usize, timeout: Duration) -> Vec<RunRecord> {
    let mut got = Vec::new();
    assert!(
        wait_until(timeout, || {
            got = runs(wd);
            got.len() >= n
        }),
        "runs.jsonl has {} records, waited for {n}: {got:#?}",
        got.len()
    );
    got
}

/// Unix milliseconds of an RFC 3339 time as wrapperd writes it.
fn ms(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .timestamp_millis()
}

/// Seconds from each run's end to the next one's start.
fn gaps(records: &[RunRecord]) -> Vec<f64> {
    records
        .windows(2)
        .map(|w| (ms(&w[1].start) - ms(&w[0].end)) as f64 / 1000.0)
        .collect()
}

fn assert_near(got: &[f64], want: &[f64], tolerance: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tolerance,
            "gaps {got:?}, wanted {want:?} ± {tolerance}"
        );
    }
}

const FAST_CHECKS: &[(&str, &str)] = &[
    ("MANAGER_START_DELAY", "0"),
    ("ENCODING_CHECK_START_DELAY", "0"),
];

#[test]
fn on_failure_restarts_after_doubling_delays_until_stopped() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[("RESTART", "on-failure"), ("RESTART_DELAY", "1")])
        .args(["run", "secs=0.5", "exit", "code=1"])
        .spawn();
    let records = wait_runs(&wd, 4, T);
    assert_near(&gaps(&records[..4]), &[1.0, 2.0, 4.0], 0.2);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.run, i as u64 + 1);
        assert_eq!(r.ffmpeg_status, shared::api::FfmpegStatus::Code(1));
        assert!(
            r.reason.starts_with("ffmpeg ended by itself with status 1"),
            "{r:?}"
        );
        assert!(r.duration_s >= 0.5 && r.duration_s < 2.0, "{r:?}");
        assert!(
            r.last_progress.is_some() && !r.last_lines.is_empty(),
            "{r:?}"
        );
    }
    let st = d.status();
    assert!(st.run.number >= 4 && st.run.restarts >= 3, "{:?}", st.run);
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait(T).code(), Some(0));
}

#[test]
fn a_healthy_stretch_longer_than_reset_after_resets_the_delay() {
    let wd = Wd::new();
    let _d = wd
        .wrapperd()
        .fake()
        .envs(FAST_CHECKS)
        .envs(&[
            ("RESTART", "on-failure"),
            ("RESTART_DELAY", "0.5"),
            ("RESTART_RESET_AFTER", "1"),
            ("ENCODING_RATE_WINDOW", "1"),
        ])
        .args(["run", "fps=25", "secs=2.5", "exit", "code=1"])
        .spawn();
    // Without the reset the delays would be 0.5, 1.0, 2.0.
    let records = wait_runs(&wd, 4, T);
    assert_near(&gaps(&records[..4]), &[0.5, 0.5, 0.5], 0.2);
}

#[test]
fn a_short_healthy_stretch_does_not_reset_the_delay() {
    let wd = Wd::new();
    let _d = wd
        .wrapperd()
        .fake()
        .envs(FAST_CHECKS)
        .envs(&[
            ("RESTART", "on-failure"),
            ("RESTART_DELAY", "0.5"),
            ("RESTART_RESET_AFTER", "30"),
            ("ENCODING_RATE_WINDOW", "1"),
        ])
        .args(["run", "fps=25", "secs=2.5", "exit", "code=1"])
        .spawn();
    let records = wait_runs(&wd, 3, T);
    assert_near(&gaps(&records[..3]), &[0.5, 1.0], 0.2);
}

#[test]
fn the_limit_gives_up_with_the_last_runs_status_and_says_why() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[
            ("RESTART", "always"),
            ("RESTART_DELAY", "0.05"),
            ("RESTART_LIMIT", "3"),
            ("RESTART_WINDOW", "60"),
        ])
        .args(["exit", "code=0"])
        .spawn();
    assert_eq!(
        d.wait(T).code(),
        Some(1),
        "ffmpeg ended by itself: 1 (SPEC §7)"
    );
    let records = runs(&wd);
    assert_eq!(records.len(), 4, "a first run and 3 restarts: {records:#?}");
    let exit = wd.status_json().unwrap()["exit"].clone();
    let reason = exit["reason"].as_str().unwrap().to_string();
    assert!(
        reason.starts_with("gave up: 3 restarts in 60 s; last run: ffmpeg ended by itself"),
        "{reason}"
    );
    let log = wd.log("wrapperd.log");
    assert!(
        log.trim_end().lines().last().unwrap().contains(&reason),
        "{log}"
    );
}

#[test]
fn on_failure_does_not_restart_a_clean_end() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[("RESTART", "on-failure"), ("RESTART_DELAY", "0.05")])
        .args(["run", "secs=0.3", "exit", "code=0"])
        .spawn();
    assert_eq!(d.wait(T).code(), Some(1));
    assert_eq!(runs(&wd).len(), 1);
}

#[test]
fn a_manager_stop_is_restarted_under_on_failure() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(FAST_CHECKS)
        .envs(&[
            ("RESTART", "on-failure"),
            ("RESTART_DELAY", "0.2"),
            ("ENCODING_MAX_STDOUT_STUCK_TIME", "0.5"),
            ("STOP_TIMEOUT", "2"),
        ])
        .args(["run", "secs=1", "silence"])
        .spawn();
    let records = wait_runs(&wd, 2, T);
    assert!(
        records[0]
            .reason
            .starts_with("stopped by the manager: stalled"),
        "{:?}",
        records[0]
    );
    assert!(wait_until(T, || d.status().run.number >= 3));
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait(T).code(), Some(0));
}

#[test]
fn a_stop_signal_during_the_delay_exits_0_at_once_without_a_new_run() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[("RESTART", "on-failure"), ("RESTART_DELAY", "30")])
        .args(["exit", "code=1"])
        .spawn();
    d.wait_api();
    let mut st = d.status();
    assert!(wait_until(T, || {
        st = d.status();
        st.state == State::Restarting
    }));
    assert_eq!(st.health, Health::Restarting);
    let reason = st.reason.clone().unwrap();
    assert!(
        reason.starts_with("run 1 ended (ffmpeg ended by itself with status 1")
            && reason.contains("; next start in "),
        "{reason}"
    );
    let left = st.run.next_start_in_s.unwrap();
    assert!(left > 25.0 && left <= 30.0, "{left}");
    assert_eq!(d.get("/healthz").status, 503);
    let t = Instant::now();
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait(T).code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(runs(&wd).len(), 1);
    let exit = wd.status_json().unwrap()["exit"]["reason"].clone();
    assert_eq!(exit, "stop requested by SIGTERM while waiting to restart");
}

/// A client polling `/status` at 10 Hz across a crash loop never gets an error; the rings keep
/// the ended runs' lines; `ffmpeg.log` holds every run's lines in order; `wrapperd.log` has one
/// line per run start and end.
#[test]
fn the_api_rings_and_logs_go_on_across_runs() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[
            ("RESTART", "always"),
            ("RESTART_DELAY", "0.2"),
            ("RESTART_MAX_DELAY", "0.2"),
        ])
        .args(["lines", "n=5", "exit", "code=0"])
        .spawn();
    d.wait_api();
    let client = d.client();
    let mut errors = Vec::new();
    let mut polls = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if let Err(e) = block_on(client.status()) {
            errors.push(e.to_string());
        }
        polls += 1;
        std::thread::sleep(Duration::from_millis(100)); // the client's own rate, not a wait
    }
    assert!(
        errors.is_empty(),
        "{} of {polls} polls failed: {errors:?}",
        errors.len()
    );
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait(T).code(), Some(0));
    let n = runs(&wd).len();
    assert!(n >= 5, "{n} runs in 3 s");
    // Every run printed `line 1` … `line 5`: all in ffmpeg.log, in order.
    let lines: Vec<String> = wd
        .log("ffmpeg.log")
        .lines()
        .filter_map(|l| l.split_once("> ").map(|(_, t)| t.to_string()))
        .filter(|t| t.starts_with("line "))
        .collect();
    let want: Vec<String> = (0..n)
        .flat_map(|_| (1..=5).map(|i| format!("line {i}")))
        .collect();
    assert_eq!(lines, want);
    let log = wd.log("wrapperd.log");
    for i in 1..=n {
        let started = format!("run {i}: started ffmpeg (pid ");
        let ended = format!("run {i} ended: ");
        assert_eq!(log.matches(&started).count(), 1, "{started}\n{log}");
        assert_eq!(log.matches(&ended).count(), 1, "{ended}\n{log}");
        assert!(log.find(&started) < log.find(&ended));
    }
}

#[test]
fn the_rings_keep_the_ended_runs_lines_while_restarting() {
    let wd = Wd::new();
    let d = wd
        .wrapperd()
        .fake()
        .envs(&[("RESTART", "on-failure"), ("RESTART_DELAY", "30")])
        .args(["echo", "last-words-of-run", "exit", "code=3"])
        .spawn();
    d.wait_api();
    assert!(wait_until(T, || d.status().state == State::Restarting));
    let body = d.get("/last_stdout?count=0").body;
    assert!(body.contains("last-words-of-run"), "{body}");
    let last = d.status().last_run.expect("last_run");
    assert_eq!(last.run, 1);
    assert_eq!(
        last.error
            .as_deref()
            .map(|e| e.contains("last-words-of-run")),
        Some(true)
    );
}

/// A wrapperd killed with SIGKILL and started again on the same work directory continues the
/// numbering; a reader looping over the file meanwhile never sees a partial line.
#[test]
fn a_restarted_wrapperd_continues_the_numbering_and_readers_never_see_a_partial_line() {
    let wd = Wd::new();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, stop) = (wd.path.join("status/runs.jsonl"), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    assert!(text.is_empty() || text.ends_with('\n'), "partial: {text:?}");
                    for l in text.lines() {
                        serde_json::from_str::<RunRecord>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                    }
                    reads += 1;
                }
            }
            reads
        })
    };
    let crash_loop = |wd: &Wd| {
        wd.wrapperd()
            .fake()
            .envs(&[
                ("RESTART", "always"),
                ("RESTART_DELAY", "0.01"),
                ("RESTART_MAX_DELAY", "0.01"),
            ])
            .args(["lines", "n=30", "exit", "code=1"])
            .spawn()
    };
    let d = crash_loop(&wd);
    let first = wait_runs(&wd, 20, T).len() as u64;
    d.signal(Signal::SIGKILL);
    drop(d);
    let before = runs(&wd).last().unwrap().run;
    assert!(before >= first);
    let mut d = crash_loop(&wd);
    let records = wait_runs(&wd, before as usize + 20, T);
    d.signal(Signal::SIGTERM);
    d.wait(T);
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("no partial line seen");
    assert!(reads > 10, "the reader read {reads} times");
    let numbers: Vec<u64> = records.iter().map(|r| r.run).collect();
    let want: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(
        numbers, want,
        "numbering continues without a gap or a repeat"
    );
}

#[test]
fn runs_jsonl_is_trimmed_to_the_newest_1000() {
    let wd = Wd::new();
    std::fs::create_dir_all(wd.path.join("status")).unwrap();
    let seed: String = (1..=1000)
        .map(|n| {
            format!(
                "{{\"run\":{n},\"start\":\"2026-11-30T00:00:00.000Z\",\"end\":\"2026-11-30T00:00:01.000Z\",\
                 \"duration_s\":1.0,\"ffmpeg_pid\":1,\"ffmpeg_status\":1,\"reason\":\"r\",\"error\":null,\
                 \"last_progress\":null,\"last_lines\":[]}}\n"
            )
        })
        .collect();
    std::fs::write(wd.path.join("status/runs.jsonl"), seed).unwrap();
    let mut d = wd.wrapperd().fake().args(["exit", "code=1"]).spawn();
    assert_eq!(d.wait(T).code(), Some(1));
    let records = runs(&wd);
    assert_eq!(records.len(), 1000);
    assert_eq!((records[0].run, records[999].run), (2, 1001));
    assert_eq!(records[999].reason, "ffmpeg ended by itself with status 1");
}

/// Real ffmpeg failing in three common ways: the exit reason and wrapperd's stderr carry
/// ffmpeg's own words.
#[test]
fn ffmpegs_own_error_is_in_the_exit_reason_and_on_stderr() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "-f", "lavfi", "-i", "testsrc", "-presett", "fast", "-f", "null", "-",
            ],
            "Unrecognized option 'presett'",
        ),
        (
            &["-i", "/nonexistent/in.mp4", "-f", "null", "-"],
            "No such file or directory",
        ),
        (
            &["-i", "tcp://127.0.0.1:9", "-f", "null", "-"],
            "Connection refused",
        ),
    ];
    for (args, words) in cases {
        let wd = Wd::new();
        let out = wd.wrapperd().args(["-hide_banner"]).args(*args).output(T);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let reason = wd.status_json().unwrap()["exit"]["reason"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            reason.starts_with("ffmpeg ended by itself with status ") && reason.contains(words),
            "{reason}"
        );
        let err = stderr(&out);
        assert!(err.contains("ffmpeg| ") && err.contains(words), "{err}");
        let last = runs(&wd).pop().unwrap();
        assert!(
            last.error.as_deref().unwrap_or("").contains(words),
            "{last:?}"
        );
        assert!(out.status.signal().is_none());
    }
}

/// `MAX_RUNTIME` under `on-failure` splits a real recording into complete files of about
/// `MAX_RUNTIME` seconds (the segment muxer names each run's file by its start time).
#[test]
fn max_runtime_splits_a_real_recording_into_complete_files() {
    let wd = Wd::new();
    let dir = wd.file("rec");
    std::fs::create_dir_all(&dir).unwrap();
    let pattern = dir.join("rec_%Y%m%d_%H%M%S.mp4");
    let mut d = wd
        .wrapperd()
        .envs(&[("RESTART", "on-failure"), ("MAX_RUNTIME", "2")])
        .args([
            "-hide_banner",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25",
        ])
        .args(["-c:v", "mpeg4", "-f", "segment", "-segment_time", "100000"])
        .args([
            "-segment_format",
            "mp4",
            "-reset_timestamps",
            "1",
            "-strftime",
            "1",
        ])
        .args([&pattern])
        .spawn();
    wait_runs(&wd, 3, T);
    assert!(wait_until(T, || d.status().progress.is_some()));
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait(T).code(), Some(0));
    let files = mp4s(&dir);
    assert!(files.len() >= 3, "{files:?}");
    let records = runs(&wd);
    for r in &records[..3] {
        assert!(r.reason.starts_with("MAX_RUNTIME reached (2 s)"), "{r:?}");
    }
    for f in &files[..3] {
        let dur = probe_duration(f).unwrap_or_else(|| panic!("{} is not complete", f.display()));
        assert!((dur - 2.0).abs() < 0.6, "{}: {dur} s", f.display());
    }
}

/// The mp4 files in `dir`, by name (their start time).
fn mp4s(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    v.sort();
    v
}
