//! The SQLite database: schema, the one writer, and the queries the UI and exports read.
//! Owns every SQL statement. Writes happen only on the writer thread, in batched transactions;
//! readers use their own connections (WAL lets them read while the writer commits).

use super::alert::Alert;
use super::audit::{self, Entry};
use super::playbook::{ApprovalPolicy, ProposedAction};
use super::score::Score;
use crate::identity::Actor;
use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot, watch};

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
    updated_at TEXT NOT NULL
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
    UNIQUE (playbook, step, call_hash)
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
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Open an existing database without any write access: for readers, exports and offline
/// review of a saved incident database.
///
/// # Errors
/// When the file does not exist or cannot be opened.
pub fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
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
    pub to_offset: u64,
    pub to_line: u64,
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

/// Why a decision was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    #[error("action {0} does not exist")]
    NoSuchAction(i64),
    #[error("action {id} is {status}, not pending a decision")]
    NotPending { id: i64, status: String },
    #[error("a reason is required")]
    NoReason,
    #[error("alert {0} does not exist")]
    NoSuchAlert(i64),
    #[error("action {0} needs two analysts; the two-person rule arrives with the playbook engine")]
    TwoPersonUnsupported(i64),
    #[error("database: {0}")]
    Db(String),
}

impl From<rusqlite::Error> for DecisionError {
    fn from(e: rusqlite::Error) -> Self {
        DecisionError::Db(e.to_string())
    }
}

/// Everything the writer thread does.
#[derive(Debug)]
pub enum WriteOp {
    Ingest(
        IngestBatch,
        Option<oneshot::Sender<rusqlite::Result<IngestSummary>>>,
    ),
    Decide {
        action_id: i64,
        approve: bool,
        reason: String,
        actor: Actor,
        reply: oneshot::Sender<Result<ActionRow, DecisionError>>,
    },
    /// Record that an approved action is about to run. Refused unless it is approved and its
    /// call still hashes to what was approved.
    Intent {
        action_id: i64,
        actor: Actor,
        reply: oneshot::Sender<Result<ActionRow, DecisionError>>,
    },
    Outcome {
        action_id: i64,
        ok: bool,
        detail: String,
        actor: Actor,
        reply: oneshot::Sender<Result<ActionRow, DecisionError>>,
    },
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
    pub incident_window: ChronoDuration,
    pub actor: Actor,
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
    mut ops: mpsc::Receiver<WriteOp>,
    changed: watch::Sender<u64>,
) -> rusqlite::Result<std::thread::JoinHandle<()>> {
    let mut conn = open(&path)?;
    let handle = std::thread::Builder::new()
        .name("vigil-writer".into())
        .spawn(move || {
            let mut generation = 0u64;
            while let Some(first) = ops.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_OPS_PER_TX {
                    match ops.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                let wrote = apply_ops(&mut conn, &cfg, batch);
                if wrote {
                    generation += 1;
                    let _ = changed.send(generation);
                }
            }
            tracing::info!("writer: all senders gone, stopping");
        })
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    Ok(handle)
}

/// Reply to send once the transaction is durable: a decision is not reported as made before it
/// is committed.
enum Reply {
    Ingest(
        oneshot::Sender<rusqlite::Result<IngestSummary>>,
        rusqlite::Result<IngestSummary>,
    ),
    Action(
        oneshot::Sender<Result<ActionRow, DecisionError>>,
        Box<Result<ActionRow, DecisionError>>,
    ),
    Disposition(
        oneshot::Sender<Result<DispositionRow, DecisionError>>,
        Result<DispositionRow, DecisionError>,
    ),
}

fn apply_ops(conn: &mut Connection, cfg: &WriterConfig, ops: Vec<WriteOp>) -> bool {
    let mut replies = Vec::with_capacity(ops.len());
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!("writer: cannot begin transaction: {e}");
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
                let r = ingest(&sp, cfg, &batch);
                let ok = r.is_ok();
                if let Err(e) = &r {
                    tracing::error!(file = %batch.file, "ingest batch failed: {e}");
                }
                (reply.map(|s| Reply::Ingest(s, r)), ok)
            }
            WriteOp::Decide {
                action_id,
                approve,
                reason,
                actor,
                reply,
            } => {
                let r = decide(&sp, action_id, approve, &reason, &actor);
                let ok = r.is_ok();
                (Some(Reply::Action(reply, Box::new(r))), ok)
            }
            WriteOp::Intent {
                action_id,
                actor,
                reply,
            } => {
                let r = intent(&sp, action_id, &actor);
                let ok = r.is_ok();
                (Some(Reply::Action(reply, Box::new(r))), ok)
            }
            WriteOp::Outcome {
                action_id,
                ok,
                detail,
                actor,
                reply,
            } => {
                let r = outcome(&sp, action_id, ok, &detail, &actor);
                let ok = r.is_ok();
                (Some(Reply::Action(reply, Box::new(r))), ok)
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
        };
        let committed = if ok {
            sp.commit()
        } else {
            sp.rollback().and_then(|()| sp.commit())
        };
        if let Err(e) = committed {
            tracing::error!("writer: savepoint failed: {e}");
        }
        replies.extend(reply);
    }
    if let Err(e) = tx.commit() {
        tracing::error!("writer: commit failed: {e}");
        let msg = e.to_string();
        for r in replies {
            match r {
                Reply::Ingest(s, _) => {
                    let _ = s.send(Err(rusqlite::Error::InvalidParameterName(msg.clone())));
                }
                Reply::Action(s, _) => {
                    let _ = s.send(Err(DecisionError::Db(msg.clone())));
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
            Reply::Disposition(s, v) => {
                let _ = s.send(v);
            }
        }
    }
    true
}

fn fail_op(op: WriteOp, msg: &str) {
    match op {
        WriteOp::Ingest(_, Some(s)) => {
            let _ = s.send(Err(rusqlite::Error::InvalidParameterName(msg.to_string())));
        }
        WriteOp::Ingest(_, None) => {}
        WriteOp::Decide { reply, .. }
        | WriteOp::Intent { reply, .. }
        | WriteOp::Outcome { reply, .. } => {
            let _ = reply.send(Err(DecisionError::Db(msg.to_string())));
        }
        WriteOp::Dispose { reply, .. } => {
            let _ = reply.send(Err(DecisionError::Db(msg.to_string())));
        }
    }
}

fn ingest(tx: &Connection, cfg: &WriterConfig, b: &IngestBatch) -> rusqlite::Result<IngestSummary> {
    let mut s = IngestSummary {
        read: b.read,
        skipped: b.skipped,
        ..IngestSummary::default()
    };
    if let Some(cp) = &b.checkpoint {
        let stored: Option<i64> = tx
            .query_row(
                "SELECT byte_offset FROM checkpoints WHERE file_id = ?1",
                [&cp.file_id],
                |r| r.get(0),
            )
            .optional()?;
        if stored.unwrap_or(0) as u64 != cp.from_offset {
            // Someone else (another vigil on the same database) already committed this range.
            tracing::info!(file = %b.file, "batch at {} skipped: checkpoint is at {:?}", cp.from_offset, stored);
            return Ok(IngestSummary::default());
        }
        tx.execute(
            "INSERT INTO checkpoints (file_id, path, byte_offset, line_no, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(file_id) DO UPDATE SET path = ?2, byte_offset = ?3, line_no = ?4, updated_at = ?5",
            params![cp.file_id, cp.path, cp.to_offset as i64, cp.to_line as i64, now()],
        )?;
    }
    let ingested_at = now();
    for r in &b.alerts {
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO alerts (fingerprint, ts, ingested_at, module, severity, rule_name, source_ip,
               destination_ip, risk, band, score, alert, source_file, source_line)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                r.fingerprint,
                ts(&r.alert.timestamp),
                ingested_at,
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
                serde_json::to_string(&r.score).unwrap_or_default(),
                serde_json::to_string(&r.alert).unwrap_or_default(),
                b.file,
                r.line_no as i64,
            ],
        )?;
        if inserted == 0 {
            s.duplicates += 1;
            continue;
        }
        s.alerts += 1;
        let alert_id = tx.last_insert_rowid();
        let incident = assign_incident(tx, &r.alert, r.score.risk(), cfg.incident_window)?;
        tx.execute(
            "UPDATE alerts SET incident_id = ?1 WHERE id = ?2",
            params![incident, alert_id],
        )?;
        for p in &r.proposals {
            tx.execute(
                "INSERT OR IGNORE INTO actions (playbook, step, title, connector, params, rendered, call_hash,
                   approval, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'proposed', ?9)",
                params![
                    p.playbook,
                    p.step,
                    p.title,
                    p.connector,
                    Value::Object(p.params.clone()).to_string(),
                    p.rendered,
                    p.call_hash,
                    p.approval.as_str(),
                    ingested_at
                ],
            )?;
            let action_id: i64 = tx.query_row(
                "SELECT id FROM actions WHERE playbook = ?1 AND step = ?2 AND call_hash = ?3",
                params![p.playbook, p.step, p.call_hash],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO action_alerts (action_id, alert_id) VALUES (?1, ?2)",
                params![action_id, alert_id],
            )?;
        }
    }
    for q in &b.quarantined {
        tx.execute(
            "INSERT INTO quarantine (at, file, byte_offset, line_no, reason, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![ingested_at, b.file, q.byte_offset as i64, q.line_no as i64, q.reason, q.raw],
        )?;
        s.quarantined += 1;
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
    Ok(s)
}

/// Group an alert with recent ones of the same rule from the same source (within the window);
/// start a new incident otherwise.
fn assign_incident(
    tx: &Connection,
    a: &Alert,
    risk: Option<u8>,
    window: ChronoDuration,
) -> rusqlite::Result<i64> {
    let src = a.source_ip.map(|i| i.to_string()).unwrap_or_default();
    let key = super::incident::group_key(a);
    let t = ts(&a.timestamp);
    let lo = ts(&(a.timestamp - window));
    let hi = ts(&(a.timestamp + window));
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM incidents WHERE group_key = ?1 AND last_seen >= ?2 AND first_seen <= ?3
             ORDER BY last_seen DESC LIMIT 1",
            params![key, lo, hi],
            |r| r.get(0),
        )
        .optional()?;
    match existing {
        Some(id) => {
            tx.execute(
                "UPDATE incidents SET alert_count = alert_count + 1,
                   first_seen = min(first_seen, ?2), last_seen = max(last_seen, ?2),
                   max_risk = max(coalesce(max_risk, -1), coalesce(?3, -1))
                 WHERE id = ?1",
                params![id, t, risk],
            )?;
            Ok(id)
        }
        None => {
            tx.execute(
                "INSERT INTO incidents (group_key, rule_id, source_ip, first_seen, last_seen, alert_count, max_risk)
                 VALUES (?1, ?2, ?3, ?4, ?4, 1, ?5)",
                params![key, a.rule_id, (!src.is_empty()).then_some(src.clone()), t, risk],
            )?;
            Ok(tx.last_insert_rowid())
        }
    }
}

fn decide(
    tx: &Connection,
    id: i64,
    approve: bool,
    reason: &str,
    actor: &Actor,
) -> Result<ActionRow, DecisionError> {
    if reason.trim().is_empty() {
        return Err(DecisionError::NoReason);
    }
    let row = action(tx, id)?.ok_or(DecisionError::NoSuchAction(id))?;
    if row.status != "proposed" {
        return Err(DecisionError::NotPending {
            id,
            status: row.status,
        });
    }
    if approve && row.approval == ApprovalPolicy::TwoAnalysts {
        return Err(DecisionError::TwoPersonUnsupported(id));
    }
    let status = if approve { "approved" } else { "rejected" };
    // Compare-and-set on the status: of two analysts deciding at once, one wins.
    let changed = tx.execute(
        "UPDATE actions SET status = ?1, decided_at = ?2, decided_by_uid = ?3, decided_by_name = ?4,
           reason = ?5, approved_hash = CASE WHEN ?1 = 'approved' THEN call_hash END
         WHERE id = ?6 AND status = 'proposed'",
        params![status, now(), actor.uid, actor.name, reason, id],
    )?;
    if changed != 1 {
        return Err(DecisionError::NotPending {
            id,
            status: "decided".into(),
        });
    }
    audit::append(
        tx,
        Entry {
            actor,
            kind: if approve { "approval" } else { "rejection" },
            alert_id: row.alert_ids.first().copied(),
            action_id: Some(id),
            reason: Some(reason),
            detail: json!({
                "playbook": row.playbook, "step": row.step, "connector": row.connector,
                "rendered": row.rendered, "call_hash": row.call_hash, "alert_ids": row.alert_ids,
                "before": row.status, "after": status,
            }),
        },
    )?;
    action(tx, id)?.ok_or(DecisionError::NoSuchAction(id))
}

fn intent(tx: &Connection, id: i64, actor: &Actor) -> Result<ActionRow, DecisionError> {
    let row = action(tx, id)?.ok_or(DecisionError::NoSuchAction(id))?;
    if row.status != "approved" {
        return Err(DecisionError::NotPending {
            id,
            status: row.status,
        });
    }
    let recomputed = super::playbook::call_hash(&row.connector, &row.params);
    if row.approved_hash.as_deref() != Some(recomputed.as_str()) {
        tx.execute("UPDATE actions SET status = 'refused', outcome = 'call changed after approval' WHERE id = ?1", [id])?;
        audit::append(
            tx,
            Entry {
                actor,
                kind: "refused",
                alert_id: row.alert_ids.first().copied(),
                action_id: Some(id),
                reason: Some("the call changed after approval"),
                detail: json!({"approved_hash": row.approved_hash, "current_hash": recomputed}),
            },
        )?;
        return Err(DecisionError::NotPending {
            id,
            status: "refused: call changed after approval".into(),
        });
    }
    tx.execute(
        "UPDATE actions SET status = 'running' WHERE id = ?1 AND status = 'approved'",
        [id],
    )?;
    audit::append(
        tx,
        Entry {
            actor,
            kind: "execution_intent",
            alert_id: row.alert_ids.first().copied(),
            action_id: Some(id),
            reason: None,
            detail: json!({"connector": row.connector, "rendered": row.rendered, "call_hash": row.call_hash,
                       "idempotency_key": idempotency_key(&row), "before": "approved", "after": "running"}),
        },
    )?;
    action(tx, id)?.ok_or(DecisionError::NoSuchAction(id))
}

fn outcome(
    tx: &Connection,
    id: i64,
    ok: bool,
    detail: &str,
    actor: &Actor,
) -> Result<ActionRow, DecisionError> {
    let row = action(tx, id)?.ok_or(DecisionError::NoSuchAction(id))?;
    let status = if ok { "succeeded" } else { "failed" };
    tx.execute(
        "UPDATE actions SET status = ?1, outcome = ?2, finished_at = ?3 WHERE id = ?4 AND status = 'running'",
        params![status, detail, now(), id],
    )?;
    audit::append(
        tx,
        Entry {
            actor,
            kind: "outcome",
            alert_id: row.alert_ids.first().copied(),
            action_id: Some(id),
            reason: None,
            detail: json!({"ok": ok, "detail": detail, "before": row.status, "after": status}),
        },
    )?;
    action(tx, id)?.ok_or(DecisionError::NoSuchAction(id))
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

/// The key a connector passes on so a receiver can drop a repeated call.
pub fn idempotency_key(row: &ActionRow) -> String {
    format!(
        "vigil-{}-{}",
        row.id,
        &row.call_hash[..16.min(row.call_hash.len())]
    )
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub alerts: u64,
    pub quarantined: u64,
    pub pending_actions: u64,
    pub incidents: u64,
}

/// A proposed (or decided) response action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRow {
    pub id: i64,
    pub playbook: String,
    pub step: String,
    pub title: String,
    pub connector: String,
    pub params: serde_json::Map<String, Value>,
    pub rendered: String,
    pub call_hash: String,
    pub approval: ApprovalPolicy,
    pub status: String,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub approved_hash: Option<String>,
    pub outcome: Option<String>,
    pub alert_ids: Vec<i64>,
}

/// Everything the detail panes show for one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDetail {
    pub id: i64,
    pub alert: Alert,
    pub score: Score,
    pub incident_id: Option<i64>,
    pub incident_count: Option<u64>,
    pub actions: Vec<ActionRow>,
    /// The analyst's latest verdict, if any.
    #[serde(default)]
    pub disposition: Option<DispositionRow>,
}

/// Total counts.
///
/// # Errors
/// SQLite errors.
pub fn totals(conn: &Connection) -> rusqlite::Result<Totals> {
    conn.query_row(
        "SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM quarantine),
                (SELECT count(*) FROM actions WHERE status = 'proposed'), (SELECT count(*) FROM incidents)",
        [],
        |r| {
            Ok(Totals {
                alerts: r.get::<_, i64>(0)? as u64,
                quarantined: r.get::<_, i64>(1)? as u64,
                pending_actions: r.get::<_, i64>(2)? as u64,
                incidents: r.get::<_, i64>(3)? as u64,
            })
        },
    )
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

fn action(conn: &Connection, id: i64) -> rusqlite::Result<Option<ActionRow>> {
    let row = conn
        .query_row(
            "SELECT id, playbook, step, title, connector, params, rendered, call_hash, approval, status,
                    decided_by_name, reason, approved_hash, outcome
             FROM actions WHERE id = ?1",
            [id],
            action_from_row,
        )
        .optional()?;
    match row {
        Some(mut a) => {
            a.alert_ids = action_alerts(conn, id)?;
            Ok(Some(a))
        }
        None => Ok(None),
    }
}

fn action_alerts(conn: &Connection, id: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT alert_id FROM action_alerts WHERE action_id = ?1 ORDER BY alert_id",
    )?;
    let ids = stmt.query_map([id], |r| r.get(0))?;
    ids.collect()
}

fn action_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ActionRow> {
    let params: String = r.get(5)?;
    let approval: String = r.get(8)?;
    Ok(ActionRow {
        id: r.get(0)?,
        playbook: r.get(1)?,
        step: r.get(2)?,
        title: r.get(3)?,
        connector: r.get(4)?,
        params: serde_json::from_str(&params).unwrap_or_default(),
        rendered: r.get(6)?,
        call_hash: r.get(7)?,
        approval: serde_json::from_value(Value::String(approval)).unwrap_or_default(),
        status: r.get(9)?,
        decided_by: r.get(10)?,
        reason: r.get(11)?,
        approved_hash: r.get(12)?,
        outcome: r.get(13)?,
        alert_ids: Vec::new(),
    })
}

/// One action by id.
///
/// # Errors
/// SQLite errors.
pub fn action_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<ActionRow>> {
    action(conn, id)
}

/// Actions in a given status (or all), oldest first.
///
/// # Errors
/// SQLite errors.
pub fn actions(conn: &Connection, status: Option<&str>) -> rusqlite::Result<Vec<ActionRow>> {
    let mut stmt = conn.prepare(
        "SELECT id, playbook, step, title, connector, params, rendered, call_hash, approval, status,
                decided_by_name, reason, approved_hash, outcome
         FROM actions WHERE ?1 IS NULL OR status = ?1 ORDER BY id",
    )?;
    let rows: Vec<ActionRow> = stmt
        .query_map([status], action_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|mut a| {
            a.alert_ids = action_alerts(conn, a.id)?;
            Ok(a)
        })
        .collect()
}

/// The full record of one alert.
///
/// # Errors
/// SQLite errors.
pub fn alert_detail(conn: &Connection, id: i64) -> rusqlite::Result<Option<AlertDetail>> {
    let row = conn
        .query_row(
            "SELECT a.alert, a.score, a.incident_id, i.alert_count FROM alerts a
             LEFT JOIN incidents i ON i.id = a.incident_id WHERE a.id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((alert, score, incident_id, count)) = row else {
        return Ok(None);
    };
    let to_err = |e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    };
    let mut stmt = conn.prepare_cached(
        "SELECT x.id, x.playbook, x.step, x.title, x.connector, x.params, x.rendered, x.call_hash, x.approval,
                x.status, x.decided_by_name, x.reason, x.approved_hash, x.outcome
         FROM actions x JOIN action_alerts aa ON aa.action_id = x.id WHERE aa.alert_id = ?1 ORDER BY x.id",
    )?;
    let mut actions: Vec<ActionRow> = stmt
        .query_map([id], action_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for a in &mut actions {
        a.alert_ids = action_alerts(conn, a.id)?;
    }
    Ok(Some(AlertDetail {
        id,
        alert: serde_json::from_str(&alert).map_err(to_err)?,
        score: serde_json::from_str(&score).map_err(to_err)?,
        incident_id,
        incident_count: count.map(|c| c as u64),
        actions,
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
    let mut stmt =
        conn.prepare("SELECT id, alert, score, incident_id, fingerprint FROM alerts ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let alert: Alert = serde_json::from_str(&r.get::<_, String>(1)?)?;
        let score: Score = serde_json::from_str(&r.get::<_, String>(2)?)?;
        let incident: Option<i64> = r.get(3)?;
        let fp: String = r.get(4)?;
        f(ecs_document(id, &alert, &score, incident, &fp))?;
    }
    Ok(())
}

/// The export shape of one stored alert.
pub fn ecs_document(
    id: i64,
    alert: &Alert,
    score: &Score,
    incident: Option<i64>,
    fingerprint: &str,
) -> Value {
    let mut doc = alert.to_ecs();
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
