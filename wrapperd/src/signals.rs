//! What each signal to wrapperd means (SPEC §7), and the signal hygiene of the child.
//!
//! `SIGTERM`, `SIGINT`, `SIGQUIT` ask for a graceful stop (a second one to wrapperd kills ffmpeg
//! at once; a first one during the manager's stop does not);
//! `SIGHUP` rotates the logs and is never passed on (ffmpeg dies on it, and an ssh session that
//! closes sends it); `SIGCHLD` means some child ended and must be reaped. Like tini, wrapperd
//! unblocks every signal for itself at start (a parent such as `nohup` or a shell's `&` may
//! have blocked or ignored some) and resets the child's dispositions and mask to defaults.

use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use tokio::signal::unix::{signal as listen, SignalKind};

/// A signal, as the supervisor acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Stop gracefully (or, after an earlier stop signal, kill).
    Stop(Signal),
    /// Rotate the logs.
    Rotate,
    /// One or more children ended.
    Child,
}

/// The signal streams; created before ffmpeg is spawned so no `SIGCHLD` is missed.
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    chld: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: listen(SignalKind::terminate())?,
            int: listen(SignalKind::interrupt())?,
            quit: listen(SignalKind::quit())?,
            hup: listen(SignalKind::hangup())?,
            chld: listen(SignalKind::child())?,
        })
    }

    /// The next signal. Children are reported first, so an exit is never hidden behind others.
    pub async fn recv(&mut self) -> Event {
        tokio::select! {
            biased;
            _ = self.chld.recv() => Event::Child,
            _ = self.term.recv() => Event::Stop(Signal::SIGTERM),
            _ = self.int.recv() => Event::Stop(Signal::SIGINT),
            _ = self.quit.recv() => Event::Stop(Signal::SIGQUIT),
            _ = self.hup.recv() => Event::Rotate,
        }
    }
}

/// Unblocks every signal in the calling thread; call first thing in `main`, before any thread
/// exists, so that all threads inherit the empty mask.
pub fn unblock_all() {
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// In the forked child, before exec: every disposition back to default and an empty mask.
/// Only async-signal-safe calls (`sigaction`, `sigprocmask`).
pub fn reset_for_child() -> std::io::Result<()> {
    // Every signal number, real-time ones included: SIG_IGN is the one disposition that
    // survives exec, and a parent may have ignored any of them. glibc's sigaction refuses the
    // two real-time signals it reserves for itself, so the kernel is asked directly.
    // The kernel's struct sigaction starts with the handler (0 = SIG_DFL), then flags and the
    // mask (and, on some architectures, a restorer): all zero is SIG_DFL with no flags.
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a raw rt_sigaction installing SIG_DFL; async-signal-safe. Errors (an invalid
        // number) are ignored.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }
    signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(std::io::Error::from)
}
