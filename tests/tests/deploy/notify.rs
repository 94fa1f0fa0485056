//! systemd's notify protocol (SPEC §12) against a bound datagram socket standing in for
//! systemd: `READY=1` after the first progress block and not before, `STATUS=` following the
//! health at most once a second, `WATCHDOG=1` every half of `WATCHDOG_USEC`, `STOPPING=1` on
//! `SIGTERM`, and none of the protocol's variables in ffmpeg's environment. And `GET /livez`.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tests::{wait_until, Wd};

use super::get;

/// What a bound notify socket received: each assignment with its arrival time.
struct Listener {
    /// Every assignment (`READY=1`, `STATUS=...`), in arrival order.
    got: Arc<Mutex<Vec<(Instant, String)>>>,
    /// Tells the reading thread to end.
    stop: Arc<AtomicBool>,
    /// The reading thread.
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(sock: UnixDatagram) -> Listener {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let at = Instant::now();
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let mut g = g.lock().unwrap();
                    g.extend(text.lines().map(|l| (at, l.to_string())));
                }
            }
        });
        Listener {
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.got.lock().unwrap().clone()
    }

    /// The arrival times of `line`.
    fn times(&self, line: &str) -> Vec<Instant> {
        let all = self.all();
        all.iter()
            .filter(|(_, l)| l == line)
            .map(|(t, _)| *t)
            .collect()
    }

    fn statuses(&self) -> Vec<(Instant, String)> {
        self.all()
            .into_iter()
            .filter_map(|(t, l)| l.strip_prefix("STATUS=").map(|s| (t, s.to_string())))
            .collect()
    }

    fn has(&self, line: &str) -> bool {
        !self.times(line).is_empty()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The variables of the protocol in a process's environment.
fn notify_vars_of(pid: i32) -> (Vec<String>, usize) {
    let env = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let vars: Vec<String> = env
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let found = vars
        .iter()
        .filter(|v| {
            ["NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="]
                .iter()
                .any(|k| v.starts_with(k))
        })
        .cloned()
        .collect();
    (found, vars.len())
}

#[test]
fn notify_over_a_path_socket_follows_the_encode() {
    let wd = Wd::new();
    let path = wd.file("notify.sock");
    let l = Listener::start(UnixDatagram::bind(&path).unwrap());
    let started = Instant::now();
    // 1.5 s of silence (ffmpeg probing its input), then encoding; the checks start at 2 s.
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[
            ("MANAGER_START_DELAY", "0"),
            ("ENCODING_CHECK_START_DELAY", "2"),
            ("ENCODING_RATE_WINDOW", "1"),
            ("WATCHDOG_USEC", "200000"),
        ])
        .env("NOTIFY_SOCKET", &path)
        .args(["silence", "secs=1.5", "run", "fps=25", "block-interval=0.1"])
        .spawn();
    let ffmpeg = d.ffmpeg_pid();
    let (found, total) = notify_vars_of(ffmpeg);
    assert!(total > 1, "ffmpeg's environment was read");
    assert!(found.is_empty(), "ffmpeg inherited {found:?}");

    // Watchdog pings come while ffmpeg is still silent, READY does not.
    assert!(
        wait_until(Duration::from_secs(10), || l.times("WATCHDOG=1").len() >= 5),
        "no WATCHDOG=1 pings: {:?}",
        l.all()
    );
    assert!(wait_until(Duration::from_secs(10), || l.has("READY=1")));
    let ready = l.times("READY=1");
    assert_eq!(ready.len(), 1, "READY=1 once");
    let first_dog = l.times("WATCHDOG=1")[0];
    assert!(first_dog < ready[0], "the watchdog runs before READY");
    assert!(
        ready[0] >= started + Duration::from_millis(1400),
        "READY=1 {:?} after start, during ffmpeg's silence",
        ready[0] - started
    );
    assert!(d.status().counters.progress_blocks > 0);

    // STATUS follows the health: warming up, then ok once the checks are active.
    assert!(
        wait_until(Duration::from_secs(15), || l
            .statuses()
            .iter()
            .any(|(_, s)| s.starts_with("running, ok,"))),
        "no STATUS with health ok: {:?}",
        l.statuses()
    );
    assert!(
        l.statuses()[0].1.contains("warming_up"),
        "{:?}",
        l.statuses()
    );
    assert!(!l.has("STOPPING=1"));

    let term_at = Instant::now();
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(20)).code(), Some(0));
    assert!(
        wait_until(Duration::from_secs(2), || l.has("STOPPING=1")),
        "no STOPPING=1: {:?}",
        l.all()
    );
    assert_eq!(l.times("STOPPING=1").len(), 1, "STOPPING=1 once");
    assert!(l.times("STOPPING=1")[0] >= term_at);
    let statuses = l.statuses();
    assert!(
        statuses.last().unwrap().1.starts_with("exited"),
        "{statuses:?}"
    );
    // At most once a second, but for the stop's own lines, which go out at once.
    for w in statuses.windows(2) {
        if !w[1].1.starts_with("stopping") && !w[1].1.starts_with("exited") {
            let gap = w[1].0 - w[0].0;
            assert!(gap >= Duration::from_millis(950), "{gap:?} between {w:?}");
        }
    }
    check_watchdog_cadence(&l.times("WATCHDOG=1"));
}

/// `WATCHDOG=1` every half of `WATCHDOG_USEC` (100 ms): the typical gap, and no gap a loaded
/// machine could excuse.
fn check_watchdog_cadence(times: &[Instant]) {
    assert!(times.len() >= 20, "{} pings", times.len());
    let mut gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        median >= Duration::from_millis(80) && median <= Duration::from_millis(150),
        "median gap {median:?}"
    );
    let worst = *gaps.last().unwrap();
    assert!(worst < Duration::from_millis(600), "a gap of {worst:?}");
}

#[test]
fn notify_over_an_abstract_socket() {
    let wd = Wd::new();
    let name = format!("ffw-test-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let l = Listener::start(UnixDatagram::bind_addr(&addr).unwrap());
    let mut d = wd
        .wrapperd()
        .fake()
        .env("WATCHDOG_USEC", "200000")
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .args(["run", "fps=25", "block-interval=0.1"])
        .spawn();
    assert!(
        wait_until(Duration::from_secs(10), || l.has("READY=1")
            && l.times("WATCHDOG=1").len() >= 3
            && !l.statuses().is_empty()),
        "{:?}",
        l.all()
    );
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(20)).code(), Some(0));
    assert!(wait_until(Duration::from_secs(2), || l.has("STOPPING=1")));
}

#[test]
fn a_watchdog_pid_of_another_process_means_no_pings() {
    // WATCHDOG_PID names another process: READY and STATUS go out, no pings.
    let wd = Wd::new();
    let path = wd.file("notify.sock");
    let l = Listener::start(UnixDatagram::bind(&path).unwrap());
    let d = wd
        .wrapperd()
        .fake()
        .env("WATCHDOG_USEC", "200000")
        .env("WATCHDOG_PID", "1")
        .env("NOTIFY_SOCKET", &path)
        .args(["run", "fps=25", "block-interval=0.1"])
        .spawn();
    assert!(wait_until(Duration::from_secs(10), || l.has("READY=1")));
    assert!(wait_until(Duration::from_secs(10), || d.status().uptime_s > 1.0));
    assert!(!l.has("WATCHDOG=1"), "{:?}", l.all());
}

#[test]
fn livez_answers_during_warm_up_and_stall_while_healthz_does_not() {
    let wd = Wd::new();
    // Silent 2.5 s (stalled while warming up), encoding 1.5 s, then silent for good: stalled
    // with the checks active (the manager would stop it only after a minute).
    let d = wd
        .wrapperd()
        .fake()
        .envs(&[
            ("HTTP_PORT", "0"),
            ("API_TOKEN", "secret"),
            ("MANAGER_START_DELAY", "0"),
            ("ENCODING_CHECK_START_DELAY", "3"),
            ("ENCODING_MAX_STDOUT_STUCK_TIME", "60"),
        ])
        .args([
            "silence",
            "secs=2.5",
            "run",
            "fps=25",
            "secs=1.5",
            "block-interval=0.1",
            "silence",
            "secs=60",
        ])
        .spawn();
    let addr = wd.http_addr();
    assert_eq!(get(addr, "/livez", None), (200, "ok".to_string()));
    assert_eq!(
        get(addr, "/status", None).0,
        401,
        "the token is still asked"
    );
    let stalled = |active: bool| {
        wait_until(Duration::from_secs(15), || {
            let st = d.status();
            st.health == shared::api::Health::Stalled && st.check.active == active
        })
    };
    assert!(stalled(false), "stalled while warming up: {:?}", d.status());
    assert_eq!(get(addr, "/healthz", None).0, 503);
    assert_eq!(get(addr, "/livez", None), (200, "ok".to_string()));
    assert!(
        stalled(true),
        "stalled with the checks active: {:?}",
        d.status()
    );
    assert_eq!(get(addr, "/healthz", None).0, 503);
    assert_eq!(get(addr, "/livez", None), (200, "ok".to_string()));
    // And over the socket, without a token as always.
    assert_eq!(d.get("/livez").status, 200);
    // Silent for over 5 s: the loop had nothing to do (it has no timer of its own), so /livez
    // asks it, and it answers at once.
    assert!(wait_until(Duration::from_secs(20), || d
        .status()
        .check
        .last_output_age_s
        .is_some_and(|age| age > 6.0)));
    let asked = std::time::Instant::now();
    assert_eq!(get(addr, "/livez", None), (200, "ok".to_string()));
    assert!(
        asked.elapsed() < Duration::from_millis(900),
        "{:?}",
        asked.elapsed()
    );
}
