//! Control (SPEC §10): `POST /stop` and `POST /restart` against the real wrapperd. Who may
//! (the socket; TCP only with `API_CONTROL_TOKEN`; nobody with `API_READ_ONLY`), what the
//! wrong methods get, what a stop and a restart do to a real ffmpeg writing an mp4 (complete
//! files, a new run with a new pid and number, `/runs` and the run metrics), and the `409` of a
//! request during a stop. Every control request is in wrapperd.log with its origin.
//!
//! The access tests use the scripted fake (nothing is stopped); the stop and restart tests use
//! real ffmpeg, since what matters there is the file it leaves.

use super::*;

/// The fake encoding at 25 fps until stopped; a graceful end takes `finish` seconds.
fn fake_encode(finish: &str) -> Vec<String> {
    vec![
        "run".into(),
        "fps=25".into(),
        format!("finish-secs={finish}"),
    ]
}

/// A real ffmpeg writing `out` (mpeg4 in mp4) from a real-time test source.
fn mp4_encode(out: &Path) -> Vec<String> {
    let mut args = light_input();
    args.extend(["-c:v", "mpeg4", "-y"].map(String::from));
    args.push(out.display().to_string());
    args
}

/// `method path` on `c`, whatever the status.
fn send(c: &Client, method: reqwest::Method, path: &str) -> Answer {
    block_on(c.request(method.clone(), path)).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// `POST path` on the socket.
fn post(d: &Daemon, path: &str) -> Answer {
    send(&d.client(), reqwest::Method::POST, path)
}

/// A client for the TCP listener of `wd`, bearing `token`.
fn tcp_client(wd: &Wd, token: Option<&str>) -> Client {
    Client::new(
        Target::Tcp(format!("http://{}", wd.http_addr())),
        token.map(String::from),
        Duration::from_secs(5),
    )
    .unwrap()
}

/// A `202` with `{"accepted": "<what>"}`.
fn assert_accepted(a: &Answer, what: &str) {
    assert_eq!(a.status, 202, "{what}: {}", a.body);
    assert_eq!(a.content_type, JSON);
    assert_eq!(a.body, format!("{{\"accepted\": \"{what}\"}}"));
}

/// A refusal with this status and a one-line text.
fn assert_refused(a: &Answer, status: u16, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.body);
    assert_eq!(a.content_type, TEXT, "{what}");
    assert!(
        !a.body.is_empty() && !a.body.contains('\n'),
        "{what}: {:?}",
        a.body
    );
}

/// Waits until wrapperd.log has a line containing every one of `parts`.
fn wait_log(wd: &Wd, parts: &[&str]) {
    let ok = wait_until(Duration::from_secs(10), || {
        wd.log("wrapperd.log")
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
    });
    assert!(ok, "no line with {parts:?} in:\n{}", wd.log("wrapperd.log"));
}

/// The encode is untouched: same ffmpeg, still running, same run.
fn assert_untouched(d: &Daemon, before: &Status) {
    let st = d.status();
    assert_eq!(st.state, State::Running, "{st:#?}");
    assert_eq!(st.ffmpeg_pid, before.ffmpeg_pid);
    assert_eq!(st.run.number, before.run.number);
}

#[test]
fn tcp_control_is_403_without_a_control_token_401_with_a_wrong_one_202_with_it() {
    // API_CONTROL_TOKEN unset: control over TCP is refused, whatever is borne; reading is open.
    let wd = Wd::new();
    let d = wd
        .wrapperd()
        .fake()
        .env("HTTP_PORT", "0")
        .args(fake_encode("0"))
        .spawn();
    d.ffmpeg_pid();
    let before = d.status();
    for token in [None, Some("anything")] {
        let c = tcp_client(&wd, token);
        for path in ["/stop", "/restart"] {
            let a = send(&c, reqwest::Method::POST, path);
            assert_refused(&a, 403, path);
            assert!(a.body.contains("API_CONTROL_TOKEN"), "{}", a.body);
        }
        assert_eq!(block_on(c.status()).unwrap().pid, d.pid() as u32);
    }
    wait_log(&wd, &["stop requested by 127.0.0.1:", "refused"]);
    assert_untouched(&d, &before);

    // Both tokens: reading needs either, control only the control token.
    let wd = Wd::new();
    let d = wd
        .wrapperd()
        .fake()
        .envs(&[
            ("HTTP_PORT", "0"),
            ("API_TOKEN", "rd-token"),
            ("API_CONTROL_TOKEN", "ctl-token"),
        ])
        .args(fake_encode("0"))
        .spawn();
    d.ffmpeg_pid();
    let before = d.status();
    for (token, want) in [
        (None, 401),
        (Some("wrong"), 401),
        (Some("ctl-tokem"), 401),
        (Some("rd-token"), 403),
    ] {
        let c = tcp_client(&wd, token);
        for path in ["/stop", "/restart"] {
            assert_refused(&send(&c, reqwest::Method::POST, path), want, path);
        }
        let e = block_on(c.stop()).unwrap_err();
        assert_eq!(e.status(), Some(want), "{e}");
    }
    assert_eq!(
        block_on(tcp_client(&wd, Some("rd-token")).get("/status"))
            .unwrap()
            .status,
        200
    );
    assert_untouched(&d, &before);
    let ctl = tcp_client(&wd, Some("ctl-token"));
    assert_eq!(
        block_on(ctl.status()).unwrap().pid,
        d.pid() as u32,
        "it reads"
    );
    assert_accepted(&send(&ctl, reqwest::Method::POST, "/stop"), "stop");
    wait_log(&wd, &["stop requested by 127.0.0.1:", "accepted"]);
    wait_log(&wd, &["restart requested by 127.0.0.1:", "refused"]);
    assert!(
        !wd.log("wrapperd.log").contains("ctl-token"),
        "no token in the log"
    );
}

#[test]
fn read_only_gives_403_on_the_socket_and_on_tcp() {
    let wd = Wd::new();
    let d = wd
        .wrapperd()
        .fake()
        .envs(&[
            ("HTTP_PORT", "0"),
            ("API_CONTROL_TOKEN", "ctl-token"),
            ("API_READ_ONLY", "true"),
        ])
        .args(fake_encode("0"))
        .spawn();
    d.ffmpeg_pid();
    let before = d.status();
    for c in [d.client(), tcp_client(&wd, Some("ctl-token"))] {
        for path in ["/stop", "/restart"] {
            let a = send(&c, reqwest::Method::POST, path);
            assert_refused(&a, 403, path);
            assert!(a.body.contains("API_READ_ONLY"), "{}", a.body);
        }
        assert_eq!(block_on(c.status()).unwrap().pid, d.pid() as u32);
    }
    wait_log(
        &wd,
        &["stop requested by socket", "refused", "API_READ_ONLY"],
    );
    wait_log(&wd, &["restart requested by 127.0.0.1:", "refused"]);
    assert_untouched(&d, &before);
}

#[test]
fn other_methods_on_control_paths_are_405() {
    let wd = Wd::new();
    let d = wd
        .wrapperd()
        .fake()
        .envs(&[("HTTP_PORT", "0"), ("API_CONTROL_TOKEN", "ctl-token")])
        .args(fake_encode("0"))
        .spawn();
    d.ffmpeg_pid();
    let before = d.status();
    for c in [d.client(), tcp_client(&wd, Some("ctl-token"))] {
        for m in [
            reqwest::Method::GET,
            reqwest::Method::HEAD,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            for path in ["/stop", "/restart"] {
                assert_eq!(send(&c, m.clone(), path).status, 405, "{m} {path}");
            }
        }
        for path in ["/status", "/runs", "/metrics"] {
            assert_eq!(send(&c, reqwest::Method::POST, path).status, 405, "{path}");
        }
    }
    let a = String::from_utf8(raw(
        unix(&wd.path.join("api.sock")),
        b"GET /stop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ))
    .unwrap();
    assert!(a.starts_with("HTTP/1.1 405"), "{a}");
    assert_eq!(header(&a, "allow"), Some("POST"));
    assert_untouched(&d, &before);
    assert!(
        !wd.log("wrapperd.log").contains("requested by"),
        "a wrong method is no control request"
    );
}

#[test]
fn post_stop_on_the_socket_exits_0_with_a_complete_mp4_and_no_restart() {
    let wd = Wd::new();
    let out = wd.file("out.mp4");
    let mut d = wd
        .wrapperd()
        .env("RESTART", "always")
        .args(mp4_encode(&out))
        .spawn();
    d.wait_api();
    wait_status(&d, T, "a second of video", |s| {
        s.progress
            .as_ref()
            .and_then(|p| p.out_time_us)
            .is_some_and(|us| us >= 1_000_000)
    });
    assert_accepted(&post(&d, "/stop"), "stop");
    wait_log(&wd, &["stop requested by socket: accepted"]);
    let st = d.wait(Duration::from_secs(30));
    assert_eq!(st.code(), Some(0), "{}", wd.log("wrapperd.log"));
    let dur = probe_duration(&out).expect("ffprobe reads the mp4");
    assert!(dur >= 0.9, "duration {dur}");
    assert!(decodes_cleanly(&out));
    let st = assert_exit_status(&wd, 0, FfmpegStatus::Code(255));
    assert_eq!(st.run.number, 1, "no new run after POST /stop: {st:#?}");
    assert_eq!(st.run.restarts, 0);
    let runs = std::fs::read_to_string(wd.path.join("status/runs.jsonl")).unwrap_or_default();
    assert_eq!(runs.lines().count(), 1, "one run: {runs}");
}

#[test]
fn post_restart_on_the_socket_starts_a_new_run_and_runs_lists_the_old_one() {
    let wd = Wd::new();
    let out = wd.file("out.mp4");
    let first = wd.file("run1.mp4");
    let mut d = wd.wrapperd().args(mp4_encode(&out)).spawn();
    d.wait_api();
    let before = wait_status(&d, T, "a second of video", |s| {
        s.progress
            .as_ref()
            .and_then(|p| p.out_time_us)
            .is_some_and(|us| us >= 1_000_000)
    });
    assert_eq!(before.run.restarts, 0);
    // ffmpeg keeps writing the file it opened: the first run's mp4 is finished under this name.
    std::fs::rename(&out, &first).unwrap();
    assert_accepted(&post(&d, "/restart"), "restart");
    wait_log(&wd, &["restart requested by socket: accepted"]);
    let after = wait_status(&d, Duration::from_secs(20), "the next run", |s| {
        s.run.number == before.run.number + 1
            && s.state == State::Running
            && s.ffmpeg_pid.is_some()
            && s.ffmpeg_pid != before.ffmpeg_pid
    });
    assert_eq!(after.run.restarts, 1, "a restart asked counts: {after:#?}");
    assert_eq!(after.run.runs, 2);
    let dur = probe_duration(&first).expect("ffprobe reads the first run's mp4");
    assert!(dur >= 0.9, "duration {dur}");
    assert!(decodes_cleanly(&first));

    // /runs: the first run's record, also /status's last_run.
    let c = d.client();
    let runs = block_on(c.runs(0)).unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let r = &runs[0];
    assert_eq!(r.run, before.run.number);
    assert_eq!(r.ffmpeg_pid, before.ffmpeg_pid);
    assert!(!r.reason.is_empty());
    assert_eq!(d.status().last_run.as_ref(), Some(r));
    assert_eq!(block_on(c.runs(1)).unwrap(), runs);
    assert_eq!(json(&d, "/runs?count=20"), json(&d, "/runs"));
    assert_400(&d, "/runs?count=x");
    let m = scrape(&get(&d, "/metrics").body);
    assert_eq!(sample(&m, "ffwrapper_restarts_total"), Some(1.0));
    assert_eq!(sample(&m, "ffwrapper_runs_total"), Some(2.0));
    let ended = sample(&m, "ffwrapper_last_exit_timestamp_seconds").expect("last exit");
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    assert!(ended <= now && ended > now - 60.0, "{ended} vs {now}");

    // The second run ends cleanly too.
    wait_status(&d, T, "a second of the second run", |s| {
        // A block of this run: newer than its start (the previous run's may still be shown).
        s.progress.as_ref().is_some_and(|p| {
            p.out_time_us.is_some_and(|us| us >= 1_000_000)
                && s.start_time.as_ref().is_some_and(|t| p.at > *t)
        }) && s.run.number == after.run.number
    });
    assert_accepted(&post(&d, "/stop"), "stop");
    assert_eq!(d.wait(Duration::from_secs(30)).code(), Some(0));
    assert!(probe_duration(&out).is_some_and(|d| d >= 0.9));
    assert!(decodes_cleanly(&out));
}

#[test]
fn a_control_request_during_a_signalled_stop_is_409() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .env("STOP_TIMEOUT", "30")
        .args(fake_encode("4"))
        .spawn();
    d.ffmpeg_pid();
    d.signal(Signal::SIGTERM);
    wait_status(&d, Duration::from_secs(10), "stopping", |s| {
        s.state == State::Stopping
    });
    for path in ["/restart", "/stop"] {
        let a = post(&d, path);
        assert_refused(&a, 409, path);
        assert_eq!(a.body, "wrapperd is already stopping");
    }
    let e = block_on(d.client().restart()).unwrap_err();
    assert_eq!(e.status(), Some(409));
    wait_log(&wd, &["restart requested by socket: refused"]);
    assert_eq!(d.wait(Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn a_restart_during_a_post_stop_is_409() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[("STOP_TIMEOUT", "30"), ("RESTART", "always")])
        .args(fake_encode("4"))
        .spawn();
    d.ffmpeg_pid();
    assert_accepted(&post(&d, "/stop"), "stop");
    wait_status(&d, Duration::from_secs(10), "stopping", |s| {
        s.state == State::Stopping
    });
    assert_refused(&post(&d, "/restart"), 409, "/restart");
    assert_eq!(d.wait(Duration::from_secs(30)).code(), Some(0));
    let st = wd.status_json().unwrap();
    assert_eq!(st["run"]["number"], 1, "no new run: {st}");
}
