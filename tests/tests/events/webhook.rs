//! `WEBHOOK_URL`, against a real HTTP server in the test: the default set of events and the
//! recovery, the body and the token, retries on `503`, none on `400`, one log line per event a
//! dead server never got.

use std::time::Duration;

use tests::events::HookServer;
use tests::Wd;

/// The wrapperd settings of these tests: checks active soon, never failing (min fps below 0),
/// no stop for stalling.
const VARS: &[(&str, &str)] = &[
    ("MANAGER_START_DELAY", "0"),
    ("ENCODING_CHECK_START_DELAY", "0.3"),
    ("ENCODING_DELTA_FPS", "100"),
    ("ENCODING_MAX_STDOUT_STUCK_TIME", "60"),
];

#[test]
fn the_default_events_and_the_recovery_are_posted_with_summary_and_token() {
    let server = HookServer::start(&[]);
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(VARS)
        .envs(&[("WEBHOOK_URL", &server.url()), ("WEBHOOK_TOKEN", "t0k")])
        .args([
            "block-interval=0.1",
            "run",
            "secs=1",
            "silence",
            "secs=2.6",
            "run",
            "secs=1",
            "exit",
            "code=1",
        ])
        .spawn();
    assert_eq!(super::exit_code(&mut d, Duration::from_secs(30)), Some(1));
    let got = server.got();
    let words: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let s = |k: &str| r.body[k].as_str().unwrap_or("").to_string();
            (s("event"), s("health"))
        })
        .collect();
    let w = |a: &str, b: &str| (a.to_string(), b.to_string());
    // Not sent: started, warming_up → ok (no alert before it).
    assert_eq!(
        words,
        [
            w("health", "stalled"),
            w("health", "ok"),
            w("exited", "exited")
        ],
        "{got:#?}"
    );
    for r in &got {
        let text = r.body["text"].as_str().unwrap_or("");
        assert!(text.starts_with("wd: ") && !text.contains('\n'), "{text:?}");
        assert_eq!(r.body["content"], r.body["text"]);
        assert_eq!(r.body["name"], "wd");
        assert!(r.body["id"].as_u64().is_some());
        let head = r.head.to_ascii_lowercase();
        assert!(head.starts_with("post /hook "), "{head}");
        assert!(head.contains("authorization: bearer t0k\r\n"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
    }
    assert!(got[2].body["text"].as_str().unwrap().contains("run"));
}

#[test]
fn a_503_is_retried_until_delivered_once() {
    let server = HookServer::start(&[503, 503]);
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[
            ("WEBHOOK_URL", server.url().as_str()),
            ("WEBHOOK_EVENTS", "exited"),
        ])
        .args(["run", "secs=0.3", "exit", "code=1"])
        .spawn();
    assert_eq!(super::exit_code(&mut d, Duration::from_secs(30)), Some(1));
    let got = server.got();
    let answers: Vec<u16> = got.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [503, 503, 200], "{got:#?}");
    assert!(got.iter().all(|r| r.body["id"] == got[0].body["id"]));
    // Backoff: 1 s, then 2 s.
    let gaps: Vec<f64> = got
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    assert!(gaps[0] >= 0.9 && gaps[1] >= 1.9, "{gaps:?}");
    let log = wd.log("wrapperd.log");
    assert!(!log.contains("not delivered"), "{log}");
}

#[test]
fn a_400_is_not_retried_and_logged_once() {
    let server = HookServer::start(&[400]);
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[
            ("WEBHOOK_URL", server.url().as_str()),
            ("WEBHOOK_EVENTS", "exited"),
        ])
        .args(["run", "secs=0.3", "exit", "code=1"])
        .spawn();
    assert_eq!(super::exit_code(&mut d, Duration::from_secs(30)), Some(1));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.got().len(), 1);
    let log = wd.log("wrapperd.log");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("webhook")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("refused with HTTP 400; not retried"),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains("/hook"), "the URL's path is not logged");
}

#[test]
fn a_dead_server_leaves_one_line_per_event() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[
            ("WEBHOOK_URL", format!("http://127.0.0.1:{port}/x").as_str()),
            ("WEBHOOK_EVENTS", "started,exited"),
            ("WEBHOOK_RETRY_FOR", "2"),
        ])
        .args(["run", "secs=0.5", "exit", "code=1"])
        .spawn();
    assert_eq!(super::exit_code(&mut d, Duration::from_secs(30)), Some(1));
    let log = wd.log("wrapperd.log");
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("not delivered"))
        .collect();
    assert_eq!(failed.len(), 2, "{log}");
    assert!(
        failed[0].contains("(started)") && failed[1].contains("(exited)"),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .all(|l| l.contains("tries") && l.to_lowercase().contains("refused")),
        "{failed:?}"
    );
}
