//! Where the targets come from and how the set follows them: the command line, `--scan`,
//! `--targets-file`, and the encodes behind a remote aggregator (SPEC §13).
//!
//! A target stays while one source still names it (explicit targets always stay); an
//! aggregator's encodes stay while it is a target and its last `/targets` lists them. An encode
//! behind an aggregator is a `HOST:PORT` target of its own whose URL ends in `/t/<name>`.
//!
//! Those encodes are kept current by their aggregator's one `/targets` answer per interval
//! (status, and a rate point from its rates); none has a poller of its own, so watching 100
//! encodes on two hosts costs two requests a second, not two hundred. Only the encode whose
//! detail, logs or runs are open gets its own poller (through the aggregator's read-only
//! pass-through), for its output lines and events; while it has one, `/targets` leaves it alone.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::value::RawValue;
use shared::api::Status;
use shared::client::Target;

use crate::app::{App, Conn, TargetState, View};
use crate::event::{PollAnswer, PollResult, RemoteChild};
use crate::exited::ExitedAnswer;

/// Starts the tasks that follow the target sets of `--scan` and `--targets-file`, each sending
/// its set as an event whenever it changes.
pub fn watch(
    cli: &crate::cli::Cli,
    tx: &tokio::sync::mpsc::Sender<crate::event::Event>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if !cli.scan.is_empty() {
        tasks.push(tokio::spawn(crate::scan::run(
            cli.scan.clone(),
            cli.interval,
            tx.clone(),
        )));
    }
    if let Some(file) = &cli.targets_file {
        tasks.push(tokio::spawn(crate::targets_file::run(
            file.clone(),
            cli.interval,
            tx.clone(),
        )));
    }
    tasks
}

/// The target of encode `name` behind the aggregator at `parent`.
pub fn child_target(parent: &Target, name: &str) -> Option<Target> {
    match parent {
        Target::Tcp(base) => Some(Target::Tcp(format!(
            "{base}/t/{}",
            encode_path_segment(name)
        ))),
        Target::Unix(_) => None,
    }
}

/// Percent-encodes what cannot stand in a URL path segment (names are directory names).
fn encode_path_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@+=,".contains(&b) || b == b'/' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `HOST:PORT` of a TCP target's URL (`None` for a socket).
fn host_port(t: &Target) -> Option<(&str, &str)> {
    let Target::Tcp(url) = t else { return None };
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    Some(match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p),
        _ => (authority, ""),
    })
}

/// The row name of encode `encode` behind `parent`: `host/encode` (SPEC §13), or
/// `host:port/encode` when another aggregator among `others` is on the same host (two
/// aggregators of one machine must not give two rows one name).
pub fn child_name<'a>(
    parent: &Target,
    encode: &str,
    others: impl IntoIterator<Item = &'a Target>,
) -> String {
    let Some((host, port)) = host_port(parent) else {
        return format!("{}/{encode}", parent.name());
    };
    let shared_host = others
        .into_iter()
        .filter(|o| *o != parent)
        .any(|o| host_port(o).is_some_and(|(h, _)| h == host));
    if shared_host && !port.is_empty() {
        format!("{host}:{port}/{encode}")
    } else {
        format!("{host}/{encode}")
    }
}

/// What fftop reads of one object of `/targets` besides the status itself.
#[derive(Debug, Deserialize)]
struct Head {
    /// The encode's name on the aggregator.
    name: Option<String>,
    /// Its health word (`down`, `unauthorized`, `exited` or the API's).
    health: Option<String>,
    /// Why it is down.
    error: Option<String>,
    /// When it ended (exited encodes), Unix ms.
    ended_ms: Option<i64>,
    /// When the aggregator last heard from it, Unix ms.
    seen_ms: Option<i64>,
}

/// An aggregator's `/targets` (the `--once --json` shape: an array of objects) as its encodes.
/// Each object is decoded straight into what fftop needs (no JSON tree in between: with a
/// hundred encodes a second this is most of what a fleet view costs). Objects without a name
/// are skipped.
pub fn children_from_items(
    parent: &Target,
    items: &[Box<RawValue>],
    now_ms: i64,
) -> Vec<RemoteChild> {
    let mut out = Vec::new();
    for item in items {
        let Ok(head) = serde_json::from_str::<Head>(item.get()) else {
            continue;
        };
        let Some(name) = head.name.clone() else {
            continue;
        };
        let Some(target) = child_target(parent, &name) else {
            continue;
        };
        out.push(RemoteChild {
            target,
            encode: name,
            result: result_from_item(head, item, now_ms),
        });
    }
    out
}

/// One object of `/targets` back into what a poll would have brought.
fn result_from_item(head: Head, item: &RawValue, now_ms: i64) -> PollResult {
    let error = head.error.unwrap_or_else(|| "no answer".into());
    match head.health.as_deref() {
        Some("unauthorized") => {
            return PollResult::Unauthorized {
                error,
                at_ms: now_ms,
            }
        }
        Some("down" | "connecting") | None => {
            return PollResult::Down {
                error,
                at_ms: now_ms,
            }
        }
        _ => {}
    }
    let Ok(status) = serde_json::from_str::<Status>(item.get()) else {
        return PollResult::Down {
            error: "the aggregator's answer for it does not decode".into(),
            at_ms: now_ms,
        };
    };
    match head.ended_ms {
        Some(ended_ms) => PollResult::Exited(Box::new(ExitedAnswer {
            last_run: status.last_run.clone(),
            status,
            ended_ms,
        })),
        None => {
            // When the aggregator last heard from it (its clock: the encode's host's).
            let seen_ms = head.seen_ms.unwrap_or(now_ms);
            let points = vec![crate::poll::point_of(&status, seen_ms)];
            PollResult::Up(Box::new(PollAnswer {
                events: Vec::new(),
                status,
                points,
                logs: None,
                at_ms: seen_ms,
            }))
        }
    }
}

impl App {
    /// Adds the targets a source names and removes those no source names any more.
    pub(crate) fn sync_sources(&mut self) {
        let old_index = self.selected_index();
        let wanted: BTreeSet<Target> = self
            .explicit
            .iter()
            .chain(&self.scanned)
            .chain(&self.filed)
            .cloned()
            .collect();
        let gone: Vec<Target> = self
            .targets
            .iter()
            .filter(|(t, s)| match &s.parent {
                Some(p) => !wanted.contains(p),
                None => !wanted.contains(*t),
            })
            .map(|(t, _)| t.clone())
            .collect();
        for t in &gone {
            self.remove_target(t);
        }
        for t in wanted {
            if !self.targets.contains_key(&t) {
                self.targets.insert(t.clone(), TargetState::new(t));
                self.targets_gen += 1;
                self.dirty = true;
            }
        }
        self.fix_selection(old_index);
    }

    fn remove_target(&mut self, t: &Target) {
        self.targets.remove(t);
        self.targets_gen += 1;
        if self.selected.as_ref() == Some(t) {
            self.view = View::List;
        }
        self.dirty = true;
    }

    /// An aggregator's `/targets`: its encodes become rows (named `host/encode`), the
    /// aggregator itself stops being one. Each row takes what the aggregator says of it, unless
    /// it is the row being watched (that one has its own poller).
    pub(crate) fn on_remote(&mut self, parent: Target, children: Vec<RemoteChild>) {
        let old_index = self.selected_index();
        let Some(p) = self.targets.get_mut(&parent) else {
            return;
        };
        if !p.aggregator {
            p.aggregator = true;
            p.conn = Conn::Up;
            self.dirty = true;
        }
        let listed: BTreeSet<Target> = children.iter().map(|c| c.target.clone()).collect();
        let gone: Vec<Target> = self
            .targets
            .iter()
            .filter(|(t, s)| s.parent.as_ref() == Some(&parent) && !listed.contains(*t))
            .map(|(t, _)| t.clone())
            .collect();
        for t in &gone {
            self.remove_target(t);
        }
        let aggregators: Vec<Target> = self
            .targets
            .values()
            .filter(|t| t.aggregator)
            .map(|t| t.target.clone())
            .collect();
        let watched = self.watched().map(|w| w.target);
        for c in children {
            let name = child_name(&parent, &c.encode, &aggregators);
            // A name on the command line as well keeps its own row; the two are the same encode.
            let fresh = !self.targets.contains_key(&c.target);
            if fresh {
                self.targets_gen += 1;
            }
            let st = self.targets.entry(c.target.clone()).or_insert_with(|| {
                let mut s = TargetState::new(c.target.clone());
                s.parent = Some(parent.clone());
                s
            });
            if st.name != name && st.parent.is_some() {
                st.name = name;
                self.dirty = true;
            }
            let own_poller = st.parent.is_none() || watched.as_ref() == Some(&c.target);
            if fresh || !own_poller {
                self.on_poll(c.target, c.result);
            }
        }
        self.fix_selection(old_index);
    }

    /// Whether `t` needs a poller of its own: every target but the encodes behind an
    /// aggregator, which only while watched (their aggregator's `/targets` feeds the rest).
    pub fn needs_poller(&self, t: &TargetState) -> bool {
        t.parent.is_none() || self.watched().is_some_and(|w| w.target == t.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::View;
    use crate::testutil::{status, NOW};
    use serde_json::Value;
    use shared::api::Health;
    use std::time::Duration;

    #[test]
    fn children_are_reached_through_the_aggregator() {
        let agg = Target::Tcp("http://10.0.0.5:9300".into());
        assert_eq!(
            child_target(&agg, "cam 1"),
            Some(Target::Tcp("http://10.0.0.5:9300/t/cam%201".into()))
        );
        assert_eq!(child_target(&Target::Unix("/x/api.sock".into()), "a"), None);
    }

    #[test]
    fn rows_are_named_host_slash_encode_with_the_port_only_when_a_host_has_two() {
        let a = Target::Tcp("http://10.0.0.5:9300".into());
        let b = Target::Tcp("http://10.0.0.6:9300".into());
        let a2 = Target::Tcp("http://10.0.0.5:9301".into());
        let v6 = Target::Tcp("http://[::1]:9300".into());
        assert_eq!(child_name(&a, "cam1", [&a, &b]), "10.0.0.5/cam1");
        assert_eq!(child_name(&b, "cam1", [&a, &b]), "10.0.0.6/cam1");
        assert_eq!(child_name(&a, "cam1", [&a, &a2]), "10.0.0.5:9300/cam1");
        assert_eq!(child_name(&a2, "cam1", [&a, &a2]), "10.0.0.5:9301/cam1");
        assert_eq!(child_name(&v6, "cam1", [&v6, &a]), "[::1]/cam1");
        let host_only = Target::Tcp("http://agg.example".into());
        assert_eq!(child_name(&host_only, "c", [&host_only]), "agg.example/c");
    }

    /// `/targets` of one aggregator with one encode `cam1` at `fps`, polled at `seen_ms`.
    fn targets_json(fps: f64, seen_ms: i64) -> Value {
        let mut v = serde_json::to_value(status(Health::Ok, Some(fps), Some(1.0))).unwrap();
        v["name"] = "cam1".into();
        v["target"] = "/srv/enc/cam1/api.sock".into();
        v["seen_ms"] = seen_ms.into();
        Value::Array(vec![v])
    }

    #[test]
    fn the_aggregators_answer_keeps_its_rows_current_unless_one_is_watched() {
        let agg = Target::Tcp("http://10.0.0.5:9300".into());
        let mut app = App::new(vec![agg.clone()], Duration::from_secs(1), false, NOW);
        let feed = |app: &mut App, fps: f64, seen: i64| {
            let text = targets_json(fps, seen).to_string();
            let items: Vec<Box<RawValue>> = serde_json::from_str(&text).unwrap();
            let children = children_from_items(&agg, &items, NOW);
            app.on_remote(agg.clone(), children);
        };
        feed(&mut app, 25.0, NOW - 2000);
        let child = child_target(&agg, "cam1").unwrap();
        let row = &app.targets[&child];
        assert_eq!(row.name, "10.0.0.5/cam1");
        assert_eq!(row.fps(), Some(25.0));
        assert!(
            !app.needs_poller(row),
            "fed by /targets, no poller of its own"
        );
        assert!(app.needs_poller(&app.targets[&agg]));
        feed(&mut app, 12.5, NOW - 1000);
        let row = &app.targets[&child];
        assert_eq!(row.fps(), Some(12.5), "every round, not only the first");
        assert_eq!(row.last_seen_ms, Some(NOW - 1000));
        assert_eq!(row.history.points().len(), 2, "a rate point per round");
        feed(&mut app, 12.5, NOW - 1000);
        assert_eq!(
            app.targets[&child].history.points().len(),
            2,
            "same poll, same point"
        );

        // Watched: its own poller feeds it; /targets leaves it alone.
        app.selected = Some(child.clone());
        app.view = View::Detail;
        assert!(app.needs_poller(&app.targets[&child]));
        feed(&mut app, 3.0, NOW);
        assert_eq!(app.targets[&child].fps(), Some(12.5));
        app.view = View::List;
        feed(&mut app, 3.0, NOW);
        assert_eq!(app.targets[&child].fps(), Some(3.0));
    }

    #[test]
    fn every_kind_of_targets_object_becomes_its_row() {
        let agg = Target::Tcp("http://10.0.0.5:9300".into());
        let mut exited = serde_json::to_value(status(Health::Ok, None, None)).unwrap();
        exited["name"] = "gone".into();
        exited["health"] = "exited".into();
        exited["ended_ms"] = (NOW - 5000).into();
        let text = serde_json::json!([
            {"name": "cam-down", "health": "down", "error": "no answer in 2 s"},
            {"name": "cam-auth", "health": "unauthorized", "error": "HTTP 401"},
            {"health": "ok"},
            {"name": "cam-odd", "health": "ok", "pid": "not a number"},
            exited,
        ])
        .to_string();
        let items: Vec<Box<RawValue>> = serde_json::from_str(&text).unwrap();
        let rows = children_from_items(&agg, &items, NOW);
        let kinds: Vec<(String, String)> = rows
            .iter()
            .map(|c| {
                let kind = match &c.result {
                    PollResult::Down { error, .. } => format!("down: {error}"),
                    PollResult::Unauthorized { error, .. } => format!("unauthorized: {error}"),
                    PollResult::Exited(a) => format!("exited at {}", a.ended_ms),
                    PollResult::Up(_) => "up".into(),
                };
                (c.encode.clone(), kind)
            })
            .collect();
        let want = [
            ("cam-down", "down: no answer in 2 s".to_string()),
            ("cam-auth", "unauthorized: HTTP 401".to_string()),
            (
                "cam-odd",
                "down: the aggregator's answer for it does not decode".to_string(),
            ),
            ("gone", format!("exited at {}", NOW - 5000)),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, k)| (n.to_string(), k.clone()))
            .collect();
        assert_eq!(kinds, want, "the object without a name is skipped");
    }
}
