//! Measurement 5: start-up, wrapperd's start to ffmpeg's exec and to the API answering.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{get, Target};
use crate::procs::{die_with_parent, Daemon};
use crate::report::Report;
use crate::util::{fmt_list, median, median_line, mono_ns, wait_for};
use crate::Ctx;

/// 5. Start-up: wrapperd's start → ffmpeg's exec, and → api.sock answering.
pub(crate) fn m5_startup(c: &Ctx, rep: &mut Report) {
    let pairs = c.pairs(15, 7);
    let stamp = c.dir("m5-stamp");
    let wd = c.dir("m5");
    let read_stamp = || -> Option<i64> { fs::read_to_string(&stamp).ok()?.trim().parse().ok() };
    let (mut direct, mut exec, mut api, mut diff) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let run_direct = || {
            let _ = fs::remove_file(&stamp);
            let t0 = mono_ns();
            let mut ch = Command::new(&c.bins.me)
                .env("FFW_BENCH_CHILD", "stamp")
                .env("FFW_BENCH_STAMP", &stamp)
                .env("FFW_STAMP_EXIT", "1")
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn");
            let _ = ch.wait();
            read_stamp().map(|s| (s - t0) as f64 / 1e6)
        };
        // `poll`: measure api.sock answering (polling it tightly); else only the child's exec,
        // without a poller competing for the two cores.
        let run_wrapped = |poll: bool| {
            let _ = fs::remove_file(&stamp);
            let _ = fs::remove_dir_all(&wd);
            fs::create_dir_all(&wd).ok();
            let sock = Target::Unix(wd.join("api.sock"));
            let mut cmd = Command::new(&c.bins.wrapperd);
            cmd.arg("stamp")
                .env("WORKDIR", &wd)
                .env("FFMPEG_BIN", &c.bins.me)
                .env("FFW_BENCH_CHILD", "stamp")
                .env("FFW_BENCH_STAMP", &stamp)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
            let t0 = mono_ns();
            let child = cmd.spawn().expect("spawn wrapperd");
            let mut d = Daemon {
                child,
                wd: wd.clone(),
            };
            let mut t_api = None;
            let end = Instant::now() + Duration::from_secs(5);
            while poll && Instant::now() < end {
                if let Ok((200, _)) = get(&sock, "/get_pid") {
                    t_api = Some(mono_ns());
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            wait_for(5.0, || read_stamp().is_some());
            let e = read_stamp();
            d.stop();
            (
                e.map(|s| (s - t0) as f64 / 1e6),
                t_api.map(|a| (a - t0) as f64 / 1e6),
            )
        };
        let (dd, ee, aa) = match i % 3 {
            0 => {
                let dd = run_direct();
                let ee = run_wrapped(false).0;
                (dd, ee, run_wrapped(true).1)
            }
            1 => {
                let ee = run_wrapped(false).0;
                let aa = run_wrapped(true).1;
                (run_direct(), ee, aa)
            }
            _ => {
                let aa = run_wrapped(true).1;
                let dd = run_direct();
                (dd, run_wrapped(false).0, aa)
            }
        };
        if let (Some(dd), Some(ee), Some(aa)) = (dd, ee, aa) {
            direct.push(dd);
            exec.push(ee);
            api.push(aa);
            diff.push(ee - dd);
        }
    }
    let (e, a) = (median(&diff), median(&api));
    rep.row(
        "5a",
        "start-up: wrapperd start -> ffmpeg exec",
        "<= 2 ms",
        format!("{e:.2} ms"),
        Some(e / 2.0),
    );
    rep.row(
        "5b",
        "start-up: wrapperd start -> api.sock answers",
        "<= 20 ms",
        format!("{a:.2} ms"),
        Some(a / 20.0),
    );
    rep.section(
        5,
        "Start-up",
        "`FFMPEG_BIN` is this binary in mode `stamp`, whose first instruction writes \
         CLOCK_MONOTONIC to a file. Each run: CLOCK_MONOTONIC just before spawning wrapperd \
         (fresh work directory, defaults), wait for the child's stamp. In alternation (the \
         order rotating), the same child is spawned directly from the bench, and wrapperd is \
         started again with api.sock polled (`GET /get_pid` on a new connection every 0.1 ms) \
         until it answers 200 (a separate run, so that the poller does not compete with the \
         start for the two cores). `start -> exec` is, per pair, (spawn wrapperd -> the \
         child's stamp) - (spawn the child directly -> its stamp): wrapperd's own part, with \
         the cost of one spawn and of the child's start cancelled out. `-> api.sock answers` \
         is raw, from the spawn (it includes the bench's spawn of wrapperd and one connection).",
        vec![
            median_line("spawn wrapperd -> child's stamp ms", &exec, 2),
            median_line("spawn the child directly -> its stamp ms", &direct, 2),
            format!(
                "per-pair difference ms: {} (median {e:.2})",
                fmt_list(&diff, 2)
            ),
            format!(
                "spawn -> api.sock answers ms: {} (median {a:.2})",
                fmt_list(&api, 2)
            ),
        ],
    );
}
