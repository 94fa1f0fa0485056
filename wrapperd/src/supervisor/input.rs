//! Ending ffmpeg's network inputs when it does not stop (SPEC §9).
//!
//! ffmpeg blocked in a read on a hung connection does not act on its one `SIGINT` until the read
//! returns. [`end_inputs`] takes a copy of each of ffmpeg's sockets (`pidfd_open` +
//! `pidfd_getfd`, the pid found in `/proc/PID/fd`) and shuts its read side: the blocked read
//! returns end-of-file, and ffmpeg finishes its outputs (trailers, indexes) and exits. Shutting
//! the read side never affects sending, so network outputs still get their last bytes. The
//! copies are closed at once; ffmpeg's own descriptors stay open.
//!
//! `pidfd_getfd` needs ptrace access to ffmpeg: wrapperd, its parent, has it on a plain host and
//! under Yama level 1, but Docker's and containerd's default seccomp profiles allow it only with
//! `CAP_SYS_PTRACE`, and kernels before 5.6 lack it. A refusal is an [`EndInputsError`] whose text
//! says what to grant; the caller logs it and falls back to `STOP_TIMEOUT`.
//!
//! nix 0.31 has neither syscall, so they are made through `libc::syscall`, each with its
//! `// SAFETY:` comment; everything else is safe code.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{shutdown, Shutdown};
use nix::unistd::Pid;

/// Why ffmpeg's inputs could not be ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EndInputsError {
    /// `pidfd_open` failed (`ENOSYS`: kernel before 5.3 or a sandbox; `ESRCH`: ffmpeg is gone).
    #[error("pidfd_open({pid}) failed: {errno}; {hint}", hint = hint(*errno))]
    Open {
        /// ffmpeg's pid.
        pid: i32,
        /// What the kernel said.
        errno: Errno,
    },
    /// `/proc/PID/fd` could not be listed.
    #[error("cannot list /proc/{pid}/fd: {error}")]
    List {
        /// ffmpeg's pid.
        pid: i32,
        /// The I/O error's text.
        error: String,
    },
    /// `pidfd_getfd` was refused for every socket.
    #[error("pidfd_getfd on ffmpeg's socket (fd {fd}) was refused: {errno}; {hint}", hint = hint(*errno))]
    Take {
        /// ffmpeg's descriptor that could not be taken.
        fd: RawFd,
        /// What the kernel said.
        errno: Errno,
    },
}

impl EndInputsError {
    /// ffmpeg had already exited: nothing to explain or grant.
    pub(crate) fn is_gone(&self) -> bool {
        matches!(
            self,
            EndInputsError::Open {
                errno: Errno::ESRCH,
                ..
            }
        ) || matches!(self, EndInputsError::List { .. })
    }
}

/// What to grant for a refusal of `errno`.
fn hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EPERM | Errno::EACCES => {
            "wrapperd needs ptrace access to its ffmpeg: in a container grant CAP_SYS_PTRACE \
             (docker run --cap-add SYS_PTRACE; Docker's and containerd's default seccomp \
             profiles allow pidfd_getfd only with it), and do not set Yama ptrace_scope above 1"
        }
        Errno::ENOSYS => {
            "the kernel (before 5.6) or a seccomp profile lacks pidfd_open/pidfd_getfd: \
             use Linux >= 5.6 and, in a container, grant CAP_SYS_PTRACE (docker run --cap-add \
             SYS_PTRACE)"
        }
        _ => "ffmpeg's inputs cannot be ended from outside",
    }
}

/// ffmpeg's descriptors that are sockets, from `/proc/PID/fd` (`socket:[inode]` links).
pub(crate) fn socket_fds(pid: Pid) -> std::io::Result<Vec<RawFd>> {
    let mut fds = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A descriptor closed since the listing has no link any more: skip it.
        if fs::read_link(entry.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")) {
            fds.push(fd);
        }
    }
    fds.sort_unstable();
    Ok(fds)
}

/// A pidfd for `pid`.
fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags (0) and returns a new descriptor or -1; the
    // descriptor is owned by nobody else, so OwnedFd may close it.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0);
        if fd < 0 {
            return Err(Errno::last());
        }
        Ok(OwnedFd::from_raw_fd(fd as RawFd))
    }
}

/// A copy, in wrapperd, of descriptor `target` of the process behind `pidfd`.
fn pidfd_getfd(pidfd: &OwnedFd, target: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_getfd takes a valid pidfd (borrowed for the call), a descriptor number and
    // flags (0), and returns a new descriptor of ours or -1; OwnedFd closes that copy.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0);
        if fd < 0 {
            return Err(Errno::last());
        }
        Ok(OwnedFd::from_raw_fd(fd as RawFd))
    }
}

/// Shuts the read side of every socket of `pid` (ffmpeg, an unreaped child of ours, so its pid
/// cannot be reused meanwhile); returns how many were shut. `Ok(0)`: it holds no sockets.
/// A socket that is not connected (`ENOTCONN`) is skipped.
pub(crate) fn end_inputs(pid: Pid) -> Result<usize, EndInputsError> {
    let pidfd = pidfd_open(pid).map_err(|errno| EndInputsError::Open {
        pid: pid.as_raw(),
        errno,
    })?;
    let fds = socket_fds(pid).map_err(|e| EndInputsError::List {
        pid: pid.as_raw(),
        error: e.to_string(),
    })?;
    let mut shut = 0;
    let mut refused = None;
    for fd in fds {
        match pidfd_getfd(&pidfd, fd) {
            Ok(copy) => match shutdown(copy.as_raw_fd(), Shutdown::Read) {
                Ok(()) => shut += 1,
                Err(e) => tracing::debug!("shutdown(SHUT_RD) of ffmpeg's fd {fd}: {e}"),
            },
            // Closed since the listing.
            Err(Errno::EBADF) => {}
            Err(errno) => refused = Some(EndInputsError::Take { fd, errno }),
        }
    }
    match refused {
        Some(e) if shut == 0 => Err(e),
        _ => Ok(shut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Command, Stdio};

    /// A child blocked reading a connected TCP socket (`cat` with the socket as its stdin)
    /// ends by itself when the read side is shut, while the peer keeps the connection open.
    #[test]
    fn a_child_blocked_on_a_socket_read_gets_end_of_file() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let mut child = Command::new("cat")
            .stdin(Stdio::from(OwnedFd::from(conn)))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        peer.write_all(b"x").unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut b = [0u8; 1];
        out.read_exact(&mut b).unwrap(); // cat is running and reading.
        let pid = Pid::from_raw(child.id() as i32);
        assert_eq!(socket_fds(pid).unwrap(), vec![0]);
        assert_eq!(end_inputs(pid), Ok(1));
        // The peer is still open: cat ends only because its read returned end-of-file.
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(0));
        drop(peer);
    }

    #[test]
    fn a_child_without_sockets_has_nothing_to_end() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        assert_eq!(end_inputs(pid), Ok(0));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn refusals_say_what_to_grant() {
        let e = EndInputsError::Take {
            fd: 3,
            errno: Errno::EPERM,
        };
        let text = e.to_string();
        assert!(
            text.contains("CAP_SYS_PTRACE") && text.contains("EPERM"),
            "{text}"
        );
        assert!(!e.is_gone());
        let e = EndInputsError::Open {
            pid: 1,
            errno: Errno::ESRCH,
        };
        assert!(e.is_gone());
    }
}
