//! `--once`: poll every target one time, print a plain table (or, with `--json`, a JSON array)
//! and exit 0 if every target is healthy or warming up, 1 otherwise.
//!
//! The output is for scripts and logs: no terminal control codes and no colour, whatever the
//! terminal; control characters in names, reasons and errors are replaced with `?`. A target
//! that does not answer is a row with health `down` and the error. No target at all (an empty
//! `--scan` directory) exits 1: nothing is running, which is not healthy.
//!
//! JSON shape: one object per target, sorted by name. An answering target's object is its
//! `/status` with `"target"` (the address), `"name"` and `"seen_ms"` (when it answered, Unix
//! ms) added; a target that does not answer is
//! `{"target": .., "name": .., "health": "down", "error": ".."}` (`"unauthorized"` for a
//! `401`); an exited encode's is its `status/status.json` with `last_run` from `runs.jsonl`,
//! `"ended_ms"` (when it ended, Unix ms) and health `exited`. A `HOST:PORT` target that is an
//! aggregator (`fftop --serve`) is replaced by its encodes, named `host/encode` (`host:port/encode`
//! when two aggregators share a host); they sort
//! after the live rows only when exited, like every row.

use std::time::Duration;

use serde_json::{json, Map, Value};

use shared::timefmt::now_ms;

use crate::app::{App, Conn, TargetState};
use crate::cli::Cli;
use crate::format;

/// Polls all targets once, prints, and returns the exit code.
pub async fn run(cli: &Cli) -> anyhow::Result<i32> {
    let mut targets = cli.explicit_targets();
    if !cli.scan.is_empty() {
        let dirs = cli.scan.clone();
        let found = tokio::task::spawn_blocking(move || crate::scan::scan(&dirs)).await?;
        for t in found {
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
    }
    if let Some(file) = &cli.targets_file {
        let listed = crate::targets_file::read(file)
            .map_err(|e| anyhow::anyhow!("cannot read the targets file {}: {e}", file.display()))?;
        for t in listed {
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
    }
    let timeout = cli
        .interval
        .max(Duration::from_secs(2))
        .min(Duration::from_secs(10));
    let polls = targets
        .iter()
        .map(|t| crate::poll::once(t.clone(), cli.token.clone(), timeout));
    let events = futures::future::join_all(polls).await;

    let mut app = App::new(targets, cli.interval, false, now_ms());
    for ev in events.into_iter().flatten() {
        app.update(ev);
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&json_of(&app))?);
    } else {
        print!("{}", table(&app));
    }
    if app.targets.is_empty() {
        eprintln!("fftop: no targets found");
    }
    Ok(exit_code(&app))
}

/// 0 when there is at least one target and every one is healthy or warming up.
pub fn exit_code(app: &App) -> i32 {
    let mut rows = app.targets.values().filter(|t| !t.aggregator).peekable();
    if rows.peek().is_some() && rows.all(TargetState::is_good) {
        0
    } else {
        1
    }
}

/// Control characters become `?`, so nothing in the output can move a cursor.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

const HEADINGS: [&str; 10] = [
    "NAME", "HEALTH", "STATE", "FPS", "SPEED", "BITRATE", "FRAMES", "DROP/DUP", "UPTIME", "NOTE",
];

/// The plain table, one line per target (sorted by name), columns padded with spaces.
pub fn table(app: &App) -> String {
    let mut rows: Vec<[String; 10]> = vec![HEADINGS.map(String::from)];
    for t in app.visible() {
        let live = t.live();
        let p = live.and_then(|s| s.progress.as_ref());
        let note = match &t.conn {
            Conn::Down { error, .. } | Conn::Unauthorized { error, .. } => {
                format!("{error} ({})", format::seen(t.last_seen_ms, app.now_ms))
            }
            Conn::Exited { ended_ms } => exited_note(t, *ended_ms, app.now_ms),
            _ => t.problem().unwrap_or_default(),
        };
        rows.push([
            clean(&t.name),
            t.health_word().to_string(),
            match (&t.conn, live) {
                (Conn::Exited { .. }, _) => "exited",
                (_, Some(s)) => s.state.as_str(),
                _ => "-",
            }
            .to_string(),
            format::fps(t.fps()),
            format::speed(t.speed()),
            format::bitrate(p.and_then(|p| p.bitrate_kbps)),
            format::count(p.and_then(|p| p.frame)),
            if live.is_some() {
                format::drop_dup(p.and_then(|p| p.drop_frames), p.and_then(|p| p.dup_frames))
            } else {
                "-".into()
            },
            live.map_or("-".into(), |s| format::duration(s.uptime_s)),
            clean(&note),
        ]);
    }
    let mut widths = [0usize; 10];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            let right = (3..=8).contains(&i);
            if i > 0 {
                line.push_str("  ");
            }
            if right {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                if i + 1 < r.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// An exited row's note: when it ended, why, and ffmpeg's last words.
pub fn exited_note(t: &TargetState, ended_ms: i64, now_ms: i64) -> String {
    let mut note = format!("ended {}", format::ago(Some(ended_ms), now_ms));
    if let Some(why) = t.problem() {
        note.push_str(&format!(": {why}"));
    }
    if let Some(err) = t.last_run.as_ref().and_then(|r| r.error.as_ref()) {
        if !note.contains(err.as_str()) {
            note.push_str(&format!(" · {err}"));
        }
    }
    note
}

/// The JSON array (shape in the module docs).
pub fn json_of(app: &App) -> Value {
    Value::Array(app.visible().into_iter().map(json_of_one).collect())
}

/// One target's object of the JSON array.
pub fn json_of_one(t: &TargetState) -> Value {
    {
        let mut obj = Map::new();
        obj.insert("target".into(), json!(t.target.to_string()));
        obj.insert("name".into(), json!(t.name));
        match (&t.conn, &t.status) {
            (Conn::Up, Some(status)) => {
                if let Ok(Value::Object(fields)) = serde_json::to_value(status) {
                    obj.extend(fields);
                }
                if let Some(seen) = t.last_seen_ms {
                    obj.insert("seen_ms".into(), json!(seen));
                }
            }
            (Conn::Exited { ended_ms }, Some(status)) => {
                let mut status = status.clone();
                if t.last_run.is_some() {
                    status.last_run = t.last_run.clone();
                }
                if let Ok(Value::Object(fields)) = serde_json::to_value(&status) {
                    obj.extend(fields);
                }
                obj.insert("health".into(), json!("exited"));
                obj.insert("ended_ms".into(), json!(ended_ms));
            }
            (Conn::Down { error, .. }, _) => {
                obj.insert("health".into(), json!("down"));
                obj.insert("error".into(), json!(error));
            }
            (Conn::Unauthorized { error, .. }, _) => {
                obj.insert("health".into(), json!("unauthorized"));
                obj.insert("error".into(), json!(error));
            }
            _ => {
                obj.insert("health".into(), json!("down"));
                obj.insert("error".into(), json!("not polled"));
            }
        }
        Value::Object(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fake_wrapperd, sample_app, status, target, temp_dir, up, NOW};
    use clap::Parser;
    use shared::api::Health;
    use shared::client::Target;

    #[test]
    fn table_is_plain_text() {
        let app = sample_app(false);
        let t = table(&app);
        assert!(!t.contains('\x1b'), "{t}");
        assert!(t.chars().all(|c| c == '\n' || !c.is_control()));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[1].starts_with("cam1-ok"));
        assert!(lines[1].contains(" ok "));
        assert!(lines[3].contains("failing") && lines[3].contains("fps 8.0 < 15.0"));
        assert!(lines[5].contains("down") && lines[5].contains("Connection refused"));
        assert!(lines[5].contains("seen 42s ago"));
        insta::assert_snapshot!(t);
    }

    #[test]
    fn control_characters_never_reach_the_output() {
        let evil = Target::Unix("/srv/\x1b[31mevil/api.sock".into());
        let mut app = App::new(vec![evil.clone()], Duration::from_secs(1), false, NOW);
        let mut st = status(Health::Failing, Some(1.0), Some(0.1));
        st.reason = Some("bad\x1b]0;title\x07 reason".into());
        app.update(up(&evil, st, vec![]));
        let t = table(&app);
        assert!(!t.contains('\x1b') && !t.contains('\x07'), "{t:?}");
    }

    #[test]
    fn exit_code_is_zero_only_when_all_good() {
        assert_eq!(exit_code(&sample_app(false)), 1);
        let t1 = target("a");
        let t2 = target("b");
        let mut app = App::new(
            vec![t1.clone(), t2.clone()],
            Duration::from_secs(1),
            false,
            NOW,
        );
        assert_eq!(exit_code(&app), 1, "not polled yet");
        app.update(up(&t1, status(Health::Ok, Some(25.0), Some(1.0)), vec![]));
        app.update(up(&t2, status(Health::WarmingUp, None, None), vec![]));
        assert_eq!(exit_code(&app), 0);
        app.update(up(&t2, status(Health::Stalled, None, None), vec![]));
        assert_eq!(exit_code(&app), 1);
        // Between runs is not healthy: the encode is not running.
        app.update(up(&t2, status(Health::Restarting, None, None), vec![]));
        assert_eq!(exit_code(&app), 1);
        assert!(
            table(&app).contains("restarting  restarting"),
            "{}",
            table(&app)
        );
        app.update(up(&t2, status(Health::Ok, None, None), vec![]));
        assert_eq!(exit_code(&app), 0);
        let empty = App::new(vec![], Duration::from_secs(1), false, NOW);
        assert_eq!(exit_code(&empty), 1, "no target is not healthy");
    }

    #[test]
    fn json_is_statuses_plus_target_and_name_and_down_objects() {
        let v = json_of(&sample_app(false));
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 5);
        assert_eq!(arr[0]["name"], "cam1-ok");
        assert_eq!(arr[0]["target"], "/srv/enc/cam1-ok/api.sock");
        assert_eq!(arr[0]["health"], "ok");
        assert_eq!(arr[0]["rates"]["fps"], 24.9);
        // An answering target's object is a full status.
        let mut o = arr[2].as_object().unwrap().clone();
        o.remove("target");
        o.remove("name");
        let st: shared::api::Status = serde_json::from_value(Value::Object(o)).unwrap();
        assert_eq!(st.health, Health::Failing);
        let down = arr[4].as_object().unwrap();
        assert_eq!(down["health"], "down");
        assert_eq!(down["name"], "cam5-down");
        assert!(down["error"].as_str().unwrap().contains("refused"));
        assert_eq!(down.len(), 4, "{down:?}");
    }

    #[tokio::test]
    async fn once_against_live_hung_and_missing_targets() {
        let dir = temp_dir("once");
        let good = dir.join("good");
        let hung = dir.join("hung");
        std::fs::create_dir_all(&good).unwrap();
        std::fs::create_dir_all(&hung).unwrap();
        let s1 = fake_wrapperd(
            good.join("api.sock"),
            status(Health::Ok, Some(25.0), Some(1.0)),
            false,
        )
        .await;
        let s2 = fake_wrapperd(hung.join("api.sock"), status(Health::Ok, None, None), true).await;

        let ok_only = Cli::try_parse_from(["fftop", "--once", good.to_str().unwrap()]).unwrap();
        assert_eq!(run(&ok_only).await.unwrap(), 0);

        let started = std::time::Instant::now();
        let all = Cli::try_parse_from([
            "fftop",
            "--once",
            "--json",
            "--scan",
            dir.to_str().unwrap(),
            "/nonexistent/fftop/api.sock",
        ])
        .unwrap();
        assert_eq!(run(&all).await.unwrap(), 1);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a hung target costs one timeout, not more"
        );
        s1.abort();
        s2.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
