//! The supervisor loop's step of SPEC §9: `STOP_INPUT_GRACE` after asking ffmpeg to finish, if
//! it is still running, end its network inputs ([`Child::end_inputs`], [`super::input`]) so a
//! read blocked on a hung source returns end-of-file and ffmpeg finishes its outputs.
//!
//! Done at most once per stop, never with a grace of 0 or after `SIGKILL`. What was done is
//! logged with numbers and goes into the exit reason ([`super::phase::Outcome::inputs_note`]); a refusal is
//! one warning saying what to grant, and the stop goes on as before (`STOP_TIMEOUT`, `SIGKILL`).

use tokio::time::Instant;

use super::phase::{Child, Events, InputEnd, Phase, Supervisor};

impl<C: Child, E: Events> Supervisor<C, E> {
    /// When to end ffmpeg's inputs: `STOP_INPUT_GRACE` after it was asked, unless that is 0,
    /// it was done already or ffmpeg was killed.
    pub(super) fn input_grace_at(&self) -> Option<Instant> {
        let grace = self.shared.config.stop_input_grace;
        match self.phase {
            Phase::Stopping {
                asked_at,
                killed: false,
                inputs: InputEnd::Waiting,
                ..
            } if !grace.is_zero() => Some(asked_at + grace),
            _ => None,
        }
    }

    /// "ffmpeg had not finished 1.0 s after SIGINT".
    fn not_finished(&self) -> String {
        let g = self.shared.config.stop_input_grace.as_secs_f64();
        // "1.0 s" as SPEC §9 writes it; "0.25 s" not rounded away.
        let grace = if (g * 10.0).fract() == 0.0 {
            format!("{g:.1}")
        } else {
            g.to_string()
        };
        format!("ffmpeg had not finished {grace} s after SIGINT")
    }

    /// The grace has passed: shut the read side of ffmpeg's sockets, once.
    pub(super) fn end_inputs(&mut self) {
        let after = self.not_finished();
        let stop_timeout = self.stop_timeout.as_secs_f64();
        let Phase::Stopping {
            inputs: inputs @ InputEnd::Waiting,
            killed: false,
            ..
        } = &mut self.phase
        else {
            return;
        };
        *inputs = match self.child.end_inputs() {
            Ok(0) => {
                tracing::info!("{after} and holds no sockets: nothing to end");
                InputEnd::Tried
            }
            Ok(n) => {
                tracing::info!(
                    "{after}: ended its input (read side of {} shut)",
                    sockets(n)
                );
                InputEnd::Ended {
                    at: Instant::now(),
                    sockets: n,
                }
            }
            Err(e) if e.is_gone() => {
                tracing::debug!("ending ffmpeg's inputs: it is gone: {e}");
                InputEnd::Tried
            }
            Err(e) => {
                tracing::warn!(
                    "{after}, but its inputs cannot be ended: {e}; waiting up to \
                     STOP_TIMEOUT ({stop_timeout} s) and SIGKILL instead"
                );
                InputEnd::Tried
            }
        };
    }

    /// At ffmpeg's end: what ending its inputs did, logged and for the exit reason.
    pub(super) fn inputs_note(&self, inputs: InputEnd, killed: bool) -> Option<String> {
        let InputEnd::Ended { at, sockets: n } = inputs else {
            return None;
        };
        let later = at.elapsed().as_secs_f64();
        let after = format!(
            "{}: ended its input (read side of {} shut)",
            self.not_finished(),
            sockets(n)
        );
        let note = if killed {
            format!("{after}; it had still not exited {later:.3} s later")
        } else {
            format!("{after}; ffmpeg exited {later:.3} s later")
        };
        tracing::info!("{note}");
        Some(note)
    }
}

/// "1 socket", "2 sockets".
fn sockets(n: usize) -> String {
    if n == 1 {
        "1 socket".to_string()
    } else {
        format!("{n} sockets")
    }
}
