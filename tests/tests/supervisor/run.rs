//! Running ffmpeg: its arguments byte for byte, `-progress` first, stdin passed on, and a five
//! second encode whose stats and progress are all kept.

use super::*;

#[test]
fn arguments_with_spaces_quotes_and_non_ascii_reach_ffmpeg_intact() {
    let wd = Wd::new();
    let out = wd.file("meta.mp4");
    let title = "a b  \"quoted\" 'single' = ünïcødé ✓ $HOME *";
    let o = wd
        .wrapperd()
        .args([
            "-hide_banner",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=0.2:size=64x64",
            "-metadata",
        ])
        .arg_title(title)
        .args(["-y"])
        .args([&out])
        .output(T);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format_tags=title",
            "-of",
            "default=nw=1:nk=1",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim_end_matches('\n'),
        title
    );
    let status = wd.status_json().unwrap();
    assert_eq!(status["cmd"][6], format!("title={title}"));
}

trait ArgTitle {
    fn arg_title(self, title: &str) -> Self;
}
impl ArgTitle for WrapperCmd {
    fn arg_title(self, title: &str) -> Self {
        self.args([format!("title={title}")])
    }
}

#[test]
fn five_second_encode_logs_every_stats_update_and_parses_progress() {
    for passthrough in [false, true] {
        let wd = Wd::new();
        let mut w = wd.wrapperd();
        if passthrough {
            w = w.env("EXIT_CODE_PASSTHROUGH", "1");
        }
        let o = w
            .args([
                "-hide_banner",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=5:size=320x240:rate=25",
            ])
            .args(["-c:v", "mpeg4", "-stats_period", "0.1", "-f", "null", "-"])
            .output(T);
        // A stream is not supposed to end: 1; with passthrough, ffmpeg's own 0.
        assert_eq!(
            o.status.code(),
            Some(if passthrough { 0 } else { 1 }),
            "{}",
            stderr(&o)
        );
        let log = wd.log("ffmpeg.log");
        let stats: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("frame=") && l.contains("fps="))
            .collect();
        assert!(
            stats.len() >= 2,
            "each stats update on its own line:\n{log}"
        );
        for l in &stats {
            assert!(l.starts_with('<') && l.as_bytes()[20] == b'>', "{l}");
            assert_eq!(l.matches("frame=").count(), 1, "one update per line: {l}");
        }
        let status = wd.status_json().unwrap();
        assert_eq!(status["progress"]["frame"], 125);
        assert!(status["counters"]["progress_blocks"].as_u64().unwrap() >= 2);
        assert_eq!(status["state"], "exited");
        assert_eq!(status["exit"]["ffmpeg_status"], 0);
        assert_eq!(status["exit"]["code"], if passthrough { 0 } else { 1 });
        let wlog = wd.log("wrapperd.log");
        let last = wlog.lines().last().unwrap();
        assert!(
            last.contains("ended by itself"),
            "exit reason is the last line: {last}"
        );
    }
}

#[test]
fn ffmpeg_gets_progress_first_then_the_arguments_byte_for_byte() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let wd = Wd::new();
    let log = wd.file("args.log");
    let user: Vec<&OsStr> = vec![
        OsStr::new("exit"),
        OsStr::new("code=0"),
        OsStr::new("a b  c"),
        OsStr::new("\"q\" 'q' =x= \\"),
        OsStr::new("ünï ✓"),
        OsStr::from_bytes(b"raw \xff\xfe bytes"),
        OsStr::new(""),
    ];
    let o = wd
        .wrapperd()
        .fake()
        .env("FAKE_FFMPEG_ARGS_LOG", &log)
        .args(&user)
        .output(T);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let raw = fs::read(&log).unwrap();
    let got: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    let fifo = wd.path.join("pipes/progress");
    let mut want: Vec<&[u8]> = vec![b"-progress", fifo.as_os_str().as_bytes()];
    want.extend(user.iter().map(|a| a.as_bytes()));
    want.push(b""); // after the last NUL
    assert_eq!(got, want);
}

#[test]
fn an_input_reading_stdin_gets_wrapperds_stdin() {
    let wd = Wd::new();
    // Ten 16x16 gray frames on wrapperd's stdin, read by ffmpeg through `-i -`.
    let frames = wd.file("frames.raw");
    fs::write(&frames, vec![128u8; 16 * 16 * 10]).unwrap();
    let mut w = wd.wrapperd().args([
        "-hide_banner",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "gray",
        "-s",
        "16x16",
        "-i",
        "-",
        "-f",
        "null",
        "-",
    ]);
    w.cmd.stdin(fs::File::open(&frames).unwrap());
    let o = w.output(T);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let status = wd.status_json().unwrap();
    assert_eq!(
        status["progress"]["frame"], 10,
        "ffmpeg read every frame from stdin"
    );
    assert_eq!(status["exit"]["ffmpeg_status"], 0);
}
