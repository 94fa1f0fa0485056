//! The logs view: a target's output lines full screen, with the search's matches highlighted
//! (reversed, the current one also bold and marked `>`), error lines red with a `!` and warning
//! lines yellow with a `~` (the markers read the same without colour).

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::{dim, footer, header_style, key_hints};
use crate::app::{App, Conn};
use crate::logs::{severity, LogsView, Severity};

pub(super) fn draw_logs_view(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(v) = app.logs.as_ref() else {
        return;
    };
    let color = app.color;
    let buf = frame.buffer_mut();
    let page = area.height.saturating_sub(2) as usize;
    let first = v.first_shown(page);
    let title = title(app, v);
    buf.set_style(
        Rect::new(area.x, area.y, area.width, 1),
        header_style(color),
    );
    buf.set_stringn(
        area.x,
        area.y,
        &title,
        area.width as usize,
        header_style(color),
    );
    if !v.loaded {
        let why = match app.targets.get(&v.target).map(|t| &t.conn) {
            Some(Conn::Down { error, .. } | Conn::Unauthorized { error, .. }) => {
                format!("(no answer: {error})")
            }
            _ => "(loading…)".to_string(),
        };
        buf.set_stringn(area.x, area.y + 1, why, area.width as usize, dim(color));
    } else if v.lines.is_empty() {
        buf.set_stringn(
            area.x,
            area.y + 1,
            "(no output lines yet)",
            area.width as usize,
            dim(color),
        );
    }
    for (row, i) in (first..v.lines.len()).take(page).enumerate() {
        let line = log_line(v, i, color);
        buf.set_line(area.x, area.y + 1 + row as u16, &line, area.width);
    }
    let keys = if v.search_editing {
        Line::from(vec![
            Span::styled(
                format!("/{}▏", v.search),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::styled("  Enter find · Esc cancel", dim(color)),
        ])
    } else {
        footer(
            app,
            key_hints(
                &[
                    ("Esc", "back"),
                    ("↑↓ PgUp PgDn", "scroll"),
                    ("/", "search"),
                    ("n N", "next/prev"),
                    ("f", if v.follow { "pause" } else { "follow" }),
                ],
                color,
            ),
        )
    };
    let y = area.y + area.height - 1;
    buf.set_line(area.x, y, &keys, area.width);
}

/// `logs of NAME · N lines · following`, and the search with where its current match is.
fn title(app: &App, v: &LogsView) -> String {
    let name = app
        .targets
        .get(&v.target)
        .map_or_else(|| v.target.name(), |t| t.name.clone());
    let mut title = format!(
        " logs of {name} · {} lines · {}",
        v.lines.len(),
        if v.follow { "following" } else { "paused" }
    );
    if !v.search.is_empty() && !v.search_editing {
        let (total, at) = v.match_count();
        match at {
            Some(at) => title.push_str(&format!(" · /{} {at}/{total}", v.search)),
            None => title.push_str(&format!(" · /{} {total} matches", v.search)),
        }
    }
    title
}

/// One line: the current-match marker, the severity marker, the clock, the text with the
/// search's matches highlighted.
fn log_line(v: &LogsView, i: usize, color: bool) -> Line<'static> {
    let (time, text) = &v.lines[i];
    let sev = severity(text);
    let (mark, style) = match sev {
        Severity::Error => (
            "!",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        Severity::Warning => ("~", Style::new().fg(Color::Yellow)),
        Severity::Normal => (" ", Style::new()),
    };
    let style = if color { style } else { Style::new() };
    let current = v.current == Some(i);
    let clock = time.rsplit(' ').next().unwrap_or(time);
    let mut spans = vec![
        Span::styled(
            format!("{}{mark} ", if current { ">" } else { " " }),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::styled(format!("{clock} "), dim(color)),
    ];
    let hit = Style::new().add_modifier(Modifier::REVERSED);
    let hit = if current {
        hit.add_modifier(Modifier::BOLD)
    } else {
        hit
    };
    spans.extend(highlight(text, &v.search, style, hit));
    Line::from(spans)
}

/// `text` cut into spans, the (case-insensitive) occurrences of `needle` in `hit`.
fn highlight(text: &str, needle: &str, normal: Style, hit: Style) -> Vec<Span<'static>> {
    if needle.is_empty() {
        return vec![Span::styled(text.to_string(), normal)];
    }
    let lower = text.to_lowercase();
    let needle = needle.to_lowercase();
    if lower.len() != text.len() {
        // Lower-casing changed byte offsets: no safe cut, the marker still shows the line.
        return vec![Span::styled(text.to_string(), normal)];
    }
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(pos) = lower[at..].find(&needle) {
        let start = at + pos;
        let end = start + needle.len();
        if start > at {
            out.push(Span::styled(text[at..start].to_string(), normal));
        }
        out.push(Span::styled(text[start..end].to_string(), hit));
        at = end;
    }
    if at < text.len() {
        out.push(Span::styled(text[at..].to_string(), normal));
    }
    out
}
