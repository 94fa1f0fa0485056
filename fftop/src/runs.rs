//! The runs view's state (SPEC §13): a target's `/runs` as a table, newest first (number, start,
//! duration, reason, error line); Enter shows the selected run's last output lines.

use crossterm::event::{KeyCode, KeyEvent};
use shared::api::RunRecord;
use shared::client::Target;

use crate::app::View;
use crate::logs::Outcome;

/// Runs asked from `/runs`.
pub const RUNS_COUNT: usize = 100;

/// The runs view of one target.
#[derive(Debug, Clone)]
pub struct RunsView {
    /// Whose runs.
    pub target: Target,
    /// Where `Esc` goes back to.
    pub back: View,
    /// The answer, newest run first; `None` while loading.
    pub runs: Option<Result<Vec<RunRecord>, String>>,
    /// The selected row.
    pub selected: usize,
    /// The selected run's lines are shown.
    pub open: bool,
}

impl RunsView {
    pub fn new(target: Target, back: View) -> Self {
        RunsView {
            target,
            back,
            runs: None,
            selected: 0,
            open: false,
        }
    }

    /// `/runs`' answer (oldest first, as the API gives it).
    pub fn set(&mut self, result: Result<Vec<RunRecord>, String>) {
        self.runs = Some(result.map(|mut r| {
            r.reverse();
            r
        }));
        self.selected = self.selected.min(self.len().saturating_sub(1));
    }

    fn len(&self) -> usize {
        match &self.runs {
            Some(Ok(r)) => r.len(),
            _ => 0,
        }
    }

    /// The selected run.
    pub fn selected_run(&self) -> Option<&RunRecord> {
        match &self.runs {
            Some(Ok(r)) => r.get(self.selected),
            _ => None,
        }
    }

    /// Applies a key.
    pub fn on_key(&mut self, key: KeyEvent) -> Outcome {
        let last = self.len().saturating_sub(1);
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') if self.open => self.open = false,
            KeyCode::Esc | KeyCode::Char('q') => return Outcome::Back,
            KeyCode::Enter if self.selected_run().is_some() => self.open = !self.open,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = last,
            _ => return Outcome::Ignored,
        }
        Outcome::Changed
    }
}
