//! `GET /metrics`: Prometheus text format 0.0.4, from one table ([`METRICS`]) of each metric's
//! name, type, help and value, so adding a metric is one row.
//!
//! Every line ends with `\n`, as the format requires. A metric that has no value yet (no
//! progress block, no measurable rate) keeps its `# HELP`/`# TYPE` lines but has no sample,
//! rather than `NaN`. `ffwrapper_up` is `1` while ffmpeg runs (state `running`) and `0` before it
//! starts, while it stops, between runs and after it exited. `ffwrapper_health` has one sample
//! per health, labelled `state`, `1` for the current one. `ffwrapper_info` is always `1`; its
//! labels (`name`: the work directory's name, `version`) are escaped as the format requires.
//! `ffwrapper_last_exit_timestamp_seconds` is the `end` of `/status`'s `last_run` as Unix
//! seconds (with milliseconds), and has no sample until a run has ended.

use std::fmt::Write as _;

use shared::api::{Health, State, Status};
use shared::timefmt;

/// The content type of `/metrics`.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric: a row of [`METRICS`].
struct Metric {
    /// Its name, `ffwrapper_*`.
    name: &'static str,
    /// `gauge` or `counter`.
    kind: &'static str,
    /// The `# HELP` text.
    help: &'static str,
    /// Its samples in a status.
    value: fn(&Status) -> Value,
}

/// A metric's samples in one status.
enum Value {
    /// No value yet: no sample.
    Absent,
    /// One sample.
    One(MetricNumber),
    /// One sample per [`Health`], labelled `state`: 1 for this one, 0 for the others.
    PerHealth(Health),
    /// One sample of `1` with these labels (name, unescaped value).
    Info(Vec<(&'static str, String)>),
}

impl Value {
    /// A float sample when there is a value.
    fn float(v: Option<f64>) -> Value {
        v.map_or(Value::Absent, |x| Value::One(MetricNumber::Float(x)))
    }

    /// An integer sample when there is a value.
    fn int(v: Option<u64>) -> Value {
        v.map_or(Value::Absent, |n| Value::One(MetricNumber::Int(n)))
    }
}

/// A sample's number as the Prometheus text format writes it.
enum MetricNumber {
    /// Written as an integer.
    Int(u64),
    /// Written as Rust writes it, with the format's `NaN`, `+Inf` and `-Inf`.
    Float(f64),
}

impl std::fmt::Display for MetricNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            MetricNumber::Int(n) => write!(f, "{n}"),
            MetricNumber::Float(x) if x.is_nan() => f.write_str("NaN"),
            MetricNumber::Float(x) if x == f64::INFINITY => f.write_str("+Inf"),
            MetricNumber::Float(x) if x == f64::NEG_INFINITY => f.write_str("-Inf"),
            MetricNumber::Float(x) => write!(f, "{x}"),
        }
    }
}

/// Every metric, in the order `/metrics` lists them.
const METRICS: [Metric; 16] = [
    Metric {
        name: "ffwrapper_up",
        kind: "gauge",
        help: "1 while ffmpeg runs, 0 before it starts, while it stops, between runs and after it exited.",
        value: |st| Value::int(Some(u64::from(st.state == State::Running))),
    },
    Metric {
        name: "ffwrapper_fps",
        kind: "gauge",
        help: "Current frames per second over the rate window.",
        value: |st| Value::float(st.rates.fps),
    },
    Metric {
        name: "ffwrapper_speed",
        kind: "gauge",
        help: "Current encoding speed (media seconds per second) over the rate window.",
        value: |st| Value::float(st.rates.speed),
    },
    Metric {
        name: "ffwrapper_bitrate_kbps",
        kind: "gauge",
        help: "Output bitrate in kbit/s as ffmpeg reports it.",
        value: |st| Value::float(st.progress.as_ref().and_then(|p| p.bitrate_kbps)),
    },
    Metric {
        name: "ffwrapper_frames",
        kind: "gauge",
        help: "Frames encoded so far.",
        value: |st| Value::int(st.progress.as_ref().and_then(|p| p.frame)),
    },
    Metric {
        name: "ffwrapper_dup_frames",
        kind: "gauge",
        help: "Frames duplicated so far.",
        value: |st| Value::int(st.progress.as_ref().and_then(|p| p.dup_frames)),
    },
    Metric {
        name: "ffwrapper_drop_frames",
        kind: "gauge",
        help: "Frames dropped so far.",
        value: |st| Value::int(st.progress.as_ref().and_then(|p| p.drop_frames)),
    },
    Metric {
        name: "ffwrapper_out_time_seconds",
        kind: "gauge",
        help: "Media time written so far, in seconds.",
        value: |st| {
            let us = st.progress.as_ref().and_then(|p| p.out_time_us);
            Value::float(us.map(|us| us as f64 / 1e6))
        },
    },
    Metric {
        name: "ffwrapper_health",
        kind: "gauge",
        help: "The encode's health: 1 for the current state, 0 for the others.",
        value: |st| Value::PerHealth(st.health),
    },
    Metric {
        name: "ffwrapper_log_lines_total",
        kind: "counter",
        help: "ffmpeg output lines received.",
        value: |st| Value::int(Some(st.counters.log_lines)),
    },
    Metric {
        name: "ffwrapper_progress_blocks_total",
        kind: "counter",
        help: "ffmpeg progress blocks received.",
        value: |st| Value::int(Some(st.counters.progress_blocks)),
    },
    Metric {
        name: "ffwrapper_uptime_seconds",
        kind: "gauge",
        help: "Seconds since wrapperd started.",
        value: |st| Value::float(Some(st.uptime_s)),
    },
    Metric {
        name: "ffwrapper_runs_total",
        kind: "counter",
        help: "ffmpeg runs started by this wrapperd.",
        value: |st| Value::int(Some(st.run.runs)),
    },
    Metric {
        name: "ffwrapper_restarts_total",
        kind: "counter",
        help: "Restarts by this wrapperd (by the restart policy or POST /restart).",
        value: |st| Value::int(Some(st.run.restarts)),
    },
    Metric {
        name: "ffwrapper_last_exit_timestamp_seconds",
        kind: "gauge",
        help: "When the newest ended run ended, Unix seconds.",
        value: |st| {
            let end = st.last_run.as_ref();
            let ms = end.and_then(|r| timefmt::parse_rfc3339_ms(&r.end));
            Value::float(ms.map(|ms| ms as f64 / 1000.0))
        },
    },
    Metric {
        name: "ffwrapper_info",
        kind: "gauge",
        help: "Always 1; labelled with the work directory's name and wrapperd's version.",
        value: |st| {
            let path = std::path::Path::new(&st.workdir);
            let name = path
                .file_name()
                .map_or_else(|| st.workdir.clone(), |n| n.to_string_lossy().into_owned());
            Value::Info(vec![("name", name), ("version", st.version.clone())])
        },
    },
];

/// `GET /metrics`: every metric of [`METRICS`] in `st`.
pub(crate) fn text(st: &Status) -> String {
    let mut out = String::with_capacity(3000);
    for m in &METRICS {
        let name = m.name;
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {}", m.help, m.kind);
        match (m.value)(st) {
            Value::Absent => {}
            Value::One(v) => {
                let _ = writeln!(out, "{name} {v}");
            }
            Value::Info(labels) => {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} 1", labels.join(","));
            }
            Value::PerHealth(current) => {
                for h in Health::ALL {
                    let _ = writeln!(
                        out,
                        "{name}{{state=\"{}\"}} {}",
                        h.as_str(),
                        u8::from(h == current)
                    );
                }
            }
        }
    }
    out
}

/// A label value as the text format writes it: `\`, `"` and line feeds escaped.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::testutil::{block, ok, Fixture, T0};
    use super::*;

    fn parse_metrics(body: &str) -> prometheus_parse::Scrape {
        assert!(body.ends_with('\n'));
        let mut documented = std::collections::HashSet::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                documented.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(documented.contains(name), "{name} has no # TYPE before it");
                let value = line.rsplit(' ').next().unwrap();
                assert!(
                    value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
                    "{line}"
                );
            }
        }
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
    }

    const METRIC_NAMES: [&str; 16] = [
        "ffwrapper_up",
        "ffwrapper_fps",
        "ffwrapper_speed",
        "ffwrapper_bitrate_kbps",
        "ffwrapper_frames",
        "ffwrapper_dup_frames",
        "ffwrapper_drop_frames",
        "ffwrapper_out_time_seconds",
        "ffwrapper_health",
        "ffwrapper_log_lines_total",
        "ffwrapper_progress_blocks_total",
        "ffwrapper_uptime_seconds",
        "ffwrapper_runs_total",
        "ffwrapper_restarts_total",
        "ffwrapper_last_exit_timestamp_seconds",
        "ffwrapper_info",
    ];
    /// The metrics without a sample until a run has ended.
    const AFTER_A_RUN: [&str; 1] = ["ffwrapper_last_exit_timestamp_seconds"];

    #[tokio::test(flavor = "multi_thread")]
    async fn metrics_parse_and_hold_every_metric() {
        let f = Fixture::new(&[("ENCODING_RATE_WINDOW", "0")]);
        let c = f.unix();
        // Before any block: documented, no samples for what has no value.
        let a = ok(&c, "/metrics").await;
        assert_eq!(a.content_type, CONTENT_TYPE);
        let scrape = parse_metrics(&a.body);
        for name in METRIC_NAMES {
            assert!(scrape.docs.contains_key(name), "{name} documented");
        }
        assert!(!scrape
            .samples
            .iter()
            .any(|s| s.metric == "ffwrapper_frames"));

        f.shared.ffmpeg_started(9, Instant::now());
        f.push_lines(&[(T0, "a"), (T0, "b"), (T0, "c")]);
        f.shared
            .push_block(T0, Instant::now(), &block(250, 10_500_000));
        let scrape = parse_metrics(&ok(&c, "/metrics").await.body);
        let value = |name: &str| {
            let s = scrape
                .samples
                .iter()
                .find(|s| s.metric == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) => v,
                ref other => panic!("{name}: {other:?}"),
            }
        };
        for name in METRIC_NAMES {
            if AFTER_A_RUN.contains(&name) {
                assert!(!scrape.samples.iter().any(|s| s.metric == name), "{name}");
            } else {
                value(name);
            }
        }
        assert_eq!(
            value("ffwrapper_runs_total"),
            1.0,
            "the fixture started one run"
        );
        assert_eq!(value("ffwrapper_restarts_total"), 0.0);
        assert_eq!(value("ffwrapper_info"), 1.0);
        assert_eq!(value("ffwrapper_up"), 1.0);
        assert_eq!(value("ffwrapper_fps"), 25.0);
        assert_eq!(value("ffwrapper_speed"), 1.01);
        assert_eq!(value("ffwrapper_bitrate_kbps"), 1024.5);
        assert_eq!(value("ffwrapper_frames"), 250.0);
        assert_eq!(value("ffwrapper_dup_frames"), 1.0);
        assert_eq!(value("ffwrapper_drop_frames"), 2.0);
        assert_eq!(value("ffwrapper_out_time_seconds"), 10.5);
        assert_eq!(value("ffwrapper_log_lines_total"), 3.0);
        assert_eq!(value("ffwrapper_progress_blocks_total"), 1.0);
        assert!(value("ffwrapper_uptime_seconds") >= 0.0);
        assert!(matches!(
            scrape
                .samples
                .iter()
                .find(|s| s.metric == "ffwrapper_log_lines_total")
                .unwrap()
                .value,
            prometheus_parse::Value::Counter(_)
        ));
        let health: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == "ffwrapper_health")
            .collect();
        assert_eq!(health.len(), Health::ALL.len());
        let current = f.shared.health().0;
        for s in health {
            let state = s.labels.get("state").unwrap();
            let want = if state == current.as_str() { 1.0 } else { 0.0 };
            assert_eq!(s.value, prometheus_parse::Value::Gauge(want), "{state}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_table_writes_the_exact_text() {
        let f = Fixture::new(&[("ENCODING_RATE_WINDOW", "0")]);
        f.shared.ffmpeg_started(9, Instant::now());
        f.push_lines(&[(T0, "a")]);
        f.shared
            .push_block(T0, Instant::now(), &block(250, 10_500_000));
        let st = f.shared.status();
        let health: String = Health::ALL
            .iter()
            .map(|h| {
                let on = u8::from(*h == st.health);
                format!("ffwrapper_health{{state=\"{}\"}} {on}\n", h.as_str())
            })
            .collect();
        let want = format!(
            "# HELP ffwrapper_up 1 while ffmpeg runs, 0 before it starts, while it stops, between runs and after it exited.\n\
             # TYPE ffwrapper_up gauge\nffwrapper_up 1\n\
             # HELP ffwrapper_fps Current frames per second over the rate window.\n\
             # TYPE ffwrapper_fps gauge\nffwrapper_fps 25\n\
             # HELP ffwrapper_speed Current encoding speed (media seconds per second) over the rate window.\n\
             # TYPE ffwrapper_speed gauge\nffwrapper_speed 1.01\n\
             # HELP ffwrapper_bitrate_kbps Output bitrate in kbit/s as ffmpeg reports it.\n\
             # TYPE ffwrapper_bitrate_kbps gauge\nffwrapper_bitrate_kbps 1024.5\n\
             # HELP ffwrapper_frames Frames encoded so far.\n\
             # TYPE ffwrapper_frames gauge\nffwrapper_frames 250\n\
             # HELP ffwrapper_dup_frames Frames duplicated so far.\n\
             # TYPE ffwrapper_dup_frames gauge\nffwrapper_dup_frames 1\n\
             # HELP ffwrapper_drop_frames Frames dropped so far.\n\
             # TYPE ffwrapper_drop_frames gauge\nffwrapper_drop_frames 2\n\
             # HELP ffwrapper_out_time_seconds Media time written so far, in seconds.\n\
             # TYPE ffwrapper_out_time_seconds gauge\nffwrapper_out_time_seconds 10.5\n\
             # HELP ffwrapper_health The encode's health: 1 for the current state, 0 for the others.\n\
             # TYPE ffwrapper_health gauge\n{health}\
             # HELP ffwrapper_log_lines_total ffmpeg output lines received.\n\
             # TYPE ffwrapper_log_lines_total counter\nffwrapper_log_lines_total 1\n\
             # HELP ffwrapper_progress_blocks_total ffmpeg progress blocks received.\n\
             # TYPE ffwrapper_progress_blocks_total counter\nffwrapper_progress_blocks_total 1\n\
             # HELP ffwrapper_uptime_seconds Seconds since wrapperd started.\n\
             # TYPE ffwrapper_uptime_seconds gauge\nffwrapper_uptime_seconds {}\n\
             # HELP ffwrapper_runs_total ffmpeg runs started by this wrapperd.\n\
             # TYPE ffwrapper_runs_total counter\nffwrapper_runs_total 1\n\
             # HELP ffwrapper_restarts_total Restarts by this wrapperd (by the restart policy or POST /restart).\n\
             # TYPE ffwrapper_restarts_total counter\nffwrapper_restarts_total 0\n\
             # HELP ffwrapper_last_exit_timestamp_seconds When the newest ended run ended, Unix seconds.\n\
             # TYPE ffwrapper_last_exit_timestamp_seconds gauge\n\
             # HELP ffwrapper_info Always 1; labelled with the work directory's name and wrapperd's version.\n\
             # TYPE ffwrapper_info gauge\nffwrapper_info{{name=\"{}\",version=\"{}\"}} 1\n",
            st.uptime_s,
            std::path::Path::new(&st.workdir).file_name().unwrap().to_string_lossy(),
            shared::VERSION,
        );
        assert_eq!(text(&st), want);
    }

    /// Between runs: the run counters, the last exit's time, `restarting` in the health gauge,
    /// and label values that need escaping.
    #[test]
    fn restarts_last_exit_and_info() {
        let dir = tempfile::tempdir().unwrap();
        let workdir = dir.path().join("cam \"1\"\\x");
        std::fs::create_dir(&workdir).unwrap();
        let wd = workdir.display().to_string();
        let daemon = crate::state::Daemon::new(
            super::super::testutil::config(&dir, &[("WORKDIR", wd.as_str())]),
            vec![],
        );
        let mut st = daemon.status();
        st.state = State::Restarting;
        st.health = Health::Restarting;
        st.run.runs = 3;
        st.run.restarts = 2;
        st.last_run = Some(shared::api::RunRecord {
            run: 3,
            start: "2026-11-23T23:54:00.123Z".into(),
            end: "2026-11-23T23:56:03.456Z".into(),
            duration_s: 123.333,
            ffmpeg_pid: Some(812),
            ffmpeg_status: shared::api::FfmpegStatus::Code(1),
            reason: "ffmpeg ended by itself with status 1".into(),
            error: None,
            last_progress: None,
            last_lines: vec![],
        });
        let body = text(&st);
        let scrape = parse_metrics(&body);
        let one = |name: &str| {
            let s = scrape.samples.iter().find(|s| s.metric == name).unwrap();
            (s.value.clone(), s.labels.clone())
        };
        assert_eq!(
            one("ffwrapper_runs_total").0,
            prometheus_parse::Value::Counter(3.0)
        );
        assert_eq!(
            one("ffwrapper_restarts_total").0,
            prometheus_parse::Value::Counter(2.0)
        );
        assert!(body.contains("\nffwrapper_last_exit_timestamp_seconds 1795478163.456\n"));
        assert!(body.contains("\nffwrapper_up 0\n"));
        assert!(
            body.contains("\nffwrapper_info{name=\"cam \\\"1\\\"\\\\x\",version=\""),
            "{body}"
        );
        let (_, labels) = one("ffwrapper_info");
        assert_eq!(labels.get("version"), Some(shared::VERSION));
        assert!(body.contains("\nffwrapper_health{state=\"restarting\"} 1\n"));
        assert!(body.contains("\nffwrapper_health{state=\"stopping\"} 0\n"));
        assert_eq!(escape_label("a\nb"), "a\\nb");
    }

    #[test]
    fn samples_use_the_formats_words_for_special_floats() {
        let words = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5]
            .map(|x| MetricNumber::Float(x).to_string());
        assert_eq!(words, ["NaN", "+Inf", "-Inf", "0.5"]);
        assert_eq!(
            MetricNumber::Int(u64::MAX).to_string(),
            "18446744073709551615"
        );
    }
}
