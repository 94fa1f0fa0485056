//! STUB — to be replaced: the manager's rules (SPEC §5) as pure functions of time and progress.

use std::time::{Duration, Instant};

use shared::api::{Check, Health};
use shared::progress::Progress;

use crate::config::Config;
use crate::rates::CurrentRates;

/// The thresholds and delays of SPEC §5.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub disabled: bool,
    pub manager_start_delay: Duration,
    pub check_start_delay: Duration,
    pub min_speed: f64,
    pub delta_speed: f64,
    pub delta_fps: f64,
    pub min_base_fps: f64,
    pub max_error_time: Duration,
    pub max_stuck_time: Duration,
    pub rate_window: Duration,
}

impl Rules {
    pub fn from_config(c: &Config) -> Rules {
        Rules {
            disabled: c.encoding_disable_check,
            manager_start_delay: c.manager_start_delay,
            check_start_delay: c.encoding_check_start_delay,
            min_speed: c.encoding_min_speed,
            delta_speed: c.encoding_delta_speed,
            delta_fps: c.encoding_delta_fps,
            min_base_fps: c.encoding_min_base_fps,
            max_error_time: c.encoding_max_error_time,
            max_stuck_time: c.encoding_max_stdout_stuck_time,
            rate_window: c.encoding_rate_window,
        }
    }
}

/// Why the manager stops an encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Failing,
    Stalled,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Failing => "failing",
            StopReason::Stalled => "stalled",
        }
    }
}

/// A stop the manager decided, with a human sentence giving the last values seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    pub reason: StopReason,
    pub message: String,
}

#[derive(Debug)]
pub struct Manager {
    rules: Rules,
}

impl Manager {
    /// `wrapperd_start`: when wrapperd started; `ffmpeg_start`: when ffmpeg was spawned.
    pub fn new(rules: Rules, _wrapperd_start: Instant, _ffmpeg_start: Instant) -> Manager {
        Manager { rules }
    }
    pub fn rules(&self) -> &Rules {
        &self.rules
    }
    /// An output line (stdout/stderr) arrived at `now`.
    pub fn on_line(&mut self, _now: Instant) {}
    /// A progress block arrived at `now`. Returns its current rates and the decisions to log.
    pub fn on_block(&mut self, _now: Instant, p: &Progress) -> (CurrentRates, Vec<String>) {
        (
            CurrentRates {
                fps: p.fps,
                speed: p.speed,
            },
            Vec::new(),
        )
    }
    /// Checks the deadlines at `now`; returns the decisions to log.
    pub fn poll(&mut self, _now: Instant) -> Vec<String> {
        Vec::new()
    }
    /// When `poll` must be called next at the latest, if any deadline is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        None
    }
    /// The stop decided, once decided (it stays decided).
    pub fn stop(&self) -> Option<&Stop> {
        None
    }
    /// The health word and, when not ok/warming up, the reason.
    pub fn health(&self, _now: Instant) -> (Health, Option<String>) {
        (Health::WarmingUp, None)
    }
    /// The newest current rates.
    pub fn rates(&self) -> CurrentRates {
        CurrentRates::default()
    }
    /// The `check` object of /status.
    pub fn check(&self, _now: Instant) -> Check {
        Check::default()
    }
}
