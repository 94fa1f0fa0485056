//! Drawing: a pure function of [`App`] into a ratatui frame.
//!
//! Two screens: the target list (one row per target, columns dropped by priority when the
//! terminal is narrow) and a target's detail (fps and speed charts with their minimums, command,
//! pids, reason, newest log lines); `?` lays the key help over either. Health is always a word
//! and, with colour on, also a colour, so it reads the same without colour (`NO_COLOR`). Below
//! [`MIN_WIDTH`]×[`MIN_HEIGHT`] the screen only says what size it needs.
//!
//! [`list`] draws the list, [`detail`] the detail; this file holds the styles and what both use.

use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{App, View};
use crate::history::Point;

mod detail;
mod list;
mod logs;
mod runs;
mod timeline;

use detail::draw_detail;
use list::draw_list;
pub use list::{columns, sparkline_bucket_ms, Col, SPARKLINE_SPAN_MS};

/// The smallest terminal fftop draws in.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 10;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        draw_too_small(frame, area);
        return;
    }
    match app.view {
        View::List => draw_list(frame.buffer_mut(), area, app),
        View::Detail => draw_detail(frame, area, app),
        View::Logs => logs::draw_logs_view(frame, area, app),
        View::Runs => runs::draw_runs_view(frame, area, app),
    }
    if app.help {
        draw_help(frame, area, app);
    }
}

fn draw_too_small(frame: &mut Frame<'_>, area: Rect) {
    let text = vec![
        Line::from(format!("fftop needs {MIN_WIDTH}×{MIN_HEIGHT}")),
        Line::from(format!("(now {}×{})", area.width, area.height)),
    ];
    let y = area.height.saturating_sub(2) / 2;
    let rect = Rect::new(area.x, area.y + y, area.width, area.height.min(2));
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true }),
        rect,
    );
}

// ---------------------------------------------------------------------------------------------
// Styles

fn is_bad(word: &str) -> bool {
    matches!(
        word,
        "down" | "failing" | "stalled" | "exited" | "restarting" | "unauthorized"
    )
}

/// The style of a health word: a colour when colours are on; bold (and reversed for `down`)
/// either way, so trouble stands out on a monochrome terminal too.
pub fn health_style(word: &str, color: bool) -> Style {
    let mut s = Style::new();
    if is_bad(word) {
        s = s.add_modifier(Modifier::BOLD);
    }
    if word == "down" {
        s = s.add_modifier(Modifier::REVERSED);
    }
    if !color {
        return s;
    }
    let fg = match word {
        "ok" => Color::Green,
        "warming_up" => Color::Cyan,
        "stopping" => Color::Yellow,
        "restarting" => Color::LightYellow,
        "failing" | "down" | "unauthorized" => Color::Red,
        "stalled" => Color::Magenta,
        "exited" => Color::LightRed,
        _ => Color::DarkGray,
    };
    s.fg(fg)
}

fn header_style(color: bool) -> Style {
    let s = Style::new().add_modifier(Modifier::BOLD);
    if color {
        s.fg(Color::White).bg(Color::Blue)
    } else {
        s.add_modifier(Modifier::REVERSED)
    }
}

fn selected_style(color: bool) -> Style {
    if color {
        Style::new().bg(Color::DarkGray)
    } else {
        Style::new().add_modifier(Modifier::REVERSED)
    }
}

fn accent(color: bool) -> Style {
    if color {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new()
    }
}

fn dim(color: bool) -> Style {
    if color {
        Style::new().fg(Color::DarkGray)
    } else {
        Style::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Shared by the list and the detail

fn fps_of(p: &Point) -> Option<f64> {
    p.fps
}

fn speed_of(p: &Point) -> Option<f64> {
    p.speed
}

fn key_hints(keys: &[(&str, &str)], color: bool) -> Line<'static> {
    let key_style = if color {
        Style::new().fg(Color::Black).bg(Color::Cyan)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    };
    let mut spans = Vec::new();
    for (k, what) in keys {
        spans.push(Span::styled(k.to_string(), key_style));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    Line::from(spans)
}

/// The key line, unless a confirmation is asked or an action's result is fresh: then that.
fn footer(app: &App, keys: Line<'static>) -> Line<'static> {
    match app.footer_message() {
        Some(msg) => {
            let style = if app.color {
                Style::new().fg(Color::Black).bg(Color::Yellow)
            } else {
                Style::new().add_modifier(Modifier::REVERSED)
            };
            Line::from(Span::styled(msg, style.add_modifier(Modifier::BOLD)))
        }
        None => keys,
    }
}

// ---------------------------------------------------------------------------------------------
// Help

fn draw_help(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let mut keys = vec![
        ("q", "back, or quit from the list"),
        ("Esc", "back, clear the filter (never quits)"),
        ("↑ ↓, j k", "select a target"),
        ("Enter", "open the detail"),
        ("/", "filter by name (Enter keep, Esc clear)"),
        ("s", "sort: name, health, fps, speed, uptime"),
        ("x", "hide or show exited encodes"),
        ("l", "logs: / search, n N next, f follow"),
        ("R", "runs (Enter: a run's last lines)"),
    ];
    if app.can_act_on_selected() {
        keys.push(("r", "restart the encode (asks y/N)"));
        keys.push(("S", "stop the encode (asks y/N)"));
    }
    keys.push(("Ctrl-L", "repaint the screen"));
    keys.push(("?", "this help (any key closes it)"));
    let w = area.width.min(56);
    let h = area.height.min(keys.len() as u16 + 2);
    let rect = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let key_style = Style::new().add_modifier(Modifier::BOLD);
    let lines: Vec<Line<'_>> = keys
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:>9} "), key_style),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" keys ")
                .border_style(accent(app.color)),
        ),
        rect,
    );
}
