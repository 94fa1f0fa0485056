//! What one connection's bytes and requests pass through on their way to hyper.
//!
//! [`StallGuard`] wraps the socket: it fails writes a client has not read for
//! [`Limits::write_stall`](super::Limits::write_stall), and records the time of the last byte
//! read or written. [`Busy`] and [`Tracked`] count a request as in progress from its arrival
//! until hyper has taken the whole answer. Together they fill the connection's [`ConnState`],
//! which the accept loop reads to choose the connection it closes when the listener is full:
//! only an idle one (nothing in progress, no write waiting), the least recently active first.
//! The fields are atomics with relaxed ordering: each is a hint read on its own, and a stale
//! one only changes which idle connection is closed. [`drain_body`] reads a request's body, up
//! to a limit and within a time, before the routes see the request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the accept loop knows of one open connection, to choose which one to close when the
/// listener is full.
pub(crate) struct ConnState {
    /// The listener's start, which `last_active_ms` counts from.
    epoch: Instant,
    /// Milliseconds after `epoch` of the last byte read or written (or of the accept).
    pub(crate) last_active_ms: AtomicU64,
    /// Requests whose answer is not completely handed to hyper yet.
    in_flight: AtomicUsize,
    /// A write is waiting for the client to read.
    write_pending: AtomicBool,
    /// The connection's task has ended; the accept loop forgets it.
    pub(crate) done: AtomicBool,
}

impl ConnState {
    /// A connection accepted now.
    pub(crate) fn new(epoch: Instant) -> Self {
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

    /// Records activity now.
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    /// Idle: no request being answered and no answer waiting to be written.
    pub(crate) fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && !self.write_pending.load(Ordering::Relaxed)
    }
}

/// A request in progress on a connection, until dropped.
pub(crate) struct Busy(Arc<ConnState>);

impl Busy {
    /// Counts a request that just arrived.
    pub(crate) fn start(state: Arc<ConnState>) -> Self {
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
pub(crate) struct Tracked<B> {
    /// The answer's body as the routes made it.
    body: Pin<Box<B>>,
    /// Released with the body.
    _busy: Busy,
}

impl<B> Tracked<B> {
    /// `body`, counted as `busy` until dropped.
    pub(crate) fn new(body: B, busy: Busy) -> Self {
        Tracked {
            body: Box::pin(body),
            _busy: busy,
        }
    }
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

/// Why a request's body was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than the limit (`413`).
    TooLarge,
    /// Not complete within the time allowed (`408`).
    Timeout,
    /// The client broke the body off (`400`).
    Broken,
}

impl BodyError {
    /// The status and one-line text of the answer.
    pub(crate) fn answer(self, max: usize) -> (u16, String) {
        match self {
            BodyError::TooLarge => (413, format!("request body over {max} bytes")),
            BodyError::Timeout => (408, "request body not received in time".to_string()),
            BodyError::Broken => (400, "request body cut off".to_string()),
        }
    }
}

/// Reads a request's body and throws it away: no route takes a body, but a `POST` may carry
/// one, and it is read (rather than left in the socket) only up to `max` bytes and within
/// `timeout`, so no client can make a request cost more than that.
pub(crate) async fn drain_body<B>(
    body: &mut B,
    max: usize,
    timeout: Duration,
) -> Result<(), BodyError>
where
    B: hyper::body::Body<Data = hyper::body::Bytes> + Unpin,
{
    use hyper::body::Body as _;
    if body.is_end_stream() {
        return Ok(());
    }
    if body.size_hint().lower() > max as u64 {
        return Err(BodyError::TooLarge);
    }
    let read = async {
        let mut len = 0usize;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
        {
            let frame = frame.map_err(|_| BodyError::Broken)?;
            if let Some(data) = frame.data_ref() {
                len = len.saturating_add(data.len());
                if len > max {
                    return Err(BodyError::TooLarge);
                }
            }
        }
        Ok(())
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::Timeout))
}

/// Fails writes (and flushes) that stay pending longer than `limit`: a client that stops reading
/// its answer is dropped instead of holding a task and its buffers forever.
///
/// It also keeps the connection's [`ConnState`] up to date: the time of its last activity, and
/// whether a write is waiting for the client.
pub(crate) struct StallGuard<T> {
    /// The socket.
    io: T,
    /// How long a write may stay pending.
    limit: Duration,
    /// Started when a write first returned pending; cleared when one completes.
    stalled_since: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The connection's activity, shared with the accept loop.
    state: Arc<ConnState>,
}

impl<T> StallGuard<T> {
    /// Guards `io` with this write-stall limit.
    pub(crate) fn new(io: T, limit: Duration, state: Arc<ConnState>) -> Self {
        StallGuard {
            io,
            limit,
            stalled_since: None,
            state,
        }
    }

    /// Passes a write's result on, turning a pending write older than `limit` into an error.
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

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::super::testutil::{ok, Fixture, T0};
    use super::super::Limits;
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_client_that_stops_reading_is_dropped() {
        let limits = Limits {
            write_stall: Duration::from_millis(300),
            ..Limits::default()
        };
        let f = Fixture::with_limits(&[], limits);
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

    #[test]
    fn idle_means_nothing_in_progress_and_no_write_waiting() {
        let state = Arc::new(ConnState::new(Instant::now()));
        assert!(state.idle());
        let busy = Busy::start(state.clone());
        assert!(!state.idle());
        drop(busy);
        assert!(state.idle());
        state.write_pending.store(true, Ordering::Relaxed);
        assert!(!state.idle());
    }
}
