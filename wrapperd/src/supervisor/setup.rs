//! Everything before the loop, in the order the contract needs. Once per life ([`prepare`]):
//! work directory lock, log files, the run history (`runs.jsonl`), the API, the progress FIFO,
//! the signal streams (before the spawn, so no `SIGCHLD` is missed). Once per run
//! ([`Life::spawn`]): the FIFO opened for reading before ffmpeg starts, then ffmpeg and the tasks
//! reading its output.
//!
//! A failure before the first spawn is a [`SetupError`] (exit 2). The start of ffmpeg's exec is
//! kept short: the status writer ([`StatusWriter`]) starts after the first spawn, and writes the
//! variables' status files, `FFMPEG_PID`, `START_TIME` and the first `status.json`.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use nix::unistd::Pid;
use tokio::net::unix::pipe;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::child::{self, Ffmpeg};
use super::status::StatusWriter;
use super::Parts;
use crate::config::{Config, RotationMode};
use crate::logfile::{LogError, LogSink, LogSpec, Rotation, Style};
use crate::runs::{self, RunLog};
use crate::signals::Signals;
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

/// One run's ffmpeg, started: what the loop needs, and what the run's end drains.
pub(crate) struct Run {
    /// ffmpeg, for the loop.
    pub(crate) ffmpeg: Ffmpeg,
    /// When it was spawned.
    pub(crate) at: Instant,
    /// Woken by the progress reader after every block.
    pub(crate) wake: Arc<Notify>,
    /// Its output, drained at its end.
    pub(crate) io: RunIo,
}

/// A run's output tasks, drained once ffmpeg has exited.
pub(crate) struct RunIo {
    /// Output lines pushed before it started (its own lines come after).
    pub(crate) lines_from: u64,
    /// The stdout and stderr readers, drained once ffmpeg has exited.
    pub(crate) readers: Vec<JoinHandle<()>>,
    /// The `-progress` reader.
    pub(crate) progress_reader: JoinHandle<()>,
    /// Our own write end of the FIFO: it keeps the reader from seeing EOF before ffmpeg opens
    /// it; dropped once ffmpeg has exited, so the reader drains what is left and ends.
    pub(crate) progress_hold: pipe::Sender,
}

/// How a spawn ended.
pub(crate) enum Spawned {
    Running(Run),
    /// ffmpeg could not be run (126/127): this exit code and reason.
    NotStarted(i32, String),
}

/// What lasts across runs: the FIFO's path, where the status files go, and the parts.
pub(crate) struct Life {
    /// The held FIFO path.
    fifo: PathBuf,
    /// The work directory's `status/`.
    status_dir: PathBuf,
    /// The variables' status files, written once with the first run's `FFMPEG_PID` and
    /// `START_TIME` (later runs' are the status writer's).
    files: Option<Vec<(String, String)>>,
    /// What wrapperd holds until its end.
    pub(crate) parts: Parts,
}

/// Work directory, logs, run history, state, API, FIFO, signals: all before the first run.
pub(crate) fn prepare(config: Config, args: &[OsString]) -> Result<(Life, Signals), SetupError> {
    let wd = WorkDir::acquire(&config.workdir)?;
    let logs = open_logs(&config, &wd)?;
    if let Some((_, wrapperd_log)) = &logs {
        logging::attach_file(wrapperd_log.clone());
    }
    let cmd: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let shared = Arc::new(Daemon::new(config, cmd));
    let runs_path = wd.status_dir().join("runs.jsonl");
    let history = runs::load(&runs_path);
    let runlog = RunLog::start(runs_path.clone(), history.lines.clone())
        .map_err(SetupError::io("start the writer of", &runs_path))?;
    shared.set_history(history.lines, history.last, history.last_number);
    crate::events::start(&shared);
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    crate::rss::spawn(shared.clone(), &tracker, token.clone());
    crate::notify::start(shared.clone(), &tracker, token.clone());
    let api = api::start(shared.clone(), token.clone(), |socket, tcp| {
        let _ = wd.write_status("API_SOCKET", &socket.display().to_string());
        let _ = wd.write_status("HTTP_ADDR", &tcp.map(|a| a.to_string()).unwrap_or_default());
    })?;
    let fifo = wd
        .make_fifo()
        .map_err(SetupError::io("create the FIFO", &wd.progress_fifo()))?;
    let signals = Signals::new().map_err(SetupError::io("listen for signals in", wd.root()))?;
    child::become_subreaper();
    let files = shared
        .config
        .effective_values()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let life = Life {
        fifo,
        status_dir: wd.status_dir(),
        files: Some(files),
        parts: Parts {
            shared,
            api,
            tracker,
            token,
            logs,
            status: None,
            runlog: Some(runlog),
            _wd: wd,
        },
    };
    Ok((life, signals))
}

impl Life {
    /// Opens the FIFO for this run and spawns ffmpeg, then starts the tasks reading its output.
    pub(crate) fn spawn(&mut self, args: &[OsString]) -> Result<Spawned, SetupError> {
        let progress_rx = pipe::OpenOptions::new()
            .open_receiver(&self.fifo)
            .map_err(SetupError::io("open the FIFO", &self.fifo))?;
        let progress_hold = pipe::OpenOptions::new()
            .open_sender(&self.fifo)
            .map_err(SetupError::io("open the FIFO", &self.fifo))?;
        let shared = self.parts.shared.clone();
        let lines_from = shared.lines_total();
        let at = Instant::now();
        let child = match child::spawn_ffmpeg(&shared.config, &self.fifo, args) {
            Ok(child) => child,
            Err(e) => {
                self.start_status(Vec::new());
                let code = if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
                let reason = format!(
                    "cannot run ffmpeg {:?}: {e}",
                    shared.config.ffmpeg_bin.to_string_lossy()
                );
                return Ok(Spawned::NotStarted(code, reason));
            }
        };
        let start_ms = shared.ffmpeg_started(child.id(), at);
        self.start_status(vec![
            ("FFMPEG_PID".into(), child.id().to_string()),
            ("START_TIME".into(), shared::timefmt::local_text(start_ms)),
        ]);
        tracing::info!(
            "run {}: started ffmpeg (pid {}): {}",
            shared.run_number(),
            child.id(),
            shared.cmd.join(" ")
        );
        Ok(Spawned::Running(self.read_output(
            child,
            progress_rx,
            progress_hold,
            at,
            lines_from,
        )))
    }

    /// The first time: starts wrapperd's stderr writer and the status writer, which writes the
    /// variables' files and `first`, then keeps `status.json` current.
    fn start_status(&mut self, first: Vec<(String, String)>) {
        let Some(mut files) = self.files.take() else {
            return;
        };
        files.extend(first);
        logging::start_stderr_writer();
        match StatusWriter::start(self.parts.shared.clone(), self.status_dir.clone(), files) {
            Ok(w) => self.parts.status = Some(w),
            Err(e) => tracing::warn!("cannot start the status writer: {e}"),
        }
    }

    /// Starts the tasks reading ffmpeg's stdout, stderr and `-progress`.
    fn read_output(
        &self,
        mut child: std::process::Child,
        progress_rx: pipe::Receiver,
        progress_hold: pipe::Sender,
        at: Instant,
        lines_from: u64,
    ) -> Run {
        let (shared, tracker) = (&self.parts.shared, &self.parts.tracker);
        let ffmpeg_log = self.parts.logs.as_ref().map(|(f, _)| f.clone());
        let wake = Arc::new(Notify::new());
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
        let ffmpeg = Ffmpeg {
            pid: Pid::from_raw(child.id() as i32),
            stdin: child
                .stdin
                .take()
                .and_then(|s| pipe::Sender::from_owned_fd(OwnedFd::from(s)).ok()),
        };
        drop(child); // never waited on through std: the reaper collects every child.
        Run {
            ffmpeg,
            at,
            wake,
            io: RunIo {
                lines_from,
                readers,
                progress_reader,
                progress_hold,
            },
        }
    }
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
