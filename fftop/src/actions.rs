//! Operator actions (SPEC §13): stop and restart the selected encode, each after a confirmation
//! in the footer that names it (`restart cam1? y/N`), and the requests fftop sends on the side.
//!
//! The app never does I/O: a confirmed action (or a view that needs data, like the runs view)
//! becomes a [`Request`] in [`App::outbox`]; the terminal loop runs each on its own task and the
//! answer comes back as an [`Event`]. Only `y` confirms; any other key cancels. `--read-only`,
//! a target that answered `403` to a control request, and rows reached through an aggregator
//! (read-only) have no actions: their keys do nothing and the help does not list them.

use crossterm::event::{KeyCode, KeyEvent};
use shared::client::{ControlAction, Target};

use crate::app::{App, Conn, TargetState};

/// How long an action's result stays in the footer, milliseconds.
pub const NOTICE_MS: i64 = 5_000;

/// An action waiting for `y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    /// Stop or restart.
    pub what: ControlAction,
    /// Whom.
    pub target: Target,
    /// Its name, as the prompt says it.
    pub name: String,
}

impl Confirm {
    /// `restart cam1? y/N`
    pub fn prompt(&self) -> String {
        format!("{} {}? y/N", self.what.as_str(), self.name)
    }
}

/// A line shown in the footer until `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// What happened.
    pub text: String,
    /// Until when, Unix milliseconds.
    pub until_ms: i64,
}

/// Something for the terminal loop to send, on its own task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `POST /stop` or `POST /restart`.
    Control {
        /// To whom.
        target: Target,
        /// Which.
        what: ControlAction,
    },
    /// `GET /runs` for the runs view.
    Runs {
        /// Whose.
        target: Target,
    },
}

/// How a control request failed: the HTTP status when there was an answer, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `Some(403)` etc. when the target refused; `None` when it did not answer.
    pub status: Option<u16>,
    /// Why.
    pub reason: String,
}

/// The footer text of a control request's result.
pub fn result_text(what: ControlAction, name: &str, result: &Result<(), Failure>) -> String {
    match result {
        Ok(()) => format!("{} {name}: accepted", what.as_str()),
        Err(Failure {
            status: Some(s),
            reason,
        }) => format!("{} {name}: refused ({s}: {reason})", what.as_str()),
        Err(Failure {
            status: None,
            reason,
        }) => format!("{} {name}: failed: {reason}", what.as_str()),
    }
}

impl App {
    /// Whether the actions are offered for `t` (not read-only, not refused with `403`, not behind
    /// an aggregator, not an exited encode whose API is gone).
    pub fn can_act(&self, t: &TargetState) -> bool {
        !self.read_only
            && !t.control_forbidden
            && t.parent.is_none()
            && !t.aggregator
            && !matches!(t.conn, Conn::Exited { .. })
    }

    /// Whether the actions are offered for the selected target.
    pub fn can_act_on_selected(&self) -> bool {
        self.selected_state().is_some_and(|t| self.can_act(t))
    }

    /// `S` / `r`: asks to confirm `what` on the selected target; `false` when not offered.
    pub(crate) fn ask(&mut self, what: ControlAction) -> bool {
        let Some(t) = self.selected_state() else {
            return false;
        };
        if !self.can_act(t) {
            return false;
        }
        self.confirm = Some(Confirm {
            what,
            target: t.target.clone(),
            name: t.name.clone(),
        });
        true
    }

    /// A key while a confirmation is asked: `y` sends the request, anything else cancels.
    pub(crate) fn on_confirm_key(&mut self, key: KeyEvent) {
        let Some(c) = self.confirm.take() else {
            return;
        };
        if matches!(key.code, KeyCode::Char('y')) {
            self.notice = Some(Notice {
                text: format!("{} {}: sent…", c.what.as_str(), c.name),
                until_ms: self.now_ms + NOTICE_MS,
            });
            self.outbox.push(Request::Control {
                target: c.target,
                what: c.what,
            });
        } else {
            self.notice = None;
        }
    }

    /// A control request's answer: shown in the footer; a `403` hides that target's actions.
    pub(crate) fn on_control_done(
        &mut self,
        target: Target,
        what: ControlAction,
        result: Result<(), Failure>,
    ) {
        let name = match self.targets.get_mut(&target) {
            Some(t) => {
                if matches!(&result, Err(f) if f.status == Some(403)) {
                    t.control_forbidden = true;
                }
                t.name.clone()
            }
            None => target.name(),
        };
        self.notice = Some(Notice {
            text: result_text(what, &name, &result),
            until_ms: self.now_ms + NOTICE_MS,
        });
        self.dirty = true;
    }

    /// The clock moved: an expired notice goes.
    pub(crate) fn expire_notice(&mut self) {
        if self
            .notice
            .as_ref()
            .is_some_and(|n| n.until_ms <= self.now_ms)
        {
            self.notice = None;
            self.dirty = true;
        }
    }

    /// What the footer says instead of the keys: the prompt, else a fresh notice.
    pub fn footer_message(&self) -> Option<String> {
        if let Some(c) = &self.confirm {
            return Some(c.prompt());
        }
        self.notice.as_ref().map(|n| n.text.clone())
    }
}
