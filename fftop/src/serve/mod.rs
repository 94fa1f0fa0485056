//! `fftop --serve HOST:PORT`: the headless aggregator of a host (SPEC §13).
//!
//! It polls its targets as the interactive view does (the same [`poll`](crate::poll) tasks,
//! one per target, each request bounded by the timeout; here they also fetch `/metrics` and
//! skip `/series`), keeps one [`App`] of what they said, and serves from it over HTTP:
//! `/metrics` (every target's cached series labelled with its name, plus
//! `ffwrapper_target_up`), `/targets` (the `--once --json` array), `/t/<name>/<path>` (a
//! read-only pass-through of `GET` to that target's API) and `/livez`. `/metrics` and `/targets`
//! answer from the last polled data, so a hung target never delays them: it costs its own
//! poller a timeout and shows as `ffwrapper_target_up 0`.
//!
//! No `POST` goes through: the aggregator holds one token for reading its targets, and a
//! pass-through that carried control would turn that reading token into a control token for
//! every encode of the host. Stop and restart stay with the socket (or `API_CONTROL_TOKEN`).
//!
//! [`http`] holds the server and the routes, [`metrics`] the relabelling.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use shared::client::{Client, Target};
use shared::timefmt::now_ms;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::app::App;
use crate::cli::Cli;
use crate::event::Event;
use crate::poll::{self, PollConfig};

pub mod http;
pub mod metrics;

/// What the HTTP handlers share with the loop that applies the pollers' events.
pub struct Shared {
    /// Every target's state, as the pollers last reported it.
    pub app: Mutex<App>,
    /// The bearer token every request but `/livez` needs, when set.
    pub token: Option<String>,
    /// How the pass-through reaches targets (token, timeout).
    pub poll: PollConfig,
    /// One client per target for the pass-through, made on first use.
    pub clients: Mutex<HashMap<Target, Client>>,
}

/// Runs the aggregator until SIGTERM/SIGINT; returns the exit code.
pub async fn run(cli: &Cli, addr: &str) -> anyhow::Result<i32> {
    let listener = http::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--serve takes HOST:PORT)"))?;
    let mut cfg = PollConfig::new(cli.interval, cli.token.clone());
    cfg.metrics = true;
    cfg.series = false;
    let shared = Arc::new(Shared {
        app: Mutex::new(App::new(
            cli.explicit_targets(),
            cli.interval,
            false,
            now_ms(),
        )),
        token: cli.token.clone().filter(|t| !t.is_empty()),
        poll: cfg.clone(),
        clients: Mutex::new(HashMap::new()),
    });
    let (tx, rx) = mpsc::channel::<Event>(1024);
    let mut tasks: Vec<JoinHandle<()>> = crate::sources::watch(cli, &tx);
    tasks.push(tokio::spawn(apply_events(shared.clone(), cfg, tx, rx)));
    tasks.push(tokio::spawn(http::serve(listener, shared)));
    eprintln!("fftop: serving on {addr}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    for t in tasks {
        t.abort();
    }
    Ok(0)
}

/// Applies every event to the shared state and keeps one poller per target.
async fn apply_events(
    shared: Arc<Shared>,
    cfg: PollConfig,
    tx: mpsc::Sender<Event>,
    mut rx: mpsc::Receiver<Event>,
) {
    // Nobody opens a detail view here: no poller fetches log lines.
    let (_detail_tx, detail_rx) = watch::channel::<Option<poll::Watched>>(None);
    let mut pollers: BTreeMap<Target, JoinHandle<()>> = BTreeMap::new();
    let mut synced_gen: Option<u64> = None;
    loop {
        let targets: Option<BTreeSet<Target>> = {
            let app = shared.app.lock().unwrap_or_else(|e| e.into_inner());
            (synced_gen != Some(app.targets_gen)).then(|| {
                synced_gen = Some(app.targets_gen);
                app.targets.keys().cloned().collect()
            })
        };
        if let Some(targets) = targets {
            shared
                .clients
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|t, _| targets.contains(t));
            pollers.retain(|t, h| {
                let keep = targets.contains(t);
                if !keep {
                    h.abort();
                }
                keep
            });
            for t in targets {
                pollers.entry(t.clone()).or_insert_with(|| {
                    tokio::spawn(poll::run(t, cfg.clone(), tx.clone(), detail_rx.clone()))
                });
            }
        }
        let Some(ev) = rx.recv().await else { break };
        let mut app = shared.app.lock().unwrap_or_else(|e| e.into_inner());
        app.now_ms = now_ms();
        app.update(ev);
        while let Ok(ev) = rx.try_recv() {
            app.update(ev);
        }
        app.dirty = false;
    }
    for h in pollers.values() {
        h.abort();
    }
}
