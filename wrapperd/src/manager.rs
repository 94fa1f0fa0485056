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
//!   same start delays passed, then `ok` (or `stalled`); it is never `failing`. Once a stop is
//!   decided, health is its reason (`failing`/`stalled`) with the stop message.

use std::time::{Duration, Instant};

use shared::api::{Check, Health};
use shared::progress::Progress;

use crate::config::Config;
use crate::rates::{CurrentRates, RateWindow};

/// How long without output or advance before health shows `stalled` (SPEC §6).
pub const STALLED_HEALTH_AFTER: Duration = Duration::from_secs(2);

/// Output this close after an advance belongs to it (see `stall_sentence`).
const SAME_TICK: Duration = Duration::from_millis(500);

/// The thresholds and delays of SPEC §5.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub disabled: bool,
    pub manager_start_delay: Duration,
    pub check_start_delay: Duration,
    pub min_speed: f64,
    pub delta_speed: f64,
    pub delta_fps: f64,
    pub min_base_fps: f64,
    pub max_error_time: Duration,
    pub max_stuck_time: Duration,
    pub rate_window: Duration,
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
        }
    }
}

impl Default for Rules {
    /// The defaults of SPEC §2.
    fn default() -> Rules {
        Rules {
            disabled: false,
            manager_start_delay: Duration::from_secs(5),
            check_start_delay: Duration::from_secs(55),
            min_speed: 0.85,
            delta_speed: 0.2,
            delta_fps: 10.0,
            min_base_fps: 14.0,
            max_error_time: Duration::from_secs(10),
            max_stuck_time: Duration::from_secs(15),
            rate_window: Duration::from_secs(10),
        }
    }
}

/// Why the manager stops an encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Failing,
    Stalled,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Failing => "failing",
            StopReason::Stalled => "stalled",
        }
    }

    pub fn health(self) -> Health {
        match self {
            StopReason::Failing => Health::Failing,
            StopReason::Stalled => Health::Stalled,
        }
    }
}

/// A stop the manager decided, with a human sentence giving the last values seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    pub reason: StopReason,
    pub message: String,
}

/// The highest counters seen, to tell an advance.
#[derive(Debug, Default)]
struct Highest {
    frame: Option<u64>,
    out_time_us: Option<i64>,
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

#[derive(Debug)]
pub struct Manager {
    rules: Rules,
    ffmpeg_start: Instant,
    /// When the checks become active (unless disabled).
    active_at: Instant,
    window: RateWindow,
    rates: CurrentRates,
    last: Option<Progress>,
    last_output: Option<Instant>,
    /// The last advance, or ffmpeg's start before the first.
    last_advance: Instant,
    highest: Highest,
    evaluated: bool,
    disabled_noted: bool,
    base_fps: Option<f64>,
    min_fps: Option<f64>,
    min_speed: Option<f64>,
    failing_since: Option<Instant>,
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

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// When the checks become active (meaningless when they are disabled).
    pub fn active_at(&self) -> Instant {
        self.active_at
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
        if self.stop.is_some() || self.stood_down || self.rules.disabled {
            return None;
        }
        let d = self
            .failing_deadline()
            .map_or(self.stall_deadline(), |f| f.min(self.stall_deadline()));
        Some(d + Duration::from_nanos(1))
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

    /// The health word and, when not ok/warming up, the reason.
    pub fn health(&self, now: Instant) -> (Health, Option<String>) {
        if let Some(stop) = &self.stop {
            return (stop.reason.health(), Some(stop.message.clone()));
        }
        let frozen = now.saturating_duration_since(self.last_advance);
        if frozen > STALLED_HEALTH_AFTER {
            return (Health::Stalled, Some(self.stall_sentence(now, frozen)));
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

    /// The newest current rates.
    pub fn rates(&self) -> CurrentRates {
        self.rates
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
        let r = &self.rules;
        let rates = self.rates;
        let window = if r.rate_window.is_zero() {
            "ffmpeg's reported figures".to_string()
        } else {
            format!("{:.1} s window", secs(r.rate_window))
        };
        if !self.evaluated {
            self.evaluated = true;
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
                    "fps not measurable yet: base fps set at the first block that has it"
                        .to_string()
                });
            }
        }
        if self.base_fps.is_none() {
            if let Some(f) = rates.fps {
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
        }
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
        if self.stop.is_some() || self.stood_down || !self.is_active(now) {
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
        notes.push(format!(
            "manager stops ffmpeg ({}): {message}",
            reason.as_str()
        ));
        self.stop = Some(Stop { reason, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Fast rules: checks active at once, short limits.
    fn fast() -> Rules {
        Rules {
            manager_start_delay: Duration::ZERO,
            check_start_delay: Duration::ZERO,
            max_error_time: d(3.0),
            max_stuck_time: d(4.0),
            rate_window: d(2.0),
            ..Rules::default()
        }
    }

    /// Like `fast`, judged on ffmpeg's reported figures, so each block sets the rates exactly.
    fn reported() -> Rules {
        Rules {
            rate_window: Duration::ZERO,
            ..fast()
        }
    }

    /// A simulated encode: wrapperd and ffmpeg start at `t0`.
    struct Sim {
        m: Manager,
        t0: Instant,
        notes: Vec<String>,
        frame: f64,
        out_s: f64,
        size: u64,
        last_at: f64,
    }

    impl Sim {
        fn new(rules: Rules) -> Sim {
            let t0 = Instant::now();
            Sim::starting(rules, t0, t0)
        }

        fn starting(rules: Rules, wrapperd: Instant, ffmpeg: Instant) -> Sim {
            Sim {
                m: Manager::new(rules, wrapperd, ffmpeg),
                t0: wrapperd,
                notes: Vec::new(),
                frame: 0.0,
                out_s: 0.0,
                size: 0,
                last_at: 0.0,
            }
        }

        fn at(&self, s: f64) -> Instant {
            self.t0 + d(s)
        }

        fn push(&mut self, s: f64, p: Progress) -> CurrentRates {
            let (r, notes) = self.m.on_block(self.at(s), &p);
            self.notes.extend(notes);
            r
        }

        /// An advancing block at `s` s reporting `fps` and `speed` (for `reported()` rules).
        fn report(&mut self, s: f64, fps: Option<f64>, speed: Option<f64>) {
            self.frame += 1.0;
            self.out_s += 0.04;
            self.size += 1000;
            let p = self.progress(fps, speed);
            self.push(s, p);
        }

        fn progress(&self, fps: Option<f64>, speed: Option<f64>) -> Progress {
            Progress {
                frame: Some(self.frame as u64),
                fps,
                speed,
                total_size: Some(self.size),
                out_time_us: Some((self.out_s * 1e6) as i64),
                bitrate_kbps: Some(1000.0),
                ..Progress::default()
            }
        }

        /// Blocks every 0.5 s in (`from`, `to`] at real rates `fps`/`speed`, reporting
        /// ffmpeg-style averages since the start.
        fn run(&mut self, from: f64, to: f64, fps: f64, speed: f64) {
            let mut s = from;
            while s + 0.5 <= to + 1e-9 {
                s += 0.5;
                self.frame += fps * 0.5;
                self.out_s += speed * 0.5;
                self.size += (speed * 0.5 * 125_000.0) as u64;
                let p = self.progress(Some(self.frame / s), Some(self.out_s / s));
                self.push(s, p);
                if self.m.stop().is_none() {
                    let n = self.m.poll(self.at(s));
                    self.notes.extend(n);
                }
                self.last_at = s;
            }
        }

        /// The same block as the last one, again at `s` (ffmpeg 7 with a hung input).
        fn frozen(&mut self, s: f64) {
            let p = self.progress(Some(self.frame / s), Some(self.out_s / s));
            self.push(s, p);
        }

        fn poll(&mut self, s: f64) {
            let n = self.m.poll(self.at(s));
            self.notes.extend(n);
        }

        fn has(&self, needle: &str) -> bool {
            self.notes.iter().any(|n| n.contains(needle))
        }

        fn stopped(&self) -> Option<StopReason> {
            self.m.stop().map(|s| s.reason)
        }
    }

    #[test]
    fn below_tells_close_values_apart() {
        assert_eq!(below(5.0, 15.0, 1), "5.0 < 15.0");
        assert_eq!(below(14.996, 15.012, 1), "15.00 < 15.01");
        assert_eq!(below(0.849, 0.85, 2), "0.849 < 0.850");
    }

    #[test]
    fn base_fps_and_minimums_set_at_first_evaluation() {
        let mut s = Sim::new(reported());
        s.report(1.0, Some(25.0), Some(1.0));
        let c = s.m.check(s.at(1.0));
        assert!(c.active);
        assert_eq!(c.base_fps, Some(25.0));
        assert_eq!(c.min_fps, Some(15.0));
        assert_eq!(c.min_speed, Some(0.85));
        assert!(s.has("base fps 25.00: min fps 15.00"), "{:?}", s.notes);
        assert!(s.has("min speed 0.850"), "{:?}", s.notes);
        // Later blocks do not move them.
        s.report(1.5, Some(40.0), Some(0.5));
        assert_eq!(s.m.check(s.at(1.5)).min_fps, Some(15.0));
        assert_eq!(s.m.check(s.at(1.5)).min_speed, Some(0.85));
    }

    #[test]
    fn base_fps_below_min_base_fps() {
        let mut s = Sim::new(reported());
        s.report(1.0, Some(8.0), Some(1.0));
        let c = s.m.check(s.at(1.0));
        assert_eq!(c.base_fps, Some(8.0));
        assert_eq!(c.min_fps, Some(14.0));
        assert!(s.has("base fps 8.00 < min base fps 14.00: min fps 14.00"));
        // The base fps itself is below the minimum: failing when the speed is too.
        s.report(1.5, Some(8.0), Some(0.5));
        assert_eq!(s.m.health(s.at(1.5)).0, Health::Failing);
    }

    #[test]
    fn first_speed_below_min_speed() {
        let mut s = Sim::new(reported());
        s.report(1.0, Some(25.0), Some(0.5));
        assert_eq!(s.m.check(s.at(1.0)).min_speed, Some(0.5 - 0.2));
        assert!(s.has("first speed 0.500 < 0.850"));
        // 0.31 is fine now, 0.29 is not.
        s.report(1.5, Some(1.0), Some(0.31));
        assert_eq!(s.m.health(s.at(1.5)).0, Health::Ok);
        s.report(2.0, Some(1.0), Some(0.29));
        assert_eq!(s.m.health(s.at(2.0)).0, Health::Failing);
    }

    #[test]
    fn first_speed_invalid_keeps_min_speed() {
        for first in [None, Some(0.0)] {
            let mut s = Sim::new(reported());
            s.report(1.0, Some(25.0), first);
            assert_eq!(s.m.check(s.at(1.0)).min_speed, Some(0.85), "{first:?}");
            assert!(s.has("is not valid: min speed stays"), "{:?}", s.notes);
            // The invalid first speed fails the speed test, but the fps is fine.
            assert_eq!(s.m.health(s.at(1.0)).0, Health::Ok);
        }
    }

    #[test]
    fn exactly_at_a_threshold_is_not_below() {
        let mut s = Sim::new(reported());
        s.report(1.0, Some(25.0), Some(1.0));
        // fps == min fps, speed far below: fps passes.
        s.report(1.5, Some(15.0), Some(0.1));
        assert_eq!(s.m.health(s.at(1.5)).0, Health::Ok);
        // speed == min speed, fps far below: speed passes.
        s.report(2.0, Some(1.0), Some(0.85));
        assert_eq!(s.m.health(s.at(2.0)).0, Health::Ok);
        // Both just below.
        s.report(2.5, Some(14.99), Some(0.849));
        assert_eq!(s.m.health(s.at(2.5)).0, Health::Failing);
        assert!(!s.has("stops"));
    }

    #[test]
    fn failing_needs_both_tests_to_fail() {
        let mut s = Sim::new(reported());
        s.report(1.0, Some(25.0), Some(1.0));
        s.report(1.5, Some(5.0), Some(1.0));
        s.report(2.0, Some(25.0), Some(0.1));
        assert!(s.m.check(s.at(2.0)).failing_for_s == 0.0);
        s.report(2.5, Some(5.0), Some(0.1));
        assert!(s.has("failing period started: fps 5.0 < 15.0 and speed 0.10 < 0.85"));
        let (h, reason) = s.m.health(s.at(3.0));
        assert_eq!(h, Health::Failing);
        assert_eq!(
            reason.as_deref(),
            Some("fps 5.0 < 15.0 and speed 0.10 < 0.85 for 0.5 s")
        );
        assert_eq!(s.m.check(s.at(3.0)).failing_for_s, 0.5);
    }

    #[test]
    fn failing_longer_than_max_error_time_stops_at_the_deadline() {
        let mut s = Sim::new(reported());
        s.report(1.0, Some(25.0), Some(1.0));
        s.report(2.0, Some(5.0), Some(0.1));
        // Deadline: 2.0 + 3.0 s; "more than", so exactly 3.0 s is not yet.
        let deadline = s.m.next_deadline().unwrap();
        assert_eq!(deadline, s.at(5.0) + Duration::from_nanos(1));
        s.poll(5.0);
        assert_eq!(s.stopped(), None);
        // No more blocks: poll decides at the deadline.
        let n = s.m.poll(deadline);
        assert_eq!(s.stopped(), Some(StopReason::Failing));
        assert_eq!(n.len(), 1);
        assert!(n[0].starts_with("manager stops ffmpeg (failing): failing for 3.0 s (limit 3.0 s): fps 5.0 < 15.0 and speed 0.10 < 0.85; last seen"));
        let msg = &s.m.stop().unwrap().message;
        assert!(
            msg.contains("last seen: fps 5.00, speed 0.100, frame 2, out_time 00:00:00.080"),
            "{msg}"
        );
        assert_eq!(s.m.health(deadline).0, Health::Failing);
        // Decided once: nothing more.
        assert_eq!(s.m.next_deadline(), None);
        assert!(s.m.poll(s.at(100.0)).is_empty());
        assert!(s.m.stop().is_some());
    }

    #[test]
    fn failing_stop_decided_on_a_block_too() {
        let mut s = Sim::new(reported());
        s.report(1.0, Some(25.0), Some(1.0));
        for i in 0..8 {
            s.report(2.0 + i as f64 * 0.5, Some(5.0), Some(0.1));
        }
        // Blocks at 2.0 .. 5.5: the one at 5.5 is 3.5 s into the period.
        assert_eq!(s.stopped(), Some(StopReason::Failing));
    }

    #[test]
    fn one_good_block_ends_a_failing_period() {
        let mut s = Sim::new(reported());
        s.report(1.0, Some(25.0), Some(1.0));
        s.report(2.0, Some(5.0), Some(0.1));
        s.report(4.5, Some(5.0), Some(0.1));
        s.report(4.9, Some(25.0), Some(1.0));
        assert!(s.has("failing period ended after 2.9 s"), "{:?}", s.notes);
        assert_eq!(s.m.health(s.at(4.9)).0, Health::Ok);
        // A new period starts from zero.
        s.report(5.0, Some(5.0), Some(0.1));
        s.poll(7.5);
        assert_eq!(s.stopped(), None);
        assert_eq!(
            s.m.next_deadline(),
            Some(s.at(8.0) + Duration::from_nanos(1))
        );
    }

    #[test]
    fn speed_na_or_zero_fails_the_speed_test() {
        for bad in [None, Some(0.0)] {
            let mut s = Sim::new(reported());
            s.report(1.0, Some(25.0), Some(1.0));
            s.report(1.5, Some(5.0), bad);
            assert_eq!(s.m.health(s.at(1.5)).0, Health::Failing, "{bad:?}");
            let reason = s.m.health(s.at(1.5)).1.unwrap();
            let word = if bad.is_none() {
                "speed N/A"
            } else {
                "speed 0"
            };
            assert!(reason.contains(word), "{reason}");
            // Good fps keeps it ok.
            s.report(2.0, Some(25.0), bad);
            assert_eq!(s.m.health(s.at(2.0)).0, Health::Ok);
        }
    }

    #[test]
    fn no_frame_key_judged_on_speed_alone() {
        let mut s = Sim::new(fast());
        let audio = |out_s: f64| Progress {
            out_time_us: Some((out_s * 1e6) as i64),
            total_size: Some((out_s * 1000.0) as u64),
            speed: Some(1.0),
            ..Progress::default()
        };
        // 1.0x for 5 s, then 0.5x.
        let mut out = 0.0;
        for i in 1..=10 {
            out += 0.5;
            let r = s.push(i as f64 * 0.5, audio(out));
            assert_eq!(r.fps, None);
        }
        assert!(s.has("no frame count"), "{:?}", s.notes);
        let c = s.m.check(s.at(5.0));
        assert_eq!((c.base_fps, c.min_fps), (None, None));
        assert_eq!(s.m.health(s.at(5.0)).0, Health::Ok);
        for i in 11..=20 {
            out += 0.25;
            s.push(i as f64 * 0.5, audio(out));
        }
        let (h, reason) = s.m.health(s.at(10.0));
        assert_eq!(h, Health::Failing);
        assert!(reason.unwrap().contains("(no frame count)"));
    }

    #[test]
    fn stall_by_silence() {
        let mut s = Sim::new(fast());
        s.run(0.0, 5.0, 25.0, 1.0);
        assert_eq!(s.m.health(s.at(5.0)).0, Health::Ok);
        // Nothing at all from 5.0 on: informational after 2 s, stop after 4 s.
        let (h, reason) = s.m.health(s.at(7.5));
        assert_eq!(h, Health::Stalled);
        assert_eq!(reason.as_deref(), Some("no output for 2.5 s"));
        assert_eq!(
            s.m.next_deadline(),
            Some(s.at(9.0) + Duration::from_nanos(1))
        );
        s.poll(9.0);
        assert_eq!(s.stopped(), None);
        s.poll(9.2);
        assert_eq!(s.stopped(), Some(StopReason::Stalled));
        assert!(
            s.has("manager stops ffmpeg (stalled): no output for 4.2 s (limit 4.0 s); last seen:"),
            "{:?}",
            s.notes
        );
    }

    #[test]
    fn stall_by_silence_after_a_stats_line() {
        let mut s = Sim::new(fast());
        s.run(0.0, 5.0, 25.0, 1.0);
        // The stats line printed just after the last block.
        s.m.on_line(s.at(5.001));
        s.poll(9.1);
        assert_eq!(s.stopped(), Some(StopReason::Stalled));
        assert!(s.has("(stalled): no output for 4.1 s"), "{:?}", s.notes);
    }

    #[test]
    fn stall_by_frozen_progress() {
        let mut s = Sim::new(Rules {
            max_error_time: d(100.0),
            ..fast()
        });
        s.run(0.0, 5.0, 25.0, 1.0);
        // Blocks and lines keep coming, nothing advances.
        let mut t = 5.0;
        while t < 9.0 {
            t += 0.25;
            s.m.on_line(s.at(t));
            if (t * 2.0).fract() == 0.0 {
                s.frozen(t);
            }
        }
        assert_eq!(s.stopped(), None);
        assert_eq!(s.m.health(s.at(9.0)).0, Health::Stalled);
        s.frozen(9.5);
        assert_eq!(s.stopped(), Some(StopReason::Stalled));
        assert!(s.has("no progress for 4.5 s (frame, out_time and total_size unchanged)"));
        assert!(s.has("frame 125, out_time 00:00:05.000"), "{:?}", s.notes);
    }

    #[test]
    fn lines_alone_are_output_but_not_advance() {
        let mut s = Sim::new(fast());
        s.run(0.0, 2.0, 25.0, 1.0);
        for i in 1..=30 {
            s.m.on_line(s.at(2.0 + i as f64 * 0.2));
            s.poll(2.0 + i as f64 * 0.2);
        }
        assert_eq!(s.stopped(), Some(StopReason::Stalled));
        assert!(s.has("no progress for"), "{:?}", s.notes);
        assert!(s.m.check(s.at(8.0)).last_output_age_s.unwrap() < 0.01);
    }

    #[test]
    fn advancing_progress_without_lines_is_not_stalled() {
        let mut s = Sim::new(fast());
        s.run(0.0, 60.0, 25.0, 1.0);
        assert_eq!(s.stopped(), None);
        assert_eq!(s.m.health(s.at(60.0)), (Health::Ok, None));
        assert!(!s.has("failing"), "{:?}", s.notes);
    }

    #[test]
    fn start_delays() {
        let t0 = Instant::now();
        let rules = Rules {
            manager_start_delay: d(5.0),
            check_start_delay: d(10.0),
            ..fast()
        };
        // ffmpeg spawned 1 s after wrapperd: checks at 11 s.
        let mut s = Sim::starting(rules.clone(), t0, t0 + d(1.0));
        assert_eq!(s.m.active_at(), t0 + d(11.0));
        s.run(0.0, 6.0, 25.0, 1.0);
        // Failing rates while warming up are not judged.
        s.run(6.0, 10.5, 5.0, 0.2);
        assert_eq!(s.m.health(s.at(10.5)).0, Health::WarmingUp);
        assert!(!s.m.check(s.at(10.5)).active);
        assert!(s.notes.is_empty(), "{:?}", s.notes);
        assert_eq!(
            s.m.next_deadline(),
            Some(s.at(15.0) + Duration::from_nanos(1))
        );
        s.run(10.5, 11.0, 25.0, 1.0);
        assert!(s.m.check(s.at(11.0)).active);
        assert!(s.has("encoding checks active"), "{:?}", s.notes);
        s.run(11.0, 14.0, 5.0, 0.2);
        assert!(s.has("failing period started"), "{:?}", s.notes);
        // The manager delay dominates when ffmpeg started early.
        let rules = Rules {
            manager_start_delay: d(5.0),
            check_start_delay: d(1.0),
            ..fast()
        };
        let m = Manager::new(rules, t0, t0 + d(0.5));
        assert_eq!(m.active_at(), t0 + d(5.0));
        assert!(!m.is_active(t0 + d(4.9)));
        assert!(m.is_active(t0 + d(5.0)));
    }

    #[test]
    fn stall_measured_from_checks_start() {
        let rules = Rules {
            check_start_delay: d(55.0),
            ..fast()
        };
        let mut s = Sim::new(rules);
        // Silent from the start: shown as stalled while warming up, but not stopped.
        let (h, reason) = s.m.health(s.at(30.0));
        assert_eq!(
            (h, reason.as_deref()),
            (Health::Stalled, Some("no output for 30.0 s"))
        );
        s.poll(55.0);
        s.poll(59.0);
        assert_eq!(s.stopped(), None);
        assert_eq!(
            s.m.next_deadline(),
            Some(s.at(59.0) + Duration::from_nanos(1))
        );
        s.poll(59.1);
        assert_eq!(s.stopped(), Some(StopReason::Stalled));
        assert!(s.has("no output for 59.1 s (limit 4.0 s)"), "{:?}", s.notes);
    }

    #[test]
    fn disabled_checks_never_stop() {
        let rules = Rules {
            disabled: true,
            manager_start_delay: d(5.0),
            ..fast()
        };
        let mut s = Sim::new(rules);
        assert_eq!(s.m.next_deadline(), None);
        s.run(0.0, 4.0, 25.0, 1.0);
        assert_eq!(s.m.health(s.at(4.0)).0, Health::WarmingUp);
        s.run(4.0, 30.0, 1.0, 0.05);
        assert_eq!(s.m.health(s.at(30.0)), (Health::Ok, None));
        s.poll(100.0);
        assert_eq!(s.stopped(), None);
        assert_eq!(
            s.notes,
            vec!["encoding checks disabled (ENCODING_DISABLE_CHECK)"]
        );
        let c = s.m.check(s.at(30.0));
        assert!(!c.active);
        assert_eq!(c.min_fps, None);
        // Stalled is still shown.
        assert_eq!(s.m.health(s.at(33.0)).0, Health::Stalled);
    }

    /// An hour at 25 fps, then the real rate drops to 5 fps: ffmpeg's averages stay near 25, the
    /// current rates see it.
    #[test]
    fn hour_behind_real_rate_drops_is_failing() {
        let rules = Rules {
            check_start_delay: d(55.0),
            manager_start_delay: d(5.0),
            rate_window: d(10.0),
            max_error_time: d(10.0),
            max_stuck_time: d(15.0),
            ..Rules::default()
        };
        let mut s = Sim::new(rules.clone());
        s.run(0.0, 3600.0, 25.0, 1.0);
        assert_eq!(s.frame as u64, 90_000);
        assert_eq!(s.m.health(s.at(3600.0)), (Health::Ok, None));
        assert!(s.has("base fps 25.00: min fps 15.00"));
        s.run(3600.0, 3630.0, 5.0, 0.2);
        let reported = s.m.last.unwrap();
        assert!(reported.fps.unwrap() > 24.8, "{reported:?}");
        assert!(reported.speed.unwrap() > 0.99, "{reported:?}");
        assert_eq!(s.stopped(), Some(StopReason::Failing));
        let msg = &s.m.stop().unwrap().message;
        assert!(
            msg.contains("fps 5.0 < 15.0 and speed 0.20 < 0.85"),
            "{msg}"
        );
        assert!(msg.contains("frame 90"), "{msg}");
        assert!(msg.contains("out_time 01:00:"), "{msg}");

        // Judged on ffmpeg's own averages (ENCODING_RATE_WINDOW=0), it is not seen.
        let mut s = Sim::new(Rules {
            rate_window: Duration::ZERO,
            ..rules
        });
        s.run(0.0, 3600.0, 25.0, 1.0);
        s.run(3600.0, 3630.0, 5.0, 0.2);
        assert_eq!(s.stopped(), None);
    }

    #[test]
    fn rate_window_zero_uses_reported_figures() {
        let mut s = Sim::new(reported());
        s.run(0.0, 2.0, 25.0, 1.0);
        // Real 25 fps, reported average 25: the rates are the reported ones.
        assert_eq!(s.m.rates().fps, Some(25.0));
        assert_eq!(s.m.rates().speed, Some(1.0));
    }

    #[test]
    fn current_rates_measured_over_the_window() {
        let mut s = Sim::new(fast());
        s.run(0.0, 10.0, 25.0, 1.0);
        s.run(10.0, 14.0, 10.0, 0.4);
        let r = s.m.rates();
        assert!((r.fps.unwrap() - 10.0).abs() < 1e-6, "{r:?}");
        assert!((r.speed.unwrap() - 0.4).abs() < 1e-6, "{r:?}");
    }

    #[test]
    fn check_fields_and_output_age() {
        let mut s = Sim::new(fast());
        let c = s.m.check(s.at(0.0));
        assert_eq!(c.last_output_age_s, None);
        s.m.on_line(s.at(1.0));
        assert_eq!(s.m.check(s.at(1.5)).last_output_age_s, Some(0.5));
        assert_eq!(s.m.rates(), CurrentRates::default());
    }

    #[test]
    fn end_block_is_not_evaluated() {
        let mut s = Sim::new(reported());
        s.report(1.0, Some(25.0), Some(1.0));
        let mut p = s.progress(Some(1.0), Some(0.1));
        p.end = true;
        s.push(1.5, p);
        assert!(!s.has("failing period started"));
    }

    #[test]
    fn out_time_format() {
        assert_eq!(fmt_out_time(Some(3_723_456_789)), "01:02:03.456");
        assert_eq!(fmt_out_time(Some(-1_500_000)), "-00:00:01.500");
        assert_eq!(fmt_out_time(None), "N/A");
    }
}
