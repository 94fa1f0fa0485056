//! The HTTP API (SPEC §6), on `WORKDIR/api.sock` always and on `HTTP_HOST:HTTP_PORT` when
//! `HTTP_PORT` is set.
//!
//! # Layout
//! - this file: [`start`], the running [`Api`] and the `Limits` one client may take.
//! - `listener`: binding the two sockets, the `Listen` trait that covers both, the
//!   accept loop (one task per connection, eviction when full) and serving one connection.
//! - `io`: what a connection's bytes pass through: the write-stall guard and the tracking
//!   of activity and requests in progress that eviction chooses by.
//! - `routes`: the one warp filter: routing, access, query parameters.
//! - `auth`: who may read and who may control on each listener (the tokens, `API_READ_ONLY`).
//! - `control`: `POST /stop` and `POST /restart`, handed to the supervisor.
//! - `format`: text and JSON bodies (the seed's separators) and the responses around them.
//! - `metrics`: `/metrics`, from one table of name, type, help and value.
//!
//! The filter is served through hyper's HTTP/1 connection builder rather than `warp::serve`,
//! which has no knobs for untrusted clients. Each listener limits its open connections (when
//! full, or out of descriptors, it closes the least recently active connection that has no
//! request in progress, so a flood of idle connections cannot lock new clients out), each
//! connection has a header read timeout (which also closes idle keep-alive connections), a
//! bounded read buffer (larger request heads get `431`), at most 64 headers, a bounded request
//! body (read and discarded: larger gets `413`, slower than the header timeout `408`), and a
//! write-stall timeout (a client that stops reading its answer is dropped). Every connection is its own
//! task, so a slow or malformed client never holds up another one, and the handlers only take
//! the state's lock for microseconds ([`Daemon::lines`] and friends take snapshots; formatting
//! happens after the lock is released, on a blocking thread for large answers).
//!
//! The formats SPEC §6 and §10 leave open are described in `routes` (parameters, status codes),
//! `auth` (who may read and control: the whole table), `control`, `format` (bodies) and
//! `metrics`.

mod auth;
mod control;
mod format;
mod io;
mod listener;
mod metrics;
mod routes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::state::Daemon;
use auth::Guard;
use listener::{bind_tcp, bind_unix, io_reason, remove_socket, serve, FileId};
use routes::Ctx;

/// How much any one client may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// A request head (and an idle keep-alive connection) must arrive within this.
    pub(crate) header_read: Duration,
    /// A connection whose answer cannot be written for this long is dropped.
    pub(crate) write_stall: Duration,
    /// Open connections per listener; a new one beyond this closes the least recently active
    /// connection that has no request in progress.
    pub(crate) connections: usize,
    /// The read buffer, so the largest request head (hyper's minimum is 8 KiB).
    pub(crate) max_buf: usize,
    /// Headers per request; more is refused before any handler runs.
    pub(crate) max_headers: usize,
    /// The largest request body read (and discarded); a larger one gets `413`.
    pub(crate) max_body: usize,
    /// A request body must arrive within this, or the request gets `408`.
    pub(crate) body_read: Duration,
    /// How long [`Api::shutdown`] lets in-flight requests finish.
    pub(crate) drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            write_stall: Duration::from_secs(30),
            connections: 512,
            max_buf: 16 * 1024,
            max_headers: 64,
            max_body: 4096,
            body_read: Duration::from_secs(10),
            drain: Duration::from_secs(3),
        }
    }
}

/// The API could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The TCP listener could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Tcp {
        /// The address asked for (`HTTP_HOST:HTTP_PORT`).
        addr: SocketAddr,
        /// Why, in one lower-case line.
        reason: String,
    },
    /// The Unix socket could not be bound or put in place.
    #[error("cannot listen on {}: {reason}", path.display())]
    Unix {
        /// `WORKDIR/api.sock`.
        path: PathBuf,
        /// Why, in one lower-case line.
        reason: String,
    },
}

/// The running API. Dropping it stops the listeners; [`Api::shutdown`] also drains them and
/// removes the socket.
#[derive(Debug)]
pub struct Api {
    /// Where the Unix socket is (`WORKDIR/api.sock`).
    pub socket_path: PathBuf,
    /// Cancelled to stop both listeners (a child of the token given to [`start`]).
    stop: CancellationToken,
    /// The listeners' accept loops, awaited by [`Api::shutdown`].
    tasks: Vec<JoinHandle<()>>,
    /// The socket file we created, so only that one is removed.
    socket_id: FileId,
}

/// Serves the API on `WORKDIR/api.sock` (mode 0660, replacing a leftover socket) and, when
/// `config.http_port` is set, on TCP `http_host:http_port`. Returns once both listeners are
/// bound, with the actual TCP address (also when HTTP_PORT=0) and a handle. `bound` is called
/// with the socket path and that address after binding and before the first request is
/// accepted, so what it records (status/API_SOCKET, status/HTTP_ADDR) is there for any client
/// that got an answer. Cancelling `shutdown` stops accepting and drains like [`Api::shutdown`].
pub fn start(
    shared: Arc<Daemon>,
    shutdown: CancellationToken,
    bound: impl FnOnce(&Path, Option<SocketAddr>),
) -> Result<Api, ApiError> {
    start_with(shared, shutdown, Limits::default(), bound)
}

/// [`start`] with other limits (the tests use small ones).
pub(crate) fn start_with(
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
            let tcp_error = |e: std::io::Error| ApiError::Tcp {
                addr,
                reason: io_reason(&e),
            };
            let listener = bind_tcp(addr).map_err(tcp_error)?;
            let local = listener.local_addr().map_err(tcp_error)?;
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
    let mut tasks = Vec::new();
    let unix_ctx = Arc::new(Ctx {
        shared: shared.clone(),
        guard: Guard::socket(config),
        streams: Default::default(),
    });
    let tcp_guard = Guard::tcp(config);
    let path = socket_path.clone();
    tasks.push(tokio::spawn({
        let stop = stop.clone();
        async move {
            serve(unix, unix_ctx, stop, limits).await;
            remove_socket(&path, socket_id);
        }
    }));
    let tcp_addr = tcp.map(|(listener, local)| {
        let ctx = Arc::new(Ctx {
            shared,
            guard: tcp_guard,
            streams: Default::default(),
        });
        tasks.push(tokio::spawn(serve(listener, ctx, stop.clone(), limits)));
        local
    });
    tracing::debug!(
        "API listening on {}{}",
        socket_path.display(),
        tcp_addr.map(|a| format!(" and {a}")).unwrap_or_default()
    );
    Ok(Api {
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

/// What the API's tests share: a running API on a temporary work directory, clients for it,
/// and the inputs the tests push into its state.
#[cfg(test)]
pub(crate) mod testutil {
    use std::io::{Read as _, Write as _};
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use shared::client::{Answer, Client, Target};
    use shared::progress::parse_all;
    use shared::timefmt;
    use tempfile::TempDir;
    use tokio_util::sync::CancellationToken;

    use super::{start_with, Api, Limits};
    use crate::config::Config;
    use crate::state::Daemon;

    /// A wall-clock time (ms) the tests stamp lines with.
    pub(crate) const T0: i64 = 1_795_478_040_123;

    /// A running API over its own state and work directory.
    pub(crate) struct Fixture {
        /// The work directory, removed when the fixture is dropped.
        _dir: TempDir,
        /// The state the API answers from; the tests push into it.
        pub(crate) shared: Arc<Daemon>,
        /// The running API.
        pub(crate) api: Api,
        /// Its TCP address, as `bound` was told it, when TCP is on.
        pub(crate) tcp_addr: Option<SocketAddr>,
    }

    impl Fixture {
        /// An API with the default limits and these environment variables (besides WORKDIR).
        pub(crate) fn new(vars: &[(&str, &str)]) -> Fixture {
            Fixture::with_limits(vars, Limits::default())
        }

        /// An API with these limits.
        pub(crate) fn with_limits(vars: &[(&str, &str)], limits: Limits) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let shared = Arc::new(Daemon::new(config(&dir, vars), args()));
            let mut tcp_addr = None;
            let api = start_with(
                shared.clone(),
                CancellationToken::new(),
                limits,
                |_, tcp| {
                    tcp_addr = tcp;
                },
            )
            .unwrap();
            Fixture {
                _dir: dir,
                shared,
                api,
                tcp_addr,
            }
        }

        /// A client on the Unix socket.
        pub(crate) fn unix(&self) -> Client {
            Client::new(
                Target::Unix(self.api.socket_path.clone()),
                None,
                Duration::from_secs(10),
            )
            .unwrap()
        }

        /// A client on TCP (which must be on), with this token.
        pub(crate) fn tcp(&self, token: Option<&str>) -> Client {
            let addr = self.tcp_addr.expect("TCP is on");
            Client::new(
                Target::Tcp(format!("http://{addr}")),
                token.map(str::to_string),
                Duration::from_secs(10),
            )
            .unwrap()
        }

        /// Pushes stdout lines stamped with these times.
        pub(crate) fn push_lines(&self, lines: &[(i64, &str)]) {
            for (t, l) in lines {
                self.shared.push_line(*t, Instant::now(), l);
            }
        }
    }

    /// A configuration with WORKDIR `dir` and `vars`.
    pub(crate) fn config(dir: &TempDir, vars: &[(&str, &str)]) -> Config {
        let mut all = vec![("WORKDIR".to_string(), dir.path().display().to_string())];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_vars(all).unwrap()
    }

    /// ffmpeg's arguments, with a space, quotes and non-ASCII text.
    pub(crate) fn args() -> Vec<String> {
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

    /// A complete progress block.
    pub(crate) fn block(frame: u64, out_time_us: i64) -> shared::progress::Block {
        let text = format!(
            "frame={frame}\nfps=25.00\nstream_0_0_q=28.0\nbitrate=1024.5kbits/s\n\
             total_size={}\nout_time_us={out_time_us}\nout_time=00:00:01.000000\n\
             dup_frames=1\ndrop_frames=2\nspeed=1.01x\nprogress=continue\n",
            frame * 1000
        );
        parse_all(&text).pop().unwrap()
    }

    /// The local time text a line stamped `ms` shows.
    pub(crate) fn stamp(ms: i64) -> String {
        timefmt::local_text(ms)
    }

    /// `GET path`, whatever the status.
    pub(crate) async fn get(c: &Client, path: &str) -> Answer {
        c.get(path).await.unwrap()
    }

    /// `GET path`, which must answer 200.
    pub(crate) async fn ok(c: &Client, path: &str) -> Answer {
        let a = get(c, path).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        a
    }

    /// Sends `req` as is on the socket and reads the answer until the server closes.
    pub(crate) fn raw_request(sock: &Path, req: &str) -> String {
        let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use shared::client::{Client, Target};
    use tokio_util::sync::CancellationToken;

    use super::testutil::{args, config, ok, Fixture};
    use super::*;

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
        .unwrap();
        assert_eq!(api.socket_path, sock);
        assert_eq!(told, Some((sock.clone(), None)), "bound() was told where");
        let meta = std::fs::symlink_metadata(&sock).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
        let c = Client::new(Target::Unix(sock.clone()), None, Duration::from_secs(5)).unwrap();
        ok(&c, "/get_pid").await;
        assert!(!dir.path().join(".api.tmp").exists());
        api.shutdown().await;
        assert!(!sock.exists(), "api.sock removed");
        assert!(c.get("/get_pid").await.is_err());
    }

    /// A leftover file or symlink at `api.sock` is replaced (the symlink's target left alone);
    /// a directory there is an error that names the path.
    #[tokio::test(flavor = "multi_thread")]
    async fn leftover_file_or_symlink_is_replaced_and_a_directory_refused() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        for leftover in ["file", "symlink"] {
            match leftover {
                "file" => std::fs::write(&sock, "stale").unwrap(),
                _ => std::os::unix::fs::symlink(&target, &sock).unwrap(),
            }
            let shared = Arc::new(Daemon::new(config(&dir, &[]), args()));
            let api = start(shared, CancellationToken::new(), |_, _| {}).unwrap();
            let meta = std::fs::symlink_metadata(&sock).unwrap();
            assert!(meta.file_type().is_socket(), "{leftover} replaced");
            api.shutdown().await;
            assert!(!sock.exists(), "api.sock removed after the {leftover}");
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");

        std::fs::create_dir(&sock).unwrap();
        let shared = Arc::new(Daemon::new(config(&dir, &[]), args()));
        let e = start(shared, CancellationToken::new(), |_, _| {}).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot listen on {}: is a directory", sock.display())
        );
        assert!(sock.is_dir(), "the directory is left alone");
        assert!(!dir.path().join(".api.tmp").exists(), "nothing left behind");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn cancelling_the_token_stops_and_removes_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(Daemon::new(config(&dir, &[]), args()));
        let token = CancellationToken::new();
        let api = start(shared, token.clone(), |_, _| {}).unwrap();
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
        let f = Fixture::new(&[("HTTP_PORT", "0")]);
        let addr = f.tcp_addr.unwrap();
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
        let e = start(shared, CancellationToken::new(), |_, _| {}).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot listen on /nonexistent/dir/api.sock: no such file or directory"
        );
    }
}
