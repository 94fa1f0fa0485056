//! The kinds of value only the event variables hold (SPEC §11): `WEBHOOK_URL` (an `http://` or
//! `https://` URL) and `WEBHOOK_EVENTS` (a list of event names and health words).

use super::parse::{Effective, Raw};
use super::ConfigError;

/// The words `WEBHOOK_EVENTS` takes: event names (every event of that kind) and health words
/// (a `health` event that changes to that word).
pub const WEBHOOK_WORDS: &[&str] = &[
    "started",
    "health",
    "stopping",
    "exited",
    "restarting",
    "gave_up",
    "control",
    "warming_up",
    "ok",
    "failing",
    "stalled",
];

/// What `WEBHOOK_EVENTS` allows, for its error line.
const ALLOWED: &str = "a comma-separated list of started, health, stopping, exited, restarting, \
                       gave_up, control, warming_up, ok, failing, stalled";

/// The events `WEBHOOK_EVENTS` chose, lower case, in the order given, without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSet(pub Vec<String>);

impl EventSet {
    /// Whether `word` (an event name or a health word) was chosen.
    pub fn contains(&self, word: &str) -> bool {
        self.0.iter().any(|w| w == word)
    }
}

impl Effective for EventSet {
    fn effective(&self) -> String {
        self.0.join(",")
    }
}

impl Raw<'_> {
    /// An `http://` or `https://` URL with a host; unset or empty is `None`. Untrimmed.
    pub(super) fn webhook_url(&self) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.value.filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let ok = reqwest::Url::parse(v).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        });
        if ok {
            Ok(Some(v.to_string()))
        } else {
            Err(ConfigError {
                var: self.var,
                value: v.to_string(),
                allowed: "an http:// or https:// URL with a host",
            })
        }
    }

    /// A comma-separated list of [`WEBHOOK_WORDS`] (any case, spaces around words ignored);
    /// unset or blank gives the default.
    pub(super) fn event_set(&self) -> Result<EventSet, ConfigError> {
        let text = self
            .value
            .filter(|v| !v.trim().is_empty())
            .unwrap_or(self.default);
        let mut words = Vec::new();
        for w in text.split(',') {
            let w = w.trim().to_ascii_lowercase();
            if !WEBHOOK_WORDS.contains(&w.as_str()) {
                return Err(ConfigError {
                    var: self.var,
                    value: text.to_string(),
                    allowed: ALLOWED,
                });
            }
            if !words.contains(&w) {
                words.push(w);
            }
        }
        Ok(EventSet(words))
    }
}
