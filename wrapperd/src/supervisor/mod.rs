//! Runs ffmpeg and decides how wrapperd ends (SPEC §1, §5 "Stopping ffmpeg", §7).
//!
//! [`run`] has three phases, each its own function:
//! - [`setup::setup`] sets everything up in the order the contract needs and spawns ffmpeg
//!   ([`setup::Running`]);
//! - [`phase::Supervisor::supervise`] owns ffmpeg until it has been reaped, as watchexec's
//!   supervisor does: ffmpeg's life is a [`phase::Phase`] carrying its data, and the process and
//!   signal sides are traits, so the loop has unit tests;
//! - [`Parts::finish`] drains ffmpeg's last output, records the exit (SPEC §7's table,
//!   [`phase::judge`]), stops the API and the tasks and flushes the logs.
//!
//! Reading ffmpeg's output happens in other tasks ([`crate::output`]), which never wait on the
//! loop. [`child`] spawns, signals and reaps ffmpeg (as tini does, every child that ends is
//! reaped); [`status`] keeps the `status/` files current. [`grace`] and [`input`] end ffmpeg's
//! network inputs when it does not stop (SPEC §9).

mod child;
mod grace;
mod input;
mod phase;
mod setup;
mod status;

use std::ffi::OsString;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Pid;
use shared::api::{ExitInfo, FfmpegStatus};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use child::reads_stdin;
pub use setup::SetupError;

use crate::api;
use crate::config::Config;
use crate::logfile::LogSink;
use crate::state::Daemon;
use crate::workdir::WorkDir;
use phase::{Inputs, Phase, Supervisor};
use setup::{Running, Started};
use status::StatusWriter;

/// Runs ffmpeg with `args` under `config` until it ends; returns wrapperd's exit status.
/// `shutdown` resolving asks for a graceful stop, as `SIGTERM` does.
pub async fn run(
    config: Config,
    args: Vec<OsString>,
    shutdown: impl Future<Output = ()>,
) -> Result<i32, SetupError> {
    let running = match setup::setup(config, &args).await? {
        Started::Running(r) => r,
        Started::NotStarted(parts, code, reason) => {
            return Ok(parts.finish(code, FfmpegStatus::NotStarted, reason).await)
        }
    };
    let Running {
        ffmpeg,
        signals,
        wake,
        readers,
        progress_reader,
        progress_hold,
        parts,
    } = running;
    let mut sup = Supervisor {
        child: ffmpeg,
        events: Inputs {
            signals,
            shutdown: Box::pin(shutdown),
            shutdown_seen: false,
        },
        shared: parts.shared.clone(),
        wake,
        logs: parts.logs.clone(),
        stop_timeout: parts.shared.config.stop_timeout,
        phase: Phase::Running,
    };
    let outcome = sup.supervise().await;
    drop(sup); // and with it ffmpeg's stdin.

    // ffmpeg is gone: take in what it wrote last, bounded in case a grandchild holds a pipe.
    let drain = Duration::from_secs(2);
    for r in readers {
        let _ = tokio::time::timeout(drain, r).await;
    }
    drop(progress_hold);
    let _ = tokio::time::timeout(drain, progress_reader).await;

    let (code, reason) = phase::judge(&parts.shared.config, &outcome);
    Ok(parts.finish(code, outcome.status, reason).await)
}

/// What a run holds until its end: the state, the API, the tasks, the log files and the work
/// directory's lock.
pub(crate) struct Parts {
    /// The state every task shares.
    shared: Arc<Daemon>,
    /// The API, shut down at the end.
    api: api::Api,
    /// Every task of the run, waited for (bounded) at the end.
    tracker: TaskTracker,
    /// Cancelled at the end: stops the API.
    token: CancellationToken,
    /// The status files' writer, once ffmpeg has been spawned (or could not be).
    status: Option<StatusWriter>,
    /// `ffmpeg.log` and `wrapperd.log`, unless `NO_FILE_LOG`.
    logs: Option<(LogSink, LogSink)>,
    /// Holds the work directory's lock until wrapperd has finished.
    _wd: WorkDir,
}

impl Parts {
    /// Records the exit, stops the API and every task, writes the reason as the last line of
    /// wrapperd.log and flushes the log files.
    async fn finish(self, code: i32, ffmpeg_status: FfmpegStatus, reason: String) -> i32 {
        self.shared.set_exit(ExitInfo {
            code,
            ffmpeg_status,
            reason: reason.clone(),
        });
        crate::events::drain(&self.shared, Duration::from_secs(10)).await;
        if let Some(s) = self.status {
            s.stop(Duration::from_secs(3));
        }
        self.token.cancel();
        self.api.shutdown().await;
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.tracker.wait()).await;
        let _ = child::reap(Pid::from_raw(-1));
        tracing::info!("exit {code}: {reason}");
        if let Some((f, w)) = self.logs {
            tokio::task::spawn_blocking(move || {
                f.close();
                w.close();
            })
            .await
            .ok();
        }
        code
    }
}
