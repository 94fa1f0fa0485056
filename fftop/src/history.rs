//! One target's rate history: the points behind its sparkline and its detail charts.
//!
//! Points come from wrapperd's `/series` (or, for a wrapperd without it, from fftop's own polls).
//! Time a target was down is never filled with zeros: [`History::mark_gap`] breaks the line at the
//! next point, and stretches without points stay empty in both the sparkline buckets and the chart
//! segments. Times are Unix milliseconds as wrapperd reports them; "now" is the later of fftop's
//! clock and the newest point, so a remote clock slightly ahead never pushes data off the chart.

use std::collections::VecDeque;

use shared::api::SeriesPoint;

/// How many points one target keeps at most, whatever their times (a bound on memory).
const MAX_POINTS: usize = 20_000;

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t: i64,
    pub fps: Option<f64>,
    pub speed: Option<f64>,
    pub bitrate_kbps: Option<f64>,
    /// The target was down (or fftop lost it) between the previous point and this one.
    pub gap_before: bool,
}

/// The points of one target, oldest first, times strictly increasing.
#[derive(Debug, Clone)]
pub struct History {
    points: VecDeque<Point>,
    keep_ms: i64,
    gap_pending: bool,
}

impl History {
    /// A history keeping `keep_ms` milliseconds behind its newest point.
    pub fn new(keep_ms: i64) -> Self {
        History {
            points: VecDeque::new(),
            keep_ms,
            gap_pending: false,
        }
    }

    pub fn points(&self) -> impl DoubleEndedIterator<Item = &Point> + ExactSizeIterator {
        self.points.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn last_t(&self) -> Option<i64> {
        self.points.back().map(|p| p.t)
    }

    /// The target went away: the next point starts a new line.
    pub fn mark_gap(&mut self) {
        if !self.points.is_empty() {
            self.gap_pending = true;
        }
    }

    /// Appends the points newer than the newest held; returns whether any was added.
    pub fn extend(&mut self, new: impl IntoIterator<Item = SeriesPoint>) -> bool {
        let mut added = false;
        for p in new {
            if self.last_t().is_some_and(|last| p.t <= last) {
                continue;
            }
            self.points.push_back(Point {
                t: p.t,
                fps: p.fps.filter(|v| v.is_finite()),
                speed: p.speed.filter(|v| v.is_finite()),
                bitrate_kbps: p.bitrate_kbps.filter(|v| v.is_finite()),
                gap_before: std::mem::take(&mut self.gap_pending),
            });
            added = true;
        }
        if let Some(last) = self.last_t() {
            while self
                .points
                .front()
                .is_some_and(|p| p.t < last - self.keep_ms)
                || self.points.len() > MAX_POINTS
            {
                self.points.pop_front();
            }
        }
        added
    }

    /// The reference "now" for drawing: fftop's clock, or the newest point if that is later.
    pub fn now(&self, now_ms: i64) -> i64 {
        self.last_t().map_or(now_ms, |t| t.max(now_ms))
    }

    /// `n` buckets of `width_ms` each, the last one ending now: the mean of `f` over each
    /// bucket's points, `None` where the bucket holds no value (a gap).
    pub fn buckets(
        &self,
        now_ms: i64,
        width_ms: i64,
        n: usize,
        f: impl Fn(&Point) -> Option<f64>,
    ) -> Vec<Option<f64>> {
        if n == 0 || width_ms <= 0 {
            return vec![None; n];
        }
        let mut sums = vec![(0.0_f64, 0u32); n];
        let now = self.now(now_ms);
        let start = now - width_ms * n as i64;
        for p in self.points.iter().rev() {
            if p.t <= start {
                break;
            }
            let i = ((p.t - start - 1) / width_ms) as usize;
            if let (Some(slot), Some(v)) = (sums.get_mut(i), f(p)) {
                slot.0 += v;
                slot.1 += 1;
            }
        }
        sums.into_iter()
            .map(|(sum, k)| (k > 0).then(|| sum / k as f64))
            .collect()
    }

    /// The points of the last `window_ms` as chart lines, x in seconds before now (negative):
    /// a new line starts after a gap mark, a missing value, or a pause longer than `max_gap_ms`.
    pub fn segments(
        &self,
        now_ms: i64,
        window_ms: i64,
        max_gap_ms: i64,
        f: impl Fn(&Point) -> Option<f64>,
    ) -> Vec<Vec<(f64, f64)>> {
        let now = self.now(now_ms);
        let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut current: Vec<(f64, f64)> = Vec::new();
        let mut prev_t: Option<i64> = None;
        for p in self.points.iter().filter(|p| p.t >= now - window_ms) {
            let broken = p.gap_before || prev_t.is_some_and(|t| p.t - t > max_gap_ms);
            if broken && !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            match f(p) {
                Some(v) => current.push(((p.t - now) as f64 / 1000.0, v)),
                None if !current.is_empty() => out.push(std::mem::take(&mut current)),
                None => {}
            }
            prev_t = Some(p.t);
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }
}

/// A one-line sparkline: `▁`..`█` scaled to the largest value, a space for a missing value, so a
/// gap stays visibly different from a zero (which is `▁`).
pub fn sparkline(values: &[Option<f64>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().flatten().fold(0.0_f64, |m, v| m.max(*v));
    values
        .iter()
        .map(|v| match v {
            None => ' ',
            Some(v) if max <= 0.0 || *v <= 0.0 => BARS[0],
            Some(v) => BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(t: i64, fps: f64) -> SeriesPoint {
        SeriesPoint {
            t,
            fps: Some(fps),
            speed: Some(1.0),
            bitrate_kbps: None,
        }
    }

    #[test]
    fn extend_keeps_only_newer_points_and_prunes() {
        let mut h = History::new(10_000);
        assert!(h.extend([pt(1_000, 1.0), pt(2_000, 2.0)]));
        assert!(!h.extend([pt(1_500, 9.0), pt(2_000, 9.0)]));
        assert!(h.extend([pt(15_000, 3.0)]));
        let ts: Vec<i64> = h.points().map(|p| p.t).collect();
        assert_eq!(ts, vec![15_000]);
    }

    #[test]
    fn gap_splits_segments_and_buckets_stay_empty() {
        let mut h = History::new(300_000);
        h.extend((0..5).map(|i| pt(100_000 + i * 500, 25.0)));
        h.mark_gap();
        h.extend((0..5).map(|i| pt(110_000 + i * 500, 20.0)));
        let segs = h.segments(112_000, 60_000, 5_000, |p| p.fps);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].len(), 5);
        assert!(segs[1].iter().all(|&(x, y)| x <= 0.0 && y == 20.0));
        // A marked gap breaks the line even when the pause is short.
        let mut h2 = History::new(300_000);
        h2.extend([pt(1_000, 1.0)]);
        h2.mark_gap();
        h2.extend([pt(1_500, 1.0)]);
        assert_eq!(h2.segments(2_000, 60_000, 5_000, |p| p.fps).len(), 2);

        let b = h.buckets(112_000, 1_000, 12, |p| p.fps);
        assert_eq!(b.len(), 12);
        assert_eq!(b[0], Some(25.0)); // 100 000 < t <= 101 000
        assert!(b[3..9].iter().all(Option::is_none), "{b:?}");
        assert_eq!(b[10], Some(20.0));
    }

    #[test]
    fn sparkline_shows_gaps_as_blank_and_zero_as_lowest_bar() {
        assert_eq!(sparkline(&[Some(0.0), None, Some(10.0), Some(5.0)]), "▁ █▅");
        assert_eq!(sparkline(&[None, None]), "  ");
    }
}
