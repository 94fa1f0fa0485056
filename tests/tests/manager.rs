//! The manager (SPEC §5, issue #3 acceptance 2 and 3) through the real `wrapperd` binary: first
//! with the scripted fake ffmpeg and fractional-second settings, then with real ffmpeg.
//!
//! A test watches a running wrapperd through its API (every 40 ms): when a marker line the fake
//! prints at a phase change arrived, when health first turned bad, when `/healthz` first answered
//! 503, when the state became `stopping`. Stop times are measured from those instants.

use std::fs;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use shared::api::{Health, State, Status};
use shared::client::{Client, Target};
use tests::*;

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

// ---------------------------------------------------------------- with the fake ffmpeg

#[test]
fn healthy_run_is_never_stopped() {
    let wd = Wd::new();
    let mut d = fast(&wd).args(["run", "fps=25", "secs=5"]).spawn();
    let mut w = Watch::new(&d, None);
    let st = w.until_exit(&mut d, T);
    assert_ended_by_itself(&wd, st, &w.seen);
    let s = w.seen.last_running.as_ref().unwrap();
    // Whole frames over the wall time between two blocks' arrivals, half a second apart: 12 to
    // 25 frames is 26 fps, and a block delayed by 50 ms moves that by 2–3 fps either way.
    let base = s.check.base_fps.unwrap();
    assert!((20.0..=32.0).contains(&base), "{s:?}");
    assert_eq!(s.check.min_fps, Some(base - 10.0), "{s:?}");
    assert_eq!(s.check.min_speed, Some(0.85), "{s:?}");
    assert!(
        !w.seen.saw(Health::Failing) && !w.seen.saw(Health::Stalled),
        "{:?}",
        w.seen.healths
    );
    assert!(w.seen.first_503.is_none(), "{:?}", w.seen.first_503);
}

#[test]
fn fps_and_speed_dropping_is_stopped_as_failing_after_max_error_time() {
    let wd = Wd::new();
    // The current rates lag the drop by up to the window (they must fall below the minimums
    // first): a 0.5 s window keeps that lag well inside the ±1 s.
    let mut d = fast(&wd)
        .env("ENCODING_RATE_WINDOW", "0.5")
        .args(["block-interval=0.1", "run", "fps=25", "secs=2"])
        .args(["echo", "DROP", "run", "fps=5", "speed=0.2", "secs=20"])
        .spawn();
    let mut w = Watch::new(&d, Some("DROP"));
    let st = w.until_exit(&mut d, T);
    assert_stopped(&wd, st, &w.seen, "failing");
    assert_one_sigint(&wd);
    let (drop, failing, stop) = (
        w.seen.marker.expect("marker"),
        w.seen.failing.expect("health failing"),
        w.seen.stopping.unwrap(),
    );
    let from_drop = secs(drop, stop);
    let from_failing = secs(failing, stop);
    assert!(
        (from_drop - ERROR_TIME).abs() <= 1.0,
        "stopped {from_drop:.2} s after the drop, limit {ERROR_TIME} s"
    );
    assert_stop_time(from_failing, ERROR_TIME, "health turned failing");
    let log = wd.log("wrapperd.log");
    assert!(
        log.contains("base fps 2") && log.contains(": min fps 1"),
        "{log}"
    );
    assert!(log.contains("failing period started: fps "), "{log}");
}

#[test]
fn only_fps_dropping_is_not_stopped() {
    let wd = Wd::new();
    let mut d = fast(&wd)
        .args(["block-interval=0.1", "run", "fps=25", "secs=1.5"])
        .args(["run", "fps=5", "speed=1", "secs=4"])
        .spawn();
    let mut w = Watch::new(&d, None);
    let st = w.until_exit(&mut d, T);
    assert_ended_by_itself(&wd, st, &w.seen);
    assert!(
        !w.seen.saw(Health::Failing),
        "fps alone never fails: {:?}",
        w.seen.healths
    );
    let s = w.seen.last_running.as_ref().unwrap();
    let fps = s.rates.fps.unwrap();
    assert!(
        fps < 6.0 && s.check.min_fps.is_some_and(|m| fps < m),
        "fps below its minimum at the end: {s:?}"
    );
}

#[test]
fn silence_is_stopped_as_stalled() {
    let wd = Wd::new();
    let mut d = fast(&wd)
        .args(["run", "fps=25", "secs=2", "echo", "SILENT", "silence"])
        .spawn();
    let mut w = Watch::new(&d, Some("SILENT"));
    let st = w.until_exit(&mut d, T);
    assert_stopped(&wd, st, &w.seen, "stalled");
    assert_one_sigint(&wd);
    let after = secs(w.seen.marker.expect("marker"), w.seen.stopping.unwrap());
    assert_stop_time(after, STUCK_TIME, "the last output");
    assert!(
        !w.seen.saw(Health::Failing),
        "no block, no failing period: {:?}",
        w.seen.healths
    );
    let status = wd.status_json().unwrap();
    let why = status["exit"]["reason"].as_str().unwrap();
    assert!(why.contains("no output for"), "{why}");
}

#[test]
fn frozen_progress_is_stopped_as_stalled() {
    let wd = Wd::new();
    // The frozen blocks fail too (fps 0, speed 0): the failing limit is set after the stall's so
    // the stall deadline comes first.
    let mut d = fast(&wd)
        .env("ENCODING_MAX_ERROR_TIME", "5")
        .args(["run", "fps=25", "secs=2", "echo", "FROZEN", "freeze"])
        .spawn();
    let mut w = Watch::new(&d, Some("FROZEN"));
    let st = w.until_exit(&mut d, T);
    assert_stopped(&wd, st, &w.seen, "stalled");
    assert_one_sigint(&wd);
    let after = secs(w.seen.marker.expect("marker"), w.seen.stopping.unwrap());
    assert_stop_time(after, STUCK_TIME, "the last advance");
    let status = wd.status_json().unwrap();
    let why = status["exit"]["reason"].as_str().unwrap();
    assert!(why.contains("no progress for"), "{why}");
    // Blocks kept coming the whole time: output never stopped.
    let last = w.seen.last_running.as_ref().unwrap();
    assert!(
        last.check.last_output_age_s.is_some_and(|a| a < 1.0),
        "{last:?}"
    );
}

#[test]
fn nostats_with_advancing_progress_is_not_stalled() {
    let wd = Wd::new();
    let mut d = fast(&wd)
        .args(["nostats", "run", "fps=25", "secs=5"])
        .spawn();
    let mut w = Watch::new(&d, None);
    let st = w.until_exit(&mut d, T);
    assert_ended_by_itself(&wd, st, &w.seen);
    assert!(
        !w.seen.saw(Health::Stalled) && !w.seen.saw(Health::Failing),
        "{:?}",
        w.seen.healths
    );
    // Not one output line from ffmpeg before its final stats line: only progress blocks.
    let last = w.seen.last_running.as_ref().unwrap();
    assert_eq!(last.counters.log_lines, 0, "{last:?}");
    assert!(last.counters.progress_blocks >= 8, "{last:?}");
}

/// An hour of frames behind it, then fps and speed drop: ffmpeg's own averages hardly move.
const HOUR_BEHIND: &[&str] = &[
    "start-frame=90000",
    "block-interval=0.1",
    "run",
    "fps=25",
    "secs=2",
    "echo",
    "DROP",
    "run",
    "fps=5",
    "speed=0.2",
];

#[test]
fn hour_behind_drop_is_stopped_as_failing_while_the_reported_average_stays_near_25() {
    let wd = Wd::new();
    let mut d = fast(&wd)
        .env("ENCODING_RATE_WINDOW", "0.5")
        .args(HOUR_BEHIND)
        .args(["secs=20"])
        .spawn();
    let mut w = Watch::new(&d, Some("DROP"));
    let st = w.until_exit(&mut d, T);
    assert_stopped(&wd, st, &w.seen, "failing");
    assert_one_sigint(&wd);
    let from_drop = secs(w.seen.marker.expect("marker"), w.seen.stopping.unwrap());
    eprintln!("hour behind: stop {from_drop:.2} s after the drop began (limit {ERROR_TIME} s)");
    assert!(
        (from_drop - ERROR_TIME).abs() <= 1.0,
        "stopped {from_drop:.2} s after the drop, limit {ERROR_TIME} s"
    );
    // What ffmpeg itself reported just before the stop: still about 25 fps and speed 1.
    let last = w.seen.last_running.as_ref().unwrap();
    let p = last.progress.as_ref().unwrap();
    assert!(p.frame.unwrap() > 90_000, "{p:?}");
    assert!(p.fps.unwrap() > 24.5, "reported fps {p:?}");
    assert!(p.speed.unwrap() > 0.98, "reported speed {p:?}");
    assert!(
        last.rates.fps.unwrap() < 15.0,
        "current fps {:?}",
        last.rates
    );
}

#[test]
fn rate_window_0_judges_on_ffmpegs_averages_so_the_hour_behind_drop_is_not_stopped() {
    let wd = Wd::new();
    let mut d = fast(&wd)
        .env("ENCODING_RATE_WINDOW", "0")
        .args(HOUR_BEHIND)
        .args(["secs=4"])
        .spawn();
    let mut w = Watch::new(&d, None);
    let st = w.until_exit(&mut d, T);
    assert_ended_by_itself(&wd, st, &w.seen);
    assert!(!w.seen.saw(Health::Failing), "{:?}", w.seen.healths);
    let last = w.seen.last_running.as_ref().unwrap();
    assert_eq!(last.rates.window_s, 0.0);
    // The "current" rates are ffmpeg's reported averages.
    let p = last.progress.as_ref().unwrap();
    assert_eq!(last.rates.fps, p.fps, "{last:?}");
    assert!(last.rates.fps.unwrap() > 24.5, "{last:?}");
}

// ---------------------------------------------------------------- with real ffmpeg

/// A child process killed (and reaped) when the test ends, however it ends.
struct Feeder(Child);

impl Drop for Feeder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on 127.0.0.1.
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something listens on 127.0.0.1:`port` (from `/proc/net/tcp`: state `0A`).
fn tcp_listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == "0A"
        })
}

/// Waits until the encode has produced `frames` frames with the checks active and health ok.
fn wait_running_ok(d: &Daemon, wd: &Wd, frames: u64) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            wd.status_json().is_some_and(|s| {
                s["progress"]["frame"].as_u64().is_some_and(|f| f >= frames)
                    && s["check"]["active"] == true
                    && s["health"] == "ok"
            })
        }),
        "encode not running with active checks: {:?}\n{}",
        wd.status_json(),
        wd.log("wrapperd.log")
    );
    assert_eq!(d.get("/healthz").status, 200);
}

#[test]
fn real_ffmpeg_re_encode_runs_20s_unharmed_then_sigterm_exits_0() {
    let wd = Wd::new();
    let out = wd.file("out.mp4");
    let mut d = managed(
        &wd,
        Limits {
            check: "2",
            window: "2",
            error: "3",
            stuck: "3",
            stop: "5",
        },
    )
    .args(["-hide_banner", "-re", "-f", "lavfi"])
    .args(["-i", "testsrc=size=320x240:rate=25"])
    .args(["-c:v", "mpeg4", "-q:v", "5", "-y"])
    .args([&out])
    .spawn();
    let started = Instant::now();
    wait_running_ok(&d, &wd, 25);
    let mut w = Watch::new(&d, None);
    w.for_time(
        &mut d,
        Duration::from_secs(20).saturating_sub(started.elapsed()),
    );
    assert!(d.is_running(), "{}", wd.log("wrapperd.log"));
    let s = d.status();
    assert_eq!(s.state, State::Running);
    assert_eq!(s.health, Health::Ok, "{s:?}");
    let base = s.check.base_fps.unwrap();
    // 25, or a little more on ffmpeg ≥ 7.1, whose -re reads a 0.5 s burst first.
    assert!((20.0..40.0).contains(&base), "base fps {base}");
    d.signal(Signal::SIGTERM);
    let st = d.wait(T);
    let log = wd.log("wrapperd.log");
    assert_eq!(st.code(), Some(0), "{log}");
    assert!(!log.contains("manager stops"), "{log}");
    assert!(!w.seen.saw(Health::Stalled), "{:?}", w.seen.healths);
    let dur = probe_duration(&out).expect("readable mp4");
    assert!(dur > 18.0, "duration {dur}");
}

#[test]
fn real_ffmpeg_whose_input_stops_sending_is_stopped_as_stalled_and_its_mp4_is_valid() {
    let wd = Wd::new();
    let out = wd.file("out.mp4");
    let port = free_tcp_port();
    // ffmpeg takes a live MPEG-TS stream over TCP (it listens, the source connects).
    let mut d = managed(
        &wd,
        Limits {
            check: "3",
            window: "1",
            // ffmpeg 7 keeps writing frozen blocks, which fail too: the stall comes first.
            error: "4",
            stuck: "2",
            stop: "10",
        },
    )
    .args([
        "-hide_banner",
        "-analyzeduration",
        "1000000",
        "-f",
        "mpegts",
    ])
    .args(["-i", &format!("tcp://127.0.0.1:{port}?listen=1")])
    .args(["-c:v", "libx264", "-preset", "ultrafast", "-y"])
    .args([&out])
    .spawn();
    assert!(
        wait_until(Duration::from_secs(10), || tcp_listening(port)),
        "ffmpeg does not listen on {port}: {}",
        wd.log("wrapperd.log")
    );
    let feeder = Feeder(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
            .args(["-c:v", "mpeg4", "-q:v", "5", "-g", "12", "-f", "mpegts"])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("ffmpeg feeder"),
    );
    wait_running_ok(&d, &wd, 75);
    let mut w = Watch::new(&d, None);
    w.for_time(&mut d, Duration::from_millis(300));
    // The source hangs: the connection stays open and nothing arrives any more.
    let feeder_pid = nix::unistd::Pid::from_raw(feeder.0.id() as i32);
    nix::sys::signal::kill(feeder_pid, Signal::SIGSTOP).unwrap();
    let hung = Instant::now();
    while w.seen.stopping.is_none() && d.is_running() {
        assert!(hung.elapsed() < Duration::from_secs(10), "not stopped");
        w.poll();
        std::thread::sleep(Duration::from_millis(40));
    }
    // ffmpeg got its one SIGINT, but a read blocked on a hung input is only interrupted by a
    // second signal (5.1 and 7 alike), which would cost the mp4 its index. The source stays
    // hung, connection open, as a camera's does: wrapperd ends ffmpeg's input after
    // STOP_INPUT_GRACE (SPEC §9), so it finishes its mp4 well within STOP_TIMEOUT.
    let st = w.until_exit(&mut d, T);
    drop(feeder);
    assert_stopped(&wd, st, &w.seen, "stalled");
    let stop = w.seen.stopping.unwrap();
    let (after_hang, after_advance) = (
        secs(hung, stop),
        secs(w.seen.last_advance.expect("advances seen"), stop),
    );
    eprintln!("real stall: stop {after_hang:.2} s after the source hung");
    assert_stop_time(after_advance, 2.0, "the last advance seen (real stall)");
    let status = wd.status_json().unwrap();
    assert!(
        status["exit"]["ffmpeg_status"].is_i64(),
        "ffmpeg finished, not killed: {status}"
    );
    assert!(wd.log("wrapperd.log").contains("ended its input"));
    let dur = probe_duration(&out).expect("readable mp4");
    assert!(dur > 2.0, "duration {dur}");
    assert!(decodes_cleanly(&out), "the mp4 decodes");
}

#[test]
fn real_ffmpeg_that_slows_down_is_stopped_as_failing() {
    let wd = Wd::new();
    let out = wd.file("out.mp4");
    // The realtime filter paces the source at real time, then (4 s in) at a quarter of it:
    // 6.25 fps, speed 0.25, and still a frame every 0.16 s, so never stalled.
    let mut d = managed(
        &wd,
        Limits {
            check: "2",
            window: "1",
            error: "2",
            stuck: "3",
            stop: "5",
        },
    )
    .args(["-hide_banner", "-f", "lavfi", "-i"])
    .args(["testsrc=size=320x240:rate=25,sendcmd=c='4 realtime@pace speed 0.25',realtime@pace"])
    .args(["-c:v", "mpeg4", "-q:v", "5", "-y"])
    .args([&out])
    .spawn();
    wait_running_ok(&d, &wd, 50);
    let mut w = Watch::new(&d, None);
    let st = w.until_exit(&mut d, T);
    // Slowed down, ffmpeg 5.1 acts on its SIGINT within one frame (≤ 0.16 s) and then exits:
    // the `stopping` state can pass between two polls. The exit is an upper bound of the stop;
    // the graceful stop itself is shown by the decision in the log and ffmpeg's own exit status.
    w.seen.stopping = w.seen.stopping.or(w.seen.gone);
    assert_stopped(&wd, st, &w.seen, "failing");
    let failing = w.seen.failing.expect("health failing");
    let into = secs(failing, w.seen.stopping.unwrap());
    assert_stop_time(into, 2.0, "health turned failing (real slowdown)");
    let last = w.seen.last_running.as_ref().unwrap();
    let (fps, speed) = (last.rates.fps.unwrap(), last.rates.speed.unwrap());
    assert!(fps < 9.0 && speed < 0.4, "{:?}", last.rates);
    let status = wd.status_json().unwrap();
    assert!(
        status["exit"]["ffmpeg_status"].is_i64(),
        "not killed: {status}"
    );
    assert!(probe_duration(&out).expect("readable mp4") > 4.0);
    assert!(decodes_cleanly(&out), "the mp4 decodes");
}
