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
//! **The window ends now** (SPEC §5 amended): [`RateWindow::at`] gives the rates as they are at
//! any instant, so they fall when blocks stop coming or stop advancing, and are 0 once a whole
//! window has passed without advance. The reference is then the newest block at or before
//! `now − window`; the end of the span is the newest block while it is *current*, i.e. for
//! one block interval after it arrived (the gap between the two newest blocks, at most half the
//! window), and `now − that interval` after that. So between two blocks of a steady encode the
//! rates do not sawtooth (the end is a block, as at the block itself), and in a stall they fall
//! smoothly from the moment the next block is overdue. A block that comes restores the rates
//! measured at it. With a zero window (ffmpeg's own figures) the reported rates are shown
//! until no block has advanced a counter for [`REPORTED_HOLD`], then 0.
//!
//! The checks of the manager judge each block at its arrival ([`RateWindow::push`]); `at`
//! serves `/status`, `/metrics` and `/series`, and costs nothing on the block's path.
//!
//! Pure: time comes in as [`Instant`] arguments.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use shared::progress::Progress;

/// With a zero window: how long ffmpeg's reported figures are shown after the last block that
/// advanced a counter (as health turns `stalled`, SPEC §6); then the rates are 0.
pub const REPORTED_HOLD: Duration = Duration::from_secs(2);

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
    /// With a zero window: the highest `frame` and `out_time_us` seen, to tell an advance.
    peak: (Option<u64>, Option<i64>),
    /// With a zero window: when a block last advanced `frame` or `out_time_us`.
    advanced_at: Option<Instant>,
}

impl RateWindow {
    /// `window == 0`: use ffmpeg's own reported fps and speed.
    pub fn new(window: Duration) -> Self {
        RateWindow {
            window,
            history: VecDeque::new(),
            last: CurrentRates::default(),
            peak: (None, None),
            advanced_at: None,
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
            let frame_up = p.frame.is_some_and(|f| self.peak.0.is_none_or(|m| f > m));
            let time_up = p
                .out_time_us
                .is_some_and(|t| self.peak.1.is_none_or(|m| t > m));
            if frame_up || time_up {
                self.peak = (p.frame.max(self.peak.0), p.out_time_us.max(self.peak.1));
                self.advanced_at = Some(now);
            }
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

    /// The current rates at `now`, with the window ending at `now` (the module doc): the same as
    /// at the newest block while it is current, falling after, 0 once a whole window passed
    /// without advance.
    pub fn at(&self, now: Instant) -> CurrentRates {
        if self.window.is_zero() {
            return match self.advanced_at {
                Some(t) if now.saturating_duration_since(t) > REPORTED_HOLD => zeroed(self.last),
                _ => self.last,
            };
        }
        let Some(newest) = self.history.back() else {
            return self.last;
        };
        if now <= newest.at {
            return self.last;
        }
        let len = self.history.len();
        if len < 2 {
            // Nothing measured since a start or a counter reset: what was measured last, until
            // a whole window passed without a block.
            return if now.saturating_duration_since(newest.at) >= self.window {
                zeroed(self.last)
            } else {
                self.last
            };
        }
        let gap = newest
            .at
            .saturating_duration_since(self.history[len - 2].at);
        let hold = gap.min(self.window / 2);
        let end = now
            .checked_sub(hold)
            .map_or(newest.at, |e| e.max(newest.at));
        let edge = now.checked_sub(self.window);
        // Never above the rate at the newest block: as the window's edge passes an older block,
        // the reference moves and uneven block times could lift the figure a little, but
        // nothing has advanced since, so it may only fall.
        let at_most = |v: Option<f64>, cap: Option<f64>| match (v, cap) {
            (Some(v), Some(cap)) => Some(v.min(cap)),
            (v, _) => v,
        };
        CurrentRates {
            fps: at_most(
                self.rate_to(newest, end, edge, |x| x.frame.map(|f| f as f64)),
                self.last.fps,
            ),
            speed: at_most(
                self.rate_to(newest, end, edge, |x| x.out_time_us.map(|t| t as f64 / 1e6)),
                self.last.speed,
            ),
        }
    }

    /// Δvalue / Δwall-time from the reference (the newest held block at or before `edge` that
    /// has the value, else the oldest that has it) to `newest`'s value at `end`.
    fn rate_to(
        &self,
        newest: &HeldBlock,
        end: Instant,
        edge: Option<Instant>,
        value: impl Fn(&HeldBlock) -> Option<f64>,
    ) -> Option<f64> {
        let v1 = value(newest)?;
        let before = edge.map_or(0, |e| self.history.partition_point(|x| x.at <= e));
        let (t0, v0) = self
            .history
            .range(..before)
            .rev()
            .chain(self.history.range(before..))
            .find_map(|x| value(x).map(|v| (x.at, v)))?;
        if t0 >= newest.at {
            // Only the newest block has the value: not measurable, until a whole window passed
            // without another block.
            return edge.is_some_and(|e| newest.at <= e).then_some(0.0);
        }
        let dt = end.checked_duration_since(t0)?.as_secs_f64();
        (dt > 0.0).then(|| (v1 - v0) / dt)
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

/// Known rates as 0, unknown ones still unknown.
fn zeroed(r: CurrentRates) -> CurrentRates {
    CurrentRates {
        fps: r.fps.map(|_| 0.0),
        speed: r.speed.map(|_| 0.0),
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
    fn after_the_last_of_uneven_blocks_the_rates_never_rise() {
        // 25 fps, a block every 0.2 s but each a little early or late (a real encoder's), so
        // the window's edge passing an older block would lift the figure by a hair.
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(1.0));
        let mut last_at = 0.0;
        for i in 0..=20u64 {
            let jitter = [0.0, 0.03, -0.02, 0.01][(i % 4) as usize];
            last_at = i as f64 * 0.2 + jitter;
            w.push(
                t0 + secs(last_at),
                &block(Some(i * 5), Some(i as f64 * 0.2)),
            );
        }
        let mut before = w.last;
        let mut k = 1;
        loop {
            let r = w.at(t0 + secs(last_at + k as f64 * 0.01));
            for (now, was) in [(r.fps, before.fps), (r.speed, before.speed)] {
                assert!(
                    now.unwrap() <= was.unwrap() + 1e-12,
                    "{k}: {r:?} after {before:?}"
                );
            }
            if r.fps == Some(0.0) {
                break;
            }
            before = r;
            k += 1;
            assert!(k < 300, "never 0: {r:?}");
        }
    }

    /// A steady encode at 24 fps, speed 1, a block every 0.5 s from `t0` to `until` s.
    fn steady(w: &mut RateWindow, t0: Instant, until: f64) {
        let mut i = 0u64;
        while i as f64 * 0.5 <= until + 1e-9 {
            let s = i as f64 * 0.5;
            w.push(t0 + secs(s), &block(Some(i * 12), Some(s)));
            i += 1;
        }
    }

    #[test]
    fn between_the_blocks_of_a_steady_encode_the_rates_hold() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(2.0));
        let mut frame = 0u64;
        for i in 0..=40u64 {
            let at = i as f64 * 0.5;
            let r = w.push(t0 + secs(at), &block(Some(frame), Some(at)));
            if i >= 4 {
                assert!(close(r.fps, 25.0) && close(r.speed, 1.0), "{r:?}");
                for k in 1..10 {
                    let between = w.at(t0 + secs(at + k as f64 * 0.05));
                    assert!(close(between.fps, 25.0), "{at} +{k}: {between:?}");
                    assert!(close(between.speed, 1.0), "{at} +{k}: {between:?}");
                }
            }
            frame += 25 / 2 + (i % 2);
        }
    }

    #[test]
    fn silence_makes_the_rates_fall_to_0_within_a_window() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(2.0));
        steady(&mut w, t0, 20.0);
        let last = w.at(t0 + secs(20.0));
        assert!(close(last.fps, 24.0), "{last:?}");
        // Current for one block interval, then falling, never rising, 0 after the window.
        assert_eq!(w.at(t0 + secs(20.5)), last);
        let mut before = last;
        for k in 1..=60 {
            let r = w.at(t0 + secs(20.5 + k as f64 * 0.05));
            assert!(
                r.fps.unwrap() <= before.fps.unwrap() + 1e-9,
                "{k}: {r:?} > {before:?}"
            );
            assert!(
                r.speed.unwrap() <= before.speed.unwrap() + 1e-9,
                "{k}: {r:?}"
            );
            before = r;
        }
        assert!(w.at(t0 + secs(21.5)).fps.unwrap() < 20.0);
        let zero = CurrentRates {
            fps: Some(0.0),
            speed: Some(0.0),
        };
        assert_eq!(w.at(t0 + secs(22.0)), zero);
        assert_eq!(w.at(t0 + secs(3600.0)), zero);
        // The block that ends the silence is measured over it.
        let r = w.push(t0 + secs(30.0), &block(Some(490), Some(21.0)));
        assert!(close(r.fps, 1.0) && close(r.speed, 0.1), "{r:?}");
    }

    #[test]
    fn frozen_blocks_make_the_rates_fall_to_0_within_a_window() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(2.0));
        steady(&mut w, t0, 10.0);
        let frozen = block(Some(240), Some(10.0));
        let mut before = w.at(t0 + secs(10.0)).fps.unwrap();
        for k in 1..=8 {
            let at = t0 + secs(10.0 + k as f64 * 0.5);
            let r = w.push(at, &frozen);
            assert_eq!(w.at(at), r);
            assert!(r.fps.unwrap() < before || before == 0.0, "{k}: {r:?}");
            before = r.fps.unwrap();
            let mid = w.at(at + secs(0.25));
            assert!(mid.fps.unwrap() <= before + 1e-9, "{mid:?}");
        }
        assert_eq!(w.at(t0 + secs(12.0)).fps, Some(0.0));
        assert_eq!(w.at(t0 + secs(12.0)).speed, Some(0.0));
    }

    #[test]
    fn not_measurable_stays_unknown_until_a_window_of_silence() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(secs(2.0));
        assert_eq!(w.at(t0), CurrentRates::default());
        w.push(t0, &block(None, Some(0.0)));
        assert_eq!(w.at(t0 + secs(1.0)), CurrentRates::default());
        assert_eq!(w.at(t0 + secs(5.0)), CurrentRates::default());
        // Audio-only: the fps stays unknown while the speed falls.
        w.push(t0 + secs(6.0), &block(None, Some(6.0)));
        assert_eq!(w.at(t0 + secs(6.1)).fps, None);
        assert_eq!(w.at(t0 + secs(9.0)).speed, Some(0.0));
        // Only the newest block has an out_time: no speed until a window without blocks.
        let mut w = RateWindow::new(secs(2.0));
        w.push(t0, &block(Some(0), None));
        w.push(t0 + secs(0.5), &block(Some(12), Some(0.5)));
        assert_eq!(w.at(t0 + secs(1.5)).speed, None);
        assert_eq!(w.at(t0 + secs(2.5)).speed, Some(0.0));
    }

    #[test]
    fn reported_figures_fall_to_0_once_blocks_stop_advancing() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(Duration::ZERO);
        let mut p = block(Some(10), Some(1.0));
        p.fps = Some(24.5);
        p.speed = Some(0.98);
        w.push(t0, &p);
        w.push(t0 + secs(1.5), &p);
        assert_eq!(w.at(t0 + secs(1.9)).fps, Some(24.5));
        assert_eq!(
            w.at(t0 + secs(2.1)),
            CurrentRates {
                fps: Some(0.0),
                speed: Some(0.0)
            }
        );
        p.frame = Some(11);
        w.push(t0 + secs(3.0), &p);
        assert_eq!(w.at(t0 + secs(4.0)).speed, Some(0.98));
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
