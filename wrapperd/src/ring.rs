//! The in-memory ring buffers of ffmpeg's output lines and progress blocks (SPEC §4).
//!
//! Text is held compactly: lines are appended into chunks of about 64 KiB, with one timestamp
//! and one end offset per line, so a 100-byte line costs about 112 bytes instead of a `String`
//! each. Full chunks are frozen behind an `Arc`: a reader takes a [`Snapshot`] by cloning those
//! `Arc`s and copying only the open chunk, then formats it after the lock is released. So an API
//! client asking for 100 000 lines holds the lock for microseconds and never holds ffmpeg back.

use std::collections::VecDeque;
use std::sync::Arc;

const CHUNK_BYTES: usize = 64 * 1024;
const CHUNK_LINES: usize = 2048;

/// Lines stored back to back, with the arrival time and end offset of each.
#[derive(Debug, Clone, Default)]
struct Chunk {
    text: String,
    ends: Vec<u32>,
    times: Vec<i64>,
}

impl Chunk {
    fn with_capacity() -> Chunk {
        Chunk {
            text: String::with_capacity(CHUNK_BYTES),
            ends: Vec::with_capacity(CHUNK_LINES),
            times: Vec::with_capacity(CHUNK_LINES),
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> (i64, &str) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        (self.times[i], &self.text[start..self.ends[i] as usize])
    }

    fn is_full(&self) -> bool {
        self.text.len() >= CHUNK_BYTES || self.ends.len() >= CHUNK_LINES
    }

    fn frozen(mut self) -> Arc<Chunk> {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.times.shrink_to_fit();
        Arc::new(self)
    }
}

/// A ring of at most `capacity` timestamped lines; the oldest are dropped first.
#[derive(Debug)]
pub struct Ring {
    capacity: usize,
    frozen: VecDeque<Arc<Chunk>>,
    open: Chunk,
    /// Lines at the front of the first chunk (frozen, else open) that are already evicted.
    skip: usize,
    len: usize,
    total: u64,
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        Ring {
            capacity: capacity.max(1),
            frozen: VecDeque::new(),
            open: Chunk::default(),
            skip: 0,
            len: 0,
            total: 0,
        }
    }

    /// Lines held now.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Lines ever pushed.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn push(&mut self, unix_ms: i64, line: &str) {
        if self.open.is_full() {
            let full = std::mem::replace(&mut self.open, Chunk::with_capacity());
            self.frozen.push_back(full.frozen());
        } else if self.open.ends.capacity() == 0 {
            self.open = Chunk::with_capacity();
        }
        self.open.text.push_str(line);
        // A line is at most 64 KiB and a chunk is closed past 64 KiB, so offsets fit in u32.
        self.open.ends.push(self.open.text.len() as u32);
        self.open.times.push(unix_ms);
        self.len += 1;
        self.total += 1;
        if self.len > self.capacity {
            self.evict_one();
        }
    }

    fn evict_one(&mut self) {
        self.len -= 1;
        self.skip += 1;
        if let Some(first) = self.frozen.front() {
            if self.skip == first.len() {
                self.frozen.pop_front();
                self.skip = 0;
            }
        } else if self.skip == self.open.len() {
            // Only possible when capacity is smaller than what one chunk holds.
            self.open.text.clear();
            self.open.ends.clear();
            self.open.times.clear();
            self.skip = 0;
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
        let mut chunks: Vec<Arc<Chunk>> = self.frozen.iter().cloned().collect();
        if !self.open.ends.is_empty() {
            chunks.push(Arc::new(self.open.clone()));
        }
        Snapshot {
            chunks,
            skip: self.skip + (self.len - take),
            len: take,
        }
    }
}

/// A consistent copy of a ring's newest lines, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    chunks: Vec<Arc<Chunk>>,
    skip: usize,
    len: usize,
}

impl Snapshot {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The lines, oldest first, as `(unix_ms, text)`.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &str)> + '_ {
        let mut skip = self.skip;
        self.chunks
            .iter()
            .flat_map(move |c| {
                let from = skip.min(c.len());
                skip -= from;
                (from..c.len()).map(move |i| c.get(i))
            })
            .take(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &Snapshot) -> Vec<String> {
        s.iter().map(|(_, l)| l.to_string()).collect()
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
    fn many_chunks_evict_and_snapshot_across_them() {
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
        let stored: usize = r.frozen.iter().map(|c| c.len()).sum::<usize>() + r.open.len();
        assert!(
            stored <= cap + CHUNK_LINES,
            "old chunks are freed: {stored} lines stored"
        );
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
    }

    #[test]
    fn snapshot_is_unaffected_by_later_pushes() {
        let mut r = Ring::new(5);
        r.push(1, "a");
        let s = r.snapshot(0);
        for i in 0..10 {
            r.push(i, "b");
        }
        assert_eq!(lines(&s), ["a"]);
    }

    #[test]
    fn unicode_lines_round_trip() {
        let mut r = Ring::new(4);
        r.push(0, "héllo wörld ✓");
        r.push(1, "\u{FFFD}\u{FFFD}");
        assert_eq!(lines(&r.snapshot(0)), ["héllo wörld ✓", "\u{FFFD}\u{FFFD}"]);
    }
}
