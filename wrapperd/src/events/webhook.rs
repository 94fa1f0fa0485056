//! `WEBHOOK_URL` (SPEC §11): the chosen events POSTed as JSON, one at a time, in order.
//!
//! - **Which.** An event whose name, or for `health` whose new word, is in `WEBHOOK_EVENTS`;
//!   and a `health` change to `ok` that follows a sent alert (`failing`, `stalled`, `stopping`,
//!   `exited`, `restarting`, `gave_up`), as the recovery.
//! - **Body.** The event's JSON plus `name` (the work directory's name) and a one-line summary as
//!   both `text` (Slack, Mattermost) and `content` (Discord); `Authorization: Bearer
//!   $WEBHOOK_TOKEN` when set.
//! - **Failures.** Each try has 5 s ([`TIMEOUT`]). Connection errors, timeouts and `5xx` are
//!   tried again after 1, 2, 4 … s while the event is younger than `WEBHOOK_RETRY_FOR` (120 s);
//!   any other answer that is not `2xx` (a `4xx`: the request itself is wrong) is not. A failed
//!   delivery is logged once, at its end, with the last status or error; the URL is logged as
//!   its scheme and host only (a Slack webhook's path is its secret).
//! - **Memory.** At most [`QUEUE`] events wait; when a dead server makes them pile up, the oldest
//!   are dropped and counted in the log. An event that waited past its retry time gets one try.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shared::api::Health;
use shared::events::{Event, EventKind};
use tokio::sync::Notify;

use super::Published;
use crate::config::EventSet;

/// Events waiting for delivery; more drop the oldest.
pub(crate) const QUEUE: usize = 100;
/// One try's time limit.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The first wait before a retry (doubled after each one).
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// What the sender needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct WebhookConfig {
    /// `WEBHOOK_URL`.
    pub(crate) url: String,
    /// `WEBHOOK_TOKEN`.
    pub(crate) token: Option<String>,
    /// `WEBHOOK_EVENTS`.
    pub(crate) events: EventSet,
    /// `WEBHOOK_RETRY_FOR`.
    pub(crate) retry_for: Duration,
    /// The work directory's name.
    pub(crate) name: String,
}

/// The queue and the choice of events, behind the queue's lock.
#[derive(Debug, Default)]
struct QueueState {
    /// Events to send, oldest first, with when they were queued.
    events: VecDeque<(Arc<Published>, Instant)>,
    /// Dropped since the last delivery began.
    dropped: u64,
    /// A delivery is under way.
    busy: bool,
    /// An alert was sent and no `ok` since: the next `ok` is sent as the recovery.
    alerting: bool,
}

/// The webhook's queue (the bus pushes, the sender pops).
#[derive(Debug)]
pub(crate) struct Queue {
    /// `WEBHOOK_EVENTS`.
    chosen: EventSet,
    /// The events and counts.
    state: Mutex<QueueState>,
    /// Wakes the sender.
    wake: Notify,
}

/// Words after which an `ok` is a recovery.
fn is_alert(word: &str) -> bool {
    matches!(
        word,
        "failing" | "stalled" | "stopping" | "exited" | "restarting" | "gave_up"
    )
}

/// The word `WEBHOOK_EVENTS` is matched with: the health word of a `health` event, else the
/// event's name.
fn word(e: &Event) -> &'static str {
    match e.event {
        EventKind::Health => e.health.as_str(),
        k => k.as_str(),
    }
}

impl Queue {
    fn new(chosen: EventSet) -> Queue {
        Queue {
            chosen,
            state: Mutex::default(),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `e` is sent, updating the recovery state (called in event order).
    fn choose(&self, s: &mut QueueState, e: &Event) -> bool {
        let w = word(e);
        let chosen = self.chosen.contains(w)
            || (e.event == EventKind::Health && self.chosen.contains("health"));
        let recovery = e.event == EventKind::Health && e.health == Health::Ok && s.alerting;
        if e.event == EventKind::Health && e.health == Health::Ok {
            s.alerting = false;
        }
        if chosen && is_alert(w) {
            s.alerting = true;
        }
        chosen || recovery
    }

    /// Queues the event if it is chosen, dropping the oldest when full.
    pub(crate) fn push(&self, p: Arc<Published>) {
        let mut s = self.lock();
        if !self.choose(&mut s, &p.event) {
            return;
        }
        if s.events.len() >= QUEUE {
            s.events.pop_front();
            s.dropped += 1;
        }
        s.events.push_back((p, Instant::now()));
        drop(s);
        self.wake.notify_one();
    }

    /// Nothing queued and no delivery under way.
    pub(crate) fn idle(&self) -> bool {
        let s = self.lock();
        s.events.is_empty() && !s.busy
    }

    fn pop(&self) -> Option<(Arc<Published>, Instant, u64)> {
        let mut s = self.lock();
        let (p, at) = s.events.pop_front()?;
        s.busy = true;
        Some((p, at, std::mem::take(&mut s.dropped)))
    }

    fn done(&self) {
        self.lock().busy = false;
    }
}

/// Starts the sender; `None` (logged) when the HTTP client cannot be built.
pub(crate) fn start(cfg: WebhookConfig) -> Option<Arc<Queue>> {
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .user_agent(concat!("wrapperd/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("WEBHOOK_URL: cannot build the HTTP client: {e}; no webhooks");
            return None;
        }
    };
    let q = Arc::new(Queue::new(cfg.events.clone()));
    tokio::spawn(run(cfg, client, q.clone()));
    Some(q)
}

/// Delivers the queued events, one at a time, forever.
async fn run(cfg: WebhookConfig, client: reqwest::Client, q: Arc<Queue>) {
    let shown = shown_url(&cfg.url);
    loop {
        let Some((p, queued, dropped)) = q.pop() else {
            q.wake.notified().await;
            continue;
        };
        if dropped > 0 {
            tracing::warn!(
                "webhook {shown}: queue full ({QUEUE}): dropped the {dropped} oldest events"
            );
        }
        deliver(&cfg, &client, &shown, &p, queued + cfg.retry_for).await;
        q.done();
    }
}

/// The body: the event's JSON with `name`, `text` and `content` added.
pub(crate) fn payload(name: &str, p: &Published) -> serde_json::Value {
    let mut v = serde_json::from_str::<serde_json::Value>(&p.json).unwrap_or_default();
    let summary = p.event.summary(name);
    if let Some(o) = v.as_object_mut() {
        o.insert("name".into(), name.into());
        o.insert("text".into(), summary.clone().into());
        o.insert("content".into(), summary.into());
    }
    v
}

/// What one try gave.
enum Try {
    /// `2xx`.
    Delivered,
    /// Not worth trying again (`4xx`, other answers), with the status.
    Refused(u16),
    /// Worth trying again (connection error, timeout, `5xx`), with what happened.
    Failed(String),
}

/// POSTs one event, retrying until `until`; logs a failure once.
async fn deliver(
    cfg: &WebhookConfig,
    client: &reqwest::Client,
    shown: &str,
    p: &Published,
    until: Instant,
) {
    let body = payload(&cfg.name, p);
    let what = format!("event {} ({})", p.event.id, word(&p.event));
    let started = Instant::now();
    let mut wait = FIRST_RETRY;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let mut req = client.post(&cfg.url).json(&body);
        if let Some(t) = &cfg.token {
            req = req.bearer_auth(t);
        }
        let outcome = match req.send().await {
            Ok(r) if r.status().is_success() => Try::Delivered,
            Ok(r) if r.status().is_server_error() => Try::Failed(format!("HTTP {}", r.status())),
            Ok(r) => Try::Refused(r.status().as_u16()),
            Err(e) if e.is_timeout() => Try::Failed(format!("no answer within {TIMEOUT:?}")),
            Err(e) => Try::Failed(innermost(&e)),
        };
        match outcome {
            Try::Delivered => {
                tracing::debug!("webhook {shown}: {what} delivered (try {tries})");
                return;
            }
            Try::Refused(status) => {
                tracing::warn!("webhook {shown}: {what} refused with HTTP {status}; not retried");
                return;
            }
            Try::Failed(why) if Instant::now() + wait > until => {
                tracing::warn!(
                    "webhook {shown}: {what} not delivered after {tries} tries in {:.1} s: {why}",
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            Try::Failed(why) => {
                tracing::debug!(
                    "webhook {shown}: {what} try {tries} failed ({why}); again in {wait:?}"
                );
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

/// The innermost cause of an error ("Connection refused"), which says it best.
fn innermost(e: &dyn std::error::Error) -> String {
    let mut src = e;
    while let Some(next) = src.source() {
        src = next;
    }
    src.to_string()
}

/// The URL as logged: scheme and host (and port), never the path or query (a secret in Slack's
/// and Discord's webhook URLs).
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(bad URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u64, kind: EventKind, h: Health) -> Arc<Published> {
        let e = Event::new(id, "t".into(), kind, 1, h);
        let json = serde_json::to_string(&e).unwrap();
        Arc::new(Published { event: e, json })
    }

    fn default_set() -> EventSet {
        crate::config::Config::default().webhook_events
    }

    #[test]
    fn the_default_set_and_the_recovery() {
        let q = Queue::new(default_set());
        use EventKind as K;
        use Health as H;
        let events = [
            (K::Started, H::WarmingUp),
            (K::Health, H::Ok),      // not after an alert
            (K::Health, H::Stalled), // sent
            (K::Health, H::Ok),      // recovery
            (K::Health, H::Ok),
            (K::Stopping, H::Stopping),
            (K::Exited, H::Exited), // sent
            (K::Restarting, H::Restarting),
            (K::Started, H::WarmingUp),
            (K::Health, H::Ok), // recovery
            (K::Control, H::Ok),
        ];
        for (i, (k, h)) in events.into_iter().enumerate() {
            q.push(ev(i as u64 + 1, k, h));
        }
        let mut ids = Vec::new();
        while let Some((p, _, _)) = q.pop() {
            ids.push(p.event.id);
        }
        assert_eq!(ids, [3, 4, 7, 8, 10]);
    }

    #[test]
    fn the_body_has_text_content_and_name() {
        let p = ev(5, EventKind::Health, Health::Stalled);
        let v = payload("cam1", &p);
        assert_eq!(v["id"], 5);
        assert_eq!(v["name"], "cam1");
        assert_eq!(v["text"], "cam1: stalled");
        assert_eq!(v["text"], v["content"]);
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let q = Queue::new(default_set());
        for id in 1..=(QUEUE as u64 + 7) {
            q.push(ev(id, EventKind::Exited, Health::Exited));
        }
        let (p, _, dropped) = q.pop().unwrap();
        assert_eq!((p.event.id, dropped), (8, 7));
    }

    #[test]
    fn urls_are_logged_without_their_secret_path() {
        assert_eq!(
            shown_url("https://hooks.slack.com/services/T0/B1/XYZ"),
            "https://hooks.slack.com"
        );
        assert_eq!(shown_url("http://127.0.0.1:9/x?k=1"), "http://127.0.0.1:9");
    }
}
