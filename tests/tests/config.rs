//! Stricter configuration (SPEC §2 amended) and `FFMPEG_LOG_TO_STDERR` (SPEC §10) through the
//! real binary: a bad switch or a `-progress` of the user's own is one line and exit 2 before
//! ffmpeg starts (the fake records its arguments when it starts, so "never started" is seen);
//! a misspelt variable warns and wrapperd runs; ffmpeg's lines reach wrapperd's stderr without
//! its stats lines.

use std::process::Output;
use std::time::Duration;

use nix::sys::signal::Signal;
use tests::*;

const T: Duration = Duration::from_secs(30);

/// wrapperd with the fake, which records its arguments in `args.log` when it starts.
fn fake(wd: &Wd) -> WrapperCmd {
    wd.wrapperd()
        .fake()
        .env("FAKE_FFMPEG_ARGS_LOG", wd.file("args.log"))
}

fn started(wd: &Wd) -> bool {
    wd.file("args.log").exists()
}

/// Asserts wrapperd exited 2 with exactly `line` on stderr, without starting ffmpeg or touching
/// the work directory.
fn assert_refused(wd: &Wd, o: &Output, line: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err, format!("{line}\n"));
    assert!(!started(wd), "ffmpeg was started");
    assert!(!wd.path.exists(), "the work directory was touched");
}

#[test]
fn each_bad_switch_is_one_line_and_exit_2_before_ffmpeg() {
    let allowed = "allowed: 1, 0, true, false, yes, no, on or off (any case), or empty";
    let cases = [
        ("ENCODING_DISABLE_CHECK", "flase"),
        ("ENCODING_DISABLE_CHECK", "2"),
        ("EXIT_CODE_PASSTHROUGH", "2"),
        ("API_READ_ONLY", "maybe"),
        ("FFMPEG_LOG_TO_STDERR", "yess"),
    ];
    let runs: Vec<_> = cases
        .iter()
        .map(|&(var, value)| {
            std::thread::spawn(move || {
                let wd = Wd::new();
                let o = fake(&wd).env(var, value).args(["run"]).output(T);
                let want = format!("wrapperd: bad value for {var}: {value:?}; {allowed}");
                assert_refused(&wd, &o, &want);
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
    // The restart policy is a word, not a switch: `yes` is no policy either.
    let wd = Wd::new();
    let o = fake(&wd).env("RESTART", "yes").args(["run"]).output(T);
    assert_refused(
        &wd,
        &o,
        "wrapperd: bad value for RESTART: \"yes\"; allowed: never, on-failure or always",
    );
}

#[test]
fn a_progress_of_the_users_own_is_refused() {
    let wd = Wd::new();
    let o = fake(&wd)
        .args(["-i", "in.mp4", "-progress", "pipe:1", "run"])
        .output(T);
    assert_refused(
        &wd,
        &o,
        "wrapperd: ffmpeg argument 3 is -progress: wrapperd adds its own -progress for the \
         manager (a second one would take the progress stream away from it); remove it",
    );
}

/// The lines of wrapperd's stderr that are warnings.
fn warnings(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.contains("] warning: "))
        .map(String::from)
        .collect()
}

#[test]
fn any_string_still_turns_no_file_log_on_with_a_warning() {
    let wd = Wd::new();
    let o = fake(&wd)
        .env("NO_FILE_LOG", "anything")
        .args(["run", "secs=0.3"])
        .output(T);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(started(&wd));
    assert!(!wd.path.join("logs/ffmpeg.log").exists(), "no log files");
    let w: Vec<String> = warnings(&o)
        .into_iter()
        .filter(|l| l.contains("NO_FILE_LOG"))
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].ends_with(
            "warning: NO_FILE_LOG=\"anything\" is taken as true (a switch is one of \
             1, 0, true, false, yes, no, on or off (any case), or empty)"
        ),
        "{w:?}"
    );
}

#[test]
fn a_misspelt_variable_warns_naming_the_right_one_and_wrapperd_runs() {
    let wd = Wd::new();
    let o = fake(&wd)
        .envs(&[
            ("ENCODING_MAX_ERRROR_TIME", "5"),
            // What ordinary environments hold never warns.
            ("HTTP_PROXY", "http://proxy.example:3128"),
            ("http_proxy", "http://proxy.example:3128"),
            ("NO_PROXY", "localhost"),
            ("HOSTNAME", "encoder-1"),
            ("FFMPEG_DATADIR", "/usr/share/ffmpeg"),
        ])
        .args(["run", "secs=0.3"])
        .output(T);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(started(&wd));
    let w = warnings(&o);
    let about = |name: &str| w.iter().filter(|l| l.contains(name)).count();
    assert_eq!(about("ENCODING_MAX_ERRROR_TIME"), 1, "{w:?}");
    assert!(
        w.iter().any(|l| l.ends_with(
            "warning: unknown variable ENCODING_MAX_ERRROR_TIME is ignored; did you mean \
             ENCODING_MAX_ERROR_TIME?"
        )),
        "{w:?}"
    );
    for quiet in ["PROXY", "proxy", "HOSTNAME", "FFMPEG_DATADIR"] {
        assert_eq!(about(quiet), 0, "{w:?}");
    }
    // The misspelt value was not taken: the default is in force.
    assert_eq!(
        wd.status_file("ENCODING_MAX_ERROR_TIME").as_deref(),
        Some("10")
    );
}

/// wrapperd's stderr when the fake prints a marker line and stats lines, stopped by SIGTERM
/// (so it does not end by itself, which prints ffmpeg's last lines anyway).
fn stderr_of_an_encode(log_to_stderr: Option<&str>) -> String {
    let wd = Wd::new();
    let mut cmd = fake(&wd).args(["echo", "marker-from-ffmpeg", "run", "block-interval=0.05"]);
    if let Some(v) = log_to_stderr {
        cmd = cmd.env("FFMPEG_LOG_TO_STDERR", v);
    }
    let d = cmd.spawn();
    d.wait_api();
    assert!(
        wait_until(T, || d.status().counters.log_lines >= 10),
        "no stats lines"
    );
    d.signal(Signal::SIGTERM);
    let o = d.wait_output(T);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stderr(&o)
}

#[test]
fn ffmpeg_log_to_stderr_shows_ffmpegs_lines_but_not_its_stats() {
    let err = stderr_of_an_encode(Some("1"));
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.contains(&"marker-from-ffmpeg"), "{err}");
    assert!(!err.contains("frame="), "a stats line on stderr:\n{err}");
    // Unset: ffmpeg's lines are in the log, not on stderr.
    let err = stderr_of_an_encode(None);
    assert!(!err.lines().any(|l| l == "marker-from-ffmpeg"), "{err}");
}
