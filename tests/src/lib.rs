//! Helpers for the integration tests, which run the real binaries (`wrapperd`, `fftop`,
//! `fake-ffmpeg`) with real ffmpeg, processes, signals, sockets and files.
//!
//! Each test gets its own temporary work directory ([`Wd`]). Waiting is always for a condition
//! with a deadline ([`wait_until`]), never a bare sleep.
//!
//! # Layout
//! - this file: [`Wd`] (a work directory per test), starting wrapperd, waiting on conditions,
//!   ffprobe checks, and the variables' list from wrapperd's own table.
//! - [`events`]: an event-stream client, a webhook receiver and an ffmpeg whose health flips
//!   (SPEC §11).
//! - [`http`]: raw HTTP/1.1 requests, below the API client (also used by `ffw-bench`).
//! - [`hung_source`]: a raw-video source that hangs with its connection open (SPEC §9).
//! - [`procfs`]: what `/proc` says about a process (alive, children, RSS, descriptors, CPU).
//! - [`tmux`]: a private tmux server, for driving fftop as a user would.

pub mod events;
pub mod http;
pub mod hung_source;
pub mod procfs;
pub mod serve;
pub mod tmux;

pub use procfs::{children_of, fd_count, proc_status, process_gone, rss_kb};

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use shared::client::{Answer, Client, Target};

/// `target/debug` (or release), where the workspace's binaries are.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test>-<hash> → target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// A workspace binary; panics with a clear message when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests (scripts/test does)",
        p.display()
    );
    p
}

/// Polls `f` until it is true or `timeout` passes; returns whether it became true.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary directory holding one work directory (`<tmp>/wd`) and room for test files.
pub struct Wd {
    pub tmp: tempfile::TempDir,
    pub path: PathBuf,
}

impl Default for Wd {
    fn default() -> Self {
        Self::new()
    }
}

impl Wd {
    pub fn new() -> Wd {
        let tmp = tempfile::Builder::new()
            .prefix("ffw-test-")
            .tempdir()
            .expect("tempdir");
        let path = tmp.path().join("wd");
        Wd { tmp, path }
    }

    /// A path beside the work directory, for outputs and scripts.
    pub fn file(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A `wrapperd` command for this work directory, fast settings, no inherited config.
    pub fn wrapperd(&self) -> WrapperCmd {
        let mut cmd = Command::new(bin("wrapperd"));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if config_vars().any(|v| v == k) {
                cmd.env_remove(&k);
            }
        }
        cmd.env("WORKDIR", &self.path);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        WrapperCmd {
            cmd,
            workdir: self.path.clone(),
        }
    }

    pub fn status_file(&self, key: &str) -> Option<String> {
        fs::read_to_string(self.path.join("status").join(key)).ok()
    }

    /// The API's TCP address from `status/HTTP_ADDR`, waiting for it: it is written just after
    /// the listeners are bound, so the socket may answer a moment before it exists.
    pub fn http_addr(&self) -> std::net::SocketAddr {
        let mut addr = None;
        assert!(
            wait_until(Duration::from_secs(10), || {
                addr = self
                    .status_file("HTTP_ADDR")
                    .and_then(|a| a.trim().parse().ok());
                addr.is_some()
            }),
            "no TCP address in status/HTTP_ADDR"
        );
        addr.unwrap()
    }

    pub fn status_json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.status_file("status.json")?).ok()
    }

    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.path.join("logs").join(name)).unwrap_or_default()
    }

    /// Writes an executable shell script beside the work directory. It is written by a child
    /// process: if this (multi-threaded) test process held the write descriptor, another test's
    /// fork could inherit it for a moment and make exec fail with "Text file busy".
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::io::Write;
        let p = self.file(name);
        let mut c = Command::new("sh")
            .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
            .arg(&p)
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh");
        c.stdin
            .take()
            .unwrap()
            .write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
            .unwrap();
        assert!(c.wait().unwrap().success());
        p
    }
}

/// Every variable of SPEC §2, from wrapperd's own table (`wrapperd::config::VARS`, which also
/// makes `--help`, the checks and the status files), so the tests cover each one the table has:
/// they are cleared from the tests' environment so a developer's own settings never leak into a
/// test, and each must have its `status/<VAR>` file and its line in `--help`.
pub fn config_vars() -> impl Iterator<Item = &'static str> {
    wrapperd::config::VARS.iter().map(|v| v.name)
}

/// A `wrapperd` about to start.
pub struct WrapperCmd {
    pub cmd: Command,
    pub workdir: PathBuf,
}

impl WrapperCmd {
    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        for (k, v) in vars {
            self.cmd.env(k, v);
        }
        self
    }

    /// Runs `program` (e.g. a test script) as ffmpeg, with one placeholder argument.
    pub fn child(self, program: &Path) -> Self {
        self.env("FFMPEG_BIN", program).args(["-i", "placeholder"])
    }

    /// Runs the scripted fake ffmpeg instead of ffmpeg.
    pub fn fake(self) -> Self {
        self.env("FFMPEG_BIN", bin("fake-ffmpeg"))
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.cmd.args(args);
        self
    }

    pub fn spawn(mut self) -> Daemon {
        let child = self.cmd.spawn().expect("spawn wrapperd");
        Daemon {
            child: Some(child),
            workdir: self.workdir,
        }
    }

    /// Runs to the end (with a generous timeout) and returns its output.
    pub fn output(self, timeout: Duration) -> Output {
        self.spawn().wait_output(timeout)
    }
}

/// A running `wrapperd`. Killed (with its process group's ffmpeg gone by PDEATHSIG) on drop.
pub struct Daemon {
    child: Option<Child>,
    pub workdir: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill");
    }

    /// ffmpeg's pid once wrapperd has written it.
    pub fn ffmpeg_pid(&self) -> i32 {
        let f = self.workdir.join("status/FFMPEG_PID");
        let mut pid = None;
        assert!(
            wait_until(Duration::from_secs(10), || {
                pid = fs::read_to_string(&f)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                pid.is_some()
            }),
            "no status/FFMPEG_PID"
        );
        pid.unwrap()
    }

    /// The API client over the work directory's socket.
    pub fn client(&self) -> Client {
        Client::new(
            Target::Unix(self.workdir.join("api.sock")),
            None,
            Duration::from_secs(5),
        )
        .expect("client")
    }

    /// `GET path` over the socket.
    pub fn get(&self, path: &str) -> Answer {
        block_on(self.client().get(path)).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Waits until the API answers on the socket.
    pub fn wait_api(&self) {
        let c = self.client();
        assert!(
            wait_until(Duration::from_secs(10), || block_on(c.get("/get_pid"))
                .is_ok()),
            "API did not come up"
        );
    }

    /// `/status` as JSON, via the API.
    pub fn status(&self) -> shared::api::Status {
        block_on(self.client().status()).expect("status")
    }

    /// Waits for exit; panics after `timeout` (killing it).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("wrapperd did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for exit and collects stdout/stderr.
    pub fn wait_output(mut self, timeout: Duration) -> Output {
        let child = self.child.take().expect("running");
        let (tx, rx) = std::sync::mpsc::channel();
        let pid = child.id() as i32;
        let out = std::thread::spawn(move || {
            let o = child.wait_with_output();
            let _ = tx.send(());
            o
        });
        if rx.recv_timeout(timeout).is_err() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("wrapperd did not exit within {timeout:?}");
        }
        out.join().unwrap().expect("wait_with_output")
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a future to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A finished process's stderr, as text (for assertion messages).
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `ffprobe` for the duration of a media file; `None` if it cannot be read.
pub fn probe_duration(file: &Path) -> Option<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Decodes a whole file with ffmpeg; true if it decodes without error.
pub fn decodes_cleanly(file: &Path) -> bool {
    Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .map(|o| o.status.success() && o.stderr.is_empty())
        .unwrap_or(false)
}

/// Every line of `logs/NAME`, `NAME.N` … `NAME.1`, `NAME`, oldest file first.
pub fn rotated_lines(logs: &Path, name: &str) -> Vec<String> {
    let mut files: Vec<(usize, PathBuf)> = Vec::new();
    for e in fs::read_dir(logs).into_iter().flatten().flatten() {
        let f = e.file_name().to_string_lossy().to_string();
        if f == name {
            files.push((0, e.path()));
        } else if let Some(n) = f
            .strip_prefix(&format!("{name}."))
            .and_then(|n| n.parse().ok())
        {
            files.push((n, e.path()));
        }
    }
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files
        .iter()
        .flat_map(|(_, p)| {
            fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}
