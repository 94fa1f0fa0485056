//! The tests of `routes`: routing, parameters, status codes and the read token, through a
//! real API on a temporary work directory (`testutil::Fixture`). Control is tested in
//! `control`, the access table in `auth`.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use shared::api::{ExitInfo, FfmpegStatus, Series, State};

use super::super::testutil::{args, block, get, ok, raw_request, stamp, Fixture, T0};
use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn bad_numbers_are_400_with_one_line() {
    let f = Fixture::new(&[]);
    f.push_lines(&[(T0, "a"), (T0, "b")]);
    let c = f.unix();
    for q in [
        "/last_stdout?count=abc",
        "/last_stdout?count=-1",
        "/last_stdout?count=",
        "/last_stdout?count=1.5",
        "/last_stdout?count=%201",
        "/last_progress?count=x&json",
        "/series?seconds=-5",
        "/series?seconds=ten",
        "/runs?count=abc",
        "/runs?count=-1",
    ] {
        let a = get(&c, q).await;
        assert_eq!(a.status, 400, "{q}");
        assert!(
            !a.body.is_empty() && !a.body.contains('\n'),
            "{q}: {:?}",
            a.body
        );
        assert_eq!(a.content_type, TEXT);
    }
    assert!(get(&c, "/last_stdout?count=abc")
        .await
        .body
        .contains("count must be a non-negative integer"));
    // Huge and signed-positive counts are integers too: everything held.
    for q in [
        "?count=99999999999999999999999999999",
        "?count=%2B2",
        "?count=0002",
    ] {
        assert_eq!(
            ok(&c, &format!("/last_stdout{q}"))
                .await
                .body
                .lines()
                .count(),
            2
        );
    }
    // Unknown parameters are ignored; a repeated one counts once, the first.
    assert_eq!(
        ok(&c, "/last_stdout?count=1&count=x&foo=bar")
            .await
            .body
            .lines()
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_text_routes() {
    let f = Fixture::new(&[]);
    let c = f.unix();
    for path in ["/start_time", "/get_ffmpeg_pid"] {
        let a = get(&c, path).await;
        assert_eq!(a.status, 503, "{path} before ffmpeg starts");
        assert!(!a.body.contains('\n'));
    }
    f.shared.ffmpeg_started(4242, Instant::now());
    let started = f.shared.ffmpeg_start_ms().unwrap();
    assert_eq!(ok(&c, "/start_time").await.body, stamp(started));
    assert_eq!(ok(&c, "/get_ffmpeg_pid").await.body, "4242");
    assert_eq!(
        ok(&c, "/get_pid").await.body,
        std::process::id().to_string()
    );
    let a = ok(&c, "/cmd").await;
    assert_eq!(
        a.body,
        "-re -i my file.mp4 -metadata title=\"déjà vu\" out.flv"
    );
    assert_eq!(a.content_type, TEXT);
    for q in ["?json", "?json=1", "?json=true"] {
        let a = ok(&c, &format!("/cmd{q}")).await;
        assert_eq!(a.content_type, JSON);
        assert_eq!(
            a.body,
            r#"["-re", "-i", "my file.mp4", "-metadata", "title=\"déjà vu\"", "out.flv"]"#
        );
        assert_eq!(
            serde_json::from_str::<Vec<String>>(&a.body).unwrap(),
            args()
        );
    }
    assert_eq!(ok(&c, "/cmd?json=0").await.body, args().join(" "));
    assert_eq!(get(&c, "/cmd?json=2").await.status, 400);
    // After ffmpeg exited the last values stay.
    f.shared.set_exit(ExitInfo {
        code: 1,
        ffmpeg_status: FfmpegStatus::Code(1),
        reason: "ffmpeg ended by itself".into(),
    });
    assert_eq!(ok(&c, "/get_ffmpeg_pid").await.body, "4242");
}

/// An API with two blocks, 10 s and 1 s old; returns `now`.
fn with_two_blocks() -> (Fixture, i64) {
    let f = Fixture::new(&[("ENCODING_RATE_WINDOW", "0")]);
    f.shared.ffmpeg_started(77, Instant::now());
    let now = timefmt::now_ms();
    f.shared
        .push_block(now - 10_000, Instant::now(), &block(10, 400_000));
    f.shared
        .push_block(now - 1_000, Instant::now(), &block(20, 800_000));
    (f, now)
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_series_json() {
    let (f, now) = with_two_blocks();
    f.push_lines(&[(now, "hello")]);
    let c = f.unix();
    let st = c.status().await.unwrap();
    assert_eq!(st.pid, std::process::id());
    assert_eq!(st.ffmpeg_pid, Some(77));
    assert_eq!(st.state, State::Running);
    assert_eq!(st.cmd, args());
    assert_eq!(st.counters.log_lines, 1);
    assert_eq!(st.counters.progress_blocks, 2);
    assert_eq!(st.progress.unwrap().frame, Some(20));
    assert_eq!(ok(&c, "/status").await.content_type, JSON);
    // The blocks' points (with a bitrate), and one a second between them (none for 9 s).
    let blocks = |s: &Series| s.points.iter().filter(|p| p.bitrate_kbps.is_some()).count();
    let s: Series = c.series(300).await.unwrap();
    assert_eq!((s.points.len(), blocks(&s)), (10, 2));
    assert_eq!(s.points[9].t, now - 1_000);
    assert_eq!(s.points[1].t, now - 9_000);
    let a = ok(&c, "/series").await;
    assert_eq!(a.content_type, JSON);
    let s: Series = serde_json::from_str(&a.body).unwrap();
    assert_eq!(s.points.len(), 10, "default 300 s");
    assert!(a.body.starts_with("{\"points\":[{\"t\":"), "{}", a.body);
    let s: Series = serde_json::from_str(&ok(&c, "/series?seconds=5").await.body).unwrap();
    assert_eq!(blocks(&s), 1);
    let s: Series = serde_json::from_str(&ok(&c, "/series?seconds=0").await.body).unwrap();
    assert!(s.points.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_series_seconds_mean_everything() {
    let (f, _) = with_two_blocks();
    let c = f.unix();
    for seconds in [
        "9223372036854775",     // the largest whose milliseconds fit an i64
        "9223372036854775807",  // 2^63 - 1
        "9223372036854775808",  // 2^63
        "18446744073709551615", // u64::MAX
        "99999999999999999999999",
    ] {
        let a = ok(&c, &format!("/series?seconds={seconds}")).await;
        let s: Series = serde_json::from_str(&a.body).unwrap();
        assert_eq!(
            s.points.len(),
            10,
            "seconds={seconds}: 2 blocks, 8 s between"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_follows_health() {
    let f = Fixture::new(&[]);
    let c = f.unix();
    // Warming up (just started).
    let a = get(&c, "/healthz").await;
    assert_eq!((a.status, a.body.as_str()), (200, "ok"));
    f.shared.begin_stopping("stop requested by SIGTERM".into());
    let a = get(&c, "/healthz").await;
    assert_eq!(a.status, 503);
    assert_eq!(a.body, "stopping: stop requested by SIGTERM");
    f.shared.set_exit(ExitInfo {
        code: 0,
        ffmpeg_status: FfmpegStatus::Signal(2),
        reason: "stopped on request".into(),
    });
    let a = get(&c, "/healthz").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (503, "exited: stopped on request")
    );
    // The other routes keep answering after the exit.
    ok(&c, "/status").await;
    ok(&c, "/metrics").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_path_404_wrong_method_405_head_ok() {
    let f = Fixture::new(&[("HTTP_PORT", "0")]);
    for c in [f.unix(), f.tcp(None)] {
        for path in ["/", "/nope", "/status/", "/last_stdout/x", "/STATUS"] {
            let a = get(&c, path).await;
            assert_eq!(a.status, 404, "{path}");
            assert!(!a.body.contains('\n'));
        }
        for m in [Method::POST, Method::PUT, Method::DELETE] {
            for path in ["/status", "/last_stdout", "/healthz", "/cmd"] {
                let a = c.request(m.clone(), path).await.unwrap();
                assert_eq!(a.status, 405, "{m} {path}");
            }
            assert_eq!(c.request(m.clone(), "/nope").await.unwrap().status, 404);
        }
        let a = c.request(Method::HEAD, "/status").await.unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, ""));
        // The control paths take only POST.
        for m in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
            for path in ["/stop", "/restart"] {
                let a = c.request(m.clone(), path).await.unwrap();
                assert_eq!(a.status, 405, "{m} {path}");
            }
        }
        assert_eq!(c.request(Method::POST, "/runs").await.unwrap().status, 405);
        assert_eq!(c.request(Method::POST, "/stop/").await.unwrap().status, 404);
    }
    assert!(f.shared.take_control().is_none(), "nothing was asked");
    // The raw answer carries Allow.
    let raw = raw_request(
        &f.api.socket_path,
        "POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("allow: get, head"),
        "{raw}"
    );
    let raw = raw_request(
        &f.api.socket_path,
        "GET /stop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("allow: post"), "{raw}");
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_is_a_json_array() {
    let f = Fixture::new(&[]);
    let c = f.unix();
    for q in ["/runs", "/runs?count=0", "/runs?count=5"] {
        let a = ok(&c, q).await;
        assert_eq!(a.content_type, JSON, "{q}");
        assert_eq!(a.body, f.shared.runs_json(0), "{q}");
        assert!(serde_json::from_str::<Vec<serde_json::Value>>(&a.body).is_ok());
    }
    assert_eq!(c.runs(0).await.unwrap(), vec![]);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_guards_tcp_but_not_healthz_or_the_socket() {
    let f = Fixture::new(&[("HTTP_PORT", "0"), ("API_TOKEN", "s3cret")]);
    for c in [
        f.tcp(None),
        f.tcp(Some("wrong")),
        f.tcp(Some("s3cre")),
        f.tcp(Some("s3cret2")),
    ] {
        for path in ["/status", "/last_stdout", "/metrics", "/cmd", "/nope"] {
            let a = get(&c, path).await;
            assert_eq!(a.status, 401, "{path}");
            assert!(!a.body.contains("s3cret"));
        }
        assert_eq!(get(&c, "/healthz").await.status, 200);
    }
    let good = f.tcp(Some("s3cret"));
    for path in ["/status", "/last_stdout", "/metrics", "/cmd", "/healthz"] {
        ok(&good, path).await;
    }
    assert_eq!(get(&good, "/nope").await.status, 404);
    assert_eq!(good.status().await.unwrap().pid, std::process::id());
    // The socket needs none.
    ok(&f.unix(), "/status").await;
    // Scheme case-insensitive; other schemes are refused.
    let addr = f.tcp_addr.unwrap();
    for (value, want) in [
        ("bearer s3cret", "200"),
        ("BEARER s3cret", "200"),
        ("Basic s3cret", "401"),
        ("Bearers3cret", "401"),
        ("s3cret", "401"),
    ] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!(
            "GET /get_pid HTTP/1.1\r\nHost: x\r\nAuthorization: {value}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(
            out.starts_with(&format!("HTTP/1.1 {want}")),
            "{value}: {out}"
        );
    }
}

#[test]
fn params_and_tokens() {
    assert_eq!(count_param::<usize>(None, "count", 20), Ok(20));
    assert_eq!(count_param::<usize>(Some("0"), "count", 20), Ok(0));
    assert_eq!(count_param::<u64>(Some("+7"), "s", 1), Ok(7));
    assert_eq!(
        count_param::<u64>(Some("1".repeat(60).as_str()), "s", 1),
        Ok(u64::MAX)
    );
    for bad in ["", "+", "-1", "1e3", " 1", "0x10", "١"] {
        assert!(
            count_param::<usize>(Some(bad), "count", 20).is_err(),
            "{bad:?}"
        );
    }
    assert_eq!(json_param(None), Ok(false));
    assert_eq!(json_param(Some("")), Ok(true));
    assert!(json_param(Some("on")).is_err());
}
