//! The API's two time formats: local `YYYY-MM-DD HH:MM:SS` in text, RFC 3339 with milliseconds
//! (UTC) in JSON objects. Times are carried around as Unix milliseconds.
//!
//! Log files and line listings stamp millions of lines with the local time of their second:
//! [`LocalSecondCache`] asks chrono (time zone lookup, formatting) only when the second changes.

use chrono::{DateTime, Local, SecondsFormat, TimeZone, Utc};

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `YYYY-MM-DD HH:MM:SS` in local time.
pub fn local_text(unix_ms: i64) -> String {
    match Local.timestamp_millis_opt(unix_ms) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        }
        chrono::LocalResult::None => String::from("0000-00-00 00:00:00"),
    }
}

/// Length of [`local_text`]: `YYYY-MM-DD HH:MM:SS`.
pub const LOCAL_TEXT_LEN: usize = 19;

/// Written for a time that has no local time (or a year that does not fit four digits).
const NO_TIME: [u8; LOCAL_TEXT_LEN] = *b"0000-00-00 00:00:00";

/// The last second's [`local_text`], computed again only when the second changes.
///
/// ```
/// let mut times = shared::timefmt::LocalSecondCache::new();
/// let a = times.text(1_795_478_040_123).to_string();
/// assert_eq!(a, shared::timefmt::local_text(1_795_478_040_999));
/// ```
#[derive(Debug, Clone)]
pub struct LocalSecondCache {
    /// The Unix second whose local time is in `text` (`i64::MIN`: none yet).
    second: i64,
    /// `YYYY-MM-DD HH:MM:SS` of `second`, ASCII.
    text: [u8; LOCAL_TEXT_LEN],
}

impl Default for LocalSecondCache {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalSecondCache {
    /// An empty cache; the first call computes.
    pub fn new() -> Self {
        LocalSecondCache {
            second: i64::MIN,
            text: NO_TIME,
        }
    }

    /// `YYYY-MM-DD HH:MM:SS` (local time) of the second that holds `unix_ms`, as bytes.
    pub fn bytes(&mut self, unix_ms: i64) -> &[u8; LOCAL_TEXT_LEN] {
        let second = unix_ms.div_euclid(1000);
        if second != self.second {
            self.second = second;
            self.text = local_bytes(second.saturating_mul(1000));
        }
        &self.text
    }

    /// [`LocalSecondCache::bytes`] as text.
    pub fn text(&mut self, unix_ms: i64) -> &str {
        // Only ASCII digits, `-`, ` ` and `:` are ever written.
        std::str::from_utf8(self.bytes(unix_ms)).unwrap_or("0000-00-00 00:00:00")
    }
}

/// [`local_text`] into a fixed array; [`NO_TIME`] when there is no such local time or the
/// year does not fit four digits.
fn local_bytes(unix_ms: i64) -> [u8; LOCAL_TEXT_LEN] {
    let text = local_text(unix_ms);
    text.as_bytes().try_into().unwrap_or(NO_TIME)
}

/// RFC 3339 with milliseconds, e.g. `2026-11-23T23:54:00.123Z`.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses what [`rfc3339_ms`] writes back to Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_millis_and_round_trips() {
        let s = rfc3339_ms(1_795_478_040_123);
        assert_eq!(s, "2026-11-23T23:54:00.123Z");
        assert_eq!(parse_rfc3339_ms(&s), Some(1_795_478_040_123));
    }

    #[test]
    fn local_text_shape() {
        let s = local_text(1_795_478_040_123);
        assert_eq!(s.len(), 19);
        assert_eq!(&s[4..5], "-");
        assert_eq!(&s[10..11], " ");
    }

    #[test]
    fn cache_matches_local_text_across_seconds() {
        let mut c = LocalSecondCache::new();
        let base = 1_795_478_040_000i64;
        for ms in [
            base,
            base + 1,
            base + 999,
            base + 1000,
            base - 1,
            base + 86_400_123,
        ] {
            assert_eq!(
                c.text(ms),
                local_text(ms.div_euclid(1000) * 1000),
                "at {ms}"
            );
            assert_eq!(c.bytes(ms), local_text(ms).as_bytes(), "at {ms}");
        }
    }

    #[test]
    fn cache_handles_negative_and_unrepresentable_times() {
        let mut c = LocalSecondCache::new();
        // -1 ms is in the second before the epoch, not the epoch's.
        assert_eq!(c.text(-1), local_text(-1000));
        let before = c.text(-1).to_string();
        assert_ne!(before, c.text(0));
        assert_eq!(c.text(i64::MAX), "0000-00-00 00:00:00");
        assert_eq!(c.text(i64::MIN), "0000-00-00 00:00:00");
    }
}
