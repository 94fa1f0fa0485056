//! The files under `deploy/` checked against the code: every variable they set is one wrapperd
//! knows (its table, `--help`); every probe path, the scrape path and the image's health check
//! answer; the unit passes `systemd-analyze verify` where it exists, and its `FFMPEG_ARGS` is
//! split the way a shell would. The YAML's and JSON's fields are checked in `manifests.rs`; the
//! PromQL of the alerts and the dashboard in `rules.rs`.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_norway::Value;
use tests::{bin, config_vars, wait_until, Wd};

use super::{get, read, run_tool};

/// `FFMPEG_ARGS`: the unit's own variable (ffmpeg's arguments), not wrapperd's.
const UNIT_ARGS_VAR: &str = "FFMPEG_ARGS";

/// The Dockerfile as (instruction, arguments), continuation lines joined, comments dropped.
pub(super) fn dockerfile() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => cur.push_str(&format!("{part} ")),
            None => {
                cur.push_str(t);
                let (ins, rest) = cur.split_once(' ').unwrap_or((&cur, ""));
                out.push((ins.to_uppercase(), rest.trim().to_string()));
                cur.clear();
            }
        }
    }
    out
}

/// The instructions of the Dockerfile's last stage (the image that runs).
pub(super) fn runtime_stage() -> Vec<(String, String)> {
    let all = dockerfile();
    let from = all.iter().rposition(|(i, _)| i == "FROM").expect("FROM");
    all[from..].to_vec()
}

/// The `ENV K=V K=V` pairs of some instructions.
pub(super) fn env_of(stage: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, args) in stage.iter().filter(|(i, _)| i == "ENV") {
        assert!(!args.contains(['"', '\'']), "keep ENV unquoted: {args}");
        for pair in args.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV K=V");
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

/// The runtime stage's `HEALTHCHECK ... CMD [..]` command.
pub(super) fn healthcheck() -> Vec<String> {
    let stage = runtime_stage();
    let hc = &stage
        .iter()
        .find(|(i, _)| i == "HEALTHCHECK")
        .expect("HEALTHCHECK")
        .1;
    let at = hc.find("CMD").expect("HEALTHCHECK ... CMD") + 3;
    serde_json::from_str(hc[at..].trim()).expect("CMD [..]")
}

/// A YAML file's documents (split at `---` lines), merge keys applied.
pub(super) fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let last = docs.last_mut().unwrap();
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| {
            let mut v: Value = serde_norway::from_str(d).unwrap_or_else(|e| panic!("{rel}: {e}"));
            v.apply_merge().unwrap();
            v
        })
        .collect()
}

pub(super) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// Seconds of a duration as compose and systemd write it (`20s`, `1min`, `30`).
pub(super) fn seconds(text: &str) -> f64 {
    let t = text.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("min") {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    num.trim().parse::<f64>().expect("seconds") * mult
}

/// The `environment` of each compose service, by service.
pub(super) fn compose_env(compose: &Value) -> Vec<(String, Vec<(String, String)>)> {
    let services = compose["services"].as_mapping().expect("services");
    services
        .iter()
        .map(|(name, svc)| {
            let env = match &svc["environment"] {
                Value::Mapping(m) => m.iter().map(|(k, v)| (s(k), s(v))).collect(),
                Value::Sequence(l) => l
                    .iter()
                    .map(|e| {
                        let e = s(e);
                        let (k, v) = e.split_once('=').unwrap_or((&e, ""));
                        (k.to_string(), v.to_string())
                    })
                    .collect(),
                _ => Vec::new(),
            };
            (s(name), env)
        })
        .collect()
}

/// The Kubernetes containers of every workload in `deployment.yaml`.
pub(super) fn k8s_containers() -> Vec<Value> {
    yaml_docs("kubernetes/deployment.yaml")
        .iter()
        .filter(|d| ["Deployment", "StatefulSet"].contains(&s(&d["kind"]).as_str()))
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .unwrap()
                .clone()
        })
        .collect()
}

/// `[Section] Key=Value` lines of the unit, in order.
fn unit() -> Vec<(String, String)> {
    read("systemd/ff-wrapper@.service")
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('[') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn unit_value(key: &str) -> String {
    let u = unit();
    let found = u.iter().rev().find(|(k, _)| k == key);
    found
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .1
        .clone()
}

/// `KEY=value` lines of the example env file, commented-out ones too; values unquoted as
/// systemd's `EnvironmentFile=` does (double quotes, `\"` and `\\` inside).
fn example_env(with_comments: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in read("systemd/example.env").lines() {
        let l = match line.strip_prefix('#') {
            Some(rest) if with_comments => rest,
            Some(_) => continue,
            None => line,
        };
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        {
            continue;
        }
        let v = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
            None => v.to_string(),
        };
        out.push((k.to_string(), v));
    }
    out
}

/// Every variable a deploy file sets, with the file.
fn variables_set() -> Vec<(String, &'static str)> {
    let mut vars: Vec<(String, &str)> = Vec::new();
    vars.extend(
        env_of(&dockerfile())
            .into_iter()
            .map(|(k, _)| (k, "Dockerfile")),
    );
    for (_, env) in compose_env(&yaml_docs("compose.yaml")[0]) {
        vars.extend(env.into_iter().map(|(k, _)| (k, "compose.yaml")));
    }
    for c in k8s_containers() {
        for e in c["env"].as_sequence().into_iter().flatten() {
            vars.push((s(&e["name"]), "kubernetes/deployment.yaml"));
        }
    }
    for (k, v) in unit() {
        if k == "Environment" {
            vars.push((
                v.split_once('=').unwrap().0.to_string(),
                "ff-wrapper@.service",
            ));
        }
    }
    vars.extend(
        example_env(true)
            .into_iter()
            .map(|(k, _)| (k, "example.env")),
    );
    vars
}

#[test]
fn every_variable_the_deploy_files_set_is_one_wrapperd_knows() {
    let help = Command::new(bin("wrapperd"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let known: BTreeSet<&str> = config_vars().collect();
    let vars = variables_set();
    assert!(vars.len() > 20, "{vars:?}");
    for (var, file) in &vars {
        if var == UNIT_ARGS_VAR && ["ff-wrapper@.service", "example.env"].contains(file) {
            continue;
        }
        assert!(
            known.contains(var.as_str()),
            "{file} sets {var}, which wrapperd does not know"
        );
        assert!(
            help.contains(&format!("  {var} ")),
            "{var} is not in wrapperd --help"
        );
    }
    // The unit passes FFMPEG_ARGS to wrapperd; the example sets it.
    assert!(unit_value("ExecStart").contains("FFMPEG_ARGS"));
    assert!(example_env(false).iter().any(|(k, _)| k == UNIT_ARGS_VAR));
}

#[test]
fn every_probe_scrape_path_and_healthcheck_answers() {
    let wd = Wd::new();
    let token = "probe-token";
    let d = wd
        .wrapperd()
        .fake()
        .envs(&[("HTTP_PORT", "0"), ("API_TOKEN", token)])
        .args(["run", "fps=25", "block-interval=0.1"])
        .spawn();
    let addr = wd.http_addr();
    assert!(wait_until(Duration::from_secs(10), || d
        .status()
        .counters
        .progress_blocks
        > 0));
    assert_eq!(get(addr, "/metrics", Some(token)).0, 200);
    // Kubernetes' probes need no token; its scrape path answers with one.
    for c in k8s_containers() {
        let port = c["ports"][0]["containerPort"].as_u64().unwrap();
        let env_port = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "HTTP_PORT");
        assert_eq!(s(&env_port.unwrap()["value"]), port.to_string());
        for probe in ["livenessProbe", "readinessProbe"] {
            let path = s(&c[probe]["httpGet"]["path"]);
            assert_eq!(get(addr, &path, None), (200, "ok".into()), "{probe} {path}");
        }
    }
    for doc in yaml_docs("kubernetes/podmonitor.yaml") {
        for ep in doc["spec"]["podMetricsEndpoints"].as_sequence().unwrap() {
            assert_eq!(get(addr, &s(&ep["path"]), Some(token)).0, 200);
        }
    }
    // The image's HEALTHCHECK, as Docker runs it (WORKDIR from the image's environment).
    let cmd = healthcheck();
    let out = Command::new(bin(&cmd[0]))
        .args(&cmd[1..])
        .env("WORKDIR", &wd.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_unit_has_its_settings_and_passes_systemd_analyze_verify() {
    let env = example_env(false);
    let var = |k: &str, default: f64| {
        env.iter()
            .find(|(n, _)| n == k)
            .map_or(default, |(_, v)| v.parse().unwrap())
    };
    let stop = var("STOP_TIMEOUT", 10.0) + var("STOP_INPUT_GRACE", 1.0);
    assert!(seconds(&unit_value("TimeoutStopSec")) > stop);
    for (k, v) in [
        ("Type", "notify"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "2"),
        ("KillMode", "mixed"),
        ("EnvironmentFile", "/etc/ff-wrapper/%i.env"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "ff-wrapper/%i"),
        ("Environment", "WORKDIR=%S/ff-wrapper/%i"),
    ] {
        assert_eq!(unit_value(k), v, "{k}=");
    }
    for k in [
        "WatchdogSec",
        "RestartSec",
        "RestartSteps",
        "RestartMaxDelaySec",
        "RuntimeDirectory",
    ] {
        assert!(!unit_value(k).is_empty(), "{k}=");
    }
    assert!(
        unit_value("SystemCallFilter").contains("pidfd_getfd"),
        "SPEC §9 needs pidfd_getfd"
    );

    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        return println!("skipped systemd-analyze verify: systemd-analyze is not installed");
    };
    let major: u32 = String::from_utf8_lossy(&version.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let wd = Wd::new();
    std::fs::create_dir_all(wd.tmp.path()).unwrap();
    let unit_file = wd.file("ff-wrapper@test.service");
    std::fs::write(&unit_file, read("systemd/ff-wrapper@.service")).unwrap();
    let (ok, said) = run_tool(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit_file),
    );
    assert!(ok, "systemd-analyze verify: {said}");
    // systemd before 254 does not know the growing restart delay; nothing else may be said.
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        let newer_keys = line.contains("'RestartSteps'") || line.contains("'RestartMaxDelaySec'");
        assert!(major < 254 && newer_keys, "systemd {major}: {line}");
    }
}

#[test]
fn the_units_ffmpeg_args_are_split_as_a_shell_would() {
    // ExecStart as systemd hands it to exec: its quoting undone, `$$` a literal `$`.
    let exec = unit_value("ExecStart");
    let (program, rest) = exec.split_once(" -c ").expect("/bin/sh -c '...'");
    let script = rest
        .trim()
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .expect("quoted");
    let script = script.replace("$$", "$");
    let wd = Wd::new();
    std::fs::create_dir_all(wd.tmp.path()).unwrap();
    let argv = wd.script("argv", r#"for a in "$@"; do printf '%s\n' "$a"; done"#);
    let script = script.replace("/usr/local/bin/wrapperd", argv.to_str().unwrap());
    let args = &example_env(false)
        .into_iter()
        .find(|(k, _)| k == UNIT_ARGS_VAR)
        .unwrap()
        .1;
    let out = Command::new(program)
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env(UNIT_ARGS_VAR, args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(got[0], "-hide_banner");
    assert!(
        got.contains(&"drawtext=text=cam 1:x=10:y=10:fontcolor=white".to_string()),
        "{got:?}"
    );
    assert_eq!(got.last().unwrap(), "out.mp4");
    assert_eq!(
        got.len(),
        args.split_whitespace().count() - 1,
        "one word with a space: {got:?}"
    );
}
