//! Property tests (fuzzing) of the line splitter that cuts ffmpeg's stdout and stderr into lines
//! (issue #7, SPEC §4): any chunking of any bytes gives the same lines as one-shot splitting,
//! and those are exactly the model's lines: split at `\n` or `\r`, empty ones dropped, each cut
//! at 64 KiB. So no line is empty, none is longer than 64 KiB, none holds `\n` or `\r`, and
//! their concatenation is the input without line ends and without what was cut.
//!
//! CI runs proptest's default 256 cases per property. Failures proptest finds are kept in
//! `wrapperd/proptest-regressions/output_props.txt` and replayed first; the hand-picked edge cases at the end
//! are the corpus of interesting inputs as explicit tests.

use crate::output::tests::split_chunks as split;
use crate::output::MAX_LINE;
use proptest::prelude::*;

/// The contract, written as plainly as possible.
fn model(data: &[u8]) -> Vec<Vec<u8>> {
    data.split(|&b| b == b'\n' || b == b'\r')
        .filter(|l| !l.is_empty())
        .map(|l| l[..l.len().min(MAX_LINE)].to_vec())
        .collect()
}

/// Bytes that look like ffmpeg's output: short runs of text, line ends of both kinds, invalid
/// UTF-8, and now and then a run longer than 64 KiB.
fn data() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..40),
        4 => prop_oneof![Just(b"\n".to_vec()), Just(b"\r".to_vec()), Just(b"\r\n".to_vec()), Just(b"\n\n\r".to_vec())],
        2 => "[ -~]{0,80}".prop_map(String::into_bytes),
        1 => (MAX_LINE - 3..MAX_LINE + 3).prop_map(|n| vec![b'x'; n]),
        1 => (1usize..3 * MAX_LINE).prop_map(|n| vec![b'y'; n]),
    ];
    proptest::collection::vec(piece, 0..30).prop_map(|v| v.concat())
}

/// Cut points into `len` bytes, as pipe reads would give them.
fn chunked(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points
        .windows(2)
        .map(|w| data[w[0]..w[1]].to_vec())
        .collect()
}

proptest! {
    #[test]
    fn any_chunking_gives_the_lines_of_the_model(
        data in data(),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let whole = split(&[&data]);
        let chunks = chunked(&data, &cuts);
        let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
        prop_assert_eq!(&split(&refs), &whole);
        prop_assert_eq!(&whole, &model(&data));
        for l in &whole {
            prop_assert!(!l.is_empty());
            prop_assert!(l.len() <= MAX_LINE);
            prop_assert!(!l.contains(&b'\n') && !l.contains(&b'\r'));
        }
    }

    /// Byte by byte, the worst chunking there is, on smaller inputs.
    #[test]
    fn byte_by_byte_is_the_same(data in proptest::collection::vec(
        prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), Just(0xff), any::<u8>()], 0..2000)
    ) {
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        prop_assert_eq!(split(&bytes), model(&data));
    }

    /// Concatenation: with no line longer than 64 KiB, the lines joined are the input with its
    /// line ends removed, and splitting the lines rejoined with `\n` gives the same lines.
    #[test]
    fn lines_concatenate_to_the_input_without_line_ends(data in proptest::collection::vec(any::<u8>(), 0..8192)) {
        let lines = split(&[&data]);
        let stripped: Vec<u8> = data.iter().copied().filter(|&b| b != b'\n' && b != b'\r').collect();
        prop_assert_eq!(lines.concat(), stripped);
        let rejoined = lines.join(&b'\n');
        prop_assert_eq!(split(&[&rejoined]), lines);
    }
}

// ===== the corpus: hand-picked edge cases =====

#[test]
fn edge_cases() {
    let x = |n: usize| vec![b'x'; n];
    // Exactly 64 KiB, then EOF without a line end: whole, in one piece and in two.
    let d = x(MAX_LINE);
    assert_eq!(split(&[&d]), vec![d.clone()]);
    assert_eq!(split(&[&d[..1], &d[1..]]), vec![d.clone()]);
    // 64 KiB + 1 cut there, the next line intact, also when the cut falls in the second chunk.
    let mut d = x(MAX_LINE + 1);
    d.extend_from_slice(b"\rnext\n");
    for cut in [0, 1, MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, MAX_LINE + 2] {
        assert_eq!(
            split(&[&d[..cut], &d[cut..]]),
            [x(MAX_LINE), b"next".to_vec()],
            "cut at {cut}"
        );
    }
    // A chunk ending right at the 64 KiB limit, then a line end in the next chunk.
    assert_eq!(split(&[&x(MAX_LINE), b"\nz"]), [x(MAX_LINE), b"z".to_vec()]);
    // Line ends only, and "\r\n" across chunks.
    assert!(split(&[b"\r\n\r\n\n\r"]).is_empty());
    assert_eq!(split(&[b"a\r", b"\nb"]), [b"a".to_vec(), b"b".to_vec()]);
    // Invalid UTF-8 is kept as bytes; NUL is an ordinary byte.
    assert_eq!(split(&[b"\xff\x00\xfe"]), [b"\xff\x00\xfe".to_vec()]);
    // Three long lines in a row, in chunks of 7000 bytes.
    let mut d = Vec::new();
    for _ in 0..3 {
        d.extend(x(200_000));
        d.push(b'\n');
    }
    let chunks: Vec<&[u8]> = d.chunks(7000).collect();
    assert_eq!(split(&chunks), vec![x(MAX_LINE); 3]);
}
