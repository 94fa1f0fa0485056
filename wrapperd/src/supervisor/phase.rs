//! The supervisor loop: ffmpeg's life after its spawn, as a [`Phase`] that carries its data
//! (watchexec's supervisor models a job the same way).
//!
//! [`Supervisor::supervise`] owns the child and `select!`s on the signals to wrapperd, the
//! progress reader's wake-ups, the manager's next deadline and, while stopping, the stop
//! timeout. The stop is graceful exactly once (SPEC §5, §7): `q` and one `SIGINT`
//! ([`Child::ask_to_finish`]), then `SIGKILL` after `STOP_TIMEOUT` or on a second stop signal
//! *to wrapperd*: a first signal that arrives while the manager's stop is under way (`docker
//! stop` then) lets ffmpeg finish its trailer. Once stopping, the manager stands down, so it
//! logs no decision that nothing would act on. `STOP_INPUT_GRACE` into a stop, ffmpeg's network
//! inputs are ended once ([`Child::end_inputs`], the step in `grace.rs`, SPEC §9).
//!
//! The process side ([`Child`]) and the signal side ([`Events`]) are traits, so the tests in
//! `phase_tests.rs` drive the loop with a scripted child and scripted signals, with timeouts of
//! tenths of a second (the manager's deadlines are `std` instants, which a paused tokio clock
//! would not move).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use shared::api::FfmpegStatus;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::Config;
use crate::config::RestartPolicy;
use crate::logfile::LogSink;
use crate::manager::Stop;
use crate::signals::{Event, Signals};
use crate::state::{Control, ControlRequest, Daemon};

/// What the loop does to ffmpeg; [`super::child::Ffmpeg`] is the real one.
pub(crate) trait Child {
    /// `q` on its stdin where wrapperd holds it, and one `SIGINT`.
    fn ask_to_finish(&mut self);
    /// `SIGKILL`.
    fn kill(&mut self);
    /// Shuts the read side of its sockets (SPEC §9, [`super::input`]); how many were shut.
    fn end_inputs(&mut self) -> Result<usize, super::input::EndInputsError>;
    /// Reaps every ended child; ffmpeg's status once it has ended.
    fn reap(&mut self) -> Option<FfmpegStatus>;
}

/// Where the loop's signals come from; [`Inputs`] is the real source.
pub(crate) trait Events {
    /// The next signal (cancel-safe: the loop drops it when something else happens first).
    async fn next(&mut self) -> Event;
}

/// The signals to wrapperd, and the shutdown future `run` was given, which asks for a stop as
/// a `SIGTERM` does.
pub(crate) struct Inputs<F> {
    /// The signal streams, created before the spawn.
    pub(crate) signals: Signals,
    /// Resolves when the caller asks for a stop.
    pub(crate) shutdown: Pin<Box<F>>,
    /// The shutdown future has resolved (it is not polled again).
    pub(crate) shutdown_seen: bool,
}

impl<F: Future<Output = ()>> Events for Inputs<F> {
    async fn next(&mut self) -> Event {
        tokio::select! {
            ev = self.signals.recv() => ev,
            () = &mut self.shutdown, if !self.shutdown_seen => {
                self.shutdown_seen = true;
                Event::Stop(Signal::SIGTERM)
            }
        }
    }
}

/// Why ffmpeg was asked to stop.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StopCause {
    /// A stop signal to wrapperd (or the shutdown future).
    Signal(Signal),
    /// The manager's decision.
    Manager(Stop),
    /// `POST /stop` or `POST /restart`.
    Control(ControlRequest),
    /// `MAX_RUNTIME` passed.
    MaxRuntime(Duration),
}

impl StopCause {
    pub(crate) fn describe(&self) -> String {
        match self {
            StopCause::Signal(s) => format!("stop requested by {s}"),
            StopCause::Manager(stop) => format!(
                "stopped by the manager: {}: {}",
                stop.reason.as_str(),
                stop.message
            ),
            StopCause::Control(req) => format!(
                "{} requested by POST /{} ({})",
                req.what.as_str(),
                req.what.as_str(),
                req.origin
            ),
            StopCause::MaxRuntime(d) => {
                format!("MAX_RUNTIME reached ({} s)", d.as_secs_f64())
            }
        }
    }
}

/// Where ffmpeg's life is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Phase {
    /// Encoding; the manager decides.
    Running,
    /// Asked to finish (`q`, one `SIGINT`) at `asked_at`.
    Stopping {
        /// Why.
        cause: StopCause,
        /// When `q` and the `SIGINT` went out; `STOP_TIMEOUT` counts from here.
        asked_at: Instant,
        /// `SIGKILL` was sent.
        killed: bool,
        /// A stop signal to wrapperd has come (the cause, or one since): the next one kills.
        signalled: bool,
        /// What was done to ffmpeg's inputs after `STOP_INPUT_GRACE` (SPEC §9).
        inputs: InputEnd,
    },
}

/// Ending ffmpeg's inputs during a stop (SPEC §9): not yet, done, or tried without effect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum InputEnd {
    /// `STOP_INPUT_GRACE` has not passed (or is 0).
    Waiting,
    /// The read side of `sockets` sockets was shut at `at`.
    Ended {
        /// When.
        at: Instant,
        /// How many.
        sockets: usize,
    },
    /// Tried: refused, or ffmpeg held no sockets; not tried again.
    Tried,
}

/// How ffmpeg's life ended, for SPEC §7's table ([`judge`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// ffmpeg's own exit status.
    pub(crate) status: FfmpegStatus,
    /// Why it was stopped; `None` when it ended by itself.
    pub(crate) cause: Option<StopCause>,
    /// It had to be killed.
    pub(crate) killed: bool,
    /// What ending its inputs did (SPEC §9), for the exit reason; `None` when not done.
    pub(crate) inputs_note: Option<String>,
    /// A stop signal to wrapperd came during the run (as its cause or during another stop):
    /// wrapperd exits after it, whatever the restart policy says.
    pub(crate) signalled: bool,
    /// The run's longest stretch of `ok` health (for `RESTART_RESET_AFTER`).
    pub(crate) healthy_for: Duration,
}

/// What wakes the loop.
enum Wake {
    Signal(Event),
    Progress,
    ManagerDeadline,
    StopTimeout,
    InputGrace,
    Control,
    MaxRuntime,
    Beat,
}

/// The run's clock: when it started, and its longest stretch of `ok` health so far.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunClock {
    /// When ffmpeg was spawned (`MAX_RUNTIME` counts from here).
    pub(crate) started: Instant,
    /// Since when the health has been `ok`, if it is.
    ok_since: Option<Instant>,
    /// The longest stretch of `ok` seen.
    best: Duration,
}

impl RunClock {
    pub(crate) fn new(started: Instant) -> RunClock {
        RunClock {
            started,
            ok_since: None,
            best: Duration::ZERO,
        }
    }

    /// The health is `ok` (or not) at `now`.
    fn observe(&mut self, ok: bool, now: Instant) {
        match (ok, self.ok_since) {
            (true, None) => self.ok_since = Some(now),
            (true, Some(since)) => self.best = self.best.max(now - since),
            (false, _) => self.ok_since = None,
        }
    }
}

/// The loop's state: the child, where signals come from, and the phase.
pub(crate) struct Supervisor<C, E> {
    /// ffmpeg, as the loop acts on it.
    pub(crate) child: C,
    /// The signals to wrapperd.
    pub(crate) events: E,
    /// The manager (deadlines, decisions) and the life cycle clients see.
    pub(crate) shared: Arc<Daemon>,
    /// Woken by the progress reader after every block, so the manager's decisions act at once.
    pub(crate) wake: Arc<Notify>,
    /// `ffmpeg.log` and `wrapperd.log`, rotated on `SIGHUP`.
    pub(crate) logs: Option<(LogSink, LogSink)>,
    /// How long a graceful stop may take before `SIGKILL`.
    pub(crate) stop_timeout: Duration,
    /// Where ffmpeg's life is.
    pub(crate) phase: Phase,
    /// The current run's clock.
    pub(crate) run: RunClock,
}

impl<C: Child, E: Events> Supervisor<C, E> {
    /// Runs until ffmpeg has ended and been reaped.
    pub(crate) async fn supervise(&mut self) -> Outcome {
        loop {
            if let Some(status) = self.child.reap() {
                return self.outcome(status);
            }
            let wake = self.wait().await;
            self.shared.beat();
            match wake {
                Wake::Signal(ev) => self.on_event(ev),
                Wake::Progress | Wake::ManagerDeadline | Wake::Beat => {}
                Wake::Control => self.on_control(),
                Wake::MaxRuntime => self.begin_stop(StopCause::MaxRuntime(
                    self.shared.config.max_runtime.unwrap_or_default(),
                )),
                Wake::StopTimeout => self.kill(&format!(
                    "ffmpeg did not stop within STOP_TIMEOUT ({} s): killing it",
                    self.stop_timeout.as_secs_f64()
                )),
                Wake::InputGrace => self.end_inputs(),
            }
            if self.phase == Phase::Running {
                if let Some(stop) = self.manager_decision() {
                    self.begin_stop(StopCause::Manager(stop));
                }
            }
            if self.phase == Phase::Running {
                let ok = self.shared.health().0 == shared::api::Health::Ok;
                self.run.observe(ok, Instant::now());
            }
        }
    }

    /// Waits for the next thing that may change something.
    async fn wait(&mut self) -> Wake {
        let deadline = match self.phase {
            Phase::Running => self.shared.next_deadline(),
            Phase::Stopping { .. } => None,
        }
        .map(Instant::from_std);
        let kill_at = match self.phase {
            Phase::Stopping {
                asked_at,
                killed: false,
                ..
            } => Some(asked_at + self.stop_timeout),
            _ => None,
        };
        let grace_at = self.input_grace_at();
        let runtime_at = match (self.phase == Phase::Running, self.shared.config.max_runtime) {
            (true, Some(max)) => Some(self.run.started + max),
            _ => None,
        };
        tokio::select! {
            ev = self.events.next() => Wake::Signal(ev),
            () = self.wake.notified() => Wake::Progress,
            () = self.shared.control_wake.notified() => Wake::Control,
            () = sleep_until(deadline), if deadline.is_some() => Wake::ManagerDeadline,
            () = sleep_until(kill_at), if kill_at.is_some() => Wake::StopTimeout,
            () = sleep_until(grace_at), if grace_at.is_some() => Wake::InputGrace,
            () = sleep_until(runtime_at), if runtime_at.is_some() => Wake::MaxRuntime,
            // `/livez` or the watchdog asks whether the loop is alive ([`Daemon::ask_beat`]).
            () = self.shared.beat_wake.notified() => Wake::Beat,
        }
    }

    /// A control request from the API: a stop (no restart) or a restart, gracefully.
    fn on_control(&mut self) {
        let Some(req) = self.shared.take_control() else {
            return;
        };
        if self.phase != Phase::Running {
            tracing::info!(
                "POST /{} ({}) while ffmpeg is being stopped: nothing more to do",
                req.what.as_str(),
                req.origin
            );
            return;
        }
        self.begin_stop(StopCause::Control(req));
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Child => {}
            Event::Rotate => self.rotate_logs(),
            Event::Stop(sig) => self.on_stop_signal(sig),
        }
    }

    /// `SIGHUP`: both logs start a new file now.
    pub(crate) fn rotate_logs(&self) {
        if let Some((f, w)) = &self.logs {
            f.rotate();
            w.rotate();
        }
        tracing::info!("SIGHUP: logs rotated");
    }

    /// A stop signal to wrapperd: the first stops gracefully, the second kills.
    fn on_stop_signal(&mut self, sig: Signal) {
        let Phase::Stopping {
            cause,
            killed,
            signalled,
            ..
        } = &mut self.phase
        else {
            return self.begin_stop(StopCause::Signal(sig));
        };
        if !*signalled {
            *signalled = true;
            self.shared.set_exiting();
            tracing::info!(
                "{sig} while ffmpeg is being stopped ({}): letting it finish, then exiting; \
                 a second signal kills it",
                cause.describe()
            );
        } else if !*killed {
            self.kill(&format!("second stop signal ({sig}): killing ffmpeg now"));
        }
    }

    /// The manager's decision, after checking its deadlines; logs what it noted.
    fn manager_decision(&self) -> Option<Stop> {
        let (notes, decided) = self.shared.poll_manager(std::time::Instant::now());
        for note in notes {
            tracing::info!("{note}");
        }
        decided
    }

    fn begin_stop(&mut self, cause: StopCause) {
        let text = cause.describe();
        tracing::info!(
            "{text}; asking ffmpeg to finish (q, one SIGINT), up to STOP_TIMEOUT {} s",
            self.stop_timeout.as_secs_f64()
        );
        let ends_wrapperd = match &cause {
            StopCause::Signal(_) => true,
            StopCause::Control(req) => req.what == Control::Stop,
            StopCause::Manager(_) | StopCause::MaxRuntime(_) => {
                self.shared.config.restart == RestartPolicy::Never
            }
        };
        if ends_wrapperd {
            self.shared.set_exiting();
        }
        self.shared.begin_stopping(text);
        self.child.ask_to_finish();
        self.phase = Phase::Stopping {
            signalled: matches!(cause, StopCause::Signal(_)),
            cause,
            asked_at: Instant::now(),
            killed: false,
            inputs: InputEnd::Waiting,
        };
    }

    fn kill(&mut self, why: &str) {
        if let Phase::Stopping { killed, .. } = &mut self.phase {
            tracing::warn!("{why}");
            *killed = true;
            self.child.kill();
        }
    }

    fn outcome(&self, status: FfmpegStatus) -> Outcome {
        match &self.phase {
            Phase::Running => Outcome {
                status,
                cause: None,
                killed: false,
                inputs_note: None,
                signalled: false,
                healthy_for: self.run.best,
            },
            Phase::Stopping {
                cause,
                killed,
                inputs,
                signalled,
                ..
            } => Outcome {
                status,
                cause: Some(cause.clone()),
                killed: *killed,
                inputs_note: self.inputs_note(*inputs, *killed),
                signalled: *signalled,
                healthy_for: self.run.best,
            },
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The exit status and reason of SPEC §7's table; `words` are ffmpeg's own last words, put in
/// the reason when it ended by itself (SPEC §10).
pub(crate) fn judge(config: &Config, outcome: &Outcome, words: Option<&str>) -> (i32, String) {
    let st = outcome.status;
    let Some(cause) = &outcome.cause else {
        let code = if config.exit_code_passthrough {
            st.shell_code()
        } else {
            1
        };
        let reason = match words {
            Some(w) => format!("ffmpeg ended by itself with status {st}: {w}"),
            None => format!("ffmpeg ended by itself with status {st}"),
        };
        return (code, reason);
    };
    let text = match &outcome.inputs_note {
        Some(note) => format!("{}; {note}", cause.describe()),
        None => cause.describe(),
    };
    match (cause, st) {
        (StopCause::Manager(_), _) => (1, format!("{text}; ffmpeg exited with status {st}")),
        _ if outcome.killed => (1, format!("{text}; ffmpeg had to be killed (status {st})")),
        (_, FfmpegStatus::Code(_)) => (
            0,
            format!("{text}; ffmpeg finished cleanly with status {st}"),
        ),
        _ => (1, format!("{text}; ffmpeg ended with status {st}")),
    }
}

#[cfg(test)]
#[path = "phase_tests.rs"]
mod tests;
