//! Runs ffmpeg and decides how wrapperd ends (SPEC §1, §5 "Stopping ffmpeg", §7).
//!
//! [`run`] sets everything up in the order the contract needs — work directory lock, log files,
//! status files, the API, the progress FIFO (opened for reading before ffmpeg starts), the signal
//! streams (before the spawn, so no `SIGCHLD` is missed) — then spawns ffmpeg and supervises it
//! from one loop, as watchexec's supervisor does: the loop owns the child and `select!`s on
//! signals, the shutdown future, the manager's deadlines and the stop timeout. Reading ffmpeg's
//! output happens in other tasks ([`crate::output`]), which never wait on this loop.
//!
//! As tini does, wrapperd reaps every child that ends (as PID 1, or as a child subreaper), and it
//! gives ffmpeg its own process group, default signal dispositions, an empty signal mask and
//! `PR_SET_PDEATHSIG`, so ffmpeg neither inherits `nohup`'s ignored signals nor outlives
//! wrapperd. The stop is graceful exactly once: `q` on ffmpeg's stdin where wrapperd holds it,
//! one `SIGINT`, then `SIGKILL` after `STOP_TIMEOUT`.

use std::ffi::OsString;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use shared::api::{ExitInfo, FfmpegStatus};
use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, RotationMode};
use crate::logfile::{LogError, LogSink, LogSpec, Rotation, Style};
use crate::manager::Stop;
use crate::signals::{self, Event, Signals};
use crate::state::Daemon;
use crate::workdir::{WorkDir, WorkdirError};
use crate::{api, logging, output};

/// What stops wrapperd before ffmpeg starts: exit status 2, with this one line.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Workdir(#[from] WorkdirError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Api(#[from] api::ApiError),
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

impl SetupError {
    fn io<'a>(
        what: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> SetupError + 'a {
        move |source| SetupError::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Why ffmpeg was asked to stop.
#[derive(Debug, Clone)]
enum StopCause {
    Signal(Signal),
    Manager(Stop),
}

impl StopCause {
    fn describe(&self) -> String {
        match self {
            StopCause::Signal(s) => format!("stop requested by {s}"),
            StopCause::Manager(stop) => {
                format!(
                    "stopped by the manager: {}: {}",
                    stop.reason.as_str(),
                    stop.message
                )
            }
        }
    }
}

/// Runs ffmpeg with `args` under `config` until it ends; returns wrapperd's exit status.
/// `shutdown` resolving asks for a graceful stop, as `SIGTERM` does.
pub async fn run(
    config: Config,
    args: Vec<OsString>,
    shutdown: impl Future<Output = ()>,
) -> Result<i32, SetupError> {
    let wd = WorkDir::acquire(&config.workdir)?;
    // The ~25 configuration files (a new inode each) are written on another thread while the
    // logs, the API and the FIFO are set up; joined before ffmpeg starts, so a failure is still
    // a configuration error.
    let config_files = {
        let (dir, values) = (wd.status_dir(), config.effective_values());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for (key, value) in values {
                crate::workdir::write_atomic(&dir.join(key), value.as_bytes())?;
            }
            Ok(())
        })
    };
    let logs = open_logs(&config, &wd)?;
    if let Some((_, wrapperd_log)) = &logs {
        logging::attach_file(wrapperd_log.clone());
    }
    let cmd: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let shared = Arc::new(Daemon::new(config.clone(), cmd));
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(write_status_loop(
        shared.clone(),
        wd.status_dir(),
        token.clone(),
    ));

    wd.clear_socket()
        .map_err(SetupError::io("replace", &wd.socket_path()))?;
    let api = api::start(shared.clone(), token.clone(), |socket, tcp| {
        let _ = wd.write_status("API_SOCKET", &socket.display().to_string());
        let _ = wd.write_status("HTTP_ADDR", &tcp.map(|a| a.to_string()).unwrap_or_default());
    })
    .await?;

    let fifo = wd
        .make_fifo()
        .map_err(SetupError::io("create the FIFO", &wd.progress_fifo()))?;
    let progress_rx = pipe::OpenOptions::new()
        .open_receiver(&fifo)
        .map_err(SetupError::io("open the FIFO", &fifo))?;
    // Our own write end keeps the FIFO from reading EOF before ffmpeg opens it; dropped once
    // ffmpeg has exited, so the reader drains what is left and ends.
    let progress_hold = pipe::OpenOptions::new()
        .open_sender(&fifo)
        .map_err(SetupError::io("open the FIFO", &fifo))?;
    let mut signals = Signals::new().map_err(SetupError::io("listen for signals in", wd.root()))?;
    become_subreaper();
    config_files
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(SetupError::io("write", &wd.status_dir()))?;

    let started = Instant::now();
    let mut child = match spawn_ffmpeg(&config, &fifo, &args) {
        Ok(child) => child,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            let reason = format!(
                "cannot run ffmpeg {:?}: {e}",
                config.ffmpeg_bin.to_string_lossy()
            );
            drop(progress_hold);
            return Ok(Parts {
                shared,
                api,
                tracker,
                token,
                logs,
            }
            .finish(code, FfmpegStatus::NotStarted, reason)
            .await);
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    let start_ms = shared.ffmpeg_started(child.id(), started);
    let _ = wd.write_status("FFMPEG_PID", &child.id().to_string());
    let _ = wd.write_status("START_TIME", &shared::timefmt::local_text(start_ms));
    tracing::info!("started ffmpeg (pid {pid}): {}", shared.cmd.join(" "));

    let ffmpeg_log = logs.as_ref().map(|(f, _)| f.clone());
    let wake = Arc::new(tokio::sync::Notify::new());
    let mut readers = Vec::new();
    for fd in [
        child.stdout.take().map(OwnedFd::from),
        child.stderr.take().map(OwnedFd::from),
    ]
    .into_iter()
    .flatten()
    {
        match pipe::Receiver::from_owned_fd(fd) {
            Ok(rx) => readers.push(tracker.spawn(output::read_lines(
                rx,
                shared.clone(),
                ffmpeg_log.clone(),
            ))),
            Err(e) => tracing::error!("cannot read ffmpeg's output: {e}"),
        }
    }
    let progress_reader = tracker.spawn(output::read_progress(
        progress_rx,
        shared.clone(),
        wake.clone(),
    ));
    let mut stdin = child
        .stdin
        .take()
        .and_then(|s| pipe::Sender::from_owned_fd(OwnedFd::from(s)).ok());
    drop(child); // never waited on through std: the reaper below collects every child.

    let mut stop: Option<StopCause> = None;
    let mut asked_at: Option<tokio::time::Instant> = None;
    let mut killed = false;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut shutdown_seen = false;
    let stop_timeout = config.stop_timeout;
    let status = loop {
        if let Some(st) = reap(pid) {
            break st;
        }
        let deadline = shared.next_deadline().map(tokio::time::Instant::from_std);
        let kill_at = asked_at.map(|t| t + stop_timeout);
        let mut stop_now: Option<StopCause> = None;
        tokio::select! {
            ev = signals.recv() => match ev {
                Event::Child => {}
                Event::Rotate => {
                    if let Some((f, w)) = &logs {
                        f.rotate();
                        w.rotate();
                    }
                    tracing::info!("SIGHUP: logs rotated");
                }
                Event::Stop(sig) if stop.is_none() => stop_now = Some(StopCause::Signal(sig)),
                Event::Stop(sig) => {
                    if !killed {
                        tracing::warn!("second stop signal ({sig}): killing ffmpeg now");
                        let _ = kill(pid, Signal::SIGKILL);
                        killed = true;
                    }
                }
            },
            () = &mut shutdown, if !shutdown_seen => {
                shutdown_seen = true;
                if stop.is_none() {
                    stop_now = Some(StopCause::Signal(Signal::SIGTERM));
                }
            }
            () = wake.notified() => {}
            () = sleep_until(deadline), if deadline.is_some() && stop.is_none() => {}
            () = sleep_until(kill_at), if kill_at.is_some() && !killed => {
                tracing::warn!(
                    "ffmpeg did not stop within STOP_TIMEOUT ({} s): killing it",
                    stop_timeout.as_secs_f64()
                );
                let _ = kill(pid, Signal::SIGKILL);
                killed = true;
            }
        }
        if stop.is_none() && stop_now.is_none() {
            let (notes, decided) = shared.poll_manager(Instant::now());
            for note in notes {
                tracing::info!("{note}");
            }
            stop_now = decided.map(StopCause::Manager);
        }
        if let Some(cause) = stop_now {
            let text = cause.describe();
            tracing::info!(
                "{text}; asking ffmpeg to finish (q, one SIGINT), up to STOP_TIMEOUT {} s",
                stop_timeout.as_secs_f64()
            );
            shared.begin_stopping(text);
            if let Some(s) = stdin.as_mut() {
                let _ = s.try_write(b"q");
            }
            let _ = kill(pid, Signal::SIGINT);
            asked_at = Some(tokio::time::Instant::now());
            stop = Some(cause);
        }
    };
    drop(stdin);

    // ffmpeg is gone: take in what it wrote last, bounded in case a grandchild holds a pipe.
    let drain = Duration::from_secs(2);
    for r in readers {
        let _ = tokio::time::timeout(drain, r).await;
    }
    drop(progress_hold);
    let _ = tokio::time::timeout(drain, progress_reader).await;

    let ffmpeg_status = match status {
        WaitStatus::Exited(_, c) => FfmpegStatus::Code(c),
        WaitStatus::Signaled(_, s, _) => FfmpegStatus::Signal(s as i32),
        _ => FfmpegStatus::Code(-1),
    };
    let (code, reason) = judge(&config, stop.as_ref(), killed, ffmpeg_status);
    Ok(Parts {
        shared,
        api,
        tracker,
        token,
        logs,
    }
    .finish(code, ffmpeg_status, reason)
    .await)
}

/// The exit status and reason of SPEC §7's table.
fn judge(
    config: &Config,
    stop: Option<&StopCause>,
    killed: bool,
    st: FfmpegStatus,
) -> (i32, String) {
    match stop {
        None => {
            let code = if config.exit_code_passthrough {
                st.shell_code()
            } else {
                1
            };
            (code, format!("ffmpeg ended by itself with status {st}"))
        }
        Some(cause @ StopCause::Manager(_)) => (
            1,
            format!("{}; ffmpeg exited with status {st}", cause.describe()),
        ),
        Some(cause @ StopCause::Signal(_)) => match st {
            FfmpegStatus::Code(_) if !killed => (
                0,
                format!(
                    "{}; ffmpeg finished cleanly with status {st}",
                    cause.describe()
                ),
            ),
            _ if killed => (
                1,
                format!(
                    "{}; ffmpeg had to be killed (status {st})",
                    cause.describe()
                ),
            ),
            _ => (
                1,
                format!("{}; ffmpeg ended with status {st}", cause.describe()),
            ),
        },
    }
}

/// What a run holds until its end: the state, the API, the tasks and the log files.
struct Parts {
    shared: Arc<Daemon>,
    api: api::Api,
    tracker: TaskTracker,
    token: CancellationToken,
    logs: Option<(LogSink, LogSink)>,
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
        self.token.cancel();
        self.api.shutdown().await;
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.tracker.wait()).await;
        let _ = reap(Pid::from_raw(-1));
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

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Reaps every child that has ended; returns ffmpeg's status if it was among them.
fn reap(ffmpeg: Pid) -> Option<WaitStatus> {
    let mut found = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Ok(st @ (WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _))) => {
                if p == ffmpeg {
                    found = Some(st);
                } else {
                    tracing::debug!("reaped orphan process {p}");
                }
            }
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!("waitpid failed: {e}");
                break;
            }
        }
    }
    found
}

/// Outside PID 1, adopt orphaned descendants so they can be reaped too.
fn become_subreaper() {
    if std::process::id() != 1 {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            tracing::warn!(
                "cannot become a child subreaper: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Whether an input of the command reads stdin, which then goes to ffmpeg (SPEC §1).
pub fn reads_stdin(args: &[OsString]) -> bool {
    args.windows(2).any(|w| {
        w[0] == "-i"
            && ["-", "pipe:", "pipe:0", "/dev/stdin"]
                .iter()
                .any(|s| w[1] == *s)
    })
}

/// Spawns ffmpeg with `-progress FIFO` before the user's arguments. Must be called from a thread
/// that lives as long as wrapperd (the runtime's `block_on` thread): `PR_SET_PDEATHSIG` fires when
/// the spawning thread ends.
fn spawn_ffmpeg(
    config: &Config,
    fifo: &Path,
    args: &[OsString],
) -> std::io::Result<std::process::Child> {
    let mut cmd = Command::new(&config.ffmpeg_bin);
    cmd.arg("-progress").arg(fifo).args(args);
    cmd.stdin(if reads_stdin(args) {
        Stdio::inherit()
    } else {
        Stdio::piped()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.process_group(0);
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls
    // (prctl, getppid, sigaction, sigprocmask).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("wrapperd died before ffmpeg started"));
            }
            signals::reset_for_child()
        });
    }
    cmd.spawn()
}

/// Opens `ffmpeg.log` and `wrapperd.log`, unless `NO_FILE_LOG`.
fn open_logs(config: &Config, wd: &WorkDir) -> Result<Option<(LogSink, LogSink)>, SetupError> {
    if config.no_file_log {
        return Ok(None);
    }
    let rotation = match config.log_rotation_mode {
        RotationMode::Size => Rotation::Size {
            max_bytes: config.log_rotation_max_kbytes.saturating_mul(1024),
        },
        RotationMode::Days => Rotation::Days {
            days: config.log_rotation_days,
        },
    };
    let spec = |name: &str, style| LogSpec {
        path: wd.logs_dir().join(name),
        rotation,
        backups: config.log_rotation_backup,
        style,
    };
    let ffmpeg = LogSink::open(spec("ffmpeg.log", Style::Angle))?;
    let wrapperd = LogSink::open(spec("wrapperd.log", Style::Bracket))?;
    Ok(Some((ffmpeg, wrapperd)))
}

/// Keeps `status/status.json`, `STATE` and `HEALTH` current: at once on every change, else at
/// most once a second; a last time at the end.
async fn write_status_loop(shared: Arc<Daemon>, dir: PathBuf, token: CancellationToken) {
    let mut last = (None, None);
    loop {
        let done = tokio::select! {
            () = shared.changed.notified() => false,
            () = tokio::time::sleep(Duration::from_secs(1)) => false,
            () = token.cancelled() => true,
        };
        let status = shared.status();
        let now = (Some(status.state), Some(status.health));
        let dir2 = dir.clone();
        let write_keys = now != last;
        last = now;
        let res = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let json = serde_json::to_vec_pretty(&status).map_err(std::io::Error::other)?;
            crate::workdir::write_atomic(&dir2.join("status.json"), &json)?;
            if write_keys {
                crate::workdir::write_atomic(
                    &dir2.join("STATE"),
                    status.state.as_str().as_bytes(),
                )?;
                crate::workdir::write_atomic(
                    &dir2.join("HEALTH"),
                    status.health.as_str().as_bytes(),
                )?;
            }
            Ok(())
        })
        .await;
        if let Ok(Err(e)) = res {
            tracing::debug!("cannot write status files: {e}");
        }
        if done {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn stdin_inputs_are_recognised() {
        assert!(reads_stdin(&os(&["-i", "-", "-f", "null", "-"])));
        assert!(reads_stdin(&os(&["-re", "-i", "pipe:0", "out.mp4"])));
        assert!(reads_stdin(&os(&["-i", "pipe:", "x"])));
        assert!(reads_stdin(&os(&["-i", "/dev/stdin", "x"])));
        assert!(!reads_stdin(&os(&["-i", "in.mp4", "-f", "null", "-"])));
        assert!(!reads_stdin(&os(&["-f", "lavfi", "-i", "testsrc", "-"])));
    }

    #[test]
    fn exit_table() {
        let cfg = Config::from_vars(Vec::new()).unwrap();
        let pass = Config {
            exit_code_passthrough: true,
            ..cfg.clone()
        };
        assert_eq!(judge(&cfg, None, false, FfmpegStatus::Code(0)).0, 1);
        assert_eq!(judge(&pass, None, false, FfmpegStatus::Code(3)).0, 3);
        assert_eq!(judge(&pass, None, false, FfmpegStatus::Signal(9)).0, 137);
        let sig = StopCause::Signal(Signal::SIGTERM);
        assert_eq!(judge(&cfg, Some(&sig), false, FfmpegStatus::Code(255)).0, 0);
        assert_eq!(
            judge(&pass, Some(&sig), false, FfmpegStatus::Code(255)).0,
            0
        );
        assert_eq!(judge(&cfg, Some(&sig), true, FfmpegStatus::Signal(9)).0, 1);
        let mgr = StopCause::Manager(Stop {
            reason: crate::manager::StopReason::Stalled,
            message: "x".into(),
        });
        assert_eq!(
            judge(&pass, Some(&mgr), false, FfmpegStatus::Code(255)).0,
            1
        );
    }
}
