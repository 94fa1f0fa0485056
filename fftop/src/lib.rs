//! fftop: a terminal monitor for one or many wrapperd (SPEC §8).
//!
//! It reaches each wrapperd only through `shared::client`, on one task per target, and draws
//! from one state ([`app::App`]) changed by one event type ([`event::Event`]), after the
//! structure of bottom (ClementTsang/bottom).
//!
//! # Layout
//! - [`cli`]: the command line.
//! - [`app`]: the state and `App::update`, the only place it changes (keys, polls, scans, ticks).
//! - [`event`]: the `Event` type every source sends.
//! - [`poll`]: one poller task per target (timeout, backoff, `/status`, `/series`, log lines).
//! - [`scan`]: `--scan DIR`, targets appearing and disappearing live (exited ones stay).
//! - [`exited`]: an exited encode's files (`status.json`, the tail of `runs.jsonl`).
//! - [`sources`]: the target set: command line, scan, `--targets-file`, remote aggregators.
//! - [`history`]: a target's rate points, with gaps, for sparklines and charts.
//! - [`timeline`]: the detail view's newest events (`/events?since=ID&once`, polled).
//! - [`ui`]: drawing, a pure function of `&App`.
//! - [`format`]: number and time formatting for the screen and `--once`.
//! - [`term`]: terminal setup and restore (panic hook, synchronized frames).
//! - [`tui`]: the interactive loop wiring all of the above.
//! - [`once`]: `--once` (plain table or JSON, exit status by health).
//! - [`serve`]: `--serve HOST:PORT`, the headless aggregator (SPEC §13).
//! - [`targets_file`]: `--targets-file FILE`, re-read when it changes.

pub mod actions;
pub mod app;
pub mod cli;
pub mod event;
pub mod exited;
pub mod format;
pub mod history;
pub mod logs;
pub mod once;
pub mod poll;
pub mod runs;
pub mod scan;
pub mod serve;
pub mod sort;
pub mod sources;
pub mod targets_file;
pub mod term;
pub mod timeline;
pub mod tui;
pub mod ui;
mod views;

#[cfg(test)]
mod app_tests;
#[cfg(test)]
mod testutil;
#[cfg(test)]
mod ui_tests;
#[cfg(test)]
mod views_tests;

use std::time::Duration;

pub use cli::Cli;

/// Runs fftop as the command line asks and returns its exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    // The aggregator runs on one thread: its work is many small polls and answers, and one
    // thread spares the wake-ups between workers (a third of its CPU with two).
    let rt = if cli.serve.is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    };
    let code = rt.block_on(async {
        if let Some(addr) = &cli.serve {
            serve::run(&cli, addr).await
        } else if cli.once {
            once::run(&cli).await
        } else {
            tui::run(&cli).await
        }
    });
    // A poller or scan stuck in a system call must not hold up the exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    code
}
