//! ffmpeg as a process: spawning it with the hygiene SPEC §1 and §7 ask for, signalling it,
//! and reaping it (and every orphan) as PID 1 or a child subreaper.
//!
//! ffmpeg gets its own process group, default signal dispositions, an empty signal mask and
//! `PR_SET_PDEATHSIG`, so it neither inherits `nohup`'s ignored signals nor outlives wrapperd.
//! [`Ffmpeg`] is the real [`Child`] the supervisor loop acts on; the loop's tests use their own.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use shared::api::FfmpegStatus;
use tokio::net::unix::pipe;

use super::phase::Child;
use crate::config::Config;
use crate::signals;

/// The running ffmpeg: its pid and, unless an input reads wrapperd's stdin, its stdin.
pub(crate) struct Ffmpeg {
    /// ffmpeg's pid, to signal it and to recognise its exit among the reaped children.
    pub(crate) pid: Pid,
    /// ffmpeg's stdin, held to ask it to finish with `q`; `None` when it reads wrapperd's.
    pub(crate) stdin: Option<pipe::Sender>,
}

impl Child for Ffmpeg {
    fn ask_to_finish(&mut self) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.try_write(b"q");
        }
        let _ = kill(self.pid, Signal::SIGINT);
    }

    fn kill(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }

    fn end_inputs(&mut self) -> Result<usize, super::input::EndInputsError> {
        super::input::end_inputs(self.pid)
    }

    fn reap(&mut self) -> Option<FfmpegStatus> {
        reap(self.pid).map(|st| match st {
            WaitStatus::Exited(_, c) => FfmpegStatus::Code(c),
            WaitStatus::Signaled(_, s, _) => FfmpegStatus::Signal(s as i32),
            _ => FfmpegStatus::Code(-1),
        })
    }
}

/// Reaps every child that has ended; returns ffmpeg's status if it was among them.
pub(crate) fn reap(ffmpeg: Pid) -> Option<WaitStatus> {
    let mut found = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Ok(st @ (WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _))) => {
                if p == ffmpeg {
                    found = Some(st);
                } else if !crate::events::hook::reaped(p.as_raw(), &st) {
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
pub(crate) fn become_subreaper() {
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
pub(crate) fn spawn_ffmpeg(
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
}
