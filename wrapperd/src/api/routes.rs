//! The API's routes as one warp filter: routing, access, query parameters.
//!
//! The filter dispatches on the exact path itself, so the answers for an unknown path (`404`),
//! a wrong method on a known path (`405`) and a missing token (`401`) never depend on the order
//! in which warp combines rejections; a `recover` handler turns whatever warp itself might
//! still reject into the same plain one-line answers. Who may read and who may control is
//! decided in `auth`; the control requests themselves are answered in `control`.
//!
//! # Choices SPEC §6 and §10 leave open
//! - `json` (on `/last_*` and `/cmd`): present with an empty value, `1` or `true` → JSON;
//!   absent, `0` or `false` → text (case-insensitive); any other value → `400`.
//! - `count` (on `/last_*` and `/runs`) and `seconds`: optional `+`, then ASCII digits; a value
//!   past the type's range saturates (so it means "everything held"); anything else, the empty
//!   value included, is `400`. When a parameter is repeated the first one counts; unknown
//!   parameters are ignored.
//! - `/start_time` and `/get_ffmpeg_pid` answer `503` (one line) before ffmpeg was started; after
//!   it exited they keep answering the last ffmpeg's values.
//! - `/healthz`: `200 ok`, else `503` with `<health>: <reason>` (e.g. `stalled: no output for 16 s`).
//! - `HEAD` is answered like `GET` (without a body). Reading paths answer other methods with
//!   `405` and `Allow: GET, HEAD`; `/stop` and `/restart` answer anything but `POST` with `405`
//!   and `Allow: POST`.
//! - The order of the checks: the token (`401`), the path (`404`), the method (`405`), whether
//!   this request may control (`403`), then the answer. A request body is bounded by the
//!   listener before any of this (`413`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use shared::timefmt;
use warp::http::header::HeaderMap;
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::auth::{Guard, Need};
use super::control;
use super::format::{
    format_lines, json_strings, json_value, method_not_allowed, not_started, plain, with_type,
    JSON, TEXT,
};
use super::metrics;
use crate::state::{Control, Daemon};

/// `count` when a `/last_*` or `/runs` request gives none.
const DEFAULT_COUNT: usize = 20;
/// `seconds` when a `/series` request gives none.
const DEFAULT_SERIES_SECONDS: u64 = 300;
/// The largest `seconds` handed to [`Daemon::series`]: its milliseconds still fit an `i64`, and
/// it reaches before the epoch, so anything at least this large means "everything held".
const MAX_SERIES_SECONDS: u64 = i64::MAX as u64 / 1000;
/// Snapshots with more lines than this are formatted on a blocking thread.
const BLOCKING_FORMAT_LINES: usize = 2048;
/// `/livez` is `200` at once when wrapperd's loop went round this recently (SPEC §12: 5 s).
const LIVEZ_FRESH: Duration = Duration::from_secs(5);
/// How long `/livez` waits for the loop to answer when asked (below a probe's usual 1 s).
const LIVEZ_WAIT: Duration = Duration::from_millis(900);

/// What the handlers need: the state, and the listener's rules.
pub(crate) struct Ctx {
    /// The state every answer is read from.
    pub(crate) shared: Arc<Daemon>,
    /// Who may read and control on this listener.
    pub(crate) guard: Guard,
    /// This listener's `/events` streams (SPEC §11: at most 64 per listener).
    pub(crate) streams: crate::events::sse::Slots,
}

/// Who sent a request, for the log of control requests: `socket`, or the TCP peer's address.
/// The listener puts it in every request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct Origin(pub(crate) Arc<str>);

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
    Livez,
    Metrics,
    Runs,
    Stop,
    Restart,
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
            "/livez" => Route::Livez,
            "/metrics" => Route::Metrics,
            "/runs" => Route::Runs,
            "/stop" => Route::Stop,
            "/restart" => Route::Restart,
            "/events" => Route::Events,
            _ => return None,
        })
    }

    /// What a control path asks; `None` for the reading paths.
    fn control(self) -> Option<Control> {
        match self {
            Route::Stop => Some(Control::Stop),
            Route::Restart => Some(Control::Restart),
            _ => None,
        }
    }
}

/// One request as the handler reads it.
struct Request<'a> {
    /// Its method.
    method: &'a Method,
    /// Its path, without the query.
    path: &'a str,
    /// Its query parameters, in order.
    params: &'a [(String, String)],
    /// Its headers (the token).
    headers: &'a HeaderMap,
    /// Who sent it.
    origin: &'a str,
}

/// The whole API as one filter that never rejects.
pub(crate) fn routes(
    ctx: Arc<Ctx>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::<Vec<(String, String)>>())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Origin>())
        .and_then(
            move |method: Method,
                  path: warp::path::FullPath,
                  params: Vec<(String, String)>,
                  headers: HeaderMap,
                  origin: Option<Origin>| {
                let ctx = ctx.clone();
                async move {
                    let origin = origin.map_or_else(|| "unknown".into(), |o| o.0);
                    let req = Request {
                        method: &method,
                        path: path.as_str(),
                        params: &params,
                        headers: &headers,
                        origin: &origin,
                    };
                    Ok::<_, warp::Rejection>(handle(&ctx, &req).await)
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
        method_not_allowed("GET, HEAD")
    } else if r.find::<warp::reject::InvalidQuery>().is_some() {
        plain(StatusCode::BAD_REQUEST, "bad query string")
    } else {
        tracing::debug!("API: unhandled rejection {r:?}");
        plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

/// One request: the token first, then the path, the method and the route's answer.
async fn handle(ctx: &Ctx, req: &Request<'_>) -> Response {
    let route = Route::of(req.path);
    let control = route
        .and_then(Route::control)
        .filter(|_| req.method == Method::POST);
    if !matches!(route, Some(Route::Healthz | Route::Livez)) {
        let need = if control.is_some() {
            Need::Control
        } else {
            Need::Read
        };
        let cred = ctx.guard.credential(req.headers);
        if let Err(denied) = ctx.guard.check(need, cred) {
            if let Some(what) = control {
                control::log_refused(what, req.origin, denied.as_str());
            }
            return denied.response();
        }
    }
    let Some(route) = route else {
        return plain(StatusCode::NOT_FOUND, format!("not found: {}", req.path));
    };
    if let Some(what) = control {
        return control::answer(&ctx.shared, what, req.origin);
    }
    if route.control().is_some() {
        return method_not_allowed("POST");
    }
    if req.method != Method::GET && req.method != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    if route == Route::Events {
        return crate::events::sse::respond(&ctx.shared, &ctx.streams, req.params, req.headers);
    }
    match answer(ctx, route, req.params).await {
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
        // SPEC §12: wrapperd's loop answered within the last 5 s, whatever the encode's health
        // (asked now when it has not gone round lately; an idle loop answers at once).
        Route::Livez if shared.alive(LIVEZ_FRESH, LIVEZ_WAIT).await => plain(StatusCode::OK, "ok"),
        Route::Livez => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "wrapperd's loop has not gone round for {:.1} s",
                shared.beat_age().as_secs_f64()
            ),
        ),
        Route::Events => plain(StatusCode::INTERNAL_SERVER_ERROR, "answered in handle"),
        Route::Metrics => with_type(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            metrics::text(&shared.status()),
        ),
        Route::Runs => {
            let count = count_param(param("count"), "count", DEFAULT_COUNT)?;
            with_type(StatusCode::OK, JSON, shared.runs_json(count))
        }
        Route::Stop | Route::Restart => method_not_allowed("POST"),
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
#[path = "routes_tests.rs"]
mod tests;
