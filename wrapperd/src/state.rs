//! The state every task shares: the two rings, the manager, the life cycle and the exit.
//!
//! One `Mutex` guards it, and every holder keeps it for microseconds: readers push a line or a
//! block, the API takes [`Snapshot`]s and formats them after unlocking. This is what lets the
//! output readers never wait on API clients.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use shared::api::{
    Counters, ExitInfo, Health, ProgressInfo, Rates, Series, SeriesPoint, State, Status,
};
use shared::progress::{Block, Progress};
use shared::timefmt;

use crate::config::Config;
use crate::manager::{Manager, Rules};
use crate::ring::{Ring, Snapshot};

/// The current rates at one progress block, for `/series`. 32 bytes (a `None` is stored as NaN)
/// rather than 56 with `Option<f64>`s: one is kept per block held, 100 000 by default.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub t_ms: i64,
    fps: f64,
    speed: f64,
    bitrate_kbps: f64,
}

impl Sample {
    pub fn new(
        t_ms: i64,
        fps: Option<f64>,
        speed: Option<f64>,
        bitrate_kbps: Option<f64>,
    ) -> Sample {
        let pack = |v: Option<f64>| v.unwrap_or(f64::NAN);
        Sample {
            t_ms,
            fps: pack(fps),
            speed: pack(speed),
            bitrate_kbps: pack(bitrate_kbps),
        }
    }

    fn unpack(v: f64) -> Option<f64> {
        (!v.is_nan()).then_some(v)
    }

    pub fn fps(&self) -> Option<f64> {
        Self::unpack(self.fps)
    }

    pub fn speed(&self) -> Option<f64> {
        Self::unpack(self.speed)
    }

    pub fn bitrate_kbps(&self) -> Option<f64> {
        Self::unpack(self.bitrate_kbps)
    }
}

/// Everything behind the lock.
#[derive(Debug)]
pub struct Inner {
    pub lines: Ring,
    pub blocks: Ring,
    /// One per block held in `blocks`, same order.
    pub samples: VecDeque<Sample>,
    pub last_progress: Option<(i64, Progress)>,
    pub manager: Manager,
    pub state: State,
    pub ffmpeg_pid: Option<u32>,
    pub ffmpeg_start_ms: Option<i64>,
    /// Why a stop was asked for, while stopping.
    pub stopping_reason: Option<String>,
    pub exit: Option<ExitInfo>,
}

/// The state of one wrapperd, shared by all its tasks.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    /// The user's ffmpeg arguments, as given (lossily converted for display).
    pub cmd: Vec<String>,
    pub pid: u32,
    pub started: Instant,
    pub started_ms: i64,
    inner: Mutex<Inner>,
    /// Woken on every change of state, health or exit, to rewrite status.json at once.
    pub changed: tokio::sync::Notify,
}

impl Shared {
    pub fn new(config: Config, cmd: Vec<String>) -> Shared {
        let started = Instant::now();
        let manager = Manager::new(Rules::from_config(&config), started, started);
        let inner = Inner {
            lines: Ring::new(config.stdout_buffer_len),
            blocks: Ring::new(config.progress_buffer_len),
            samples: VecDeque::new(),
            last_progress: None,
            manager,
            state: State::Starting,
            ffmpeg_pid: None,
            ffmpeg_start_ms: None,
            stopping_reason: None,
            exit: None,
        };
        Shared {
            config,
            cmd,
            pid: std::process::id(),
            started,
            started_ms: timefmt::now_ms(),
            inner: Mutex::new(inner),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// The lock; a panic elsewhere never makes the state unreadable.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// ffmpeg was spawned at `at` with `pid`. Returns the start's unix time in ms, the one
    /// `/start_time` and `/status` show (status/START_TIME is written from it too).
    pub fn ffmpeg_started(&self, pid: u32, at: Instant) -> i64 {
        let start_ms = timefmt::now_ms();
        let mut g = self.lock();
        g.ffmpeg_pid = Some(pid);
        g.ffmpeg_start_ms = Some(start_ms);
        g.state = State::Running;
        g.manager = Manager::new(Rules::from_config(&self.config), self.started, at);
        drop(g);
        self.changed.notify_one();
        start_ms
    }

    /// One output line arrived.
    pub fn push_line(&self, unix_ms: i64, now: Instant, line: &str) {
        let mut g = self.lock();
        g.lines.push(unix_ms, line);
        g.manager.on_line(now);
    }

    /// One progress block arrived; returns the manager's decisions to log.
    pub fn push_block(&self, unix_ms: i64, now: Instant, block: &Block) -> Vec<String> {
        let mut g = self.lock();
        let g = &mut *g;
        g.blocks.push(unix_ms, &block.text);
        let (rates, notes) = g.manager.on_block(now, &block.progress);
        if g.samples.len() == g.samples.capacity() {
            // Grow to the ring's size at most: a doubling past it would leave up to half unused.
            let cap = (g.samples.len() * 2)
                .max(64)
                .min(self.config.progress_buffer_len.saturating_add(1));
            let more = cap.saturating_sub(g.samples.len()).max(1);
            g.samples.reserve_exact(more);
        }
        g.samples.push_back(Sample::new(
            unix_ms,
            rates.fps,
            rates.speed,
            block.progress.bitrate_kbps,
        ));
        while g.samples.len() > g.blocks.len() {
            g.samples.pop_front();
        }
        g.last_progress = Some((unix_ms, block.progress));
        notes
    }

    pub fn lines(&self, count: usize) -> Snapshot {
        self.lock().lines.snapshot(count)
    }

    pub fn blocks(&self, count: usize) -> Snapshot {
        self.lock().blocks.snapshot(count)
    }

    /// The current rates at each block of the last `seconds`.
    pub fn series(&self, seconds: u64) -> Series {
        let since = timefmt::now_ms().saturating_sub((seconds as i64).saturating_mul(1000));
        let g = self.lock();
        let from = g.samples.partition_point(|s| s.t_ms < since);
        let points = g
            .samples
            .range(from..)
            .map(|s| SeriesPoint {
                t: s.t_ms,
                fps: s.fps(),
                speed: s.speed(),
                bitrate_kbps: s.bitrate_kbps(),
            })
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
        let rates = g.manager.rates();
        let progress = g.last_progress.as_ref().map(|(at, p)| ProgressInfo {
            at: timefmt::rfc3339_ms(*at),
            frame: p.frame,
            fps: p.fps,
            speed: p.speed,
            bitrate_kbps: p.bitrate_kbps,
            total_size: p.total_size,
            out_time_us: p.out_time_us,
            dup_frames: p.dup_frames,
            drop_frames: p.drop_frames,
        });
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
        }
    }

    pub fn set_state(&self, state: State, reason: Option<String>) {
        let mut g = self.lock();
        g.state = state;
        if state == State::Stopping {
            g.stopping_reason = reason;
        }
        drop(g);
        self.changed.notify_one();
    }

    pub fn set_exit(&self, exit: ExitInfo) {
        let mut g = self.lock();
        g.state = State::Exited;
        g.exit = Some(exit);
        drop(g);
        self.changed.notify_one();
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
        State::Starting | State::Running => g.manager.health(now),
    }
}
