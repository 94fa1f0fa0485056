//! Start-up and the work directory: bad values, `--help`, a missing ffmpeg, the lock, log files
//! across restarts, and the status files.

use super::*;

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
