//! The fake's script: its words parsed into phases and options (the language is documented in
//! the binary's own doc, `fake_ffmpeg.rs`).

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Phase {
    Run {
        fps: f64,
        speed: Option<f64>,
        secs: f64,
    },
    Freeze {
        secs: f64,
    },
    Silence {
        secs: f64,
    },
    Lines {
        n: u64,
        stdout: bool,
    },
    Bytes,
    Echo(String),
    Orphans {
        n: u32,
        secs: f64,
    },
    /// Allocate and touch `mb` MiB (kept to the end), then encode at 25 fps for `secs`.
    Grow {
        mb: u64,
        secs: f64,
    },
    Exit {
        code: i32,
    },
    Die {
        sig: i32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Script {
    /// The phases, in order.
    pub(crate) phases: Vec<Phase>,
    /// `block-interval`: seconds between blocks and stats lines.
    pub(crate) block_interval: f64,
    /// `rate`: the stream's frame rate.
    pub(crate) rate: f64,
    /// `start-frame`: the frame it pretends to start at.
    pub(crate) start_frame: u64,
    /// `audio`: no frame keys.
    pub(crate) audio: bool,
    /// `nostats`: no stats lines.
    pub(crate) nostats: bool,
    /// `ignore-sigint`.
    pub(crate) ignore_sigint: bool,
    /// `ignore-q` / `-nostdin`: stdin is not read.
    pub(crate) ignore_q: bool,
    /// `finish-secs`: how long a graceful end takes.
    pub(crate) finish_secs: f64,
    /// Lines about ignored words, printed at start.
    pub(crate) warnings: Vec<String>,
}

fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("bad value {key}={v}"))
}

fn secs(key: &str, v: &str) -> Result<f64, String> {
    let s: f64 = num(key, v)?;
    if s.is_nan() || s < 0.0 {
        return Err(format!("bad value {key}={v}"));
    }
    Ok(s)
}

pub(crate) fn parse(words: &[String]) -> Result<Script, String> {
    let mut s = Script {
        phases: Vec::new(),
        block_interval: 0.5,
        rate: 25.0,
        start_frame: 0,
        audio: false,
        nostats: false,
        ignore_sigint: false,
        ignore_q: false,
        finish_secs: 0.0,
        warnings: Vec::new(),
    };
    let inf = f64::INFINITY;
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let (key, val) = w.split_once('=').unwrap_or((w.as_str(), ""));
        let phase = match w.as_str() {
            "run" => Some(Phase::Run {
                fps: 25.0,
                speed: None,
                secs: inf,
            }),
            "freeze" => Some(Phase::Freeze { secs: inf }),
            "silence" => Some(Phase::Silence { secs: inf }),
            "lines" => Some(Phase::Lines {
                n: 0,
                stdout: false,
            }),
            "bytes" => Some(Phase::Bytes),
            "echo" => Some(Phase::Echo(it.next().cloned().unwrap_or_default())),
            "orphans" => Some(Phase::Orphans { n: 1, secs: 0.2 }),
            "grow" => Some(Phase::Grow { mb: 0, secs: inf }),
            "exit" => Some(Phase::Exit { code: 0 }),
            "die" => Some(Phase::Die { sig: 9 }),
            _ => None,
        };
        if let Some(p) = phase {
            s.phases.push(p);
            continue;
        }
        match (w.as_str(), key) {
            ("audio", _) => s.audio = true,
            ("nostats", _) => s.nostats = true,
            ("ignore-sigint", _) => s.ignore_sigint = true,
            ("ignore-q" | "-nostdin", _) => s.ignore_q = true,
            (_, "block-interval") => s.block_interval = secs(key, val)?.max(0.001),
            (_, "rate") => s.rate = secs(key, val)?.max(0.001),
            (_, "start-frame") => s.start_frame = num(key, val)?,
            (_, "finish-secs") => s.finish_secs = secs(key, val)?,
            _ => {
                let known = match (s.phases.last_mut(), key) {
                    (Some(Phase::Run { fps, .. }), "fps") => {
                        *fps = secs(key, val)?;
                        true
                    }
                    (Some(Phase::Run { speed, .. }), "speed") => {
                        *speed = Some(secs(key, val)?);
                        true
                    }
                    (
                        Some(
                            Phase::Run { secs: t, .. }
                            | Phase::Freeze { secs: t }
                            | Phase::Silence { secs: t }
                            | Phase::Orphans { secs: t, .. }
                            | Phase::Grow { secs: t, .. },
                        ),
                        "secs",
                    ) => {
                        *t = secs(key, val)?;
                        true
                    }
                    (Some(Phase::Lines { n, .. }), "n") => {
                        *n = num(key, val)?;
                        true
                    }
                    (Some(Phase::Lines { stdout, .. }), "to") => {
                        *stdout = match val {
                            "stdout" => true,
                            "stderr" => false,
                            _ => return Err(format!("bad value {w}")),
                        };
                        true
                    }
                    (Some(Phase::Orphans { n, .. }), "n") => {
                        *n = num(key, val)?;
                        true
                    }
                    (Some(Phase::Grow { mb, .. }), "mb") => {
                        *mb = num(key, val)?;
                        true
                    }
                    (Some(Phase::Exit { code }), "code") => {
                        *code = num(key, val)?;
                        true
                    }
                    (Some(Phase::Die { sig }), "sig") => {
                        *sig = num(key, val)?;
                        true
                    }
                    _ => false,
                };
                if !known {
                    s.warnings
                        .push(format!("fake-ffmpeg: ignored argument {w:?}"));
                }
            }
        }
    }
    if s.phases.is_empty() {
        s.phases.push(Phase::Run {
            fps: 25.0,
            speed: None,
            secs: inf,
        });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Script, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn phases_and_parameters() {
        let s =
            p("run fps=30 speed=1.2 secs=3 freeze secs=5 silence secs=1.5 exit code=3").unwrap();
        assert_eq!(
            s.phases,
            vec![
                Phase::Run {
                    fps: 30.0,
                    speed: Some(1.2),
                    secs: 3.0
                },
                Phase::Freeze { secs: 5.0 },
                Phase::Silence { secs: 1.5 },
                Phase::Exit { code: 3 },
            ]
        );
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn options_anywhere() {
        let s = p("block-interval=0.1 run secs=1 start-frame=90000 audio nostats ignore-sigint -nostdin finish-secs=2 rate=50").unwrap();
        assert_eq!(s.block_interval, 0.1);
        assert_eq!(s.start_frame, 90000);
        assert_eq!(s.rate, 50.0);
        assert_eq!(s.finish_secs, 2.0);
        assert!(s.audio && s.nostats && s.ignore_sigint && s.ignore_q);
        assert_eq!(
            s.phases,
            vec![Phase::Run {
                fps: 25.0,
                speed: None,
                secs: 1.0
            }]
        );
    }

    #[test]
    fn defaults_and_other_phases() {
        assert_eq!(
            p("").unwrap().phases,
            vec![Phase::Run {
                fps: 25.0,
                speed: None,
                secs: f64::INFINITY
            }]
        );
        let s = p(
            "lines n=1000000 to=stdout bytes orphans n=20 echo hello grow mb=300 secs=2 \
                   die sig=15",
        )
        .unwrap();
        assert_eq!(
            s.phases,
            vec![
                Phase::Lines {
                    n: 1_000_000,
                    stdout: true
                },
                Phase::Bytes,
                Phase::Orphans { n: 20, secs: 0.2 },
                Phase::Echo("hello".into()),
                Phase::Grow { mb: 300, secs: 2.0 },
                Phase::Die { sig: 15 },
            ]
        );
    }

    #[test]
    fn unknown_words_warn_and_bad_values_fail() {
        let s = p("-i input.mp4 run secs=1 colour=blue").unwrap();
        assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
        assert!(p("run secs=abc").is_err());
        assert!(p("run secs=-1").is_err());
        assert!(p("lines to=nowhere").is_err());
        assert!(p("exit code=x").is_err());
    }
}
