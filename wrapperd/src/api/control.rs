//! `POST /stop` and `POST /restart` (SPEC §10): hand the request to the supervisor through
//! [`Daemon::control`] and answer at once.
//!
//! The API never stops anything itself: it records the request (the supervisor takes it and
//! does the stopping, as for a signal) and answers `202 {"accepted": "stop"}`, or `409` when
//! wrapperd is already stopping, has exited or has a request waiting. Whether the request may
//! control at all was decided before (`auth`). Every control request is logged with its origin
//! (`socket`, or the TCP peer's address) and what became of it, refusals included, so the log
//! says who stopped an encode.

use warp::http::StatusCode;
use warp::reply::Response;

use super::format::{accepted, plain};
use crate::state::{Control, Daemon};

/// Asks the supervisor for `what` on behalf of `origin`: `202`, or `409` with why not.
pub(crate) fn answer(shared: &Daemon, what: Control, origin: &str) -> Response {
    match shared.control(what, origin.to_string()) {
        Ok(()) => {
            tracing::info!("API: {} requested by {origin}: accepted", what.as_str());
            accepted(what.as_str())
        }
        Err(refused) => {
            log_refused(what, origin, &refused.to_string());
            plain(StatusCode::CONFLICT, refused.to_string())
        }
    }
}

/// Logs a refused control request.
pub(crate) fn log_refused(what: Control, origin: &str, why: &str) {
    tracing::info!(
        "API: {} requested by {origin}: refused ({why})",
        what.as_str()
    );
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::time::Duration;

    use shared::api::{ExitInfo, FfmpegStatus};
    use shared::client::{ClientError, ControlAction};
    use warp::http::Method;

    use super::super::auth::{NEEDS_CONTROL_TOKEN, NO_CONTROL_TOKEN, READ_ONLY};
    use super::super::testutil::{raw_request, Fixture};
    use super::super::Limits;
    use crate::state::ControlRequest;

    use super::*;

    /// The request waiting for the supervisor, taken.
    fn taken(f: &Fixture) -> Option<(Control, String)> {
        f.shared
            .take_control()
            .map(|ControlRequest { what, origin }| (what, origin))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_socket_controls_and_a_second_request_or_a_stop_is_409() {
        let f = Fixture::new(&[]);
        let c = f.unix();
        for (path, what, word) in [
            ("/stop", Control::Stop, "stop"),
            ("/restart", Control::Restart, "restart"),
        ] {
            let a = c.request(Method::POST, path).await.unwrap();
            assert_eq!(a.status, 202, "{path}: {}", a.body);
            assert_eq!(a.content_type, "application/json");
            assert_eq!(a.body, format!("{{\"accepted\": \"{word}\"}}"));
            let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            assert_eq!(v["accepted"], word);
            assert_eq!(taken(&f), Some((what, "socket".to_string())));
        }
        // One waits to be taken: the next is refused.
        c.stop().await.unwrap();
        let a = c.request(Method::POST, "/restart").await.unwrap();
        assert_eq!(
            (a.status, a.body.as_str()),
            (409, "wrapperd is already stopping")
        );
        assert_eq!(taken(&f), Some((Control::Stop, "socket".to_string())));
        // Stopping, then exited: refused, and the client says which status.
        f.shared.begin_stopping("stop requested by SIGTERM".into());
        match c.restart().await {
            Err(ClientError::Refused {
                what: ControlAction::Restart,
                status: 409,
                reason,
            }) => assert_eq!(reason, "wrapperd is already stopping"),
            other => panic!("{other:?}"),
        }
        f.shared.set_exit(ExitInfo {
            code: 0,
            ffmpeg_status: FfmpegStatus::Code(255),
            reason: "stopped".into(),
        });
        let e = c.stop().await.unwrap_err();
        assert_eq!(e.status(), Some(409));
        assert_eq!(
            e.to_string(),
            "stop refused (HTTP 409): wrapperd is already stopping"
        );
        assert_eq!(taken(&f), None);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tcp_control_needs_the_control_token() {
        let f = Fixture::new(&[
            ("HTTP_PORT", "0"),
            ("API_TOKEN", "rd"),
            ("API_CONTROL_TOKEN", "ctl"),
        ]);
        for (token, want, body) in [
            (None, 401, "missing or wrong bearer token"),
            (Some("wrong"), 401, "missing or wrong bearer token"),
            (Some("rd"), 403, NEEDS_CONTROL_TOKEN),
        ] {
            for path in ["/stop", "/restart"] {
                let a = f.tcp(token).request(Method::POST, path).await.unwrap();
                assert_eq!(
                    (a.status, a.body.as_str()),
                    (want, body),
                    "{token:?} {path}"
                );
            }
        }
        assert_eq!(taken(&f), None, "nothing was asked");
        // The control token reads too, and controls; the origin is the peer.
        let ctl = f.tcp(Some("ctl"));
        assert_eq!(ctl.get("/status").await.unwrap().status, 200);
        assert_eq!(ctl.get("/healthz").await.unwrap().status, 200);
        ctl.restart().await.unwrap();
        let (what, origin) = taken(&f).unwrap();
        assert_eq!(what, Control::Restart);
        assert!(origin.starts_with("127.0.0.1:"), "{origin}");
        assert_ne!(origin, f.tcp_addr.unwrap().to_string(), "the peer, not us");
        // Wrong methods after the token: 405; without the token: 401 first.
        assert_eq!(ctl.get("/stop").await.unwrap().status, 405);
        assert_eq!(f.tcp(None).get("/stop").await.unwrap().status, 401);
        // The socket needs no token.
        f.unix().stop().await.unwrap();
        assert_eq!(taken(&f), Some((Control::Stop, "socket".to_string())));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tcp_without_a_control_token_refuses_control_and_keeps_reading_open() {
        let f = Fixture::new(&[("HTTP_PORT", "0")]);
        for token in [None, Some("anything")] {
            let c = f.tcp(token);
            let a = c.request(Method::POST, "/stop").await.unwrap();
            assert_eq!((a.status, a.body.as_str()), (403, NO_CONTROL_TOKEN));
            assert_eq!(c.get("/status").await.unwrap().status, 200);
        }
        let e = f.tcp(None).stop().await.unwrap_err();
        assert!(
            matches!(e, ClientError::Refused { status: 403, .. }),
            "{e:?}"
        );
        assert_eq!(taken(&f), None);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn read_only_turns_control_off_on_both_listeners() {
        let f = Fixture::new(&[
            ("HTTP_PORT", "0"),
            ("API_CONTROL_TOKEN", "ctl"),
            ("API_READ_ONLY", "true"),
        ]);
        for c in [f.unix(), f.tcp(Some("ctl"))] {
            for path in ["/stop", "/restart"] {
                let a = c.request(Method::POST, path).await.unwrap();
                assert_eq!((a.status, a.body.as_str()), (403, READ_ONLY), "{path}");
            }
            assert_eq!(c.get("/status").await.unwrap().status, 200);
        }
        // Still 401 for a wrong token: authentication comes first.
        let a = f
            .tcp(Some("x"))
            .request(Method::POST, "/stop")
            .await
            .unwrap();
        assert_eq!(a.status, 401);
        assert_eq!(taken(&f), None);
    }

    /// Sends `head` and then `body` in pieces on the socket; the raw answer.
    fn post_with_body(f: &Fixture, head: &str, body: &[&[u8]]) -> String {
        let mut s = std::os::unix::net::UnixStream::connect(&f.api.socket_path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        for piece in body {
            let _ = s.write_all(piece);
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_request_body_is_read_up_to_a_limit_and_a_time() {
        let limits = Limits {
            body_read: Duration::from_millis(300),
            ..Limits::default()
        };
        let f = Fixture::with_limits(&[], limits);
        let small = "x".repeat(100);
        let raw = raw_request(
            &f.api.socket_path,
            &format!(
                "POST /stop HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{small}"
            ),
        );
        assert!(raw.starts_with("HTTP/1.1 202"), "{raw}");
        assert_eq!(taken(&f), Some((Control::Stop, "socket".to_string())));
        // Declared too large: refused before reading it; nothing asked.
        let raw = raw_request(
            &f.api.socket_path,
            "POST /stop HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
        );
        assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
        assert!(raw.ends_with("request body over 4096 bytes"), "{raw}");
        // Chunked, growing past the limit.
        let chunk = format!("1000\r\n{}\r\n", "y".repeat(4096));
        let raw = post_with_body(
            &f,
            "POST /restart HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            &[chunk.as_bytes(), chunk.as_bytes(), b"0\r\n\r\n"],
        );
        assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
        // Promised but never sent: 408 after the body time.
        let raw = raw_request(
            &f.api.socket_path,
            "POST /stop HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        );
        assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
        assert_eq!(taken(&f), None, "no refused body asked anything");
        // A GET with a small body is still answered.
        let raw = raw_request(
            &f.api.socket_path,
            "GET /get_pid HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        );
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    }
}
