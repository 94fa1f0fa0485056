//! Measurement 7: how late a manager stop (stalled, failing) comes after its deadline.

use std::fs;

use crate::procs::Daemon;
use crate::report::Report;
use crate::util::{fmt_list, median, percentile, wait_for};
use crate::Ctx;

/// 7. How late a manager stop comes after its deadline.
pub(crate) fn m7_reaction(c: &Ctx, rep: &mut Report) {
    let runs = c.pairs(5, 3);
    let mut details = Vec::new();
    let mut worst = Vec::new();
    for (mode, label, id) in [("stall", "stalled", "7a"), ("fail", "failing", "7b")] {
        let mut late = Vec::new();
        for i in 0..runs {
            let wd = c.dir(&format!("m7-{mode}-{i}"));
            let stamp = c.dir(&format!("m7-{mode}-{i}.stamp"));
            let _ = fs::remove_file(&stamp);
            let mut env = c.me_env(mode);
            env.extend([
                ("FFW_BENCH_STAMP", stamp.display().to_string()),
                ("FFW_HEALTHY_S", "1.5".to_string()),
                ("MANAGER_START_DELAY", "0.2".to_string()),
                ("ENCODING_CHECK_START_DELAY", "0.5".to_string()),
                ("ENCODING_MAX_STDOUT_STUCK_TIME", "2".to_string()),
                ("ENCODING_MAX_ERROR_TIME", "2".to_string()),
                ("ENCODING_RATE_WINDOW", "0".to_string()),
            ]);
            let mut d = Daemon::spawn(&c.bins, &wd, &env, &[mode]);
            let got = wait_for(20.0, || {
                fs::read_to_string(&stamp)
                    .map(|s| s.split_whitespace().count() == 2)
                    .unwrap_or(false)
            });
            d.wait(15.0);
            let reason = fs::read_to_string(wd.join("status/status.json"))
                .ok()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                .and_then(|v| v["exit"]["reason"].as_str().map(String::from))
                .unwrap_or_default();
            if !got {
                details.push(format!("{label} run {}: no stop seen ({reason})", i + 1));
                continue;
            }
            let s = fs::read_to_string(&stamp).unwrap_or_default();
            let v: Vec<i64> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let deadline = v[0] + 2_000_000_000;
            let l = (v[1] - deadline) as f64 / 1e6;
            if !reason.contains(label) {
                details.push(format!(
                    "{label} run {}: stopped for another reason: {reason}",
                    i + 1
                ));
            }
            late.push(l);
        }
        let m = median(&late);
        worst.push(percentile(&late, 100.0));
        rep.row(
            id,
            &format!("manager: stop after the `{label}` deadline"),
            "<= 500 ms late",
            format!("{m:.1} ms (median of {})", late.len()),
            Some(m / 500.0),
        );
        details.push(format!(
            "{label}: lateness ms per run: {} (max {:.1})",
            fmt_list(&late, 1),
            percentile(&late, 100.0)
        ));
    }
    rep.section(
        7,
        "Manager reaction",
        "wrapperd runs this binary as its ffmpeg, in mode `stall` or `fail`, with \
         `MANAGER_START_DELAY=0.2 ENCODING_CHECK_START_DELAY=0.5 ENCODING_MAX_STDOUT_STUCK_TIME=2 \
         ENCODING_MAX_ERROR_TIME=2 ENCODING_RATE_WINDOW=0`. The child writes a progress block \
         and a stats line every 0.1 s of a healthy 25 fps, 1x encode for 1.5 s; then `stall` \
         goes silent (deadline: its last write + 2 s) and `fail` goes on at 5 fps, 0.2x (below \
         min fps 15 and min speed 0.85; deadline: its first failing block + 2 s). Its SIGINT \
         handler takes CLOCK_MONOTONIC when wrapperd's stop arrives. Lateness = SIGINT time - \
         deadline.",
        details,
    );
}
