//! A minimal HTTP/1.1 client for the measurements: one GET per connection, and an async
//! keep-alive open-loop load generator (measurement 6). Timing goes through no client library.

use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tests::http::{code_and_body, parse_head, try_raw, Head};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where a wrapperd's API is.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Unix(PathBuf),
    Tcp(String),
}

impl Target {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Target::Unix(_) => "socket",
            Target::Tcp(_) => "TCP",
        }
    }
}

/// One GET on a new connection (`Connection: close`); the status and the body.
pub(crate) fn get(target: &Target, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let raw = match target {
        Target::Unix(p) => try_raw(StdUnixStream::connect(p)?, req.as_bytes())?,
        Target::Tcp(a) => try_raw(std::net::TcpStream::connect(a)?, req.as_bytes())?,
    };
    code_and_body(raw)
}

pub(crate) fn get_json(target: &Target, path: &str) -> Option<serde_json::Value> {
    let (code, body) = get(target, path).ok()?;
    (code == 200)
        .then(|| serde_json::from_slice(&body).ok())
        .flatten()
}

/// One GET on a keep-alive connection; returns the status and the body length.
pub(crate) async fn get_keepalive<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut tokio::io::BufReader<S>,
    path: &str,
) -> std::io::Result<(u16, usize)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    s.get_mut().write_all(req.as_bytes()).await?;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let Head { code, len, chunked } = parse_head(&head);
    let mut total = 0;
    if chunked {
        loop {
            let mut line = String::new();
            s.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            skip_n(s, size + 2).await?;
            total += size;
            if size == 0 {
                break;
            }
        }
    } else {
        let n = len.unwrap_or(0);
        skip_n(s, n).await?;
        total = n;
    }
    Ok((code, total))
}

/// Reads and drops `n` bytes.
pub(crate) async fn skip_n<R: AsyncRead + Unpin>(s: &mut R, mut n: usize) -> std::io::Result<()> {
    let mut sink = [0u8; 16 * 1024];
    while n > 0 {
        let k = s.read(&mut sink[..n.min(16 * 1024)]).await?;
        if k == 0 {
            return Err(std::io::Error::other("short body"));
        }
        n -= k;
    }
    Ok(())
}

/// Open-loop load: `rate` requests/s of `path` for `secs`, over `conns` keep-alive connections.
/// A request's latency runs from the moment it is issued (queued for a free connection) until its
/// whole body is read, so a slow answer delays the ones behind it and that shows.
pub(crate) struct Load {
    /// Each request's latency, in ms.
    pub(crate) lat_ms: Vec<f64>,
    /// Requests that failed or got no `200`.
    pub(crate) errors: u64,
    /// Requests answered per second.
    pub(crate) achieved_rate: f64,
    /// Body bytes of one answer.
    pub(crate) bytes: usize,
}

pub(crate) async fn load(target: Target, path: String, rate: f64, secs: f64, conns: usize) -> Load {
    let n = (rate * secs).round() as usize;
    let (tx, rx) = tokio::sync::mpsc::channel::<tokio::time::Instant>(n.max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..conns {
        let (rx, target, path) = (rx.clone(), target.clone(), path.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut errors, mut bytes) = (0u64, 0usize);
            match target {
                Target::Unix(p) => match tokio::net::UnixStream::connect(&p).await {
                    Ok(s) => {
                        let mut s = tokio::io::BufReader::new(s);
                        worker(&mut s, &rx, &path, &mut lat, &mut errors, &mut bytes).await
                    }
                    Err(_) => errors += 1,
                },
                Target::Tcp(a) => match tokio::net::TcpStream::connect(&a).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        let mut s = tokio::io::BufReader::new(s);
                        worker(&mut s, &rx, &path, &mut lat, &mut errors, &mut bytes).await
                    }
                    Err(_) => errors += 1,
                },
            }
            (lat, errors, bytes)
        }));
    }
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..n {
        tick.tick().await;
        if tx.send(tokio::time::Instant::now()).await.is_err() {
            break;
        }
    }
    let issued = start.elapsed().as_secs_f64();
    drop(tx);
    let mut out = Load {
        lat_ms: Vec::new(),
        errors: 0,
        achieved_rate: n as f64 / issued.max(1e-9),
        bytes: 0,
    };
    for w in workers {
        if let Ok((l, e, b)) = w.await {
            out.lat_ms.extend(l);
            out.errors += e;
            out.bytes = out.bytes.max(b);
        }
    }
    out
}

pub(crate) async fn worker<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut tokio::io::BufReader<S>,
    rx: &tokio::sync::Mutex<tokio::sync::mpsc::Receiver<tokio::time::Instant>>,
    path: &str,
    lat: &mut Vec<f64>,
    errors: &mut u64,
    bytes: &mut usize,
) {
    loop {
        let Some(issued) = rx.lock().await.recv().await else {
            return;
        };
        match get_keepalive(s, path).await {
            Ok((200, n)) => {
                lat.push(issued.elapsed().as_secs_f64() * 1000.0);
                *bytes = n;
            }
            _ => {
                *errors += 1;
                return;
            }
        }
    }
}
