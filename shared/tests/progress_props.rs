//! Property tests (fuzzing) of the `-progress` parser (issue #7, SPEC §4): any byte or line
//! soup never panics, a block's text keeps every line in order, and numbers parse as documented.
//!
//! CI runs proptest's default 256 cases per property. Failures proptest finds are kept in
//! `shared/proptest-regressions/` and replayed first; the hand-picked edge cases at the end are
//! the corpus of interesting inputs as explicit tests.

use proptest::prelude::*;
use shared::progress::{parse_all, BlockAssembler, Progress};

/// Keys ffmpeg writes, and a few it does not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("frame".to_string()),
        Just("fps".to_string()),
        Just("bitrate".to_string()),
        Just("total_size".to_string()),
        Just("out_time_us".to_string()),
        Just("out_time_ms".to_string()),
        Just("out_time".to_string()),
        Just("dup_frames".to_string()),
        Just("drop_frames".to_string()),
        Just("speed".to_string()),
        Just("stream_0_0_q".to_string()),
        "[a-z_0-9]{1,12}",
    ]
}

/// Values in every form ffmpeg uses, and garbage.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v}")),
        any::<f64>().prop_map(|v| format!("{v:e}x")),
        (0u32..10_000).prop_map(|v| format!("{:>8.1}kbits/s", v as f64 / 10.0)),
        (0u32..100).prop_map(|v| format!("{v:>5}x")),
        Just("N/A".to_string()),
        Just("-9223372036854775807".to_string()),
        Just(String::new()),
        "[^\r\n]{0,20}",
    ]
}

fn kv_line() -> impl Strategy<Value = String> {
    (key(), value()).prop_map(|(k, v)| format!("{k}={v}"))
}

proptest! {
    /// Any bytes, as a FIFO would deliver them (lossily decoded), never panic, in one piece or
    /// line by line.
    #[test]
    fn any_byte_soup_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let text = String::from_utf8_lossy(&bytes);
        let blocks = parse_all(&text);
        let mut asm = BlockAssembler::new();
        let mut n = 0;
        for line in text.split(['\n', '\r']) {
            n += asm.push_line(line).is_some() as usize;
        }
        n += asm.finish().is_some() as usize;
        // Splitting at '\r' too can only add lines, never blocks: `progress=` starts a line.
        prop_assert!(blocks.len() <= n + 1);
    }

    /// Lines of keys and values (known, unknown, padded, N/A, garbage) never panic; every
    /// `progress=` line ends exactly one block, and the blocks' texts hold every non-blank line,
    /// in order.
    #[test]
    fn line_soup_keeps_every_line_in_order(
        lines in proptest::collection::vec(
            prop_oneof![
                4 => kv_line(),
                1 => prop_oneof![Just("progress=continue"), Just("progress=end")].prop_map(String::from),
                1 => "[^\r\n]{0,30}",
            ],
            0..60,
        )
    ) {
        let text = lines.join("\n");
        let blocks = parse_all(&text);
        let ends = lines.iter().filter(|l| {
            l.split_once('=').map_or(l.as_str(), |(k, _)| k).trim() == "progress"
        }).count();
        let kept: Vec<&str> = lines.iter().map(|l| l.as_str()).filter(|l| !l.trim().is_empty()).collect();
        let tail = kept.last().is_some_and(|l| {
            l.split_once('=').map_or(*l, |(k, _)| k).trim() != "progress"
        });
        prop_assert_eq!(blocks.len(), ends + tail as usize);
        let joined: Vec<String> = blocks.iter().map(|b| b.text.clone()).collect();
        prop_assert_eq!(joined.join(" "), kept.join(" "));
    }

    /// A block of space-free `key=value` lines round-trips through its one-line text: splitting
    /// the text at spaces and parsing again gives the same block.
    #[test]
    fn block_text_round_trips(
        fields in proptest::collection::vec((key(), "[!-~&&[^=]]{0,16}"), 0..20),
        end in any::<bool>(),
    ) {
        let mut lines: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(format!("progress={}", if end { "end" } else { "continue" }));
        let blocks = parse_all(&lines.join("\n"));
        prop_assert_eq!(blocks.len(), 1);
        let b = &blocks[0];
        prop_assert_eq!(&b.text, &lines.join(" "));
        prop_assert_eq!(b.progress.end, end);
        let again = parse_all(&b.text.split(' ').collect::<Vec<_>>().join("\n"));
        prop_assert_eq!(again.len(), 1);
        prop_assert_eq!(&again[0], b);
    }

    /// Numbers parse as documented, padded or not.
    #[test]
    fn numbers_parse_as_documented(
        frame in any::<u64>(),
        fps in any::<f64>(),
        speed in any::<f64>(),
        bitrate in any::<f64>(),
        total in any::<u64>(),
        time in any::<i64>(),
        pad in 0usize..6,
        exp in any::<bool>(),
    ) {
        let p = " ".repeat(pad);
        let f = |x: f64| if exp { format!("{x:e}") } else { format!("{x}") };
        let text = format!(
            "frame={p}{frame}\nfps={p}{}\nbitrate={p}{}kbits/s\ntotal_size={total}\n\
             out_time_us={time}\nout_time_ms=1\nspeed={p}{}x\nprogress=continue",
            f(fps), f(bitrate), f(speed)
        );
        let b = parse_all(&text);
        prop_assert_eq!(b.len(), 1);
        let got = b[0].progress;
        let finite = |x: f64| x.is_finite().then_some(x);
        prop_assert_eq!(got.frame, Some(frame));
        prop_assert_eq!(got.fps, finite(fps));
        prop_assert_eq!(got.speed, finite(speed));
        prop_assert_eq!(got.bitrate_kbps, finite(bitrate));
        prop_assert_eq!(got.total_size, Some(total));
        // The "no time yet" sentinel (-INT64_MAX) and anything further out is None; a real
        // negative time is kept; out_time_ms does not override out_time_us.
        prop_assert_eq!(got.out_time_us, (time > -9_223_372_036_854_775_807).then_some(time));
        prop_assert!(!got.end);
    }

    /// Before ffmpeg 4.2 only out_time_ms existed, holding microseconds.
    #[test]
    fn out_time_ms_alone_holds_microseconds(t in -9_223_372_036_854_775_806i64..i64::MAX) {
        let b = parse_all(&format!("out_time_ms={t}\nprogress=continue"));
        prop_assert_eq!(b[0].progress.out_time_us, Some(t));
    }
}

// ===== the corpus: hand-picked edge cases =====

fn one(text: &str) -> Progress {
    let b = parse_all(text);
    assert_eq!(b.len(), 1, "{b:?}");
    b[0].progress
}

#[test]
fn edge_cases() {
    // Out of range or not numbers: None, never a wrapped or saturated value.
    let p = one(
        "frame=18446744073709551616\nfps=1e400\nspeed=infx\nbitrate=NaNkbits/s\nprogress=continue",
    );
    assert_eq!(
        (p.frame, p.fps, p.speed, p.bitrate_kbps),
        (None, None, None, None)
    );
    // i64::MIN is beyond the sentinel: no time yet.
    assert_eq!(
        one("out_time_us=-9223372036854775808\nprogress=end").out_time_us,
        None
    );
    assert_eq!(
        one("out_time_us=-9223372036854775806\nprogress=end").out_time_us,
        Some(-9_223_372_036_854_775_806)
    );
    // A sign, case and padding.
    let p = one("frame=+5\nfps=  -0.0\nspeed=n/a\ndup_frames= 3 \nprogress=continue");
    assert_eq!(p.frame, Some(5));
    assert_eq!(p.fps, Some(-0.0));
    assert_eq!(p.speed, None);
    assert_eq!(p.dup_frames, Some(3));
    // `progress` with padding or an unknown value still ends a block; only "end" is end.
    assert!(!one("progress=  continue").end);
    assert!(one(" progress = end").end);
    assert_eq!(parse_all("progress=\nprogress=weird").len(), 2);
    // A key with several '=', no '=', an empty key.
    let b = parse_all("a=b=c\nnoequals\n=5\nprogress=continue");
    assert_eq!(b[0].text, "a=b=c noequals =5 progress=continue");
    // Nothing but blank lines: no block.
    assert!(parse_all(" \n\t\n\n").is_empty());
    // Multi-byte UTF-8 and replacement characters in values.
    let b = parse_all("title=ünïcødé \u{FFFD}\nprogress=continue");
    assert_eq!(b[0].text, "title=ünïcødé \u{FFFD} progress=continue");
}
