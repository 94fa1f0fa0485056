//! Measurement 16 (issue 15): interactive fftop watching two `fftop --serve` aggregators of 50
//! daemons each (two "hosts" on one machine), in a pty as measurement 9 runs it: its CPU and the
//! bytes it writes to the terminal, medians of three windows.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::procs::{die_with_parent, stop_all, Daemon};
use crate::report::Report;
use crate::util::{cpu_secs, percentile, sleep, status_bytes, wait_for, MIB};
use crate::Ctx;

/// Daemons behind each aggregator.
const PER_HOST: usize = 50;
/// Aggregators ("hosts").
const HOSTS: usize = 2;
/// Windows measured; the medians are reported.
const WINDOWS: usize = 3;

/// How many targets an aggregator's `/metrics` says are up (None when it does not answer).
fn up_count(addr: SocketAddr) -> Option<usize> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    Some(
        text.lines()
            .filter(|l| l.starts_with("ffwrapper_target_up{") && l.ends_with(" 1"))
            .count(),
    )
}

/// A free port on loopback address `ip` (127.0.0.1, 127.0.0.2, …: one "host" each).
fn free_addr(ip: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind((ip, 0)).expect("a free port");
    l.local_addr().expect("its address")
}

/// Starts `fftop --serve ADDR --scan DIR --interval 1`, headless.
fn spawn_aggregator(fftop: &Path, addr: SocketAddr, scan: &Path) -> Child {
    let mut cmd = Command::new(fftop);
    cmd.arg("--serve")
        .arg(addr.to_string())
        .arg("--scan")
        .arg(scan)
        .args(["--interval", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    die_with_parent(&mut cmd);
    cmd.spawn().expect("spawn fftop --serve")
}

/// Interactive fftop with `args` (and `--interval 1`) in a 120x40 pty, as a terminal would run
/// it: the child, the master (for `q`), the reader thread and its running count of bytes read
/// from the master. Measurements 9 and 16.
pub(crate) fn spawn_interactive(
    fftop: &Path,
    args: &[String],
) -> (Child, fs::File, std::thread::JoinHandle<()>, Arc<AtomicU64>) {
    let ws = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
    let slave = pty.slave;
    let mut cmd = Command::new(fftop);
    cmd.args(args)
        .args(["--interval", "1"])
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave.try_clone().expect("dup")));
    // SAFETY: setsid, ioctl and prctl between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn fftop");
    drop(cmd);
    drop(slave);
    let master_w = fs::File::from(pty.master);
    let mut master_r = master_w.try_clone().expect("dup master");
    let bytes = Arc::new(AtomicU64::new(0));
    let b2 = bytes.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = master_r.read(&mut buf) {
            b2.fetch_add(n as u64, Ordering::Relaxed);
        }
    });
    (child, master_w, reader, bytes)
}

/// One window of `secs`: fftop's CPU (% of a core) and bytes per second to the terminal.
pub(crate) fn window(pid: u32, bytes: &AtomicU64, secs: f64) -> (f64, f64) {
    let (b0, c0, t0) = (
        bytes.load(Ordering::Relaxed),
        cpu_secs(pid).unwrap_or(f64::NAN),
        Instant::now(),
    );
    sleep(secs);
    let (b1, c1, dt) = (
        bytes.load(Ordering::Relaxed),
        cpu_secs(pid).unwrap_or(f64::NAN),
        t0.elapsed().as_secs_f64(),
    );
    ((c1 - c0) / dt * 100.0, (b1 - b0) as f64 / dt)
}

/// 16. Interactive fftop on 2 aggregators x 50 daemons: CPU and bytes/s to the terminal.
pub(crate) fn m16_fftop_fleet(c: &Ctx, rep: &mut Report) {
    let secs = if c.quick { 5.0 } else { 10.0 };
    let env = [
        ("FFMPEG_BIN", c.bins.fake.display().to_string()),
        ("ENCODING_CHECK_START_DELAY", "3600".to_string()),
    ];
    let mut ds = Vec::new();
    let mut aggs = Vec::new();
    let mut addrs = Vec::new();
    for h in 0..HOSTS {
        let scan = c.dir(&format!("m16-host{h}"));
        let _ = fs::remove_dir_all(&scan);
        for i in 0..PER_HOST {
            let d = Daemon::spawn(
                &c.bins,
                &scan.join(format!("enc{i:02}")),
                &env,
                &["run", "fps=25"],
            );
            ds.push(d);
        }
        let addr = free_addr(&format!("127.0.0.{}", h + 1));
        aggs.push(spawn_aggregator(&c.bins.fftop, addr, &scan));
        addrs.push(addr);
    }
    let answering = ds.iter().filter(|d| d.wait_api(60.0)).count();
    let all_up = wait_for(30.0, || {
        addrs.iter().filter_map(|a| up_count(*a)).sum::<usize>() == answering
    });
    let (mut child, mut master_w, reader, bytes) = spawn_interactive(
        &c.bins.fftop,
        &addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    );
    let pid = child.id();
    sleep(3.0);
    let first = bytes.load(Ordering::Relaxed);
    let ws: Vec<(f64, f64)> = (0..WINDOWS).map(|_| window(pid, &bytes, secs)).collect();
    let rss = status_bytes(pid, "VmRSS").unwrap_or(f64::NAN);
    let _ = master_w.write_all(b"q");
    let quit = wait_for(3.0, || matches!(child.try_wait(), Ok(Some(_))));
    if !quit {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(master_w);
    let _ = reader.join();
    for a in &mut aggs {
        let _ = a.kill();
        let _ = a.wait();
    }
    stop_all(&mut ds);
    let cpus: Vec<f64> = ws.iter().map(|w| w.0).collect();
    let bpss: Vec<f64> = ws.iter().map(|w| w.1).collect();
    let (cpu, bps) = (percentile(&cpus, 50.0), percentile(&bpss, 50.0));
    report(
        rep,
        (cpu, bps),
        &ws,
        secs,
        (answering, all_up, first, rss, quit),
    );
}

/// The rows and the section of measurement 16.
fn report(
    rep: &mut Report,
    (cpu, bps): (f64, f64),
    ws: &[(f64, f64)],
    secs: f64,
    (answering, all_up, first, rss, quit): (usize, bool, u64, f64, bool),
) {
    rep.row(
        "16a",
        "fftop on 2 aggregators x 50 encodes: CPU",
        "<= 1 % of a core",
        format!("{cpu:.2} %"),
        Some(cpu / 1.0),
    );
    rep.row(
        "16b",
        "fftop, same: bytes to the terminal",
        "<= 4 KB/s",
        format!("{:.2} KB/s", bps / 1000.0),
        Some(bps / 4000.0),
    );
    let each: Vec<String> = ws
        .iter()
        .map(|(c, b)| format!("{c:.2} % / {:.0} B/s", b))
        .collect();
    rep.section(
        16,
        "fftop on two aggregators of 50 encodes each",
        &format!(
            "{n} wrapperd run the fake ffmpeg `run fps=25`, {PER_HOST} under each of {HOSTS} scan \
             directories; each directory has its own `fftop --serve 127.0.0.N:PORT --scan DIR \
             --interval 1` (N = 1, 2: two hosts on one machine; rows `127.0.0.N/encNN`). Once \
             both aggregators' /metrics show every daemon up, `fftop HOST1:PORT HOST2:PORT \
             --interval 1` runs in a 120x40 pty (openpty, TERM=xterm-256color, colour on; as measurement 9) whose master is read \
             continuously. After 3 s (the first full paint), {WINDOWS} windows of {secs:.0} s: \
             fftop's utime + stime from /proc/PID/stat as a percentage of one core, and the \
             bytes read from the master per second (1 KB = 1000 bytes); the medians are \
             reported.",
            n = PER_HOST * HOSTS
        ),
        vec![
            format!(
                "{answering} of {} daemons answering; all up on the aggregators: {all_up}",
                PER_HOST * HOSTS
            ),
            format!("windows (CPU / bytes): {}", each.join("; ")),
            format!(
                "bytes in the first 3 s (first paint): {first}; fftop VmRSS {:.1} MiB; {}",
                rss / MIB,
                if quit {
                    "quit on q"
                } else {
                    "did NOT quit on q (killed)"
                }
            ),
        ],
    );
}
