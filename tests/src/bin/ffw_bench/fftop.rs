//! Measurement 9: fftop watching 20 daemons at a 1 s interval in a pty: its CPU and memory.

use std::fs;
use std::io::Write;
use std::sync::atomic::Ordering;

use crate::procs::{stop_all, Daemon};
use crate::report::Report;
use crate::util::{sleep, status_bytes, wait_for, MIB};
use crate::Ctx;

/// 9. fftop watching 20 daemons at a 1 s interval, in a 120x40 pty.
pub(crate) fn m9_fftop(c: &Ctx, rep: &mut Report) {
    let window = if c.quick { 10.0 } else { 25.0 };
    let scan = c.dir("m9");
    let _ = fs::remove_dir_all(&scan);
    let env = [
        ("FFMPEG_BIN", c.bins.fake.display().to_string()),
        ("ENCODING_CHECK_START_DELAY", "3600".to_string()),
    ];
    let mut ds: Vec<Daemon> = (0..20)
        .map(|i| {
            Daemon::spawn(
                &c.bins,
                &scan.join(format!("enc{i:02}")),
                &env,
                &["run", "fps=25"],
            )
        })
        .collect();
    let ok = ds.iter().filter(|d| d.wait_api(30.0)).count();
    let args = ["--scan".to_string(), scan.display().to_string()];
    let (mut child, mut master_w, reader, bytes) =
        crate::fftop_fleet::spawn_interactive(&c.bins.fftop, &args);
    let pid = child.id();
    sleep(3.0);
    let first_paint = bytes.load(Ordering::Relaxed);
    let (cpu, bps) = crate::fftop_fleet::window(pid, &bytes, window);
    let rss = status_bytes(pid, "VmRSS").unwrap_or(f64::NAN);
    let _ = master_w.write_all(b"q");
    let quit = wait_for(3.0, || matches!(child.try_wait(), Ok(Some(_))));
    if !quit {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(master_w);
    let _ = reader.join();
    stop_all(&mut ds);
    rep.row(
        "9a",
        "fftop, 20 daemons, 1 s interval: CPU",
        "<= 1 % of a core",
        format!("{cpu:.2} %"),
        Some(cpu / 1.0),
    );
    rep.row(
        "9b",
        "fftop, same: bytes to the terminal",
        "<= 4 KB/s",
        format!("{:.2} KB/s", bps / 1000.0),
        Some(bps / 4000.0),
    );
    rep.section(
        9,
        "fftop watching 20 daemons",
        &format!(
            "20 wrapperd run the fake ffmpeg `run fps=25` (a progress block and a stats line \
             every 0.5 s), each in its own directory under one scan directory. \
             `fftop --scan DIR --interval 1` runs in a 120x40 pty (openpty, TERM=xterm-256color, \
             colour on) whose master is read continuously. After 3 s (the first full paint), \
             over {window:.0} s: fftop's utime + stime from /proc/PID/stat as a percentage of \
             one core, and the bytes read from the master per second (1 KB = 1000 bytes)."
        ),
        vec![
            format!("{ok} of 20 daemons answering"),
            format!(
                "CPU over {window:.0} s = {cpu:.2} %; {bps:.0} B/s; fftop VmRSS {:.1} MiB; {}",
                rss / MIB,
                if quit {
                    "quit on q"
                } else {
                    "did NOT quit on q (killed)"
                }
            ),
            format!("bytes in the first 3 s (first paint): {first_paint}"),
        ],
    );
}
