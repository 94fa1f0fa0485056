//! Where the targets come from and how the set follows them: the command line, `--scan`,
//! `--targets-file`, and the encodes behind a remote aggregator (SPEC §13).
//!
//! A target stays while one source still names it (explicit targets always stay); an
//! aggregator's encodes stay while it is a target and its last `/targets` lists them. An encode
//! behind an aggregator is a `HOST:PORT` target of its own whose URL ends in `/t/<name>`, so its
//! poller reaches it through the aggregator's read-only pass-through with the same client.

use std::collections::BTreeSet;

use serde_json::Value;
use shared::api::Status;
use shared::client::Target;

use crate::app::{App, Conn, TargetState, View};
use crate::event::{PollAnswer, PollResult, RemoteChild};
use crate::exited::ExitedAnswer;

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

/// The row name of encode `name` behind `parent`: `host:port/encode`.
pub fn child_name(parent: &Target, name: &str) -> String {
    format!("{}/{name}", parent.name())
}

/// An aggregator's `/targets` (the `--once --json` shape) as its encodes; `None` when it is
/// not a JSON array. Objects without a name are skipped.
pub fn children_from_json(parent: &Target, v: &Value, now_ms: i64) -> Option<Vec<RemoteChild>> {
    let items = v.as_array()?;
    let mut out = Vec::new();
    for item in items {
        let Some(name) = item.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Some(target) = child_target(parent, name) else {
            continue;
        };
        out.push(RemoteChild {
            target,
            name: child_name(parent, name),
            result: result_from_json(item, now_ms),
        });
    }
    Some(out)
}

/// One object of `/targets` back into what a poll would have brought.
fn result_from_json(item: &Value, now_ms: i64) -> PollResult {
    let error = item
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("no answer")
        .to_string();
    match item.get("health").and_then(Value::as_str) {
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
    let Ok(status) = serde_json::from_value::<Status>(item.clone()) else {
        return PollResult::Down {
            error: "the aggregator's answer for it does not decode".into(),
            at_ms: now_ms,
        };
    };
    match item.get("ended_ms").and_then(Value::as_i64) {
        Some(ended_ms) => PollResult::Exited(Box::new(ExitedAnswer {
            last_run: status.last_run.clone(),
            status,
            ended_ms,
        })),
        None => PollResult::Up(Box::new(PollAnswer {
            events: Vec::new(),
            status,
            points: Vec::new(),
            logs: None,
            at_ms: now_ms,
        })),
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
    /// aggregator itself stops being one.
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
        for c in children {
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
            if st.name != c.name && st.parent.is_some() {
                st.name = c.name.clone();
            }
            // The encode's own poller keeps it current; the aggregator's view fills it at first.
            if fresh || st.conn == Conn::Connecting {
                self.dirty = true;
                self.on_poll(c.target, c.result);
            }
        }
        self.fix_selection(old_index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_reached_through_the_aggregator() {
        let agg = Target::Tcp("http://10.0.0.5:9300".into());
        assert_eq!(
            child_target(&agg, "cam 1"),
            Some(Target::Tcp("http://10.0.0.5:9300/t/cam%201".into()))
        );
        assert_eq!(child_name(&agg, "cam1"), "10.0.0.5:9300/cam1");
        assert_eq!(child_target(&Target::Unix("/x/api.sock".into()), "a"), None);
    }
}
