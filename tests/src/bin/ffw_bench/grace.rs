//! Measurement 11: a hung input → ffmpeg's exit (SPEC §9, issue 11). A raw-video source sends
//! 2 s of frames over TCP and hangs with its connection open; the manager stops the encode as
//! stalled; wrapperd ends ffmpeg's input after `STOP_INPUT_GRACE` (default 1 s). Figures: time
//! from the stop decision to ffmpeg's exit, and whether the mp4 is complete; for the system
//! ffmpeg and the newer one of `FFW_FFMPEG_NEW`, and once with `STOP_INPUT_GRACE=0` (the old
//! behaviour: `SIGKILL` after `STOP_TIMEOUT`).

use std::fs;
use std::time::Instant;

use tests::hung_source::{Source, FRAMES, INPUT_ARGS, STALL_VARS};
use tests::{decodes_cleanly, probe_duration, procfs};

use crate::procs::Daemon;
use crate::report::{Report, Verdict};
use crate::util::{fmt_list, median, sleep, wait_for};
use crate::Ctx;

/// One run: seconds from the stop decision to ffmpeg's exit, and whether the mp4 is complete.
fn one_run(c: &Ctx, name: &str, ffmpeg: &str, grace: &str) -> Option<(f64, bool)> {
    let wd = c.dir(name);
    let out = c.dir(&format!("{name}.mp4"));
    let source = Source::start(true);
    let env: Vec<(&str, String)> = [("FFMPEG_BIN", ffmpeg), ("STOP_INPUT_GRACE", grace)]
        .iter()
        .chain(STALL_VARS)
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    let url = source.url();
    let out_s = out.display().to_string();
    let mut args = vec!["-hide_banner"];
    args.extend_from_slice(INPUT_ARGS);
    args.extend(["-i", &url, "-c:v", "mpeg4", "-q:v", "5", "-y", &out_s]);
    let mut d = Daemon::spawn(&c.bins, &wd, &env, &args);
    let mut pid = None;
    wait_for(10.0, || {
        pid = fs::read_to_string(wd.join("status/FFMPEG_PID"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        pid.is_some()
    });
    let pid = pid?;
    let t0 = Instant::now();
    let mut stop = None;
    let gone = loop {
        if t0.elapsed().as_secs_f64() > 40.0 {
            return None;
        }
        if stop.is_none() && d.status().is_some_and(|s| s["state"] == "stopping") {
            stop = Some(Instant::now());
        }
        if procfs::process_gone(pid) {
            break Instant::now();
        }
        sleep(0.01);
    };
    d.wait(15.0);
    drop(source);
    let took = gone.duration_since(stop.unwrap_or(gone)).as_secs_f64();
    let encoded = FRAMES as f64 / 25.0;
    let complete = probe_duration(&out).is_some_and(|dur| (dur - encoded).abs() <= 0.5)
        && decodes_cleanly(&out);
    Some((took, complete))
}

/// 11. A hung input → ffmpeg's exit.
pub(crate) fn m11_grace(c: &Ctx, rep: &mut Report) {
    let runs = 5;
    let mut ffmpegs = vec![("system ffmpeg".to_string(), "ffmpeg".to_string())];
    let mut details = Vec::new();
    match std::env::var("FFW_FFMPEG_NEW") {
        Ok(p) if !p.is_empty() => ffmpegs.push((format!("FFW_FFMPEG_NEW ({p})"), p)),
        _ => details.push("FFW_FFMPEG_NEW not set: the newer ffmpeg was not measured".into()),
    }
    for (i, (label, ff)) in ffmpegs.iter().enumerate() {
        let version = crate::util::cmd_out(ff, &["-version"]);
        // "5.1.9-0+deb12u1" -> "5.1.9", "n9.0.2-17-g…" -> "n9.0.2".
        let version = version.split_whitespace().nth(2).unwrap_or("?");
        let version = version.split('-').next().unwrap_or(version).to_string();
        let mut times = Vec::new();
        let mut complete = 0;
        for r in 0..runs {
            if let Some((t, ok)) = one_run(c, &format!("m11-{i}-{r}"), ff, "1") {
                times.push(t);
                complete += usize::from(ok);
            }
        }
        let m = median(&times);
        let all = complete == runs && times.len() == runs;
        let ratio = m / 1.5;
        let verdict = if all && ratio <= 1.0 {
            Verdict::Met
        } else {
            Verdict::Missed
        };
        rep.push_row(
            &format!("11{}", (b'a' + i as u8) as char),
            &format!("hung input -> exit (ffmpeg {version})"),
            "<= 1.5 s, 100 % complete",
            format!("{m:.3} s, {complete}/{runs} complete"),
            Some(ratio),
            verdict,
        );
        details.push(format!(
            "{label} {version}, STOP_INPUT_GRACE=1: stop decision -> exit s per run: {} \
             (median {m:.3}); complete mp4s: {complete}/{runs}",
            fmt_list(&times, 3)
        ));
        if !c.quick {
            let base = one_run(c, &format!("m11-{i}-base"), ff, "0");
            details.push(format!(
                "{label} {version}, STOP_INPUT_GRACE=0 (before issue 11), one run: {}",
                base.map_or("no stop seen".into(), |(t, ok)| format!(
                    "{t:.3} s, mp4 {}",
                    if ok { "complete" } else { "incomplete" }
                ))
            ));
        }
    }
    rep.section(
        11,
        "Hung input -> exit",
        "A test server sends 50 raw 160x120 gray frames (2 s at 25 fps) over TCP to wrapperd's \
         ffmpeg (-c:v mpeg4 into an mp4), then hangs with the connection open. wrapperd runs with \
         `MANAGER_START_DELAY=0 ENCODING_CHECK_START_DELAY=0.5 ENCODING_RATE_WINDOW=1 \
         ENCODING_MAX_ERROR_TIME=20 ENCODING_MAX_STDOUT_STUCK_TIME=1.5 STOP_TIMEOUT=10`, so the \
         manager stops it as stalled. Time = from `/status` first saying `stopping` (polled every \
         10 ms) to ffmpeg's pid being gone. Complete = ffprobe's duration within 0.5 s of 2 s \
         and `ffmpeg -v error -xerror -i out.mp4 -f null -` silent. Five runs per ffmpeg; \
         without --quick, one run with STOP_INPUT_GRACE=0 for comparison.",
        details,
    );
}
