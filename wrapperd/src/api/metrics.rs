//! `GET /metrics`: Prometheus text format 0.0.4, from one table ([`METRICS`]) of each metric's
//! name, type, help and value, so adding a metric is one row.
//!
//! Every line ends with `\n`, as the format requires. A metric that has no value yet (no
//! progress block, no measurable rate) keeps its `# HELP`/`# TYPE` lines but has no sample,
//! rather than `NaN`. `ffwrapper_up` is `1` while ffmpeg runs (state `running`) and `0` before it
//! starts, while it stops and after it exited. `ffwrapper_health` has one sample per health,
//! labelled `state`, `1` for the current one.

use std::fmt::Write as _;

use shared::api::{Health, State, Status};

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
const METRICS: [Metric; 12] = [
    Metric {
        name: "ffwrapper_up",
        kind: "gauge",
        help: "1 while ffmpeg runs, 0 before it starts, while it stops and after it exited.",
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

    const METRIC_NAMES: [&str; 12] = [
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
    ];

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
            value(name);
        }
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
            "# HELP ffwrapper_up 1 while ffmpeg runs, 0 before it starts, while it stops and after it exited.\n\
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
             # TYPE ffwrapper_uptime_seconds gauge\nffwrapper_uptime_seconds {}\n",
            st.uptime_s
        );
        assert_eq!(text(&st), want);
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
