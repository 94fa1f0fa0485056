//! The `/series` points, one per progress block, and one a second while no block arrives, at
//! most `PROGRESS_BUFFER_LEN` of them (100 000 by default): stored compactly and exactly, since
//! they are a part of the memory goal (issue 10: RSS with both rings full within 1.2 × the text
//! held + 4 MiB).
//!
//! **Points while no block arrives** (SPEC §5 amended): so that a graph drops to 0 in a stall
//! instead of freezing at the last value, [`Points::fill`] adds a point every [`FILL_EVERY_MS`]
//! after the newest one, with the current rates at its time (falling, `crate::rates`) and no
//! bitrate. It is called lazily, with what is known at the time: before a block is stored (up
//! to that block's arrival) and when `/series` is read (up to now), in each case only for
//! times at least [`FILL_MARGIN_MS`] old, so a block read just before does not come after a
//! point already given out. A steady encode (a block every 0.5 s) costs one comparison a block.
//! A long stall nobody looked at is filled in one go at its end, at most `PROGRESS_BUFFER_LEN`
//! points, the newest ones.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use shared::api::SeriesPoint;

use crate::rates::CurrentRates;

/// While no block arrives, a point this often (ms).
pub(super) const FILL_EVERY_MS: i64 = 1000;
/// Points are filled only for times at least this old (ms).
pub(super) const FILL_MARGIN_MS: i64 = 250;

/// The current rates at one progress block, for `/series` (a `None` is NaN), as [`Points`]
/// takes and gives them back.
#[derive(Debug, Clone, Copy)]
pub(super) struct RatePoint {
    /// When the block arrived, Unix milliseconds.
    t_ms: i64,
    /// The current fps at the block, NaN when unknown.
    fps: f64,
    /// The current speed at the block, NaN when unknown.
    speed: f64,
    /// The block's `bitrate`, NaN when unknown.
    bitrate_kbps: f64,
}

impl RatePoint {
    pub(super) fn new(
        t_ms: i64,
        fps: Option<f64>,
        speed: Option<f64>,
        bitrate_kbps: Option<f64>,
    ) -> RatePoint {
        let pack = |v: Option<f64>| v.unwrap_or(f64::NAN);
        RatePoint {
            t_ms,
            fps: pack(fps),
            speed: pack(speed),
            bitrate_kbps: pack(bitrate_kbps),
        }
    }

    fn unpack(v: f64) -> Option<f64> {
        (!v.is_nan()).then_some(v)
    }

    /// As `/series` gives it.
    pub(super) fn to_series_point(self) -> SeriesPoint {
        SeriesPoint {
            t: self.t_ms,
            fps: Self::unpack(self.fps),
            speed: Self::unpack(self.speed),
            bitrate_kbps: Self::unpack(self.bitrate_kbps),
        }
    }
}

/// Points per chunk of [`Points`].
const CHUNK: usize = 1024;
/// In [`Chunk::t_off`] and [`Chunk::kbps`]: the value is in the chunk's exceptions.
const ODD: u32 = u32::MAX;
/// In [`Chunk::kbps`]: no bitrate.
const NO_KBPS: u32 = u32::MAX - 1;

/// The `/series` points, oldest first, in 24 bytes each instead of 32 and
/// without a doubled array's slack (100 000 by default, so this is a part of the memory goal).
/// Exact: what goes in comes out bit for bit, so `/series` prints the same decimals.
///
/// Points are kept in chunks of [`CHUNK`], each column an array allocated at its full size once,
/// so the store grows and shrinks by whole chunks. A time is kept as a `u32` offset from its
/// chunk's first time and a bitrate as tenths of kbit/s (ffmpeg prints one decimal) when that
/// gives back the same `f64`; the rare value that does not fit (a clock set back, a bitrate with
/// more decimals) is kept beside, in the chunk's exceptions.
#[derive(Debug, Default)]
pub(super) struct Points {
    /// Full chunks, then the one being filled.
    chunks: VecDeque<Chunk>,
    /// Points at the front of the first chunk already dropped.
    skip: usize,
    /// Points held.
    len: usize,
}

/// [`CHUNK`] points at most, column by column.
#[derive(Debug)]
struct Chunk {
    /// The chunk's first time, Unix milliseconds.
    base_ms: i64,
    /// Each point's time minus `base_ms`, or [`ODD`] (then in `odd_t`).
    t_off: Vec<u32>,
    /// Each point's fps, NaN when unknown.
    fps: Vec<f64>,
    /// Each point's speed, NaN when unknown.
    speed: Vec<f64>,
    /// Each point's bitrate in tenths of kbit/s, [`NO_KBPS`], or [`ODD`] (then in `odd_kbps`).
    kbps: Vec<u32>,
    /// The times that do not fit `t_off`: (index in the chunk, Unix ms).
    odd_t: Vec<(usize, i64)>,
    /// The bitrates that do not fit `kbps`: (index in the chunk, kbit/s).
    odd_kbps: Vec<(usize, f64)>,
}

impl Chunk {
    fn new(base_ms: i64) -> Chunk {
        Chunk {
            base_ms,
            t_off: Vec::with_capacity(CHUNK),
            fps: Vec::with_capacity(CHUNK),
            speed: Vec::with_capacity(CHUNK),
            kbps: Vec::with_capacity(CHUNK),
            odd_t: Vec::new(),
            odd_kbps: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.t_off.len()
    }

    fn push(&mut self, p: RatePoint) {
        let i = self.len();
        let off = p
            .t_ms
            .checked_sub(self.base_ms)
            .and_then(|d| u32::try_from(d).ok());
        match off.filter(|&o| o != ODD) {
            Some(o) => self.t_off.push(o),
            None => {
                self.t_off.push(ODD);
                self.odd_t.push((i, p.t_ms));
            }
        }
        self.fps.push(p.fps);
        self.speed.push(p.speed);
        match kbps_tenths(p.bitrate_kbps) {
            Some(k) => self.kbps.push(k),
            None => {
                self.kbps.push(ODD);
                self.odd_kbps.push((i, p.bitrate_kbps));
            }
        }
    }

    fn t_ms(&self, i: usize) -> i64 {
        match self.t_off[i] {
            ODD => odd(&self.odd_t, i),
            o => self.base_ms + i64::from(o),
        }
    }

    fn get(&self, i: usize) -> RatePoint {
        let bitrate_kbps = match self.kbps[i] {
            NO_KBPS => f64::NAN,
            ODD => odd(&self.odd_kbps, i),
            k => f64::from(k) / 10.0,
        };
        RatePoint {
            t_ms: self.t_ms(i),
            fps: self.fps[i],
            speed: self.speed[i],
            bitrate_kbps,
        }
    }
}

/// The exception kept for index `i`.
fn odd<T: Copy>(list: &[(usize, T)], i: usize) -> T {
    list.iter()
        .find(|(at, _)| *at == i)
        .map(|&(_, v)| v)
        .expect("an exception is kept for every ODD entry")
}

/// `kbps` as tenths of kbit/s, if that gives back exactly the same `f64` (NaN: [`NO_KBPS`]).
fn kbps_tenths(kbps: f64) -> Option<u32> {
    if kbps.is_nan() {
        return Some(NO_KBPS);
    }
    let k = (kbps * 10.0).round();
    if !(0.0..f64::from(NO_KBPS)).contains(&k) {
        return None;
    }
    let k = k as u32;
    ((f64::from(k) / 10.0).to_bits() == kbps.to_bits()).then_some(k)
}

impl Points {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn push_back(&mut self, p: RatePoint) {
        if self.chunks.back().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push_back(Chunk::new(p.t_ms));
        }
        self.chunks.back_mut().expect("a chunk").push(p);
        self.len += 1;
    }

    /// The newest point's time.
    fn last_t_ms(&self) -> Option<i64> {
        let last = self.len.checked_sub(1)?;
        let (c, j) = self.at(last);
        Some(c.t_ms(j))
    }

    /// Adds a point every [`FILL_EVERY_MS`] after the newest one, up to [`FILL_MARGIN_MS`]
    /// before `known_ms` (the module doc), with the rates `rates_at` gives for its time; keeps
    /// at most `cap` points. Nothing before the first point.
    pub(super) fn fill(
        &mut self,
        cap: usize,
        known_ms: i64,
        rates_at: impl Fn(i64) -> CurrentRates,
    ) {
        let Some(last) = self.last_t_ms() else {
            return;
        };
        let upto = known_ms.saturating_sub(FILL_MARGIN_MS);
        let Some(gap) = upto.checked_sub(last).filter(|&g| g >= FILL_EVERY_MS) else {
            return;
        };
        let count = gap / FILL_EVERY_MS;
        let keep = i64::try_from(cap).unwrap_or(i64::MAX);
        for k in (count - keep.min(count) + 1)..=count {
            let t = last + k * FILL_EVERY_MS;
            let r = rates_at(t);
            self.push_back(RatePoint::new(t, r.fps, r.speed, None));
        }
        while self.len > cap {
            self.pop_front();
        }
    }

    pub(super) fn pop_front(&mut self) {
        if self.len == 0 {
            return;
        }
        self.len -= 1;
        self.skip += 1;
        if self.skip == CHUNK || self.len == 0 {
            self.chunks.pop_front();
            self.skip = 0;
        }
    }

    /// Chunk and index in it of the `i`th point held.
    fn at(&self, i: usize) -> (&Chunk, usize) {
        let i = i + self.skip;
        (&self.chunks[i / CHUNK], i % CHUNK)
    }

    /// The first point held whose time is not before `since` (times are in order, but for a
    /// clock set back).
    pub(super) fn first_since(&self, since: i64) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (c, j) = self.at(mid);
            if c.t_ms(j) < since {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The points from the `from`th held on, oldest first.
    pub(super) fn from(&self, from: usize) -> impl Iterator<Item = RatePoint> + '_ {
        (from..self.len).map(|i| {
            let (c, j) = self.at(i);
            c.get(j)
        })
    }
}

/// The instant of Unix time `t_ms`, given that `now_ms` is `now`.
pub(super) fn instant_of(now: Instant, now_ms: i64, t_ms: i64) -> Instant {
    let back = Duration::from_millis(u64::try_from(now_ms.saturating_sub(t_ms)).unwrap_or(0));
    now.checked_sub(back).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: RatePoint, b: RatePoint) -> bool {
        a.t_ms == b.t_ms
            && a.fps.to_bits() == b.fps.to_bits()
            && a.speed.to_bits() == b.speed.to_bits()
            && a.bitrate_kbps.to_bits() == b.bitrate_kbps.to_bits()
    }

    fn point(t_ms: i64, kbps: f64) -> RatePoint {
        RatePoint {
            t_ms,
            fps: t_ms as f64 / 7.0,
            speed: f64::NAN,
            bitrate_kbps: kbps,
        }
    }

    #[test]
    fn every_point_comes_back_bit_for_bit() {
        let odd_ones = [
            point(1_700_000_000_000, 1234.5),
            point(1_700_000_000_001, "2048.3".parse().unwrap()),
            point(1_700_000_000_002, 0.1 + 0.2),
            point(1_700_000_000_003, -0.0),
            point(1_700_000_000_004, -5.5),
            point(1_700_000_000_005, f64::NAN),
            point(1_699_000_000_000, 1e12),
            point(1_800_000_000_000, 0.0),
            point(i64::MIN, f64::INFINITY),
        ];
        let mut pts = Points::default();
        let mut want = Vec::new();
        for i in 0..3000 {
            let p = odd_ones
                .get(i % 700)
                .copied()
                .unwrap_or_else(|| point(1_700_000_000_000 + i as i64 * 40, i as f64 / 10.0));
            pts.push_back(p);
            want.push(p);
        }
        for drop in 0..2500 {
            if drop % 97 == 0 || drop % 1024 < 2 {
                let got: Vec<RatePoint> = pts.from(0).collect();
                assert_eq!(got.len(), want.len() - drop);
                assert!(
                    got.iter().zip(&want[drop..]).all(|(a, b)| same(*a, *b)),
                    "after {drop} dropped"
                );
            }
            pts.pop_front();
        }
        assert_eq!(pts.len(), 500);
    }

    #[test]
    fn a_point_a_second_while_no_block_arrives() {
        let rates = |t: i64| CurrentRates {
            fps: Some(t as f64),
            speed: None,
        };
        let mut pts = Points::default();
        pts.fill(10, 99_000, rates);
        assert_eq!(pts.len(), 0, "nothing before the first point");
        pts.push_back(point(10_000, 100.0));
        // Steady blocks: nothing to fill.
        pts.fill(10, 10_500, rates);
        pts.fill(10, 11_249, rates);
        assert_eq!(pts.len(), 1);
        pts.fill(10, 12_900, rates);
        let got: Vec<(i64, f64, f64)> = pts
            .from(0)
            .map(|p| (p.t_ms, p.fps, p.bitrate_kbps))
            .skip(1)
            .collect();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[0].1), (11_000, 11_000.0));
        assert_eq!((got[1].0, got[1].1), (12_000, 12_000.0));
        assert!(got.iter().all(|p| p.2.is_nan()), "no bitrate");
        // Again: only what is new.
        pts.fill(10, 12_900, rates);
        assert_eq!(pts.len(), 3);
        // A stall far longer than the cap: the newest `cap` points, up to the margin.
        pts.fill(10, 1_000_000_000, rates);
        let times: Vec<i64> = pts.from(0).map(|p| p.t_ms).collect();
        assert_eq!(times.len(), 10);
        assert_eq!(*times.last().unwrap(), 999_999_000);
        assert!(
            times.windows(2).all(|w| w[1] - w[0] == FILL_EVERY_MS),
            "{times:?}"
        );
    }

    #[test]
    fn instants_of_unix_times() {
        let now = Instant::now();
        assert_eq!(instant_of(now, 5_000, 5_000), now);
        assert_eq!(
            instant_of(now, 5_000, 3_500),
            now - Duration::from_millis(1500)
        );
        assert_eq!(instant_of(now, 5_000, 9_000), now);
    }

    #[test]
    fn first_since_finds_the_first_point_not_before() {
        let mut pts = Points::default();
        for i in 0..5000 {
            pts.push_back(point(1000 + i * 10, 100.0));
        }
        for _ in 0..1500 {
            pts.pop_front();
        }
        // Held: times 16000 ..= 50990.
        assert_eq!(pts.first_since(0), 0);
        assert_eq!(pts.first_since(16_000), 0);
        assert_eq!(pts.first_since(16_001), 1);
        assert_eq!(pts.first_since(30_000), 1400);
        assert_eq!(pts.first_since(50_990), 3499);
        assert_eq!(pts.first_since(60_000), 3500);
        while pts.len() > 0 {
            pts.pop_front();
        }
        assert_eq!(pts.first_since(0), 0);
        pts.push_back(point(7, 1.0));
        assert_eq!(pts.from(0).map(|p| p.t_ms).collect::<Vec<_>>(), [7]);
    }
}
