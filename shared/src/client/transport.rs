//! The client's HTTP/1.1 transport: one keep-alive connection to one wrapperd, over its Unix
//! socket or TCP, on hyper's low-level connection API.
//!
//! fftop polls every target every second (`--serve` polls a hundred), so what a request costs
//! here is most of what fftop costs. A pooled general-purpose client (reqwest, hyper-util's
//! legacy client) spends most of its time in pool bookkeeping and middleware layers a single
//! wrapperd never needs; this keeps one connection, made when first needed, and reuses it.
//!
//! - A [`Transport`] holds at most one idle connection (a [`SendRequest`] whose connection task
//!   is spawned on the caller's runtime). A request takes it out while it runs and puts it back
//!   after the whole body is read, so concurrent requests on clones never wait for each other:
//!   the second opens a connection of its own, and only one is kept afterwards.
//! - A connection that is closed (the server hung up, the runtime that drove it is gone) or
//!   not ready is dropped and a new one made, before anything is sent.
//! - A `GET` that fails on a reused connection before any answer (the server closed it while
//!   idle, just as the request went out) is sent once more on a new connection. Other methods
//!   are not repeated: a control request must not happen twice.
//! - The caller bounds the whole request (connect, send, body) with its timeout.

use std::path::PathBuf;
use std::sync::Mutex;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;

use super::{ClientError, Target};

/// The request body: the API's requests have none.
type ReqBody = Empty<Bytes>;

/// Where the connection goes.
#[derive(Debug)]
enum Endpoint {
    /// A Unix socket's path.
    Unix(PathBuf),
    /// A TCP host (name or IP address, without brackets) and port.
    Tcp {
        /// The name or address to connect to.
        host: String,
        /// The port.
        port: u16,
    },
}

/// A wrapperd's answer before it is turned into text or decoded.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    /// The HTTP status code.
    pub(crate) status: u16,
    /// The `Content-Type` header, empty when missing or not text.
    pub(crate) content_type: String,
    /// The whole body.
    pub(crate) body: Bytes,
}

/// One wrapperd's connection and what every request to it carries.
#[derive(Debug)]
pub(crate) struct Transport {
    /// Where to connect.
    endpoint: Endpoint,
    /// The `Host` header: the URL's authority, `wrapperd` on a Unix socket.
    host: HeaderValue,
    /// `Bearer <token>` (TCP only).
    auth: Option<HeaderValue>,
    /// The base URL's path (`/t/NAME` behind an aggregator), without a trailing `/`.
    prefix: String,
    /// The idle keep-alive connection, when there is one.
    idle: Mutex<Option<SendRequest<ReqBody>>>,
}

impl Transport {
    /// The transport for `target`; `token` is sent as a bearer token (the caller passes none
    /// for a Unix socket).
    pub(crate) fn new(target: &Target, token: Option<&str>) -> Result<Self, ClientError> {
        let (endpoint, host, prefix) = match target {
            Target::Unix(path) => (
                Endpoint::Unix(path.clone()),
                HeaderValue::from_static("wrapperd"),
                String::new(),
            ),
            Target::Tcp(url) => parse_base(url)?,
        };
        let auth = match token {
            Some(t) => {
                let mut v = HeaderValue::try_from(format!("Bearer {t}")).map_err(|_| {
                    ClientError::Build(
                        "the token is not a valid HTTP header value \
                         (visible ASCII characters and spaces only)"
                            .into(),
                    )
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Transport {
            endpoint,
            host,
            auth,
            prefix,
            idle: Mutex::new(None),
        })
    }

    /// Sends `method path_and_query` and reads the whole answer. Not bounded in time: the
    /// caller wraps it in its timeout.
    pub(crate) async fn send(
        &self,
        method: Method,
        path_and_query: &str,
    ) -> Result<RawAnswer, ClientError> {
        let uri = self.uri(path_and_query)?;
        let retry = method == Method::GET;
        let (mut conn, reused) = match self.take_idle().await {
            Some(c) => (c, true),
            None => (self.connect().await?, false),
        };
        let resp = match conn.send_request(self.request(&method, uri.clone())).await {
            Ok(r) => r,
            Err(e) if reused && retry && connection_lost(&e) => {
                conn = self.connect().await?;
                conn.send_request(self.request(&method, uri))
                    .await
                    .map_err(|e| failed(&method, path_and_query, &e))?
            }
            Err(e) => return Err(failed(&method, path_and_query, &e)),
        };
        let answer = read_answer(resp)
            .await
            .map_err(|e| failed(&method, path_and_query, &e))?;
        self.put_idle(conn);
        Ok(answer)
    }

    /// The request's URI: the base URL's path, then `path_and_query`.
    fn uri(&self, path_and_query: &str) -> Result<Uri, ClientError> {
        let parsed = if self.prefix.is_empty() {
            Uri::try_from(path_and_query)
        } else {
            Uri::try_from(format!("{}{path_and_query}", self.prefix))
        };
        parsed.map_err(|e| ClientError::Other(format!("bad path {path_and_query:?}: {e}")))
    }

    /// The request, with its `Host` and (on TCP, with a token) `Authorization` headers.
    fn request(&self, method: &Method, uri: Uri) -> Request<ReqBody> {
        let mut req = Request::new(Empty::new());
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        headers.insert(HOST, self.host.clone());
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        req
    }

    /// The idle connection if it can take a request now; a closed one is dropped.
    async fn take_idle(&self) -> Option<SendRequest<ReqBody>> {
        let mut conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        if conn.is_closed() {
            return None;
        }
        // Ready at once when idle; an error means the connection has ended.
        conn.ready().await.ok().map(|()| conn)
    }

    /// Keeps `conn` for the next request (replacing one a concurrent request put back).
    fn put_idle(&self, conn: SendRequest<ReqBody>) {
        if !conn.is_closed() {
            *self.idle.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn);
        }
    }

    /// A new connection, its task spawned on the current runtime.
    async fn connect(&self) -> Result<SendRequest<ReqBody>, ClientError> {
        let connect_error = |e: std::io::Error| ClientError::Connect(e.to_string());
        match &self.endpoint {
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_error)?;
                handshake(stream).await
            }
            Endpoint::Tcp { host, port } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(connect_error)?;
                // One write per request; no reason to let Nagle hold it.
                stream.set_nodelay(true).map_err(connect_error)?;
                handshake(stream).await
            }
        }
    }
}

/// The HTTP/1.1 handshake on `io` (no I/O happens); the connection runs in a task of its own
/// and ends when the last [`SendRequest`] is dropped or the server closes it.
async fn handshake<T>(io: T) -> Result<SendRequest<ReqBody>, ClientError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ClientError::Connect(chain(&e)))?;
    tokio::spawn(async move {
        // Its errors reach the request that was running, as that request's error.
        let _ = conn.await;
    });
    Ok(send)
}

/// The answer's status, content type and whole body.
async fn read_answer(resp: Response<Incoming>) -> Result<RawAnswer, hyper::Error> {
    let (parts, body) = resp.into_parts();
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = body.collect().await?.to_bytes();
    Ok(RawAnswer {
        status: parts.status.as_u16(),
        content_type,
        body,
    })
}

/// Whether a request failed because the connection went away before an answer came (not
/// because the answer was malformed or the request could not be written as asked).
fn connection_lost(e: &hyper::Error) -> bool {
    !(e.is_parse() || e.is_user())
}

/// A request that failed after the connection was made.
fn failed(method: &Method, path_and_query: &str, e: &hyper::Error) -> ClientError {
    ClientError::Other(format!("{method} {path_and_query}: {}", chain(e)))
}

/// An error and its causes, `outer: inner: ...`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// A TCP target's base URL as where to connect, the `Host` header and the path prefix.
fn parse_base(url: &str) -> Result<(Endpoint, HeaderValue, String), ClientError> {
    let bad = |why: &str| {
        ClientError::Build(format!(
            "bad API URL {url:?}: {why} (allowed: http://HOST:PORT, optionally with a path)"
        ))
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// is supported"));
    }
    if uri.query().is_some() {
        return Err(bad("a base URL has no query"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user names are not supported"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = authority.port_u16().unwrap_or(80);
    let header = HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?;
    let prefix = uri.path().trim_end_matches('/').to_string();
    Ok((Endpoint::Tcp { host, port }, header, prefix))
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
