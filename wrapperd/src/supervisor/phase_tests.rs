//! The supervisor loop driven by a scripted child: which signals ffmpeg gets, when, and the
//! outcome. Real time, in tenths of a second.

use std::sync::Mutex;

use tokio::sync::mpsc;

use super::*;
use crate::manager::StopReason;
use crate::supervisor::input::EndInputsError;
use shared::api::State;

/// What the loop did to the scripted child.
#[derive(Debug, Default, Clone, PartialEq)]
struct Acts {
    /// `ask_to_finish` calls (`q` + `SIGINT`).
    asked: u32,
    /// `kill` calls.
    killed: u32,
    /// `end_inputs` calls.
    ended_inputs: u32,
}

/// A child that ends `finish` after being asked to (never, if `None`), or at once when killed.
struct Scripted {
    /// What was done to it, for the test to read.
    acts: Arc<Mutex<Acts>>,
    /// How long finishing takes.
    finish: Option<Duration>,
    /// Its status once ended.
    ended: Arc<Mutex<Option<FfmpegStatus>>>,
    /// Sends `SIGCHLD` to the loop.
    events: mpsc::UnboundedSender<Event>,
    /// What `end_inputs` answers (`Ok(0)` unless a test says otherwise).
    inputs: Result<usize, EndInputsError>,
    /// Ending its inputs (with at least one socket shut) makes it finish 5 ms later.
    ends_with_inputs: bool,
}

impl Scripted {
    /// Ends with status 255 after `d`, as ffmpeg finishing its outputs does.
    fn finish_after(&self, d: Duration) {
        let (ended, tx) = (self.ended.clone(), self.events.clone());
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            ended.lock().unwrap().get_or_insert(FfmpegStatus::Code(255));
            let _ = tx.send(Event::Child);
        });
    }
}

impl Child for Scripted {
    fn ask_to_finish(&mut self) {
        self.acts.lock().unwrap().asked += 1;
        if let Some(d) = self.finish {
            self.finish_after(d);
        }
    }

    fn end_inputs(&mut self) -> Result<usize, EndInputsError> {
        self.acts.lock().unwrap().ended_inputs += 1;
        if self.ends_with_inputs && self.inputs.as_ref().is_ok_and(|n| *n > 0) {
            self.finish_after(Duration::from_millis(5));
        }
        self.inputs.clone()
    }

    fn kill(&mut self) {
        self.acts.lock().unwrap().killed += 1;
        *self.ended.lock().unwrap() = Some(FfmpegStatus::Signal(9));
        let _ = self.events.send(Event::Child);
    }

    fn reap(&mut self) -> Option<FfmpegStatus> {
        *self.ended.lock().unwrap()
    }
}

/// Signals sent by the test.
struct Chan(mpsc::UnboundedReceiver<Event>);

impl Events for Chan {
    async fn next(&mut self) -> Event {
        match self.0.recv().await {
            Some(ev) => ev,
            None => std::future::pending().await,
        }
    }
}

/// A loop over a scripted child with `STOP_TIMEOUT=stop_timeout` and the given variables.
fn rig(
    vars: &[(&str, &str)],
    stop_timeout: f64,
    finish: Option<f64>,
) -> (
    Supervisor<Scripted, Chan>,
    Arc<Mutex<Acts>>,
    mpsc::UnboundedSender<Event>,
) {
    let mut v: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.push(("STOP_TIMEOUT".into(), stop_timeout.to_string()));
    let config = Config::from_vars(v).unwrap();
    let shared = Arc::new(Daemon::new(config.clone(), Vec::new()));
    shared.ffmpeg_started(1, std::time::Instant::now());
    let (tx, rx) = mpsc::unbounded_channel();
    let acts = Arc::new(Mutex::new(Acts::default()));
    let child = Scripted {
        acts: acts.clone(),
        finish: finish.map(Duration::from_secs_f64),
        ended: Arc::new(Mutex::new(None)),
        events: tx.clone(),
        inputs: Ok(0),
        ends_with_inputs: true,
    };
    let sup = Supervisor {
        child,
        events: Chan(rx),
        shared,
        wake: Arc::new(Notify::new()),
        logs: None,
        stop_timeout: config.stop_timeout,
        phase: Phase::Running,
        run: RunClock::new(tokio::time::Instant::now()),
    };
    (sup, acts, tx)
}

const NO_CHECKS: &[(&str, &str)] = &[("ENCODING_DISABLE_CHECK", "1")];

/// The manager stops a silent encode after 0.2 s.
const STALLS: &[(&str, &str)] = &[
    ("MANAGER_START_DELAY", "0"),
    ("ENCODING_CHECK_START_DELAY", "0"),
    ("ENCODING_MAX_STDOUT_STUCK_TIME", "0.2"),
];

fn acts(asked: u32, killed: u32) -> Acts {
    Acts {
        asked,
        killed,
        ended_inputs: 0,
    }
}

#[tokio::test]
async fn a_signal_asks_once_and_the_clean_finish_is_0() {
    let (mut sup, done, tx) = rig(NO_CHECKS, 5.0, Some(0.1));
    tx.send(Event::Stop(Signal::SIGTERM)).unwrap();
    tx.send(Event::Rotate).unwrap();
    let out = sup.supervise().await;
    assert_eq!(*done.lock().unwrap(), acts(1, 0));
    assert_eq!(out.cause, Some(StopCause::Signal(Signal::SIGTERM)));
    assert_eq!((out.status, out.killed), (FfmpegStatus::Code(255), false));
    assert_eq!(judge(&sup.shared.config, &out, None).0, 0);
    assert_eq!(sup.shared.state(), State::Stopping);
}

#[tokio::test]
async fn a_child_that_does_not_finish_is_killed_after_the_stop_timeout() {
    let (mut sup, done, tx) = rig(NO_CHECKS, 0.3, None);
    let t0 = Instant::now();
    tx.send(Event::Stop(Signal::SIGINT)).unwrap();
    let out = sup.supervise().await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(*done.lock().unwrap(), acts(1, 1));
    assert!(out.killed);
    assert_eq!(judge(&sup.shared.config, &out, None).0, 1);
}

#[tokio::test]
async fn a_second_signal_kills_at_once() {
    let (mut sup, done, tx) = rig(NO_CHECKS, 30.0, None);
    let t0 = Instant::now();
    tx.send(Event::Stop(Signal::SIGTERM)).unwrap();
    tx.send(Event::Stop(Signal::SIGQUIT)).unwrap();
    tx.send(Event::Stop(Signal::SIGTERM)).unwrap();
    let out = sup.supervise().await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(*done.lock().unwrap(), acts(1, 1), "one SIGINT, one SIGKILL");
    assert_eq!(out.status, FfmpegStatus::Signal(9));
}

#[tokio::test]
async fn the_managers_stop_asks_once_and_exits_1() {
    let (mut sup, done, _tx) = rig(STALLS, 5.0, Some(0.3));
    let out = sup.supervise().await;
    assert_eq!(*done.lock().unwrap(), acts(1, 0));
    let Some(StopCause::Manager(stop)) = &out.cause else {
        panic!("{out:?}");
    };
    assert_eq!(stop.reason, StopReason::Stalled);
    assert_eq!(judge(&sup.shared.config, &out, None).0, 1);
    // Stood down: no deadline, and no second decision however long ffmpeg takes.
    assert_eq!(sup.shared.next_deadline(), None);
}

#[tokio::test]
async fn a_first_signal_during_the_managers_stop_lets_ffmpeg_finish() {
    let (mut sup, done, tx) = rig(STALLS, 30.0, Some(0.5));
    let watcher = {
        let (shared, done) = (sup.shared.clone(), done.clone());
        tokio::spawn(async move {
            while shared.state() != State::Stopping {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tx.send(Event::Stop(Signal::SIGTERM)).unwrap();
            // The loop has taken the signal in once it waits again; a second one kills.
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(
                *done.lock().unwrap(),
                acts(1, 0),
                "the first one does not kill"
            );
            tx
        })
    };
    let out = sup.supervise().await;
    let _tx = watcher.await.unwrap();
    assert_eq!(*done.lock().unwrap(), acts(1, 0));
    assert_eq!((out.status, out.killed), (FfmpegStatus::Code(255), false));
    assert!(matches!(out.cause, Some(StopCause::Manager(_))));
}

#[tokio::test]
async fn a_second_signal_during_the_managers_stop_kills() {
    let (mut sup, done, tx) = rig(STALLS, 30.0, None);
    tokio::spawn({
        let shared = sup.shared.clone();
        async move {
            while shared.state() != State::Stopping {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tx.send(Event::Stop(Signal::SIGTERM)).unwrap();
            tx.send(Event::Stop(Signal::SIGTERM)).unwrap();
        }
    });
    let out = sup.supervise().await;
    assert_eq!(*done.lock().unwrap(), acts(1, 1));
    assert!(out.killed && matches!(out.cause, Some(StopCause::Manager(_))));
}

#[test]
fn exit_table() {
    let cfg = Config::from_vars(Vec::new()).unwrap();
    let pass = Config {
        exit_code_passthrough: true,
        ..cfg.clone()
    };
    let o = |cause: Option<StopCause>, killed, status| Outcome {
        status,
        cause,
        killed,
        inputs_note: None,
        signalled: false,
        healthy_for: Duration::ZERO,
    };
    assert_eq!(
        judge(&cfg, &o(None, false, FfmpegStatus::Code(0)), None).0,
        1
    );
    assert_eq!(
        judge(&pass, &o(None, false, FfmpegStatus::Code(3)), None).0,
        3
    );
    assert_eq!(
        judge(&pass, &o(None, false, FfmpegStatus::Signal(9)), None).0,
        137
    );
    let sig = Some(StopCause::Signal(Signal::SIGTERM));
    assert_eq!(
        judge(&cfg, &o(sig.clone(), false, FfmpegStatus::Code(255)), None).0,
        0
    );
    assert_eq!(
        judge(&pass, &o(sig.clone(), false, FfmpegStatus::Code(255)), None).0,
        0
    );
    assert_eq!(
        judge(&cfg, &o(sig, true, FfmpegStatus::Signal(9)), None).0,
        1
    );
    let mgr = Some(StopCause::Manager(Stop {
        reason: StopReason::Stalled,
        message: "x".into(),
    }));
    assert_eq!(
        judge(&pass, &o(mgr, false, FfmpegStatus::Code(255)), None).0,
        1
    );
}

// SPEC §9: STOP_INPUT_GRACE after asking, ffmpeg's inputs are ended, once.

/// No checks, `STOP_INPUT_GRACE=grace`.
fn grace(grace: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![("ENCODING_DISABLE_CHECK", "1"), ("STOP_INPUT_GRACE", grace)]
}

fn ended(asked: u32, killed: u32, ended_inputs: u32) -> Acts {
    Acts {
        asked,
        killed,
        ended_inputs,
    }
}

#[tokio::test]
async fn after_the_grace_the_inputs_are_ended_once_and_ffmpeg_finishes() {
    let (mut sup, done, tx) = rig(&grace("0.2"), 5.0, None);
    sup.child.inputs = Ok(2);
    let t0 = Instant::now();
    tx.send(Event::Stop(Signal::SIGTERM)).unwrap();
    let out = sup.supervise().await;
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(*done.lock().unwrap(), ended(1, 0, 1));
    assert_eq!((out.status, out.killed), (FfmpegStatus::Code(255), false));
    let (code, reason) = judge(&sup.shared.config, &out, None);
    assert_eq!(code, 0, "{reason}");
    assert!(
        reason.contains(
            "ffmpeg had not finished 0.2 s after SIGINT: ended its input \
             (read side of 2 sockets shut); ffmpeg exited 0.0"
        ) && reason.ends_with("finished cleanly with status 255"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_grace_of_0_never_ends_the_inputs_and_the_stop_timeout_kills() {
    let (mut sup, done, tx) = rig(&grace("0"), 0.3, None);
    sup.child.inputs = Ok(2);
    tx.send(Event::Stop(Signal::SIGTERM)).unwrap();
    let out = sup.supervise().await;
    assert_eq!(*done.lock().unwrap(), ended(1, 1, 0));
    assert!(out.killed && out.inputs_note.is_none());
}

#[tokio::test]
async fn a_child_that_finishes_within_the_grace_is_not_touched() {
    let (mut sup, done, tx) = rig(&grace("0.3"), 5.0, Some(0.1));
    sup.child.inputs = Ok(2);
    tx.send(Event::Stop(Signal::SIGTERM)).unwrap();
    let out = sup.supervise().await;
    assert_eq!(*done.lock().unwrap(), ended(1, 0, 0));
    assert!(!judge(&sup.shared.config, &out, None).1.contains("input"));
}

#[tokio::test]
async fn a_refusal_is_tried_once_then_the_stop_timeout_kills() {
    let (mut sup, done, tx) = rig(&grace("0.1"), 0.4, None);
    sup.child.inputs = Err(EndInputsError::Take {
        fd: 3,
        errno: nix::errno::Errno::EPERM,
    });
    let t0 = Instant::now();
    tx.send(Event::Stop(Signal::SIGTERM)).unwrap();
    let out = sup.supervise().await;
    assert!(t0.elapsed() >= Duration::from_millis(400));
    assert_eq!(*done.lock().unwrap(), ended(1, 1, 1));
    let (code, reason) = judge(&sup.shared.config, &out, None);
    assert_eq!(code, 1);
    assert!(reason.contains("had to be killed") && !reason.contains("input"));
}

#[tokio::test]
async fn inputs_ended_without_effect_still_end_in_the_stop_timeout_kill() {
    let (mut sup, done, tx) = rig(&grace("0.1"), 0.4, None);
    sup.child.inputs = Ok(1);
    sup.child.ends_with_inputs = false;
    tx.send(Event::Stop(Signal::SIGINT)).unwrap();
    let out = sup.supervise().await;
    assert_eq!(*done.lock().unwrap(), ended(1, 1, 1));
    let (code, reason) = judge(&sup.shared.config, &out, None);
    assert_eq!(code, 1);
    assert!(
        reason.contains("(read side of 1 socket shut); it had still not exited 0.")
            && reason.ends_with("had to be killed (status signal 9)"),
        "{reason}"
    );
}

#[tokio::test]
async fn the_managers_stop_ends_the_inputs_too() {
    let mut v = grace("0.1");
    v.retain(|(k, _)| *k != "ENCODING_DISABLE_CHECK");
    v.extend_from_slice(STALLS);
    let (mut sup, done, _tx) = rig(&v, 5.0, None);
    sup.child.inputs = Ok(1);
    let out = sup.supervise().await;
    assert_eq!(*done.lock().unwrap(), ended(1, 0, 1));
    assert!(matches!(out.cause, Some(StopCause::Manager(_))));
    assert!(out.inputs_note.is_some_and(|n| n.contains("exited")));
}
