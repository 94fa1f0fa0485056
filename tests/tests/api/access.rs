//! Health as the API shows it (`/healthz` turning 503), who may ask what (the token on TCP,
//! none on the socket), and the API while ffmpeg stops and at exit.

use super::*;

#[test]
fn healthz_turns_503_when_the_encode_stalls_or_fails() {
    let fast = [
        ("MANAGER_START_DELAY", "0"),
        ("ENCODING_CHECK_START_DELAY", "0.5"),
        ("ENCODING_MAX_STDOUT_STUCK_TIME", "8"),
        ("STOP_TIMEOUT", "1"),
    ];
    // ffmpeg 5 with a hung input: nothing at all; ffmpeg 7: blocks that do not advance.
    let (silent_wd, frozen_wd, failing_wd) = (Wd::new(), Wd::new(), Wd::new());
    let mut silent = silent_wd
        .wrapperd()
        .fake()
        .envs(&fast)
        .args(["silence", "secs=60"])
        .spawn();
    let mut frozen = frozen_wd
        .wrapperd()
        .fake()
        .envs(&fast)
        .args(["block-interval=0.2", "run", "secs=1", "freeze", "secs=60"])
        .spawn();
    // 25 fps for 5 s (base fps 25: min fps 15), then 5 fps at speed 0.2.
    let failing = failing_wd
        .wrapperd()
        .fake()
        .envs(&fast)
        .envs(&[
            ("ENCODING_RATE_WINDOW", "1"),
            ("ENCODING_MAX_ERROR_TIME", "60"),
        ])
        .args([
            "block-interval=0.2",
            "run",
            "secs=5",
            "run",
            "fps=5",
            "secs=60",
        ])
        .spawn();
    for d in [&silent, &frozen, &failing] {
        d.wait_api();
    }

    check_no_block_yet(&silent);

    // The failing encode is healthy first, with the checks active.
    wait_status(&failing, Duration::from_secs(10), "checks active", |s| {
        s.check.active && s.health == Health::Ok
    });
    assert_eq!(text(&failing, "/healthz"), "ok");

    // 503 stalled (after 2 s), while ffmpeg still runs: before the manager's stop at 8 s.
    for (d, want) in [
        (&silent, "stalled: no output for "),
        (&frozen, "stalled: no progress for "),
        (&failing, "failing: fps "),
    ] {
        assert_healthz_503(d, want);
    }
    let st = failing.status();
    assert!(st.check.active && st.check.failing_for_s > 0.0, "{st:?}");
    // 25 fps measured between block arrivals 0.2–0.4 s apart: scheduling moves it a little.
    let base = st.check.base_fps.unwrap();
    assert!((20.0..=30.0).contains(&base), "{st:?}");

    // The stalls are stopped by the manager (exit 1); /healthz said so until the end.
    for (d, wd) in [(&mut silent, &silent_wd), (&mut frozen, &frozen_wd)] {
        assert_eq!(d.wait(T).code(), Some(1));
        let st = assert_exit_status(wd, 1, FfmpegStatus::Code(255));
        assert!(st.exit.unwrap().reason.contains("stalled"));
    }
}

/// Before any block: metrics without a value have no sample (but keep their HELP/TYPE), and the
/// progress ring is empty.
fn check_no_block_yet(silent: &Daemon) {
    let st = wait_status(silent, Duration::from_secs(10), "running", |s| {
        s.state == State::Running
    });
    assert!(st.progress.is_none() && st.rates.fps.is_none(), "{st:?}");
    let body = get(silent, "/metrics").body;
    let m = scrape(&body);
    for name in ["ffwrapper_fps", "ffwrapper_speed", "ffwrapper_frames"] {
        assert!(m.docs.contains_key(name), "{name}");
        assert!(sample(&m, name).is_none(), "{name}:\n{body}");
    }
    assert_eq!(sample(&m, "ffwrapper_up"), Some(1.0));
    assert_eq!(text(silent, "/last_progress"), "");
    assert_eq!(json(silent, "/last_progress?json"), "[]");
}

/// `/healthz` turns 503 with an answer that starts with `want` while ffmpeg still runs, and
/// `/status` and `/metrics` say the same.
fn assert_healthz_503(d: &Daemon, want: &str) {
    let mut seen = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            let a = get(d, "/healthz");
            // (The frozen encode is failing first: its current fps falls.)
            if a.status == 503 && a.body.starts_with(want) {
                seen = Some((a.body, d.status()));
            }
            seen.is_some()
        }),
        "{want}"
    );
    let (body, st) = seen.unwrap();
    assert!(body.starts_with(want), "{want}: {body}");
    assert_eq!(st.state, State::Running, "{body}");
    assert_eq!(
        format!("{}: {}", st.health.as_str(), st.reason.unwrap()).get(..want.len()),
        Some(want)
    );
    let m = scrape(&get(d, "/metrics").body);
    assert_eq!(health_metric(&m), want.split(':').next().unwrap());
}

#[test]
fn tcp_needs_the_token_except_healthz_and_the_socket_needs_none() {
    let wd = Wd::new();
    let token = "s3cret-Token";
    let mut args = light_input();
    args.extend(["-c:v", "mpeg4", "-f", "null", "-"].map(String::from));
    let d = wd
        .wrapperd()
        .envs(&[("HTTP_PORT", "0"), ("API_TOKEN", token)])
        .args(&args)
        .spawn();
    d.wait_api();
    // The actual address, recorded before the first request is answered; HTTP_HOST defaults to
    // 127.0.0.1.
    let addr: std::net::SocketAddr = wd
        .status_file("HTTP_ADDR")
        .expect("status/HTTP_ADDR written before the API answered")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(addr, wd.http_addr());
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    // The variables' files are in place once ffmpeg has started (the API may answer earlier).
    d.ffmpeg_pid();
    assert_eq!(wd.status_file("HTTP_HOST").as_deref(), Some("127.0.0.1"));
    assert!(!wd.status_file("API_TOKEN").unwrap().contains(token));

    let tcp = |t: Option<&str>| {
        Client::new(
            Target::Tcp(format!("http://{addr}")),
            t.map(String::from),
            Duration::from_secs(5),
        )
        .unwrap()
    };
    let paths = [
        "/status",
        "/last_stdout?count=0",
        "/last_progress",
        "/metrics",
        "/cmd?json",
        "/get_pid",
        "/series",
        "/nope",
    ];
    for wrong in [
        None,
        Some("wrong"),
        Some("s3cret-Tokem"), // same length
        Some("S3CRET-TOKEN"),
        Some("s3cret-Toke"),
        Some("s3cret-Token2"),
    ] {
        let c = tcp(wrong);
        for p in paths {
            let a = block_on(c.get(p)).unwrap();
            assert_eq!(a.status, 401, "{wrong:?} {p}");
            assert!(!a.body.contains(token));
        }
        let a = block_on(c.request(reqwest::Method::POST, "/status")).unwrap();
        assert_eq!(a.status, 401, "before the method");
        let a = block_on(c.get("/healthz")).unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "ok"), "/healthz is open");
    }
    let good = tcp(Some(token));
    for p in paths.iter().filter(|p| **p != "/nope") {
        assert_eq!(block_on(good.get(p)).unwrap().status, 200, "{p}");
    }
    assert_eq!(block_on(good.get("/nope")).unwrap().status, 404);
    let st = block_on(good.status()).unwrap();
    assert_eq!(st.pid, d.pid() as u32);
    assert_eq!(st.cmd, args);
    assert_eq!(
        block_on(good.get("/get_pid")).unwrap().body,
        d.pid().to_string()
    );

    // The raw answer names the scheme; the socket needs no token.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut a = String::new();
    let _ = s.read_to_string(&mut a);
    assert!(a.starts_with("HTTP/1.1 401"), "{a}");
    assert_eq!(header(&a, "www-authenticate"), Some("Bearer"));
    assert_eq!(d.status().pid, d.pid() as u32);
    assert_eq!(text(&d, "/get_pid"), d.pid().to_string());
}

#[test]
fn the_api_answers_while_ffmpeg_stops_and_the_socket_goes_at_exit() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .env("STOP_TIMEOUT", "4")
        .args(["ignore-sigint", "ignore-q", "block-interval=0.2", "run"])
        .spawn();
    d.wait_api();
    wait_status(&d, Duration::from_secs(10), "blocks", |s| {
        s.counters.progress_blocks >= 2
    });
    let sock = wd.path.join("api.sock");
    let c = d.client();
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    wait_status(&d, Duration::from_secs(2), "stopping", |s| {
        s.state == State::Stopping
    });
    // For the first half of the 4 s the stop may take, every request is answered (the other
    // half is room for a slow round of requests on a loaded machine).
    let mut answered = 0;
    while t0.elapsed() < Duration::from_secs(2) {
        let st = block_on(c.status()).expect("status while stopping");
        assert_eq!((st.state, st.health), (State::Stopping, Health::Stopping));
        assert!(st.reason.is_some());
        let h = get(&d, "/healthz");
        assert_eq!(h.status, 503);
        assert!(h.body.starts_with("stopping"), "{}", h.body);
        let m = scrape(&get(&d, "/metrics").body);
        assert_eq!(sample(&m, "ffwrapper_up"), Some(0.0));
        assert_eq!(health_metric(&m), "stopping");
        assert!(!text(&d, "/last_progress?count=3").is_empty());
        answered += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(answered >= 5, "{answered}");
    assert!(sock.exists());
    // Killed after STOP_TIMEOUT: exit 1, and the socket is gone.
    assert_eq!(d.wait(T).code(), Some(1));
    assert!(t0.elapsed() >= Duration::from_secs(4));
    assert!(!sock.exists(), "api.sock removed at exit");
    assert_exit_status(&wd, 1, FfmpegStatus::Signal(9));
}
