//! The Dockerfile: built with `docker build` where a Docker daemon answers, and its runtime
//! stage exercised without Docker everywhere else: the built wrapperd as PID 1 of a fresh PID
//! namespace (`unshare`), as the image's user, with the image's environment, entrypoint and
//! command, shown to encode, to answer the image's HEALTHCHECK, and to exit cleanly on `SIGTERM`
//! (what `docker stop` sends, per `STOPSIGNAL`). Where systemd is the running init (and the
//! tests run as root), the notify protocol is also checked under the real thing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shared::client::{Client, Target};
use tests::{bin, bin_dir, block_on, children_of, wait_until, Wd};

use super::files::{env_of, healthcheck, runtime_stage};
use super::{deploy_dir, read};

/// A JSON-array instruction's words (`ENTRYPOINT ["wrapperd"]`).
fn words(stage: &[(String, String)], ins: &str) -> Vec<String> {
    let args = &stage
        .iter()
        .find(|(i, _)| i == ins)
        .unwrap_or_else(|| panic!("no {ins}"))
        .1;
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{ins} {args}: {e}"))
}

/// The value of `--flag N` in the Dockerfile's text (the user's and group's ids).
fn id_after(flag: &str) -> u32 {
    let text = read("Dockerfile");
    let at = text.find(flag).unwrap_or_else(|| panic!("no {flag}")) + flag.len();
    text[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Whether a Docker daemon answers.
fn docker_runs() -> Result<(), String> {
    match Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Err(e) => Err(format!("no docker command ({e})")),
        Ok(st) if !st.success() => Err("docker is installed but no daemon answers".into()),
        Ok(_) => Ok(()),
    }
}

#[test]
fn docker_build_of_the_dockerfile() {
    if let Err(why) = docker_runs() {
        return println!("skipped docker build: {why}");
    }
    let root = deploy_dir().join("..");
    let tag = format!("ff-wrapper-test:{}", std::process::id());
    let st = Command::new("docker")
        .args(["build", "-f", "deploy/Dockerfile", "-t", &tag, "."])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(st.success(), "docker build failed");
    let out = Command::new("docker")
        .args(["run", "--rm", &tag, "--version"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("wrapperd "));
    let _ = Command::new("docker").args(["image", "rm", &tag]).output();
}

/// The `unshare` command line that runs a program as PID 1 of a new PID (and network) namespace,
/// as `uid`:`gid` (mapped from this user), or why it cannot run here.
fn pid_namespace(uid: u32, gid: u32) -> Result<Command, String> {
    let make = || {
        let mut c = Command::new("unshare");
        c.args([
            "--user",
            &format!("--map-user={uid}"),
            &format!("--map-group={gid}"),
        ])
        .args(["--pid", "--fork", "--mount-proc", "--net", "--kill-child"]);
        c
    };
    let probe = make().args(["sh", "-c", "echo $$ $(id -u)"]).output();
    match probe {
        Err(e) => Err(format!("no unshare ({e})")),
        Ok(o) if !o.status.success() => Err(format!(
            "unshare refused: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(o) if String::from_utf8_lossy(&o.stdout).trim() != format!("1 {uid}") => Err(format!(
            "unexpected: {}",
            String::from_utf8_lossy(&o.stdout)
        )),
        Ok(_) => Ok(make()),
    }
}

/// Kills the namespace on a failed assertion (its PID 1 dies with `unshare`: `--kill-child`).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A path of the image under the test's stand-in for the volume.
fn on_volume(volume: &Path, image_root: &str, path: &str) -> PathBuf {
    let rel = path
        .strip_prefix(image_root)
        .unwrap_or_else(|| panic!("{path} not on the volume"));
    volume.join(rel.trim_start_matches('/'))
}

/// Sets up `cmd` (an `unshare` command line) to run the image's entrypoint and command with its
/// environment and working directory, the image's volume standing at `volume`; returns where
/// the work directory (`WORKDIR` of the image) then is.
fn as_the_image(cmd: &mut Command, stage: &[(String, String)], volume: &Path) -> PathBuf {
    let volume_root = words(stage, "VOLUME")[0].clone();
    std::fs::create_dir_all(volume).unwrap();
    let env = env_of(stage);
    let workdir = env.iter().find(|(k, _)| k == "WORKDIR").unwrap().1.clone();
    let workdir = on_volume(volume, &volume_root, &workdir);
    let cwd = &stage.iter().find(|(i, _)| i == "WORKDIR").unwrap().1;
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir().display());
    cmd.env_clear().env("PATH", path).env("HOME", volume);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    cmd.env("WORKDIR", &workdir)
        .current_dir(on_volume(volume, &volume_root, cwd));
    let entry = words(stage, "ENTRYPOINT");
    assert_eq!(entry, ["wrapperd"]);
    cmd.arg("--").args(&entry).args(words(stage, "CMD"));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    workdir
}

#[test]
fn the_images_runtime_stage_runs_wrapperd_as_pid_1() {
    let stage = runtime_stage();
    let (uid, gid) = (id_after("--uid"), id_after("--gid"));
    let mut cmd = match pid_namespace(uid, gid) {
        Ok(c) => c,
        Err(why) => return println!("skipped wrapperd as PID 1 in a PID namespace: {why}"),
    };
    let wd = Wd::new();
    let workdir = as_the_image(&mut cmd, &stage, &wd.file("volume"));
    let ns = Killed(cmd.spawn().unwrap());

    let mut pid1 = 0;
    assert!(wait_until(Duration::from_secs(10), || {
        pid1 = children_of(ns.0.id() as i32).first().map_or(0, |c| c.0);
        pid1 > 0
    }));
    let api = Client::new(
        Target::Unix(workdir.join("api.sock")),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(10), || block_on(
        api.get("/get_pid")
    )
    .is_ok()));
    assert_eq!(
        block_on(api.get("/get_pid")).unwrap().body.trim(),
        "1",
        "wrapperd is PID 1"
    );
    let frames = || {
        block_on(api.status())
            .ok()
            .and_then(|s| s.progress)
            .and_then(|p| p.frame)
    };
    assert!(
        wait_until(Duration::from_secs(30), || frames().unwrap_or(0) > 0),
        "no encode: {:?}",
        block_on(api.status())
    );
    // The image's HEALTHCHECK command.
    let hc = healthcheck();
    let out = Command::new(bin(&hc[0]))
        .args(&hc[1..])
        .env("WORKDIR", &workdir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{hc:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    assert_eq!(
        stage.iter().find(|(i, _)| i == "STOPSIGNAL").unwrap().1,
        "SIGTERM"
    );
    kill(Pid::from_raw(pid1), Signal::SIGTERM).unwrap();
    let mut ns = ns;
    let mut code = None;
    assert!(wait_until(Duration::from_secs(20), || {
        code = ns.0.try_wait().unwrap().map(|st| st.code());
        code.is_some()
    }));
    assert_eq!(
        code.unwrap(),
        Some(0),
        "{}",
        std::fs::read_to_string(workdir.join("logs/wrapperd.log")).unwrap_or_default()
    );
    let log = std::fs::read_to_string(workdir.join("logs/wrapperd.log")).unwrap();
    assert!(log.lines().last().unwrap().contains("exit 0"), "{log}");
}

/// Why the unit cannot be run for real here, if it cannot: it needs systemd as the running
/// init and root (a transient system unit).
fn systemd_runs() -> Result<(), String> {
    if !Path::new("/run/systemd/system").exists() {
        return Err("systemd is not the running init (no /run/systemd/system)".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("not root: a system unit cannot be started".into());
    }
    match Command::new("systemctl").arg("is-system-running").output() {
        Err(e) => Err(format!("no systemctl ({e})")),
        Ok(_) => Ok(()),
    }
}

/// `systemctl show -p KEY --value UNIT`.
fn unit_property(unit: &str, key: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", key, "--value", unit])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_notify_protocol_under_a_real_systemd() {
    if let Err(why) = systemd_runs() {
        return println!("skipped the unit under a real systemd: {why}");
    }
    // A transient unit with the shipped unit's notify settings, running the fake ffmpeg.
    let wd = Wd::new();
    let unit = format!("ffw-test-{}.service", std::process::id());
    let st = Command::new("systemd-run")
        .args([
            "--unit",
            &unit,
            "--collect",
            "-p",
            "Type=notify",
            "-p",
            "NotifyAccess=main",
        ])
        .args([
            "-p",
            "WatchdogSec=5s",
            "-p",
            "KillMode=mixed",
            "-p",
            "TimeoutStopSec=30s",
        ])
        .arg(format!("--setenv=WORKDIR={}", wd.path.display()))
        .arg(format!(
            "--setenv=FFMPEG_BIN={}",
            bin("fake-ffmpeg").display()
        ))
        .arg(bin("wrapperd"))
        .args(["run", "fps=25", "block-interval=0.1"])
        .status()
        .unwrap();
    assert!(st.success(), "systemd-run failed");
    let active = wait_until(Duration::from_secs(20), || {
        unit_property(&unit, "ActiveState") == "active"
            && unit_property(&unit, "StatusText").starts_with("running")
    });
    let status = unit_property(&unit, "StatusText");
    let stopped = Command::new("systemctl")
        .args(["stop", &unit])
        .status()
        .unwrap();
    assert!(active, "not active with a STATUS: {status:?}");
    assert!(stopped.success());
    let log = std::fs::read_to_string(wd.path.join("logs/wrapperd.log")).unwrap_or_default();
    assert!(log.lines().last().unwrap_or("").contains("exit 0"), "{log}");
}

/// `1.88.0` → (1, 88).
fn major_minor(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

#[test]
fn the_build_stages_rust_builds_the_locked_dependencies() {
    let arg = super::files::dockerfile()
        .into_iter()
        .find_map(|(i, a)| {
            (i == "ARG")
                .then_some(a)
                .filter(|a| a.starts_with("RUST_VERSION="))
        })
        .expect("ARG RUST_VERSION=");
    let image = major_minor(arg.trim_start_matches("RUST_VERSION="));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        // Not --offline: metadata reads every locked package's manifest, platform-specific ones
        // too (web-time for wasm), which a build on this host never downloaded.
        .args(["metadata", "--locked", "--format-version", "1"])
        .current_dir(deploy_dir().join(".."))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for p in meta["packages"].as_array().unwrap() {
        if let Some(need) = p["rust_version"].as_str() {
            assert!(
                major_minor(need) <= image,
                "{} {} needs Rust {need}; the Dockerfile builds with {image:?}",
                p["name"],
                p["version"]
            );
        }
    }
}
