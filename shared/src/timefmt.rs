//! The API's two time formats: local `YYYY-MM-DD HH:MM:SS` in text, RFC 3339 with milliseconds
//! (UTC) in JSON objects. Times are carried around as Unix milliseconds.

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
}
