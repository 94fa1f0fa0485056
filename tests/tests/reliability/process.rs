//! Child faults (real ffmpeg killed by `SIGSEGV`/`SIGKILL`, stopped by `SIGSTOP`) and signal
//! hygiene (a Ctrl-C typed in a pty, two `SIGTERM`s a second apart).

use super::*;

fn live_encode(wd: &Wd) -> WrapperCmd {
    wd.wrapperd()
        .args(["-hide_banner", "-re", "-f", "lavfi"])
        .args(["-i", "testsrc=size=160x120:rate=25", "-stats_period", "0.2"])
        .args(["-f", "null", "-"])
}

fn wait_blocks(wd: &Wd, blocks: u64) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            wd.status_json()
                .and_then(|s| s["counters"]["progress_blocks"].as_u64())
                .is_some_and(|n| n >= blocks)
        }),
        "no progress: {}",
        wd.log("wrapperd.log")
    );
}

#[test]
fn ffmpeg_killed_by_sigsegv_or_sigkill_gives_the_documented_status() {
    for (sig, passthrough, code) in [
        (Signal::SIGSEGV, false, 1),
        (Signal::SIGSEGV, true, 139),
        (Signal::SIGKILL, false, 1),
        (Signal::SIGKILL, true, 137),
    ] {
        let wd = Wd::new();
        let mut w = live_encode(&wd);
        if passthrough {
            w = w.env("EXIT_CODE_PASSTHROUGH", "1");
        }
        let mut d = w.spawn();
        let ffmpeg = d.ffmpeg_pid();
        wait_blocks(&wd, 2);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(ffmpeg), sig).unwrap();
        let st = d.wait(T);
        assert_eq!(
            st.code(),
            Some(code),
            "{sig} passthrough={passthrough}: {}",
            wd.log("wrapperd.log")
        );
        let status = wd.status_json().unwrap();
        assert_eq!(status["exit"]["code"], code);
        assert_eq!(
            status["exit"]["ffmpeg_status"],
            format!("signal {}", sig as i32)
        );
        let last = wd.log("wrapperd.log").lines().last().unwrap().to_string();
        assert!(
            last.contains("ended by itself") || last.contains(&(sig as i32).to_string()),
            "the exit reason is the last line: {last}"
        );
    }
}

#[test]
fn ffmpeg_stopped_by_sigstop_is_stalled_and_killed_after_stop_timeout() {
    let wd = Wd::new();
    let mut d = live_encode(&wd)
        .envs(&[
            ("MANAGER_START_DELAY", "0"),
            ("ENCODING_CHECK_START_DELAY", "0.5"),
            ("ENCODING_MAX_STDOUT_STUCK_TIME", "1.5"),
            ("STOP_TIMEOUT", "1"),
        ])
        .spawn();
    let ffmpeg = d.ffmpeg_pid();
    wait_blocks(&wd, 5);
    assert!(wait_until(Duration::from_secs(10), || d
        .status()
        .check
        .active));
    let t0 = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(ffmpeg), Signal::SIGSTOP).unwrap();
    // Stalled is shown before the stop (more than 2 s without output or advance).
    let st = d.wait(T);
    let took = t0.elapsed();
    assert_eq!(st.code(), Some(1), "{}", wd.log("wrapperd.log"));
    assert!(process_gone(ffmpeg));
    let status = wd.status_json().unwrap();
    assert_eq!(status["exit"]["ffmpeg_status"], "signal 9", "{status}");
    let reason = status["exit"]["reason"].as_str().unwrap();
    assert!(reason.contains("stalled"), "{reason}");
    // 1.5 s stuck from the last block (a block every 0.2 s or so, the last one just before the
    // SIGSTOP), then the graceful stop cannot finish a stopped process: 1 s, then SIGKILL. The
    // lower bound allows the last block half a second before the SIGSTOP.
    assert!(
        took >= Duration::from_millis(2000) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let log = wd.log("wrapperd.log");
    assert!(log.contains("stalled"), "{log}");
}

#[test]
fn ctrl_c_typed_in_a_pty_leaves_a_playable_mp4() {
    use std::os::unix::process::CommandExt;
    let wd = Wd::new();
    let out = wd.file("out.mp4");
    let pty = nix::pty::openpty(None, None).expect("openpty");
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .unwrap();
    }
    let mut w = wd
        .wrapperd()
        .args(["-hide_banner", "-re", "-f", "lavfi"])
        .args(["-i", "testsrc=size=160x120:rate=25"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-y"])
        .args([&out]);
    w.cmd.stdin(Stdio::from(pty.slave.try_clone().unwrap()));
    // A session of its own with the pty as controlling terminal: wrapperd is the terminal's
    // foreground process group, as a command typed in a shell is.
    // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
    unsafe {
        w.cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            if libc::ioctl(0, libc::TIOCSCTTY as _, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut d = w.spawn();
    let ffmpeg = d.ffmpeg_pid();
    wait_blocks(&wd, 3);
    let fg = nix::unistd::tcgetpgrp(&pty.master).unwrap();
    assert_eq!(fg.as_raw(), d.pid(), "wrapperd is the foreground group");
    assert_ne!(
        nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(ffmpeg)))
            .unwrap()
            .as_raw(),
        d.pid(),
        "ffmpeg is in a group of its own"
    );
    nix::unistd::write(&pty.master, &[0x03]).unwrap(); // Ctrl-C
    let st = d.wait(T);
    assert_eq!(st.code(), Some(0), "{}", wd.log("wrapperd.log"));
    let status = wd.status_json().unwrap();
    assert_eq!(status["exit"]["ffmpeg_status"], 255, "one SIGINT: {status}");
    let dur = probe_duration(&out).expect("ffprobe reads the mp4");
    assert!(dur > 0.3, "duration {dur}");
    assert!(decodes_cleanly(&out));
}

#[test]
fn two_sigterms_a_second_apart_the_second_kills_within_half_a_second() {
    let wd = Wd::new();
    let sigs = wd.file("signals.log");
    let mut d = wd
        .wrapperd()
        .fake()
        .env("FAKE_FFMPEG_SIGNAL_LOG", &sigs)
        .env("STOP_TIMEOUT", "30")
        .args(["ignore-sigint", "ignore-q", "block-interval=0.1", "run"])
        .spawn();
    let ffmpeg = d.ffmpeg_pid();
    wait_blocks(&wd, 2);
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    assert!(wait_until(Duration::from_secs(1), || wd
        .status_file("STATE")
        .as_deref()
        == Some("stopping")));
    // The spacing the criterion asks for, not a synchronisation.
    std::thread::sleep(Duration::from_secs(1).saturating_sub(t0.elapsed()));
    let t1 = Instant::now();
    d.signal(Signal::SIGTERM);
    let st = d.wait(T);
    let took = t1.elapsed();
    assert!(
        wait_until(Duration::from_millis(500).saturating_sub(took), || {
            process_gone(ffmpeg)
        }) || process_gone(ffmpeg)
    );
    let killed = t1.elapsed();
    eprintln!("second SIGTERM: wrapperd exited after {took:?}, ffmpeg gone after {killed:?}");
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert!(killed < Duration::from_millis(500), "{killed:?}");
    assert_eq!(st.code(), Some(1));
    assert_eq!(
        fs::read_to_string(&sigs).unwrap(),
        "2\n",
        "ffmpeg got exactly one SIGINT"
    );
    assert_eq!(
        wd.status_json().unwrap()["exit"]["ffmpeg_status"],
        "signal 9"
    );
}
