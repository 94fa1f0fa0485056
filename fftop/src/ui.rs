//! Drawing: a pure function of [`App`] into a ratatui frame.
//!
//! Two screens: the target list (one row per target, columns dropped by priority when the
//! terminal is narrow) and a target's detail (fps and speed charts with their minimums, command,
//! pids, reason, newest log lines); `?` lays the key help over either. Health is always a word
//! and, with colour on, also a colour, so it reads the same without colour (`NO_COLOR`). Below
//! [`MIN_WIDTH`]×[`MIN_HEIGHT`] the screen only says what size it needs.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Clear, Dataset, GraphType, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{App, Conn, TargetState, View};
use crate::format;
use crate::history::{sparkline, Point};

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
    matches!(word, "down" | "failing" | "stalled" | "exited")
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
        "failing" | "down" => Color::Red,
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
// The list

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
    Graph,
}

impl Col {
    const ALL: [Col; 9] = [
        Col::Name,
        Col::Health,
        Col::Fps,
        Col::Speed,
        Col::Bitrate,
        Col::Frames,
        Col::DropDup,
        Col::Uptime,
        Col::Graph,
    ];
    /// Dropped first to last when the terminal is too narrow; name and health always stay.
    const DROP_ORDER: [Col; 7] = [
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
            Col::Graph => 8,
        }
    }

    fn right_aligned(self) -> bool {
        !matches!(self, Col::Name | Col::Health | Col::Graph)
    }
}

/// Width of the selection marker in front of each row.
const MARKER: u16 = 2;

/// The columns that fit in `width`, with their widths (one space between columns).
pub fn columns(width: u16) -> Vec<(Col, u16)> {
    let mut cols: Vec<Col> = Col::ALL.to_vec();
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
        Col::Graph => {
            let bucket = sparkline_bucket_ms(app, width);
            sparkline(
                &t.history
                    .buckets(app.now_ms, bucket, width as usize, fps_of),
            )
        }
    }
}

fn fps_of(p: &Point) -> Option<f64> {
    p.fps
}

fn speed_of(p: &Point) -> Option<f64> {
    p.speed
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

fn draw_list(buf: &mut Buffer, area: Rect, app: &App) {
    let color = app.color;
    let rows = app.visible();
    let cols = columns(area.width);

    // Line 0: title and summary.
    let mut spans = vec![Span::styled(
        format!(" fftop {} ", shared::VERSION),
        header_style(color),
    )];
    let n = app.targets.len();
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
    if !app.filter.is_empty() && !app.filter_editing {
        spans.push(Span::styled(
            format!(" · filter {:?}", app.filter),
            dim(color),
        ));
    }
    buf.set_line(area.x, area.y, &Line::from(spans), area.width);

    // Line 1: column titles.
    let y = area.y + 1;
    let title_style = if color {
        Style::new().add_modifier(Modifier::BOLD).fg(Color::Yellow)
    } else {
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    };
    let mut x = area.x + MARKER;
    for (col, w) in &cols {
        let title = match col {
            Col::Graph => graph_title(app, *w),
            _ => col.title().to_string(),
        };
        put(buf, x, y, *w, &title, col.right_aligned(), title_style);
        x += w + 1;
    }

    // Rows, scrolled to keep the selection visible; the last two lines are message and keys.
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
        draw_row(buf, area.x + MARKER, y, t, &cols, app, row_style);
    }

    // Message line: what is wrong with the selected target, or where it is.
    let y = area.y + area.height - 2;
    if let Some(t) = app.selected_state() {
        let line = message_line(t, app);
        buf.set_line(area.x, y, &line, area.width);
    }

    // Key line.
    let y = area.y + area.height - 1;
    let keys = if app.filter_editing {
        Line::from(vec![
            Span::styled(
                format!("/{}▏", app.filter),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::styled("  Enter keep · Esc clear", dim(color)),
        ])
    } else {
        key_hints(
            &[
                ("q", "quit"),
                ("↑↓", "select"),
                ("Enter", "detail"),
                ("/", "filter"),
                ("s", "sort"),
                ("?", "help"),
            ],
            color,
        )
    };
    buf.set_line(area.x, y, &keys, area.width);
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
        Conn::Down { error, .. } => Some(format!(
            "{} · {error}",
            format::seen(t.last_seen_ms, app.now_ms)
        )),
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
        Conn::Down { error, .. } => spans.push(Span::raw(format!(
            ", {}: {error}",
            format::seen(t.last_seen_ms, app.now_ms)
        ))),
        _ => match t.problem() {
            Some(reason) => spans.push(Span::raw(format!(": {reason}"))),
            None => spans.push(Span::styled(format!("  {}", t.target), dim(app.color))),
        },
    }
    Line::from(spans)
}

// ---------------------------------------------------------------------------------------------
// The detail

fn draw_detail(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(t) = app.selected_state() else {
        return;
    };
    let color = app.color;
    let info_h: u16 = if area.height >= 20 { 4 } else { 2 };
    let rest = area.height - 2 - info_h;
    let chart_h = (rest * 11 / 20).max(5).min(rest);
    let [title_a, info_a, charts_a, logs_a, keys_a] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(info_h),
        Constraint::Length(chart_h),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);

    // Title.
    let word = t.health_word();
    let state = t.live().map_or("", |s| s.state.as_str());
    let title = Line::from(vec![
        Span::styled(format!(" {} ", t.name), header_style(color)),
        Span::raw(" "),
        Span::styled(word.to_string(), health_style(word, color)),
        Span::raw(format!(" {state}  ")),
        Span::styled(t.target.to_string(), dim(color)),
    ]);
    frame
        .buffer_mut()
        .set_line(title_a.x, title_a.y, &title, title_a.width);

    // Info.
    frame.render_widget(
        Paragraph::new(info_lines(t, app, info_a.width, info_h)),
        info_a,
    );

    // Charts.
    let check = t.status.as_ref().map(|s| &s.check);
    let min_fps = check.and_then(|c| c.min_fps);
    let min_speed = check.and_then(|c| c.min_speed);
    let fps_title = format!(
        "fps {} · min {}",
        format::fps(t.fps()),
        format::fps(min_fps)
    );
    let speed_title = format!(
        "speed {} · min {}",
        format::speed(t.speed()),
        format::speed(min_speed)
    );
    if charts_a.width >= 60 {
        let [a, b] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(charts_a);
        draw_chart(frame, a, app, t, &fps_title, fps_of, min_fps);
        draw_chart(frame, b, app, t, &speed_title, speed_of, min_speed);
    } else {
        draw_chart(frame, charts_a, app, t, &fps_title, fps_of, min_fps);
    }

    // Log lines: the newest at the bottom.
    if logs_a.height >= 2 {
        let block = Block::default()
            .borders(Borders::TOP)
            .title(" newest output ")
            .border_style(dim(color));
        let inner = block.inner(logs_a);
        frame.render_widget(block, logs_a);
        let lines: Vec<Line<'_>> = if t.logs.is_empty() {
            vec![Line::styled("(no output lines yet)", dim(color))]
        } else {
            let n = inner.height as usize;
            t.logs[t.logs.len().saturating_sub(n)..]
                .iter()
                .map(|(time, line)| {
                    let clock = time.rsplit(' ').next().unwrap_or(time);
                    Line::from(vec![
                        Span::styled(format!("{clock} "), dim(color)),
                        Span::raw(line.clone()),
                    ])
                })
                .collect()
        };
        frame.render_widget(Paragraph::new(lines), inner);
    }

    let keys = key_hints(
        &[("Esc", "back"), ("↑↓", "other target"), ("?", "help")],
        color,
    );
    frame
        .buffer_mut()
        .set_line(keys_a.x, keys_a.y, &keys, keys_a.width);
}

fn info_lines(t: &TargetState, app: &App, width: u16, height: u16) -> Vec<Line<'static>> {
    let color = app.color;
    let label = |s: &str| Span::styled(s.to_string(), dim(color));
    let st = t.status.as_ref();
    let progress = st.and_then(|s| s.progress.as_ref());
    let avg_fps = progress.and_then(|p| p.fps);
    let avg_speed = progress.and_then(|p| p.speed);
    let rates = Line::from(vec![
        label("fps "),
        Span::raw(format!(
            "{} (avg {})  ",
            format::fps(t.fps()),
            format::fps(avg_fps)
        )),
        label("speed "),
        Span::raw(format!(
            "{} (avg {})  ",
            format::speed(t.speed()),
            format::speed(avg_speed)
        )),
        label("bitrate "),
        Span::raw(format::bitrate(progress.and_then(|p| p.bitrate_kbps))),
    ]);
    let counts = Line::from(vec![
        label("frames "),
        Span::raw(format!(
            "{}  ",
            format::count(progress.and_then(|p| p.frame))
        )),
        label("drop/dup "),
        Span::raw(format!(
            "{}  ",
            format::drop_dup(
                progress.and_then(|p| p.drop_frames),
                progress.and_then(|p| p.dup_frames)
            )
        )),
        label("uptime "),
        Span::raw(format!(
            "{}  ",
            st.map_or("-".into(), |s| format::duration(s.uptime_s))
        )),
        label("pid "),
        Span::raw(format!(
            "{}  ",
            st.map_or("-".into(), |s| s.pid.to_string())
        )),
        label("ffmpeg "),
        Span::raw(
            st.and_then(|s| s.ffmpeg_pid)
                .map_or("-".into(), |p| p.to_string()),
        ),
    ]);
    let why = match (&t.conn, st) {
        (Conn::Down { error, .. }, _) => Line::from(vec![
            Span::styled("down", health_style("down", color)),
            Span::raw(format!(
                ", {}: {error}",
                format::seen(t.last_seen_ms, app.now_ms)
            )),
        ]),
        (_, Some(s)) => {
            let mut spans = vec![
                label("reason "),
                Span::raw(s.reason.clone().unwrap_or("-".into())),
            ];
            if let Some(e) = &s.exit {
                spans.push(Span::raw(format!(
                    "  exit {} (ffmpeg {})",
                    e.code, e.ffmpeg_status
                )));
            }
            Line::from(spans)
        }
        _ => Line::from(label("connecting…")),
    };
    // A command too long for the line ends with `…`, so a cut one never passes for whole.
    let cmd = st.map_or(String::from("-"), |s| s.cmd.join(" "));
    let cmd = Line::from(vec![
        label("cmd "),
        Span::raw(format::fit(&cmd, usize::from(width.saturating_sub(4)))),
    ]);
    if height >= 4 {
        vec![rates, counts, why, cmd]
    } else {
        vec![rates, why]
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_chart(
    frame: &mut Frame<'_>,
    area: Rect,
    app: &App,
    t: &TargetState,
    title: &str,
    f: fn(&Point) -> Option<f64>,
    minimum: Option<f64>,
) {
    let color = app.color;
    // Show at least a minute, at most the history kept; a young encode fills from the right.
    let now = t.history.now(app.now_ms);
    let span_ms = t.history.points().next().map_or(0, |p| now - p.t);
    let window_ms = span_ms.clamp(60_000, crate::app::HISTORY_SECONDS as i64 * 1000);
    let max_gap_ms = (app.interval.as_millis() as i64 * 3).max(5_000);
    let segments = t.history.segments(app.now_ms, window_ms, max_gap_ms, f);
    let window_s = window_ms as f64 / 1000.0;
    let top = segments
        .iter()
        .flatten()
        .map(|p| p.1)
        .chain(minimum)
        .fold(0.0_f64, f64::max);
    let y_max = if top > 0.0 { top * 1.25 } else { 1.0 };
    let min_line = minimum.map(|m| [(-window_s, m), (0.0, m)]);

    let data_style = accent(color);
    let mut datasets: Vec<Dataset<'_>> = segments
        .iter()
        .map(|s| {
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(data_style)
                .data(s)
        })
        .collect();
    if let Some(line) = &min_line {
        // Without colour, a different marker tells the minimum from the data.
        let (marker, style) = if color {
            (Marker::Braille, Style::new().fg(Color::Red))
        } else {
            (Marker::Dot, Style::new())
        };
        datasets.push(
            Dataset::default()
                .marker(marker)
                .graph_type(GraphType::Line)
                .style(style)
                .data(line),
        );
    }
    let y_fmt = |v: f64| {
        if y_max >= 10.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    let chart = Chart::new(datasets)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(dim(color))
                .title(Span::styled(format!(" {title} "), Style::new())),
        )
        .x_axis(
            Axis::default()
                .bounds([-window_s, 0.0])
                .labels([
                    Span::raw(format!("-{}", format::duration(window_s))),
                    Span::raw("now"),
                ])
                .style(dim(color)),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, y_max])
                .labels([Span::raw("0"), Span::raw(y_fmt(y_max))])
                .style(dim(color)),
        );
    frame.render_widget(chart, area);
}

// ---------------------------------------------------------------------------------------------
// Help

fn draw_help(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let keys = [
        ("q, Esc", "back, or quit from the list"),
        ("↑ ↓, j k", "select a target"),
        ("Enter", "open the detail"),
        ("/", "filter by name (Enter keep, Esc clear)"),
        ("s", "sort: name, health, fps, speed, uptime"),
        ("Ctrl-L", "repaint the screen"),
        ("?", "this help (any key closes it)"),
    ];
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
