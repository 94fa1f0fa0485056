//! Measurement 9: fftop watching 20 daemons at a 1 s interval in a pty: its CPU and memory.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::procs::{stop_all, Daemon};
use crate::report::Report;
use crate::util::{cpu_secs, sleep, status_bytes, wait_for, MIB};
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
    let ws = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
    let slave = pty.slave;
    let mut cmd = Command::new(&c.bins.fftop);
    cmd.arg("--scan")
        .arg(&scan)
        .arg("--interval")
        .arg("1")
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave.try_clone().expect("dup")));
    // SAFETY: setsid and ioctl between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn fftop");
    // The parent's copies of the slave (also those inside `cmd`) must go, or reading the master
    // never ends.
    drop(cmd);
    drop(slave);
    let mut master_w = fs::File::from(pty.master);
    let mut master_r = master_w.try_clone().expect("dup master");
    let bytes = Arc::new(AtomicU64::new(0));
    let b2 = bytes.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = master_r.read(&mut buf) {
            b2.fetch_add(n as u64, Ordering::Relaxed);
        }
    });
    let pid = child.id();
    sleep(3.0);
    let (b0, c0, t0) = (
        bytes.load(Ordering::Relaxed),
        cpu_secs(pid).unwrap_or(f64::NAN),
        Instant::now(),
    );
    sleep(window);
    let (b1, c1, dt) = (
        bytes.load(Ordering::Relaxed),
        cpu_secs(pid).unwrap_or(f64::NAN),
        t0.elapsed().as_secs_f64(),
    );
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
    let cpu = (c1 - c0) / dt * 100.0;
    let bps = (b1 - b0) as f64 / dt;
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
                "CPU {:.0} ms over {dt:.1} s = {cpu:.2} %; {} bytes = {:.0} B/s; fftop VmRSS {:.1} \
                 MiB; {}",
                (c1 - c0) * 1000.0,
                b1 - b0,
                bps,
                rss / MIB,
                if quit { "quit on q" } else { "did NOT quit on q (killed)" }
            ),
            format!("bytes in the first 3 s (first paint): {b0}"),
        ],
    );
}
