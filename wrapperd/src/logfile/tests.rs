//! Tests of the log sinks: rotation, drops and notices, restarts, a stuck or failing output.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shared::timefmt::{local_text, now_ms, LOCAL_TEXT_LEN as TS_LEN};

use super::file::{backup_name, parse_line_start};
use super::*;

/// `YYYY-MM-DD HH:MM:SS` in local time for a unix second.
fn format_ts(sec: i64) -> String {
    local_text(sec * 1000)
}

fn spec(path: &Path, rotation: Rotation, backups: usize) -> LogSpec {
    LogSpec {
        path: path.to_path_buf(),
        rotation,
        backups,
        style: Style::Angle,
    }
}

fn size(max_bytes: u64) -> Rotation {
    Rotation::Size { max_bytes }
}

/// Waits for `cond` with a deadline (no sleep used as synchronisation).
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The files of a log, oldest first: `x.log.N` … `x.log.1`, `x.log`. Asserts that no other
/// file exists and that the backups are numbered without gaps.
fn log_files(path: &Path) -> Vec<PathBuf> {
    let dir = path.parent().unwrap();
    let base = path.file_name().unwrap().to_str().unwrap();
    let mut numbers = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name == base {
            continue;
        }
        let n: usize = name
            .strip_prefix(base)
            .and_then(|s| s.strip_prefix('.'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected file {name}"));
        numbers.push(n);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=numbers.len()).collect::<Vec<_>>());
    let mut files: Vec<PathBuf> = numbers
        .iter()
        .rev()
        .map(|&i| backup_name(path, i))
        .collect();
    files.push(path.to_path_buf());
    files
}

/// The lines (without timestamp) of a file.
fn lines_of(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "cut line in {path:?}"
    );
    text.lines()
        .map(|l| {
            assert!(l.len() >= OVERHEAD - 1, "short line {l:?}");
            assert!(
                l.starts_with('<') && l.as_bytes()[TS_LEN + 1] == b'>',
                "{l:?}"
            );
            l[OVERHEAD - 1..].to_string()
        })
        .collect()
}

fn all_lines(path: &Path) -> Vec<String> {
    log_files(path).iter().flat_map(|f| lines_of(f)).collect()
}

fn numbered(i: u64) -> String {
    format!("line {i:07}")
}

/// Asserts that `lines` are `line <first>` … `line <last>` without gaps or duplicates.
fn assert_consecutive(lines: &[String], last: u64) {
    let first = last + 1 - lines.len() as u64;
    for (k, l) in lines.iter().enumerate() {
        assert_eq!(*l, numbered(first + k as u64), "at index {k}");
    }
}

fn assert_sizes(path: &Path, max: u64) {
    for f in log_files(path) {
        let len = fs::metadata(&f).unwrap().len();
        assert!(len <= max, "{f:?} has {len} bytes > {max}");
    }
}

fn push_numbered(sink: &LogSink, n: u64) {
    let t = now_ms();
    for i in 0..n {
        sink.push(t, &numbered(i));
    }
}

#[test]
fn size_rotation_keeps_every_line_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/x.log");
    let max = 16 << 10;
    let sink = LogSink::open(spec(&path, size(max), 1000)).unwrap();
    push_numbered(&sink, 100_000);
    sink.close();
    assert_sizes(&path, max);
    let files = log_files(&path);
    assert!(files.len() > 100, "only {} files", files.len());
    let lines = all_lines(&path);
    assert_eq!(lines.len(), 100_000);
    assert_consecutive(&lines, 99_999);
    assert_eq!(sink.dropped(), 0);
}

#[test]
fn size_rotation_with_few_backups_keeps_the_newest_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/x.log");
    let max = 16 << 10;
    let sink = LogSink::open(spec(&path, size(max), 3)).unwrap();
    push_numbered(&sink, 100_000);
    sink.close();
    assert_sizes(&path, max);
    assert_eq!(log_files(&path).len(), 4);
    let lines = all_lines(&path);
    // Each line is 35 bytes, so each full file holds 468 of them.
    assert!(
        lines.len() > 3 * (max as usize / 35),
        "{} lines",
        lines.len()
    );
    assert_consecutive(&lines, 99_999);
}

#[test]
fn rotate_from_another_thread_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/x.log");
    let max = 32 << 10;
    let sink = LogSink::open(spec(&path, size(max), 1000)).unwrap();
    std::thread::scope(|s| {
        let rotator = sink.clone();
        s.spawn(move || {
            for _ in 0..200 {
                rotator.rotate();
                for _ in 0..200 {
                    std::thread::yield_now();
                }
            }
        });
        push_numbered(&sink, 100_000);
    });
    sink.close();
    assert_sizes(&path, max);
    let lines = all_lines(&path);
    assert_eq!(lines.len(), 100_000);
    assert_consecutive(&lines, 99_999);
}

#[test]
fn rotate_takes_effect_between_the_lines_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let sink = LogSink::open(spec(&path, size(1 << 20), 5)).unwrap();
    let t = now_ms();
    sink.push(t, "a");
    sink.rotate();
    sink.rotate(); // no line between: nothing more to rotate
    sink.push(t, "b");
    sink.close();
    assert_eq!(lines_of(&backup_name(&path, 1)), ["a"]);
    assert_eq!(lines_of(&path), ["b"]);
    assert!(!backup_name(&path, 2).exists());
}

#[test]
fn a_line_longer_than_max_goes_alone_into_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let sink = LogSink::open(spec(&path, size(100), 10)).unwrap();
    let t = now_ms();
    let long = "L".repeat(300);
    sink.push(t, "short 1");
    sink.push(t, "short 2");
    sink.push(t, &long);
    sink.push(t, "short 3");
    sink.push(t, &long);
    sink.push(t, &long);
    sink.close();
    let files: Vec<Vec<String>> = log_files(&path).iter().map(|f| lines_of(f)).collect();
    let expect: Vec<Vec<String>> = vec![
        vec!["short 1".into(), "short 2".into()],
        vec![long.clone()],
        vec!["short 3".into()],
        vec![long.clone()],
        vec![long.clone()],
    ];
    assert_eq!(files, expect);
}

#[test]
fn days_rotation_at_the_next_line_once_old() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let sink = LogSink::open(spec(&path, Rotation::Days { days: 2 }, 5)).unwrap();
    let t = now_ms();
    sink.push(t, "day 0");
    sink.push(t + DAY_MS, "day 1");
    sink.push(t + 2 * DAY_MS - 1, "day 2 not yet");
    sink.push(t + 2 * DAY_MS, "day 2");
    sink.push(t + 3 * DAY_MS, "day 3");
    sink.push(t + 4 * DAY_MS + 10, "day 4");
    sink.close();
    assert_eq!(
        lines_of(&backup_name(&path, 2)),
        ["day 0", "day 1", "day 2 not yet"]
    );
    assert_eq!(lines_of(&backup_name(&path, 1)), ["day 2", "day 3"]);
    assert_eq!(lines_of(&path), ["day 4"]);
}

#[test]
fn days_rotation_of_an_old_file_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let t = now_ms();
    // A file started 3 days ago by an earlier wrapperd.
    let old = format!("<{}> old\n", format_ts(t / 1000 - 3 * 86_400));
    fs::write(&path, &old).unwrap();
    let sink = LogSink::open(spec(&path, Rotation::Days { days: 4 }, 5)).unwrap();
    sink.push(t, "not yet");
    sink.close();
    assert_eq!(lines_of(&path), ["old", "not yet"]);
    let sink = LogSink::open(spec(&path, Rotation::Days { days: 2 }, 5)).unwrap();
    sink.push(t, "new");
    sink.push(t + 1000, "new 2");
    sink.close();
    assert_eq!(lines_of(&backup_name(&path, 1)), ["old", "not yet"]);
    assert_eq!(lines_of(&path), ["new", "new 2"]);
}

#[test]
fn file_start_is_parsed_from_both_styles() {
    let t = now_ms() / 1000 * 1000;
    let ts = format_ts(t / 1000);
    assert_eq!(parse_line_start(format!("<{ts}> x").as_bytes()), Some(t));
    assert_eq!(parse_line_start(format!("[{ts}] x").as_bytes()), Some(t));
    assert_eq!(parse_line_start(format!("[{ts}> x").as_bytes()), None);
    assert_eq!(parse_line_start(b"ffmpeg version 7"), None);
    assert_eq!(parse_line_start(b"<2024-13-01 00:00:00> x"), None);
}

#[test]
fn no_backups_keeps_no_rotated_copies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let sink = LogSink::open(spec(&path, size(200), 0)).unwrap();
    push_numbered(&sink, 1000);
    sink.rotate();
    sink.push(now_ms(), &numbered(1000));
    sink.close();
    assert_eq!(log_files(&path), std::slice::from_ref(&path));
    assert_eq!(lines_of(&path), [numbered(1000)]);
    // Size mode alone, too.
    let sink = LogSink::open(spec(&path, size(200), 0)).unwrap();
    push_numbered(&sink, 1000);
    sink.close();
    assert_eq!(log_files(&path), std::slice::from_ref(&path));
    let lines = lines_of(&path);
    assert!(!lines.is_empty() && lines.len() <= 200 / 35);
    assert_consecutive(&lines, 999);
}

#[test]
fn reopening_appends_and_counts_the_existing_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let sink = LogSink::open(spec(&path, size(110), 3)).unwrap();
    sink.push(now_ms(), "first run 1");
    sink.push(now_ms(), "first run 2");
    sink.close();
    sink.close(); // idempotent
    sink.push(now_ms(), "after close: ignored");
    let sink = LogSink::open(spec(&path, size(110), 3)).unwrap();
    sink.push(now_ms(), "second run 1");
    sink.close();
    assert_eq!(
        lines_of(&path),
        ["first run 1", "first run 2", "second run 1"].map(String::from)
    );
    // 103 bytes in the file: the next line no longer fits into 110 bytes.
    let sink = LogSink::open(spec(&path, size(110), 3)).unwrap();
    sink.push(now_ms(), "third run 1");
    drop(sink); // dropping the last clone flushes too
    assert_eq!(lines_of(&backup_name(&path, 1)).len(), 3);
    assert_eq!(lines_of(&path), ["third run 1"]);
}

#[test]
fn open_fails_when_the_file_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("logs");
    fs::write(&blocker, "a file where the directory should be").unwrap();
    let err = LogSink::open(spec(&blocker.join("x.log"), size(100), 1)).unwrap_err();
    assert!(err.to_string().contains("x.log"), "{err}");
    let err = LogSink::open(spec(dir.path(), size(100), 1)).unwrap_err();
    assert!(err.to_string().contains("cannot write log file"), "{err}");
}

#[test]
fn failing_disk_drops_counts_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let path = logs.join("x.log");
    // /dev/full fails every write with ENOSPC.
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let sink = LogSink::open(spec(&path, size(1 << 20), 2)).unwrap();
    push_numbered(&sink, 1000);
    wait_until("1000 dropped lines", || sink.dropped() == 1000);
    // The disk works again: the path now names a real file; the writer notices within ~1 s.
    fs::remove_file(&path).unwrap();
    wait_until("reopened file", || {
        fs::read_to_string(&path).is_ok_and(|s| s.contains("lines dropped"))
    });
    let t = now_ms();
    sink.push(t, "after");
    sink.close();
    assert_eq!(sink.dropped(), 1000);
    assert_eq!(
        lines_of(&path),
        [
            "[wrapperd] 1000 lines dropped: disk full, failing or too slow",
            "after"
        ]
    );
}

#[test]
fn stuck_disk_never_blocks_push_and_reports_the_cap_drops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A reader that does not read yet: the writer hangs once the pipe is full.
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    let cap = 64 << 10;
    let sink = LogSink::open_with_cap(spec(&path, size(1 << 30), 2), cap).unwrap();
    let total = 20_000u64; // 700 kB: far more than the pipe and the cap hold
    push_numbered(&sink, total); // returns although nothing can be written
    let dropped = sink.dropped();
    assert!(dropped > 0);
    // Now read everything; the writer ends (EOF) at close.
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe {
        let fd = reader.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK), 0);
    }
    let read = std::thread::spawn(move || {
        let mut reader = reader;
        let mut s = String::new();
        reader.read_to_string(&mut s).unwrap();
        s
    });
    sink.close();
    let text = read.join().unwrap();
    assert_notices_account_for(&text, "disk full, failing or too slow", dropped, total);
}

/// Walks the output of `total` numbered lines of which `dropped` were dropped: each notice
/// (`[wrapperd] N lines dropped: REASON`) accounts for exactly the lines missing before the
/// next kept one.
fn assert_notices_account_for(text: &str, reason: &str, dropped: u64, total: u64) {
    let mut next = 0u64;
    let mut reported = 0u64;
    let mut kept = 0u64;
    for l in text.lines() {
        let l = &l[OVERHEAD - 1..];
        if let Some(rest) = l.strip_prefix("[wrapperd] ") {
            let n: u64 = rest
                .strip_suffix(&format!(" lines dropped: {reason}"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad notice {l:?}"));
            next += n;
            reported += n;
        } else {
            assert_eq!(l, numbered(next));
            next += 1;
            kept += 1;
        }
    }
    // Where the gap falls depends on when the writer thread first ran: usually the tail is
    // dropped (the notice is the last line), but a writer scheduled late takes the buffer
    // after most lines were already dropped, and the last lines are kept after the notice.
    assert_eq!(reported, dropped);
    assert_eq!(kept + dropped, total);
    assert_eq!(next, total);
}

#[test]
fn unread_stream_never_blocks_push_and_reports_the_drops() {
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let cap = 64 << 10;
    let out = Box::new(fs::File::from(write_end));
    let sink = LogSink::stream(out, "stderr", Style::Angle, cap).unwrap();
    let total = 20_000u64; // 700 kB: far more than the pipe and the cap hold
    push_numbered(&sink, total); // returns although nobody reads the pipe
    let dropped = sink.dropped();
    assert!(dropped > 0);
    // The writer is stuck in a write: flushing gives up.
    assert!(!sink.flush_for(Duration::from_millis(50)));
    let read = std::thread::spawn(move || {
        let mut s = String::new();
        fs::File::from(read_end).read_to_string(&mut s).unwrap();
        s
    });
    assert!(sink.flush_for(Duration::from_secs(20)), "never flushed");
    sink.push(now_ms(), "after the flush: not lost by close");
    sink.close(); // the writer ends and closes the pipe: the reader sees EOF
    let text = read.join().unwrap();
    let (text, last) = text.trim_end().rsplit_once('\n').unwrap();
    assert!(
        last.ends_with("> after the flush: not lost by close"),
        "{last:?}"
    );
    let reason = "stderr not read, failing or too slow";
    assert_notices_account_for(&format!("{text}\n"), reason, dropped, total);
}

#[test]
fn raw_lines_have_no_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let out = Box::new(fs::File::create(&path).unwrap());
    let sink = LogSink::stream(out, "stderr", Style::Bracket, 1 << 20).unwrap();
    sink.push_raw("wrapperd: cannot write log file x: a\nb");
    sink.push(now_ms(), "stamped");
    assert!(sink.flush_for(Duration::from_secs(20)));
    let text = fs::read_to_string(&path).unwrap();
    let (raw, stamped) = text.split_once('\n').unwrap();
    assert_eq!(raw, "wrapperd: cannot write log file x: a b");
    assert!(
        stamped.starts_with('[') && stamped.ends_with("] stamped\n"),
        "{stamped:?}"
    );
    assert_eq!(stamped.len(), OVERHEAD + "stamped".len());
}

#[test]
fn deleted_directory_is_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let path = logs.join("x.log");
    let sink = LogSink::open(spec(&path, size(1 << 20), 2)).unwrap();
    sink.push(now_ms(), "before");
    wait_until("first line written", || {
        fs::read_to_string(&path).is_ok_and(|s| s.contains("before"))
    });
    fs::remove_dir_all(&logs).unwrap();
    // An idle writer does not wake to look: the next line recreates the file, and goes there.
    sink.push(now_ms(), "after");
    wait_until("recreated file", || {
        fs::read_to_string(&path).is_ok_and(|s| s.contains("after"))
    });
    sink.close();
    assert_eq!(lines_of(&path), ["after"]);
}

#[test]
fn deleted_directory_is_recreated_at_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let path = logs.join("x.log");
    let sink = LogSink::open(spec(&path, size(1 << 20), 2)).unwrap();
    sink.push(now_ms(), "before");
    wait_until("first line written", || {
        fs::read_to_string(&path).is_ok_and(|s| s.contains("before"))
    });
    fs::remove_dir_all(&logs).unwrap();
    sink.rotate();
    sink.push(now_ms(), "after");
    sink.close();
    assert_eq!(lines_of(&path), ["after"]);
}

#[test]
fn line_ends_inside_a_line_become_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let sink = LogSink::open(LogSpec {
        style: Style::Bracket,
        ..spec(&path, size(1 << 20), 1)
    })
    .unwrap();
    sink.push(now_ms(), "a\nb\rc");
    sink.close();
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with('[') && text.ends_with("] a b c\n"),
        "{text:?}"
    );
    assert_eq!(text.len(), OVERHEAD + 5);
}

#[test]
fn sink_is_clone_send_sync_and_pushable_from_many_threads() {
    fn assert_traits<T: Clone + Send + Sync + fmt::Debug>() {}
    assert_traits::<LogSink>();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let sink = LogSink::open(spec(&path, size(4096), 10_000)).unwrap();
    std::thread::scope(|s| {
        for k in 0..4 {
            let sink = sink.clone();
            s.spawn(move || {
                for i in 0..10_000 {
                    sink.push(now_ms(), &format!("thread {k} {i:05}"));
                }
            });
        }
    });
    drop(sink.clone());
    sink.close();
    let lines = all_lines(&path);
    assert_eq!(lines.len(), 40_000);
    for k in 0..4 {
        let mine: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("thread {k} ")))
            .collect();
        let expect: Vec<String> = (0..10_000).map(|i| format!("thread {k} {i:05}")).collect();
        assert!(mine.iter().zip(&expect).all(|(a, b)| *a == b) && mine.len() == 10_000);
    }
}

#[test]
fn two_million_lines_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let n = 2_000_000u64;
    let start = Instant::now();
    let sink = LogSink::open(spec(&path, size(1 << 40), 1)).unwrap();
    let t = now_ms();
    for i in 0..n {
        sink.push(t + (i / 100_000) as i64 * 1000, &numbered(i));
    }
    let pushed = start.elapsed();
    sink.close();
    let total = start.elapsed();
    eprintln!(
        "{n} lines: pushed in {pushed:?}, written in {total:?} ({:.0} lines/s)",
        n as f64 / total.as_secs_f64()
    );
    assert_eq!(sink.dropped(), 0);
    let lines = lines_of(&path);
    assert_eq!(lines.len() as u64, n);
    assert_consecutive(&lines, n - 1);
}

/// `push_joined` of `lines` (all arriving at `t`), as the output readers hand over one read.
fn push_batch(sink: &LogSink, t: i64, lines: &[&str]) {
    let (mut joined, mut ends) = (String::new(), Vec::new());
    for l in lines {
        joined.push_str(l);
        ends.push(joined.len());
    }
    sink.push_joined(t, &joined, &ends);
}

#[test]
fn a_read_pushed_at_once_is_written_as_its_lines_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.log");
    let sink = LogSink::open(spec(&path, Rotation::Days { days: 2 }, 5)).unwrap();
    let t = now_ms();
    push_batch(&sink, t, &["day 0", "still day 0"]);
    push_batch(&sink, t + 2 * DAY_MS - 1, &[]);
    push_batch(&sink, t + 2 * DAY_MS - 1, &["day 2 not yet"]);
    // The file is old at the first line of this read: all of it goes into the new file.
    push_batch(&sink, t + 2 * DAY_MS, &["day 2", "a\nb\rc", "é ∑ 🎞"]);
    sink.push(t + 2 * DAY_MS + 1, "one by one");
    push_batch(&sink, t + 4 * DAY_MS, &["day 4"]);
    sink.close();
    assert_eq!(
        lines_of(&backup_name(&path, 2)),
        ["day 0", "still day 0", "day 2 not yet"]
    );
    assert_eq!(
        lines_of(&backup_name(&path, 1)),
        ["day 2", "a b c", "é ∑ 🎞", "one by one"]
    );
    assert_eq!(lines_of(&path), ["day 4"]);
    assert_eq!(sink.dropped(), 0);
}
