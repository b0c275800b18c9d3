//! The analyst's terminal UI. Owns the terminal, turns keys into `Action`s through the keymap,
//! and draws engine state. Never touches the database or the network: everything goes through
//! `EngineCommand`s, and drawing never waits on I/O.

pub mod app;
pub mod colour_depth;
pub mod keymap;
pub mod layout;
pub mod terminal;
pub mod text_input;
pub mod view;

use crate::engine::{self, EngineConfig};
use app::App;
use crossterm::event::Event;
use keymap::Keymap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Shortest time between two frames: fast enough to feel live, slow enough that a burst of
/// alerts over SSH does not flood the link.
const FRAME: Duration = Duration::from_millis(33);

/// What the TUI is opened on.
pub enum Session {
    /// The live engine: following files, scoring, proposing, deciding.
    Live(Box<EngineConfig>),
    /// A saved database, read-only: nothing followed, written or decided.
    Review,
}

/// Run the TUI until the analyst quits. The terminal is restored on every exit path, panics
/// included.
///
/// # Errors
/// Engine start-up failures and terminal I/O errors.
pub async fn run(session: Session, keymap: Keymap, db: PathBuf) -> anyhow::Result<()> {
    let (model, read_only, mut engine) = match session {
        Session::Live(cfg) => {
            let model = cfg
                .pipeline
                .scorer
                .model_name()
                .map(str::to_string)
                .unwrap_or_else(|| "none (unscored)".into());
            (model, false, engine::start(*cfg)?)
        }
        Session::Review => ("as stored".to_string(), true, engine::review(&db)?),
    };
    let mut term = terminal::enter()?;
    let (key_tx, mut key_rx) = mpsc::channel::<Event>(256);
    let input_stop = terminal::spawn_input_thread(key_tx);
    let mut app = App::new(
        keymap,
        db.display().to_string(),
        model,
        view::colours_enabled(),
    );
    app.read_only = read_only;
    let size = term.size()?;
    app.resize(size.width, size.height);
    app.request_queue();
    let mut next_draw = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // `kill -USR1` writes how busy the engine and the screen have been to the log (nothing may
    // be printed while the TUI owns the terminal).
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    let mut frames = 0u64;
    let result: anyhow::Result<()> = loop {
        tokio::select! {
            biased;
            ev = key_rx.recv() => match ev {
                Some(ev) => app.on_terminal_event(ev),
                None => break Ok(()),
            },
            ev = engine.events.recv() => match ev {
                Some(ev) => app.on_engine_event(ev),
                None => break Err(anyhow::anyhow!("the engine stopped")),
            },
            changed = engine.db_changed.changed() => {
                if changed.is_ok() {
                    app.on_db_changed();
                }
            }
            _ = tokio::time::sleep_until(next_draw.into()), if app.dirty => {}
            _ = tick.tick() => app.on_tick(Instant::now()),
            _ = usr1.recv() => {
                let mut activity = engine.activity();
                activity["frames"] = frames.into();
                tracing::info!("activity {activity}");
            }
        }
        for cmd in app.take_commands() {
            if engine.commands.send(cmd).await.is_err() {
                app.set_error("the engine stopped".into());
            }
        }
        if app.should_quit {
            break Ok(());
        }
        let now = Instant::now();
        if app.dirty && now >= next_draw {
            if let Err(e) = term.draw(|f| view::draw(f, &app)) {
                break Err(e.into());
            }
            app.dirty = false;
            frames += 1;
            next_draw = now + FRAME;
        }
    };
    input_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    terminal::leave(&mut term);
    engine.shutdown().await;
    result
}
