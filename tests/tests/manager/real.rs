//! The manager with real ffmpeg: a 20 s re-encode left alone, an input that stops sending, an
//! encode that slows down.

use super::*;

/// A child process killed (and reaped) when the test ends, however it ends.
struct Feeder(Child);

impl Drop for Feeder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on 127.0.0.1.
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something listens on 127.0.0.1:`port` (from `/proc/net/tcp`: state `0A`).
fn tcp_listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == "0A"
        })
}

/// Waits until the encode has produced `frames` frames with the checks active and health ok.
fn wait_running_ok(d: &Daemon, wd: &Wd, frames: u64) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            wd.status_json().is_some_and(|s| {
                s["progress"]["frame"].as_u64().is_some_and(|f| f >= frames)
                    && s["check"]["active"] == true
                    && s["health"] == "ok"
            })
        }),
        "encode not running with active checks: {:?}\n{}",
        wd.status_json(),
        wd.log("wrapperd.log")
    );
    assert_eq!(d.get("/healthz").status, 200);
}

#[test]
fn real_ffmpeg_re_encode_runs_20s_unharmed_then_sigterm_exits_0() {
    let wd = Wd::new();
    let out = wd.file("out.mp4");
    let mut d = managed(
        &wd,
        Limits {
            check: "2",
            window: "2",
            error: "3",
            stuck: "3",
            stop: "5",
        },
    )
    .args(["-hide_banner", "-re", "-f", "lavfi"])
    .args(["-i", "testsrc=size=320x240:rate=25"])
    .args(["-c:v", "mpeg4", "-q:v", "5", "-y"])
    .args([&out])
    .spawn();
    let started = Instant::now();
    wait_running_ok(&d, &wd, 25);
    let mut w = Watch::new(&d, None);
    w.for_time(
        &mut d,
        Duration::from_secs(20).saturating_sub(started.elapsed()),
    );
    assert!(d.is_running(), "{}", wd.log("wrapperd.log"));
    let s = d.status();
    assert_eq!(s.state, State::Running);
    assert_eq!(s.health, Health::Ok, "{s:?}");
    let base = s.check.base_fps.unwrap();
    // 25, or a little more on ffmpeg ≥ 7.1, whose -re reads a 0.5 s burst first.
    assert!((20.0..40.0).contains(&base), "base fps {base}");
    d.signal(Signal::SIGTERM);
    let st = d.wait(T);
    let log = wd.log("wrapperd.log");
    assert_eq!(st.code(), Some(0), "{log}");
    assert!(!log.contains("manager stops"), "{log}");
    assert!(!w.seen.saw(Health::Stalled), "{:?}", w.seen.healths);
    let dur = probe_duration(&out).expect("readable mp4");
    assert!(dur > 18.0, "duration {dur}");
}

#[test]
fn real_ffmpeg_whose_input_stops_sending_is_stopped_as_stalled_and_its_mp4_is_valid() {
    let wd = Wd::new();
    let out = wd.file("out.mp4");
    let port = free_tcp_port();
    // ffmpeg takes a live MPEG-TS stream over TCP (it listens, the source connects).
    let mut d = managed(
        &wd,
        Limits {
            check: "3",
            window: "1",
            // ffmpeg 7 keeps writing frozen blocks, which fail too: the stall comes first.
            error: "4",
            stuck: "2",
            stop: "10",
        },
    )
    .args([
        "-hide_banner",
        "-analyzeduration",
        "1000000",
        "-f",
        "mpegts",
    ])
    .args(["-i", &format!("tcp://127.0.0.1:{port}?listen=1")])
    .args(["-c:v", "libx264", "-preset", "ultrafast", "-y"])
    .args([&out])
    .spawn();
    assert!(
        wait_until(Duration::from_secs(10), || tcp_listening(port)),
        "ffmpeg does not listen on {port}: {}",
        wd.log("wrapperd.log")
    );
    let feeder = Feeder(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
            .args(["-c:v", "mpeg4", "-q:v", "5", "-g", "12", "-f", "mpegts"])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("ffmpeg feeder"),
    );
    wait_running_ok(&d, &wd, 75);
    let mut w = Watch::new(&d, None);
    w.for_time(&mut d, Duration::from_millis(300));
    // The source hangs: the connection stays open and nothing arrives any more.
    let feeder_pid = nix::unistd::Pid::from_raw(feeder.0.id() as i32);
    nix::sys::signal::kill(feeder_pid, Signal::SIGSTOP).unwrap();
    let hung = Instant::now();
    while w.seen.stopping.is_none() && d.is_running() {
        assert!(hung.elapsed() < Duration::from_secs(10), "not stopped");
        w.poll();
        std::thread::sleep(Duration::from_millis(40));
    }
    // ffmpeg got its one SIGINT, but a read blocked on a hung input is only interrupted by a
    // second signal (5.1 and 7 alike), which would cost the mp4 its index. The source stays
    // hung, connection open, as a camera's does: wrapperd ends ffmpeg's input after
    // STOP_INPUT_GRACE (SPEC §9), so it finishes its mp4 well within STOP_TIMEOUT.
    let st = w.until_exit(&mut d, T);
    drop(feeder);
    assert_stopped(&wd, st, &w.seen, "stalled");
    let stop = w.seen.stopping.unwrap();
    let (after_hang, after_advance) = (
        secs(hung, stop),
        secs(w.seen.last_advance.expect("advances seen"), stop),
    );
    eprintln!("real stall: stop {after_hang:.2} s after the source hung");
    assert_stop_time(after_advance, 2.0, "the last advance seen (real stall)");
    let status = wd.status_json().unwrap();
    assert!(
        status["exit"]["ffmpeg_status"].is_i64(),
        "ffmpeg finished, not killed: {status}"
    );
    assert!(wd.log("wrapperd.log").contains("ended its input"));
    let dur = probe_duration(&out).expect("readable mp4");
    assert!(dur > 2.0, "duration {dur}");
    assert!(decodes_cleanly(&out), "the mp4 decodes");
}

#[test]
fn real_ffmpeg_that_slows_down_is_stopped_as_failing() {
    let wd = Wd::new();
    let out = wd.file("out.mp4");
    // The realtime filter paces the source at real time, then (4 s in) at a quarter of it:
    // 6.25 fps, speed 0.25, and still a frame every 0.16 s, so never stalled.
    let mut d = managed(
        &wd,
        Limits {
            check: "2",
            window: "1",
            error: "2",
            stuck: "3",
            stop: "5",
        },
    )
    .args(["-hide_banner", "-f", "lavfi", "-i"])
    .args(["testsrc=size=320x240:rate=25,sendcmd=c='4 realtime@pace speed 0.25',realtime@pace"])
    .args(["-c:v", "mpeg4", "-q:v", "5", "-y"])
    .args([&out])
    .spawn();
    wait_running_ok(&d, &wd, 50);
    let mut w = Watch::new(&d, None);
    let st = w.until_exit(&mut d, T);
    // Slowed down, ffmpeg 5.1 acts on its SIGINT within one frame (≤ 0.16 s) and then exits:
    // the `stopping` state can pass between two polls. The exit is an upper bound of the stop;
    // the graceful stop itself is shown by the decision in the log and ffmpeg's own exit status.
    w.seen.stopping = w.seen.stopping.or(w.seen.gone);
    assert_stopped(&wd, st, &w.seen, "failing");
    let failing = w.seen.failing.expect("health failing");
    let into = secs(failing, w.seen.stopping.unwrap());
    assert_stop_time(into, 2.0, "health turned failing (real slowdown)");
    let last = w.seen.last_running.as_ref().unwrap();
    let (fps, speed) = (last.rates.fps.unwrap(), last.rates.speed.unwrap());
    assert!(fps < 9.0 && speed < 0.4, "{:?}", last.rates);
    let status = wd.status_json().unwrap();
    assert!(
        status["exit"]["ffmpeg_status"].is_i64(),
        "not killed: {status}"
    );
    assert!(probe_duration(&out).expect("readable mp4") > 4.0);
    assert!(decodes_cleanly(&out), "the mp4 decodes");
}
