//! A stream output (wrapperd's stderr): written like a log file, but never rotated, reopened or
//! checked, and with no size limit. Failures are not reported (there is nowhere left to report
//! them); the dropped lines are counted and announced once the stream takes lines again.

use std::io::{self, Write};

use super::writer::Output;

/// A stream written by a sink's writer thread, e.g. `std::io::stderr()`.
pub(crate) struct Stream {
    /// What is written to.
    out: Box<dyn Write + Send>,
    /// Its name in messages, e.g. `stderr`.
    name: &'static str,
}

impl Stream {
    pub(crate) fn new(out: Box<dyn Write + Send>, name: &'static str) -> Stream {
        Stream { out, name }
    }
}

impl Output for Stream {
    fn describe(&self) -> String {
        self.name.to_string()
    }

    fn drop_reason(&self) -> &'static str {
        "stderr not read, failing or too slow"
    }

    fn reports_failures(&self) -> bool {
        false
    }

    fn is_open(&self) -> bool {
        true
    }

    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.out.write(data)
    }

    fn size(&self) -> u64 {
        0
    }

    fn max_bytes(&self) -> Option<u64> {
        None
    }

    fn rotate(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn path_moved(&self) -> bool {
        false
    }

    fn has_path(&self) -> bool {
        false
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }
}
