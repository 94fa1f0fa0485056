//! Everything that can change fftop's state, as one [`Event`] type.
//!
//! Keys and resizes come from the terminal, [`PollResult`]s from the per-target pollers, target
//! sets from the scanner, ticks from a clock. `App::update` is the only consumer, so the whole
//! program's behaviour can be driven (and tested) by feeding it events.

use std::collections::BTreeSet;

use crossterm::event::KeyEvent;
use shared::api::{SeriesPoint, Status};
use shared::client::Target;

#[derive(Debug, Clone)]
pub enum Event {
    /// A key was pressed.
    Key(KeyEvent),
    /// The terminal changed size (columns, rows).
    Resize(u16, u16),
    /// A poller's answer for `target`.
    Poll { target: Target, result: PollResult },
    /// The clock moved on; `now_ms` is Unix milliseconds.
    Tick { now_ms: i64 },
    /// The targets found by `--scan` right now (all scanned directories together).
    Scan(BTreeSet<Target>),
    /// The terminal went away (hang-up, end of input, read error): restore and exit.
    TerminalGone(String),
    /// A `HOST:PORT` target turned out to be an aggregator (`fftop --serve`, SPEC §13): its
    /// encodes now, each as its own target (reached through `/t/<name>/…`).
    Remote {
        /// The aggregator.
        parent: Target,
        /// One per encode it watches.
        children: Vec<RemoteChild>,
    },
    /// The targets listed in `--targets-file` right now (sent when the file changes).
    TargetsFile(BTreeSet<Target>),
    /// A control request's answer (`POST /stop`, `POST /restart`).
    Control {
        /// To whom it was sent.
        target: Target,
        /// Which.
        what: shared::client::ControlAction,
        /// Accepted, or why not.
        result: Result<(), crate::actions::Failure>,
    },
    /// `/runs`' answer for the runs view (oldest first), or why there is none.
    Runs {
        /// Whose.
        target: Target,
        /// The runs.
        result: Result<Vec<shared::api::RunRecord>, String>,
    },
    /// A target's `/metrics` text (only `--serve` asks for it), `None` when it did not answer.
    Metrics {
        /// Whose metrics.
        target: Target,
        /// The text as the target served it.
        text: Option<String>,
    },
}

/// One encode behind an aggregator.
#[derive(Debug, Clone)]
pub struct RemoteChild {
    /// Its address: the aggregator's URL with `/t/<name>` appended.
    pub target: Target,
    /// Its name on the aggregator (the row is named `host/encode` from it).
    pub encode: String,
    /// What the aggregator last knew of it (a status answer carries one rate point, made from
    /// its rates when the aggregator polled it, and the `/series` history the first time).
    pub result: PollResult,
}

/// What one poll of a target brought.
#[derive(Debug, Clone)]
pub enum PollResult {
    Up(Box<PollAnswer>),
    /// No usable answer; the error says why.
    Down {
        error: String,
        at_ms: i64,
    },
    /// The target answered `401`: a token is missing or wrong (not the same as down).
    Unauthorized {
        /// The answer's text.
        error: String,
        /// When, Unix milliseconds.
        at_ms: i64,
    },
    /// No API, but the work directory's files say the encode exited (SPEC §13).
    Exited(Box<crate::exited::ExitedAnswer>),
}

/// A successful poll.
#[derive(Debug, Clone)]
pub struct PollAnswer {
    pub status: Status,
    /// New rate points (the whole `/series` history right after connecting); the app keeps only
    /// the ones newer than what it holds.
    pub points: Vec<SeriesPoint>,
    /// The newest output lines as `(time, line)`, when the detail view of this target is open.
    pub logs: Option<Vec<(String, String)>>,
    /// Events since the last poll (`/events?since=ID&once`), when the detail view is open.
    pub events: Vec<shared::events::Event>,
    /// When the answer arrived, Unix milliseconds.
    pub at_ms: i64,
}
