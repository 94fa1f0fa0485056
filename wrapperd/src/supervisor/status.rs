//! The `status/` files that change while wrapperd runs: `status.json`, `STATE`, `HEALTH`, and
//! the ones written once ffmpeg has started (the variables' values, `FFMPEG_PID`, `START_TIME`).
//!
//! They are written by one thread of their own ([`StatusWriter`]), started just after ffmpeg's
//! spawn: the files are off the way to ffmpeg's exec, a slow disk never holds a task of the
//! runtime, and a rewrite costs that thread's one wake-up, not a worker's timer, a blocking-pool
//! thread and the wake-up back (measurement 2 of the benchmarks).
//!
//! `status.json` is rewritten when something in it changed (SPEC §3): at once on a change of
//! state or exit (the state unparks the thread), else looked at once a second; after a look
//! that found nothing changed, the thread dozes until a line, a block or a change of state
//! wakes it, time alone may change the health, or the refresh is due (100 idle encodes cost
//! a wake-up each every 10 s here, not every second). What only time
//! moves (`uptime_s`, the output's age, how long a failing period has lasted, the seconds in a
//! stalled or failing reason) does not count as a change ([`Daemon::change_mark`]), but the
//! file is refreshed at least every [`REFRESH`]. Looking costs one short lock and no `Status`.
//!
//! A rewrite reuses the inode of the version before last ([`JsonFile`]): creating an inode (and
//! ext4's flush of a file renamed over another) was most of wrapperd's CPU in a steady encode.

use std::fs::{self, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::api::Status;

use crate::state::{ChangeMark, Daemon};
use crate::workdir::write_atomic;

/// The longest `status.json` goes without a rewrite while nothing but time changes.
pub(crate) const REFRESH: Duration = Duration::from_secs(10);

/// How often the status is looked at when nothing wakes the thread.
const TICK: Duration = Duration::from_secs(1);

/// How long a version of `status.json` stays untouched once replaced, so that a reader that
/// opened it just before never sees it rewritten; a rewrite sooner makes a new inode.
const SPARE_REST: Duration = Duration::from_millis(900);

/// `status.json`, replaced atomically by a rename like every status file, but with
/// `RENAME_EXCHANGE`: the replaced version becomes `.status.json.tmp`, and the next rewrite
/// writes over it (in place, then cut to length) instead of creating a new inode. Where the
/// exchange is refused (the first write, a file system without it), a plain rename.
struct JsonFile {
    /// `status/status.json`.
    path: PathBuf,
    /// `status/.status.json.tmp`: the spare inode once a first exchange has been made.
    tmp: PathBuf,
    /// When the spare was last replaced (it is rewritten only [`SPARE_REST`] later).
    swapped_at: Option<Instant>,
}

impl JsonFile {
    fn new(dir: &Path) -> JsonFile {
        JsonFile {
            path: dir.join("status.json"),
            tmp: dir.join(".status.json.tmp"),
            swapped_at: None,
        }
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.swapped_at.is_some_and(|t| t.elapsed() < SPARE_REST) {
            self.swapped_at = None;
            return write_atomic(&self.path, data);
        }
        {
            // Not O_TRUNC: ext4 flushes a file truncated to 0 at its close.
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.tmp)?;
            f.write_all_at(data, 0)?;
            f.set_len(data.len() as u64)?;
            f.set_permissions(fs::Permissions::from_mode(0o644))?;
        }
        if exchange(&self.tmp, &self.path).is_ok() {
            self.swapped_at = Some(Instant::now());
            return Ok(());
        }
        self.swapped_at = None;
        fs::rename(&self.tmp, &self.path)
    }

    /// Removes the spare (at the end).
    fn remove_spare(&self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Swaps the names `a` and `b` atomically (`renameat2(RENAME_EXCHANGE)`); both must exist.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    let c =
        |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: two NUL-terminated paths that live across the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The status writer's thread; [`StatusWriter::stop`] has it write a last time and end.
pub(crate) struct StatusWriter {
    /// The state, to wake the thread.
    shared: Arc<Daemon>,
    /// Set to ask for the last write.
    stop: Arc<AtomicBool>,
    /// Receives once the thread has ended.
    done: mpsc::Receiver<()>,
}

impl StatusWriter {
    /// Starts the thread: it writes `files` (key, value) into `dir` in order, then keeps
    /// `status.json`, `STATE` and `HEALTH` current. The order puts `FFMPEG_PID` and `START_TIME`
    /// last, so once they exist every variable's file does.
    pub(crate) fn start(
        shared: Arc<Daemon>,
        dir: PathBuf,
        files: Vec<(String, String)>,
    ) -> std::io::Result<StatusWriter> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, done) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new().name("status".into()).spawn({
            let (shared, stop) = (shared.clone(), stop.clone());
            move || {
                write_files(&dir, files);
                keep_current(&shared, &dir, &stop);
                let _ = tx.send(());
            }
        })?;
        shared.set_status_thread(thread.thread().clone());
        Ok(StatusWriter { shared, stop, done })
    }

    /// Has the thread write a last time (the exit) and end; waits up to `wait` for it, so a
    /// hung disk does not hold wrapperd's exit.
    pub(crate) fn stop(self, wait: Duration) {
        self.stop.store(true, Ordering::Release);
        self.shared.wake_status();
        let _ = self.done.recv_timeout(wait);
    }
}

/// Writes `files` (key, value) into `dir` in order; stops at the first failure. (Creating them
/// with their content directly, without a temporary file and a rename, measured slower.)
fn write_files(dir: &Path, files: Vec<(String, String)>) {
    for (key, value) in files {
        let path = dir.join(&key);
        if let Err(e) = write_atomic(&path, value.as_bytes()) {
            tracing::warn!("cannot write {}: {e}", path.display());
            return;
        }
    }
}

/// The thread's loop (see the module doc); returns after the write that follows `stop`.
fn keep_current(shared: &Daemon, dir: &Path, stop: &AtomicBool) {
    let mut last: Option<(ChangeMark, Instant)> = None;
    let mut json = JsonFile::new(dir);
    loop {
        let done = stop.load(Ordering::Acquire);
        let now = Instant::now();
        let mark = shared.change_mark(now);
        let changed = last.as_ref().is_none_or(|(m, _)| *m != mark);
        let (write, write_keys, new_run) = match &last {
            None => (true, true, false),
            Some((m, at)) => (
                done || *m != mark || now.duration_since(*at) >= REFRESH,
                m.state != mark.state || m.health != mark.health,
                m.run != mark.run,
            ),
        };
        if write {
            if new_run {
                write_run_files(shared, dir);
            }
            if let Err(e) = write_status(&shared.status(), dir, &mut json, write_keys) {
                tracing::debug!("cannot write status files: {e}");
            }
            last = Some((mark, now));
        }
        if done {
            json.remove_spare();
            return;
        }
        match &last {
            // Unchanged: `last` holds this look's mark.
            Some((mark, at)) if !changed => doze(shared, mark, now, *at + REFRESH),
            _ => std::thread::park_timeout(TICK),
        }
    }
}

/// Nothing changed at the last look: sleeps until the refresh is due or time alone may change
/// the health, unless a line, a block or a change of state wakes the thread first. An idle
/// encode's writer then wakes every [`REFRESH`], not every second; a busy one never dozes.
fn doze(shared: &Daemon, mark: &ChangeMark, now: Instant, refresh_at: Instant) {
    shared.set_status_dozing(true);
    // A line pushed between the look and the flag would not nudge: look once more.
    if shared.change_mark(Instant::now()) == *mark {
        let until = shared
            .next_health_change(now)
            .map_or(refresh_at, |t| t.min(refresh_at))
            .max(now + TICK);
        std::thread::park_timeout(until.saturating_duration_since(Instant::now()));
    }
    shared.set_status_dozing(false);
}

/// A new run: `FFMPEG_PID` and `START_TIME` again (the first run's come with the variables).
fn write_run_files(shared: &Daemon, dir: &Path) {
    let (Some(pid), Some(start)) = (shared.ffmpeg_pid(), shared.ffmpeg_start_ms()) else {
        return;
    };
    let files = [
        ("FFMPEG_PID", pid.to_string()),
        ("START_TIME", shared::timefmt::local_text(start)),
    ];
    write_files(dir, files.map(|(k, v)| (k.to_string(), v)).to_vec());
}

/// Writes `status.json` and, when `keys`, `STATE` and `HEALTH`.
fn write_status(
    status: &Status,
    dir: &Path,
    json: &mut JsonFile,
    keys: bool,
) -> std::io::Result<()> {
    json.write(&serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?)?;
    if keys {
        write_atomic(&dir.join("STATE"), status.state.as_str().as_bytes())?;
        write_atomic(&dir.join("HEALTH"), status.health.as_str().as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn only_time_moved_means_the_same_mark() {
        let shared = Daemon::new(Config::from_vars(Vec::new()).unwrap(), Vec::new());
        let t = Instant::now();
        shared.ffmpeg_started(1, t);
        // Long after the start with no output: stalled, "no output for N s" at both times.
        let (t1, t2) = (t + Duration::from_secs(100), t + Duration::from_secs(200));
        let a = shared.change_mark(t1);
        assert_eq!(a.health, shared::api::Health::Stalled, "{a:?}");
        assert_eq!(a, shared.change_mark(t2));
        shared.push_lines(1, t, ["a line"]);
        let b = shared.change_mark(t);
        assert_ne!(a, b);
        shared.begin_stopping("x".into());
        assert_ne!(b, shared.change_mark(t));
    }

    #[test]
    fn status_json_is_rewritten_over_its_spare_shorter_or_longer() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = JsonFile::new(dir.path());
        let read = || std::fs::read_to_string(dir.path().join("status.json")).unwrap();
        for (i, text) in ["a long first version", "short", "a longer third one"]
            .iter()
            .enumerate()
        {
            f.swapped_at = f.swapped_at.map(|t| t - SPARE_REST);
            f.write(text.as_bytes()).unwrap();
            assert_eq!(read(), *text, "version {i}");
        }
        // A rewrite right after an exchange does not touch the spare.
        f.write(b"soon").unwrap();
        assert_eq!(read(), "soon");
        f.remove_spare();
        assert!(!dir.path().join(".status.json.tmp").exists());
    }

    #[test]
    fn the_thread_writes_the_files_then_status_json_and_a_last_time_at_stop() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(Daemon::new(
            Config::from_vars(Vec::new()).unwrap(),
            Vec::new(),
        ));
        std::fs::write(dir.path().join("B"), "old").unwrap();
        let files = [
            ("A", "1"),
            ("B", "2"),
            ("FFMPEG_PID", "3"),
            ("START_TIME", "4"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec();
        let w = StatusWriter::start(shared.clone(), dir.path().to_path_buf(), files).unwrap();
        shared.set_exit(shared::api::ExitInfo {
            code: 3,
            ffmpeg_status: shared::api::FfmpegStatus::Code(3),
            reason: "done".into(),
        });
        w.stop(Duration::from_secs(10));
        for (k, v) in [
            ("A", "1"),
            ("B", "2"),
            ("FFMPEG_PID", "3"),
            ("START_TIME", "4"),
        ] {
            assert_eq!(std::fs::read_to_string(dir.path().join(k)).unwrap(), v);
        }
        let json = std::fs::read_to_string(dir.path().join("status.json")).unwrap();
        let st: Status = serde_json::from_str(&json).unwrap();
        assert_eq!(st.exit.map(|e| e.code), Some(3));
        let state = std::fs::read_to_string(dir.path().join("STATE")).unwrap();
        assert_eq!(state, "exited");
        assert!(!dir.path().join(".status.json.tmp").exists());
    }

    #[test]
    fn an_idle_writer_dozes_and_a_line_wakes_it() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(Daemon::new(
            Config::from_vars(Vec::new()).unwrap(),
            Vec::new(),
        ));
        let w = StatusWriter::start(shared.clone(), dir.path().to_path_buf(), Vec::new()).unwrap();
        let read = || {
            let text = std::fs::read_to_string(dir.path().join("status.json")).unwrap_or_default();
            serde_json::from_str::<Status>(&text).ok()
        };
        let until = |what: &str, limit: Duration, f: &dyn Fn() -> bool| {
            let t = Instant::now();
            while !f() {
                assert!(t.elapsed() < limit, "{what} within {limit:?}");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        until("the first look", Duration::from_secs(5), &|| {
            read().is_some()
        });
        // Nothing changes: after one more look it dozes (the next refresh is 10 s away).
        until("dozing", Duration::from_secs(5), &|| shared.status_dozes());
        let dozing_since = Instant::now();
        shared.push_lines(1, Instant::now(), ["a line"]);
        until("the line in status.json", Duration::from_secs(5), &|| {
            read().is_some_and(|s| s.counters.log_lines == 1)
        });
        assert!(
            dozing_since.elapsed() < REFRESH / 2,
            "woken by the line, not by the refresh"
        );
        w.stop(Duration::from_secs(10));
    }
}
