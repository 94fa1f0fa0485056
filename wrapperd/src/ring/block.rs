//! One block of a ring: lines stored back to back as `varint(len) varint(zigzag(time - base))
//! bytes`, in a buffer whose capacity is fixed when the block is made (see the ring's doc).

use std::fmt;

/// The bytes of `v` as a LEB128 varint.
pub(super) fn varint_len(v: u64) -> usize {
    if v < 0x80 {
        return 1;
    }
    (64 - v.leading_zeros() as usize).div_ceil(7)
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads the varint at `bytes[*at..]`, advancing `*at`. Only ever reads what [`put_varint`] wrote.
pub(super) fn get_varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = bytes[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Lines stored back to back: `varint(len) varint(zigzag(time - base_ms)) bytes` each.
#[derive(Default, Clone)]
pub(super) struct Block {
    /// The entries; its capacity is fixed when the block is created and never exceeded.
    pub(super) bytes: Vec<u8>,
    /// The time of the block's first line; the others are stored relative to it.
    pub(super) base_ms: i64,
    /// Entries stored.
    pub(super) lines: usize,
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("bytes", &self.bytes.len())
            .field("capacity", &self.bytes.capacity())
            .field("base_ms", &self.base_ms)
            .field("lines", &self.lines)
            .finish()
    }
}

impl Block {
    /// What storing a `len`-byte line at `unix_ms` takes, and its time field.
    pub(super) fn entry(&self, unix_ms: i64, len: usize) -> (usize, u64) {
        let base = if self.lines == 0 {
            unix_ms
        } else {
            self.base_ms
        };
        let dt = zigzag(unix_ms.wrapping_sub(base));
        (varint_len(len as u64) + varint_len(dt) + len, dt)
    }

    /// Appends a line; the caller made sure it fits in the capacity.
    pub(super) fn append(&mut self, unix_ms: i64, line: &str) {
        let (need, dt) = self.entry(unix_ms, line.len());
        debug_assert!(self.bytes.len() + need <= self.bytes.capacity());
        self.append_entry(unix_ms, dt, line);
    }

    /// Appends a line whose time field `dt` [`Block::entry`] gave; the caller made sure it fits.
    pub(super) fn append_entry(&mut self, unix_ms: i64, dt: u64, line: &str) {
        if self.lines == 0 {
            self.base_ms = unix_ms;
        }
        let len = line.len() as u64;
        if len < 0x80 && dt < 0x80 {
            // The usual entry (a line under 128 bytes, within 64 ms of the block's first):
            // both varints are one byte.
            self.bytes.extend_from_slice(&[len as u8, dt as u8]);
        } else {
            put_varint(&mut self.bytes, len);
            put_varint(&mut self.bytes, dt);
        }
        self.bytes.extend_from_slice(line.as_bytes());
        self.lines += 1;
    }

    /// The entry at byte `at`: its time, its text and where the next one starts.
    pub(super) fn read(&self, at: usize) -> (i64, &str, usize) {
        let mut p = at;
        let len = get_varint(&self.bytes, &mut p) as usize;
        let t = self
            .base_ms
            .wrapping_add(unzigzag(get_varint(&self.bytes, &mut p)));
        let text = &self.bytes[p..p + len];
        // SAFETY: `append` copied these bytes from a `&str`, and `p..p + len` is exactly that
        // entry's text (entries are only ever read from their start, in order).
        let text = unsafe { std::str::from_utf8_unchecked(text) };
        (t, text, p + len)
    }

    /// The byte offset of the entry `n` entries after the one at byte `at`.
    pub(super) fn advance(&self, mut at: usize, n: usize) -> usize {
        for _ in 0..n {
            let len = get_varint(&self.bytes, &mut at) as usize;
            get_varint(&self.bytes, &mut at);
            at += len;
        }
        at
    }

    /// An exact-size copy of the entries from byte `from` (`skipped` entries before it).
    pub(super) fn copy_from(&self, from: usize, skipped: usize) -> Block {
        let mut bytes = Vec::with_capacity(self.bytes.len() - from);
        bytes.extend_from_slice(&self.bytes[from..]);
        Block {
            bytes,
            base_ms: self.base_ms,
            lines: self.lines - skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut at = 0;
            assert_eq!(get_varint(&out, &mut at), v);
            assert_eq!(at, out.len());
        }
        for v in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(varint_len(zigzag(-64)), 1);
    }
}
