//! `fake-ffmpeg`: a scripted stand-in for ffmpeg, for the integration tests.
//!
//! ```text
//! fake-ffmpeg [-progress PATH] WORD...
//! ```
//!
//! wrapperd runs `$FFMPEG_BIN -progress PATH <user args>`, so with `FFMPEG_BIN=fake-ffmpeg` the user
//! args are the script. `PATH` is opened for writing like ffmpeg does (it is wrapperd's FIFO);
//! without `-progress` no blocks are written.
//!
//! **Phases** run in order; `key=value` words after a phase word set its parameters:
//!
//! | phase | does |
//! |---|---|
//! | `run fps=25 speed=S secs=T` | encode for `T` s (default `inf`): `frame` grows at `fps`/s and `out_time` at `speed` s/s of wall time (default `speed` = fps / `rate`); a progress block and a stats line every `block-interval` |
//! | `freeze secs=T` | blocks (and stats lines) keep coming, with the same frame/out_time/total_size (ffmpeg 7 with a hung input) |
//! | `silence secs=T` | print and write nothing, stay alive (ffmpeg 5 with a hung input) |
//! | `lines n=N to=stderr\|stdout` | print `line 1` … `line N`, each ending in `\n`, as fast as possible |
//! | `bytes` | to stderr: `bad utf8: ` + bytes FF FE 80 + `\n`, then one line of 1 MiB of `x` + `\n`, then `after long line\n` |
//! | `echo TEXT` | print `TEXT\n` to stderr (`TEXT` is the next word) |
//! | `grow mb=N secs=T` | allocate and touch `N` MiB (held until the end, so its resident memory grows by that), then encode as `run fps=25` for `T` s (default `inf`) |
//! | `orphans n=N secs=0.2` | `N` times run `sh -c 'sleep 0.2 & exit 0'` and wait for the `sh`: each `sleep` is orphaned and reparented to the subreaper |
//! | `exit code=N` | write the final block (`progress=end`) and the final stats line, exit `N` |
//! | `die sig=N` | kill itself with signal `N` (default disposition; no final block) |
//!
//! When the script ends without `exit`/`die`: final block, exit 0. No phase at all: `run` forever.
//!
//! **Options** (anywhere): `block-interval=0.5` (s between blocks and stats lines), `rate=25` (stream
//! frame rate: out_time = frames / rate at speed 1), `start-frame=N` (start at frame `N`, out_time
//! `N / rate` s, as if it had run that long at speed 1 — an hour behind is `start-frame=90000`; the
//! reported `fps=`/`speed=` are averages since that pretended start), `audio` (no `frame`, `fps`,
//! `stream_0_0_q` keys), `nostats` (no stats lines on stderr, only progress), `ignore-sigint`,
//! `ignore-q` (also `-nostdin`: stdin is not read), `finish-secs=S` (time a graceful end takes
//! before the final block). Other words are ignored with a warning line on stderr; a bad value is
//! an error (exit 2).
//!
//! **Blocks** look like ffmpeg 7's: `frame fps stream_0_0_q bitrate total_size out_time_us
//! out_time_ms out_time dup_frames drop_frames speed progress`, `fps`/`speed` being averages since
//! the start (`speed=N/A` and `bitrate=N/A` before any out_time). Stats lines (`frame=  123 fps= 25
//! … speed=   1x`) end with `\r`; the final one with `\n`.
//!
//! **Ending.** `SIGINT` (unless `ignore-sigint`), `SIGTERM`, `SIGQUIT`: after `finish-secs`, the final
//! block and stats line, `Exiting normally, received signal N.`, exit 255. `q` on stdin (unless
//! `ignore-q`): `[q] command received. Exiting.`, the final block, exit 0. `SIGHUP` kills it (as
//! ffmpeg). `SIGPIPE` is ignored (as ffmpeg); failed writes are ignored.
//!
//! **Records** for tests: `FAKE_FFMPEG_SIGNAL_LOG=path` appends `N\n` per signal received (INT,
//! TERM, QUIT, HUP; ignored ones too). `FAKE_FFMPEG_ARGS_LOG=path` gets every argument after the
//! program name, raw bytes, each followed by a NUL.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::IntoRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

#[path = "fake_ffmpeg/script.rs"]
mod script;

use script::{parse, Phase, Script};

// ---- signals: the handler only writes the log and sets flags (async-signal-safe) ----

static SIGNAL_LOG_FD: AtomicI32 = AtomicI32::new(-1);
static IGNORE_SIGINT: AtomicBool = AtomicBool::new(false);
/// The graceful signal received, 0 while none.
static GRACEFUL: AtomicI32 = AtomicI32::new(0);
/// `q` read on stdin.
static QUIT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_LOG_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let mut buf = [0u8; 12];
        let mut i = buf.len() - 1;
        buf[i] = b'\n';
        let mut n = sig.unsigned_abs();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // SAFETY: write(2) is async-signal-safe; the buffer is valid for its length.
        unsafe { libc::write(fd, buf[i..].as_ptr().cast(), buf.len() - i) };
    }
    if sig == libc::SIGHUP {
        // SAFETY: signal(2) and raise(3) are async-signal-safe: die of SIGHUP, as ffmpeg does.
        unsafe {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            libc::raise(libc::SIGHUP);
        }
        return;
    }
    if sig == libc::SIGINT && IGNORE_SIGINT.load(Ordering::SeqCst) {
        return;
    }
    let _ = GRACEFUL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
}

fn install_signals() {
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGQUIT,
        Signal::SIGHUP,
    ] {
        // SAFETY: the handler only uses async-signal-safe calls and atomics.
        unsafe { sigaction(sig, &act) }.expect("sigaction");
    }
    let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: ignoring SIGPIPE installs no handler.
    unsafe { sigaction(Signal::SIGPIPE, &ign) }.expect("sigaction");
}

/// Why the encode ends early.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Signal(i32),
    Q,
}

fn ending() -> Option<Ending> {
    match GRACEFUL.load(Ordering::SeqCst) {
        0 if QUIT.load(Ordering::SeqCst) => Some(Ending::Q),
        0 => None,
        sig => Some(Ending::Signal(sig)),
    }
}

// ---- the encode ----

struct Encode {
    script: Script,
    progress: Option<std::fs::File>,
    started: Instant,
    /// Wall seconds pretended before `started` (`start-frame`).
    before: f64,
    frame: f64,
    out_s: f64,
}

fn g3(v: f64) -> String {
    // ffmpeg's "%4.3g" for speeds.
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s:>4}")
}

impl Encode {
    fn elapsed(&self) -> f64 {
        self.before + self.started.elapsed().as_secs_f64()
    }

    fn total_size(&self) -> u64 {
        48 + (self.out_s * 125_000.0) as u64
    }

    fn block(&mut self, end: bool) {
        let t = self.elapsed();
        let (frame, us, size) = (
            (self.frame + 1e-6) as u64,
            (self.out_s * 1e6).round() as i64,
            self.total_size(),
        );
        let mut b = String::new();
        if !self.script.audio {
            let fps = if t > 0.0 { frame as f64 / t } else { 0.0 };
            b += &format!("frame={frame}\nfps={fps:.2}\nstream_0_0_q=28.0\n");
        }
        if us > 0 {
            b += &format!(
                "bitrate={:6.1}kbits/s\n",
                size as f64 * 8.0 / self.out_s / 1000.0
            );
        } else {
            b += "bitrate=N/A\n";
        }
        let (h, m, s, u) = (
            us / 3_600_000_000,
            us / 60_000_000 % 60,
            us / 1_000_000 % 60,
            us % 1_000_000,
        );
        b += &format!("total_size={size}\nout_time_us={us}\nout_time_ms={us}\n");
        b += &format!("out_time={h:02}:{m:02}:{s:02}.{u:06}\ndup_frames=0\ndrop_frames=0\n");
        if us > 0 && t > 0.0 {
            b += &format!("speed={}x\n", g3(self.out_s / t));
        } else {
            b += "speed=N/A\n";
        }
        b += if end {
            "progress=end\n"
        } else {
            "progress=continue\n"
        };
        if let Some(f) = &mut self.progress {
            let _ = f.write_all(b.as_bytes());
        }
        if !self.script.nostats {
            let t_s = self.out_s;
            let line = format!(
                "frame={frame:5} fps={:3.0} q=28.0 size={:8}KiB time={:02}:{:02}:{:05.2} bitrate={:6.1}kbits/s speed={}x    {}",
                if t > 0.0 { frame as f64 / t } else { 0.0 },
                size / 1024,
                (t_s / 3600.0) as u64,
                (t_s / 60.0) as u64 % 60,
                t_s % 60.0,
                if t_s > 0.0 { size as f64 * 8.0 / t_s / 1000.0 } else { 0.0 },
                g3(if t > 0.0 { t_s / t } else { 0.0 }),
                if end { "\n" } else { "\r" },
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    /// Blocks every interval for `secs`, advancing at `fps`/`speed` (frozen when `None`).
    fn blocks(&mut self, rates: Option<(f64, f64)>, secs: f64) -> Option<Ending> {
        let start = Instant::now();
        let (f0, o0) = (self.frame, self.out_s);
        let step = self.script.block_interval;
        let mut k = 1u64;
        loop {
            let due = k as f64 * step;
            if due > secs + 1e-9 {
                return wait(start, secs);
            }
            if let Some(e) = wait(start, due) {
                return Some(e);
            }
            if let Some((fps, speed)) = rates {
                self.frame = f0 + fps * due;
                self.out_s = o0 + speed * due;
            }
            self.block(false);
            k += 1;
        }
    }
}

/// Sleeps until `secs` after `start`, in short slices; returns early on an ending.
fn wait(start: Instant, secs: f64) -> Option<Ending> {
    loop {
        if let Some(e) = ending() {
            return Some(e);
        }
        let left = secs - start.elapsed().as_secs_f64();
        if left <= 0.0 {
            return None;
        }
        std::thread::sleep(Duration::from_secs_f64(left.min(0.01)));
    }
}

fn run_phase(enc: &mut Encode, phase: &Phase) -> Option<Ending> {
    match phase {
        Phase::Run { fps, speed, secs } => {
            let speed = speed.unwrap_or(*fps / enc.script.rate);
            enc.blocks(Some((*fps, speed)), *secs)
        }
        Phase::Freeze { secs } => enc.blocks(None, *secs),
        Phase::Silence { secs } => wait(Instant::now(), *secs),
        Phase::Lines { n, stdout } => {
            let mut out: Box<dyn Write> = if *stdout {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(std::io::stderr().lock())
            };
            let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut out);
            for i in 1..=*n {
                let _ = writeln!(w, "line {i}");
            }
            let _ = w.flush();
            None
        }
        Phase::Bytes => {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(b"bad utf8: \xff\xfe\x80\n");
            let _ = e.write_all(&[b'x'; 1 << 20]);
            let _ = e.write_all(b"\nafter long line\n");
            None
        }
        Phase::Echo(text) => {
            let _ = writeln!(std::io::stderr(), "{text}");
            None
        }
        Phase::Orphans { n, secs } => {
            for _ in 0..*n {
                let _ = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!("sleep {secs} & exit 0"))
                    .stdin(std::process::Stdio::null())
                    .status();
            }
            None
        }
        Phase::Grow { mb, secs } => {
            let mut held = vec![0u8; usize::try_from(*mb).unwrap_or(usize::MAX) << 20];
            for page in held.chunks_mut(4096) {
                page[0] = 1;
            }
            // Held (leaked) to the end: the resident memory stays grown.
            std::hint::black_box(held.leak());
            enc.blocks(Some((25.0, 25.0 / enc.script.rate)), *secs)
        }
        Phase::Exit { .. } | Phase::Die { .. } => None,
    }
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Some(path) = std::env::var_os("FAKE_FFMPEG_ARGS_LOG") {
        let mut raw = Vec::new();
        for a in &args {
            raw.extend_from_slice(a.as_bytes());
            raw.push(0);
        }
        let _ = std::fs::write(path, raw);
    }
    let (progress_path, words) = match args.first() {
        Some(a) if a == "-progress" && args.len() >= 2 => (Some(args[1].clone()), &args[2..]),
        _ => (None, &args[..]),
    };
    let words: Vec<String> = words
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let script = match parse(&words) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fake-ffmpeg: {e}");
            std::process::exit(2);
        }
    };
    if let Some(path) = std::env::var_os("FAKE_FFMPEG_SIGNAL_LOG") {
        if let Ok(f) = OpenOptions::new().create(true).append(true).open(path) {
            SIGNAL_LOG_FD.store(f.into_raw_fd(), Ordering::SeqCst);
        }
    }
    IGNORE_SIGINT.store(script.ignore_sigint, Ordering::SeqCst);
    install_signals();
    for w in &script.warnings {
        eprintln!("{w}");
    }
    if !script.ignore_q {
        std::thread::spawn(|| {
            let mut b = [0u8; 256];
            let mut stdin = std::io::stdin();
            while let Ok(n @ 1..) = stdin.read(&mut b) {
                if b[..n].contains(&b'q') {
                    QUIT.store(true, Ordering::SeqCst);
                }
            }
        });
    }
    // Opening a FIFO blocks until its reader is there, as in ffmpeg.
    let progress = progress_path.map(|p| {
        OpenOptions::new().write(true).open(&p).unwrap_or_else(|e| {
            eprintln!("fake-ffmpeg: cannot open {}: {e}", p.to_string_lossy());
            std::process::exit(1)
        })
    });
    let before = script.start_frame as f64 / script.rate;
    let mut enc = Encode {
        progress,
        started: Instant::now(),
        before,
        frame: script.start_frame as f64,
        out_s: before,
        script,
    };
    let phases = enc.script.phases.clone();
    let mut code = 0;
    let mut ended = None;
    for phase in &phases {
        match phase {
            Phase::Exit { code: c } => {
                code = *c;
                break;
            }
            Phase::Die { sig } => {
                // SAFETY: resetting a disposition and raising a signal.
                unsafe {
                    libc::signal(*sig, libc::SIG_DFL);
                    libc::raise(*sig);
                }
                std::process::exit(128 + sig);
            }
            p => {
                ended = run_phase(&mut enc, p);
                if ended.is_some() {
                    break;
                }
            }
        }
    }
    if let Some(Ending::Q) = ended {
        eprintln!("[q] command received. Exiting.");
    }
    if ended.is_some() {
        // Finishing the outputs; further signals are only recorded.
        std::thread::sleep(Duration::from_secs_f64(enc.script.finish_secs));
    }
    enc.block(true);
    if let Some(Ending::Signal(sig)) = ended {
        eprintln!("Exiting normally, received signal {sig}.");
        code = 255;
    }
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_format_is_like_ffmpeg() {
        assert_eq!(g3(1.0), "   1");
        assert_eq!(g3(0.85), "0.85");
        assert_eq!(g3(0.995), "0.995");
        assert_eq!(g3(12.34), "12.3");
        assert_eq!(g3(3130.0), "3130");
    }
}
