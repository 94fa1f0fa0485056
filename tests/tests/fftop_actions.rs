//! fftop's actions and views end to end (SPEC §13, issue 15): the real `fftop` inside a
//! private tmux server against a real wrapperd running real ffmpeg (lavfi testsrc into mp4
//! files named by their start time, `RESTART` unset). `n` at a stop prompt does nothing; `r`
//! then `y` restarts the encode: a new run (number + 1, a new ffmpeg pid) and the previous run's
//! mp4 complete; the logs view (`l`) finds a line with `/`; the runs view (`R`) shows the
//! ended run.
//!
//! Every wait is for something on the screen or in the status, with a deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tests::tmux::{have_tmux, Tmux};
use tests::*;

const T: Duration = Duration::from_secs(20);

/// A work directory called `name`, in its own temporary directory.
fn named_wd(name: &str) -> Wd {
    let mut wd = Wd::new();
    wd.path = wd.tmp.path().join(name);
    wd
}

/// wrapperd running real ffmpeg: testsrc in real time into `rec/rec_<start time>.mp4` (one
/// file per run). `Wd::wrapperd` clears every config variable: `RESTART` is unset.
fn record(wd: &Wd) -> Daemon {
    let dir = wd.file("rec");
    std::fs::create_dir_all(&dir).unwrap();
    let pattern = dir.join("rec_%Y%m%d_%H%M%S.mp4");
    let d = wd
        .wrapperd()
        .env("MANAGER_START_DELAY", "0.5")
        .args([
            "-hide_banner",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25",
        ])
        .args(["-c:v", "mpeg4", "-f", "segment", "-segment_time", "100000"])
        .args(["-segment_format", "mp4", "-reset_timestamps", "1"])
        .args(["-strftime", "1"])
        .args([&pattern])
        .spawn();
    d.wait_api();
    d
}

fn mp4s(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    v.sort();
    v
}

#[test]
fn under_tmux_n_does_nothing_y_restarts_and_the_logs_view_finds_a_line() {
    if !have_tmux() {
        eprintln!("skipped: no tmux");
        return;
    }
    let wd = named_wd("cam-act");
    let d = record(&wd);
    let recorded = |d: &Daemon| {
        d.status()
            .progress
            .and_then(|p| p.out_time_us)
            .is_some_and(|us| us >= 1_500_000)
    };
    assert!(wait_until(T, || recorded(&d)), "no progress from ffmpeg");
    let before = d.status();
    let old_pid = d.ffmpeg_pid();
    let cmd = format!(
        "TERM=xterm-256color '{}' --interval 0.5 '{}'; exec sleep 600",
        bin("fftop").display(),
        wd.path.display()
    );
    let tmux = Tmux::start(120, 30, &cmd);
    tmux.wait_screen(T, "the row", |s| {
        s.lines().any(|l| l.contains("cam-act") && l.contains("ok"))
            || s.lines()
                .any(|l| l.contains("cam-act") && l.contains("warming_up"))
    });

    // The logs view finds a line by search (ffmpeg's "Stream mapping:" line, near the top).
    tmux.keys(&["l"]);
    tmux.wait_screen(T, "the logs view", |s| s.contains("logs of cam-act"));
    tmux.keys(&["/"]);
    tmux.keys(&["-l", "mapping"]);
    tmux.keys(&["Enter"]);
    let s = tmux.wait_screen(T, "the match", |s| {
        s.contains("/mapping 1/1")
            && s.lines()
                .any(|l| l.starts_with('>') && l.contains("Stream mapping"))
    });
    assert!(s.contains("paused"), "{s}");
    tmux.keys(&["Escape"]);
    tmux.wait_screen(T, "the list again", |s| s.contains("NAME"));

    // `n` at the stop prompt: nothing.
    tmux.keys(&["S"]);
    tmux.wait_screen(T, "the stop prompt", |s| s.contains("stop cam-act? y/N"));
    tmux.keys(&["n"]);
    tmux.wait_screen(T, "the prompt gone", |s| {
        !s.contains("y/N") && s.contains("q quit")
    });

    // `r`, `y`: a new run, a new ffmpeg, the previous run's mp4 complete.
    tmux.keys(&["r"]);
    tmux.wait_screen(T, "the restart prompt", |s| {
        s.contains("restart cam-act? y/N")
    });
    tmux.keys(&["y"]);
    tmux.wait_screen(T, "the result", |s| s.contains("restart cam-act: accepted"));
    let mut now = d.status();
    assert!(
        wait_until(T, || {
            now = d.status();
            now.run.number == before.run.number + 1 && now.ffmpeg_pid.is_some()
        }),
        "no new run: {:?}",
        now.run
    );
    assert_ne!(now.ffmpeg_pid, Some(old_pid as u32), "a new ffmpeg");
    assert!(now.exit.is_none(), "still running: {now:?}");
    let runs: Vec<shared::api::RunRecord> = d.client_runs();
    assert_eq!(
        runs.len(),
        1,
        "only the restart ended a run (n stopped nothing): {runs:#?}"
    );
    let mut files = Vec::new();
    assert!(
        wait_until(T, || {
            files = mp4s(&wd.file("rec"));
            files.len() >= 2
        }),
        "the new run writes its own file: {files:?}"
    );
    let dur =
        probe_duration(&files[0]).unwrap_or_else(|| panic!("{} incomplete", files[0].display()));
    assert!(dur >= 1.0, "{}: {dur} s", files[0].display());

    // The runs view shows the ended run with its reason; Enter, its last lines.
    tmux.keys(&["R"]);
    let reason: String = runs[0].reason.chars().take(30).collect();
    tmux.wait_screen(T, "the runs view", |s| {
        s.contains("runs of cam-act")
            && s.lines()
                .any(|l| l.trim_start().starts_with("1 ") && l.contains(&reason))
    });
    tmux.keys(&["Enter"]);
    tmux.wait_screen(T, "the run's last lines", |s| {
        s.contains("last lines of run 1")
    });
}

/// `API_READ_ONLY=true`: `r`, `y` shows the refusal, and after that 403 the actions are gone.
#[test]
fn under_tmux_a_403_shows_the_refusal_and_hides_the_actions() {
    if !have_tmux() {
        eprintln!("skipped: no tmux");
        return;
    }
    let wd = named_wd("cam-ro");
    let d = wd
        .wrapperd()
        .env("API_READ_ONLY", "true")
        .args([
            "-hide_banner",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25",
        ])
        .args(["-c:v", "mpeg4", "-f", "null", "-"])
        .spawn();
    d.wait_api();
    let cmd = format!(
        "TERM=xterm-256color '{}' --interval 0.5 '{}'; exec sleep 600",
        bin("fftop").display(),
        wd.path.display()
    );
    let tmux = Tmux::start(120, 30, &cmd);
    tmux.wait_screen(T, "the row", |s| {
        s.contains("cam-ro") && s.contains("q quit")
    });
    tmux.keys(&["r"]);
    tmux.wait_screen(T, "the prompt", |s| s.contains("restart cam-ro? y/N"));
    tmux.keys(&["y"]);
    tmux.wait_screen(T, "the refusal", |s| {
        s.contains("restart cam-ro: refused (403: ")
    });
    tmux.keys(&["?"]);
    let s = tmux.wait_screen(T, "the help", |s| s.contains(" keys "));
    assert!(!s.contains("restart the encode"), "{s}");
    tmux.keys(&["q"]);
    tmux.keys(&["r"]);
    tmux.keys(&["l"]);
    let s = tmux.wait_screen(T, "the logs view", |s| s.contains("logs of cam-ro"));
    assert!(!s.contains("y/N"), "no prompt after the 403: {s}");
    assert!(d.status().exit.is_none());
}

trait Runs {
    fn client_runs(&self) -> Vec<shared::api::RunRecord>;
}

impl Runs for Daemon {
    /// `/runs` through the API.
    fn client_runs(&self) -> Vec<shared::api::RunRecord> {
        block_on(self.client().runs(100)).expect("/runs")
    }
}
