//! Measurement 15 (issue 15): `fftop --serve` as a host's aggregator of 100 daemons at a 1 s
//! interval: its CPU, and how long `/metrics` takes to answer (from the cached texts).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::{die_with_parent, stop_all, Daemon};
use crate::report::Report;
use crate::util::{cpu_secs, percentile, sleep, status_bytes, wait_for, MIB};
use crate::Ctx;

/// How many daemons the aggregator watches.
const DAEMONS: usize = 100;

/// `GET path` over a fresh connection: the body, and how long the whole answer took.
fn get(addr: SocketAddr, path: &str) -> Option<(String, f64)> {
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let _ = s.set_nodelay(true);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let took = t.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((body, took))
}

/// How many targets `/metrics` says are up.
fn up_count(body: &str) -> usize {
    body.lines()
        .filter(|l| l.starts_with("ffwrapper_target_up{") && l.ends_with(" 1"))
        .count()
}

/// Scrapes `/metrics` every `every` s for `window` s, timing each answer into `lat`; returns
/// the process's CPU over the window (% of a core, ms) and the window's length.
fn cpu_while_scraping(
    addr: SocketAddr,
    pid: u32,
    window: f64,
    every: f64,
    lat: &mut Vec<f64>,
) -> (f64, f64, f64) {
    let (c0, t0) = (cpu_secs(pid).unwrap_or(f64::NAN), Instant::now());
    while t0.elapsed().as_secs_f64() < window {
        if let Some((_, took)) = get(addr, "/metrics") {
            lat.push(took * 1000.0);
        }
        sleep(every);
    }
    let (c1, dt) = (
        cpu_secs(pid).unwrap_or(f64::NAN),
        t0.elapsed().as_secs_f64(),
    );
    ((c1 - c0) / dt * 100.0, (c1 - c0) * 1000.0, dt)
}

/// 15. `fftop --serve` with 100 daemons at 1 s: CPU % of a core, `/metrics` p99.
pub(crate) fn m15_serve(c: &Ctx, rep: &mut Report) {
    let window = if c.quick { 10.0 } else { 30.0 };
    let scan = c.dir("m15");
    let _ = fs::remove_dir_all(&scan);
    let env = [
        ("FFMPEG_BIN", c.bins.fake.display().to_string()),
        ("ENCODING_CHECK_START_DELAY", "3600".to_string()),
    ];
    let mut ds: Vec<Daemon> = (0..DAEMONS)
        .map(|i| {
            Daemon::spawn(
                &c.bins,
                &scan.join(format!("enc{i:03}")),
                &env,
                &["run", "fps=25"],
            )
        })
        .collect();
    let answering = ds.iter().filter(|d| d.wait_api(60.0)).count();
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("its address")
    };
    let mut cmd = Command::new(&c.bins.fftop);
    cmd.arg("--serve")
        .arg(addr.to_string())
        .arg("--scan")
        .arg(&scan)
        .args(["--interval", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().expect("spawn fftop --serve");
    let pid = child.id();
    let all_up = wait_for(30.0, || {
        get(addr, "/metrics").is_some_and(|(b, _)| up_count(&b) == answering)
    });
    sleep(2.0);
    // CPU: scraped once a second (a Prometheus scrapes every 15 s or so; this is generous).
    let (cpu, cpu_ms, dt) = cpu_while_scraping(addr, pid, window, 1.0, &mut Vec::new());
    // Latency: scraped ten times a second, each answer timed (CPU then too, for the record).
    let mut lat = Vec::new();
    let (cpu10, _, _) = cpu_while_scraping(addr, pid, window, 0.1, &mut lat);
    let size = get(addr, "/metrics").map_or(0, |(b, _)| b.len());
    let rss = status_bytes(pid, "VmRSS").unwrap_or(f64::NAN);
    let _ = child.kill();
    let _ = child.wait();
    stop_all(&mut ds);
    let p99 = percentile(&lat, 99.0);
    rep.row(
        "15a",
        "fftop --serve, 100 daemons, 1 s: CPU",
        "<= 2 % of a core",
        format!("{cpu:.2} %"),
        Some(cpu / 2.0),
    );
    rep.row(
        "15b",
        "fftop --serve, same: /metrics p99",
        "<= 20 ms",
        format!("{p99:.1} ms"),
        Some(p99 / 20.0),
    );
    rep.section(
        15,
        "fftop --serve aggregating 100 daemons",
        &format!(
            "{DAEMONS} wrapperd run the fake ffmpeg `run fps=25`, each in its own directory under \
             one scan directory. `fftop --serve 127.0.0.1:PORT --scan DIR --interval 1` polls \
             each one's /status and /metrics every second. Once /metrics shows every daemon up, \
             after 2 s more, over {window:.0} s with /metrics fetched once a second: its utime + \
             stime from /proc/PID/stat as a percentage of one core (the scrapes' own cost \
             included). Then over {window:.0} s more, /metrics fetched ten times a second over a \
             fresh TCP connection each, each answer timed from connect to last byte \
             (nearest-rank p99)."
        ),
        vec![
            format!("{answering} of {DAEMONS} daemons answering; all up on /metrics: {all_up}"),
            format!(
                "scraped once a second: CPU {cpu_ms:.0} ms over {dt:.1} s = {cpu:.2} %; VmRSS \
                 {:.1} MiB",
                rss / MIB
            ),
            format!("scraped ten times a second: CPU {cpu10:.2} %"),
            format!(
                "{} scrapes of {size} bytes: median {:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
                lat.len(),
                percentile(&lat, 50.0),
                percentile(&lat, 100.0)
            ),
        ],
    );
}
