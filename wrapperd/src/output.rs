//! Reading ffmpeg: its stdout and stderr as lines, its `-progress` FIFO as blocks (SPEC §4).
//!
//! A line ends at `\n` or `\r` (ffmpeg ends its stats line with `\r`, so every stats update is a
//! line of its own); empty lines are dropped; bytes that are not UTF-8 are kept, converted
//! lossily; a line longer than 64 KiB is cut there and the rest of it, up to its end, dropped.
//!
//! The readers do only memory work: each chunk read from a pipe is split first, its finished
//! lines checked for UTF-8 once and stamped with one arrival time, pushed into the ring under one
//! short lock of the state and then, outside that lock, queued for the log file under one lock of
//! its queue, whose writer runs on its own thread. Nothing
//! on this path waits on the disk or on API clients, and no API client waits on the log file's
//! queue, so ffmpeg is never held back by its wrapper.
//!
//! With `FFMPEG_LOG_TO_STDERR` (SPEC §10) the lines also go to wrapperd's stderr queue
//! ([`crate::logging::ffmpeg_line`], never waited on either), except the repeating stats lines
//! ([`is_stats_line`]).

use std::sync::Arc;
use std::time::Instant;

use shared::progress::{Block, BlockAssembler};
use shared::timefmt;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::logfile::LogSink;
use crate::state::Daemon;

/// The longest line kept; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 64 * 1024;

const READ_BUF: usize = 64 * 1024;

/// Splits a byte stream into lines at `\n` or `\r`.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// The current line was cut at [`MAX_LINE`]; drop bytes until its end.
    cutting: bool,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; calls `emit` with each whole, non-empty line (at most [`MAX_LINE`] bytes).
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', data) {
            let (head, rest) = (&data[..pos], &data[pos + 1..]);
            if self.cutting {
                self.cutting = false;
            } else if self.partial.is_empty() {
                if !head.is_empty() {
                    emit(&head[..head.len().min(MAX_LINE)]);
                }
            } else {
                let room = MAX_LINE - self.partial.len();
                self.partial
                    .extend_from_slice(&head[..head.len().min(room)]);
                emit(&self.partial);
                self.partial.clear();
            }
            data = rest;
        }
        if !self.cutting && !data.is_empty() {
            let room = MAX_LINE - self.partial.len();
            if data.len() >= room {
                self.partial.extend_from_slice(&data[..room]);
                emit(&self.partial);
                self.partial.clear();
                self.cutting = true;
            } else {
                self.partial.extend_from_slice(data);
            }
        }
    }

    /// The last line, cut off at EOF without a line end.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.partial.is_empty() && !self.cutting {
            emit(&self.partial);
        }
        self.partial.clear();
        self.cutting = false;
    }
}

/// The next chunk from a pipe; `None` at EOF or on an error (logged).
async fn read_chunk(
    pipe: &mut (impl AsyncRead + Unpin),
    buf: &mut [u8],
    what: &str,
) -> Option<usize> {
    loop {
        match pipe.read(buf).await {
            Ok(0) => return None,
            Ok(n) => return Some(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!("reading ffmpeg's {what} failed: {e}");
                return None;
            }
        }
    }
}

/// The finished lines of one read, converted (lossily) to text, kept until they are pushed.
/// Reused from read to read, so splitting allocates nothing once it has grown.
///
/// Lines are gathered as bytes and checked for UTF-8 once per read ([`LineBatch::seal`]), not
/// once per line: ffmpeg's output is nearly always valid, and a burst has millions of short lines.
#[derive(Debug, Default)]
struct LineBatch {
    /// The lines' bytes as read, one after another (empty while sealed into `text`).
    bytes: Vec<u8>,
    /// The lines' text, one after another, once sealed.
    text: String,
    /// Where each line ends in `bytes` (before sealing) or `text` (after).
    ends: Vec<usize>,
}

impl LineBatch {
    fn push(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.ends.push(self.bytes.len());
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Turns the gathered bytes into `text`: moved as they are when all of them are UTF-8 and
    /// every line ends on a character boundary (so each line is valid on its own), else
    /// converted lossily line by line.
    fn seal(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        match String::from_utf8(bytes) {
            Ok(text) if self.ends.iter().all(|&e| text.is_char_boundary(e)) => self.text = text,
            Ok(text) => self.seal_lossily(text.into_bytes()),
            Err(e) => self.seal_lossily(e.into_bytes()),
        }
    }

    fn seal_lossily(&mut self, raw: Vec<u8>) {
        self.text.clear();
        let mut start = 0;
        for end in &mut self.ends {
            self.text
                .push_str(&String::from_utf8_lossy(&raw[start..*end]));
            start = *end;
            *end = self.text.len();
        }
        self.bytes = raw;
    }

    /// The lines, in order (after [`LineBatch::seal`]).
    fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let line = &self.text[start..end];
            start = end;
            line
        })
    }

    /// Pushes the lines that arrived at `unix_ms`/`now` into the state (one short lock), then to
    /// `log` (outside it), and empties the batch.
    fn deliver(&mut self, daemon: &Daemon, unix_ms: i64, now: Instant, log: &mut impl LineLog) {
        if self.is_empty() {
            return;
        }
        self.seal();
        daemon.push_lines(unix_ms, now, self.iter());
        log.log(unix_ms, &self.text, &self.ends);
        self.clear();
    }

    fn clear(&mut self) {
        self.ends.clear();
        self.bytes.clear();
        self.text.clear();
        if self.bytes.capacity() < self.text.capacity() {
            // Sealing moved the buffer into `text`: take it back for the next read.
            self.bytes = std::mem::take(&mut self.text).into_bytes();
        }
    }
}

/// Where the lines of one read go after the state: the log file.
trait LineLog {
    /// The lines of one read that arrived at `unix_ms`, back to back in `text`, each ending at
    /// its entry of `ends`.
    fn log(&mut self, unix_ms: i64, text: &str, ends: &[usize]);
}

impl LineLog for Option<LogSink> {
    fn log(&mut self, unix_ms: i64, text: &str, ends: &[usize]) {
        if let Some(sink) = self {
            sink.push_joined(unix_ms, text, ends);
        }
    }
}

/// ffmpeg's stats line, printed again and again while it encodes (and once more at the end):
/// `frame=  123 fps= 25 q=28.0 size=  256KiB time=00:00:04.92 bitrate= 426.2kbits/s speed=1x`,
/// or without a video stream (and in ffmpeg 5) `size=  157kB time=… bitrate=… speed=…`,
/// `Lsize=…` at the end.
pub(crate) fn is_stats_line(line: &str) -> bool {
    let l = line.trim_start();
    (l.starts_with("frame=") || l.starts_with("size=") || l.starts_with("Lsize="))
        && l.contains("time=")
        && (l.contains("bitrate=") || l.contains("speed="))
}

/// Where the lines of one read go after the state: the log file, and wrapperd's stderr
/// (`FFMPEG_LOG_TO_STDERR`) without the stats lines.
struct Logs {
    /// `ffmpeg.log`, unless `NO_FILE_LOG`.
    file: Option<LogSink>,
    /// `FFMPEG_LOG_TO_STDERR`.
    stderr: bool,
}

impl LineLog for Logs {
    fn log(&mut self, unix_ms: i64, text: &str, ends: &[usize]) {
        self.file.log(unix_ms, text, ends);
        if self.stderr {
            let mut start = 0;
            for &end in ends {
                let line = &text[start..end];
                start = end;
                if !is_stats_line(line) {
                    crate::logging::ffmpeg_line(line);
                }
            }
        }
    }
}

/// Any closure over each line (the tests).
impl<F: FnMut(i64, &str)> LineLog for F {
    fn log(&mut self, unix_ms: i64, text: &str, ends: &[usize]) {
        let mut start = 0;
        for &end in ends {
            self(unix_ms, &text[start..end]);
            start = end;
        }
    }
}

/// Reads ffmpeg's stdout or stderr until EOF, into the ring and the log file (and wrapperd's
/// stderr with `FFMPEG_LOG_TO_STDERR`).
pub async fn read_lines(pipe: impl AsyncRead + Unpin, daemon: Arc<Daemon>, sink: Option<LogSink>) {
    let logs = Logs {
        file: sink,
        stderr: daemon.config.ffmpeg_log_to_stderr,
    };
    pump_lines(pipe, &daemon, logs).await;
}

/// [`read_lines`] with the log file as any `log`: each read is split first, its lines stamped
/// with one arrival time, then pushed into the state and to `log`.
async fn pump_lines(mut pipe: impl AsyncRead + Unpin, daemon: &Daemon, mut log: impl LineLog) {
    let mut buf = vec![0u8; READ_BUF];
    let mut splitter = LineSplitter::new();
    let mut batch = LineBatch::default();
    while let Some(n) = read_chunk(&mut pipe, &mut buf, "output").await {
        let (ms, now) = (timefmt::now_ms(), Instant::now());
        splitter.feed(&buf[..n], |line| batch.push(line));
        batch.deliver(daemon, ms, now, &mut log);
    }
    splitter.finish(|line| batch.push(line));
    batch.deliver(daemon, timefmt::now_ms(), Instant::now(), &mut log);
}

/// Reads the `-progress` FIFO until EOF, into the progress ring; logs the manager's decisions and
/// wakes the supervisor after every block.
pub async fn read_progress(
    mut pipe: impl AsyncRead + Unpin,
    daemon: Arc<Daemon>,
    wake: Arc<tokio::sync::Notify>,
) {
    let mut buf = vec![0u8; READ_BUF];
    let mut splitter = LineSplitter::new();
    let mut batch = LineBatch::default();
    let mut blocks = BlockAssembler::new();
    let take = |block: Block| {
        for note in daemon.push_block(timefmt::now_ms(), Instant::now(), &block) {
            tracing::info!("{note}");
        }
        wake.notify_one();
    };
    loop {
        let more = read_chunk(&mut pipe, &mut buf, "progress").await;
        match more {
            Some(n) => splitter.feed(&buf[..n], |l| batch.push(l)),
            None => splitter.finish(|l| batch.push(l)),
        }
        batch.seal();
        batch
            .iter()
            .filter_map(|l| blocks.push_line(l))
            .for_each(take);
        batch.clear();
        if more.is_none() {
            break;
        }
    }
    blocks.finish().into_iter().for_each(take);
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    #[test]
    fn the_state_is_free_while_the_log_file_queue_is_busy() {
        let vars = [("WORKDIR".to_string(), "/nonexistent/wd".to_string())];
        let daemon = Arc::new(Daemon::new(Config::from_vars(vars).unwrap(), Vec::new()));
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let d = daemon.clone();
        let reader = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(pump_lines(&b"one\ntwo\n"[..], &d, |_: i64, line: &str| {
                let _ = entered_tx.send(line.to_string());
                let _ = release_rx.recv();
            }));
        });
        // The log file's queue holds the reader on the first line of the read...
        let first = entered_rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(first.as_deref(), Ok("one"));
        // ...and the state still answers, with the whole read in it.
        let (answer_tx, answer_rx) = mpsc::channel();
        let d = daemon.clone();
        std::thread::spawn(move || {
            let _ = answer_tx.send(d.lines(0).iter().map(|(_, l)| l.to_string()).collect());
        });
        let held: Result<Vec<String>, _> = answer_rx.recv_timeout(Duration::from_secs(5));
        drop(release_tx);
        reader.join().unwrap();
        assert_eq!(
            held,
            Ok(vec!["one".to_string(), "two".to_string()]),
            "the state's lock was held while the log file's queue was busy"
        );
    }

    /// The lines a splitter gives for `chunks` fed in turn, then finished (the property tests
    /// in `output_props` use it too).
    pub(crate) fn split_chunks(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::new();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |l| out.push(l.to_vec()));
        }
        s.finish(|l| out.push(l.to_vec()));
        out
    }

    fn strs(v: &[Vec<u8>]) -> Vec<String> {
        v.iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    #[test]
    fn stats_lines_of_every_ffmpeg_are_told_from_the_rest() {
        for stats in [
            "frame=  123 fps= 25 q=28.0 size=     256KiB time=00:00:04.92 bitrate= 426.2kbits/s \
             speed=0.99x elapsed=0:00:05.00",
            "frame=  250 fps=0.0 q=-1.0 Lsize=     512kB time=00:00:10.00 bitrate= 419.4kbits/s \
             speed=20.6x    ",
            "frame=    0 fps=0.0 q=0.0 size=       0kB time=-577014:32:22.77 bitrate=  -0.0kbits/s \
             speed=N/A",
            "size=     157kB time=00:00:10.00 bitrate= 128.6kbits/s speed= 335x",
            "size=N/A time=00:00:01.00 bitrate=N/A speed=1.01x",
            "Lsize=     157kB time=00:00:10.00 bitrate= 128.6kbits/s speed= 335x",
            "   frame=    5 fps=0.0 q=28.0 size=0kB time=00:00:00.20 bitrate=N/A speed=0.4x",
        ] {
            assert!(is_stats_line(stats), "{stats}");
        }
        for other in [
            "Input #0, lavfi, from 'testsrc':",
            "  Stream #0:0: Video: rawvideo (RGB[24] / 0x18424752), rgb24, 320x240, 25 tbr",
            "[out#0/mp4 @ 0x55] video:120KiB audio:0KiB subtitle:0KiB other streams:0KiB",
            "Unrecognized option 'presett'.",
            "frame size changed to 640x480",
            "size=10 is not a valid size",
            "[q] command received. Exiting.",
            "",
        ] {
            assert!(!is_stats_line(other), "{other}");
        }
    }

    #[test]
    fn splits_at_newline_and_carriage_return_and_drops_empty_lines() {
        let out = split_chunks(&[b"a\nframe=1 fps=2\rframe=2\r\n\n\rb"]);
        assert_eq!(strs(&out), ["a", "frame=1 fps=2", "frame=2", "b"]);
    }

    #[test]
    fn lines_across_chunks() {
        let out = split_chunks(&[b"hel", b"lo\r", b"\nwor", b"ld", b"\n"]);
        assert_eq!(strs(&out), ["hello", "world"]);
    }

    #[test]
    fn non_utf8_is_kept_lossily() {
        let out = split_chunks(&[b"caf\xe9 \xff\xfe ok\n"]);
        assert_eq!(out, [b"caf\xe9 \xff\xfe ok".to_vec()]);
        assert_eq!(strs(&out), ["caf\u{FFFD} \u{FFFD}\u{FFFD} ok"]);
    }

    #[test]
    fn long_line_is_cut_at_64k_and_the_next_line_is_intact() {
        let big = vec![b'x'; 1_000_000];
        let mut chunks: Vec<&[u8]> = big.chunks(7000).collect();
        chunks.push(b"\nnext\n");
        let out = split_chunks(&chunks);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[1], b"next");
        // In one piece, too.
        let mut one = big.clone();
        one.extend_from_slice(b"\nnext\n");
        let out = split_chunks(&[&one]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE);
    }

    #[test]
    fn a_line_of_exactly_64k_is_whole() {
        let mut data = vec![b'y'; MAX_LINE];
        data.extend_from_slice(b"\nz\n");
        let out = split_chunks(&[&data[..100], &data[100..]]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[1], b"z");
    }

    #[test]
    fn every_chunking_gives_the_same_lines() {
        let text: &[u8] = b"frame=1\rframe=2\r\nInput #0\n\n  Stream #0:0\r\rend";
        let whole = split_chunks(&[text]);
        for size in 1..text.len() {
            let chunks: Vec<&[u8]> = text.chunks(size).collect();
            assert_eq!(split_chunks(&chunks), whole, "chunk size {size}");
        }
    }
}
