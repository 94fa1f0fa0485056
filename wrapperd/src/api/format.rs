//! The API's bodies: text, JSON with the seed's separators, and the responses around them.
//!
//! # Formats (the choices SPEC §6 leaves open)
//! - Plain text bodies of the seed's routes (`/last_*`, `/start_time`, `/cmd`, `/get_pid`,
//!   `/get_ffmpeg_pid`), of `/healthz` and of every error have **no trailing newline**; lines of
//!   `/last_*` are joined with `\n`. Text is `text/plain; charset=utf-8`.
//! - A `/last_*` line is `<YYYY-MM-DD HH:MM:SS> text` with literal angle brackets, local time.
//! - The JSON of `/last_*` and `/cmd` uses the separators of SPEC's example (the original Python
//!   tool's `json.dumps` defaults: `[["2026-11-23 23:54:00", "line"], ...]`, `["-i", "x"]`) and
//!   keeps non-ASCII text as UTF-8. It is written by serde_json (so escaped exactly as serde_json
//!   escapes) through [`SeedFormatter`], which only changes the separators. `/status`,
//!   `/series` and `/runs` are serde_json's compact form.
//! - A control request's `202` is `{"accepted": "stop"}` (or `"restart"`), written as SPEC §10
//!   writes it; its refusals (`401`, `403`, `409`) are one-line text like every other error.

use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::ser::Formatter;
use shared::timefmt::LocalSecondCache;
use warp::http::header::{self, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;

use crate::ring::Snapshot;

/// The content type of text bodies.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
/// The content type of JSON bodies.
pub(crate) const JSON: &str = "application/json";

/// A response with this status, content type and body.
pub(crate) fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
) -> Response {
    let mut r = Response::new(body.into().into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A text response.
pub(crate) fn plain(status: StatusCode, body: impl Into<String>) -> Response {
    with_type(status, TEXT, body.into())
}

/// `405` with `Allow: <allow>` (`GET, HEAD` for reading, `POST` for control).
pub(crate) fn method_not_allowed(allow: &'static str) -> Response {
    let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// `202` for an accepted control request: `{"accepted": "<what>"}`.
pub(crate) fn accepted(what: &'static str) -> Response {
    with_type(
        StatusCode::ACCEPTED,
        JSON,
        format!("{{\"accepted\": \"{what}\"}}"),
    )
}

/// `503` for what has no value before ffmpeg was started.
pub(crate) fn not_started() -> Response {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "ffmpeg has not been started yet",
    )
}

/// `v` as compact JSON, or a `500` saying why it could not be.
pub(crate) fn json_value<T: Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => with_type(StatusCode::OK, JSON, body),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// serde_json's compact output with Python's default separators: `", "` between items and
/// `": "` between a key and its value.
struct SeedFormatter;

impl Formatter for SeedFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// `v` as JSON with the seed's separators, into a buffer of `capacity` bytes to start with.
fn seed_json<T: Serialize + ?Sized>(v: &T, capacity: usize) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity);
    v.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out,
        SeedFormatter,
    ))?;
    Ok(out)
}

/// `["a", "b"]`, separators as in SPEC's examples.
pub(crate) fn json_strings(items: &[String]) -> serde_json::Result<Vec<u8>> {
    seed_json(items, 2 + items.iter().map(|s| s.len() + 4).sum::<usize>())
}

/// A snapshot serialized as `[["time", "line"], ...]`.
struct TimedLines<'a>(&'a Snapshot);

impl Serialize for TimedLines<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut times = LocalSecondCache::new();
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (t, line) in self.0.iter() {
            seq.serialize_element(&(times.text(t), line))?;
        }
        seq.end()
    }
}

/// A snapshot as text (`<time> line` joined by `\n`) or JSON (`[["time", "line"], ...]`).
pub(crate) fn format_lines(snap: &Snapshot, json: bool) -> serde_json::Result<Vec<u8>> {
    let text_bytes: usize = snap.iter().map(|(_, l)| l.len()).sum();
    if json {
        // Escapes are rare in ffmpeg's output; the Vec grows if they are not.
        return seed_json(&TimedLines(snap), 2 + text_bytes + snap.len() * 30);
    }
    let mut times = LocalSecondCache::new();
    let mut out = Vec::with_capacity(text_bytes + snap.len() * 23);
    for (i, (t, line)) in snap.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.push(b'<');
        out.extend_from_slice(times.bytes(t));
        out.extend_from_slice(b"> ");
        out.extend_from_slice(line.as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use proptest::prelude::*;

    use super::super::testutil::{block, get, ok, stamp, Fixture, T0};
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn last_stdout_text_and_json_forms() {
        let f = Fixture::new(&[]);
        f.push_lines(&[
            (T0, "first"),
            (T0 + 500, "sécond \"quoted\""),
            (T0 + 1500, "third\\"),
        ]);
        let c = f.unix();
        let all_text = format!(
            "<{}> first\n<{}> sécond \"quoted\"\n<{}> third\\",
            stamp(T0),
            stamp(T0),
            stamp(T0 + 1500)
        );
        for q in [
            "",
            "?count=0",
            "?count=3",
            "?count=100",
            "?json=0",
            "?json=false",
            "?json=FALSE",
        ] {
            let a = ok(&c, &format!("/last_stdout{q}")).await;
            assert_eq!(a.body, all_text, "{q}");
            assert_eq!(a.content_type, TEXT);
        }
        let a = ok(&c, "/last_stdout?count=1").await;
        assert_eq!(a.body, format!("<{}> third\\", stamp(T0 + 1500)));
        let json = format!(
            "[[\"{}\", \"first\"], [\"{}\", \"sécond \\\"quoted\\\"\"], [\"{}\", \"third\\\\\"]]",
            stamp(T0),
            stamp(T0),
            stamp(T0 + 1500)
        );
        for q in [
            "?json",
            "?json=",
            "?json=1",
            "?json=true",
            "?json=True",
            "?count=0&json",
        ] {
            let a = ok(&c, &format!("/last_stdout{q}")).await;
            assert_eq!(a.body, json, "{q}");
            assert_eq!(a.content_type, JSON);
        }
        let a = ok(&c, "/last_stdout?json&count=2").await;
        let v: Vec<(String, String)> = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v[1], (stamp(T0 + 1500), "third\\".to_string()));
        // The client fftop uses.
        let v = c.last_stdout(0).await.unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], (stamp(T0), "first".to_string()));
        let a = get(&c, "/last_stdout?json=yes").await;
        assert_eq!(a.status, 400);
        assert!(
            a.body.contains("json") && !a.body.contains('\n'),
            "{}",
            a.body
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn last_progress_blocks_and_default_count() {
        let f = Fixture::new(&[]);
        let c = f.unix();
        assert_eq!(ok(&c, "/last_progress").await.body, "");
        assert_eq!(ok(&c, "/last_progress?json").await.body, "[]");
        for i in 0..25u64 {
            f.shared.push_block(
                T0 + i as i64 * 1000,
                Instant::now(),
                &block(i, i as i64 * 40_000),
            );
        }
        let a = ok(&c, "/last_progress").await;
        let lines: Vec<&str> = a.body.split('\n').collect();
        assert_eq!(lines.len(), 20, "default count is 20");
        let first = block(5, 200_000);
        assert_eq!(lines[0], format!("<{}> {}", stamp(T0 + 5000), first.text));
        assert!(lines[19].starts_with(&format!("<{}> frame=24 fps=25.00 ", stamp(T0 + 24_000))));
        assert!(lines[19].ends_with(" progress=continue"), "{}", lines[19]);
        assert_eq!(c.last_progress(0).await.unwrap().len(), 25);
        assert_eq!(c.last_progress(3).await.unwrap().len(), 3);
        // Also the default on the stdout ring.
        for i in 0..30 {
            f.push_lines(&[(T0, &format!("l{i}"))]);
        }
        let a = ok(&c, "/last_stdout").await;
        assert_eq!(a.body.lines().count(), 20);
        assert!(a.body.ends_with("> l29"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn hundred_thousand_lines_in_order() {
        let f = Fixture::new(&[]);
        for i in 0..100_000i64 {
            f.shared.push_line(
                T0 + i * 10,
                Instant::now(),
                &format!("frame= {i} fps= 25 q=28.0 size= 1024kB time=00:00:01.00 bitrate= 1.0kbits/s speed=1x"),
            );
        }
        let c = f.unix();
        let a = ok(&c, "/last_stdout?count=0").await;
        let lines: Vec<&str> = a.body.split('\n').collect();
        assert_eq!(lines.len(), 100_000);
        for (i, l) in lines.iter().enumerate() {
            let (stamp_part, text) = l.split_once("> ").unwrap();
            assert_eq!(&stamp_part[1..], stamp(T0 + i as i64 * 10));
            assert!(text.starts_with(&format!("frame= {i} ")), "{l}");
        }
        let v = c.last_stdout(0).await.unwrap();
        assert_eq!(v.len(), 100_000);
        assert!(v[99_999].1.starts_with("frame= 99999 "));
    }

    #[test]
    fn formatting_a_hundred_thousand_lines() {
        // Formatting alone, without HTTP: the part the API controls.
        let mut ring = crate::ring::Ring::new(100_000);
        for i in 0..100_000i64 {
            ring.push(T0 + i * 10, &format!("frame= {i} fps= 25 q=28.0 size= 1024kB time=00:00:01.00 bitrate= 1.0kbits/s speed=1x"));
        }
        let snap = ring.snapshot(0);
        let text = format_lines(&snap, false).unwrap();
        let json = format_lines(&snap, true).unwrap();
        assert!(text.len() > 100_000 * 90 && json.len() > text.len());
        let parsed: Vec<(String, String)> = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed.len(), 100_000);
        assert_eq!(parsed[7].1, snap.iter().nth(7).unwrap().1);
    }

    #[test]
    fn json_strings_have_the_seed_separators_and_escape_like_serde_json() {
        let nasty = [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "ctl \u{0}\u{1}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1b}\u{1f} \u{7f}",
            "utf8 déjà vu ✓ \u{FFFD} 𝄞",
        ];
        let items: Vec<String> = nasty.iter().map(|s| s.to_string()).collect();
        let want = format!(
            "[{}]",
            nasty.map(|s| serde_json::to_string(s).unwrap()).join(", ")
        );
        assert_eq!(
            String::from_utf8(json_strings(&items).unwrap()).unwrap(),
            want
        );
        assert_eq!(
            String::from_utf8(json_strings(&items[3..4]).unwrap()).unwrap(),
            "[\"ctl \\u0000\\u0001\\b\\t\\n\\f\\r\\u001b\\u001f \u{7f}\"]"
        );
        assert_eq!(json_strings(&[]).unwrap(), b"[]");
        assert_eq!(
            json_strings(&["a".into(), "b".into()]).unwrap(),
            br#"["a", "b"]"#
        );
        let object = std::collections::BTreeMap::from([("a", vec![1, 2]), ("b", vec![])]);
        assert_eq!(seed_json(&object, 0).unwrap(), br#"{"a": [1, 2], "b": []}"#);
    }

    proptest! {
        #[test]
        fn json_strings_are_serde_json_strings_joined_by_comma_space(
            items in proptest::collection::vec(any::<String>(), 0..8)
        ) {
            let want = format!(
                "[{}]",
                items.iter().map(|s| serde_json::to_string(s).unwrap()).collect::<Vec<_>>().join(", ")
            );
            prop_assert_eq!(String::from_utf8(json_strings(&items).unwrap()).unwrap(), want);
        }
    }
}
