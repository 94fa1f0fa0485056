//! The detail view's timeline: the target's newest events, one line each (time, what, why),
//! under the charts.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::app::TargetState;

use super::{dim, health_style};

/// Rows the timeline takes for `t` (0 when there is nothing to show).
pub(super) fn height(t: &TargetState) -> u16 {
    if t.events.is_empty() {
        0
    } else {
        t.events.len().min(4) as u16 + 1
    }
}

/// Draws the newest events that fit, the newest at the bottom.
pub(super) fn draw_timeline(frame: &mut Frame<'_>, area: Rect, t: &TargetState, color: bool) {
    let block = Block::default()
        .borders(Borders::TOP)
        .title(" events ")
        .border_style(dim(color));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let n = inner.height as usize;
    let lines: Vec<Line<'_>> = t.events[t.events.len().saturating_sub(n)..]
        .iter()
        .map(|e| {
            let clock = chrono::DateTime::parse_from_rfc3339(&e.t)
                .map(|d| {
                    d.with_timezone(&chrono::Local)
                        .format("%H:%M:%S")
                        .to_string()
                })
                .unwrap_or_else(|_| "--:--:--".into());
            let word = e.health.as_str();
            // "name: what": the name is the title's already.
            let summary = e.summary("");
            let what = summary.trim_start_matches(": ").to_string();
            Line::from(vec![
                Span::styled(format!("{clock} "), dim(color)),
                Span::styled(
                    format!("{:<8}", e.event.as_str()),
                    health_style(word, color),
                ),
                Span::raw(" "),
                Span::raw(what),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use shared::api::Health;
    use shared::events::{Event, EventKind};

    use crate::app::View;
    use crate::testutil::{sample_app, target};

    #[test]
    fn the_detail_shows_the_newest_events_under_the_charts() {
        let mut app = sample_app(false);
        let t = target("cam3-fail");
        app.selected = Some(t.clone());
        app.view = View::Detail;
        let mut e = Event::new(
            7,
            "2026-11-23T23:56:03.456Z".into(),
            EventKind::Health,
            2,
            Health::Stalled,
        );
        e.old = Some(Health::Ok);
        e.reason = Some("no output for 2.1 s".into());
        app.targets.get_mut(&t).unwrap().events = vec![e];
        let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
        term.draw(|f| crate::ui::draw(f, &app)).unwrap();
        let buf = term.backend().buffer();
        let rows: Vec<String> = (0..24)
            .map(|y| (0..80).map(|x| buf[(x, y)].symbol()).collect())
            .collect();
        let at = |s: &str| rows.iter().position(|r| r.contains(s));
        let title = at(" events ").expect("the timeline's title");
        let line = at("health   stalled (was ok): no output for 2.1 s").expect("the event");
        assert_eq!(line, title + 1, "{rows:#?}");
        assert!(at("newest output").is_some_and(|l| l > line), "logs below");
    }
}
