//! The restart policy of SPEC §10 as a pure rule: given how a run ended, how long it stayed
//! healthy and the time, whether wrapperd exits, starts the next run (after which delay), or
//! gives up.
//!
//! The delay starts at `RESTART_DELAY` and doubles after each delayed restart up to
//! `RESTART_MAX_DELAY` (supervisord's and systemd's `RestartSteps` grow the same way); a run that
//! stayed `ok` for `RESTART_RESET_AFTER` brings it back to `RESTART_DELAY`. More than
//! `RESTART_LIMIT` restarts within `RESTART_WINDOW` and wrapperd gives up. Two kinds of restart
//! are not failures and start at once: `POST /restart` (the operator asked) and a run ended by
//! `MAX_RUNTIME` (a planned split of a recording); both count as restarts, and neither is held
//! against the limit or grows the delay.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{Config, RestartPolicy};

/// Restarts remembered in the window when `RESTART_LIMIT` is below this (or 0): the count of
/// `restarts_in_window` stops here, so a fast crash loop does not grow memory.
pub(crate) const WINDOW_COUNT_CAP: u64 = 1000;

/// How a run ended, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// A signal to wrapperd or `POST /stop` asked for the stop: never restarted.
    StopAsked,
    /// `POST /restart`: a new run at once, whatever `RESTART` says.
    RestartAsked,
    /// `MAX_RUNTIME` ended the run.
    MaxRuntime,
    /// The manager stopped it (failing, stalled, memory).
    Manager,
    /// ffmpeg ended by itself with status 0.
    Clean,
    /// ffmpeg ended by itself with a non-zero status or by a signal.
    Failed,
}

/// What comes after a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Next {
    /// wrapperd exits.
    Exit,
    /// The next run starts after `delay`.
    Restart {
        /// How long to wait first.
        delay: Duration,
    },
    /// More than `RESTART_LIMIT` restarts within `RESTART_WINDOW`: exit.
    GiveUp {
        /// The restarts counted in the window.
        restarts: u64,
    },
}

/// The policy's settings, from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rules {
    /// `RESTART`.
    pub(crate) policy: RestartPolicy,
    /// `RESTART_DELAY`.
    pub(crate) delay: Duration,
    /// `RESTART_MAX_DELAY`.
    pub(crate) max_delay: Duration,
    /// `RESTART_RESET_AFTER`.
    pub(crate) reset_after: Duration,
    /// `RESTART_LIMIT` (0: no limit).
    pub(crate) limit: u64,
    /// `RESTART_WINDOW`.
    pub(crate) window: Duration,
}

impl Rules {
    pub(crate) fn from_config(c: &Config) -> Rules {
        Rules {
            policy: c.restart,
            delay: c.restart_delay,
            max_delay: c.restart_max_delay.max(c.restart_delay),
            reset_after: c.restart_reset_after,
            limit: c.restart_limit,
            window: c.restart_window,
        }
    }
}

/// The policy's memory across runs: the next delay and the restarts made.
#[derive(Debug)]
pub(crate) struct Backoff {
    /// The settings.
    rules: Rules,
    /// The delay before the next failure's restart.
    next_delay: Duration,
    /// When each restart held against the limit was made, oldest first, within the window.
    recent: VecDeque<Instant>,
    /// Every restart made.
    total: u64,
}

impl Backoff {
    pub(crate) fn new(rules: Rules) -> Backoff {
        Backoff {
            next_delay: rules.delay,
            rules,
            recent: VecDeque::new(),
            total: 0,
        }
    }

    /// Decides what follows a run that ended at `now` after staying `ok` for `healthy_for` at
    /// most (its longest stretch).
    pub(crate) fn decide(&mut self, ending: Ending, healthy_for: Duration, now: Instant) -> Next {
        let restart = match ending {
            Ending::StopAsked => false,
            Ending::RestartAsked => {
                return Next::Restart {
                    delay: Duration::ZERO,
                }
            }
            Ending::MaxRuntime => {
                return match self.rules.policy {
                    RestartPolicy::Never => Next::Exit,
                    _ => Next::Restart {
                        delay: Duration::ZERO,
                    },
                }
            }
            Ending::Clean => self.rules.policy == RestartPolicy::Always,
            Ending::Manager | Ending::Failed => self.rules.policy != RestartPolicy::Never,
        };
        if !restart {
            return Next::Exit;
        }
        if healthy_for >= self.rules.reset_after {
            self.next_delay = self.rules.delay;
        }
        let in_window = self.in_window(now);
        if self.rules.limit > 0 && in_window >= self.rules.limit {
            return Next::GiveUp {
                restarts: in_window,
            };
        }
        let delay = self.next_delay;
        self.next_delay = (delay * 2).min(self.rules.max_delay);
        Next::Restart { delay }
    }

    /// A restart after `ending` was made at `now`.
    pub(crate) fn restarted(&mut self, ending: Ending, now: Instant) {
        self.total += 1;
        if !matches!(ending, Ending::RestartAsked | Ending::MaxRuntime) {
            self.recent.push_back(now);
            // Bounded in a crash loop: the limit needs no more, and the count shown stops there.
            let cap = usize::try_from(self.rules.limit.max(WINDOW_COUNT_CAP)).unwrap_or(usize::MAX);
            while self.recent.len() > cap {
                self.recent.pop_front();
            }
        }
    }

    /// Restarts made so far.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Restarts held against the limit within the window ending at `now`.
    pub(crate) fn in_window(&mut self, now: Instant) -> u64 {
        while let Some(&t) = self.recent.front() {
            if now.saturating_duration_since(t) >= self.rules.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.len() as u64
    }

    /// The settings.
    pub(crate) fn rules(&self) -> &Rules {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(policy: RestartPolicy) -> Rules {
        Rules {
            policy,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            reset_after: Duration::from_secs(60),
            limit: 0,
            window: Duration::from_secs(600),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Decides and, when restarting, records the restart.
    fn step(b: &mut Backoff, e: Ending, healthy: u64, now: Instant) -> Next {
        let next = b.decide(e, secs(healthy), now);
        if matches!(next, Next::Restart { .. }) {
            b.restarted(e, now);
        }
        next
    }

    #[test]
    fn which_endings_restart_under_each_policy() {
        use Ending::*;
        let t = Instant::now();
        let table = [
            (
                RestartPolicy::Never,
                [false, true, false, false, false, false],
            ),
            (
                RestartPolicy::OnFailure,
                [false, true, true, true, false, true],
            ),
            (RestartPolicy::Always, [false, true, true, true, true, true]),
        ];
        for (policy, expected) in table {
            let endings = [StopAsked, RestartAsked, MaxRuntime, Manager, Clean, Failed];
            for (e, want) in endings.into_iter().zip(expected) {
                let got = Backoff::new(rules(policy)).decide(e, secs(0), t);
                assert_eq!(
                    matches!(got, Next::Restart { .. }),
                    want,
                    "{policy:?} {e:?}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn the_delay_doubles_up_to_the_maximum_and_resets_after_a_healthy_run() {
        let mut b = Backoff::new(rules(RestartPolicy::OnFailure));
        let t = Instant::now();
        let delays: Vec<Next> = (0..5).map(|_| step(&mut b, Ending::Failed, 0, t)).collect();
        let want = [1, 2, 4, 5, 5].map(|s| Next::Restart { delay: secs(s) });
        assert_eq!(delays, want);
        assert_eq!(
            step(&mut b, Ending::Manager, 60, t),
            Next::Restart { delay: secs(1) }
        );
        assert_eq!(
            step(&mut b, Ending::Failed, 59, t),
            Next::Restart { delay: secs(2) }
        );
        assert_eq!(b.total(), 7);
    }

    #[test]
    fn asked_and_planned_restarts_start_at_once_and_leave_the_delay_and_limit_alone() {
        let mut r = rules(RestartPolicy::OnFailure);
        r.limit = 1;
        let mut b = Backoff::new(r);
        let t = Instant::now();
        for e in [
            Ending::RestartAsked,
            Ending::MaxRuntime,
            Ending::RestartAsked,
        ] {
            assert_eq!(step(&mut b, e, 0, t), Next::Restart { delay: secs(0) });
        }
        assert_eq!(b.in_window(t), 0);
        assert_eq!(
            step(&mut b, Ending::Failed, 0, t),
            Next::Restart { delay: secs(1) }
        );
        assert_eq!(b.total(), 4);
    }

    #[test]
    fn more_than_the_limit_within_the_window_gives_up_and_old_restarts_age_out() {
        let mut r = rules(RestartPolicy::Always);
        r.limit = 3;
        r.window = secs(100);
        let mut b = Backoff::new(r);
        let t = Instant::now();
        for i in 0..3 {
            let next = step(&mut b, Ending::Failed, 0, t + secs(i));
            assert!(matches!(next, Next::Restart { .. }), "{i}: {next:?}");
        }
        assert_eq!(
            step(&mut b, Ending::Clean, 0, t + secs(10)),
            Next::GiveUp { restarts: 3 }
        );
        // 100 s after the first restart it no longer counts.
        let later = t + secs(100);
        assert_eq!(b.in_window(later), 2);
        assert!(matches!(
            step(&mut b, Ending::Failed, 0, later),
            Next::Restart { .. }
        ));
    }

    #[test]
    fn no_limit_means_never_giving_up() {
        let mut b = Backoff::new(rules(RestartPolicy::OnFailure));
        let t = Instant::now();
        for _ in 0..10_000 {
            assert!(matches!(
                step(&mut b, Ending::Failed, 0, t),
                Next::Restart { .. }
            ));
        }
        assert_eq!(b.in_window(t), WINDOW_COUNT_CAP);
        assert_eq!(b.total(), 10_000);
    }
}
