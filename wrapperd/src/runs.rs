//! The run history of SPEC §10: `status/runs.jsonl`, one JSON object per ended run, and what
//! the exit reason and the record say of ffmpeg's own last words.
//!
//! The file outlives wrapperd: [`load`] reads it at start, so a wrapperd restarted on the same
//! work directory (a container's restart policy, a crash loop) continues the numbering. Each new
//! record is written by a thread of its own ([`RunLog`]), never by the supervisor, so a slow disk
//! never delays the next run. The thread rewrites the file whole (a temporary file, then a
//! rename) with the newest [`RUNS_KEPT`] lines: a reader sees the old file or the new one, never
//! a partial line, and the trimming is the same write. Records queued while it writes are taken
//! together, so a fast crash loop costs one rewrite per batch, not per run.
//!
//! A record keeps the run's last 20 lines, each cut at [`RECORD_LINE_MAX`] bytes, so the file
//! stays near a few MB at most.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::api::RunRecord;

use crate::output::is_stats_line;

pub(crate) use crate::state::RUNS_KEPT;

/// The longest output line kept in a record, in bytes (cut on a character boundary, with `…`).
pub(crate) const RECORD_LINE_MAX: usize = 1024;

/// Output lines kept in a record.
pub(crate) const RECORD_LINES: usize = 20;

/// ffmpeg's last words in an exit reason: at most this many lines.
pub(crate) const LAST_WORDS: usize = 3;

/// What `runs.jsonl` held at start.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// The newest [`RUNS_KEPT`] records as their lines, oldest first.
    pub(crate) lines: VecDeque<Arc<str>>,
    /// The newest record.
    pub(crate) last: Option<RunRecord>,
    /// The highest run number in the file (0: none).
    pub(crate) last_number: u64,
}

/// Reads `path`; lines that are not records are skipped (a file cut by a crash, an edit).
pub(crate) fn load(path: &Path) -> History {
    let Ok(text) = std::fs::read_to_string(path) else {
        return History::default();
    };
    let mut h = History::default();
    for line in text.lines() {
        let Ok(rec) = serde_json::from_str::<RunRecord>(line) else {
            continue;
        };
        h.last_number = h.last_number.max(rec.run);
        h.last = Some(rec);
        h.lines.push_back(Arc::from(line));
        if h.lines.len() > RUNS_KEPT {
            h.lines.pop_front();
        }
    }
    h
}

/// A record as its line of `runs.jsonl` (no newline).
pub(crate) fn to_line(rec: &RunRecord) -> Arc<str> {
    Arc::from(serde_json::to_string(rec).unwrap_or_else(|_| "{}".into()))
}

/// The thread that keeps `runs.jsonl`.
pub(crate) struct RunLog {
    /// New lines for the thread.
    tx: mpsc::Sender<Arc<str>>,
    /// Receives once the thread has written everything and ended.
    done: mpsc::Receiver<()>,
}

impl RunLog {
    /// Starts the thread over `path`, which holds `lines` now.
    pub(crate) fn start(path: PathBuf, lines: VecDeque<Arc<str>>) -> std::io::Result<RunLog> {
        let (tx, rx) = mpsc::channel::<Arc<str>>();
        let (done_tx, done) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("runs".into())
            .spawn(move || {
                keep(&path, lines, &rx);
                let _ = done_tx.send(());
            })?;
        Ok(RunLog { tx, done })
    }

    /// Queues a record's line.
    pub(crate) fn append(&self, line: Arc<str>) {
        let _ = self.tx.send(line);
    }

    /// Writes what is queued and ends the thread; waits up to `wait` (a hung disk does not hold
    /// wrapperd's exit).
    pub(crate) fn close(self, wait: Duration) {
        drop(self.tx);
        let _ = self.done.recv_timeout(wait);
    }
}

/// The thread: each batch of new lines is one rewrite of the file.
fn keep(path: &Path, mut lines: VecDeque<Arc<str>>, rx: &mpsc::Receiver<Arc<str>>) {
    let mut failed_since: Option<Instant> = None;
    while let Ok(first) = rx.recv() {
        lines.push_back(first);
        lines.extend(rx.try_iter());
        while lines.len() > RUNS_KEPT {
            lines.pop_front();
        }
        match rewrite(path, &lines) {
            Ok(()) => failed_since = None,
            Err(e) if failed_since.is_none() => {
                tracing::warn!("cannot write {}: {e}", path.display());
                failed_since = Some(Instant::now());
            }
            Err(_) => {}
        }
    }
}

/// Writes `lines` to a temporary file beside `path` and renames it over `path`.
fn rewrite(path: &Path, lines: &VecDeque<Arc<str>>) -> std::io::Result<()> {
    let tmp = path.with_file_name(".runs.jsonl.tmp");
    let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        buf.extend_from_slice(l.as_bytes());
        buf.push(b'\n');
    }
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&buf)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// ffmpeg's own last words: its last lines that are not stats updates, up to [`LAST_WORDS`],
/// joined by ` / `; `None` when it printed nothing else. `lines` are the run's lines, oldest
/// first.
pub(crate) fn last_words(lines: &[String]) -> Option<String> {
    let mut words: Vec<&str> = lines
        .iter()
        .rev()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !is_stats_line(l))
        .take(LAST_WORDS)
        .collect();
    words.reverse();
    (!words.is_empty()).then(|| words.join(" / "))
}

/// `line` cut at [`RECORD_LINE_MAX`] bytes on a character boundary, with `…` when cut.
pub(crate) fn clip(line: &str) -> String {
    if line.len() <= RECORD_LINE_MAX {
        return line.to_string();
    }
    let mut end = RECORD_LINE_MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::FfmpegStatus;

    fn record(run: u64) -> RunRecord {
        RunRecord {
            run,
            start: "2026-11-30T04:00:00.000Z".into(),
            end: "2026-11-30T04:00:01.500Z".into(),
            duration_s: 1.5,
            ffmpeg_pid: Some(100 + run as u32),
            ffmpeg_status: FfmpegStatus::Code(1),
            reason: "ffmpeg ended by itself with status 1".into(),
            error: Some("boom".into()),
            last_progress: None,
            last_lines: vec!["boom".into()],
        }
    }

    #[test]
    fn last_words_skip_stats_and_keep_order() {
        let lines: Vec<String> = [
            "Input #0, lavfi",
            "frame=  100 fps= 25 q=28.0 size=     256KiB time=00:00:04.00 bitrate= 1kbits/s speed=1x",
            "Unrecognized option 'presett'.",
            "Error splitting the argument list: Option not found",
            "size=     256KiB time=00:00:04.88 bitrate= 429.6kbits/s speed=1.01x",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            last_words(&lines).as_deref(),
            Some(
                "Input #0, lavfi / Unrecognized option 'presett'. / \
                 Error splitting the argument list: Option not found"
            )
        );
        assert_eq!(last_words(&lines[1..2]), None);
        assert_eq!(last_words(&[]), None);
    }

    #[test]
    fn clip_cuts_on_a_character_boundary() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(RECORD_LINE_MAX);
        let c = clip(&long);
        assert!(c.ends_with('…'));
        assert!(c.len() <= RECORD_LINE_MAX + '…'.len_utf8());
    }

    #[test]
    fn the_file_is_continued_trimmed_and_never_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.jsonl");
        std::fs::write(&path, "not json\n").unwrap();
        let h = load(&path);
        assert_eq!((h.last_number, h.lines.len()), (0, 0));
        let log = RunLog::start(path.clone(), h.lines).unwrap();
        for n in 1..=RUNS_KEPT as u64 + 5 {
            log.append(to_line(&record(n)));
        }
        log.close(Duration::from_secs(10));
        let h = load(&path);
        assert_eq!(h.lines.len(), RUNS_KEPT);
        assert_eq!(h.last_number, RUNS_KEPT as u64 + 5);
        assert_eq!(h.last.map(|r| r.run), Some(RUNS_KEPT as u64 + 5));
        let text = std::fs::read_to_string(&path).unwrap();
        let first: RunRecord = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first.run, 6);
        assert!(text.ends_with('\n'));
        assert!(!dir.path().join(".runs.jsonl.tmp").exists());
    }
}
