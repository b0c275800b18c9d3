//! The SQLite database: schema, the one writer, and the queries the UI and exports read.
//! Owns every SQL statement. Writes happen only on the writer thread, in batched transactions;
//! readers use their own connections (WAL lets them read while the writer commits).

mod enrichment;
mod health;

use super::alert::Alert;
use super::audit::{self, Entry};
use super::enrich::EnrichmentResult;
use super::features::EnrichmentSignals;
use super::playbook::ProposedAction;
use super::score::Score;
use crate::identity::Actor;
use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
pub use enrichment::{
    alerts_pending_online, alerts_to_enrich, cache_get, incident_alerts, provider_status,
    provider_usage_since, results as enrichment_results, state as enrichment_state, ToEnrich,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot, watch};

pub mod actions;

pub use health::{is_damage, StoreHealth};

pub use actions::{
    action, actions, due, for_alert, idempotency_key, ActionRow, ApprovalRecord, DecisionError,
    Ending,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    group_key TEXT NOT NULL,
    rule_id TEXT,
    source_ip TEXT,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    alert_count INTEGER NOT NULL,
    max_risk INTEGER
);
CREATE INDEX IF NOT EXISTS incidents_by_key ON incidents(group_key, last_seen);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    ingested_at TEXT NOT NULL,
    module TEXT NOT NULL,
    severity INTEGER NOT NULL,
    rule_name TEXT,
    source_ip TEXT,
    destination_ip TEXT,
    risk INTEGER,
    band TEXT,
    score TEXT NOT NULL,
    incident_id INTEGER REFERENCES incidents(id),
    alert TEXT NOT NULL,
    original TEXT NOT NULL DEFAULT '',
    source_file TEXT,
    source_line INTEGER
);
CREATE INDEX IF NOT EXISTS alerts_queue ON alerts(risk DESC, ts DESC, id DESC);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    file TEXT NOT NULL,
    byte_offset INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    file_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    byte_offset INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    len_seen INTEGER NOT NULL DEFAULT 0,
    tail_hash TEXT,
    state TEXT NOT NULL DEFAULT 'following'
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    playbook TEXT NOT NULL,
    step TEXT NOT NULL,
    title TEXT NOT NULL,
    connector TEXT NOT NULL,
    params TEXT NOT NULL,
    rendered TEXT NOT NULL,
    call_hash TEXT NOT NULL,
    approval TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by_uid INTEGER,
    decided_by_name TEXT,
    reason TEXT,
    approved_hash TEXT,
    outcome TEXT,
    finished_at TEXT,
    step_index INTEGER NOT NULL DEFAULT 0,
    approvals TEXT NOT NULL DEFAULT '[]',
    approved_until TEXT,
    proposer_uid INTEGER,
    expires_seconds INTEGER NOT NULL DEFAULT 3600,
    retry TEXT NOT NULL DEFAULT '{"attempts":1,"backoff_seconds":2.0}',
    timeout_seconds INTEGER NOT NULL DEFAULT 30,
    on_error TEXT NOT NULL DEFAULT 'stop',
    rollback TEXT,
    revert_after_seconds INTEGER,
    revert_at TEXT,
    runner TEXT,
    escalated INTEGER NOT NULL DEFAULT 0,
    destination TEXT,
    UNIQUE (playbook, step, call_hash)
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    at TEXT NOT NULL,
    actor_name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS action_alerts (
    action_id INTEGER NOT NULL REFERENCES actions(id),
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    PRIMARY KEY (action_id, alert_id)
);
CREATE INDEX IF NOT EXISTS action_alerts_by_alert ON action_alerts(alert_id);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    actor_uid INTEGER NOT NULL,
    actor_name TEXT NOT NULL,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    alert_id INTEGER,
    action_id INTEGER,
    reason TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_incident ON alerts(incident_id, ts);
CREATE TABLE IF NOT EXISTS dispositions (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    verdict TEXT NOT NULL CHECK (verdict IN ('tp', 'fp', 'benign')),
    reason TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    decided_by_uid INTEGER NOT NULL,
    decided_by_name TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dispositions_by_alert ON dispositions(alert_id, id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"#;

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Open (creating if needed) a database for reading and writing, with the schema in place.
///
/// # Errors
/// When the file cannot be opened or is not a vigil database.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    // A new database holds alerts and the audit trail: its owner's alone. Should this fail,
    // opening it below fails too and says why.
    let _ = crate::file_access::create_if_missing(path, crate::file_access::Sharing::Owner);
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A 64 MiB page cache keeps the queue and fingerprint indexes in memory while ingesting.
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.execute_batch(SCHEMA)?;
    migrate(&conn)?;
    conn.execute_batch(enrichment::SCHEMA)?;
    Ok(conn)
}

/// Bring a database made by an earlier vigil up to this schema.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    const ADDED: &[(&str, &str, &str)] = &[
        ("alerts", "original", "TEXT NOT NULL DEFAULT ''"),
        ("actions", "step_index", "INTEGER NOT NULL DEFAULT 0"),
        ("actions", "approvals", "TEXT NOT NULL DEFAULT '[]'"),
        ("actions", "approved_until", "TEXT"),
        ("actions", "proposer_uid", "INTEGER"),
        (
            "actions",
            "expires_seconds",
            "INTEGER NOT NULL DEFAULT 3600",
        ),
        (
            "actions",
            "retry",
            "TEXT NOT NULL DEFAULT '{\"attempts\":1,\"backoff_seconds\":2.0}'",
        ),
        ("actions", "timeout_seconds", "INTEGER NOT NULL DEFAULT 30"),
        ("actions", "on_error", "TEXT NOT NULL DEFAULT 'stop'"),
        ("actions", "rollback", "TEXT"),
        ("actions", "revert_after_seconds", "INTEGER"),
        ("actions", "revert_at", "TEXT"),
        ("actions", "runner", "TEXT"),
        ("actions", "escalated", "INTEGER NOT NULL DEFAULT 0"),
        ("actions", "destination", "TEXT"),
        // A checkpoint's file length at the last commit (what an analyst is told was never
        // read if the file goes missing), the hash of the bytes just before its offset (a copy
        // of the file, or another file that begins the same way) and its `CheckpointState`.
        ("checkpoints", "len_seen", "INTEGER NOT NULL DEFAULT 0"),
        ("checkpoints", "tail_hash", "TEXT"),
        ("checkpoints", "state", "TEXT NOT NULL DEFAULT 'following'"),
    ];
    for (table, column, decl) in ADDED {
        let present: bool = conn
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
            ))?
            .exists([column])?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    Ok(())
}

/// Open an existing database without any write access: for readers, exports and offline
/// review of a saved incident database.
///
/// # Errors
/// When the file does not exist or cannot be opened.
pub fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match immutable_uri(path) {
        Some(uri) => Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)?,
        None => Connection::open_with_flags(path, flags)?,
    };
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// A database in a folder nobody here may write to, with no `-wal` beside it, cannot be
/// changed by anyone while we read it. SQLite still wants to create `-shm` there to read a WAL
/// database, which fails; opened as immutable it reads the file as it is, creating nothing.
/// `None`: open it the ordinary way (a live database, or one whose `-wal` holds data).
fn immutable_uri(path: &Path) -> Option<String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let writable = nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if writable || Path::new(&wal).exists() {
        return None;
    }
    // URI syntax: `?` and `#` end the path and `%` escapes, so those three are encoded.
    const URI_PATH: &percent_encoding::AsciiSet =
        &percent_encoding::CONTROLS.add(b'?').add(b'#').add(b'%');
    let p = path.to_str()?;
    Some(format!(
        "file:{}?immutable=1",
        percent_encoding::utf8_percent_encode(p, URI_PATH)
    ))
}

/// The first problem `PRAGMA quick_check` finds, or `None` when the database is sound. A file
/// too damaged to check at all is a problem too.
pub fn integrity_problem(conn: &Connection) -> Option<String> {
    let found: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA quick_check(1)")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
    match found {
        Ok(rows) if rows.iter().all(|r| r == "ok") => None,
        Ok(rows) => Some(rows.join("; ")),
        Err(e) => Some(e.to_string()),
    }
}

// ---------------------------------------------------------------- writes

/// One alert ready to store: normalised, fingerprinted, scored, with its proposals.
#[derive(Debug, Clone)]
pub struct ReadyAlert {
    pub alert: Alert,
    pub fingerprint: String,
    pub score: Score,
    pub proposals: Vec<ProposedAction>,
    pub line_no: u64,
    /// `alert` without its raw document, and `score`, as stored.
    pub alert_json: String,
    pub score_json: String,
    /// Playbooks (by index) that matched so far but read the incident: the writer finishes them.
    pub deferred: Vec<usize>,
    /// The document they match on, when there are any.
    pub match_doc: Option<Value>,
}

/// A line that could not become an alert, kept with its reason.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub byte_offset: u64,
    pub line_no: u64,
    pub reason: String,
    pub raw: Vec<u8>,
}

/// Where a batch ends in its file, committed with the batch so a restart resumes exactly there.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub file_id: String,
    pub path: String,
    /// Offset the batch starts at: the commit is refused if the stored checkpoint is elsewhere
    /// (another process got there first), which is what stops double ingestion.
    pub from_offset: u64,
    /// The position to assume when there is no stored checkpoint yet (0, or where the original
    /// of an adopted rotated copy had got to).
    pub initial_offset: u64,
    pub to_offset: u64,
    pub to_line: u64,
    /// The file's length when the batch was read.
    pub len_seen: u64,
    /// Hash of the bytes just before `to_offset`.
    pub tail_hash: Option<String>,
}

/// How far following a file has got, as its checkpoint row keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointState {
    /// It may still have bytes to read: after a restart it is looked for if it moved.
    Following,
    /// Read to its end and let go.
    Released,
    /// Gone before its end was read; reported once.
    Lost,
}

impl CheckpointState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointState::Following => "following",
            CheckpointState::Released => "released",
            CheckpointState::Lost => "lost",
        }
    }
}

/// Lines from one file (or one pass), processed and ready to commit together.
#[derive(Debug, Clone, Default)]
pub struct IngestBatch {
    pub file: String,
    pub checkpoint: Option<Checkpoint>,
    pub read: u64,
    pub skipped: u64,
    pub alerts: Vec<ReadyAlert>,
    pub quarantined: Vec<Quarantined>,
    /// Tailer events (truncation, rotation, unreadable files) to record in the audit trail.
    pub notes: Vec<Value>,
}

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    Committed(IngestSummary),
    /// The stored checkpoint was not where the batch started: nothing was written. `stored` is
    /// where the database says the file is, so the tailer can resume there.
    Conflict {
        stored: Option<(u64, u64)>,
    },
}

impl IngestOutcome {
    /// The summary, counting a conflict as nothing done.
    pub fn summary(&self) -> IngestSummary {
        match self {
            IngestOutcome::Committed(s) => *s,
            IngestOutcome::Conflict { .. } => IngestSummary::default(),
        }
    }
}

/// What a batch did: the `vigil ingest` summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestSummary {
    pub read: u64,
    pub alerts: u64,
    pub duplicates: u64,
    pub skipped: u64,
    pub quarantined: u64,
}

impl IngestSummary {
    pub fn add(&mut self, o: IngestSummary) {
        self.read += o.read;
        self.alerts += o.alerts;
        self.duplicates += o.duplicates;
        self.skipped += o.skipped;
        self.quarantined += o.quarantined;
    }
}

/// A change to one action, run on the writer thread inside a savepoint.
pub type ActionChange = Box<dyn FnOnce(&Connection) -> Result<ActionRow, DecisionError> + Send>;
/// Any other write, run on the writer thread inside a savepoint.
pub type RecordChange = Box<dyn FnOnce(&Connection) -> Result<Value, String> + Send>;

/// Everything the writer thread does.
pub enum WriteOp {
    Ingest(
        IngestBatch,
        Option<oneshot::Sender<rusqlite::Result<IngestOutcome>>>,
    ),
    /// A change to a response action (decide, edit, begin, finish, rollback ...), applied in
    /// its own savepoint; see `actions`.
    Action {
        apply: ActionChange,
        reply: oneshot::Sender<Result<ActionRow, DecisionError>>,
    },
    /// Anything else that only appends: session records, config loads, audit checkpoints,
    /// approval sweeps, crash recovery.
    Record {
        apply: RecordChange,
        reply: Option<oneshot::Sender<Result<Value, String>>>,
    },
    /// Enrichment results for one alert, its signals, and its new score when re-scored.
    Enrich {
        alert_id: i64,
        results: Vec<EnrichmentResult>,
        signals: EnrichmentSignals,
        score: Option<Score>,
        online_pending: bool,
    },
    /// A provider's answer, reusable until `expires_at` (errors are never sent here).
    CachePut {
        provider: String,
        result: Box<EnrichmentResult>,
        expires_at: DateTime<Utc>,
    },
    /// One request was sent to a provider: the budget survives restarts.
    ProviderUsage { provider: String, at: DateTime<Utc> },
    /// The latest budget/queue snapshot per provider, for `vigil enrich --status`.
    ProviderStatus(Vec<(String, Value)>),
    /// Answered once everything sent before it is committed.
    Flush(oneshot::Sender<()>),
    /// An analyst's verdict on an alert: the label `vigil train --from-db` learns from.
    Dispose {
        alert_id: i64,
        verdict: Verdict,
        reason: String,
        actor: Actor,
        reply: oneshot::Sender<Result<DispositionRow, DecisionError>>,
    },
}

/// An analyst's verdict on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// True positive: the alert was right, something malicious happened.
    Tp,
    /// False positive: the rule fired on something that was not what it claims.
    Fp,
    /// The activity was real but harmless (expected scanning, an admin at work).
    Benign,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Tp => "tp",
            Verdict::Fp => "fp",
            Verdict::Benign => "benign",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tp" | "true_positive" => Some(Verdict::Tp),
            "fp" | "false_positive" => Some(Verdict::Fp),
            "benign" => Some(Verdict::Benign),
            _ => None,
        }
    }

    /// The next verdict, for cycling through them in a prompt.
    pub fn next(self) -> Verdict {
        match self {
            Verdict::Tp => Verdict::Fp,
            Verdict::Fp => Verdict::Benign,
            Verdict::Benign => Verdict::Tp,
        }
    }
}

/// A recorded disposition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispositionRow {
    pub id: i64,
    pub alert_id: i64,
    pub verdict: Verdict,
    pub reason: String,
    pub decided_at: String,
    pub decided_by: String,
}

/// The writer's settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub incident_rules: Vec<super::incident::IncidentRule>,
    pub actor: Actor,
    /// Playbooks and connectors for proposals that need the incident (see `ReadyAlert::deferred`).
    pub playbooks: Option<(
        std::sync::Arc<Vec<super::playbook::Playbook>>,
        std::sync::Arc<super::connector::Connectors>,
    )>,
}

/// Most operations folded into one transaction: enough to amortise the commit, few enough that
/// a reply is never held long.
const MAX_OPS_PER_TX: usize = 64;

/// Run the writer on its own thread until every sender is dropped. After each commit the
/// generation counter in `changed` is bumped, which is how readers learn to refresh.
///
/// # Errors
/// When the database cannot be opened; later failures are returned to each op's sender.
pub fn spawn_writer(
    path: PathBuf,
    cfg: WriterConfig,
    ops: mpsc::Receiver<WriteOp>,
    changed: watch::Sender<u64>,
) -> rusqlite::Result<std::thread::JoinHandle<()>> {
    spawn_writer_with_health(path, cfg, ops, changed, StoreHealth::new())
}

/// `spawn_writer`, reporting damage to the database through `health`: the writer stops at the
/// first sign of it (its senders then see it gone) rather than retrying into a broken file.
///
/// # Errors
/// When the database cannot be opened.
pub fn spawn_writer_with_health(
    path: PathBuf,
    cfg: WriterConfig,
    mut ops: mpsc::Receiver<WriteOp>,
    changed: watch::Sender<u64>,
    health: StoreHealth,
) -> rusqlite::Result<std::thread::JoinHandle<()>> {
    let mut conn = open(&path)?;
    let handle = std::thread::Builder::new()
        .name("vigil-writer".into())
        .spawn(move || {
            let mut generation = 0u64;
            let mut incidents = IncidentCache::default();
            while let Some(first) = ops.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_OPS_PER_TX {
                    match ops.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                let rows_before = conn.total_changes();
                let wrote = apply_ops(&mut conn, &cfg, &health, &mut incidents, batch);
                // Tick only when a row changed: readers woken by a commit that changed nothing
                // (an approval sweep with nothing lapsed) would ask again, commit nothing
                // again, and keep an idle engine busy.
                if wrote && conn.total_changes() != rows_before {
                    generation += 1;
                    let _ = changed.send(generation);
                }
                if let Some(d) = health.damage() {
                    tracing::error!("writer: stopping: {} is damaged: {d}", path.display());
                    return;
                }
            }
            tracing::info!("writer: all senders gone, stopping");
            checkpoint_on_exit(&conn, &path);
        })
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    Ok(handle)
}

/// Move everything in the `-wal` into the database file, so the `.db` alone holds the whole
/// case (an analyst copies that file, not its journals). Readers that are mid-read are waited
/// for a moment; if they outlast it the data stays safely in the `-wal` for the next open.
fn checkpoint_on_exit(conn: &Connection, path: &Path) {
    let _ = conn.busy_timeout(std::time::Duration::from_secs(1));
    let r = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    match r {
        Ok(0) => tracing::info!(db = %path.display(), "writer: checkpointed"),
        Ok(_) => tracing::warn!(db = %path.display(), "writer: readers kept part of the -wal"),
        Err(e) => tracing::warn!(db = %path.display(), "writer: checkpoint failed: {e}"),
    }
}

/// Reply to send once the transaction is durable: a decision is not reported as made before it
/// is committed.
enum Reply {
    Record(
        oneshot::Sender<Result<Value, String>>,
        Result<Value, String>,
    ),
    Ingest(
        oneshot::Sender<rusqlite::Result<IngestOutcome>>,
        rusqlite::Result<IngestOutcome>,
    ),
    Action(
        oneshot::Sender<Result<ActionRow, DecisionError>>,
        Box<Result<ActionRow, DecisionError>>,
    ),
    Flush(oneshot::Sender<()>),
    Disposition(
        oneshot::Sender<Result<DispositionRow, DecisionError>>,
        Result<DispositionRow, DecisionError>,
    ),
}

fn apply_ops(
    conn: &mut Connection,
    cfg: &WriterConfig,
    health: &StoreHealth,
    incidents: &mut IncidentCache,
    ops: Vec<WriteOp>,
) -> bool {
    let mut replies = Vec::with_capacity(ops.len());
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            health.note("writer: cannot begin transaction", &e);
            for op in ops {
                fail_op(op, &e.to_string());
            }
            return false;
        }
    };
    let mut tx = tx;
    for op in ops {
        // Each op in its own savepoint: one refused op never undoes another's work.
        let mut sp = match tx.savepoint() {
            Ok(sp) => sp,
            Err(e) => {
                fail_op(op, &e.to_string());
                continue;
            }
        };
        let (reply, ok) = match op {
            WriteOp::Ingest(batch, reply) => {
                let r = ingest(&sp, cfg, incidents, &batch);
                let ok = r.is_ok();
                if let Err(e) = &r {
                    health.note(&format!("ingest batch from {} failed", batch.file), e);
                }
                (reply.map(|s| Reply::Ingest(s, r)), ok)
            }
            WriteOp::Action { apply, reply } => {
                let r = apply(&sp);
                // A refusal may have recorded why (a lapsed approval, a changed call): keep it.
                // Only a database error undoes the change.
                let ok = !matches!(r, Err(DecisionError::Db(_)));
                (Some(Reply::Action(reply, Box::new(r))), ok)
            }
            WriteOp::Record { apply, reply } => {
                let r = apply(&sp);
                let ok = r.is_ok();
                if let Err(e) = &r {
                    health.log(&format!("write failed: {e}"));
                }
                (reply.map(|s| Reply::Record(s, r)), ok)
            }
            WriteOp::Dispose {
                alert_id,
                verdict,
                reason,
                actor,
                reply,
            } => {
                let r = dispose(&sp, alert_id, verdict, &reason, &actor);
                let ok = r.is_ok();
                (Some(Reply::Disposition(reply, r)), ok)
            }
            WriteOp::Flush(reply) => (Some(Reply::Flush(reply)), true),
            other => (None, apply_enrichment_op(&sp, health, other)),
        };
        let committed = if ok {
            sp.commit()
        } else {
            // Cached incident counts may include the rolled-back alerts.
            incidents.clear();
            sp.rollback().and_then(|()| sp.commit())
        };
        if let Err(e) = committed {
            health.note("writer: savepoint failed", &e);
        }
        replies.extend(reply);
    }
    if let Err(e) = tx.commit() {
        incidents.clear();
        health.note("writer: commit failed", &e);
        let msg = e.to_string();
        for r in replies {
            match r {
                Reply::Ingest(s, _) => {
                    let _ = s.send(Err(rusqlite::Error::InvalidParameterName(msg.clone())));
                }
                Reply::Action(s, _) => {
                    let _ = s.send(Err(DecisionError::Db(msg.clone())));
                }
                Reply::Record(s, _) => {
                    let _ = s.send(Err(msg.clone()));
                }
                Reply::Flush(s) => {
                    let _ = s.send(());
                }
                Reply::Disposition(s, _) => {
                    let _ = s.send(Err(DecisionError::Db(msg.clone())));
                }
            }
        }
        return false;
    }
    for r in replies {
        match r {
            Reply::Ingest(s, v) => {
                let _ = s.send(v);
            }
            Reply::Action(s, v) => {
                let _ = s.send(*v);
            }
            Reply::Record(s, v) => {
                let _ = s.send(v);
            }
            Reply::Flush(s) => {
                let _ = s.send(());
            }
            Reply::Disposition(s, v) => {
                let _ = s.send(v);
            }
        }
    }
    true
}

/// Enrichment writes: no reply, a failure is logged and the op's savepoint rolled back.
fn apply_enrichment_op(tx: &Connection, health: &StoreHealth, op: WriteOp) -> bool {
    let r = match op {
        WriteOp::Enrich {
            alert_id,
            results,
            signals,
            score,
            online_pending,
        } => enrichment::record(
            tx,
            alert_id,
            &results,
            &signals,
            score.as_ref(),
            online_pending,
        ),
        WriteOp::CachePut {
            provider,
            result,
            expires_at,
        } => enrichment::cache_put(tx, &provider, &result, &expires_at),
        WriteOp::ProviderUsage { provider, at } => enrichment::usage(tx, &provider, &at),
        WriteOp::ProviderStatus(list) => enrichment::status(tx, &list),
        _ => Ok(()),
    };
    if let Err(e) = &r {
        health.note("enrichment write failed", e);
    }
    r.is_ok()
}

fn fail_op(op: WriteOp, msg: &str) {
    match op {
        WriteOp::Ingest(_, Some(s)) => {
            let _ = s.send(Err(rusqlite::Error::InvalidParameterName(msg.to_string())));
        }
        WriteOp::Ingest(_, None) => {}
        WriteOp::Action { reply, .. } => {
            let _ = reply.send(Err(DecisionError::Db(msg.to_string())));
        }
        WriteOp::Record { reply, .. } => {
            if let Some(r) = reply {
                let _ = r.send(Err(msg.to_string()));
            }
        }
        WriteOp::Enrich { .. }
        | WriteOp::CachePut { .. }
        | WriteOp::ProviderUsage { .. }
        | WriteOp::ProviderStatus(_) => {
            tracing::error!("enrichment write dropped: {msg}");
        }
        WriteOp::Flush(s) => {
            let _ = s.send(());
        }
        WriteOp::Dispose { reply, .. } => {
            let _ = reply.send(Err(DecisionError::Db(msg.to_string())));
        }
    }
}

fn ingest(
    tx: &Connection,
    cfg: &WriterConfig,
    incidents: &mut IncidentCache,
    b: &IngestBatch,
) -> rusqlite::Result<IngestOutcome> {
    let mut s = IngestSummary {
        read: b.read,
        skipped: b.skipped,
        ..IngestSummary::default()
    };
    for note in &b.notes {
        if note["event"] == "truncated" {
            // The inode starts over, so its position no longer belongs to its identity; the row
            // is kept under another name because a rotated copy may still resume from it (it
            // stays findable by head).
            let t = now();
            tx.execute(
                "UPDATE checkpoints SET file_id = 'truncated@' || ?2 || ':' || file_id, updated_at = ?2
                 WHERE file_id = ?1",
                params![note["file_id"].as_str(), t],
            )?;
        }
        // A file read to its end needs no looking for after a restart; one that went missing
        // before its end is reported once.
        let settled = match note["event"].as_str() {
            Some("released") => Some(CheckpointState::Released),
            Some("lost_rotated") => Some(CheckpointState::Lost),
            _ => None,
        };
        if let Some(state) = settled {
            tx.execute(
                "UPDATE checkpoints SET state = ?2, updated_at = ?3 WHERE file_id = ?1",
                params![note["file_id"].as_str(), state.as_str(), now()],
            )?;
        }
        if note["event"] == "adopted_copy" {
            // The copy's position is where its original had got to: record it now, so a restart
            // before the copy has anything new still resumes there.
            tx.execute(
                "INSERT OR IGNORE INTO checkpoints (file_id, path, byte_offset, line_no, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![note["file_id"].as_str(), note["path"].as_str(), note["offset"].as_i64(), note["line"].as_i64(), now()],
            )?;
        }
        audit::append(
            tx,
            Entry {
                actor: &cfg.actor,
                kind: "tail_event",
                alert_id: None,
                action_id: None,
                reason: None,
                detail: note.clone(),
            },
        )?;
    }
    if let Some(cp) = &b.checkpoint {
        let stored = checkpoint(tx, &cp.file_id)?;
        if stored.map_or(cp.initial_offset, |(o, _)| o) != cp.from_offset {
            // Someone else (another vigil on the same database) already committed this range,
            // or an earlier batch of this file did not commit.
            tracing::info!(file = %b.file, "batch at {} refused: checkpoint is at {:?}", cp.from_offset, stored);
            return Ok(IngestOutcome::Conflict { stored });
        }
        tx.execute(
            "INSERT INTO checkpoints (file_id, path, byte_offset, line_no, updated_at, len_seen, state, tail_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(file_id) DO UPDATE SET path = ?2, byte_offset = ?3, line_no = ?4,
                 updated_at = ?5, len_seen = max(len_seen, ?6), state = ?7, tail_hash = ?8",
            params![cp.file_id, cp.path, cp.to_offset as i64, cp.to_line as i64, now(), cp.len_seen as i64, CheckpointState::Following.as_str(), cp.tail_hash],
        )?;
    }
    let ingested_at = now();
    // Duplicates are found first so the incident is known before the row is written: each row
    // is written once, with its incident, instead of inserted and then rewritten.
    let mut exists = tx.prepare_cached("SELECT 1 FROM alerts WHERE fingerprint = ?1")?;
    let mut insert = tx.prepare_cached(INSERT_ALERT)?;
    let mut in_batch = std::collections::HashSet::new();
    for r in &b.alerts {
        if !in_batch.insert(r.fingerprint.as_str()) || exists.exists([&r.fingerprint])? {
            s.duplicates += 1;
            continue;
        }
        let incident = incidents.assign(tx, &r.alert, r.score.risk(), &cfg.incident_rules)?;
        insert_alert(&mut insert, r, &ingested_at, &b.file, incident)?;
        s.alerts += 1;
        let alert_id = tx.last_insert_rowid();
        for p in &r.proposals {
            actions::propose(tx, p, alert_id, &cfg.actor)?;
        }
        if let (Some((playbooks, connectors)), Some(doc), Some(_)) =
            (&cfg.playbooks, &r.match_doc, &incident)
        {
            let mut doc = doc.clone();
            if let (Value::Object(m), Some(state)) = (&mut doc, incidents.last_state()) {
                m.insert("incident".into(), state);
            }
            for pb in r.deferred.iter().filter_map(|i| playbooks.get(*i)) {
                if pb.matches(&doc) {
                    for p in pb.propose(&doc, connectors).0 {
                        actions::propose(tx, &p, alert_id, &cfg.actor)?;
                    }
                }
            }
        }
    }
    incidents.flush(tx)?;
    for q in &b.quarantined {
        tx.execute(
            "INSERT INTO quarantine (at, file, byte_offset, line_no, reason, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![ingested_at, b.file, q.byte_offset as i64, q.line_no as i64, q.reason, q.raw],
        )?;
        s.quarantined += 1;
    }
    if b.read == 0 && b.checkpoint.is_none() {
        return Ok(IngestOutcome::Committed(s));
    }
    audit::append(
        tx,
        Entry {
            actor: &cfg.actor,
            kind: "ingest_batch",
            alert_id: None,
            action_id: None,
            reason: None,
            detail: json!({
                "file": b.file,
                "summary": s,
                "checkpoint": b.checkpoint.as_ref().map(|c| json!({"file_id": c.file_id, "from": c.from_offset, "to": c.to_offset})),
            }),
        },
    )?;
    Ok(IngestOutcome::Committed(s))
}

/// The one way an alert row is written (the real path and the benchmark baseline share it).
const INSERT_ALERT: &str =
    "INSERT INTO alerts (fingerprint, ts, ingested_at, module, severity, rule_name, source_ip,
       destination_ip, risk, band, score, alert, original, source_file, source_line, incident_id)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

fn insert_alert(
    stmt: &mut rusqlite::CachedStatement<'_>,
    r: &ReadyAlert,
    at: &str,
    file: &str,
    incident: Option<i64>,
) -> rusqlite::Result<usize> {
    stmt.execute(params![
        r.fingerprint,
        ts(&r.alert.timestamp),
        at,
        r.alert.module,
        r.alert.severity.level(),
        r.alert.rule_name,
        r.alert.source_ip.map(|i| i.to_string()),
        r.alert.destination_ip.map(|i| i.to_string()),
        r.score.risk(),
        match &r.score {
            Score::Scored { band, .. } => Some(band.label()),
            Score::Unscored { .. } => None,
        },
        r.score_json,
        r.alert_json,
        r.alert.original,
        file,
        r.line_no as i64,
        incident,
    ])
}

/// Insert a batch's alert rows with a plain prepared INSERT in one transaction and nothing
/// else: the baseline `vigil bench ingest` compares the real path against.
///
/// # Errors
/// SQLite errors.
pub fn insert_raw(conn: &Connection, b: &IngestBatch) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare_cached(INSERT_ALERT)?;
        let at = now();
        for r in &b.alerts {
            insert_alert(&mut stmt, r, &at, &b.file, None)?;
        }
    }
    tx.commit()
}

/// The writer's memory of recent incidents, so most alerts join one without a query; counts
/// are applied once per batch. Another process may add to the same incidents: counts are
/// increments, so they stay right.
#[derive(Default)]
pub struct IncidentCache {
    by_key: HashMap<String, CachedIncident>,
    /// The key the last `assign` used, so its state can be read without a search.
    last_key: Option<String>,
}

struct CachedIncident {
    id: i64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    /// Alerts in the incident, this one included.
    count: u64,
    added: u64,
    max_risk: Option<u8>,
}

/// Entries kept before the cache starts over (each is small; this bounds a long-running writer).
const INCIDENT_CACHE_LIMIT: usize = 100_000;

impl IncidentCache {
    /// Forget everything (after a rolled-back batch, the cached counts may not match the rows).
    pub fn clear(&mut self) {
        self.by_key.clear();
    }

    /// Put an alert into the incident its first matching rule picks: one with the same key
    /// whose alerts are within the rule's window of this one, or a new one.
    fn assign(
        &mut self,
        tx: &Connection,
        a: &Alert,
        risk: Option<u8>,
        rules: &[super::incident::IncidentRule],
    ) -> rusqlite::Result<Option<i64>> {
        let Some((rule, key)) = super::incident::matching(rules, a) else {
            return Ok(None);
        };
        let window = ChronoDuration::minutes(i64::from(rule.window_minutes));
        let t = a.timestamp;
        let fits = |c: &CachedIncident| c.last >= t - window && c.first <= t + window;
        if !self.by_key.get(&key).is_some_and(fits) {
            let found = tx
                .prepare_cached(
                    "SELECT id, first_seen, last_seen, alert_count FROM incidents
                     WHERE group_key = ?1 AND last_seen >= ?2 AND first_seen <= ?3
                     ORDER BY last_seen DESC LIMIT 1",
                )?
                .query_row(params![key, ts(&(t - window)), ts(&(t + window))], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .optional()?;
            let cached = match found {
                Some((id, first, last, count)) => CachedIncident {
                    id,
                    first: super::normalize::parse_timestamp(&first).unwrap_or(t),
                    last: super::normalize::parse_timestamp(&last).unwrap_or(t),
                    count: count.max(0) as u64,
                    added: 0,
                    max_risk: None,
                },
                None => {
                    tx.prepare_cached(
                        "INSERT INTO incidents (group_key, rule_id, source_ip, first_seen, last_seen, alert_count, max_risk)
                         VALUES (?1, ?2, ?3, ?4, ?4, 0, NULL)",
                    )?
                    .execute(params![key, a.rule_id, a.source_ip.map(|i| i.to_string()), ts(&t)])?;
                    CachedIncident {
                        id: tx.last_insert_rowid(),
                        first: t,
                        last: t,
                        count: 0,
                        added: 0,
                        max_risk: None,
                    }
                }
            };
            if self.by_key.len() >= INCIDENT_CACHE_LIMIT {
                self.by_key.clear();
            }
            if let Some(old) = self.by_key.insert(key.clone(), cached) {
                if old.added > 0 {
                    Self::write(tx, &old)?;
                }
            }
        }
        let Some(c) = self.by_key.get_mut(&key) else {
            return Ok(None);
        };
        self.last_key = Some(key);
        c.added += 1;
        c.count += 1;
        c.first = c.first.min(t);
        c.last = c.last.max(t);
        c.max_risk = c.max_risk.max(risk);
        Ok(Some(c.id))
    }

    fn write(tx: &Connection, c: &CachedIncident) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "UPDATE incidents SET alert_count = alert_count + ?2,
               first_seen = min(first_seen, ?3), last_seen = max(last_seen, ?4),
               max_risk = max(coalesce(max_risk, -1), coalesce(?5, -1))
             WHERE id = ?1",
        )?
        .execute(params![
            c.id,
            c.added as i64,
            ts(&c.first),
            ts(&c.last),
            c.max_risk
        ])?;
        Ok(())
    }

    /// What templates and conditions see as `incident.*`, for the incident the last alert
    /// joined.
    fn last_state(&self) -> Option<Value> {
        let key = self.last_key.as_ref()?;
        self.by_key.get(key).map(|c| {
            json!({"id": c.id, "alert_count": c.count, "first_seen": ts(&c.first), "last_seen": ts(&c.last)})
        })
    }

    /// Apply this batch's counts.
    fn flush(&mut self, tx: &Connection) -> rusqlite::Result<()> {
        for c in self.by_key.values_mut().filter(|c| c.added > 0) {
            Self::write(tx, c)?;
            c.added = 0;
            c.max_risk = None;
        }
        Ok(())
    }
}

fn dispose(
    tx: &Connection,
    alert_id: i64,
    verdict: Verdict,
    reason: &str,
    actor: &Actor,
) -> Result<DispositionRow, DecisionError> {
    if reason.trim().is_empty() {
        return Err(DecisionError::NoReason);
    }
    let exists: Option<i64> = tx
        .query_row("SELECT id FROM alerts WHERE id = ?1", [alert_id], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_none() {
        return Err(DecisionError::NoSuchAlert(alert_id));
    }
    let previous = latest_disposition(tx, alert_id)?;
    let at = now();
    tx.execute(
        "INSERT INTO dispositions (alert_id, verdict, reason, decided_at, decided_by_uid, decided_by_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![alert_id, verdict.as_str(), reason, at, actor.uid, actor.name],
    )?;
    let id = tx.last_insert_rowid();
    audit::append(
        tx,
        Entry {
            actor,
            kind: "disposition",
            alert_id: Some(alert_id),
            action_id: None,
            reason: Some(reason),
            detail: json!({
                "disposition_id": id,
                "before": previous.as_ref().map(|p| p.verdict.as_str()),
                "after": verdict.as_str(),
            }),
        },
    )?;
    Ok(DispositionRow {
        id,
        alert_id,
        verdict,
        reason: reason.to_string(),
        decided_at: at,
        decided_by: actor.name.clone(),
    })
}

/// The latest disposition of an alert.
///
/// # Errors
/// SQLite errors.
pub fn latest_disposition(
    conn: &Connection,
    alert_id: i64,
) -> rusqlite::Result<Option<DispositionRow>> {
    conn.query_row(
        "SELECT id, alert_id, verdict, reason, decided_at, decided_by_name FROM dispositions
         WHERE alert_id = ?1 ORDER BY id DESC LIMIT 1",
        [alert_id],
        |r| {
            let v: String = r.get(2)?;
            Ok(DispositionRow {
                id: r.get(0)?,
                alert_id: r.get(1)?,
                verdict: Verdict::parse(&v).unwrap_or(Verdict::Benign),
                reason: r.get(3)?,
                decided_at: r.get(4)?,
                decided_by: r.get(5)?,
            })
        },
    )
    .optional()
}

/// One disposed alert as training data.
#[derive(Debug, Clone)]
pub struct DisposedAlert {
    pub alert_id: i64,
    pub alert: Alert,
    pub verdict: String,
    pub decided_at: String,
    /// Alerts of its incident up to and including its time.
    pub incident_alerts_so_far: u32,
    pub incident_first_seen: Option<DateTime<Utc>>,
}

/// Every alert with a disposition (its latest), oldest alert first.
///
/// # Errors
/// SQLite errors, or a stored alert that no longer parses.
pub fn labelled_dispositions(conn: &Connection) -> rusqlite::Result<Vec<DisposedAlert>> {
    let mut stmt = conn.prepare(
        "SELECT a.id, a.alert, d.verdict, d.decided_at,
                (SELECT count(*) FROM alerts b WHERE b.incident_id = a.incident_id AND b.ts <= a.ts),
                (SELECT min(b.ts) FROM alerts b WHERE b.incident_id = a.incident_id)
         FROM alerts a JOIN dispositions d ON d.id =
              (SELECT max(id) FROM dispositions WHERE alert_id = a.id)
         ORDER BY a.ts, a.id",
    )?;
    let rows = stmt.query_map([], |r| {
        let alert: String = r.get(1)?;
        let alert: Alert = serde_json::from_str(&alert).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
        })?;
        let first: Option<String> = r.get(5)?;
        Ok(DisposedAlert {
            alert_id: r.get(0)?,
            alert,
            verdict: r.get(2)?,
            decided_at: r.get(3)?,
            incident_alerts_so_far: r.get::<_, i64>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
            incident_first_seen: first
                .and_then(|f| DateTime::parse_from_rfc3339(&f).ok())
                .map(|t| t.with_timezone(&Utc)),
        })
    })?;
    rows.collect()
}

/// The stored incident an alert at `t` under `key` would join, if any: what the live pipeline
/// seeds its incident figures from.
///
/// # Errors
/// SQLite errors.
pub fn open_incident(
    conn: &Connection,
    key: &str,
    t: DateTime<Utc>,
    window: ChronoDuration,
) -> rusqlite::Result<Option<super::incident::OpenIncident>> {
    let row: Option<(String, String, i64)> = conn
        .query_row(
            "SELECT first_seen, last_seen, alert_count FROM incidents
             WHERE group_key = ?1 AND last_seen >= ?2 AND first_seen <= ?3
             ORDER BY last_seen DESC LIMIT 1",
            params![key, ts(&(t - window)), ts(&(t + window))],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let parse = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    };
    Ok(row.and_then(|(f, l, n)| {
        Some(super::incident::OpenIncident {
            first_seen: parse(&f)?,
            last_seen: parse(&l)?,
            alerts: n.clamp(0, i64::from(u32::MAX)) as u32,
        })
    }))
}

// ---------------------------------------------------------------- reads

/// One row of the queue as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueRow {
    pub id: i64,
    pub ts: String,
    pub module: String,
    pub severity: u8,
    pub rule_name: Option<String>,
    pub source_ip: Option<String>,
    pub destination_ip: Option<String>,
    pub risk: Option<u8>,
    pub band: Option<String>,
    pub incident_id: Option<i64>,
}

/// Counts for the status bar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub alerts: u64,
    pub quarantined: u64,
    pub pending_actions: u64,
    pub incidents: u64,
    /// Files that went missing before their end was read, in the last day.
    #[serde(default)]
    pub lost_files: u64,
    /// The latest of them.
    #[serde(default)]
    pub last_lost: Option<LostFile>,
}

/// A followed file that went missing (rotated away and deleted while vigil was stopped) before
/// its end was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostFile {
    /// The name it was followed under.
    pub path: String,
    /// Bytes read and stored from its start.
    pub read_to: u64,
    /// Bytes vigil had seen in it beyond that; anything written after its last look is unknown.
    pub unread_bytes: u64,
}

/// How long a lost file stays on the analyst's screen: one shift and the next.
const LOST_FILE_SHOWN: ChronoDuration = ChronoDuration::hours(24);

/// Everything the detail panes show for one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDetail {
    pub id: i64,
    pub alert: Alert,
    pub score: Score,
    pub incident_id: Option<i64>,
    pub incident_count: Option<u64>,
    pub actions: Vec<ActionRow>,
    /// What feeds, GeoIP and providers said about the alert's indicators, worst first.
    pub enrichment: Vec<EnrichmentResult>,
    /// Online lookups for this alert are still queued or running.
    pub enrichment_pending: bool,
    /// The analyst's latest verdict, if any.
    #[serde(default)]
    pub disposition: Option<DispositionRow>,
}

/// Total counts.
///
/// # Errors
/// SQLite errors.
pub fn totals(conn: &Connection) -> rusqlite::Result<Totals> {
    let lost = lost_files(conn)?;
    let totals = conn.query_row(
        "SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM quarantine),
                (SELECT count(*) FROM actions WHERE status = 'proposed'), (SELECT count(*) FROM incidents)",
        [],
        |r| {
            Ok(Totals {
                alerts: r.get::<_, i64>(0)? as u64,
                quarantined: r.get::<_, i64>(1)? as u64,
                pending_actions: r.get::<_, i64>(2)? as u64,
                incidents: r.get::<_, i64>(3)? as u64,
                lost_files: lost.len() as u64,
                last_lost: lost.first().cloned(),
            })
        },
    )?;
    Ok(totals)
}

/// Files lost in the last day, newest first. A case saved by an earlier vigil, opened read-only,
/// has no checkpoint states (and cannot be given them): it has none to show.
fn lost_files(conn: &Connection) -> rusqlite::Result<Vec<LostFile>> {
    let has_state = conn
        .prepare_cached("SELECT 1 FROM pragma_table_info('checkpoints') WHERE name = 'state'")?
        .exists([])?;
    if !has_state {
        return Ok(Vec::new());
    }
    let since = ts(&(Utc::now() - LOST_FILE_SHOWN));
    conn.prepare_cached(
        "SELECT path, byte_offset, len_seen FROM checkpoints
         WHERE state = ?1 AND updated_at >= ?2 ORDER BY updated_at DESC",
    )?
    .query_map(params![CheckpointState::Lost.as_str(), since], |r| {
        let read_to = r.get::<_, i64>(1)? as u64;
        Ok(LostFile {
            path: r.get(0)?,
            read_to,
            unread_bytes: (r.get::<_, i64>(2)? as u64).saturating_sub(read_to),
        })
    })?
    .collect()
}

/// One page of the queue, highest risk first (unscored last), newest first within a risk.
///
/// # Errors
/// SQLite errors.
pub fn queue_page(conn: &Connection, offset: u64, limit: u64) -> rusqlite::Result<Vec<QueueRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, ts, module, severity, rule_name, source_ip, destination_ip, risk, band, incident_id
         FROM alerts ORDER BY risk DESC, ts DESC, id DESC LIMIT ?1 OFFSET ?2",
    )?;
    let rows = stmt.query_map(params![limit as i64, offset as i64], |r| {
        Ok(QueueRow {
            id: r.get(0)?,
            ts: r.get(1)?,
            module: r.get(2)?,
            severity: r.get(3)?,
            rule_name: r.get(4)?,
            source_ip: r.get(5)?,
            destination_ip: r.get(6)?,
            risk: r.get(7)?,
            band: r.get(8)?,
            incident_id: r.get(9)?,
        })
    })?;
    rows.collect()
}

/// One action by id.
///
/// # Errors
/// SQLite errors.
pub fn action_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<ActionRow>> {
    action(conn, id)
}

/// The full record of one alert.
///
/// # Errors
/// SQLite errors.
pub fn alert_detail(conn: &Connection, id: i64) -> rusqlite::Result<Option<AlertDetail>> {
    let row = conn
        .query_row(
            "SELECT a.alert, a.score, a.incident_id, i.alert_count, a.original FROM alerts a
             LEFT JOIN incidents i ON i.id = a.incident_id WHERE a.id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((alert, score, incident_id, count, original)) = row else {
        return Ok(None);
    };
    let to_err = |e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    };
    let actions = for_alert(conn, id)?;
    let mut alert: Alert = serde_json::from_str(&alert).map_err(to_err)?;
    alert.original = original;
    Ok(Some(AlertDetail {
        id,
        alert,
        score: serde_json::from_str(&score).map_err(to_err)?,
        incident_id,
        incident_count: count.map(|c| c as u64),
        actions,
        enrichment: enrichment::results(conn, id)?,
        enrichment_pending: enrichment::state(conn, id)?.is_some_and(|(_, p)| p),
        disposition: latest_disposition(conn, id)?,
    }))
}

/// Every alert as an ECS document with `vigil.*` fields, oldest first, streamed to `f`.
///
/// # Errors
/// SQLite errors or the first error `f` returns.
pub fn export(
    conn: &Connection,
    mut f: impl FnMut(Value) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT id, alert, score, incident_id, fingerprint, original FROM alerts ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let mut alert: Alert = serde_json::from_str(&r.get::<_, String>(1)?)?;
        alert.original = r.get(5)?;
        let score: Score = serde_json::from_str(&r.get::<_, String>(2)?)?;
        let incident: Option<i64> = r.get(3)?;
        let fp: String = r.get(4)?;
        let mut doc = ecs_document(id, &alert, &score, incident, &fp);
        let results = enrichment::results(conn, id)?;
        let state = enrichment::state(conn, id)?;
        super::enrich::export::add_to_ecs(&mut doc, &alert, &results, state.map(|s| s.0).as_ref());
        f(doc)?;
    }
    Ok(())
}

/// What playbooks match on: the ECS fields and `vigil.*`, without the raw document.
pub fn match_document(alert: &Alert, score: &Score, fingerprint: &str) -> Value {
    with_vigil(alert.to_ecs_fields(), 0, alert, score, None, fingerprint)
}

/// The export shape of one stored alert.
pub fn ecs_document(
    id: i64,
    alert: &Alert,
    score: &Score,
    incident: Option<i64>,
    fingerprint: &str,
) -> Value {
    with_vigil(alert.to_ecs(), id, alert, score, incident, fingerprint)
}

fn with_vigil(
    mut doc: Value,
    id: i64,
    alert: &Alert,
    score: &Score,
    incident: Option<i64>,
    fingerprint: &str,
) -> Value {
    if let Value::Object(m) = &mut doc {
        let vigil = score_json(score);
        let mut v = vigil.as_object().cloned().unwrap_or_default();
        v.insert("alert_id".into(), json!(id));
        v.insert("incident_id".into(), json!(incident));
        v.insert("fingerprint".into(), json!(fingerprint));
        let scope = |ip: Option<std::net::IpAddr>| {
            ip.map(|ip| match super::features::address_scope(ip) as u8 {
                0 => "private",
                1 => "public",
                _ => "reserved",
            })
        };
        if let Some(s) = scope(alert.source_ip) {
            v.insert("source_scope".into(), json!(s));
        }
        if let Some(s) = scope(alert.destination_ip) {
            v.insert("destination_scope".into(), json!(s));
        }
        if let Some(Value::Object(existing)) = m.get("vigil") {
            for (k, val) in existing {
                v.insert(k.clone(), val.clone());
            }
        }
        m.insert("vigil".into(), Value::Object(v));
    }
    doc
}

/// `vigil.*` fields of a score: risk, band, and the explanation.
pub fn score_json(score: &Score) -> Value {
    match score {
        Score::Scored {
            risk,
            band,
            probability,
            base_points,
            top,
            model,
            recommendation,
            attack,
        } => {
            let mut v = json!({
                "risk": risk, "band": band.label(), "probability": probability,
                "recommendation": recommendation.label(),
                "explanation": {"base_points": base_points, "top": top}, "model": model,
            });
            attack_json(&mut v, attack.as_ref());
            v
        }
        Score::Unscored { reason, attack } => {
            let mut v = json!({"risk": null, "unscored_reason": reason});
            attack_json(&mut v, attack.as_ref());
            v
        }
    }
}

fn attack_json(v: &mut Value, attack: Option<&super::classify::Classification>) {
    if let (Value::Object(m), Some(a)) = (v, attack) {
        m.insert("attack_class".into(), json!(a.class.label()));
        m.insert("attack_tactic".into(), json!(a.tactic));
        m.insert("attack_tactic_id".into(), json!(a.tactic_id));
        m.insert("attack_basis".into(), json!(a.basis));
    }
}

/// The stored checkpoint of a file, if any: `(byte_offset, line_no)`.
///
/// # Errors
/// SQLite errors.
pub fn checkpoint(conn: &Connection, file_id: &str) -> rusqlite::Result<Option<(u64, u64)>> {
    conn.query_row(
        "SELECT byte_offset, line_no FROM checkpoints WHERE file_id = ?1",
        [file_id],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
    .optional()
}

/// The tailer's view of stored checkpoints, read through a read connection.
pub struct StoredCheckpoints<'a>(pub &'a Connection);

impl super::tailer::Checkpoints for StoredCheckpoints<'_> {
    fn recent(&mut self, limit: usize) -> Vec<super::tailer::StoredCheckpoint> {
        let rows = self
            .0
            .prepare(
                "SELECT file_id, path, byte_offset, line_no FROM checkpoints
                 WHERE state = 'following' ORDER BY updated_at DESC LIMIT ?1",
            )
            .and_then(|mut st| {
                st.query_map([limit as i64], |r| {
                    Ok(super::tailer::StoredCheckpoint {
                        file_id: r.get(0)?,
                        path: r.get(1)?,
                        offset: r.get::<_, i64>(2)? as u64,
                        line: r.get::<_, i64>(3)? as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            });
        rows.unwrap_or_else(|e| {
            tracing::warn!("cannot read checkpoints to look for rotated files: {e}");
            Vec::new()
        })
    }

    fn get(&mut self, file_id: &str) -> Option<(u64, u64)> {
        checkpoint(self.0, file_id).ok().flatten()
    }

    fn seen_len(&mut self, file_id: &str) -> Option<u64> {
        self.0
            .query_row(
                "SELECT len_seen FROM checkpoints WHERE file_id = ?1",
                [file_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .ok()
            .flatten()
            .map(|n| n as u64)
    }

    fn tail_hash(&mut self, file_id: &str) -> Option<String> {
        self.0
            .query_row(
                "SELECT tail_hash FROM checkpoints WHERE file_id = ?1",
                [file_id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .ok()
            .flatten()
            .flatten()
    }

    fn by_head(&mut self, head_hash: &str) -> Option<super::tailer::StoredCheckpoint> {
        // Identities are `dev:ino:len:hash`; only full-length heads (256 bytes) are asked for.
        self.0
            .query_row(
                "SELECT file_id, path, byte_offset, line_no FROM checkpoints
                 WHERE file_id LIKE '%:256:' || ?1 ORDER BY byte_offset DESC LIMIT 1",
                [head_hash],
                |r| {
                    Ok(super::tailer::StoredCheckpoint {
                        file_id: r.get(0)?,
                        path: r.get(1)?,
                        offset: r.get::<_, i64>(2)? as u64,
                        line: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .optional()
            .ok()
            .flatten()
    }
}
