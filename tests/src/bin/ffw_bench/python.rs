//! Measurement 10: wrapperd side by side with the original Python tool it replaces (issue 10),
//! on the same machine in the same run, in alternation: each wrapper's own CPU and peak memory
//! during a realtime encode, the 2 000 000-line burst (time, and lines kept in its log files),
//! and the time from a hung input to the stop (and whether the mp4 survives). The Python tool is
//! not part of the project: its directory comes from `--python-peer`; without it the rows are
//! left out.

mod hang;
mod wrapper;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

use self::hang::{hang, HANG_ENV, SEND_S};
use self::wrapper::{ffmpeg_version, on_path, Setup, Side, Wrapper};
use crate::procs::SchedCpu;
use crate::report::{Report, Verdict};
use crate::util::{cpu_secs, fmt_list, median, median_line, sleep, status_bytes, MIB};
use crate::Ctx;

/// 10. wrapperd against the Python tool at `peer`; prints a skip line when it is missing.
pub(crate) fn m10_python(c: &Ctx, rep: &mut Report, peer: &Path) {
    let main_py = peer.join("ff_wrapper/main.py");
    if !main_py.is_file() {
        eprintln!(
            "  10: skipped: the Python tool is not at {} (--python-peer DIR)",
            main_py.display()
        );
        return;
    }
    if on_path("python3").is_none() {
        eprintln!("  10: skipped: no python3 on PATH");
        return;
    }
    let mut details = realtime(c, rep, peer);
    details.extend(burst(c, rep, peer));
    let old = ffmpeg_version("ffmpeg");
    hang(c, rep, peer, None, ("10e", &old), &mut details);
    match std::env::var_os("FFW_FFMPEG_NEW").map(PathBuf::from) {
        Some(new) if new.is_file() => {
            let new = new.canonicalize().unwrap_or(new);
            let v = ffmpeg_version(&new.display().to_string());
            hang(c, rep, peer, Some(&new), ("10f", &v), &mut details);
        }
        other => {
            let why = match other {
                Some(p) => format!("FFW_FFMPEG_NEW={} is not a file", p.display()),
                None => "FFW_FFMPEG_NEW is not set".to_string(),
            };
            eprintln!("  10f: skipped: {why} (a newer ffmpeg for the hung-input run)");
            details.push(format!("10f (a newer ffmpeg) skipped: {why}"));
        }
    }
    section(rep, details);
}

/// What one realtime run measured.
struct Rt {
    /// The wrapper's own CPU by schedstat, ns.
    cpu_ns: u64,
    /// From spawn to the last sample, s.
    wall: f64,
    /// Its VmHWM, bytes.
    hwm: f64,
    /// utime + stime from /proc/PID/stat at the last sample, s (the cross-check).
    stat_s: f64,
    /// Threads seen in all and alive at the end.
    threads: (usize, usize),
    /// Whether the encode still ran at the end (nobody stopped it).
    ran: bool,
}

impl Rt {
    fn pct(&self) -> f64 {
        self.cpu_ns as f64 / 1e9 / self.wall * 100.0
    }
}

/// The realtime encode both sides run in 10a/10b: measurement 2's.
use crate::encode::REALTIME_ARGS as RT_ARGS;

/// The manager settings of 10a/10b (integers: the Python tool reads them with `int()`).
const RT_ENV: [(&str, &str); 3] = [
    ("MANAGER_START_DELAY", "2"),
    ("ENCODING_CHECK_START_DELAY", "5"),
    ("ENCODING_MIN_SPEED", "0.8"),
];

/// One realtime run of `side` for `secs` s, sampling its threads every 50 ms.
fn realtime_run(c: &Ctx, peer: &Path, side: Side, secs: f64, i: usize) -> Rt {
    let args: Vec<String> = RT_ARGS.iter().map(|a| a.to_string()).collect();
    let setup = Setup {
        ffmpeg: None,
        env: &RT_ENV,
        args: &args,
    };
    let dir = c.dir(&format!("m10a-{}-{i}", side.name()));
    let t0 = Instant::now();
    let mut w = Wrapper::spawn(peer, &c.bins.wrapperd, side, &dir, &setup);
    let pid = w.pid();
    let mut cpu = SchedCpu::new(pid);
    while t0.elapsed().as_secs_f64() < secs && cpu.sample() {
        sleep(0.05);
    }
    cpu.sample();
    let wall = t0.elapsed().as_secs_f64();
    let hwm = status_bytes(pid, "VmHWM").unwrap_or(f64::NAN);
    let stat_s = cpu_secs(pid).unwrap_or(f64::NAN);
    let ran = !w.poll();
    w.stop();
    Rt {
        cpu_ns: cpu.total_ns(),
        wall,
        hwm,
        stat_s,
        threads: cpu.threads(),
        ran,
    }
}

/// 10a, 10b: own CPU and peak RSS during a realtime encode; the section's details.
fn realtime(c: &Ctx, rep: &mut Report, peer: &Path) -> Vec<String> {
    let secs = if c.quick { 10.0 } else { 30.0 };
    let pairs = c.pairs(3, 2);
    let (mut wd, mut py) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        for side in Side::order(i) {
            let r = realtime_run(c, peer, side, secs, i);
            eprintln!(
                "  10a: pair {} {}: {:.3} % of a core ({:.1} ms; stat {:.0} ms), VmHWM {:.1} MiB{}",
                i + 1,
                side.name(),
                r.pct(),
                r.cpu_ns as f64 / 1e6,
                r.stat_s * 1e3,
                r.hwm / MIB,
                if r.ran { "" } else { ", encode had ended" }
            );
            match side {
                Side::Wrapperd => wd.push(r),
                Side::Python => py.push(r),
            }
        }
    }
    let pct = |v: &[Rt]| v.iter().map(Rt::pct).collect::<Vec<_>>();
    let mib = |v: &[Rt]| v.iter().map(|r| r.hwm / MIB).collect::<Vec<_>>();
    let (cw, cp) = (median(&pct(&wd)), median(&pct(&py)));
    let (mw, mp) = (median(&mib(&wd)), median(&mib(&py)));
    rep.row(
        "10a",
        "own CPU, realtime encode: wrapperd / Python",
        "<= 1 (wrapperd <= Python)",
        format!("{:.2} ({cw:.3} % vs {cp:.3} %)", cw / cp),
        Some(cw / cp),
    );
    rep.row(
        "10b",
        "peak RSS (VmHWM): wrapperd / Python",
        "<= 1 (wrapperd <= Python)",
        format!("{:.2} ({mw:.1} vs {mp:.1} MiB)", mw / mp),
        Some(mw / mp),
    );
    let threads = |v: &[Rt]| {
        v.iter()
            .map(|r| format!("{}/{}", r.threads.0, r.threads.1))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let stat_ms = |v: &[Rt]| v.iter().map(|r| r.stat_s * 1e3).collect::<Vec<_>>();
    let all_ran = wd.iter().chain(&py).all(|r| r.ran);
    vec![
        format!(
            "10a/10b: {pairs} pairs of {secs:.0} s, `{}`",
            RT_ARGS.join(" ")
        ),
        median_line("10a wrapperd % of a core", &pct(&wd), 3),
        median_line("10a Python % of a core", &pct(&py), 3),
        format!(
            "10a cross-check, utime+stime ms: wrapperd {}; Python {}",
            fmt_list(&stat_ms(&wd), 0),
            fmt_list(&stat_ms(&py), 0)
        ),
        format!(
            "10a threads seen / alive at the end: wrapperd {}; Python {}",
            threads(&wd),
            threads(&py)
        ),
        median_line("10b wrapperd VmHWM MiB", &mib(&wd), 1),
        median_line("10b Python VmHWM MiB", &mib(&py), 1),
        format!(
            "10a/10b: {}",
            if all_ran {
                "every encode still ran at the end of its window"
            } else {
                "SOME ENCODE ENDED before the end of its window (a wrapper stopped it)"
            }
        ),
    ]
}

/// 10c, 10d: the 2 000 000-line burst through each wrapper with its file logs; the details.
fn burst(c: &Ctx, rep: &mut Report, peer: &Path) -> Vec<String> {
    const N: u64 = 2_000_000;
    let pairs = c.pairs(3, 1);
    let args: Vec<String> = ["lines", "n=2000000", "to=stderr", "nostats"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let setup = Setup {
        ffmpeg: Some(&c.bins.fake),
        env: &[],
        args: &args,
    };
    let (mut wall, mut kept) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    let mut unfinished = Vec::new();
    for i in 0..pairs {
        for side in Side::order(i) {
            let dir = c.dir(&format!("m10c-{}-{i}", side.name()));
            let t0 = Instant::now();
            let mut w = Wrapper::spawn(peer, &c.bins.wrapperd, side, &dir, &setup);
            let done = w.wait(300.0);
            let t = w.exited.map(|e| (e - t0).as_secs_f64()).unwrap_or(f64::NAN);
            w.stop();
            let n = count_lines(&dir);
            eprintln!(
                "  10c: pair {} {}: {t:.2} s, {n} lines in its files{}",
                i + 1,
                side.name(),
                if done {
                    ""
                } else {
                    " (no exit in 300 s: killed)"
                }
            );
            if !done {
                unfinished.push(format!("{} pair {}", side.name(), i + 1));
            }
            let k = side as usize;
            wall[k].push(t);
            kept[k].push(n as f64);
        }
    }
    let (w, p) = (median(&wall[0]), median(&wall[1]));
    rep.row(
        "10c",
        "2M-line burst: wall time, wrapperd / Python",
        "<= 1 (wrapperd <= Python)",
        format!("{:.2} ({w:.1} s vs {p:.1} s)", w / p),
        Some(w / p),
    );
    let all = kept[0].iter().all(|&x| x == N as f64);
    rep.push_row(
        "10d",
        "2M-line burst: lines kept in its log files",
        "wrapperd: all 2 000 000",
        format!("{:.0} vs {:.0}", median(&kept[0]), median(&kept[1])),
        None,
        if all { Verdict::Met } else { Verdict::Missed },
    );
    let mut details = vec![
        median_line("10c wrapperd wall s", &wall[0], 2),
        median_line("10c Python wall s", &wall[1], 2),
        format!(
            "10d lines kept per run: wrapperd {}; Python {}",
            fmt_list(&kept[0], 0),
            fmt_list(&kept[1], 0)
        ),
    ];
    if !unfinished.is_empty() {
        details.push(format!("10c no exit in 300 s: {}", unfinished.join(", ")));
    }
    details
}

/// Lines `<…> line N` in the ffmpeg log files under `dir`, at any depth: wrapperd's
/// `wd/logs/ffmpeg.log*`, the Python tool's `logs/ff_wrapper_PID/ffmpeg_*.log*`.
fn count_lines(dir: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            n += count_lines(&p);
        } else if name.starts_with("ffmpeg") && name.contains(".log") {
            let Ok(f) = fs::File::open(&p) else { continue };
            n += BufReader::with_capacity(1 << 20, f)
                .split(b'\n')
                .map_while(Result::ok)
                .filter(|l| l.first() == Some(&b'<') && l.windows(6).any(|w| w == b" line "))
                .count() as u64;
        }
    }
    n
}

/// The section of measurement 10: how each figure was taken, and the details of every run.
fn section(rep: &mut Report, details: Vec<String>) {
    rep.section(
        10,
        "wrapperd against the original Python tool",
        &format!(
            "The Python ff_wrapper that wrapperd replaces (`python3 ff_wrapper/main.py ARGS`, \
             from `--python-peer`; not part of the project; started as the interpreter's \
             `sys.executable`, so no pyenv-style shim's start counts as its own) and wrapperd \
             run the same ffmpeg \
             command, each in its own scratch directory, in alternation (the first of each pair \
             alternating); figures are medians. The Python tool runs the `ffmpeg` first on PATH, \
             so it gets a directory holding an `ffmpeg` link to the binary wrapperd gets as \
             FFMPEG_BIN. It does not start its HTTP server from main.py, so wrapperd runs \
             without a TCP listener (its Unix socket is always on). Each is stopped the way its \
             operator would: SIGTERM to wrapperd, SIGINT to the Python tool (it dies on SIGTERM \
             and leaves its ffmpeg running).\n\n\
             **10a/10b.** `{}` with {} on both sides. CPU is the wrapper's own (not ffmpeg's): \
             the sum over its threads of `/proc/PID/task/TID/schedstat`'s first field (ns on \
             CPU), sampled every 50 ms from its spawn to the end of the window, keeping each \
             thread's largest figure, because an exited thread leaves `task/` (tokio's blocking \
             pool threads exit after 10 s idle): a thread that exits loses at most what it ran \
             since the last sample. As a percentage of one core over the window. utime + stime \
             from /proc/PID/stat (which keeps exited threads' time, in 10 ms ticks) is listed \
             as a cross-check. Peak RSS is the wrapper process's VmHWM (not ffmpeg's).\n\n\
             **10c/10d.** The fake ffmpeg (`fake-ffmpeg lines n=2000000 to=stderr nostats`) \
             prints `line 1` … `line 2000000` as fast as it can, with both tools' defaults \
             (file logs on, days rotation, manager after 5 s). Wall time from spawn to the \
             wrapper's exit; then the lines `<…> line N` in its ffmpeg log files are counted \
             (wrapperd: `logs/ffmpeg.log*`; Python: `ff_wrapper_PID/ffmpeg_*.log*`).\n\n\
             **10e/10f.** ffmpeg reads `-f rawvideo -video_size 320x240 -pixel_format yuv420p \
             -framerate 25 -i tcp://127.0.0.1:PORT` and writes an mp4 (libx264 veryfast). The \
             bench's TCP server sends frames in real time for {SEND_S:.0} s (send buffer 64 KiB), \
             then sends nothing and keeps the connection open until the wrapper has exited. \
             Settings on both sides: {}. The figure is the time from the last byte accepted by \
             the socket to the wrapper's exit (no exit within 60 s: `no stop`, and the bench stops it); the \
             mp4 is valid when `ffprobe -v error -show_entries format=duration` gives a \
             duration. 10f repeats it with the ffmpeg named by FFW_FFMPEG_NEW, when set.",
            RT_ARGS.join(" "),
            env_text(&RT_ENV),
            env_text(&HANG_ENV)
        ),
        details,
    );
}

fn env_text(env: &[(&str, &str)]) -> String {
    env.iter()
        .map(|(k, v)| format!("`{k}={v}`"))
        .collect::<Vec<_>>()
        .join(" ")
}
