//! Signals: graceful stops that leave playable files, the process group, `SIGHUP`, children
//! that ignore `SIGINT`, `kill -9` of wrapperd, wrapperd as pid 1, the child's dispositions, and
//! stop signals during the manager's own stop.

use super::*;

#[test]
fn sigterm_during_mp4_encode_leaves_a_playable_file_and_exits_0() {
    // SIGTERM; SIGTERM with the user's own -nostdin; SIGINT to the whole process group, as a
    // terminal's Ctrl-C sends it.
    for (extra, group_sigint) in [
        (&[][..], false),
        (&["-nostdin"][..], false),
        (&[][..], true),
    ] {
        let wd = Wd::new();
        let out = wd.file("out.mp4");
        let mut w = wd
            .wrapperd()
            .args(["-hide_banner"])
            .args(extra)
            .args(["-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-y"])
            .args([&out]);
        use std::os::unix::process::CommandExt;
        w.cmd.process_group(0);
        let mut d = w.spawn();
        d.wait_api_or_progress(&wd, 10);
        if group_sigint {
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(d.pid()), Signal::SIGINT).unwrap();
        } else {
            d.signal(Signal::SIGTERM);
        }
        let st = d.wait(T);
        assert_eq!(
            st.code(),
            Some(0),
            "extra {extra:?}: {}",
            wd.log("wrapperd.log")
        );
        let dur = probe_duration(&out).expect("ffprobe reads the file");
        assert!(dur > 0.3, "duration {dur}");
        assert!(decodes_cleanly(&out));
        let status = wd.status_json().unwrap();
        assert_eq!(
            status["exit"]["ffmpeg_status"], 255,
            "ffmpeg answered one SIGINT"
        );
    }
}

trait WaitProgress {
    fn wait_api_or_progress(&self, wd: &Wd, blocks: u64);
}
impl WaitProgress for Daemon {
    /// Waits until ffmpeg has produced `blocks` progress blocks.
    fn wait_api_or_progress(&self, wd: &Wd, blocks: u64) {
        assert!(
            wait_until(Duration::from_secs(20), || {
                wd.status_json()
                    .and_then(|s| s["counters"]["progress_blocks"].as_u64())
                    .is_some_and(|n| n >= blocks)
            }),
            "no progress"
        );
    }
}

/// A child that logs every signal it gets and exits 255 on SIGINT, like ffmpeg.
fn signal_logging_child(wd: &Wd) -> std::path::PathBuf {
    let log = wd.file("signals.log");
    wd.script(
        "child.sh",
        &format!(
            "trap 'echo INT >> {l}; exit 255' INT\n\
             trap 'echo TERM >> {l}' TERM\n\
             trap 'echo HUP >> {l}' HUP\n\
             trap 'echo QUIT >> {l}' QUIT\n\
             echo ready\n\
             while :; do sleep 0.05; done",
            l = log.display()
        ),
    )
}

#[test]
fn sigint_to_the_whole_process_group_reaches_the_child_once() {
    let wd = Wd::new();
    let child = signal_logging_child(&wd);
    // wrapperd in its own process group, as a shell job is; Ctrl-C signals the whole group.
    let mut w = wd.wrapperd().child(&child);
    use std::os::unix::process::CommandExt;
    w.cmd.process_group(0);
    let mut d = w.spawn();
    let ffmpeg = d.ffmpeg_pid();
    assert!(wait_until(Duration::from_secs(10), || wd
        .log("ffmpeg.log")
        .contains("ready")));
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(d.pid()), Signal::SIGINT).unwrap();
    let st = d.wait(T);
    assert_eq!(st.code(), Some(0), "{}", wd.log("wrapperd.log"));
    assert_eq!(fs::read_to_string(wd.file("signals.log")).unwrap(), "INT\n");
    assert!(process_gone(ffmpeg));
}

#[test]
fn sighup_is_not_passed_on_and_rotates() {
    let wd = Wd::new();
    let child = signal_logging_child(&wd);
    let mut d = wd.wrapperd().child(&child).spawn();
    d.ffmpeg_pid();
    assert!(wait_until(Duration::from_secs(10), || wd
        .log("ffmpeg.log")
        .contains("ready")));
    d.signal(Signal::SIGHUP);
    assert!(wait_until(Duration::from_secs(5), || wd
        .path
        .join("logs/ffmpeg.log.1")
        .exists()));
    assert!(d.is_running());
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait(T).code(), Some(0));
    assert_eq!(
        fs::read_to_string(wd.file("signals.log")).unwrap(),
        "INT\n",
        "no HUP, one INT"
    );
}

/// wrapperd running a child that ignores SIGINT, with the given `STOP_TIMEOUT`; returns once
/// the child has set its trap (it says `ready`), with the child's pid.
fn spawn_stubborn_child(wd: &Wd, stop_timeout: &str) -> (Daemon, i32) {
    let child = wd.script(
        "stubborn.sh",
        "trap '' INT\necho ready\nwhile :; do sleep 0.05; done",
    );
    let d = wd
        .wrapperd()
        .child(&child)
        .env("STOP_TIMEOUT", stop_timeout)
        .spawn();
    let pid = d.ffmpeg_pid();
    assert!(wait_until(Duration::from_secs(10), || wd
        .log("ffmpeg.log")
        .contains("ready")));
    (d, pid)
}

#[test]
fn child_ignoring_sigint_is_killed_after_stop_timeout() {
    let wd = Wd::new();
    let (mut d, ffmpeg) = spawn_stubborn_child(&wd, "0.5");
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    let st = d.wait(T);
    let took = t0.elapsed();
    assert_eq!(st.code(), Some(1));
    assert!(
        took >= Duration::from_millis(500),
        "waited STOP_TIMEOUT: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(process_gone(ffmpeg));
    let status = wd.status_json().unwrap();
    assert_eq!(status["exit"]["ffmpeg_status"], "signal 9");
}

#[test]
fn second_stop_signal_kills_at_once() {
    let wd = Wd::new();
    let (mut d, _) = spawn_stubborn_child(&wd, "30");
    d.signal(Signal::SIGTERM);
    assert!(wait_until(Duration::from_secs(5), || wd
        .status_file("STATE")
        .as_deref()
        == Some("stopping")));
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait(T).code(), Some(1));
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn kill_9_of_wrapperd_takes_ffmpeg_down_within_a_second() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .args([
            "-hide_banner",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc",
            "-f",
            "null",
            "-",
        ])
        .spawn();
    let ffmpeg = d.ffmpeg_pid();
    assert!(!process_gone(ffmpeg));
    d.signal(Signal::SIGKILL);
    d.wait(T);
    assert!(
        wait_until(Duration::from_secs(1), || process_gone(ffmpeg)),
        "ffmpeg outlived wrapperd"
    );
}

#[test]
fn as_pid_1_orphans_are_reaped_and_sigterm_stops_gracefully() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root for unshare --pid");
        return;
    }
    let wd = Wd::new();
    // 20 orphans: each background job's parent (a subshell) exits at once.
    let child = wd.script(
        "orphans.sh",
        "for i in $(seq 20); do ( sleep 0.3 & ) ; done\n\
         trap 'exit 255' INT\n\
         echo spawned\n\
         while :; do sleep 0.05; done",
    );
    let mut w = wd.wrapperd().child(&child);
    let args: Vec<std::ffi::OsString> = std::iter::once(w.cmd.get_program())
        .chain(w.cmd.get_args())
        .map(|a| a.to_owned())
        .collect();
    w.cmd = {
        let mut c = std::process::Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .args(&args);
        for (k, v) in w.cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.stdin(std::process::Stdio::null());
        c
    };
    let mut d = w.spawn();
    // wrapperd is unshare's only child, and PID 1 of the new namespace.
    let mut wpid = 0;
    assert!(wait_until(Duration::from_secs(10), || {
        wpid = children_of(d.pid()).first().map(|c| c.0).unwrap_or(0);
        wpid != 0
    }));
    assert_eq!(
        proc_status(wpid)
            .get("NSpid")
            .and_then(|s| s.split_whitespace().last().map(String::from)),
        Some("1".into())
    );
    assert!(wait_until(Duration::from_secs(10), || wd
        .status_file("PID")
        .is_some()));
    assert_eq!(wd.status_file("PID").as_deref(), Some("1"));
    assert!(wait_until(Duration::from_secs(10), || wd
        .log("ffmpeg.log")
        .contains("spawned")));
    // The orphans end after 0.3 s; then only the child (the script) is left, and no zombie.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let kids = children_of(wpid);
            kids.len() == 1 && kids.iter().all(|k| k.1 != 'Z')
        }),
        "children left: {:?}",
        children_of(wpid)
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(wpid), Signal::SIGTERM).unwrap();
    assert_eq!(d.wait(T).code(), Some(0), "{}", wd.log("wrapperd.log"));
}

#[test]
fn child_gets_default_signal_dispositions_and_empty_mask_even_under_nohup() {
    let wd = Wd::new();
    let child = wd.script("plain.sh", "echo ready\nexec sleep 30");
    // Start wrapperd with INT, QUIT and HUP ignored, as nohup and a shell's & leave them.
    let mut w = wd.wrapperd().child(&child);
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        w.cmd.pre_exec(|| {
            for s in [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGHUP] {
                nix::sys::signal::signal(s, nix::sys::signal::SigHandler::SigIgn)?;
            }
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(Signal::SIGINT);
            set.add(Signal::SIGHUP);
            set.add(Signal::SIGQUIT);
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_BLOCK,
                Some(&set),
                None,
            )?;
            Ok(())
        });
    }
    let mut d = w.spawn();
    assert!(wait_until(Duration::from_secs(10), || wd
        .log("ffmpeg.log")
        .contains("ready")));
    let ffmpeg = d.ffmpeg_pid();
    // After the script's exec of sleep: what sleep got is what ffmpeg would get.
    assert!(wait_until(Duration::from_secs(10), || proc_status(ffmpeg)
        .get("Name")
        .is_some_and(|n| n == "sleep")));
    let st = proc_status(ffmpeg);
    assert_eq!(st["SigIgn"], "0000000000000000", "{st:?}");
    assert_eq!(st["SigBlk"], "0000000000000000", "{st:?}");
    // And wrapperd itself still answers SIGHUP (rotate) and SIGTERM (stop).
    d.signal(Signal::SIGHUP);
    assert!(wait_until(Duration::from_secs(5), || wd
        .path
        .join("logs/ffmpeg.log.1")
        .exists()));
    d.signal(Signal::SIGTERM);
    assert_eq!(
        d.wait(T).code(),
        Some(1),
        "sleep ignores nothing and dies of SIGINT"
    );
}

/// wrapperd running the fake ffmpeg with the manager's checks active at once and a short stall
/// limit, recording the signals ffmpeg gets; finishing after a stop takes `finish` seconds.
fn stalling_fake(wd: &Wd, finish: &str) -> WrapperCmd {
    wd.wrapperd()
        .fake()
        .envs(&[
            ("MANAGER_START_DELAY", "0"),
            ("ENCODING_CHECK_START_DELAY", "0"),
            ("ENCODING_MAX_STDOUT_STUCK_TIME", "0.5"),
            ("STOP_TIMEOUT", "30"),
        ])
        .env("FAKE_FFMPEG_SIGNAL_LOG", wd.file("signals.log"))
        .args([format!("finish-secs={finish}"), "block-interval=0.1".into()])
}

#[test]
fn a_first_sigterm_during_the_managers_stop_does_not_kill_ffmpeg() {
    let wd = Wd::new();
    // Encodes, then goes silent: the manager stops it as stalled; finishing takes 3 s.
    let mut d = stalling_fake(&wd, "3")
        .args(["run", "fps=25", "secs=1", "silence"])
        .spawn();
    assert!(
        wait_until(Duration::from_secs(20), || wd
            .status_file("STATE")
            .as_deref()
            == Some("stopping")),
        "the manager did not stop ffmpeg: {}",
        wd.log("wrapperd.log")
    );
    // `docker stop` while ffmpeg writes its trailer: the first signal to wrapperd.
    d.signal(Signal::SIGTERM);
    let st = d.wait(T);
    let log = wd.log("wrapperd.log");
    assert_eq!(st.code(), Some(1), "the manager's stop decides: {log}");
    let status = wd.status_json().unwrap();
    assert_ne!(
        status["exit"]["ffmpeg_status"], "signal 9",
        "ffmpeg was killed: {log}"
    );
    assert_eq!(
        fs::read_to_string(wd.file("signals.log")).unwrap(),
        "2\n",
        "one SIGINT, nothing else"
    );
    assert!(!log.contains("killing ffmpeg"), "{log}");
}

#[test]
fn no_manager_decision_is_logged_once_a_stop_has_begun() {
    let wd = Wd::new();
    // SIGTERM while it encodes; finishing takes 2 s of silence, longer than the stall limit.
    let mut d = stalling_fake(&wd, "2").args(["run", "fps=25"]).spawn();
    d.wait_api_or_progress(&wd, 3);
    d.signal(Signal::SIGTERM);
    let st = d.wait(T);
    let log = wd.log("wrapperd.log");
    assert_eq!(st.code(), Some(0), "{log}");
    assert_eq!(log.matches("manager stops ffmpeg").count(), 0, "{log}");
    assert_eq!(fs::read_to_string(wd.file("signals.log")).unwrap(), "2\n");

    // Stopped by the manager, finishing for longer than the stall limit: one decision.
    let wd = Wd::new();
    let mut d = stalling_fake(&wd, "2")
        .args(["run", "fps=25", "secs=1", "silence"])
        .spawn();
    assert_eq!(d.wait(T).code(), Some(1));
    let log = wd.log("wrapperd.log");
    assert_eq!(log.matches("manager stops ffmpeg").count(), 1, "{log}");
}
