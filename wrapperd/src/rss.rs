//! ffmpeg's resident memory, sampled for the manager's `FFMPEG_MAX_RSS_MB` rule (SPEC §10).
//!
//! One task for wrapperd's life, only when `FFMPEG_MAX_RSS_MB` is set: every [`EVERY`] it reads
//! `/proc/<ffmpeg pid>/statm` (one small read of a kernel file: no disk, no waiting) and hands
//! the resident bytes to the manager through [`Daemon::push_rss`], which takes a sample only
//! while that pid is the running ffmpeg (so a sample between runs, or of a reused pid, is
//! dropped). The rule itself, and its deadline for the supervisor, are pure, in
//! `crate::manager`. The decisions it returns are logged here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::Daemon;

/// How often ffmpeg's memory is sampled.
pub(crate) const EVERY: Duration = Duration::from_millis(500);

/// Starts the sampler (once, at setup) when `FFMPEG_MAX_RSS_MB` is set; it ends with `token`.
pub(crate) fn spawn(daemon: Arc<Daemon>, tracker: &TaskTracker, token: CancellationToken) {
    if daemon.config.ffmpeg_max_rss_mb.is_none() {
        return;
    }
    tracker.spawn(async move {
        // SAFETY: sysconf has no preconditions.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            let Some(pid) = daemon.ffmpeg_pid() else {
                continue;
            };
            let Some(pages) = read_resident_pages(pid) else {
                continue;
            };
            let bytes = pages.saturating_mul(page);
            for note in daemon.push_rss(Instant::now(), pid, bytes) {
                tracing::info!("{note}");
            }
        }
    });
}

/// The resident pages of process `pid`, if it is there.
fn read_resident_pages(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    resident_pages(&text)
}

/// The second field of `/proc/<pid>/statm` (`size resident shared text lib data dt`, pages).
fn resident_pages(statm: &str) -> Option<u64> {
    statm.split_ascii_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_is_the_second_field() {
        assert_eq!(resident_pages("10883 2412 1870 62 0 481 0\n"), Some(2412));
        assert_eq!(resident_pages("0 0 0 0 0 0 0\n"), Some(0));
        assert_eq!(resident_pages(""), None);
        assert_eq!(resident_pages("12"), None);
    }

    #[test]
    fn this_process_has_resident_memory() {
        let pages = read_resident_pages(std::process::id()).unwrap();
        assert!(pages > 0);
        assert_eq!(read_resident_pages(u32::MAX), None);
    }
}
