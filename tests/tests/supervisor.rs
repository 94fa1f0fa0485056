//! wrapperd as a supervisor (SPEC §1–§4, §7), with real ffmpeg where the contract is about
//! ffmpeg, and small shell-script children where a test needs a child that behaves oddly.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tests::*;

const T: Duration = Duration::from_secs(60);

/// A real ffmpeg run of a tenth of a second.
const SHORT_ENCODE: &[&str] = &[
    "-hide_banner",
    "-f",
    "lavfi",
    "-i",
    "testsrc=d=0.1",
    "-f",
    "null",
    "-",
];

#[test]
fn arguments_with_spaces_quotes_and_non_ascii_reach_ffmpeg_intact() {
    let wd = Wd::new();
    let out = wd.file("meta.mp4");
    let title = "a b  \"quoted\" 'single' = ünïcødé ✓ $HOME *";
    let o = wd
        .wrapperd()
        .args([
            "-hide_banner",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=0.2:size=64x64",
            "-metadata",
        ])
        .arg_title(title)
        .args(["-y"])
        .args([&out])
        .output(T);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format_tags=title",
            "-of",
            "default=nw=1:nk=1",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim_end_matches('\n'),
        title
    );
    let status = wd.status_json().unwrap();
    assert_eq!(status["cmd"][6], format!("title={title}"));
}

trait ArgTitle {
    fn arg_title(self, title: &str) -> Self;
}
impl ArgTitle for WrapperCmd {
    fn arg_title(self, title: &str) -> Self {
        self.args([format!("title={title}")])
    }
}

#[test]
fn five_second_encode_logs_every_stats_update_and_parses_progress() {
    for passthrough in [false, true] {
        let wd = Wd::new();
        let mut w = wd.wrapperd();
        if passthrough {
            w = w.env("EXIT_CODE_PASSTHROUGH", "1");
        }
        let o = w
            .args([
                "-hide_banner",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=5:size=320x240:rate=25",
            ])
            .args(["-c:v", "mpeg4", "-stats_period", "0.1", "-f", "null", "-"])
            .output(T);
        // A stream is not supposed to end: 1; with passthrough, ffmpeg's own 0.
        assert_eq!(
            o.status.code(),
            Some(if passthrough { 0 } else { 1 }),
            "{}",
            stderr(&o)
        );
        let log = wd.log("ffmpeg.log");
        let stats: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("frame=") && l.contains("fps="))
            .collect();
        assert!(
            stats.len() >= 2,
            "each stats update on its own line:\n{log}"
        );
        for l in &stats {
            assert!(l.starts_with('<') && l.as_bytes()[20] == b'>', "{l}");
            assert_eq!(l.matches("frame=").count(), 1, "one update per line: {l}");
        }
        let status = wd.status_json().unwrap();
        assert_eq!(status["progress"]["frame"], 125);
        assert!(status["counters"]["progress_blocks"].as_u64().unwrap() >= 2);
        assert_eq!(status["state"], "exited");
        assert_eq!(status["exit"]["ffmpeg_status"], 0);
        assert_eq!(status["exit"]["code"], if passthrough { 0 } else { 1 });
        let wlog = wd.log("wrapperd.log");
        let last = wlog.lines().last().unwrap();
        assert!(
            last.contains("ended by itself"),
            "exit reason is the last line: {last}"
        );
    }
}

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

#[test]
fn every_bad_value_exits_2_naming_the_variable_without_starting_ffmpeg() {
    let bad: &[(&str, &str)] = &[
        ("PROGRESS_BUFFER_LEN", "0"),
        ("STDOUT_BUFFER_LEN", "ten"),
        ("LOG_ROTATION_MODE", "weekly"),
        ("LOG_ROTATION_DAYS", "0"),
        ("LOG_ROTATION_MAX_KBYTES", "-5"),
        ("LOG_ROTATION_BACKUP", "x"),
        ("MANAGER_START_DELAY", "NaN"),
        ("ENCODING_CHECK_START_DELAY", "-1"),
        ("ENCODING_MIN_SPEED", "fast"),
        ("ENCODING_DELTA_SPEED", "-0.1"),
        ("ENCODING_DELTA_FPS", "x"),
        ("ENCODING_MIN_BASE_FPS", "-14"),
        ("ENCODING_MAX_ERROR_TIME", "inf"),
        ("ENCODING_MAX_STDOUT_STUCK_TIME", "soon"),
        ("ENCODING_RATE_WINDOW", "-10"),
        ("STOP_TIMEOUT", "1s"),
        ("HTTP_PORT", "65536"),
        ("HTTP_HOST", "nowhere host"),
    ];
    let wd = Wd::new();
    let marker = wd.file("started");
    let child = wd.script("marker.sh", &format!("touch {}", marker.display()));
    for (var, value) in bad {
        let o = wd.wrapperd().child(&child).env(var, value).output(T);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{var}={value}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(var) && err.contains(value), "{err}");
        assert!(!marker.exists(), "ffmpeg started for {var}");
        assert!(!wd.path.exists(), "nothing touched for {var}");
    }
}

#[test]
fn help_version_and_no_arguments() {
    let wd = Wd::new();
    let o = wd.wrapperd().args(["--help"]).output(T);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for v in config_vars() {
        assert!(help.contains(v), "--help lists {v}");
    }
    assert!(help.contains("/tmp/ff_wrapper") && help.contains("0.85") && help.contains("25000"));
    let o = wd.wrapperd().args(["--version"]).output(T);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains(env!("CARGO_PKG_VERSION")));
    let o = wd.wrapperd().output(T);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("usage"));
}

#[test]
fn missing_or_unexecutable_ffmpeg_is_127_or_126() {
    let wd = Wd::new();
    let o = wd
        .wrapperd()
        .env("FFMPEG_BIN", "/no/such/ffmpeg")
        .args(["-i", "x"])
        .output(T);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(wd
        .log("wrapperd.log")
        .lines()
        .last()
        .unwrap()
        .contains("/no/such/ffmpeg"));
    let status = wd.status_json().unwrap();
    assert_eq!(status["exit"]["code"], 127);
    let noexec = wd.file("noexec");
    fs::write(&noexec, "not a program").unwrap();
    let o = wd
        .wrapperd()
        .env("FFMPEG_BIN", &noexec)
        .args(["-i", "x"])
        .output(T);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
}

#[test]
fn busy_work_directory_is_refused_and_the_owner_is_undisturbed() {
    let wd = Wd::new();
    let child = wd.script("long.sh", "echo ready\nwhile :; do sleep 0.05; done");
    let mut owner = wd.wrapperd().child(&child).spawn();
    owner.ffmpeg_pid();
    owner.wait_api();
    // The owner's files, once it has written them all (hidden .tmp files come and go).
    let names = || {
        let mut v: Vec<String> = fs::read_dir(wd.path.join("status"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    };
    assert!(wait_until(Duration::from_secs(10), || {
        let n = names();
        ["START_TIME", "STATE", "HEALTH", "status.json"]
            .iter()
            .all(|k| n.iter().any(|x| x == k))
    }));
    let before = names();
    let o = wd.wrapperd().child(&child).output(T);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim_end(),
        format!(
            "wrapperd: WORKDIR {} is busy by process with pid {}",
            wd.path.display(),
            owner.pid()
        )
    );
    assert!(owner.is_running());
    assert_eq!(wd.status_file("PID").unwrap(), owner.pid().to_string());
    assert_eq!(names(), before);
    owner.wait_api();
}

#[test]
fn five_started_at_once_exactly_one_runs() {
    let wd = Wd::new();
    let child = wd.script("long.sh", "echo ready\nwhile :; do sleep 0.05; done");
    let mut ds: Vec<Daemon> = (0..5)
        .map(|_| wd.wrapperd().child(&child).spawn())
        .collect();
    let mut exited = 0;
    assert!(wait_until(Duration::from_secs(20), || {
        exited = ds
            .iter_mut()
            .map(|d| !d.is_running())
            .filter(|e| *e)
            .count();
        exited == 4
    }));
    let running: Vec<i32> = ds
        .iter_mut()
        .filter_map(|d| d.is_running().then(|| d.pid()))
        .collect();
    assert_eq!(running.len(), 1);
    assert_eq!(wd.status_file("PID").unwrap(), running[0].to_string());
}

#[test]
fn stale_pid_file_is_taken_over() {
    let wd = Wd::new();
    fs::create_dir_all(wd.path.join("status")).unwrap();
    fs::write(wd.path.join("status/PID"), "999999").unwrap();
    let o = wd
        .wrapperd()
        .args(["-f", "lavfi", "-i", "testsrc=d=0.1", "-f", "null", "-"])
        .output(T);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn days_rotation_rotates_an_old_file_after_restart() {
    let wd = Wd::new();
    fs::create_dir_all(wd.path.join("logs")).unwrap();
    let old = "<2020-01-01 00:00:00> a line from an earlier run\n";
    fs::write(wd.path.join("logs/ffmpeg.log"), old).unwrap();
    let o = wd
        .wrapperd()
        .env("LOG_ROTATION_DAYS", "1")
        .args([
            "-hide_banner",
            "-f",
            "lavfi",
            "-i",
            "testsrc=d=0.2",
            "-f",
            "null",
            "-",
        ])
        .output(T);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        fs::read_to_string(wd.path.join("logs/ffmpeg.log.1")).unwrap(),
        old
    );
    let new = wd.log("ffmpeg.log");
    assert!(
        !new.contains("earlier run") && new.contains("testsrc"),
        "{new}"
    );
}

#[test]
fn a_recent_file_is_appended_to_on_restart() {
    let wd = Wd::new();
    for _ in 0..2 {
        let o = wd.wrapperd().args(SHORT_ENCODE).output(T);
        assert_eq!(o.status.code(), Some(1));
    }
    assert!(!wd.path.join("logs/ffmpeg.log.1").exists());
    assert_eq!(wd.log("wrapperd.log").matches("started ffmpeg").count(), 2);
}

#[test]
fn no_file_log_writes_no_files() {
    let wd = Wd::new();
    let o = wd
        .wrapperd()
        .env("NO_FILE_LOG", "1")
        .args(SHORT_ENCODE)
        .output(T);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        fs::read_dir(wd.path.join("logs"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    assert!(
        stderr(&o).contains("started ffmpeg"),
        "wrapperd still logs to stderr"
    );
}

#[test]
fn status_files_hold_config_and_runtime_keys() {
    let wd = Wd::new();
    let o = wd
        .wrapperd()
        .env("ENCODING_MIN_SPEED", "0.5")
        .args(SHORT_ENCODE)
        .output(T);
    assert_eq!(o.status.code(), Some(1));
    for v in config_vars() {
        assert!(wd.status_file(v).is_some(), "status/{v}");
    }
    assert_eq!(wd.status_file("ENCODING_MIN_SPEED").unwrap(), "0.5");
    for k in [
        "PID",
        "FFMPEG_PID",
        "START_TIME",
        "STATE",
        "HEALTH",
        "API_SOCKET",
        "HTTP_ADDR",
    ] {
        assert!(wd.status_file(k).is_some(), "status/{k}");
    }
    assert_eq!(wd.status_file("STATE").unwrap(), "exited");
    assert!(!wd.path.join("api.sock").exists(), "socket removed at exit");
}

#[test]
fn ffmpeg_gets_progress_first_then_the_arguments_byte_for_byte() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let wd = Wd::new();
    let log = wd.file("args.log");
    let user: Vec<&OsStr> = vec![
        OsStr::new("exit"),
        OsStr::new("code=0"),
        OsStr::new("a b  c"),
        OsStr::new("\"q\" 'q' =x= \\"),
        OsStr::new("ünï ✓"),
        OsStr::from_bytes(b"raw \xff\xfe bytes"),
        OsStr::new(""),
    ];
    let o = wd
        .wrapperd()
        .fake()
        .env("FAKE_FFMPEG_ARGS_LOG", &log)
        .args(&user)
        .output(T);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let raw = fs::read(&log).unwrap();
    let got: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    let fifo = wd.path.join("pipes/progress");
    let mut want: Vec<&[u8]> = vec![b"-progress", fifo.as_os_str().as_bytes()];
    want.extend(user.iter().map(|a| a.as_bytes()));
    want.push(b""); // after the last NUL
    assert_eq!(got, want);
}

#[test]
fn an_input_reading_stdin_gets_wrapperds_stdin() {
    let wd = Wd::new();
    // Ten 16x16 gray frames on wrapperd's stdin, read by ffmpeg through `-i -`.
    let frames = wd.file("frames.raw");
    fs::write(&frames, vec![128u8; 16 * 16 * 10]).unwrap();
    let mut w = wd.wrapperd().args([
        "-hide_banner",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "gray",
        "-s",
        "16x16",
        "-i",
        "-",
        "-f",
        "null",
        "-",
    ]);
    w.cmd.stdin(fs::File::open(&frames).unwrap());
    let o = w.output(T);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let status = wd.status_json().unwrap();
    assert_eq!(
        status["progress"]["frame"], 10,
        "ffmpeg read every frame from stdin"
    );
    assert_eq!(status["exit"]["ffmpeg_status"], 0);
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
