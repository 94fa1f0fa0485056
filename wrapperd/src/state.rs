//! The state every task shares: the two rings, the manager, the life cycle and the exit.
//!
//! [`Daemon`] is one running wrapperd as its tasks see it: what never changes after start
//! (configuration, command, pid) in plain fields, and everything that does behind one `Mutex`
//! that no other module can reach. Every method holds that lock for microseconds: the readers push
//! a batch of lines or a block, the supervisor polls the manager, the API takes [`Snapshot`]s and
//! formats them after unlocking. This is what lets the output readers never wait on API clients.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use shared::api::{
    Counters, ExitInfo, Health, ProgressInfo, Rates, RunInfo, RunRecord, Series, State, Status,
};
use shared::progress::{Block, Progress};
use shared::timefmt;
use tokio::sync::Notify;

use crate::config::Config;
use crate::events::{Bus, Emit, Head};
use crate::manager::{Manager, Rules, Stop};
use crate::ring::{Ring, Snapshot};

mod points;
mod runs;

pub use runs::{Control, ControlRequest, RUNS_KEPT};

use points::{instant_of, Points, RatePoint};

/// Everything behind the lock.
#[derive(Debug)]
struct Inner {
    /// ffmpeg's stdout and stderr lines.
    lines: Ring,
    /// ffmpeg's `-progress` blocks, as text.
    blocks: Ring,
    /// The `/series` points: one per block, one a second while none arrives (at most
    /// `PROGRESS_BUFFER_LEN`).
    points: Points,
    /// The newest block, parsed, with its arrival time in Unix milliseconds.
    last_progress: Option<(i64, Progress)>,
    /// The rules that stop a failing encode, fed by every line and block.
    manager: Manager,
    /// The life cycle.
    state: State,
    /// ffmpeg's pid, once spawned.
    ffmpeg_pid: Option<u32>,
    /// When ffmpeg was spawned, Unix milliseconds.
    ffmpeg_start_ms: Option<i64>,
    /// Why a stop was asked for, while stopping.
    stopping_reason: Option<String>,
    /// How ffmpeg ended and the exit code decided, once it did.
    exit: Option<ExitInfo>,
    /// Run number and restart counts (`next_start_in_s` is computed from `next_start`).
    run: RunInfo,
    /// While restarting: why, and when the next run starts.
    restarting: Option<(String, Instant)>,
    /// The newest ended run (also the last line of `runs.jsonl`).
    last_run: Option<RunRecord>,
    /// The newest ended runs as their JSON lines, oldest first (`GET /runs`), at most
    /// [`RUNS_KEPT`].
    runs: VecDeque<Arc<str>>,
    /// A control request accepted by the API and not yet taken by the supervisor.
    control: Option<ControlRequest>,
    /// wrapperd is on its way out ([`Daemon::exiting`]).
    exiting: bool,
    /// The run whose `exited` event went out already ([`Daemon::report_run_exited`]).
    exited_reported: Option<u64>,
}

/// One wrapperd as all its tasks see it: its fixed facts, and its changing state behind a lock.
#[derive(Debug)]
pub struct Daemon {
    /// The configuration, checked at start.
    pub config: Config,
    /// The user's ffmpeg arguments, as given (lossily converted for display).
    pub cmd: Vec<String>,
    /// wrapperd's own pid.
    pub pid: u32,
    /// When wrapperd started (the manager's start delay counts from it; `uptime_s`).
    started: Instant,
    /// Everything that changes; only this module's methods take the lock.
    inner: Mutex<Inner>,
    /// The status writer's thread, unparked on every change of state or exit, to rewrite
    /// status.json at once.
    status_thread: OnceLock<Thread>,
    /// The status writer is dozing (nothing changed at its last look): the next line or block
    /// unparks it ([`Daemon::nudge_status`]).
    status_dozing: AtomicBool,
    /// Woken when the API accepts a control request ([`Daemon::control`]).
    pub(crate) control_wake: Notify,
    /// When the supervisor's loop last went round, milliseconds since `started` (`/livez`, the
    /// systemd watchdog).
    beat_ms: AtomicU64,
    /// Asks the supervisor's loop to go round ([`Daemon::ask_beat`]): liveness is asked for,
    /// not kept up by a timer (an idle encode's loop sleeps until something happens).
    pub(crate) beat_wake: Notify,
    /// The events (SPEC §11), published under `inner`'s lock.
    events: Bus,
}

impl Daemon {
    pub fn new(config: Config, cmd: Vec<String>) -> Daemon {
        let started = Instant::now();
        let manager = Manager::new(Rules::from_config(&config), started, started);
        let inner = Inner {
            lines: Ring::new(config.stdout_buffer_len),
            blocks: Ring::new(config.progress_buffer_len),
            points: Points::default(),
            last_progress: None,
            manager,
            state: State::Starting,
            ffmpeg_pid: None,
            ffmpeg_start_ms: None,
            stopping_reason: None,
            exit: None,
            run: RunInfo::default(),
            restarting: None,
            last_run: None,
            runs: Default::default(),
            control: None,
            exiting: false,
            exited_reported: None,
        };
        Daemon {
            config,
            cmd,
            pid: std::process::id(),
            started,
            inner: Mutex::new(inner),
            status_thread: OnceLock::new(),
            status_dozing: AtomicBool::new(false),
            control_wake: Notify::new(),
            beat_ms: AtomicU64::new(0),
            beat_wake: Notify::new(),
            events: Bus::default(),
        }
    }

    /// The event bus.
    pub(crate) fn events(&self) -> &Bus {
        &self.events
    }

    /// Publishes `ev` stamped with the current run, health and reason (set the state first).
    pub(crate) fn emit(&self, ev: Emit) {
        let g = self.lock();
        self.emit_locked(&g, ev);
    }

    /// [`Daemon::emit`] from a method that holds the lock (so the event is ordered with the
    /// change it reports).
    fn emit_locked(&self, g: &Inner, ev: Emit) {
        self.events.publish(head_of(g, Instant::now()), ev);
    }

    /// Sends `health` if the encode's health word changed since the last event; returns when
    /// it may change next with nothing arriving (the event bus's health watcher).
    pub(crate) fn health_event(&self, now: Instant) -> Option<Instant> {
        let g = self.lock();
        self.events.health_now(head_of(&g, now));
        next_health_change(&g, now)
    }

    /// When the health word may change next with nothing arriving (the status writer dozes
    /// until then at the latest).
    pub(crate) fn next_health_change(&self, now: Instant) -> Option<Instant> {
        next_health_change(&self.lock(), now)
    }

    /// The supervisor's loop is alive: it calls this every time it goes round (and it goes
    /// round when [`Daemon::ask_beat`] asks).
    pub fn beat(&self) {
        let ms = self.started.elapsed().as_millis();
        self.beat_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// How long ago the supervisor's loop last went round.
    pub fn beat_age(&self) -> Duration {
        let at = Duration::from_millis(self.beat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(at)
    }

    /// Asks the supervisor's loop to go round once (and so beat): `/livez` and the watchdog.
    pub(crate) fn ask_beat(&self) {
        self.beat_wake.notify_one();
    }

    /// Whether the loop is alive: it went round within `fresh`, or does within `wait` of being
    /// asked (`/livez`: "it answered within the last 5 s").
    pub(crate) async fn alive(&self, fresh: Duration, wait: Duration) -> bool {
        if self.beat_age() < fresh {
            return true;
        }
        let before = self.beat_ms.load(Ordering::Relaxed);
        self.ask_beat();
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if self.beat_ms.load(Ordering::Relaxed) != before || self.beat_age() < fresh {
                return true;
            }
        }
        false
    }

    /// The lock; a panic elsewhere never makes the state unreadable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// ffmpeg was spawned at `at` with `pid`: a new run begins, with its own warm-up and fresh
    /// base values (a new manager), and no progress yet. Returns the start's unix time in ms,
    /// the one `/start_time` and `/status` show (status/START_TIME is written from it too).
    pub fn ffmpeg_started(&self, pid: u32, at: Instant) -> i64 {
        let start_ms = timefmt::now_ms();
        let mut g = self.lock();
        g.ffmpeg_pid = Some(pid);
        g.ffmpeg_start_ms = Some(start_ms);
        g.state = State::Running;
        g.manager = Manager::new(Rules::from_config(&self.config), self.started, at);
        g.last_progress = None;
        g.stopping_reason = None;
        g.restarting = None;
        g.run.number += 1;
        g.run.runs += 1;
        self.emit_locked(&g, Emit::Started { pid });
        drop(g);
        self.wake_status();
        self.events.wake_health();
        start_ms
    }

    /// Output lines pushed so far (a run's lines are those pushed after its start).
    pub(crate) fn lines_total(&self) -> u64 {
        self.lock().lines.total()
    }

    /// The newest lines pushed after the first `since` ones, at most `max`, oldest first.
    pub(crate) fn lines_since(&self, since: u64, max: usize) -> Vec<String> {
        let g = self.lock();
        let n = usize::try_from(g.lines.total().saturating_sub(since))
            .unwrap_or(usize::MAX)
            .min(max);
        if n == 0 {
            return Vec::new();
        }
        let snap = g.lines.snapshot(n);
        drop(g);
        snap.iter().map(|(_, l)| l.to_string()).collect()
    }

    /// The newest block of the current (or just ended) run, as `/status` shows it.
    pub(crate) fn last_progress(&self) -> Option<ProgressInfo> {
        progress_info(&self.lock())
    }

    /// ffmpeg's pid, once spawned (it stays after ffmpeg exited).
    pub fn ffmpeg_pid(&self) -> Option<u32> {
        self.lock().ffmpeg_pid
    }

    /// When ffmpeg was spawned, Unix milliseconds (the value [`Daemon::ffmpeg_started`] returned).
    pub fn ffmpeg_start_ms(&self) -> Option<i64> {
        self.lock().ffmpeg_start_ms
    }

    /// One output line arrived (the readers push whole reads with [`Daemon::push_lines`]).
    #[cfg(test)]
    pub fn push_line(&self, unix_ms: i64, now: Instant, line: &str) {
        self.push_lines(unix_ms, now, [line]);
    }

    /// Output lines that arrived together (one read from a pipe), under one short lock.
    pub fn push_lines<'a>(
        &self,
        unix_ms: i64,
        now: Instant,
        lines: impl IntoIterator<Item = &'a str>,
    ) {
        let mut g = self.lock();
        if g.lines.push_all(unix_ms, lines) > 0 {
            g.manager.on_line(now);
            drop(g);
            self.nudge_status();
        }
    }

    /// One progress block arrived; returns the manager's decisions to log.
    pub fn push_block(&self, unix_ms: i64, now: Instant, block: &Block) -> Vec<String> {
        let mut g = self.lock();
        let g = &mut *g;
        let cap = self.config.progress_buffer_len;
        let m = &g.manager;
        g.points
            .fill(cap, unix_ms, |t| m.rates_at(instant_of(now, unix_ms, t)));
        g.blocks.push(unix_ms, &block.text);
        let (rates, notes) = g.manager.on_block(now, &block.progress);
        g.points.push_back(RatePoint::new(
            unix_ms,
            rates.fps,
            rates.speed,
            block.progress.bitrate_kbps,
        ));
        while g.points.len() > cap {
            g.points.pop_front();
        }
        g.last_progress = Some((unix_ms, block.progress));
        self.events.health_seen(health_of(g, now).0);
        self.nudge_status();
        notes
    }

    /// ffmpeg's resident memory was `bytes` at `now` (`crate::rss`), if `pid` is the running
    /// ffmpeg (else ignored: a sample of an ended run); returns the manager's decisions to log.
    pub fn push_rss(&self, now: Instant, pid: u32, bytes: u64) -> Vec<String> {
        let mut g = self.lock();
        if g.state != State::Running || g.ffmpeg_pid != Some(pid) {
            return Vec::new();
        }
        let notes = g.manager.on_rss(now, bytes);
        self.events.health_seen(health_of(&g, now).0);
        drop(g);
        self.nudge_status();
        notes
    }

    /// When the manager must be polled next at the latest, if any deadline is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock().manager.next_deadline()
    }

    /// Checks the manager's deadlines at `now`: the decisions to log, and the stop once one is
    /// decided (it stays decided).
    pub fn poll_manager(&self, now: Instant) -> (Vec<String>, Option<Stop>) {
        let mut g = self.lock();
        let notes = g.manager.poll(now);
        self.events.health_seen(health_of(&g, now).0);
        (notes, g.manager.stop().cloned())
    }

    pub fn lines(&self, count: usize) -> Snapshot {
        self.lock().lines.snapshot(count)
    }

    pub fn blocks(&self, count: usize) -> Snapshot {
        self.lock().blocks.snapshot(count)
    }

    /// The current rates at each block of the last `seconds` (every block held when `seconds`
    /// reaches past the Unix epoch).
    pub fn series(&self, seconds: u64) -> Series {
        let back_ms = i64::try_from(seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        let (now_ms, now) = (timefmt::now_ms(), Instant::now());
        let since = now_ms.saturating_sub(back_ms);
        let mut g = self.lock();
        let g = &mut *g;
        let m = &g.manager;
        let cap = self.config.progress_buffer_len;
        g.points
            .fill(cap, now_ms, |t| m.rates_at(instant_of(now, now_ms, t)));
        let from = g.points.first_since(since);
        let points = g
            .points
            .from(from)
            .map(RatePoint::to_series_point)
            .collect();
        Series { points }
    }

    /// Health and reason as `/status` and `/healthz` give them.
    pub fn health(&self) -> (Health, Option<String>) {
        health_of(&self.lock(), Instant::now())
    }

    /// `GET /status`.
    pub fn status(&self) -> Status {
        let now = Instant::now();
        let g = self.lock();
        let (health, reason) = health_of(&g, now);
        let rates = g.manager.rates_at(now);
        let progress = progress_info(&g);
        Status {
            version: shared::VERSION.to_string(),
            state: g.state,
            health,
            reason,
            pid: self.pid,
            ffmpeg_pid: g.ffmpeg_pid,
            workdir: self.config.workdir.display().to_string(),
            start_time: g.ffmpeg_start_ms.map(timefmt::rfc3339_ms),
            uptime_s: now.duration_since(self.started).as_secs_f64(),
            cmd: self.cmd.clone(),
            progress,
            rates: Rates {
                fps: rates.fps,
                speed: rates.speed,
                window_s: self.config.encoding_rate_window.as_secs_f64(),
            },
            check: g.manager.check(now),
            counters: Counters {
                log_lines: g.lines.total(),
                progress_blocks: g.blocks.total(),
            },
            exit: g.exit.clone(),
            run: RunInfo {
                next_start_in_s: g
                    .restarting
                    .as_ref()
                    .map(|(_, at)| at.saturating_duration_since(now).as_secs_f64()),
                ..g.run.clone()
            },
            last_run: g.last_run.clone(),
        }
    }

    /// A stop was asked of ffmpeg, for `reason`: the state is `stopping` until it exits, and the
    /// manager stands down (it decides nothing more, so nothing logs a stop that nobody acts on).
    pub fn begin_stopping(&self, reason: String) {
        let mut g = self.lock();
        g.manager.stand_down();
        g.state = State::Stopping;
        g.stopping_reason = Some(reason);
        self.emit_locked(&g, Emit::Stopping);
        drop(g);
        self.wake_status();
    }

    /// The life-cycle state (`starting`, `running`, `stopping`, `exited`); the supervisor's
    /// tests wait on it.
    #[cfg(test)]
    pub fn state(&self) -> State {
        self.lock().state
    }

    /// ffmpeg exited and wrapperd decided its exit: the state is `exited` for good.
    pub fn set_exit(&self, exit: ExitInfo) {
        let mut g = self.lock();
        g.state = State::Exited;
        let ffmpeg_status = exit.ffmpeg_status;
        g.exit = Some(exit.clone());
        // The last run's record, unless its `exited` went out already (a stop while waiting to
        // restart) or no run was started in this life.
        let record = g
            .last_run
            .clone()
            .filter(|r| g.run.runs > 0 && g.exited_reported != Some(r.run));
        self.emit_locked(
            &g,
            Emit::Exited {
                ffmpeg_status,
                record,
                exit: Some(exit),
            },
        );
        drop(g);
        self.wake_status();
    }

    /// From now on [`Daemon::wake_status`] unparks `thread` (the status writer).
    pub(crate) fn set_status_thread(&self, thread: Thread) {
        let _ = self.status_thread.set(thread);
    }

    /// Wakes the status writer (a change of state or exit), if it runs.
    pub(crate) fn wake_status(&self) {
        if let Some(t) = self.status_thread.get() {
            t.unpark();
        }
    }

    /// The status writer is about to doze (`true`) or is awake (`false`).
    pub(crate) fn set_status_dozing(&self, dozing: bool) {
        self.status_dozing.store(dozing, Ordering::SeqCst);
    }

    /// Whether the status writer dozes (for its tests).
    #[cfg(test)]
    pub(crate) fn status_dozes(&self) -> bool {
        self.status_dozing.load(Ordering::SeqCst)
    }

    /// A line, a block or a memory sample arrived: wakes the status writer if it dozes (an
    /// atomic load otherwise; a busy encode never lets it doze).
    fn nudge_status(&self) {
        if self.status_dozing.load(Ordering::SeqCst)
            && self.status_dozing.swap(false, Ordering::SeqCst)
        {
            self.wake_status();
        }
    }

    /// What `/status` would show at `now`, without what only the passing of time changes, and
    /// cheaply (no `Status` is built): equal marks, same status.json but for the clocks.
    pub(crate) fn change_mark(&self, now: Instant) -> ChangeMark {
        let g = self.lock();
        let (health, reason) = health_of(&g, now);
        ChangeMark {
            state: g.state,
            health,
            // "no output for 12.3 s", "... for 4.0 s": the seconds are a clock too. Any other
            // figure in a reason changes with a block, which the counters see.
            reason: reason.map(|r| r.chars().filter(|c| !c.is_ascii_digit()).collect()),
            active: g.manager.check(now).active,
            log_lines: g.lines.total(),
            progress_blocks: g.blocks.total(),
            exited: g.exit.is_some(),
            run: g.run.number,
            runs_ended: g.last_run.as_ref().map(|r| r.run),
        }
    }
}

/// What [`Daemon::change_mark`] compares: every field of `/status` that can change, but for the
/// clocks (`uptime_s`, `check.last_output_age_s`, `check.failing_for_s`, seconds in `reason`).
/// The rest (progress, rates, the check's limits) changes only with a block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChangeMark {
    /// The life-cycle state.
    pub(crate) state: State,
    /// The health word.
    pub(crate) health: Health,
    /// The health's reason, digits removed.
    pub(crate) reason: Option<String>,
    /// Whether the checks are active.
    pub(crate) active: bool,
    /// Lines pushed so far.
    pub(crate) log_lines: u64,
    /// Blocks pushed so far.
    pub(crate) progress_blocks: u64,
    /// The exit is decided.
    pub(crate) exited: bool,
    /// The run's number (a new run writes `FFMPEG_PID` and `START_TIME` again).
    pub(crate) run: u64,
    /// The newest ended run's number.
    pub(crate) runs_ended: Option<u64>,
}

/// When the health word may change with nothing arriving: only while ffmpeg runs.
fn next_health_change(g: &Inner, now: Instant) -> Option<Instant> {
    match g.state {
        State::Starting | State::Running => g.manager.next_health_change(now),
        _ => None,
    }
}

fn progress_info(g: &Inner) -> Option<ProgressInfo> {
    g.last_progress.as_ref().map(|(at, p)| ProgressInfo {
        at: timefmt::rfc3339_ms(*at),
        frame: p.frame,
        fps: p.fps,
        speed: p.speed,
        bitrate_kbps: p.bitrate_kbps,
        total_size: p.total_size,
        out_time_us: p.out_time_us,
        dup_frames: p.dup_frames,
        drop_frames: p.drop_frames,
    })
}

/// What an event is stamped with at `now`.
fn head_of(g: &Inner, now: Instant) -> Head {
    let (health, reason) = health_of(g, now);
    Head {
        run: g.run.number,
        health,
        reason,
    }
}

fn health_of(g: &Inner, now: Instant) -> (Health, Option<String>) {
    match g.state {
        State::Exited => (
            Health::Exited,
            Some(
                g.exit
                    .as_ref()
                    .map_or_else(|| "ffmpeg exited".to_string(), |e| e.reason.clone()),
            ),
        ),
        State::Stopping => (
            Health::Stopping,
            Some(
                g.stopping_reason
                    .clone()
                    .unwrap_or_else(|| "stopping".to_string()),
            ),
        ),
        State::Restarting => (
            Health::Restarting,
            Some(g.restarting.as_ref().map_or_else(
                || "restarting".to_string(),
                |(why, at)| {
                    let left = at.saturating_duration_since(now).as_secs_f64();
                    format!("{why}; next start in {left:.1} s")
                },
            )),
        ),
        State::Starting | State::Running => g.manager.health(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon() -> Daemon {
        let vars = [("WORKDIR".to_string(), "/nonexistent/wd".to_string())];
        Daemon::new(
            Config::from_vars(vars).unwrap(),
            vec!["-i".into(), "x".into()],
        )
    }

    fn block(frame: u64) -> Block {
        let text = format!(
            "frame={frame}\nout_time_us={}\nprogress=continue\n",
            frame * 40_000
        );
        shared::progress::parse_all(&text).remove(0)
    }

    #[test]
    fn series_of_any_length_reaches_back_to_the_first_point() {
        let d = daemon();
        let now = timefmt::now_ms();
        d.push_block(now - 3_600_000, Instant::now(), &block(10));
        d.push_block(now - 1_000, Instant::now(), &block(20));
        // The two blocks, and a point a second between them (no block for an hour).
        for seconds in [u64::MAX, 1 << 63, i64::MAX as u64, u64::MAX / 1000, 7200] {
            let points = d.series(seconds).points;
            assert_eq!(points.len(), 3600, "seconds={seconds}");
            assert_eq!(points[0].t, now - 3_600_000, "seconds={seconds}");
        }
        let recent = d.series(60).points;
        assert!(recent.len() <= 60 && recent.iter().all(|p| p.t >= now - 60_000));
        assert_eq!(recent.last().unwrap().t, now - 1_000);
        assert!(d.series(0).points.is_empty());
    }

    #[test]
    fn a_batch_of_lines_is_pushed_in_order_and_counts_as_output() {
        let d = daemon();
        d.push_lines(5, Instant::now(), []);
        assert_eq!(d.status().check.last_output_age_s, None);
        d.push_lines(5, Instant::now(), ["one", "two"]);
        d.push_line(6, Instant::now(), "three");
        let snap = d.lines(0);
        let got: Vec<(i64, String)> = snap.iter().map(|(t, l)| (t, l.to_string())).collect();
        assert_eq!(
            got,
            [(5, "one".into()), (5, "two".into()), (6, "three".into())]
        );
        assert_eq!(d.status().counters.log_lines, 3);
        assert!(d.status().check.last_output_age_s.is_some());
    }

    #[test]
    fn life_cycle() {
        let d = daemon();
        assert_eq!((d.ffmpeg_pid(), d.ffmpeg_start_ms()), (None, None));
        assert_eq!(d.status().state, State::Starting);
        let start = d.ffmpeg_started(42, Instant::now());
        assert_eq!(
            (d.ffmpeg_pid(), d.ffmpeg_start_ms()),
            (Some(42), Some(start))
        );
        assert_eq!(d.status().state, State::Running);
        assert!(d.next_deadline().is_some());
        assert_eq!(d.poll_manager(Instant::now()).1, None);
        d.begin_stopping("stop requested by SIGTERM".into());
        assert_eq!(
            d.health(),
            (Health::Stopping, Some("stop requested by SIGTERM".into()))
        );
        d.set_exit(ExitInfo {
            code: 0,
            ffmpeg_status: shared::api::FfmpegStatus::Signal(2),
            reason: "stopped on request".into(),
        });
        assert_eq!(
            d.health(),
            (Health::Exited, Some("stopped on request".into()))
        );
        assert_eq!(d.ffmpeg_pid(), Some(42));
    }
}
