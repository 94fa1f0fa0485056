//! The memory rule of `FFMPEG_MAX_RSS_MB` (SPEC §10), pure: ffmpeg's resident memory samples
//! come in with the instant they were taken (from `crate::rss`, about every 0.5 s while ffmpeg
//! runs). A period above the limit starts at the first sample above it and ends at the first
//! sample at or below it; once it has lasted more than `ENCODING_MAX_ERROR_TIME`, the manager
//! stops ffmpeg (reason `memory`). Between samples ffmpeg is taken to stay where it was.

use std::time::{Duration, Instant};

/// One mebibyte.
const MIB: u64 = 1 << 20;

/// `bytes` in MiB, with a decimal where the whole number would read as the limit `mb` itself
/// ("512 MiB > 512" reads as a bug, "512.3 MiB > 512" does not).
fn mib(bytes: u64, mb: u64) -> String {
    let whole = bytes / MIB;
    if whole == mb && !bytes.is_multiple_of(MIB) {
        format!("{:.1}", bytes as f64 / MIB as f64)
    } else {
        whole.to_string()
    }
}

/// The rule and what it has seen.
#[derive(Debug)]
pub(super) struct Memory {
    /// `FFMPEG_MAX_RSS_MB`; `None`: no rule.
    limit_mb: Option<u64>,
    /// `ENCODING_MAX_ERROR_TIME`: how long ffmpeg may stay above the limit.
    max_time: Duration,
    /// The newest sample, bytes.
    rss: Option<u64>,
    /// The first sample of the current period above the limit.
    over_since: Option<Instant>,
}

impl Memory {
    pub(super) fn new(limit_mb: Option<u64>, max_time: Duration) -> Memory {
        Memory {
            limit_mb,
            max_time,
            rss: None,
            over_since: None,
        }
    }

    /// A sample of `bytes` taken at `now`; the decision to log when a period above the limit
    /// began or ended.
    pub(super) fn sample(&mut self, now: Instant, bytes: u64) -> Option<String> {
        let limit = self.limit_mb?;
        self.rss = Some(bytes);
        let over = bytes > limit.saturating_mul(MIB);
        match (over, self.over_since) {
            (true, None) => {
                self.over_since = Some(now);
                Some(format!(
                    "{}: stopping ffmpeg if it stays above for {:.1} s",
                    self.sentence(limit),
                    self.max_time.as_secs_f64()
                ))
            }
            (false, Some(since)) => {
                self.over_since = None;
                Some(format!(
                    "ffmpeg's resident memory back to {} MiB <= FFMPEG_MAX_RSS_MB {limit} after \
                     {:.1} s",
                    mib(bytes, limit),
                    now.saturating_duration_since(since).as_secs_f64()
                ))
            }
            _ => None,
        }
    }

    /// When the current period above the limit becomes too long, if ffmpeg is above it.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.over_since.map(|s| s + self.max_time)
    }

    /// While above the limit: "ffmpeg's resident memory 812 MiB > FFMPEG_MAX_RSS_MB 512 for
    /// 3.2 s" (health's reason).
    pub(super) fn above(&self, now: Instant) -> Option<String> {
        let (since, limit) = (self.over_since?, self.limit_mb?);
        Some(format!(
            "{} for {:.1} s",
            self.sentence(limit),
            now.saturating_duration_since(since).as_secs_f64()
        ))
    }

    /// The stop's message, once the period above the limit lasted more than the limit allows
    /// at `now`.
    pub(super) fn over_for_too_long(&self, now: Instant) -> Option<String> {
        self.deadline().filter(|d| now > *d)?;
        self.above(now)
    }

    /// "ffmpeg's resident memory 812 MiB > FFMPEG_MAX_RSS_MB 512", from the newest sample.
    fn sentence(&self, limit: u64) -> String {
        format!(
            "ffmpeg's resident memory {} MiB > FFMPEG_MAX_RSS_MB {limit}",
            mib(self.rss.unwrap_or_default(), limit)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_period_above_the_limit_longer_than_the_time_allowed_is_a_stop() {
        let t0 = Instant::now();
        let mut m = Memory::new(Some(512), d(10.0));
        assert_eq!(m.sample(t0, 100 * MIB), None);
        assert_eq!(m.deadline(), None);
        let began = m.sample(t0 + d(1.0), 812 * MIB).unwrap();
        assert_eq!(
            began,
            "ffmpeg's resident memory 812 MiB > FFMPEG_MAX_RSS_MB 512: stopping ffmpeg if it \
             stays above for 10.0 s"
        );
        assert_eq!(m.deadline(), Some(t0 + d(11.0)));
        assert_eq!(m.sample(t0 + d(1.5), 900 * MIB), None);
        assert_eq!(
            m.above(t0 + d(4.2)).unwrap(),
            "ffmpeg's resident memory 900 MiB > FFMPEG_MAX_RSS_MB 512 for 3.2 s"
        );
        // "more than": not at the deadline itself.
        assert_eq!(m.over_for_too_long(t0 + d(11.0)), None);
        assert_eq!(
            m.over_for_too_long(t0 + d(11.0) + Duration::from_nanos(1))
                .unwrap(),
            "ffmpeg's resident memory 900 MiB > FFMPEG_MAX_RSS_MB 512 for 10.0 s"
        );
    }

    #[test]
    fn one_sample_at_or_below_ends_the_period() {
        let t0 = Instant::now();
        let mut m = Memory::new(Some(512), d(2.0));
        m.sample(t0, 513 * MIB);
        let ended = m.sample(t0 + d(1.5), 512 * MIB).unwrap();
        assert_eq!(
            ended,
            "ffmpeg's resident memory back to 512 MiB <= FFMPEG_MAX_RSS_MB 512 after 1.5 s"
        );
        assert_eq!((m.deadline(), m.above(t0 + d(2.0))), (None, None));
        assert_eq!(m.over_for_too_long(t0 + d(100.0)), None);
        // A new period counts from its own start.
        m.sample(t0 + d(3.0), 600 * MIB);
        assert_eq!(m.over_for_too_long(t0 + d(4.9)), None);
        assert!(m.over_for_too_long(t0 + d(5.1)).is_some());
    }

    #[test]
    fn no_limit_no_rule_and_close_values_are_told_apart() {
        let t0 = Instant::now();
        let mut m = Memory::new(None, d(1.0));
        assert_eq!(m.sample(t0, u64::MAX), None);
        assert_eq!((m.deadline(), m.above(t0 + d(9.0))), (None, None));
        assert_eq!(mib(512 * MIB + MIB / 3, 512), "512.3");
        assert_eq!(mib(812 * MIB + 5, 512), "812");
        assert_eq!(mib(512 * MIB, 512), "512");
    }
}

/// The rule inside the manager: deadline, health, decisions, and independent of the encoding
/// checks.
#[cfg(test)]
mod in_the_manager {
    use std::time::{Duration, Instant};

    use shared::api::Health;

    use super::MIB;
    use crate::manager::{Manager, Rules, StopReason};

    fn d(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn rules(disabled: bool) -> Rules {
        Rules {
            disabled,
            max_rss_mb: Some(64),
            max_error_time: d(2.0),
            ..Rules::default()
        }
    }

    #[test]
    fn a_stop_with_reason_memory_at_its_deadline_also_while_warming_up_and_unchecked() {
        for disabled in [false, true] {
            let t0 = Instant::now();
            let mut m = Manager::new(rules(disabled), t0, t0);
            assert!(!m.is_active(t0 + d(1.0)), "warming up");
            assert!(m.on_rss(t0 + d(0.5), 10 * MIB).is_empty());
            let notes = m.on_rss(t0 + d(1.0), 200 * MIB);
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert_eq!(
                m.next_deadline(),
                Some(t0 + d(3.0) + Duration::from_nanos(1))
            );
            let (health, why) = m.health(t0 + d(1.5));
            assert_eq!(health, Health::Failing);
            assert_eq!(
                why.unwrap(),
                "ffmpeg's resident memory 200 MiB > FFMPEG_MAX_RSS_MB 64 for 0.5 s"
            );
            assert!(m.on_rss(t0 + d(2.5), 300 * MIB).is_empty());
            assert!(m.poll(t0 + d(2.9)).is_empty());
            let notes = m.poll(m.next_deadline().unwrap());
            assert_eq!(
                notes,
                [
                    "manager stops ffmpeg (memory): ffmpeg's resident memory 300 MiB > \
                  FFMPEG_MAX_RSS_MB 64 for 2.0 s"
                ]
            );
            let stop = m.stop().unwrap();
            assert_eq!(stop.reason, StopReason::Memory);
            assert_eq!(StopReason::Memory.as_str(), "memory");
            assert_eq!(m.health(t0 + d(4.0)).0, Health::Failing);
            assert_eq!(m.next_deadline(), None);
            assert!(
                m.on_rss(t0 + d(5.0), MIB).is_empty(),
                "decided: nothing more"
            );
        }
    }

    #[test]
    fn below_again_in_time_is_no_stop_and_no_limit_is_no_rule() {
        let t0 = Instant::now();
        let mut m = Manager::new(rules(true), t0, t0);
        m.on_rss(t0, 100 * MIB);
        let notes = m.on_rss(t0 + d(1.5), 60 * MIB);
        assert!(notes[0].contains("back to 60 MiB"), "{notes:?}");
        assert_eq!(m.next_deadline(), None, "checks disabled, memory fine");
        assert!(m.poll(t0 + d(10.0)).is_empty());
        assert_eq!(m.stop(), None);
        let mut m = Manager::new(Rules::default(), t0, t0);
        assert!(m.on_rss(t0, u64::MAX).is_empty());
        assert!(m.poll(t0 + d(3600.0)).iter().all(|n| !n.contains("memory")));
        // A stop begun elsewhere: the rule stands down too.
        let mut m = Manager::new(rules(true), t0, t0);
        m.stand_down();
        assert!(m.on_rss(t0, 100 * MIB).is_empty());
        assert_eq!(m.next_deadline(), None);
    }
}
