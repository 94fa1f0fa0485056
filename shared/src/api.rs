//! The JSON types of wrapperd's HTTP API (SPEC §6).
//!
//! wrapperd serializes them and fftop and the tests deserialize them, so both sides agree by
//! construction. Fields may be added, never renamed.

use serde::{Deserialize, Serialize};

/// The life cycle of the supervised ffmpeg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Starting,
    Running,
    Stopping,
    /// Between runs: the last run ended and the next starts after the restart delay (SPEC §10).
    Restarting,
    Exited,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Restarting => "restarting",
            State::Exited => "exited",
        }
    }
}

/// How the encode is doing, as the manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// The checks are not active yet.
    WarmingUp,
    Ok,
    /// Inside a failing period (fps and speed below their minimums).
    Failing,
    /// No output, or no advance, for more than 2 s.
    Stalled,
    /// A stop was requested or decided and ffmpeg is finishing.
    Stopping,
    /// Between runs, waiting for the restart delay (SPEC §10).
    Restarting,
    Exited,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::WarmingUp => "warming_up",
            Health::Ok => "ok",
            Health::Failing => "failing",
            Health::Stalled => "stalled",
            Health::Stopping => "stopping",
            Health::Restarting => "restarting",
            Health::Exited => "exited",
        }
    }

    /// `/healthz` answers 200 for these, 503 otherwise.
    pub fn is_good(self) -> bool {
        matches!(self, Health::WarmingUp | Health::Ok)
    }

    pub const ALL: [Health; 7] = [
        Health::WarmingUp,
        Health::Ok,
        Health::Failing,
        Health::Stalled,
        Health::Stopping,
        Health::Restarting,
        Health::Exited,
    ];
}

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub state: State,
    pub health: Health,
    /// A short human sentence whenever health is not `ok`/`warming_up`.
    pub reason: Option<String>,
    pub pid: u32,
    pub ffmpeg_pid: Option<u32>,
    pub workdir: String,
    /// RFC 3339 with milliseconds, UTC.
    pub start_time: Option<String>,
    pub uptime_s: f64,
    pub cmd: Vec<String>,
    pub progress: Option<ProgressInfo>,
    pub rates: Rates,
    pub check: Check,
    pub counters: Counters,
    pub exit: Option<ExitInfo>,
    /// Which run this is and how many restarts there were (SPEC §10); zeros from a wrapperd
    /// older than restarts.
    #[serde(default)]
    pub run: RunInfo,
    /// The newest record of `status/runs.jsonl`, or `None`.
    #[serde(default)]
    pub last_run: Option<RunRecord>,
}

/// `/status`'s `run` (SPEC §10).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The current (or last) run's number, counted across wrapperd's restarts on the same work
    /// directory; 0 before the first run.
    pub number: u64,
    /// Restarts by this wrapperd.
    pub restarts: u64,
    /// Restarts within `RESTART_WINDOW`, the count `RESTART_LIMIT` is compared with.
    pub restarts_in_window: u64,
    /// Seconds until the next run starts, while restarting.
    pub next_start_in_s: Option<f64>,
    /// Runs started by this wrapperd (`ffwrapper_runs_total`); 0 from a wrapperd that does not
    /// report it.
    #[serde(default)]
    pub runs: u64,
}

/// One ended run: a line of `status/runs.jsonl` and an element of `GET /runs` (SPEC §10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's number.
    pub run: u64,
    /// When ffmpeg started, RFC 3339 with milliseconds.
    pub start: String,
    /// When it ended.
    pub end: String,
    /// Seconds between the two.
    pub duration_s: f64,
    /// ffmpeg's pid (`None` when it could not be started).
    pub ffmpeg_pid: Option<u32>,
    /// ffmpeg's own exit status.
    pub ffmpeg_status: FfmpegStatus,
    /// Why the run ended, as the exit reason says it.
    pub reason: String,
    /// ffmpeg's own last words when it ended by itself (up to 3 lines joined by ` / `).
    pub error: Option<String>,
    /// The newest progress block of the run.
    pub last_progress: Option<ProgressInfo>,
    /// The run's last output lines (up to 20).
    pub last_lines: Vec<String>,
}

/// The newest progress block as ffmpeg reported it (fps/speed are averages since the start).
/// `N/A` and the "no time yet" sentinel are `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressInfo {
    pub at: String,
    pub frame: Option<u64>,
    pub fps: Option<f64>,
    pub speed: Option<f64>,
    pub bitrate_kbps: Option<f64>,
    pub total_size: Option<u64>,
    pub out_time_us: Option<i64>,
    pub dup_frames: Option<u64>,
    pub drop_frames: Option<u64>,
}

/// The current rates (SPEC §5), `None` until measurable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub fps: Option<f64>,
    pub speed: Option<f64>,
    pub window_s: f64,
}

/// What the manager's checks have established.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub active: bool,
    pub base_fps: Option<f64>,
    pub min_fps: Option<f64>,
    pub min_speed: Option<f64>,
    pub failing_for_s: f64,
    pub last_output_age_s: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub log_lines: u64,
    pub progress_blocks: u64,
}

/// How ffmpeg's exit was judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// wrapperd's own exit code.
    pub code: i32,
    /// ffmpeg's exit code, or `"signal N"`.
    pub ffmpeg_status: FfmpegStatus,
    pub reason: String,
}

/// ffmpeg's exit: a code, or the signal that ended it (serialized as `"signal N"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfmpegStatus {
    Code(i32),
    Signal(i32),
    /// ffmpeg never ran (not found, not executable).
    NotStarted,
}

impl FfmpegStatus {
    /// The status a shell would report: the code, or 128+N for a signal.
    pub fn shell_code(self) -> i32 {
        match self {
            FfmpegStatus::Code(c) => c,
            FfmpegStatus::Signal(n) => 128 + n,
            FfmpegStatus::NotStarted => 127,
        }
    }
}

impl std::fmt::Display for FfmpegStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FfmpegStatus::Code(c) => write!(f, "{c}"),
            FfmpegStatus::Signal(n) => write!(f, "signal {n}"),
            FfmpegStatus::NotStarted => write!(f, "not started"),
        }
    }
}

impl Serialize for FfmpegStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FfmpegStatus::Code(c) => s.serialize_i32(*c),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for FfmpegStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(i32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Code(c) => Ok(FfmpegStatus::Code(c)),
            Raw::Text(t) if t == "not started" => Ok(FfmpegStatus::NotStarted),
            Raw::Text(t) => t
                .strip_prefix("signal ")
                .and_then(|n| n.parse().ok())
                .map(FfmpegStatus::Signal)
                .ok_or_else(|| serde::de::Error::custom(format!("bad ffmpeg_status {t:?}"))),
        }
    }
}

/// `GET /series?seconds=N`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub points: Vec<SeriesPoint>,
}

/// The current rates at one progress block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Unix time in milliseconds.
    pub t: i64,
    pub fps: Option<f64>,
    pub speed: Option<f64>,
    pub bitrate_kbps: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffmpeg_status_round_trips() {
        for st in [
            FfmpegStatus::Code(255),
            FfmpegStatus::Signal(9),
            FfmpegStatus::NotStarted,
        ] {
            let j = serde_json::to_string(&st).unwrap();
            assert_eq!(serde_json::from_str::<FfmpegStatus>(&j).unwrap(), st);
        }
        assert_eq!(
            serde_json::to_string(&FfmpegStatus::Signal(2)).unwrap(),
            "\"signal 2\""
        );
        assert_eq!(FfmpegStatus::Signal(9).shell_code(), 137);
    }

    #[test]
    fn health_words_match_serde() {
        for h in Health::ALL {
            assert_eq!(
                serde_json::to_string(&h).unwrap(),
                format!("\"{}\"", h.as_str())
            );
        }
    }

    /// The thresholds in `/status` are what the manager compares against, so a client must read
    /// back the very number wrapperd wrote. serde_json's default parser can be one ulp off
    /// (15.995527677427319 came back as 15.99552767742732); the workspace enables
    /// `float_roundtrip`, and this pins it.
    #[test]
    fn thresholds_round_trip_bit_for_bit() {
        for x in [
            15.995527677427319_f64,
            25.99552767742732 - 10.0,
            0.1 + 0.2,
            1e-300,
            f64::MAX,
        ] {
            let c = Rates {
                fps: Some(x),
                speed: Some(x / 3.0),
                window_s: x,
            };
            let j = serde_json::to_string(&c).unwrap();
            let back: Rates = serde_json::from_str(&j).unwrap();
            assert_eq!(back.fps.map(f64::to_bits), Some(x.to_bits()), "{j}");
            assert_eq!(
                back.speed.map(f64::to_bits),
                Some((x / 3.0).to_bits()),
                "{j}"
            );
        }
    }
}
