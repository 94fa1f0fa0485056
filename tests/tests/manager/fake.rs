//! The manager's rules with the scripted fake ffmpeg and fractional-second settings.

use super::*;

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
