//! Measurements 1 and 2: what wrapperd costs around an encode, CPU-bound (wall time against
//! bare ffmpeg) and realtime (wrapperd's own CPU and peak memory).

use std::fs;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::procs::{die_with_parent, wall, Daemon};
use crate::report::Report;
use crate::util::{cpu_secs, fmt_list, median, median_line, sleep, status_bytes, MIB};
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

/// 2. wrapperd's own CPU and peak RSS during a realtime 25 fps encode.
pub(crate) fn m2_realtime(c: &Ctx, rep: &mut Report) {
    let secs = if c.quick { 15.0 } else { 60.0 };
    let wd = c.dir("m2");
    let args = [
        "-hide_banner",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-f",
        "null",
        "-",
    ];
    let env = [
        ("HTTP_PORT", "0".to_string()),
        ("MANAGER_START_DELAY", "2".to_string()),
        ("ENCODING_CHECK_START_DELAY", "5".to_string()),
    ];
    let t0 = Instant::now();
    let mut d = Daemon::spawn(&c.bins, &wd, &env, &args);
    let pid = d.pid();
    sleep(5.0);
    let cpu5 = cpu_secs(pid).unwrap_or(f64::NAN);
    let t5 = t0.elapsed().as_secs_f64();
    while t0.elapsed().as_secs_f64() < secs {
        sleep(0.05);
    }
    let cpu = cpu_secs(pid).unwrap_or(f64::NAN);
    let t = t0.elapsed().as_secs_f64();
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
    let pct = cpu / t * 100.0;
    let steady = (cpu - cpu5) / (t - t5) * 100.0;
    rep.row(
        "2a",
        &format!("wrapperd CPU, {secs:.0} s realtime 25 fps encode"),
        "<= 0.1 % of a core",
        format!("{pct:.3} % ({:.0} ms)", cpu * 1000.0),
        Some(pct / 0.1),
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
            "`wrapperd {}` (TCP listener on, checks active after 5 s) for {secs:.0} s; nobody \
             polls the API. CPU is utime + stime of wrapperd's own threads from \
             /proc/PID/stat (ffmpeg's time is not in it: ffmpeg is still running, so it is not \
             in wrapperd's children's times either), from its exec until {secs:.0} s, as a \
             percentage of one core; resolution 1/CLK_TCK = 10 ms. Peak RSS is VmHWM from \
             /proc/PID/status.",
            args.join(" ")
        ),
        vec![
            format!("CPU {:.0} ms over {t:.1} s = {pct:.3} %", cpu * 1000.0),
            format!(
                "steady state (5 s to the end): {:.0} ms over {:.1} s = {steady:.3} %",
                (cpu - cpu5) * 1000.0,
                t - t5
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
