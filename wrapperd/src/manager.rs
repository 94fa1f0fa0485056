//! The manager's rules (SPEC §5) as pure functions of time and progress.
//!
//! No I/O and no clock reads: every call takes the [`Instant`] it happens at. The supervisor feeds
//! output lines ([`Manager::on_line`]) and progress blocks ([`Manager::on_block`]), sleeps until
//! [`Manager::next_deadline`] and then calls [`Manager::poll`], and stops ffmpeg once
//! [`Manager::stop`] is `Some`. The `String`s returned are the decisions to log, with their numbers.
//!
//! Choices where the contract leaves room (also in the README):
//!
//! - **Activation.** The checks are active from `max(ffmpeg start + ENCODING_CHECK_START_DELAY,
//!   wrapperd start + MANAGER_START_DELAY)`, never when `ENCODING_DISABLE_CHECK` is set. The first
//!   block at or after that instant whose rates are measurable (two blocks spanning some wall
//!   time, see [`RateWindow::is_measuring`]) is the first evaluation; blocks before that are not
//!   judged. Blocks with `progress=end` are not evaluated (ffmpeg is finishing).
//! - **Base fps.** Taken at the first evaluated block whose current fps is measurable. When no
//!   block has a `frame` key (audio-only, copy-only) there is no base fps, no minimum fps, and
//!   blocks are judged on speed alone. A block whose fps is unknown never passes the fps test.
//! - **Minimum speed.** Fixed at the first evaluation. When that first speed is not valid
//!   (`N/A`/unknown or ≤ 0), it cannot serve as a reference: the minimum speed stays
//!   `ENCODING_MIN_SPEED`. When it is valid and below `ENCODING_MIN_SPEED`, the minimum is that
//!   speed − `ENCODING_DELTA_SPEED`, as the contract says, even if that is ≤ 0 (then only an
//!   invalid speed fails the speed test). A speed of 0 or unknown always fails the speed test.
//! - **Failing.** A block fails when it fails the fps test (fps < min fps, or fps unknown) and the
//!   speed test (speed < min speed, or invalid); "equal" is not below. The failing period starts
//!   at its first failing block and is stopped once it lasted more than `ENCODING_MAX_ERROR_TIME`
//!   — judged on the next block or by [`Manager::poll`] at the deadline, whichever comes first.
//!   One good block ends it.
//! - **Stalled.** An advance is a block in which `frame`, `out_time_us` or `total_size` is above
//!   every value seen before (a value's first appearance counts). Output lines count as output but
//!   not as advance, so ffmpeg printing only lines (no blocks, or frozen blocks) stalls too. The
//!   stall period is measured from `max(last advance, checks start)`: what happened while warming
//!   up never stops an encode the instant the checks begin. The stop message says "no output"
//!   when nothing at all was printed during it (output within 0.5 s after the last advance, such
//!   as the stats line ffmpeg prints right after its block, belongs to that advance), else "no
//!   progress".
//! - **Health.** `stalled` (informational, more than 2 s without output or advance, measured
//!   from ffmpeg's start when nothing came yet) is shown in every phase, warming up included, and
//!   takes precedence over `failing`. With the checks disabled, health is `warming_up` until the
//!   same start delays passed, then `ok` (or `stalled`); it is never `failing` for the encoding
//!   (only for memory, below). Once a stop is decided, health is its reason (`failing`/`stalled`;
//!   `failing` for `memory`) with the stop message.
//! - **Current rates.** The checks judge the rates at each block ([`Manager::on_block`]);
//!   `/status`, `/metrics` and `/series` show them as they are now ([`Manager::rates_at`]),
//!   falling when blocks stop coming or advancing (SPEC §5 amended, [`RateWindow::at`]).
//! - **Memory** (`FFMPEG_MAX_RSS_MB`, SPEC §10): the rule of `memory`, fed by
//!   [`Manager::on_rss`]; it holds from ffmpeg's start (warming up and with
//!   `ENCODING_DISABLE_CHECK` too: the user set that limit explicitly). While above the limit,
//!   health is `failing` with the memory in the reason (unless `stalled`).

use std::time::{Duration, Instant};

use shared::api::{Check, Health};
use shared::progress::Progress;

use crate::config::Config;
use crate::rates::{CurrentRates, RateWindow};
use memory::Memory;

mod memory;

/// How long without output or advance before health shows `stalled` (SPEC §6).
pub const STALLED_HEALTH_AFTER: Duration = Duration::from_secs(2);

/// Output this close after an advance belongs to it (see `stall_sentence`).
const SAME_TICK: Duration = Duration::from_millis(500);

/// The thresholds and delays of SPEC §5.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// `ENCODING_DISABLE_CHECK`: never judge, never stop.
    pub disabled: bool,
    /// `MANAGER_START_DELAY`, counted from wrapperd's start.
    pub manager_start_delay: Duration,
    /// `ENCODING_CHECK_START_DELAY`, counted from ffmpeg's start.
    pub check_start_delay: Duration,
    /// `ENCODING_MIN_SPEED`.
    pub min_speed: f64,
    /// `ENCODING_DELTA_SPEED`: how far below a slow first speed the minimum is.
    pub delta_speed: f64,
    /// `ENCODING_DELTA_FPS`: how far below the base fps the minimum is.
    pub delta_fps: f64,
    /// `ENCODING_MIN_BASE_FPS`: the lowest base fps taken.
    pub min_base_fps: f64,
    /// `ENCODING_MAX_ERROR_TIME`: how long failing may last.
    pub max_error_time: Duration,
    /// `ENCODING_MAX_STDOUT_STUCK_TIME`: how long without advance may last.
    pub max_stuck_time: Duration,
    /// `ENCODING_RATE_WINDOW`: the span the current rates are measured over (0: ffmpeg's own).
    pub rate_window: Duration,
    /// `FFMPEG_MAX_RSS_MB`: the most resident memory ffmpeg may keep for `max_error_time`.
    pub max_rss_mb: Option<u64>,
}

impl Rules {
    pub fn from_config(c: &Config) -> Rules {
        Rules {
            disabled: c.encoding_disable_check,
            manager_start_delay: c.manager_start_delay,
            check_start_delay: c.encoding_check_start_delay,
            min_speed: c.encoding_min_speed,
            delta_speed: c.encoding_delta_speed,
            delta_fps: c.encoding_delta_fps,
            min_base_fps: c.encoding_min_base_fps,
            max_error_time: c.encoding_max_error_time,
            max_stuck_time: c.encoding_max_stdout_stuck_time,
            rate_window: c.encoding_rate_window,
            max_rss_mb: c.ffmpeg_max_rss_mb,
        }
    }
}

impl Default for Rules {
    /// The defaults of SPEC §2, from the configuration's own table.
    fn default() -> Rules {
        Rules::from_config(&Config::default())
    }
}

/// Why the manager stops an encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Too slow (fps and speed both below their minimums) for too long.
    Failing,
    /// No advance for too long.
    Stalled,
    /// Resident memory above `FFMPEG_MAX_RSS_MB` for too long.
    Memory,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Failing => "failing",
            StopReason::Stalled => "stalled",
            StopReason::Memory => "memory",
        }
    }

    pub fn health(self) -> Health {
        match self {
            StopReason::Failing | StopReason::Memory => Health::Failing,
            StopReason::Stalled => Health::Stalled,
        }
    }
}

/// A stop the manager decided, with a human sentence giving the last values seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// Which rule decided it.
    pub reason: StopReason,
    /// The sentence logged and shown as health's reason.
    pub message: String,
}

/// The highest counters seen, to tell an advance.
#[derive(Debug, Default)]
struct Highest {
    /// The highest `frame`.
    frame: Option<u64>,
    /// The highest `out_time_us`.
    out_time_us: Option<i64>,
    /// The highest `total_size`.
    total_size: Option<u64>,
}

impl Highest {
    /// Takes a block's counters; true when any is above everything seen before.
    fn advance(&mut self, p: &Progress) -> bool {
        fn up<T: PartialOrd + Copy>(max: &mut Option<T>, v: Option<T>) -> bool {
            match v {
                Some(v) if max.is_none_or(|m| v > m) => {
                    *max = Some(v);
                    true
                }
                _ => false,
            }
        }
        let a = up(&mut self.frame, p.frame);
        let b = up(&mut self.out_time_us, p.out_time_us);
        let c = up(&mut self.total_size, p.total_size);
        a || b || c
    }
}

/// The rules applied to one ffmpeg run: what was seen so far and what was decided.
#[derive(Debug)]
pub struct Manager {
    /// The thresholds and delays.
    rules: Rules,
    /// When ffmpeg was spawned ("no output" is measured from it until the first output).
    ffmpeg_start: Instant,
    /// When the checks become active (unless disabled).
    active_at: Instant,
    /// The recent blocks, for the current rates.
    window: RateWindow,
    /// The current rates at the newest block.
    rates: CurrentRates,
    /// The newest block, for the numbers in the messages.
    last: Option<Progress>,
    /// The newest output (line or block).
    last_output: Option<Instant>,
    /// The last advance, or ffmpeg's start before the first.
    last_advance: Instant,
    /// The highest counters seen, to tell an advance.
    highest: Highest,
    /// The first evaluation happened (the minimum speed is fixed).
    evaluated: bool,
    /// "checks disabled" was logged once.
    disabled_noted: bool,
    /// The fps at the first evaluated block that had one.
    base_fps: Option<f64>,
    /// `base_fps − ENCODING_DELTA_FPS`, once the base is known.
    min_fps: Option<f64>,
    /// Fixed at the first evaluation.
    min_speed: Option<f64>,
    /// The first block of the current failing period.
    failing_since: Option<Instant>,
    /// The memory rule (`FFMPEG_MAX_RSS_MB`).
    memory: Memory,
    /// The stop decided, once decided.
    stop: Option<Stop>,
    /// A stop has begun (by this manager or not): no more decisions, none logged that nothing
    /// would act on.
    stood_down: bool,
}

fn valid_speed(s: Option<f64>) -> Option<f64> {
    s.filter(|s| s.is_finite() && *s > 0.0)
}

fn fmt_f(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) => format!("{v:.decimals$}"),
        None => "N/A".to_string(),
    }
}

fn fmt_out_time(us: Option<i64>) -> String {
    match us {
        Some(us) => {
            let sign = if us < 0 { "-" } else { "" };
            let ms = us.unsigned_abs() / 1000;
            let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
            format!("{sign}{h:02}:{m:02}:{s:02}.{ms:03}")
        }
        None => "N/A".to_string(),
    }
}

/// "a < b" with `decimals` decimals, or more (up to 4) where fewer would print them equal:
/// "fps 15.0 < 15.0" reads as a bug, "fps 14.99 < 15.01" does not.
fn below(a: f64, b: f64, decimals: usize) -> String {
    let mut d = decimals;
    while d < 4 && format!("{a:.d$}") == format!("{b:.d$}") {
        d += 1;
    }
    format!("{a:.d$} < {b:.d$}")
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Manager {
    /// `wrapperd_start`: when wrapperd started; `ffmpeg_start`: when ffmpeg was spawned.
    pub fn new(rules: Rules, wrapperd_start: Instant, ffmpeg_start: Instant) -> Manager {
        let active_at = (ffmpeg_start + rules.check_start_delay)
            .max(wrapperd_start + rules.manager_start_delay);
        Manager {
            window: RateWindow::new(rules.rate_window),
            memory: Memory::new(rules.max_rss_mb, rules.max_error_time),
            rules,
            ffmpeg_start,
            active_at,
            rates: CurrentRates::default(),
            last: None,
            last_output: None,
            last_advance: ffmpeg_start,
            highest: Highest::default(),
            evaluated: false,
            disabled_noted: false,
            base_fps: None,
            min_fps: None,
            min_speed: None,
            failing_since: None,
            stop: None,
            stood_down: false,
        }
    }

    /// Whether the checks run at `now`.
    pub fn is_active(&self, now: Instant) -> bool {
        !self.rules.disabled && now >= self.active_at
    }

    /// An output line (stdout/stderr) arrived at `now`.
    pub fn on_line(&mut self, now: Instant) {
        self.saw_output(now);
    }

    fn saw_output(&mut self, now: Instant) {
        self.last_output = Some(self.last_output.map_or(now, |t| t.max(now)));
    }

    /// A progress block arrived at `now`. Returns its current rates and the decisions to log.
    pub fn on_block(&mut self, now: Instant, p: &Progress) -> (CurrentRates, Vec<String>) {
        let mut notes = Vec::new();
        self.rates = self.window.push(now, p);
        self.saw_output(now);
        if self.highest.advance(p) {
            self.last_advance = self.last_advance.max(now);
        }
        self.last = Some(*p);
        if self.rules.disabled && !self.disabled_noted {
            self.disabled_noted = true;
            notes.push("encoding checks disabled (ENCODING_DISABLE_CHECK)".to_string());
        }
        // The first blocks, before two of them span some time, give no rates yet: they are not
        // judged (with the checks starting at once, the very first block would fail).
        if self.stop.is_none()
            && !self.stood_down
            && self.is_active(now)
            && !p.end
            && self.window.is_measuring()
        {
            self.evaluate(now, &mut notes);
        }
        self.check_deadlines(now, &mut notes);
        (self.rates, notes)
    }

    /// Checks the deadlines at `now`; returns the decisions to log.
    pub fn poll(&mut self, now: Instant) -> Vec<String> {
        let mut notes = Vec::new();
        self.check_deadlines(now, &mut notes);
        notes
    }

    /// When `poll` must be called next at the latest, if any deadline is pending: `poll` at this
    /// instant or later decides the stop (the limits are "more than", so it is one nanosecond
    /// past the limit).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.stop.is_some() || self.stood_down {
            return None;
        }
        let memory = self.memory.deadline();
        let encoding = (!self.rules.disabled).then(|| {
            self.failing_deadline()
                .map_or(self.stall_deadline(), |f| f.min(self.stall_deadline()))
        });
        let d = memory.into_iter().chain(encoding).min()?;
        Some(d + Duration::from_nanos(1))
    }

    /// ffmpeg's resident memory was `bytes` at `now` (sampled by `crate::rss` while it runs).
    /// Returns the decisions to log; a period above `FFMPEG_MAX_RSS_MB` longer than
    /// `ENCODING_MAX_ERROR_TIME` is a stop (reason `memory`).
    pub fn on_rss(&mut self, now: Instant, bytes: u64) -> Vec<String> {
        let mut notes = Vec::new();
        if self.stop.is_some() || self.stood_down {
            return notes;
        }
        notes.extend(self.memory.sample(now, bytes));
        self.check_deadlines(now, &mut notes);
        notes
    }

    /// ffmpeg is being stopped (for any reason): decide and log nothing more. Rates and health
    /// stay as they are.
    pub fn stand_down(&mut self) {
        self.stood_down = true;
    }

    /// The stop decided, once decided (it stays decided).
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// The next instant after `now` at which [`Manager::health`]'s word can change with
    /// nothing arriving (warming up ends; the 2 s without advance pass), if any: the event bus
    /// wakes then to send `health` (SPEC §11).
    pub fn next_health_change(&self, now: Instant) -> Option<Instant> {
        if self.stop.is_some() {
            return None;
        }
        let stalled_at = self.last_advance + STALLED_HEALTH_AFTER + Duration::from_nanos(1);
        [self.active_at, stalled_at]
            .into_iter()
            .filter(|t| *t > now)
            .min()
    }

    /// The health word and, when not ok/warming up, the reason.
    pub fn health(&self, now: Instant) -> (Health, Option<String>) {
        if let Some(stop) = &self.stop {
            return (stop.reason.health(), Some(stop.message.clone()));
        }
        let frozen = now.saturating_duration_since(self.last_advance);
        if frozen > STALLED_HEALTH_AFTER {
            return (Health::Stalled, Some(self.stall_sentence(now, frozen)));
        }
        if let Some(why) = self.memory.above(now) {
            return (Health::Failing, Some(why));
        }
        if !self.is_active(now) {
            return if self.rules.disabled && now >= self.active_at {
                (Health::Ok, None)
            } else {
                (Health::WarmingUp, None)
            };
        }
        if let Some(since) = self.failing_since {
            let d = now.saturating_duration_since(since);
            return (
                Health::Failing,
                Some(format!("{} for {:.1} s", self.failing_sentence(), secs(d))),
            );
        }
        (Health::Ok, None)
    }

    /// The current rates at the newest block, as the checks judged them.
    #[cfg(test)]
    pub fn rates(&self) -> CurrentRates {
        self.rates
    }

    /// The current rates at `now`: the window ends now, so they fall when blocks stop coming
    /// or advancing (SPEC §5 amended).
    pub fn rates_at(&self, now: Instant) -> CurrentRates {
        self.window.at(now)
    }

    /// The `check` object of /status.
    pub fn check(&self, now: Instant) -> Check {
        Check {
            active: self.is_active(now),
            base_fps: self.base_fps,
            min_fps: self.min_fps,
            min_speed: self.min_speed,
            failing_for_s: self
                .failing_since
                .map_or(0.0, |s| secs(now.saturating_duration_since(s))),
            last_output_age_s: self
                .last_output
                .map(|t| secs(now.saturating_duration_since(t))),
        }
    }

    /// One evaluation of the newest block (checks active, no stop yet).
    fn evaluate(&mut self, now: Instant, notes: &mut Vec<String>) {
        if !self.evaluated {
            self.evaluated = true;
            self.set_min_speed(notes);
        }
        if self.base_fps.is_none() {
            self.set_base_fps(notes);
        }
        self.track_failing_period(now, notes);
    }

    /// At the first evaluation: the min speed, from the first valid speed.
    fn set_min_speed(&mut self, notes: &mut Vec<String>) {
        let r = &self.rules;
        let rates = self.rates;
        let window = if r.rate_window.is_zero() {
            "ffmpeg's reported figures".to_string()
        } else {
            format!("{:.1} s window", secs(r.rate_window))
        };
        let speed = valid_speed(rates.speed);
        let (min_speed, why) = match speed {
            Some(s) if s < r.min_speed => (
                s - r.delta_speed,
                format!(
                    "first speed {s:.3} < {:.3}: min speed = {s:.3} - {:.3}",
                    r.min_speed, r.delta_speed
                ),
            ),
            Some(s) => (
                r.min_speed,
                format!("first speed {s:.3} >= {:.3}", r.min_speed),
            ),
            None => (
                r.min_speed,
                format!(
                    "first speed {} is not valid: min speed stays ENCODING_MIN_SPEED",
                    fmt_f(rates.speed, 3)
                ),
            ),
        };
        self.min_speed = Some(min_speed);
        notes.push(format!(
            "encoding checks active ({window}): min speed {min_speed:.3} ({why})"
        ));
        if rates.fps.is_none() {
            notes.push(if self.last.is_some_and(|p| p.frame.is_none()) {
                "no frame count in progress (audio-only or copy-only?): fps test skipped, \
                 judging on speed alone"
                    .to_string()
            } else {
                "fps not measurable yet: base fps set at the first block that has it".to_string()
            });
        }
    }

    /// At the first block with a measurable fps: the base fps and the min fps from it.
    fn set_base_fps(&mut self, notes: &mut Vec<String>) {
        let r = &self.rules;
        let Some(f) = self.rates.fps else {
            return;
        };
        let min_fps = if f < r.min_base_fps {
            notes.push(format!(
                "base fps {f:.2} < min base fps {:.2}: min fps {:.2}",
                r.min_base_fps, r.min_base_fps
            ));
            r.min_base_fps
        } else {
            let m = f - r.delta_fps;
            notes.push(format!(
                "base fps {f:.2}: min fps {m:.2} (base - {:.2})",
                r.delta_fps
            ));
            m
        };
        self.base_fps = Some(f);
        self.min_fps = Some(min_fps);
    }

    /// Starts or ends the failing period as the newest block fails or passes.
    fn track_failing_period(&mut self, now: Instant, notes: &mut Vec<String>) {
        if self.is_failing_block() {
            if self.failing_since.is_none() {
                self.failing_since = Some(now);
                notes.push(format!(
                    "failing period started: {} (max {:.1} s)",
                    self.failing_sentence(),
                    secs(self.rules.max_error_time)
                ));
            }
        } else if let Some(since) = self.failing_since.take() {
            let rates = self.rates;
            notes.push(format!(
                "failing period ended after {:.1} s: fps {} (min {}), speed {} (min {})",
                secs(now.saturating_duration_since(since)),
                fmt_f(rates.fps, 2),
                fmt_f(self.min_fps, 2),
                fmt_f(rates.speed, 3),
                fmt_f(self.min_speed, 3),
            ));
        }
    }

    /// Whether the newest rates fail both tests.
    fn is_failing_block(&self) -> bool {
        let fps_ok = matches!((self.rates.fps, self.min_fps), (Some(f), Some(m)) if f >= m);
        let speed_ok = matches!(
            (valid_speed(self.rates.speed), self.min_speed),
            (Some(s), Some(m)) if s >= m
        );
        !fps_ok && !speed_ok
    }

    /// "fps 4.1 < 15.0 and speed 0.31 < 0.85", from the newest rates.
    fn failing_sentence(&self) -> String {
        let speed = match (self.rates.speed, self.min_speed) {
            (Some(s), _) if s <= 0.0 => "speed 0".to_string(),
            (Some(s), Some(m)) => format!("speed {}", below(s, m, 2)),
            _ => "speed N/A".to_string(),
        };
        match (self.rates.fps, self.min_fps) {
            (Some(f), Some(m)) => format!("fps {} and {speed}", below(f, m, 1)),
            _ if self.last.is_some_and(|p| p.frame.is_none()) => {
                format!("{speed} (no frame count)")
            }
            (f, _) => format!("fps {} and {speed}", fmt_f(f, 1)),
        }
    }

    /// "no output for 3.2 s" or "no progress for 3.2 s (...)". Output that came with the last
    /// advance (ffmpeg prints its stats line right after the block) is the same tick: within
    /// [`SAME_TICK`] of the stall period's start, the stall is one of silence.
    fn stall_sentence(&self, now: Instant, frozen: Duration) -> String {
        let silent = now.saturating_duration_since(self.last_output.unwrap_or(self.ffmpeg_start));
        if silent + SAME_TICK >= frozen {
            format!("no output for {:.1} s", secs(silent))
        } else if self.last.is_some() {
            format!(
                "no progress for {:.1} s (frame, out_time and total_size unchanged)",
                secs(frozen)
            )
        } else {
            format!(
                "no progress for {:.1} s (no progress block yet)",
                secs(frozen)
            )
        }
    }

    /// The last values seen, for the stop message.
    fn last_values(&self) -> String {
        let p = self.last.unwrap_or_default();
        format!(
            "last seen: fps {}, speed {}, frame {}, out_time {}",
            fmt_f(self.rates.fps, 2),
            fmt_f(self.rates.speed, 3),
            p.frame.map_or("N/A".to_string(), |f| f.to_string()),
            fmt_out_time(p.out_time_us),
        )
    }

    fn failing_deadline(&self) -> Option<Instant> {
        self.failing_since.map(|s| s + self.rules.max_error_time)
    }

    fn stall_deadline(&self) -> Instant {
        self.last_advance.max(self.active_at) + self.rules.max_stuck_time
    }

    /// Decides a stop whose deadline is passed (the earlier one when both are).
    fn check_deadlines(&mut self, now: Instant, notes: &mut Vec<String>) {
        if self.stop.is_some() || self.stood_down {
            return;
        }
        if let Some(message) = self.memory.over_for_too_long(now) {
            return self.decide(StopReason::Memory, message, notes);
        }
        if !self.is_active(now) {
            return;
        }
        let stall = self.stall_deadline();
        let failing = self.failing_deadline().filter(|f| now > *f);
        let why = match (self.failing_since, failing) {
            (Some(since), Some(f)) if f <= stall || now <= stall => (
                StopReason::Failing,
                format!(
                    "failing for {:.1} s (limit {:.1} s): {}",
                    secs(now.saturating_duration_since(since)),
                    secs(self.rules.max_error_time),
                    self.failing_sentence()
                ),
            ),
            _ if now > stall => {
                let frozen = now.saturating_duration_since(self.last_advance.max(self.active_at));
                (
                    StopReason::Stalled,
                    format!(
                        "{} (limit {:.1} s)",
                        self.stall_sentence(now, frozen),
                        secs(self.rules.max_stuck_time)
                    ),
                )
            }
            _ => return,
        };
        let (reason, why) = why;
        let message = format!("{why}; {}", self.last_values());
        self.decide(reason, message, notes);
    }

    /// The stop is decided, for `reason`, with `message`.
    fn decide(&mut self, reason: StopReason, message: String, notes: &mut Vec<String>) {
        notes.push(format!(
            "manager stops ffmpeg ({}): {message}",
            reason.as_str()
        ));
        self.stop = Some(Stop { reason, message });
    }
}

#[cfg(test)]
mod tests;
