//! The transport against small scripted servers (plain threads and std sockets, so they do not
//! depend on the runtime under test): connection reuse, reconnecting, the one retry, timeouts,
//! connection errors and the headers each request carries.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{Client, ClientError, Method, Target};

/// What the server does on one connection.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Script {
    /// Answers every request and keeps the connection open.
    KeepAlive,
    /// Answers one request with `Connection: close` and closes.
    CloseAfterOne,
    /// Answers one request, then reads the next and closes without answering (a server that
    /// gave up on an idle connection just as the request came).
    DropSecond,
    /// Reads, never answers.
    Hang,
}

/// What a test server saw.
#[derive(Debug, Default)]
struct Seen {
    /// Connections accepted.
    accepted: AtomicUsize,
    /// The request heads, in order.
    heads: Mutex<Vec<String>>,
}

impl Seen {
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Serves `listener`'s connections on threads, connection `i` by `script(i)`.
fn serve<S, L>(mut accept: L, script: fn(usize) -> Script) -> Arc<Seen>
where
    S: Read + Write + Send + 'static,
    L: FnMut() -> std::io::Result<S> + Send + 'static,
{
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    std::thread::spawn(move || {
        while let Ok(stream) = accept() {
            let i = s.accepted.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            std::thread::spawn(move || connection(stream, script(i), &s));
        }
    });
    seen
}

/// Reads one request head; `None` at the end of the stream.
fn read_head(stream: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// One connection, as `script` says.
fn connection(mut stream: impl Read + Write, script: Script, seen: &Seen) {
    let mut answered = 0;
    while let Some(head) = read_head(&mut stream) {
        let missing = head.starts_with("GET /missing ");
        seen.heads.lock().unwrap().push(head);
        let close = match script {
            Script::Hang => continue,
            Script::DropSecond if answered == 1 => return,
            Script::CloseAfterOne => "Connection: close\r\n",
            _ => "",
        };
        answered += 1;
        let (status, body) = if missing {
            ("404 Not Found", " no such path \n".to_string())
        } else {
            ("200 OK", format!("{{\"n\":{answered}}}"))
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{close}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).is_err() || !close.is_empty() {
            return;
        }
    }
}

/// A server on a Unix socket in a new directory (kept while the test runs).
fn unix_server(script: fn(usize) -> Script) -> (tempfile::TempDir, Target, Arc<Seen>) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let seen = serve(move || listener.accept().map(|(s, _)| s), script);
    (dir, Target::Unix(sock), seen)
}

/// A server on a free TCP port of 127.0.0.1; `path` is the base URL's path.
fn tcp_server(script: fn(usize) -> Script, path: &str) -> (Target, Arc<Seen>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = serve(move || listener.accept().map(|(s, _)| s), script);
    (Target::Tcp(format!("http://{addr}{path}")), seen)
}

fn client(target: Target, token: Option<&str>) -> Client {
    Client::new(target, token.map(str::to_string), Duration::from_secs(5)).unwrap()
}

/// The `n` of the test server's answer.
async fn get_n(c: &Client) -> u64 {
    let v: serde_json::Value = c.get_json("/status").await.expect("GET /status");
    v["n"].as_u64().unwrap()
}

#[tokio::test]
async fn requests_share_one_keep_alive_connection() {
    let (_dir, target, seen) = unix_server(|_| Script::KeepAlive);
    let c = client(target, Some("ignored on a socket"));
    let clone = c.clone();
    assert_eq!(get_n(&c).await, 1);
    assert_eq!(get_n(&clone).await, 2);
    let a = c.get("/metrics").await.unwrap();
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "application/json")
    );
    assert_eq!(a.body, r#"{"n":3}"#);
    assert_eq!(seen.accepted(), 1, "one connection for three requests");
    for head in seen.heads() {
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("\r\nhost: wrapperd\r\n"), "{head}");
        assert!(
            !lower.contains("authorization"),
            "no token on a socket: {head}"
        );
    }
}

#[tokio::test]
async fn tcp_requests_carry_host_token_and_base_path() {
    let (target, seen) = tcp_server(|_| Script::KeepAlive, "/t/cam%201/");
    let Target::Tcp(url) = &target else {
        unreachable!()
    };
    let authority = url.trim_start_matches("http://").split('/').next().unwrap();
    let authority = authority.to_string();
    let c = client(target, Some("s3cret"));
    assert_eq!(get_n(&c).await, 1);
    let head = seen.heads().remove(0);
    assert!(
        head.starts_with("GET /t/cam%201/status HTTP/1.1\r\n"),
        "{head}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("\r\nhost: {authority}\r\n")),
        "{head}"
    );
    assert!(
        head.contains("\r\nauthorization: Bearer s3cret\r\n"),
        "{head}"
    );
}

#[tokio::test]
async fn reconnects_after_the_server_closed_the_connection() {
    let (_dir, target, seen) = unix_server(|_| Script::CloseAfterOne);
    let c = client(target, None);
    for _ in 0..3 {
        assert_eq!(get_n(&c).await, 1, "each answer on a new connection");
    }
    assert_eq!(seen.accepted(), 3);
}

#[tokio::test]
async fn a_get_lost_on_a_reused_connection_is_sent_once_more() {
    let (_dir, target, seen) = unix_server(|i| match i {
        0 => Script::DropSecond,
        _ => Script::KeepAlive,
    });
    let c = client(target, None);
    assert_eq!(get_n(&c).await, 1);
    assert_eq!(get_n(&c).await, 1, "answered on the second connection");
    assert_eq!(seen.accepted(), 2);
    assert_eq!(
        seen.heads().len(),
        3,
        "the lost request, then the repeated one"
    );
}

#[tokio::test]
async fn a_post_lost_on_a_reused_connection_is_not_repeated() {
    let (_dir, target, seen) = unix_server(|i| match i {
        0 => Script::DropSecond,
        _ => Script::KeepAlive,
    });
    let c = client(target, None);
    assert_eq!(get_n(&c).await, 1);
    let e = c.request(Method::POST, "/stop").await.unwrap_err();
    assert!(matches!(e, ClientError::Other(_)), "{e:?}");
    assert_eq!(seen.heads().len(), 2, "sent once: {:?}", seen.heads());
    assert_eq!(get_n(&c).await, 1, "the next request connects again");
    assert_eq!(seen.accepted(), 2);
}

#[tokio::test]
async fn a_hung_server_is_a_timeout() {
    let (_dir, target, _seen) = unix_server(|_| Script::Hang);
    let timeout = Duration::from_millis(300);
    let c = Client::new(target, None, timeout).unwrap();
    let t0 = Instant::now();
    let e = c.get("/status").await.unwrap_err();
    let took = t0.elapsed();
    assert!(
        matches!(e, ClientError::Timeout(t) if t == timeout),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "no answer within 300ms");
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_refused_port_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = client(Target::Tcp(format!("http://{addr}")), None);
    match c.status().await {
        Err(ClientError::Connect(m)) => assert!(m.contains("refused"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_missing_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = client(Target::Unix(dir.path().join("api.sock")), None);
    match c.get("/status").await {
        Err(ClientError::Connect(m)) => assert!(m.contains("No such file"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// The integration tests run each request in a runtime of its own: a connection whose runtime
/// has gone is not reused.
#[test]
fn a_client_outlives_the_runtime_of_its_connection() {
    let (_dir, target, seen) = unix_server(|_| Script::KeepAlive);
    let c = client(target, None);
    let run = |c: &Client| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(c.request(Method::POST, "/restart"))
            .unwrap()
    };
    assert_eq!(run(&c).body, r#"{"n":1}"#);
    assert_eq!(run(&c).body, r#"{"n":1}"#, "a new connection");
    assert_eq!(seen.accepted(), 2);
}

#[tokio::test]
async fn non_200_and_bad_json_are_status_and_decode_errors() {
    let (_dir, target, _seen) = unix_server(|_| Script::KeepAlive);
    let c = client(target, None);
    let e = c.get_json::<Vec<u8>>("/status").await.unwrap_err();
    assert!(matches!(e, ClientError::Decode(_)), "{e:?}");
    match c.get_json::<serde_json::Value>("/missing").await {
        Err(ClientError::Status { status, body }) => {
            assert_eq!((status, body.as_str()), (404, "no such path"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.get("/missing").await.unwrap().body, " no such path \n");
}

#[test]
fn bad_base_urls_and_tokens_are_build_errors() {
    let build = |url: &str, token: Option<&str>| {
        Client::new(
            Target::Tcp(url.into()),
            token.map(str::to_string),
            Duration::from_secs(1),
        )
        .map(|_| ())
    };
    for url in [
        "https://h:1",
        "http://",
        "http://h:1/?a=b",
        "http://u@h:1",
        "h:1 x",
    ] {
        assert!(
            matches!(build(url, None), Err(ClientError::Build(_))),
            "{url}"
        );
    }
    assert!(matches!(
        build("http://h:1", Some("a\nb")),
        Err(ClientError::Build(_))
    ));
    assert!(build("http://[::1]:8080/t/x", Some("tok")).is_ok());
    assert!(build("http://localhost", None).is_ok());
}

#[test]
fn bodies_become_text_losslessly_when_utf8() {
    use hyper::body::Bytes;
    assert_eq!(super::super::into_text(Bytes::from("é ok")), "é ok");
    assert_eq!(
        super::super::into_text(Bytes::from_static(b"a\xffb")),
        "a\u{fffd}b"
    );
}
