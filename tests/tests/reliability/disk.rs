//! Disk faults (a full tmpfs, `logs/` deleted while running, a read-only work directory) and
//! the atomic `status/status.json` under a reader looping on it.

use super::*;

/// The numbered lines (`<ts> N`) and the "K lines dropped" notices of a log, in file order.
enum LogLine {
    Num(u64),
    Dropped(u64),
    Other(String),
}

fn parse_log(text: &str) -> Vec<LogLine> {
    text.lines()
        .map(|l| {
            let body = l.split_once("> ").map(|(_, b)| b).unwrap_or(l);
            if let Ok(n) = body.parse() {
                LogLine::Num(n)
            } else if let Some(k) = body
                .strip_prefix("[wrapperd] ")
                .and_then(|r| r.split_once(" lines dropped"))
                .and_then(|(k, _)| k.parse().ok())
            {
                LogLine::Dropped(k)
            } else {
                LogLine::Other(l.to_string())
            }
        })
        .collect()
}

#[test]
fn full_tmpfs_drops_only_file_lines_and_logging_resumes_with_a_count() {
    if !mounts_allowed() {
        return;
    }
    let (n1, n2) = (200_000u64, 5_000u64);
    let n = n1 + n2;
    let (_, baseline_ns, _) = chatty_run(false, n1, n2);
    let (wd, full_ns, st) = chatty_run(true, n1, n2);
    assert_eq!(st.code(), Some(1), "the child ended by itself");
    let (baseline, full) = (
        Duration::from_nanos(baseline_ns),
        Duration::from_nanos(full_ns),
    );
    eprintln!("{n1} lines: {full:?} onto a full disk, {baseline:?} without log files");
    assert!(
        full < baseline * 3 + Duration::from_secs(1),
        "the child was slowed down by the full disk: {full:?} vs {baseline:?}"
    );
    assert_eq!(
        wd.status_json().unwrap()["counters"]["log_lines"],
        n,
        "the ring took every line"
    );
    let text = fs::read_to_string(wd.file("logs-copy/ffmpeg.log")).unwrap();
    check_dropped_then_resumed(&text, n1, n);
}

/// Runs the chatty child: phase 1 at full speed onto a full disk; then it waits for the test's
/// go, frees the space, and prints phase 2. The child runs inside the namespace, so it can
/// remove the filler. Without `full`, no log files at all (the baseline). Returns how long
/// phase 1 took (ns).
fn chatty_run(full: bool, n1: u64, n2: u64) -> (Wd, u64, std::process::ExitStatus) {
    let n = n1 + n2;
    let wd = Wd::new();
    fs::create_dir_all(wd.path.join("logs")).unwrap();
    let go = wd.file("go");
    let took = wd.file("phase1.ns");
    let child = wd.script(
        "chatty.sh",
        &format!(
            "t0=$(date +%s%N)\nseq 1 {n1}\nt1=$(date +%s%N)\necho $((t1 - t0)) > {took}\n\
             while [ ! -e {go} ]; do sleep 0.01; done\n\
             rm -f \"$WD/logs/filler\"\nseq {} {n}",
            n1 + 1,
            took = took.display(),
            go = go.display()
        ),
    );
    let copy = wd.file("logs-copy");
    fs::create_dir_all(&copy).unwrap();
    let mut w = wd
        .wrapperd()
        .child(&child)
        .env("STDOUT_BUFFER_LEN", n.to_string())
        .env("STOP_TIMEOUT", "2");
    if full {
        w = in_mount_namespace(
            w,
            "mount -t tmpfs -o size=256k tmpfs \"$WD/logs\"\n\
             dd if=/dev/zero of=\"$WD/logs/filler\" bs=4k 2>/dev/null || true",
            &format!("cp -a \"$WD/logs/.\" {}", copy.display()),
        );
    } else {
        w = w.env("NO_FILE_LOG", "1");
    }
    let mut d = w.spawn();
    let pid = wrapperd_pid(&wd);
    assert!(
        wait_until(T, || took.exists()),
        "phase 1 did not end: {}",
        wd.log("wrapperd.log")
    );
    let phase1: u64 = wait_read(&took).trim().parse().unwrap();
    if full {
        // The ring and the API have every line of phase 1 while the disk is full.
        assert!(wait_until(Duration::from_secs(20), || {
            d.status().counters.log_lines == n1
        }));
        let lines = d.get("/last_stdout?count=0").body;
        let nums: Vec<u64> = lines
            .lines()
            .map(|l| l.split_once("> ").unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(nums, (1..=n1).collect::<Vec<_>>(), "the API has every line");
        wait_writer_quiet(pid, "ffmpeg.log");
    }
    fs::write(&go, "").unwrap();
    let st = d.wait(T);
    (wd, phase1, st)
}

/// `ffmpeg.log` of the full-disk run: lines `1..=n` each either in it or counted as dropped, in
/// order, and everything after the space came back (`n1 + 1..=n`) after the last notice.
fn check_dropped_then_resumed(text: &str, n1: u64, n: u64) {
    let lines = parse_log(text);
    let dropped: u64 = lines
        .iter()
        .map(|l| match l {
            LogLine::Dropped(k) => *k,
            _ => 0,
        })
        .sum();
    let nums: Vec<u64> = lines
        .iter()
        .filter_map(|l| match l {
            LogLine::Num(k) => Some(*k),
            _ => None,
        })
        .collect();
    let others: Vec<&String> = lines
        .iter()
        .filter_map(|l| match l {
            LogLine::Other(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(others.is_empty(), "unexpected lines: {others:?}");
    assert!(dropped > 0, "a notice counts the dropped lines");
    assert_eq!(
        nums.len() as u64 + dropped,
        n,
        "every line is either in the file or counted as dropped"
    );
    assert!(
        nums.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate"
    );
    // Everything after the space came back is in the file, after the notice.
    let notice_at = lines
        .iter()
        .rposition(|l| matches!(l, LogLine::Dropped(_)))
        .unwrap();
    let after: Vec<u64> = lines[notice_at..]
        .iter()
        .filter_map(|l| match l {
            LogLine::Num(k) => Some(*k),
            _ => None,
        })
        .collect();
    assert_eq!(after, (n1 + 1..=n).collect::<Vec<_>>());
    eprintln!(
        "full tmpfs: {} lines in the file, {dropped} counted as dropped",
        nums.len()
    );
}

fn wait_read(p: &Path) -> String {
    let mut s = String::new();
    assert!(wait_until(Duration::from_secs(5), || {
        s = fs::read_to_string(p).unwrap_or_default();
        s.ends_with('\n')
    }));
    s
}

#[test]
fn deleted_logs_directory_is_recreated_by_the_next_write_and_by_sighup() {
    let wd = Wd::new();
    let child = wd.script(
        "ticker.sh",
        "trap 'exit 255' INT\ni=0\nwhile :; do i=$((i+1)); echo $i; sleep 0.01; done",
    );
    let mut d = wd.wrapperd().child(&child).spawn();
    let logs = wd.path.join("logs");
    let newest = |name: &str| -> Option<u64> {
        fs::read_to_string(logs.join(name))
            .ok()?
            .lines()
            .rev()
            .find_map(|l| l.split_once("> ")?.1.parse().ok())
    };
    assert!(wait_until(Duration::from_secs(10), || newest("ffmpeg.log").is_some()));
    for hup in [false, true] {
        let before = d.status().counters.log_lines;
        fs::remove_dir_all(&logs).unwrap();
        if hup {
            d.signal(Signal::SIGHUP);
        }
        // ffmpeg.log by its next lines; the idle wrapperd.log only by SIGHUP (or its next line).
        assert!(
            wait_until(Duration::from_secs(5), || {
                newest("ffmpeg.log").is_some_and(|k| k > before + 5)
                    && (!hup || logs.join("wrapperd.log").exists())
            }),
            "logs/ not recreated (SIGHUP: {hup}): {:?}",
            fs::read_dir(&logs).map(|d| d.count())
        );
        assert!(d.is_running());
    }
    fs::remove_file(logs.join("wrapperd.log")).unwrap();
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait(T).code(), Some(0), "{}", wd.log("wrapperd.log"));
    // A deleted (idle) wrapperd.log is back with its next lines, the exit's (no SIGHUP).
    let own = wd.log("wrapperd.log");
    assert!(own.contains("exit"), "{own}");
    // At exit everything received is in the (recreated) file: its last line is the ring's.
    let lines = fs::read_to_string(logs.join("ffmpeg.log")).unwrap();
    let nums: Vec<u64> = lines
        .lines()
        .filter_map(|l| l.split_once("> ")?.1.parse().ok())
        .collect();
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
    assert_eq!(
        nums.last().copied(),
        wd.status_json().unwrap()["counters"]["log_lines"].as_u64()
    );
}

#[test]
fn read_only_work_directory_exits_2_with_one_line() {
    if !mounts_allowed() {
        return;
    }
    // (what is read-only, setup in the namespace)
    let cases: &[(&str, &str)] = &[
        (
            "an empty read-only tmpfs",
            "mount -t tmpfs -o ro tmpfs \"$WD\"",
        ),
        (
            "an existing layout bind-mounted read-only",
            "mkdir -p \"$WD/status\" \"$WD/logs\" \"$WD/pipes\"\n\
             mount --bind \"$WD\" \"$WD\"\nmount -o remount,bind,ro \"$WD\"",
        ),
        (
            "only logs/ read-only",
            "mkdir -p \"$WD/logs\"\nmount -t tmpfs -o ro tmpfs \"$WD/logs\"",
        ),
        (
            "only status/ read-only",
            "mkdir -p \"$WD/status\"\nmount -t tmpfs -o ro tmpfs \"$WD/status\"",
        ),
    ];
    for (what, setup) in cases {
        let wd = Wd::new();
        fs::create_dir_all(&wd.path).unwrap();
        let marker = wd.file("started");
        let child = wd.script("marker.sh", &format!("touch {}", marker.display()));
        let o = in_mount_namespace(wd.wrapperd().child(&child), setup, "").output(T);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(
            err.contains(&*wd.path.to_string_lossy()),
            "{what}: names the path: {err}"
        );
        assert!(!marker.exists(), "{what}: ffmpeg was started");
        eprintln!("{what}: {}", err.trim_end());
    }
}

#[test]
fn a_reader_looping_on_status_json_never_sees_a_partial_file() {
    let wd = Wd::new();
    let path = wd.path.join("status/status.json");
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (path, stop) = (path.clone(), stop.clone());
        move || {
            let (mut reads, mut bad, mut versions) = (0u64, Vec::new(), 0u64);
            let mut last = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(bytes) = fs::read(&path) else {
                    continue;
                };
                reads += 1;
                if serde_json::from_slice::<shared::api::Status>(&bytes).is_err() {
                    bad.push(String::from_utf8_lossy(&bytes).into_owned());
                }
                if bytes != last {
                    versions += 1;
                    last = bytes;
                }
            }
            (reads, bad, versions)
        }
    });
    // Short runs one after the other: every state change of a life (starting, running,
    // warming_up → ok, stopping, exited) rewrites the file.
    for _ in 0..6 {
        let mut d = wd
            .wrapperd()
            .fake()
            .envs(&[
                ("MANAGER_START_DELAY", "0"),
                ("ENCODING_CHECK_START_DELAY", "0.2"),
                ("ENCODING_RATE_WINDOW", "0.2"),
            ])
            .args(["block-interval=0.02", "finish-secs=0.1", "run"])
            .spawn();
        // status/ still holds the previous run's files: wait for this wrapperd's own.
        assert!(wait_until(Duration::from_secs(20), || {
            wd.status_json().is_some_and(|s| {
                s["pid"] == d.pid() && s["counters"]["progress_blocks"].as_u64() >= Some(15)
            })
        }));
        d.signal(Signal::SIGTERM);
        let st = d.wait(T);
        assert_eq!(st.code(), Some(0), "{st:?} {}", wd.log("wrapperd.log"));
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, bad, versions) = reader.join().unwrap();
    eprintln!(
        "status.json: {reads} reads, {versions} versions seen, {} bad",
        bad.len()
    );
    assert!(bad.is_empty(), "partial or invalid: {:?}", &bad[..1]);
    assert!(reads > 2000, "only {reads} reads");
    assert!(versions >= 20, "only {versions} versions seen");
}
