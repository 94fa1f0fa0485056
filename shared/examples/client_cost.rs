//! What one API request of [`shared::client::Client`] costs in CPU: starts one real wrapperd
//! with the fake ffmpeg, sends it `N` sequential `GET /status` (decoded, as fftop does) and
//! prints this process's own CPU time (user + system, `getrusage`) per request.
//!
//! fftop polls every target every second (`--serve` polls 100 of them), so the client's own
//! cost per request is what its CPU use scales with; wrapperd's side is not counted here.
//!
//! Run from the workspace root (it finds `wrapperd` and `fake-ffmpeg` beside itself, in
//! `target/release`):
//!
//! ```sh
//! cargo build --release --bins --examples
//! target/release/examples/client_cost [N] [unix|tcp] [current|multi]
//! ```
//!
//! Defaults: 5000 requests over the Unix socket on a current-thread runtime (fftop `--serve`'s;
//! `multi` is the interactive fftop's two workers). CPU figures vary with the machine's load:
//! compare runs taken back to back, and take the median of a few.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shared::client::{Client, Target};

/// This process's user and system CPU time so far.
fn cpu() -> (Duration, Duration) {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is always valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// The workspace's `target/release` (this example runs from there).
fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/release/examples/client_cost
    exe.parent()
        .and_then(Path::parent)
        .expect("target/release")
        .to_path_buf()
}

/// A wrapperd running the fake ffmpeg at 25 fps in `workdir`, encoding checks off for the run.
fn start_wrapperd(workdir: &Path, tcp: bool) -> Child {
    let rel = release_dir();
    let mut cmd = Command::new(rel.join("wrapperd"));
    cmd.env("WORKDIR", workdir)
        .env("FFMPEG_BIN", rel.join("fake-ffmpeg"))
        .env("ENCODING_CHECK_START_DELAY", "3600")
        .args(["run", "fps=25"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if tcp {
        cmd.env("HTTP_PORT", "0");
    }
    cmd.spawn()
        .expect("spawn target/release/wrapperd (cargo build --release --bins)")
}

/// The target once wrapperd has said where its API is.
fn wait_target(workdir: &Path, tcp: bool) -> Target {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let addr = std::fs::read_to_string(workdir.join("status/HTTP_ADDR")).unwrap_or_default();
        let sock = workdir.join("api.sock");
        if tcp && !addr.trim().is_empty() {
            return Target::Tcp(format!("http://{}", addr.trim()));
        }
        if !tcp && sock.exists() {
            return Target::Unix(sock);
        }
        assert!(Instant::now() < deadline, "wrapperd's API did not appear");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` sequential `GET /status` after a warm-up: user and system CPU and wall time per
/// request, in microseconds.
async fn measure(client: Client, n: u32) -> (f64, f64, f64) {
    // Until it answers, then a warm-up (connection, allocator, caches).
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.status().await.is_err() {
        assert!(Instant::now() < deadline, "wrapperd does not answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..200 {
        client.status().await.expect("GET /status");
    }
    let (u0, s0) = cpu();
    let t0 = Instant::now();
    for _ in 0..n {
        client.status().await.expect("GET /status");
    }
    let wall = t0.elapsed();
    let (u1, s1) = cpu();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
    (per(u1 - u0), per(s1 - s0), per(wall))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().map_or(5000, |s| s.parse().expect("N"));
    let tcp = args.next().is_some_and(|s| s == "tcp");
    let multi = args.next().is_some_and(|s| s == "multi");
    let workdir = std::env::temp_dir().join(format!("client_cost.{}", std::process::id()));
    std::fs::create_dir_all(&workdir).expect("work directory");
    let mut wd = start_wrapperd(&workdir, tcp);
    let target = wait_target(&workdir, tcp);
    let rt = if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("runtime");
    let client = Client::new(target, None, Duration::from_secs(5)).expect("client");
    // In a task, as fftop's pollers are (on a worker thread of a multi-thread runtime).
    let (user, sys, wall) = rt
        .block_on(rt.spawn(measure(client, n)))
        .expect("the measuring task");
    println!(
        "{n} x GET /status over {} ({} runtime): {:.1} us CPU per request \
         ({user:.1} user + {sys:.1} system), {wall:.1} us wall",
        if tcp { "TCP" } else { "the Unix socket" },
        if multi {
            "multi-thread"
        } else {
            "current-thread"
        },
        user + sys,
    );
    let _ = wd.kill();
    let _ = wd.wait();
    let _ = std::fs::remove_dir_all(&workdir);
}
