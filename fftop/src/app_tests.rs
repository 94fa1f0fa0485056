//! Tests of the state and the keys: selection, filter, sort, detail, back, quit, scans, and the
//! selection staying on the same target (not the same row) when rows re-sort or come and go.

use std::collections::BTreeSet;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shared::api::Health;

use crate::app::{App, Conn, Quit, SortKey, View};
use crate::event::Event;
use crate::testutil::{
    down, exited, exited_app, points, sample_app, status, target, unauthorized, up, NOW,
};

fn key(app: &mut App, code: KeyCode) {
    app.update(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn ctrl(app: &mut App, c: char) {
    app.update(Event::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::CONTROL,
    )));
}

fn typed(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn names(app: &App) -> Vec<String> {
    app.visible().iter().map(|t| t.name.clone()).collect()
}

fn selected(app: &App) -> String {
    app.selected_state().unwrap().name.clone()
}

#[test]
fn starts_on_the_first_row_sorted_by_name() {
    let app = sample_app(false);
    assert_eq!(
        names(&app),
        [
            "cam1-ok",
            "cam2-warm",
            "cam3-fail",
            "cam4-stall",
            "cam5-down"
        ]
    );
    assert_eq!(selected(&app), "cam1-ok");
    assert_eq!(app.view, View::List);
}

#[test]
fn arrows_and_jk_move_and_stop_at_the_ends() {
    let mut app = sample_app(false);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(selected(&app), "cam3-fail");
    key(&mut app, KeyCode::Char('k'));
    assert_eq!(selected(&app), "cam2-warm");
    for _ in 0..10 {
        key(&mut app, KeyCode::Up);
    }
    assert_eq!(selected(&app), "cam1-ok");
    key(&mut app, KeyCode::End);
    assert_eq!(selected(&app), "cam5-down");
    key(&mut app, KeyCode::Down);
    assert_eq!(selected(&app), "cam5-down");
}

#[test]
fn enter_opens_detail_and_q_or_esc_go_back_then_quit() {
    let mut app = sample_app(false);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Detail);
    assert_eq!(app.detail_target(), Some(&target("cam2-warm")));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.view, View::List);
    assert_eq!(app.quit, None);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('q'));
    assert_eq!(app.view, View::List);
    assert_eq!(app.quit, None);
    key(&mut app, KeyCode::Char('q'));
    assert_eq!(app.quit, Some(Quit::User));

    // Esc in the list never quits (htop, k9s): only q does.
    let mut app = sample_app(false);
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.quit, None);
    assert_eq!(app.view, View::List);
    let mut app = sample_app(false);
    ctrl(&mut app, 'c');
    assert_eq!(app.quit, Some(Quit::User));
}

#[test]
fn detail_follows_selection_keys() {
    let mut app = sample_app(false);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Down);
    assert_eq!(app.view, View::Detail);
    assert_eq!(app.detail_target(), Some(&target("cam2-warm")));
}

#[test]
fn filter_narrows_rows_and_enter_keeps_esc_clears() {
    let mut app = sample_app(false);
    key(&mut app, KeyCode::End); // cam5-down selected
    key(&mut app, KeyCode::Char('/'));
    assert!(app.filter_editing);
    typed(&mut app, "cam3");
    assert_eq!(names(&app), ["cam3-fail"]);
    assert_eq!(
        selected(&app),
        "cam3-fail",
        "selection moves onto a shown row"
    );
    // Keys typed into the filter are text, not commands.
    typed(&mut app, "q");
    assert_eq!(app.quit, None);
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Enter);
    assert!(!app.filter_editing);
    assert_eq!(app.filter, "cam3");
    assert_eq!(names(&app), ["cam3-fail"]);

    // Esc in the list clears a filter (and never quits).
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.filter, "");
    assert_eq!(names(&app).len(), 5);
    assert_eq!(selected(&app), "cam3-fail");
    assert_eq!(app.quit, None);

    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "DOWN");
    assert_eq!(names(&app), ["cam5-down"], "case-insensitive");
    key(&mut app, KeyCode::Esc);
    assert!(!app.filter_editing);
    assert_eq!(app.filter, "");

    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "nothing-matches");
    assert!(names(&app).is_empty());
    assert_eq!(app.selected, None);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter); // no detail without a selection
    assert_eq!(app.view, View::List);
}

#[test]
fn sort_cycles_and_orders_rows() {
    let mut app = sample_app(false);
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.sort, SortKey::Health);
    assert_eq!(
        names(&app),
        [
            "cam5-down",
            "cam3-fail",
            "cam4-stall",
            "cam2-warm",
            "cam1-ok"
        ]
    );
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.sort, SortKey::Fps);
    // Lowest current fps first, the down target (no fps) last.
    assert_eq!(
        names(&app),
        [
            "cam4-stall",
            "cam3-fail",
            "cam1-ok",
            "cam2-warm",
            "cam5-down"
        ]
    );
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.sort, SortKey::Speed);
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.sort, SortKey::Uptime);
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.sort, SortKey::Name);
}

#[test]
fn selection_stays_on_the_same_target_when_rows_resort() {
    let mut app = sample_app(false);
    key(&mut app, KeyCode::Char('s')); // health
    key(&mut app, KeyCode::Char('s')); // fps
                                       // Select cam1-ok (third row under fps sort).
    while selected(&app) != "cam1-ok" {
        key(&mut app, KeyCode::Down);
    }
    let row_before = app.selected_index();
    // cam1 drops to 0 fps: it ties with cam4 for the lowest and moves to the top.
    app.update(up(
        &target("cam1-ok"),
        status(Health::Ok, Some(0.0), Some(0.1)),
        vec![],
    ));
    assert_eq!(names(&app)[0], "cam1-ok");
    assert_eq!(selected(&app), "cam1-ok");
    assert_ne!(app.selected_index(), row_before);
    // And when another target goes down and re-sorts under health.
    while app.sort != SortKey::Health {
        key(&mut app, KeyCode::Char('s'));
    }
    app.update(down(&target("cam2-warm"), "no answer within 1s", NOW));
    assert_eq!(selected(&app), "cam1-ok");
}

#[test]
fn scan_adds_and_removes_targets_keeping_the_selection() {
    let mut app = App::new(vec![], std::time::Duration::from_secs(1), false, NOW);
    assert_eq!(app.selected, None);
    let set = |ns: &[&str]| ns.iter().map(|n| target(n)).collect::<BTreeSet<_>>();
    app.update(Event::Scan(set(&["b", "d"])));
    assert_eq!(names(&app), ["b", "d"]);
    assert_eq!(selected(&app), "b");
    key(&mut app, KeyCode::Down);
    assert_eq!(selected(&app), "d");
    // A new target sorting before the selected one: selection stays on d.
    app.update(Event::Scan(set(&["a", "b", "d"])));
    assert_eq!(names(&app), ["a", "b", "d"]);
    assert_eq!(selected(&app), "d");
    // The selected target goes away: the row now at its place (or the last) is selected.
    app.update(Event::Scan(set(&["a", "b"])));
    assert_eq!(selected(&app), "b");
    // Detail of a target that goes away returns to the list.
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Detail);
    app.update(Event::Scan(set(&["a"])));
    assert_eq!(app.view, View::List);
    assert_eq!(selected(&app), "a");
    app.update(Event::Scan(BTreeSet::new()));
    assert_eq!(app.selected, None);
}

#[test]
fn scans_never_remove_explicit_targets() {
    let mut app = sample_app(false);
    app.update(Event::Scan(BTreeSet::new()));
    assert_eq!(app.targets.len(), 5);
}

#[test]
fn polls_for_removed_targets_are_ignored() {
    let mut app = sample_app(false);
    app.update(up(&target("ghost"), status(Health::Ok, None, None), vec![]));
    assert_eq!(app.targets.len(), 5);
}

#[test]
fn down_then_up_recovers_and_leaves_a_gap() {
    let mut app = sample_app(false);
    let t = target("cam5-down");
    assert!(matches!(app.targets[&t].conn, Conn::Down { .. }));
    assert_eq!(app.targets[&t].health_word(), "down");
    assert!(!app.targets[&t].is_good());
    // The down time is kept from the first failure.
    app.update(down(&t, "no answer within 1s", NOW));
    match &app.targets[&t].conn {
        Conn::Down { since_ms, error } => {
            assert_eq!(*since_ms, NOW - 41_000);
            assert_eq!(error, "no answer within 1s");
        }
        other => panic!("{other:?}"),
    }
    app.update(up(
        &t,
        status(Health::Ok, Some(25.0), Some(1.0)),
        points(5, 0, |_| 25.0),
    ));
    let st = &app.targets[&t];
    assert_eq!(st.conn, Conn::Up);
    assert!(st.is_good());
    let first_after = st.history.points().find(|p| p.t >= NOW - 5_000).unwrap();
    assert!(first_after.gap_before, "the line breaks at the down time");
}

#[test]
fn dirty_only_when_something_visible_changes() {
    let mut app = sample_app(false);
    assert!(!app.dirty);
    app.update(Event::Tick { now_ms: NOW + 100 });
    assert!(!app.dirty, "same second");
    app.update(Event::Tick {
        now_ms: NOW + 1_000,
    });
    assert!(app.dirty, "a new second (ages, graphs move)");
    app.dirty = false;
    // The same status again, no new points: nothing to redraw.
    app.update(up(
        &target("cam1-ok"),
        status(Health::Ok, Some(24.9), Some(0.99)),
        points(200, 0, |a| 25.0 - (a / 20.0).sin()),
    ));
    assert!(!app.dirty);
    app.update(up(
        &target("cam1-ok"),
        status(Health::Ok, Some(24.0), Some(0.99)),
        vec![],
    ));
    assert!(app.dirty);
    app.dirty = false;
    key(&mut app, KeyCode::Char('z')); // an unbound key
    assert!(!app.dirty);
    app.update(Event::Resize(100, 30));
    assert!(app.dirty);
}

#[test]
fn ctrl_l_asks_for_a_full_repaint_and_help_toggles() {
    let mut app = sample_app(false);
    ctrl(&mut app, 'l');
    assert!(app.repaint && app.dirty);
    key(&mut app, KeyCode::Char('?'));
    assert!(app.help);
    key(&mut app, KeyCode::Char('q')); // closes help, does not quit
    assert!(!app.help);
    assert_eq!(app.quit, None);
}

#[test]
fn terminal_gone_quits() {
    let mut app = sample_app(false);
    app.update(Event::TerminalGone("hang-up".into()));
    assert_eq!(app.quit, Some(Quit::TerminalGone("hang-up".into())));
}

/// While restarting, the countdown to the next run goes down with the time since the poll; the
/// reason gets it when wrapperd's reason does not say it; other healths have none.
#[test]
fn the_countdown_to_the_next_run() {
    let t = target("r");
    let mut app = App::new(
        vec![t.clone()],
        std::time::Duration::from_secs(1),
        false,
        NOW,
    );
    let mut st = status(Health::Restarting, None, None);
    st.reason = Some("run 3 ended (stalled: no output for 15 s)".into());
    app.update(up(&t, st, vec![])); // polled at NOW - 500 ms, 4.0 s to go then
    let ts = &app.targets[&t];
    assert_eq!(ts.next_start_in_s(NOW), Some(3.5));
    assert_eq!(ts.next_start_in_s(NOW + 10_000), Some(0.0), "never below 0");
    assert_eq!(
        ts.problem_at(NOW + 1_000).as_deref(),
        Some("run 3 ended (stalled: no output for 15 s); next start in 2 s")
    );
    // wrapperd's own reason already says it: kept as it is.
    app.update(up(&t, status(Health::Restarting, None, None), vec![]));
    let ts = &app.targets[&t];
    assert_eq!(ts.problem_at(NOW), ts.problem());
    app.update(up(&t, status(Health::Ok, None, None), vec![]));
    assert_eq!(app.targets[&t].next_start_in_s(NOW), None);
    // A down target has no countdown, whatever its last status said.
    app.update(up(&t, status(Health::Restarting, None, None), vec![]));
    app.update(down(&t, "gone", NOW));
    assert_eq!(app.targets[&t].next_start_in_s(NOW), None);
}

#[test]
fn exited_rows_sort_last_and_x_hides_them() {
    let mut app = exited_app(false);
    assert_eq!(
        names(&app),
        ["cam1-ok", "cam3-auth", "cam2-gone"],
        "exited after the live ones, whatever the name"
    );
    app.sort = SortKey::Health;
    assert_eq!(names(&app).last().unwrap(), "cam2-gone");
    assert_eq!(app.hidden_exited(), 0);
    // Selected exited row: hiding moves the selection to a shown row.
    key(&mut app, KeyCode::End);
    assert_eq!(selected(&app), "cam2-gone");
    key(&mut app, KeyCode::Char('x'));
    assert!(app.hide_exited);
    assert_eq!(names(&app).len(), 2);
    assert_eq!(app.hidden_exited(), 1);
    assert_ne!(selected(&app), "cam2-gone");
    key(&mut app, KeyCode::Char('x'));
    assert_eq!(names(&app).len(), 3);
    assert_eq!(app.hidden_exited(), 0);
    // The health words and why.
    let gone = app.targets.get(&target("cam2-gone")).unwrap();
    assert_eq!(gone.health_word(), "exited");
    assert!(!gone.is_good());
    assert!(gone.problem().unwrap().contains("stopped by the manager"));
    let auth = app.targets.get(&target("cam3-auth")).unwrap();
    assert_eq!(auth.health_word(), "unauthorized");
    assert!(matches!(auth.conn, Conn::Unauthorized { .. }));
}

#[test]
fn an_exited_target_that_starts_again_is_live_again() {
    let mut app = exited_app(false);
    let t = target("cam2-gone");
    app.update(up(&t, status(Health::WarmingUp, None, None), vec![]));
    let st = app.targets.get(&t).unwrap();
    assert_eq!(st.health_word(), "warming_up");
    assert!(st.last_run.is_none());
    // ...and exits again, then is killed: an exited row stays exited until its files change.
    app.update(exited(&t, NOW - 1000));
    assert_eq!(app.targets.get(&t).unwrap().health_word(), "exited");
    app.update(down(&t, "cannot connect: refused", NOW));
    assert_eq!(app.targets.get(&t).unwrap().health_word(), "down");
    app.update(unauthorized(&t));
    assert_eq!(app.targets.get(&t).unwrap().health_word(), "unauthorized");
}

#[test]
fn x_is_a_key_only_outside_the_filter() {
    let mut app = exited_app(false);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "x");
    assert!(!app.hide_exited);
    assert_eq!(app.filter, "x");
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('x'));
    assert!(app.hide_exited);
}

#[test]
fn a_status_that_says_exited_is_an_exited_row() {
    let t = target("cam1-ok");
    let mut app = App::new(
        vec![t.clone()],
        std::time::Duration::from_secs(1),
        false,
        NOW,
    );
    let mut st = status(Health::Exited, None, None);
    st.last_run = Some(crate::testutil::run_record(4, "gone"));
    app.update(up(&t, st.clone(), vec![]));
    let s = app.targets.get(&t).unwrap();
    let end = crate::exited::parse_rfc3339_ms("2026-11-23T23:59:30.000Z").unwrap();
    assert_eq!(s.conn, Conn::Exited { ended_ms: end });
    assert_eq!(s.last_run.as_ref().unwrap().run, 4);
    // Without a run record, when it was first seen exited stays.
    st.last_run = None;
    let t2 = target("cam2");
    app.explicit.insert(t2.clone());
    app.sync_sources();
    app.update(up(&t2, st.clone(), vec![]));
    let first = app.targets.get(&t2).unwrap().conn.clone();
    assert_eq!(
        first,
        Conn::Exited {
            ended_ms: NOW - 500
        }
    );
    app.update(Event::Poll {
        target: t2.clone(),
        result: crate::event::PollResult::Up(Box::new(crate::event::PollAnswer {
            events: Vec::new(),
            status: st,
            points: vec![],
            logs: None,
            at_ms: NOW + 5_000,
        })),
    });
    assert_eq!(app.targets.get(&t2).unwrap().conn, first);
}
