//! Measurement 12 (issue 12): restarts. (a) How long wrapperd takes from one run's ffmpeg
//! exiting to the next one's exec, beyond the configured delay; (b) a 24-hour-equivalent crash
//! loop (10 000 runs of a fake ffmpeg that exits at once, 1 ms delays): wrapperd's memory and
//! descriptors must stay flat and `runs.jsonl` trimmed to 1000 lines.

use std::fs;
use std::time::Instant;

use crate::procs::Daemon;
use crate::report::Report;
use crate::util::{median, percentile, status_bytes, wait_for, MIB};
use crate::Ctx;

/// The delay of (a), in seconds: long enough that a run's teardown is over before the next.
const DELAY_S: f64 = 0.1;

/// 12. Restarts: latency beyond the delay, and a long crash loop.
pub(crate) fn m12_restarts(c: &Ctx, rep: &mut Report) {
    let lat = restart_latency(c);
    let (m, p90) = (median(&lat), percentile(&lat, 90.0));
    rep.row(
        "12a",
        "restart: ffmpeg exit -> next exec - delay",
        "<= 10 ms median",
        format!("{m:.2} ms (p90 {p90:.2})"),
        Some(m / 10.0),
    );
    let crash = crash_loop(c);
    let ok = crash.rss_growth <= MIB && crash.fd_growth <= 2 && crash.lines == 1000;
    rep.push_row(
        "12b",
        &format!("crash loop: {} runs, RSS / fds growth", crash.runs),
        "<= 1 MiB / 2 fds",
        format!(
            "{:+.0} KiB / {:+} fds, {} lines",
            crash.rss_growth / 1024.0,
            crash.fd_growth,
            crash.lines
        ),
        None,
        if ok {
            crate::report::Verdict::Met
        } else {
            crate::report::Verdict::Missed
        },
    );
    rep.section(
        12,
        "Restarts",
        "(a) `FFMPEG_BIN` is this binary in mode `restart`: its first instruction appends \
         CLOCK_MONOTONIC to a file, it runs 50 ms, appends CLOCK_MONOTONIC again just before \
         `exit(1)`. wrapperd runs it with `RESTART=on-failure`, `RESTART_DELAY` = \
         `RESTART_MAX_DELAY` = 0.1 s. Per restart: (next run's first instruction) - (this \
         run's last instruction) - 100 ms; this includes the child's own exit, wrapperd seeing \
         it, draining its pipes, judging and recording the run, and the next spawn and exec. \
         (b) The fake ffmpeg with `exit code=1` under `RESTART=on-failure`, `RESTART_DELAY` = \
         `RESTART_MAX_DELAY` = 0.001 s, `STDOUT_BUFFER_LEN` = `PROGRESS_BUFFER_LEN` = 1000: \
         wrapperd's VmRSS and open descriptors after the first 1000 runs (warm) against after \
         the last, and the lines of `status/runs.jsonl` at the end. Each is taken from 200 samples over 2 s: \
         the median VmRSS, and the fewest open descriptors (the count between runs; a run \
         holds a few more while it lasts). The rings are bounded \
         caches that fill up to their settings (each run adds its final stats line and block; \
         with the defaults of 100 000 they are still filling after 10 000 runs, +2.6 MiB), so \
         they are set small enough to be full before the warm-up ends: the growth measured is \
         what a run leaves behind.",
        vec![
            format!(
                "latency beyond the delay ms: median {m:.2}, p90 {p90:.2}, max {:.2}, {} restarts",
                lat.iter().copied().fold(f64::NAN, f64::max),
                lat.len()
            ),
            format!(
                "crash loop: {} runs in {:.1} s; VmRSS {:.1} -> {:.1} MiB; fds {} -> {}; \
                 runs.jsonl {} lines",
                crash.runs,
                crash.secs,
                crash.rss.0 / MIB,
                crash.rss.1 / MIB,
                crash.fds.0,
                crash.fds.1,
                crash.lines
            ),
        ],
    );
}

/// (a): the latency of each restart beyond the delay, in ms.
fn restart_latency(c: &Ctx) -> Vec<f64> {
    let runs = c.pairs(40, 12);
    let stamp = c.dir("m12-stamps");
    let _ = fs::remove_file(&stamp);
    let mut env = c.me_env("restart");
    env.extend([
        ("FFW_BENCH_STAMP", stamp.display().to_string()),
        ("RESTART", "on-failure".to_string()),
        ("RESTART_DELAY", DELAY_S.to_string()),
        ("RESTART_MAX_DELAY", DELAY_S.to_string()),
    ]);
    let mut d = Daemon::spawn(&c.bins, &c.dir("m12a"), &env, &["restart"]);
    let stamps = || -> Vec<(char, i64)> {
        fs::read_to_string(&stamp)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.chars().next()?, v.parse().ok()?))
            })
            .collect()
    };
    wait_for(60.0, || {
        stamps().iter().filter(|(k, _)| *k == 's').count() > runs
    });
    d.stop();
    let s = stamps();
    s.windows(2)
        .filter(|w| w[0].0 == 'e' && w[1].0 == 's')
        .map(|w| (w[1].1 - w[0].1) as f64 / 1e6 - DELAY_S * 1000.0)
        .collect()
}

/// What (b) found.
struct Crash {
    /// Runs made.
    runs: u64,
    /// How long they took.
    secs: f64,
    /// VmRSS after the warm-up and at the end, bytes.
    rss: (f64, f64),
    /// Open descriptors then and at the end.
    fds: (usize, usize),
    /// The growth of each.
    rss_growth: f64,
    /// The growth of the descriptors.
    fd_growth: i64,
    /// Lines in runs.jsonl at the end.
    lines: usize,
}

/// (b): the crash loop.
fn crash_loop(c: &Ctx) -> Crash {
    let total = c.pairs(10_000, 2_000) as u64;
    let warm = 1000;
    let wd = c.dir("m12b");
    let env = [
        ("FFMPEG_BIN", c.bins.fake.display().to_string()),
        ("RESTART", "on-failure".to_string()),
        ("RESTART_DELAY", "0.001".to_string()),
        ("RESTART_MAX_DELAY", "0.001".to_string()),
        // The rings are caches bounded by these: full before the warm-up ends, so that what
        // is measured is what a run leaves behind, not the rings filling up to their bound.
        ("STDOUT_BUFFER_LEN", "1000".to_string()),
        ("PROGRESS_BUFFER_LEN", "1000".to_string()),
    ];
    let mut d = Daemon::spawn(&c.bins, &wd, &env, &["exit", "code=1"]);
    let pid = d.pid();
    let number = |d: &Daemon| {
        d.status()
            .and_then(|s| s["run"]["number"].as_u64())
            .unwrap_or(0)
    };
    // Descriptors come and go with each run (ffmpeg's pipes, the FIFO): the fewest seen in 200
    // samples over 2 s is the count between runs. RSS: the median of the same samples.
    let sample = || {
        let (mut rss, mut fds) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            fds.push(fs::read_dir(format!("/proc/{pid}/fd")).map_or(usize::MAX, |r| r.count()));
            rss.push(status_bytes(pid, "VmRSS").unwrap_or(f64::NAN));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        (median(&rss), fds.into_iter().min().unwrap_or(0))
    };
    let t = Instant::now();
    wait_for(600.0, || number(&d) >= warm);
    let (rss0, fd0) = sample();
    wait_for(3600.0, || number(&d) >= total);
    let (rss1, fd1) = sample();
    let secs = t.elapsed().as_secs_f64();
    let runs = number(&d);
    d.stop();
    let lines = fs::read_to_string(wd.join("status/runs.jsonl")).map_or(0, |t| t.lines().count());
    Crash {
        runs,
        secs,
        rss: (rss0, rss1),
        fds: (fd0, fd1),
        rss_growth: rss1 - rss0,
        fd_growth: fd1 as i64 - fd0 as i64,
        lines,
    }
}
