//! A hung live source for the tests and the benchmark of SPEC §9: a server on 127.0.0.1 that
//! sends raw video frames (160x120 gray, 25 fps) to ffmpeg, over plain TCP or as the body of an
//! HTTP response, then stops sending and keeps the connection open, as a hung camera does.

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// 160x120 gray frames.
pub const FRAME: usize = 160 * 120;
/// The source sends this many frames (2 s of video) before it hangs.
pub const FRAMES: usize = 50;
/// The manager's settings the tests and the benchmark run a hung source under: checks from
/// 0.5 s, stalled after 1.5 s without output, `STOP_TIMEOUT` 10 s (the grace is the caller's).
pub const STALL_VARS: &[(&str, &str)] = &[
    ("MANAGER_START_DELAY", "0"),
    ("ENCODING_CHECK_START_DELAY", "0.5"),
    ("ENCODING_RATE_WINDOW", "1"),
    ("ENCODING_MAX_ERROR_TIME", "20"),
    ("ENCODING_MAX_STDOUT_STUCK_TIME", "1.5"),
    ("STOP_TIMEOUT", "10"),
];

/// A raw-video server on 127.0.0.1: ffmpeg connects, gets frames, then (if `hang`) nothing more
/// while the connection stays open until the `Source` is dropped.
pub struct Source {
    /// Its port.
    pub port: u16,
    /// Frames written so far.
    pub sent: Arc<AtomicUsize>,
    /// Set on drop: the server closes the connection and ends.
    done: Arc<AtomicBool>,
    /// The server thread.
    thread: Option<JoinHandle<()>>,
    /// It serves the frames as the body of an HTTP response (whose length is never reached).
    http: bool,
}

impl Source {
    /// Frames sent so far.
    pub fn frames_sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends `FRAMES` frames at 25 fps, then hangs (`hang`) or keeps sending.
    pub fn start(hang: bool) -> Source {
        Source::serve(hang, false)
    }

    /// Over HTTP: the response's body stops mid-way (hangs) after `FRAMES` frames.
    pub fn http_hung() -> Source {
        Source::serve(true, true)
    }

    fn serve(hang: bool, http: bool) -> Source {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sent, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (s, d) = (sent.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            listener.set_nonblocking(true).unwrap();
            let mut conn = loop {
                match listener.accept() {
                    Ok((c, _)) => break c,
                    Err(_) if d.load(Ordering::Relaxed) => return,
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            };
            conn.set_nonblocking(false).unwrap();
            if http && !answer_http(&mut conn) {
                return;
            }
            let t0 = Instant::now();
            let mut n = 0u32;
            while !d.load(Ordering::Relaxed) && (!hang || (n as usize) < FRAMES) {
                let frame = vec![(n * 5 % 256) as u8; FRAME];
                if conn.write_all(&frame).is_err() {
                    return;
                }
                n += 1;
                s.store(n as usize, Ordering::Relaxed);
                // The pace of a live source (the data's timing, not a synchronisation).
                if let Some(wait) =
                    (t0 + Duration::from_millis(40) * n).checked_duration_since(Instant::now())
                {
                    std::thread::sleep(wait);
                }
            }
            // Hung: the connection stays open, nothing more is sent.
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Source {
            port,
            sent,
            done,
            thread: Some(thread),
            http,
        }
    }

    /// Where ffmpeg reads it (`-f rawvideo -pix_fmt gray -video_size 160x120 -framerate 25`).
    pub fn url(&self) -> String {
        let scheme = if self.http { "http" } else { "tcp" };
        format!("{scheme}://127.0.0.1:{}/live", self.port)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// ffmpeg's input options for a [`Source`], before `-i`.
pub const INPUT_ARGS: &[&str] = &[
    "-f",
    "rawvideo",
    "-pix_fmt",
    "gray",
    "-video_size",
    "160x120",
    "-framerate",
    "25",
];

/// Reads the request's head and answers with the head of a long body; false on error.
fn answer_http(conn: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return false,
        }
    }
    let len = FRAME * FRAMES * 100;
    conn.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {len}\r\n\r\n"
        )
        .as_bytes(),
    )
    .is_ok()
}
