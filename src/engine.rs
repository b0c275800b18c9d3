//! The engine: ingestion, scoring, playbooks, connectors and the database, as tokio tasks with
//! no terminal code. The UI (or a headless command) talks to it only through `EngineCommand`s
//! in and `EngineEvent`s out, plus a generation counter that ticks after every commit.

pub mod alert;
pub mod audit;
pub mod bench;
pub mod calibrate;
pub mod classify;
pub mod connector;
pub mod dataset;
pub mod eval;
pub mod features;
pub mod forest;
pub mod incident;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod pipeline;
pub mod playbook;
pub mod score;
pub mod store;
pub mod tailer;
pub mod template;
pub mod train;

use crate::identity::Actor;
use pipeline::Pipeline;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use store::{
    ActionRow, AlertDetail, DecisionError, DispositionRow, QueueRow, Totals, Verdict, WriteOp,
    WriterConfig,
};
use tokio::sync::{mpsc, oneshot, watch};

/// What the engine needs to run.
#[derive(Clone)]
pub struct EngineConfig {
    pub db: PathBuf,
    pub watch: Vec<PathBuf>,
    pub pipeline: Pipeline,
    pub incident_window: chrono::Duration,
    pub actor: Actor,
}

/// Requests from the UI. Queries carry a request number so the UI can drop stale answers.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineCommand {
    LoadQueue {
        request: u64,
        offset: u64,
        limit: u64,
    },
    LoadDetail {
        request: u64,
        alert_id: i64,
    },
    Decide {
        action_id: i64,
        approve: bool,
        reason: String,
    },
    /// Record an analyst's verdict on an alert.
    Dispose {
        alert_id: i64,
        verdict: Verdict,
        reason: String,
    },
}

/// What the engine tells the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    Queue {
        request: u64,
        offset: u64,
        totals: Totals,
        rows: Vec<QueueRow>,
    },
    Detail {
        request: u64,
        detail: Option<Box<AlertDetail>>,
    },
    /// An action changed state (decided, running, finished).
    Action(Box<ActionRow>),
    /// A one-line message for the status bar.
    Notice(String),
    Error(String),
}

/// The UI's side of a running engine.
pub struct EngineHandle {
    pub commands: mpsc::Sender<EngineCommand>,
    pub events: mpsc::Receiver<EngineEvent>,
    /// Ticks after every commit; the UI refreshes what it shows when it changes.
    pub db_changed: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Capacity of the engine→UI channel: bounded so a stalled UI slows the engine instead of
/// growing memory without limit.
const EVENT_CAPACITY: usize = 256;

impl EngineHandle {
    /// Stop the tailer, let the writer drain and commit what it has, and wait for it.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        drop(self.commands);
        if let Some(w) = self.writer_thread.take() {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
    }
}

/// Start the engine's tasks on the current tokio runtime.
///
/// # Errors
/// When the database cannot be opened.
pub fn start(cfg: EngineConfig) -> anyhow::Result<EngineHandle> {
    let (write_tx, write_rx) = mpsc::channel::<WriteOp>(64);
    let (changed_tx, changed_rx) = watch::channel(0u64);
    let writer_thread = store::spawn_writer(
        cfg.db.clone(),
        WriterConfig {
            incident_window: cfg.incident_window,
            actor: cfg.actor.clone(),
        },
        write_rx,
        changed_tx,
    )?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (cmd_tx, cmd_rx) = mpsc::channel::<EngineCommand>(64);
    let (ev_tx, ev_rx) = mpsc::channel::<EngineEvent>(EVENT_CAPACITY);
    let reader = Arc::new(Mutex::new(store::open(&cfg.db)?));

    let mut tasks = Vec::new();
    let tailer = tailer::Tailer {
        watch: cfg.watch.clone(),
        db: cfg.db.clone(),
        pipeline: cfg.pipeline.clone(),
        writer: write_tx.clone(),
    };
    tasks.push(tokio::spawn(tailer.run(stop_rx.clone())));
    let responder = Responder {
        reader,
        writer: write_tx,
        events: ev_tx,
        connectors: cfg.pipeline.connectors.clone(),
        actor: cfg.actor.clone(),
    };
    tasks.push(tokio::spawn(responder.run(cmd_rx, stop_rx)));
    Ok(EngineHandle {
        commands: cmd_tx,
        events: ev_rx,
        db_changed: changed_rx,
        stop: stop_tx,
        writer_thread: Some(writer_thread),
        tasks,
    })
}

/// Answers UI commands: queries on a read connection off the async threads, decisions through
/// the writer, approved actions through the connectors.
struct Responder {
    reader: Arc<Mutex<rusqlite::Connection>>,
    writer: mpsc::Sender<WriteOp>,
    events: mpsc::Sender<EngineEvent>,
    connectors: Arc<connector::Connectors>,
    actor: Actor,
}

impl Responder {
    async fn run(self, mut cmds: mpsc::Receiver<EngineCommand>, mut stop: watch::Receiver<bool>) {
        loop {
            let cmd = tokio::select! {
                c = cmds.recv() => match c { Some(c) => c, None => break },
                _ = stop.changed() => break,
            };
            // Latest request wins: of several queued queue loads only the newest is answered.
            let mut pending = vec![cmd];
            while let Ok(c) = cmds.try_recv() {
                pending.push(c);
            }
            let last_queue = pending
                .iter()
                .rposition(|c| matches!(c, EngineCommand::LoadQueue { .. }));
            let last_detail = pending
                .iter()
                .rposition(|c| matches!(c, EngineCommand::LoadDetail { .. }));
            for (i, c) in pending.into_iter().enumerate() {
                match c {
                    EngineCommand::LoadQueue { .. } if Some(i) != last_queue => {}
                    EngineCommand::LoadDetail { .. } if Some(i) != last_detail => {}
                    EngineCommand::Decide {
                        action_id,
                        approve,
                        reason,
                    } => {
                        let writer = self.writer.clone();
                        let events = self.events.clone();
                        let connectors = self.connectors.clone();
                        let actor = self.actor.clone();
                        tokio::spawn(async move {
                            let r = decide_and_run(
                                &writer,
                                &connectors,
                                &actor,
                                action_id,
                                approve,
                                reason,
                                |row| {
                                    let _ =
                                        events.try_send(EngineEvent::Action(Box::new(row.clone())));
                                },
                            )
                            .await;
                            let msg = match r {
                                Ok(row) => EngineEvent::Notice(format!(
                                    "action {}: {}{}",
                                    row.id,
                                    row.status,
                                    row.outcome
                                        .as_deref()
                                        .map(|o| format!(" ({o})"))
                                        .unwrap_or_default()
                                )),
                                Err(e) => EngineEvent::Error(format!("action {action_id}: {e}")),
                            };
                            let _ = events.send(msg).await;
                        });
                    }
                    EngineCommand::Dispose {
                        alert_id,
                        verdict,
                        reason,
                    } => {
                        let msg =
                            match dispose(&self.writer, &self.actor, alert_id, verdict, reason)
                                .await
                            {
                                Ok(d) => EngineEvent::Notice(format!(
                                    "alert {alert_id}: disposition {} recorded",
                                    d.verdict.as_str()
                                )),
                                Err(e) => EngineEvent::Error(format!("alert {alert_id}: {e}")),
                            };
                        let _ = self.events.send(msg).await;
                    }
                    query => self.answer(query).await,
                }
            }
        }
    }

    async fn answer(&self, cmd: EngineCommand) {
        let reader = self.reader.clone();
        let result = tokio::task::spawn_blocking(move || -> rusqlite::Result<EngineEvent> {
            let conn = reader.lock().map_err(|_| rusqlite::Error::InvalidQuery)?;
            Ok(match cmd {
                EngineCommand::LoadQueue {
                    request,
                    offset,
                    limit,
                } => EngineEvent::Queue {
                    request,
                    offset,
                    totals: store::totals(&conn)?,
                    rows: store::queue_page(&conn, offset, limit)?,
                },
                EngineCommand::LoadDetail { request, alert_id } => EngineEvent::Detail {
                    request,
                    detail: store::alert_detail(&conn, alert_id)?.map(Box::new),
                },
                EngineCommand::Decide { .. } | EngineCommand::Dispose { .. } => {
                    EngineEvent::Notice(String::new())
                }
            })
        })
        .await;
        let ev = match result {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => EngineEvent::Error(format!("database read failed: {e}")),
            Err(e) => EngineEvent::Error(format!("database read task failed: {e}")),
        };
        let _ = self.events.send(ev).await;
    }
}

async fn ask<T>(
    writer: &mpsc::Sender<WriteOp>,
    op: impl FnOnce(oneshot::Sender<Result<T, DecisionError>>) -> WriteOp,
) -> Result<T, DecisionError> {
    let (tx, rx) = oneshot::channel();
    writer
        .send(op(tx))
        .await
        .map_err(|_| DecisionError::Db("the database writer has stopped".into()))?;
    rx.await
        .map_err(|_| DecisionError::Db("the database writer has stopped".into()))?
}

/// Record an analyst's verdict on an alert through the writer (with its audit record).
///
/// # Errors
/// No such alert, an empty reason, or a stopped writer.
pub async fn dispose(
    writer: &mpsc::Sender<WriteOp>,
    actor: &Actor,
    alert_id: i64,
    verdict: Verdict,
    reason: String,
) -> Result<DispositionRow, DecisionError> {
    ask(writer, |reply| WriteOp::Dispose {
        alert_id,
        verdict,
        reason,
        actor: actor.clone(),
        reply,
    })
    .await
}

/// Record a decision; if it is an approval, record the intent, run the connector, record the
/// outcome. Each record commits before the next step starts, so the audit trail always shows
/// the approval before anything ran and the intent before the call was made.
///
/// # Errors
/// A refused decision (not pending, no reason, two-person rule) or a stopped writer.
pub async fn decide_and_run(
    writer: &mpsc::Sender<WriteOp>,
    connectors: &connector::Connectors,
    actor: &Actor,
    action_id: i64,
    approve: bool,
    reason: String,
    mut progress: impl FnMut(&ActionRow),
) -> Result<ActionRow, DecisionError> {
    let decided = ask(writer, |reply| WriteOp::Decide {
        action_id,
        approve,
        reason,
        actor: actor.clone(),
        reply,
    })
    .await?;
    progress(&decided);
    if !approve {
        return Ok(decided);
    }
    let running = ask(writer, |reply| WriteOp::Intent {
        action_id,
        actor: actor.clone(),
        reply,
    })
    .await?;
    progress(&running);
    let out = connectors
        .execute(
            &running.connector,
            &running.params,
            &store::idempotency_key(&running),
        )
        .await;
    let done = ask(writer, |reply| WriteOp::Outcome {
        action_id,
        ok: out.ok,
        detail: out.detail,
        actor: actor.clone(),
        reply,
    })
    .await?;
    progress(&done);
    Ok(done)
}
