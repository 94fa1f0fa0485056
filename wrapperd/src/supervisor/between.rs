//! Between two runs (SPEC §10): waiting out the restart delay while everything else goes on.
//!
//! The API, the rings and the logs stay up; the state is `restarting` with the reason and the
//! time of the next start. The wait ends early for a stop signal or `POST /stop` (wrapperd
//! exits `0`, SPEC §7: nothing was running to be stopped) and for `POST /restart` (the next run
//! starts at once). `SIGHUP` rotates the logs, and orphans are reaped, as during a run.

use tokio::time::Instant;

use super::phase::{Child, Events, Supervisor};
use crate::signals::Event;
use crate::state::Control;

/// How the wait between runs ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Between {
    /// The delay passed: start the next run.
    Elapsed,
    /// `POST /restart`: start the next run now; who asked.
    RestartNow(String),
    /// A stop was asked; the reason for the exit.
    Stop(String),
}

impl<C: Child, E: Events> Supervisor<C, E> {
    /// Waits until `until` unless a stop or a restart is asked first.
    pub(crate) async fn between_runs(&mut self, until: Instant) -> Between {
        loop {
            self.shared.beat();
            tokio::select! {
                () = tokio::time::sleep_until(until) => return Between::Elapsed,
                () = self.shared.beat_wake.notified() => {}
                ev = self.events.next() => match ev {
                    Event::Stop(sig) => {
                        return Between::Stop(format!(
                            "stop requested by {sig} while waiting to restart"
                        ))
                    }
                    Event::Rotate => self.rotate_logs(),
                    Event::Child => {
                        let _ = self.child.reap();
                    }
                },
                () = self.shared.control_wake.notified() => {
                    let Some(req) = self.shared.take_control() else { continue };
                    return match req.what {
                        Control::Stop => Between::Stop(format!(
                            "stop requested by POST /stop ({}) while waiting to restart",
                            req.origin
                        )),
                        Control::Restart => Between::RestartNow(req.origin),
                    };
                }
            }
        }
    }
}
