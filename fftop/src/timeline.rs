//! The detail view's timeline: the target's newest events (SPEC §11).
//!
//! Polled, not streamed: while the detail view is open, each poll asks
//! `/events?since=<newest id seen>&once`, an answer that ends after the replay of the events
//! held since then (usually none: a few hundred bytes). Holding an event stream open per target
//! would cost a connection and a task per target for a view that shows one target, and the
//! poll already runs every interval; an event reaches the timeline within one interval. On
//! opening, one extra request learns the newest id (from the snapshot) and asks for the
//! [`KEPT`] before it.

use std::time::Duration;

use shared::client::Client;
use shared::events::Event;

/// Events the timeline keeps per target.
pub const KEPT: usize = 8;

/// The events after `*last` (updated), bounded by `timeout`; empty on any failure (the next
/// poll asks again). Without a `*last`, first learns the newest id and takes the [`KEPT`]
/// before it.
pub async fn fetch(client: &Client, last: &mut Option<u64>, timeout: Duration) -> Vec<Event> {
    let ask = |since: u64| tokio::time::timeout(timeout, client.events(since));
    let since = match *last {
        Some(s) => s,
        None => match ask(u64::MAX).await {
            Ok(Ok((newest, _))) => newest.saturating_sub(KEPT as u64),
            _ => return Vec::new(),
        },
    };
    match ask(since).await {
        Ok(Ok((newest, events))) => {
            // A newest id below what was seen: another wrapperd (ids start again).
            *last = Some(if newest < since { 0 } else { newest });
            if newest < since {
                return Vec::new();
            }
            events
        }
        _ => Vec::new(),
    }
}

/// Adds `new` to `held` (the newest [`KEPT`]); an id not above the newest held starts afresh
/// (a restarted wrapperd). Returns whether anything changed.
pub fn merge(held: &mut Vec<Event>, new: Vec<Event>) -> bool {
    if new.is_empty() {
        return false;
    }
    for e in new {
        if held.last().is_some_and(|l| e.id <= l.id) {
            held.clear();
        }
        held.push(e);
    }
    let extra = held.len().saturating_sub(KEPT);
    held.drain(..extra);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::Health;
    use shared::events::EventKind;

    fn ev(id: u64) -> Event {
        Event::new(id, "t".into(), EventKind::Health, 1, Health::Ok)
    }

    #[test]
    fn keeps_the_newest_and_starts_afresh_for_a_new_wrapperd() {
        let mut held = Vec::new();
        assert!(!merge(&mut held, Vec::new()));
        assert!(merge(&mut held, (1..=10).map(ev).collect()));
        let ids: Vec<u64> = held.iter().map(|e| e.id).collect();
        assert_eq!(ids, [3, 4, 5, 6, 7, 8, 9, 10]);
        assert!(merge(&mut held, vec![ev(2)]));
        assert_eq!(held.iter().map(|e| e.id).collect::<Vec<_>>(), [2]);
    }
}
