//! The manager's rules simulated: encodes of any length in pure time, no sleeping.

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
    /// The manager under test.
    m: Manager,
    /// Time zero of the simulation (wrapperd's start).
    t0: Instant,
    /// Every decision logged so far.
    notes: Vec<String>,
    /// The encode's frame counter.
    frame: f64,
    /// The encode's output time, seconds.
    out_s: f64,
    /// The encode's output size, bytes.
    size: u64,
    /// When the last block arrived, seconds after `t0`.
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
    assert_eq!(s.m.active_at, t0 + d(11.0));
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
    assert_eq!(m.active_at, t0 + d(5.0));
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

#[test]
fn current_rates_fall_when_blocks_stop_but_the_checks_judge_blocks() {
    let mut s = Sim::new(Rules {
        max_stuck_time: d(60.0),
        ..fast()
    });
    s.run(0.0, 10.0, 25.0, 1.0);
    let at_block = s.m.rates();
    assert_eq!(s.m.rates_at(s.at(10.0)), at_block);
    assert_eq!(s.m.rates_at(s.at(10.3)), at_block, "current until overdue");
    let falling = s.m.rates_at(s.at(11.0)).fps.unwrap();
    assert!(falling < 25.0 && falling > 0.0, "{falling}");
    assert_eq!(
        s.m.rates_at(s.at(12.0)).fps,
        Some(0.0),
        "a whole window (2 s)"
    );
    assert_eq!(s.m.rates_at(s.at(12.0)).speed, Some(0.0));
    // Nothing is judged between blocks: the encode is not failing for it, nor stopped.
    s.poll(20.0);
    assert_eq!(s.stopped(), None);
    assert!(!s.has("failing period started"), "{:?}", s.notes);
    assert_eq!(s.m.rates(), at_block);
}
