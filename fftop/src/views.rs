//! The keys that open, drive and close the logs and runs views, and those of the actions
//! (`S` stop, `r` restart, `l` logs, `R` runs), as part of [`App::update`].

use crossterm::event::{KeyCode, KeyEvent};
use shared::api::RunRecord;
use shared::client::{ControlAction, Target};

use crate::actions::Request;
use crate::app::{App, Conn, View};
use crate::logs::{LogsView, Outcome};
use crate::runs::RunsView;

impl App {
    /// Lines the logs view shows per page (the screen less its title and key lines).
    pub fn logs_page(&self) -> usize {
        self.screen_rows.saturating_sub(2).max(1) as usize
    }

    /// A key for the logs or runs view, or one of the keys that open them or ask for an action;
    /// `true` when it was taken.
    pub(crate) fn on_view_key(&mut self, key: KeyEvent) -> bool {
        let outcome = match self.view {
            View::Logs => {
                let page = self.logs_page();
                self.logs.as_mut().map(|v| v.on_key(key, page))
            }
            View::Runs if key.code == KeyCode::Char('R') => {
                // Again: reload.
                if let Some(v) = self.runs.as_ref() {
                    self.outbox.push(Request::Runs {
                        target: v.target.clone(),
                    });
                }
                Some(Outcome::Changed)
            }
            View::Runs => self.runs.as_mut().map(|v| v.on_key(key)),
            View::List | View::Detail => return self.on_action_key(key),
        };
        match outcome {
            Some(Outcome::Back) | None => self.close_view(),
            Some(Outcome::Changed) => {}
            Some(Outcome::Ignored) if key.code == KeyCode::Char('?') => self.help = true,
            Some(Outcome::Ignored) => self.dirty = false,
        }
        true
    }

    /// `S`, `r`, `l`, `R` in the list or the detail.
    fn on_action_key(&mut self, key: KeyEvent) -> bool {
        let Some(target) = self.selected.clone() else {
            return false;
        };
        match key.code {
            KeyCode::Char('S') => {
                if !self.ask(ControlAction::Stop) {
                    self.dirty = false;
                }
            }
            KeyCode::Char('r') => {
                if !self.ask(ControlAction::Restart) {
                    self.dirty = false;
                }
            }
            KeyCode::Char('l') => {
                let mut v = LogsView::new(target.clone(), self.view);
                // An exited encode has no API to follow: its last run's lines.
                if let Some(run) = self.targets.get(&target).and_then(|t| match t.conn {
                    Conn::Exited { .. } => t.last_run.as_ref(),
                    _ => None,
                }) {
                    let end = run.end.get(11..19).unwrap_or_default().to_string();
                    let lines: Vec<(String, String)> = run
                        .last_lines
                        .iter()
                        .map(|l| (end.clone(), l.clone()))
                        .collect();
                    v.merge(&lines);
                }
                self.logs = Some(v);
                self.view = View::Logs;
            }
            KeyCode::Char('R') => self.open_runs(target),
            _ => return false,
        }
        true
    }

    fn open_runs(&mut self, target: Target) {
        self.runs = Some(RunsView::new(target.clone(), self.view));
        self.view = View::Runs;
        self.outbox.push(Request::Runs { target });
    }

    /// Back to where the logs or runs view was opened from.
    fn close_view(&mut self) {
        let back = match self.view {
            View::Logs => self.logs.take().map(|v| v.back),
            View::Runs => self.runs.take().map(|v| v.back),
            _ => None,
        };
        self.view = back.unwrap_or(View::List);
        if self.view == View::Detail && self.selected.is_none() {
            self.view = View::List;
        }
    }

    /// `/runs`' answer for the runs view.
    pub(crate) fn on_runs(&mut self, target: Target, result: Result<Vec<RunRecord>, String>) {
        if let Some(v) = self.runs.as_mut().filter(|v| v.target == target) {
            v.set(result);
            self.dirty = true;
        }
    }
}
