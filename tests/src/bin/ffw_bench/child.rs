//! The scripted children some measurements run as ffmpeg (`FFW_BENCH_CHILD` = the mode):
//! they take timestamps inside the child and write progress blocks and stats lines.

use std::fs;
use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crate::util::{mono_ns, sleep};

pub(crate) static SIGNAL_NS: AtomicI64 = AtomicI64::new(0);

pub(crate) extern "C" fn on_stop_signal(_: libc::c_int) {
    let _ = SIGNAL_NS.compare_exchange(0, mono_ns(), Ordering::SeqCst, Ordering::SeqCst);
}

pub(crate) fn child_main(mode: &str) -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let progress_path = match args.first() {
        Some(a) if a == "-progress" && args.len() >= 2 => Some(args[1].clone()),
        _ => None,
    };
    let env_f = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let stamp = std::env::var_os("FFW_BENCH_STAMP");
    if mode == "restart" {
        let append = |line: String| {
            if let Some(p) = &stamp {
                if let Ok(mut f) = fs::OpenOptions::new().append(true).create(true).open(p) {
                    let _ = f.write_all(line.as_bytes());
                }
            }
        };
        append(format!("s {}\n", mono_ns()));
        sleep(0.05);
        append(format!("e {}\n", mono_ns()));
        std::process::exit(1);
    }
    if mode == "stamp" {
        let t = mono_ns();
        if let Some(p) = &stamp {
            let _ = fs::write(p, t.to_string());
        }
        if std::env::var_os("FFW_STAMP_EXIT").is_some() {
            std::process::exit(0);
        }
        sleep(10.0);
        std::process::exit(0);
    }
    // SAFETY: the handler only reads a clock and stores into an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut progress = progress_path.and_then(|p| fs::OpenOptions::new().write(true).open(p).ok());
    let mut enc = Enc::default();
    let stderr = std::io::stderr();
    let start = Instant::now();
    if mode == "fill" {
        let nb = env_f("FFW_FILL_BLOCKS", 100_000.0) as u64;
        let nl = env_f("FFW_FILL_LINES", 100_000.0) as u64;
        {
            let mut pw = progress
                .as_mut()
                .map(|f| std::io::BufWriter::with_capacity(1 << 16, f));
            let mut ew = std::io::BufWriter::with_capacity(1 << 16, stderr.lock());
            for i in 0..nb.max(nl) {
                enc.advance(0.04, 1.0, 25.0);
                if i < nb {
                    if let Some(w) = pw.as_mut() {
                        let _ = w.write_all(enc.block(false).as_bytes());
                    }
                }
                if i < nl {
                    let line = if i % 25 == 24 {
                        format!(
                            "[libx264 @ 0x55d0c6a3f{:03x}] frame I:{:<5} Avg QP:{:5.2}  size:{:6}\n",
                            i % 4096,
                            i / 250,
                            20.0 + (i % 700) as f64 / 100.0,
                            30_000 + i % 20_000
                        )
                    } else {
                        enc.stats_line()
                    };
                    let _ = ew.write_all(line.as_bytes());
                }
            }
            let _ = ew.flush();
            if let Some(w) = pw.as_mut() {
                let _ = w.flush();
            }
        }
        let mut next = Instant::now();
        while SIGNAL_NS.load(Ordering::SeqCst) == 0 {
            next += Duration::from_millis(500);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            enc.advance(0.5, 1.0, 25.0);
            enc.emit(&mut progress, false);
        }
        enc.emit(&mut progress, true);
        std::process::exit(255);
    }
    // stall / fail
    let healthy = env_f("FFW_HEALTHY_S", 1.5);
    let mut reference = 0i64;
    let mut k = 0u64;
    loop {
        if SIGNAL_NS.load(Ordering::SeqCst) != 0 {
            break;
        }
        k += 1;
        let due = start + Duration::from_millis(100 * k);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if SIGNAL_NS.load(Ordering::SeqCst) != 0 {
            break;
        }
        let t = start.elapsed().as_secs_f64();
        if t < healthy {
            enc.advance(0.1, 1.0, 25.0);
            enc.reported = None;
            enc.emit(&mut progress, false);
            reference = mono_ns();
        } else if mode == "fail" {
            enc.advance(0.1, 0.2, 5.0);
            enc.reported = Some((5.0, 0.2));
            enc.emit(&mut progress, false);
            if enc.first_fail == 0 {
                enc.first_fail = mono_ns();
            }
        }
        if t > 60.0 {
            break;
        }
    }
    if mode == "fail" {
        reference = enc.first_fail;
    }
    if let Some(p) = &stamp {
        let _ = fs::write(
            p,
            format!("{reference} {}", SIGNAL_NS.load(Ordering::SeqCst)),
        );
    }
    enc.emit(&mut progress, true);
    std::process::exit(255);
}

/// A pretend encode: the state behind the progress blocks and stats lines the child writes.
#[derive(Default)]
pub(crate) struct Enc {
    /// Seconds of the pretend encode so far.
    pub(crate) t: f64,
    /// Frames encoded so far.
    pub(crate) frame: f64,
    /// Seconds of output written so far.
    pub(crate) out_s: f64,
    /// fps and speed to report instead of the averages.
    pub(crate) reported: Option<(f64, f64)>,
    /// `CLOCK_MONOTONIC` ns of the first failing block (0: none yet).
    pub(crate) first_fail: i64,
}

impl Enc {
    pub(crate) fn advance(&mut self, dt: f64, speed: f64, fps: f64) {
        self.t += dt;
        self.frame += fps * dt;
        self.out_s += speed * dt;
    }

    pub(crate) fn size(&self) -> u64 {
        48 + (self.out_s * 125_000.0) as u64
    }

    pub(crate) fn fps_speed(&self) -> (f64, f64) {
        self.reported
            .unwrap_or((self.frame / self.t.max(1e-9), self.out_s / self.t.max(1e-9)))
    }

    /// A block as ffmpeg 5.1 writes it.
    pub(crate) fn block(&self, end: bool) -> String {
        let (fps, speed) = self.fps_speed();
        let us = (self.out_s * 1e6) as i64;
        let (h, m, s, u) = (
            us / 3_600_000_000,
            us / 60_000_000 % 60,
            us / 1_000_000 % 60,
            us % 1_000_000,
        );
        format!(
            "frame={}\nfps={fps:.2}\nstream_0_0_q=28.0\nbitrate={:7.1}kbits/s\ntotal_size={}\n\
             out_time_us={us}\nout_time_ms={us}\nout_time={h:02}:{m:02}:{s:02}.{u:06}\n\
             dup_frames=0\ndrop_frames=0\nspeed={speed:5.3}x\nprogress={}\n",
            self.frame as u64,
            self.size() as f64 * 8.0 / self.out_s.max(1e-9) / 1000.0,
            self.size(),
            if end { "end" } else { "continue" }
        )
    }

    /// A stats line as ffmpeg 5.1 prints it, ending in `\r`.
    pub(crate) fn stats_line(&self) -> String {
        let (fps, speed) = self.fps_speed();
        let o = self.out_s;
        format!(
            "frame={:5} fps={fps:3.0} q=28.0 size={:8}kB time={:02}:{:02}:{:05.2} bitrate={:6.1}kbits/s speed={speed:4.3}x    \r",
            self.frame as u64,
            self.size() / 1024,
            (o / 3600.0) as u64,
            (o / 60.0) as u64 % 60,
            o % 60.0,
            self.size() as f64 * 8.0 / o.max(1e-9) / 1000.0,
        )
    }

    pub(crate) fn emit(&self, progress: &mut Option<fs::File>, end: bool) {
        if let Some(f) = progress {
            let _ = f.write_all(self.block(end).as_bytes());
        }
        let _ = std::io::stderr().write_all(self.stats_line().as_bytes());
    }
}
