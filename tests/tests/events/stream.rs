//! `GET /events`: the order of a stalled encode's story, replay with `Last-Event-ID` and
//! `?since=`, the token over TCP, 64 streams per listener, and a client that never reads.

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::events::{flapping_ffmpeg, Frame, Sse, FLAPPING_VARS};
use tests::http::{tcp, unix};
use tests::{wait_until, Wd};

/// (event, health, old) of an event frame.
fn shape(f: &Frame) -> (String, String, String) {
    let d = f.data.as_ref().expect("data");
    let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
    (s("event"), s("health"), s("old"))
}

fn t3(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.into(), b.into(), c.into())
}

#[test]
fn a_silent_encode_is_told_in_order_and_replayed_exactly() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[
            ("MANAGER_START_DELAY", "0"),
            ("ENCODING_CHECK_START_DELAY", "2"),
            ("ENCODING_DELTA_FPS", "100"),
            ("ENCODING_MAX_STDOUT_STUCK_TIME", "4"),
            ("STOP_TIMEOUT", "5"),
        ])
        .args([
            "block-interval=0.1",
            "run",
            "fps=25",
            "secs=4",
            "silence",
            "secs=60",
        ])
        .spawn();
    d.wait_api();
    let sock = wd.path.join("api.sock");
    let mut main = Sse::open(unix(&sock), "/events", "").unwrap();
    assert_eq!(main.status, 200, "{}", main.head);
    assert!(main
        .head
        .to_ascii_lowercase()
        .contains("content-type: text/event-stream"));
    // A client that reads the snapshot and one event, then goes away.
    let mut early = Sse::open(unix(&sock), "/events", "").unwrap();
    assert_eq!(early.next_frame().unwrap().unwrap().kind(), "snapshot");
    let missed_after = early.next_frame().unwrap().unwrap().id.unwrap();
    drop(early);

    let mut got = Vec::new();
    while !got
        .last()
        .is_some_and(|f: &Frame| f.kind() == "health" && shape(f).1 == "stalled")
    {
        got.push(main.next_frame().unwrap().expect("a frame"));
    }
    // Reconnecting: exactly what was missed, then the rest live.
    let mut again = Sse::open(
        unix(&sock),
        "/events",
        &format!("Last-Event-ID: {missed_after}\r\n"),
    )
    .unwrap();
    let mut since0 = Sse::open(unix(&sock), "/events?since=0", "").unwrap();
    got.extend(main.until("exited"));
    let replayed = again.until("exited");
    let all = since0.until("exited");

    let snap = &got[0];
    assert_eq!(snap.kind(), "snapshot");
    let status = &snap.data.as_ref().unwrap()["status"];
    assert_eq!(status["pid"].as_u64(), Some(d.pid() as u64), "{status}");
    // The API answers before ffmpeg is spawned: a client that connects that early also sees
    // the run's `started` first.
    let events: Vec<&Frame> = got
        .iter()
        .filter(|f| f.comment.is_none())
        .skip(1)
        .skip_while(|f| f.kind() == "started")
        .collect();
    let shapes: Vec<_> = events.iter().map(|f| shape(f)).collect();
    assert_eq!(
        shapes,
        [
            t3("health", "ok", "warming_up"),
            t3("health", "stalled", "ok"),
            t3("stopping", "stopping", ""),
            t3("exited", "exited", ""),
        ],
        "{got:#?}"
    );
    let mut last = snap.id.unwrap();
    for f in &events {
        let id = f.id.unwrap();
        assert!(id > last, "ids increase: {got:#?}");
        assert_eq!(f.data.as_ref().unwrap()["id"].as_u64(), Some(id));
        last = id;
    }
    let data = |i: usize| events[i].data.clone().unwrap();
    assert!(data(1)["reason"].as_str().unwrap().contains("no output"));
    let stopping = data(2)["reason"].as_str().unwrap().to_string();
    assert!(stopping.contains("stalled"), "{stopping}");
    let exited = data(3);
    assert_eq!(exited["exit_code"], 255, "{exited}");
    assert_eq!(exited["ffmpeg_status"], 255);
    assert_eq!(exited["exit"]["code"], 1);
    assert_eq!(exited["record"]["run"], 1, "{exited}");
    assert!(
        exited["record"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("stopped by the manager: stalled"),
        "{exited}"
    );
    assert!(
        exited["reason"].as_str().unwrap().contains("stalled"),
        "{exited}"
    );

    // The replay is exactly the events after `missed_after`, as the first stream saw them.
    assert_eq!(replayed[0].kind(), "snapshot");
    let expected: Vec<&Value> = events
        .iter()
        .filter(|f| f.id.unwrap() > missed_after)
        .map(|f| f.data.as_ref().unwrap())
        .collect();
    let replayed: Vec<&Value> = replayed[1..]
        .iter()
        .filter(|f| f.comment.is_none())
        .map(|f| f.data.as_ref().unwrap())
        .collect();
    assert_eq!(replayed, expected);
    // `?since=0`: everything from the first event, the run's start included.
    assert_eq!(all[1].kind(), "started");
    assert_eq!(all[1].id, Some(1));
    let pid = all[1].data.as_ref().unwrap()["pid"].as_u64();
    assert_eq!(pid, Some(d.ffmpeg_pid() as u64));
    assert_eq!(super::exit_code(&mut d, Duration::from_secs(30)), Some(1));
}

#[test]
fn over_tcp_the_stream_needs_the_token_and_bad_ids_are_400() {
    let wd = Wd::new();
    let _d = wd
        .wrapperd()
        .fake()
        .envs(&[("HTTP_PORT", "0"), ("API_TOKEN", "s3cret")])
        .args(["run"])
        .spawn();
    let addr = wd.http_addr();
    let refused = Sse::open(tcp(addr), "/events", "").unwrap();
    assert_eq!(refused.status, 401, "{}", refused.head);
    let mut ok = Sse::open(tcp(addr), "/events", "Authorization: Bearer s3cret\r\n").unwrap();
    assert_eq!(ok.status, 200, "{}", ok.head);
    assert_eq!(ok.next_frame().unwrap().unwrap().kind(), "snapshot");
    let bad = Sse::open(
        tcp(addr),
        "/events",
        "Authorization: Bearer s3cret\r\nLast-Event-ID: x\r\n",
    )
    .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.head);
    // `?since=ID&once`, as fftop polls: the replay, then the answer ends.
    let c = _d.client();
    let mut got = (0, Vec::new());
    assert!(wait_until(Duration::from_secs(10), || {
        got = tests::block_on(c.events(0)).unwrap();
        !got.1.is_empty()
    }));
    assert_eq!(got.1[0].event, shared::events::EventKind::Started);
    assert!(got.0 >= got.1[0].id);
    let (newest, later) = tests::block_on(c.events(got.0)).unwrap();
    assert!(
        newest >= got.0 && later.iter().all(|e| e.id > got.0),
        "{later:?}"
    );
}

/// 63 readers and one client that never reads fill the socket listener's 64 streams; a 65th is
/// refused there but not on TCP. A burst of health changes reaches every reader whole, the
/// encode keeps going, and the silent stream is cut 30 s after it stopped taking data.
#[test]
fn sixty_four_streams_and_one_that_never_reads() {
    let wd = Wd::new();
    let burst = 3000;
    let script = flapping_ffmpeg(&wd, burst, 0.002, 120.0);
    let _d = wd
        .wrapperd()
        .child(&script)
        .envs(FLAPPING_VARS)
        .env("HTTP_PORT", "0")
        .spawn();
    let addr = wd.http_addr();
    let sock = wd.path.join("api.sock");
    let silent = Sse::open(unix(&sock), "/events", "").unwrap();
    assert_eq!(silent.status, 200);
    let readers: Vec<_> = (0..63)
        .map(|_| {
            let sock = sock.clone();
            let mut s = Sse::open(unix(&sock), "/events", "").unwrap();
            assert_eq!(s.status, 200, "{}", s.head);
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                while let Ok(Some(f)) = s.next_frame() {
                    if f.kind() == "health" {
                        ids.push(f.id.unwrap());
                        if ids.len() >= 200 {
                            break;
                        }
                    }
                }
                ids
            })
        })
        .collect();
    let full = Sse::open(unix(&sock), "/events", "").unwrap();
    assert_eq!(full.status, 503, "{}", full.head);
    let mut other = Sse::open(tcp(addr), "/events", "").unwrap();
    assert_eq!(other.status, 200, "another listener has its own streams");
    for r in readers {
        let ids = r.join().unwrap();
        assert_eq!(ids.len(), 200, "a reader was cut off: {ids:?}");
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "a gap: {ids:?}");
    }
    // The burst goes on for everyone else and for the encode.
    let c = shared::client::Client::new(
        shared::client::Target::Unix(sock.clone()),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(120), || tests::block_on(c.status())
            .is_ok_and(|s| s.counters.progress_blocks >= u64::from(burst))),
        "the encode's blocks all arrived"
    );
    let mut seen = 0;
    while seen < 300 {
        let f = other.next_frame().unwrap().unwrap();
        seen += usize::from(f.kind() == "health");
    }
    // The silent client has not read a byte for well over 30 s once the burst is 35 s old:
    // the server has cut it (what was sent before is still there to read, then the end).
    let cut_by = Instant::now() + Duration::from_secs(35);
    std::thread::sleep(cut_by.saturating_duration_since(Instant::now()));
    let mut silent = silent;
    silent
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let ended = loop {
        match silent.next_frame() {
            Ok(Some(_)) => continue,
            Ok(None) => break true,
            Err(e) => break e.kind() != std::io::ErrorKind::WouldBlock,
        }
    };
    assert!(ended, "the silent stream was not cut");
}

/// Restarts tell their story too (SPEC §10, §11): each ended run's `exited` with its record,
/// `restarting` with the delay, the next `started`; `POST /restart` is a `control` event, then
/// the same story at once; the last run's `exited` carries wrapperd's exit.
#[test]
fn restarts_and_control_are_told_in_order() {
    let wd = Wd::new();
    let mut d = wd
        .wrapperd()
        .fake()
        .envs(&[("RESTART", "on-failure"), ("RESTART_DELAY", "0.3")])
        .args(["run", "secs=0.5", "exit", "code=1"])
        .spawn();
    d.wait_api();
    let sock = wd.path.join("api.sock");
    let mut sse = Sse::open(unix(&sock), "/events?since=0", "").unwrap();
    let frames = sse.until("restarting");
    let kinds: Vec<&str> = frames.iter().map(Frame::kind).collect();
    assert_eq!(kinds.first(), Some(&"snapshot"));
    let ex = frames
        .iter()
        .find(|f| f.kind() == "exited")
        .expect("exited");
    let exd = ex.data.as_ref().unwrap();
    assert_eq!(exd["record"]["run"], 1, "{exd}");
    assert!(exd["exit"].is_null(), "not wrapperd's exit: {exd}");
    let rs = frames.last().unwrap().data.clone().unwrap();
    assert!((rs["delay_s"].as_f64().unwrap() - 0.3).abs() < 0.05, "{rs}");
    assert_eq!(rs["health"], "restarting");
    let started = sse.until("started");
    assert_eq!(started.last().unwrap().data.as_ref().unwrap()["run"], 2);
    let c = d.client();
    tests::block_on(c.restart()).expect("POST /restart");
    let story: Vec<String> = sse
        .until("started")
        .iter()
        .filter(|f| f.comment.is_none())
        .map(|f| f.kind().to_string())
        .collect();
    assert_eq!(
        story,
        ["control", "stopping", "exited", "started"],
        "{story:?}"
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let end = sse.until("exited");
    let last = end.last().unwrap().data.clone().unwrap();
    assert_eq!(last["exit"]["code"], 0, "{last}");
    assert_eq!(last["record"]["run"], 3, "{last}");
    assert_eq!(d.wait(Duration::from_secs(30)).code(), Some(0));
}
