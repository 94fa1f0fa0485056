//! What `/proc` says about a process: alive or a zombie, its children, its status fields
//! (memory), its open descriptors and its CPU time. The tests assert on these and `ffw-bench`
//! measures them; both read them here.

use std::collections::HashMap;
use std::fs;

/// Whether a process is gone: no such pid, or a zombie (dead, waiting for a parent that is not
/// ours to reap).
pub fn process_gone(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .map(|(_, rest)| rest.starts_with('Z'))
            .unwrap_or(true),
    }
}

/// Fields of `/proc/PID/status` (e.g. `SigIgn`, `SigBlk`, `PPid`).
pub fn proc_status(pid: i32) -> HashMap<String, String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, without the colon), in KiB.
pub fn status_kb(pid: i32, key: &str) -> Option<u64> {
    proc_status(pid)
        .get(key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident memory (`VmRSS`) in KiB; 0 if the process is gone.
pub fn rss_kb(pid: i32) -> u64 {
    status_kb(pid, "VmRSS").unwrap_or(0)
}

/// How many descriptors the process has open; 0 if it is gone.
pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Clock ticks per second, the unit of `/proc/PID/stat`'s times.
fn clk_tck() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of `pid`'s own threads (not its children), in seconds.
pub fn cpu_secs(pid: i32) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / clk_tck())
}

/// The children of `pid` as (pid, state letter).
pub fn children_of(pid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut f = rest.split(' ');
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: i32 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == pid {
            out.push((p, state));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_descriptors_and_cpu_time() {
        let me = std::process::id() as i32;
        assert!(rss_kb(me) > 0);
        assert!(status_kb(me, "VmHWM").unwrap() >= rss_kb(me) / 2);
        assert!(fd_count(me) >= 3);
        assert!(cpu_secs(me).is_some());
        assert!(!process_gone(me));
        assert_eq!(rss_kb(-1), 0);
        assert_eq!(fd_count(-1), 0);
        assert!(process_gone(-1));
    }
}
