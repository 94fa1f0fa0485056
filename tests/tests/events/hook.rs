//! `EVENT_HOOK`: its environment per event, the timeout that kills its process group, a burst
//! that overflows its queue, and the descriptors it does not inherit.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use tests::events::{flapping_ffmpeg, FLAPPING_VARS};
use tests::{process_gone, wait_until, Wd};

/// The hook's records in `dir`, in the order they were written (`N.env` files).
fn records(dir: &Path) -> Vec<HashMap<String, String>> {
    let mut n = 0;
    let mut out = Vec::new();
    while let Ok(text) = fs::read_to_string(dir.join(format!("{n}.env"))) {
        let mut vars = HashMap::new();
        // `env -0`: NUL-separated, so FFW_JSON and FFW_REASON come back whole.
        for entry in text.split('\0').filter(|e| !e.is_empty()) {
            if let Some((k, v)) = entry.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        out.push(vars);
        n += 1;
    }
    out
}

#[test]
fn the_hook_gets_every_variable_of_every_event_and_no_descriptor() {
    let wd = Wd::new();
    let dir = wd.file("hook");
    fs::create_dir(&dir).unwrap();
    let hook = format!(
        "cd '{}' && n=$(ls | grep -c env); env -0 > $n.env; ls -l /proc/self/fd/ > $n.fd",
        dir.display()
    );
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[
            ("EVENT_HOOK", hook.as_str()),
            ("MANAGER_START_DELAY", "0"),
            ("ENCODING_CHECK_START_DELAY", "0.5"),
            ("HTTP_PORT", "0"),
            ("NOTIFY_SOCKET", "/nonexistent/notify.sock"),
            ("WATCHDOG_USEC", "60000000"),
            ("WATCHDOG_PID", "1"),
        ])
        .args(["block-interval=0.1", "run", "secs=1.5", "exit", "code=3"])
        .spawn();
    assert_eq!(super::exit_code(&mut d, Duration::from_secs(30)), Some(1));
    let recs = records(&dir);
    let events: Vec<&str> = recs.iter().map(|r| r["FFW_EVENT"].as_str()).collect();
    assert_eq!(events, ["started", "health", "exited"], "{recs:#?}");
    for (i, r) in recs.iter().enumerate() {
        let json: serde_json::Value = serde_json::from_str(&r["FFW_JSON"]).unwrap();
        assert_eq!(json["event"].as_str(), Some(r["FFW_EVENT"].as_str()));
        assert_eq!(r["FFW_NAME"], "wd");
        assert_eq!(r["FFW_WORKDIR"], wd.path.display().to_string());
        assert_eq!(r["FFW_RUN"], json["run"].to_string());
        assert_eq!(Some(r["FFW_HEALTH"].as_str()), json["health"].as_str());
        assert_eq!(r["FFW_REASON"], json["reason"].as_str().unwrap_or(""));
        for gone in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            assert!(!r.contains_key(gone), "{gone} in the hook's environment");
        }
        let has_code = r.contains_key("FFW_EXIT_CODE");
        assert_eq!(
            has_code,
            r["FFW_EVENT"] == "exited",
            "FFW_EXIT_CODE in {r:?}"
        );
        // Only stdin, stdout, stderr and ls's own directory.
        let fds = fs::read_to_string(dir.join(format!("{i}.fd"))).unwrap();
        let open: Vec<&str> = fds.lines().filter(|l| l.contains(" -> ")).collect();
        let extra: Vec<&&str> = open
            .iter()
            .filter(|l| {
                let fd = l.split(" -> ").next().unwrap().rsplit(' ').next().unwrap();
                !["0", "1", "2"].contains(&fd) && !l.ends_with("/fd")
            })
            .collect();
        assert!(extra.is_empty(), "inherited descriptors: {extra:#?}");
        assert!(open.len() <= 4, "{fds}");
    }
    let exited = &recs[2];
    assert_eq!(exited["FFW_EXIT_CODE"], "3");
    assert_eq!(recs[1]["FFW_HEALTH"], "ok");
}

#[test]
fn a_hook_past_its_timeout_is_killed_with_its_group_and_logged() {
    let wd = Wd::new();
    let pids = wd.file("pids");
    let hook = format!("sleep 60 & echo $! >> '{}'; wait", pids.display());
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[("EVENT_HOOK", hook.as_str()), ("EVENT_HOOK_TIMEOUT", "0.5")])
        .args(["run", "secs=0.3", "exit", "code=0"])
        .spawn();
    assert_eq!(super::exit_code(&mut d, Duration::from_secs(30)), Some(1));
    let log = wd.log("wrapperd.log");
    let killed = log
        .lines()
        .filter(|l| {
            l.contains("ran past EVENT_HOOK_TIMEOUT (0.5 s): killed it and its process group")
        })
        .count();
    assert_eq!(killed, 2, "started and exited: {log}");
    for pid in fs::read_to_string(&pids).unwrap().lines() {
        let pid: i32 = pid.trim().parse().unwrap();
        assert!(
            wait_until(Duration::from_secs(5), || process_gone(pid)),
            "the hook's background sleep {pid} survived"
        );
    }
}

/// Several hundred events come faster than a slow hook: the queue keeps the newest 100, the
/// hook runs the rest in order, and every event either ran or was counted as dropped.
#[test]
fn a_burst_drops_the_oldest_and_counts_them() {
    let wd = Wd::new();
    let ran = wd.file("ran");
    let hook = format!(
        "echo \"$FFW_JSON\" | sed 's/^{{\"id\":\\([0-9]*\\),.*/\\1/' >> '{}'; sleep 0.03",
        ran.display()
    );
    let script = flapping_ffmpeg(&wd, 600, 0.002, 0.5);
    let mut d = wd
        .wrapperd()
        .child(&script)
        .envs(FLAPPING_VARS)
        .env("EVENT_HOOK", &hook)
        .spawn();
    assert_eq!(super::exit_code(&mut d, Duration::from_secs(60)), Some(1));
    let ids: Vec<u64> = fs::read_to_string(&ran)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap_or_else(|_| panic!("{l:?}")))
        .collect();
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "in order: {ids:?}");
    let log = wd.log("wrapperd.log");
    let dropped: u64 = log
        .lines()
        .filter_map(|l| l.split("dropped the ").nth(1))
        .filter_map(|r| r.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(dropped > 0, "nothing dropped: {log}");
    let last = *ids.last().unwrap();
    assert!(last > 200, "a burst: {last} events");
    assert_eq!(
        ids.len() as u64 + dropped,
        last,
        "every event ran or was counted"
    );
    assert!(
        ids.windows(2).any(|w| w[1] > w[0] + 1),
        "the oldest were dropped"
    );
}
