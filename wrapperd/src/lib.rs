//! wrapperd: runs ffmpeg as its child, keeps its logs, stops it when the encode fails, and
//! serves an HTTP API. The contract is `SPEC.md`; this crate is organised by job.
//!
//! # Layout
//! - [`config`]: one table of the environment variables (struct, parsing, defaults, `--help`,
//!   `status/` values), checked before anything starts.
//! - [`workdir`]: the work directory, its lock and the `status/` files.
//! - [`supervisor`]: `setup` (once: lock, logs, run history, API, FIFO; per run: the spawn),
//!   `phase` (the loop over one ffmpeg's life: `Running`, then `Stopping { cause, asked_at,
//!   killed }`), `restart` (the restart policy, pure), `between` (the wait between runs),
//!   `child` (spawn, reap), `status` (status.json on change), and the exit.
//! - [`runs`]: `status/runs.jsonl` (one record per ended run) and ffmpeg's last words.
//! - [`output`]: splits ffmpeg's stdout/stderr into lines and `-progress` into blocks.
//! - [`ring`]: the in-memory rings, lines stored inline in reused 64 KiB blocks.
//! - [`state`]: [`state::Daemon`], what all tasks share, behind methods.
//! - [`logfile`]: log sinks that never block the pusher: `sink` (push side), `writer` (the
//!   writer thread), `file` (`RotatingFile`), `stream` (stderr).
//! - [`logging`]: wrapperd's own log (stderr and `wrapperd.log`).
//! - [`rates`], [`manager`]: current rates and the rules that stop a failing encode (pure).
//! - [`rss`]: samples ffmpeg's resident memory for the manager (`FFMPEG_MAX_RSS_MB`).
//! - [`api`]: the HTTP API: `listener`, `io`, `routes`, `auth`, `control`, `format`, `metrics`.
//! - [`signals`]: what each signal to wrapperd means.
//! - [`notify`]: systemd's notify protocol (`READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`).
//! - [`events`]: the event bus and its consumers: `GET /events`, `EVENT_HOOK`, `WEBHOOK_URL`.
//!
//! Only what the binary (`main.rs`) and the integration tests use is public; the rest is private
//! to the crate, so the compiler reports what nothing uses.

// The docs are for working on wrapperd (`cargo doc --document-private-items`): they link to
// the private modules freely.
#![allow(rustdoc::private_intra_doc_links)]

mod api;
pub mod config;
mod events;
mod logfile;
pub mod logging;
mod manager;
mod notify;
mod output;
#[cfg(test)]
mod output_props;
mod rates;
mod ring;
mod rss;
mod runs;
pub mod signals;
mod state;
pub mod supervisor;
mod workdir;
