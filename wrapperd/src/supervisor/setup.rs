//! Everything before the loop, in the order the contract needs: work directory lock, log
//! files, the API, the progress FIFO (opened for reading before ffmpeg
//! starts), the signal streams (before the spawn, so no `SIGCHLD` is missed), then ffmpeg and
//! the tasks reading its output.
//!
//! A failure before the spawn is a [`SetupError`] (exit 2). The start of ffmpeg's exec is kept
//! short: the status writer ([`StatusWriter`]) starts after the spawn, and writes the variables'
//! status files, `FFMPEG_PID`, `START_TIME` and the first `status.json`.

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

/// ffmpeg started: what the loop needs and what the end drains.
pub(crate) struct Running {
    /// ffmpeg, for the loop.
    pub(crate) ffmpeg: Ffmpeg,
    /// The signal streams, created before the spawn.
    pub(crate) signals: Signals,
    /// Woken by the progress reader after every block.
    pub(crate) wake: Arc<Notify>,
    /// The stdout and stderr readers, drained once ffmpeg has exited.
    pub(crate) readers: Vec<JoinHandle<()>>,
    /// The `-progress` reader.
    pub(crate) progress_reader: JoinHandle<()>,
    /// Our own write end of the FIFO: it keeps the reader from seeing EOF before ffmpeg opens
    /// it; dropped once ffmpeg has exited, so the reader drains what is left and ends.
    pub(crate) progress_hold: pipe::Sender,
    /// What the run holds until its end.
    pub(crate) parts: Parts,
}

/// How setup ended when it did not fail.
pub(crate) enum Started {
    Running(Running),
    /// ffmpeg could not be run (126/127): finish with this exit code and reason.
    NotStarted(Parts, i32, String),
}

/// Everything set up before the spawn.
struct Prepared {
    /// The held FIFO path.
    fifo: PathBuf,
    /// The FIFO's read end, opened before ffmpeg starts.
    progress_rx: pipe::Receiver,
    /// Our own write end of the FIFO.
    progress_hold: pipe::Sender,
    /// The signal streams.
    signals: Signals,
    /// The work directory's `status/`.
    status_dir: PathBuf,
    /// What the run holds until its end.
    parts: Parts,
}

/// Sets up and spawns ffmpeg.
pub(crate) async fn setup(config: Config, args: &[OsString]) -> Result<Started, SetupError> {
    let mut p = prepare(config, args)?;
    let mut files: Vec<(String, String)> = p
        .parts
        .shared
        .config
        .effective_values()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let at = Instant::now();
    let child = match child::spawn_ffmpeg(&p.parts.shared.config, &p.fifo, args) {
        Ok(child) => child,
        Err(e) => {
            start_status(&mut p, files);
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            let reason = format!(
                "cannot run ffmpeg {:?}: {e}",
                p.parts.shared.config.ffmpeg_bin.to_string_lossy()
            );
            return Ok(Started::NotStarted(p.parts, code, reason));
        }
    };
    let start_ms = p.parts.shared.ffmpeg_started(child.id(), at);
    files.push(("FFMPEG_PID".into(), child.id().to_string()));
    files.push(("START_TIME".into(), shared::timefmt::local_text(start_ms)));
    start_status(&mut p, files);
    tracing::info!(
        "started ffmpeg (pid {}): {}",
        child.id(),
        p.parts.shared.cmd.join(" ")
    );
    Ok(Started::Running(read_output(p, child)))
}

/// What starts after the spawn (or the failed spawn): wrapperd's stderr writer, and the status
/// writer, which writes `files`, then keeps `status.json` current.
fn start_status(p: &mut Prepared, files: Vec<(String, String)>) {
    logging::start_stderr_writer();
    match StatusWriter::start(p.parts.shared.clone(), p.status_dir.clone(), files) {
        Ok(w) => p.parts.status = Some(w),
        Err(e) => tracing::warn!("cannot start the status writer: {e}"),
    }
}

/// Work directory, logs, state, status writer, API, FIFO, signals: all before ffmpeg starts.
fn prepare(config: Config, args: &[OsString]) -> Result<Prepared, SetupError> {
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
    crate::events::start(&shared);
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let api = api::start(shared.clone(), token.clone(), |socket, tcp| {
        let _ = wd.write_status("API_SOCKET", &socket.display().to_string());
        let _ = wd.write_status("HTTP_ADDR", &tcp.map(|a| a.to_string()).unwrap_or_default());
    })?;
    let fifo = wd
        .make_fifo()
        .map_err(SetupError::io("create the FIFO", &wd.progress_fifo()))?;
    let progress_rx = pipe::OpenOptions::new()
        .open_receiver(&fifo)
        .map_err(SetupError::io("open the FIFO", &fifo))?;
    let progress_hold = pipe::OpenOptions::new()
        .open_sender(&fifo)
        .map_err(SetupError::io("open the FIFO", &fifo))?;
    let signals = Signals::new().map_err(SetupError::io("listen for signals in", wd.root()))?;
    child::become_subreaper();
    Ok(Prepared {
        fifo,
        progress_rx,
        progress_hold,
        signals,
        status_dir: wd.status_dir(),
        parts: Parts {
            shared,
            api,
            tracker,
            token,
            logs,
            status: None,
            _wd: wd,
        },
    })
}

/// Starts the tasks reading ffmpeg's stdout, stderr and `-progress`.
fn read_output(p: Prepared, mut child: std::process::Child) -> Running {
    let (shared, tracker) = (&p.parts.shared, &p.parts.tracker);
    let ffmpeg_log = p.parts.logs.as_ref().map(|(f, _)| f.clone());
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
        p.progress_rx,
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
    Running {
        ffmpeg,
        signals: p.signals,
        wake,
        readers,
        progress_reader,
        progress_hold: p.progress_hold,
        parts: p.parts,
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
