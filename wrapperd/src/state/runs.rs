//! The runs and the control requests of SPEC §10, as [`Daemon`] keeps them: the run number
//! and restart counts, the newest ended runs (`/runs`, `/status` `last_run`), the `restarting`
//! state between runs, and the one control request (`POST /stop`, `POST /restart`) waiting for
//! the supervisor. Split from `state.rs` for size; the lock and `Inner` are the parent's.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use shared::api::{RunRecord, State};

use super::Daemon;
use crate::events::Emit;

/// The newest runs kept in `runs.jsonl` and in memory (SPEC §10).
pub const RUNS_KEPT: usize = 1000;

/// What a control request asks (SPEC §10: `POST /stop`, `POST /restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop gracefully and exit, as `SIGTERM` does; no restart.
    Stop,
    /// Stop the run gracefully and start a new one at once.
    Restart,
}

impl Control {
    /// `stop` or `restart`, as the answer's `accepted` says.
    pub fn as_str(self) -> &'static str {
        match self {
            Control::Stop => "stop",
            Control::Restart => "restart",
        }
    }
}

/// A control request with where it came from (`socket`, or the TCP peer), for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRequest {
    /// What is asked.
    pub what: Control,
    /// Who asked: `socket` or the TCP peer's address.
    pub origin: String,
}

/// Why a control request was refused (`409`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefused {
    /// A stop is under way, or wrapperd has exited.
    #[error("wrapperd is already stopping")]
    Stopping,
}

impl Daemon {
    /// Asks the supervisor to stop or restart (the API's `POST /stop`, `POST /restart`).
    /// Refused while a stop is under way, once wrapperd has exited, or while another request
    /// waits to be taken.
    pub fn control(&self, what: Control, origin: String) -> Result<(), ControlRefused> {
        let mut g = self.lock();
        if matches!(g.state, State::Stopping | State::Exited) || g.control.is_some() {
            return Err(ControlRefused::Stopping);
        }
        g.control = Some(ControlRequest {
            what,
            origin: origin.clone(),
        });
        self.emit_locked(
            &g,
            Emit::Control {
                what: what.as_str(),
                origin,
            },
        );
        drop(g);
        self.control_wake.notify_one();
        Ok(())
    }

    /// wrapperd is going to exit (systemd's `STOPPING=1`, SPEC §12): it has exited, or a stop is
    /// under way that no other run will follow ([`Daemon::set_exiting`]); not while a run is
    /// stopped for a restart.
    pub fn exiting(&self) -> bool {
        let g = self.lock();
        g.exiting || g.state == State::Exited
    }

    /// The stop under way ends wrapperd (a stop signal, `POST /stop`, or any stop under
    /// `RESTART=never`).
    pub(crate) fn set_exiting(&self) {
        self.lock().exiting = true;
    }

    /// The control request waiting to be acted on, taken.
    pub(crate) fn take_control(&self) -> Option<ControlRequest> {
        self.lock().control.take()
    }

    /// The newest `count` ended runs (0: all held), oldest first, as a JSON array.
    pub fn runs_json(&self, count: usize) -> String {
        let g = self.lock();
        let skip = match count {
            0 => 0,
            n => g.runs.len().saturating_sub(n),
        };
        let mut out = String::from("[");
        for (i, line) in g.runs.iter().skip(skip).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(line);
        }
        out.push(']');
        out
    }

    /// The current (or last) run's number.
    pub(crate) fn run_number(&self) -> u64 {
        self.lock().run.number
    }

    /// What `runs.jsonl` held at start: the numbering continues from it.
    pub(crate) fn set_history(
        &self,
        lines: VecDeque<Arc<str>>,
        last: Option<RunRecord>,
        number: u64,
    ) {
        let mut g = self.lock();
        g.runs = lines;
        g.last_run = last;
        g.run.number = number;
    }

    /// A run ended: its record is the newest (`/status` `last_run`, `/runs`).
    pub(crate) fn run_ended(&self, record: RunRecord, line: Arc<str>) {
        let mut g = self.lock();
        g.runs.push_back(line);
        while g.runs.len() > RUNS_KEPT {
            g.runs.pop_front();
        }
        g.last_run = Some(record);
        drop(g);
        self.wake_status();
    }

    /// The newest run ended and another follows: its `exited` event, with its record (the
    /// last run of a life goes out with wrapperd's exit, [`Daemon::set_exit`]).
    pub(crate) fn report_run_exited(&self) {
        let mut g = self.lock();
        let Some(record) = g.last_run.clone() else {
            return;
        };
        g.exited_reported = Some(record.run);
        self.emit_locked(
            &g,
            Emit::Exited {
                ffmpeg_status: record.ffmpeg_status,
                record: Some(record),
                exit: None,
            },
        );
    }

    /// Between runs until `next_start`, for `why` (the ended run and its reason).
    pub(crate) fn set_restarting(&self, why: String, next_start: Instant) {
        let mut g = self.lock();
        g.state = State::Restarting;
        g.restarting = Some((why, next_start));
        let delay = next_start.saturating_duration_since(Instant::now());
        self.emit_locked(&g, Emit::Restarting { delay });
        drop(g);
        self.wake_status();
    }

    /// The restart counts `/status` shows.
    pub(crate) fn set_restarts(&self, restarts: u64, in_window: u64) {
        let mut g = self.lock();
        g.run.restarts = restarts;
        g.run.restarts_in_window = in_window;
    }
}
