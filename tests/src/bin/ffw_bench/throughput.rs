//! Measurement 4: log throughput, 2 000 000 lines through wrapperd with file logs against
//! `| cat > file`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::procs::{die_with_parent, wall};
use crate::report::{Report, Verdict};
use crate::util::{fmt_list, median, median_line};
use crate::Ctx;

/// 4. Log throughput: 2 000 000 lines under wrapperd with file logs vs `| cat > file`.
pub(crate) fn m4_throughput(c: &Ctx, rep: &mut Report) {
    let n: u64 = 2_000_000;
    let pairs = c.pairs(5, 3);
    let script = ["lines", "n=2000000", "to=stderr", "nostats"];
    let (mut wr, mut ct, mut ratios, mut counts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let wd = c.dir("m4");
    let catfile = c.dir("m4-cat.log");
    for i in 0..pairs {
        let run_wrapped = || {
            let _ = fs::remove_dir_all(&wd);
            let mut cmd = Command::new(&c.bins.wrapperd);
            cmd.args(script)
                .env("WORKDIR", &wd)
                .env("FFMPEG_BIN", &c.bins.fake)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
            wall(cmd)
        };
        let run_cat = || {
            let _ = fs::remove_file(&catfile);
            let t = Instant::now();
            let out = fs::File::create(&catfile).expect("cat file");
            let mut cat = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(out)
                .spawn()
                .expect("cat");
            let stdin = cat.stdin.take().expect("cat stdin");
            let mut fake = Command::new(&c.bins.fake)
                .args(script)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::os::fd::OwnedFd::from(stdin)))
                .spawn()
                .expect("fake");
            let _ = fake.wait();
            let _ = cat.wait();
            t.elapsed().as_secs_f64()
        };
        let (w, k) = if i % 2 == 0 {
            let w = run_wrapped();
            (w, run_cat())
        } else {
            let k = run_cat();
            (run_wrapped(), k)
        };
        let count = count_log_lines(&wd.join("logs"));
        eprintln!(
            "  4: pair {}: wrapperd {w:.3} s ({count} lines in the files), cat {k:.3} s",
            i + 1
        );
        wr.push(w);
        ct.push(k);
        ratios.push(w / k);
        counts.push(count);
    }
    let cat_lines = fs::read(&catfile)
        .map(|b| b.iter().filter(|&&x| x == b'\n').count())
        .unwrap_or(0);
    let r = median(&ratios);
    let rate = n as f64 / median(&wr);
    let all = counts.iter().all(|&x| x == n);
    rep.row(
        "4a",
        "2M lines: wrapperd wall / `| cat > file` wall",
        "<= 1.5",
        format!("{r:.2} (median of {pairs} pairs)"),
        Some(r / 1.5),
    );
    rep.row(
        "4b",
        "2M lines: lines/s through wrapperd",
        ">= 1 000 000/s",
        format!("{:.2} M lines/s", rate / 1e6),
        Some(1e6 / rate),
    );
    rep.push_row(
        "4c",
        "2M lines: every line in ffmpeg.log*",
        "2 000 000 each run",
        format!(
            "{} of {pairs} runs",
            counts.iter().filter(|&&x| x == n).count()
        ),
        None,
        if all { Verdict::Met } else { Verdict::Missed },
    );
    rep.section(
        4,
        "Log throughput",
        &format!(
            "The fake ffmpeg (`fake-ffmpeg {}`) prints `line 1` … `line 2000000` to stderr as \
             fast as it can. Under wrapperd with file logging on (defaults: days rotation), wall \
             time from spawning wrapperd to its exit (so everything is in the files); against \
             the same child with its stderr piped through `cat` into a file on the same disk, \
             wall time until both have exited. Pairs alternate. Every run of wrapperd is \
             checked: the lines `<…> line N` across `logs/ffmpeg.log*` are counted.",
            script.join(" ")
        ),
        vec![
            median_line("wrapperd wall s", &wr, 3),
            median_line("cat wall s", &ct, 3),
            format!("ratios: {}", fmt_list(&ratios, 2)),
            format!(
                "lines in ffmpeg.log* per run: {:?}; in the cat file: {cat_lines}",
                counts
            ),
        ],
    );
}

pub(crate) fn count_log_lines(logs: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(logs) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("ffmpeg.log") {
            continue;
        }
        if let Ok(f) = fs::File::open(e.path()) {
            for l in BufReader::with_capacity(1 << 20, f)
                .split(b'\n')
                .map_while(Result::ok)
            {
                if l.first() == Some(&b'<') && l.windows(6).any(|w| w == b" line ") {
                    n += 1;
                }
            }
        }
    }
    n
}
