//! Code both `wrapperd` and `fftop` depend on, and nothing that knows either binary.
//!
//! # Layout
//! - [`api`]: the JSON types of the HTTP API (`/status`, `/series`, ...). Fields may be added,
//!   never renamed: existing clients rely on them.
//! - [`events`]: the events of `GET /events`, `EVENT_HOOK` and `WEBHOOK_URL` (SPEC §11).
//! - [`progress`]: the parser of ffmpeg's `-progress` blocks, for every ffmpeg from 4.1 on.
//! - [`client`]: the API client (Unix socket or TCP) used by fftop and the integration tests;
//!   only with the `client` feature (hyper's client), which wrapperd does not enable.
//! - [`timefmt`]: the two time formats of the API (local `YYYY-MM-DD HH:MM:SS`, RFC 3339 ms),
//!   and the per-second local-time cache the log files and the API share.

pub mod api;
#[cfg(feature = "client")]
pub mod client;
pub mod events;
pub mod progress;
pub mod timefmt;

/// The version both programs report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
