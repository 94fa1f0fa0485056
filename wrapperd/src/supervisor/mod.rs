//! Runs ffmpeg, run after run, and decides how wrapperd ends (SPEC §1, §5 "Stopping ffmpeg",
//! §7, §10).
//!
//! [`run`] sets up once and then loops over runs, each step its own function:
//! - [`setup::prepare`] sets up what lasts across runs in the order the contract needs (lock,
//!   logs, `runs.jsonl`, API, FIFO, signals); [`setup::Life::spawn`] opens the FIFO and spawns
//!   each run's ffmpeg;
//! - [`phase::Supervisor::supervise`] owns ffmpeg until it has been reaped, as watchexec's
//!   supervisor does: ffmpeg's life is a [`phase::Phase`] carrying its data, and the process and
//!   signal sides are traits, so the loop has unit tests;
//! - `run_once` drains the run's last output and records it (SPEC §7's table, [`phase::judge`],
//!   ffmpeg's last words, `runs.jsonl`); `decide` asks the restart policy ([`restart`], pure)
//!   what follows; `wait_to_restart` waits out the delay ([`between`]);
//! - [`Parts::finish`] records the exit, stops the API and the tasks and flushes the logs.
//!
//! Reading ffmpeg's output happens in other tasks ([`crate::output`]), which never wait on the
//! loop. [`child`] spawns, signals and reaps ffmpeg (as tini does, every child that ends is
//! reaped); [`status`] keeps the `status/` files current. [`grace`] and [`input`] end ffmpeg's
//! network inputs when it does not stop (SPEC §9).

mod between;
mod child;
mod grace;
mod input;
mod phase;
mod restart;
mod setup;
mod status;

use std::ffi::OsString;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Pid;
use shared::api::{ExitInfo, FfmpegStatus, RunRecord};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use child::reads_stdin;
pub use setup::SetupError;

use crate::api;
use crate::config::Config;
use crate::events::Emit;
use crate::logfile::LogSink;
use crate::logging;
use crate::runs::{self, RunLog};
use crate::state::{Control, Daemon};
use crate::workdir::WorkDir;
use between::Between;
use phase::{Inputs, Outcome, Phase, RunClock, StopCause, Supervisor};
use restart::{Backoff, Ending, Next};
use setup::{RunIo, Spawned};
use status::StatusWriter;

/// ffmpeg's last lines printed on wrapperd's stderr when it ended by itself (SPEC §10).
const STDERR_LAST_LINES: usize = 10;

/// Runs ffmpeg with `args` under `config`, run after run as `RESTART` says, until wrapperd
/// exits; returns its exit status. `shutdown` resolving asks for a graceful stop, as `SIGTERM`
/// does.
pub async fn run(
    config: Config,
    args: Vec<OsString>,
    shutdown: impl Future<Output = ()>,
) -> Result<i32, SetupError> {
    let (mut life, signals) = setup::prepare(config, &args)?;
    let mut run = match life.spawn(&args)? {
        Spawned::Running(r) => r,
        Spawned::NotStarted(code, reason) => {
            return Ok(life
                .parts
                .finish(code, FfmpegStatus::NotStarted, reason)
                .await)
        }
    };
    let shared = life.parts.shared.clone();
    let mut backoff = Backoff::new(restart::Rules::from_config(&shared.config));
    let mut sup = Supervisor {
        child: run.ffmpeg,
        events: Inputs {
            signals,
            shutdown: Box::pin(shutdown),
            shutdown_seen: false,
        },
        shared: shared.clone(),
        wake: run.wake.clone(),
        logs: life.parts.logs.clone(),
        stop_timeout: shared.config.stop_timeout,
        phase: Phase::Running,
        run: RunClock::new(Instant::from_std(run.at)),
    };
    loop {
        let ended = run_once(&mut sup, run.io, life.parts.runlog.as_ref()).await;
        let status = ended.outcome.status;
        let ending = ending_of(&ended.outcome);
        let delay = match decide(&mut backoff, &shared, &ended, ending) {
            Ok(delay) => delay,
            Err((code, why)) => return Ok(life.parts.finish(code, status, why).await),
        };
        if let Some(why) = wait_to_restart(&mut sup, &ended, delay).await {
            return Ok(life.parts.finish(0, status, why).await);
        }
        backoff.restarted(ending, std::time::Instant::now());
        shared.set_restarts(
            backoff.total(),
            backoff.in_window(std::time::Instant::now()),
        );
        run = match life.spawn(&args) {
            Ok(Spawned::Running(r)) => r,
            Ok(Spawned::NotStarted(code, why)) => {
                return Ok(life.parts.finish(code, FfmpegStatus::NotStarted, why).await)
            }
            Err(e) => {
                let why = format!("cannot start the next run: {e}");
                return Ok(life.parts.finish(1, status, why).await);
            }
        };
        sup.child = run.ffmpeg;
        sup.wake = run.wake.clone();
        sup.phase = Phase::Running;
        sup.run = RunClock::new(Instant::from_std(run.at));
    }
}

/// What follows a run, by the restart policy: the delay before the next run, or wrapperd's
/// exit status and reason.
fn decide(
    backoff: &mut Backoff,
    shared: &Daemon,
    ended: &Ended,
    ending: Ending,
) -> Result<Duration, (i32, String)> {
    let now = std::time::Instant::now();
    match backoff.decide(ending, ended.outcome.healthy_for, now) {
        Next::Exit => Err((ended.code, ended.reason.clone())),
        Next::GiveUp { restarts } => {
            let window = backoff.rules().window.as_secs_f64();
            let why = format!(
                "gave up: {restarts} restarts in {window} s; last run: {}",
                ended.reason
            );
            shared.emit(Emit::GaveUp {
                reason: why.clone(),
            });
            Err((ended.code, why))
        }
        Next::Restart { delay } => {
            shared.report_run_exited();
            Ok(delay)
        }
    }
}

/// Waits out the restart delay in the `restarting` state; the exit reason when a stop was
/// asked meanwhile (wrapperd then exits 0, SPEC §7).
async fn wait_to_restart<E: phase::Events>(
    sup: &mut Supervisor<child::Ffmpeg, E>,
    ended: &Ended,
    delay: Duration,
) -> Option<String> {
    if delay.is_zero() {
        return None;
    }
    let why = format!("run {} ended ({})", ended.number, ended.reason);
    tracing::info!("{why}; restarting in {} s", delay.as_secs_f64());
    let until = Instant::now() + delay;
    sup.shared.set_restarting(why, until.into_std());
    match sup.between_runs(until).await {
        Between::Elapsed => None,
        Between::RestartNow(origin) => {
            tracing::info!("restart requested by POST /restart ({origin}): starting now");
            None
        }
        Between::Stop(why) => {
            sup.shared.set_exiting();
            Some(why)
        }
    }
}

/// How the restart policy sees a run's end.
fn ending_of(o: &Outcome) -> Ending {
    if o.signalled {
        return Ending::StopAsked;
    }
    match &o.cause {
        None if o.status == FfmpegStatus::Code(0) => Ending::Clean,
        None => Ending::Failed,
        Some(StopCause::Signal(_)) => Ending::StopAsked,
        Some(StopCause::Control(req)) if req.what == Control::Stop => Ending::StopAsked,
        Some(StopCause::Control(_)) => Ending::RestartAsked,
        Some(StopCause::MaxRuntime(_)) => Ending::MaxRuntime,
        Some(StopCause::Manager(_)) => Ending::Manager,
    }
}

/// One run's end, judged and recorded.
struct Ended {
    /// The run's number.
    number: u64,
    /// How it ended.
    outcome: Outcome,
    /// wrapperd's exit status if it exits now.
    code: i32,
    /// The exit reason if it exits now (ffmpeg's last words in it when it ended by itself).
    reason: String,
}

/// Supervises one run until ffmpeg has ended and its output is drained, then records it.
async fn run_once<E: phase::Events>(
    sup: &mut Supervisor<child::Ffmpeg, E>,
    io: RunIo,
    runlog: Option<&RunLog>,
) -> Ended {
    let outcome = sup.supervise().await;
    sup.child.stdin = None;
    // ffmpeg is gone: take in what it wrote last, bounded in case a grandchild holds a pipe.
    let drain = Duration::from_secs(2);
    for r in io.readers {
        let _ = tokio::time::timeout(drain, r).await;
    }
    drop(io.progress_hold);
    let _ = tokio::time::timeout(drain, io.progress_reader).await;

    let shared = &sup.shared;
    let lines = shared.lines_since(io.lines_from, 64);
    let by_itself = outcome.cause.is_none();
    let words = if by_itself {
        runs::last_words(&lines)
    } else {
        None
    };
    let (code, reason) = phase::judge(&shared.config, &outcome, words.as_deref());
    if by_itself {
        print_last_lines(&lines);
    }
    let number = shared.run_number();
    let start_ms = shared
        .ffmpeg_start_ms()
        .unwrap_or_else(shared::timefmt::now_ms);
    let end_ms = shared::timefmt::now_ms();
    let record = RunRecord {
        run: number,
        start: shared::timefmt::rfc3339_ms(start_ms),
        end: shared::timefmt::rfc3339_ms(end_ms),
        duration_s: sup.run.started.elapsed().as_secs_f64(),
        ffmpeg_pid: shared.ffmpeg_pid(),
        ffmpeg_status: outcome.status,
        reason: reason.clone(),
        error: words,
        last_progress: shared.last_progress(),
        last_lines: lines[lines.len().saturating_sub(runs::RECORD_LINES)..]
            .iter()
            .map(|l| runs::clip(l))
            .collect(),
    };
    tracing::info!("run {number} ended: {reason}");
    let line = runs::to_line(&record);
    if let Some(log) = runlog {
        log.append(line.clone());
    }
    shared.run_ended(record, line);
    Ended {
        number,
        outcome,
        code,
        reason,
    }
}

/// ffmpeg ended by itself: its last lines (not its stats) on wrapperd's stderr, so a user in a
/// terminal sees why without opening `ffmpeg.log`.
fn print_last_lines(lines: &[String]) {
    let words: Vec<&String> = lines
        .iter()
        .filter(|l| !crate::output::is_stats_line(l))
        .collect();
    let tail = &words[words.len().saturating_sub(STDERR_LAST_LINES)..];
    if tail.is_empty() {
        return;
    }
    logging::stderr_line(&format!("ffmpeg's last {} lines:", tail.len()));
    for l in tail {
        logging::stderr_line(&format!("  ffmpeg| {l}"));
    }
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
    /// `status/runs.jsonl`'s writer.
    runlog: Option<RunLog>,
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
        if let Some(r) = self.runlog {
            r.close(Duration::from_secs(3));
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
