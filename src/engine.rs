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
pub mod enrich;
pub mod eval;
pub mod features;
pub mod forest;
pub mod format;
pub mod incident;
pub mod ioc;
pub mod lease;
pub mod metrics;
pub mod model;
pub mod normalize;
pub mod pipeline;
pub mod playbook;
pub mod reader;
pub mod respond;
pub mod score;
pub mod settings;
pub mod store;
pub mod tactics;
pub mod tailer;
pub mod template;
pub mod train;

use crate::identity::Actor;
use pipeline::Pipeline;
use std::path::{Path, PathBuf};
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
    /// Format for every watched file; `Auto` detects per file.
    pub format: format::Format,
    /// Configured framing: CSV columns, JSON mappings, size and depth limits.
    pub format_settings: std::sync::Arc<format::FormatSettings>,
    pub pipeline: Pipeline,
    pub incident_rules: Vec<incident::IncidentRule>,
    pub actor: Actor,
    /// What was loaded (config, playbooks, model, with file hashes), recorded in the audit trail
    /// when the session starts.
    pub loaded: serde_json::Value,
    /// Feeds, GeoIP and online providers; `None`: alerts are not enriched.
    pub enrichment: Option<enrich::task::EnrichSetup>,
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
    /// Replace a pending action's params (edit-then-approve).
    Edit {
        action_id: i64,
        params: serde_json::Map<String, serde_json::Value>,
        reason: String,
    },
    Rollback {
        action_id: i64,
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
    /// Online providers' budgets and queues changed.
    EnrichStatus(Vec<enrich::online::ProviderStatus>),
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
    /// Becomes the damage found when the database file turns out to be damaged: the engine has
    /// stopped writing, and whoever runs it should stop too.
    pub store_damaged: watch::Receiver<Option<String>>,
    stop: watch::Sender<bool>,
    /// `None` in a read-only review: nothing there may decide or record anything.
    responder: Option<respond::Responder>,
    /// A review has no writer; this keeps `db_changed` open so waiting on it waits.
    _no_writer: Option<watch::Sender<u64>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    tailer: Option<tokio::task::JoinHandle<()>>,
    /// How often the tailer has looked at its files, and why.
    pub tailer_activity: Arc<tailer::TailerActivity>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// How long a stopping task other than the tailer may take before it is cut off.
const TASK_STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Capacity of the engine→UI channel: bounded so a stalled UI slows the engine instead of
/// growing memory without limit.
const EVENT_CAPACITY: usize = 256;

impl EngineHandle {
    /// How busy the engine has been: the tailer's counters and how many commits changed the
    /// database. Both stand still while nothing arrives.
    pub fn activity(&self) -> serde_json::Value {
        serde_json::json!({
            "tailer": self.tailer_activity.snapshot(),
            "commits": *self.db_changed.borrow(),
        })
    }

    /// Stop the tailer, let the writer drain and commit what it has, and wait for it.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        // The tailer is waited for: its in-flight batches commit, so a restart resumes after
        // them. Everything else is resumable from the database (enrichment state, action
        // leases), so it gets a moment to finish and is then stopped.
        if let Some(t) = self.tailer.take() {
            let _ = t.await;
        }
        for t in self.tasks.drain(..) {
            let abort = t.abort_handle();
            if tokio::time::timeout(TASK_STOP_GRACE, t).await.is_err() {
                abort.abort();
            }
        }
        if let Some(r) = self.responder.take() {
            let _ = r
                .record(|c| {
                    session_record(
                        c,
                        "session_end",
                        serde_json::json!({"pid": std::process::id()}),
                    )
                })
                .await;
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
    let health = store::StoreHealth::new();
    let writer_thread = store::spawn_writer_with_health(
        cfg.db.clone(),
        WriterConfig {
            incident_rules: cfg.incident_rules.clone(),
            actor: cfg.actor.clone(),
            playbooks: Some((
                cfg.pipeline.playbooks.clone(),
                cfg.pipeline.connectors.clone(),
            )),
        },
        write_rx,
        changed_tx,
        health.clone(),
    )?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (cmd_tx, cmd_rx) = mpsc::channel::<EngineCommand>(64);
    let (ev_tx, ev_rx) = mpsc::channel::<EngineEvent>(EVENT_CAPACITY);
    let reader = Arc::new(Mutex::new(store::open(&cfg.db)?));
    let (focus_tx, focus_rx) = watch::channel(None::<i64>);

    let responder = respond::Responder::new(
        write_tx.clone(),
        cfg.pipeline.connectors.clone(),
        cfg.actor.clone(),
        lease::Leases::beside(&cfg.db),
    );
    let mut tasks = Vec::new();
    // Before anything runs: actions a dead process left mid-call become "outcome unknown",
    // and the session and what it loaded are recorded.
    {
        let r = responder.clone();
        let loaded = cfg.loaded.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = r.recover().await {
                tracing::error!("recovering interrupted actions: {e}");
            }
            let detail = serde_json::json!({"pid": std::process::id(), "version": env!("CARGO_PKG_VERSION"), "loaded": loaded});
            let _ = r.record(move |c| session_record(c, "session_start", detail)).await;
        }));
    }
    tracing::info!(paths = ?cfg.watch, "watch set");
    let tailer_activity = Arc::new(tailer::TailerActivity::default());
    let tailer = tailer::Tailer {
        watch: cfg.watch.clone(),
        format: cfg.format,
        format_settings: cfg.format_settings.clone(),
        db: cfg.db.clone(),
        pipeline: cfg.pipeline.clone(),
        writer: write_tx.clone(),
        activity: tailer_activity.clone(),
    };
    let tailer = Some(tokio::spawn(tailer.run(stop_rx.clone())));
    tasks.push(tokio::spawn(executor(
        responder.clone(),
        reader.clone(),
        ev_tx.clone(),
        changed_rx.clone(),
        stop_rx.clone(),
    )));
    if let Some(setup) = &cfg.enrichment {
        // Its own read connection: enrichment reads never queue behind the UI's.
        let enrich_reader = Arc::new(Mutex::new(store::open(&cfg.db)?));
        let sources = setup
            .build(Some(enrich_reader.clone()), Some(write_tx.clone()))
            .map_err(|e| anyhow::anyhow!(e))?;
        let enricher = enrich::task::Enricher {
            sources: Arc::new(sources),
            scorer: cfg.pipeline.scorer.clone(),
            writer: write_tx.clone(),
            reader: enrich_reader,
            health: health.clone(),
        };
        tasks.push(tokio::spawn(enricher.run(
            stop_rx.clone(),
            changed_rx.clone(),
            focus_rx,
            ev_tx.clone(),
        )));
    }
    tasks.push(tokio::spawn(tell_damage(health.subscribe(), ev_tx.clone())));
    let answers = Answers {
        reader,
        focus: focus_tx,
        events: ev_tx,
        responder: Some(responder.clone()),
    };
    tasks.push(tokio::spawn(answers.run(cmd_rx, stop_rx)));
    drop(write_tx);
    Ok(EngineHandle {
        commands: cmd_tx,
        events: ev_rx,
        db_changed: changed_rx,
        store_damaged: health.subscribe(),
        stop: stop_tx,
        responder: Some(responder),
        _no_writer: None,
        writer_thread: Some(writer_thread),
        tailer,
        tailer_activity,
        tasks,
    })
}

/// Start the engine for a read-only review of a saved database: queries only. No tailer,
/// writer, responder or enrichment runs, the file is opened read-only (immutable in a folder
/// nobody may write to), and every decision is answered "read-only review".
///
/// # Errors
/// When the database cannot be opened for reading.
pub fn review(db: &Path) -> anyhow::Result<EngineHandle> {
    let reader = store::open_read_only(db)?;
    // Fail now, not on the first screen, when the file is not a vigil database.
    store::totals(&reader)?;
    let (changed_tx, changed_rx) = watch::channel(0u64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (cmd_tx, cmd_rx) = mpsc::channel::<EngineCommand>(64);
    let (ev_tx, ev_rx) = mpsc::channel::<EngineEvent>(EVENT_CAPACITY);
    let answers = Answers {
        reader: Arc::new(Mutex::new(reader)),
        focus: watch::channel(None).0,
        events: ev_tx,
        responder: None,
    };
    let health = store::StoreHealth::new();
    Ok(EngineHandle {
        commands: cmd_tx,
        events: ev_rx,
        db_changed: changed_rx,
        store_damaged: health.subscribe(),
        stop: stop_tx,
        responder: None,
        _no_writer: Some(changed_tx),
        writer_thread: None,
        tailer: None,
        tailer_activity: Arc::new(tailer::TailerActivity::default()),
        tasks: vec![tokio::spawn(answers.run(cmd_rx, stop_rx))],
    })
}

/// What a review answers to anything that would change the case.
pub const READ_ONLY_REVIEW: &str = "read-only review";

/// Tell the UI, once, that the database is damaged and nothing more will be written.
async fn tell_damage(
    mut damaged: watch::Receiver<Option<String>>,
    events: mpsc::Sender<EngineEvent>,
) {
    let damage = match damaged.wait_for(Option::is_some).await {
        Ok(d) => d.clone().unwrap_or_default(),
        Err(_) => return,
    };
    let msg = format!("the database is damaged ({damage}); vigil has stopped writing to it");
    let _ = events.send(EngineEvent::Error(msg)).await;
}

fn session_record(
    c: &rusqlite::Connection,
    kind: &str,
    detail: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let actor = Actor::current();
    audit::append(
        c,
        audit::Entry {
            actor: &actor,
            kind,
            alert_id: None,
            action_id: None,
            reason: None,
            detail,
        },
    )
    .map(|r| serde_json::json!(r.seq))
    .map_err(|e| e.to_string())
}

/// How often approvals are swept and due reverts looked for when nothing else happens.
const EXECUTOR_TICK: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs what needs no analyst right now: `auto` steps, actions approved elsewhere (a second
/// analyst in another terminal), lapsed approvals, and automatic reverts.
async fn executor(
    responder: respond::Responder,
    reader: Arc<Mutex<rusqlite::Connection>>,
    events: mpsc::Sender<EngineEvent>,
    mut changed: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut wake = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = changed.changed() => if r.is_err() { break },
            _ = tokio::time::sleep_until(wake) => {}
        }
        let notify = |row: &ActionRow| {
            let _ = events.try_send(EngineEvent::Action(Box::new(row.clone())));
        };
        let next_revert = responder.tick(&reader, &notify).await;
        // Wake for the next revert exactly, or at the regular tick for lapsing approvals.
        let until_revert = next_revert
            .and_then(|t| (t - chrono::Utc::now()).to_std().ok())
            .unwrap_or(EXECUTOR_TICK);
        wake = tokio::time::Instant::now()
            + until_revert.min(EXECUTOR_TICK)
            + std::time::Duration::from_millis(5);
    }
}

/// Answers UI commands: queries on a read connection off the async threads; decisions, edits
/// and rollbacks through the responder.
struct Answers {
    reader: Arc<Mutex<rusqlite::Connection>>,
    /// The incident of the alert on screen: its enrichment lookups go first.
    focus: watch::Sender<Option<i64>>,
    events: mpsc::Sender<EngineEvent>,
    /// `None` in a read-only review.
    responder: Option<respond::Responder>,
}

impl Answers {
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
                    EngineCommand::Decide { .. }
                    | EngineCommand::Edit { .. }
                    | EngineCommand::Rollback { .. }
                    | EngineCommand::Dispose { .. }
                        if self.responder.is_none() =>
                    {
                        let refusal = EngineEvent::Error(READ_ONLY_REVIEW.to_string());
                        let _ = self.events.send(refusal).await;
                    }
                    EngineCommand::Decide { .. }
                    | EngineCommand::Edit { .. }
                    | EngineCommand::Rollback { .. } => {
                        let Some(responder) = self.responder.clone() else {
                            continue;
                        };
                        let events = self.events.clone();
                        tokio::spawn(async move { act_on(responder, events, c).await });
                    }
                    EngineCommand::Dispose {
                        alert_id,
                        verdict,
                        reason,
                    } => {
                        let Some(r) = &self.responder else {
                            continue;
                        };
                        let msg =
                            match dispose(&r.writer, &r.actor, alert_id, verdict, reason).await {
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
                EngineCommand::Decide { .. }
                | EngineCommand::Edit { .. }
                | EngineCommand::Rollback { .. }
                | EngineCommand::Dispose { .. } => EngineEvent::Notice(String::new()),
            })
        })
        .await;
        if let Ok(Ok(EngineEvent::Detail {
            detail: Some(d), ..
        })) = &result
        {
            let incident = d.incident_id;
            self.focus.send_if_modified(|f| {
                let changed = *f != incident;
                *f = incident;
                changed
            });
        }
        if let Ok(Ok(EngineEvent::Detail {
            detail: Some(d), ..
        })) = &result
        {
            // Enrichment looks up the incident on screen first.
            let incident = d.incident_id;
            self.focus.send_if_modified(|f| {
                let changed = *f != incident;
                *f = incident;
                changed
            });
        }
        let ev = match result {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => EngineEvent::Error(format!("database read failed: {e}")),
            Err(e) => EngineEvent::Error(format!("database read task failed: {e}")),
        };
        let _ = self.events.send(ev).await;
    }
}

/// Carry out one analyst command and report how it went.
async fn act_on(
    responder: respond::Responder,
    events: mpsc::Sender<EngineEvent>,
    cmd: EngineCommand,
) {
    let progress = |row: &ActionRow| {
        let _ = events.try_send(EngineEvent::Action(Box::new(row.clone())));
    };
    let (id, result) = match cmd {
        EngineCommand::Decide {
            action_id,
            approve,
            reason,
        } => (
            action_id,
            responder
                .decide(action_id, approve, reason, &progress)
                .await,
        ),
        EngineCommand::Edit {
            action_id,
            params,
            reason,
        } => {
            let r = responder.edit(action_id, params, reason).await;
            if let Ok(row) = &r {
                progress(row);
            }
            (action_id, r)
        }
        EngineCommand::Rollback { action_id, reason } => (
            action_id,
            responder.rollback(action_id, reason, &progress).await,
        ),
        _ => return,
    };
    let msg = match result {
        Ok(row) => EngineEvent::Notice(format!(
            "action {}: {}{}",
            row.id,
            row.status,
            row.outcome
                .as_deref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default()
        )),
        Err(e) => {
            // A refusal to run changes the action (refused, expired, back to proposed): show it
            // as it now is, beside the error saying why. Other refusals change nothing.
            let changed = matches!(
                e,
                DecisionError::Changed { .. }
                    | DecisionError::Refused { .. }
                    | DecisionError::Expired(_)
                    | DecisionError::Leased { .. }
            );
            if changed {
                if let Ok(row) = responder.action(id).await {
                    progress(&row);
                }
            }
            let text = e.to_string();
            EngineEvent::Error(if text.starts_with("action ") {
                text
            } else {
                format!("action {id}: {text}")
            })
        }
    };
    let _ = events.send(msg).await;
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
