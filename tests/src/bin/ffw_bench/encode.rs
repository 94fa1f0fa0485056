//! Measurements 1 and 2: what wrapperd costs around an encode, CPU-bound (wall time against
//! bare ffmpeg) and realtime (wrapperd's own CPU, every thread's, and peak memory).

use std::fs;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::procs::{die_with_parent, sample_for, wall, Daemon, SchedCpu};
use crate::report::Report;
use crate::util::{fmt_list, median, median_line, status_bytes, MIB};
use crate::Ctx;

/// 1. A CPU-bound encode, bare and under wrapperd with everything on.
pub(crate) fn m1_overhead(c: &Ctx, rep: &mut Report) {
    let frames = if c.quick { "200" } else { "600" };
    let pairs = c.pairs(5, 3);
    let args = [
        "-hide_banner",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=1280x720:rate=25",
        "-frames:v",
        frames,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-f",
        "null",
        "-",
    ];
    let (mut bare, mut wrapped, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let wd = c.dir("m1");
    for i in 0..pairs {
        let run_bare = || {
            let mut cmd = Command::new("ffmpeg");
            cmd.args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            wall(cmd)
        };
        let run_wrapped = || {
            let _ = fs::remove_dir_all(&wd);
            let mut cmd = Command::new(&c.bins.wrapperd);
            cmd.args(args)
                .env("WORKDIR", &wd)
                .env("HTTP_PORT", "0")
                .env("MANAGER_START_DELAY", "0.5")
                .env("ENCODING_CHECK_START_DELAY", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
            wall(cmd)
        };
        let (b, w) = if i % 2 == 0 {
            let b = run_bare();
            (b, run_wrapped())
        } else {
            let w = run_wrapped();
            (run_bare(), w)
        };
        eprintln!("  1: pair {}: bare {b:.3} s, wrapped {w:.3} s", i + 1);
        bare.push(b);
        wrapped.push(w);
        ratios.push(w / b);
    }
    let r = median(&ratios);
    rep.row(
        "1",
        "CPU-bound encode under wrapperd: wall ratio",
        "<= 1.01",
        format!("{r:.3} (median of {pairs} pairs)"),
        Some(r / 1.01),
    );
    rep.section(
        1,
        "Overhead on a CPU-bound encode",
        &format!(
            "`ffmpeg {}` run bare (stderr to /dev/null) and under wrapperd with everything on \
             (file logs, the Unix socket and a TCP listener, the manager with its checks active \
             after 1 s), in alternation, the first of each pair alternating. Wall time from spawn \
             to exit (wrapperd's includes its own start and shutdown). The figure is the median \
             of the per-pair ratios wrapped / bare.",
            args.join(" ")
        ),
        vec![
            median_line("bare wall s", &bare, 3),
            median_line("wrapped wall s", &wrapped, 3),
            format!("ratios: {}", fmt_list(&ratios, 3)),
        ],
    );
}

/// 2. wrapperd's own CPU (schedstat, every thread) and peak RSS during a realtime 25 fps encode.
pub(crate) fn m2_realtime(c: &Ctx, rep: &mut Report) {
    let secs: f64 = if c.quick { 8.0 } else { 20.0 };
    let wd = c.dir("m2");
    let args = REALTIME_ARGS;
    let env = [
        ("HTTP_PORT", "0".to_string()),
        ("MANAGER_START_DELAY", "1".to_string()),
        ("ENCODING_CHECK_START_DELAY", "2".to_string()),
    ];
    let t0 = Instant::now();
    let mut d = Daemon::spawn(&c.bins, &wd, &env, &args);
    let pid = d.pid();
    let mut cpu = [SchedCpu::new(pid)];
    let lead = secs.min(5.0) / 2.0;
    let cpu_lead = sample_for(&mut cpu, lead);
    let t_lead = t0.elapsed().as_secs_f64();
    let total = sample_for(&mut cpu, secs - t_lead);
    let t = t0.elapsed().as_secs_f64();
    let threads = cpu[0].threads().0;
    let hwm = status_bytes(pid, "VmHWM").unwrap_or(f64::NAN);
    let rss = status_bytes(pid, "VmRSS").unwrap_or(f64::NAN);
    let st = d.status();
    let health = st
        .as_ref()
        .and_then(|s| s["health"].as_str().map(String::from))
        .unwrap_or_default();
    let lines = st
        .as_ref()
        .and_then(|s| s["counters"]["log_lines"].as_u64())
        .unwrap_or(0);
    let blocks = st
        .as_ref()
        .and_then(|s| s["counters"]["progress_blocks"].as_u64())
        .unwrap_or(0);
    d.stop();
    let pct = total / t * 100.0;
    let steady = (total - cpu_lead) / (t - t_lead) * 100.0;
    rep.row(
        "2a",
        &format!("wrapperd CPU, {secs:.0} s realtime 25 fps encode"),
        "<= 0.03 % of a core",
        format!("{pct:.3} % ({:.1} ms)", total * 1000.0),
        Some(pct / 0.03),
    );
    rep.row(
        "2b",
        "wrapperd peak RSS (VmHWM), same encode",
        "<= 12 MiB",
        format!("{:.1} MiB", hwm / MIB),
        Some(hwm / MIB / 12.0),
    );
    rep.section(
        2,
        "wrapperd's own cost during a realtime encode",
        &format!(
            "`wrapperd {}` (TCP listener on, checks active after 2 s) for {secs:.0} s; nobody \
             polls the API. CPU is the time on a CPU of every thread wrapperd has had, from \
             /proc/PID/task/*/schedstat (ns), sampled every 100 ms keeping each thread's \
             largest figure (so a thread that exits is not lost), from its exec until {secs:.0} \
             s, as a percentage of one core. ffmpeg's time is not in it. Peak RSS is VmHWM from \
             /proc/PID/status.",
            args.join(" ")
        ),
        vec![
            format!(
                "CPU {:.2} ms over {t:.1} s = {pct:.4} % ({threads} threads seen)",
                total * 1000.0
            ),
            format!(
                "of which start-up (the first {t_lead:.1} s): {:.2} ms; the rest: {:.2} ms over \
                 {:.1} s = {steady:.4} %",
                cpu_lead * 1000.0,
                (total - cpu_lead) * 1000.0,
                t - t_lead
            ),
            format!(
                "VmHWM {:.1} MiB, VmRSS at the end {:.1} MiB",
                hwm / MIB,
                rss / MIB
            ),
            format!("health at the end: {health}; {lines} log lines, {blocks} progress blocks"),
        ],
    );
}

/// The realtime 25 fps encode of measurements 2 and 10 (against the Python tool).
pub(crate) const REALTIME_ARGS: [&str; 13] = [
    "-hide_banner",
    "-re",
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=320x240:rate=25",
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-f",
    "null",
    "-",
];
