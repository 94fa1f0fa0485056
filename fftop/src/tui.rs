//! The interactive monitor: wires the terminal, the pollers, the scanner and the clock to
//! [`App::update`] and redraws when the state says something changed.
//!
//! Every source runs on its own task and sends [`Event`]s into one channel; the loop applies
//! them in order (a burst is applied at once, then drawn once). Pollers follow the target set:
//! one is started for each new target and aborted when its target goes (an encode behind an
//! aggregator has one only while its detail, logs or runs are open). The loop ends on `q`, on
//! SIGHUP/SIGTERM/SIGINT, and when the terminal is gone (input ends or fails, stdout is no longer
//! a terminal, a write fails), never spinning on a dead terminal.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{bail, Context};
use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt;
use shared::client::{ClientError, Target};
use shared::timefmt::now_ms;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::actions::{Failure, Request};
use crate::app::{App, Quit};
use crate::cli::Cli;
use crate::event::Event;
use crate::poll::{self, PollConfig, Watched};
use crate::term;

/// Runs until the user quits; the exit code is 0 for a quit, 1 when the terminal went away.
pub async fn run(cli: &Cli) -> anyhow::Result<i32> {
    if !std::io::stdout().is_terminal() {
        bail!("standard output is not a terminal (use --once for a plain table)");
    }
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    let (detail_tx, detail_rx) = watch::channel::<Option<Watched>>(None);
    let cfg = PollConfig::new(cli.interval, cli.token.clone());
    let mut app = App::new(cli.explicit_targets(), cli.interval, cli.color(), now_ms());
    app.read_only = cli.read_only;

    let (guard, mut terminal) = term::Guard::enter().context("cannot set up the terminal")?;
    if let Ok(size) = terminal.size() {
        app.update(Event::Resize(size.width, size.height));
    }
    let mut tasks = vec![
        tokio::spawn(read_input(tx.clone())),
        tokio::spawn(tick(tx.clone())),
        tokio::spawn(watch_signals(tx.clone())),
    ];
    tasks.extend(crate::sources::watch(cli, &tx));
    let mut pollers: BTreeMap<Target, JoinHandle<()>> = BTreeMap::new();

    let mut synced: Option<(u64, Option<Target>)> = None;
    let result = loop {
        let detail = app.watched();
        let now = (app.targets_gen, detail.as_ref().map(|w| w.target.clone()));
        if synced.as_ref() != Some(&now) {
            synced = Some(now);
            sync_pollers(&app, &mut pollers, &cfg, &tx, &detail_rx);
        }
        send_outbox(&mut app, &cfg, &tx);
        detail_tx.send_if_modified(|d| {
            let changed = *d != detail;
            *d = detail;
            changed
        });
        if app.dirty {
            let clear = std::mem::take(&mut app.repaint);
            if let Err(e) = term::draw(&mut terminal, &app, clear) {
                break Err(anyhow::Error::new(e).context("cannot draw (terminal gone?)"));
            }
            app.dirty = false;
        }
        let Some(ev) = rx.recv().await else {
            break Ok(0);
        };
        app.update(ev);
        while let Ok(ev) = rx.try_recv() {
            app.update(ev);
        }
        match &app.quit {
            Some(Quit::User) => break Ok(0),
            Some(Quit::TerminalGone(why)) => break Err(anyhow::anyhow!("{why}")),
            None => {}
        }
    };
    for h in pollers.values().chain(tasks.iter()) {
        h.abort();
    }
    drop(terminal);
    drop(guard);
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("fftop: {e:#}");
            Ok(1)
        }
    }
}

/// Starts a poller for each target that needs one and stops the others (targets that went
/// away, and an encode behind an aggregator no longer watched).
fn sync_pollers(
    app: &App,
    pollers: &mut BTreeMap<Target, JoinHandle<()>>,
    cfg: &PollConfig,
    tx: &mpsc::Sender<Event>,
    detail: &watch::Receiver<Option<Watched>>,
) {
    pollers.retain(|t, h| {
        let keep = app.targets.get(t).is_some_and(|s| app.needs_poller(s));
        if !keep {
            h.abort();
        }
        keep
    });
    for (t, s) in &app.targets {
        if !pollers.contains_key(t) && app.needs_poller(s) {
            let h = tokio::spawn(poll::run(
                t.clone(),
                cfg.clone(),
                tx.clone(),
                detail.clone(),
            ));
            pollers.insert(t.clone(), h);
        }
    }
}

/// Starts a task for each request the app queued.
fn send_outbox(app: &mut App, cfg: &PollConfig, tx: &mpsc::Sender<Event>) {
    for req in std::mem::take(&mut app.outbox) {
        tokio::spawn(send_request(req, cfg.clone(), tx.clone()));
    }
}

/// Sends one request of the app's outbox and reports the answer as an event (never blocks the
/// loop: it runs on its own task, bounded by the request timeout).
async fn send_request(req: Request, cfg: PollConfig, tx: mpsc::Sender<Event>) {
    let target = match &req {
        Request::Control { target, .. } | Request::Runs { target } => target.clone(),
    };
    let client = shared::client::Client::new(target.clone(), cfg.token.clone(), cfg.timeout);
    let ev = match req {
        Request::Control { what, .. } => {
            let result = match &client {
                Ok(c) => c.control(what).await,
                Err(e) => Err(shared::client::ClientError::Build(e.to_string())),
            };
            let result = result.map_err(|e| match e {
                ClientError::Refused { status, reason, .. } => Failure {
                    status: Some(status),
                    reason,
                },
                e => Failure {
                    status: e.status(),
                    reason: e.to_string(),
                },
            });
            Event::Control {
                target,
                what,
                result,
            }
        }
        Request::Runs { .. } => {
            let result = match &client {
                Ok(c) => c.runs(crate::runs::RUNS_COUNT).await,
                Err(e) => Err(shared::client::ClientError::Build(e.to_string())),
            };
            let result = match result {
                Err(ClientError::Connect(e)) => runs_from_files(&target).await.ok_or(e),
                r => r.map_err(|e| e.to_string()),
            };
            Event::Runs { target, result }
        }
    };
    let _ = tx.send(ev).await;
}

/// An exited encode's runs, from its work directory's `status/runs.jsonl` (no API to ask).
async fn runs_from_files(target: &Target) -> Option<Vec<shared::api::RunRecord>> {
    let Target::Unix(sock) = target else {
        return None;
    };
    let dir = crate::exited::workdir_of(sock)?;
    let values = tokio::task::spawn_blocking(move || {
        crate::exited::read_runs(&dir, crate::runs::RUNS_COUNT)
    })
    .await
    .ok()??;
    Some(
        values
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
    )
}

/// Keys and resizes; the end or a failure of the input means the terminal is gone.
async fn read_input(tx: mpsc::Sender<Event>) {
    let mut input = EventStream::new();
    loop {
        let ev = match input.next().await {
            Some(Ok(TermEvent::Key(k))) => Event::Key(k),
            Some(Ok(TermEvent::Resize(w, h))) => Event::Resize(w, h),
            Some(Ok(_)) => continue,
            Some(Err(e)) => Event::TerminalGone(format!("cannot read the terminal: {e}")),
            None => Event::TerminalGone("the terminal's input ended".into()),
        };
        let gone = matches!(ev, Event::TerminalGone(_));
        if tx.send(ev).await.is_err() || gone {
            return;
        }
    }
}

/// The clock, four times a second (the app redraws once a second at most for it). It also
/// notices a hung-up terminal: after a hang-up, stdout is no longer a terminal.
async fn tick(tx: mpsc::Sender<Event>) {
    let mut every = tokio::time::interval(Duration::from_millis(250));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        let ev = if std::io::stdout().is_terminal() {
            Event::Tick { now_ms: now_ms() }
        } else {
            Event::TerminalGone("the terminal is gone".into())
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}

/// SIGHUP (the terminal or ssh session closed), SIGTERM and SIGINT end fftop cleanly.
async fn watch_signals(tx: mpsc::Sender<Event>) {
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    let why = tokio::select! {
        _ = hup.recv() => "hang-up (SIGHUP)",
        _ = term.recv() => "terminated (SIGTERM)",
        _ = int.recv() => "interrupted (SIGINT)",
    };
    let _ = tx.send(Event::TerminalGone(why.into())).await;
}
