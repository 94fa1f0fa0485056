//! Measurement 13: events (SPEC §11). How long a change of health takes to reach an `/events`
//! client and a webhook server on localhost, and what 64 open streams cost a 2 M-line burst.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tests::events::{HookServer, Sse};

use crate::procs::{die_with_parent, wall, Daemon};
use crate::report::Report;
use crate::util::{fmt_list, median, median_line, percentile, sleep, wait_for};
use crate::Ctx;

/// 13. Event latency and the cost of 64 streams.
pub(crate) fn m13_events(c: &Ctx, rep: &mut Report) {
    let (sse, hook) = latency(c, c.pairs(400, 150));
    let mut details = Vec::new();
    for (id, what, goal, v, limit) in [
        (
            "13a",
            "health change -> /events client, p99",
            "<= 5 ms",
            &sse,
            5.0,
        ),
        (
            "13b",
            "health change -> webhook server, p99",
            "<= 20 ms",
            &hook,
            20.0,
        ),
    ] {
        let p99 = percentile(v, 99.0);
        rep.row(
            id,
            what,
            goal,
            format!("p99 {p99:.2} ms, p50 {:.2} ms", percentile(v, 50.0)),
            Some(p99 / limit),
        );
        details.push(format!(
            "{what}: {} samples, p50 {:.3} ms, p99 {p99:.3} ms, max {:.3} ms",
            v.len(),
            percentile(v, 50.0),
            v.iter().cloned().fold(0.0, f64::max)
        ));
    }
    let (with, without) = burst(c, c.pairs(11, 3));
    let ratios: Vec<f64> = with.iter().zip(&without).map(|(a, b)| a / b).collect();
    let r = median(&ratios);
    rep.row(
        "13c",
        "2M lines with 64 /events streams / without",
        "<= 1.05",
        format!("{r:.3} (median of {} pairs)", ratios.len()),
        Some(r / 1.05),
    );
    details.push(median_line("2M lines, 64 streams, wall s - 1", &with, 3));
    details.push(median_line("2M lines, no stream, wall s - 1", &without, 3));
    details.push(format!("ratios: {}", fmt_list(&ratios, 3)));
    rep.section(
        13,
        "Events",
        "13a/13b: wrapperd runs a stand-in ffmpeg (`cat` from a FIFO of the bench's into the \
         progress FIFO) with checks active at once and ENCODING_RATE_WINDOW=0, and \
         WEBHOOK_URL at a small HTTP server in the bench (WEBHOOK_EVENTS=health). The bench \
         writes a progress block every 50 ms, alternating a good one and a failing one, so each \
         block flips the health; the latency is from just before the block is written to when \
         the `health` event is read by an `/events` client on the socket (13a) or its POST is \
         read by the server (13b), same monotonic clock. 13c: `fake-ffmpeg silence secs=1 \
         lines n=2000000 to=stderr nostats` under wrapperd, with 64 `/events` streams on the \
         socket read by the bench, against none; wall time from spawn to exit less the 1 s of \
         silence (the burst itself takes a few tenths of a second), pairs alternate.",
        details,
    );
}

/// The latencies (ms) of `n` health changes to the stream and to the webhook.
fn latency(c: &Ctx, n: usize) -> (Vec<f64>, Vec<f64>) {
    let wd = c.dir("m13");
    let feed = c.dir("m13-feed");
    let _ = fs::remove_file(&feed);
    nix::unistd::mkfifo(&feed, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let script = c.dir("m13-ffmpeg");
    fs::write(
        &script,
        format!("#!/bin/sh\nexec cat '{}' > \"$2\"\n", feed.display()),
    )
    .expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let server = HookServer::start(&[]);
    let env: Vec<(&str, String)> = vec![
        ("FFMPEG_BIN", script.display().to_string()),
        ("MANAGER_START_DELAY", "0".into()),
        ("ENCODING_CHECK_START_DELAY", "0".into()),
        ("ENCODING_RATE_WINDOW", "0".into()),
        ("ENCODING_MAX_ERROR_TIME", "100000".into()),
        ("ENCODING_MAX_STDOUT_STUCK_TIME", "100000".into()),
        ("WEBHOOK_URL", server.url()),
        ("WEBHOOK_EVENTS", "health".into()),
    ];
    let _d = Daemon::spawn(&c.bins, &wd, &env, &["-i", "x"]);
    let mut feed = fs::OpenOptions::new()
        .write(true)
        .open(&feed)
        .expect("feed");
    let mut frame = 0u64;
    let mut block = |good: bool, feed: &mut fs::File| {
        frame += 1;
        let (fps, speed) = if good { (30, "1.0") } else { (1, "0.1") };
        let b = format!(
            "frame={frame}\nfps={fps}\nout_time_us={}\nspeed={speed}x\nprogress=continue\n",
            frame * 40_000
        );
        let at = Instant::now();
        feed.write_all(b.as_bytes()).expect("feed write");
        at
    };
    block(true, &mut feed);
    let sock = wd.join("api.sock");
    wait_for(10.0, || sock.exists());
    let (tx, rx) = mpsc::channel::<(u64, Instant)>();
    let mut sse = Sse::open(tests::http::unix(&sock), "/events", "").expect("events");
    std::thread::spawn(move || {
        while let Ok(Some(f)) = sse.next_frame() {
            if f.kind() == "health" && tx.send((f.id.unwrap_or(0), f.at)).is_err() {
                return;
            }
        }
    });
    for _ in 0..5 {
        block(true, &mut feed);
        sleep(0.05);
    }
    while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}
    let hook_before = server.got().len();
    let mut sent = Vec::new();
    for i in 0..n {
        sent.push(block(i % 2 == 1, &mut feed));
        sleep(0.05);
    }
    let mut stream = Vec::new();
    for at in &sent {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok((_, got)) => stream.push(got.saturating_duration_since(*at).as_secs_f64() * 1e3),
            Err(_) => break,
        }
    }
    wait_for(10.0, || server.got().len() >= hook_before + n);
    let posts = server.got();
    let hook: Vec<f64> = posts[hook_before..]
        .iter()
        .zip(&sent)
        .map(|(r, at)| r.at.saturating_duration_since(*at).as_secs_f64() * 1e3)
        .collect();
    (stream, hook)
}

/// The fake's silence before its burst, for the streams to connect.
const SILENCE_S: f64 = 1.0;

/// Wall times of the 2 M-line burst with 64 streams open and without, in alternating pairs.
fn burst(c: &Ctx, pairs: usize) -> (Vec<f64>, Vec<f64>) {
    let script = [
        "silence",
        "secs=1",
        "lines",
        "n=2000000",
        "to=stderr",
        "nostats",
    ];
    let wd = c.dir("m13c");
    let run = |streams: usize| {
        let _ = fs::remove_dir_all(&wd);
        let mut cmd = Command::new(&c.bins.wrapperd);
        cmd.args(script)
            .env("WORKDIR", &wd)
            .env("FFMPEG_BIN", &c.bins.fake)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let sock = wd.join("api.sock");
        let readers = std::thread::spawn(move || {
            if streams == 0 {
                return;
            }
            wait_for(5.0, || sock.exists());
            let handles: Vec<_> = (0..streams)
                .filter_map(|_| Sse::open(tests::http::unix(&sock), "/events", "").ok())
                .map(|mut s| std::thread::spawn(move || while let Ok(Some(_)) = s.next_frame() {}))
                .collect();
            for h in handles {
                let _ = h.join();
            }
        });
        // The burst's own time: the wall time less the second of silence before it.
        let w = wall(cmd) - SILENCE_S;
        let _ = readers.join();
        w
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..pairs {
        let (a, b) = if i % 2 == 0 {
            let a = run(64);
            (a, run(0))
        } else {
            let b = run(0);
            (run(64), b)
        };
        eprintln!("  13c: pair {}: 64 streams {a:.3} s, none {b:.3} s", i + 1);
        with.push(a);
        without.push(b);
    }
    (with, without)
}
