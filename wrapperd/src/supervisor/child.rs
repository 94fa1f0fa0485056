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
        if catches_sigint(self.pid) != Some(false) {
            let _ = kill(self.pid, Signal::SIGINT);
            return;
        }
        // Asked in its first moments, before ffmpeg has set its handler: a SIGINT now would
        // kill it outright (no trailer, status "signal 2"). Send the one SIGINT once it catches
        // it, or after SIGINT_HANDLER_WAIT whatever happens.
        let pid = self.pid;
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + SIGINT_HANDLER_WAIT;
            while catches_sigint(pid) == Some(false) && tokio::time::Instant::now() < until {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let _ = kill(pid, Signal::SIGINT);
        });
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

/// How long a stop asked before ffmpeg catches `SIGINT` waits for it to (ffmpeg sets its
/// handlers within milliseconds of its start).
const SIGINT_HANDLER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether process `pid` catches or ignores `SIGINT` (`SigCgt`, `SigIgn` in
/// `/proc/PID/status`), so a `SIGINT` would not kill it outright; `None` when that cannot be
/// read (it has ended, or no procfs).
fn catches_sigint(pid: Pid) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mask = |key: &str| {
        let m = status.lines().find_map(|l| l.strip_prefix(key))?;
        u64::from_str_radix(m.trim(), 16).ok()
    };
    let bits = mask("SigCgt:")? | mask("SigIgn:")?;
    Some(bits & (1 << (libc::SIGINT - 1)) != 0)
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
    for var in crate::notify::VARS {
        cmd.env_remove(var); // systemd's notify socket is wrapperd's, not ffmpeg's (SPEC §12).
    }
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
    fn sigint_caught_is_read_from_proc() {
        // The test process itself does not catch SIGINT; a shell with a trap does.
        assert_eq!(catches_sigint(nix::unistd::getpid()), Some(false));
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "trap 'exit 0' INT; echo ready; read x"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(sh.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(catches_sigint(Pid::from_raw(sh.id() as i32)), Some(true));
        drop(sh.stdin.take());
        sh.wait().unwrap();
        assert_eq!(catches_sigint(Pid::from_raw(i32::MAX)), None);
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
