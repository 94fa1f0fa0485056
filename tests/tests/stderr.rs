//! wrapperd's own stderr never holds it back: a stderr pipe nobody reads (a stalled container
//! log driver) must not stop the API, the progress reader or ffmpeg. What was queued is written
//! once stderr is read again, up to the exit line.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use tests::*;

/// Connections that each make wrapperd log a debug line: far more than the pipe holds.
const CONNECTIONS: usize = 300;

/// A pipe with the smallest buffer Linux allows (one page), close-on-exec in this process.
fn small_pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    // SAFETY: fcntl on a descriptor we own.
    let size = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(
        size > 0,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
    (r, w)
}

/// Sends a request hyper cannot parse (wrapperd logs `API connection ended: …` at debug
/// level) and reads the answer to its end; panics when wrapperd does not answer.
fn bad_request(socket: &std::path::Path, i: usize) {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"\x01\x02 not http\r\n\r\n");
    let mut answer = Vec::new();
    if let Err(e) = s.read_to_end(&mut answer) {
        panic!("wrapperd stopped answering at connection {i} ({e}): is it blocked on stderr?");
    }
}

fn frame(d: &Daemon) -> u64 {
    d.status().progress.and_then(|p| p.frame).unwrap_or(0)
}

#[test]
fn unread_stderr_never_blocks_wrapperd() {
    let wd = Wd::new();
    let (read_end, write_end) = small_pipe();
    let mut cmd = wd.wrapperd().fake().env("IS_DEBUG", "true").args([
        "run",
        "fps=25",
        "block-interval=0.1",
        "nostats",
    ]);
    cmd.cmd.stderr(Stdio::from(write_end));
    let mut d = cmd.spawn();
    d.wait_api();
    let socket = wd.path.join("api.sock");
    for i in 0..CONNECTIONS {
        bad_request(&socket, i);
    }
    // The pipe is full (nobody read it); progress still arrives.
    let before = frame(&d);
    assert!(
        wait_until(Duration::from_secs(10), || frame(&d) > before + 10),
        "progress stopped at frame {before}"
    );
    // Read stderr again: everything queued is written, up to the exit line.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::fs::File::from(read_end).read_to_string(&mut text);
        text
    });
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait(Duration::from_secs(20));
    let text = reader.join().unwrap();
    let ended = text.matches("API connection ended").count();
    assert!(
        ended >= CONNECTIONS,
        "{ended} debug lines on stderr:\n{text}"
    );
    let last = text.lines().last().unwrap_or_default();
    assert!(last.contains("exit"), "last line {last:?}");
}
