//! The in-memory ring buffers of ffmpeg's output lines and progress blocks (SPEC §4).
//!
//! Memory is the point (issue 10: RSS with both rings full within 1.2 × the text held + 4 MiB).
//! Lines are stored back to back in fixed-size blocks of [`BLOCK_BYTES`], each entry a varint
//! length, a zigzag varint of its time minus the block's first time, and the line's bytes: a
//! 95-byte stats line written in a burst costs 97 bytes, with no `String`, offset or timestamp
//! array per line. Every block is one allocation of the same size that is never grown or shrunk,
//! so a ring that keeps turning over reuses its memory instead of fragmenting the heap: the
//! block that falls off the front is kept as the next one to fill. Only the rare long line that
//! leaves much of a block unused closes it with an exact-size copy, and a line longer than a
//! block gets an allocation of its own.
//!
//! Full blocks are frozen behind an `Arc`: a reader takes a [`Snapshot`] by cloning those `Arc`s
//! and copying only the open block, then walks it after the lock is released. So an API client
//! asking for 100 000 lines holds the lock for microseconds and never holds ffmpeg back.

use std::collections::VecDeque;
use std::sync::Arc;

mod block;

use block::{varint_len, Block};

/// The size of a block's buffer.
const BLOCK_BYTES: usize = 64 * 1024;
/// A block closed with at most this much room left is frozen as it is (the room is wasted);
/// with more, its entries are copied into an exact-size block and the buffer is reused.
const MAX_SLACK: usize = BLOCK_BYTES / 8;

/// A ring of at most `capacity` timestamped lines; the oldest are dropped first.
#[derive(Debug)]
pub struct Ring {
    /// The most lines held.
    capacity: usize,
    /// Full blocks, oldest first; all come before `open`.
    frozen: VecDeque<Arc<Block>>,
    /// The block being filled (no buffer until the first line).
    open: Block,
    /// Lines at the front of the first block (frozen, else open) that are already evicted.
    skip: usize,
    /// Where the first line held starts in the first block (the bytes of the `skip` lines).
    skip_bytes: usize,
    /// An emptied block's buffer, kept for the next block so a turning ring allocates nothing.
    spare: Option<Vec<u8>>,
    /// Lines held.
    len: usize,
    /// Lines ever pushed.
    total: u64,
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        Ring {
            capacity: capacity.max(1),
            frozen: VecDeque::new(),
            open: Block::default(),
            skip: 0,
            skip_bytes: 0,
            spare: None,
            len: 0,
            total: 0,
        }
    }

    /// Lines held now.
    #[cfg_attr(not(test), allow(dead_code))] // the /series points are bounded by the capacity
    pub fn len(&self) -> usize {
        self.len
    }

    /// Lines ever pushed.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn push(&mut self, unix_ms: i64, line: &str) {
        self.push_all(unix_ms, [line]);
    }

    /// Pushes lines that arrived together at `unix_ms` (one read from a pipe); returns how
    /// many. The oldest lines past the capacity are evicted once, after all are stored, so that
    /// whole blocks fall off at once instead of line by line.
    pub fn push_all<'a>(
        &mut self,
        unix_ms: i64,
        lines: impl IntoIterator<Item = &'a str>,
    ) -> usize {
        let mut n = 0;
        for line in lines {
            self.store(unix_ms, line);
            n += 1;
        }
        self.len += n;
        self.total += n as u64;
        if self.len > self.capacity {
            self.evict(self.len - self.capacity);
        }
        n
    }

    /// Stores one line at the end (not yet counted).
    fn store(&mut self, unix_ms: i64, line: &str) {
        let room = self.open.bytes.capacity() - self.open.bytes.len();
        let (need, dt) = self.open.entry(unix_ms, line.len());
        if need <= room {
            return self.open.append_entry(unix_ms, dt, line);
        }
        self.close_open();
        let need = varint_len(line.len() as u64) + 1 + line.len();
        if need > BLOCK_BYTES {
            // Longer than a block: a block of its own, of exactly its size.
            let mut solo = Block {
                bytes: Vec::with_capacity(need),
                ..Block::default()
            };
            solo.append(unix_ms, line);
            self.frozen.push_back(Arc::new(solo));
            return;
        }
        if self.open.bytes.capacity() == 0 {
            self.open.bytes = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(BLOCK_BYTES));
        }
        self.open.append(unix_ms, line);
    }

    /// Freezes the open block, if it holds anything: as it is when it is nearly full, else as an
    /// exact-size copy, keeping the buffer open.
    fn close_open(&mut self) {
        if self.open.lines == 0 {
            return;
        }
        let room = self.open.bytes.capacity() - self.open.bytes.len();
        let full = if room <= MAX_SLACK {
            std::mem::take(&mut self.open)
        } else {
            let copy = self.open.copy_from(0, 0);
            self.open.bytes.clear();
            self.open.lines = 0;
            copy
        };
        self.frozen.push_back(Arc::new(full));
    }

    /// Drops the `n` oldest lines: whole blocks at once, then a part of the next one.
    fn evict(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let first = self.frozen.front().map_or(&self.open, |b| &**b);
            let left = first.lines - self.skip;
            if n < left {
                self.skip_bytes = first.advance(self.skip_bytes, n);
                self.skip += n;
                return;
            }
            n -= left;
            self.skip = 0;
            self.skip_bytes = 0;
            match self.frozen.pop_front() {
                Some(first) => self.keep_spare(first),
                None => {
                    // Only possible when the capacity is smaller than what one block holds.
                    self.open.bytes.clear();
                    self.open.lines = 0;
                }
            }
        }
    }

    /// Keeps an evicted block's buffer for the next block, unless a snapshot still reads it.
    fn keep_spare(&mut self, block: Arc<Block>) {
        if self.spare.is_some() {
            return;
        }
        if let Ok(block) = Arc::try_unwrap(block) {
            if block.bytes.capacity() == BLOCK_BYTES {
                let mut bytes = block.bytes;
                bytes.clear();
                self.spare = Some(bytes);
            }
        }
    }

    /// The blocks in order: the frozen ones, then the open one if it holds anything.
    fn block_count(&self) -> usize {
        self.frozen.len() + usize::from(self.open.lines > 0)
    }

    fn block(&self, i: usize) -> &Block {
        self.frozen.get(i).map_or(&self.open, |b| b)
    }

    /// Lines held in block `i`, and the byte where the first of them starts.
    fn held(&self, i: usize) -> (usize, usize) {
        let b = self.block(i);
        if i == 0 {
            (b.lines - self.skip, self.skip_bytes)
        } else {
            (b.lines, 0)
        }
    }

    /// The newest `count` lines (`0` or more than held: all of them), for reading outside the
    /// lock.
    pub fn snapshot(&self, count: usize) -> Snapshot {
        let take = if count == 0 {
            self.len
        } else {
            count.min(self.len)
        };
        // The first block holding one of the newest `take` lines, and the lines held from it on.
        let blocks = self.block_count();
        let mut first = blocks;
        let mut held = 0;
        while held < take {
            first -= 1;
            held += self.held(first).0;
        }
        let chunks = (first..blocks)
            .map(|i| match self.frozen.get(i) {
                Some(b) => Arc::clone(b),
                None => {
                    let (n, from) = self.held(i);
                    Arc::new(self.open.copy_from(from, self.open.lines - n))
                }
            })
            .collect();
        let start = if first < self.frozen.len() {
            self.held(first).1
        } else {
            0
        };
        Snapshot {
            chunks,
            start,
            skip: held - take,
            len: take,
        }
    }
}

/// A consistent copy of a ring's newest lines, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The blocks holding the lines (the last one a copy of the then open block).
    chunks: Vec<Arc<Block>>,
    /// Where the entries to read start in the first block.
    start: usize,
    /// Entries from `start` to pass over before the first line (all in the first block).
    skip: usize,
    /// Lines in the snapshot.
    len: usize,
}

impl Snapshot {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The lines, oldest first, as `(unix_ms, text)`.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &str)> + '_ {
        let mut chunk = 0;
        let mut at = self
            .chunks
            .first()
            .map_or(0, |c| c.advance(self.start, self.skip));
        std::iter::from_fn(move || loop {
            let c = self.chunks.get(chunk)?;
            if at < c.bytes.len() {
                let (t, text, next) = c.read(at);
                at = next;
                return Some((t, text));
            }
            chunk += 1;
            at = 0;
        })
        .take(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(s: &Snapshot) -> Vec<String> {
        s.iter().map(|(_, l)| l.to_string()).collect()
    }

    /// Every snapshot size of `r` against the newest lines of `model`.
    fn check_all_counts(r: &Ring, model: &VecDeque<(i64, String)>) {
        assert_eq!(r.len(), model.len());
        for count in [
            0,
            1,
            2,
            model.len().saturating_sub(1),
            model.len(),
            model.len() + 7,
        ] {
            let s = r.snapshot(count);
            let want = if count == 0 {
                model.len()
            } else {
                count.min(model.len())
            };
            assert_eq!(s.len(), want, "count {count}");
            let got: Vec<(i64, &str)> = s.iter().collect();
            let exp: Vec<(i64, &str)> = model
                .iter()
                .skip(model.len() - want)
                .map(|(t, l)| (*t, l.as_str()))
                .collect();
            assert_eq!(got, exp, "count {count}");
        }
    }

    #[test]
    fn keeps_the_newest_in_order() {
        let mut r = Ring::new(3);
        for i in 0..10 {
            r.push(i, &format!("l{i}"));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.total(), 10);
        assert_eq!(lines(&r.snapshot(0)), ["l7", "l8", "l9"]);
        assert_eq!(lines(&r.snapshot(2)), ["l8", "l9"]);
        assert_eq!(lines(&r.snapshot(50)), ["l7", "l8", "l9"]);
        let times: Vec<i64> = r.snapshot(0).iter().map(|(t, _)| t).collect();
        assert_eq!(times, [7, 8, 9]);
    }

    #[test]
    fn an_empty_ring_gives_empty_snapshots() {
        let r = Ring::new(10);
        for count in [0, 1, 100] {
            let s = r.snapshot(count);
            assert_eq!(s.len(), 0);
            assert_eq!(s.iter().count(), 0);
        }
        assert!(Snapshot::default().iter().next().is_none());
    }

    #[test]
    fn many_blocks_evict_and_snapshot_across_them() {
        let cap = 10_000;
        let mut r = Ring::new(cap);
        for i in 0..100_000u32 {
            r.push(
                i64::from(i),
                &format!("line number {i} {}", "x".repeat((i % 50) as usize)),
            );
        }
        let s = r.snapshot(0);
        assert_eq!(s.len(), cap);
        for (n, (t, l)) in s.iter().enumerate() {
            let i = 90_000 + n as i64;
            assert_eq!(t, i);
            assert!(l.starts_with(&format!("line number {i} ")), "{l}");
        }
        let last: Vec<(i64, &str)> = s.iter().skip(cap - 2).collect();
        let newest: Vec<(i64, String)> = r
            .snapshot(2)
            .iter()
            .map(|(t, l)| (t, l.to_string()))
            .collect();
        assert_eq!(newest[0].0, last[0].0);
        assert_eq!(newest[1].1, last[1].1);
        let stored: usize = r.frozen.iter().map(|c| c.lines).sum::<usize>() + r.open.lines;
        assert!(
            stored <= cap + BLOCK_BYTES / 14,
            "old blocks are freed: {stored} lines"
        );
    }

    #[test]
    fn a_turning_ring_reuses_its_blocks() {
        // 126-byte lines at one time take 128 bytes each: 512 fill a block exactly.
        let line = "z".repeat(126);
        let mut r = Ring::new(1024);
        for i in 0..1024 {
            r.push(7, &format!("{i:05}{}", &line[5..]));
        }
        assert_eq!(r.frozen.len(), 1, "the first block is exactly full");
        assert_eq!(r.frozen[0].lines, 512);
        assert_eq!(r.frozen[0].bytes.len(), BLOCK_BYTES);
        assert_eq!(r.open.bytes.len(), BLOCK_BYTES);
        // The next line closes the exactly full open block; the one after that evicts the whole
        // first block at once, which becomes the spare.
        let mut model: VecDeque<(i64, String)> = r
            .snapshot(0)
            .iter()
            .map(|(t, l)| (t, l.to_string()))
            .collect();
        let mut buffers = std::collections::HashSet::new();
        for i in 1024..20_000 {
            let l = format!("{i:05}{}", &line[5..]);
            r.push(7, &l);
            model.push_back((7, l));
            model.pop_front();
            buffers.insert(r.open.bytes.as_ptr() as usize);
            if i % 511 == 0 {
                check_all_counts(&r, &model);
            }
        }
        check_all_counts(&r, &model);
        assert!(r.frozen.len() <= 3, "{} blocks", r.frozen.len());
        assert!(
            buffers.len() <= 3,
            "turned through {} buffers",
            buffers.len()
        );
    }

    #[test]
    fn snapshots_keep_evicted_blocks_alive_and_are_unaffected_by_later_pushes() {
        let mut r = Ring::new(5);
        r.push(1, "a");
        let s = r.snapshot(0);
        for i in 0..10 {
            r.push(i, "b");
        }
        assert_eq!(lines(&s), ["a"]);
        let mut r = Ring::new(600);
        for i in 0..600 {
            r.push(i, &"q".repeat(200));
        }
        let s = r.snapshot(0);
        for i in 600..5000 {
            r.push(i, &"r".repeat(200));
        }
        assert_eq!(s.len(), 600);
        assert!(s.iter().all(|(t, l)| t < 600 && l == "q".repeat(200)));
        assert!(r.snapshot(0).iter().all(|(_, l)| l == "r".repeat(200)));
    }

    #[test]
    fn capacity_one_with_long_lines_stays_bounded() {
        let mut r = Ring::new(1);
        let long = "y".repeat(64 * 1024);
        for i in 0..100 {
            r.push(i, &long);
        }
        assert_eq!(lines(&r.snapshot(0)), std::slice::from_ref(&long));
        assert!(r.frozen.len() <= 1);
        for i in 0..100_000 {
            r.push(i, "short");
        }
        assert_eq!(lines(&r.snapshot(3)), ["short"]);
        assert!(r.frozen.len() <= 1 && r.open.bytes.capacity() <= BLOCK_BYTES);
    }

    #[test]
    fn empty_and_64_kib_lines_between_short_ones() {
        let mut r = Ring::new(50);
        let mut model = VecDeque::new();
        let big = "é".repeat(32 * 1024); // 64 KiB of two-byte characters
        for i in 0..400i64 {
            let l = match i % 7 {
                0 => String::new(),
                3 => big.clone(),
                5 => "m".repeat(20_000),
                _ => format!("frame={i}"),
            };
            r.push(i * 40, &l);
            model.push_back((i * 40, l));
            if model.len() > 50 {
                model.pop_front();
            }
            check_all_counts(&r, &model);
        }
        // The long lines never leave a block mostly empty: every standard block is either
        // nearly full or an exact copy.
        for b in &r.frozen {
            let slack = b.bytes.capacity() - b.bytes.len();
            assert!(slack <= MAX_SLACK, "{b:?}");
        }
    }

    #[test]
    fn times_of_any_size_and_order_round_trip() {
        let times = [
            0,
            -1,
            1_700_000_000_000,
            1_699_999_999_000, // the clock went back
            i64::MAX,
            i64::MIN,
            42,
            i64::MIN + 1,
        ];
        let mut r = Ring::new(100);
        for (i, t) in times.iter().enumerate() {
            r.push(*t, &format!("t{i}"));
        }
        let got: Vec<i64> = r.snapshot(0).iter().map(|(t, _)| t).collect();
        assert_eq!(got, times);
    }

    #[test]
    fn unicode_lines_round_trip() {
        let mut r = Ring::new(4);
        r.push(0, "héllo wörld ✓");
        r.push(1, "\u{FFFD}\u{FFFD}");
        assert_eq!(lines(&r.snapshot(0)), ["héllo wörld ✓", "\u{FFFD}\u{FFFD}"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn behaves_like_a_bounded_deque(
            cap in 1usize..300,
            pushes in prop::collection::vec((0i64..5_000, 0usize..3, 0usize..70_000), 1..400),
        ) {
            let mut r = Ring::new(cap);
            let mut model = VecDeque::new();
            let mut t = 1_700_000_000_000i64;
            for (i, &(dt, kind, long)) in pushes.iter().enumerate() {
                t += dt - 100;
                let l = match kind {
                    0 => format!("line {i}"),
                    1 => "x".repeat(long % 300),
                    _ => "y".repeat(long),
                };
                r.push(t, &l);
                model.push_back((t, l));
                if model.len() > cap {
                    model.pop_front();
                }
            }
            check_all_counts(&r, &model);
            prop_assert_eq!(r.total(), pushes.len() as u64);
        }
    }
}
