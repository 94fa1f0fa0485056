//! Small helpers of the measurements: clocks, statistics, waiting, running a command.

use std::process::Command;
use std::time::{Duration, Instant};

use tests::procfs;

pub(crate) const MIB: f64 = 1024.0 * 1024.0;

pub(crate) fn mono_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// utime + stime of `pid`'s own threads (not its children), in seconds.
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    procfs::cpu_secs(pid as i32)
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`), in bytes.
pub(crate) fn status_bytes(pid: u32, key: &str) -> Option<f64> {
    procfs::status_kb(pid as i32, key).map(|kb| kb as f64 * 1024.0)
}

pub(crate) fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile.
pub(crate) fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// `label: x, y, z (median m)`, every figure with `digits` decimals.
pub(crate) fn median_line(label: &str, v: &[f64], digits: usize) -> String {
    format!(
        "{label}: {} (median {:.digits$})",
        fmt_list(v, digits),
        median(v)
    )
}

pub(crate) fn fmt_list(v: &[f64], digits: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn sleep(s: f64) {
    std::thread::sleep(Duration::from_secs_f64(s));
}

pub(crate) fn wait_for(timeout: f64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs_f64(timeout);
    while Instant::now() < end {
        if f() {
            return true;
        }
        sleep(0.01);
    }
    f()
}

pub(crate) fn cmd_out(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
