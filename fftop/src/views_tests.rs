//! Tests of the actions and the logs and runs views: every new key in the app's state (the
//! confirmation's y / n / Esc / Enter, read-only, 403 and aggregator rows hiding the actions,
//! search next/previous wrapping, follow), and snapshots of the views at 80×24 and 120×40.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;
use shared::client::ControlAction;

use crate::actions::{Failure, Request};
use crate::app::{App, View};
use crate::event::{Event, PollAnswer, PollResult};
use crate::testutil::{exited_app, run_record, sample_app, status, target, NOW};
use crate::ui;

fn key(app: &mut App, code: KeyCode) {
    app.update(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn typed(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn text(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::draw(f, app)).unwrap();
    let buf: Buffer = term.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn restart_request(app: &App) -> Request {
    Request::Control {
        target: app.selected.clone().unwrap(),
        what: ControlAction::Restart,
    }
}

#[test]
fn y_at_the_prompt_sends_the_restart() {
    let mut app = sample_app(false);
    key(&mut app, KeyCode::Char('r'));
    assert_eq!(app.footer_message().unwrap(), "restart cam1-ok? y/N");
    assert!(app.outbox.is_empty(), "nothing before y");
    key(&mut app, KeyCode::Char('y'));
    assert!(app.confirm.is_none());
    assert_eq!(app.outbox, vec![restart_request(&app)]);
}

#[test]
fn n_esc_and_enter_at_the_prompt_do_nothing() {
    for code in [KeyCode::Char('n'), KeyCode::Esc, KeyCode::Enter] {
        let mut app = sample_app(false);
        key(&mut app, KeyCode::Char('S'));
        assert_eq!(app.footer_message().unwrap(), "stop cam1-ok? y/N");
        key(&mut app, code);
        assert!(app.confirm.is_none(), "{code:?} cancels");
        assert!(app.outbox.is_empty(), "{code:?} sends nothing");
        assert_eq!(app.view, View::List, "{code:?} does nothing else");
        assert!(app.quit.is_none());
        assert_eq!(app.footer_message(), None);
    }
}

#[test]
fn the_result_shows_for_a_few_seconds() {
    let mut app = sample_app(false);
    let t = app.selected.clone().unwrap();
    app.update(Event::Control {
        target: t.clone(),
        what: ControlAction::Restart,
        result: Ok(()),
    });
    assert_eq!(app.footer_message().unwrap(), "restart cam1-ok: accepted");
    app.update(Event::Tick {
        now_ms: NOW + 6_000,
    });
    assert_eq!(app.footer_message(), None, "gone after a few seconds");
}

#[test]
fn read_only_hides_the_actions() {
    let mut app = sample_app(false);
    app.read_only = true;
    key(&mut app, KeyCode::Char('r'));
    key(&mut app, KeyCode::Char('S'));
    assert!(app.confirm.is_none());
    key(&mut app, KeyCode::Char('y'));
    assert!(app.outbox.is_empty());
    key(&mut app, KeyCode::Char('?'));
    let help = text(&app, 80, 24);
    assert!(!help.contains("restart"), "{help}");
    app.read_only = false;
    let help = text(&app, 80, 24);
    assert!(help.contains("restart the encode"), "{help}");
}

#[test]
fn a_403_hides_the_actions_of_that_target_only() {
    let mut app = sample_app(false);
    let t = app.selected.clone().unwrap();
    app.update(Event::Control {
        target: t,
        what: ControlAction::Stop,
        result: Err(Failure {
            status: Some(403),
            reason: "control is off (API_READ_ONLY)".into(),
        }),
    });
    assert_eq!(
        app.footer_message().unwrap(),
        "stop cam1-ok: refused (403: control is off (API_READ_ONLY))"
    );
    key(&mut app, KeyCode::Char('r'));
    assert!(app.confirm.is_none(), "hidden after a 403");
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('r'));
    assert!(app.confirm.is_some(), "another target still has them");
}

#[test]
fn rows_behind_an_aggregator_have_no_actions() {
    let mut app = sample_app(false);
    let t = app.selected.clone().unwrap();
    app.targets.get_mut(&t).unwrap().parent = Some(target("agg"));
    key(&mut app, KeyCode::Char('r'));
    assert!(app.confirm.is_none());
}

#[test]
fn an_exited_encode_has_no_actions_and_its_logs_are_its_last_runs() {
    let mut app = exited_app(false);
    app.selected = Some(target("cam2-gone"));
    key(&mut app, KeyCode::Char('r'));
    assert!(app.confirm.is_none(), "no API to ask");
    key(&mut app, KeyCode::Char('l'));
    let shown = text(&app, 80, 24);
    assert!(shown.contains("[in#0]"), "{shown}");
    key(&mut app, KeyCode::Esc);
    app.selected = Some(target("cam3-auth"));
    key(&mut app, KeyCode::Char('l'));
    let shown = text(&app, 80, 24);
    assert!(shown.contains("(no answer: HTTP 401"), "{shown}");
}

fn lines(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let line = match i % 10 {
                3 => format!("[h264 @ 0x5] error while decoding MB {i}"),
                7 => format!("[mp4 @ 0x7] Warning: non-monotonous DTS {i}"),
                _ => format!("frame={:>5} fps= 25 q=23.0 speed=1x", i * 25),
            };
            (
                format!("2026-11-23 23:{:02}:{:02}", i / 60 % 60, i % 60),
                line,
            )
        })
        .collect()
}

fn logs_poll(app: &mut App, n: usize) {
    let t = app.selected.clone().unwrap();
    app.update(Event::Poll {
        target: t,
        result: PollResult::Up(Box::new(PollAnswer {
            status: status(shared::api::Health::Ok, Some(25.0), Some(1.0)),
            points: Vec::new(),
            logs: Some(lines(n)),
            events: Vec::new(),
            at_ms: NOW,
        })),
    });
}

/// The logs view of cam1 with 100 lines.
fn logs_app() -> App {
    let mut app = sample_app(false);
    key(&mut app, KeyCode::Char('l'));
    assert_eq!(app.view, View::Logs);
    assert_eq!(app.watched().unwrap().lines, crate::logs::LOAD_LINES);
    logs_poll(&mut app, 100);
    app
}

#[test]
fn logs_search_next_and_previous_wrap() {
    let mut app = logs_app();
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "ERROR while");
    key(&mut app, KeyCode::Enter);
    let v = app.logs.as_ref().unwrap();
    let first = v.current.unwrap();
    assert_eq!(first % 10, 3);
    assert!(!v.follow, "a match stops following");
    let mut seen = vec![first];
    for _ in 0..10 {
        key(&mut app, KeyCode::Char('n'));
        seen.push(app.logs.as_ref().unwrap().current.unwrap());
    }
    assert_eq!(
        seen[10], first,
        "ten matches: n wraps around to the same one"
    );
    key(&mut app, KeyCode::Char('N'));
    assert_eq!(app.logs.as_ref().unwrap().current, Some(seen[9]));
    key(&mut app, KeyCode::Home);
    key(&mut app, KeyCode::Char('N'));
    assert_eq!(
        app.logs.as_ref().unwrap().current,
        Some(93),
        "N from the top wraps to the last"
    );
}

#[test]
fn logs_follow_toggles_and_new_lines_append() {
    let mut app = logs_app();
    assert!(app.logs.as_ref().unwrap().follow);
    key(&mut app, KeyCode::Char('f'));
    assert!(!app.logs.as_ref().unwrap().follow);
    key(&mut app, KeyCode::Char('f'));
    assert!(app.logs.as_ref().unwrap().follow);
    key(&mut app, KeyCode::PageUp);
    assert!(!app.logs.as_ref().unwrap().follow, "scrolling up pauses");
    key(&mut app, KeyCode::End);
    assert!(app.logs.as_ref().unwrap().follow);
    logs_poll(&mut app, 120);
    assert_eq!(
        app.logs.as_ref().unwrap().lines.len(),
        120,
        "only new lines appended"
    );
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.view, View::List);
    assert!(app.logs.is_none());
}

#[test]
fn runs_view_asks_runs_and_enter_opens_a_run() {
    let mut app = sample_app(false);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('R'));
    assert_eq!(app.view, View::Runs);
    let t = app.selected.clone().unwrap();
    assert_eq!(app.outbox, vec![Request::Runs { target: t.clone() }]);
    app.update(Event::Runs {
        target: t,
        result: Ok(vec![run_record(1, "first"), run_record(2, "second")]),
    });
    let v = app.runs.as_ref().unwrap();
    assert_eq!(v.selected_run().unwrap().run, 2, "newest first");
    app.outbox.clear();
    key(&mut app, KeyCode::Char('R'));
    assert_eq!(app.outbox.len(), 1, "R again reloads");
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    assert!(app.runs.as_ref().unwrap().open);
    assert!(text(&app, 80, 24).contains("[in#0] first"));
    key(&mut app, KeyCode::Esc);
    assert!(
        !app.runs.as_ref().unwrap().open,
        "Esc closes the lines first"
    );
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.view, View::Detail, "back where it was opened");
}

#[test]
fn snapshot_confirmation_prompt() {
    let mut app = sample_app(false);
    key(&mut app, KeyCode::Char('r'));
    insta::assert_snapshot!("confirm_80x24", text(&app, 80, 24));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('S'));
    insta::assert_snapshot!("confirm_detail_120x40", text(&app, 120, 40));
}

#[test]
fn snapshot_logs_with_a_search() {
    let mut app = logs_app();
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "error");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('n'));
    insta::assert_snapshot!("logs_search_80x24", text(&app, 80, 24));
    insta::assert_snapshot!("logs_search_120x40", text(&app, 120, 40));
}

#[test]
fn snapshot_runs_table() {
    let mut app = sample_app(false);
    key(&mut app, KeyCode::Char('R'));
    let t = app.selected.clone().unwrap();
    let mut clean = run_record(1, "x");
    clean.error = None;
    clean.reason = "restart asked by the API (unix)".into();
    app.update(Event::Runs {
        target: t,
        result: Ok(vec![
            clean,
            run_record(2, "Connection refused"),
            run_record(3, "x"),
        ]),
    });
    insta::assert_snapshot!("runs_80x24", text(&app, 80, 24));
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("runs_open_120x40", text(&app, 120, 40));
}

#[test]
fn error_and_warning_lines_are_coloured_and_marked() {
    let mut app = logs_app();
    app.color = true;
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    term.draw(|f| ui::draw(f, &app)).unwrap();
    let buf = term.backend().buffer().clone();
    let row = |needle: &str| {
        (0..24)
            .find(|&y| {
                let line: String = (0..80).map(|x| buf[(x, y)].symbol()).collect();
                line.contains(needle)
            })
            .unwrap_or_else(|| panic!("{needle} not drawn"))
    };
    let err = row("error while decoding MB 93");
    assert_eq!(buf[(1, err)].symbol(), "!");
    assert_eq!(buf[(20, err)].fg, ratatui::style::Color::Red);
    let warn = row("non-monotonous DTS 97");
    assert_eq!(buf[(1, warn)].symbol(), "~");
    assert_eq!(buf[(20, warn)].fg, ratatui::style::Color::Yellow);
    let plain = row("frame= 2450");
    assert_eq!(buf[(1, plain)].symbol(), " ");
}
