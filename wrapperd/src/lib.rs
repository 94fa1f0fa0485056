//! wrapperd: runs ffmpeg as its child, keeps its logs, stops it when the encode fails, and
//! serves an HTTP API. The contract is `SPEC.md`; this crate is organised by job.
//!
//! # Layout
//! - [`config`]: the environment variables, checked before anything starts.
//! - [`workdir`]: the work directory, its lock and the `status/` files.
//! - [`supervisor`]: spawns ffmpeg, stops it gracefully, reaps children, decides the exit.
//! - [`output`]: splits ffmpeg's stdout/stderr into lines and `-progress` into blocks.
//! - [`ring`]: the compact in-memory ring buffers.
//! - [`state`]: what all tasks share (rings, manager, life cycle).
//! - [`logfile`]: log files written off-thread, with rotation.
//! - [`logging`]: wrapperd's own log (stderr and `wrapperd.log`).
//! - [`rates`], [`manager`]: current rates and the rules that stop a failing encode.
//! - [`api`]: the HTTP API over the Unix socket and TCP.
//! - [`signals`]: what each signal to wrapperd means.

pub mod api;
pub mod config;
pub mod logfile;
pub mod logging;
pub mod manager;
pub mod output;
pub mod rates;
pub mod ring;
pub mod signals;
pub mod state;
pub mod supervisor;
pub mod workdir;
