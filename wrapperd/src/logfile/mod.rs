//! Log files (`logs/ffmpeg.log`, `logs/wrapperd.log`) written by a thread of their own, with
//! rotation (SPEC §4 "Logs").
//!
//! Why our own: ffmpeg must never be held back by its wrapper, so the caller of [`LogSink::push`]
//! (the reader of ffmpeg's output, up to millions of lines per second) must never wait on the disk;
//! and the rotation rules (size that is never exceeded, age of a file across restarts, `N = 0`)
//! are more than `rolling-file` can do.
//!
//! # How it works
//! - `push` formats the line (`<YYYY-MM-DD HH:MM:SS> line` or `[…] line`, local time) straight
//!   into a pending `Vec<u8>` under a mutex held for a few dozen nanoseconds: no allocation per
//!   line, the formatted timestamp is cached per second (`shared::timefmt::LocalSecondCache`).
//!   The output readers hand over all the lines of one read at once ([`LogSink::push_joined`]):
//!   one lock, the timestamp formatted once, one scan for line ends over all of them, so a
//!   burst of millions of short lines costs a copy per line and little else. The writer thread swaps the whole pending
//!   buffer for its own (emptied) one and writes it with few large `write`s (double buffer).
//!   After a write the writer lingers up to 20 ms for more lines (woken early only when 256 KiB
//!   are pending), so a busy log costs pushers almost no wake-ups; an idle writer is woken by the
//!   first line. So a line is in the file at most ~20 ms after `push`.
//! - Line ends inside a line (`\n`, `\r`) are written as spaces: one pushed line is one file line,
//!   which is what lets rotation and the drop count work on line boundaries.
//! - The pending buffer is capped ([`PENDING_CAP`]). A line is dropped only when the cap is hit
//!   (the disk is too slow or hangs) or when writing it failed (disk full or failing); each is
//!   counted ([`LogSink::dropped`]). Once writing works again the file first gets one line
//!   `[wrapperd] N lines dropped: disk full, failing or too slow`, then goes on. If a write failed
//!   in the middle of a line, the rest of that line is kept and written first when the disk works
//!   again, so no line in the file is ever cut.
//! - Rotation (`f` → `f.1` → … → `f.N`, the oldest deleted; with `N = 0` the file is just started
//!   anew) happens only in the writer and only between two lines. Size mode: before a write would
//!   take the file past `max_bytes`, the file is rotated at the last line end that fits; a single
//!   line longer than `max_bytes` goes alone into its own file. [`LogSink::rotate`] (SIGHUP) and the
//!   age rule put a *mark* at the current end of the pending buffer, so the rotation happens
//!   exactly between the lines pushed before and after it. An empty file is never rotated.
//! - Age (days mode) is measured with the timestamps given to `push` (the caller's clock, which
//!   also makes it testable): a file is started by its first line, and the first line whose time is
//!   `days` days or more after that start is the first line of a new file. Across a restart the
//!   start of an existing file is read from its first line (our own formats `<…>` and `[…]`, local
//!   time); if that does not parse, the file's creation time (statx birth time), else its mtime,
//!   is used. No sidecar file is needed: the first line travels with the file through renames.
//! - A restarted wrapperd appends to the existing file; size mode counts its current size.
//! - Before every write (one `stat` a batch), the writer checks that the path still names the
//!   file it has open (same device and inode); if not (the directory or the file was deleted or
//!   moved away), it recreates the directory and reopens the file, so the lines go to the new
//!   file. An idle writer does not wake for this (100 idle encodes cost no wake-ups here); while
//!   a drop notice is owed (the disk failed) it checks and retries once a second. A file that
//!   could not be opened is retried at the next write.
//! - [`LogSink::close`] writes out everything pushed before it, then joins the writer; pushes after
//!   `close` are ignored. Dropping the last clone of a sink closes it too.
//! - wrapperd's own stderr is a sink of the same kind (`LogSink::stream`, used by
//!   [`crate::logging`]): no rotation, no path check, and the same drop-and-count with a notice
//!   (`… lines dropped: stderr not read, failing or too slow`), so a stderr nobody reads (a
//!   stalled container log driver) never holds back the task that logs. Messages about the log
//!   files themselves (cannot write, works again) go there too, without a timestamp.
//!
//! # Layout
//! - `sink`: the push side, [`LogSink`].
//! - `writer`: the writer thread's loop, drops and notices, over an `Output`.
//! - `file`: `RotatingFile` (open, reopen, rotate, backups, path check), and reading the
//!   start time of an existing file.
//! - `stream`: wrapperd's stderr as an output: never rotated.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use shared::timefmt::LOCAL_TEXT_LEN;

mod file;
mod sink;
mod stream;
mod writer;

pub use sink::LogSink;

/// When a log file is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// No file grows past this many bytes; a single longer line goes alone into its own file.
    Size { max_bytes: u64 },
    /// A file is rotated at its next line once it is this many days old (measured from when the
    /// file was started, also across a restart of wrapperd).
    Days { days: u64 },
}

/// How each line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `<YYYY-MM-DD HH:MM:SS> line` (ffmpeg.log)
    Angle,
    /// `[YYYY-MM-DD HH:MM:SS] line` (wrapperd.log)
    Bracket,
}

impl Style {
    fn brackets(self) -> (u8, u8) {
        match self {
            Style::Angle => (b'<', b'>'),
            Style::Bracket => (b'[', b']'),
        }
    }
}

/// What a log file is and how it is rotated.
#[derive(Debug, Clone)]
pub struct LogSpec {
    /// e.g. `WORKDIR/logs/ffmpeg.log`; rotated copies are `ffmpeg.log.1` … `ffmpeg.log.N`.
    pub path: std::path::PathBuf,
    /// When the file is rotated.
    pub rotation: Rotation,
    /// N: rotated files kept (0: none).
    pub backups: usize,
    /// How each line is stamped.
    pub style: Style,
}

/// A log file that cannot be opened or written at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot write log file {path}: {source}")]
pub struct LogError {
    /// The file's path.
    pub path: String,
    /// Why.
    pub source: std::io::Error,
}

/// Most bytes waiting for the writer; lines that do not fit any more are dropped (and counted).
pub const PENDING_CAP: usize = 256 << 20;

/// How often the writer checks that the path still names its open file.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// After a write the writer waits this long for more lines (unless [`WAKE_AT`] bytes come
/// sooner), so that a busy log is written in large batches and pushers rarely have to wake it.
/// It is also the longest a line waits before it is written.
const LINGER: Duration = Duration::from_millis(20);
/// Pending bytes at which a lingering writer is woken early.
const WAKE_AT: usize = 256 << 10;
/// One day in milliseconds (days mode).
const DAY_MS: i64 = 86_400_000;
/// `<` + `YYYY-MM-DD HH:MM:SS` + `>` + ` ` before the line, `\n` after it.
const OVERHEAD: usize = 1 + LOCAL_TEXT_LEN + 2 + 1;
/// Buffers larger than this are shrunk after use, so one burst does not pin memory forever.
const KEEP_CAPACITY: usize = 16 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
