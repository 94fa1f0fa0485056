//! The file side of a log: [`RotatingFile`] opens, reopens, rotates (`f` → `f.1` → … → `f.N`)
//! and checks that its path still names the open file; and the age of an existing file, read
//! from its first line. Every operation returns `io::Result`: what to do about a failure (count,
//! report, retry) is the writer's business ([`super::writer`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use chrono::{Local, NaiveDate, TimeZone};
use shared::timefmt::LOCAL_TEXT_LEN;

use super::writer::Output;

/// A log file that can be rotated, with `backups` rotated copies kept beside it.
pub(crate) struct RotatingFile {
    /// e.g. `WORKDIR/logs/ffmpeg.log`.
    path: PathBuf,
    /// N: rotated copies kept (`path.1` … `path.N`); 0: the file is just started anew.
    backups: usize,
    /// Size mode's limit (`None`: days mode, no size limit).
    max_bytes: Option<u64>,
    /// `None` when it could not be (re)opened.
    file: Option<File>,
    /// Device and inode of `file`, to notice the path naming another file.
    id: Option<(u64, u64)>,
    /// Bytes in the current file.
    size: u64,
}

impl RotatingFile {
    /// Opens (appending) or creates the file, creating its directory; returns its metadata too.
    pub(crate) fn open(
        path: &Path,
        backups: usize,
        max_bytes: Option<u64>,
    ) -> io::Result<(RotatingFile, fs::Metadata)> {
        create_parent(path)?;
        let file = open_append(path)?;
        let meta = file.metadata()?;
        let rf = RotatingFile {
            path: path.to_path_buf(),
            backups,
            max_bytes,
            file: Some(file),
            id: Some((meta.dev(), meta.ino())),
            size: meta.len(),
        };
        Ok((rf, meta))
    }

    /// Closes the file and shifts the backups: `f.N` is deleted, `f.k` becomes `f.k+1`, `f`
    /// becomes `f.1` (with no backups, `f` is deleted). A file already missing is no error.
    /// The file stays closed until [`Output::reopen`].
    pub(crate) fn shift(&mut self) -> io::Result<()> {
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
        self.file = None;
        self.id = None;
        let path = &self.path;
        let n = self.backups;
        let result = if n == 0 {
            fs::remove_file(path)
        } else {
            // Shift only the contiguous run .1 … .k-1; .k is free (or .N is deleted first).
            let mut k = 1;
            while k <= n && fs::symlink_metadata(backup_name(path, k)).is_ok() {
                k += 1;
            }
            if k > n {
                let _ = fs::remove_file(backup_name(path, n));
                k = n;
            }
            for i in (1..k).rev() {
                let _ = fs::rename(backup_name(path, i), backup_name(path, i + 1));
            }
            fs::rename(path, backup_name(path, 1))
        };
        match result {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Output for RotatingFile {
    fn describe(&self) -> String {
        format!("log file {}", self.path.display())
    }

    fn drop_reason(&self) -> &'static str {
        "disk full, failing or too slow"
    }

    fn is_open(&self) -> bool {
        self.file.is_some()
    }

    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let file = self.file.as_mut().ok_or(io::ErrorKind::NotConnected)?;
        let n = file.write(data)?;
        self.size += n as u64;
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.shift()
    }

    /// (Re)creates the directory and opens the file for appending.
    fn reopen(&mut self) -> io::Result<()> {
        self.file = None;
        self.id = None;
        self.size = 0;
        create_parent(&self.path)?;
        let f = open_append(&self.path)?;
        let m = f.metadata()?;
        self.size = m.len();
        self.id = Some((m.dev(), m.ino()));
        self.file = Some(f);
        Ok(())
    }

    fn path_moved(&self) -> bool {
        match (fs::metadata(&self.path), self.id) {
            (Ok(m), Some(id)) => (m.dev(), m.ino()) != id,
            _ => true,
        }
    }

    fn flush(&mut self) {
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
    }
}

/// `path.i`: the `i`th rotated copy.
pub(crate) fn backup_name(path: &Path, i: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

/// Unix ms of a `<YYYY-MM-DD HH:MM:SS>` or `[YYYY-MM-DD HH:MM:SS]` line start (local time).
pub(crate) fn parse_line_start(head: &[u8]) -> Option<i64> {
    let close = match head.first()? {
        b'<' => b'>',
        b'[' => b']',
        _ => return None,
    };
    if head.len() < LOCAL_TEXT_LEN + 2 || head[LOCAL_TEXT_LEN + 1] != close {
        return None;
    }
    let ts = &head[1..=LOCAL_TEXT_LEN];
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        ts[r].iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    if ts[4] != b'-' || ts[7] != b'-' || ts[10] != b' ' || ts[13] != b':' || ts[16] != b':' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let dt = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    Some(
        Local
            .from_local_datetime(&dt)
            .earliest()?
            .timestamp_millis(),
    )
}

/// When an existing, non-empty log file was started: the time of its first line, else its
/// creation time, else its mtime.
pub(crate) fn file_start_ms(path: &Path, meta: &fs::Metadata) -> Option<i64> {
    let mut head = [0u8; 64];
    let mut n = 0;
    if let Ok(mut f) = File::open(path) {
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    if let Some(ms) = parse_line_start(&head[..n]) {
        return Some(ms);
    }
    let t = meta.created().or_else(|_| meta.modified()).ok()?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}
