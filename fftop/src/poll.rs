//! One poller task per target: `/status` every interval, rate points from `/series`, log lines
//! for the detail view, each request bounded by a timeout.
//!
//! A poller never blocks anything but itself: a hung or dead wrapperd costs its own task a
//! timeout, and the screen keeps running. On (re)connect it loads the last
//! [`HISTORY_SECONDS`](crate::app::HISTORY_SECONDS) of `/series` so the graphs are full from the
//! first frame; afterwards it asks only for the newest seconds. A wrapperd without `/series`
//! (older, or answering an error) gets its points accumulated locally from `/status`. After a
//! failure the next try backs off (doubling, up to 5 s or the interval if longer), so a dead
//! target is cheap yet recovers by itself.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;

use shared::api::{SeriesPoint, Status};
use shared::client::{Client, ClientError, Target};
use shared::timefmt::now_ms;
use tokio::sync::{mpsc, watch};

use crate::app::HISTORY_SECONDS;
use crate::event::{Event, PollAnswer, PollResult, RemoteChild};

/// Output lines fetched for the detail view.
pub const LOG_LINES: usize = 60;

/// Whose output lines the pollers fetch (the detail or logs view is open), and how many to load
/// first; afterwards a poller asks for at most [`FOLLOW_LINES`](crate::logs::FOLLOW_LINES).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// The target.
    pub target: Target,
    /// Lines to load when the view opens.
    pub lines: usize,
}

/// How many lines to ask for: `lines` the first time, fewer when following.
fn lines_to_ask(w: &Watched, loaded: bool) -> usize {
    if loaded {
        w.lines.min(crate::logs::FOLLOW_LINES)
    } else {
        w.lines
    }
}

/// How every poller behaves.
#[derive(Debug, Clone)]
pub struct PollConfig {
    pub interval: Duration,
    /// Per request.
    pub timeout: Duration,
    /// Bearer token for TCP targets.
    pub token: Option<String>,
    /// Also fetch `/metrics` each round (`--serve`).
    pub metrics: bool,
    /// Fetch rate points from `/series` (the screen's graphs; `--serve` has none).
    pub series: bool,
}

impl PollConfig {
    pub fn new(interval: Duration, token: Option<String>) -> Self {
        PollConfig {
            interval,
            timeout: request_timeout(interval),
            token,
            metrics: false,
            series: true,
        }
    }

    /// The wait after `failures` failed polls in a row.
    pub fn backoff(&self, failures: u32) -> Duration {
        let cap = self.interval.max(Duration::from_secs(5));
        let factor = 1u32 << failures.saturating_sub(1).min(8);
        self.interval.saturating_mul(factor).min(cap)
    }
}

/// min(interval, 2 s), but never below 250 ms (a busy machine still gets to answer).
pub fn request_timeout(interval: Duration) -> Duration {
    interval
        .min(Duration::from_secs(2))
        .max(Duration::from_millis(250))
}

/// What a poller remembers between polls.
#[derive(Debug, Default)]
struct Session {
    /// The full history was loaded since the last failure.
    history_loaded: bool,
    /// `/series` answered with an error status or garbage: accumulate points locally instead.
    series_broken: bool,
    /// Newest point time seen, wrapperd's clock.
    last_t: Option<i64>,
    /// When the last poll succeeded, fftop's clock.
    last_ok_ms: Option<i64>,
    /// The newest event id seen, for the detail view's timeline (`None`: ask where to start).
    last_event: Option<u64>,
    /// The target is an aggregator: ask `/targets`, not `/status`.
    aggregator: bool,
    /// The aggregator's encodes whose `/series` history was loaded (while they stay up).
    histories: BTreeSet<Target>,
    /// The watched lines were loaded since the view opened (now only the newest are asked).
    logs_loaded: bool,
}

/// Polls `target` until the task is aborted, sending each result as an [`Event::Poll`] (or,
/// for an aggregator, its encodes as an [`Event::Remote`]). `detail` says which target's detail
/// view is open (that one also fetches log lines).
pub async fn run(
    target: Target,
    cfg: PollConfig,
    tx: mpsc::Sender<Event>,
    mut detail: watch::Receiver<Option<Watched>>,
) {
    let mut session = Session::default();
    let mut failures = 0u32;
    let mut client: Option<Client> = None;
    loop {
        let watched = detail.borrow_and_update().clone();
        let want_logs = watched
            .filter(|w| w.target == target)
            .map(|w| lines_to_ask(&w, session.logs_loaded));
        if client.is_none() {
            client = Client::new(target.clone(), cfg.token.clone(), cfg.timeout).ok();
        }
        let events = match &client {
            Some(c) => round(c, &mut session, want_logs, &cfg).await,
            None => vec![Event::Poll {
                target: target.clone(),
                result: PollResult::Down {
                    error: "cannot build the HTTP client".into(),
                    at_ms: now_ms(),
                },
            }],
        };
        let ok = events.iter().any(|e| {
            matches!(
                e,
                Event::Remote { .. }
                    | Event::Poll {
                        result: PollResult::Up(_),
                        ..
                    }
            )
        });
        for ev in events {
            if tx.send(ev).await.is_err() {
                return;
            }
        }
        let wait = if ok {
            failures = 0;
            cfg.interval
        } else {
            failures = failures.saturating_add(1);
            session.history_loaded = false;
            cfg.backoff(failures)
        };
        // Sleep, but wake at once when the detail view opens or closes, so logs show quickly.
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = detail.changed() => {
                if changed.is_err() {
                    return;
                }
                session.logs_loaded = false;
            }
        }
    }
}

/// Polls `target` one time (for `--once`): status only, no graphs, no logs.
pub async fn once(target: Target, token: Option<String>, timeout: Duration) -> Vec<Event> {
    let mut cfg = PollConfig::new(timeout, token);
    cfg.timeout = timeout;
    cfg.series = false;
    match Client::new(target.clone(), cfg.token.clone(), timeout) {
        Ok(c) => round(&c, &mut Session::default(), None, &cfg).await,
        Err(e) => vec![Event::Poll {
            target,
            result: PollResult::Down {
                error: e.to_string(),
                at_ms: now_ms(),
            },
        }],
    }
}

/// One poll of a target: its result, and its metrics when asked for.
async fn round(
    client: &Client,
    session: &mut Session,
    want_logs: Option<usize>,
    cfg: &PollConfig,
) -> Vec<Event> {
    let target = client.target().clone();
    if session.aggregator {
        if let Some(children) = remote_round(client, session, cfg).await {
            return vec![Event::Remote {
                parent: target,
                children,
            }];
        }
        session.aggregator = false;
    }
    let result = match poll_once(client, session, want_logs, cfg).await {
        Ok(sample) => PollResult::Up(Box::new(sample)),
        Err(ClientError::Status { status: 404, .. }) if matches!(target, Target::Tcp(_)) => {
            // Not a wrapperd: an aggregator (fftop --serve) answers /targets.
            session.aggregator = true;
            if let Some(children) = remote_round(client, session, cfg).await {
                return vec![Event::Remote {
                    parent: target,
                    children,
                }];
            }
            session.aggregator = false;
            failure(
                &target,
                "HTTP 404 for /status (not a wrapperd)".into(),
                false,
            )
            .await
        }
        Err(ClientError::Status { status: 401, body }) => PollResult::Unauthorized {
            error: format!("HTTP 401: {body} (check --token / API_TOKEN)"),
            at_ms: now_ms(),
        },
        Err(e) => {
            let refused = matches!(e, ClientError::Connect(_));
            failure(&target, e.to_string(), refused).await
        }
    };
    let up = matches!(result, PollResult::Up(_));
    let mut events = vec![Event::Poll {
        target: target.clone(),
        result,
    }];
    if cfg.metrics {
        let text = if up {
            match tokio::time::timeout(cfg.timeout, client.get("/metrics")).await {
                Ok(Ok(a)) if a.status == 200 => Some(a.body),
                _ => None,
            }
        } else {
            None
        };
        events.push(Event::Metrics { target, text });
    }
    events
}

/// A failed poll: `exited` when nobody listens on the socket and the work directory's files
/// say the encode exited, else `down` with `error`.
pub async fn failure(target: &Target, error: String, refused: bool) -> PollResult {
    if refused {
        if let Some(dir) = match target {
            Target::Unix(sock) => crate::exited::workdir_of(sock),
            Target::Tcp(_) => None,
        } {
            let read = tokio::task::spawn_blocking(move || crate::exited::read(&dir)).await;
            if let Ok(Some(ans)) = read {
                return PollResult::Exited(Box::new(ans));
            }
        }
    }
    PollResult::Down {
        error,
        at_ms: now_ms(),
    }
}

/// An aggregator's encodes from its `/targets`; `None` when it does not answer one.
pub async fn remote_children(client: &Client, timeout: Duration) -> Option<Vec<RemoteChild>> {
    let items: Vec<Box<serde_json::value::RawValue>> =
        tokio::time::timeout(timeout, client.get_json("/targets"))
            .await
            .ok()?
            .ok()?;
    Some(crate::sources::children_from_items(
        client.target(),
        &items,
        now_ms(),
    ))
}

/// How many encodes' `/series` histories an aggregator's poller loads at once.
const HISTORY_LOADS: usize = 8;

/// One round of an aggregator: its `/targets`, plus the `/series` history of each encode that
/// is new or back up ([`HISTORY_LOADS`] at a time, each bounded by the timeout), so its graph
/// is full from the first frame; afterwards its points come from `/targets` alone.
async fn remote_round(
    client: &Client,
    session: &mut Session,
    cfg: &PollConfig,
) -> Option<Vec<RemoteChild>> {
    let mut children = remote_children(client, cfg.timeout).await?;
    let up = |c: &RemoteChild| matches!(c.result, PollResult::Up(_));
    session
        .histories
        .retain(|t| children.iter().any(|c| &c.target == t && up(c)));
    if !cfg.series {
        return Some(children);
    }
    let Target::Tcp(base) = client.target() else {
        return Some(children);
    };
    let loaded = &session.histories;
    let loads: Vec<_> = children
        .iter_mut()
        .filter(|c| up(c) && !loaded.contains(&c.target))
        .filter_map(|c| {
            let Target::Tcp(url) = &c.target else {
                return None;
            };
            let path = format!(
                "{}/series?seconds={HISTORY_SECONDS}",
                url.strip_prefix(base.as_str())?
            );
            Some(async move {
                let got = tokio::time::timeout(
                    cfg.timeout,
                    client.get_json::<shared::api::Series>(&path),
                )
                .await;
                (c, got)
            })
        })
        .collect();
    let mut fresh = Vec::new();
    // A few at a time: a new aggregator of a hundred encodes is not a hundred connections.
    let mut loads = futures::stream::iter(loads).buffer_unordered(HISTORY_LOADS);
    while let Some((c, got)) = loads.next().await {
        let (Ok(Ok(series)), PollResult::Up(answer)) = (got, &mut c.result) else {
            continue;
        };
        let newest = series.points.iter().map(|p| p.t).max();
        let mut points = series.points;
        // The status's point follows the history, when it is newer.
        points.extend(
            answer
                .points
                .drain(..)
                .filter(|p| newest.is_none_or(|n| p.t > n)),
        );
        answer.points = points;
        fresh.push(c.target.clone());
    }
    drop(loads);
    session.histories.extend(fresh);
    Some(children)
}

/// One round: `/status` (must succeed), then rate points and log lines (best effort).
async fn poll_once(
    client: &Client,
    session: &mut Session,
    want_logs: Option<usize>,
    cfg: &PollConfig,
) -> Result<PollAnswer, ClientError> {
    let timeout = cfg.timeout;
    let status = tokio::time::timeout(timeout, client.status())
        .await
        .map_err(|_| ClientError::Timeout(timeout))??;
    let at_ms = now_ms();

    let mut points = Vec::new();
    if !session.series_broken && cfg.series {
        let seconds = if session.history_loaded {
            // Enough to cover the time since the last poll, with margin.
            let since = session
                .last_ok_ms
                .map_or(0, |t| (at_ms - t).max(0) as u64 / 1000);
            (since + 3).min(HISTORY_SECONDS)
        } else {
            HISTORY_SECONDS
        };
        match tokio::time::timeout(timeout, client.series(seconds)).await {
            Ok(Ok(series)) => {
                points = series.points;
                session.history_loaded = true;
            }
            Ok(Err(ClientError::Status { .. } | ClientError::Decode(_))) => {
                session.series_broken = true;
            }
            // A slow answer this time: use the status's figures for this one point.
            _ => {}
        }
    }
    if session.series_broken && cfg.series {
        let t = session.last_t.map_or(at_ms, |l| at_ms.max(l + 1));
        points.push(point_of(&status, t));
    }
    points.retain(|p| session.last_t.is_none_or(|last| p.t > last));
    if let Some(last) = points.iter().map(|p| p.t).max() {
        session.last_t = Some(last);
    }

    let logs = match want_logs {
        Some(count) => match tokio::time::timeout(timeout, client.last_stdout(count)).await {
            Ok(Ok(lines)) => {
                session.logs_loaded = true;
                Some(lines)
            }
            _ => None,
        },
        None => None,
    };
    let events = if want_logs.is_some() {
        crate::timeline::fetch(client, &mut session.last_event, timeout).await
    } else {
        session.last_event = None;
        Vec::new()
    };
    session.last_ok_ms = Some(at_ms);
    Ok(PollAnswer {
        status,
        points,
        logs,
        events,
        at_ms,
    })
}

/// A rate point at `t` made from a status (for a wrapperd that has no `/series`, and for the
/// encodes behind an aggregator, whose `/targets` carries statuses).
pub(crate) fn point_of(status: &Status, t: i64) -> SeriesPoint {
    let progress = status.progress.as_ref();
    SeriesPoint {
        t,
        fps: status.rates.fps.or(progress.and_then(|p| p.fps)),
        speed: status.rates.speed.or(progress.and_then(|p| p.speed)),
        bitrate_kbps: progress.and_then(|p| p.bitrate_kbps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_backoff() {
        assert_eq!(
            request_timeout(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            request_timeout(Duration::from_secs(10)),
            Duration::from_secs(2)
        );
        assert_eq!(
            request_timeout(Duration::from_millis(50)),
            Duration::from_millis(250)
        );
        let cfg = PollConfig::new(Duration::from_secs(1), None);
        assert_eq!(cfg.backoff(1), Duration::from_secs(1));
        assert_eq!(cfg.backoff(2), Duration::from_secs(2));
        assert_eq!(cfg.backoff(3), Duration::from_secs(4));
        assert_eq!(cfg.backoff(30), Duration::from_secs(5));
        let slow = PollConfig::new(Duration::from_secs(30), None);
        assert_eq!(slow.backoff(5), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_missing_socket_is_reported_down_quickly() {
        let (tx, mut rx) = mpsc::channel(4);
        let (_dtx, drx) = watch::channel(None);
        let target = Target::Unix("/nonexistent/fftop-test/api.sock".into());
        let task = tokio::spawn(run(
            target.clone(),
            PollConfig::new(Duration::from_millis(100), None),
            tx,
            drx,
        ));
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a poll result in time")
            .expect("an event");
        task.abort();
        match ev {
            Event::Poll {
                target: t,
                result: PollResult::Down { error, .. },
            } => {
                assert_eq!(t, target);
                assert!(!error.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[cfg(test)]
mod live_tests {
    use super::*;
    use crate::testutil::{fake_aggregator, fake_wrapperd, status, temp_dir};
    use shared::api::Health;

    async fn next_poll(rx: &mut mpsc::Receiver<Event>) -> PollResult {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(Event::Poll { result, .. })) => result,
            other => panic!("no poll result: {other:?}"),
        }
    }

    #[tokio::test]
    async fn loads_history_on_connect_and_logs_for_the_detail() {
        let dir = temp_dir("poll-live");
        let sock = dir.join("api.sock");
        let server = fake_wrapperd(
            sock.clone(),
            status(Health::Ok, Some(25.0), Some(1.0)),
            false,
        )
        .await;
        let target = Target::Unix(sock);
        let (tx, mut rx) = mpsc::channel(8);
        let (dtx, drx) = watch::channel(None);
        let task = tokio::spawn(run(
            target.clone(),
            PollConfig::new(Duration::from_millis(100), None),
            tx,
            drx,
        ));
        match next_poll(&mut rx).await {
            PollResult::Up(s) => {
                assert_eq!(s.status.health, Health::Ok);
                assert_eq!(s.points.len(), 10, "history from /series on connect");
                assert!(s.logs.is_none(), "no logs without the detail view");
            }
            other => panic!("{other:?}"),
        }
        dtx.send(Some(Watched {
            target: target.clone(),
            lines: LOG_LINES,
        }))
        .unwrap();
        let mut got_logs = false;
        for _ in 0..5 {
            if let PollResult::Up(s) = next_poll(&mut rx).await {
                if let Some(l) = s.logs {
                    assert_eq!(
                        l,
                        vec![("2026-11-23 23:59:59".to_string(), "hello".to_string())]
                    );
                    got_logs = true;
                    break;
                }
            }
        }
        assert!(got_logs);
        task.abort();
        server.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_hung_daemon_is_down_after_the_timeout() {
        let dir = temp_dir("poll-hung");
        let sock = dir.join("api.sock");
        let server = fake_wrapperd(sock.clone(), status(Health::Ok, None, None), true).await;
        let (tx, mut rx) = mpsc::channel(8);
        let (_dtx, drx) = watch::channel(None);
        let started = std::time::Instant::now();
        let task = tokio::spawn(run(
            Target::Unix(sock),
            PollConfig::new(Duration::from_millis(300), None),
            tx,
            drx,
        ));
        match next_poll(&mut rx).await {
            PollResult::Down { error, .. } => assert!(error.contains("no answer"), "{error}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        task.abort();
        server.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_aggregator_costs_one_request_a_round_after_the_histories() {
        let (url, paths) = fake_aggregator(&["a", "b"]).await;
        let (tx, mut rx) = mpsc::channel(8);
        let (_dtx, drx) = watch::channel(None);
        let task = tokio::spawn(run(
            Target::Tcp(url),
            PollConfig::new(Duration::from_millis(100), None),
            tx,
            drx,
        ));
        let mut rounds = Vec::new();
        while rounds.len() < 4 {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                Ok(Some(Event::Remote { children, .. })) => rounds.push(children),
                other => panic!("expected the aggregator's encodes, got {other:?}"),
            }
        }
        task.abort();
        let points = |c: &RemoteChild| match &c.result {
            PollResult::Up(a) => a.points.len(),
            other => panic!("{other:?}"),
        };
        assert_eq!(rounds[0].len(), 2);
        assert!(
            rounds[0].iter().all(|c| points(c) == 11),
            "history (10) and the status's point"
        );
        for r in &rounds[1..] {
            assert!(r.iter().all(|c| points(c) == 1), "one point a round");
        }
        let paths = paths.lock().unwrap().clone();
        let mut first: Vec<&str> = paths[..4].iter().map(String::as_str).collect();
        first[2..].sort();
        let series = format!("series?seconds={HISTORY_SECONDS}");
        assert_eq!(
            first,
            [
                "/status",
                "/targets",
                &format!("/t/a/{series}"),
                &format!("/t/b/{series}")
            ]
        );
        assert!(
            paths[4..].iter().all(|p| p == "/targets"),
            "then only /targets: {paths:?}"
        );
        assert!(paths.len() >= 7, "{paths:?}");
    }
}
