//! fftop for a fleet (SPEC §13, issue 15): exited encodes stay visible with their reason
//! (`--once`, `--json`, and on screen under tmux), `fftop --serve` as a host's aggregator
//! (`/metrics` of several daemons relabelled and parseable, `/t/<name>/…` pass-through, a
//! stopped daemon not delaying `/metrics`, the token), and one `fftop --once` watching two
//! aggregators, their encodes named `host/encode`.
//!
//! Real wrapperd with the scripted fake ffmpeg; every wait is for a condition, with a deadline.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use tests::serve::Serve;
use tests::tmux::{have_tmux, Tmux};
use tests::*;

/// A directory to scan, holding work directories by name.
struct Fleet {
    tmp: tempfile::TempDir,
}

impl Fleet {
    fn new() -> Fleet {
        Fleet {
            tmp: tempfile::Builder::new()
                .prefix("ffw-fleet-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// A work directory `name` under the scanned directory.
    fn wd(&self, name: &str) -> Wd {
        let mut wd = Wd::new();
        wd.path = self.dir().join(name);
        wd
    }
}

/// A fake encode that runs until stopped (warming up for a minute, so it stays good).
fn live(wd: &Wd) -> Daemon {
    let d = wd
        .wrapperd()
        .fake()
        .env("ENCODING_CHECK_START_DELAY", "60")
        .args(["run", "fps=25"])
        .spawn();
    d.wait_api();
    d
}

/// A fake encode the manager stops about a second in (output stops: stalled), and waits for
/// wrapperd to exit.
fn manager_stopped(wd: &Wd) -> Daemon {
    let mut d = wd
        .wrapperd()
        .fake()
        .env("MANAGER_START_DELAY", "0")
        .env("ENCODING_CHECK_START_DELAY", "0")
        .env("ENCODING_MAX_STDOUT_STUCK_TIME", "0.5")
        .args(["run", "secs=1", "silence"])
        .spawn();
    let st = d.wait(Duration::from_secs(30));
    assert_eq!(st.code(), Some(1), "a manager stop exits 1");
    assert!(!wd.path.join("api.sock").exists(), "the socket is removed");
    d
}

/// SIGKILL, leaving a stale socket and a status.json that does not say `exited`.
fn kill_hard(d: &mut Daemon) {
    d.signal(Signal::SIGKILL);
    d.wait(Duration::from_secs(10));
}

/// `fftop ARGS` to completion: exit code and stdout.
fn fftop(args: &[&str]) -> (i32, String) {
    let o = Command::new(bin("fftop"))
        .args(args)
        .env_remove("WORKDIR")
        .env_remove("API_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("fftop");
    (
        o.status.code().expect("an exit code"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn json_array(out: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(out)
        .unwrap_or_else(|e| panic!("{e}: {out}"))
        .as_array()
        .expect("an array")
        .clone()
}

#[test]
fn a_manager_stopped_encode_stays_as_exited_with_its_reason() {
    let fleet = Fleet::new();
    let gone = fleet.wd("cam-gone");
    let _ = manager_stopped(&gone);
    let killed = fleet.wd("cam-killed");
    let mut k = live(&killed);
    kill_hard(&mut k);
    let runs = std::fs::read_to_string(gone.path.join("status/runs.jsonl")).unwrap_or_default();
    assert!(!runs.is_empty(), "wrapperd records the run");

    let scan = fleet.dir().to_str().unwrap();
    let (code, out) = fftop(&["--once", "--scan", scan]);
    assert_eq!(code, 1, "an exited encode is not healthy:\n{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("cam-gone"))
        .unwrap_or_else(|| panic!("the exited encode is listed:\n{out}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(words[..3], ["cam-gone", "exited", "exited"], "{out}");
    assert!(row.contains("stopped by the manager"), "why:\n{out}");
    assert!(row.contains("ended "), "when:\n{out}");
    let killed_row = out.lines().find(|l| l.starts_with("cam-killed")).unwrap();
    assert_eq!(
        killed_row.split_whitespace().nth(1),
        Some("down"),
        "a killed wrapperd stays down:\n{out}"
    );
    // Exited rows sort after the live (and down) ones.
    let pos = |n: &str| out.lines().position(|l| l.starts_with(n)).unwrap();
    assert!(pos("cam-killed") < pos("cam-gone"), "{out}");

    let (code, out) = fftop(&["--once", "--json", gone.path.to_str().unwrap()]);
    assert_eq!(code, 1);
    let arr = json_array(&out);
    assert_eq!(arr.len(), 1, "{out}");
    let o = &arr[0];
    assert_eq!(o["name"], "cam-gone");
    assert_eq!(o["health"], "exited");
    assert_eq!(o["state"], "exited");
    let reason = o["exit"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("stopped by the manager"), "{o}");
    assert_eq!(o["exit"]["code"], 1);
    assert!(o["ended_ms"].as_i64().is_some(), "{o}");
    let last = &o["last_run"];
    assert!(
        last["run"].as_u64().is_some(),
        "the last run from runs.jsonl: {o}"
    );
    assert!(last["reason"].as_str().unwrap().contains("stalled"), "{o}");
    // The file's content, as wrapperd wrote it (plus the additions).
    let file = gone.status_json().unwrap();
    assert_eq!(o["pid"], file["pid"]);
    assert_eq!(o["cmd"], file["cmd"]);
}

#[test]
fn a_401_shows_unauthorized_not_down() {
    let wd = Wd::new();
    let d = wd
        .wrapperd()
        .fake()
        .env("ENCODING_CHECK_START_DELAY", "60")
        .envs(&[("HTTP_PORT", "0"), ("API_TOKEN", "tok")])
        .args(["run", "fps=25"])
        .spawn();
    d.wait_api();
    let addr = wd.http_addr().to_string();
    let (code, out) = fftop(&["--once", &addr]);
    assert_eq!(code, 1, "{out}");
    let row = out.lines().nth(1).unwrap_or_default();
    assert_eq!(row.split_whitespace().nth(1), Some("unauthorized"), "{out}");
    assert!(row.contains("401"), "{out}");
    let (code, out) = fftop(&["--once", "--json", &addr]);
    assert_eq!(code, 1);
    assert_eq!(json_array(&out)[0]["health"], "unauthorized", "{out}");
    let (code, out) = fftop(&["--once", "--token", "tok", &addr]);
    assert_eq!(code, 0, "with the token:\n{out}");
}

/// `ffwrapper_target_up` per name, from a `/metrics` text; every sample must carry `name`.
fn parse_metrics(text: &str) -> (prometheus_parse::Scrape, Vec<(String, f64)>) {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parses as Prometheus text");
    let mut up = Vec::new();
    for s in &scrape.samples {
        assert!(
            s.labels.get("name").is_some(),
            "{} has no name label",
            s.metric
        );
        if s.metric == "ffwrapper_target_up" {
            if let prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) = s.value
            {
                up.push((s.labels.get("name").unwrap().to_string(), v));
            }
        }
    }
    up.sort_by(|a, b| a.0.cmp(&b.0));
    (scrape, up)
}

/// The fields of a `/status` that do not move with the clock.
fn steady(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in ["uptime_s", "progress", "rates", "check", "counters"] {
            o.remove(k);
        }
    }
    v
}

#[test]
fn serve_metrics_pass_through_and_a_stopped_daemon() {
    let fleet = Fleet::new();
    let wds: Vec<Wd> = ["d1", "d2", "d3"].iter().map(|n| fleet.wd(n)).collect();
    let mut ds: Vec<Daemon> = wds.iter().map(live).collect();
    kill_hard(&mut ds[2]);
    let serve = Serve::start(&["--scan", fleet.dir().to_str().unwrap()], None);

    let mut text = String::new();
    assert!(
        wait_until(Duration::from_secs(15), || {
            text = serve.get("/metrics").1;
            parse_metrics(&text).1 == [("d1".into(), 1.0), ("d2".into(), 1.0), ("d3".into(), 0.0)]
        }),
        "two up, the killed one 0:\n{text}"
    );
    let (scrape, _) = parse_metrics(&text);
    let fps_names: Vec<&str> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "ffwrapper_up")
        .map(|s| s.labels.get("name").unwrap())
        .collect();
    assert_eq!(fps_names.len(), 2, "each live daemon's series:\n{text}");
    assert_eq!(
        text.matches("# TYPE ffwrapper_health ").count(),
        1,
        "{text}"
    );

    // /targets is the --once --json array; /t/<name>/status is that daemon's /status.
    let (code, body) = serve.get("/targets");
    assert_eq!(code, 200);
    assert_eq!(json_array(&body).len(), 3, "{body}");
    let (code, body) = serve.get("/t/d1/status");
    assert_eq!(code, 200, "{body}");
    let through: Value = serde_json::from_str(&body).unwrap();
    let direct: Value = serde_json::from_str(&ds[0].get("/status").body).unwrap();
    assert_eq!(steady(through), steady(direct));
    let (code, body) = serve.get("/t/d1/last_stdout?count=2&json");
    assert_eq!(code, 200, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap().is_array());
    let (code, _) = serve.request("POST", "/t/d1/stop", None);
    assert_eq!(code, 405, "no control through the aggregator");
    assert!(ds[0].is_running());
    assert_eq!(serve.get("/t/nobody/status").0, 404);
    assert_eq!(serve.get("/t/d3/status").0, 502, "a down target");

    // A stopped daemon: /metrics keeps answering at once, and says it is down.
    ds[1].signal(Signal::SIGSTOP);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut down = false;
    while started.elapsed() < Duration::from_secs(5) && !down {
        let t = Instant::now();
        let text = serve.get("/metrics").1;
        slowest = slowest.max(t.elapsed());
        down = parse_metrics(&text).1.contains(&("d2".into(), 0.0));
    }
    ds[1].signal(Signal::SIGCONT);
    assert!(down, "the stopped daemon shows as down within 5 s");
    eprintln!("slowest /metrics while d2 was stopped: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(500),
        "a hung target never delays /metrics past its timeout (0.5 s): {slowest:?}"
    );
}

#[test]
fn serve_token_is_enforced_except_livez() {
    let fleet = Fleet::new();
    let wd = fleet.wd("t1");
    let _d = live(&wd);
    let serve = Serve::start(&[wd.path.to_str().unwrap()], Some("s3cret"));
    assert_eq!(serve.get("/livez").0, 200);
    for path in ["/metrics", "/targets", "/t/t1/status"] {
        assert_eq!(serve.get(path).0, 401, "{path} without the token");
        assert_eq!(
            serve.request("GET", path, Some("wrong")).0,
            401,
            "{path} with a wrong token"
        );
    }
    assert!(wait_until(Duration::from_secs(10), || serve
        .request("GET", "/t/t1/status", Some("s3cret"))
        .0
        == 200));
    assert_eq!(serve.request("GET", "/metrics", Some("s3cret")).0, 200);
}

#[test]
fn two_aggregators_watched_by_one_fftop() {
    let (a, b) = (Fleet::new(), Fleet::new());
    let wds = [a.wd("a1"), a.wd("a2"), b.wd("b1")];
    let _ds: Vec<Daemon> = wds.iter().map(live).collect();
    let _ = manager_stopped(&b.wd("b9-gone"));
    // Two hosts: 127.0.0.1 and 127.0.0.2 (both this machine).
    let sa = Serve::start_on("127.0.0.1", &["--scan", a.dir().to_str().unwrap()], None);
    let sb = Serve::start_on("127.0.0.2", &["--scan", b.dir().to_str().unwrap()], None);
    let (ha, hb) = (sa.addr.to_string(), sb.addr.to_string());
    let want: Vec<String> = vec![
        "127.0.0.1/a1".to_string(),
        "127.0.0.1/a2".to_string(),
        "127.0.0.2/b1".to_string(),
        "127.0.0.2/b9-gone".to_string(),
    ];
    let health = |arr: &[Value], name: &str| {
        arr.iter()
            .find(|o| o["name"] == name)
            .map(|o| o["health"].clone())
            .unwrap_or_default()
    };
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(20), || {
        let (code, out) = fftop(&["--once", "--json", &ha, &hb]);
        let arr = json_array(&out);
        let mut names: Vec<String> = arr
            .iter()
            .map(|o| o["name"].as_str().unwrap_or_default().to_string())
            .collect();
        names.sort();
        let mut sorted = want.clone();
        sorted.sort();
        last = out;
        code == 1
            && names == sorted
            && want[..3].iter().all(|n| health(&arr, n) == "warming_up")
            && health(&arr, &want[3]) == "exited"
    });
    assert!(ok, "every encode of both, named host/encode:\n{last}");
    let arr = json_array(&last);
    let a1 = arr.iter().find(|o| o["name"] == want[0]).unwrap();
    assert_eq!(a1["workdir"], wds[0].path.to_str().unwrap());
    assert_eq!(a1["target"], format!("http://{ha}/t/a1"));
    let gone = arr.iter().find(|o| o["name"] == want[3]).unwrap();
    let reason = gone["exit"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("stopped by the manager"), "{gone}");
    assert!(gone["last_run"]["run"].as_u64().is_some(), "{gone}");
    // Its aggregator serves what its files say: status and runs.
    let (code, body) = sb.get("/t/b9-gone/status");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["state"],
        "exited"
    );
    let (code, body) = sb.get("/t/b9-gone/runs?count=5");
    assert_eq!(code, 200, "{body}");
    let runs = json_array(&body);
    assert_eq!(runs.len(), 1, "{body}");
    assert!(
        runs[0]["reason"].as_str().unwrap().contains("stalled"),
        "{body}"
    );
    assert_eq!(sb.get("/t/b9-gone/last_stdout").0, 503);

    // The plain table too; and a targets file naming both does the same.
    let (code, out) = fftop(&["--once", &ha, &hb]);
    assert_eq!(code, 1, "{out}");
    for n in &want {
        assert!(
            out.lines().any(|l| l.starts_with(n.as_str())),
            "{n}:\n{out}"
        );
    }
    let gone_row = out.lines().find(|l| l.starts_with(&want[3])).unwrap();
    assert!(
        gone_row.contains("exited") && gone_row.contains("stopped by the"),
        "{out}"
    );
    let file: PathBuf = a.dir().join("targets.txt");
    std::fs::write(&file, format!("# two hosts\n{ha}\n{hb}  # the second\n")).unwrap();
    let (code, out) = fftop(&["--once", "--json", "--targets-file", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(json_array(&out).len(), 4, "{out}");
}

#[test]
fn under_tmux_encodes_behind_an_aggregator_are_rows_with_a_detail() {
    if !have_tmux() {
        eprintln!("skipped: no tmux");
        return;
    }
    let fleet = Fleet::new();
    let wd = fleet.wd("r1");
    let _d = live(&wd);
    let serve = Serve::start(&["--scan", fleet.dir().to_str().unwrap()], None);
    let cmd = format!(
        "TERM=xterm-256color '{}' --interval 0.5 {}; exec sleep 600",
        bin("fftop").display(),
        serve.addr
    );
    let tmux = Tmux::start(120, 30, &cmd);
    let name = "127.0.0.1/r1".to_string();
    tmux.wait_screen(Duration::from_secs(15), "the remote row", |s| {
        s.lines()
            .any(|l| l.contains(&name) && l.contains("warming_up"))
    });
    // Its detail, with the output lines, through the aggregator's /t/r1/….
    tmux.keys(&["Enter"]);
    tmux.wait_screen(Duration::from_secs(10), "the remote detail", |s| {
        s.contains(&format!(" {name} ")) && s.contains("newest output") && s.contains("frame=")
    });
}

#[test]
fn under_tmux_a_manager_stopped_encode_stays_as_an_exited_row() {
    if !have_tmux() {
        eprintln!("skipped: no tmux");
        return;
    }
    let fleet = Fleet::new();
    let keep = fleet.wd("cam-a");
    let _k = live(&keep);
    let cmd = format!(
        "TERM=xterm-256color '{}' --interval 0.5 --scan '{}'; exec sleep 600",
        bin("fftop").display(),
        fleet.dir().display()
    );
    let tmux = Tmux::start(120, 30, &cmd);
    tmux.wait_screen(Duration::from_secs(15), "the live row", |s| {
        s.contains("cam-a") && s.contains("warming_up")
    });
    // The encode starts while fftop watches, and the manager stops it.
    let gone = fleet.wd("cam-b");
    let _ = manager_stopped(&gone);
    let row = |s: &str| {
        s.lines()
            .find(|l| l.contains("cam-b "))
            .unwrap_or_default()
            .to_string()
    };
    let s = tmux.wait_screen(Duration::from_secs(10), "cam-b exited", |s| {
        let r = row(s);
        r.contains("exited") && r.contains("ended") && r.contains("stopped by the")
    });
    assert!(s.contains("1 exited"), "the header counts it:\n{s}");
    // Still there a few polls later (not removed), and x hides it, saying so.
    std::thread::sleep(Duration::from_secs(2));
    assert!(row(&tmux.screen()).contains("exited"));
    tmux.keys(&["x"]);
    tmux.wait_screen(Duration::from_secs(5), "hidden", |s| {
        s.contains("1 exited hidden") && row(s).is_empty()
    });
    tmux.keys(&["x", "G", "Enter"]);
    tmux.wait_screen(Duration::from_secs(5), "its detail", |s| {
        s.contains("output of the last run") && s.contains("stopped by the manager")
    });
    // Esc goes back, Esc again does not quit.
    tmux.keys(&["Escape"]);
    tmux.wait_screen(Duration::from_secs(5), "the list", |s| {
        s.contains("NAME") && s.contains("cam-b")
    });
    tmux.keys(&["Escape"]);
    // Given the time to quit if it were going to (it must not).
    std::thread::sleep(Duration::from_secs(1));
    let s = tmux.screen();
    assert!(
        s.contains("NAME") && s.contains("cam-b"),
        "Esc quit:
{s}"
    );
}
