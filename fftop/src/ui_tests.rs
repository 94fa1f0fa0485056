//! Snapshot tests of the drawing (ratatui `TestBackend` + insta), at 40×12, 80×24 and 200×50,
//! with and without colour, with targets that are ok, warming up, failing, stalled and down.
//! Text snapshots drop styles, so colour is checked on the buffer cells themselves.

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;

use crate::app::{App, View};
use crate::testutil::{restarting_app, sample_app, target};
use crate::ui;

fn render(app: &App, w: u16, h: u16) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| ui::draw(f, app)).unwrap();
    term.backend().buffer().clone()
}

/// The buffer as text, one line per row, trailing blanks cut.
fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Where `needle` starts on some row: (x, y).
fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    let area = buf.area;
    for y in 0..area.height {
        let cells: Vec<&str> = (0..area.width).map(|x| buf[(x, y)].symbol()).collect();
        for x in 0..area.width as usize {
            let mut s = String::new();
            for c in &cells[x..] {
                s.push_str(c);
                if s.len() >= needle.len() {
                    break;
                }
            }
            if s.starts_with(needle) {
                return Some((x as u16, y));
            }
        }
    }
    None
}

/// The cell of the health word in `name`'s row.
fn health_cell(buf: &Buffer, name: &str, word: &str) -> (u16, u16) {
    let (_, y) = find(buf, name).unwrap_or_else(|| panic!("{name} not drawn"));
    let area = buf.area;
    let row: Vec<&str> = (0..area.width).map(|x| buf[(x, y)].symbol()).collect();
    let line: String = row.concat();
    let after_name = line.find(name).unwrap() + name.len();
    let byte = after_name
        + line[after_name..]
            .find(word)
            .expect("health word in the row");
    // Columns are single-width here; count chars up to the byte offset.
    let x = line[..byte].chars().count() as u16;
    (x, y)
}

fn detail_app(color: bool, name: &str) -> App {
    let mut app = sample_app(color);
    app.selected = Some(target(name));
    app.view = View::Detail;
    app
}

#[test]
fn list_80x24_no_color() {
    insta::assert_snapshot!(text(&render(&sample_app(false), 80, 24)));
}

#[test]
fn list_40x12() {
    insta::assert_snapshot!(text(&render(&sample_app(false), 40, 12)));
}

#[test]
fn list_200x50() {
    insta::assert_snapshot!(text(&render(&sample_app(true), 200, 50)));
}

#[test]
fn detail_80x24() {
    insta::assert_snapshot!(text(&render(&detail_app(false, "cam3-fail"), 80, 24)));
}

#[test]
fn detail_of_down_target_80x24() {
    insta::assert_snapshot!(text(&render(&detail_app(false, "cam5-down"), 80, 24)));
}

#[test]
fn detail_40x12() {
    insta::assert_snapshot!(text(&render(&detail_app(false, "cam1-ok"), 40, 12)));
}

#[test]
fn detail_200x50() {
    insta::assert_snapshot!(text(&render(&detail_app(true, "cam4-stall"), 200, 50)));
}

#[test]
fn list_with_restarting_80x24() {
    insta::assert_snapshot!(text(&render(&restarting_app(false), 80, 24)));
}

#[test]
fn list_with_restarting_120x40() {
    insta::assert_snapshot!(text(&render(&restarting_app(false), 120, 40)));
}

#[test]
fn detail_of_restarting_80x24() {
    let mut app = restarting_app(false);
    app.view = View::Detail;
    insta::assert_snapshot!(text(&render(&app, 80, 24)));
}

#[test]
fn detail_of_restarting_120x40() {
    let mut app = restarting_app(false);
    app.view = View::Detail;
    insta::assert_snapshot!(text(&render(&app, 120, 40)));
}

/// `restarting` is a word at every size, in its own colour, bold (trouble stands out without
/// colour too), sorted with `stopping` just after the exited ones; its countdown and restarts
/// count are on screen.
#[test]
fn restarting_reads_with_and_without_colour() {
    for (w, h) in [(40, 12), (80, 24), (120, 40), (200, 50)] {
        let t = text(&render(&restarting_app(false), w, h));
        assert!(t.contains("restarting"), "{w}x{h}:\n{t}");
        assert_eq!(t, text(&render(&restarting_app(true), w, h)), "{w}x{h}");
    }
    let buf = render(&restarting_app(true), 80, 24);
    let (x, y) = health_cell(&buf, "cam6-restart", "restarting");
    assert_eq!(buf[(x, y)].fg, Color::LightYellow);
    let buf = render(&restarting_app(false), 80, 24);
    let (x, y) = health_cell(&buf, "cam6-restart", "restarting");
    assert!(buf[(x, y)].modifier.contains(Modifier::BOLD));
    let t = text(&buf);
    let wide = text(&render(&restarting_app(false), 120, 40));
    assert!(
        wide.contains("cam6-restart restarting: run 3 ended (stalled: no output for 15 s); next start in 4.0 s"),
        "{wide}"
    );
    let row = t.lines().find(|l| l.starts_with("> cam6-res")).unwrap();
    assert!(row.contains(" 2 "), "two restarts in the RST column: {row}");
    let mut app = restarting_app(false);
    app.view = View::Detail;
    let t = text(&render(&app, 80, 24));
    assert!(t.contains("run 3  restarts 2"), "{t}");
    let mut app = restarting_app(false);
    app.sort = crate::app::SortKey::Health;
    let names: Vec<&str> = app.visible().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cam5-down",
            "cam3-fail",
            "cam4-stall",
            "cam6-restart",
            "cam2-warm",
            "cam1-ok"
        ]
    );
}

#[test]
fn help_80x24() {
    let mut app = sample_app(false);
    app.help = true;
    insta::assert_snapshot!(text(&render(&app, 80, 24)));
}

#[test]
fn too_small_says_what_it_needs() {
    let t = text(&render(&sample_app(false), 30, 8));
    assert!(t.contains("needs 40×10"), "{t}");
    assert!(t.contains("now 30×8"), "{t}");
    insta::assert_snapshot!(t);
}

#[test]
fn text_is_the_same_with_and_without_colour() {
    for (w, h) in [(40, 12), (80, 24), (200, 50)] {
        assert_eq!(
            text(&render(&sample_app(true), w, h)),
            text(&render(&sample_app(false), w, h)),
            "{w}x{h}"
        );
    }
}

#[test]
fn every_health_is_a_word_at_every_size() {
    for (w, h) in [(40, 12), (80, 24), (200, 50)] {
        let t = text(&render(&sample_app(false), w, h));
        for word in ["ok", "warming_up", "failing", "stalled", "down"] {
            assert!(t.contains(word), "{word} missing at {w}x{h}:\n{t}");
        }
    }
}

#[test]
fn health_cells_are_coloured() {
    let buf = render(&sample_app(true), 80, 24);
    for (name, word, fg) in [
        ("cam1-ok", "ok", Color::Green),
        ("cam2-warm", "warming_up", Color::Cyan),
        ("cam3-fail", "failing", Color::Red),
        ("cam4-stall", "stalled", Color::Magenta),
        ("cam5-down", "down", Color::Red),
    ] {
        let (x, y) = health_cell(&buf, name, word);
        assert_eq!(buf[(x, y)].fg, fg, "{name}");
    }
    let (x, y) = health_cell(&buf, "cam5-down", "down");
    assert!(buf[(x, y)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn no_colour_means_no_colour_at_all() {
    for view in [View::List, View::Detail] {
        let mut app = sample_app(false);
        app.view = view;
        app.help = view == View::List;
        let buf = render(&app, 200, 50);
        for cell in buf.content() {
            assert_eq!(cell.fg, Color::Reset, "{view:?} {cell:?}");
            assert_eq!(cell.bg, Color::Reset, "{view:?} {cell:?}");
        }
        // Trouble still stands out: bad words are bold.
        let (x, y) = health_cell(&render(&sample_app(false), 80, 24), "cam3-fail", "failing");
        assert!(render(&sample_app(false), 80, 24)[(x, y)]
            .modifier
            .contains(Modifier::BOLD));
    }
}

#[test]
fn selected_row_is_marked_in_text() {
    let t = text(&render(&sample_app(false), 80, 24));
    assert!(t.lines().any(|l| l.starts_with("> cam1-ok")), "{t}");
}

#[test]
fn columns_drop_by_priority() {
    use crate::ui::{columns, Col};
    let names = |w| {
        columns(w, false, false)
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(40),
        vec![Col::Name, Col::Health, Col::Fps, Col::Speed, Col::Uptime]
    );
    assert_eq!(
        names(39),
        vec![Col::Name, Col::Health, Col::Fps, Col::Speed]
    );
    let at80 = names(80);
    assert_eq!(at80.len(), 9, "everything fits in 80 columns: {at80:?}");
    assert!(!at80.contains(&Col::Restarts), "no restarts, no column");
    // Once a target restarted: it fits in 80 columns, and goes first when narrower.
    let with = |w| {
        columns(w, true, true)
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
    };
    assert_eq!(with(80).len(), 10);
    assert_eq!(with(80)[8], Col::Restarts);
    assert_eq!(with(78), at80);
    for w in [40u16, 50, 60, 70, 80, 120, 200] {
        for restarts in [false, true] {
            let total: u16 = columns(w, restarts, restarts)
                .iter()
                .map(|(_, cw)| cw + 1)
                .sum::<u16>()
                + 1;
            assert!(total <= w, "{w}: {total}");
        }
    }
    assert!(!names(60).contains(&Col::Frames));
}

#[test]
fn down_target_shows_gap_not_zeros() {
    let buf = render(&sample_app(false), 80, 24);
    let (_, y) = find(&buf, "cam5-down").unwrap();
    let row: String = (0..80).map(|x| buf[(x, y)].symbol()).collect();
    assert!(row.contains("seen 42s ago"), "{row}");
    // The newest bars of its sparkline (the last 40 s) are blank, not the lowest bar.
    let graph_end = row.trim_end_matches(' ');
    assert!(!graph_end.ends_with('▁'), "{row}");
    assert!(row.contains('█'), "{row}");
}

#[test]
fn many_targets_scroll_to_keep_the_selection_visible() {
    use crate::event::Event;
    use std::collections::BTreeSet;
    let mut app = sample_app(false);
    let found: BTreeSet<_> = (0..30).map(|i| target(&format!("z{i:02}"))).collect();
    app.update(Event::Scan(found));
    app.selected = Some(target("z29"));
    let t = text(&render(&app, 80, 24));
    assert!(t.contains("> z29"), "{t}");
}

#[test]
fn selected_down_row_stays_readable_in_colour() {
    let mut app = sample_app(true);
    app.selected = Some(target("cam5-down"));
    let buf = render(&app, 80, 24);
    let (x, y) = find(&buf, "seen 42s ago").unwrap();
    let cell = &buf[(x, y)];
    assert_ne!(cell.fg, cell.bg, "text must not vanish into the highlight");
}

#[test]
fn a_command_too_long_for_the_line_ends_with_an_ellipsis() {
    let mut app = detail_app(false, "cam1-ok");
    let st = app
        .targets
        .get_mut(&target("cam1-ok"))
        .unwrap()
        .status
        .as_mut()
        .unwrap();
    st.cmd = vec!["-i".into(), "x".repeat(200), "-f".into(), "null".into()];
    let screen = text(&render(&app, 80, 24));
    let line = screen
        .lines()
        .find(|l| l.starts_with("cmd "))
        .unwrap_or_else(|| panic!("no cmd line:\n{screen}"));
    assert_eq!(line.chars().count(), 80, "{line}");
    assert!(line.ends_with("xx…"), "{line}");
}

fn exited_detail(w: u16, h: u16, name: &str) -> String {
    let mut app = crate::testutil::exited_app(false);
    app.selected = Some(crate::testutil::target(name));
    app.view = crate::app::View::Detail;
    text(&render(&app, w, h))
}

#[test]
fn exited_and_unauthorized_rows_80x24() {
    let t = text(&render(&crate::testutil::exited_app(false), 80, 24));
    assert!(t.contains("exited") && t.contains("ended 30s ago"), "{t}");
    assert!(t.contains("unauthorized"), "{t}");
    insta::assert_snapshot!(t);
}

#[test]
fn exited_and_unauthorized_rows_120x40() {
    let mut app = crate::testutil::exited_app(false);
    app.selected = Some(crate::testutil::target("cam2-gone"));
    let t = text(&render(&app, 120, 40));
    assert!(t.contains("stopped by the manager"), "{t}");
    insta::assert_snapshot!(t);
}

#[test]
fn exited_rows_hidden_say_so_in_the_header() {
    let mut app = crate::testutil::exited_app(false);
    app.hide_exited = true;
    let t = text(&render(&app, 120, 40));
    assert!(t.contains("1 exited hidden"), "{t}");
    assert!(!t.contains("cam2-gone"), "{t}");
}

#[test]
fn detail_of_an_exited_target_80x24() {
    let t = exited_detail(80, 24, "cam2-gone");
    assert!(t.contains("output of the last run (3)"), "{t}");
    assert!(t.contains("Exiting normally"), "{t}");
    insta::assert_snapshot!(t);
}

#[test]
fn detail_of_an_exited_target_120x40() {
    let t = exited_detail(120, 40, "cam2-gone");
    assert!(
        t.contains("[in#0] Connection to tcp://in:9000 failed"),
        "{t}"
    );
    insta::assert_snapshot!(t);
}

#[test]
fn detail_of_an_unauthorized_target_80x24() {
    let t = exited_detail(80, 24, "cam3-auth");
    assert!(!t.contains("no output lines yet"), "{t}");
    assert!(t.contains("unauthorized: HTTP 401"), "{t}");
    insta::assert_snapshot!(t);
}

#[test]
fn a_reason_too_long_for_the_line_ends_with_an_ellipsis() {
    let mut app = crate::testutil::sample_app(false);
    let t = crate::testutil::target("cam3-fail");
    let mut st = crate::testutil::status(shared::api::Health::Failing, Some(8.0), Some(0.4));
    st.reason = Some(format!("fps too low {}", "x".repeat(200)));
    app.update(crate::testutil::up(&t, st, vec![]));
    app.selected = Some(t);
    app.view = crate::app::View::Detail;
    let out = text(&render(&app, 80, 24));
    let line = out.lines().find(|l| l.contains("fps too low")).unwrap();
    assert!(line.trim_end().ends_with('…'), "{line}");
}
