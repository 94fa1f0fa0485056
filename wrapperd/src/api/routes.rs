//! The API's routes as one warp filter: routing, the bearer token, query parameters.
//!
//! The filter dispatches on the exact path itself, so the answers for an unknown path (`404`),
//! a wrong method on a known path (`405` with `Allow: GET, HEAD`) and a missing token (`401`)
//! never depend on the order in which warp combines rejections; a `recover` handler turns
//! whatever warp itself might still reject into the same plain one-line answers.
//!
//! # Choices SPEC §6 leaves open
//! - `json` (on `/last_*` and `/cmd`): present with an empty value, `1` or `true` → JSON;
//!   absent, `0` or `false` → text (case-insensitive); any other value → `400`.
//! - `count` and `seconds`: optional `+`, then ASCII digits; a value past the type's range
//!   saturates (so it means "everything held"); anything else, the empty value included, is
//!   `400`. When a parameter is repeated the first one counts; unknown parameters are ignored.
//! - `/start_time` and `/get_ffmpeg_pid` answer `503` (one line) before ffmpeg was started; after
//!   it exited they keep answering the last ffmpeg's values.
//! - `/healthz`: `200 ok`, else `503` with `<health>: <reason>` (e.g. `stalled: no output for 16 s`).
//! - `HEAD` is answered like `GET` (without a body).
//! - With `API_TOKEN`, a TCP request other than `/healthz` without the token gets `401` (with
//!   `WWW-Authenticate: Bearer`) before anything else, unknown paths included, so paths cannot
//!   be probed. The scheme `Bearer` is matched case-insensitively, the token exactly.

use std::convert::Infallible;
use std::sync::Arc;

use shared::timefmt;
use subtle::ConstantTimeEq;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::format::{
    format_lines, json_strings, json_value, method_not_allowed, not_started, plain, with_type,
    JSON, TEXT,
};
use super::metrics;
use crate::state::Daemon;

/// `count` when a `/last_*` request gives none.
const DEFAULT_COUNT: usize = 20;
/// `seconds` when a `/series` request gives none.
const DEFAULT_SERIES_SECONDS: u64 = 300;
/// The largest `seconds` handed to [`Daemon::series`]: its milliseconds still fit an `i64`, and
/// it reaches before the epoch, so anything at least this large means "everything held".
const MAX_SERIES_SECONDS: u64 = i64::MAX as u64 / 1000;
/// Snapshots with more lines than this are formatted on a blocking thread.
const BLOCKING_FORMAT_LINES: usize = 2048;

/// What the handlers need: the state, and the token a request must carry (TCP only).
pub(crate) struct Ctx {
    /// The state every answer is read from.
    pub(crate) shared: Arc<Daemon>,
    /// `API_TOKEN` on the TCP listener; `None` on the socket (and without `API_TOKEN`).
    pub(crate) token: Option<Vec<u8>>,
    /// This listener's `/events` streams (SPEC §11: at most 64 per listener).
    pub(crate) streams: crate::events::sse::Slots,
}

/// Every known path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    LastProgress,
    LastStdout,
    StartTime,
    Cmd,
    GetPid,
    GetFfmpegPid,
    Status,
    Series,
    Healthz,
    Metrics,
    Events,
}

impl Route {
    /// The route of exactly this path.
    fn of(path: &str) -> Option<Route> {
        Some(match path {
            "/last_progress" => Route::LastProgress,
            "/last_stdout" => Route::LastStdout,
            "/start_time" => Route::StartTime,
            "/cmd" => Route::Cmd,
            "/get_pid" => Route::GetPid,
            "/get_ffmpeg_pid" => Route::GetFfmpegPid,
            "/status" => Route::Status,
            "/series" => Route::Series,
            "/healthz" => Route::Healthz,
            "/metrics" => Route::Metrics,
            "/events" => Route::Events,
            _ => return None,
        })
    }
}

/// The whole API as one filter that never rejects.
pub(crate) fn routes(
    ctx: Arc<Ctx>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::<Vec<(String, String)>>())
        .and(warp::header::headers_cloned())
        .and_then(
            move |method: Method,
                  path: warp::path::FullPath,
                  params: Vec<(String, String)>,
                  headers: HeaderMap| {
                let ctx = ctx.clone();
                async move {
                    Ok::<_, warp::Rejection>(
                        handle(&ctx, &method, path.as_str(), &params, &headers).await,
                    )
                }
            },
        )
        .recover(|r: warp::Rejection| async move { Ok::<_, Infallible>(recover(&r)) })
        .unify()
}

/// Whatever warp itself rejects, answered the same way as the handler would.
fn recover(r: &warp::Rejection) -> Response {
    if r.is_not_found() {
        plain(StatusCode::NOT_FOUND, "not found")
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        method_not_allowed()
    } else if r.find::<warp::reject::InvalidQuery>().is_some() {
        plain(StatusCode::BAD_REQUEST, "bad query string")
    } else {
        tracing::debug!("API: unhandled rejection {r:?}");
        plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

/// One request: the token first, then the path, the method and the route's answer.
async fn handle(
    ctx: &Ctx,
    method: &Method,
    path: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Response {
    let route = Route::of(path);
    if let Some(token) = &ctx.token {
        if route != Some(Route::Healthz) && !authorized(headers, token) {
            let mut r = plain(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let Some(route) = route else {
        return plain(StatusCode::NOT_FOUND, format!("not found: {path}"));
    };
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed();
    }
    if route == Route::Events {
        return crate::events::sse::respond(&ctx.shared, &ctx.streams, params, headers);
    }
    match answer(ctx, route, params).await {
        Ok(r) => r,
        Err(message) => plain(StatusCode::BAD_REQUEST, message),
    }
}

/// The answer for a GET of `route`, or the one-line message of a `400`.
async fn answer(ctx: &Ctx, route: Route, params: &[(String, String)]) -> Result<Response, String> {
    let shared = &ctx.shared;
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    Ok(match route {
        Route::LastProgress | Route::LastStdout => {
            let count = count_param(param("count"), "count", DEFAULT_COUNT)?;
            let json = json_param(param("json"))?;
            last_lines(shared, route == Route::LastStdout, count, json).await
        }
        Route::StartTime => match shared.ffmpeg_start_ms() {
            Some(ms) => plain(StatusCode::OK, timefmt::local_text(ms)),
            None => not_started(),
        },
        Route::Cmd => {
            if json_param(param("json"))? {
                match json_strings(&shared.cmd) {
                    Ok(body) => with_type(StatusCode::OK, JSON, body),
                    Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            } else {
                plain(StatusCode::OK, shared.cmd.join(" "))
            }
        }
        Route::GetPid => plain(StatusCode::OK, shared.pid.to_string()),
        Route::GetFfmpegPid => match shared.ffmpeg_pid() {
            Some(pid) => plain(StatusCode::OK, pid.to_string()),
            None => not_started(),
        },
        Route::Status => json_value(&shared.status()),
        Route::Series => {
            let seconds = count_param(param("seconds"), "seconds", DEFAULT_SERIES_SECONDS)?;
            json_value(&shared.series(seconds.min(MAX_SERIES_SECONDS)))
        }
        Route::Healthz => match shared.health() {
            (h, _) if h.is_good() => plain(StatusCode::OK, "ok"),
            (h, reason) => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                match reason {
                    Some(r) => format!("{}: {}", h.as_str(), one_line(&r)),
                    None => h.as_str().to_string(),
                },
            ),
        },
        Route::Events => plain(StatusCode::INTERNAL_SERVER_ERROR, "answered in handle"),
        Route::Metrics => with_type(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            metrics::text(&shared.status()),
        ),
    })
}

/// `/last_stdout` (`stdout`) or `/last_progress`: the last `count` entries, formatted after the
/// lock is released (on a blocking thread when there are many).
async fn last_lines(shared: &Daemon, stdout: bool, count: usize, json: bool) -> Response {
    let snap = if stdout {
        shared.lines(count)
    } else {
        shared.blocks(count)
    };
    let body = if snap.len() > BLOCKING_FORMAT_LINES {
        match tokio::task::spawn_blocking(move || format_lines(&snap, json)).await {
            Ok(body) => body,
            Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    } else {
        format_lines(&snap, json)
    };
    match body {
        Ok(body) => with_type(StatusCode::OK, if json { JSON } else { TEXT }, body),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time.
fn authorized(headers: &HeaderMap, token: &[u8]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let Some((scheme, rest)) = value.split_at_checked(6) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.starts_with(b" ") {
        return false;
    }
    let given = rest.trim_ascii();
    bool::from(given.ct_eq(token))
}

/// A non-negative integer (saturating past the type's range), or `default` when absent.
fn count_param<T: TryFrom<u128> + Bounded>(
    value: Option<&str>,
    name: &str,
    default: T,
) -> Result<T, String> {
    let Some(v) = value else {
        return Ok(default);
    };
    let digits = v.strip_prefix('+').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{name} must be a non-negative integer, got {:?}",
            v
        ));
    }
    let n = digits.bytes().fold(0u128, |n, b| {
        n.saturating_mul(10).saturating_add(u128::from(b - b'0'))
    });
    Ok(T::try_from(n).unwrap_or(T::MAX))
}

/// The value a parameter saturates to.
trait Bounded {
    /// The type's largest value.
    const MAX: Self;
}
impl Bounded for usize {
    const MAX: usize = usize::MAX;
}
impl Bounded for u64 {
    const MAX: u64 = u64::MAX;
}

/// `json`: present with an empty value, `1` or `true` → JSON; absent, `0` or `false` → text.
fn json_param(value: Option<&str>) -> Result<bool, String> {
    match value {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "1" || v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v == "0" || v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(format!(
            "json must be empty, 1, true, 0 or false, got {v:?}"
        )),
    }
}

/// `s` with line breaks as spaces, for a one-line answer.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
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
        let s: Series = c.series(300).await.unwrap();
        assert_eq!(s.points.len(), 2);
        assert_eq!(s.points[1].t, now - 1_000);
        let a = ok(&c, "/series").await;
        assert_eq!(a.content_type, JSON);
        let s: Series = serde_json::from_str(&a.body).unwrap();
        assert_eq!(s.points.len(), 2, "default 300 s");
        assert!(a.body.starts_with("{\"points\":[{\"t\":"), "{}", a.body);
        let s: Series = serde_json::from_str(&ok(&c, "/series?seconds=5").await.body).unwrap();
        assert_eq!(s.points.len(), 1);
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
            assert_eq!(s.points.len(), 2, "seconds={seconds}");
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
        }
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
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, b"t"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        assert!(authorized(&h, b"t"));
        assert!(!authorized(&h, b"tt"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert!(
            !authorized(&h, b""),
            "an empty token is never configured, never matches a bare scheme"
        );
    }
}
