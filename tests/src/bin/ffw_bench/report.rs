//! The results: a table row per figure with its goal and verdict, a section per measurement
//! with how it was taken, the machine's description, and `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::util::cmd_out;

/// A figure against its goal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// The goal is met.
    Met,
    /// The goal is missed.
    Missed,
    /// No goal: for information.
    Info,
}

/// One line of the table.
pub(crate) struct Row {
    /// `3`, `6a`, ...
    pub(crate) id: String,
    /// What is measured.
    pub(crate) what: String,
    /// The goal, as text.
    pub(crate) goal: String,
    /// The figure, as text.
    pub(crate) figure: String,
    /// figure / goal, where that means something.
    pub(crate) ratio: Option<f64>,
    /// Met, missed, or for information.
    pub(crate) verdict: Verdict,
}

/// A measurement's part of BENCHMARKS.md.
pub(crate) struct Section {
    /// The measurement's number.
    pub(crate) id: u32,
    /// Its title.
    pub(crate) title: String,
    /// How the figures were taken.
    pub(crate) how: String,
    /// Every figure, one line each.
    pub(crate) details: Vec<String>,
}

/// Everything measured: the table and the sections.
#[derive(Default)]
pub(crate) struct Report {
    /// The table.
    pub(crate) rows: Vec<Row>,
    /// The measurements' sections.
    pub(crate) sections: Vec<Section>,
}

impl Report {
    pub(crate) fn row(
        &mut self,
        id: &str,
        what: &str,
        goal: &str,
        figure: String,
        ratio: Option<f64>,
    ) {
        let verdict = match ratio {
            Some(r) if r.is_finite() && r <= 1.0 => Verdict::Met,
            Some(_) => Verdict::Missed,
            None => Verdict::Info,
        };
        self.push_row(id, what, goal, figure, ratio, verdict);
    }

    pub(crate) fn push_row(
        &mut self,
        id: &str,
        what: &str,
        goal: &str,
        figure: String,
        ratio: Option<f64>,
        verdict: Verdict,
    ) {
        let r = Row {
            id: id.into(),
            what: what.into(),
            goal: goal.into(),
            figure,
            ratio,
            verdict,
        };
        println!("{}", fmt_row_plain(&r));
        self.rows.push(r);
    }

    pub(crate) fn section(&mut self, id: u32, title: &str, how: &str, details: Vec<String>) {
        self.sections.push(Section {
            id,
            title: title.into(),
            how: how.into(),
            details,
        });
    }
}

pub(crate) fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "met",
        Verdict::Missed => "MISSED",
        Verdict::Info => "-",
    }
}

pub(crate) fn fmt_row_plain(r: &Row) -> String {
    format!(
        "{:<4} {:<46} {:<22} {:<28} {:>7} {}",
        r.id,
        r.what,
        r.goal,
        r.figure,
        r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
        verdict_word(r.verdict)
    )
}

pub(crate) fn machine() -> Vec<(String, String)> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let ffmpeg = cmd_out("ffmpeg", &["-version"])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("PRETTY_NAME="))
                .map(|l| l["PRETTY_NAME=".len()..].trim_matches('"').to_string())
        })
        .unwrap_or_default();
    vec![
        (
            "date".into(),
            chrono::Local::now()
                .format("%Y-%m-%d %H:%M:%S %z")
                .to_string(),
        ),
        ("nproc".into(), cmd_out("nproc", &[])),
        ("CPU".into(), model),
        ("memory".into(), mem),
        ("kernel".into(), cmd_out("uname", &["-sr"])),
        ("OS".into(), os),
        ("ffmpeg".into(), ffmpeg),
        ("rustc".into(), cmd_out("rustc", &["--version"])),
        (
            "load average at start".into(),
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ]
}

pub(crate) fn write_markdown(
    path: &Path,
    notes: Option<&Path>,
    rep: &Report,
    mach: &[(String, String)],
    quick: bool,
    took: f64,
) {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Written by `bench/run`{} (issue #6) — do not edit by hand: the analysis at the end \
         comes from `bench/notes.md`. The machine is shared and noisy: every comparison runs both \
         sides in the same run, in alternation, and reports medians.\n",
        if quick { " --quick" } else { "" }
    );
    let _ = writeln!(s, "## Machine\n\n| | |\n|---|---|");
    for (k, v) in mach {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(
        s,
        "\nThe run took {took:.0} s{}.\n",
        if quick {
            " (**--quick**: fewer pairs and shorter windows; not the figures of record)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "## Results\n\n| # | measurement | goal | figure | figure / goal | verdict |\n\
         |---|---|---|---|---|---|"
    );
    for r in &rep.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            r.id,
            r.what,
            r.goal,
            r.figure,
            r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
            if r.verdict == Verdict::Missed {
                "**missed**"
            } else {
                verdict_word(r.verdict)
            }
        );
    }
    let _ = writeln!(s, "\n## How each figure was taken\n");
    let mut secs: Vec<&Section> = rep.sections.iter().collect();
    secs.sort_by_key(|x| x.id);
    for sec in secs {
        let _ = writeln!(s, "### {}. {}\n\n{}\n", sec.id, sec.title, sec.how);
        for d in &sec.details {
            let _ = writeln!(s, "- {d}");
        }
        let _ = writeln!(s);
    }
    if let Some(n) = notes.and_then(|p| fs::read_to_string(p).ok()) {
        let _ = writeln!(s, "{}", n.trim_end());
    }
    if let Err(e) = fs::write(path, s) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}
