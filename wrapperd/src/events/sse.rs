//! `GET /events` (SPEC §11): the bus as server-sent events.
//!
//! A stream is `snapshot` (the current `/status`, carrying the id of the newest event before
//! it), the events a client missed when it gives `Last-Event-ID` or `?since=ID` (the held ones
//! after that id, from the newest [`HISTORY`](super::HISTORY)), then every event as it happens.
//! Each is `id: N` and one `data:` line of JSON, then a blank line; there are no `event:` lines
//! (the kind is in the JSON), so `EventSource.onmessage` sees every event. A comment line
//! (`: keep-alive`) goes out after [`KEEP_ALIVE`] without anything else. With `?once` the
//! answer ends after the snapshot and the replay: a poller (fftop's timeline) asks
//! `/events?since=ID&once` now and then instead of holding a stream open.
//!
//! Limits: at most [`MAX_STREAMS`] streams per listener (the next one gets `503`). A stream never
//! holds up the bus: a task per stream takes the events from the broadcast and hands them to the
//! response's body through a queue of [`STREAM_QUEUE`] frames without waiting; a client that
//! lets that queue fill up, or falls more than the broadcast's capacity behind, has its stream
//! ended (it can reconnect with `Last-Event-ID` and miss nothing still held). A client that stops
//! reading altogether is cut by the API's write-stall limit (30 s, `api::Limits::write_stall`).
//! When wrapperd exits, the streams send what they hold and end.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use shared::events::{Event, EventKind};
use shared::timefmt;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use super::Published;
use crate::state::Daemon;

/// Streams per listener.
pub(crate) const MAX_STREAMS: usize = 64;
/// Idle time after which a comment line is sent.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Frames waiting for the client, per stream; a stream that lets them pile up is ended.
const STREAM_QUEUE: usize = 256;

/// The stream slots of one listener (a field of the API's per-listener context).
#[derive(Debug)]
pub(crate) struct Slots(Arc<Semaphore>);

impl Default for Slots {
    fn default() -> Self {
        Slots(Arc::new(Semaphore::new(MAX_STREAMS)))
    }
}

/// One event as its stream frame.
fn frame(id: u64, json: &str) -> String {
    format!("id: {id}\ndata: {json}\n\n")
}

/// `since` from `Last-Event-ID` (first) or `?since=`; `Err` is the one line of a `400`.
fn since_of(params: &[(String, String)], headers: &HeaderMap) -> Result<Option<u64>, String> {
    let (name, value) = match headers.get("last-event-id") {
        Some(v) => ("Last-Event-ID", v.to_str().unwrap_or("(not text)").trim()),
        None => match params.iter().find(|(k, _)| k == "since") {
            Some((_, v)) => ("since", v.as_str()),
            None => return Ok(None),
        },
    };
    value
        .parse::<u64>()
        .map(Some)
        .map_err(|_| format!("{name} must be an event id (an integer >= 0), got {value:?}"))
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    // No trailing newline, like every other text answer of the API.
    let mut r = Response::new(text.into().into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The answer to `GET /events` on a listener with these `slots`.
pub(crate) fn respond(
    shared: &Arc<Daemon>,
    slots: &Slots,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Response {
    let since = match since_of(params, headers) {
        Ok(s) => s,
        Err(message) => return plain(StatusCode::BAD_REQUEST, message),
    };
    let bus = shared.events();
    if bus.closing().is_cancelled() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "wrapperd is exiting");
    }
    let Ok(permit) = slots.0.clone().try_acquire_owned() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event streams: {MAX_STREAMS} are open on this listener"),
        );
    };
    let (last_id, replay, rx) = bus.subscribe(since);
    let mut initial = VecDeque::with_capacity(replay.len() + 1);
    initial.push_back(snapshot(shared, last_id));
    initial.extend(replay.iter().map(|p| frame(p.event.id, &p.json)));
    let (tx, body_rx) = mpsc::channel(STREAM_QUEUE);
    if params.iter().any(|(k, _)| k == "once") {
        drop(tx); // the body ends after the initial frames
    } else {
        tokio::spawn(forward(rx, tx, bus.closing().clone(), KEEP_ALIVE));
    }
    let body = EventStream {
        initial,
        rx: body_rx,
        _slot: permit,
    };
    let mut r = warp::reply::stream(body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx: pass the stream on as it comes.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// The `snapshot` frame: the current `/status`, with the id of the newest event before it.
fn snapshot(shared: &Daemon, last_id: u64) -> String {
    let status = shared.status();
    let mut e = Event::new(
        last_id,
        timefmt::rfc3339_ms(timefmt::now_ms()),
        EventKind::Snapshot,
        status.run.number,
        status.health,
    );
    e.reason = status.reason.clone();
    e.status = Some(Box::new(status));
    let json = serde_json::to_string(&e).unwrap_or_else(|_| "{}".into());
    frame(last_id, &json)
}

/// Takes the events from the broadcast to one stream's queue, never waiting for the client;
/// ends the stream when the client falls behind, goes away, or wrapperd exits.
async fn forward(
    mut rx: broadcast::Receiver<Arc<Published>>,
    tx: mpsc::Sender<String>,
    closing: CancellationToken,
    keep_alive: Duration,
) {
    loop {
        let next = tokio::select! {
            biased;
            r = rx.recv() => match r {
                Ok(p) => frame(p.event.id, &p.json),
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!("events: a stream fell {n} events behind; ended");
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            () = tx.closed() => return,
            () = closing.cancelled() => {
                while let Ok(p) = rx.try_recv() {
                    let _ = tx.try_send(frame(p.event.id, &p.json));
                }
                return;
            }
            () = tokio::time::sleep(keep_alive) => ": keep-alive\n\n".to_string(),
        };
        if tx.try_send(next).is_err() {
            tracing::debug!("events: a stream's client does not keep up; ended");
            return;
        }
    }
}

/// A stream's body: the first frames, then what [`forward`] hands over; holds its slot.
struct EventStream {
    /// The snapshot and the replayed events.
    initial: VecDeque<String>,
    /// The live frames.
    rx: mpsc::Receiver<String>,
    /// The listener's slot, freed with the body.
    _slot: OwnedSemaphorePermit,
}

impl futures::Stream for EventStream {
    type Item = Result<String, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(f) = self.initial.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        self.rx.poll_recv(cx).map(|o| o.map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Bus, Emit, Head};
    use shared::api::Health;

    fn head() -> Head {
        Head {
            run: 1,
            health: Health::Stopping,
            reason: Some("why".into()),
        }
    }

    #[test]
    fn since_comes_from_the_header_first_then_the_query() {
        let mut h = HeaderMap::new();
        let q = vec![("since".to_string(), "4".to_string())];
        assert_eq!(since_of(&q, &h), Ok(Some(4)));
        assert_eq!(since_of(&[], &h), Ok(None));
        h.insert("last-event-id", HeaderValue::from_static(" 9 "));
        assert_eq!(since_of(&q, &h), Ok(Some(9)));
        h.insert("last-event-id", HeaderValue::from_static("x"));
        assert!(since_of(&q, &h).unwrap_err().contains("Last-Event-ID"));
        let bad = vec![("since".to_string(), "-1".to_string())];
        assert!(since_of(&bad, &HeaderMap::new()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn events_then_keep_alives_then_the_end_at_exit() {
        let bus = Bus::default();
        let (_, _, rx) = bus.subscribe(None);
        let (tx, mut out) = mpsc::channel(STREAM_QUEUE);
        let closing = CancellationToken::new();
        let task = tokio::spawn(forward(rx, tx, closing.clone(), KEEP_ALIVE));
        bus.publish(head(), Emit::Stopping);
        let f = out.recv().await.unwrap();
        assert!(f.starts_with("id: 1\ndata: {\"id\":1,"), "{f}");
        assert!(f.ends_with("}\n\n"));
        let t = tokio::time::Instant::now();
        assert_eq!(out.recv().await.unwrap(), ": keep-alive\n\n");
        assert_eq!(t.elapsed(), KEEP_ALIVE);
        bus.publish(head(), Emit::Stopping);
        closing.cancel();
        let mut rest = Vec::new();
        while let Some(f) = out.recv().await {
            rest.push(f);
        }
        assert_eq!(rest.len(), 1, "{rest:?}");
        assert!(rest[0].starts_with("id: 2\n"));
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_client_that_does_not_keep_up_is_ended_without_holding_the_bus() {
        let bus = Bus::default();
        let (_, _, rx) = bus.subscribe(None);
        let (tx, out) = mpsc::channel(4);
        let task = tokio::spawn(forward(rx, tx, CancellationToken::new(), KEEP_ALIVE));
        for _ in 0..2000 {
            bus.publish(head(), Emit::Stopping);
        }
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the stream ended")
            .unwrap();
        drop(out);
    }
}
