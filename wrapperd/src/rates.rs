//! Current fps and speed over the last `ENCODING_RATE_WINDOW` seconds (SPEC §5).
//!
//! ffmpeg's own `fps=` and `speed=` are averages since the start of the encode, so after an hour
//! they hardly move when the encode slows down. The current rates are measured instead from the
//! progress blocks themselves: current fps = Δ`frame` / Δwall-time and current speed =
//! Δ`out_time_us` / Δwall-time, between the newest block and a reference block.
//!
//! The reference is the newest block that arrived at or before `now − window` when there is one
//! (so the span is at least the window once enough history exists), else the oldest block held.
//! Each quantity uses the oldest held block that has it (a block with `out_time_us=N/A` or the
//! "no time yet" sentinel does not spoil the speed). A rate is `None` until two blocks carrying it
//! span a positive wall time, and fps is `None` for blocks without `frame` (audio-only,
//! copy-only). If a counter goes backwards (never seen from ffmpeg, but a counter reset would do
//! it), the history restarts at that block and the previous rates are kept for it.
//!
//! With a zero window the rates are ffmpeg's own reported `fps` and `speed` of each block.
//!
//! Pure: time comes in as [`Instant`] arguments.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use shared::progress::Progress;

/// Current rates; `None` until measurable.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CurrentRates {
    /// Frames per second of wall time.
    pub fps: Option<f64>,
    /// Seconds of output per second of wall time.
    pub speed: Option<f64>,
}

/// What the window keeps of one block: its arrival and its two counters.
#[derive(Debug, Clone, Copy)]
struct HeldBlock {
    /// When the block arrived.
    at: Instant,
    /// Its `frame`, if it had one.
    frame: Option<u64>,
    /// Its `out_time_us`, if it had a valid one.
    out_time_us: Option<i64>,
}

/// The blocks of the last `window`, and the rates they give.
#[derive(Debug)]
pub struct RateWindow {
    /// `ENCODING_RATE_WINDOW`; zero means ffmpeg's own figures.
    window: Duration,
    /// The blocks needed: from the newest at or before `now − window` to the newest.
    history: VecDeque<HeldBlock>,
    /// The rates given by the newest block (all `None` before the first).
    last: CurrentRates,
}

impl RateWindow {
    /// `window == 0`: use ffmpeg's own reported fps and speed.
    pub fn new(window: Duration) -> Self {
        RateWindow {
            window,
            history: VecDeque::new(),
            last: CurrentRates::default(),
        }
    }

    /// Whether the rates are measured: two blocks held span a positive time (always with a zero
    /// window, where ffmpeg's figures are used). A block that restarts the history after a counter
    /// went backwards is not measured either.
    pub fn is_measuring(&self) -> bool {
        if self.window.is_zero() {
            return true;
        }
        match (self.history.front(), self.history.back()) {
            (Some(a), Some(b)) => b.at > a.at,
            _ => false,
        }
    }

    /// Takes the block that arrived at `now`; returns the current rates at it.
    pub fn push(&mut self, now: Instant, p: &Progress) -> CurrentRates {
        if self.window.is_zero() {
            self.last = CurrentRates {
                fps: p.fps,
                speed: p.speed,
            };
            return self.last;
        }
        let s = HeldBlock {
            at: now,
            frame: p.frame,
            out_time_us: p.out_time_us,
        };
        if self.went_backwards(&s) {
            self.history.clear();
            self.history.push_back(s);
            return self.last;
        }
        self.history.push_back(s);
        // Drop what is older than needed: keep the newest block at or before the window edge.
        if let Some(edge) = now.checked_sub(self.window) {
            while self.history.len() >= 2 && self.history[1].at <= edge {
                self.history.pop_front();
            }
        }
        // A burst of blocks (thousands within one window) grows the history; give that memory
        // back once the window has moved past it, instead of keeping the peak for ever.
        if self.history.capacity() > 256 && self.history.len() * 4 < self.history.capacity() {
            self.history.shrink_to(self.history.len() * 2);
        }
        self.last = CurrentRates {
            fps: self.rate(&s, |x| x.frame.map(|f| f as f64)),
            speed: self.rate(&s, |x| x.out_time_us.map(|t| t as f64 / 1e6)),
        };
        self.last
    }

    /// Whether `s` has a counter below the newest value held.
    fn went_backwards(&self, s: &HeldBlock) -> bool {
        let newest_frame = self.history.iter().rev().find_map(|x| x.frame);
        let newest_time = self.history.iter().rev().find_map(|x| x.out_time_us);
        matches!((newest_frame, s.frame), (Some(a), Some(b)) if b < a)
            || matches!((newest_time, s.out_time_us), (Some(a), Some(b)) if b < a)
    }

    /// Δvalue / Δwall-time from the oldest held sample that has the value to `newest`.
    fn rate(&self, newest: &HeldBlock, value: impl Fn(&HeldBlock) -> Option<f64>) -> Option<f64> {
        let v1 = value(newest)?;
        let (t0, v0) = self
            .history
            .iter()
            .find_map(|x| value(x).map(|v| (x.at, v)))?;
        let dt = newest.at.checked_duration_since(t0)?.as_secs_f64();
        (dt > 0.0).then(|| (v1 - v0) / dt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(frame: Option<u64>, out_s: Option<f64>) -> Progress {
        Progress {
            frame,
            out_time_us: out_s.map(|s| (s * 1e6) as i64),
            fps: Some(99.0),
            speed: Some(9.0),
            ..Progress::default()
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-6)
    }

    #[test]
    fn a_burst_of_blocks_gives_its_memory_back_once_the_window_moves_on() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(10.0));
        for i in 0..20_000u64 {
            w.push(t0 + secs(i as f64 * 1e-5), &block(Some(i), Some(i as f64)));
        }
        assert!(w.history.capacity() >= 20_000);
        for k in 1..=30u64 {
            let f = 20_000 + k * 12;
            w.push(t0 + secs(k as f64 * 0.5), &block(Some(f), Some(f as f64)));
        }
        assert!(w.history.len() <= 22, "{}", w.history.len());
        assert!(w.history.capacity() <= 512, "{}", w.history.capacity());
        assert!(close(w.last.fps, 24.0));
    }

    #[test]
    fn rates_none_until_two_blocks_span_time() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(10.0));
        assert!(!w.is_measuring());
        let r = w.push(t0, &block(Some(0), Some(0.0)));
        assert_eq!(r, CurrentRates::default());
        assert!(!w.is_measuring());
        // Same instant: no positive span yet.
        let r = w.push(t0, &block(Some(5), Some(0.2)));
        assert_eq!(r, CurrentRates::default());
        let r = w.push(t0 + secs(1.0), &block(Some(25), Some(1.0)));
        assert!(close(r.fps, 25.0), "{r:?}");
        assert!(close(r.speed, 1.0), "{r:?}");
        assert_eq!(w.last, r);
        assert!(w.is_measuring());
    }

    #[test]
    fn rates_measured_over_the_window_only() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(10.0));
        // 60 s at 25 fps, speed 1, a block every 0.5 s.
        let mut frame = 0u64;
        let mut out = 0.0;
        for i in 0..=120 {
            w.push(t0 + secs(i as f64 * 0.5), &block(Some(frame), Some(out)));
            frame += 12;
            out += 0.5;
        }
        // Then 20 s at 5 fps, speed 0.2.
        let mut r = CurrentRates::default();
        for i in 1..=40 {
            frame += 2;
            out += 0.1;
            r = w.push(
                t0 + secs(60.0 + i as f64 * 0.5),
                &block(Some(frame), Some(out)),
            );
        }
        assert!(close(r.fps, 4.0), "{r:?}");
        assert!(close(r.speed, 0.2), "{r:?}");
        // The window holds only the blocks needed: ≤ 10 s / 0.5 s + 1.
        assert!(w.history.len() <= 22, "{}", w.history.len());
    }

    #[test]
    fn span_is_at_least_the_window_once_history_exists() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(2.0));
        w.push(t0, &block(Some(0), Some(0.0)));
        w.push(t0 + secs(1.5), &block(Some(150), Some(1.5)));
        // At 3 s: the block at 0 s is dropped only once the one at 1.5 s is at or before the edge.
        let r = w.push(t0 + secs(3.0), &block(Some(200), Some(2.0)));
        assert!(close(r.fps, 200.0 / 3.0), "{r:?}");
        let r = w.push(t0 + secs(3.5), &block(Some(210), Some(2.5)));
        assert!(close(r.fps, 60.0 / 2.0), "{r:?}");
        assert!(close(r.speed, 1.0 / 2.0), "{r:?}");
    }

    #[test]
    fn no_frame_key_gives_no_fps() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(10.0));
        w.push(t0, &block(None, Some(0.0)));
        let r = w.push(t0 + secs(1.0), &block(None, Some(1.0)));
        assert_eq!(r.fps, None);
        assert!(close(r.speed, 1.0));
    }

    #[test]
    fn missing_out_time_at_start_does_not_spoil_speed() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(10.0));
        w.push(t0, &block(Some(0), None));
        w.push(t0 + secs(1.0), &block(Some(25), Some(0.0)));
        let r = w.push(t0 + secs(2.0), &block(Some(50), Some(1.0)));
        assert!(close(r.fps, 25.0));
        assert!(close(r.speed, 1.0));
        // A block without out_time has no speed.
        let r = w.push(t0 + secs(3.0), &block(Some(75), None));
        assert_eq!(r.speed, None);
    }

    #[test]
    fn rate_window_zero_uses_reported_figures() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(Duration::ZERO);
        let mut p = block(Some(10), Some(1.0));
        p.fps = Some(24.5);
        p.speed = Some(0.98);
        let r = w.push(t0, &p);
        assert_eq!(
            r,
            CurrentRates {
                fps: Some(24.5),
                speed: Some(0.98)
            }
        );
        p.fps = None;
        p.speed = None;
        assert_eq!(w.push(t0 + secs(1.0), &p), CurrentRates::default());
    }

    #[test]
    fn counter_going_backwards_restarts_history() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(10.0));
        w.push(t0, &block(Some(1000), Some(40.0)));
        let before = w.push(t0 + secs(1.0), &block(Some(1025), Some(41.0)));
        let r = w.push(t0 + secs(2.0), &block(Some(0), Some(0.0)));
        assert_eq!(r, before);
        let r = w.push(t0 + secs(3.0), &block(Some(25), Some(1.0)));
        assert!(close(r.fps, 25.0) && close(r.speed, 1.0), "{r:?}");
    }
}
