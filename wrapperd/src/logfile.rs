//! STUB — to be replaced by the real implementation (rotating log files written off-thread).
//! The public interface below is what the rest of wrapperd calls; keep it.

use std::path::PathBuf;

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

#[derive(Debug, Clone)]
pub struct LogSpec {
    /// e.g. `WORKDIR/logs/ffmpeg.log`; rotated copies are `ffmpeg.log.1` … `ffmpeg.log.N`.
    pub path: PathBuf,
    pub rotation: Rotation,
    /// N: rotated files kept (0: none).
    pub backups: usize,
    pub style: Style,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write log file {path}: {source}")]
pub struct LogError {
    pub path: String,
    pub source: std::io::Error,
}

/// A log file written by its own thread; `push` never waits on the disk.
#[derive(Debug, Clone)]
pub struct LogSink {}

impl LogSink {
    /// Opens (appending) or creates the file, checks that it is writable, starts the writer.
    pub fn open(_spec: LogSpec) -> Result<LogSink, LogError> {
        Ok(LogSink {})
    }
    /// Queues one line (without line end) that arrived at `unix_ms`. Never blocks on disk.
    pub fn push(&self, _unix_ms: i64, _line: &str) {}
    /// Rotates now (SIGHUP).
    pub fn rotate(&self) {}
    /// Writes out everything queued, then stops the writer. Blocks until done. Idempotent.
    pub fn close(&self) {}
    /// Lines dropped because the disk failed or was full.
    pub fn dropped(&self) -> u64 {
        0
    }
}
