//! The aggregator's HTTP server (hyper, HTTP/1.1) and its routes.
//!
//! Each connection runs on its own task with a bounded header read time, so a slow or idle
//! client holds only itself. Answers come from the shared state, except `/t/…`, which asks the
//! target (bounded by the poll timeout; a hung target answers `504` after it).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use shared::client::{Client, ClientError, Target};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use super::metrics::{self, Source};
use super::Shared;
use crate::app::Conn;

/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `HOST:PORT` (a name is resolved; the first address that binds wins).
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        match TcpListener::bind(a).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the name resolves to no address")))
}

/// Accepts until the task is aborted.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((io, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let _ = io.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(io), svc)
                .await;
        });
    }
}

fn answer(status: StatusCode, content_type: &str, body: String) -> Response<String> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<String> {
    let mut body = body.into();
    body.push('\n');
    answer(status, "text/plain; charset=utf-8", body)
}

/// Whether the request carries the bearer token (compared in constant time).
fn authorized<B>(shared: &Shared, req: &Request<B>) -> bool {
    let Some(want) = &shared.token else {
        return true;
    };
    let got = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(got.as_bytes().ct_eq(want.as_bytes()))
}

/// Routes one request.
pub async fn handle<B>(shared: &Shared, req: Request<B>) -> Response<String> {
    let path = req.uri().path().to_string();
    if path == "/livez" {
        return text(StatusCode::OK, "ok");
    }
    if !authorized(shared, &req) {
        let mut r = text(
            StatusCode::UNAUTHORIZED,
            "unauthorized: a bearer token is needed",
        );
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} is not allowed: the aggregator is read-only (stop and restart an encode on its host)",
                req.method()
            ),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    match path.as_str() {
        "/metrics" => answer(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics_text(shared),
        ),
        "/targets" => {
            let app = shared.app.lock().unwrap_or_else(|e| e.into_inner());
            let v = crate::once::json_of(&app);
            answer(StatusCode::OK, "application/json", v.to_string())
        }
        p if p.starts_with("/t/") => {
            let query = req.uri().query().map(str::to_string);
            pass_through(shared, &p[3..], query.as_deref()).await
        }
        _ => text(
            StatusCode::NOT_FOUND,
            format!("no such path {path:?} (try /metrics, /targets, /t/NAME/status, /livez)"),
        ),
    }
}

/// `/metrics` from the cached texts.
fn metrics_text(shared: &Shared) -> String {
    let app = shared.app.lock().unwrap_or_else(|e| e.into_inner());
    let rows = app.visible();
    let sources: Vec<Source<'_>> = rows
        .iter()
        .map(|t| Source {
            name: &t.name,
            up: t.conn == Conn::Up && t.metrics.is_some(),
            text: t.metrics.as_deref(),
        })
        .collect();
    metrics::render(&sources)
}

/// The target for `/t/<rest>`: the one whose name is the longest prefix of `rest` followed by
/// `/`, with its name and, when it has exited, its `/targets` object.
fn find_target(shared: &Shared, rest: &str) -> Option<(Target, String, Option<Value>)> {
    let app = shared.app.lock().unwrap_or_else(|e| e.into_inner());
    app.visible()
        .into_iter()
        .filter(|t| {
            rest.strip_prefix(t.name.as_str())
                .is_some_and(|r| r.starts_with('/'))
        })
        .max_by_key(|t| t.name.len())
        .map(|t| {
            let exited = matches!(t.conn, Conn::Exited { .. });
            let json = exited.then(|| crate::once::json_of_one(t));
            (t.target.clone(), t.name.clone(), json)
        })
}

/// The pass-through's client for `target`, made once.
fn client_for(shared: &Shared, target: &Target) -> Result<Client, ClientError> {
    let mut clients = shared.clients.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = clients.get(target) {
        return Ok(c.clone());
    }
    let c = Client::new(
        target.clone(),
        shared.poll.token.clone(),
        shared.poll.timeout,
    )?;
    clients.insert(target.clone(), c.clone());
    Ok(c)
}

/// An exited target's API is gone; what its files say is all there is: `status` (status.json
/// as `/targets` has it) and `runs` (from runs.jsonl, `count` as wrapperd takes it).
async fn from_files(
    target: &Target,
    name: &str,
    sub: &str,
    query: Option<&str>,
    status: Value,
) -> Response<String> {
    match sub {
        "/status" => answer(StatusCode::OK, "application/json", status.to_string()),
        "/runs" => {
            let count = query
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("count="))
                .map_or(Ok(20), str::parse::<usize>);
            let Ok(count) = count else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "count must be a non-negative integer",
                );
            };
            let dir = match target {
                Target::Unix(sock) => crate::exited::workdir_of(sock),
                Target::Tcp(_) => None,
            };
            let runs = match dir {
                Some(d) => tokio::task::spawn_blocking(move || crate::exited::read_runs(&d, count))
                    .await
                    .ok()
                    .flatten(),
                None => None,
            };
            let runs = Value::Array(runs.unwrap_or_default());
            answer(StatusCode::OK, "application/json", runs.to_string())
        }
        _ => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{name} has exited; only its status and runs are served, from its files"),
        ),
    }
}

/// `GET /t/<name>/<path>`: that target asked for the remaining path (and query), its answer
/// passed back as it is; `502` when it cannot be reached, `504` after the timeout.
async fn pass_through(shared: &Shared, rest: &str, query: Option<&str>) -> Response<String> {
    let Some((target, name, exited_json)) = find_target(shared, rest) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no target named like {rest:?} (GET /targets lists them)"),
        );
    };
    let sub = &rest[name.len()..];
    if let Some(json) = exited_json {
        return from_files(&target, &name, sub, query, json).await;
    }
    let path_and_query = match query {
        Some(q) => format!("{sub}?{q}"),
        None => sub.to_string(),
    };
    let timeout = shared.poll.timeout;
    let result = match client_for(shared, &target) {
        Ok(c) => tokio::time::timeout(timeout, c.get(&path_and_query))
            .await
            .unwrap_or(Err(ClientError::Timeout(timeout))),
        Err(e) => Err(e),
    };
    match result {
        Ok(a) => {
            let ct = if a.content_type.is_empty() {
                "text/plain"
            } else {
                &a.content_type
            };
            let code = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
            answer(code, ct, a.body)
        }
        Err(e @ ClientError::Timeout(_)) => {
            text(StatusCode::GATEWAY_TIMEOUT, format!("{name}: {e}"))
        }
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("{name}: {e}")),
    }
}
