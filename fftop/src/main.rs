//! The `fftop` binary: parse the command line, run, turn the outcome into an exit status.
//!
//! Everything else is in the library (`lib.rs`), where it can be tested.
//!
//! Exit status: 0 (quit, or `--once` with every target healthy or warming up), 1 (`--once` with
//! a target not healthy or down, the terminal went away, a runtime error), 2 (bad command line).

use std::process::ExitCode;

use clap::Parser;
use fftop::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match fftop::run(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("fftop: {e:#}");
            ExitCode::from(1)
        }
    }
}
