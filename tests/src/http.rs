//! Raw HTTP/1.1 over a Unix socket or TCP, below the API client: for the tests that send what
//! a well-behaved client never would (garbage, huge heads, `HEAD`, wrong methods) and for
//! `ffw-bench`, which times requests without a client library in the way.
//!
//! One request per connection (`Connection: close`); the answer is read to EOF. wrapperd
//! answers with `Content-Length`; chunked bodies are decoded too.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long a raw connection waits for a read or a write before giving up.
const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends `req` and returns what came back up to EOF, or up to an error or a timeout: a cut
/// connection is an answer too (an empty one).
pub fn raw<S: Read + Write>(mut s: S, req: &[u8]) -> Vec<u8> {
    let _ = s.write_all(req);
    let mut out = Vec::new();
    // On an error the bytes read before it stay in `out`.
    let _ = s.read_to_end(&mut out);
    out
}

/// Sends `req` and reads the answer to EOF; any write or read error is an error.
pub fn try_raw<S: Read + Write>(mut s: S, req: &[u8]) -> io::Result<Vec<u8>> {
    s.write_all(req)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// A connection to a Unix socket with 15 s read and write timeouts; panics if it cannot connect.
pub fn unix(sock: &Path) -> UnixStream {
    let s = UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// A TCP connection (no Nagle delay) with 15 s read and write timeouts; panics if it cannot
/// connect within 5 s.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// The first line of an answer (`HTTP/1.1 200 OK`), or `""`.
pub fn status_line(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The value of header `name` (any case) in an answer's head.
pub fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// What an answer's head says about its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code; 0 when the status line is not HTTP.
    pub code: u16,
    /// `Content-Length`, when given.
    pub len: Option<usize>,
    /// Whether the body is sent in chunks (`Transfer-Encoding: chunked`).
    pub chunked: bool,
}

/// Reads an answer's head (the status line and the headers, without the blank line).
pub fn parse_head(head: &str) -> Head {
    let mut lines = head.split("\r\n");
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (mut len, mut chunked) = (None, false);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                len = v.trim().parse().ok();
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    Head { code, len, chunked }
}

/// Splits a whole answer into its status code and its body (decoded when chunked).
pub fn code_and_body(mut answer: Vec<u8>) -> io::Result<(u16, Vec<u8>)> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no HTTP header"))?;
    let head = parse_head(&String::from_utf8_lossy(&answer[..split]));
    let body = answer.split_off(split + 4);
    if !head.chunked {
        return Ok((head.code, body));
    }
    let mut out = Vec::new();
    let mut rest = &body[..];
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = &rest[(start + size + 2).min(rest.len())..];
    }
    Ok((head.code, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_plain_bodies_are_split_from_the_head() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
        assert_eq!(code_and_body(plain).unwrap(), (200, b"ok".to_vec()));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
                .to_vec();
        assert_eq!(code_and_body(chunked).unwrap(), (404, b"abc".to_vec()));
        assert!(code_and_body(b"garbage".to_vec()).is_err());
        let a = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n\r\n";
        assert_eq!(header(a, "allow"), Some("GET, HEAD"));
        assert_eq!(status_line(a.as_bytes()), "HTTP/1.1 405 Method Not Allowed");
    }
}
