//! The writer thread of a sink: takes the pending buffer in one swap, writes it with few large
//! writes, rotates at the marks and when size mode needs it, counts the lines it could not
//! write and announces them with one notice line once writing works again.
//!
//! What it writes to is an [`Output`]: a [`super::file::RotatingFile`] (the log files) or a
//! [`super::stream::Stream`] (wrapperd's stderr, which never rotates).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use shared::timefmt::LocalSecondCache;

use super::sink::{Shared, WriterIs};
use super::{lock, CHECK_EVERY, KEEP_CAPACITY, LINGER};

/// Where a writer writes. Operations return `io::Result`; the writer decides what a failure
/// costs (lines dropped and counted, one report per episode of failures).
pub(crate) trait Output: Send + 'static {
    /// What it is, for messages: `log file PATH`.
    fn describe(&self) -> String;
    /// Why lines were dropped, for the notice line.
    fn drop_reason(&self) -> &'static str;
    /// Whether failures are reported on wrapperd's stderr (not for stderr itself).
    fn reports_failures(&self) -> bool {
        true
    }
    /// Whether a file is open (else it is reopened before the next write).
    fn is_open(&self) -> bool;
    /// Writes some of `data`, like [`io::Write::write`].
    fn write(&mut self, data: &[u8]) -> io::Result<usize>;
    /// Bytes in the current file.
    fn size(&self) -> u64;
    /// Size mode: no file grows past this many bytes (`None`: no limit).
    fn max_bytes(&self) -> Option<u64>;
    /// Closes the current file and moves it to the backups (it stays closed until `reopen`).
    fn rotate(&mut self) -> io::Result<()>;
    /// (Re)creates the directory and opens the file for appending.
    fn reopen(&mut self) -> io::Result<()>;
    /// Whether the path no longer names the open file (deleted, moved away, or none open).
    fn path_moved(&self) -> bool;
    /// Whether it has a path to look at every [`CHECK_EVERY`] (a stream has none, so its
    /// writer sleeps until there is work: an idle wrapperd wakes no thread for it).
    fn has_path(&self) -> bool {
        true
    }
    /// Flushes what the OS buffers for it; errors are ignored (nothing is buffered by us).
    fn flush(&mut self);
}

/// A write that failed: why, and how many bytes at the end of the data were neither written
/// nor kept in `carry` (their lines are lost unless the caller counts them).
struct Failed {
    /// The error of the failed write.
    error: io::Error,
    /// Bytes at the end of the data not written and not carried.
    unwritten: usize,
}

/// The writer thread's state.
pub(crate) struct Writer<O: Output> {
    /// Where the lines go.
    pub(crate) out: O,
    /// What the pushers and the writer share.
    pub(crate) shared: Arc<Shared>,
    /// The rest of a line whose beginning was written before a write failed.
    pub(crate) carry: Vec<u8>,
    /// Lines dropped that the output has not been told about yet.
    pub(crate) unreported: u64,
    /// Whether the last write failed (failures are reported once per episode).
    pub(crate) failing: bool,
    /// When the path was last checked.
    pub(crate) last_check: Instant,
    /// The notice line's timestamp.
    pub(crate) times: LocalSecondCache,
}

impl<O: Output> Writer<O> {
    pub(crate) fn new(out: O, shared: Arc<Shared>) -> Self {
        Writer {
            out,
            shared,
            carry: Vec::new(),
            unreported: 0,
            failing: false,
            last_check: Instant::now(),
            times: LocalSecondCache::new(),
        }
    }

    /// Takes batches until closed; see the module doc of [`super`] for the lingering.
    pub(crate) fn run(mut self) {
        let mut batch: Vec<u8> = Vec::with_capacity(256 << 10);
        let mut marks: Vec<usize> = Vec::new();
        let mut linger_until: Option<Instant> = None;
        loop {
            let (closing, cap_dropped) = self.take(&mut batch, &mut marks, linger_until);
            // Before every write (one stat a batch: a line pushed after the path went away
            // goes to the recreated file, never to the deleted one), and once a second while a
            // drop notice is owed (a failing disk); an idle writer does not wake for it.
            let owed = self.unreported > 0 || cap_dropped > 0;
            if self.out.has_path()
                && (!batch.is_empty() || (owed && self.last_check.elapsed() >= CHECK_EVERY))
            {
                self.check_path();
                self.last_check = Instant::now();
            }
            self.write_batch(&batch, &marks);
            linger_until = (!batch.is_empty()).then(|| Instant::now() + LINGER);
            self.unreported += cap_dropped;
            if self.unreported > 0 {
                let _ = self.write_notice();
            }
            // Give memory back after a burst, but not during one (regrowing costs page faults).
            if batch.capacity() > KEEP_CAPACITY && batch.len() < KEEP_CAPACITY / 8 {
                batch = Vec::with_capacity(KEEP_CAPACITY / 8);
            }
            batch.clear();
            marks.clear();
            if closing {
                break;
            }
        }
        self.out.flush();
    }

    /// Waits for work, then swaps the pending buffer and marks for the (empty) `batch` and
    /// `marks`; returns whether the sink is closing and the lines dropped at the cap.
    fn take(
        &mut self,
        batch: &mut Vec<u8>,
        marks: &mut Vec<usize>,
        linger_until: Option<Instant>,
    ) -> (bool, u64) {
        let sh = &*self.shared;
        let mut p = lock(&sh.pending);
        loop {
            if p.buf.len() >= sh.wake_at
                || !p.marks.is_empty()
                || p.closing
                || p.cap_dropped > 0
                || (p.flushing && !p.buf.is_empty())
            {
                break;
            }
            let now = Instant::now();
            // An idle writer sleeps until the next line, unless a notice is owed (it retries).
            let check_at =
                (self.out.has_path() && self.unreported > 0).then(|| self.last_check + CHECK_EVERY);
            if check_at.is_some_and(|c| now >= c) {
                break;
            }
            let until = match linger_until {
                Some(t) if now < t => {
                    p.writer = WriterIs::Lingering;
                    Some(check_at.map_or(t, |c| t.min(c)))
                }
                _ if !p.buf.is_empty() => break,
                _ => {
                    p.writer = WriterIs::Idle;
                    check_at
                }
            };
            // Everything taken so far is written: tell a waiting `flush_for`.
            sh.written.notify_all();
            p = match until {
                Some(until) => {
                    sh.wake
                        .wait_timeout(p, until - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => sh.wake.wait(p).unwrap_or_else(|e| e.into_inner()),
            };
            p.writer = WriterIs::Busy;
        }
        p.writer = WriterIs::Busy;
        std::mem::swap(&mut p.buf, batch);
        std::mem::swap(&mut p.marks, marks);
        (p.closing, std::mem::take(&mut p.cap_dropped))
    }

    fn write_batch(&mut self, batch: &[u8], marks: &[usize]) {
        let mut start = 0;
        for &m in marks {
            self.write_lines(&batch[start..m]);
            self.rotate_now();
            start = m;
        }
        self.write_lines(&batch[start..]);
    }

    /// Writes whole lines, rotating between them as size mode requires.
    fn write_lines(&mut self, mut data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.unreported > 0 && self.write_notice().is_err() {
            self.drop_lines(data);
            return;
        }
        let Some(max) = self.out.max_bytes() else {
            let _ = self.write_or_drop(data);
            return;
        };
        while !data.is_empty() {
            let size = self.out.size();
            let room = max.saturating_sub(size);
            if data.len() as u64 <= room {
                let _ = self.write_or_drop(data);
                return;
            }
            let room = room as usize; // < data.len()
                                      // The whole lines that fit; else, in an empty file, a line longer than max_bytes
                                      // goes alone into it; else nothing fits before a rotation.
            let end = match memchr::memrchr(b'\n', &data[..room]) {
                Some(i) => i + 1,
                None if size == 0 => memchr::memchr(b'\n', data).map_or(data.len(), |i| i + 1),
                None => 0,
            };
            if end > 0 {
                if self.write_or_drop(&data[..end]).is_err() {
                    self.drop_lines(&data[end..]);
                    return;
                }
                data = &data[end..];
                if data.is_empty() {
                    return;
                }
            }
            if !self.rotate_now() {
                // Could not start an empty file: better a big file than lost lines.
                let _ = self.write_or_drop(data);
                return;
            }
        }
    }

    /// Writes the pending "lines dropped" line, if any.
    fn write_notice(&mut self) -> io::Result<()> {
        let n = self.unreported;
        if n == 0 {
            return Ok(());
        }
        let (open, close) = self.shared.style.brackets();
        let mut line = Vec::with_capacity(96);
        line.push(open);
        line.extend_from_slice(self.times.bytes(shared::timefmt::now_ms()));
        line.push(close);
        let reason = self.out.drop_reason();
        line.extend_from_slice(format!(" [wrapperd] {n} lines dropped: {reason}\n").as_bytes());
        if let Some(max_bytes) = self.out.max_bytes() {
            let size = self.out.size();
            if size > 0 && size + line.len() as u64 > max_bytes {
                self.rotate_now();
            }
        }
        match self.write_raw(&line) {
            Ok(()) => {
                self.unreported -= n;
                Ok(())
            }
            Err(f) => {
                if !self.carry.is_empty() {
                    // Begun (its rest is in `carry`): told.
                    self.unreported -= n;
                }
                Err(f.error)
            }
        }
    }

    /// Counts the lines in `data` as dropped.
    fn drop_lines(&mut self, data: &[u8]) {
        let n = memchr::memchr_iter(b'\n', data).count() as u64;
        self.drop_count(n);
    }

    fn drop_count(&mut self, n: u64) {
        self.unreported += n;
        self.shared.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// [`Writer::write_raw`], counting the lines it could not write as dropped.
    fn write_or_drop(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_raw(data).map_err(|f| {
            self.drop_lines(&data[data.len() - f.unwritten..]);
            f.error
        })
    }

    /// Writes `data` (whole lines) after any carried rest of a line, reopening the file first
    /// if none is open. On an error the rest of a line begun is kept in `carry`.
    fn write_raw(&mut self, data: &[u8]) -> Result<(), Failed> {
        let all = |error| Failed {
            error,
            unwritten: data.len(),
        };
        if !self.out.is_open() {
            self.reopen().map_err(all)?;
        }
        if !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            self.write_all(&carry).map_err(|f| all(f.error))?;
        }
        self.write_all(data)
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), Failed> {
        let mut off = 0;
        while off < data.len() {
            match self.out.write(&data[off..]) {
                Ok(0) => return Err(self.write_failed(data, off, io::ErrorKind::WriteZero.into())),
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.write_failed(data, off, e)),
            }
        }
        if self.failing {
            self.failing = false;
            self.report(format!("writing {} works again", self.out.describe()));
        }
        Ok(())
    }

    /// Keeps the rest of a line begun in `carry`; reports the first failure of an episode.
    fn write_failed(&mut self, data: &[u8], written: usize, e: io::Error) -> Failed {
        let mut rest = &data[written..];
        if written > 0 && data[written - 1] != b'\n' {
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            self.carry.extend_from_slice(&rest[..end]);
            rest = &rest[end..];
        }
        if !self.failing {
            self.failing = true;
            let what = self.out.describe();
            self.report(format!(
                "cannot write {what}: {e}; dropping lines until it works again"
            ));
        }
        Failed {
            error: e,
            unwritten: rest.len(),
        }
    }

    /// Rotates the file; true when an empty, open file is current afterwards.
    fn rotate_now(&mut self) -> bool {
        if self.out.is_open() && self.out.size() == 0 && self.carry.is_empty() {
            return true; // nothing to rotate
        }
        if !self.carry.is_empty() {
            // Try to finish the line begun in the old file; if that fails, it stays cut there.
            let carry = std::mem::take(&mut self.carry);
            if self.write_all(&carry).is_err() {
                self.carry.clear();
                self.drop_count(1);
            }
        }
        if let Err(e) = self.out.rotate() {
            let what = self.out.describe();
            self.report(format!("cannot rotate {what}: {e}"));
        }
        self.reopen().is_ok() && self.out.size() == 0
    }

    /// Reopens the output, reporting the first failure of an episode.
    fn reopen(&mut self) -> io::Result<()> {
        let result = self.out.reopen();
        if let Err(e) = &result {
            if !self.failing {
                self.failing = true;
                let what = self.out.describe();
                self.report(format!(
                    "cannot open {what}: {e}; dropping lines until it works again"
                ));
            }
        }
        result
    }

    /// Reopens the file if its path no longer names the file open (deleted or moved away).
    fn check_path(&mut self) {
        if !self.out.path_moved() {
            return;
        }
        if !self.carry.is_empty() {
            // The old file is gone; its cut line cannot be completed.
            self.carry.clear();
            self.drop_count(1);
        }
        if self.reopen().is_ok() && self.out.size() == 0 && self.shared.max_age_ms.is_some() {
            // A new file: its age starts with its first line.
            lock(&self.shared.pending).file_start_ms = None;
        }
    }

    /// A line about this log on wrapperd's stderr (never blocks: stderr is a sink too).
    fn report(&self, message: String) {
        if self.out.reports_failures() {
            crate::logging::stderr_line(&format!("wrapperd: {message}"));
        }
    }
}
