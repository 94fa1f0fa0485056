//! fftop's state and the one function that changes it, [`App::update`].
//!
//! The state is plain data (targets, selection, view, filter, sort) so that drawing is a pure
//! function of it (`ui::draw(&App)`) and every behaviour can be tested by feeding events. The
//! selection is a [`Target`], not a row number, so it stays on the same target when rows re-sort
//! or targets come and go. `update` sets [`App::dirty`] only when something visible changed; the
//! terminal loop redraws only then (cheap over ssh).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use shared::api::{Health, RunRecord, Status};
use shared::client::Target;

use crate::event::{Event, PollResult};
use crate::history::History;

/// Seconds of rate history kept per target (and asked from `/series` on connect).
pub const HISTORY_SECONDS: u64 = 300;

pub use crate::sort::SortKey;

/// Which screen is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// One row per target.
    List,
    /// The selected target's charts, command, pids and log lines.
    Detail,
    /// A target's output lines full screen (`l`).
    Logs,
    /// A target's runs (`R`).
    Runs,
}

/// Whether fftop can reach a target.
#[derive(Debug, Clone, PartialEq)]
pub enum Conn {
    /// No answer yet, no error yet.
    Connecting,
    Up,
    /// The last poll failed; `since_ms` is when it first failed.
    Down {
        error: String,
        since_ms: i64,
    },
    /// It answered `401` (token missing or wrong); `since_ms` as for `Down`.
    Unauthorized {
        /// The answer's text.
        error: String,
        /// When it first answered so.
        since_ms: i64,
    },
    /// No API, but its work directory says it exited (SPEC §13); the status is status.json's.
    Exited {
        /// When it ended, Unix milliseconds.
        ended_ms: i64,
    },
}

/// Why the loop should end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quit {
    /// `q` or `Ctrl-C`.
    User,
    /// The terminal went away.
    TerminalGone(String),
}

/// Everything fftop knows about one target.
#[derive(Debug, Clone)]
pub struct TargetState {
    pub target: Target,
    pub name: String,
    pub conn: Conn,
    /// The newest status (kept while down, for the detail view).
    pub status: Option<Status>,
    /// When a poll last succeeded, Unix milliseconds.
    pub last_seen_ms: Option<i64>,
    pub history: History,
    /// The newest output lines, `(time, line)`, fetched while the detail view is open.
    pub logs: Vec<(String, String)>,
    /// The newest events (SPEC §11), for the detail view's timeline.
    pub events: Vec<shared::events::Event>,
    /// The newest ended run, for an exited target (from `status/runs.jsonl`).
    pub last_run: Option<RunRecord>,
    /// Its `/metrics` text as last fetched (`--serve` only).
    pub metrics: Option<String>,
    /// It is an aggregator: its encodes are rows of their own, it is not one.
    pub aggregator: bool,
    /// The aggregator this encode was found behind.
    pub parent: Option<Target>,
    /// It answered `403` to a control request: its actions are hidden.
    pub control_forbidden: bool,
}

impl TargetState {
    pub fn new(target: Target) -> Self {
        TargetState {
            name: target.name(),
            target,
            conn: Conn::Connecting,
            status: None,
            last_seen_ms: None,
            history: History::new(HISTORY_SECONDS as i64 * 1000),
            logs: Vec::new(),
            events: Vec::new(),
            last_run: None,
            metrics: None,
            aggregator: false,
            parent: None,
            control_forbidden: false,
        }
    }

    /// The status, only while the target answers.
    pub fn live(&self) -> Option<&Status> {
        match self.conn {
            Conn::Up => self.status.as_ref(),
            _ => None,
        }
    }

    /// The health as one word: the API's word, or `down` / `unauthorized` / `exited` /
    /// `connecting`.
    pub fn health_word(&self) -> &'static str {
        match (&self.conn, self.live()) {
            (Conn::Down { .. }, _) => "down",
            (Conn::Unauthorized { .. }, _) => "unauthorized",
            (Conn::Exited { .. }, _) => "exited",
            (_, Some(s)) => s.health.as_str(),
            _ => "connecting",
        }
    }

    /// Healthy or warming up (what `--once` exits 0 for).
    pub fn is_good(&self) -> bool {
        self.live().is_some_and(|s| s.health.is_good())
    }

    /// 0 is worst; the order of the health sort.
    pub fn badness_rank(&self) -> u8 {
        match (&self.conn, self.live().map(|s| s.health)) {
            (Conn::Down { .. } | Conn::Unauthorized { .. }, _) => 0,
            (Conn::Exited { .. }, _) => 3,
            (_, Some(Health::Failing)) => 1,
            (_, Some(Health::Stalled)) => 2,
            (_, Some(Health::Exited)) => 3,
            (_, Some(Health::Stopping | Health::Restarting)) => 4,
            (_, None) => 5,
            (_, Some(Health::WarmingUp)) => 6,
            (_, Some(Health::Ok)) => 7,
        }
    }

    /// When the current failure began: kept while it goes on; a new one starts a graph gap.
    fn failing_since(&mut self, at_ms: i64) -> i64 {
        match &self.conn {
            Conn::Down { since_ms, .. } | Conn::Unauthorized { since_ms, .. } => *since_ms,
            _ => {
                self.history.mark_gap();
                at_ms
            }
        }
    }

    /// Current fps (the manager's measured rate, else ffmpeg's own average).
    pub fn fps(&self) -> Option<f64> {
        let s = self.live()?;
        s.rates
            .fps
            .or_else(|| s.progress.as_ref().and_then(|p| p.fps))
    }

    /// Current speed, like [`TargetState::fps`].
    pub fn speed(&self) -> Option<f64> {
        let s = self.live()?;
        s.rates
            .speed
            .or_else(|| s.progress.as_ref().and_then(|p| p.speed))
    }

    /// An exited encode: its files say so, or it still answers with health `exited`. Such rows
    /// sort after the live ones and `x` hides them.
    pub fn is_exited(&self) -> bool {
        self.health_word() == "exited"
    }

    /// Why it is not fine: the status's reason, or the connection error.
    pub fn problem(&self) -> Option<String> {
        match &self.conn {
            Conn::Down { error, .. } | Conn::Unauthorized { error, .. } => Some(error.clone()),
            Conn::Exited { .. } => self.status.as_ref().and_then(|s| {
                s.exit
                    .as_ref()
                    .map(|e| e.reason.clone())
                    .or_else(|| s.reason.clone())
            }),
            _ => self.live().and_then(|s| s.reason.clone()),
        }
    }

    /// Seconds until the next run starts while the target is restarting, counted down from
    /// the polled `next_start_in_s` by the time since that poll (never below 0).
    pub fn next_start_in_s(&self, now_ms: i64) -> Option<f64> {
        let s = self.live().filter(|s| s.health == Health::Restarting)?;
        let polled_ago = self.last_seen_ms.map_or(0, |t| (now_ms - t).max(0)) as f64 / 1000.0;
        s.run.next_start_in_s.map(|n| (n - polled_ago).max(0.0))
    }

    /// [`TargetState::problem`], with the countdown to the next run while restarting when the
    /// reason does not already say it (wrapperd's reason does: `…; next start in 4.0 s`).
    pub fn problem_at(&self, now_ms: i64) -> Option<String> {
        let problem = self.problem();
        match (problem, self.next_start_in_s(now_ms)) {
            (Some(p), Some(n)) if !p.contains("next start") => {
                Some(format!("{p}; next start in {n:.0} s"))
            }
            (None, Some(n)) => Some(format!("next start in {n:.0} s")),
            (p, _) => p,
        }
    }
}

/// The whole state of fftop.
#[derive(Debug, Clone)]
pub struct App {
    pub targets: BTreeMap<Target, TargetState>,
    /// Targets named on the command line: a scan never removes them.
    pub explicit: BTreeSet<Target>,
    pub selected: Option<Target>,
    pub view: View,
    pub help: bool,
    pub filter: String,
    pub filter_editing: bool,
    pub sort: SortKey,
    /// Something visible changed since the last draw.
    pub dirty: bool,
    /// `Ctrl-L`: clear the terminal and repaint everything.
    pub repaint: bool,
    pub quit: Option<Quit>,
    pub interval: Duration,
    /// The clock used for drawing (ages, graphs), Unix milliseconds; set by ticks.
    pub now_ms: i64,
    /// Draw with colours (off with `NO_COLOR`, `--no-color`, `TERM=dumb`).
    pub color: bool,
    /// `x`: exited rows are hidden.
    pub hide_exited: bool,
    /// The targets `--scan` found last.
    pub scanned: BTreeSet<Target>,
    /// The targets `--targets-file` lists.
    pub filed: BTreeSet<Target>,
    /// Counts changes of the target set, so the loops restart pollers only when it changed.
    pub targets_gen: u64,
    /// `--read-only`: no actions.
    pub read_only: bool,
    /// An action waiting for `y`.
    pub confirm: Option<crate::actions::Confirm>,
    /// An action's result, shown in the footer for a few seconds.
    pub notice: Option<crate::actions::Notice>,
    /// Requests for the terminal loop to send (each on its own task).
    pub outbox: Vec<crate::actions::Request>,
    /// The logs view, while open.
    pub logs: Option<crate::logs::LogsView>,
    /// The runs view, while open.
    pub runs: Option<crate::runs::RunsView>,
    /// The terminal's height, for the logs view's pages.
    pub screen_rows: u16,
}

impl App {
    pub fn new(explicit: Vec<Target>, interval: Duration, color: bool, now_ms: i64) -> Self {
        let mut app = App {
            targets: BTreeMap::new(),
            explicit: explicit.iter().cloned().collect(),
            selected: None,
            view: View::List,
            help: false,
            filter: String::new(),
            filter_editing: false,
            sort: SortKey::Name,
            dirty: true,
            repaint: false,
            quit: None,
            interval,
            now_ms,
            color,
            hide_exited: false,
            scanned: BTreeSet::new(),
            filed: BTreeSet::new(),
            targets_gen: 0,
            read_only: false,
            confirm: None,
            notice: None,
            outbox: Vec::new(),
            logs: None,
            runs: None,
            screen_rows: 24,
        };
        for t in explicit {
            app.targets
                .entry(t.clone())
                .or_insert_with(|| TargetState::new(t));
        }
        app.fix_selection(None);
        app
    }

    /// The rows shown: filtered, then sorted by the sort key (ties by name, then address).
    pub fn visible(&self) -> Vec<&TargetState> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&TargetState> = self
            .targets
            .values()
            .filter(|t| !t.aggregator)
            .filter(|t| !(self.hide_exited && t.is_exited()))
            .filter(|t| {
                needle.is_empty()
                    || t.name.to_lowercase().contains(&needle)
                    || t.target.to_string().to_lowercase().contains(&needle)
            })
            .collect();
        let by_num = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        rows.sort_by(|a, b| {
            let primary = match self.sort {
                SortKey::Name => std::cmp::Ordering::Equal,
                SortKey::Health => a.badness_rank().cmp(&b.badness_rank()),
                SortKey::Fps => by_num(a.fps(), b.fps()),
                SortKey::Speed => by_num(a.speed(), b.speed()),
                SortKey::Uptime => {
                    by_num(a.live().map(|s| s.uptime_s), b.live().map(|s| s.uptime_s))
                }
            };
            // Exited rows after the live ones, whatever the sort.
            a.is_exited()
                .cmp(&b.is_exited())
                .then(primary)
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.target.cmp(&b.target))
        });
        rows
    }

    /// How many exited rows `x` hides right now.
    pub fn hidden_exited(&self) -> usize {
        if !self.hide_exited {
            return 0;
        }
        self.targets
            .values()
            .filter(|t| !t.aggregator && t.is_exited())
            .count()
    }

    /// The selected row's position among the visible rows.
    pub fn selected_index(&self) -> Option<usize> {
        let sel = self.selected.as_ref()?;
        self.visible().iter().position(|t| &t.target == sel)
    }

    pub fn selected_state(&self) -> Option<&TargetState> {
        self.selected.as_ref().and_then(|t| self.targets.get(t))
    }

    /// The target whose detail is open (its poller then also fetches log lines).
    pub fn detail_target(&self) -> Option<&Target> {
        match self.view {
            View::Detail => self.selected.as_ref(),
            View::Logs => self.logs.as_ref().map(|v| &v.target),
            View::List | View::Runs => None,
        }
    }

    /// Whose output lines the pollers fetch, and how many.
    pub fn watched(&self) -> Option<crate::poll::Watched> {
        let lines = match self.view {
            View::Logs => crate::logs::LOAD_LINES,
            _ => crate::poll::LOG_LINES,
        };
        self.detail_target().map(|t| crate::poll::Watched {
            target: t.clone(),
            lines,
        })
    }

    /// Keeps the selection on a visible target: the same one if it is still shown, else the row
    /// now at `old_index` (or the last row).
    pub(crate) fn fix_selection(&mut self, old_index: Option<usize>) {
        let visible: Vec<Target> = self.visible().iter().map(|t| t.target.clone()).collect();
        if self.selected.as_ref().is_some_and(|s| visible.contains(s)) {
            return;
        }
        let new = if visible.is_empty() {
            None
        } else {
            Some(visible[old_index.unwrap_or(0).min(visible.len() - 1)].clone())
        };
        if new != self.selected {
            self.selected = new;
            self.dirty = true;
        }
        if self.selected.is_none() && self.view == View::Detail {
            self.view = View::List;
        }
    }

    fn move_selection(&mut self, delta: isize) {
        let visible: Vec<Target> = self.visible().iter().map(|t| t.target.clone()).collect();
        if visible.is_empty() {
            return;
        }
        let cur = self.selected_index().map_or(-1, |i| i as isize);
        let next = if cur < 0 {
            0
        } else {
            (cur + delta).clamp(0, visible.len() as isize - 1)
        } as usize;
        if self.selected.as_ref() != Some(&visible[next]) {
            self.selected = Some(visible[next].clone());
            self.dirty = true;
        }
    }

    /// Applies one event.
    pub fn update(&mut self, event: Event) {
        match event {
            Event::Key(key) => self.on_key(key),
            Event::Resize(_, rows) => {
                self.screen_rows = rows;
                self.dirty = true;
            }
            Event::Tick { now_ms } => {
                if now_ms / 1000 != self.now_ms / 1000 {
                    self.dirty = true;
                }
                self.now_ms = now_ms;
                self.expire_notice();
            }
            Event::Control {
                target,
                what,
                result,
            } => self.on_control_done(target, what, result),
            Event::Runs { target, result } => self.on_runs(target, result),
            Event::Poll { target, result } => self.on_poll(target, result),
            Event::Scan(found) => self.on_scan(found),
            Event::TerminalGone(why) => self.quit = Some(Quit::TerminalGone(why)),
            Event::Remote { parent, children } => self.on_remote(parent, children),
            Event::TargetsFile(listed) => {
                self.filed = listed;
                self.sync_sources();
            }
            Event::Metrics { target, text } => {
                if let Some(t) = self.targets.get_mut(&target) {
                    t.metrics = text;
                }
            }
        }
    }

    pub(crate) fn on_poll(&mut self, target: Target, result: PollResult) {
        let Some(t) = self.targets.get_mut(&target) else {
            return; // removed while its poll was in flight
        };
        let result = crate::exited::if_it_says_so(&t.conn, result);
        match result {
            PollResult::Up(sample) => {
                let sample = *sample;
                if t.conn != Conn::Up || t.status.as_ref() != Some(&sample.status) {
                    self.dirty = true;
                }
                t.conn = Conn::Up;
                t.last_run = None;
                t.status = Some(sample.status);
                t.last_seen_ms = Some(sample.at_ms);
                if t.history.extend(sample.points) {
                    self.dirty = true;
                }
                if let Some(logs) = sample.logs {
                    if let Some(v) = self.logs.as_mut().filter(|v| v.target == target) {
                        self.dirty |= v.merge(&logs);
                    }
                    if logs != t.logs {
                        t.logs = logs;
                        self.dirty = true;
                    }
                }
                if crate::timeline::merge(&mut t.events, sample.events) {
                    self.dirty = true;
                }
            }
            PollResult::Down { error, at_ms } => {
                let since_ms = t.failing_since(at_ms);
                let conn = Conn::Down { error, since_ms };
                if t.conn != conn {
                    t.conn = conn;
                    self.dirty = true;
                }
            }
            PollResult::Unauthorized { error, at_ms } => {
                let since_ms = t.failing_since(at_ms);
                let conn = Conn::Unauthorized { error, since_ms };
                if t.conn != conn {
                    t.conn = conn;
                    self.dirty = true;
                }
            }
            PollResult::Exited(ans) => {
                let ans = *ans;
                if !matches!(t.conn, Conn::Exited { .. } | Conn::Down { .. }) {
                    t.history.mark_gap();
                }
                let conn = Conn::Exited {
                    ended_ms: ans.ended_ms,
                };
                if t.conn != conn
                    || t.status.as_ref() != Some(&ans.status)
                    || t.last_run != ans.last_run
                {
                    self.dirty = true;
                }
                t.conn = conn;
                t.status = Some(ans.status);
                t.last_run = ans.last_run;
            }
        }
        if self.hide_exited {
            let old_index = self.selected_index();
            self.fix_selection(old_index);
        }
    }

    fn on_scan(&mut self, found: BTreeSet<Target>) {
        self.scanned = found;
        self.sync_sources();
    }

    fn on_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => {
                self.quit = Some(Quit::User);
                return;
            }
            KeyCode::Char('l') if ctrl => {
                self.repaint = true;
                self.dirty = true;
                return;
            }
            _ => {}
        }
        self.dirty = true;
        if self.confirm.is_some() {
            self.on_confirm_key(key);
            return;
        }
        if self.help {
            // Any key closes the help.
            self.help = false;
            return;
        }
        if self.filter_editing {
            let old_index = self.selected_index();
            match key.code {
                KeyCode::Enter => self.filter_editing = false,
                KeyCode::Esc => {
                    self.filter_editing = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if !ctrl => self.filter.push(c),
                _ => {}
            }
            self.fix_selection(old_index);
            return;
        }
        if self.on_view_key(key) {
            return;
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc if self.view == View::Detail => {
                self.view = View::List;
            }
            KeyCode::Char('q') => self.quit = Some(Quit::User),
            // Esc never quits (htop, k9s): it clears the filter, or does nothing.
            KeyCode::Esc if !self.filter.is_empty() => {
                let old_index = self.selected_index();
                self.filter.clear();
                self.fix_selection(old_index);
            }
            KeyCode::Esc => self.dirty = false,
            KeyCode::Char('x') => {
                let old_index = self.selected_index();
                self.hide_exited = !self.hide_exited;
                self.fix_selection(old_index);
            }
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(isize::MAX / 2),
            KeyCode::Enter => {
                if self.view == View::List && self.selected.is_some() {
                    self.view = View::Detail;
                }
            }
            KeyCode::Char('/') => {
                self.view = View::List;
                self.filter_editing = true;
            }
            KeyCode::Char('s') => self.sort = self.sort.next(),
            KeyCode::Char('?') => self.help = true,
            _ => self.dirty = false,
        }
    }

    /// How many targets are in each display health, worst first, for the header.
    pub fn summary(&self) -> Vec<(&'static str, usize)> {
        let mut counts: BTreeMap<(u8, &'static str), usize> = BTreeMap::new();
        for t in self.targets.values().filter(|t| !t.aggregator) {
            *counts
                .entry((t.badness_rank(), t.health_word()))
                .or_default() += 1;
        }
        counts.into_iter().map(|((_, w), n)| (w, n)).collect()
    }
}
