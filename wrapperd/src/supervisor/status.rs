//! The `status/` files that change while wrapperd runs: `status.json`, `STATE`, `HEALTH`, and
//! the ones written once ffmpeg has started (the variables' values, `FFMPEG_PID`, `START_TIME`).
//!
//! `status.json` is rewritten when something in it changed (SPEC §3): at once on a change of
//! state, health or exit (the state wakes this loop), else checked once a second. What only
//! time moves (`uptime_s`, the output's age, how long a failing period has lasted) does not
//! count as a change, but the file is refreshed at least every [`REFRESH`]: an idle wrapperd
//! rewrote it (a new inode, a rename) every second, half of its CPU in the benchmarks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::api::Status;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::state::Daemon;
use crate::workdir::write_atomic;

/// The longest `status.json` goes without a rewrite while nothing but time changes.
pub(crate) const REFRESH: Duration = Duration::from_secs(10);

/// How often the status is looked at when nothing wakes the loop.
const TICK: Duration = Duration::from_secs(1);

/// `status` without what only the passing of time changes: equal fingerprints, same file.
fn fingerprint(status: &Status) -> Status {
    let mut f = status.clone();
    f.uptime_s = 0.0;
    f.check.last_output_age_s = None;
    f.check.failing_for_s = 0.0;
    f
}

/// Keeps `status/status.json`, `STATE` and `HEALTH` current (see the module doc); writes a last
/// time when `token` is cancelled.
pub(crate) async fn write_status_loop(shared: Arc<Daemon>, dir: PathBuf, token: CancellationToken) {
    let mut last: Option<(Status, Instant)> = None;
    loop {
        let done = tokio::select! {
            () = shared.changed.notified() => false,
            () = tokio::time::sleep(TICK) => false,
            () = token.cancelled() => true,
        };
        let status = shared.status();
        let print = fingerprint(&status);
        let (write, write_keys) = match &last {
            None => (true, true),
            Some((p, at)) => (
                done || *p != print || at.elapsed() >= REFRESH,
                p.state != print.state || p.health != print.health,
            ),
        };
        if write {
            last = Some((print, Instant::now()));
            write_status(status, dir.clone(), write_keys).await;
        }
        if done {
            break;
        }
    }
}

/// Writes `status.json` and, when `keys`, `STATE` and `HEALTH`, off the runtime's threads.
async fn write_status(status: Status, dir: PathBuf, keys: bool) {
    let res = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(&status).map_err(std::io::Error::other)?;
        write_atomic(&dir.join("status.json"), &json)?;
        if keys {
            write_atomic(&dir.join("STATE"), status.state.as_str().as_bytes())?;
            write_atomic(&dir.join("HEALTH"), status.health.as_str().as_bytes())?;
        }
        Ok(())
    })
    .await;
    if let Ok(Err(e)) = res {
        tracing::debug!("cannot write status files: {e}");
    }
}

/// Writes `files` (key, value) into `dir` in order, on a blocking thread. Started once ffmpeg
/// has been spawned, so its ~27 new inodes are not on the way to ffmpeg's exec; the order puts
/// `FFMPEG_PID` and `START_TIME` last, so once they exist every variable's file does.
pub(crate) fn write_files(dir: PathBuf, files: Vec<(String, String)>) -> JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        for (key, value) in files {
            if let Err(e) = write_atomic(&dir.join(&key), value.as_bytes()) {
                tracing::warn!("cannot write {}: {e}", dir.join(key).display());
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn only_time_moved_means_the_same_fingerprint() {
        let shared = Daemon::new(Config::from_vars(Vec::new()).unwrap(), Vec::new());
        let a = shared.status();
        let mut b = a.clone();
        b.uptime_s += 5.0;
        b.check.last_output_age_s = Some(3.0);
        b.check.failing_for_s = 2.0;
        assert_eq!(fingerprint(&a), fingerprint(&b));
        shared.begin_stopping("x".into());
        assert_ne!(fingerprint(&a), fingerprint(&shared.status()));
    }
}
