//! STUB — to be replaced: current fps and speed over the last ENCODING_RATE_WINDOW seconds.

use std::time::{Duration, Instant};

use shared::progress::Progress;

/// Current rates; `None` until measurable.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CurrentRates {
    pub fps: Option<f64>,
    pub speed: Option<f64>,
}

#[derive(Debug)]
pub struct RateWindow {
    window: Duration,
}

impl RateWindow {
    /// `window == 0`: use ffmpeg's own reported fps and speed.
    pub fn new(window: Duration) -> Self {
        RateWindow { window }
    }
    pub fn window(&self) -> Duration {
        self.window
    }
    /// Takes the block that arrived at `now`; returns the current rates at it.
    pub fn push(&mut self, _now: Instant, p: &Progress) -> CurrentRates {
        CurrentRates {
            fps: p.fps,
            speed: p.speed,
        }
    }
}
