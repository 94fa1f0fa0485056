//! A target's detail: fps and speed charts with their minimums, command, pids, run number and
//! restarts, reason (with the countdown to the next run while restarting) and the newest log
//! lines.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use crate::app::{App, Conn, TargetState};
use crate::format;
use crate::history::Point;

use super::{accent, dim, fps_of, header_style, health_style, key_hints, speed_of};

pub(super) fn draw_detail(frame: &mut Frame<'_>, area: Rect, app: &App) {
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

    frame
        .buffer_mut()
        .set_line(title_a.x, title_a.y, &title_line(t, color), title_a.width);
    frame.render_widget(
        Paragraph::new(info_lines(t, app, info_a.width, info_h)),
        info_a,
    );
    draw_charts(frame, charts_a, app, t);
    // The event timeline (SPEC §11) under the charts, when there is room besides the logs.
    let events_h = super::timeline::height(t);
    let logs_a = if events_h > 0 && logs_a.height >= events_h + 3 {
        let [ev_a, rest] =
            Layout::vertical([Constraint::Length(events_h), Constraint::Fill(1)]).areas(logs_a);
        super::timeline::draw_timeline(frame, ev_a, t, color);
        rest
    } else {
        logs_a
    };
    if logs_a.height >= 2 {
        draw_logs(frame, logs_a, t, app);
    }
    let keys = super::footer(
        app,
        key_hints(
            &[
                ("Esc", "back"),
                ("↑↓", "other target"),
                ("l", "logs"),
                ("R", "runs"),
                ("?", "help"),
            ],
            color,
        ),
    );
    frame
        .buffer_mut()
        .set_line(keys_a.x, keys_a.y, &keys, keys_a.width);
}

/// The title line: name, health word, state and where the target is.
fn title_line(t: &TargetState, color: bool) -> Line<'static> {
    let word = t.health_word();
    let state = match t.conn {
        Conn::Exited { .. } => "exited",
        _ => t.live().map_or("", |s| s.state.as_str()),
    };
    Line::from(vec![
        Span::styled(format!(" {} ", t.name), header_style(color)),
        Span::raw(" "),
        Span::styled(word.to_string(), health_style(word, color)),
        Span::raw(format!(" {state}  ")),
        Span::styled(t.target.to_string(), dim(color)),
    ])
}

/// The fps and speed charts side by side, or the fps chart alone when narrow.
fn draw_charts(frame: &mut Frame<'_>, area: Rect, app: &App, t: &TargetState) {
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
    if area.width >= 60 {
        let [a, b] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(area);
        draw_chart(frame, a, app, t, &fps_title, fps_of, min_fps);
        draw_chart(frame, b, app, t, &speed_title, speed_of, min_speed);
    } else {
        draw_chart(frame, area, app, t, &fps_title, fps_of, min_fps);
    }
}

/// The newest output lines, the newest at the bottom; an exited target's last run's lines; a
/// down target's error and when it was last seen.
fn draw_logs(frame: &mut Frame<'_>, area: Rect, t: &TargetState, app: &App) {
    let color = app.color;
    let title = match (&t.conn, &t.last_run) {
        (Conn::Exited { .. }, Some(run)) => format!(" output of the last run ({}) ", run.run),
        _ => " newest output ".to_string(),
    };
    let block = Block::default()
        .borders(Borders::TOP)
        .title(title)
        .border_style(dim(color));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let n = inner.height as usize;
    let lines: Vec<Line<'_>> = if let Conn::Exited { .. } = t.conn {
        match &t.last_run {
            Some(run) if !run.last_lines.is_empty() => run.last_lines
                [run.last_lines.len().saturating_sub(n)..]
                .iter()
                .map(|l| Line::raw(l.clone()))
                .collect(),
            _ => vec![Line::styled("(no run recorded in runs.jsonl)", dim(color))],
        }
    } else if let Conn::Down { error, .. } | Conn::Unauthorized { error, .. } = &t.conn {
        // Why first; then the lines it printed before, if any were fetched.
        let mut lines = vec![
            Line::from(vec![
                Span::styled(t.health_word(), health_style(t.health_word(), color)),
                Span::raw(format!(": {error}")),
            ]),
            Line::styled(format::seen(t.last_seen_ms, app.now_ms), dim(color)),
        ];
        let room = n.saturating_sub(lines.len());
        lines.extend(log_lines(
            &t.logs[t.logs.len().saturating_sub(room)..],
            color,
        ));
        lines
    } else if t.logs.is_empty() {
        vec![Line::styled("(no output lines yet)", dim(color))]
    } else {
        log_lines(&t.logs[t.logs.len().saturating_sub(n)..], color)
    };
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Output lines as `HH:MM:SS line`.
fn log_lines(logs: &[(String, String)], color: bool) -> Vec<Line<'static>> {
    logs.iter()
        .map(|(time, line)| {
            let clock = time.rsplit(' ').next().unwrap_or(time);
            Line::from(vec![
                Span::styled(format!("{clock} "), dim(color)),
                Span::raw(line.clone()),
            ])
        })
        .collect()
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
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let counts = labelled(
        &[
            ("frames", format::count(progress.and_then(|p| p.frame))),
            (
                "drop/dup",
                format::drop_dup(
                    progress.and_then(|p| p.drop_frames),
                    progress.and_then(|p| p.dup_frames),
                ),
            ),
            ("uptime", or_dash(st.map(|s| format::duration(s.uptime_s)))),
            ("pid", or_dash(st.map(|s| s.pid.to_string()))),
            (
                "ffmpeg",
                or_dash(st.and_then(|s| s.ffmpeg_pid).map(|p| p.to_string())),
            ),
            ("run", or_dash(st.map(|s| s.run.number.to_string()))),
            ("restarts", or_dash(st.map(|s| s.run.restarts.to_string()))),
        ],
        color,
    );
    let why = why_line(t, app, width);
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

/// `label value  label value  …`, the labels dim.
fn labelled(pairs: &[(&str, String)], color: bool) -> Line<'static> {
    let mut spans = Vec::with_capacity(pairs.len() * 2);
    for (i, (label, value)) in pairs.iter().enumerate() {
        let gap = if i + 1 < pairs.len() { "  " } else { "" };
        spans.push(Span::styled(format!("{label} "), dim(color)));
        spans.push(Span::raw(format!("{value}{gap}")));
    }
    Line::from(spans)
}

/// Why it is as it is, cut with `…` at the edge: the connection error, the exit, or the reason.
fn why_line(t: &TargetState, app: &App, width: u16) -> Line<'static> {
    let color = app.color;
    let word = t.health_word();
    let room = |used: usize| usize::from(width).saturating_sub(used);
    match (&t.conn, t.status.as_ref()) {
        (Conn::Down { error, .. } | Conn::Unauthorized { error, .. }, _) => {
            let text = format!(", {}: {error}", format::seen(t.last_seen_ms, app.now_ms));
            Line::from(vec![
                Span::styled(word, health_style(word, color)),
                Span::raw(format::fit(&text, room(word.len()))),
            ])
        }
        (Conn::Exited { ended_ms }, Some(s)) => {
            let mut text = format!(", {}", crate::once::exited_note(t, *ended_ms, app.now_ms));
            if let Some(e) = &s.exit {
                text.push_str(&format!("  exit {} (ffmpeg {})", e.code, e.ffmpeg_status));
            }
            Line::from(vec![
                Span::styled(word, health_style(word, color)),
                Span::raw(format::fit(&text, room(word.len()))),
            ])
        }
        (_, Some(s)) => {
            let mut text = t.problem_at(app.now_ms).unwrap_or("-".into());
            if let Some(e) = &s.exit {
                text.push_str(&format!("  exit {} (ffmpeg {})", e.code, e.ffmpeg_status));
            }
            Line::from(vec![
                Span::styled("reason ", dim(color)),
                Span::raw(format::fit(&text, room(7))),
            ])
        }
        _ => Line::styled("connecting…", dim(color)),
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
