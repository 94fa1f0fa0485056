//! wrapperd as a supervisor (SPEC §1–§4, §7), with real ffmpeg where the contract is about
//! ffmpeg, and small shell-script children where a test needs a child that behaves oddly.
//!
//! [`run`]: running ffmpeg; [`signals`]: signals and stops; [`startup`]: start-up, the work
//! directory and the status files.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tests::*;

mod run;
mod signals;
mod startup;

const T: Duration = Duration::from_secs(60);

/// A real ffmpeg run of a tenth of a second.
const SHORT_ENCODE: &[&str] = &[
    "-hide_banner",
    "-f",
    "lavfi",
    "-i",
    "testsrc=d=0.1",
    "-f",
    "null",
    "-",
];
