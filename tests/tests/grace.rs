//! Stopping an encode whose input hangs (SPEC §9, issue 11), with real ffmpeg.
//!
//! A test server (a [`Source`], in `tests::hung_source`) sends raw video frames paced at 25 fps to wrapperd's ffmpeg,
//! then stops sending and keeps the connection open, as a hung camera does. wrapperd must end
//! ffmpeg's input `STOP_INPUT_GRACE` after asking it to stop, so ffmpeg exits by itself and the
//! mp4 is complete. The system ffmpeg (5.1) runs every case; the newer static ffmpeg named by
//! `FFW_FFMPEG_NEW` runs the hung TCP case too (skipped, with a printed reason, when unset).

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use shared::api::State;
use tests::hung_source::{Source, FRAMES, INPUT_ARGS, STALL_VARS};
use tests::*;

const T: Duration = Duration::from_secs(60);
/// The newer ffmpeg of `FFW_FFMPEG_NEW`, or `None` with the reason printed.
fn newer_ffmpeg() -> Option<PathBuf> {
    match std::env::var_os("FFW_FFMPEG_NEW") {
        Some(p) if PathBuf::from(&p).is_file() => Some(PathBuf::from(p)),
        Some(p) => {
            eprintln!("skipped: FFW_FFMPEG_NEW={p:?} is not a file");
            None
        }
        None => {
            eprintln!("skipped: FFW_FFMPEG_NEW (a newer static ffmpeg) is not set");
            None
        }
    }
}

/// wrapperd running `ffmpeg` on `source` into `out.mp4`, with the manager's stall check at
/// 1.5 s (`checks`) or no checks, and `vars` on top.
fn wrapperd(
    wd: &Wd,
    ffmpeg: &str,
    source: &Source,
    checks: bool,
    vars: &[(&str, &str)],
) -> WrapperCmd {
    let base: &[(&str, &str)] = if checks {
        STALL_VARS
    } else {
        &[("ENCODING_DISABLE_CHECK", "1"), ("STOP_TIMEOUT", "10")]
    };
    wd.wrapperd()
        .env("FFMPEG_BIN", ffmpeg)
        .envs(base)
        .envs(vars)
        .args(["-hide_banner"])
        .args(INPUT_ARGS)
        .args(["-i", &source.url()])
        .args(["-c:v", "mpeg4", "-q:v", "5", "-y"])
        .args([wd.file("out.mp4")])
}

/// Waits until the source has sent its frames and ffmpeg has reported most of them (its
/// progress comes every 0.5 s while packets flow, so the last ones may go unreported).
fn wait_all_frames(source: &Source, wd: &Wd) {
    // ...and ffmpeg is blocked on the hung input, not still busy with the last frames (under a
    // heavy load it can be, and then it simply finishes on the SIGINT): ffmpeg 5 has gone
    // silent (its newest block is older than 0.6 s), newer ones repeat the same frame until
    // health says `stalled`.
    let blocked = |s: &serde_json::Value| {
        let silent = s["progress"]["at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| {
                chrono::Utc::now().signed_duration_since(t) > chrono::Duration::milliseconds(600)
            });
        silent || s["health"] == "stalled"
    };
    assert!(
        wait_until(Duration::from_secs(20), || {
            source.frames_sent() >= FRAMES
                && wd.status_json().is_some_and(|s| {
                    s["progress"]["frame"]
                        .as_u64()
                        .is_some_and(|f| f >= FRAMES as u64 - 15)
                        && blocked(&s)
                })
        }),
        "frames not encoded: {:?}\n{}",
        wd.status_json(),
        wd.log("wrapperd.log")
    );
}

/// When the state became `stopping` (polled every 10 ms) and when ffmpeg's process was gone.
fn watch_stop(d: &mut Daemon, ffmpeg: i32) -> (Instant, Instant) {
    let client = d.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    let mut stopping = None;
    loop {
        assert!(t0.elapsed() < T, "no stop");
        if stopping.is_none() {
            if let Ok(s) = rt.block_on(client.status()) {
                if s.state == State::Stopping {
                    stopping = Some(Instant::now());
                }
            }
        }
        if process_gone(ffmpeg) {
            let gone = Instant::now();
            return (stopping.unwrap_or(gone), gone);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The mp4 holds the whole encode and decodes cleanly; returns its duration.
fn assert_complete(wd: &Wd) -> f64 {
    let out = wd.file("out.mp4");
    let dur = probe_duration(&out)
        .unwrap_or_else(|| panic!("unreadable mp4 (no index?)\n{}", wd.log("wrapperd.log")));
    let encoded = FRAMES as f64 / 25.0;
    assert!(
        (dur - encoded).abs() <= 0.5,
        "duration {dur}, encoded {encoded}"
    );
    assert!(decodes_cleanly(&out), "the mp4 decodes cleanly");
    dur
}

/// ffmpeg's own exit status from `/status`'s `exit` (an integer: it exited by itself).
fn ffmpeg_exited_by_itself(wd: &Wd) -> i64 {
    let s = wd.status_json().unwrap();
    let st = &s["exit"]["ffmpeg_status"];
    st.as_i64()
        .unwrap_or_else(|| panic!("ffmpeg did not exit by itself: {s}"))
}

/// The hung TCP case with the manager's stall stop, for `ffmpeg`.
fn hung_tcp_stalled(ffmpeg: &str) {
    hung_stalled(ffmpeg, Source::start(true));
}

/// A hung `source` stopped by the manager as stalled, for `ffmpeg`.
fn hung_stalled(ffmpeg: &str, source: Source) {
    let wd = Wd::new();
    let mut d = wrapperd(&wd, ffmpeg, &source, true, &[]).spawn();
    let pid = d.ffmpeg_pid();
    wait_all_frames(&source, &wd);
    let (stop, gone) = watch_stop(&mut d, pid);
    let st = d.wait(T);
    let log = wd.log("wrapperd.log");
    let took = gone.duration_since(stop).as_secs_f64();
    eprintln!("{ffmpeg}: stop decision -> ffmpeg exit {took:.3} s");
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(log.contains("stalled"), "{log}");
    assert!(
        took <= 1.5,
        "ffmpeg exited {took:.3} s after the stop\n{log}"
    );
    let code = ffmpeg_exited_by_itself(&wd);
    assert!(code == 255 || code == 0, "status {code}");
    assert!(
        log.contains("ffmpeg had not finished 1.0 s after SIGINT: ended its input (read side of 1 socket shut); ffmpeg exited 0."),
        "{log}"
    );
    for l in log.lines().filter(|l| l.contains("ended its input")) {
        eprintln!("{l}");
    }
    let reason = wd.status_json().unwrap()["exit"]["reason"].to_string();
    assert!(reason.contains("ended its input"), "{reason}");
    let dur = assert_complete(&wd);
    eprintln!(
        "{ffmpeg}: mp4 duration {dur:.3} s of {} sent frames",
        source.frames_sent()
    );
}

#[test]
fn hung_tcp_input_is_ended_after_the_grace_and_the_mp4_is_complete() {
    hung_tcp_stalled("ffmpeg");
}

#[test]
fn http_input_whose_body_stops_mid_way_is_ended_too() {
    hung_stalled("ffmpeg", Source::http_hung());
}

#[test]
fn hung_tcp_input_with_a_newer_ffmpeg() {
    if let Some(ff) = newer_ffmpeg() {
        hung_tcp_stalled(ff.to_str().unwrap());
    }
}

/// SIGTERM to wrapperd while the source hangs (`docker stop`); returns the exit status, the
/// time from the signal to wrapperd's exit, and the log.
fn sigterm_while_hung(vars: &[(&str, &str)], seccomp_deny: bool) -> (ExitStatus, f64, String, Wd) {
    let wd = Wd::new();
    let source = Source::start(true);
    let mut cmd = wrapperd(&wd, "ffmpeg", &source, false, vars);
    if seccomp_deny {
        deny_pidfd_getfd(&mut cmd);
    }
    let mut d = cmd.spawn();
    wait_all_frames(&source, &wd);
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    let st = d.wait(T);
    let took = t0.elapsed().as_secs_f64();
    (st, took, wd.log("wrapperd.log"), wd)
}

#[test]
fn sigterm_while_the_input_hangs_exits_0_with_a_complete_mp4() {
    let (st, took, log, wd) = sigterm_while_hung(&[], false);
    eprintln!("SIGTERM -> wrapperd exit {took:.3} s");
    assert_eq!(st.code(), Some(0), "{log}");
    assert!(took <= 1.5 + 1.0, "took {took:.3} s\n{log}");
    assert!(
        log.contains("ended its input (read side of 1 socket shut)"),
        "{log}"
    );
    let code = ffmpeg_exited_by_itself(&wd);
    assert!(code == 255 || code == 0, "status {code}");
    assert_complete(&wd);
}

#[test]
fn grace_0_keeps_the_old_behaviour_killed_after_stop_timeout() {
    let (st, took, log, wd) =
        sigterm_while_hung(&[("STOP_INPUT_GRACE", "0"), ("STOP_TIMEOUT", "2")], false);
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(took >= 2.0, "took {took:.3} s");
    assert!(log.contains("did not stop within STOP_TIMEOUT"), "{log}");
    assert!(!log.contains("input"), "{log}");
    let s = wd.status_json().unwrap();
    assert!(
        s["exit"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("had to be killed")),
        "{s}"
    );
    eprintln!(
        "grace 0: mp4 readable after SIGKILL: {:?}",
        probe_duration(&wd.file("out.mp4"))
    );
}

/// Runs wrapperd under a seccomp filter whose `pidfd_getfd` fails with `EPERM`, as Docker's
/// default profile does without `CAP_SYS_PTRACE`.
fn deny_pidfd_getfd(cmd: &mut WrapperCmd) {
    use std::os::unix::process::CommandExt;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    // The syscall number (offset 0 of seccomp_data); the test runs on its own architecture.
    let filter = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_pidfd_getfd as u32,
        },
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: between fork and exec the closure makes only prctl calls, on a filter built
    // before the fork (no allocation); the filter is read by the kernel during the call.
    unsafe {
        cmd.cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn a_refused_pidfd_getfd_is_logged_once_with_what_to_grant_then_killed() {
    let (st, took, log, _wd) = sigterm_while_hung(&[("STOP_TIMEOUT", "2.5")], true);
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(took >= 2.5, "took {took:.3} s");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot be ended"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    eprintln!("{}", lines[0]);
    assert!(
        lines[0].contains("EPERM") && lines[0].contains("CAP_SYS_PTRACE"),
        "{}",
        lines[0]
    );
    assert!(log.contains("did not stop within STOP_TIMEOUT"), "{log}");
}

#[test]
fn a_healthy_stop_never_touches_the_sockets() {
    let wd = Wd::new();
    let source = Source::start(false);
    let mut d = wrapperd(&wd, "ffmpeg", &source, false, &[]).spawn();
    wait_all_frames(&source, &wd);
    let t0 = Instant::now();
    d.signal(Signal::SIGTERM);
    let st = d.wait(T);
    let log = wd.log("wrapperd.log");
    eprintln!(
        "healthy SIGTERM -> exit {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(st.code(), Some(0), "{log}");
    assert!(
        !log.contains("socket") && !log.contains("had not finished"),
        "{log}"
    );
    assert!(probe_duration(&wd.file("out.mp4")).is_some_and(|d| d >= 1.5));
}
