//! The work directory (SPEC §3): its layout, its lock and the `status/` files.
//!
//! The lock is an `flock` on `status/PID.lock`, taken before anything else is written: two
//! wrapperds started at once cannot both win, and a lock left by a dead process (or by the
//! previous PID 1 of a container) is released by the kernel, so a stale `status/PID` is simply
//! overwritten. The loser reads `status/PID` only to name the owner in its message, and touches
//! nothing else. Every status file is written atomically (temporary file + rename), so a reader
//! never sees a partial file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

/// Why the work directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkdirError {
    /// Another wrapperd holds the lock.
    #[error("WORKDIR {path} is busy by process with pid {pid}")]
    Busy {
        /// The work directory.
        path: String,
        /// The owner's pid as it wrote it in `status/PID`, or `unknown`.
        pid: String,
    },
    /// A directory or file of the layout cannot be created, opened or written.
    #[error(
        "cannot {what} {path}: {source}; WORKDIR must be a directory wrapperd can create and write"
    )]
    Io {
        /// What was being done ("create", "write", ...).
        what: &'static str,
        /// The path it was done to.
        path: String,
        /// Why it failed.
        source: io::Error,
    },
}

/// Maps an I/O error on `path` to [`WorkdirError::Io`] saying what was being done.
fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WorkdirError + 'a {
    move |source| WorkdirError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// The locked work directory. The lock is held as long as this value lives.
#[derive(Debug)]
pub(crate) struct WorkDir {
    /// The work directory itself (`WORKDIR`).
    root: PathBuf,
    /// The `flock` on `status/PID.lock`; released when dropped (or by the kernel at exit).
    _lock: Flock<File>,
}

impl WorkDir {
    /// Creates the directories, takes the lock and writes `status/PID`.
    pub(crate) fn acquire(root: &Path) -> Result<WorkDir, WorkdirError> {
        let status = root.join("status");
        fs::create_dir_all(&status).map_err(io_err("create", &status))?;
        let lock_path = status.join("PID.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .open(&lock_path)
            .map_err(io_err("open the lock file", &lock_path))?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(WorkdirError::Busy {
                    path: root.display().to_string(),
                    pid: read_owner_pid(&status.join("PID")),
                })
            }
            Err((_, e)) => {
                return Err(WorkdirError::Io {
                    what: "lock",
                    path: lock_path.display().to_string(),
                    source: e.into(),
                })
            }
        };
        let wd = WorkDir {
            root: root.to_path_buf(),
            _lock: lock,
        };
        for dir in [wd.pipes_dir(), wd.logs_dir()] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        let pid_path = status.join("PID");
        wd.write_status("PID", &std::process::id().to_string())
            .map_err(io_err("write", &pid_path))?;
        Ok(wd)
    }

    /// The work directory itself.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// `status/`: one small file per key, plus `status.json`.
    pub(crate) fn status_dir(&self) -> PathBuf {
        self.root.join("status")
    }

    /// `pipes/`: the FIFOs between wrapperd and ffmpeg.
    pub(crate) fn pipes_dir(&self) -> PathBuf {
        self.root.join("pipes")
    }

    /// `logs/`: `ffmpeg.log`, `wrapperd.log` and their rotated copies.
    pub(crate) fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `pipes/progress`: where ffmpeg writes `-progress`.
    pub(crate) fn progress_fifo(&self) -> PathBuf {
        self.pipes_dir().join("progress")
    }

    /// Writes `status/<key>` atomically.
    pub(crate) fn write_status(&self, key: &str, value: &str) -> io::Result<()> {
        write_atomic(&self.status_dir().join(key), value.as_bytes())
    }

    /// Creates the progress FIFO (mode 0600), replacing whatever an earlier run left there.
    pub(crate) fn make_fifo(&self) -> io::Result<PathBuf> {
        let path = self.progress_fifo();
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path)?,
            Ok(_) => fs::remove_file(&path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        Ok(path)
    }
}

/// The pid the owner wrote, waiting briefly for an owner that has just taken the lock.
fn read_owner_pid(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        if let Ok(s) = fs::read_to_string(path) {
            let s = s.trim();
            if !s.is_empty() {
                return s.to_string();
            }
        }
        if Instant::now() >= deadline {
            return "unknown".to_string();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes `path` by writing a temporary file beside it and renaming it over `path`.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("status");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    #[test]
    fn creates_layout_and_writes_pid() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("wd");
        let wd = WorkDir::acquire(&root).unwrap();
        for d in ["status", "pipes", "logs"] {
            assert!(root.join(d).is_dir(), "{d}");
        }
        let pid = fs::read_to_string(root.join("status/PID")).unwrap();
        assert_eq!(pid, std::process::id().to_string());
        drop(wd);
    }

    #[test]
    fn second_lock_is_busy_and_names_the_owner_and_stale_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let wd = WorkDir::acquire(dir.path()).unwrap();
        // flock is per open file description, so a second acquire in one process conflicts.
        let err = WorkDir::acquire(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert_eq!(
            msg,
            format!(
                "WORKDIR {} is busy by process with pid {}",
                dir.path().display(),
                std::process::id()
            )
        );
        drop(wd);
        fs::write(dir.path().join("status/PID"), "999999").unwrap();
        let wd = WorkDir::acquire(dir.path()).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("status/PID")).unwrap(),
            std::process::id().to_string()
        );
        drop(wd);
    }

    #[test]
    fn fifo_replaces_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let wd = WorkDir::acquire(dir.path()).unwrap();
        fs::write(wd.progress_fifo(), "old").unwrap();
        let p = wd.make_fifo().unwrap();
        assert!(fs::metadata(&p).unwrap().file_type().is_fifo());
        let p = wd.make_fifo().unwrap();
        assert!(fs::metadata(&p).unwrap().file_type().is_fifo());
    }

    #[test]
    fn unwritable_workdir_is_an_error() {
        let err = WorkDir::acquire(Path::new("/proc/self/nope")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot create /proc/self/nope/status"),
            "{err}"
        );
    }
}
