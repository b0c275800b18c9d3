//! Terminal set-up and tear-down. Owns raw mode, the alternate screen and the input thread;
//! a panic restores the terminal before the message is printed.

use super::colour_depth::{ColourDepth, ColourOut};
use crossterm::event::{self, Event};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::Stdout;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub type Term = Terminal<CrosstermBackend<ColourOut<Stdout>>>;

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Enter raw mode and the alternate screen, and make a panic restore them first. Colours are
/// the 16 named ones unless the terminal says it has more.
///
/// # Errors
/// When stdout is not a terminal.
pub fn enter() -> anyhow::Result<Term> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        hook(info);
    }));
    enable_raw_mode()?;
    execute!(std::io::stdout(), EnterAlternateScreen)?;
    let out = ColourOut::new(std::io::stdout(), ColourDepth::from_env());
    let mut t = Terminal::new(CrosstermBackend::new(out))?;
    t.clear()?;
    Ok(t)
}

/// Give the terminal back as it was.
pub fn leave(t: &mut Term) {
    restore();
    let _ = t.show_cursor();
}

/// Read terminal events on a plain thread (crossterm's read blocks) and forward them. The
/// returned flag stops it within one poll interval.
pub fn spawn_input_thread(tx: mpsc::Sender<Event>) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = std::thread::Builder::new()
        .name("vigil-input".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match event::poll(Duration::from_millis(100)) {
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if tx.blocking_send(ev).is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    },
                    Ok(false) => {}
                    Err(_) => break,
                }
            }
        });
    stop
}
