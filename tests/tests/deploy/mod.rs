//! Deployment (SPEC §12, issue 14): systemd's notify protocol as a service manager sees it,
//! `GET /livez`, and the shipped files under `deploy/` checked against the code, not by eye.
//!
//! - `notify::`: a bound `UnixDatagram` (a path and an abstract name) stands in for systemd.
//! - `files::`: every variable, probe path and key the deploy files use exists; the YAML parses
//!   (`manifests::`); the unit passes `systemd-analyze verify` where it exists.
//! - `rules::`: the alert rules and the dashboard against a real wrapperd and a real
//!   `fftop --serve` in front of it (both ways of scraping, SPEC §13), and `promtool` where it
//!   is installed; `promql::` reads PromQL for it.
//! - `container::`: `docker build` where Docker runs; the Dockerfile's runtime stage without
//!   Docker (wrapperd as PID 1 of a PID namespace, as the image's user, with its environment).

mod container;
mod files;
mod manifests;
mod notify;
mod promql;
mod rules;

use std::net::SocketAddr;
use std::path::PathBuf;

use tests::http;

/// The scrape jobs of `fftop --serve` aggregators, as the alert rules and the dashboard's
/// `aggregator_job` constant match them; any other job with "ff-wrapper" scrapes a wrapperd.
const AGGREGATOR_JOB: &str = ".*ff-wrapper-aggregator.*";

/// The repository's `deploy/` directory.
fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// A deploy file's text.
fn read(rel: &str) -> String {
    let p = deploy_dir().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `GET path` over TCP, with a bearer token when given: the status code and the body.
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    let answer = http::raw(http::tcp(addr), req.as_bytes());
    let (code, body) = http::code_and_body(answer).expect("an HTTP answer");
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// Runs `cmd` to its end: whether it succeeded, and its stdout and stderr together.
fn run_tool(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}
