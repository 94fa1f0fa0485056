//! The target list: one row per target, columns dropped by priority when the terminal is
//! narrow, each row with its sparkline and message line.
//!
//! The restarts count (`RST`, SPEC §10's `run.restarts`) is shown once some target has
//! restarted, and is the first column dropped when narrow: until then it would only take
//! width from the names (at 80 columns, four characters of each name) to show zeros.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::app::{App, Conn, TargetState};
use crate::format;
use crate::history::sparkline;

use super::{accent, dim, fps_of, header_style, health_style, key_hints, selected_style};

/// A column of the target table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Name,
    Health,
    Fps,
    Speed,
    Bitrate,
    Frames,
    DropDup,
    Uptime,
    /// Restarts by the target's wrapperd (`run.restarts`).
    Restarts,
    Graph,
}

impl Col {
    const ALL: [Col; 10] = [
        Col::Name,
        Col::Health,
        Col::Fps,
        Col::Speed,
        Col::Bitrate,
        Col::Frames,
        Col::DropDup,
        Col::Uptime,
        Col::Restarts,
        Col::Graph,
    ];
    /// Dropped first to last when the terminal is too narrow; name and health always stay.
    const DROP_ORDER: [Col; 8] = [
        Col::Restarts,
        Col::Frames,
        Col::DropDup,
        Col::Bitrate,
        Col::Graph,
        Col::Uptime,
        Col::Speed,
        Col::Fps,
    ];

    fn title(self) -> &'static str {
        match self {
            Col::Name => "NAME",
            Col::Health => "HEALTH",
            Col::Fps => "FPS",
            Col::Speed => "SPEED",
            Col::Bitrate => "BITRATE",
            Col::Frames => "FRAMES",
            Col::DropDup => "DROP/DUP",
            Col::Uptime => "UPTIME",
            Col::Restarts => "RST",
            Col::Graph => "FPS",
        }
    }

    fn min_width(self) -> u16 {
        match self {
            Col::Name => 8,
            Col::Health => 10,
            Col::Fps | Col::Speed => 5,
            Col::Bitrate | Col::Frames => 7,
            Col::DropDup => 8,
            Col::Uptime => 6,
            Col::Restarts => 4,
            Col::Graph => 8,
        }
    }

    fn right_aligned(self) -> bool {
        !matches!(self, Col::Name | Col::Health | Col::Graph)
    }
}

/// Width of the selection marker in front of each row.
const MARKER: u16 = 2;

/// The columns that fit in `width`, with their widths (one space between columns); the
/// restarts count only when `restarts` (some target has restarted); the health column wide
/// enough for `unauthorized` only when `unauthorized` (some target is).
pub fn columns(width: u16, restarts: bool, unauthorized: bool) -> Vec<(Col, u16)> {
    let mut cols: Vec<Col> = Col::ALL.to_vec();
    if !restarts {
        cols.retain(|c| *c != Col::Restarts);
    }
    let need = |cols: &[Col]| -> u16 {
        MARKER + cols.iter().map(|c| c.min_width()).sum::<u16>() + cols.len() as u16 - 1
    };
    for drop in Col::DROP_ORDER {
        if need(&cols) <= width {
            break;
        }
        cols.retain(|c| *c != drop);
    }
    let mut spare = width.saturating_sub(need(&cols));
    let mut out: Vec<(Col, u16)> = cols.iter().map(|c| (*c, c.min_width())).collect();
    let has_graph = cols.contains(&Col::Graph);
    // Room permitting, the health column takes `unauthorized` whole (12), before anything else.
    for (c, w) in out.iter_mut() {
        if *c == Col::Health && unauthorized {
            let grow = spare.min(2);
            *w += grow;
            spare -= grow;
        }
    }
    // The name grows first (to 24), then the graph takes the rest; without a graph, the name does.
    for (c, w) in out.iter_mut() {
        if *c == Col::Name {
            let grow = if has_graph {
                spare.min(24 - *w)
            } else {
                spare.min(40 - *w)
            };
            *w += grow;
            spare -= grow;
        }
    }
    for (c, w) in out.iter_mut() {
        if *c == Col::Graph {
            *w += spare;
            spare = 0;
        }
    }
    out
}

/// The text of one cell of a target's row.
fn cell(t: &TargetState, col: Col, width: u16, app: &App) -> String {
    let live = t.live();
    let progress = live.and_then(|s| s.progress.as_ref());
    match col {
        Col::Name => t.name.clone(),
        Col::Health => t.health_word().to_string(),
        Col::Fps => format::fps(t.fps()),
        Col::Speed => format::speed(t.speed()),
        Col::Bitrate => format::bitrate(progress.and_then(|p| p.bitrate_kbps)),
        Col::Frames => format::count(progress.and_then(|p| p.frame)),
        Col::DropDup => {
            if live.is_some() {
                format::drop_dup(
                    progress.and_then(|p| p.drop_frames),
                    progress.and_then(|p| p.dup_frames),
                )
            } else {
                "-".into()
            }
        }
        Col::Uptime => live.map_or("-".into(), |s| format::duration(s.uptime_s)),
        Col::Restarts => live.map_or("-".into(), |s| format::count(Some(s.run.restarts))),
        Col::Graph => {
            let bucket = sparkline_bucket_ms(app, width);
            sparkline(
                &t.history
                    .buckets(app.now_ms, bucket, width as usize, fps_of),
            )
        }
    }
}

/// The row sparkline covers at least [`SPARKLINE_SPAN_MS`], one bar per poll interval (at least
/// a second) where the column is wide enough, fewer wider bars (each the mean) where it is not.
pub fn sparkline_bucket_ms(app: &App, width: u16) -> i64 {
    let per_poll = (app.interval.as_millis() as i64).max(1000);
    let width = i64::from(width.max(1));
    per_poll.max((SPARKLINE_SPAN_MS + width - 1) / width)
}

/// The least time a row sparkline shows.
pub const SPARKLINE_SPAN_MS: i64 = 120_000;

/// The graph column's title: what it shows and over how long.
fn graph_title(app: &App, width: u16) -> String {
    let span_s = sparkline_bucket_ms(app, width) * i64::from(width) / 1000;
    let span = if span_s % 60 == 0 {
        format!("{}m", span_s / 60)
    } else {
        format::duration(span_s as f64)
    };
    format!("FPS {span}")
}

/// Writes `text` into `width` cells at (x, y), cut with `…` and aligned.
fn put(buf: &mut Buffer, x: u16, y: u16, width: u16, text: &str, right: bool, style: Style) {
    let text = format::fit(text, width as usize);
    let len = text.chars().count() as u16;
    let x = if right { x + width - len } else { x };
    buf.set_stringn(x, y, &text, width as usize, style);
}

pub(super) fn draw_list(buf: &mut Buffer, area: Rect, app: &App) {
    let restarts = app
        .targets
        .values()
        .any(|t| t.live().is_some_and(|s| s.run.restarts > 0));
    let unauthorized = app
        .targets
        .values()
        .any(|t| matches!(t.conn, crate::app::Conn::Unauthorized { .. }));
    let cols = columns(area.width, restarts, unauthorized);
    buf.set_line(area.x, area.y, &summary_line(app), area.width);
    draw_titles(buf, area, app, &cols);
    draw_rows(buf, area, app, &cols);

    // Message line: what is wrong with the selected target, or where it is.
    let y = area.y + area.height - 2;
    if let Some(t) = app.selected_state() {
        let line = message_line(t, app);
        buf.set_line(area.x, y, &line, area.width);
    }

    let y = area.y + area.height - 1;
    buf.set_line(area.x, y, &list_keys(app), area.width);
}

/// Line 0: title and summary (targets per health word, sort, filter).
fn summary_line(app: &App) -> Line<'static> {
    let color = app.color;
    let mut spans = vec![Span::styled(
        format!(" fftop {} ", shared::VERSION),
        header_style(color),
    )];
    let n = app.targets.values().filter(|t| !t.aggregator).count();
    spans.push(Span::raw(format!(
        " {n} target{}",
        if n == 1 { "" } else { "s" }
    )));
    for (word, n) in app.summary() {
        spans.push(Span::raw(format!(" {n} ")));
        spans.push(Span::styled(word, health_style(word, color)));
    }
    spans.push(Span::styled(
        format!(" · sort {}", app.sort.label()),
        dim(color),
    ));
    let hidden = app.hidden_exited();
    if hidden > 0 {
        spans.push(Span::styled(
            format!(" · {hidden} exited hidden (x)"),
            dim(color),
        ));
    }
    if !app.filter.is_empty() && !app.filter_editing {
        spans.push(Span::styled(
            format!(" · filter {:?}", app.filter),
            dim(color),
        ));
    }
    Line::from(spans)
}

/// Line 1: the column titles.
fn draw_titles(buf: &mut Buffer, area: Rect, app: &App, cols: &[(Col, u16)]) {
    let y = area.y + 1;
    let title_style = if app.color {
        Style::new().add_modifier(Modifier::BOLD).fg(Color::Yellow)
    } else {
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    };
    let mut x = area.x + MARKER;
    for (col, w) in cols {
        let title = match col {
            Col::Graph => graph_title(app, *w),
            _ => col.title().to_string(),
        };
        put(buf, x, y, *w, &title, col.right_aligned(), title_style);
        x += w + 1;
    }
}

/// The rows, scrolled to keep the selection visible; the last two lines are message and keys.
fn draw_rows(buf: &mut Buffer, area: Rect, app: &App, cols: &[(Col, u16)]) {
    let color = app.color;
    let rows = app.visible();
    let top = area.y + 2;
    let height = area.height.saturating_sub(4) as usize;
    let sel = app.selected_index();
    let offset = sel.map_or(0, |i| (i + 1).saturating_sub(height));
    if rows.is_empty() {
        let msg = if app.targets.is_empty() {
            "no targets yet (waiting for a wrapperd)"
        } else {
            "no target matches the filter"
        };
        put(
            buf,
            area.x + MARKER,
            top,
            area.width - MARKER,
            msg,
            false,
            dim(color),
        );
    }
    for (i, t) in rows.iter().enumerate().skip(offset).take(height) {
        let y = top + (i - offset) as u16;
        let selected = Some(i) == sel;
        let row_style = if selected {
            selected_style(color)
        } else {
            Style::new()
        };
        buf.set_style(Rect::new(area.x, y, area.width, 1), row_style);
        if selected {
            buf.set_stringn(area.x, y, "> ", 2, row_style.add_modifier(Modifier::BOLD));
        }
        draw_row(buf, area.x + MARKER, y, t, cols, app, row_style);
    }
}

/// The key line: the filter being typed, a confirmation or result, or the keys of the list.
fn list_keys(app: &App) -> Line<'static> {
    if app.confirm.is_some() || (app.notice.is_some() && !app.filter_editing) {
        super::footer(app, Line::default())
    } else if app.filter_editing {
        Line::from(vec![
            Span::styled(
                format!("/{}▏", app.filter),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::styled("  Enter keep · Esc clear", dim(app.color)),
        ])
    } else {
        key_hints(
            &[
                ("q", "quit"),
                ("↑↓", "select"),
                ("Enter", "detail"),
                ("/", "filter"),
                ("s", "sort"),
                (
                    "x",
                    if app.hide_exited {
                        "show exited"
                    } else {
                        "hide exited"
                    },
                ),
                ("?", "help"),
            ],
            app.color,
        )
    }
}

fn draw_row(
    buf: &mut Buffer,
    x0: u16,
    y: u16,
    t: &TargetState,
    cols: &[(Col, u16)],
    app: &App,
    row_style: Style,
) {
    let mut x = x0;
    // For a down target, the numeric columns become one note: when it was last seen, and why.
    let down_note = match &t.conn {
        Conn::Down { error, .. } | Conn::Unauthorized { error, .. } => Some(format!(
            "{} · {error}",
            format::seen(t.last_seen_ms, app.now_ms)
        )),
        Conn::Exited { ended_ms } => Some(crate::once::exited_note(t, *ended_ms, app.now_ms)),
        _ => None,
    };
    let mut note_written = false;
    for (col, w) in cols {
        let numeric = !matches!(col, Col::Name | Col::Health | Col::Graph);
        if numeric {
            if let Some(note) = &down_note {
                if !note_written {
                    let span: u16 = cols
                        .iter()
                        .filter(|(c, _)| !matches!(c, Col::Name | Col::Health | Col::Graph))
                        .map(|(_, w)| w + 1)
                        .sum::<u16>()
                        - 1;
                    // Dim, except on the selected row (grey on grey would vanish).
                    let style = if row_style == Style::new() {
                        dim(app.color)
                    } else {
                        row_style
                    };
                    put(buf, x, y, span, note, false, style);
                    note_written = true;
                }
                x += w + 1;
                continue;
            }
        }
        let text = cell(t, *col, *w, app);
        let style = match col {
            Col::Health => row_style.patch(health_style(&text, app.color)),
            Col::Graph => row_style.patch(accent(app.color)),
            Col::Name => row_style.add_modifier(Modifier::BOLD),
            _ => row_style,
        };
        put(buf, x, y, *w, &text, col.right_aligned(), style);
        x += w + 1;
    }
}

fn message_line(t: &TargetState, app: &App) -> Line<'static> {
    let word = t.health_word();
    let mut spans = vec![
        Span::styled(t.name.clone(), Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(" "),
        Span::styled(word.to_string(), health_style(word, app.color)),
    ];
    match &t.conn {
        Conn::Down { error, .. } | Conn::Unauthorized { error, .. } => spans.push(Span::raw(
            format!(", {}: {error}", format::seen(t.last_seen_ms, app.now_ms)),
        )),
        Conn::Exited { ended_ms } => spans.push(Span::raw(format!(
            ", {}",
            crate::once::exited_note(t, *ended_ms, app.now_ms)
        ))),
        _ => match t.problem_at(app.now_ms) {
            Some(reason) => spans.push(Span::raw(format!(": {reason}"))),
            None => spans.push(Span::styled(format!("  {}", t.target), dim(app.color))),
        },
    }
    Line::from(spans)
}
