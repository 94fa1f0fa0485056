//! The terminal: raw mode and the alternate screen on the way in, restored on every way out.
//!
//! [`Guard`] restores on drop (normal exit, errors); [`install_panic_hook`] restores before a
//! panic message is printed and then ends the process, since a panic anywhere (also in a poller
//! task, which tokio would otherwise survive) leaves the screen in an unknown state. Each frame is
//! wrapped in synchronized output so a slow link (ssh) never shows a half-drawn screen.

use std::io::{self, Stdout, Write};

use crossterm::cursor::{Hide, Show};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, BeginSynchronizedUpdate, EndSynchronizedUpdate,
    EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::{execute, queue};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use crate::app::App;
use crate::ui;

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Puts the terminal back as it was. Safe to call more than once; errors are ignored (the
/// terminal may be gone already).
pub fn restore() {
    let _ = disable_raw_mode();
    let mut out = io::stdout();
    let _ = execute!(out, EndSynchronizedUpdate, LeaveAlternateScreen, Show);
    let _ = out.flush();
}

/// Restores the terminal when dropped.
#[derive(Debug)]
pub struct Guard(());

impl Guard {
    /// Enters raw mode and the alternate screen, and returns the terminal to draw on.
    pub fn enter() -> io::Result<(Guard, Term)> {
        install_panic_hook();
        enable_raw_mode()?;
        let guard = Guard(());
        let mut out = io::stdout();
        execute!(out, EnterAlternateScreen, Hide)?;
        let terminal = Terminal::new(CrosstermBackend::new(out))?;
        Ok((guard, terminal))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// On a panic: restore the terminal, print the panic as usual, exit 101.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
        std::process::exit(101);
    }));
}

/// Draws one frame inside a synchronized update; `clear` first repaints everything (`Ctrl-L`).
pub fn draw(terminal: &mut Term, app: &App, clear: bool) -> io::Result<()> {
    queue!(terminal.backend_mut(), BeginSynchronizedUpdate)?;
    if clear {
        terminal.clear()?;
    }
    terminal.draw(|f| ui::draw(f, app))?;
    execute!(terminal.backend_mut(), EndSynchronizedUpdate)?;
    Ok(())
}
