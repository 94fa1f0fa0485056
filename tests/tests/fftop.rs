//! fftop end to end (SPEC §8, issue #5 acceptance 3 and 4): the real `fftop` against real
//! wrapperd running real ffmpeg, interactively inside a private tmux server (read back with
//! `capture-pane`), and as `--once` / `--once --json` for scripts.
//!
//! Every wait is for something to appear on the screen or in a status, with a deadline.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use tests::tmux::Tmux;
use tests::*;

/// fftop's poll interval in the interactive test.
const INTERVAL: Duration = Duration::from_millis(500);

/// A cheap live encode: 25 fps in real time, thrown away.
const ENCODE: &[&str] = &[
    "-hide_banner",
    "-re",
    "-f",
    "lavfi",
    "-i",
    "testsrc=size=160x120:rate=25",
    "-c:v",
    "mpeg4",
    "-f",
    "null",
    "-",
];

/// A work directory called `name` (fftop shows a work directory by its name), in its own
/// temporary directory.
fn named_wd(name: &str) -> Wd {
    let mut wd = Wd::new();
    wd.path = wd.tmp.path().join(name);
    wd
}

/// Starts a real encode under wrapperd and waits until its API answers with progress.
fn start_encode(wd: &Wd, check_delay: &str) -> Daemon {
    let d = wd
        .wrapperd()
        .env("ENCODING_CHECK_START_DELAY", check_delay)
        .env("MANAGER_START_DELAY", "0.5")
        .args(ENCODE)
        .spawn();
    d.wait_api();
    assert!(
        wait_until(Duration::from_secs(20), || d.status().progress.is_some()),
        "no progress from ffmpeg in {}",
        wd.path.display()
    );
    d
}

/// SIGKILLs a wrapperd (its ffmpeg follows by PDEATHSIG) and waits until it is gone, leaving
/// its stale `api.sock` behind.
fn kill_hard(d: &mut Daemon) {
    d.signal(Signal::SIGKILL);
    // Reaped, not just a zombie: a killed leader shows `Z` while its other threads still hold
    // the descriptors, the listening socket among them (a connect then hangs, not refused).
    d.wait(Duration::from_secs(10));
}

/// Single-quotes a string for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The screen line of the table row for `name` (`None` when there is none).
fn row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.split_whitespace().take(2).any(|w| w == name))
}

/// Whether the row's health is one of the words for an answering target.
fn shows_health(row: &str) -> bool {
    let words = ["ok", "warming_up", "failing", "stalled"];
    row.split_whitespace().any(|w| words.contains(&w))
}

/// From a target's table row: whether it shows a health word, its frame count and its uptime
/// (columns NAME HEALTH FPS SPEED BITRATE FRAMES DROP/DUP UPTIME).
fn counters(screen: &str, name: &str) -> (bool, String, String) {
    let Some(r) = row(screen, name) else {
        return (false, String::new(), String::new());
    };
    let words: Vec<&str> = r.split_whitespace().collect();
    let at = words.iter().position(|w| *w == name).unwrap();
    let word = |i: usize| words.get(at + i).copied().unwrap_or_default().to_string();
    (shows_health(r), word(5), word(7))
}

#[test]
fn interactive_table_down_detection_detail_and_clean_quit_under_tmux() {
    let a = named_wd("cam-alpha");
    let b = named_wd("cam-bravo");
    let _da = start_encode(&a, "1");
    let mut db = start_encode(&b, "1");

    // The shell reports fftop's exit status and the terminal modes it left behind, then waits
    // so the pane stays readable.
    let cmd = format!(
        "TERM=xterm-256color {} --interval {} {} {}; echo FFTOP_EXIT=$?; stty -a; exec sleep 600",
        sh_quote(&bin("fftop").to_string_lossy()),
        INTERVAL.as_secs_f64(),
        sh_quote(&a.path.to_string_lossy()),
        sh_quote(&b.path.to_string_lossy()),
    );
    let tmux = Tmux::start(100, 30, &cmd);

    // The table shows both, each with its health word.
    tmux.wait_screen(Duration::from_secs(15), "both targets with health", |s| {
        s.contains("NAME")
            && ["cam-alpha", "cam-bravo"]
                .iter()
                .all(|n| row(s, n).is_some_and(shows_health))
    });
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "1",
        "fftop draws on the alternate screen"
    );

    check_down_detection(&tmux, &mut db);

    // Enter opens the detail of the selected (first, by name) target: charts and command. The
    // whole check is the wait's condition, so a frame caught half drawn is simply read again.
    tmux.keys(&["Enter"]);
    tmux.wait_screen(Duration::from_secs(5), "the detail view", |s| {
        s.contains(" cam-alpha ")
            && s.contains("┌ fps")
            && s.contains("┌ speed")
            && s.matches("min ").count() >= 2 // the minimum lines, named in the titles
            && s.matches("now").count() >= 2 // the time axes
            && s.matches('└').count() >= 2
            && s.contains("cmd -hide_banner -re -f lavfi -i testsrc=size=160x120:rate=25")
            && !s.contains("NAME")
    });

    check_quit_restores_the_terminal(&tmux);
}

/// Killing `cam-bravo` turns it `down` within two intervals; `cam-alpha` keeps updating.
fn check_down_detection(tmux: &Tmux, db: &mut Daemon) {
    let killed = Instant::now();
    kill_hard(db);
    let limit = INTERVAL * 2 + Duration::from_millis(500);
    let s = tmux.wait_screen(Duration::from_secs(10), "cam-bravo down", |s| {
        row(s, "cam-bravo").is_some_and(|r| r.split_whitespace().any(|w| w == "down"))
            && counters(s, "cam-alpha").0
    });
    let took = killed.elapsed();
    eprintln!("cam-bravo showed `down` {took:?} after SIGKILL (interval {INTERVAL:?})");
    assert!(
        took <= limit,
        "down after {took:?}, more than two intervals (+ margin) {limit:?}:\n{s}"
    );
    let alpha_before = counters(&s, "cam-alpha");
    let s = tmux.wait_screen(Duration::from_secs(5), "cam-alpha updating", |s| {
        let now = counters(s, "cam-alpha");
        now.0 && (now.1 != alpha_before.1 || now.2 != alpha_before.2)
    });
    assert!(
        row(&s, "cam-bravo").is_some_and(|r| r.contains("down")),
        "still down:\n{s}"
    );
}

/// `q` goes back to the table; `q` again quits with 0, and the terminal is as it was (modes,
/// main screen, cursor).
fn check_quit_restores_the_terminal(tmux: &Tmux) {
    tmux.keys(&["q"]);
    tmux.wait_screen(Duration::from_secs(5), "the table again", |s| {
        s.contains("NAME") && row(s, "cam-alpha").is_some()
    });
    tmux.keys(&["q"]);
    let modes = ["icanon", "echo", "isig", "icrnl", "opost"];
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || c == ';')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    };
    let s = tmux.wait_screen(Duration::from_secs(5), "fftop's exit and stty -a", |s| {
        let w = words(s);
        s.contains("FFTOP_EXIT=")
            && modes
                .iter()
                .all(|m| w.iter().any(|x| x.trim_start_matches('-') == *m))
    });
    assert!(s.contains("FFTOP_EXIT=0"), "fftop exits 0 on q:\n{s}");
    let w = words(&s);
    for mode in modes {
        assert!(
            w.iter().any(|x| x == mode),
            "{mode} is back on (no raw mode left):\n{s}"
        );
    }
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "0",
        "the alternate screen was left:\n{s}"
    );
    assert_eq!(
        tmux.display("#{cursor_flag}"),
        "1",
        "the cursor is shown again"
    );
}

/// Runs `fftop --once [--json] TARGETS` with colours allowed, as a script would.
fn once(json: bool, targets: &[&Path]) -> (i32, Vec<u8>) {
    let mut cmd = Command::new(bin("fftop"));
    cmd.arg("--once");
    if json {
        cmd.arg("--json");
    }
    let o = cmd
        .args(targets)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("WORKDIR")
        .env_remove("API_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("fftop");
    let code = o.status.code().expect("exit code, not a signal");
    (code, o.stdout)
}

fn assert_plain(out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    assert!(
        out.iter().all(|&b| b == b'\n' || (b >= 0x20 && b != 0x7f)),
        "control codes in the plain output: {text:?}"
    );
}

fn json_by_name(out: &[u8]) -> Vec<(String, Value)> {
    let v: Value = serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)));
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|o| (o["name"].as_str().expect("name").to_string(), o.clone()))
        .collect()
}

#[test]
fn once_plain_and_json_against_real_daemons_with_one_down() {
    let a = named_wd("cam-alpha");
    let b = named_wd("cam-bravo");
    let empty = named_wd("cam-never");
    std::fs::create_dir_all(&empty.path).unwrap();
    // The default check delay: both stay warming up, which counts as good.
    let _da = start_encode(&a, "55");
    let mut db = start_encode(&b, "55");
    let up: [&Path; 2] = [&a.path, &b.path];

    // All up: exit 0, one row each, every row says who and how.
    let (code, out) = once(false, &up);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(code, 0, "{text}");
    assert_plain(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "heading and two rows:\n{text}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("HEALTH"),
        "{text}"
    );
    for (line, name) in lines[1..].iter().zip(["cam-alpha", "cam-bravo"]) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[..3], [name, "warming_up", "running"], "{text}");
    }
    let (code, out) = once(true, &up);
    assert_eq!(code, 0);
    let all = json_by_name(&out);
    assert_eq!(all.len(), 2);
    for ((name, o), wd) in all.iter().zip([&a, &b]) {
        assert_eq!(name, wd.path.file_name().unwrap().to_str().unwrap());
        assert_eq!(o["health"], "warming_up");
        assert_eq!(o["state"], "running");
        assert_eq!(o["workdir"], wd.path.to_str().unwrap());
        assert_eq!(o["target"], wd.path.join("api.sock").to_str().unwrap());
        assert!(o["progress"]["frame"].as_u64().is_some(), "{o}");
        assert_eq!(o["cmd"], serde_json::json!(ENCODE));
    }

    // One killed (a stale api.sock left behind) and one never started (no socket at all).
    kill_hard(&mut db);
    assert!(
        b.path.join("api.sock").exists(),
        "SIGKILL leaves the socket"
    );
    let targets: [&Path; 3] = [&a.path, &b.path, &empty.path];
    let (code, out) = once(false, &targets);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(code, 1, "a target is down:\n{text}");
    assert_plain(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let words = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(
        words(1)[..3],
        ["cam-alpha", "warming_up", "running"],
        "{text}"
    );
    assert_eq!(words(2)[..2], ["cam-bravo", "down"], "{text}");
    assert!(lines[2].contains("refused"), "the error:\n{text}");
    assert_eq!(words(3)[..2], ["cam-never", "down"], "{text}");
    assert!(
        lines[3].contains("No such file"),
        "the error for a missing socket:\n{text}"
    );

    let (code, out) = once(true, &targets);
    assert_eq!(code, 1);
    let all = json_by_name(&out);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["cam-alpha", "cam-bravo", "cam-never"]);
    assert_eq!(all[0].1["health"], "warming_up");
    for ((_, o), wd) in all[1..].iter().zip([&b, &empty]) {
        let o = o.as_object().unwrap();
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, ["error", "health", "name", "target"], "{o:?}");
        assert_eq!(o["health"], "down");
        assert_eq!(o["target"], wd.path.join("api.sock").to_str().unwrap());
        assert!(!o["error"].as_str().unwrap().is_empty());
    }
    assert!(all[1].1["error"].as_str().unwrap().contains("refused"));
}
