//! The event bus (SPEC §11): one ordered stream of what happens to the encode, for `GET /events`,
//! `EVENT_HOOK` and `WEBHOOK_URL`.
//!
//! # Layout
//! - this file: [`Emit`] (what the supervisor reports), [`Bus`] (ids, the history of the newest
//!   [`HISTORY`] events for replay, the broadcast to the streams, the queues of the hook and the
//!   webhook), [`start`] (the tasks) and [`drain`] (the end of a life).
//! - `sse`: `GET /events` as server-sent events.
//! - `hook`: `EVENT_HOOK`, one command at a time, and the hand-over of its exit status by the
//!   reaper.
//! - `webhook`: `WEBHOOK_URL`, JSON POSTs with retries.
//!
//! # Who emits what
//! Events are published by [`Daemon`] methods while they hold the state's lock, so the order of
//! the events is the order of the state changes, and each event's `health` and `reason` are those
//! right after its change. `started`, `stopping` and `exited` come from
//! [`Daemon::ffmpeg_started`], [`Daemon::begin_stopping`] and [`Daemon::set_exit`]; the supervisor
//! reports the rest with [`Daemon::emit`] (or [`Daemon::emit_locked`] inside a `Daemon` method).
//! `health` is found by a task of its own ([`watch_health`]): woken at once when a progress block
//! or a manager poll changes the health word (a comparison with the last word sent, under the lock
//! those already hold), and by its own timer when only time changes it (warming up ends, 2 s
//! without advance); a poll once a second catches anything else. `health` is sent for the encode's
//! words (`warming_up`, `ok`, `failing`, `stalled`); the changes to `stopping`, `restarting` and
//! `exited` are the events of those names, and the `warming_up` of a new run is its `started`.
//!
//! Publishing costs one short lock, one serialization and a broadcast; the consumers (streams,
//! hook, webhook) have their own bounded queues, so nothing waits for them.

pub(crate) mod hook;
pub(crate) mod sse;
pub(crate) mod webhook;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use shared::api::{ExitInfo, FfmpegStatus, Health, RunRecord};
use shared::events::{Event, EventKind};
use shared::timefmt;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use crate::state::Daemon;

/// Events kept for `Last-Event-ID` / `?since=` replay.
pub(crate) const HISTORY: usize = 1000;
/// Events a stream may be behind the newest before it is dropped as too slow.
const CHANNEL: usize = 1024;
/// The health watcher looks at least this often, whatever woke it or not: a safety net only.
/// Every change of the word is woken for (a block, a manager poll, a memory sample, a change of
/// state) or foreseen ([`Daemon::health_event`]'s next change), so an idle encode's watcher
/// does not wake every second.
const HEALTH_POLL: Duration = Duration::from_secs(10);
/// [`Bus::last_word`] before any event.
const NO_WORD: u8 = u8::MAX;

/// What the supervisor reports, for [`Daemon::emit`]. Each becomes one event whose `run`,
/// `health` and `reason` are the state's at that moment (set the state first, then emit).
#[derive(Debug, Clone)]
// A few events per run: the size of `Exited`'s record costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Emit {
    /// A run began: ffmpeg was spawned with this pid.
    Started { pid: u32 },
    /// A stop was asked of ffmpeg (the reason is the state's stopping reason).
    Stopping,
    /// ffmpeg ended: its status, the run's record when one was made, and wrapperd's own exit
    /// when wrapperd exits after this run.
    Exited {
        ffmpeg_status: FfmpegStatus,
        record: Option<RunRecord>,
        exit: Option<ExitInfo>,
    },
    /// The next run starts after `delay` (the reason is the state's restarting reason).
    Restarting { delay: Duration },
    /// Too many restarts: `reason` is the exit reason (`gave up: N restarts in M s`).
    GaveUp { reason: String },
    /// A control request was accepted: `what` (`stop`, `restart`), from `origin`.
    Control { what: &'static str, origin: String },
}

impl Emit {
    fn kind(&self) -> EventKind {
        match self {
            Emit::Started { .. } => EventKind::Started,
            Emit::Stopping => EventKind::Stopping,
            Emit::Exited { .. } => EventKind::Exited,
            Emit::Restarting { .. } => EventKind::Restarting,
            Emit::GaveUp { .. } => EventKind::GaveUp,
            Emit::Control { .. } => EventKind::Control,
        }
    }

    /// Sets the fields of this kind on `e`.
    fn fill(self, e: &mut Event) {
        match self {
            Emit::Started { pid } => e.pid = Some(pid),
            Emit::Stopping => {}
            Emit::Exited {
                ffmpeg_status,
                record,
                exit,
            } => {
                e.exit_code = Some(ffmpeg_status.shell_code());
                e.ffmpeg_status = Some(ffmpeg_status);
                e.record = record;
                e.exit = exit;
            }
            Emit::Restarting { delay } => e.delay_s = Some(delay.as_secs_f64()),
            Emit::GaveUp { reason } => e.reason = Some(reason),
            Emit::Control { what, origin } => {
                e.reason = Some(format!("{what} requested by {origin}"));
                e.control = Some(what.to_string());
                e.origin = Some(origin);
            }
        }
    }
}

/// The state an event is stamped with: the run, the health word and its reason.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    /// `/status`'s `run.number`.
    pub(crate) run: u64,
    /// The health word.
    pub(crate) health: Health,
    /// The health's reason.
    pub(crate) reason: Option<String>,
}

/// One event as sent: the event and its JSON, serialized once for every consumer.
#[derive(Debug)]
pub(crate) struct Published {
    /// The event.
    pub(crate) event: Event,
    /// `event` as one line of JSON.
    pub(crate) json: String,
}

/// The ids, the history and the last health word sent, behind the bus's lock.
#[derive(Debug, Default)]
struct History {
    /// The id of the newest event (0: none yet).
    last_id: u64,
    /// The newest [`HISTORY`] events, oldest first.
    events: VecDeque<Arc<Published>>,
    /// The health word of the newest event (`None`: none yet).
    health: Option<Health>,
}

/// The consumers [`start`] set up: the hook's and the webhook's queues.
#[derive(Debug)]
struct Sinks {
    /// `EVENT_HOOK`'s queue, when set.
    hook: Option<Arc<hook::Queue>>,
    /// `WEBHOOK_URL`'s queue, when set.
    webhook: Option<Arc<webhook::Queue>>,
}

/// The event bus of one wrapperd (a field of [`Daemon`]).
#[derive(Debug)]
pub(crate) struct Bus {
    /// Ids, history, last health word; locked only after the state's lock (or without it).
    history: Mutex<History>,
    /// To the open streams.
    tx: broadcast::Sender<Arc<Published>>,
    /// The newest event's health word as an index of `Health::ALL` ([`NO_WORD`] before any),
    /// compared without a lock on every progress block.
    last_word: AtomicU8,
    /// Wakes the health watcher.
    health_wake: Notify,
    /// The hook's and webhook's queues, once started.
    sinks: OnceLock<Sinks>,
    /// Cancelled at the end of wrapperd's life: the streams and the watcher end.
    closing: CancellationToken,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            history: Mutex::default(),
            tx: broadcast::channel(CHANNEL).0,
            last_word: AtomicU8::new(NO_WORD),
            health_wake: Notify::new(),
            sinks: OnceLock::new(),
            closing: CancellationToken::new(),
        }
    }
}

fn word_index(h: Health) -> u8 {
    Health::ALL.iter().position(|w| *w == h).unwrap_or(0) as u8
}

/// The encode's own health words, the ones `health` events report.
fn is_encode_word(h: Health) -> bool {
    matches!(
        h,
        Health::WarmingUp | Health::Ok | Health::Failing | Health::Stalled
    )
}

impl Bus {
    fn lock(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes one event stamped with `head` (called under the state's lock, which orders
    /// the events as the changes).
    pub(crate) fn publish(&self, head: Head, what: Emit) {
        let kind = what.kind();
        self.publish_with(head, kind, |e| what.fill(e));
    }

    fn publish_with(&self, head: Head, kind: EventKind, fill: impl FnOnce(&mut Event)) {
        let mut h = self.lock();
        h.last_id += 1;
        let t = timefmt::rfc3339_ms(timefmt::now_ms());
        let mut event = Event::new(h.last_id, t, kind, head.run, head.health);
        event.reason = head.reason;
        fill(&mut event);
        let json = serde_json::to_string(&event).unwrap_or_else(|e| {
            format!(
                "{{\"id\":{},\"error\":\"cannot serialize: {e}\"}}",
                h.last_id
            )
        });
        let p = Arc::new(Published { event, json });
        h.events.push_back(p.clone());
        if h.events.len() > HISTORY {
            h.events.pop_front();
        }
        h.health = Some(head.health);
        self.last_word
            .store(word_index(head.health), Ordering::Relaxed);
        let _ = self.tx.send(p.clone());
        if let Some(s) = self.sinks.get() {
            if let Some(q) = &s.hook {
                q.push(p.clone());
            }
            if let Some(q) = &s.webhook {
                q.push(p);
            }
        }
    }

    /// Wakes the health watcher when `now_word` differs from the last word sent (a progress
    /// block or a manager poll may have changed it). One atomic load when nothing changed.
    pub(crate) fn health_seen(&self, now_word: Health) {
        if self.last_word.load(Ordering::Relaxed) != word_index(now_word) {
            self.health_wake.notify_one();
        }
    }

    /// Wakes the health watcher (after a change of state).
    pub(crate) fn wake_health(&self) {
        self.health_wake.notify_one();
    }

    /// Sends `health` if `head.health` is an encode word other than the last one sent (under
    /// the state's lock). The `warming_up` of a new run is its `started`: it is recorded
    /// without an event.
    pub(crate) fn health_now(&self, head: Head) {
        let mut h = self.lock();
        let old = h.health;
        if old == Some(head.health) || !is_encode_word(head.health) {
            return;
        }
        let silent = head.health == Health::WarmingUp && !old.is_some_and(is_encode_word);
        if silent {
            h.health = Some(head.health);
            self.last_word
                .store(word_index(head.health), Ordering::Relaxed);
            return;
        }
        drop(h);
        self.publish_with(head, EventKind::Health, |e| e.old = old);
    }

    /// Subscribes a stream: the id of the newest event, the held events after `since`
    /// (all of them when `since` is older than the history), and the receiver of what follows.
    pub(crate) fn subscribe(
        &self,
        since: Option<u64>,
    ) -> (
        u64,
        Vec<Arc<Published>>,
        broadcast::Receiver<Arc<Published>>,
    ) {
        let h = self.lock();
        let rx = self.tx.subscribe();
        let replay = match since {
            Some(s) => h
                .events
                .iter()
                .filter(|p| p.event.id > s)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (h.last_id, replay, rx)
    }

    /// The newest `count` events held, oldest first (for tests).
    #[cfg(test)]
    pub(crate) fn recent(&self, count: usize) -> Vec<Arc<Published>> {
        let h = self.lock();
        let skip = h.events.len().saturating_sub(count);
        h.events.iter().skip(skip).cloned().collect()
    }

    /// Cancelled when wrapperd's life ends.
    pub(crate) fn closing(&self) -> &CancellationToken {
        &self.closing
    }
}

/// Starts what the configuration asks for: the health watcher always, the hook runner with
/// `EVENT_HOOK`, the webhook sender with `WEBHOOK_URL`. Called once, in the runtime, before
/// ffmpeg starts.
pub(crate) fn start(shared: &Arc<Daemon>) {
    let config = &shared.config;
    let name = config
        .workdir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| config.workdir.display().to_string());
    let hook = config.event_hook.as_ref().map(|cmd| {
        hook::start(hook::HookConfig {
            command: cmd.clone(),
            timeout: config.event_hook_timeout,
            name: name.clone(),
            workdir: config.workdir.display().to_string(),
        })
    });
    let webhook = config.webhook_url.as_ref().and_then(|url| {
        webhook::start(webhook::WebhookConfig {
            url: url.clone(),
            token: config.webhook_token.clone(),
            events: config.webhook_events.clone(),
            retry_for: config.webhook_retry_for,
            name,
        })
    });
    let _ = shared.events().sinks.set(Sinks { hook, webhook });
    tokio::spawn(watch_health(shared.clone()));
}

/// Sends `health` events (see the module doc): looks when woken, when the manager says the
/// word may change with time, and at least every [`HEALTH_POLL`].
async fn watch_health(shared: Arc<Daemon>) {
    let bus = shared.events();
    loop {
        let now = Instant::now();
        let next = shared
            .health_event(now)
            .map_or(now + HEALTH_POLL, |t| t.min(now + HEALTH_POLL));
        tokio::select! {
            () = bus.health_wake.notified() => {}
            () = tokio::time::sleep_until(next.into()) => {}
            () = bus.closing.cancelled() => return,
        }
    }
}

/// The end of wrapperd's life (call after the last event, `exited`, was emitted): ends the
/// streams (each sends what it holds first) and gives the hook and the webhook until `limit`
/// to deliver what is queued (SPEC §11: up to 10 s).
pub(crate) async fn drain(shared: &Daemon, limit: Duration) {
    let bus = shared.events();
    bus.closing.cancel();
    let Some(sinks) = bus.sinks.get() else {
        return;
    };
    let deadline = tokio::time::Instant::now() + limit;
    let idle = || {
        sinks.hook.as_ref().is_none_or(|q| q.idle())
            && sinks.webhook.as_ref().is_none_or(|q| q.idle())
    };
    while !idle() {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                "events: hook or webhook still busy {:.0} s after the exit; not waiting longer",
                limit.as_secs_f64()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(h: Health) -> Head {
        Head {
            run: 1,
            health: h,
            reason: None,
        }
    }

    #[test]
    fn ids_increase_and_the_history_keeps_the_newest() {
        let bus = Bus::default();
        for _ in 0..HISTORY + 5 {
            bus.publish(head(Health::Stopping), Emit::Stopping);
        }
        let all = bus.recent(usize::MAX);
        assert_eq!(all.len(), HISTORY);
        assert_eq!(all[0].event.id, 6);
        assert_eq!(all.last().unwrap().event.id, HISTORY as u64 + 5);
        let (last, replay, _) = bus.subscribe(Some(HISTORY as u64 + 2));
        assert_eq!(last, HISTORY as u64 + 5);
        let ids: Vec<u64> = replay.iter().map(|p| p.event.id).collect();
        assert_eq!(ids, [1003, 1004, 1005]);
        assert!(bus.subscribe(None).1.is_empty());
    }

    #[test]
    fn health_events_only_for_changes_of_the_encode_word() {
        let bus = Bus::default();
        bus.health_now(head(Health::WarmingUp)); // the first run's start: no event
        bus.publish(head(Health::WarmingUp), Emit::Started { pid: 7 });
        bus.health_now(head(Health::WarmingUp));
        bus.health_now(head(Health::Ok));
        bus.health_now(head(Health::Ok));
        bus.health_now(head(Health::Stalled));
        bus.publish(head(Health::Stopping), Emit::Stopping);
        bus.health_now(head(Health::Stopping)); // a lifecycle word: its own event
        bus.publish(
            head(Health::Restarting),
            Emit::Restarting {
                delay: Duration::from_secs(2),
            },
        );
        bus.health_now(head(Health::WarmingUp)); // a new run: its `started`
        bus.health_now(head(Health::Failing));
        let got: Vec<(EventKind, Option<Health>, Health)> = bus
            .recent(100)
            .iter()
            .map(|p| (p.event.event, p.event.old, p.event.health))
            .collect();
        use EventKind as K;
        use Health as H;
        assert_eq!(
            got,
            [
                (K::Started, None, H::WarmingUp),
                (K::Health, Some(H::WarmingUp), H::Ok),
                (K::Health, Some(H::Ok), H::Stalled),
                (K::Stopping, None, H::Stopping),
                (K::Restarting, None, H::Restarting),
                (K::Health, Some(H::WarmingUp), H::Failing),
            ]
        );
        let json: serde_json::Value = serde_json::from_str(&bus.recent(1)[0].json).unwrap();
        assert_eq!(json["event"], "health");
        assert_eq!(json["old"], "warming_up");
    }

    #[test]
    fn a_changed_word_wakes_the_watcher_once() {
        let bus = Bus::default();
        bus.health_now(head(Health::WarmingUp));
        bus.health_seen(Health::WarmingUp);
        bus.health_seen(Health::Ok);
        // One stored permit: the watcher wakes once.
        let woke = futures_poll(bus.health_wake.notified());
        assert!(woke);
        assert!(!futures_poll(bus.health_wake.notified()));
    }

    /// Polls a future once.
    fn futures_poll<F: std::future::Future>(f: F) -> bool {
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        f.as_mut().poll(&mut cx).is_ready()
    }
}
