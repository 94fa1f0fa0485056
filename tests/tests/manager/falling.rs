//! Current rates that fall when blocks stop (SPEC §5 amended) and the memory limit
//! (`FFMPEG_MAX_RSS_MB`, SPEC §10), through the real binary with the scripted fake.
//!
//! The rates tests run with a 1 s window and the checks disabled (so the manager does not stop
//! the stall it is shown), watch `/status` every 50 ms and measure from the newest block's own
//! arrival time (`progress.at`, wrapperd's clock, the same as this test's): the rates must be 0
//! within the window + 1 s of the last advance, in `/status` and `/metrics`, and `/series` must
//! go on with a point a second, falling to 0.

use std::time::{Duration, Instant};

use shared::api::{SeriesPoint, Status};
use tests::*;

use super::T;

/// A 1 s window, checks disabled, blocks every 0.2 s.
fn falling(wd: &Wd) -> WrapperCmd {
    wd.wrapperd().fake().envs(&[
        ("ENCODING_RATE_WINDOW", "1"),
        ("ENCODING_DISABLE_CHECK", "1"),
        ("MANAGER_START_DELAY", "0"),
    ])
}

/// Wall-clock Unix ms now (wrapperd stamps blocks with the same clock).
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn block_ms(st: &Status) -> Option<i64> {
    let at = &st.progress.as_ref()?.at;
    Some(
        chrono::DateTime::parse_from_rfc3339(at)
            .ok()?
            .timestamp_millis(),
    )
}

/// `ffwrapper_fps` from `/metrics`.
fn metrics_fps(d: &Daemon) -> Option<f64> {
    let body = d.get("/metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix("ffwrapper_fps "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits for an encode at about 25 fps, then watches `/status` until the rates are 0 in it and in
/// `/metrics`. `advance` tells the block that advanced last from the status shown. Returns how
/// long after the last advance the rates were seen at 0, and that advance's time.
fn watch_the_fall(d: &Daemon, advance: impl Fn(&Status) -> Option<u64>) -> (f64, i64) {
    assert!(
        wait_until(T, || d.status().rates.fps.is_some_and(|f| f > 20.0)),
        "never encoding at 25 fps: {:?}",
        d.status()
    );
    let (mut last_value, mut last_at) = (None, None);
    let mut fps_seen = Vec::new();
    let deadline = Instant::now() + T;
    loop {
        assert!(
            Instant::now() < deadline,
            "rates never fell to 0: {fps_seen:?}"
        );
        let st = d.status();
        let value = advance(&st);
        if value != last_value {
            (last_value, last_at) = (value, block_ms(&st));
            fps_seen.clear();
        }
        let fps = st.rates.fps.expect("rates stay known");
        fps_seen.push(fps);
        if fps == 0.0 && st.rates.speed == Some(0.0) && metrics_fps(d) == Some(0.0) {
            let took = (now_ms() - last_at.unwrap()) as f64 / 1000.0;
            // Falling, never rising, while nothing advances.
            assert!(
                fps_seen.windows(2).all(|w| w[1] <= w[0] + 1e-9),
                "{fps_seen:?}"
            );
            return (took, last_at.unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `/series` points after `after_ms`.
fn points_after(d: &Daemon, after_ms: i64) -> Vec<SeriesPoint> {
    let s: shared::api::Series = serde_json::from_str(&d.get("/series?seconds=60").body).unwrap();
    s.points.into_iter().filter(|p| p.t > after_ms).collect()
}

#[test]
fn silence_makes_the_current_rates_fall_to_0_and_series_goes_on() {
    let wd = Wd::new();
    let d = falling(&wd)
        .args(["block-interval=0.2", "run", "secs=3", "silence"])
        .spawn();
    d.wait_api();
    let (took, last_ms) = watch_the_fall(&d, |st| st.counters.progress_blocks.into());
    let blocks = d.status().counters.progress_blocks;
    eprintln!("rates at 0 {took:.2} s after the last block");
    assert!(took <= 2.0, "0 only {took:.2} s after the last block");
    // A point a second while no block arrives, falling to 0.
    let mut pts = Vec::new();
    assert!(
        wait_until(T, || {
            pts = points_after(&d, last_ms);
            pts.len() >= 3
        }),
        "no /series points during the silence: {pts:?}"
    );
    assert!(
        pts.windows(2).all(|w| w[1].t - w[0].t == 1000),
        "one a second: {pts:?}"
    );
    assert!(pts.iter().all(|p| p.bitrate_kbps.is_none()), "{pts:?}");
    assert_eq!(pts.last().unwrap().fps, Some(0.0), "{pts:?}");
    assert_eq!(pts.last().unwrap().speed, Some(0.0), "{pts:?}");
    assert_eq!(d.status().counters.progress_blocks, blocks, "no block came");
}

#[test]
fn frozen_blocks_make_the_current_rates_fall_to_0() {
    let wd = Wd::new();
    let d = falling(&wd)
        .args(["block-interval=0.2", "run", "secs=3", "freeze"])
        .spawn();
    d.wait_api();
    let (took, _) = watch_the_fall(&d, |st| st.progress.as_ref().and_then(|p| p.frame));
    eprintln!("rates at 0 {took:.2} s after the last advance");
    assert!(took <= 2.0, "0 only {took:.2} s after the last advance");
    // Blocks still come: the points are the blocks', at 0.
    let before = d.status().counters.progress_blocks;
    assert!(wait_until(T, || d.status().counters.progress_blocks > before + 3));
    let st = d.status();
    assert_eq!((st.rates.fps, st.rates.speed), (Some(0.0), Some(0.0)));
}

/// Runs the fake growing by `grow_mb` MiB under `FFMPEG_MAX_RSS_MB=limit` with a 1 s limit time.
fn under_a_memory_limit(wd: &Wd, limit: &str, grow_mb: &str, secs: &str) -> Daemon {
    wd.wrapperd()
        .fake()
        .envs(&[
            ("FFMPEG_MAX_RSS_MB", limit),
            ("ENCODING_MAX_ERROR_TIME", "1"),
            ("STOP_TIMEOUT", "5"),
        ])
        .args(["run", "secs=0.5", "grow"])
        .args([format!("mb={grow_mb}"), format!("secs={secs}")])
        .spawn()
}

#[test]
fn ffmpeg_above_its_memory_limit_is_stopped_with_reason_memory() {
    let wd = Wd::new();
    let mut d = under_a_memory_limit(&wd, "64", "200", "inf");
    let st = d.wait(T);
    let log = wd.log("wrapperd.log");
    assert_eq!(st.code(), Some(1), "{log}");
    let status = wd.status_json().expect("status.json");
    let why = status["exit"]["reason"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("stopped by the manager: memory: ffmpeg's resident memory ")
            && why.contains(" MiB > FFMPEG_MAX_RSS_MB 64 for "),
        "exit reason: {why}"
    );
    assert!(
        log.contains("> FFMPEG_MAX_RSS_MB 64: stopping ffmpeg if it stays above for 1.0 s"),
        "{log}"
    );
    assert!(log.contains("manager stops ffmpeg (memory): "), "{log}");
}

#[test]
fn ffmpeg_below_its_memory_limit_is_not_stopped() {
    let wd = Wd::new();
    let mut d = under_a_memory_limit(&wd, "512", "32", "2");
    let st = d.wait(T);
    let log = wd.log("wrapperd.log");
    assert_eq!(st.code(), Some(1), "{log}");
    let status = wd.status_json().expect("status.json");
    let why = status["exit"]["reason"].as_str().unwrap_or_default();
    assert!(why.contains("ended by itself"), "exit reason: {why}");
    assert!(!log.contains("resident memory"), "{log}");
}
