//! Measurements 3 and 6: memory with both rings full, then the API's latency under load on
//! the same daemon.

use std::time::Instant;

use crate::abuse::{m6_abuse, HOW};
use crate::client::{get, load, Target};
use crate::procs::Daemon;
use crate::report::Report;
use crate::util::{percentile, sleep, status_bytes, wait_for, MIB};
use crate::Ctx;

/// Sums the text held in a `/last_*?count=0` body: each line minus `<YYYY-MM-DD HH:MM:SS> `.
pub(crate) fn text_bytes(body: &[u8]) -> (usize, usize) {
    let mut lines = 0;
    let mut bytes = 0;
    for l in body.split(|&b| b == b'\n') {
        if l.len() >= 22 && l[0] == b'<' {
            lines += 1;
            bytes += l.len() - 22;
        }
    }
    (lines, bytes)
}

/// 3 and 6: both rings full, then the API under load.
pub(crate) fn m3_m6_rings_and_api(c: &Ctx, rep: &mut Report, do3: bool, do6: bool) {
    let wd = c.dir("m3");
    let mut env = c.me_env("fill");
    env.push(("HTTP_PORT", "0".into()));
    env.push(("FFW_FILL_LINES", "100000".into()));
    env.push(("FFW_FILL_BLOCKS", "100000".into()));
    env.push(("ENCODING_DISABLE_CHECK", "1".into()));
    let mut d = Daemon::spawn(&c.bins, &wd, &env, &["fill"]);
    let pid = d.pid();
    if !d.wait_api(10.0) {
        eprintln!("  3: wrapperd did not answer");
        return;
    }
    let t = Instant::now();
    let full = wait_for(120.0, || {
        d.status().is_some_and(|s| {
            s["counters"]["log_lines"].as_u64().unwrap_or(0) >= 100_000
                && s["counters"]["progress_blocks"].as_u64().unwrap_or(0) >= 100_000
        })
    });
    let fill_s = t.elapsed().as_secs_f64();
    // Past the 10 s rate window, which held every block of the burst.
    let hwm_fill = status_bytes(pid, "VmHWM").unwrap_or(f64::NAN);
    sleep(11.0);
    let rss = status_bytes(pid, "VmRSS").unwrap_or(f64::NAN);
    let hwm = status_bytes(pid, "VmHWM").unwrap_or(f64::NAN);
    if do3 {
        let sock = d.sock();
        let lines = get(&sock, "/last_stdout?count=0")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let blocks = get(&sock, "/last_progress?count=0")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let (nl, bl) = text_bytes(&lines);
        let (nb, bb) = text_bytes(&blocks);
        let text = (bl + bb) as f64;
        let goal = 1.2 * text + 4.0 * MIB;
        let after = status_bytes(pid, "VmRSS").unwrap_or(f64::NAN);
        rep.row(
            "3",
            "RSS with both rings full (200 000 entries)",
            &format!("<= {:.1} MiB", goal / MIB),
            format!("{:.1} MiB ({:.2} x text)", rss / MIB, rss / text),
            Some(rss / goal),
        );
        rep.section(
            3,
            "Memory with full rings",
            "wrapperd at the defaults (100 000 / 100 000) runs a child (this binary, mode `fill`) \
             that writes 100 000 progress blocks (ffmpeg 5's keys, about 210 bytes as one line) \
             and 100 000 stats lines (`frame=  1234 fps= 25 q=28.0 size=  …`, about 95 bytes, \
             one in 25 a typical `[libx264 @ 0x…]` line instead) as fast as it can, then goes on \
             as a 25 fps encode. Once `/status` counts 100 000 of each, and 11 s more (the 10 s \
             rate window held every block of the burst; a real encode writes 2 blocks a second), \
             RSS is read (VmRSS) before any large API answer is formatted. The text held is the bodies of \
             `/last_stdout?count=0` and `/last_progress?count=0` minus the 22-byte \
             `<YYYY-MM-DD HH:MM:SS> ` of each line. Goal: RSS <= 1.2 x text + 4 MiB.",
            vec![
                format!(
                    "filled in {fill_s:.1} s{}",
                    if full { "" } else { " (NOT full)" }
                ),
                format!(
                    "text held: {nl} lines {:.1} MiB + {nb} blocks {:.1} MiB = {:.1} MiB",
                    bl as f64 / MIB,
                    bb as f64 / MIB,
                    text / MIB
                ),
                format!(
                    "VmRSS {:.1} MiB (VmHWM {:.1} MiB, {:.1} MiB right after the burst); goal \
                     {:.1} MiB; after formatting the two answers VmRSS is {:.1} MiB",
                    rss / MIB,
                    hwm / MIB,
                    hwm_fill / MIB,
                    goal / MIB,
                    after / MIB
                ),
                format!(
                    "overhead beyond the text: {:.1} MiB",
                    (rss - text) / MIB
                ),
            ],
        );
    }
    if do6 {
        m6_api(c, rep, &d);
    }
    d.stop();
}

/// 6. API latency at 1000 requests/s, over the socket and TCP, while an encode runs.
pub(crate) fn m6_api(c: &Ctx, rep: &mut Report, d: &Daemon) {
    let secs = if c.quick { 3.0 } else { 10.0 };
    let mut targets = vec![d.sock()];
    if let Some(t) = d.tcp() {
        targets.push(t);
    }
    let mut details = Vec::new();
    let mut p99s = Vec::new();
    for t in &targets {
        let _ =
            c.rt.block_on(load(t.clone(), "/status".into(), 1000.0, 0.3, 4));
        let l =
            c.rt.block_on(load(t.clone(), "/status".into(), 1000.0, secs, 8));
        let (p50, p99) = (percentile(&l.lat_ms, 50.0), percentile(&l.lat_ms, 99.0));
        p99s.push(p99);
        rep.row(
            &format!(
                "6{}",
                if matches!(t, Target::Unix(_)) {
                    "a"
                } else {
                    "b"
                }
            ),
            &format!("/status at 1000 req/s over {}: p50 / p99", t.name()),
            "p99 <= 1 ms",
            format!("{p50:.2} / {p99:.2} ms"),
            Some(p99 / 1.0),
        );
        details.push(format!(
            "/status over {}: {} requests at {:.0}/s, {} errors, p50 {p50:.3} ms, p90 {:.3} \
             ms, p99 {p99:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} bytes each)",
            t.name(),
            l.lat_ms.len(),
            l.achieved_rate,
            l.errors,
            percentile(&l.lat_ms, 90.0),
            percentile(&l.lat_ms, 99.9),
            percentile(&l.lat_ms, 100.0),
            l.bytes
        ));
    }
    // The big answer: 100 000 lines, a few times a second, with /status at 1000/s alongside.
    let big_secs = if c.quick { 2.0 } else { 5.0 };
    for t in &targets {
        let (bg, big) = c.rt.block_on(async {
            let bg = tokio::spawn(load(t.clone(), "/status".into(), 1000.0, big_secs, 8));
            let big = load(t.clone(), "/last_stdout?count=0".into(), 4.0, big_secs, 2).await;
            (bg.await.ok(), big)
        });
        let (p50, p99) = (
            percentile(&big.lat_ms, 50.0),
            percentile(&big.lat_ms, 100.0),
        );
        rep.row(
            &format!(
                "6{}",
                if matches!(t, Target::Unix(_)) {
                    "c"
                } else {
                    "d"
                }
            ),
            &format!(
                "/last_stdout?count=0 (100k lines) over {}: p50 / max",
                t.name()
            ),
            "<= 100 ms",
            format!("{p50:.1} / {p99:.1} ms"),
            Some(p99 / 100.0),
        );
        details.push(format!(
            "/last_stdout?count=0 over {}: {} requests at 4/s, {} errors, {:.1} MiB each, p50 \
             {p50:.1} ms, max {p99:.1} ms; /status alongside at 1000/s: p50 {:.3} ms, p99 \
             {:.3} ms",
            t.name(),
            big.lat_ms.len(),
            big.errors,
            big.bytes as f64 / MIB,
            bg.as_ref()
                .map(|l| percentile(&l.lat_ms, 50.0))
                .unwrap_or(f64::NAN),
            bg.as_ref()
                .map(|l| percentile(&l.lat_ms, 99.0))
                .unwrap_or(f64::NAN),
        ));
    }
    m6_abuse(c, rep, &targets, &mut details);
    rep.section(
        6,
        "API latency",
        &format!(
            "The daemon of measurement 3 (100 000 lines and 100 000 blocks held, a 25 fps \
             encode going on). An open-loop load generator (tokio, in this binary) issues \
             `GET /status` at 1000 requests/s for {secs:.0} s over 8 keep-alive connections, \
             first over api.sock, then over TCP (127.0.0.1); a request's latency runs from \
             when it is issued (queued for a free connection) until its whole body is read, so \
             a slow answer also delays the requests queued behind it. Then \
             `/last_stdout?count=0` (the 100 000 lines, about 11.5 MiB of text) at 4 requests/s \
             for {big_secs:.0} s while `/status` goes on at 1000/s. The generator shares the 2 \
             cores with wrapperd and the encode.{HOW}"
        ),
        details,
    );
}
