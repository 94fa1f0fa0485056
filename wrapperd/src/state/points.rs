//! The `/series` points, one per progress block held (100 000 by default): stored compactly
//! and exactly, since they are a part of the memory goal (issue 10: RSS with both rings full
//! within 1.2 × the text held + 4 MiB).

use std::collections::VecDeque;

use shared::api::SeriesPoint;

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

/// The `/series` points, one per block held, oldest first, in 24 bytes each instead of 32 and
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
