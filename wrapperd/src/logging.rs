//! wrapperd's own log: `[YYYY-MM-DD HH:MM:SS] message` on stderr and in `logs/wrapperd.log`.
//!
//! A `tracing` layer formats each event once and hands it to both. The file is attached only
//! after the work directory is locked (a wrapperd that finds the directory busy must touch
//! nothing), and it is written by its [`LogSink`]'s thread, so logging never waits on the disk.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::logfile::LogSink;

static FILE: OnceLock<LogSink> = OnceLock::new();

/// Installs the global subscriber; `debug` enables debug-level messages.
pub fn init(debug: bool) {
    let max = if debug { Level::DEBUG } else { Level::INFO };
    let _ = tracing_subscriber::registry().with(Line { max }).try_init();
}

/// From now on every message also goes to `sink` (wrapperd.log).
pub fn attach_file(sink: LogSink) {
    let _ = FILE.set(sink);
}

/// The attached wrapperd.log, to rotate and close it.
pub fn file() -> Option<&'static LogSink> {
    FILE.get()
}

struct Line {
    max: Level,
}

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
        let _ = writeln!(
            std::io::stderr().lock(),
            "[{}] {text}",
            shared::timefmt::local_text(ms)
        );
        if let Some(f) = FILE.get() {
            f.push(ms, &text);
        }
    }
}
