//! Binding the API's two sockets and serving them.
//!
//! One [`Listen`] trait covers TCP and the Unix socket, so the accept loop ([`Acceptor`]) and the
//! per-connection code ([`serve_connection`]) are written once (as in axum's `serve/listener.rs`).
//! The accept loop takes every connection at once: leaving new ones in the listen backlog while
//! [`Limits::connections`] are open would let a flood of idle connections lock every new client
//! out until the header read timeout frees slots (with 5 000 held open: minutes). When the
//! listener is full, or accepting fails for lack of descriptors, the least recently active
//! connection without a request in progress is closed instead; if every connection is busy
//! answering, the new one is closed. When no connection can be closed to free a descriptor, the
//! loop sleeps before accepting again rather than spinning on the error.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use warp::http::header::{self, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::format::plain;
use super::io::{drain_body, Busy, ConnState, StallGuard, Tracked};
use super::routes::{routes, Ctx, Origin};
use super::Limits;

/// Identifies the socket file we created, so we never remove someone else's.
pub(crate) type FileId = (u64, u64);

/// How long the accept loop waits after an accept error it cannot relieve by closing a
/// connection (out of descriptors with every connection busy).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(200);

/// Binds TCP with a listen backlog of 1024 (std's 128 overflows in a burst of connections, and
/// every SYN dropped then costs its client a one-second retransmit).
pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
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
pub(crate) fn bind_unix(path: &Path) -> io::Result<(UnixListener, FileId)> {
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

/// Removes the socket at `path` if it is still the one we created.
pub(crate) fn remove_socket(path: &Path, id: FileId) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if (meta.dev(), meta.ino()) == id {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// "Permission denied (os error 13)" → "permission denied".
pub(crate) fn io_reason(e: &io::Error) -> String {
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

/// A listening socket: TCP or Unix.
pub(crate) trait Listen: Send + 'static {
    /// A connection it accepted.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection, with who is at the other end (for the log of control requests).
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Origin)>> + Send;
}

impl Listen for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<(Self::Io, Origin)> {
        let (io, peer) = TcpListener::accept(self).await?;
        let _ = io.set_nodelay(true);
        Ok((io, Origin(peer.to_string().into())))
    }
}

impl Listen for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> io::Result<(Self::Io, Origin)> {
        let io = UnixListener::accept(self).await?.0;
        Ok((io, Origin("socket".into())))
    }
}

/// An open connection, as the accept loop holds it.
struct Live {
    /// Its activity, read to choose which one to close when the listener is full.
    state: Arc<ConnState>,
    /// Cancelled to close it at once.
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

/// The accept loop of one listener and the connections it has open.
struct Acceptor<F> {
    /// The routes every connection serves.
    filter: F,
    /// Cancelled to stop accepting and drain.
    stop: CancellationToken,
    /// Timeouts and sizes for every connection.
    limits: Limits,
    /// The time every [`ConnState`] counts its activity from.
    epoch: Instant,
    /// The open connections, to choose one to close when full.
    live: Vec<Live>,
    /// The connections' tasks, awaited (for [`Limits::drain`]) at shutdown.
    conns: JoinSet<()>,
}

/// Accepts until `stop`, one task per connection, then lets them finish for `limits.drain`.
pub(crate) async fn serve<L: Listen>(
    listener: L,
    ctx: Arc<Ctx>,
    stop: CancellationToken,
    limits: Limits,
) {
    let mut acceptor = Acceptor {
        filter: routes(ctx),
        stop,
        limits,
        epoch: Instant::now(),
        live: Vec::new(),
        conns: JoinSet::new(),
    };
    loop {
        let accepted = tokio::select! {
            () = acceptor.stop.cancelled() => break,
            a = listener.accept() => a,
        };
        while acceptor.conns.try_join_next().is_some() {}
        acceptor
            .live
            .retain(|c| !c.state.done.load(Ordering::Relaxed));
        match accepted {
            Ok((io, origin)) => acceptor.admit(io, origin),
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                if !acceptor.accept_failed(&e).await {
                    break;
                }
            }
        }
    }
    drop(listener);
    acceptor.drain().await;
}

impl<F> Acceptor<F>
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    /// Serves a new connection on its own task, closing an idle one first when full.
    fn admit<I>(&mut self, io: I, origin: Origin)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if self.live.len() >= self.limits.connections && !evict_one(&mut self.live) {
            tracing::debug!(
                "API: {} connections all busy, closing a new one",
                self.live.len()
            );
            return;
        }
        let state = Arc::new(ConnState::new(self.epoch));
        let evict = CancellationToken::new();
        self.live.push(Live {
            state: state.clone(),
            evict: evict.clone(),
        });
        let filter = self.filter.clone();
        let stop = self.stop.clone();
        let limits = self.limits;
        self.conns.spawn(async move {
            let conn = Conn {
                stop,
                evict,
                state: state.clone(),
                limits,
                origin,
            };
            serve_connection(io, filter, conn).await;
            state.done.store(true, Ordering::Relaxed);
        });
    }

    /// Out of file descriptors, most likely: frees one, or waits for some to be closed.
    /// False when `stop` came while waiting.
    async fn accept_failed(&mut self, e: &io::Error) -> bool {
        if evict_one(&mut self.live) {
            tokio::task::yield_now().await;
            return true;
        }
        tracing::warn!("API accept failed: {}", io_reason(e));
        tokio::select! {
            () = self.stop.cancelled() => false,
            () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => true,
        }
    }

    /// Lets the open connections finish for [`Limits::drain`], then cuts the rest.
    async fn drain(mut self) {
        let conns = &mut self.conns;
        let drained = tokio::time::timeout(self.limits.drain, async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::debug!("API: {} connections cut at shutdown", self.conns.len());
        }
        self.conns.shutdown().await;
    }
}

/// Errors of one connection that leave the listener fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// What one connection's task holds besides the socket and the routes.
struct Conn {
    /// Cancelled to stop: the request in progress finishes.
    stop: CancellationToken,
    /// Cancelled to close it at once (to make room for a new connection).
    evict: CancellationToken,
    /// Its activity, shared with the accept loop.
    state: Arc<ConnState>,
    /// Timeouts and sizes.
    limits: Limits,
    /// Who is at the other end, put in each request's extensions.
    origin: Origin,
}

/// Serves HTTP/1 on one connection until the client closes it, it breaks a limit, it is
/// evicted (dropped at once) or `stop` (finishes the request in progress). Each request's body
/// is read and discarded first ([`drain_body`]); the routes see the request with an empty one.
async fn serve_connection<I, F>(io: I, filter: F, conn: Conn)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let Conn {
        stop,
        evict,
        state,
        limits,
        origin,
    } = conn;
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
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = Busy::start(state.clone());
        let inner = inner.clone();
        let origin = origin.clone();
        async move {
            let (mut parts, mut body) = req.into_parts();
            let resp = match drain_body(&mut body, limits.max_body, limits.body_read).await {
                Ok(()) => {
                    parts.extensions.insert(origin);
                    let req = hyper::Request::from_parts(parts, String::new());
                    hyper::service::Service::call(&inner, req).await?
                }
                Err(e) => {
                    let (code, text) = e.answer(limits.max_body);
                    let mut r = plain(
                        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
                        text,
                    );
                    r.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    r
                }
            };
            Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, busy)))
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

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::super::testutil::{ok, raw_request, Fixture};
    use super::*;

    /// Long enough that a test which needed it to pass would fail first on its client's timeout.
    const NEVER: Duration = Duration::from_secs(3600);

    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_listener_closes_its_oldest_idle_connection_for_a_new_client() {
        // Without eviction the new clients would wait for a silent connection's header read
        // timeout, which is past their own.
        let limits = Limits {
            connections: 4,
            header_read: NEVER,
            ..Limits::default()
        };
        let f = Fixture::with_limits(&[("HTTP_PORT", "0")], limits);
        let addr = f.tcp_addr.unwrap();
        // Twenty silent connections on each listener: five times the limit.
        let mut held_unix = Vec::new();
        let mut held_tcp = Vec::new();
        for _ in 0..20 {
            held_unix.push(std::os::unix::net::UnixStream::connect(&f.api.socket_path).unwrap());
            held_tcp.push(std::net::TcpStream::connect(addr).unwrap());
        }
        ok(&f.unix(), "/status").await;
        ok(&f.tcp(None), "/status").await;
        // The oldest silent connection was closed to make room.
        held_unix[0]
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = Vec::new();
        assert_eq!(held_unix[0].read_to_end(&mut buf).unwrap(), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn silent_and_slow_clients_hold_up_nobody() {
        // Connections that send nothing, half a request line, or half the headers, and are
        // never timed out: the requests after them are answered all the same.
        let limits = Limits {
            header_read: NEVER,
            ..Limits::default()
        };
        let f = Fixture::with_limits(&[("HTTP_PORT", "0")], limits);
        let addr = f.tcp_addr.unwrap();
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(std::os::unix::net::UnixStream::connect(&f.api.socket_path).unwrap());
        }
        let _silent_tcp: Vec<_> = (0..5)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut partial = std::net::TcpStream::connect(addr).unwrap();
        partial.write_all(b"GET /status HT").unwrap();
        held[0]
            .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        ok(&f.unix(), "/status").await;
        ok(&f.tcp(None), "/status").await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn silent_and_slow_clients_are_closed_after_the_header_read_timeout() {
        let limits = Limits {
            header_read: Duration::from_secs(2),
            ..Limits::default()
        };
        let f = Fixture::with_limits(&[("HTTP_PORT", "0")], limits);
        let addr = f.tcp_addr.unwrap();
        let mut partial = std::net::TcpStream::connect(addr).unwrap();
        partial.write_all(b"GET /status HT").unwrap();
        let mut half = std::os::unix::net::UnixStream::connect(&f.api.socket_path).unwrap();
        half.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        // The server closes them (end of stream) long before the read timeout (an error).
        partial
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = Vec::new();
        assert!(
            closed(partial.read_to_end(&mut buf)),
            "closed by the server"
        );
        half.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        assert!(closed(half.read_to_end(&mut buf)), "closed by the server");
    }

    /// Whether a read ended because the server closed (or reset) the connection, rather than
    /// on the client's read timeout.
    fn closed(read: io::Result<usize>) -> bool {
        match read {
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn oversized_request_heads_are_refused() {
        let f = Fixture::new(&[]);
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
    async fn two_hundred_concurrent_clients() {
        let f = Fixture::new(&[("HTTP_PORT", "0")]);
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
        // The connections are never timed out: only the drain limit can end the shutdown.
        let limits = Limits {
            drain: Duration::from_millis(500),
            header_read: NEVER,
            ..Limits::default()
        };
        let f = Fixture::with_limits(&[("HTTP_PORT", "0")], limits);
        let addr = f.tcp_addr.unwrap();
        let c = f.unix();
        ok(&c, "/status").await; // leaves an idle keep-alive connection
        let _silent = std::net::TcpStream::connect(addr).unwrap();
        let mut half = std::os::unix::net::UnixStream::connect(&f.api.socket_path).unwrap();
        half.write_all(b"GET /status HTTP/1.1\r\n").unwrap();
        let path = f.api.socket_path.clone();
        let ended = tokio::time::timeout(Duration::from_secs(60), f.api.shutdown()).await;
        assert!(ended.is_ok(), "shutdown ended");
        assert!(!path.exists());
        assert!(std::net::TcpStream::connect(addr).is_err(), "TCP closed");
    }

    #[test]
    fn io_reasons_are_one_lower_case_line() {
        assert_eq!(
            io_reason(&io::Error::from_raw_os_error(13)),
            "permission denied"
        );
    }
}
