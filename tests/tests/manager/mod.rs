//! The manager (SPEC §5, issue #3 acceptance 2 and 3) through the real `wrapperd` binary: first
//! with the scripted fake ffmpeg and fractional-second settings, then with real ffmpeg.
//!
//! A test watches a running wrapperd through its API (every 40 ms): when a marker line the fake
//! prints at a phase change arrived, when health first turned bad, when `/healthz` first answered
//! 503, when the state became `stopping`. Stop times are measured from those instants.
//!
//! [`fake`]: with the scripted fake; [`real`]: with real ffmpeg. This file holds the watch and
//! the assertions they share.

use std::fs;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use shared::api::{Health, State, Status};
use shared::client::{Client, Target};
use tests::*;

mod fake;
mod falling;
mod real;

const T: Duration = Duration::from_secs(60);

/// The fake's settings: checks from 0.5 s, a 1 s rate window, 1.5 s limits, a graceful end that
/// takes 0.3 s.
const ERROR_TIME: f64 = 1.5;
const STUCK_TIME: f64 = 1.5;

/// The manager's settings of a test (`MANAGER_START_DELAY` is 0 in all of them), in seconds.
struct Limits {
    /// `ENCODING_CHECK_START_DELAY`.
    check: &'static str,
    /// `ENCODING_RATE_WINDOW`.
    window: &'static str,
    /// `ENCODING_MAX_ERROR_TIME`.
    error: &'static str,
    /// `ENCODING_MAX_STDOUT_STUCK_TIME`.
    stuck: &'static str,
    /// `STOP_TIMEOUT`.
    stop: &'static str,
}

/// wrapperd (with real ffmpeg unless the caller says otherwise) under `limits`.
fn managed(wd: &Wd, limits: Limits) -> WrapperCmd {
    wd.wrapperd().envs(&[
        ("MANAGER_START_DELAY", "0"),
        ("ENCODING_CHECK_START_DELAY", limits.check),
        ("ENCODING_RATE_WINDOW", limits.window),
        ("ENCODING_MAX_ERROR_TIME", limits.error),
        ("ENCODING_MAX_STDOUT_STUCK_TIME", limits.stuck),
        ("STOP_TIMEOUT", limits.stop),
    ])
}

fn fast(wd: &Wd) -> WrapperCmd {
    managed(
        wd,
        Limits {
            check: "0.5",
            window: "1",
            error: "1.5",
            stuck: "1.5",
            stop: "2",
        },
    )
    .fake()
    .env("FAKE_FFMPEG_SIGNAL_LOG", wd.file("signals.log"))
    // Finishing the outputs takes a moment, as with ffmpeg, so `stopping` can be seen.
    .args(["finish-secs=0.3"])
}

/// What the test saw of a wrapperd while it ran.
#[derive(Debug, Default)]
struct Seen {
    /// The marker line appeared in `/last_stdout`.
    marker: Option<Instant>,
    /// Health first `failing` / `stalled`.
    failing: Option<Instant>,
    stalled: Option<Instant>,
    /// `/healthz` first answered 503 for a reason other than `exited` (ffmpeg gone, wrapperd
    /// about to exit, a 503 the contract gives every run at its end), with its body.
    first_503: Option<(Instant, String)>,
    /// `/healthz` answered 200 (after the checks became active).
    ok_200: usize,
    /// State first `stopping`.
    stopping: Option<Instant>,
    /// The last time `frame`, `out_time_us` or `total_size` was seen to change.
    last_advance: Option<Instant>,
    /// Every health word seen, in order, without repeats.
    healths: Vec<Health>,
    /// The newest status seen before `stopping`.
    last_running: Option<Status>,
    /// When wrapperd was found to have exited.
    gone: Option<Instant>,
}

impl Seen {
    fn saw(&self, h: Health) -> bool {
        self.healths.contains(&h)
    }
}

/// Polls a wrapperd's API every 40 ms.
struct Watch {
    rt: tokio::runtime::Runtime,
    client: Client,
    marker: Option<String>,
    seen: Seen,
    /// When the latest round began.
    round: Option<Instant>,
}

impl Watch {
    fn new(d: &Daemon, marker: Option<&str>) -> Watch {
        Watch {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: Client::new(
                Target::Unix(d.workdir.join("api.sock")),
                None,
                Duration::from_secs(2),
            )
            .unwrap(),
            marker: marker.map(String::from),
            seen: Seen::default(),
            round: None,
        }
    }

    /// One round of polling.
    ///
    /// Intervals are measured from an event that begins one (the marker, health turning failing,
    /// the last advance) to the stop, and the contract gives them a lower limit. An event first
    /// seen in this round happened after the previous round's requests, so it is stamped with
    /// the previous round's start; the stop had happened when `/status` showed it, so it is
    /// stamped after that request. A slow round then makes a measured interval longer, never
    /// shorter than the real one.
    fn poll(&mut self) {
        let now = Instant::now();
        let since = self.round.replace(now).unwrap_or(now);
        let s = &mut self.seen;
        if let (Some(m), None) = (&self.marker, s.marker) {
            if let Ok(a) = self.rt.block_on(self.client.get("/last_stdout?count=100")) {
                if a.body.lines().any(|l| l.ends_with(&format!("> {m}"))) {
                    s.marker = Some(since);
                }
            }
        }
        if let Ok(st) = self.rt.block_on(self.client.status()) {
            let answered = Instant::now();
            if s.healths.last() != Some(&st.health) {
                s.healths.push(st.health);
            }
            match st.health {
                Health::Failing => s.failing = s.failing.or(Some(since)),
                Health::Stalled => s.stalled = s.stalled.or(Some(since)),
                _ => {}
            }
            let counters = |s: &Status| {
                s.progress
                    .as_ref()
                    .map(|p| (p.frame, p.out_time_us, p.total_size))
            };
            let before = s.last_running.as_ref().and_then(counters);
            if counters(&st) != before && st.state == State::Running {
                s.last_advance = Some(since);
            }
            if st.state == State::Stopping || st.state == State::Exited {
                s.stopping = s.stopping.or(Some(answered));
            } else {
                s.last_running = Some(st);
            }
        }
        if let Ok(a) = self.rt.block_on(self.client.get("/healthz")) {
            if a.status == 503 && !a.body.starts_with("exited") {
                s.first_503 = s.first_503.take().or(Some((now, a.body)));
            } else if s.last_running.as_ref().is_some_and(|st| st.check.active) {
                s.ok_200 += 1;
            }
        }
    }

    /// Polls until wrapperd exits (panics after `timeout`); returns its exit status.
    fn until_exit(&mut self, d: &mut Daemon, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        while d.is_running() {
            assert!(Instant::now() < deadline, "wrapperd still running");
            self.poll();
            std::thread::sleep(Duration::from_millis(40));
        }
        self.seen.gone = Some(Instant::now());
        d.wait(Duration::from_secs(1))
    }

    /// Polls for `dur`, or until wrapperd exits.
    fn for_time(&mut self, d: &mut Daemon, dur: Duration) {
        let end = Instant::now() + dur;
        while Instant::now() < end && d.is_running() {
            self.poll();
            std::thread::sleep(Duration::from_millis(40));
        }
    }
}

fn secs(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64()
}

/// Asserts a stop came at its deadline: `limit − 0.2 < took ≤ limit + 1` (the contract's 1 s,
/// and 0.2 s for the daemon's own tick). `took` is an upper bound of the real interval (see
/// [`Watch::poll`]), so a slow machine cannot push it under the lower limit.
fn assert_stop_time(took: f64, limit: f64, since: &str) {
    eprintln!("stop {took:.2} s after {since} (limit {limit} s)");
    assert!(
        took > limit - 0.2 && took <= limit + 1.0,
        "stopped {took:.2} s after {since}, limit {limit} s"
    );
}

fn signals(wd: &Wd) -> String {
    fs::read_to_string(wd.file("signals.log")).unwrap_or_default()
}

/// Asserts everything a manager stop must leave: exit 1, the reason in status.json and as the
/// last line of wrapperd.log, `/healthz` 503 before the exit, and the state `stopping` seen.
fn assert_stopped(wd: &Wd, st: ExitStatus, seen: &Seen, reason: &str) {
    let log = wd.log("wrapperd.log");
    assert_eq!(st.code(), Some(1), "{log}");
    let status = wd.status_json().expect("status.json");
    assert_eq!(status["exit"]["code"], 1, "{status}");
    let why = status["exit"]["reason"].as_str().unwrap_or_default();
    assert!(
        why.starts_with(&format!("stopped by the manager: {reason}: ")),
        "exit reason: {why}"
    );
    assert!(
        seen.first_503.is_some(),
        "/healthz never answered 503 while wrapperd ran: {seen:?}"
    );
    assert!(seen.stopping.is_some(), "never saw state stopping");
    assert!(
        log.contains(&format!("manager stops ffmpeg ({reason}): ")),
        "the decision is logged:\n{log}"
    );
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("exit 1: stopped by the manager: {reason}: ")),
        "the exit reason is the last line of wrapperd.log: {last:?}\n{log}"
    );
}

/// Asserts the fake ran its whole script and ended by itself, never stopped.
fn assert_ended_by_itself(wd: &Wd, st: ExitStatus, seen: &Seen) {
    let log = wd.log("wrapperd.log");
    assert_eq!(st.code(), Some(1), "{log}");
    let status = wd.status_json().expect("status.json");
    assert_eq!(status["exit"]["ffmpeg_status"], 0, "{status}");
    let why = status["exit"]["reason"].as_str().unwrap_or_default();
    assert!(why.contains("ended by itself"), "exit reason: {why}");
    assert!(!log.contains("manager stops"), "{log}");
    assert_eq!(signals(wd), "", "ffmpeg got no signal");
    assert!(
        seen.last_running
            .as_ref()
            .is_some_and(|s| s.check.active && s.check.min_speed.is_some()),
        "the checks were active: {:?}",
        seen.last_running
    );
    assert!(seen.ok_200 > 0, "/healthz was 200 while checked");
}

/// Asserts ffmpeg got exactly one SIGINT and no other signal.
fn assert_one_sigint(wd: &Wd) {
    assert_eq!(signals(wd), "2\n", "exactly one SIGINT, nothing else");
}
