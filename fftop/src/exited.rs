//! Exited encodes (SPEC §13): a work directory whose `api.sock` is gone (or refuses, a stale
//! socket) but whose `status/status.json` says `exited` is shown as `exited` with when and why it
//! ended and its last run from `status/runs.jsonl`, instead of as `down` or not at all.
//!
//! Only files are read here, never the API (there is nobody to ask). A killed wrapperd leaves
//! a status.json that does not say `exited`; that target stays `down`. `runs.jsonl` can hold a
//! thousand runs, so only its tail is read, and only its newest complete line is decoded.
//! [`if_it_says_so`] turns an answer whose state is `exited` (an exited encode behind an
//! aggregator) into the same kind of row.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use shared::api::{RunRecord, State, Status};

use crate::app::Conn;
use crate::event::PollResult;

/// How much of the end of `runs.jsonl` is read to find its newest line.
const RUNS_TAIL_BYTES: u64 = 256 * 1024;

/// What the files of an exited encode say.
#[derive(Debug, Clone, PartialEq)]
pub struct ExitedAnswer {
    /// `status/status.json` as wrapperd wrote it last.
    pub status: Status,
    /// The newest line of `status/runs.jsonl` (else the status's own `last_run`).
    pub last_run: Option<RunRecord>,
    /// When it ended, Unix milliseconds: the last run's end, else status.json's mtime.
    pub ended_ms: i64,
}

/// The work directory of a socket target (`…/cam1/api.sock` → `…/cam1`).
pub fn workdir_of(sock: &Path) -> Option<PathBuf> {
    if sock.file_name().is_some_and(|n| n == "api.sock") {
        sock.parent().map(Path::to_path_buf)
    } else {
        None
    }
}

/// Reads `dir`'s status files; `None` unless status.json exists, decodes and says `exited`.
pub fn read(dir: &Path) -> Option<ExitedAnswer> {
    let path = dir.join("status/status.json");
    let text = std::fs::read_to_string(&path).ok()?;
    let status: Status = serde_json::from_str(&text).ok()?;
    if status.state != State::Exited {
        return None;
    }
    let mtime_ms = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let last_run = read_runs_tail(&dir.join("status/runs.jsonl"))
        .and_then(|tail| newest_run(&tail))
        .or_else(|| status.last_run.clone());
    let ended_ms = last_run
        .as_ref()
        .and_then(|r| parse_rfc3339_ms(&r.end))
        .unwrap_or(mtime_ms);
    Some(ExitedAnswer {
        status,
        last_run,
        ended_ms,
    })
}

/// Whether `dir` holds an exited encode's files (cheap enough for every scan).
pub fn is_exited_dir(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("status/status.json")) else {
        return false;
    };
    /// Only the field the check needs.
    #[derive(serde::Deserialize)]
    struct StateOnly {
        /// wrapperd's state.
        state: State,
    }
    serde_json::from_str::<StateOnly>(&text).is_ok_and(|s| s.state == State::Exited)
}

/// The last [`RUNS_TAIL_BYTES`] of the file.
fn read_runs_tail(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(RUNS_TAIL_BYTES);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.take(RUNS_TAIL_BYTES).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The newest complete, decodable record in the tail of `runs.jsonl` (a partial first line from
/// cutting the tail, or a damaged line, is skipped).
pub fn newest_run(tail: &str) -> Option<RunRecord> {
    tail.lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .find_map(|l| serde_json::from_str(l).ok())
}

/// The newest `count` records of `runs.jsonl` (`0`: all), oldest first, as `GET /runs` gives
/// them (for an exited encode behind an aggregator); damaged lines are skipped.
pub fn read_runs(dir: &Path, count: usize) -> Option<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(dir.join("status/runs.jsonl")).ok()?;
    let runs: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(serde_json::Value::is_object)
        .collect();
    let skip = if count == 0 {
        0
    } else {
        runs.len().saturating_sub(count)
    };
    Some(runs.into_iter().skip(skip).collect())
}

/// RFC 3339 to Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A status that answers `exited` (a wrapperd in its last moment, or an exited encode behind
/// an aggregator, whose `/t/<name>/status` comes from its files) is an exited row like one read
/// from the files: when it ended comes from its last run, else stays as first seen.
pub(crate) fn if_it_says_so(conn: &Conn, result: PollResult) -> PollResult {
    match result {
        PollResult::Up(sample) if sample.status.state == State::Exited => {
            let last_run = sample.status.last_run.clone();
            let ended_ms = last_run
                .as_ref()
                .and_then(|r| parse_rfc3339_ms(&r.end))
                .or(match conn {
                    Conn::Exited { ended_ms } => Some(*ended_ms),
                    _ => None,
                })
                .unwrap_or(sample.at_ms);
            PollResult::Exited(Box::new(ExitedAnswer {
                status: sample.status,
                last_run,
                ended_ms,
            }))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{run_record, status, temp_dir};
    use shared::api::Health;

    #[test]
    fn newest_complete_line_wins() {
        let a = serde_json::to_string(&run_record(1, "first")).unwrap();
        let b = serde_json::to_string(&run_record(2, "second")).unwrap();
        let tail = format!("{}\n{a}\n{b}\n{{\"run\": 3, \"sta", &a[5..]);
        assert_eq!(newest_run(&tail).unwrap().run, 2);
        assert!(newest_run("garbage\n").is_none());
        assert_eq!(
            parse_rfc3339_ms("2026-11-24T00:00:00.000Z"),
            Some(crate::testutil::NOW)
        );
    }

    #[test]
    fn reads_an_exited_directory_and_ignores_others() {
        let dir = temp_dir("exited-read");
        std::fs::create_dir_all(dir.join("status")).unwrap();
        assert!(read(&dir).is_none() && !is_exited_dir(&dir), "no files");
        let live = status(Health::Ok, Some(25.0), Some(1.0));
        std::fs::write(
            dir.join("status/status.json"),
            serde_json::to_string(&live).unwrap(),
        )
        .unwrap();
        assert!(
            read(&dir).is_none() && !is_exited_dir(&dir),
            "killed: not exited"
        );
        let gone = status(Health::Exited, None, None);
        std::fs::write(
            dir.join("status/status.json"),
            serde_json::to_string(&gone).unwrap(),
        )
        .unwrap();
        let runs = [run_record(1, "one"), run_record(2, "two")]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect::<String>();
        std::fs::write(dir.join("status/runs.jsonl"), runs).unwrap();
        assert!(is_exited_dir(&dir));
        let got = read(&dir).unwrap();
        assert_eq!(got.status.health, Health::Exited);
        let run = got.last_run.unwrap();
        assert_eq!(run.run, 2);
        assert_eq!(got.ended_ms, parse_rfc3339_ms(&run.end).unwrap());
        assert_eq!(workdir_of(&dir.join("api.sock")), Some(dir.clone()));
        let runs = read_runs(&dir, 1).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0]["run"], 2);
        assert_eq!(read_runs(&dir, 0).unwrap().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
