//! The integration tests: one test binary (`integration`) with a module per area, as ripgrep
//! does, so the crate links once instead of once per file. Run one area with
//! `cargo test -p tests --test integration api::` (or `deploy::`, `fftop::`, `logs::`,
//! `manager::`, `reliability::`, `stderr::`, `supervisor::`), or a part of one with its
//! submodule:
//!
//! - `events::stream::`, `events::hook::`, `events::webhook::`
//! - `api::endpoints::`, `api::access::`, `api::load::`
//! - `deploy::notify::`, `deploy::files::`, `deploy::manifests::`, `deploy::container::`
//! - `manager::fake::`, `manager::real::`
//! - `reliability::disk::`, `reliability::process::`, `reliability::abuse::`
//! - `supervisor::run::`, `supervisor::signals::`, `supervisor::startup::`
//!
//! The tests run the built binaries: `cargo build --workspace --bins` first.

mod api;
mod config;
mod deploy;
mod events;
mod fftop;
mod fftop_actions;
mod fftop_fleet;
mod grace;
mod logs;
mod manager;
mod reliability;
mod restart;
mod stderr;
mod supervisor;
