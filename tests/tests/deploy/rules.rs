//! The alert rules and the dashboard against what is really served, for both ways of scraping
//! (SPEC §12, §13): a real wrapperd (fake ffmpeg) read directly, and the same wrapperd behind a
//! real `fftop --serve`. Every metric a rule selects is served where that rule looks for it;
//! every label it matches, joins or groups on exists on those series (`instance` and `job`
//! come from Prometheus); a join's "one" side stays unique behind an aggregator; an alert or
//! a panel that names the encode gets `name`. Where `promtool` is installed, it checks the
//! rules, runs `deploy/prometheus/alerts.test.yml`, and evaluates every dashboard query on
//! that test's series (direct and aggregated at once) without an error.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use serde_norway::Value;
use tests::serve::Serve;
use tests::{wait_until, Wd};

use super::files::{s, yaml_docs};
use super::promql::{self, Selector, SCRAPE_LABELS};
use super::{deploy_dir, get, read, run_tool, AGGREGATOR_JOB};

/// The alert group for scrapes through an aggregator.
const AGGREGATOR_GROUP: &str = "ff-wrapper-aggregator";

/// How the series of a selector are scraped.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scrape {
    /// From each wrapperd.
    Direct,
    /// Through `fftop --serve`.
    Aggregator,
}

/// One expression of the alerts or the dashboard, Grafana's variables given values.
struct Query {
    /// Where it is: the alert or the panel.
    what: String,
    /// The PromQL.
    expr: String,
    /// How its selectors are scraped unless one selects the aggregator job.
    scrape: Scrape,
    /// Its annotations or legend name the encode: every result series must have `name`.
    names_encode: bool,
}

/// Every alert rule's expression.
fn alert_queries() -> Vec<Query> {
    let alerts = &yaml_docs("prometheus/alerts.yml")[0];
    let mut out = Vec::new();
    for g in alerts["groups"].as_sequence().unwrap() {
        let scrape = match s(&g["name"]) == AGGREGATOR_GROUP {
            true => Scrape::Aggregator,
            false => Scrape::Direct,
        };
        for r in g["rules"].as_sequence().unwrap() {
            let notes = format!("{:?}", r["annotations"]);
            out.push(Query {
                what: format!("{} {}", s(&g["name"]), s(&r["alert"])),
                expr: s(&r["expr"]),
                scrape,
                names_encode: notes.contains("$labels.name"),
            });
        }
    }
    out
}

/// Every dashboard query, its variables replaced as Grafana would.
fn dashboard_queries() -> Vec<Query> {
    let dash: serde_json::Value = serde_json::from_str(&read("grafana/ff-wrapper.json")).unwrap();
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let expr = [
                ("$__rate_interval", "1m"),
                ("$encode", ".*"),
                ("$aggregator_job", AGGREGATOR_JOB),
                ("$min_fps", "15"),
                ("$min_speed", "0.85"),
            ]
            .iter()
            .fold(expr.to_string(), |e, (var, v)| e.replace(var, v));
            out.push(Query {
                what: format!("panel {:?}", p["title"]),
                expr,
                scrape: Scrape::Direct,
                names_encode: t["legendFormat"]
                    .as_str()
                    .unwrap_or("")
                    .contains("{{name}}"),
            });
        }
    }
    out
}

/// What one `/metrics` serves: the families (`# TYPE`) and each metric's label names.
#[derive(Debug, Default)]
struct Served {
    /// Metric family names.
    families: BTreeSet<String>,
    /// Label names by metric, from the samples.
    labels: BTreeMap<String, BTreeSet<String>>,
}

fn served(text: &str) -> Served {
    let families = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parses as Prometheus text");
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for smp in &scrape.samples {
        labels
            .entry(smp.metric.clone())
            .or_default()
            .extend(smp.labels.keys().cloned());
    }
    Served { families, labels }
}

/// The checks of one query against what the wrapperd and its aggregator serve.
fn check(q: &Query, direct: &Served, agg: &Served) {
    let what = &q.what;
    let e = promql::parse(&q.expr);
    let uses = promql::uses(&e);
    let scrape_of = |sel: &Selector| match sel.has("job", "=~", AGGREGATOR_JOB) {
        true => Scrape::Aggregator,
        false => q.scrape,
    };
    let by = |sc: Scrape| if sc == Scrape::Direct { direct } else { agg };
    let labels_of = |sel: &Selector| -> BTreeSet<String> {
        let from = by(scrape_of(sel));
        from.labels.get(&sel.metric).cloned().unwrap_or_default()
    };
    let mut known: BTreeSet<String> = SCRAPE_LABELS.iter().map(|l| l.to_string()).collect();
    for sel in &uses.selectors {
        let mine = labels_of(sel);
        known.extend(mine.iter().cloned());
        if sel.metric == "up" {
            // Prometheus' own, per scrape target: `instance` and `job` only.
            assert!(sel.matchers.iter().all(|m| m.0 == "job"), "{what}: {sel:?}");
            continue;
        }
        let sc = scrape_of(sel);
        assert!(
            by(sc).families.contains(&sel.metric),
            "{what}: {} is not served by {sc:?} scrapes",
            sel.metric
        );
        for (label, ..) in &sel.matchers {
            assert!(
                SCRAPE_LABELS.contains(&label.as_str()) || mine.contains(label),
                "{what}: {}{{{label}}}: no such label on {sc:?} series ({mine:?})",
                sel.metric
            );
        }
    }
    let unknown: Vec<&String> = uses.grouping.difference(&known).collect();
    assert!(unknown.is_empty(), "{what}: joins or groups on {unknown:?}");
    for j in &uses.joins {
        let by_name = j.on.as_ref().is_some_and(|on| on.contains("name"));
        let direct_only = j
            .one_side
            .iter()
            .all(|sel| sel.has("job", "!~", AGGREGATOR_JOB));
        assert!(
            by_name || direct_only,
            "{what}: the one side of {j:?} has one series per encode behind an aggregator: \
             join on(instance, name) or take it from direct jobs only"
        );
    }
    if q.names_encode {
        let got = promql::result_labels(&e, &labels_of);
        assert!(
            got.contains("name"),
            "{what}: its series have no name: {got:?}"
        );
    }
}

#[test]
fn the_rules_and_the_dashboard_use_what_a_wrapperd_and_its_aggregator_serve() {
    let wd = Wd::new();
    // A first encode that ends, so the next wrapperd reads its end back from status/runs.jsonl
    // and serves ffwrapper_last_exit_timestamp_seconds (no sample before a run has ended).
    let first = wd.wrapperd().fake().args(["run", "secs=0.3"]);
    let out = first.output(Duration::from_secs(20));
    let runs = wd.path.join("status/runs.jsonl");
    assert!(runs.exists(), "{out:?}");
    let d = wd
        .wrapperd()
        .fake()
        .args(["run", "fps=25", "block-interval=0.1"])
        .spawn();
    d.wait_api();
    assert!(wait_until(Duration::from_secs(10), || d
        .status()
        .counters
        .progress_blocks
        > 0));
    let direct = served(&d.get("/metrics").body);
    // What the direct joins rest on: a wrapperd names its encode in ffwrapper_info only.
    for (metric, labels) in &direct.labels {
        let info = metric == "ffwrapper_info";
        assert_eq!(labels.contains("name"), info, "{metric}: {labels:?}");
    }

    let aggregator = Serve::start(&[wd.path.to_str().unwrap()], None);
    let mut agg = Served::default();
    let want: BTreeSet<String> = direct
        .families
        .iter()
        .cloned()
        .chain(["ffwrapper_target_up".to_string()])
        .collect();
    assert!(
        wait_until(Duration::from_secs(15), || {
            let (code, body) = get(aggregator.addr, "/metrics", None);
            agg = served(&body);
            code == 200 && agg.families.is_superset(&want) && body.contains("} 1\n")
        }),
        "fftop --serve serves every family of its wrapperd: {agg:?}"
    );
    for (metric, labels) in &agg.labels {
        assert!(
            labels.contains("name"),
            "{metric} behind the aggregator: {labels:?}"
        );
    }

    let queries: Vec<Query> = alert_queries()
        .into_iter()
        .chain(dashboard_queries())
        .collect();
    let through = queries.iter().filter(|q| q.expr.contains(AGGREGATOR_JOB));
    assert!(through.count() >= 10, "rules and panels for the aggregator");
    for q in &queries {
        check(q, &direct, &agg);
    }
}

/// `promtool ARGS` in `deploy/prometheus`: its success and what it said.
fn promtool(args: &[&str]) -> (bool, String) {
    run_tool(
        Command::new("promtool")
            .args(args)
            .current_dir(deploy_dir().join("prometheus")),
    )
}

#[test]
fn the_rules_pass_promtool_and_their_unit_tests_where_it_is_installed() {
    if Command::new("promtool").arg("--version").output().is_err() {
        return println!("skipped promtool: it is not installed (Debian: the prometheus package)");
    }
    let (ok, said) = promtool(&["check", "rules", "alerts.yml"]);
    assert!(ok, "promtool check rules: {said}");
    let (ok, said) = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(
        ok && said.contains("SUCCESS"),
        "promtool test rules: {said}"
    );

    // Every dashboard query evaluated on the same series: an alert that never fires, whose
    // evaluation fails the test on an error (a many-to-many join, say).
    let tests = &yaml_docs("prometheus/alerts.test.yml")[0]["tests"][0];
    let wd = Wd::new();
    std::fs::create_dir_all(wd.tmp.path()).unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut evals = String::new();
    for (i, q) in dashboard_queries().iter().enumerate() {
        let expr = serde_json::to_string(&format!("count({}) < 0", q.expr)).unwrap();
        rules.push_str(&format!("      - alert: Panel{i}\n        expr: {expr}\n"));
        evals.push_str(&format!(
            "      - eval_time: 15m\n        alertname: Panel{i}\n"
        ));
    }
    std::fs::write(wd.file("dashboard.yml"), rules).unwrap();
    let series = serde_norway::to_string(&Value::Sequence(
        tests["input_series"].as_sequence().unwrap().clone(),
    ))
    .unwrap();
    let indented: String = series.lines().map(|l| format!("      {l}\n")).collect();
    let test = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    \
         input_series:\n{indented}    alert_rule_test:\n{evals}",
        wd.file("dashboard.yml").display()
    );
    std::fs::write(wd.file("dashboard.test.yml"), test).unwrap();
    let file = wd.file("dashboard.test.yml");
    let (ok, said) = promtool(&["test", "rules", file.to_str().unwrap()]);
    assert!(
        ok && said.contains("SUCCESS"),
        "the dashboard's queries: {said}"
    );
}
