//! The logs view's state (SPEC §13): a target's output lines full screen, loaded with
//! `/last_stdout?count=`[`LOAD_LINES`] then followed (the target's poller fetches the newest
//! [`FOLLOW_LINES`] each interval and [`LogsView::merge`] appends the new ones), with scrolling,
//! `/` search with `n`/`N` (wrapping), `f` to follow or not, and a severity per line so error and
//! warning lines can be coloured and marked (`!` error, `~` warning: readable without colour).

use crossterm::event::{KeyCode, KeyEvent};
use shared::client::Target;

use crate::app::View;

/// Lines loaded when the view opens.
pub const LOAD_LINES: usize = 2000;
/// Lines fetched each interval while following.
pub const FOLLOW_LINES: usize = 500;
/// Lines kept at most (the oldest go).
pub const MAX_LINES: usize = 20_000;

/// How bad a line looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `error`, `fatal`, `failed`, `invalid`, `could not`.
    Error,
    /// `warning`, `deprecated`.
    Warning,
    /// Anything else.
    Normal,
}

/// A line's [`Severity`], by the words ffmpeg uses.
pub fn severity(line: &str) -> Severity {
    let l = line.to_lowercase();
    if ["error", "fatal", "failed", "invalid", "could not"]
        .iter()
        .any(|w| l.contains(w))
    {
        Severity::Error
    } else if ["warning", "deprecated"].iter().any(|w| l.contains(w)) {
        Severity::Warning
    } else {
        Severity::Normal
    }
}

/// What a key did in the logs view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Leave the view.
    Back,
    /// Something changed.
    Changed,
    /// Nothing to do.
    Ignored,
}

/// The logs view of one target.
#[derive(Debug, Clone)]
pub struct LogsView {
    /// Whose lines.
    pub target: Target,
    /// Where `Esc` goes back to.
    pub back: View,
    /// `(time, line)`, oldest first.
    pub lines: Vec<(String, String)>,
    /// The first answer came (before it, the view says it is loading).
    pub loaded: bool,
    /// Show the newest lines as they come.
    pub follow: bool,
    /// The first line shown when not following.
    pub top: usize,
    /// The search text (`/`).
    pub search: String,
    /// The search is being typed.
    pub search_editing: bool,
    /// The line of the current match.
    pub current: Option<usize>,
}

impl LogsView {
    pub fn new(target: Target, back: View) -> Self {
        LogsView {
            target,
            back,
            lines: Vec::new(),
            loaded: false,
            follow: true,
            top: 0,
            search: String::new(),
            search_editing: false,
            current: None,
        }
    }

    /// Adds the lines of a poll: the whole batch the first time, afterwards the ones after the
    /// newest line held (all of them when it is not in the batch: lines were missed). `true`
    /// when lines were added.
    pub fn merge(&mut self, batch: &[(String, String)]) -> bool {
        let first = !self.loaded;
        self.loaded = true;
        let new: &[(String, String)] = match self.lines.last() {
            None => batch,
            Some(last) => match batch.iter().rposition(|l| l == last) {
                Some(i) => &batch[i + 1..],
                None => batch,
            },
        };
        if new.is_empty() {
            return first;
        }
        self.lines.extend_from_slice(new);
        let extra = self.lines.len().saturating_sub(MAX_LINES);
        if extra > 0 {
            self.lines.drain(..extra);
            self.top = self.top.saturating_sub(extra);
            self.current = self.current.and_then(|c| c.checked_sub(extra));
        }
        true
    }

    /// The first line shown for a page of `page` lines.
    pub fn first_shown(&self, page: usize) -> usize {
        let max_top = self.lines.len().saturating_sub(page);
        if self.follow {
            max_top
        } else {
            self.top.min(max_top)
        }
    }

    /// Whether line `i` matches the search.
    pub fn matches(&self, i: usize) -> bool {
        !self.search.is_empty()
            && self
                .lines
                .get(i)
                .is_some_and(|(_, l)| l.to_lowercase().contains(&self.search.to_lowercase()))
    }

    /// How many lines match, and which of them is current (1-based).
    pub fn match_count(&self) -> (usize, Option<usize>) {
        let mut total = 0;
        let mut at = None;
        for i in 0..self.lines.len() {
            if self.matches(i) {
                total += 1;
                if Some(i) == self.current {
                    at = Some(total);
                }
            }
        }
        (total, at)
    }

    fn scroll(&mut self, delta: isize, page: usize) {
        let max_top = self.lines.len().saturating_sub(page);
        let cur = self.first_shown(page) as isize;
        self.top = (cur + delta).clamp(0, max_top as isize) as usize;
        self.follow = false;
    }

    fn jump(&mut self, i: usize, page: usize) {
        self.current = Some(i);
        self.follow = false;
        let max_top = self.lines.len().saturating_sub(page);
        self.top = i.saturating_sub(page / 2).min(max_top);
    }

    /// `n` (`forward`) or `N`: the next or previous match from the current one when it is on
    /// the page (else from the top of the page), wrapping around the ends. `false` when nothing
    /// matches.
    pub fn find(&mut self, forward: bool, page: usize) -> bool {
        let n = self.lines.len();
        if n == 0 || self.search.is_empty() {
            return false;
        }
        let first = self.first_shown(page);
        let on_page = self.current.filter(|c| (first..first + page).contains(c));
        let from = match on_page {
            Some(c) => c,
            // From the top of the page: forward includes it, backward starts after it.
            None if forward => (self.first_shown(page) + n - 1) % n,
            None => self.first_shown(page) % n,
        };
        let hit = (1..=n)
            .map(|k| {
                if forward {
                    (from + k) % n
                } else {
                    (from + n - k % n) % n
                }
            })
            .find(|&i| self.matches(i));
        match hit {
            Some(i) => {
                self.jump(i, page);
                true
            }
            None => false,
        }
    }

    /// Applies a key; `page` is how many lines the screen shows.
    pub fn on_key(&mut self, key: KeyEvent, page: usize) -> Outcome {
        if self.search_editing {
            match key.code {
                KeyCode::Enter => {
                    self.search_editing = false;
                    self.current = None;
                    self.find(true, page);
                }
                KeyCode::Esc => {
                    self.search_editing = false;
                    self.search.clear();
                    self.current = None;
                }
                KeyCode::Backspace => {
                    self.search.pop();
                }
                KeyCode::Char(c) => self.search.push(c),
                _ => return Outcome::Ignored,
            }
            return Outcome::Changed;
        }
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') => return Outcome::Back,
            KeyCode::Up | KeyCode::Char('k') => self.scroll(-1, page),
            KeyCode::Down | KeyCode::Char('j') => self.scroll(1, page),
            KeyCode::PageUp => self.scroll(-(page as isize), page),
            KeyCode::PageDown => self.scroll(page as isize, page),
            KeyCode::Home | KeyCode::Char('g') => {
                self.follow = false;
                self.top = 0;
            }
            KeyCode::End | KeyCode::Char('G') => self.follow = true,
            KeyCode::Char('f') => {
                if self.follow {
                    self.top = self.first_shown(page);
                }
                self.follow = !self.follow;
            }
            KeyCode::Char('/') => {
                self.search_editing = true;
                self.search.clear();
                self.current = None;
            }
            KeyCode::Char('n') => {
                self.find(true, page);
            }
            KeyCode::Char('N') => {
                self.find(false, page);
            }
            _ => return Outcome::Ignored,
        }
        Outcome::Changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn view(lines: &[&str]) -> LogsView {
        let mut v = LogsView::new(Target::Unix(PathBuf::from("/x/api.sock")), View::List);
        let batch: Vec<(String, String)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("t{i}"), l.to_string()))
            .collect();
        v.merge(&batch);
        v
    }

    #[test]
    fn merge_appends_only_the_new_lines() {
        let mut v = view(&["a", "b", "c"]);
        let next: Vec<(String, String)> = [("t1", "b"), ("t2", "c"), ("t3", "d")]
            .iter()
            .map(|(t, l)| (t.to_string(), l.to_string()))
            .collect();
        assert!(v.merge(&next));
        let got: Vec<&str> = v.lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(got, ["a", "b", "c", "d"]);
        assert!(!v.merge(&next), "nothing new");
    }

    #[test]
    fn severity_by_words() {
        assert_eq!(severity("Error while decoding stream"), Severity::Error);
        assert_eq!(severity("[mp4 @ 0x1] Warning: foo"), Severity::Warning);
        assert_eq!(severity("frame=  100 fps=25"), Severity::Normal);
    }

    #[test]
    fn find_wraps_both_ways() {
        let mut v = view(&["x", "hit 1", "y", "hit 2", "z"]);
        v.search = "HIT".into();
        // Following: the page shows the last two lines, so the first hit is line 3.
        assert!(v.find(true, 2));
        assert_eq!(v.current, Some(3));
        assert!(v.find(true, 2), "wraps to the first");
        assert_eq!(v.current, Some(1));
        assert!(v.find(true, 2));
        assert_eq!(v.current, Some(3));
        assert!(v.find(false, 2));
        assert_eq!(v.current, Some(1));
        assert!(v.find(false, 2), "wraps back to the last");
        assert_eq!(v.current, Some(3));
        v.search = "nothing".into();
        assert!(!v.find(true, 2));
    }
}
