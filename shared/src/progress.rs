//! The parser of ffmpeg's `-progress` output (SPEC §4).
//!
//! ffmpeg writes one `key=value` line per field and ends each block with `progress=continue` or
//! `progress=end`. The forms differ between ffmpeg 4.1 and the newest release: values may be
//! padded (`bitrate=   0.4kbits/s`, `speed=   0x`), `N/A`, in exponent form (`3.13e+03x`); ffmpeg
//! ≤ 6.0 writes `out_time_us=-9223372036854775807` before the first timestamp; audio-only and
//! (6.1–7.0) copy-only encodes have no `frame`/`fps`; every output stream adds a
//! `stream_F_S_q`. Unknown keys are kept in the text and ignored by the parser. Only `progress=`
//! ends a block; a block cut off at EOF is kept as it is ([`BlockAssembler::finish`]).

/// The numbers of one progress block. A field ffmpeg did not send, sent as `N/A`, or sent as the
/// "no time yet" sentinel is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    pub frame: Option<u64>,
    pub fps: Option<f64>,
    pub bitrate_kbps: Option<f64>,
    pub total_size: Option<u64>,
    pub out_time_us: Option<i64>,
    pub dup_frames: Option<u64>,
    pub drop_frames: Option<u64>,
    pub speed: Option<f64>,
    /// `progress=end` (ffmpeg writes it on failures too: it says nothing about success).
    pub end: bool,
}

/// The "no time yet" value of ffmpeg ≤ 6.0 (`-INT64_MAX`), and anything at least as far out.
const NO_TIME_SENTINEL: i64 = -9_223_372_036_854_775_807;

impl Progress {
    /// Applies one `key=value` line; unknown keys and unparsable values leave the block as it is.
    pub fn apply(&mut self, key: &str, value: &str) {
        let v = value.trim();
        match key.trim() {
            "frame" => self.frame = parse_u64(v),
            "fps" => self.fps = parse_f64(v),
            "bitrate" => self.bitrate_kbps = parse_f64(v.trim_end_matches("kbits/s")),
            "total_size" => self.total_size = parse_u64(v),
            "out_time_us" => self.out_time_us = parse_time_us(v),
            // Before ffmpeg 4.2 only `out_time_ms` existed, and it held microseconds too.
            "out_time_ms" if self.out_time_us.is_none() => self.out_time_us = parse_time_us(v),
            "dup_frames" => self.dup_frames = parse_u64(v),
            "drop_frames" => self.drop_frames = parse_u64(v),
            "speed" => self.speed = parse_f64(v.trim_end_matches('x')),
            "progress" => self.end = v == "end",
            _ => {}
        }
    }
}

fn is_na(v: &str) -> bool {
    v.is_empty() || v.eq_ignore_ascii_case("N/A") || v.eq_ignore_ascii_case("nan")
}

fn parse_f64(v: &str) -> Option<f64> {
    let v = v.trim();
    if is_na(v) {
        return None;
    }
    v.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn parse_u64(v: &str) -> Option<u64> {
    let v = v.trim();
    if is_na(v) {
        return None;
    }
    v.parse::<u64>().ok()
}

fn parse_time_us(v: &str) -> Option<i64> {
    let v = v.trim();
    if is_na(v) {
        return None;
    }
    v.parse::<i64>().ok().filter(|&t| t > NO_TIME_SENTINEL)
}

/// One whole block: its text as one line (`frame=.. fps=.. ... progress=continue`) and its
/// numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub text: String,
    pub progress: Progress,
}

/// Gathers `-progress` lines into blocks.
#[derive(Debug, Default)]
pub struct BlockAssembler {
    text: String,
    progress: Progress,
}

impl BlockAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one line (without its line end). Returns the block that `progress=` completes.
    pub fn push_line(&mut self, line: &str) -> Option<Block> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return None;
        }
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        self.text.push_str(line);
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        self.progress.apply(key, value);
        if key.trim() == "progress" {
            return Some(self.take());
        }
        None
    }

    /// The block cut off at EOF, if any lines of it arrived.
    pub fn finish(&mut self) -> Option<Block> {
        (!self.text.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Block {
        Block {
            text: std::mem::take(&mut self.text),
            progress: std::mem::take(&mut self.progress),
        }
    }
}

/// Parses a whole text (many lines) into blocks, the last one possibly cut off.
pub fn parse_all(text: &str) -> Vec<Block> {
    let mut asm = BlockAssembler::new();
    let mut out: Vec<Block> = text.lines().filter_map(|l| asm.push_line(l)).collect();
    out.extend(asm.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Block {
        let mut blocks = parse_all(text);
        assert_eq!(blocks.len(), 1, "{blocks:?}");
        blocks.remove(0)
    }

    #[test]
    fn ffmpeg_7_video_block() {
        let b = one(
            "frame=3075\nfps=25.00\nstream_0_0_q=28.0\nbitrate=1024.5kbits/s\n\
                     total_size=15728640\nout_time_us=123000000\nout_time_ms=123000000\n\
                     out_time=00:02:03.000000\ndup_frames=0\ndrop_frames=2\nspeed=1.00x\n\
                     progress=continue\n",
        );
        let p = b.progress;
        assert_eq!(p.frame, Some(3075));
        assert_eq!(p.fps, Some(25.0));
        assert_eq!(p.bitrate_kbps, Some(1024.5));
        assert_eq!(p.total_size, Some(15_728_640));
        assert_eq!(p.out_time_us, Some(123_000_000));
        assert_eq!(p.dup_frames, Some(0));
        assert_eq!(p.drop_frames, Some(2));
        assert_eq!(p.speed, Some(1.0));
        assert!(!p.end);
        assert!(b
            .text
            .starts_with("frame=3075 fps=25.00 stream_0_0_q=28.0 bitrate="));
        assert!(b.text.ends_with(" speed=1.00x progress=continue"));
    }

    #[test]
    fn padded_values() {
        let b =
            one("frame=    1\nfps=  0.0\nbitrate=   0.4kbits/s\nspeed=   0x\nprogress=continue");
        assert_eq!(b.progress.frame, Some(1));
        assert_eq!(b.progress.fps, Some(0.0));
        assert_eq!(b.progress.bitrate_kbps, Some(0.4));
        assert_eq!(b.progress.speed, Some(0.0));
        assert_eq!(
            b.text,
            "frame=    1 fps=  0.0 bitrate=   0.4kbits/s speed=   0x progress=continue"
        );
    }

    #[test]
    fn not_available_values_are_none() {
        let b = one(
            "frame=0\nfps=0.00\nbitrate=N/A\ntotal_size=N/A\nout_time_us=N/A\n\
                     out_time=N/A\ndup_frames=0\ndrop_frames=0\nspeed=N/A\nprogress=continue",
        );
        assert_eq!(b.progress.bitrate_kbps, None);
        assert_eq!(b.progress.total_size, None);
        assert_eq!(b.progress.out_time_us, None);
        assert_eq!(b.progress.speed, None);
        assert_eq!(b.progress.frame, Some(0));
    }

    #[test]
    fn exponent_speed() {
        assert_eq!(
            one("speed=3.13e+03x\nprogress=continue").progress.speed,
            Some(3130.0)
        );
        assert_eq!(
            one("speed=1.5e-02x\nprogress=continue").progress.speed,
            Some(0.015)
        );
    }

    #[test]
    fn no_time_yet_sentinel_is_none_but_real_negative_time_is_kept() {
        let b = one(
            "out_time_us=-9223372036854775807\nout_time_ms=-9223372036854775807\n\
                     out_time=-2562047788:00:54.775807\nprogress=continue",
        );
        assert_eq!(b.progress.out_time_us, None);
        let b = one("out_time_us=-23220\nout_time_ms=-23220\nprogress=continue");
        assert_eq!(b.progress.out_time_us, Some(-23_220));
    }

    #[test]
    fn old_ffmpeg_out_time_ms_holds_microseconds() {
        // ffmpeg 4.1 has no out_time_us.
        let b = one("frame=10\nout_time_ms=400000\nprogress=continue");
        assert_eq!(b.progress.out_time_us, Some(400_000));
    }

    #[test]
    fn audio_only_block_has_no_frame() {
        let b = one(
            "bitrate= 128.0kbits/s\ntotal_size=16428\nout_time_us=1021678\n\
                     out_time_ms=1021678\nout_time=00:00:01.021678\ndup_frames=0\n\
                     drop_frames=0\nspeed=48.5x\nprogress=continue",
        );
        assert_eq!(b.progress.frame, None);
        assert_eq!(b.progress.fps, None);
        assert_eq!(b.progress.speed, Some(48.5));
        assert_eq!(b.progress.out_time_us, Some(1_021_678));
    }

    #[test]
    fn several_stream_q_keys_and_unknown_keys() {
        let b = one(
            "frame=5\nstream_0_0_q=28.0\nstream_0_1_q=-1.0\nstream_1_0_q=23.0\n\
                     some_future_key=whatever=with=equals\nfps=5.0\nprogress=continue",
        );
        assert_eq!(b.progress.frame, Some(5));
        assert_eq!(b.progress.fps, Some(5.0));
        assert!(b.text.contains("some_future_key=whatever=with=equals"));
        assert!(b.text.contains("stream_1_0_q=23.0"));
    }

    #[test]
    fn only_progress_ends_a_block_and_end_is_flagged() {
        let blocks = parse_all("frame=1\nprogress=continue\nframe=2\n\nframe=3\nprogress=end\n");
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].progress.frame, Some(3));
        assert!(blocks[1].progress.end);
        assert_eq!(blocks[1].text, "frame=2 frame=3 progress=end");
    }

    #[test]
    fn block_cut_off_at_eof_is_kept() {
        let blocks = parse_all("frame=1\nprogress=continue\nframe=2\nfps=3.0");
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].text, "frame=2 fps=3.0");
        assert_eq!(blocks[1].progress.frame, Some(2));
    }

    #[test]
    fn crlf_and_garbage_do_not_panic() {
        let b = one("frame=abc\r\nfps=inf\r\nspeed=-x\r\n=\r\nnoequals\r\nprogress=continue\r\n");
        assert_eq!(b.progress.frame, None);
        assert_eq!(b.progress.fps, None);
        assert_eq!(b.progress.speed, None);
    }
}
