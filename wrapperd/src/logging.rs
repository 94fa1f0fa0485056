//! wrapperd's own log: `[YYYY-MM-DD HH:MM:SS] message` on stderr and in `logs/wrapperd.log`.
//!
//! A `tracing` layer formats each event once and hands it to both. The file is attached only
//! after the work directory is locked (a wrapperd that finds the directory busy must touch
//! nothing), and it is written by its [`LogSink`]'s thread, so logging never waits on the disk.
//!
//! stderr is a [`LogSink`] too (`LogSink::stream`): a stderr nobody reads (a stalled container
//! log driver) must not stop the task that logs — the progress reader included, which would stop
//! ffmpeg. Lines that do not fit its queue (`STDERR_CAP`) are dropped, counted, and announced
//! by one `[wrapperd] N lines dropped: …` line once stderr takes lines again. At exit, what is
//! queued is written if stderr takes it within `EXIT_FLUSH`. That writer starts once ffmpeg has
//! been spawned ([`start_stderr_writer`]); before, the few start-up lines go straight to stderr.
//!
//! With `FFMPEG_LOG_TO_STDERR`, ffmpeg's own output lines go to the same stderr queue, as
//! ffmpeg printed them (no timestamp, so `docker logs` and the journal show them as if ffmpeg
//! wrote them) ([`ffmpeg_line`]): the reader of ffmpeg's output never waits on stderr either.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::logfile::{LogSink, Style};

/// Most bytes of wrapperd's own log waiting for stderr; more lines are dropped (and counted).
pub(crate) const STDERR_CAP: usize = 4 << 20;
/// How long exit waits for stderr to take what is queued.
pub(crate) const EXIT_FLUSH: Duration = Duration::from_secs(1);

static FILE: OnceLock<LogSink> = OnceLock::new();
static STDERR: OnceLock<LogSink> = OnceLock::new();

/// Installs the global subscriber; `debug` enables debug-level messages. Until
/// [`start_stderr_writer`], messages go straight to stderr (start-up writes a few lines, and
/// nothing that reads ffmpeg runs yet).
pub fn init(debug: bool) {
    let max = if debug { Level::DEBUG } else { Level::INFO };
    let _ = tracing_subscriber::registry().with(Line { max }).try_init();
}

/// Starts the stderr writer thread and has exit wait (up to `EXIT_FLUSH`) for it. Called once
/// ffmpeg has been spawned, so the thread's start is not on the way to ffmpeg's exec.
pub fn start_stderr_writer() {
    if STDERR.get().is_some() {
        return;
    }
    if let Ok(sink) = LogSink::stream(
        Box::new(std::io::stderr()),
        "stderr",
        Style::Bracket,
        STDERR_CAP,
    ) {
        if STDERR.set(sink).is_ok() {
            // SAFETY: registers a plain function without arguments, run by `exit`.
            unsafe {
                libc::atexit(flush_stderr_at_exit);
            }
        }
    }
}

/// Run by `exit` (returning from `main` too): writes what is queued for stderr, unless stderr
/// does not take it within [`EXIT_FLUSH`].
extern "C" fn flush_stderr_at_exit() {
    if let Some(s) = STDERR.get() {
        s.flush_for(EXIT_FLUSH);
    }
}

/// One line on stderr as it is (no timestamp), queued like the log's lines: for messages about
/// the log files, which their writer threads must not block on.
pub(crate) fn stderr_line(text: &str) {
    match STDERR.get() {
        Some(s) => s.push_raw(text),
        None => eprintln!("{text}"),
    }
}

/// One of ffmpeg's output lines on wrapperd's stderr, as it is (`FFMPEG_LOG_TO_STDERR`). Queued,
/// never waited on; when the stderr writer cannot be started, the line is dropped rather than
/// written from the caller (the reader of ffmpeg's output).
pub(crate) fn ffmpeg_line(text: &str) {
    if STDERR.get().is_none() {
        start_stderr_writer();
    }
    if let Some(s) = STDERR.get() {
        s.push_raw(text);
    }
}

/// From now on every message also goes to `sink` (wrapperd.log).
pub fn attach_file(sink: LogSink) {
    let _ = FILE.set(sink);
}

/// The attached wrapperd.log, to rotate and close it.
pub fn file() -> Option<&'static LogSink> {
    FILE.get()
}

/// The layer that writes each event as one line.
struct Line {
    /// The most verbose level written.
    max: Level,
}

/// An event's message, then its other fields as ` name=value`.
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for Line {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        *meta.level() <= self.max
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut msg = Message(String::new());
        event.record(&mut msg);
        let text = match *event.metadata().level() {
            Level::ERROR => format!("error: {}", msg.0),
            Level::WARN => format!("warning: {}", msg.0),
            Level::DEBUG | Level::TRACE => format!("debug: {}", msg.0),
            Level::INFO => msg.0,
        };
        let ms = shared::timefmt::now_ms();
        match STDERR.get() {
            Some(s) => s.push(ms, &text),
            None => {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "[{}] {text}",
                    shared::timefmt::local_text(ms)
                );
            }
        }
        if let Some(f) = FILE.get() {
            f.push(ms, &text);
        }
    }
}
