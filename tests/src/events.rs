//! Test-side helpers for SPEC §11: a blocking server-sent events client ([`Sse`]) for
//! `GET /events`, a tiny HTTP server that records what a webhook sends ([`HookServer`]), and a
//! stand-in ffmpeg whose health flips with every progress block ([`flapping_ffmpeg`]), to make
//! bursts of events. The integration tests and `ffw-bench` share them.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Wd;

/// One frame of an event stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The `id:` line.
    pub id: Option<u64>,
    /// The `data:` line, parsed.
    pub data: Option<serde_json::Value>,
    /// A comment line (`: keep-alive`), without the colon.
    pub comment: Option<String>,
    /// When the frame was read.
    pub at: Instant,
}

impl Frame {
    /// The event's kind (`data.event`), or `""`.
    pub fn kind(&self) -> &str {
        self.data
            .as_ref()
            .and_then(|d| d["event"].as_str())
            .unwrap_or("")
    }
}

/// A `GET /events` stream read frame by frame, over any socket.
pub struct Sse<S: Read + Write> {
    /// The connection, buffered.
    r: BufReader<S>,
    /// The status code of the answer.
    pub status: u16,
    /// Decoded body text not yet split into frames.
    pending: String,
    /// The whole answer's head and body, when it was not a stream (an error).
    pub head: String,
    /// The chunked body ended.
    ended: bool,
}

impl<S: Read + Write> Sse<S> {
    /// Sends `GET path` with `headers` (each `Name: value\r\n`) and reads the answer's head.
    pub fn open(mut s: S, path: &str, headers: &str) -> io::Result<Sse<S>> {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes())?;
        let mut r = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                break;
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok(Sse {
            r,
            status,
            pending: String::new(),
            head,
            ended: false,
        })
    }

    /// The underlying socket.
    pub fn get_ref(&self) -> &S {
        self.r.get_ref()
    }

    /// The next frame; `Ok(None)` when the stream ended, `Err` on a read error or timeout.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if let Some(i) = self.pending.find("\n\n") {
                let text: String = self.pending.drain(..i + 2).collect();
                return Ok(Some(parse_frame(&text)));
            }
            if self.ended || !self.read_chunk()? {
                self.ended = true;
                return Ok(None);
            }
        }
    }

    /// Reads one chunk of the chunked body into `pending`; false at its end.
    fn read_chunk(&mut self) -> io::Result<bool> {
        let mut size = String::new();
        if self.r.read_line(&mut size)? == 0 {
            return Ok(false);
        }
        let n = usize::from_str_radix(size.trim(), 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {size:?}")))?;
        if n == 0 {
            return Ok(false);
        }
        let mut buf = vec![0; n + 2];
        self.r.read_exact(&mut buf)?;
        buf.truncate(n);
        self.pending.push_str(&String::from_utf8_lossy(&buf));
        Ok(true)
    }

    /// Frames until one whose kind is `kind` (included), or an error after `timeout` of the
    /// socket's read timeout.
    pub fn until(&mut self, kind: &str) -> Vec<Frame> {
        let mut out = Vec::new();
        loop {
            match self.next_frame() {
                Ok(Some(f)) => {
                    let done = f.kind() == kind;
                    out.push(f);
                    if done {
                        return out;
                    }
                }
                Ok(None) => panic!("stream ended before {kind}: {out:#?}"),
                Err(e) => panic!("no {kind} event ({e}); got {out:#?}"),
            }
        }
    }
}

fn parse_frame(text: &str) -> Frame {
    let mut f = Frame {
        id: None,
        data: None,
        comment: None,
        at: Instant::now(),
    };
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            f.id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("data: ") {
            f.data =
                Some(serde_json::from_str(v).unwrap_or_else(|e| panic!("bad JSON {v:?}: {e}")));
        } else if let Some(v) = line.strip_prefix(':') {
            f.comment = Some(v.trim().to_string());
        }
    }
    f
}

/// One request a [`HookServer`] received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it was read completely.
    pub at: Instant,
    /// The request line and headers.
    pub head: String,
    /// The body, parsed as JSON (`Null` when it is not).
    pub body: serde_json::Value,
    /// The status it was answered with.
    pub answered: u16,
}

/// A webhook receiver on 127.0.0.1: answers each request with the next status of its script
/// (then `200`), and records what it received.
pub struct HookServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it received, in order.
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl HookServer {
    /// Starts it with `script` (statuses for the first requests).
    pub fn start(script: &[u16]) -> HookServer {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(
            script.iter().copied().collect::<VecDeque<u16>>(),
        ));
        let rec = received.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (rec, script) = (rec.clone(), script.clone());
                std::thread::spawn(move || serve(s, &rec, &script));
            }
        });
        HookServer { addr, received }
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// What it received so far.
    pub fn got(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Serves the requests of one connection (keep-alive) until it closes.
fn serve(s: std::net::TcpStream, rec: &Mutex<Vec<Received>>, script: &Mutex<VecDeque<u16>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let answered = script.lock().unwrap().pop_front().unwrap_or(200);
        rec.lock().unwrap().push(Received {
            at: Instant::now(),
            head,
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            answered,
        });
        let answer = format!("HTTP/1.1 {answered} X\r\nContent-Length: 2\r\n\r\nok");
        if w.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A stand-in ffmpeg (a shell script in `wd`'s temporary directory) that writes `n` progress
/// blocks to its `-progress` FIFO, one every `every` seconds, alternating between a good one
/// (fps 30, speed 1) and a failing one (fps 1, speed 0.1), then good ones every 0.2 s for
/// `tail_secs` before it exits 0. With checks active at once and `ENCODING_RATE_WINDOW=0`
/// (see [`FLAPPING_VARS`]), the health flips with every block: a burst of `health` events.
pub fn flapping_ffmpeg(wd: &Wd, n: u32, every: f64, tail_secs: f64) -> PathBuf {
    let tail = (tail_secs / 0.2).ceil() as u32;
    wd.script(
        "flapping-ffmpeg",
        &format!(
            r#"exec 3>"$2"
i=0
block() {{ printf 'frame=%d\nfps=%s\nout_time_us=%d\nspeed=%sx\nprogress=continue\n' $i $1 $((i*40000)) $2 >&3; }}
while [ $i -lt {n} ]; do
  i=$((i+1))
  if [ $((i % 2)) -eq 1 ]; then block 30 1.0; else block 1 0.1; fi
  sleep {every}
done
j=0
while [ $j -lt {tail} ]; do
  i=$((i+1)); j=$((j+1))
  block 30 1.0
  sleep 0.2
done
exit 0"#
        ),
    )
}

/// The settings under which [`flapping_ffmpeg`]'s blocks flip the health: checks active at
/// once, ffmpeg's own figures, never stopped for failing or stalling.
pub const FLAPPING_VARS: &[(&str, &str)] = &[
    ("MANAGER_START_DELAY", "0"),
    ("ENCODING_CHECK_START_DELAY", "0"),
    ("ENCODING_RATE_WINDOW", "0"),
    ("ENCODING_MAX_ERROR_TIME", "10000"),
    ("ENCODING_MAX_STDOUT_STUCK_TIME", "10000"),
];
