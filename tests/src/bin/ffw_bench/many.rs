//! Measurement 8: many wrapperd at once, each with a quiet child: memory and CPU per daemon.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::procs::{sample_for, stop_all, Daemon, SchedCpu};
use crate::report::{Report, Verdict};
use crate::util::{status_bytes, MIB};
use crate::Ctx;

/// 8. Many wrapperd, each with a quiet child.
pub(crate) fn m8_many(c: &Ctx, rep: &mut Report) {
    let window = if c.quick { 4.0 } else { 10.0 };
    let env = [
        ("FFMPEG_BIN", c.bins.fake.display().to_string()),
        ("ENCODING_CHECK_START_DELAY", "3600".to_string()),
    ];
    let mut res: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    let mut details = Vec::new();
    for n in [1usize, 10, 100] {
        let mut ds = Vec::new();
        let t = Instant::now();
        for i in 0..n {
            let d = Daemon::spawn(&c.bins, &c.dir(&format!("m8/w{i:03}")), &env, &["silence"]);
            ds.push(d);
        }
        let ok = ds.iter().filter(|d| d.wait_api(30.0)).count();
        let up = t.elapsed().as_secs_f64();
        let mut cpus: Vec<SchedCpu> = ds.iter().map(|d| SchedCpu::new(d.pid())).collect();
        let _ = sample_for(&mut cpus, 2.0);
        let cpu0: f64 = cpus
            .iter_mut()
            .map(|c| {
                c.sample();
                c.secs()
            })
            .sum();
        let t0 = Instant::now();
        let cpu1 = sample_for(&mut cpus, window);
        let dt = t0.elapsed().as_secs_f64();
        let rss: f64 = ds
            .iter()
            .filter_map(|d| status_bytes(d.pid(), "VmRSS"))
            .sum();
        let cpu = (cpu1 - cpu0) / dt * 100.0;
        res.insert(n, (rss, cpu));
        details.push(format!(
            "{n} wrapperd ({ok} answering, all up in {up:.1} s): total RSS {:.1} MiB ({:.2} MiB \
             each), CPU {cpu:.3} % of a core in total ({:.5} % each) over {dt:.1} s",
            rss / MIB,
            rss / MIB / n as f64,
            cpu / n as f64
        ));
        stop_all(&mut ds);
    }
    let (r1, c1) = res[&1];
    let (r10, c10) = res[&10];
    let (r100, c100) = res[&100];
    let per = r100 / 100.0 / MIB;
    let growth = (r100 - r10) / 90.0 / MIB;
    rep.row(
        "8a",
        "100 wrapperd, quiet child: RSS each",
        "<= 12 MiB each",
        format!("{per:.2} MiB each ({:.0} MiB total)", r100 / MIB),
        Some(per / 12.0),
    );
    let lin = (growth / per).max(per / growth);
    rep.push_row(
        "8b",
        "RSS growth per instance 10 -> 100 (linear?)",
        "linear",
        format!(
            "{growth:.2} MiB/instance (1: {:.2}, 10: {:.2}/each)",
            r1 / MIB,
            r10 / 10.0 / MIB
        ),
        None,
        if lin < 1.25 {
            Verdict::Met
        } else {
            Verdict::Missed
        },
    );
    rep.row(
        "8c",
        "CPU of 1 / 10 / 100 idle wrapperd",
        "100: <= 0.5 % of a core",
        format!("{c1:.3} / {c10:.3} / {c100:.3} % of a core"),
        Some(c100 / 0.5),
    );
    rep.section(
        8,
        "Many encodes on one host",
        &format!(
            "N = 1, 10, 100 wrapperd (defaults, file logs on, each its own work directory), each \
             running the fake ffmpeg `silence` (prints nothing, stays alive; checks start after \
             an hour so none is stopped). Once every api.sock answers and 2 s more, CPU is the \
             sum over the wrappers of the time on a CPU of all their threads over {window:.0} s \
             (/proc/PID/task/*/schedstat, ns, sampled every 100 ms keeping each thread's largest \
             figure, so a thread that exits is not lost), and RSS the sum of their \
             VmRSS. Linear: the growth per instance from 10 to 100 is within 25 % of the size \
             of one instance at 100."
        ),
        details,
    );
}
