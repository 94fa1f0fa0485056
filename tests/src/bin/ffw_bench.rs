//! `ffw-bench`: the benchmark suite of issue #6 — what wrapperd and fftop cost, side by side with
//! bare ffmpeg. Run it through `bench/run`, which builds the release binaries first.
//!
//! ```text
//! ffw-bench [--quick] [--only 1,4,6] [--bin-dir DIR] [--out BENCHMARKS.md] [--notes bench/notes.md]
//! ```
//!
//! Every comparison runs both sides in the same run, in alternation (the first side of a pair
//! alternates too), and reports medians, because the machine is shared and noisy. The table goes
//! to stdout and, with the machine's description and how each figure was taken, to `--out`.
//!
//! The same binary is also the scripted child some measurements need (`FFMPEG_BIN` = this binary,
//! `FFW_BENCH_CHILD` = the mode), because they need timestamps taken inside the child:
//! - `stamp`: writes `CLOCK_MONOTONIC` ns at its first instruction to `$FFW_BENCH_STAMP`, then
//!   waits (start-up, measurement 5).
//! - `fill`: writes `$FFW_FILL_BLOCKS` progress blocks and `$FFW_FILL_LINES` typical ffmpeg stats
//!   lines as fast as it can, then goes on as a 25 fps encode (measurements 3 and 6).
//! - `stall` / `fail`: a healthy 25 fps encode for `$FFW_HEALTHY_S` s, then silence (stall) or
//!   5 fps at 0.2x (fail); writes `<reference ns> <SIGINT ns>` to `$FFW_BENCH_STAMP`, where the
//!   reference is the last output (stall) or the first failing block (fail) (measurement 7).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------------
// Small helpers: clocks, /proc, statistics.

fn mono_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

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
fn cpu_secs(pid: u32) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / clk_tck())
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(pid: u32, key: &str) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile.
fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// `label: x, y, z (median m)`, every figure with `digits` decimals.
fn median_line(label: &str, v: &[f64], digits: usize) -> String {
    format!(
        "{label}: {} (median {:.digits$})",
        fmt_list(v, digits),
        median(v)
    )
}

fn fmt_list(v: &[f64], digits: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.digits$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sleep(s: f64) {
    std::thread::sleep(Duration::from_secs_f64(s));
}

fn wait_for(timeout: f64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs_f64(timeout);
    while Instant::now() < end {
        if f() {
            return true;
        }
        sleep(0.01);
    }
    f()
}

fn cmd_out(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// HTTP: a minimal HTTP/1.1 client, blocking (one request per connection) and async (keep-alive,
// for the load generator). wrapperd answers with Content-Length; chunked bodies are handled too.

#[derive(Debug, Clone)]
enum Target {
    Unix(PathBuf),
    Tcp(String),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Unix(_) => "socket",
            Target::Tcp(_) => "TCP",
        }
    }
}

fn parse_head(head: &str) -> (u16, Option<usize>, bool) {
    let mut lines = head.split("\r\n");
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (mut len, mut chunked) = (None, false);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                len = v.trim().parse().ok();
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    (code, len, chunked)
}

/// One GET on a new connection (`Connection: close`); the status and the body.
fn get(target: &Target, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    match target {
        Target::Unix(p) => {
            let mut s = StdUnixStream::connect(p)?;
            s.write_all(req.as_bytes())?;
            s.read_to_end(&mut raw)?;
        }
        Target::Tcp(a) => {
            let mut s = std::net::TcpStream::connect(a)?;
            s.write_all(req.as_bytes())?;
            s.read_to_end(&mut raw)?;
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    let (code, _, chunked) = parse_head(&String::from_utf8_lossy(&raw[..split]));
    let body = raw.split_off(split + 4);
    if !chunked {
        return Ok((code, body));
    }
    let mut out = Vec::new();
    let mut rest = &body[..];
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = &rest[(start + size + 2).min(rest.len())..];
    }
    Ok((code, out))
}

fn get_json(target: &Target, path: &str) -> Option<serde_json::Value> {
    let (code, body) = get(target, path).ok()?;
    (code == 200)
        .then(|| serde_json::from_slice(&body).ok())
        .flatten()
}

/// One GET on a keep-alive connection; returns the status and the body length.
async fn get_keepalive<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut tokio::io::BufReader<S>,
    path: &str,
) -> std::io::Result<(u16, usize)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    s.get_mut().write_all(req.as_bytes()).await?;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let (code, len, chunked) = parse_head(&head);
    let mut total = 0;
    if chunked {
        loop {
            let mut line = String::new();
            s.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            skip_n(s, size + 2).await?;
            total += size;
            if size == 0 {
                break;
            }
        }
    } else {
        let n = len.unwrap_or(0);
        skip_n(s, n).await?;
        total = n;
    }
    Ok((code, total))
}

/// Reads and drops `n` bytes.
async fn skip_n<R: AsyncRead + Unpin>(s: &mut R, mut n: usize) -> std::io::Result<()> {
    let mut sink = [0u8; 16 * 1024];
    while n > 0 {
        let k = s.read(&mut sink[..n.min(16 * 1024)]).await?;
        if k == 0 {
            return Err(std::io::Error::other("short body"));
        }
        n -= k;
    }
    Ok(())
}

/// Open-loop load: `rate` requests/s of `path` for `secs`, over `conns` keep-alive connections.
/// A request's latency runs from the moment it is issued (queued for a free connection) until its
/// whole body is read, so a slow answer delays the ones behind it and that shows.
struct Load {
    lat_ms: Vec<f64>,
    errors: u64,
    achieved_rate: f64,
    bytes: usize,
}

async fn load(target: Target, path: String, rate: f64, secs: f64, conns: usize) -> Load {
    let n = (rate * secs).round() as usize;
    let (tx, rx) = tokio::sync::mpsc::channel::<tokio::time::Instant>(n.max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..conns {
        let (rx, target, path) = (rx.clone(), target.clone(), path.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut errors, mut bytes) = (0u64, 0usize);
            match target {
                Target::Unix(p) => match tokio::net::UnixStream::connect(&p).await {
                    Ok(s) => {
                        let mut s = tokio::io::BufReader::new(s);
                        worker(&mut s, &rx, &path, &mut lat, &mut errors, &mut bytes).await
                    }
                    Err(_) => errors += 1,
                },
                Target::Tcp(a) => match tokio::net::TcpStream::connect(&a).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        let mut s = tokio::io::BufReader::new(s);
                        worker(&mut s, &rx, &path, &mut lat, &mut errors, &mut bytes).await
                    }
                    Err(_) => errors += 1,
                },
            }
            (lat, errors, bytes)
        }));
    }
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..n {
        tick.tick().await;
        if tx.send(tokio::time::Instant::now()).await.is_err() {
            break;
        }
    }
    let issued = start.elapsed().as_secs_f64();
    drop(tx);
    let mut out = Load {
        lat_ms: Vec::new(),
        errors: 0,
        achieved_rate: n as f64 / issued.max(1e-9),
        bytes: 0,
    };
    for w in workers {
        if let Ok((l, e, b)) = w.await {
            out.lat_ms.extend(l);
            out.errors += e;
            out.bytes = out.bytes.max(b);
        }
    }
    out
}

async fn worker<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut tokio::io::BufReader<S>,
    rx: &tokio::sync::Mutex<tokio::sync::mpsc::Receiver<tokio::time::Instant>>,
    path: &str,
    lat: &mut Vec<f64>,
    errors: &mut u64,
    bytes: &mut usize,
) {
    loop {
        let Some(issued) = rx.lock().await.recv().await else {
            return;
        };
        match get_keepalive(s, path).await {
            Ok((200, n)) => {
                lat.push(issued.elapsed().as_secs_f64() * 1000.0);
                *bytes = n;
            }
            _ => {
                *errors += 1;
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes.

struct Bins {
    wrapperd: PathBuf,
    fftop: PathBuf,
    fake: PathBuf,
    me: PathBuf,
}

/// A running wrapperd (stopped with SIGTERM, then SIGKILL, when dropped).
struct Daemon {
    child: Child,
    wd: PathBuf,
}

impl Daemon {
    fn spawn(bins: &Bins, wd: &Path, env: &[(&str, String)], args: &[&str]) -> Daemon {
        let _ = fs::remove_dir_all(wd);
        fs::create_dir_all(wd).expect("work directory");
        let mut cmd = Command::new(&bins.wrapperd);
        cmd.args(args)
            .env("WORKDIR", wd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                fs::File::create(wd.join("wrapperd.stderr"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            );
        for (k, v) in env {
            cmd.env(k, v);
        }
        die_with_parent(&mut cmd);
        Daemon {
            child: cmd.spawn().expect("spawn wrapperd"),
            wd: wd.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn sock(&self) -> Target {
        Target::Unix(self.wd.join("api.sock"))
    }

    fn tcp(&self) -> Option<Target> {
        let a = fs::read_to_string(self.wd.join("status/HTTP_ADDR")).ok()?;
        let a = a.trim();
        (!a.is_empty()).then(|| Target::Tcp(a.to_string()))
    }

    fn wait_api(&self, timeout: f64) -> bool {
        let t = self.sock();
        wait_for(timeout, || matches!(get(&t, "/get_pid"), Ok((200, _))))
    }

    fn status(&self) -> Option<serde_json::Value> {
        get_json(&self.sock(), "/status")
    }

    fn term(&self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }

    /// Waits for the exit; kills after `timeout` s.
    fn wait(&mut self, timeout: f64) {
        let end = Instant::now() + Duration::from_secs_f64(timeout);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(0.005);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stop(&mut self) {
        self.term();
        self.wait(15.0);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn stop_all(ds: &mut Vec<Daemon>) {
    for d in ds.iter() {
        d.term();
    }
    for d in ds.iter_mut() {
        d.wait(15.0);
    }
    ds.clear();
}

/// The bench's children die with it (SIGTERM), so an interrupted run leaves nothing behind.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl with integer arguments only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
            Ok(())
        });
    }
}

fn wall(mut cmd: Command) -> f64 {
    let t = Instant::now();
    let st = cmd.status().expect("spawn");
    let w = t.elapsed().as_secs_f64();
    let _ = st;
    w
}

// ---------------------------------------------------------------------------------------------
// Results.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Met,
    Missed,
    Info,
}

struct Row {
    id: String,
    what: String,
    goal: String,
    figure: String,
    /// figure / goal, where that means something.
    ratio: Option<f64>,
    verdict: Verdict,
}

struct Section {
    id: u32,
    title: String,
    how: String,
    details: Vec<String>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    sections: Vec<Section>,
}

impl Report {
    fn row(&mut self, id: &str, what: &str, goal: &str, figure: String, ratio: Option<f64>) {
        let verdict = match ratio {
            Some(r) if r.is_finite() && r <= 1.0 => Verdict::Met,
            Some(_) => Verdict::Missed,
            None => Verdict::Info,
        };
        self.push_row(id, what, goal, figure, ratio, verdict);
    }

    fn push_row(
        &mut self,
        id: &str,
        what: &str,
        goal: &str,
        figure: String,
        ratio: Option<f64>,
        verdict: Verdict,
    ) {
        let r = Row {
            id: id.into(),
            what: what.into(),
            goal: goal.into(),
            figure,
            ratio,
            verdict,
        };
        println!("{}", fmt_row_plain(&r));
        self.rows.push(r);
    }

    fn section(&mut self, id: u32, title: &str, how: &str, details: Vec<String>) {
        self.sections.push(Section {
            id,
            title: title.into(),
            how: how.into(),
            details,
        });
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "met",
        Verdict::Missed => "MISSED",
        Verdict::Info => "-",
    }
}

fn fmt_row_plain(r: &Row) -> String {
    format!(
        "{:<4} {:<46} {:<22} {:<28} {:>7} {}",
        r.id,
        r.what,
        r.goal,
        r.figure,
        r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
        verdict_word(r.verdict)
    )
}

// ---------------------------------------------------------------------------------------------
// The measurements.

struct Ctx {
    bins: Bins,
    quick: bool,
    tmp: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Ctx {
    fn pairs(&self, full: usize, quick: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.tmp.join(name)
    }

    fn me_env(&self, mode: &str) -> Vec<(&'static str, String)> {
        vec![
            ("FFMPEG_BIN", self.bins.me.display().to_string()),
            ("FFW_BENCH_CHILD", mode.to_string()),
        ]
    }
}

/// 1. A CPU-bound encode, bare and under wrapperd with everything on.
fn m1_overhead(c: &Ctx, rep: &mut Report) {
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
fn m2_realtime(c: &Ctx, rep: &mut Report) {
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
    let hwm = status_bytes(pid, "VmHWM:").unwrap_or(f64::NAN);
    let rss = status_bytes(pid, "VmRSS:").unwrap_or(f64::NAN);
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

/// Sums the text held in a `/last_*?count=0` body: each line minus `<YYYY-MM-DD HH:MM:SS> `.
fn text_bytes(body: &[u8]) -> (usize, usize) {
    let mut lines = 0;
    let mut bytes = 0;
    for l in body.split(|&b| b == b'\n') {
        if l.len() >= 22 && l[0] == b'<' {
            lines += 1;
            bytes += l.len() - 22;
        }
    }
    (lines, bytes)
}

/// 3 and 6: both rings full, then the API under load.
fn m3_m6_rings_and_api(c: &Ctx, rep: &mut Report, do3: bool, do6: bool) {
    let wd = c.dir("m3");
    let mut env = c.me_env("fill");
    env.push(("HTTP_PORT", "0".into()));
    env.push(("FFW_FILL_LINES", "100000".into()));
    env.push(("FFW_FILL_BLOCKS", "100000".into()));
    env.push(("ENCODING_DISABLE_CHECK", "1".into()));
    let mut d = Daemon::spawn(&c.bins, &wd, &env, &["fill"]);
    let pid = d.pid();
    if !d.wait_api(10.0) {
        eprintln!("  3: wrapperd did not answer");
        return;
    }
    let t = Instant::now();
    let full = wait_for(120.0, || {
        d.status().is_some_and(|s| {
            s["counters"]["log_lines"].as_u64().unwrap_or(0) >= 100_000
                && s["counters"]["progress_blocks"].as_u64().unwrap_or(0) >= 100_000
        })
    });
    let fill_s = t.elapsed().as_secs_f64();
    // Past the 10 s rate window, which held every block of the burst.
    let hwm_fill = status_bytes(pid, "VmHWM:").unwrap_or(f64::NAN);
    sleep(11.0);
    let rss = status_bytes(pid, "VmRSS:").unwrap_or(f64::NAN);
    let hwm = status_bytes(pid, "VmHWM:").unwrap_or(f64::NAN);
    if do3 {
        let sock = d.sock();
        let lines = get(&sock, "/last_stdout?count=0")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let blocks = get(&sock, "/last_progress?count=0")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let (nl, bl) = text_bytes(&lines);
        let (nb, bb) = text_bytes(&blocks);
        let text = (bl + bb) as f64;
        let goal = 1.25 * text + 10.0 * MIB;
        let after = status_bytes(pid, "VmRSS:").unwrap_or(f64::NAN);
        rep.row(
            "3",
            "RSS with both rings full (200 000 entries)",
            &format!("<= {:.1} MiB", goal / MIB),
            format!("{:.1} MiB ({:.2} x text)", rss / MIB, rss / text),
            Some(rss / goal),
        );
        rep.section(
            3,
            "Memory with full rings",
            "wrapperd at the defaults (100 000 / 100 000) runs a child (this binary, mode `fill`) \
             that writes 100 000 progress blocks (ffmpeg 5's keys, about 210 bytes as one line) \
             and 100 000 stats lines (`frame=  1234 fps= 25 q=28.0 size=  …`, about 95 bytes, \
             one in 25 a typical `[libx264 @ 0x…]` line instead) as fast as it can, then goes on \
             as a 25 fps encode. Once `/status` counts 100 000 of each, and 11 s more (the 10 s \
             rate window held every block of the burst; a real encode writes 2 blocks a second), \
             RSS is read (VmRSS) before any large API answer is formatted. The text held is the bodies of \
             `/last_stdout?count=0` and `/last_progress?count=0` minus the 22-byte \
             `<YYYY-MM-DD HH:MM:SS> ` of each line. Goal: RSS <= 1.25 x text + 10 MiB.",
            vec![
                format!(
                    "filled in {fill_s:.1} s{}",
                    if full { "" } else { " (NOT full)" }
                ),
                format!(
                    "text held: {nl} lines {:.1} MiB + {nb} blocks {:.1} MiB = {:.1} MiB",
                    bl as f64 / MIB,
                    bb as f64 / MIB,
                    text / MIB
                ),
                format!(
                    "VmRSS {:.1} MiB (VmHWM {:.1} MiB, {:.1} MiB right after the burst); goal \
                     {:.1} MiB; after formatting the two answers VmRSS is {:.1} MiB",
                    rss / MIB,
                    hwm / MIB,
                    hwm_fill / MIB,
                    goal / MIB,
                    after / MIB
                ),
                format!(
                    "overhead beyond the text: {:.1} MiB",
                    (rss - text) / MIB
                ),
            ],
        );
    }
    if do6 {
        m6_api(c, rep, &d);
    }
    d.stop();
}

/// 6. API latency at 1000 requests/s, over the socket and TCP, while an encode runs.
fn m6_api(c: &Ctx, rep: &mut Report, d: &Daemon) {
    let secs = if c.quick { 3.0 } else { 10.0 };
    let mut targets = vec![d.sock()];
    if let Some(t) = d.tcp() {
        targets.push(t);
    }
    let mut details = Vec::new();
    let mut p99s = Vec::new();
    for t in &targets {
        let _ =
            c.rt.block_on(load(t.clone(), "/status".into(), 1000.0, 0.3, 4));
        let l =
            c.rt.block_on(load(t.clone(), "/status".into(), 1000.0, secs, 8));
        let (p50, p99) = (percentile(&l.lat_ms, 50.0), percentile(&l.lat_ms, 99.0));
        p99s.push(p99);
        rep.row(
            &format!(
                "6{}",
                if matches!(t, Target::Unix(_)) {
                    "a"
                } else {
                    "b"
                }
            ),
            &format!("/status at 1000 req/s over {}: p50 / p99", t.name()),
            "p99 <= 1 ms",
            format!("{p50:.2} / {p99:.2} ms"),
            Some(p99 / 1.0),
        );
        details.push(format!(
            "/status over {}: {} requests at {:.0}/s, {} errors, p50 {p50:.3} ms, p90 {:.3} \
             ms, p99 {p99:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} bytes each)",
            t.name(),
            l.lat_ms.len(),
            l.achieved_rate,
            l.errors,
            percentile(&l.lat_ms, 90.0),
            percentile(&l.lat_ms, 99.9),
            percentile(&l.lat_ms, 100.0),
            l.bytes
        ));
    }
    // The big answer: 100 000 lines, a few times a second, with /status at 1000/s alongside.
    let big_secs = if c.quick { 2.0 } else { 5.0 };
    for t in &targets {
        let (bg, big) = c.rt.block_on(async {
            let bg = tokio::spawn(load(t.clone(), "/status".into(), 1000.0, big_secs, 8));
            let big = load(t.clone(), "/last_stdout?count=0".into(), 4.0, big_secs, 2).await;
            (bg.await.ok(), big)
        });
        let (p50, p99) = (
            percentile(&big.lat_ms, 50.0),
            percentile(&big.lat_ms, 100.0),
        );
        rep.row(
            &format!(
                "6{}",
                if matches!(t, Target::Unix(_)) {
                    "c"
                } else {
                    "d"
                }
            ),
            &format!(
                "/last_stdout?count=0 (100k lines) over {}: p50 / max",
                t.name()
            ),
            "<= 100 ms",
            format!("{p50:.1} / {p99:.1} ms"),
            Some(p99 / 100.0),
        );
        details.push(format!(
            "/last_stdout?count=0 over {}: {} requests at 4/s, {} errors, {:.1} MiB each, p50 \
             {p50:.1} ms, max {p99:.1} ms; /status alongside at 1000/s: p50 {:.3} ms, p99 \
             {:.3} ms",
            t.name(),
            big.lat_ms.len(),
            big.errors,
            big.bytes as f64 / MIB,
            bg.as_ref()
                .map(|l| percentile(&l.lat_ms, 50.0))
                .unwrap_or(f64::NAN),
            bg.as_ref()
                .map(|l| percentile(&l.lat_ms, 99.0))
                .unwrap_or(f64::NAN),
        ));
    }
    rep.section(
        6,
        "API latency",
        &format!(
            "The daemon of measurement 3 (100 000 lines and 100 000 blocks held, a 25 fps \
             encode going on). An open-loop load generator (tokio, in this binary) issues \
             `GET /status` at 1000 requests/s for {secs:.0} s over 8 keep-alive connections, \
             first over api.sock, then over TCP (127.0.0.1); a request's latency runs from \
             when it is issued (queued for a free connection) until its whole body is read, so \
             a slow answer also delays the requests queued behind it. Then \
             `/last_stdout?count=0` (the 100 000 lines, about 11.5 MiB of text) at 4 requests/s \
             for {big_secs:.0} s while `/status` goes on at 1000/s. The generator shares the 2 \
             cores with wrapperd and the encode."
        ),
        details,
    );
}

/// 4. Log throughput: 2 000 000 lines under wrapperd with file logs vs `| cat > file`.
fn m4_throughput(c: &Ctx, rep: &mut Report) {
    let n: u64 = 2_000_000;
    let pairs = c.pairs(5, 3);
    let script = ["lines", "n=2000000", "to=stderr", "nostats"];
    let (mut wr, mut ct, mut ratios, mut counts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let wd = c.dir("m4");
    let catfile = c.dir("m4-cat.log");
    for i in 0..pairs {
        let run_wrapped = || {
            let _ = fs::remove_dir_all(&wd);
            let mut cmd = Command::new(&c.bins.wrapperd);
            cmd.args(script)
                .env("WORKDIR", &wd)
                .env("FFMPEG_BIN", &c.bins.fake)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
            wall(cmd)
        };
        let run_cat = || {
            let _ = fs::remove_file(&catfile);
            let t = Instant::now();
            let out = fs::File::create(&catfile).expect("cat file");
            let mut cat = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(out)
                .spawn()
                .expect("cat");
            let stdin = cat.stdin.take().expect("cat stdin");
            let mut fake = Command::new(&c.bins.fake)
                .args(script)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::os::fd::OwnedFd::from(stdin)))
                .spawn()
                .expect("fake");
            let _ = fake.wait();
            let _ = cat.wait();
            t.elapsed().as_secs_f64()
        };
        let (w, k) = if i % 2 == 0 {
            let w = run_wrapped();
            (w, run_cat())
        } else {
            let k = run_cat();
            (run_wrapped(), k)
        };
        let count = count_log_lines(&wd.join("logs"));
        eprintln!(
            "  4: pair {}: wrapperd {w:.3} s ({count} lines in the files), cat {k:.3} s",
            i + 1
        );
        wr.push(w);
        ct.push(k);
        ratios.push(w / k);
        counts.push(count);
    }
    let cat_lines = fs::read(&catfile)
        .map(|b| b.iter().filter(|&&x| x == b'\n').count())
        .unwrap_or(0);
    let r = median(&ratios);
    let rate = n as f64 / median(&wr);
    let all = counts.iter().all(|&x| x == n);
    rep.row(
        "4a",
        "2M lines: wrapperd wall / `| cat > file` wall",
        "<= 2",
        format!("{r:.2} (median of {pairs} pairs)"),
        Some(r / 2.0),
    );
    rep.row(
        "4b",
        "2M lines: lines/s through wrapperd",
        ">= 1 000 000/s",
        format!("{:.2} M lines/s", rate / 1e6),
        Some(1e6 / rate),
    );
    rep.push_row(
        "4c",
        "2M lines: every line in ffmpeg.log*",
        "2 000 000 each run",
        format!(
            "{} of {pairs} runs",
            counts.iter().filter(|&&x| x == n).count()
        ),
        None,
        if all { Verdict::Met } else { Verdict::Missed },
    );
    rep.section(
        4,
        "Log throughput",
        &format!(
            "The fake ffmpeg (`fake-ffmpeg {}`) prints `line 1` … `line 2000000` to stderr as \
             fast as it can. Under wrapperd with file logging on (defaults: days rotation), wall \
             time from spawning wrapperd to its exit (so everything is in the files); against \
             the same child with its stderr piped through `cat` into a file on the same disk, \
             wall time until both have exited. Pairs alternate. Every run of wrapperd is \
             checked: the lines `<…> line N` across `logs/ffmpeg.log*` are counted.",
            script.join(" ")
        ),
        vec![
            median_line("wrapperd wall s", &wr, 3),
            median_line("cat wall s", &ct, 3),
            format!("ratios: {}", fmt_list(&ratios, 2)),
            format!(
                "lines in ffmpeg.log* per run: {:?}; in the cat file: {cat_lines}",
                counts
            ),
        ],
    );
}

fn count_log_lines(logs: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(logs) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("ffmpeg.log") {
            continue;
        }
        if let Ok(f) = fs::File::open(e.path()) {
            for l in BufReader::with_capacity(1 << 20, f)
                .split(b'\n')
                .map_while(Result::ok)
            {
                if l.first() == Some(&b'<') && l.windows(6).any(|w| w == b" line ") {
                    n += 1;
                }
            }
        }
    }
    n
}

/// 5. Start-up: wrapperd's start → ffmpeg's exec, and → api.sock answering.
fn m5_startup(c: &Ctx, rep: &mut Report) {
    let pairs = c.pairs(15, 7);
    let stamp = c.dir("m5-stamp");
    let wd = c.dir("m5");
    let read_stamp = || -> Option<i64> { fs::read_to_string(&stamp).ok()?.trim().parse().ok() };
    let (mut direct, mut exec, mut api, mut diff) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let run_direct = || {
            let _ = fs::remove_file(&stamp);
            let t0 = mono_ns();
            let mut ch = Command::new(&c.bins.me)
                .env("FFW_BENCH_CHILD", "stamp")
                .env("FFW_BENCH_STAMP", &stamp)
                .env("FFW_STAMP_EXIT", "1")
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn");
            let _ = ch.wait();
            read_stamp().map(|s| (s - t0) as f64 / 1e6)
        };
        // `poll`: measure api.sock answering (polling it tightly); else only the child's exec,
        // without a poller competing for the two cores.
        let run_wrapped = |poll: bool| {
            let _ = fs::remove_file(&stamp);
            let _ = fs::remove_dir_all(&wd);
            fs::create_dir_all(&wd).ok();
            let sock = Target::Unix(wd.join("api.sock"));
            let mut cmd = Command::new(&c.bins.wrapperd);
            cmd.arg("stamp")
                .env("WORKDIR", &wd)
                .env("FFMPEG_BIN", &c.bins.me)
                .env("FFW_BENCH_CHILD", "stamp")
                .env("FFW_BENCH_STAMP", &stamp)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
            let t0 = mono_ns();
            let child = cmd.spawn().expect("spawn wrapperd");
            let mut d = Daemon {
                child,
                wd: wd.clone(),
            };
            let mut t_api = None;
            let end = Instant::now() + Duration::from_secs(5);
            while poll && Instant::now() < end {
                if let Ok((200, _)) = get(&sock, "/get_pid") {
                    t_api = Some(mono_ns());
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            wait_for(5.0, || read_stamp().is_some());
            let e = read_stamp();
            d.stop();
            (
                e.map(|s| (s - t0) as f64 / 1e6),
                t_api.map(|a| (a - t0) as f64 / 1e6),
            )
        };
        let (dd, ee, aa) = match i % 3 {
            0 => {
                let dd = run_direct();
                let ee = run_wrapped(false).0;
                (dd, ee, run_wrapped(true).1)
            }
            1 => {
                let ee = run_wrapped(false).0;
                let aa = run_wrapped(true).1;
                (run_direct(), ee, aa)
            }
            _ => {
                let aa = run_wrapped(true).1;
                let dd = run_direct();
                (dd, run_wrapped(false).0, aa)
            }
        };
        if let (Some(dd), Some(ee), Some(aa)) = (dd, ee, aa) {
            direct.push(dd);
            exec.push(ee);
            api.push(aa);
            diff.push(ee - dd);
        }
    }
    let (e, a) = (median(&diff), median(&api));
    rep.row(
        "5a",
        "start-up: wrapperd start -> ffmpeg exec",
        "<= 5 ms",
        format!("{e:.2} ms"),
        Some(e / 5.0),
    );
    rep.row(
        "5b",
        "start-up: wrapperd start -> api.sock answers",
        "<= 20 ms",
        format!("{a:.2} ms"),
        Some(a / 20.0),
    );
    rep.section(
        5,
        "Start-up",
        "`FFMPEG_BIN` is this binary in mode `stamp`, whose first instruction writes \
         CLOCK_MONOTONIC to a file. Each run: CLOCK_MONOTONIC just before spawning wrapperd \
         (fresh work directory, defaults), wait for the child's stamp. In alternation (the \
         order rotating), the same child is spawned directly from the bench, and wrapperd is \
         started again with api.sock polled (`GET /get_pid` on a new connection every 0.1 ms) \
         until it answers 200 (a separate run, so that the poller does not compete with the \
         start for the two cores). `start -> exec` is, per pair, (spawn wrapperd -> the \
         child's stamp) - (spawn the child directly -> its stamp): wrapperd's own part, with \
         the cost of one spawn and of the child's start cancelled out. `-> api.sock answers` \
         is raw, from the spawn (it includes the bench's spawn of wrapperd and one connection).",
        vec![
            median_line("spawn wrapperd -> child's stamp ms", &exec, 2),
            median_line("spawn the child directly -> its stamp ms", &direct, 2),
            format!(
                "per-pair difference ms: {} (median {e:.2})",
                fmt_list(&diff, 2)
            ),
            format!(
                "spawn -> api.sock answers ms: {} (median {a:.2})",
                fmt_list(&api, 2)
            ),
        ],
    );
}

/// 7. How late a manager stop comes after its deadline.
fn m7_reaction(c: &Ctx, rep: &mut Report) {
    let runs = c.pairs(5, 3);
    let mut details = Vec::new();
    let mut worst = Vec::new();
    for (mode, label, id) in [("stall", "stalled", "7a"), ("fail", "failing", "7b")] {
        let mut late = Vec::new();
        for i in 0..runs {
            let wd = c.dir(&format!("m7-{mode}-{i}"));
            let stamp = c.dir(&format!("m7-{mode}-{i}.stamp"));
            let _ = fs::remove_file(&stamp);
            let mut env = c.me_env(mode);
            env.extend([
                ("FFW_BENCH_STAMP", stamp.display().to_string()),
                ("FFW_HEALTHY_S", "1.5".to_string()),
                ("MANAGER_START_DELAY", "0.2".to_string()),
                ("ENCODING_CHECK_START_DELAY", "0.5".to_string()),
                ("ENCODING_MAX_STDOUT_STUCK_TIME", "2".to_string()),
                ("ENCODING_MAX_ERROR_TIME", "2".to_string()),
                ("ENCODING_RATE_WINDOW", "0".to_string()),
            ]);
            let mut d = Daemon::spawn(&c.bins, &wd, &env, &[mode]);
            let got = wait_for(20.0, || {
                fs::read_to_string(&stamp)
                    .map(|s| s.split_whitespace().count() == 2)
                    .unwrap_or(false)
            });
            d.wait(15.0);
            let reason = fs::read_to_string(wd.join("status/status.json"))
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|v| v["exit"]["reason"].as_str().map(String::from))
                .unwrap_or_default();
            if !got {
                details.push(format!("{label} run {}: no stop seen ({reason})", i + 1));
                continue;
            }
            let s = fs::read_to_string(&stamp).unwrap_or_default();
            let v: Vec<i64> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let deadline = v[0] + 2_000_000_000;
            let l = (v[1] - deadline) as f64 / 1e6;
            if !reason.contains(label) {
                details.push(format!(
                    "{label} run {}: stopped for another reason: {reason}",
                    i + 1
                ));
            }
            late.push(l);
        }
        let m = median(&late);
        worst.push(percentile(&late, 100.0));
        rep.row(
            id,
            &format!("manager: stop after the `{label}` deadline"),
            "<= 500 ms late",
            format!("{m:.1} ms (median of {})", late.len()),
            Some(m / 500.0),
        );
        details.push(format!(
            "{label}: lateness ms per run: {} (max {:.1})",
            fmt_list(&late, 1),
            percentile(&late, 100.0)
        ));
    }
    rep.section(
        7,
        "Manager reaction",
        "wrapperd runs this binary as its ffmpeg, in mode `stall` or `fail`, with \
         `MANAGER_START_DELAY=0.2 ENCODING_CHECK_START_DELAY=0.5 ENCODING_MAX_STDOUT_STUCK_TIME=2 \
         ENCODING_MAX_ERROR_TIME=2 ENCODING_RATE_WINDOW=0`. The child writes a progress block \
         and a stats line every 0.1 s of a healthy 25 fps, 1x encode for 1.5 s; then `stall` \
         goes silent (deadline: its last write + 2 s) and `fail` goes on at 5 fps, 0.2x (below \
         min fps 15 and min speed 0.85; deadline: its first failing block + 2 s). Its SIGINT \
         handler takes CLOCK_MONOTONIC when wrapperd's stop arrives. Lateness = SIGINT time - \
         deadline.",
        details,
    );
}

/// 8. Many wrapperd, each with a quiet child.
fn m8_many(c: &Ctx, rep: &mut Report) {
    let window = if c.quick { 4.0 } else { 10.0 };
    let env = [
        ("FFMPEG_BIN", c.bins.fake.display().to_string()),
        ("ENCODING_CHECK_START_DELAY", "3600".to_string()),
    ];
    let mut res: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    let mut details = Vec::new();
    for n in [1usize, 10, 100] {
        let mut ds = Vec::new();
        let t = Instant::now();
        for i in 0..n {
            let d = Daemon::spawn(&c.bins, &c.dir(&format!("m8/w{i:03}")), &env, &["silence"]);
            ds.push(d);
        }
        let ok = ds.iter().filter(|d| d.wait_api(30.0)).count();
        let up = t.elapsed().as_secs_f64();
        sleep(2.0);
        let cpu0: f64 = ds.iter().filter_map(|d| cpu_secs(d.pid())).sum();
        let t0 = Instant::now();
        sleep(window);
        let cpu1: f64 = ds.iter().filter_map(|d| cpu_secs(d.pid())).sum();
        let dt = t0.elapsed().as_secs_f64();
        let rss: f64 = ds
            .iter()
            .filter_map(|d| status_bytes(d.pid(), "VmRSS:"))
            .sum();
        let cpu = (cpu1 - cpu0) / dt * 100.0;
        res.insert(n, (rss, cpu));
        details.push(format!(
            "{n} wrapperd ({ok} answering, all up in {up:.1} s): total RSS {:.1} MiB ({:.2} MiB \
             each), CPU {cpu:.2} % of a core in total ({:.4} % each) over {dt:.1} s",
            rss / MIB,
            rss / MIB / n as f64,
            cpu / n as f64
        ));
        stop_all(&mut ds);
    }
    let (r1, c1) = res[&1];
    let (r10, c10) = res[&10];
    let (r100, c100) = res[&100];
    let per = r100 / 100.0 / MIB;
    let growth = (r100 - r10) / 90.0 / MIB;
    rep.row(
        "8a",
        "100 wrapperd, quiet child: RSS each",
        "<= 12 MiB each",
        format!("{per:.2} MiB each ({:.0} MiB total)", r100 / MIB),
        Some(per / 12.0),
    );
    let lin = (growth / per).max(per / growth);
    rep.push_row(
        "8b",
        "RSS growth per instance 10 -> 100 (linear?)",
        "linear",
        format!(
            "{growth:.2} MiB/instance (1: {:.2}, 10: {:.2}/each)",
            r1 / MIB,
            r10 / 10.0 / MIB
        ),
        None,
        if lin < 1.25 {
            Verdict::Met
        } else {
            Verdict::Missed
        },
    );
    rep.row(
        "8c",
        "CPU of 1 / 10 / 100 idle wrapperd",
        "-",
        format!("{c1:.3} / {c10:.2} / {c100:.2} % of a core"),
        None,
    );
    rep.section(
        8,
        "Many encodes on one host",
        &format!(
            "N = 1, 10, 100 wrapperd (defaults, file logs on, each its own work directory), each \
             running the fake ffmpeg `silence` (prints nothing, stays alive; checks start after \
             an hour so none is stopped). Once every api.sock answers and 2 s more, CPU is the \
             sum of utime + stime of the wrappers over {window:.0} s, and RSS the sum of their \
             VmRSS. Linear: the growth per instance from 10 to 100 is within 25 % of the size \
             of one instance at 100."
        ),
        details,
    );
}

/// 9. fftop watching 20 daemons at a 1 s interval, in a 120x40 pty.
fn m9_fftop(c: &Ctx, rep: &mut Report) {
    let window = if c.quick { 10.0 } else { 25.0 };
    let scan = c.dir("m9");
    let _ = fs::remove_dir_all(&scan);
    let env = [
        ("FFMPEG_BIN", c.bins.fake.display().to_string()),
        ("ENCODING_CHECK_START_DELAY", "3600".to_string()),
    ];
    let mut ds: Vec<Daemon> = (0..20)
        .map(|i| {
            Daemon::spawn(
                &c.bins,
                &scan.join(format!("enc{i:02}")),
                &env,
                &["run", "fps=25"],
            )
        })
        .collect();
    let ok = ds.iter().filter(|d| d.wait_api(30.0)).count();
    let ws = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
    let slave = pty.slave;
    let mut cmd = Command::new(&c.bins.fftop);
    cmd.arg("--scan")
        .arg(&scan)
        .arg("--interval")
        .arg("1")
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave.try_clone().expect("dup")));
    // SAFETY: setsid and ioctl between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn fftop");
    // The parent's copies of the slave (also those inside `cmd`) must go, or reading the master
    // never ends.
    drop(cmd);
    drop(slave);
    let mut master_w = fs::File::from(pty.master);
    let mut master_r = master_w.try_clone().expect("dup master");
    let bytes = Arc::new(AtomicU64::new(0));
    let b2 = bytes.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = master_r.read(&mut buf) {
            b2.fetch_add(n as u64, Ordering::Relaxed);
        }
    });
    let pid = child.id();
    sleep(3.0);
    let (b0, c0, t0) = (
        bytes.load(Ordering::Relaxed),
        cpu_secs(pid).unwrap_or(f64::NAN),
        Instant::now(),
    );
    sleep(window);
    let (b1, c1, dt) = (
        bytes.load(Ordering::Relaxed),
        cpu_secs(pid).unwrap_or(f64::NAN),
        t0.elapsed().as_secs_f64(),
    );
    let rss = status_bytes(pid, "VmRSS:").unwrap_or(f64::NAN);
    let _ = master_w.write_all(b"q");
    let quit = wait_for(3.0, || matches!(child.try_wait(), Ok(Some(_))));
    if !quit {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(master_w);
    let _ = reader.join();
    stop_all(&mut ds);
    let cpu = (c1 - c0) / dt * 100.0;
    let bps = (b1 - b0) as f64 / dt;
    rep.row(
        "9a",
        "fftop, 20 daemons, 1 s interval: CPU",
        "<= 1 % of a core",
        format!("{cpu:.2} %"),
        Some(cpu / 1.0),
    );
    rep.row(
        "9b",
        "fftop, same: bytes to the terminal",
        "<= 4 KB/s",
        format!("{:.2} KB/s", bps / 1000.0),
        Some(bps / 4000.0),
    );
    rep.section(
        9,
        "fftop watching 20 daemons",
        &format!(
            "20 wrapperd run the fake ffmpeg `run fps=25` (a progress block and a stats line \
             every 0.5 s), each in its own directory under one scan directory. \
             `fftop --scan DIR --interval 1` runs in a 120x40 pty (openpty, TERM=xterm-256color, \
             colour on) whose master is read continuously. After 3 s (the first full paint), \
             over {window:.0} s: fftop's utime + stime from /proc/PID/stat as a percentage of \
             one core, and the bytes read from the master per second (1 KB = 1000 bytes)."
        ),
        vec![
            format!("{ok} of 20 daemons answering"),
            format!(
                "CPU {:.0} ms over {dt:.1} s = {cpu:.2} %; {} bytes = {:.0} B/s; fftop VmRSS {:.1} \
                 MiB; {}",
                (c1 - c0) * 1000.0,
                b1 - b0,
                bps,
                rss / MIB,
                if quit { "quit on q" } else { "did NOT quit on q (killed)" }
            ),
            format!("bytes in the first 3 s (first paint): {b0}"),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Child modes.

static SIGNAL_NS: AtomicI64 = AtomicI64::new(0);

extern "C" fn on_stop_signal(_: libc::c_int) {
    let _ = SIGNAL_NS.compare_exchange(0, mono_ns(), Ordering::SeqCst, Ordering::SeqCst);
}

fn child_main(mode: &str) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let progress_path = match args.first() {
        Some(a) if a == "-progress" && args.len() >= 2 => Some(args[1].clone()),
        _ => None,
    };
    let env_f = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let stamp = std::env::var_os("FFW_BENCH_STAMP");
    if mode == "stamp" {
        let t = mono_ns();
        if let Some(p) = &stamp {
            let _ = fs::write(p, t.to_string());
        }
        if std::env::var_os("FFW_STAMP_EXIT").is_some() {
            std::process::exit(0);
        }
        sleep(10.0);
        std::process::exit(0);
    }
    // SAFETY: the handler only reads a clock and stores into an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut progress = progress_path.and_then(|p| fs::OpenOptions::new().write(true).open(p).ok());
    let mut enc = Enc::default();
    let stderr = std::io::stderr();
    let start = Instant::now();
    if mode == "fill" {
        let nb = env_f("FFW_FILL_BLOCKS", 100_000.0) as u64;
        let nl = env_f("FFW_FILL_LINES", 100_000.0) as u64;
        {
            let mut pw = progress
                .as_mut()
                .map(|f| std::io::BufWriter::with_capacity(1 << 16, f));
            let mut ew = std::io::BufWriter::with_capacity(1 << 16, stderr.lock());
            for i in 0..nb.max(nl) {
                enc.advance(0.04, 1.0, 25.0);
                if i < nb {
                    if let Some(w) = pw.as_mut() {
                        let _ = w.write_all(enc.block(false).as_bytes());
                    }
                }
                if i < nl {
                    let line = if i % 25 == 24 {
                        format!(
                            "[libx264 @ 0x55d0c6a3f{:03x}] frame I:{:<5} Avg QP:{:5.2}  size:{:6}\n",
                            i % 4096,
                            i / 250,
                            20.0 + (i % 700) as f64 / 100.0,
                            30_000 + i % 20_000
                        )
                    } else {
                        enc.stats_line()
                    };
                    let _ = ew.write_all(line.as_bytes());
                }
            }
            let _ = ew.flush();
            if let Some(w) = pw.as_mut() {
                let _ = w.flush();
            }
        }
        let mut next = Instant::now();
        while SIGNAL_NS.load(Ordering::SeqCst) == 0 {
            next += Duration::from_millis(500);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            enc.advance(0.5, 1.0, 25.0);
            enc.emit(&mut progress, false);
        }
        enc.emit(&mut progress, true);
        std::process::exit(255);
    }
    // stall / fail
    let healthy = env_f("FFW_HEALTHY_S", 1.5);
    let mut reference = 0i64;
    let mut k = 0u64;
    loop {
        if SIGNAL_NS.load(Ordering::SeqCst) != 0 {
            break;
        }
        k += 1;
        let due = start + Duration::from_millis(100 * k);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if SIGNAL_NS.load(Ordering::SeqCst) != 0 {
            break;
        }
        let t = start.elapsed().as_secs_f64();
        if t < healthy {
            enc.advance(0.1, 1.0, 25.0);
            enc.reported = None;
            enc.emit(&mut progress, false);
            reference = mono_ns();
        } else if mode == "fail" {
            enc.advance(0.1, 0.2, 5.0);
            enc.reported = Some((5.0, 0.2));
            enc.emit(&mut progress, false);
            if enc.first_fail == 0 {
                enc.first_fail = mono_ns();
            }
        }
        if t > 60.0 {
            break;
        }
    }
    if mode == "fail" {
        reference = enc.first_fail;
    }
    if let Some(p) = &stamp {
        let _ = fs::write(
            p,
            format!("{reference} {}", SIGNAL_NS.load(Ordering::SeqCst)),
        );
    }
    enc.emit(&mut progress, true);
    std::process::exit(255);
}

/// A pretend encode: the state behind the progress blocks and stats lines the child writes.
#[derive(Default)]
struct Enc {
    t: f64,
    frame: f64,
    out_s: f64,
    /// fps and speed to report instead of the averages.
    reported: Option<(f64, f64)>,
    first_fail: i64,
}

impl Enc {
    fn advance(&mut self, dt: f64, speed: f64, fps: f64) {
        self.t += dt;
        self.frame += fps * dt;
        self.out_s += speed * dt;
    }

    fn size(&self) -> u64 {
        48 + (self.out_s * 125_000.0) as u64
    }

    fn fps_speed(&self) -> (f64, f64) {
        self.reported
            .unwrap_or((self.frame / self.t.max(1e-9), self.out_s / self.t.max(1e-9)))
    }

    /// A block as ffmpeg 5.1 writes it.
    fn block(&self, end: bool) -> String {
        let (fps, speed) = self.fps_speed();
        let us = (self.out_s * 1e6) as i64;
        let (h, m, s, u) = (
            us / 3_600_000_000,
            us / 60_000_000 % 60,
            us / 1_000_000 % 60,
            us % 1_000_000,
        );
        format!(
            "frame={}\nfps={fps:.2}\nstream_0_0_q=28.0\nbitrate={:7.1}kbits/s\ntotal_size={}\n\
             out_time_us={us}\nout_time_ms={us}\nout_time={h:02}:{m:02}:{s:02}.{u:06}\n\
             dup_frames=0\ndrop_frames=0\nspeed={speed:5.3}x\nprogress={}\n",
            self.frame as u64,
            self.size() as f64 * 8.0 / self.out_s.max(1e-9) / 1000.0,
            self.size(),
            if end { "end" } else { "continue" }
        )
    }

    /// A stats line as ffmpeg 5.1 prints it, ending in `\r`.
    fn stats_line(&self) -> String {
        let (fps, speed) = self.fps_speed();
        let o = self.out_s;
        format!(
            "frame={:5} fps={fps:3.0} q=28.0 size={:8}kB time={:02}:{:02}:{:05.2} bitrate={:6.1}kbits/s speed={speed:4.3}x    \r",
            self.frame as u64,
            self.size() / 1024,
            (o / 3600.0) as u64,
            (o / 60.0) as u64 % 60,
            o % 60.0,
            self.size() as f64 * 8.0 / o.max(1e-9) / 1000.0,
        )
    }

    fn emit(&self, progress: &mut Option<fs::File>, end: bool) {
        if let Some(f) = progress {
            let _ = f.write_all(self.block(end).as_bytes());
        }
        let _ = std::io::stderr().write_all(self.stats_line().as_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// Machine description and BENCHMARKS.md.

fn machine() -> Vec<(String, String)> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let ffmpeg = cmd_out("ffmpeg", &["-version"])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("PRETTY_NAME="))
                .map(|l| l["PRETTY_NAME=".len()..].trim_matches('"').to_string())
        })
        .unwrap_or_default();
    vec![
        (
            "date".into(),
            chrono::Local::now()
                .format("%Y-%m-%d %H:%M:%S %z")
                .to_string(),
        ),
        ("nproc".into(), cmd_out("nproc", &[])),
        ("CPU".into(), model),
        ("memory".into(), mem),
        ("kernel".into(), cmd_out("uname", &["-sr"])),
        ("OS".into(), os),
        ("ffmpeg".into(), ffmpeg),
        ("rustc".into(), cmd_out("rustc", &["--version"])),
        (
            "load average at start".into(),
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ]
}

fn write_markdown(
    path: &Path,
    notes: Option<&Path>,
    rep: &Report,
    mach: &[(String, String)],
    quick: bool,
    took: f64,
) {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Written by `bench/run`{} (issue #6) — do not edit by hand: the analysis at the end \
         comes from `bench/notes.md`. The machine is shared and noisy: every comparison runs both \
         sides in the same run, in alternation, and reports medians.\n",
        if quick { " --quick" } else { "" }
    );
    let _ = writeln!(s, "## Machine\n\n| | |\n|---|---|");
    for (k, v) in mach {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(
        s,
        "\nThe run took {took:.0} s{}.\n",
        if quick {
            " (**--quick**: fewer pairs and shorter windows; not the figures of record)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "## Results\n\n| # | measurement | goal | figure | figure / goal | verdict |\n\
         |---|---|---|---|---|---|"
    );
    for r in &rep.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r.id,
            r.what,
            r.goal,
            r.figure,
            r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
            if r.verdict == Verdict::Missed {
                "**missed**"
            } else {
                verdict_word(r.verdict)
            }
        );
    }
    let _ = writeln!(s, "\n## How each figure was taken\n");
    let mut secs: Vec<&Section> = rep.sections.iter().collect();
    secs.sort_by_key(|x| x.id);
    for sec in secs {
        let _ = writeln!(s, "### {}. {}\n\n{}\n", sec.id, sec.title, sec.how);
        for d in &sec.details {
            let _ = writeln!(s, "- {d}");
        }
        let _ = writeln!(s);
    }
    if let Some(n) = notes.and_then(|p| fs::read_to_string(p).ok()) {
        let _ = writeln!(s, "{}", n.trim_end());
    }
    if let Err(e) = fs::write(path, s) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if let Ok(mode) = std::env::var("FFW_BENCH_CHILD") {
        child_main(&mode);
    }
    let mut quick = false;
    let mut only: Option<Vec<u32>> = None;
    let me = std::env::current_exe().expect("current exe");
    let mut bin_dir = me.parent().expect("bin dir").to_path_buf();
    let mut out = PathBuf::from("BENCHMARKS.md");
    let mut notes = Some(PathBuf::from("bench/notes.md"));
    let mut wrapperd_override: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--only" => {
                only = args
                    .next()
                    .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            }
            "--bin-dir" => bin_dir = args.next().map(PathBuf::from).unwrap_or(bin_dir),
            "--wrapperd" => wrapperd_override = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from).unwrap_or(out),
            "--notes" => notes = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!(
                    "ffw-bench [--quick] [--only 1,4,6] [--bin-dir DIR] [--out BENCHMARKS.md] \
                     [--notes bench/notes.md]\nRun through bench/run, which builds the release \
                     binaries first."
                );
                return;
            }
            other => {
                eprintln!("ffw-bench: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let bins = Bins {
        wrapperd: wrapperd_override.unwrap_or_else(|| bin_dir.join("wrapperd")),
        fftop: bin_dir.join("fftop"),
        fake: bin_dir.join("fake-ffmpeg"),
        me,
    };
    for b in [&bins.wrapperd, &bins.fftop, &bins.fake] {
        if !b.exists() {
            eprintln!(
                "ffw-bench: {} is missing (cargo build --release --bins)",
                b.display()
            );
            std::process::exit(2);
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix("ffw-bench.")
        .tempdir()
        .expect("temporary directory");
    let c = Ctx {
        bins,
        quick,
        tmp: tmp.path().to_path_buf(),
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
    };
    let want = |n: u32| only.as_ref().is_none_or(|o| o.contains(&n));
    let mach = machine();
    for (k, v) in &mach {
        println!("{k}: {v}");
    }
    println!();
    let started = Instant::now();
    let mut rep = Report::default();
    println!(
        "{:<4} {:<46} {:<22} {:<28} {:>7} verdict",
        "#", "measurement", "goal", "figure", "ratio"
    );
    let steps: Vec<(u32, &str)> = vec![
        (5, "start-up"),
        (4, "log throughput"),
        (3, "full rings (and 6: API)"),
        (7, "manager reaction"),
        (8, "many wrapperd"),
        (9, "fftop"),
        (1, "CPU-bound encode"),
        (2, "realtime encode"),
    ];
    for (n, name) in steps {
        let run36 = n == 3 && (want(3) || want(6));
        if !(want(n) || run36) {
            continue;
        }
        eprintln!(
            "[{:5.0} s] measurement {n}: {name}",
            started.elapsed().as_secs_f64()
        );
        match n {
            1 => m1_overhead(&c, &mut rep),
            2 => m2_realtime(&c, &mut rep),
            3 => m3_m6_rings_and_api(&c, &mut rep, want(3), want(6)),
            4 => m4_throughput(&c, &mut rep),
            5 => m5_startup(&c, &mut rep),
            7 => m7_reaction(&c, &mut rep),
            8 => m8_many(&c, &mut rep),
            9 => m9_fftop(&c, &mut rep),
            _ => {}
        }
    }
    let took = started.elapsed().as_secs_f64();
    rep.rows.sort_by(|a, b| a.id.cmp(&b.id));
    println!("\nSummary ({took:.0} s):");
    println!(
        "{:<4} {:<46} {:<22} {:<28} {:>7} verdict",
        "#", "measurement", "goal", "figure", "ratio"
    );
    for r in &rep.rows {
        println!("{}", fmt_row_plain(r));
    }
    write_markdown(&out, notes.as_deref(), &rep, &mach, quick, took);
    println!("\nwrote {}", out.display());
}
