//! `ffw-bench`: the benchmark suite of issue #6 — what wrapperd and fftop cost, side by side with
//! bare ffmpeg. Run it through `bench/run`, which builds the release binaries first.
//!
//! ```text
//! ffw-bench [--quick] [--only 1,4,6] [--bin-dir DIR] [--out BENCHMARKS.md] [--notes bench/notes.md]
//!           [--python-peer ../shared/peers/ff_wrapper_python]
//! ```
//!
//! Every comparison runs both sides in the same run, in alternation (the first side of a pair
//! alternates too), and reports medians, because the machine is shared and noisy. The table goes
//! to stdout and, with the machine's description and how each figure was taken, to `--out`.
//!
//! The same binary is also the scripted child some measurements need (`FFMPEG_BIN` = this binary,
//! `FFW_BENCH_CHILD` = the mode), because they need timestamps taken inside the child:
//! - `stamp`: writes `CLOCK_MONOTONIC` ns at its first instruction to `$FFW_BENCH_STAMP`, then
//!   waits (start-up, measurement 5).
//! - `fill`: writes `$FFW_FILL_BLOCKS` progress blocks and `$FFW_FILL_LINES` typical ffmpeg stats
//!   lines as fast as it can, then goes on as a 25 fps encode (measurements 3 and 6).
//! - `stall` / `fail`: a healthy 25 fps encode for `$FFW_HEALTHY_S` s, then silence (stall) or
//!   5 fps at 0.2x (fail); writes `<reference ns> <SIGINT ns>` to `$FFW_BENCH_STAMP`, where the
//!   reference is the last output (stall) or the first failing block (fail) (measurement 7).
//! - `restart`: appends `s <CLOCK_MONOTONIC ns>` to `$FFW_BENCH_STAMP` at its first
//!   instruction, runs 50 ms, appends `e <ns>` and exits 1 (measurement 12).

mod abuse;
mod child;
mod client;
mod encode;
mod events;
mod fftop;
mod fftop_fleet;
mod grace;
mod many;
mod procs;
mod python;
mod reaction;
mod report;
mod restarts;
mod rings_api;
mod serve;
mod startup;
mod throughput;
mod util;

use std::path::PathBuf;
use std::time::Instant;

use crate::child::child_main;
use crate::encode::{m1_overhead, m2_realtime};
use crate::events::m13_events;
use crate::fftop::m9_fftop;
use crate::fftop_fleet::m16_fftop_fleet;
use crate::grace::m11_grace;
use crate::many::m8_many;
use crate::procs::Bins;
use crate::python::m10_python;
use crate::reaction::m7_reaction;
use crate::report::{fmt_row_plain, machine, write_markdown, Report};
use crate::restarts::m12_restarts;
use crate::rings_api::m3_m6_rings_and_api;
use crate::serve::m15_serve;
use crate::startup::m5_startup;
use crate::throughput::m4_throughput;

/// What every measurement needs: the binaries, the mode, a scratch directory, a runtime.
pub(crate) struct Ctx {
    /// The binaries under test, and this one (the scripted child).
    pub(crate) bins: Bins,
    /// `--quick`: fewer pairs, shorter windows.
    pub(crate) quick: bool,
    /// The scratch directory the work directories go into.
    pub(crate) tmp: PathBuf,
    /// The runtime of the async load generator.
    pub(crate) rt: tokio::runtime::Runtime,
}

impl Ctx {
    /// How many pairs (or runs) to take: `full`, or `quick` with `--quick`.
    pub(crate) fn pairs(&self, full: usize, quick: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// A path in the scratch directory.
    pub(crate) fn dir(&self, name: &str) -> PathBuf {
        self.tmp.join(name)
    }

    /// The environment that makes wrapperd run this binary as ffmpeg in child `mode`.
    pub(crate) fn me_env(&self, mode: &str) -> Vec<(&'static str, String)> {
        vec![
            ("FFMPEG_BIN", self.bins.me.display().to_string()),
            ("FFW_BENCH_CHILD", mode.to_string()),
        ]
    }
}

/// The command line.
struct Args {
    /// `--quick`.
    quick: bool,
    /// `--only 1,4,6`: the measurements to run (all when `None`).
    only: Option<Vec<u32>>,
    /// `--bin-dir`, `--wrapperd`: the binaries.
    bins: Bins,
    /// `--out`: where BENCHMARKS.md goes.
    out: PathBuf,
    /// `--notes`: the hand-written analysis appended to it.
    notes: Option<PathBuf>,
    /// `--python-peer`: the original Python tool, for measurement 10.
    python_peer: PathBuf,
}

/// Reads the command line; exits 2 on an unknown argument or a missing binary, 0 after `--help`.
fn parse_args() -> Args {
    let mut quick = false;
    let mut only: Option<Vec<u32>> = None;
    let me = std::env::current_exe().expect("current exe");
    let mut bin_dir = me.parent().expect("bin dir").to_path_buf();
    let mut out = PathBuf::from("BENCHMARKS.md");
    let mut notes = Some(PathBuf::from("bench/notes.md"));
    let mut wrapperd_override: Option<PathBuf> = None;
    let mut python_peer = PathBuf::from("../shared/peers/ff_wrapper_python");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--only" => {
                only = args
                    .next()
                    .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            }
            "--bin-dir" => bin_dir = args.next().map(PathBuf::from).unwrap_or(bin_dir),
            "--wrapperd" => wrapperd_override = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from).unwrap_or(out),
            "--notes" => notes = args.next().map(PathBuf::from),
            "--python-peer" => python_peer = args.next().map(PathBuf::from).unwrap_or(python_peer),
            "-h" | "--help" => {
                println!(
                    "ffw-bench [--quick] [--only 1,4,6] [--bin-dir DIR] [--out BENCHMARKS.md] \
                     [--notes bench/notes.md] [--python-peer DIR]\nRun through bench/run, which builds the release \
                     binaries first."
                );
                std::process::exit(0);
            }
            other => {
                eprintln!("ffw-bench: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let bins = Bins {
        wrapperd: wrapperd_override.unwrap_or_else(|| bin_dir.join("wrapperd")),
        fftop: bin_dir.join("fftop"),
        fake: bin_dir.join("fake-ffmpeg"),
        me,
    };
    for b in [&bins.wrapperd, &bins.fftop, &bins.fake] {
        if !b.exists() {
            eprintln!(
                "ffw-bench: {} is missing (cargo build --release --bins)",
                b.display()
            );
            std::process::exit(2);
        }
    }
    Args {
        quick,
        only,
        bins,
        out,
        notes,
        python_peer,
    }
}

/// The table's header line.
fn print_header() {
    println!(
        "{:<4} {:<46} {:<22} {:<28} {:>7} verdict",
        "#", "measurement", "goal", "figure", "ratio"
    );
}

fn main() {
    if let Ok(mode) = std::env::var("FFW_BENCH_CHILD") {
        child_main(&mode);
    }
    let args = parse_args();
    let tmp = tempfile::Builder::new()
        .prefix("ffw-bench.")
        .tempdir()
        .expect("temporary directory");
    let c = Ctx {
        bins: args.bins,
        quick: args.quick,
        tmp: tmp.path().to_path_buf(),
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
    };
    let only = args.only;
    let want = |n: u32| only.as_ref().is_none_or(|o| o.contains(&n));
    let mach = machine();
    for (k, v) in &mach {
        println!("{k}: {v}");
    }
    println!();
    let started = Instant::now();
    let mut rep = Report::default();
    print_header();
    let steps: Vec<(u32, &str)> = vec![
        (5, "start-up"),
        (4, "log throughput"),
        (3, "full rings (and 6: API)"),
        (7, "manager reaction"),
        (8, "many wrapperd"),
        (9, "fftop"),
        (1, "CPU-bound encode"),
        (2, "realtime encode"),
        (10, "vs the Python tool"),
        (11, "hung input -> exit"),
        (12, "restarts"),
        (13, "events"),
        (15, "fftop --serve"),
        (16, "fftop on 2 aggregators"),
    ];
    for (n, name) in steps {
        let run36 = n == 3 && (want(3) || want(6));
        if !(want(n) || run36) {
            continue;
        }
        eprintln!(
            "[{:5.0} s] measurement {n}: {name}",
            started.elapsed().as_secs_f64()
        );
        match n {
            1 => m1_overhead(&c, &mut rep),
            2 => m2_realtime(&c, &mut rep),
            3 => m3_m6_rings_and_api(&c, &mut rep, want(3), want(6)),
            4 => m4_throughput(&c, &mut rep),
            5 => m5_startup(&c, &mut rep),
            7 => m7_reaction(&c, &mut rep),
            8 => m8_many(&c, &mut rep),
            9 => m9_fftop(&c, &mut rep),
            10 => m10_python(&c, &mut rep, &args.python_peer),
            11 => m11_grace(&c, &mut rep),
            12 => m12_restarts(&c, &mut rep),
            13 => m13_events(&c, &mut rep),
            15 => m15_serve(&c, &mut rep),
            16 => m16_fftop_fleet(&c, &mut rep),
            _ => {}
        }
    }
    let took = started.elapsed().as_secs_f64();
    rep.rows.sort_by(|a, b| a.id.cmp(&b.id));
    println!("\nSummary ({took:.0} s):");
    print_header();
    for r in &rep.rows {
        println!("{}", fmt_row_plain(r));
    }
    write_markdown(&args.out, args.notes.as_deref(), &rep, &mach, c.quick, took);
    println!("\nwrote {}", args.out.display());
}
