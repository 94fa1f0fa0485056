//! The API client: one wrapperd reached over its Unix socket or over TCP (SPEC §6, §8).
//!
//! fftop and the integration tests use it, so the wire format is exercised by the same code that
//! real users run. Reading is `GET`; the two control requests (`POST /stop`, `POST /restart`,
//! SPEC §10) are [`Client::stop`] and [`Client::restart`], whose refusals (`401`, `403`, `409`)
//! come back as [`ClientError::Refused`] with the status, so a caller can tell "not allowed"
//! from "already stopping" from a broken connection.
//!
//! Each [`Client`] keeps one keep-alive HTTP/1.1 connection to its wrapperd (module `transport`),
//! shared by its clones, because fftop asks every target every second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The HTTP method of [`Client::request`]: `http::Method`, the same type as `reqwest::Method`
/// and `warp::http::Method`.
pub use hyper::Method;

use crate::api::{RunRecord, Series, Status};

mod transport;

use transport::{RawAnswer, Transport};

/// Where a wrapperd's API is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A Unix socket (a work directory's `api.sock`).
    Unix(PathBuf),
    /// A base URL such as `http://127.0.0.1:8080`.
    Tcp(String),
}

impl Target {
    /// Reads a target as fftop's command line gives it: a work directory (its `api.sock`), a
    /// socket path, `HOST:PORT` or `http://HOST:PORT`.
    pub fn parse(s: &str) -> Target {
        if let Some(rest) = s.strip_prefix("http://") {
            return Target::Tcp(format!("http://{}", rest.trim_end_matches('/')));
        }
        let path = Path::new(s);
        if path.is_dir() {
            return Target::Unix(path.join("api.sock"));
        }
        let looks_like_addr = !s.contains('/')
            && s.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
            });
        if looks_like_addr && !path.exists() {
            return Target::Tcp(format!("http://{s}"));
        }
        // A path that does not exist yet is a work directory whose wrapperd has not started,
        // unless it is named like a socket.
        let is_socket_name = path.extension().is_some_and(|e| e == "sock");
        if !path.exists() && !is_socket_name {
            return Target::Unix(path.join("api.sock"));
        }
        Target::Unix(path.to_path_buf())
    }

    /// A short name for the target: the work directory's name, or the address.
    pub fn name(&self) -> String {
        match self {
            Target::Unix(sock) => {
                let dir = if sock.file_name().is_some_and(|n| n == "api.sock") {
                    sock.parent().unwrap_or(sock)
                } else {
                    sock
                };
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| dir.display().to_string())
            }
            Target::Tcp(url) => url.trim_start_matches("http://").to_string(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Tcp(u) => f.write_str(u),
        }
    }
}

/// What can go wrong talking to a wrapperd.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    /// A control request was refused: `401` (wrong token), `403` (control not allowed here),
    /// `409` (wrapperd is already stopping); `reason` is wrapperd's one-line answer.
    #[error("{} refused (HTTP {status}): {reason}", what.as_str())]
    Refused {
        /// What was asked.
        what: ControlAction,
        /// The HTTP status of the refusal.
        status: u16,
        /// wrapperd's message.
        reason: String,
    },
    #[error("bad answer: {0}")]
    Decode(String),
    #[error("request failed: {0}")]
    Other(String),
}

impl ClientError {
    /// The HTTP status the error carries, when wrapperd answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } | ClientError::Refused { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// A control request (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    /// `POST /stop`: stop gracefully and exit, no restart.
    Stop,
    /// `POST /restart`: stop the run gracefully and start a new one at once.
    Restart,
}

impl ControlAction {
    /// `stop` or `restart`: the path's name and the word of the `202` answer.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlAction::Stop => "stop",
            ControlAction::Restart => "restart",
        }
    }
}

/// A plain answer: status code, content type and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header (empty when there is none).
    pub content_type: String,
    /// The body as text (invalid UTF-8 replaced by `U+FFFD`).
    pub body: String,
}

/// A client for one wrapperd. Clones share its connection.
#[derive(Debug, Clone)]
pub struct Client {
    /// The keep-alive connection and the headers every request carries.
    transport: Arc<Transport>,
    /// The bound of one request, from connecting to the last byte of the body.
    timeout: Duration,
    /// Where the wrapperd is.
    target: Target,
}

impl Client {
    /// A client with a per-request `timeout` (connecting, sending and reading the whole
    /// answer); `token` is sent as a bearer token on TCP. Nothing is connected until the first
    /// request. [`ClientError::Build`] for a TCP target that is not `http://HOST[:PORT][/PATH]`
    /// or a token that cannot stand in a header.
    pub fn new(
        target: Target,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let token = match target {
            Target::Tcp(_) => token.filter(|t| !t.is_empty()),
            Target::Unix(_) => None,
        };
        let transport = Transport::new(&target, token.as_deref())?;
        Ok(Client {
            transport: Arc::new(transport),
            timeout,
            target,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// `GET path_and_query`, whatever the status.
    pub async fn get(&self, path_and_query: &str) -> Result<Answer, ClientError> {
        self.request(Method::GET, path_and_query).await
    }

    /// Any method; for tests of the API's own answers.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
    ) -> Result<Answer, ClientError> {
        let raw = self.raw(method, path_and_query).await?;
        Ok(Answer {
            status: raw.status,
            content_type: raw.content_type,
            body: into_text(raw.body),
        })
    }

    /// The answer's bytes, within the timeout.
    async fn raw(&self, method: Method, path_and_query: &str) -> Result<RawAnswer, ClientError> {
        tokio::time::timeout(self.timeout, self.transport.send(method, path_and_query))
            .await
            .unwrap_or(Err(ClientError::Timeout(self.timeout)))
    }

    /// `GET path`, requiring 200, decoded from JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        let a = self.raw(Method::GET, path).await?;
        if a.status != 200 {
            return Err(ClientError::Status {
                status: a.status,
                body: into_text(a.body).trim().to_string(),
            });
        }
        serde_json::from_slice(&a.body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get_json("/status").await
    }

    pub async fn series(&self, seconds: u64) -> Result<Series, ClientError> {
        self.get_json(&format!("/series?seconds={seconds}")).await
    }

    /// The newest `count` ended runs (`0`: all held), oldest first (`GET /runs`).
    pub async fn runs(&self, count: usize) -> Result<Vec<RunRecord>, ClientError> {
        self.get_json(&format!("/runs?count={count}")).await
    }

    /// `POST /stop`: wrapperd stops the encode gracefully and exits (no restart).
    pub async fn stop(&self) -> Result<(), ClientError> {
        self.control(ControlAction::Stop).await
    }

    /// `POST /restart`: wrapperd stops the run gracefully and starts a new one at once.
    pub async fn restart(&self) -> Result<(), ClientError> {
        self.control(ControlAction::Restart).await
    }

    /// `POST /<what>`: `Ok` on `202`; `401`, `403` and `409` are [`ClientError::Refused`].
    pub async fn control(&self, what: ControlAction) -> Result<(), ClientError> {
        let a = self
            .request(Method::POST, &format!("/{}", what.as_str()))
            .await?;
        match a.status {
            202 => Ok(()),
            401 | 403 | 409 => Err(ClientError::Refused {
                what,
                status: a.status,
                reason: a.body.trim().to_string(),
            }),
            status => Err(ClientError::Status {
                status,
                body: a.body.trim().to_string(),
            }),
        }
    }

    /// The newest `count` output lines (`0`: all held) as `(time, line)`.
    pub async fn last_stdout(&self, count: usize) -> Result<Vec<(String, String)>, ClientError> {
        self.get_json(&format!("/last_stdout?count={count}&json=1"))
            .await
    }

    /// The events after `since` still held (SPEC §11), oldest first, and the id of the newest
    /// event (the snapshot's): `/events?since=ID&once`, an answer that ends after the replay.
    pub async fn events(
        &self,
        since: u64,
    ) -> Result<(u64, Vec<crate::events::Event>), ClientError> {
        let a = self.get(&format!("/events?since={since}&once")).await?;
        if a.status != 200 {
            return Err(ClientError::Status {
                status: a.status,
                body: a.body.trim().to_string(),
            });
        }
        let (mut newest, mut out) = (0, Vec::new());
        for line in a.body.lines() {
            if let Some(json) = line.strip_prefix("data: ") {
                let e: crate::events::Event =
                    serde_json::from_str(json).map_err(|e| ClientError::Decode(e.to_string()))?;
                if e.event == crate::events::EventKind::Snapshot {
                    newest = e.id;
                } else {
                    out.push(e);
                }
            }
        }
        Ok((newest, out))
    }

    /// The newest `count` progress blocks (`0`: all held) as `(time, block)`.
    pub async fn last_progress(&self, count: usize) -> Result<Vec<(String, String)>, ClientError> {
        self.get_json(&format!("/last_progress?count={count}&json=1"))
            .await
    }
}

/// A body as text: as it is when it is UTF-8 (no copy), with `U+FFFD` for what is not.
fn into_text(body: hyper::body::Bytes) -> String {
    match String::from_utf8(Vec::from(body)) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let dir = std::env::temp_dir();
        assert_eq!(
            Target::parse(dir.to_str().unwrap()),
            Target::Unix(dir.join("api.sock"))
        );
        assert_eq!(
            Target::parse("/no/such/x.sock"),
            Target::Unix("/no/such/x.sock".into())
        );
        assert_eq!(
            Target::parse("127.0.0.1:8080"),
            Target::Tcp("http://127.0.0.1:8080".into())
        );
        assert_eq!(
            Target::parse("localhost:80"),
            Target::Tcp("http://localhost:80".into())
        );
        assert_eq!(
            Target::parse("http://h:1/"),
            Target::Tcp("http://h:1".into())
        );
    }

    #[test]
    fn target_names() {
        assert_eq!(Target::Unix("/srv/enc/cam1/api.sock".into()).name(), "cam1");
        assert_eq!(
            Target::Tcp("http://10.0.0.1:9000".into()).name(),
            "10.0.0.1:9000"
        );
    }
}
