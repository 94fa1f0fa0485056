//! The HTTP API (SPEC §6), on `WORKDIR/api.sock` always and on `HTTP_HOST:HTTP_PORT` when
//! `HTTP_PORT` is set.
//!
//! The routes are one warp filter that dispatches on the exact path itself, so the answers for an
//! unknown path (`404`), a wrong method on a known path (`405` with `Allow: GET, HEAD`) and a
//! missing token (`401`) never depend on the order in which warp combines rejections; a `recover`
//! handler turns whatever warp itself might still reject into the same plain one-line answers.
//!
//! The filter is served through hyper's HTTP/1 connection builder rather than `warp::serve`,
//! which has no knobs for untrusted clients. Each listener limits its open connections (when
//! full, or out of descriptors, it closes the least recently active connection that has no
//! request in progress, so a flood of idle connections cannot lock new clients out), each
//! connection has a header read timeout (which also closes idle keep-alive connections), a
//! bounded read buffer (larger request heads get `431`), at most 64 headers, and a write-stall
//! timeout (a client that stops reading its answer is dropped). Every connection is its own
//! task, so a slow or malformed client never holds up another one, and the handlers only take
//! the state's lock for microseconds ([`Daemon::lines`] and friends take snapshots; formatting
//! happens after the lock is released, on a blocking thread for large answers).
//!
//! # Formats (the choices SPEC §6 leaves open)
//! - Plain text bodies of the seed's routes (`/last_*`, `/start_time`, `/cmd`, `/get_pid`,
//!   `/get_ffmpeg_pid`), of `/healthz` and of every error have **no trailing newline**; lines of
//!   `/last_*` are joined with `\n`. `/metrics` ends every line with `\n`, as its format requires.
//!   Text is `text/plain; charset=utf-8`.
//! - A `/last_*` line is `<YYYY-MM-DD HH:MM:SS> text` with literal angle brackets, local time.
//! - `json` (on `/last_*` and `/cmd`): present with an empty value, `1` or `true` → JSON;
//!   absent, `0` or `false` → text (case-insensitive); any other value → `400`. The JSON uses the
//!   separators of SPEC's example (`[["2026-11-23 23:54:00", "line"], ...]`, `["-i", "x"]`) and
//!   keeps non-ASCII text as UTF-8.
//! - `count` and `seconds`: optional `+`, then ASCII digits; a value past the type's range
//!   saturates (so it means "everything held"); anything else, the empty value included, is
//!   `400`. When a parameter is repeated the first one counts; unknown parameters are ignored.
//! - `/start_time` and `/get_ffmpeg_pid` answer `503` (one line) before ffmpeg was started; after
//!   it exited they keep answering the last ffmpeg's values.
//! - `/healthz`: `200 ok`, else `503` with `<health>: <reason>` (e.g. `stalled: no output for 16 s`).
//! - `/metrics`: a metric that has no value yet (no progress block, no measurable rate) keeps its
//!   `# HELP`/`# TYPE` lines but has no sample, rather than `NaN`. `ffwrapper_up` is `1` while
//!   ffmpeg runs (state `running`) and `0` before it starts, while it stops and after it exited.
//! - `HEAD` is answered like `GET` (without a body).
//! - With `API_TOKEN`, a TCP request other than `/healthz` without the token gets `401` (with
//!   `WWW-Authenticate: Bearer`) before anything else, unknown paths included, so paths cannot
//!   be probed. The scheme `Bearer` is matched case-insensitively, the token exactly.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use shared::api::{Health, State, Status};
use shared::timefmt;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::Filter;

use crate::ring::Snapshot;
use crate::state::Daemon;

/// `count` when a `/last_*` request gives none.
const DEFAULT_COUNT: usize = 20;
/// `seconds` when a `/series` request gives none.
const DEFAULT_SERIES_SECONDS: u64 = 300;
/// Snapshots with more lines than this are formatted on a blocking thread.
const BLOCKING_FORMAT_LINES: usize = 2048;

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How much any one client may take.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// A request head (and an idle keep-alive connection) must arrive within this.
    header_read: Duration,
    /// A connection whose answer cannot be written for this long is dropped.
    write_stall: Duration,
    /// Open connections per listener; a new one beyond this closes the least recently active
    /// connection that has no request in progress.
    connections: usize,
    /// The read buffer, so the largest request head (hyper's minimum is 8 KiB).
    max_buf: usize,
    max_headers: usize,
    /// How long [`Api::shutdown`] lets in-flight requests finish.
    drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            write_stall: Duration::from_secs(30),
            connections: 512,
            max_buf: 16 * 1024,
            max_headers: 64,
            drain: Duration::from_secs(3),
        }
    }
}

/// The API could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {addr}: {reason}")]
    Tcp { addr: SocketAddr, reason: String },
    #[error("cannot listen on {}: {reason}", path.display())]
    Unix { path: PathBuf, reason: String },
}

/// The running API. Dropping it stops the listeners; [`Api::shutdown`] also drains them and
/// removes the socket.
#[derive(Debug)]
pub struct Api {
    /// The actual TCP address (also with `HTTP_PORT=0`), when TCP is on.
    pub tcp_addr: Option<SocketAddr>,
    pub socket_path: PathBuf,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    socket_id: FileId,
}

/// Serves the API on `WORKDIR/api.sock` (mode 0660, replacing a leftover socket) and, when
/// `config.http_port` is set, on TCP `http_host:http_port`. Returns once both listeners are
/// bound, with the actual TCP address (also when HTTP_PORT=0) and a handle. `bound` is called
/// with the socket path and that address after binding and before the first request is
/// accepted, so what it records (status/API_SOCKET, status/HTTP_ADDR) is there for any client
/// that got an answer. Cancelling `shutdown` stops accepting and drains like [`Api::shutdown`].
pub async fn start(
    shared: Arc<Daemon>,
    shutdown: CancellationToken,
    bound: impl FnOnce(&Path, Option<SocketAddr>),
) -> Result<Api, ApiError> {
    start_with(shared, shutdown, Limits::default(), bound).await
}

async fn start_with(
    shared: Arc<Daemon>,
    shutdown: CancellationToken,
    limits: Limits,
    bound: impl FnOnce(&Path, Option<SocketAddr>),
) -> Result<Api, ApiError> {
    let config = &shared.config;
    // TCP first: it is the one likely to fail, and then no socket is left behind.
    let tcp = match config.http_port {
        None => None,
        Some(port) => {
            let addr = SocketAddr::new(config.http_host, port);
            let listener = bind_tcp(addr).map_err(|e| ApiError::Tcp {
                addr,
                reason: io_reason(&e),
            })?;
            let local = listener.local_addr().map_err(|e| ApiError::Tcp {
                addr,
                reason: io_reason(&e),
            })?;
            Some((listener, local))
        }
    };
    let socket_path = config.workdir.join("api.sock");
    let (unix, socket_id) = bind_unix(&socket_path).map_err(|e| ApiError::Unix {
        path: socket_path.clone(),
        reason: io_reason(&e),
    })?;
    bound(&socket_path, tcp.as_ref().map(|(_, local)| *local));

    let stop = shutdown.child_token();
    let token = config.api_token.as_ref().map(|t| t.as_bytes().to_vec());
    let mut tasks = Vec::new();
    let unix_ctx = Arc::new(Ctx {
        shared: shared.clone(),
        token: None,
    });
    let path = socket_path.clone();
    tasks.push(tokio::spawn({
        let stop = stop.clone();
        async move {
            serve(unix, unix_ctx, stop, limits).await;
            remove_socket(&path, socket_id);
        }
    }));
    let tcp_addr = tcp.map(|(listener, local)| {
        let ctx = Arc::new(Ctx { shared, token });
        tasks.push(tokio::spawn(serve(listener, ctx, stop.clone(), limits)));
        local
    });
    tracing::debug!(
        "API listening on {}{}",
        socket_path.display(),
        tcp_addr.map(|a| format!(" and {a}")).unwrap_or_default()
    );
    Ok(Api {
        tcp_addr,
        socket_path,
        stop,
        tasks,
        socket_id,
    })
}

impl Api {
    /// Stops accepting, drains in-flight requests (bounded time), removes api.sock.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        remove_socket(&self.socket_path, self.socket_id);
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What the handlers need: the state, and the token a request must carry (TCP only).
struct Ctx {
    shared: Arc<Daemon>,
    token: Option<Vec<u8>>,
}

// ===== listeners and connections =====

/// Identifies the socket file we created, so we never remove someone else's.
type FileId = (u64, u64);

/// Binds TCP with a listen backlog of 1024 (std's 128 overflows in a burst of connections, and
/// every SYN dropped then costs its client a one-second retransmit).
fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Binds the socket under a temporary name, sets its mode and renames it into place, so
/// `api.sock` never exists with another mode and a leftover one is replaced atomically.
fn bind_unix(path: &Path) -> io::Result<(UnixListener, FileId)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // As long as "api.sock", so a work directory whose socket path fits also fits this one.
    let tmp = dir.join(".api.tmp");
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(&tmp)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660))
        .and_then(|()| std::fs::rename(&tmp, path))
        .and_then(|()| std::fs::symlink_metadata(path));
    match placed {
        Ok(meta) => Ok((listener, (meta.dev(), meta.ino()))),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn remove_socket(path: &Path, id: FileId) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if (meta.dev(), meta.ino()) == id {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// "Permission denied (os error 13)" → "permission denied".
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

trait Listen: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

impl Listen for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<Self::Io> {
        let (io, _) = TcpListener::accept(self).await?;
        let _ = io.set_nodelay(true);
        Ok(io)
    }
}

impl Listen for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> io::Result<Self::Io> {
        Ok(UnixListener::accept(self).await?.0)
    }
}

/// What the accept loop knows of one open connection, to choose which one to close when the
/// listener is full.
struct ConnState {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last byte read or written (or of the accept).
    last_active_ms: AtomicU64,
    /// Requests whose answer is not completely handed to hyper yet.
    in_flight: AtomicUsize,
    /// A write is waiting for the client to read.
    write_pending: AtomicBool,
    done: AtomicBool,
}

impl ConnState {
    fn new(epoch: Instant) -> Self {
        let s = ConnState {
            epoch,
            last_active_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            write_pending: AtomicBool::new(false),
            done: AtomicBool::new(false),
        };
        s.touch();
        s
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    /// Idle: no request being answered and no answer waiting to be written.
    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && !self.write_pending.load(Ordering::Relaxed)
    }
}

/// An open connection, as the accept loop holds it.
struct Live {
    state: Arc<ConnState>,
    evict: CancellationToken,
}

/// Closes the least recently active idle connection; false when every one is busy.
fn evict_one(live: &mut Vec<Live>) -> bool {
    let oldest = live
        .iter()
        .enumerate()
        .filter(|(_, c)| c.state.idle())
        .min_by_key(|(_, c)| c.state.last_active_ms.load(Ordering::Relaxed))
        .map(|(i, _)| i);
    match oldest {
        Some(i) => {
            live.swap_remove(i).evict.cancel();
            true
        }
        None => false,
    }
}

/// Accepts until `stop`, one task per connection, then lets them finish for `limits.drain`.
///
/// Every connection is accepted at once: leaving new ones in the listen backlog while
/// `limits.connections` are open would let a flood of idle connections lock every new client
/// out until the header read timeout frees slots (with 5 000 held open: minutes). When the
/// listener is full, or accepting fails for lack of descriptors, the least recently active
/// connection without a request in progress is closed instead; if every connection is busy
/// answering, the new one is closed.
async fn serve<L: Listen>(listener: L, ctx: Arc<Ctx>, stop: CancellationToken, limits: Limits) {
    let filter = routes(ctx);
    let epoch = Instant::now();
    let mut live: Vec<Live> = Vec::new();
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        while conns.try_join_next().is_some() {}
        live.retain(|c| !c.state.done.load(Ordering::Relaxed));
        match accepted {
            Ok(io) => {
                if live.len() >= limits.connections && !evict_one(&mut live) {
                    tracing::debug!(
                        "API: {} connections all busy, closing a new one",
                        live.len()
                    );
                    continue;
                }
                let state = Arc::new(ConnState::new(epoch));
                let evict = CancellationToken::new();
                live.push(Live {
                    state: state.clone(),
                    evict: evict.clone(),
                });
                let filter = filter.clone();
                let stop = stop.clone();
                conns.spawn(async move {
                    serve_connection(io, filter, stop, evict, state.clone(), limits).await;
                    state.done.store(true, Ordering::Relaxed);
                });
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // Out of file descriptors, most likely: free one, or wait for some to be closed.
                if evict_one(&mut live) {
                    tokio::task::yield_now().await;
                    continue;
                }
                tracing::warn!("API accept failed: {}", io_reason(&e));
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.drain, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!("API: {} connections cut at shutdown", conns.len());
    }
    conns.shutdown().await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection<I, F>(
    io: I,
    filter: F,
    stop: CancellationToken,
    evict: CancellationToken,
    state: Arc<ConnState>,
    limits: Limits,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let io = TokioIo::new(StallGuard::new(io, limits.write_stall, state.clone()));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_buf_size(limits.max_buf)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let inner = TowerToHyperService::new(warp::service(filter));
    // Counts the request as in progress until hyper has taken the whole answer.
    let svc = hyper::service::service_fn(move |req| {
        let busy = Busy::start(state.clone());
        let answer = hyper::service::Service::call(&inner, req);
        async move {
            let resp = answer.await?;
            Ok::<_, Infallible>(resp.map(|body| Tracked {
                body: Box::pin(body),
                _busy: busy,
            }))
        }
    });
    let conn = builder.serve_connection(io, svc);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        // Closed to make room for a new connection: drop it at once.
        () = evict.cancelled() => return,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("API connection ended: {e}");
    }
}

/// A request in progress on a connection, until dropped.
struct Busy(Arc<ConnState>);

impl Busy {
    fn start(state: Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(state)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// An answer's body that keeps its request counted as in progress until hyper drops it.
struct Tracked<B> {
    body: Pin<Box<B>>,
    _busy: Busy,
}

impl<B: hyper::body::Body> hyper::body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        self.body.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Fails writes (and flushes) that stay pending longer than `limit`: a client that stops reading
/// its answer is dropped instead of holding a task and its buffers forever.
///
/// It also keeps the connection's [`ConnState`] up to date: the time of its last activity, and
/// whether a write is waiting for the client.
struct StallGuard<T> {
    io: T,
    limit: Duration,
    stalled_since: Option<Pin<Box<tokio::time::Sleep>>>,
    state: Arc<ConnState>,
}

impl<T> StallGuard<T> {
    fn new(io: T, limit: Duration, state: Arc<ConnState>) -> Self {
        StallGuard {
            io,
            limit,
            stalled_since: None,
            state,
        }
    }

    fn guard<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                self.stalled_since = None;
                self.state.write_pending.store(false, Ordering::Relaxed);
                self.state.touch();
                Poll::Ready(r)
            }
            Poll::Pending => {
                self.state.write_pending.store(true, Ordering::Relaxed);
                let limit = self.limit;
                let sleep = self
                    .stalled_since
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.guard(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.guard(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.guard(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.guard(cx, r)
    }
}

// ===== routes =====

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
}

impl Route {
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
            _ => return None,
        })
    }
}

/// The whole API as one filter that never rejects.
fn routes(
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
            let snap = if route == Route::LastStdout {
                shared.lines(count)
            } else {
                shared.blocks(count)
            };
            let body = if snap.len() > BLOCKING_FORMAT_LINES {
                match tokio::task::spawn_blocking(move || format_lines(&snap, json)).await {
                    Ok(body) => body,
                    Err(e) => {
                        return Ok(plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()));
                    }
                }
            } else {
                format_lines(&snap, json)
            };
            with_type(StatusCode::OK, if json { JSON } else { TEXT }, body)
        }
        Route::StartTime => match shared.ffmpeg_start_ms() {
            Some(ms) => plain(StatusCode::OK, timefmt::local_text(ms)),
            None => not_started(),
        },
        Route::Cmd => {
            if json_param(param("json"))? {
                with_type(StatusCode::OK, JSON, json_strings(&shared.cmd))
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
            json_value(&shared.series(seconds))
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
        Route::Metrics => with_type(StatusCode::OK, METRICS, metrics_text(&shared.status())),
    })
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

trait Bounded {
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

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

// ===== bodies =====

fn with_type(status: StatusCode, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
    let mut r = Response::new(body.into().into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn plain(status: StatusCode, body: impl Into<String>) -> Response {
    with_type(status, TEXT, body.into())
}

fn method_not_allowed() -> Response {
    let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

fn not_started() -> Response {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "ffmpeg has not been started yet",
    )
}

fn json_value<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => with_type(StatusCode::OK, JSON, body),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `["a", "b"]`, separators as in SPEC's examples.
fn json_strings(items: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + items.iter().map(|s| s.len() + 4).sum::<usize>());
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        push_json_str(&mut out, s);
    }
    out.push(b']');
    out
}

/// `s` as a JSON string, as serde_json writes it (`\"`, `\\`, `\n`, `\uXXXX`, UTF-8 kept), but
/// copying the runs between escapes at once: most lines have none.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Local `YYYY-MM-DD HH:MM:SS` of the last second seen; lines arrive in order, so most lines
/// reuse it.
struct TimeCache {
    second: i64,
    text: String,
}

impl TimeCache {
    fn new() -> Self {
        TimeCache {
            second: i64::MIN,
            text: String::new(),
        }
    }

    fn get(&mut self, unix_ms: i64) -> &str {
        let second = unix_ms.div_euclid(1000);
        if second != self.second {
            self.second = second;
            self.text = timefmt::local_text(second.saturating_mul(1000));
        }
        &self.text
    }
}

/// A snapshot as text (`<time> line` joined by `\n`) or JSON (`[["time", "line"], ...]`).
fn format_lines(snap: &Snapshot, json: bool) -> Vec<u8> {
    let text_bytes: usize = snap.iter().map(|(_, l)| l.len()).sum();
    let mut times = TimeCache::new();
    if json {
        // Escapes are rare in ffmpeg's output; the Vec grows if they are not.
        let mut out = Vec::with_capacity(2 + text_bytes + snap.len() * 30);
        out.push(b'[');
        for (i, (t, line)) in snap.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(b"[\"");
            out.extend_from_slice(times.get(t).as_bytes());
            out.extend_from_slice(b"\", ");
            push_json_str(&mut out, line);
            out.push(b']');
        }
        out.push(b']');
        out
    } else {
        let mut out = Vec::with_capacity(text_bytes + snap.len() * 23);
        for (i, (t, line)) in snap.iter().enumerate() {
            if i > 0 {
                out.push(b'\n');
            }
            out.push(b'<');
            out.extend_from_slice(times.get(t).as_bytes());
            out.extend_from_slice(b"> ");
            out.extend_from_slice(line.as_bytes());
        }
        out
    }
}

/// A sample value in the text format.
enum Sample {
    Int(u64),
    Float(f64),
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Sample::Int(n) => write!(f, "{n}"),
            Sample::Float(x) if x.is_nan() => f.write_str("NaN"),
            Sample::Float(x) if x == f64::INFINITY => f.write_str("+Inf"),
            Sample::Float(x) if x == f64::NEG_INFINITY => f.write_str("-Inf"),
            Sample::Float(x) => write!(f, "{x}"),
        }
    }
}

/// `GET /metrics`: Prometheus text format 0.0.4.
fn metrics_text(st: &Status) -> String {
    let mut out = String::with_capacity(3000);
    let p = st.progress.as_ref();
    let metric = |out: &mut String, name: &str, kind: &str, help: &str, v: Option<Sample>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        if let Some(v) = v {
            let _ = writeln!(out, "{name} {v}");
        }
    };
    let float = |v: Option<f64>| v.map(Sample::Float);
    let int = |v: Option<u64>| v.map(Sample::Int);
    metric(
        &mut out,
        "ffwrapper_up",
        "gauge",
        "1 while ffmpeg runs, 0 before it starts, while it stops and after it exited.",
        Some(Sample::Int(u64::from(st.state == State::Running))),
    );
    metric(
        &mut out,
        "ffwrapper_fps",
        "gauge",
        "Current frames per second over the rate window.",
        float(st.rates.fps),
    );
    metric(
        &mut out,
        "ffwrapper_speed",
        "gauge",
        "Current encoding speed (media seconds per second) over the rate window.",
        float(st.rates.speed),
    );
    metric(
        &mut out,
        "ffwrapper_bitrate_kbps",
        "gauge",
        "Output bitrate in kbit/s as ffmpeg reports it.",
        float(p.and_then(|p| p.bitrate_kbps)),
    );
    metric(
        &mut out,
        "ffwrapper_frames",
        "gauge",
        "Frames encoded so far.",
        int(p.and_then(|p| p.frame)),
    );
    metric(
        &mut out,
        "ffwrapper_dup_frames",
        "gauge",
        "Frames duplicated so far.",
        int(p.and_then(|p| p.dup_frames)),
    );
    metric(
        &mut out,
        "ffwrapper_drop_frames",
        "gauge",
        "Frames dropped so far.",
        int(p.and_then(|p| p.drop_frames)),
    );
    metric(
        &mut out,
        "ffwrapper_out_time_seconds",
        "gauge",
        "Media time written so far, in seconds.",
        float(p.and_then(|p| p.out_time_us).map(|us| us as f64 / 1e6)),
    );
    out.push_str(
        "# HELP ffwrapper_health The encode's health: 1 for the current state, 0 for the others.\n\
         # TYPE ffwrapper_health gauge\n",
    );
    for h in Health::ALL {
        let _ = writeln!(
            out,
            "ffwrapper_health{{state=\"{}\"}} {}",
            h.as_str(),
            u8::from(h == st.health)
        );
    }
    metric(
        &mut out,
        "ffwrapper_log_lines_total",
        "counter",
        "ffmpeg output lines received.",
        Some(Sample::Int(st.counters.log_lines)),
    );
    metric(
        &mut out,
        "ffwrapper_progress_blocks_total",
        "counter",
        "ffmpeg progress blocks received.",
        Some(Sample::Int(st.counters.progress_blocks)),
    );
    metric(
        &mut out,
        "ffwrapper_uptime_seconds",
        "gauge",
        "Seconds since wrapperd started.",
        Some(Sample::Float(st.uptime_s)),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::time::Instant;

    use shared::api::{ExitInfo, FfmpegStatus, Series};
    use shared::client::{Answer, Client, Target};
    use shared::progress::parse_all;
    use tempfile::TempDir;

    use super::*;
    use crate::config::Config;

    const T0: i64 = 1_795_478_040_123;

    struct Fixture {
        _dir: TempDir,
        shared: Arc<Daemon>,
        api: Api,
    }

    impl Fixture {
        async fn new(vars: &[(&str, &str)]) -> Fixture {
            Fixture::with_limits(vars, Limits::default()).await
        }

        async fn with_limits(vars: &[(&str, &str)], limits: Limits) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let shared = Arc::new(Daemon::new(config(&dir, vars), args()));
            let api = start_with(shared.clone(), CancellationToken::new(), limits, |_, _| {})
                .await
                .unwrap();
            Fixture {
                _dir: dir,
                shared,
                api,
            }
        }

        fn unix(&self) -> Client {
            Client::new(
                Target::Unix(self.api.socket_path.clone()),
                None,
                Duration::from_secs(10),
            )
            .unwrap()
        }

        fn tcp(&self, token: Option<&str>) -> Client {
            let addr = self.api.tcp_addr.expect("TCP is on");
            Client::new(
                Target::Tcp(format!("http://{addr}")),
                token.map(str::to_string),
                Duration::from_secs(10),
            )
            .unwrap()
        }

        fn push_lines(&self, lines: &[(i64, &str)]) {
            for (t, l) in lines {
                self.shared.push_line(*t, Instant::now(), l);
            }
        }
    }

    fn config(dir: &TempDir, vars: &[(&str, &str)]) -> Config {
        let mut all = vec![("WORKDIR".to_string(), dir.path().display().to_string())];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_vars(all).unwrap()
    }

    fn args() -> Vec<String> {
        [
            "-re",
            "-i",
            "my file.mp4",
            "-metadata",
            "title=\"déjà vu\"",
            "out.flv",
        ]
        .map(str::to_string)
        .to_vec()
    }

    fn block(frame: u64, out_time_us: i64) -> shared::progress::Block {
        let text = format!(
            "frame={frame}\nfps=25.00\nstream_0_0_q=28.0\nbitrate=1024.5kbits/s\n\
             total_size={}\nout_time_us={out_time_us}\nout_time=00:00:01.000000\n\
             dup_frames=1\ndrop_frames=2\nspeed=1.01x\nprogress=continue\n",
            frame * 1000
        );
        parse_all(&text).pop().unwrap()
    }

    fn stamp(ms: i64) -> String {
        timefmt::local_text(ms)
    }

    async fn get(c: &Client, path: &str) -> Answer {
        c.get(path).await.unwrap()
    }

    async fn ok(c: &Client, path: &str) -> Answer {
        let a = get(c, path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        a
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn last_stdout_text_and_json_forms() {
        let f = Fixture::new(&[]).await;
        f.push_lines(&[
            (T0, "first"),
            (T0 + 500, "sécond \"quoted\""),
            (T0 + 1500, "third\\"),
        ]);
        let c = f.unix();
        let all_text = format!(
            "<{}> first\n<{}> sécond \"quoted\"\n<{}> third\\",
            stamp(T0),
            stamp(T0),
            stamp(T0 + 1500)
        );
        for q in [
            "",
            "?count=0",
            "?count=3",
            "?count=100",
            "?json=0",
            "?json=false",
            "?json=FALSE",
        ] {
            let a = ok(&c, &format!("/last_stdout{q}")).await;
            assert_eq!(a.body, all_text, "{q}");
            assert_eq!(a.content_type, TEXT);
        }
        let a = ok(&c, "/last_stdout?count=1").await;
        assert_eq!(a.body, format!("<{}> third\\", stamp(T0 + 1500)));
        let json = format!(
            "[[\"{}\", \"first\"], [\"{}\", \"sécond \\\"quoted\\\"\"], [\"{}\", \"third\\\\\"]]",
            stamp(T0),
            stamp(T0),
            stamp(T0 + 1500)
        );
        for q in [
            "?json",
            "?json=",
            "?json=1",
            "?json=true",
            "?json=True",
            "?count=0&json",
        ] {
            let a = ok(&c, &format!("/last_stdout{q}")).await;
            assert_eq!(a.body, json, "{q}");
            assert_eq!(a.content_type, JSON);
        }
        let a = ok(&c, "/last_stdout?json&count=2").await;
        let v: Vec<(String, String)> = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v[1], (stamp(T0 + 1500), "third\\".to_string()));
        // The client fftop uses.
        let v = c.last_stdout(0).await.unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], (stamp(T0), "first".to_string()));
        let a = get(&c, "/last_stdout?json=yes").await;
        assert_eq!(a.status, 400);
        assert!(
            a.body.contains("json") && !a.body.contains('\n'),
            "{}",
            a.body
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn last_progress_blocks_and_default_count() {
        let f = Fixture::new(&[]).await;
        let c = f.unix();
        assert_eq!(ok(&c, "/last_progress").await.body, "");
        assert_eq!(ok(&c, "/last_progress?json").await.body, "[]");
        for i in 0..25u64 {
            f.shared.push_block(
                T0 + i as i64 * 1000,
                Instant::now(),
                &block(i, i as i64 * 40_000),
            );
        }
        let a = ok(&c, "/last_progress").await;
        let lines: Vec<&str> = a.body.split('\n').collect();
        assert_eq!(lines.len(), 20, "default count is 20");
        let first = block(5, 200_000);
        assert_eq!(lines[0], format!("<{}> {}", stamp(T0 + 5000), first.text));
        assert!(lines[19].starts_with(&format!("<{}> frame=24 fps=25.00 ", stamp(T0 + 24_000))));
        assert!(lines[19].ends_with(" progress=continue"), "{}", lines[19]);
        assert_eq!(c.last_progress(0).await.unwrap().len(), 25);
        assert_eq!(c.last_progress(3).await.unwrap().len(), 3);
        // Also the default on the stdout ring.
        for i in 0..30 {
            f.push_lines(&[(T0, &format!("l{i}"))]);
        }
        let a = ok(&c, "/last_stdout").await;
        assert_eq!(a.body.lines().count(), 20);
        assert!(a.body.ends_with("> l29"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn bad_numbers_are_400_with_one_line() {
        let f = Fixture::new(&[]).await;
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
        let f = Fixture::new(&[]).await;
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

    #[tokio::test(flavor = "multi_thread")]
    async fn status_and_series_json() {
        let f = Fixture::new(&[("ENCODING_RATE_WINDOW", "0")]).await;
        f.shared.ffmpeg_started(77, Instant::now());
        let now = timefmt::now_ms();
        f.shared
            .push_block(now - 10_000, Instant::now(), &block(10, 400_000));
        f.shared
            .push_block(now - 1_000, Instant::now(), &block(20, 800_000));
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
    async fn healthz_follows_health() {
        let f = Fixture::new(&[]).await;
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

    fn parse_metrics(body: &str) -> prometheus_parse::Scrape {
        assert!(body.ends_with('\n'));
        let mut documented = std::collections::HashSet::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                documented.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(documented.contains(name), "{name} has no # TYPE before it");
                let value = line.rsplit(' ').next().unwrap();
                assert!(
                    value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
                    "{line}"
                );
            }
        }
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
    }

    const METRIC_NAMES: [&str; 12] = [
        "ffwrapper_up",
        "ffwrapper_fps",
        "ffwrapper_speed",
        "ffwrapper_bitrate_kbps",
        "ffwrapper_frames",
        "ffwrapper_dup_frames",
        "ffwrapper_drop_frames",
        "ffwrapper_out_time_seconds",
        "ffwrapper_health",
        "ffwrapper_log_lines_total",
        "ffwrapper_progress_blocks_total",
        "ffwrapper_uptime_seconds",
    ];

    #[tokio::test(flavor = "multi_thread")]
    async fn metrics_parse_and_hold_every_metric() {
        let f = Fixture::new(&[("ENCODING_RATE_WINDOW", "0")]).await;
        let c = f.unix();
        // Before any block: documented, no samples for what has no value.
        let a = ok(&c, "/metrics").await;
        assert_eq!(a.content_type, METRICS);
        let scrape = parse_metrics(&a.body);
        for name in METRIC_NAMES {
            assert!(scrape.docs.contains_key(name), "{name} documented");
        }
        assert!(!scrape
            .samples
            .iter()
            .any(|s| s.metric == "ffwrapper_frames"));

        f.shared.ffmpeg_started(9, Instant::now());
        f.push_lines(&[(T0, "a"), (T0, "b"), (T0, "c")]);
        f.shared
            .push_block(T0, Instant::now(), &block(250, 10_500_000));
        let scrape = parse_metrics(&ok(&c, "/metrics").await.body);
        let value = |name: &str| {
            let s = scrape
                .samples
                .iter()
                .find(|s| s.metric == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) => v,
                ref other => panic!("{name}: {other:?}"),
            }
        };
        for name in METRIC_NAMES {
            value(name);
        }
        assert_eq!(value("ffwrapper_up"), 1.0);
        assert_eq!(value("ffwrapper_fps"), 25.0);
        assert_eq!(value("ffwrapper_speed"), 1.01);
        assert_eq!(value("ffwrapper_bitrate_kbps"), 1024.5);
        assert_eq!(value("ffwrapper_frames"), 250.0);
        assert_eq!(value("ffwrapper_dup_frames"), 1.0);
        assert_eq!(value("ffwrapper_drop_frames"), 2.0);
        assert_eq!(value("ffwrapper_out_time_seconds"), 10.5);
        assert_eq!(value("ffwrapper_log_lines_total"), 3.0);
        assert_eq!(value("ffwrapper_progress_blocks_total"), 1.0);
        assert!(value("ffwrapper_uptime_seconds") >= 0.0);
        assert!(matches!(
            scrape
                .samples
                .iter()
                .find(|s| s.metric == "ffwrapper_log_lines_total")
                .unwrap()
                .value,
            prometheus_parse::Value::Counter(_)
        ));
        let health: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == "ffwrapper_health")
            .collect();
        assert_eq!(health.len(), Health::ALL.len());
        let current = f.shared.health().0;
        for s in health {
            let state = s.labels.get("state").unwrap();
            let want = if state == current.as_str() { 1.0 } else { 0.0 };
            assert_eq!(s.value, prometheus_parse::Value::Gauge(want), "{state}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unknown_path_404_wrong_method_405_head_ok() {
        let f = Fixture::new(&[("HTTP_PORT", "0")]).await;
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

    fn raw_request(sock: &Path, req: &str) -> String {
        let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn token_guards_tcp_but_not_healthz_or_the_socket() {
        let f = Fixture::new(&[("HTTP_PORT", "0"), ("API_TOKEN", "s3cret")]).await;
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
        let addr = f.api.tcp_addr.unwrap();
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

    #[tokio::test(flavor = "multi_thread")]
    async fn socket_mode_replacement_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        // A leftover socket of an earlier run.
        let leftover = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        drop(leftover);
        let shared = Arc::new(Daemon::new(config(&dir, &[]), args()));
        let mut told = None;
        let api = start(shared, CancellationToken::new(), |p, tcp| {
            told = Some((p.to_path_buf(), tcp));
        })
        .await
        .unwrap();
        assert_eq!(api.socket_path, sock);
        assert_eq!(told, Some((sock.clone(), None)), "bound() was told where");
        let meta = std::fs::symlink_metadata(&sock).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
        assert!(api.tcp_addr.is_none());
        let c = Client::new(Target::Unix(sock.clone()), None, Duration::from_secs(5)).unwrap();
        ok(&c, "/get_pid").await;
        assert!(!dir.path().join(".api.tmp").exists());
        api.shutdown().await;
        assert!(!sock.exists(), "api.sock removed");
        assert!(c.get("/get_pid").await.is_err());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn cancelling_the_token_stops_and_removes_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(Daemon::new(config(&dir, &[]), args()));
        let token = CancellationToken::new();
        let api = start(shared, token.clone(), |_, _| {}).await.unwrap();
        token.cancel();
        let t = Instant::now();
        while api.socket_path.exists() && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!api.socket_path.exists());
        api.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn http_port_0_gives_a_real_address_and_bind_errors_are_one_line() {
        let f = Fixture::new(&[("HTTP_PORT", "0")]).await;
        let addr = f.api.tcp_addr.unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        ok(&f.tcp(None), "/status").await;
        ok(&f.unix(), "/status").await;

        let dir = tempfile::tempdir().unwrap();
        let port = addr.port().to_string();
        let shared = Arc::new(Daemon::new(config(&dir, &[("HTTP_PORT", &port)]), args()));
        let e = start(shared, CancellationToken::new(), |_, _| {
            panic!("bound() called although binding failed")
        })
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot listen on 127.0.0.1:{port}: address already in use")
        );
        assert!(!dir.path().join("api.sock").exists(), "nothing left behind");

        let shared = Arc::new(Daemon::new(
            config(&dir, &[("WORKDIR", "/nonexistent/dir")]),
            args(),
        ));
        let e = start(shared, CancellationToken::new(), |_, _| {})
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot listen on /nonexistent/dir/api.sock: no such file or directory"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn hundred_thousand_lines_in_order() {
        let f = Fixture::new(&[]).await;
        for i in 0..100_000i64 {
            f.shared.push_line(
                T0 + i * 10,
                Instant::now(),
                &format!("frame= {i} fps= 25 q=28.0 size= 1024kB time=00:00:01.00 bitrate= 1.0kbits/s speed=1x"),
            );
        }
        let c = f.unix();
        let t = Instant::now();
        let a = ok(&c, "/last_stdout?count=0").await;
        let took = t.elapsed();
        let lines: Vec<&str> = a.body.split('\n').collect();
        assert_eq!(lines.len(), 100_000);
        for (i, l) in lines.iter().enumerate() {
            let (stamp_part, text) = l.split_once("> ").unwrap();
            assert_eq!(&stamp_part[1..], stamp(T0 + i as i64 * 10));
            assert!(text.starts_with(&format!("frame= {i} ")), "{l}");
        }
        let v = c.last_stdout(0).await.unwrap();
        assert_eq!(v.len(), 100_000);
        assert!(v[99_999].1.starts_with("frame= 99999 "));
        // The goal is 100 ms in release builds; debug builds and busy machines get slack.
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[test]
    fn formatting_is_fast() {
        // Formatting alone, without HTTP: the part the API controls.
        let mut ring = crate::ring::Ring::new(100_000);
        for i in 0..100_000i64 {
            ring.push(T0 + i * 10, &format!("frame= {i} fps= 25 q=28.0 size= 1024kB time=00:00:01.00 bitrate= 1.0kbits/s speed=1x"));
        }
        let snap = ring.snapshot(0);
        let limit = Duration::from_millis(if cfg!(debug_assertions) { 2000 } else { 100 });
        let t = Instant::now();
        let text = format_lines(&snap, false);
        assert!(t.elapsed() < limit, "text: {:?}", t.elapsed());
        let t = Instant::now();
        let json = format_lines(&snap, true);
        assert!(t.elapsed() < limit, "json: {:?}", t.elapsed());
        assert!(text.len() > 100_000 * 90 && json.len() > text.len());
        let parsed: Vec<(String, String)> = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed.len(), 100_000);
        assert_eq!(parsed[7].1, snap.iter().nth(7).unwrap().1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_listener_closes_its_oldest_idle_connection_for_a_new_client() {
        let limits = Limits {
            connections: 4,
            ..Limits::default()
        };
        let f = Fixture::with_limits(&[("HTTP_PORT", "0")], limits).await;
        let addr = f.api.tcp_addr.unwrap();
        // Twenty silent connections on each listener: five times the limit.
        let mut held_unix = Vec::new();
        let mut held_tcp = Vec::new();
        for _ in 0..20 {
            held_unix.push(std::os::unix::net::UnixStream::connect(&f.api.socket_path).unwrap());
            held_tcp.push(std::net::TcpStream::connect(addr).unwrap());
        }
        let t = Instant::now();
        ok(&f.unix(), "/status").await;
        ok(&f.tcp(None), "/status").await;
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // The oldest silent connection was closed to make room.
        held_unix[0]
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = Vec::new();
        assert_eq!(held_unix[0].read_to_end(&mut buf).unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn silent_and_slow_clients_hold_up_nobody() {
        let limits = Limits {
            header_read: Duration::from_secs(2),
            ..Limits::default()
        };
        let f = Fixture::with_limits(&[("HTTP_PORT", "0")], limits).await;
        let addr = f.api.tcp_addr.unwrap();
        // Connections that send nothing, half a request line, or half the headers.
        let mut silent_unix = Vec::new();
        let mut silent_tcp = Vec::new();
        for _ in 0..5 {
            silent_unix.push(std::os::unix::net::UnixStream::connect(&f.api.socket_path).unwrap());
            silent_tcp.push(std::net::TcpStream::connect(addr).unwrap());
        }
        let mut partial = std::net::TcpStream::connect(addr).unwrap();
        partial.write_all(b"GET /status HT").unwrap();
        let mut half = std::os::unix::net::UnixStream::connect(&f.api.socket_path).unwrap();
        half.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let t = Instant::now();
        ok(&f.unix(), "/status").await;
        ok(&f.tcp(None), "/status").await;
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        // The silent connections are closed once the header read timeout passes.
        partial
            .set_read_timeout(Some(Duration::from_secs(8)))
            .unwrap();
        let mut buf = Vec::new();
        let t = Instant::now();
        let _ = partial.read_to_end(&mut buf);
        assert!(t.elapsed() < Duration::from_secs(6), "closed by the server");
        half.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let _ = half.read_to_end(&mut buf);
        assert!(t.elapsed() < Duration::from_secs(6), "closed by the server");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn oversized_request_heads_are_refused() {
        let f = Fixture::new(&[]).await;
        let big = "x".repeat(64 * 1024);
        let raw = raw_request(
            &f.api.socket_path,
            &format!("GET /status HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
        );
        assert!(
            raw.is_empty() || raw.starts_with("HTTP/1.1 431"),
            "{}",
            &raw[..raw.len().min(200)]
        );
        let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
        let raw = raw_request(
            &f.api.socket_path,
            &format!("GET /status HTTP/1.1\r\nHost: x\r\n{many}\r\n"),
        );
        assert!(
            !raw.starts_with("HTTP/1.1 200"),
            "{}",
            &raw[..raw.len().min(200)]
        );
        let raw = raw_request(&f.api.socket_path, "NOT HTTP AT ALL\r\n\r\n");
        assert!(!raw.starts_with("HTTP/1.1 200"));
        ok(&f.unix(), "/status").await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_that_stops_reading_is_dropped() {
        let limits = Limits {
            write_stall: Duration::from_millis(300),
            ..Limits::default()
        };
        let f = Fixture::with_limits(&[], limits).await;
        for i in 0..100_000i64 {
            f.shared
                .push_line(T0, Instant::now(), &format!("line {i} {}", "y".repeat(60)));
        }
        let full = ok(&f.unix(), "/last_stdout?count=0").await.body.len();
        let mut s = std::os::unix::net::UnixStream::connect(&f.api.socket_path).unwrap();
        s.write_all(b"GET /last_stdout?count=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(out.len() < full, "cut off: {} of {full}", out.len());
        ok(&f.unix(), "/status").await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn two_hundred_concurrent_clients() {
        let f = Fixture::new(&[("HTTP_PORT", "0")]).await;
        let mut tasks = JoinSet::new();
        for i in 0..200 {
            let c = if i % 2 == 0 { f.unix() } else { f.tcp(None) };
            tasks.spawn(async move {
                for _ in 0..5 {
                    let st = c.status().await.unwrap();
                    assert_eq!(st.pid, std::process::id());
                }
            });
        }
        let mut done = 0;
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
            done += 1;
        }
        assert_eq!(done, 200);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn shutdown_is_bounded_with_open_connections() {
        let limits = Limits {
            drain: Duration::from_millis(500),
            ..Limits::default()
        };
        let f = Fixture::with_limits(&[("HTTP_PORT", "0")], limits).await;
        let addr = f.api.tcp_addr.unwrap();
        let c = f.unix();
        ok(&c, "/status").await; // leaves an idle keep-alive connection
        let _silent = std::net::TcpStream::connect(addr).unwrap();
        let mut half = std::os::unix::net::UnixStream::connect(&f.api.socket_path).unwrap();
        half.write_all(b"GET /status HTTP/1.1\r\n").unwrap();
        let path = f.api.socket_path.clone();
        let t = Instant::now();
        f.api.shutdown().await;
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(!path.exists());
        assert!(std::net::TcpStream::connect(addr).is_err(), "TCP closed");
    }

    #[test]
    fn json_strings_escape_like_serde_json() {
        let nasty = [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "ctl \u{0}\u{1}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1b}\u{1f} \u{7f}",
            "utf8 déjà vu ✓ \u{FFFD} 𝄞",
        ];
        for s in nasty {
            let mut mine = Vec::new();
            push_json_str(&mut mine, s);
            assert_eq!(
                String::from_utf8(mine).unwrap(),
                serde_json::to_string(s).unwrap()
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
        assert_eq!(
            io_reason(&io::Error::from_raw_os_error(13)),
            "permission denied"
        );
    }
}
