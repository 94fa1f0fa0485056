//! The YAML and JSON deploy files parse and have the fields the README promises: compose's two
//! encodes on one volume with a stop grace above the stop time and a monitor; the Kubernetes
//! workload's probes, token Secret, grace period, scrape settings and §9 capability; the five
//! alerts naming the encode, once for direct scrapes and once through an aggregator; the
//! dashboard's panels, its encode variable and its aggregator jobs.

use std::collections::BTreeSet;

use super::files::{compose_env, k8s_containers, s, seconds, yaml_docs};
use super::{read, AGGREGATOR_JOB};

/// STOP_TIMEOUT + STOP_INPUT_GRACE as `env` sets them (else their defaults): what a stop grace
/// period must exceed.
fn stop_time(env: &[(String, String)]) -> f64 {
    let var = |k: &str, default: f64| {
        env.iter()
            .find(|(n, _)| n == k)
            .map_or(default, |(_, v)| v.parse().unwrap())
    };
    var("STOP_TIMEOUT", 10.0) + var("STOP_INPUT_GRACE", 1.0)
}

#[test]
fn compose_runs_two_encodes_on_one_volume_and_a_monitor() {
    let compose = &yaml_docs("compose.yaml")[0];
    let envs = compose_env(compose);
    let encodes: Vec<_> = envs
        .iter()
        .filter(|(_, e)| e.iter().any(|(k, _)| k == "WORKDIR"))
        .collect();
    assert_eq!(encodes.len(), 2, "two encodes");
    let mut workdirs = BTreeSet::new();
    for (name, env) in &encodes {
        let svc = &compose["services"][name.as_str()];
        let wdir = env.iter().find(|(k, _)| k == "WORKDIR").unwrap().1.clone();
        let mounts: Vec<String> = svc["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(s)
            .collect();
        assert!(
            mounts
                .iter()
                .any(|m| m.starts_with("work:") && wdir.starts_with(m.split(':').nth(1).unwrap())),
            "{name}: {wdir} on the volume"
        );
        workdirs.insert(wdir);
        assert!(
            seconds(&s(&svc["stop_grace_period"])) > stop_time(env),
            "{name}"
        );
        assert!(!s(&svc["restart"]).is_empty());
    }
    assert_eq!(workdirs.len(), 2);
    let monitor = compose["services"]
        .as_mapping()
        .unwrap()
        .values()
        .find(|v| v["entrypoint"][0] == "fftop")
        .expect("a monitor service");
    assert_eq!(s(&monitor["command"][0]), "--scan");
}

#[test]
fn kubernetes_probes_token_grace_scrape_and_capability() {
    let c = &k8s_containers()[0];
    assert_eq!(s(&c["livenessProbe"]["httpGet"]["path"]), "/livez");
    assert_eq!(s(&c["readinessProbe"]["httpGet"]["path"]), "/healthz");
    assert!(c["resources"]["requests"].as_mapping().is_some());
    let token = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "API_TOKEN")
        .unwrap();
    assert!(
        token["valueFrom"]["secretKeyRef"]["name"].is_string(),
        "API_TOKEN from a Secret"
    );
    let env: Vec<(String, String)> = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|e| e["value"].is_string())
        .map(|e| (s(&e["name"]), s(&e["value"])))
        .collect();
    let dep = &yaml_docs("kubernetes/deployment.yaml")[0];
    let pod = &dep["spec"]["template"];
    assert!(
        pod["spec"]["terminationGracePeriodSeconds"]
            .as_f64()
            .unwrap()
            > stop_time(&env)
    );
    assert_eq!(
        s(&pod["metadata"]["annotations"]["prometheus.io/scrape"]),
        "true"
    );
    let caps = &c["securityContext"]["capabilities"]["add"];
    assert!(caps
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v == "SYS_PTRACE"));
    let secret = &yaml_docs("kubernetes/secret.yaml")[0];
    assert_eq!(
        secret["metadata"]["name"],
        token["valueFrom"]["secretKeyRef"]["name"]
    );
    assert_eq!(
        s(&yaml_docs("kubernetes/podmonitor.yaml")[0]["kind"]),
        "PodMonitor"
    );
}

/// The five alerts of each group, by their names less `Ffwrapper`.
const FIVE: [&str; 5] = ["Stalled", "Failing", "RestartingOften", "Down", "GaveUp"];

#[test]
fn the_five_alerts_for_each_way_of_scraping_name_the_encode() {
    let alerts = &yaml_docs("prometheus/alerts.yml")[0];
    let groups = alerts["groups"].as_sequence().unwrap();
    let names: Vec<String> = groups.iter().map(|g| s(&g["name"])).collect();
    assert_eq!(names, ["ff-wrapper", "ff-wrapper-aggregator"]);
    for g in groups {
        let aggregated = s(&g["name"]) == "ff-wrapper-aggregator";
        let rules = g["rules"].as_sequence().unwrap();
        let alerts: Vec<String> = rules.iter().map(|r| s(&r["alert"])).collect();
        for want in FIVE {
            let n = alerts.iter().filter(|n| **n == format!("Ffwrapper{want}"));
            assert_eq!(n.count(), 1, "one {want} alert in {alerts:?}");
        }
        assert_eq!(
            alerts.iter().any(|n| n == "FfwrapperAggregatorDown"),
            aggregated,
            "the aggregator's own alert: {alerts:?}"
        );
        for r in rules {
            let alert = s(&r["alert"]);
            assert!(r["for"].is_string() && r["expr"].is_string(), "{r:?}");
            let scrape = if aggregated { "aggregator" } else { "direct" };
            assert_eq!(s(&r["labels"]["scrape"]), scrape, "{alert}");
            assert!(["critical", "warning"].contains(&s(&r["labels"]["severity"]).as_str()));
            let summary = s(&r["annotations"]["summary"]);
            let description = s(&r["annotations"]["description"]);
            let expr = s(&r["expr"]);
            if aggregated {
                // Behind an aggregator every alert but its own is about one encode.
                let encode = alert != "FfwrapperAggregatorDown";
                assert_eq!(
                    summary.contains("$labels.name"),
                    encode,
                    "{alert}: {summary}"
                );
                assert_eq!(description.contains("$labels.name"), encode, "{alert}");
                assert!(
                    expr.contains(&format!("job=~\"{AGGREGATOR_JOB}\"")),
                    "{alert}"
                );
            } else {
                assert!(
                    summary.contains("$labels.name") || summary.contains("$labels.instance"),
                    "{summary}"
                );
                // The aggregator's series and its `up` are the other group's.
                assert!(
                    expr.contains(&format!("job!~\"{AGGREGATOR_JOB}\"")),
                    "{alert}"
                );
            }
            assert!(description.contains("$labels.instance"), "{alert}");
        }
        let down = rules
            .iter()
            .find(|r| r["alert"] == "FfwrapperDown")
            .unwrap();
        let dead = if aggregated {
            "ffwrapper_target_up"
        } else {
            "up{"
        };
        assert!(s(&down["expr"]).starts_with(dead), "{down:?}");
    }
}

#[test]
fn the_dashboard_shows_rates_health_restarts_and_lines_per_encode() {
    let dash: serde_json::Value = serde_json::from_str(&read("grafana/ff-wrapper.json")).unwrap();
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(vars
        .iter()
        .any(|v| v["name"] == "encode" && v["multi"] == true));
    let agg = vars.iter().find(|v| v["name"] == "aggregator_job");
    let agg = agg.expect("an aggregator_job constant");
    assert_eq!(
        (&agg["type"], &agg["query"]),
        (&"constant".into(), &AGGREGATOR_JOB.into())
    );
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    for e in exprs.iter().filter(|e| e.contains("ffwrapper_info")) {
        assert!(
            e.contains("$aggregator_job"),
            "per encode behind an aggregator too: {e}"
        );
    }
    let exprs = exprs.join("\n");
    for m in [
        "ffwrapper_fps",
        "ffwrapper_speed",
        "ffwrapper_health",
        "ffwrapper_restarts_total",
        "ffwrapper_log_lines_total",
        "ffwrapper_target_up",
        "$min_fps",
        "$min_speed",
        "$encode",
    ] {
        assert!(exprs.contains(m), "the dashboard shows no {m}");
    }
}
