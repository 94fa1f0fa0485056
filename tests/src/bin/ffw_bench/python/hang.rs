//! Measurement 10e/10f: the time from a hung input to the wrapper's stop, and whether the mp4
//! ffmpeg was writing survives it. A TCP server in the bench sends raw frames in real time, then
//! nothing while keeping the connection open — the hung camera or encoder upstream.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tests::{probe_duration, procfs};

use super::wrapper::{Setup, Side, Wrapper};
use crate::report::{Report, Verdict};
use crate::util::{median, sleep};
use crate::Ctx;

/// The frame source of 10e: a TCP server on 127.0.0.1 that sends raw 320x240 yuv420p frames at
/// 25 fps for a while, then nothing, keeping the connection open until released.
struct Source {
    /// The port it listens on.
    port: u16,
    /// What the sending thread reports.
    state: Arc<SourceState>,
    /// The sending thread.
    thread: Option<JoinHandle<()>>,
}

/// Shared between a [`Source`] and its thread.
#[derive(Default)]
struct SourceState {
    /// When the last byte of the last frame was accepted by the socket.
    last_byte: Mutex<Option<Instant>>,
    /// Frames sent.
    frames: AtomicU64,
    /// Sending is over (time up, or the peer went away, or nobody connected).
    done: AtomicBool,
    /// Close the connection and end the thread.
    release: AtomicBool,
}

const FRAME: usize = 320 * 240 * 3 / 2;

impl Source {
    fn start(send_s: f64) -> Source {
        let l = TcpListener::bind("127.0.0.1:0").expect("frame source listener");
        let port = l.local_addr().expect("listener address").port();
        let state = Arc::new(SourceState::default());
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            serve(&l, &st, send_s);
            st.done.store(true, Ordering::SeqCst);
        });
        Source {
            port,
            state,
            thread: Some(thread),
        }
    }

    fn done(&self) -> bool {
        self.state.done.load(Ordering::SeqCst)
    }

    fn last_byte(&self) -> Option<Instant> {
        *self.state.last_byte.lock().expect("source state")
    }

    /// Closes the connection; the frames sent.
    fn release(mut self) -> u64 {
        self.state.release.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.state.frames.load(Ordering::SeqCst)
    }
}

/// The source's thread: one connection, frames for `send_s` s, then silence until released.
fn serve(l: &TcpListener, st: &SourceState, send_s: f64) {
    let _ = l.set_nonblocking(true);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(_) if Instant::now() < deadline && !st.release.load(Ordering::SeqCst) => {
                sleep(0.01)
            }
            Err(_) => return,
        }
    };
    let _ = s.set_nonblocking(false);
    let small: libc::c_int = 64 * 1024;
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int and its size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let start = Instant::now();
    let mut frame = vec![128u8; FRAME];
    let mut k = 0u64;
    while start.elapsed().as_secs_f64() < send_s {
        for (j, px) in frame[..320 * 240].iter_mut().enumerate() {
            *px = ((j % 320 + j / 320) as u64 + 4 * k) as u8;
        }
        if s.write_all(&frame).is_err() {
            break;
        }
        *st.last_byte.lock().expect("source state") = Some(Instant::now());
        k += 1;
        st.frames.store(k, Ordering::SeqCst);
        let due = start + Duration::from_millis(40 * k);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    st.done.store(true, Ordering::SeqCst);
    while !st.release.load(Ordering::SeqCst) {
        sleep(0.02);
    }
}

/// What one hung-input run measured.
struct Hang {
    /// From the last byte sent to the wrapper's exit, s; `None`: no exit within 60 s.
    took: Option<f64>,
    /// From the last byte sent to ffmpeg's end, s.
    ffmpeg_took: Option<f64>,
    /// The mp4's duration by ffprobe; `None`: unreadable.
    duration: Option<f64>,
    /// Frames sent.
    frames: u64,
}

/// Settings of 10e, the same on both sides (`STOP_TIMEOUT` is wrapperd's only: the Python tool
/// kills at once).
pub(super) const HANG_ENV: [(&str, &str); 4] = [
    ("MANAGER_START_DELAY", "1"),
    ("ENCODING_CHECK_START_DELAY", "2"),
    ("ENCODING_MAX_STDOUT_STUCK_TIME", "5"),
    ("STOP_TIMEOUT", "10"),
];

/// Seconds of frames before the input hangs.
pub(super) const SEND_S: f64 = 5.0;

/// One hung-input run of `side` with `ffmpeg`.
fn hang_run(c: &Ctx, peer: &Path, side: Side, ffmpeg: Option<&Path>, dir: &Path) -> Hang {
    let src = Source::start(SEND_S);
    let out = dir.join("out.mp4");
    let args: Vec<String> = [
        "-hide_banner",
        "-f",
        "rawvideo",
        "-video_size",
        "320x240",
        "-pixel_format",
        "yuv420p",
        "-framerate",
        "25",
        "-i",
        &format!("tcp://127.0.0.1:{}", src.port),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-y",
        &out.display().to_string(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let setup = Setup {
        ffmpeg,
        env: &HANG_ENV,
        args: &args,
    };
    let mut w = Wrapper::spawn(peer, &c.bins.wrapperd, side, dir, &setup);
    let mut ff_pid = None;
    let end = Instant::now() + Duration::from_secs_f64(SEND_S + 60.0);
    while !src.done() && !w.poll() && Instant::now() < end {
        ff_pid = ff_pid.or_else(|| ffmpeg_child(w.pid()));
        sleep(0.01);
    }
    let last = src.last_byte();
    let mut ff_end = None;
    let end = last.unwrap_or_else(Instant::now) + Duration::from_secs(60);
    loop {
        if ff_end.is_none() && ff_pid.is_some_and(procfs::process_gone) {
            ff_end = Some(Instant::now());
        }
        if w.poll() || Instant::now() >= end {
            break;
        }
        sleep(0.005);
    }
    w.stop();
    let frames = src.release();
    let since = |t: Option<Instant>| Some((t? - last?).as_secs_f64());
    Hang {
        took: since(w.exited),
        ffmpeg_took: since(ff_end),
        duration: probe_duration(&out),
        frames,
    }
}

/// The wrapper's ffmpeg: its child that is not `ps` (the Python tool runs one at start) nor a
/// fork of the wrapper that has not exec'd yet.
fn ffmpeg_child(pid: u32) -> Option<i32> {
    procfs::children_of(pid as i32)
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| {
            fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| !["ps", "python3", "wrapperd"].contains(&c.trim()))
        })
}

/// 10e / 10f: the time from a hung TCP input to the stop, with ffmpeg `ffmpeg` (`None`: the
/// one on `PATH`), version `id.1`.
pub(super) fn hang(
    c: &Ctx,
    rep: &mut Report,
    peer: &Path,
    ffmpeg: Option<&Path>,
    id: (&str, &str),
    details: &mut Vec<String>,
) {
    let pairs = c.pairs(3, 1);
    let mut runs: [Vec<Hang>; 2] = [Vec::new(), Vec::new()];
    for i in 0..pairs {
        for side in Side::order(i) {
            let dir = c.dir(&format!("m{}-{}-{i}", id.0, side.name()));
            let h = hang_run(c, peer, side, ffmpeg, &dir);
            eprintln!(
                "  {}: pair {} {}: {} after the last byte (ffmpeg ended {}), {} frames sent, mp4 {}",
                id.0,
                i + 1,
                side.name(),
                fmt_opt(h.took),
                fmt_ff(h.ffmpeg_took),
                h.frames,
                fmt_mp4(h.duration)
            );
            runs[side as usize].push(h);
        }
    }
    let took = |v: &[Hang]| v.iter().filter_map(|h| h.took).collect::<Vec<_>>();
    let (tw, tp) = (took(&runs[0]), took(&runs[1]));
    let valid = |v: &[Hang]| v.iter().filter(|h| h.duration.is_some()).count();
    let (w, p) = (median(&tw), median(&tp));
    let ratio = (!tp.is_empty() && !tw.is_empty()).then_some(w / p);
    let w_ok = tw.len() == pairs && valid(&runs[0]) == pairs;
    let met = w_ok && ratio.is_none_or(|r| r <= 1.0);
    let side_fig = |t: &[f64], v: &[Hang]| {
        let time = if t.is_empty() {
            "no stop".to_string()
        } else {
            format!("{:.1} s", median(t))
        };
        format!("{time}, {}/{} mp4 ok", valid(v), v.len())
    };
    rep.push_row(
        id.0,
        &format!("hung input (ffmpeg {}): last byte to exit", id.1),
        "<= Python; mp4 valid",
        format!("{} vs {}", side_fig(&tw, &runs[0]), side_fig(&tp, &runs[1])),
        ratio,
        if met { Verdict::Met } else { Verdict::Missed },
    );
    for (k, name) in [(0, "wrapperd"), (1, "Python")] {
        let v = &runs[k];
        details.push(format!(
            "{} (ffmpeg {}) {name}: exit after the last byte {}; ffmpeg ended {}; frames sent {}; \
             mp4 {}",
            id.0,
            id.1,
            each(v, |h| fmt_opt(h.took)),
            each(v, |h| fmt_ff(h.ffmpeg_took)),
            each(v, |h| h.frames.to_string()),
            each(v, |h| fmt_mp4(h.duration)),
        ));
    }
}

/// `f` of every run, comma-separated.
fn each(v: &[Hang], f: impl Fn(&Hang) -> String) -> String {
    v.iter().map(f).collect::<Vec<_>>().join(", ")
}

fn fmt_opt(t: Option<f64>) -> String {
    t.map(|t| format!("{t:.2} s"))
        .unwrap_or_else(|| "never (stopped by the bench after 60 s)".to_string())
}

fn fmt_ff(t: Option<f64>) -> String {
    t.map(|t| format!("{t:.2} s"))
        .unwrap_or_else(|| "(not seen)".to_string())
}

fn fmt_mp4(d: Option<f64>) -> String {
    d.map(|d| format!("valid, {d:.2} s"))
        .unwrap_or_else(|| "BROKEN (ffprobe finds no duration)".to_string())
}
