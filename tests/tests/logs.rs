//! ffmpeg's output in the rings and the rotating files (SPEC §4), under floods, signals and a
//! failing disk.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tests::*;

const T: Duration = Duration::from_secs(120);

/// The numbers in `<ts> N` lines across `ffmpeg.log*`, oldest first.
fn numbers(logs: &Path) -> Vec<u64> {
    rotated_lines(logs, "ffmpeg.log")
        .iter()
        .filter_map(|l| l.split_once("> ").and_then(|(_, n)| n.parse().ok()))
        .collect()
}

fn assert_consecutive(nums: &[u64], last: u64) {
    assert!(!nums.is_empty());
    assert_eq!(*nums.last().unwrap(), last, "the newest line is there");
    for w in nums.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "gap or duplicate between {} and {}",
            w[0],
            w[1]
        );
    }
}

fn log_files(logs: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = fs::read_dir(logs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ffmpeg.log"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

fn check_files(logs: &Path, backups: usize, max_bytes: u64) {
    let files = log_files(logs);
    assert!(files.len() <= backups + 1, "{files:?}");
    for (name, len) in &files {
        assert!(*len <= max_bytes, "{name} is {len} bytes > {max_bytes}");
        let ok = name == "ffmpeg.log"
            || name
                .strip_prefix("ffmpeg.log.")
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| (1..=backups).contains(&n));
        assert!(ok, "unexpected file {name}");
    }
}

#[test]
fn size_rotation_under_a_flood_keeps_every_line_once_and_in_order() {
    let n = 300_000u64;
    for backups in [1000usize, 3] {
        let wd = Wd::new();
        let child = wd.script("seq.sh", &format!("exec seq 1 {n}"));
        let o = wd
            .wrapperd()
            .child(&child)
            .envs(&[
                ("LOG_ROTATION_MODE", "size"),
                ("LOG_ROTATION_MAX_KBYTES", "64"),
            ])
            .env("LOG_ROTATION_BACKUP", backups.to_string())
            .output(T);
        assert_eq!(o.status.code(), Some(1));
        let logs = wd.path.join("logs");
        check_files(&logs, backups, 64 * 1024);
        let nums = numbers(&logs);
        assert_consecutive(&nums, n);
        if backups == 1000 {
            assert_eq!(nums.len() as u64, n, "every line is in the files");
        }
        assert_eq!(wd.status_json().unwrap()["counters"]["log_lines"], n);
    }
}

#[test]
fn two_hundred_sighups_during_a_flood_lose_and_split_nothing() {
    let wd = Wd::new();
    let n = 200_000u64;
    // Slow enough (a shell loop) that the SIGHUPs land during the run.
    let child = wd.script(
        "count.sh",
        &format!("echo start\nsleep 0.2\ni=1\nwhile [ $i -le {n} ]; do echo $i; i=$((i+1)); done"),
    );
    let mut d = wd
        .wrapperd()
        .child(&child)
        .envs(&[
            ("LOG_ROTATION_MODE", "size"),
            ("LOG_ROTATION_MAX_KBYTES", "256"),
            ("LOG_ROTATION_BACKUP", "1000"),
        ])
        .spawn();
    assert!(wait_until(Duration::from_secs(20), || wd
        .log("ffmpeg.log")
        .contains("start")));
    for _ in 0..200 {
        d.signal(Signal::SIGHUP);
        std::thread::sleep(Duration::from_millis(3)); // spacing the signals, not waiting for anything
    }
    assert_eq!(d.wait(T).code(), Some(1));
    let logs = wd.path.join("logs");
    check_files(&logs, 1000, 256 * 1024);
    assert!(
        log_files(&logs).len() > 10,
        "SIGHUP rotated: {:?}",
        log_files(&logs).len()
    );
    let nums = numbers(&logs);
    assert_eq!(nums.len() as u64, n);
    assert_consecutive(&nums, n);
    for l in rotated_lines(&logs, "ffmpeg.log") {
        assert!(l.starts_with('<') && l.len() > 22, "whole line: {l:?}");
    }
}

#[test]
fn full_disk_never_slows_the_child_and_the_ring_keeps_every_line() {
    let n = 500_000u64;
    let run = |full: bool| {
        let wd = Wd::new();
        let child = wd.script("seq.sh", &format!("exec seq 1 {n}"));
        let mut w = wd
            .wrapperd()
            .child(&child)
            .env("STDOUT_BUFFER_LEN", n.to_string());
        if full {
            fs::create_dir_all(wd.path.join("logs")).unwrap();
            std::os::unix::fs::symlink("/dev/full", wd.path.join("logs/ffmpeg.log")).unwrap();
        } else {
            w = w.env("NO_FILE_LOG", "1");
        }
        let t0 = Instant::now();
        let o = w.output(T);
        let took = t0.elapsed();
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let st = wd.status_json().unwrap();
        assert_eq!(st["counters"]["log_lines"], n, "the ring took every line");
        took
    };
    let without_files = run(false);
    let full = run(true);
    // Not a benchmark (bench/ measures that): a blocked writer would take far longer.
    assert!(
        full < without_files * 3 + Duration::from_secs(2),
        "full disk {full:?} vs no files {without_files:?}"
    );
}

#[test]
fn non_utf8_bytes_and_a_1mb_line_are_kept_and_cut() {
    let wd = Wd::new();
    let child = wd.script(
        "bytes.sh",
        "printf 'caf\\351 \\377\\376 end\\n'\n\
         head -c 1000000 /dev/zero | tr '\\0' x\n\
         printf '\\nafter\\n'",
    );
    let mut d = wd.wrapperd().child(&child).env("STOP_TIMEOUT", "1").spawn();
    assert_eq!(d.wait(T).code(), Some(1));
    let log = wd.log("ffmpeg.log");
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("caf\u{FFFD} \u{FFFD}\u{FFFD} end")),
        "{:?}",
        &lines
    );
    let long = lines
        .iter()
        .find(|l| l.contains("xxxx"))
        .expect("the long line");
    assert_eq!(
        long.len() - "<YYYY-MM-DD HH:MM:SS> ".len(),
        64 * 1024,
        "cut at 64 KiB"
    );
    assert!(lines.last().unwrap().ends_with("> after"));
    assert_eq!(wd.status_json().unwrap()["counters"]["log_lines"], 3);
}
