//! Hand-made statuses and apps for the tests: fixed times, fixed numbers, so snapshots are
//! stable.

use std::time::Duration;

use shared::api::{
    Check, Counters, ExitInfo, FfmpegStatus, Health, ProgressInfo, Rates, RunInfo, SeriesPoint,
    State, Status,
};
use shared::client::Target;

use crate::app::App;
use crate::event::{Event, PollAnswer, PollResult};

/// "Now" in every test: 2026-11-24 00:00:00 UTC.
pub const NOW: i64 = 1_795_478_400_000;

/// A status with the given health and current rates; everything else plausible and fixed.
pub fn status(health: Health, fps: Option<f64>, speed: Option<f64>) -> Status {
    let state = match health {
        Health::Exited => State::Exited,
        Health::Stopping => State::Stopping,
        Health::Restarting => State::Restarting,
        _ => State::Running,
    };
    let reason = match health {
        Health::Failing => Some("fps 8.0 < 15.0 and speed 0.40x < 0.85x for 4 s".into()),
        Health::Stalled => Some("no output for 7 s".into()),
        Health::Exited => Some("ffmpeg exited with status 1".into()),
        Health::Stopping => Some("stop requested".into()),
        Health::Restarting => {
            Some("run 3 ended (stalled: no output for 15 s); next start in 4.0 s".into())
        }
        _ => None,
    };
    Status {
        version: "0.1.0".into(),
        state,
        health,
        reason,
        pid: 1,
        ffmpeg_pid: Some(7),
        workdir: "/srv/enc/x".into(),
        start_time: Some("2026-11-23T23:54:00.123Z".into()),
        uptime_s: 363.4,
        cmd: vec![
            "-re".into(),
            "-i".into(),
            "rtmp://in/live".into(),
            "-c:v".into(),
            "libx264".into(),
            "-f".into(),
            "flv".into(),
            "rtmp://out/live".into(),
        ],
        progress: Some(ProgressInfo {
            at: "2026-11-23T23:59:59.500Z".into(),
            frame: Some(9075),
            fps: Some(25.0),
            speed: Some(1.0),
            bitrate_kbps: Some(2450.3),
            total_size: Some(15_728_640),
            out_time_us: Some(363_000_000),
            dup_frames: Some(2),
            drop_frames: Some(1),
        }),
        rates: Rates {
            fps,
            speed,
            window_s: 10.0,
        },
        check: Check {
            active: health != Health::WarmingUp,
            base_fps: Some(25.0),
            min_fps: Some(15.0),
            min_speed: Some(0.85),
            failing_for_s: if health == Health::Failing { 4.0 } else { 0.0 },
            last_output_age_s: Some(0.4),
        },
        counters: Counters {
            log_lines: 48211,
            progress_blocks: 246,
        },
        exit: (health == Health::Exited).then(|| ExitInfo {
            code: 1,
            ffmpeg_status: FfmpegStatus::Code(1),
            reason: "ffmpeg ended by itself".into(),
        }),
        run: run_info(health),
        last_run: None,
    }
}

/// The first run, or, while restarting, the third one's end with two restarts behind it.
fn run_info(health: Health) -> RunInfo {
    if health == Health::Restarting {
        RunInfo {
            number: 3,
            restarts: 2,
            restarts_in_window: 2,
            next_start_in_s: Some(4.0),
            runs: 3,
        }
    } else {
        RunInfo {
            number: 1,
            runs: 1,
            ..RunInfo::default()
        }
    }
}

/// Points every 500 ms from `from_s` to `to_s` seconds before [`NOW`], fps from `f(age_s)`.
pub fn points(from_s: i64, to_s: i64, f: impl Fn(f64) -> f64) -> Vec<SeriesPoint> {
    (0..)
        .map(|i| NOW - from_s * 1000 + i * 500)
        .take_while(|t| *t <= NOW - to_s * 1000)
        .map(|t| {
            let age = (NOW - t) as f64 / 1000.0;
            let fps = f(age);
            SeriesPoint {
                t,
                fps: Some(fps),
                speed: Some(fps / 25.0),
                bitrate_kbps: Some(2450.0),
            }
        })
        .collect()
}

pub fn up(target: &Target, status: Status, pts: Vec<SeriesPoint>) -> Event {
    Event::Poll {
        target: target.clone(),
        result: PollResult::Up(Box::new(PollAnswer {
            events: Vec::new(),
            status,
            points: pts,
            logs: Some(vec![
                ("2026-11-23 23:59:58".into(), "frame= 9050 fps= 25 q=23.0 size=15000KiB time=00:06:02.00 bitrate=2450.1kbits/s speed=   1x".into()),
                ("2026-11-23 23:59:59".into(), "frame= 9075 fps= 25 q=23.0 size=15360KiB time=00:06:03.00 bitrate=2450.3kbits/s speed=   1x".into()),
            ]),
            at_ms: NOW - 500,
        })),
    }
}

pub fn down(target: &Target, error: &str, at_ms: i64) -> Event {
    Event::Poll {
        target: target.clone(),
        result: PollResult::Down {
            error: error.into(),
            at_ms,
        },
    }
}

pub fn target(name: &str) -> Target {
    Target::Unix(format!("/srv/enc/{name}/api.sock").into())
}

/// Five targets: ok, warming up, failing, stalled, and one that went down 42 s ago.
pub fn sample_app(color: bool) -> App {
    let names = [
        "cam1-ok",
        "cam2-warm",
        "cam3-fail",
        "cam4-stall",
        "cam5-down",
    ];
    let targets: Vec<Target> = names.iter().map(|n| target(n)).collect();
    let mut app = App::new(targets.clone(), Duration::from_secs(1), color, NOW);
    app.update(up(
        &targets[0],
        status(Health::Ok, Some(24.9), Some(0.99)),
        points(200, 0, |a| 25.0 - (a / 20.0).sin()),
    ));
    app.update(up(
        &targets[1],
        status(Health::WarmingUp, Some(31.2), Some(1.25)),
        points(20, 0, |_| 31.0),
    ));
    app.update(up(
        &targets[2],
        status(Health::Failing, Some(8.0), Some(0.4)),
        points(200, 0, |a| if a < 30.0 { 8.0 } else { 25.0 }),
    ));
    app.update(up(
        &targets[3],
        status(Health::Stalled, Some(0.0), Some(0.0)),
        points(200, 8, |a| if a < 20.0 { 0.0 } else { 25.0 }),
    ));
    // cam5 answered for a while, then went down 42 s ago: a gap, not zeros.
    app.update(up(
        &targets[4],
        status(Health::Ok, Some(25.0), Some(1.0)),
        points(200, 42, |_| 25.0),
    ));
    app.update(down(
        &targets[4],
        "cannot connect: Connection refused (os error 111)",
        NOW - 41_000,
    ));
    if let Some(t) = app.targets.get_mut(&targets[4]) {
        t.last_seen_ms = Some(NOW - 42_000);
    }
    app.dirty = false;
    app
}

/// [`sample_app`] and a sixth target between runs (`cam6-restart`, restarting, its history
/// ending 5 s ago), selected so the message line shows its reason.
pub fn restarting_app(color: bool) -> App {
    let mut app = sample_app(color);
    let t = target("cam6-restart");
    app.update(Event::Scan([t.clone()].into_iter().collect()));
    app.update(up(
        &t,
        status(Health::Restarting, Some(0.0), Some(0.0)),
        points(200, 5, |a| if a < 40.0 { 0.0 } else { 25.0 }),
    ));
    app.selected = Some(t);
    app.dirty = false;
    app
}

/// A stand-in wrapperd on a Unix socket: answers `/status`, `/series` and `/last_stdout` with
/// fixed JSON, or, when `hang` is set, accepts connections and never answers.
pub async fn fake_wrapperd(
    sock: std::path::PathBuf,
    status: Status,
    hang: bool,
) -> tokio::task::JoinHandle<()> {
    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let status = status.clone();
            tokio::spawn(async move {
                let Some(path) = request_path(&mut conn).await else {
                    return;
                };
                if hang {
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                    return;
                }
                let body = if path.starts_with("/status") {
                    serde_json::to_string(&status).unwrap()
                } else if path.starts_with("/series") {
                    let now = shared::timefmt::now_ms();
                    let pts: Vec<SeriesPoint> = (0..10)
                        .map(|i| SeriesPoint {
                            t: now - 5_000 + i * 500,
                            fps: Some(25.0),
                            speed: Some(1.0),
                            bitrate_kbps: Some(1000.0),
                        })
                        .collect();
                    serde_json::to_string(&shared::api::Series { points: pts }).unwrap()
                } else if path.starts_with("/last_stdout") {
                    r#"[["2026-11-23 23:59:59","hello"]]"#.to_string()
                } else {
                    String::new()
                };
                respond(&mut conn, "200 OK", &body).await;
            });
        }
    })
}

/// A fresh directory under the system temp dir, unique per test.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("fftop-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A run record ended at [`NOW`] minus 30 s, with `error` as ffmpeg's last words.
pub fn run_record(run: u64, error: &str) -> shared::api::RunRecord {
    shared::api::RunRecord {
        run,
        start: "2026-11-23T23:50:00.000Z".into(),
        end: "2026-11-23T23:59:30.000Z".into(),
        duration_s: 570.0,
        ffmpeg_pid: Some(812),
        ffmpeg_status: FfmpegStatus::Code(255),
        reason: "stopped by the manager: stalled: no output for 7 s".into(),
        error: Some(error.into()),
        last_progress: None,
        last_lines: vec![
            "frame= 9050 fps= 25 q=23.0 size=15000KiB time=00:06:02.00 speed=   1x".into(),
            format!("[in#0] {error}"),
            "Exiting normally, received signal 2.".into(),
        ],
    }
}

/// An exited encode's files as the poller reads them, ended at `ended_ms`.
pub fn exited(target: &Target, ended_ms: i64) -> Event {
    let mut st = status(Health::Exited, None, None);
    st.reason = Some("stopped by the manager: stalled: no output for 7 s".into());
    st.exit = Some(ExitInfo {
        code: 1,
        ffmpeg_status: FfmpegStatus::Code(255),
        reason: "stopped by the manager: stalled: no output for 7 s".into(),
    });
    Event::Poll {
        target: target.clone(),
        result: PollResult::Exited(Box::new(crate::exited::ExitedAnswer {
            status: st,
            last_run: Some(run_record(3, "Connection to tcp://in:9000 failed: refused")),
            ended_ms,
        })),
    }
}

/// A `401` answer.
pub fn unauthorized(target: &Target) -> Event {
    Event::Poll {
        target: target.clone(),
        result: PollResult::Unauthorized {
            error: "HTTP 401: unauthorized (check --token / API_TOKEN)".into(),
            at_ms: NOW - 3000,
        },
    }
}

/// Three targets: ok, an exited encode (ended 30 s ago), and one answering 401.
pub fn exited_app(color: bool) -> App {
    let names = ["cam1-ok", "cam2-gone", "cam3-auth"];
    let targets: Vec<Target> = names.iter().map(|n| target(n)).collect();
    let mut app = App::new(targets.clone(), Duration::from_secs(1), color, NOW);
    app.update(up(
        &targets[0],
        status(Health::Ok, Some(24.9), Some(0.99)),
        points(200, 0, |a| 25.0 - (a / 20.0).sin()),
    ));
    app.update(exited(&targets[1], NOW - 30_000));
    app.update(unauthorized(&targets[2]));
    app.dirty = false;
    app
}

/// A stand-in aggregator (`fftop --serve`) on 127.0.0.1: `/status` is `404`, `/targets` lists
/// `encodes` (each `ok` at 25 fps, polled just now) and `/t/<encode>/series` has 10 points of
/// the last 5 s. Returns its URL and every request's path, in order.
pub async fn fake_aggregator(
    encodes: &'static [&'static str],
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let paths = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = paths.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Some(path) = request_path(&mut conn).await else {
                    return;
                };
                seen.lock().unwrap().push(path.clone());
                let now = shared::timefmt::now_ms();
                let (code, body) = if path == "/targets" {
                    let items: Vec<serde_json::Value> = encodes
                        .iter()
                        .map(|e| {
                            let mut v =
                                serde_json::to_value(status(Health::Ok, Some(25.0), Some(1.0)))
                                    .unwrap();
                            v["name"] = (*e).into();
                            v["seen_ms"] = now.into();
                            v
                        })
                        .collect();
                    ("200 OK", serde_json::to_string(&items).unwrap())
                } else if path.starts_with("/t/") && path.contains("/series") {
                    let pts: Vec<SeriesPoint> = (0..10)
                        .map(|i| SeriesPoint {
                            t: now - 5_000 + i * 500,
                            fps: Some(25.0),
                            speed: Some(1.0),
                            bitrate_kbps: None,
                        })
                        .collect();
                    let series = shared::api::Series { points: pts };
                    ("200 OK", serde_json::to_string(&series).unwrap())
                } else {
                    ("404 Not Found", "no such path".to_string())
                };
                respond(&mut conn, code, &body).await;
            });
        }
    });
    (url, paths)
}

/// Reads one request's head from `conn`: its path, `None` when the client went away first.
async fn request_path<C: tokio::io::AsyncRead + Unpin>(conn: &mut C) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&req);
    Some(head.split_whitespace().nth(1).unwrap_or("/").to_string())
}

/// Answers `code` with a JSON `body` and closes the connection.
async fn respond<C: tokio::io::AsyncWrite + Unpin>(conn: &mut C, code: &str, body: &str) {
    use tokio::io::AsyncWriteExt;
    let resp = format!(
        "HTTP/1.1 {code}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(resp.as_bytes()).await;
    let _ = conn.shutdown().await;
}
