//! The push side: [`LogSink`] formats each line into a pending buffer under a short lock and
//! wakes the writer thread only when needed; nothing here ever waits on the output.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shared::timefmt::{LocalSecondCache, LOCAL_TEXT_LEN};

use super::file::{file_start_ms, RotatingFile};
use super::stream::Stream;
use super::writer::{Output, Writer};
use super::{lock, LogError, LogSpec, Rotation, Style, DAY_MS, OVERHEAD, PENDING_CAP, WAKE_AT};

/// `<YYYY-MM-DD HH:MM:SS> ` before each line.
const PREFIX_LEN: usize = OVERHEAD - 1;

/// A log written by its own thread; `push` never waits on the disk (or the stream).
#[derive(Clone)]
pub struct LogSink {
    /// Shared by the clones; the last one to go closes the sink.
    inner: Arc<Inner>,
}

/// Owned by the clones of one `LogSink`; closes the sink when the last clone goes.
struct Inner {
    /// What the pushers and the writer share.
    shared: Arc<Shared>,
    /// The writer, joined by `close`.
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The file's path or the stream's name, for `Debug`.
    name: String,
}

/// Shared by the pushers and the writer thread.
pub(crate) struct Shared {
    /// Lines not yet taken by the writer, and what goes with them.
    pub(crate) pending: Mutex<Pending>,
    /// Wakes the writer.
    pub(crate) wake: Condvar,
    /// Signalled by the writer when all it took is written (for `flush_for`).
    pub(crate) written: Condvar,
    /// Lines dropped so far (at the cap or by failed writes).
    pub(crate) dropped: AtomicU64,
    /// How lines are stamped.
    pub(crate) style: Style,
    /// `Some` in days mode: the age at which a file is rotated.
    pub(crate) max_age_ms: Option<i64>,
    /// Most bytes in `pending.buf`.
    pub(crate) cap: usize,
    /// Pending bytes at which a lingering writer is woken.
    pub(crate) wake_at: usize,
}

/// What the pushers hand to the writer.
pub(crate) struct Pending {
    /// Formatted lines not yet taken by the writer.
    pub(crate) buf: Vec<u8>,
    /// Offsets in `buf` at which the file is to be rotated.
    pub(crate) marks: Vec<usize>,
    /// Lines dropped because `buf` was full, not yet taken by the writer.
    pub(crate) cap_dropped: u64,
    /// Set by `close`: the writer writes what is left and ends.
    pub(crate) closing: bool,
    /// Set while a `flush_for` waits: the writer does not linger.
    pub(crate) flushing: bool,
    /// What the writer is doing, which tells a pusher whether to wake it.
    pub(crate) writer: WriterIs,
    /// The formatted local time of the last line's second.
    times: LocalSecondCache,
    /// Days mode: time of the current file's first line (`None`: the next line starts it).
    pub(crate) file_start_ms: Option<i64>,
}

/// What the writer thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterIs {
    /// Writing, or about to look at the pending buffer: no need to wake it.
    Busy,
    /// Waiting up to [`super::LINGER`] after a write so that lines are written in batches;
    /// woken early only when the pending buffer reaches `wake_at` bytes.
    Lingering,
    /// Waiting for a first line: the next line wakes it.
    Idle,
}

impl Pending {
    /// Whether `line` fits under the cap; if not it is dropped and counted.
    fn fits(&mut self, sh: &Shared, line: &[u8]) -> bool {
        if self.buf.len() + line.len() + OVERHEAD > sh.cap {
            self.cap_dropped += 1;
            sh.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The `<YYYY-MM-DD HH:MM:SS> ` before a line that arrived at `unix_ms`; in days mode, puts
    /// a rotation mark first when the current file is `days` old by then.
    fn prefix(&mut self, sh: &Shared, unix_ms: i64) -> [u8; PREFIX_LEN] {
        if let Some(max_age) = sh.max_age_ms {
            match self.file_start_ms {
                Some(start) if unix_ms.saturating_sub(start) < max_age => {}
                Some(_) => {
                    self.marks.push(self.buf.len());
                    self.file_start_ms = Some(unix_ms);
                }
                None => self.file_start_ms = Some(unix_ms),
            }
        }
        let (open, close) = sh.style.brackets();
        let mut prefix = [b' '; PREFIX_LEN];
        prefix[0] = open;
        prefix[1..=LOCAL_TEXT_LEN].copy_from_slice(self.times.bytes(unix_ms));
        prefix[LOCAL_TEXT_LEN + 1] = close;
        prefix
    }

    /// Appends a line and its `\n`; `clean`: it holds no `\n` or `\r` (else they become spaces).
    fn append_line(&mut self, line: &[u8], clean: bool) {
        if clean {
            self.buf.extend_from_slice(line);
        } else {
            self.buf.extend(
                line.iter()
                    .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
            );
        }
        self.buf.push(b'\n');
    }

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

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSink")
            .field("path", &self.inner.name)
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
        let max_bytes = match spec.rotation {
            Rotation::Size { max_bytes } => Some(max_bytes),
            Rotation::Days { .. } => None,
        };
        let (file, meta) =
            RotatingFile::open(&spec.path, spec.backups, max_bytes).map_err(error)?;
        let (max_age_ms, file_start) = match spec.rotation {
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
        let name = spec
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let config = Shared::new(spec.style, max_age_ms, file_start, cap);
        Self::start(file, config, &name, spec.path.display().to_string()).map_err(error)
    }

    /// A sink writing to a stream (wrapperd's stderr): never rotated; `push` never waits on
    /// it; when it cannot keep up, lines are dropped and counted, and announced once it can.
    pub(crate) fn stream(
        out: Box<dyn Write + Send>,
        name: &'static str,
        style: Style,
        cap: usize,
    ) -> io::Result<LogSink> {
        let config = Shared::new(style, None, None, cap);
        Self::start(Stream::new(out, name), config, name, name.to_string())
    }

    fn start<O: Output>(out: O, shared: Shared, thread: &str, name: String) -> io::Result<Self> {
        let shared = Arc::new(shared);
        let writer = Writer::new(out, shared.clone());
        let thread = std::thread::Builder::new()
            .name(format!("log {thread}"))
            .spawn(move || writer.run())?;
        Ok(LogSink {
            inner: Arc::new(Inner {
                shared,
                thread: Mutex::new(Some(thread)),
                name,
            }),
        })
    }

    /// Queues one line (without line end) that arrived at `unix_ms`. Never blocks on disk.
    pub fn push(&self, unix_ms: i64, line: &str) {
        self.push_line(Some(unix_ms), line);
    }

    /// Queues one line as it is, without a timestamp (messages about the logs on stderr).
    pub(crate) fn push_raw(&self, line: &str) {
        self.push_line(None, line);
    }

    /// Queues the lines of one read that arrived together at `unix_ms`, under one lock: they are
    /// given back to back in `joined`, line `i` ending at `ends[i]`. The same as
    /// [`LogSink::push`] of each line in turn, with the timestamp formatted once and the check
    /// for line ends inside a line done once over all of them.
    pub fn push_joined(&self, unix_ms: i64, joined: &str, ends: &[usize]) {
        let sh = &*self.inner.shared;
        let clean = memchr::memchr2(b'\n', b'\r', joined.as_bytes()).is_none();
        let mut guard = lock(&sh.pending);
        let p = &mut *guard;
        if p.closing {
            return;
        }
        let want = joined.len() + ends.len() * OVERHEAD;
        if p.buf.len() + want <= sh.cap {
            p.buf.reserve(want);
        }
        let (mut start, mut prefix, mut dropped) = (0, None, false);
        for &end in ends {
            let line = &joined.as_bytes()[start..end];
            start = end;
            if !p.fits(sh, line) {
                dropped = true;
                continue;
            }
            // Made at the first line that fits, as `push` would (the age mark goes before it).
            let pre = match prefix {
                Some(pre) => pre,
                None => *prefix.insert(p.prefix(sh, unix_ms)),
            };
            p.buf.extend_from_slice(&pre);
            p.append_line(line, clean);
        }
        self.woken(guard, dropped);
    }

    fn push_line(&self, unix_ms: Option<i64>, line: &str) {
        let sh = &*self.inner.shared;
        let line = line.as_bytes();
        let mut guard = lock(&sh.pending);
        let p = &mut *guard;
        if p.closing {
            return;
        }
        if !p.fits(sh, line) {
            return self.woken(guard, true);
        }
        if let Some(unix_ms) = unix_ms {
            let prefix = p.prefix(sh, unix_ms);
            p.buf.extend_from_slice(&prefix);
        }
        let clean = memchr::memchr2(b'\n', b'\r', line).is_none();
        p.append_line(line, clean);
        self.woken(guard, false);
    }

    /// Unlocks, then wakes the writer if the pending buffer asks for it (`dropped`: a line was
    /// dropped at the cap, which wakes a lingering writer at once, so that it reports the drop).
    fn woken(&self, mut guard: MutexGuard<'_, Pending>, dropped: bool) {
        let sh = &*self.inner.shared;
        let wake_at = if dropped { 0 } else { sh.wake_at };
        let wake = guard.wake_writer(wake_at);
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

    /// Waits up to `timeout` for everything queued to be written, without closing (stderr at
    /// exit, which must not hang on a stderr nobody reads). True when all was written.
    pub(crate) fn flush_for(&self, timeout: Duration) -> bool {
        let sh = &*self.inner.shared;
        let deadline = Instant::now() + timeout;
        let mut p = lock(&sh.pending);
        p.flushing = true;
        let done = loop {
            if p.closing || (p.buf.is_empty() && p.cap_dropped == 0 && p.writer != WriterIs::Busy) {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            if p.wake_writer(0) {
                sh.wake.notify_one();
            }
            p = sh
                .written
                .wait_timeout(p, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        p.flushing = false;
        done
    }

    /// Lines dropped because the disk failed or was full.
    pub fn dropped(&self) -> u64 {
        self.inner.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn new(style: Style, max_age_ms: Option<i64>, file_start_ms: Option<i64>, cap: usize) -> Self {
        Shared {
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity((256 << 10).min(cap)),
                marks: Vec::new(),
                cap_dropped: 0,
                closing: false,
                flushing: false,
                writer: WriterIs::Busy,
                times: LocalSecondCache::new(),
                file_start_ms,
            }),
            wake: Condvar::new(),
            written: Condvar::new(),
            dropped: AtomicU64::new(0),
            style,
            max_age_ms,
            cap,
            wake_at: WAKE_AT.min(cap / 2),
        }
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
        self.shared.written.notify_all();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}
