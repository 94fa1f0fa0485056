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
//!   line, the formatted timestamp is cached per second. The writer thread swaps the whole pending
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
//! - Once a second the writer checks that the path still names the file it has open (same device
//!   and inode); if not (the directory or the file was deleted or moved away), it recreates the
//!   directory and reopens the file. A file that could not be opened is retried at the next write.
//! - [`LogSink::close`] writes out everything pushed before it, then joins the writer; pushes after
//!   `close` are ignored. Dropping the last clone of a sink closes it too.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

use chrono::{Datelike, Local, NaiveDate, TimeZone, Timelike};

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
const DAY_MS: i64 = 86_400_000;
/// `<` + `YYYY-MM-DD HH:MM:SS` + `>` + ` ` before the line, `\n` after it.
const OVERHEAD: usize = 1 + TS_LEN + 2 + 1;
const TS_LEN: usize = 19;
/// Buffers larger than this are shrunk after use, so one burst does not pin memory forever.
const KEEP_CAPACITY: usize = 16 << 20;

/// A log file written by its own thread; `push` never waits on the disk.
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<Inner>,
}

/// Owned by the clones of one `LogSink`; closes the sink when the last clone goes.
struct Inner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

/// Shared by the pushers and the writer thread.
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    dropped: AtomicU64,
    style: Style,
    /// `Some` in days mode.
    max_age_ms: Option<i64>,
    cap: usize,
    /// Pending bytes at which a lingering writer is woken.
    wake_at: usize,
}

struct Pending {
    /// Formatted lines not yet taken by the writer.
    buf: Vec<u8>,
    /// Offsets in `buf` at which the file is to be rotated.
    marks: Vec<usize>,
    /// Lines dropped because `buf` was full, not yet taken by the writer.
    cap_dropped: u64,
    closing: bool,
    /// What the writer is doing, which tells a pusher whether to wake it.
    writer: WriterIs,
    /// The second whose formatted local time is in `ts`.
    ts_sec: i64,
    ts: [u8; TS_LEN],
    /// Days mode: time of the current file's first line (`None`: the next line starts it).
    file_start_ms: Option<i64>,
}

/// What the writer thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterIs {
    /// Writing, or about to look at the pending buffer: no need to wake it.
    Busy,
    /// Waiting up to [`LINGER`] after a write so that lines are written in batches; woken early
    /// only when the pending buffer reaches `wake_at` bytes.
    Lingering,
    /// Waiting for a first line: the next line wakes it.
    Idle,
}

impl Pending {
    /// Whether the writer must be woken now: always when idle, when lingering once `buf` has
    /// reached `wake_at` bytes. Marks the writer busy if so.
    fn wake_writer(&mut self, wake_at: usize) -> bool {
        let wake = match self.writer {
            WriterIs::Busy => false,
            WriterIs::Lingering => self.buf.len() >= wake_at || wake_at == 0,
            WriterIs::Idle => true,
        };
        if wake {
            self.writer = WriterIs::Busy;
        }
        wake
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSink")
            .field("path", &self.inner.path)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl LogSink {
    /// Opens (appending) or creates the file, checks that it is writable, starts the writer.
    pub fn open(spec: LogSpec) -> Result<LogSink, LogError> {
        Self::open_with_cap(spec, PENDING_CAP)
    }

    /// [`LogSink::open`] with another cap on the bytes waiting for the writer (tests, tuning).
    pub fn open_with_cap(spec: LogSpec, cap: usize) -> Result<LogSink, LogError> {
        let error = |source| LogError {
            path: spec.path.display().to_string(),
            source,
        };
        create_parent(&spec.path).map_err(error)?;
        let file = open_append(&spec.path).map_err(error)?;
        let meta = file.metadata().map_err(error)?;
        let (max_age_ms, file_start_ms) = match spec.rotation {
            Rotation::Days { days } => {
                let age = i64::try_from(days)
                    .ok()
                    .and_then(|d| d.checked_mul(DAY_MS))
                    .unwrap_or(i64::MAX);
                let start = (meta.len() > 0).then(|| file_start_ms(&spec.path, &meta));
                (Some(age), start.flatten())
            }
            Rotation::Size { .. } => (None, None),
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(256 << 10),
                marks: Vec::new(),
                cap_dropped: 0,
                closing: false,
                writer: WriterIs::Busy,
                ts_sec: i64::MIN,
                ts: [b'0'; TS_LEN],
                file_start_ms,
            }),
            wake: Condvar::new(),
            dropped: AtomicU64::new(0),
            style: spec.style,
            max_age_ms,
            cap,
            wake_at: WAKE_AT.min(cap / 2),
        });
        let writer = Writer {
            id: Some((meta.dev(), meta.ino())),
            size: meta.len(),
            file: Some(file),
            spec: spec.clone(),
            shared: shared.clone(),
            carry: Vec::new(),
            unreported: 0,
            failing: false,
            last_check: Instant::now(),
        };
        let name = spec
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let thread = std::thread::Builder::new()
            .name(format!("log {name}"))
            .spawn(move || writer.run())
            .map_err(error)?;
        Ok(LogSink {
            inner: Arc::new(Inner {
                shared,
                thread: Mutex::new(Some(thread)),
                path: spec.path,
            }),
        })
    }

    /// Queues one line (without line end) that arrived at `unix_ms`. Never blocks on disk.
    pub fn push(&self, unix_ms: i64, line: &str) {
        let sh = &*self.inner.shared;
        let line = line.as_bytes();
        let mut guard = lock(&sh.pending);
        let p = &mut *guard;
        if p.closing {
            return;
        }
        if p.buf.len() + line.len() + OVERHEAD > sh.cap {
            p.cap_dropped += 1;
            sh.dropped.fetch_add(1, Ordering::Relaxed);
            let wake = p.wake_writer(0);
            drop(guard);
            if wake {
                sh.wake.notify_one();
            }
            return;
        }
        if let Some(max_age) = sh.max_age_ms {
            match p.file_start_ms {
                Some(start) if unix_ms.saturating_sub(start) < max_age => {}
                Some(_) => {
                    p.marks.push(p.buf.len());
                    p.file_start_ms = Some(unix_ms);
                }
                None => p.file_start_ms = Some(unix_ms),
            }
        }
        let sec = unix_ms.div_euclid(1000);
        if sec != p.ts_sec {
            p.ts = format_ts(sec);
            p.ts_sec = sec;
        }
        let (open, close) = sh.style.brackets();
        p.buf.push(open);
        p.buf.extend_from_slice(&p.ts);
        p.buf.push(close);
        p.buf.push(b' ');
        if memchr::memchr2(b'\n', b'\r', line).is_none() {
            p.buf.extend_from_slice(line);
        } else {
            p.buf.extend(
                line.iter()
                    .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
            );
        }
        p.buf.push(b'\n');
        let wake = p.wake_writer(sh.wake_at);
        drop(guard);
        if wake {
            sh.wake.notify_one();
        }
    }

    /// Rotates now (SIGHUP).
    pub fn rotate(&self) {
        let sh = &*self.inner.shared;
        let mut p = lock(&sh.pending);
        if p.closing {
            return;
        }
        let at = p.buf.len();
        if p.marks.last() != Some(&at) {
            p.marks.push(at);
        }
        p.file_start_ms = None;
        let wake = p.wake_writer(0);
        drop(p);
        if wake {
            sh.wake.notify_one();
        }
    }

    /// Writes out everything queued, then stops the writer. Blocks until done. Idempotent.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Lines dropped because the disk failed or was full.
    pub fn dropped(&self) -> u64 {
        self.inner.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn close(&self) {
        // Held while joining, so a concurrent second `close` also returns only when all is written.
        let mut thread = lock(&self.thread);
        lock(&self.shared.pending).closing = true;
        self.shared.wake.notify_one();
        if let Some(t) = thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread's state.
struct Writer {
    spec: LogSpec,
    shared: Arc<Shared>,
    /// `None` when it could not be (re)opened; retried at the next write.
    file: Option<File>,
    /// Device and inode of `file`.
    id: Option<(u64, u64)>,
    /// Bytes in the current file.
    size: u64,
    /// The rest of a line whose beginning was written before a write failed.
    carry: Vec<u8>,
    /// Lines dropped that the file has not been told about yet.
    unreported: u64,
    /// Whether the last write failed (errors are reported on stderr once per episode).
    failing: bool,
    last_check: Instant,
}

impl Writer {
    fn run(mut self) {
        let mut batch: Vec<u8> = Vec::with_capacity(256 << 10);
        let mut marks: Vec<usize> = Vec::new();
        let mut linger_until: Option<Instant> = None;
        loop {
            let (closing, cap_dropped) = {
                let mut p = lock(&self.shared.pending);
                loop {
                    if p.buf.len() >= self.shared.wake_at
                        || !p.marks.is_empty()
                        || p.closing
                        || p.cap_dropped > 0
                    {
                        break;
                    }
                    let now = Instant::now();
                    let check_at = self.last_check + CHECK_EVERY;
                    if now >= check_at {
                        break;
                    }
                    let until = match linger_until {
                        Some(t) if now < t => {
                            p.writer = WriterIs::Lingering;
                            t.min(check_at)
                        }
                        _ if !p.buf.is_empty() => break,
                        _ => {
                            p.writer = WriterIs::Idle;
                            check_at
                        }
                    };
                    p = self
                        .shared
                        .wake
                        .wait_timeout(p, until - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    p.writer = WriterIs::Busy;
                }
                p.writer = WriterIs::Busy;
                std::mem::swap(&mut p.buf, &mut batch);
                std::mem::swap(&mut p.marks, &mut marks);
                (p.closing, std::mem::take(&mut p.cap_dropped))
            };
            self.write_batch(&batch, &marks);
            linger_until = (!batch.is_empty()).then(|| Instant::now() + LINGER);
            self.unreported += cap_dropped;
            if self.last_check.elapsed() >= CHECK_EVERY {
                self.check_path();
                self.last_check = Instant::now();
            }
            if self.unreported > 0 {
                self.write_notice();
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
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
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
        if self.unreported > 0 && !self.write_notice() {
            self.drop_lines(data);
            return;
        }
        let max = match self.spec.rotation {
            Rotation::Size { max_bytes } => max_bytes,
            Rotation::Days { .. } => {
                self.write_raw(data, true);
                return;
            }
        };
        while !data.is_empty() {
            let room = max.saturating_sub(self.size);
            if data.len() as u64 <= room {
                self.write_raw(data, true);
                return;
            }
            let room = room as usize; // < data.len()
            let fits = memchr::memrchr(b'\n', &data[..room]).map_or(0, |i| i + 1);
            if fits > 0 {
                if !self.write_raw(&data[..fits], true) {
                    self.drop_lines(&data[fits..]);
                    return;
                }
                data = &data[fits..];
                if !self.rotate_now() {
                    // Could not start an empty file: better a big file than lost lines.
                    self.write_raw(data, true);
                    return;
                }
            } else if self.size == 0 {
                // A line longer than max_bytes: alone in its own file.
                let end = memchr::memchr(b'\n', data).map_or(data.len(), |i| i + 1);
                if !self.write_raw(&data[..end], true) {
                    self.drop_lines(&data[end..]);
                    return;
                }
                data = &data[end..];
                if !data.is_empty() && !self.rotate_now() {
                    self.write_raw(data, true);
                    return;
                }
            } else if !self.rotate_now() {
                self.write_raw(data, true);
                return;
            }
        }
    }

    /// Writes the pending "lines dropped" line; true when it is written (or there was none).
    fn write_notice(&mut self) -> bool {
        let n = self.unreported;
        if n == 0 {
            return true;
        }
        let (open, close) = self.spec.style.brackets();
        let mut line = Vec::with_capacity(96);
        line.push(open);
        line.extend_from_slice(&format_ts(Local::now().timestamp()));
        line.push(close);
        line.extend_from_slice(
            format!(" [wrapperd] {n} lines dropped: disk full, failing or too slow\n").as_bytes(),
        );
        if let Rotation::Size { max_bytes } = self.spec.rotation {
            if self.size > 0 && self.size + line.len() as u64 > max_bytes {
                self.rotate_now();
            }
        }
        let written = self.write_raw(&line, false);
        if written || !self.carry.is_empty() {
            // Fully written, or begun (its rest is in `carry`): told either way.
            self.unreported -= n;
        }
        written
    }

    /// Counts the lines in `data` as dropped.
    fn drop_lines(&mut self, data: &[u8]) {
        let n = memchr::memchr_iter(b'\n', data).count() as u64;
        self.unreported += n;
        self.shared.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Writes `data` (whole lines) to the current file, after any carried rest of a line. On an
    /// error the rest of a line begun is kept in `carry`, the lines after it are dropped (counted
    /// when `count`), and false is returned.
    fn write_raw(&mut self, data: &[u8], count: bool) -> bool {
        if self.file.is_none() && !self.reopen() {
            if count {
                self.drop_lines(data);
            }
            return false;
        }
        if !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            let ok = self.write_all(&carry, true);
            if !ok {
                if count {
                    self.drop_lines(data);
                }
                return false;
            }
        }
        self.write_all(data, count)
    }

    fn write_all(&mut self, data: &[u8], count: bool) -> bool {
        let Some(file) = &mut self.file else {
            return false;
        };
        let mut off = 0;
        while off < data.len() {
            match file.write(&data[off..]) {
                Ok(0) => {
                    return self.write_failed(data, off, io::ErrorKind::WriteZero.into(), count)
                }
                Ok(n) => {
                    off += n;
                    self.size += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.write_failed(data, off, e, count),
            }
        }
        if self.failing {
            self.failing = false;
            eprintln!(
                "wrapperd: writing log file {} works again",
                self.spec.path.display()
            );
        }
        true
    }

    fn write_failed(&mut self, data: &[u8], written: usize, e: io::Error, count: bool) -> bool {
        let mut rest = &data[written..];
        if written > 0 && data[written - 1] != b'\n' {
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            self.carry.extend_from_slice(&rest[..end]);
            rest = &rest[end..];
        }
        if count {
            self.drop_lines(rest);
        }
        if !self.failing {
            self.failing = true;
            eprintln!(
                "wrapperd: cannot write log file {}: {e}; dropping lines until it works again",
                self.spec.path.display()
            );
        }
        false
    }

    /// Rotates the file; true when an empty, open file is current afterwards.
    fn rotate_now(&mut self) -> bool {
        if self.file.is_some() && self.size == 0 && self.carry.is_empty() {
            return true; // nothing to rotate
        }
        if !self.carry.is_empty() {
            // Try to finish the line begun in the old file; if that fails, it stays cut there.
            let carry = std::mem::take(&mut self.carry);
            if !self.write_all(&carry, true) {
                self.carry.clear();
                self.unreported += 1;
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
        self.file = None;
        self.id = None;
        let path = &self.spec.path;
        let n = self.spec.backups;
        let result = if n == 0 {
            fs::remove_file(path)
        } else {
            // Shift only the contiguous run .1 … .k-1; .k is free (or .N is deleted first).
            let mut k = 1;
            while k <= n && fs::symlink_metadata(backup_name(path, k)).is_ok() {
                k += 1;
            }
            if k > n {
                let _ = fs::remove_file(backup_name(path, n));
                k = n;
            }
            for i in (1..k).rev() {
                let _ = fs::rename(backup_name(path, i), backup_name(path, i + 1));
            }
            fs::rename(path, backup_name(path, 1))
        };
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!("wrapperd: cannot rotate log file {}: {e}", path.display());
            }
        }
        self.reopen() && self.size == 0
    }

    /// (Re)creates the directory and opens the file for appending.
    fn reopen(&mut self) -> bool {
        self.file = None;
        self.id = None;
        let opened = create_parent(&self.spec.path)
            .and_then(|()| open_append(&self.spec.path))
            .and_then(|f| f.metadata().map(|m| (f, m)));
        match opened {
            Ok((f, m)) => {
                self.size = m.len();
                self.id = Some((m.dev(), m.ino()));
                self.file = Some(f);
                true
            }
            Err(e) => {
                self.size = 0;
                if !self.failing {
                    self.failing = true;
                    eprintln!(
                        "wrapperd: cannot open log file {}: {e}; dropping lines until it works again",
                        self.spec.path.display()
                    );
                }
                false
            }
        }
    }

    /// Reopens the file if its path no longer names the file open (deleted or moved away).
    fn check_path(&mut self) {
        let same = match (fs::metadata(&self.spec.path), self.id) {
            (Ok(m), Some(id)) => (m.dev(), m.ino()) == id,
            _ => false,
        };
        if same {
            return;
        }
        if !self.carry.is_empty() {
            // The old file is gone; its cut line cannot be completed.
            self.carry.clear();
            self.unreported += 1;
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        if self.reopen() && self.size == 0 && self.shared.max_age_ms.is_some() {
            // A new file: its age starts with its first line.
            lock(&self.shared.pending).file_start_ms = None;
        }
    }
}

fn backup_name(path: &Path, i: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

/// `YYYY-MM-DD HH:MM:SS` in local time for a unix second.
fn format_ts(sec: i64) -> [u8; TS_LEN] {
    let mut out = *b"0000-00-00 00:00:00";
    let Some(t) = Local.timestamp_opt(sec, 0).earliest() else {
        return out;
    };
    let mut put = |at: usize, v: u32, digits: usize| {
        let mut v = v;
        for i in (0..digits).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, t.year().rem_euclid(10_000) as u32, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    out
}

/// Unix ms of a `<YYYY-MM-DD HH:MM:SS>` or `[YYYY-MM-DD HH:MM:SS]` line start (local time).
fn parse_line_start(head: &[u8]) -> Option<i64> {
    let close = match head.first()? {
        b'<' => b'>',
        b'[' => b']',
        _ => return None,
    };
    if head.len() < TS_LEN + 2 || head[TS_LEN + 1] != close {
        return None;
    }
    let ts = &head[1..=TS_LEN];
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        ts[r].iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    if ts[4] != b'-' || ts[7] != b'-' || ts[10] != b' ' || ts[13] != b':' || ts[16] != b':' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let dt = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    Some(
        Local
            .from_local_datetime(&dt)
            .earliest()?
            .timestamp_millis(),
    )
}

/// When an existing, non-empty log file was started: the time of its first line, else its
/// creation time, else its mtime.
fn file_start_ms(path: &Path, meta: &fs::Metadata) -> Option<i64> {
    let mut head = [0u8; 64];
    let mut n = 0;
    if let Ok(mut f) = File::open(path) {
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    if let Some(ms) = parse_line_start(&head[..n]) {
        return Some(ms);
    }
    let t = meta.created().or_else(|_| meta.modified()).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::SystemTime;

    fn now_ms() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    fn spec(path: &Path, rotation: Rotation, backups: usize) -> LogSpec {
        LogSpec {
            path: path.to_path_buf(),
            rotation,
            backups,
            style: Style::Angle,
        }
    }

    fn size(max_bytes: u64) -> Rotation {
        Rotation::Size { max_bytes }
    }

    /// Waits for `cond` with a deadline (no sleep used as synchronisation).
    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The files of a log, oldest first: `x.log.N` … `x.log.1`, `x.log`. Asserts that no other
    /// file exists and that the backups are numbered without gaps.
    fn log_files(path: &Path) -> Vec<PathBuf> {
        let dir = path.parent().unwrap();
        let base = path.file_name().unwrap().to_str().unwrap();
        let mut numbers = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name == base {
                continue;
            }
            let n: usize = name
                .strip_prefix(base)
                .and_then(|s| s.strip_prefix('.'))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("unexpected file {name}"));
            numbers.push(n);
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=numbers.len()).collect::<Vec<_>>());
        let mut files: Vec<PathBuf> = numbers
            .iter()
            .rev()
            .map(|&i| backup_name(path, i))
            .collect();
        files.push(path.to_path_buf());
        files
    }

    /// The lines (without timestamp) of a file.
    fn lines_of(path: &Path) -> Vec<String> {
        let text = fs::read_to_string(path).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "cut line in {path:?}"
        );
        text.lines()
            .map(|l| {
                assert!(l.len() >= OVERHEAD - 1, "short line {l:?}");
                assert!(
                    l.starts_with('<') && l.as_bytes()[TS_LEN + 1] == b'>',
                    "{l:?}"
                );
                l[OVERHEAD - 1..].to_string()
            })
            .collect()
    }

    fn all_lines(path: &Path) -> Vec<String> {
        log_files(path).iter().flat_map(|f| lines_of(f)).collect()
    }

    fn numbered(i: u64) -> String {
        format!("line {i:07}")
    }

    /// Asserts that `lines` are `line <first>` … `line <last>` without gaps or duplicates.
    fn assert_consecutive(lines: &[String], last: u64) {
        let first = last + 1 - lines.len() as u64;
        for (k, l) in lines.iter().enumerate() {
            assert_eq!(*l, numbered(first + k as u64), "at index {k}");
        }
    }

    fn assert_sizes(path: &Path, max: u64) {
        for f in log_files(path) {
            let len = fs::metadata(&f).unwrap().len();
            assert!(len <= max, "{f:?} has {len} bytes > {max}");
        }
    }

    fn push_numbered(sink: &LogSink, n: u64) {
        let t = now_ms();
        for i in 0..n {
            sink.push(t, &numbered(i));
        }
    }

    #[test]
    fn size_rotation_keeps_every_line_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/x.log");
        let max = 16 << 10;
        let sink = LogSink::open(spec(&path, size(max), 1000)).unwrap();
        push_numbered(&sink, 100_000);
        sink.close();
        assert_sizes(&path, max);
        let files = log_files(&path);
        assert!(files.len() > 100, "only {} files", files.len());
        let lines = all_lines(&path);
        assert_eq!(lines.len(), 100_000);
        assert_consecutive(&lines, 99_999);
        assert_eq!(sink.dropped(), 0);
    }

    #[test]
    fn size_rotation_with_few_backups_keeps_the_newest_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/x.log");
        let max = 16 << 10;
        let sink = LogSink::open(spec(&path, size(max), 3)).unwrap();
        push_numbered(&sink, 100_000);
        sink.close();
        assert_sizes(&path, max);
        assert_eq!(log_files(&path).len(), 4);
        let lines = all_lines(&path);
        // Each line is 35 bytes, so each full file holds 468 of them.
        assert!(
            lines.len() > 3 * (max as usize / 35),
            "{} lines",
            lines.len()
        );
        assert_consecutive(&lines, 99_999);
    }

    #[test]
    fn rotate_from_another_thread_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/x.log");
        let max = 32 << 10;
        let sink = LogSink::open(spec(&path, size(max), 1000)).unwrap();
        std::thread::scope(|s| {
            let rotator = sink.clone();
            s.spawn(move || {
                for _ in 0..200 {
                    rotator.rotate();
                    for _ in 0..200 {
                        std::thread::yield_now();
                    }
                }
            });
            push_numbered(&sink, 100_000);
        });
        sink.close();
        assert_sizes(&path, max);
        let lines = all_lines(&path);
        assert_eq!(lines.len(), 100_000);
        assert_consecutive(&lines, 99_999);
    }

    #[test]
    fn rotate_takes_effect_between_the_lines_around_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let sink = LogSink::open(spec(&path, size(1 << 20), 5)).unwrap();
        let t = now_ms();
        sink.push(t, "a");
        sink.rotate();
        sink.rotate(); // no line between: nothing more to rotate
        sink.push(t, "b");
        sink.close();
        assert_eq!(lines_of(&backup_name(&path, 1)), ["a"]);
        assert_eq!(lines_of(&path), ["b"]);
        assert!(!backup_name(&path, 2).exists());
    }

    #[test]
    fn a_line_longer_than_max_goes_alone_into_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let sink = LogSink::open(spec(&path, size(100), 10)).unwrap();
        let t = now_ms();
        let long = "L".repeat(300);
        sink.push(t, "short 1");
        sink.push(t, "short 2");
        sink.push(t, &long);
        sink.push(t, "short 3");
        sink.push(t, &long);
        sink.push(t, &long);
        sink.close();
        let files: Vec<Vec<String>> = log_files(&path).iter().map(|f| lines_of(f)).collect();
        let expect: Vec<Vec<String>> = vec![
            vec!["short 1".into(), "short 2".into()],
            vec![long.clone()],
            vec!["short 3".into()],
            vec![long.clone()],
            vec![long.clone()],
        ];
        assert_eq!(files, expect);
    }

    #[test]
    fn days_rotation_at_the_next_line_once_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let sink = LogSink::open(spec(&path, Rotation::Days { days: 2 }, 5)).unwrap();
        let t = now_ms();
        sink.push(t, "day 0");
        sink.push(t + DAY_MS, "day 1");
        sink.push(t + 2 * DAY_MS - 1, "day 2 not yet");
        sink.push(t + 2 * DAY_MS, "day 2");
        sink.push(t + 3 * DAY_MS, "day 3");
        sink.push(t + 4 * DAY_MS + 10, "day 4");
        sink.close();
        assert_eq!(
            lines_of(&backup_name(&path, 2)),
            ["day 0", "day 1", "day 2 not yet"]
        );
        assert_eq!(lines_of(&backup_name(&path, 1)), ["day 2", "day 3"]);
        assert_eq!(lines_of(&path), ["day 4"]);
    }

    #[test]
    fn days_rotation_of_an_old_file_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let t = now_ms();
        // A file started 3 days ago by an earlier wrapperd.
        let old = format!(
            "<{}> old\n",
            std::str::from_utf8(&format_ts(t / 1000 - 3 * 86_400)).unwrap()
        );
        fs::write(&path, &old).unwrap();
        let sink = LogSink::open(spec(&path, Rotation::Days { days: 4 }, 5)).unwrap();
        sink.push(t, "not yet");
        sink.close();
        assert_eq!(lines_of(&path), ["old", "not yet"]);
        let sink = LogSink::open(spec(&path, Rotation::Days { days: 2 }, 5)).unwrap();
        sink.push(t, "new");
        sink.push(t + 1000, "new 2");
        sink.close();
        assert_eq!(lines_of(&backup_name(&path, 1)), ["old", "not yet"]);
        assert_eq!(lines_of(&path), ["new", "new 2"]);
    }

    #[test]
    fn file_start_is_parsed_from_both_styles() {
        let t = now_ms() / 1000 * 1000;
        let ts = format_ts(t / 1000);
        let ts = std::str::from_utf8(&ts).unwrap();
        assert_eq!(parse_line_start(format!("<{ts}> x").as_bytes()), Some(t));
        assert_eq!(parse_line_start(format!("[{ts}] x").as_bytes()), Some(t));
        assert_eq!(parse_line_start(format!("[{ts}> x").as_bytes()), None);
        assert_eq!(parse_line_start(b"ffmpeg version 7"), None);
        assert_eq!(parse_line_start(b"<2024-13-01 00:00:00> x"), None);
    }

    #[test]
    fn no_backups_keeps_no_rotated_copies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let sink = LogSink::open(spec(&path, size(200), 0)).unwrap();
        push_numbered(&sink, 1000);
        sink.rotate();
        sink.push(now_ms(), &numbered(1000));
        sink.close();
        assert_eq!(log_files(&path), std::slice::from_ref(&path));
        assert_eq!(lines_of(&path), [numbered(1000)]);
        // Size mode alone, too.
        let sink = LogSink::open(spec(&path, size(200), 0)).unwrap();
        push_numbered(&sink, 1000);
        sink.close();
        assert_eq!(log_files(&path), std::slice::from_ref(&path));
        let lines = lines_of(&path);
        assert!(!lines.is_empty() && lines.len() <= 200 / 35);
        assert_consecutive(&lines, 999);
    }

    #[test]
    fn reopening_appends_and_counts_the_existing_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let sink = LogSink::open(spec(&path, size(110), 3)).unwrap();
        sink.push(now_ms(), "first run 1");
        sink.push(now_ms(), "first run 2");
        sink.close();
        sink.close(); // idempotent
        sink.push(now_ms(), "after close: ignored");
        let sink = LogSink::open(spec(&path, size(110), 3)).unwrap();
        sink.push(now_ms(), "second run 1");
        sink.close();
        assert_eq!(
            lines_of(&path),
            ["first run 1", "first run 2", "second run 1"].map(String::from)
        );
        // 103 bytes in the file: the next line no longer fits into 110 bytes.
        let sink = LogSink::open(spec(&path, size(110), 3)).unwrap();
        sink.push(now_ms(), "third run 1");
        drop(sink); // dropping the last clone flushes too
        assert_eq!(lines_of(&backup_name(&path, 1)).len(), 3);
        assert_eq!(lines_of(&path), ["third run 1"]);
    }

    #[test]
    fn open_fails_when_the_file_cannot_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("logs");
        fs::write(&blocker, "a file where the directory should be").unwrap();
        let err = LogSink::open(spec(&blocker.join("x.log"), size(100), 1)).unwrap_err();
        assert!(err.to_string().contains("x.log"), "{err}");
        let err = LogSink::open(spec(dir.path(), size(100), 1)).unwrap_err();
        assert!(err.to_string().contains("cannot write log file"), "{err}");
    }

    #[test]
    fn failing_disk_drops_counts_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        fs::create_dir(&logs).unwrap();
        let path = logs.join("x.log");
        // /dev/full fails every write with ENOSPC.
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let sink = LogSink::open(spec(&path, size(1 << 20), 2)).unwrap();
        push_numbered(&sink, 1000);
        wait_until("1000 dropped lines", || sink.dropped() == 1000);
        // The disk works again: the path now names a real file; the writer notices within ~1 s.
        fs::remove_file(&path).unwrap();
        wait_until("reopened file", || {
            fs::read_to_string(&path).is_ok_and(|s| s.contains("lines dropped"))
        });
        let t = now_ms();
        sink.push(t, "after");
        sink.close();
        assert_eq!(sink.dropped(), 1000);
        assert_eq!(
            lines_of(&path),
            [
                "[wrapperd] 1000 lines dropped: disk full, failing or too slow",
                "after"
            ]
        );
    }

    #[test]
    fn stuck_disk_never_blocks_push_and_reports_the_cap_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // A reader that does not read yet: the writer hangs once the pipe is full.
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let cap = 64 << 10;
        let sink = LogSink::open_with_cap(spec(&path, size(1 << 30), 2), cap).unwrap();
        let total = 20_000u64; // 700 kB: far more than the pipe and the cap hold
        push_numbered(&sink, total); // returns although nothing can be written
        let dropped = sink.dropped();
        assert!(dropped > 0);
        // Now read everything; the writer ends (EOF) at close.
        // SAFETY: plain fcntl on a descriptor we own.
        unsafe {
            let fd = reader.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK), 0);
        }
        let read = std::thread::spawn(move || {
            let mut reader = reader;
            let mut s = String::new();
            reader.read_to_string(&mut s).unwrap();
            s
        });
        sink.close();
        let text = read.join().unwrap();
        // Walk the file: each notice accounts for exactly the lines missing before the next one.
        let mut next = 0u64;
        let mut reported = 0u64;
        let mut kept = 0u64;
        for l in text.lines() {
            let l = &l[OVERHEAD - 1..];
            if let Some(rest) = l.strip_prefix("[wrapperd] ") {
                let n: u64 = rest
                    .strip_suffix(" lines dropped: disk full, failing or too slow")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("bad notice {l:?}"));
                next += n;
                reported += n;
            } else {
                assert_eq!(l, numbered(next));
                next += 1;
                kept += 1;
            }
        }
        // Where the gap falls depends on when the writer thread first ran: usually the tail is
        // dropped (the notice is the last line), but a writer scheduled late takes the buffer
        // after most lines were already dropped, and the last lines are kept after the notice.
        assert_eq!(reported, dropped);
        assert_eq!(kept + dropped, total);
        assert_eq!(next, total);
    }

    #[test]
    fn deleted_directory_is_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let path = logs.join("x.log");
        let sink = LogSink::open(spec(&path, size(1 << 20), 2)).unwrap();
        sink.push(now_ms(), "before");
        wait_until("first line written", || {
            fs::read_to_string(&path).is_ok_and(|s| s.contains("before"))
        });
        fs::remove_dir_all(&logs).unwrap();
        wait_until("recreated file", || path.exists());
        sink.push(now_ms(), "after");
        sink.close();
        assert_eq!(lines_of(&path), ["after"]);
    }

    #[test]
    fn deleted_directory_is_recreated_at_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let path = logs.join("x.log");
        let sink = LogSink::open(spec(&path, size(1 << 20), 2)).unwrap();
        sink.push(now_ms(), "before");
        wait_until("first line written", || {
            fs::read_to_string(&path).is_ok_and(|s| s.contains("before"))
        });
        fs::remove_dir_all(&logs).unwrap();
        sink.rotate();
        sink.push(now_ms(), "after");
        sink.close();
        assert_eq!(lines_of(&path), ["after"]);
    }

    #[test]
    fn line_ends_inside_a_line_become_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let sink = LogSink::open(LogSpec {
            style: Style::Bracket,
            ..spec(&path, size(1 << 20), 1)
        })
        .unwrap();
        sink.push(now_ms(), "a\nb\rc");
        sink.close();
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with('[') && text.ends_with("] a b c\n"),
            "{text:?}"
        );
        assert_eq!(text.len(), OVERHEAD + 5);
    }

    #[test]
    fn sink_is_clone_send_sync_and_pushable_from_many_threads() {
        fn assert_traits<T: Clone + Send + Sync + fmt::Debug>() {}
        assert_traits::<LogSink>();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let sink = LogSink::open(spec(&path, size(4096), 10_000)).unwrap();
        std::thread::scope(|s| {
            for k in 0..4 {
                let sink = sink.clone();
                s.spawn(move || {
                    for i in 0..10_000 {
                        sink.push(now_ms(), &format!("thread {k} {i:05}"));
                    }
                });
            }
        });
        drop(sink.clone());
        sink.close();
        let lines = all_lines(&path);
        assert_eq!(lines.len(), 40_000);
        for k in 0..4 {
            let mine: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("thread {k} ")))
                .collect();
            let expect: Vec<String> = (0..10_000).map(|i| format!("thread {k} {i:05}")).collect();
            assert!(mine.iter().zip(&expect).all(|(a, b)| *a == b) && mine.len() == 10_000);
        }
    }

    #[test]
    fn two_million_lines_all_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let n = 2_000_000u64;
        let start = Instant::now();
        let sink = LogSink::open(spec(&path, size(1 << 40), 1)).unwrap();
        let t = now_ms();
        for i in 0..n {
            sink.push(t + (i / 100_000) as i64 * 1000, &numbered(i));
        }
        let pushed = start.elapsed();
        sink.close();
        let total = start.elapsed();
        eprintln!(
            "{n} lines: pushed in {pushed:?}, written in {total:?} ({:.0} lines/s)",
            n as f64 / total.as_secs_f64()
        );
        assert_eq!(sink.dropped(), 0);
        let lines = lines_of(&path);
        assert_eq!(lines.len() as u64, n);
        assert_consecutive(&lines, n - 1);
    }
}
