//! Reliability under faults, bad input and abuse (issue #7): only what is harsher than the
//! supervisor, logs and API suites already test.
//!
//! - Disk faults ([`disk`]): logs on a tiny full tmpfs in a private mount namespace
//!   (`unshare --mount`), space coming back, `logs/` deleted while running, read-only work
//!   directories; and the atomic `status/status.json` under a reader looping on it.
//! - Child faults ([`process`]): real ffmpeg killed by `SIGSEGV`/`SIGKILL` from outside,
//!   stopped by `SIGSTOP`; signal hygiene: a Ctrl-C typed in a pty, two `SIGTERM`s a second
//!   apart.
//! - API abuse ([`abuse`]: garbage, a 1 MB header, invalid UTF-8, 5 000 idle connections,
//!   slowloris, token timing): during and afterwards `/status` still answers a new client
//!   without being held up, and wrapperd's memory and descriptors are back near their baseline.
//!   How fast it answers is a figure for `bench/run` (ffw-bench 6f, 6g), not an assertion here.
//!
//! Tests that need mounts skip with a printed reason when `unshare --mount` is not allowed.
//! Figures (latencies, RSS, descriptors) are printed; `--nocapture` shows them.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tests::http::{raw, status_line, tcp, unix};
use tests::*;

mod abuse;
mod disk;
mod process;

const T: Duration = Duration::from_secs(60);

// ===== mount namespaces =====

/// Whether this process may run `unshare --mount` and mount a tmpfs in it (root in CI).
fn mounts_allowed() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs -o size=4k tmpfs \"$0\"")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: `unshare --mount` with a tmpfs mount is not allowed here (needs root)");
    }
    ok
}

/// Runs `w` inside a private mount namespace: `setup` (sh) first, then wrapperd, then `post`;
/// the namespace's sh exits with wrapperd's status. `$WD` is the work directory.
fn in_mount_namespace(mut w: WrapperCmd, setup: &str, post: &str) -> WrapperCmd {
    let args: Vec<std::ffi::OsString> = std::iter::once(w.cmd.get_program())
        .chain(w.cmd.get_args())
        .map(|a| a.to_owned())
        .collect();
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "set -e\n{setup}\nset +e\n\"$0\" \"$@\"\nrc=$?\n{post}\nexit $rc"
        ))
        .args(&args);
    for (k, v) in w.cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.env("WD", &w.workdir);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    w.cmd = c;
    w
}

// ===== processes =====

/// wrapperd's pid from `status/PID` (also when it runs under `unshare`).
fn wrapperd_pid(wd: &Wd) -> i32 {
    let mut pid = 0;
    assert!(wait_until(Duration::from_secs(10), || {
        pid = wd
            .status_file("PID")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        pid > 0 && !process_gone(pid)
    }));
    pid
}

/// `syscw` (write calls) of wrapperd's writer thread for `logs/<name>`.
fn writer_syscalls(pid: i32, name: &str) -> Option<u64> {
    for e in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        // Thread names are cut at 15 bytes: "log ffmpeg.log".
        if comm.trim_end() == format!("log {name}") {
            let io = fs::read_to_string(e.path().join("io")).ok()?;
            return io
                .lines()
                .find_map(|l| l.strip_prefix("syscw: "))
                .and_then(|v| v.trim().parse().ok());
        }
    }
    None
}

/// Waits until the log writer thread for `name` made no write call for 300 ms: everything
/// pushed before this call has been attempted.
fn wait_writer_quiet(pid: i32, name: &str) {
    let mut last = writer_syscalls(pid, name);
    let mut since = Instant::now();
    assert!(
        wait_until(Duration::from_secs(20), || {
            let now = writer_syscalls(pid, name);
            if now != last {
                last = now;
                since = Instant::now();
            }
            last.is_some() && since.elapsed() >= Duration::from_millis(300)
        }),
        "the log writer never went quiet"
    );
}
