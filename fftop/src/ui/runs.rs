//! The runs view: a target's runs as a table (newest first: number, start, duration, reason,
//! error line); Enter shows the selected run's last output lines below the table.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::Frame;

use super::{dim, footer, header_style, key_hints, selected_style};
use shared::api::RunRecord;

use crate::app::App;
use crate::format;

pub(super) fn draw_runs_view(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(v) = app.runs.as_ref() else {
        return;
    };
    let color = app.color;
    let name = app
        .targets
        .get(&v.target)
        .map_or_else(|| v.target.name(), |t| t.name.clone());
    let buf = frame.buffer_mut();
    let w = area.width as usize;
    buf.set_style(
        Rect::new(area.x, area.y, area.width, 1),
        header_style(color),
    );
    buf.set_stringn(
        area.x,
        area.y,
        format!(" runs of {name}"),
        w,
        header_style(color),
    );
    let runs = match &v.runs {
        None => {
            buf.set_stringn(area.x, area.y + 1, "(loading…)", w, dim(color));
            &[][..]
        }
        Some(Err(e)) => {
            buf.set_stringn(
                area.x,
                area.y + 1,
                format!("cannot read /runs: {e}"),
                w,
                Style::new(),
            );
            &[][..]
        }
        Some(Ok(r)) if r.is_empty() => {
            buf.set_stringn(area.x, area.y + 1, "(no run ended yet)", w, dim(color));
            &[][..]
        }
        Some(Ok(r)) => &r[..],
    };
    let body_h = area.height.saturating_sub(3) as usize;
    let table_h = if v.open {
        (body_h / 2).max(3).min(body_h)
    } else {
        body_h
    };
    draw_table(buf, area, runs, v.selected, table_h, color);
    if let (true, Some(r)) = (v.open, v.selected_run()) {
        draw_run_lines(buf, area, r, area.y + 2 + table_h as u16, color);
    }
    let keys = footer(
        app,
        key_hints(
            &[("Esc", "back"), ("↑↓", "select"), ("Enter", "last lines")],
            color,
        ),
    );
    buf.set_line(area.x, area.y + area.height - 1, &keys, area.width);
}

/// The table's title line and up to `table_h` rows, the selected one visible.
fn draw_table(
    buf: &mut Buffer,
    area: Rect,
    runs: &[RunRecord],
    selected: usize,
    table_h: usize,
    color: bool,
) {
    let w = area.width as usize;
    let bold = Style::new().add_modifier(Modifier::BOLD);
    if !runs.is_empty() {
        let head = format!(
            "{:>5}  {:<19}  {:>9}  {}",
            "RUN", "START", "DURATION", "REASON · ERROR"
        );
        buf.set_stringn(area.x, area.y + 1, head, w, bold);
    }
    let first = selected.saturating_sub(table_h.saturating_sub(1));
    for (row, (i, r)) in runs
        .iter()
        .enumerate()
        .skip(first)
        .take(table_h)
        .enumerate()
    {
        let start = r.start.get(..19).unwrap_or(&r.start).replace('T', " ");
        let mut text = format!(
            "{:>5}  {start:<19}  {:>9}  {}",
            r.run,
            format::duration(r.duration_s),
            r.reason
        );
        if let Some(e) = &r.error {
            text.push_str(&format!(" · {e}"));
        }
        let style = if i == selected {
            selected_style(color)
        } else {
            Style::new()
        };
        let y = area.y + 2 + row as u16;
        buf.set_style(Rect::new(area.x, y, area.width, 1), style);
        buf.set_stringn(area.x, y, format::fit(&text, w), w, style);
    }
}

/// The run's last output lines from row `y0` down to the key line.
fn draw_run_lines(buf: &mut Buffer, area: Rect, r: &RunRecord, y0: u16, color: bool) {
    let w = area.width as usize;
    let h = (area.y + area.height - 1).saturating_sub(y0) as usize;
    if h == 0 {
        return;
    }
    buf.set_stringn(
        area.x,
        y0,
        format!("── last lines of run {} ", r.run),
        w,
        dim(color),
    );
    let lines = &r.last_lines[r.last_lines.len().saturating_sub(h - 1)..];
    for (k, l) in lines.iter().enumerate() {
        buf.set_line(area.x, y0 + 1 + k as u16, &Line::raw(l.clone()), area.width);
    }
}
