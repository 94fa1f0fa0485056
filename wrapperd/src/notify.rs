//! systemd's notify protocol (SPEC §12): tell the service manager when the encode is ready, what
//! it is doing, that wrapperd's own loop is alive, and that wrapperd is stopping.
//!
//! When `NOTIFY_SOCKET` is set (a path, or `@name` for a name in the abstract namespace), one
//! task sends datagrams to it:
//! - `READY=1` once the first progress block has arrived (ffmpeg is encoding, not just probing
//!   its input), once;
//! - `STATUS=<state, health, fps, speed, run>` when that line changes, at most once a second;
//! - `WATCHDOG=1` every half of `WATCHDOG_USEC` (when `WATCHDOG_PID` is unset or names this
//!   process), but only while the supervisor's loop is alive: its heartbeat
//!   ([`Daemon::beat_age`]) must be younger than [`beat_limit`]. A wedged loop therefore stops
//!   the pings and systemd's watchdog restarts wrapperd; a stalled *encode* is the manager's
//!   business (SPEC §5), not the watchdog's;
//! - `STOPPING=1` once wrapperd is going to exit ([`Daemon::exiting`]): a stop that another run
//!   follows (`RESTART`, `POST /restart`) is not wrapperd stopping, and saying `STOPPING=1` then
//!   would make systemd kill it after `TimeoutStopSec`.
//!
//! No crate: the protocol is one `sendto` on a datagram socket, and the `sd-notify` crate's
//! handling of abstract names is not needed for that. The socket is non-blocking and a message
//! that cannot be sent (systemd busy or gone) is dropped: wrapperd is never held back by its
//! service manager. The decisions are a pure [`Notifier`] driven with time as an argument, so the
//! tests run without sleeping; the task only samples the [`Daemon`] and sends.
//!
//! The three variables are systemd's, not wrapperd's configuration: they are not in the config
//! table, and they are removed from ffmpeg's environment (`supervisor::child`) so ffmpeg never
//! talks to the service manager in wrapperd's name.

use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::api::{Health, Status};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::Daemon;

/// The environment variables of the protocol, removed from ffmpeg's (and hooks') environment.
pub(crate) const VARS: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// The shortest gap between two `STATUS=` messages.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// The longest gap between two looks at the state (READY and STOPPING are at most this late).
const TICK_MAX: Duration = Duration::from_millis(250);

/// Why the notify settings were not taken (logged once; wrapperd runs on without notifying).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotifyError {
    /// `NOTIFY_SOCKET` is neither an absolute path nor `@name`.
    #[error("bad value for NOTIFY_SOCKET: {0:?}; allowed: an absolute path or @name (abstract)")]
    Socket(String),
    /// `WATCHDOG_USEC` is not a positive integer.
    #[error("bad value for WATCHDOG_USEC: {0:?}; allowed: microseconds, an integer > 0")]
    Watchdog(String),
}

/// Where the service manager listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A socket file.
    Path(PathBuf),
    /// A name in Linux's abstract namespace (`@name` in `NOTIFY_SOCKET`), without the `@`.
    Abstract(Vec<u8>),
}

/// The protocol's settings from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `NOTIFY_SOCKET`.
    pub(crate) target: Target,
    /// Half of `WATCHDOG_USEC`: how often `WATCHDOG=1` is due; `None`: no watchdog.
    pub(crate) watchdog_every: Option<Duration>,
}

impl Settings {
    /// The settings from the three variables' values; `Ok(None)` without `NOTIFY_SOCKET`.
    /// `WATCHDOG_PID`, when set, must be `pid` for the watchdog to be ours (as `sd_watchdog_enabled`).
    pub(crate) fn parse(
        socket: Option<OsString>,
        watchdog_usec: Option<String>,
        watchdog_pid: Option<String>,
        pid: u32,
    ) -> Result<Option<Settings>, NotifyError> {
        let Some(socket) = socket.filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let bytes = socket.as_bytes();
        let target = match bytes.first() {
            Some(b'/') => Target::Path(PathBuf::from(socket.clone())),
            Some(b'@') if bytes.len() > 1 => Target::Abstract(bytes[1..].to_vec()),
            _ => return Err(NotifyError::Socket(socket.to_string_lossy().into_owned())),
        };
        let ours = watchdog_pid.is_none_or(|p| p.trim().parse::<u32>() == Ok(pid));
        let watchdog_every = match watchdog_usec.filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(us) if us > 0 => ours.then(|| Duration::from_micros(us) / 2),
                _ => return Err(NotifyError::Watchdog(v)),
            },
        };
        Ok(Some(Settings {
            target,
            watchdog_every,
        }))
    }

    /// The settings from this process's environment.
    fn from_env() -> Result<Option<Settings>, NotifyError> {
        let var = |k: &str| std::env::var_os(k);
        let text = |k: &str| var(k).map(|v| v.to_string_lossy().into_owned());
        Settings::parse(
            var(VARS[0]),
            text(VARS[1]),
            text(VARS[2]),
            std::process::id(),
        )
    }
}

/// How young the loop's heartbeat must be for `WATCHDOG=1` to go out: half the watchdog's time,
/// but never less than 2 s, since the loop beats only once a second when nothing happens.
pub(crate) fn beat_limit(watchdog_every: Duration) -> Duration {
    watchdog_every.max(Duration::from_secs(2))
}

/// What the notifier looks at, sampled from the [`Daemon`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct View {
    /// A progress block has arrived (in any run).
    pub(crate) progressed: bool,
    /// wrapperd is going to exit.
    pub(crate) exiting: bool,
    /// The `STATUS=` line.
    pub(crate) line: String,
    /// How long ago the supervisor's loop last went round.
    pub(crate) beat_age: Duration,
}

impl View {
    /// Samples `daemon` now.
    fn of(daemon: &Daemon) -> View {
        let status = daemon.status();
        View {
            progressed: status.counters.progress_blocks > 0,
            exiting: daemon.exiting(),
            line: status_line(&status),
            beat_age: daemon.beat_age(),
        }
    }
}

/// The `STATUS=` text: `running, ok, 25.0 fps, speed 1.00x, run 3`, with the reason when the
/// health is neither `ok` nor `warming_up`. Always one line.
pub(crate) fn status_line(st: &Status) -> String {
    let health = match (&st.reason, st.health) {
        (Some(r), h) if !matches!(h, Health::Ok | Health::WarmingUp) => {
            format!("{} ({r})", h.as_str())
        }
        (_, h) => h.as_str().to_string(),
    };
    let fps = st
        .rates
        .fps
        .map_or_else(|| "- fps".to_string(), |f| format!("{f:.1} fps"));
    let speed = st
        .rates
        .speed
        .map_or_else(|| "speed -".to_string(), |s| format!("speed {s:.2}x"));
    let line = format!(
        "{}, {health}, {fps}, {speed}, run {}",
        st.state.as_str(),
        st.run.number
    );
    line.replace(['\n', '\r'], " ")
}

/// The protocol's decisions: what to send at each look, given what was sent before.
#[derive(Debug)]
pub(crate) struct Notifier {
    /// How often `WATCHDOG=1` is due; `None`: no watchdog.
    watchdog_every: Option<Duration>,
    /// When the next `WATCHDOG=1` is due.
    watchdog_due: Option<Instant>,
    /// The heartbeat was too old at the last due time (logged once per such spell).
    beat_stale: bool,
    /// `READY=1` went out.
    ready_sent: bool,
    /// `STOPPING=1` went out.
    stopping_sent: bool,
    /// The last `STATUS=` line sent, and when.
    last_status: Option<(String, Instant)>,
}

impl Notifier {
    pub(crate) fn new(watchdog_every: Option<Duration>, now: Instant) -> Notifier {
        Notifier {
            watchdog_every,
            watchdog_due: watchdog_every.map(|_| now),
            beat_stale: false,
            ready_sent: false,
            stopping_sent: false,
            last_status: None,
        }
    }

    /// How long the task may sleep before the next look.
    pub(crate) fn tick(&self) -> Duration {
        self.watchdog_every.map_or(TICK_MAX, |w| w.min(TICK_MAX))
    }

    /// The assignments to send at `now` for `view` (empty: nothing), in the protocol's order.
    /// `last` is the final look before wrapperd ends: the status goes out whatever the throttle.
    pub(crate) fn look(&mut self, now: Instant, view: &View, last: bool) -> Vec<String> {
        let mut out = Vec::new();
        if view.progressed && !self.ready_sent {
            self.ready_sent = true;
            out.push("READY=1".to_string());
        }
        let throttled = self
            .last_status
            .as_ref()
            .is_some_and(|(_, at)| now.duration_since(*at) < STATUS_EVERY);
        let changed = self.last_status.as_ref().map(|(l, _)| l) != Some(&view.line);
        if changed && (!throttled || last || (view.exiting && !self.stopping_sent)) {
            self.last_status = Some((view.line.clone(), now));
            out.push(format!("STATUS={}", view.line));
        }
        if view.exiting && !self.stopping_sent {
            self.stopping_sent = true;
            out.push("STOPPING=1".to_string());
        }
        if let (Some(every), Some(due)) = (self.watchdog_every, self.watchdog_due) {
            if now >= due {
                // On time: the next one a period later. Late (a slow look): a period from now,
                // not a burst to catch up.
                let next = due + every;
                self.watchdog_due = Some(if next <= now { now + every } else { next });
                let limit = beat_limit(every);
                if view.beat_age < limit {
                    self.beat_stale = false;
                    out.push("WATCHDOG=1".to_string());
                } else if !self.beat_stale {
                    self.beat_stale = true;
                    tracing::warn!(
                        "wrapperd's loop has not gone round for {:.1} s (limit {:.1} s): \
                         not pinging systemd's watchdog",
                        view.beat_age.as_secs_f64(),
                        limit.as_secs_f64()
                    );
                }
            }
        }
        out
    }
}

/// A datagram socket to the service manager.
struct Sender {
    /// Unbound, non-blocking.
    socket: UnixDatagram,
    /// Where to.
    addr: SocketAddr,
    /// A send failed (logged once until one succeeds again).
    failing: bool,
}

impl Sender {
    fn new(target: &Target) -> std::io::Result<Sender> {
        let addr = match target {
            Target::Path(p) => SocketAddr::from_pathname(p)?,
            Target::Abstract(name) => SocketAddr::from_abstract_name(name)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Sender {
            socket,
            addr,
            failing: false,
        })
    }

    /// Sends the assignments as one datagram; a failure is logged once and dropped.
    fn send(&mut self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        let msg = lines.join("\n");
        match self.socket.send_to_addr(msg.as_bytes(), &self.addr) {
            Ok(_) => self.failing = false,
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}");
            }
            Err(_) => {}
        }
    }
}

/// Starts the notify task when `NOTIFY_SOCKET` is set; it ends when `token` is cancelled, after
/// a last look (so the exit's `STATUS=` and `STOPPING=1` go out).
pub(crate) fn start(daemon: Arc<Daemon>, tracker: &TaskTracker, token: CancellationToken) {
    let settings = match Settings::from_env() {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => return tracing::warn!("{e}: not notifying the service manager"),
    };
    let mut sender = match Sender::new(&settings.target) {
        Ok(s) => s,
        Err(e) => return tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}"),
    };
    tracing::debug!(
        "notifying the service manager at {:?}, watchdog every {:?}",
        settings.target,
        settings.watchdog_every
    );
    tracker.spawn(async move {
        let mut notifier = Notifier::new(settings.watchdog_every, Instant::now());
        loop {
            let msgs = notifier.look(Instant::now(), &View::of(&daemon), false);
            sender.send(&msgs);
            if notifier.watchdog_every.is_some() {
                // The loop's answer is what the next look's ping needs (it beats when asked).
                daemon.ask_beat();
            }
            tokio::select! {
                () = tokio::time::sleep(notifier.tick()) => {}
                () = token.cancelled() => break,
            }
        }
        let msgs = notifier.look(Instant::now(), &View::of(&daemon), true);
        sender.send(&msgs);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(progressed: bool, exiting: bool, line: &str, beat_ms: u64) -> View {
        View {
            progressed,
            exiting,
            line: line.to_string(),
            beat_age: Duration::from_millis(beat_ms),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn settings_take_paths_and_abstract_names() {
        let p = |s: &str, us: Option<&str>, pid: Option<&str>| {
            Settings::parse(
                Some(s.into()),
                us.map(String::from),
                pid.map(String::from),
                42,
            )
        };
        assert_eq!(Settings::parse(None, Some("1".into()), None, 42), Ok(None));
        assert_eq!(p("", None, None), Ok(None));
        let s = p("/run/systemd/notify", Some("200000"), None)
            .unwrap()
            .unwrap();
        assert_eq!(s.target, Target::Path("/run/systemd/notify".into()));
        assert_eq!(s.watchdog_every, Some(ms(100)));
        let s = p("@ffw/notify", None, None).unwrap().unwrap();
        assert_eq!(s.target, Target::Abstract(b"ffw/notify".to_vec()));
        assert_eq!(s.watchdog_every, None);
        // The watchdog is another process's: no pings from us.
        let s = p("@x", Some("1000000"), Some("7")).unwrap().unwrap();
        assert_eq!(s.watchdog_every, None);
        let s = p("@x", Some("1000000"), Some("42")).unwrap().unwrap();
        assert_eq!(s.watchdog_every, Some(ms(500)));
        for bad in ["relative/path", "@", "vsock:2:1234"] {
            assert!(
                matches!(p(bad, None, None), Err(NotifyError::Socket(_))),
                "{bad}"
            );
        }
        for bad in ["0", "-5", "1.5", "abc"] {
            assert_eq!(
                p("/x", Some(bad), None),
                Err(NotifyError::Watchdog(bad.into()))
            );
        }
    }

    #[test]
    fn ready_once_after_the_first_block_and_not_before() {
        let t0 = Instant::now();
        let mut n = Notifier::new(None, t0);
        assert_eq!(
            n.look(t0, &view(false, false, "starting", 0), false),
            ["STATUS=starting"]
        );
        assert!(n
            .look(t0 + ms(1500), &view(false, false, "starting", 0), false)
            .is_empty());
        let sent = n.look(t0 + ms(1600), &view(true, false, "running", 0), false);
        assert_eq!(sent, ["READY=1", "STATUS=running"]);
        assert!(n
            .look(t0 + ms(3000), &view(true, false, "running", 0), false)
            .is_empty());
    }

    #[test]
    fn status_changes_go_out_at_most_once_a_second() {
        let t0 = Instant::now();
        let mut n = Notifier::new(None, t0);
        assert_eq!(n.look(t0, &view(true, false, "a", 0), false).len(), 2);
        // A change 0.3 s later waits for the second to pass, and the newest line goes then.
        assert!(n
            .look(t0 + ms(300), &view(true, false, "b", 0), false)
            .is_empty());
        assert!(n
            .look(t0 + ms(900), &view(true, false, "c", 0), false)
            .is_empty());
        assert_eq!(
            n.look(t0 + ms(1000), &view(true, false, "c", 0), false),
            ["STATUS=c"]
        );
        // The last look before the end is not throttled.
        assert_eq!(
            n.look(t0 + ms(1100), &view(true, false, "d", 0), true),
            ["STATUS=d"]
        );
    }

    #[test]
    fn stopping_once_with_the_status_that_says_why() {
        let t0 = Instant::now();
        let mut n = Notifier::new(None, t0);
        n.look(t0, &view(true, false, "running", 0), false);
        let sent = n.look(t0 + ms(100), &view(true, true, "stopping", 0), false);
        assert_eq!(sent, ["STATUS=stopping", "STOPPING=1"]);
        let sent = n.look(t0 + ms(200), &view(true, true, "exited", 0), true);
        assert_eq!(sent, ["STATUS=exited"]);
        // A stop that another run follows is not wrapperd stopping.
        let mut n = Notifier::new(None, t0);
        assert!(!n
            .look(t0, &view(true, false, "stopping", 0), false)
            .contains(&"STOPPING=1".to_string()));
    }

    #[test]
    fn watchdog_every_half_period_while_the_loop_beats() {
        let t0 = Instant::now();
        let every = ms(100);
        let mut n = Notifier::new(Some(every), t0);
        assert_eq!(n.tick(), every);
        let dog = |n: &mut Notifier, at: u64, beat: u64| {
            n.look(t0 + ms(at), &view(false, false, "s", beat), false)
                .contains(&"WATCHDOG=1".to_string())
        };
        assert!(dog(&mut n, 0, 0), "at once");
        assert!(!dog(&mut n, 50, 0), "not due yet");
        assert!(dog(&mut n, 100, 900), "a beat under a second old is alive");
        assert!(dog(&mut n, 200, 1900));
        // The loop is wedged: no ping, however often we look.
        assert!(!dog(&mut n, 300, 2000));
        assert!(!dog(&mut n, 400, 2100));
        // It beats again.
        assert!(dog(&mut n, 500, 10));
        // A late look does not make a burst of pings.
        assert!(dog(&mut n, 5000, 10));
        assert!(!dog(&mut n, 5001, 10));
        assert!(dog(&mut n, 5100, 10));
        assert_eq!(beat_limit(ms(100)), Duration::from_secs(2));
        assert_eq!(beat_limit(Duration::from_secs(15)), Duration::from_secs(15));
        assert_eq!(Notifier::new(None, t0).tick(), TICK_MAX);
    }

    #[test]
    fn the_status_line_is_one_line_with_the_reason_when_unhealthy() {
        let vars = [("WORKDIR".to_string(), "/nonexistent/wd".to_string())];
        let d = Daemon::new(crate::config::Config::from_vars(vars).unwrap(), vec![]);
        let mut st = d.status();
        assert_eq!(
            status_line(&st),
            "starting, warming_up, - fps, speed -, run 0"
        );
        st.rates.fps = Some(24.96);
        st.rates.speed = Some(0.998);
        st.run.number = 3;
        st.health = Health::Stalled;
        st.reason = Some("no output\nfor 2.4 s".into());
        assert_eq!(
            status_line(&st),
            "starting, stalled (no output for 2.4 s), 25.0 fps, speed 1.00x, run 3"
        );
    }
}
