//! Response actions in the database: proposal, decisions by one or two analysts with expiry,
//! edits, the execution lease, outcomes, rollback, and the cancellations `on_error` asks for.
//! Every change is a compare-and-set on the action's status and appends its audit record in the
//! same transaction, so two processes deciding at once cannot both win and nothing happens
//! without its record. Runs only on the writer thread (the caller passes its transaction).

use super::super::audit::{self, Entry};
use super::super::connector::{unbound_call_hash, Resolved};
use super::super::playbook::{ApprovalPolicy, OnError, ProposedAction, RenderedCall, Retry};
use crate::identity::Actor;
use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One analyst's approval of one exact call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub uid: u32,
    pub name: String,
    pub host: String,
    pub at: String,
    pub reason: String,
    pub call_hash: String,
}

/// A proposed (or decided) response action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRow {
    pub id: i64,
    pub playbook: String,
    pub step: String,
    pub step_index: u32,
    pub title: String,
    pub connector: String,
    pub params: Map<String, Value>,
    pub rendered: String,
    /// Where the call takes effect, as resolved when it was proposed (or last edited); absent
    /// for proposals made before approvals named their destination.
    pub destination: Option<String>,
    pub call_hash: String,
    pub approval: ApprovalPolicy,
    pub status: String,
    pub approvals: Vec<ApprovalRecord>,
    /// When the current approval lapses if the action has not started by then.
    pub approved_until: Option<String>,
    pub proposer_uid: Option<u32>,
    /// The last analyst to decide, and why.
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub approved_hash: Option<String>,
    pub outcome: Option<String>,
    pub retry: Retry,
    pub timeout_seconds: u64,
    pub on_error: OnError,
    pub rollback: Option<RenderedCall>,
    pub revert_at: Option<String>,
    pub escalated: bool,
    /// Who holds (or last held) the execution lease: `name@host:pid`.
    pub runner: Option<String>,
    pub alert_ids: Vec<i64>,
}

/// How the process about to run a call resolves it now, against its own configuration: the
/// connector's `resolve`, passed in so the rules here need no connector.
pub type Resolve<'a> = &'a (dyn Fn(&str, &Map<String, Value>) -> Result<Resolved, String> + Sync);

/// Why a change to an action was refused.
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
    #[error("two-person rule: {0}")]
    TwoPerson(String),
    #[error("action {0}: the approval expired before it ran; approve it again")]
    Expired(i64),
    #[error("action {id}: the call changed after approval; it was not run. Approved: {approved}; now it would be: {now}")]
    Changed {
        id: i64,
        approved: String,
        now: String,
    },
    #[error("action {id}: {why}")]
    Refused { id: i64, why: String },
    /// Another live process holds the action's execution lease: it runs there, not here.
    #[error("action {id} is being run by another process: {holder} holds its execution lease")]
    Leased { id: i64, holder: String },
    #[error("database: {0}")]
    Db(String),
}

impl From<rusqlite::Error> for DecisionError {
    fn from(e: rusqlite::Error) -> Self {
        DecisionError::Db(e.to_string())
    }
}

const COLUMNS: &str = "id, playbook, step, title, connector, params, rendered, call_hash, approval, status,
    decided_by_name, reason, approved_hash, outcome, step_index, approvals, approved_until, proposer_uid,
    retry, timeout_seconds, on_error, rollback, revert_at, escalated, destination, runner";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ActionRow> {
    let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    let opt = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
    Ok(ActionRow {
        id: r.get(0)?,
        playbook: text(1)?,
        step: text(2)?,
        title: text(3)?,
        connector: text(4)?,
        params: serde_json::from_str(&text(5)?).unwrap_or_default(),
        rendered: text(6)?,
        call_hash: text(7)?,
        approval: serde_json::from_value(Value::String(text(8)?)).unwrap_or_default(),
        status: text(9)?,
        decided_by: opt(10)?,
        reason: opt(11)?,
        approved_hash: opt(12)?,
        outcome: opt(13)?,
        step_index: r.get::<_, i64>(14)? as u32,
        approvals: serde_json::from_str(&text(15)?).unwrap_or_default(),
        approved_until: opt(16)?,
        proposer_uid: r.get::<_, Option<i64>>(17)?.map(|u| u as u32),
        retry: serde_json::from_str(&text(18)?).unwrap_or_default(),
        timeout_seconds: r.get::<_, i64>(19)? as u64,
        on_error: serde_json::from_value(Value::String(text(20)?)).unwrap_or_default(),
        rollback: opt(21)?.and_then(|s| serde_json::from_str(&s).ok()),
        revert_at: opt(22)?,
        escalated: r.get::<_, i64>(23)? != 0,
        destination: opt(24)?,
        runner: opt(25)?,
        alert_ids: Vec::new(),
    })
}

fn alert_ids(conn: &Connection, id: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT alert_id FROM action_alerts WHERE action_id = ?1 ORDER BY alert_id",
    )?;
    let ids = stmt.query_map([id], |r| r.get(0))?;
    ids.collect()
}

/// One action by id.
///
/// # Errors
/// SQLite errors.
pub fn action(conn: &Connection, id: i64) -> rusqlite::Result<Option<ActionRow>> {
    let row = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM actions WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?;
    match row {
        Some(mut a) => {
            a.alert_ids = alert_ids(conn, id)?;
            Ok(Some(a))
        }
        None => Ok(None),
    }
}

/// Actions in a given status (or all), oldest first.
///
/// # Errors
/// SQLite errors.
pub fn actions(conn: &Connection, status: Option<&str>) -> rusqlite::Result<Vec<ActionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM actions WHERE ?1 IS NULL OR status = ?1 ORDER BY id"
    ))?;
    let rows: Vec<ActionRow> = stmt
        .query_map([status], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    with_alerts(conn, rows)
}

fn with_alerts(conn: &Connection, rows: Vec<ActionRow>) -> rusqlite::Result<Vec<ActionRow>> {
    rows.into_iter()
        .map(|mut a| {
            a.alert_ids = alert_ids(conn, a.id)?;
            Ok(a)
        })
        .collect()
}

/// The actions proposed for one alert.
///
/// # Errors
/// SQLite errors.
pub fn for_alert(conn: &Connection, alert_id: i64) -> rusqlite::Result<Vec<ActionRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM actions WHERE id IN (SELECT action_id FROM action_alerts WHERE alert_id = ?1) ORDER BY id"
    ))?;
    let rows: Vec<ActionRow> = stmt
        .query_map([alert_id], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    with_alerts(conn, rows)
}

/// Approved actions waiting to run, and succeeded ones whose automatic revert is due.
///
/// # Errors
/// SQLite errors.
pub fn due(conn: &Connection) -> rusqlite::Result<(Vec<i64>, Vec<i64>)> {
    let approved: Vec<i64> = conn
        .prepare_cached("SELECT id FROM actions WHERE status = 'approved' ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let reverts: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM actions WHERE status = 'succeeded' AND revert_at IS NOT NULL AND revert_at <= ?1 ORDER BY id",
        )?
        .query_map([ts(now())], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((approved, reverts))
}

/// When the next automatic revert falls due, if any.
///
/// # Errors
/// SQLite errors.
pub fn next_revert(conn: &Connection) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let at: Option<String> = conn.query_row(
        "SELECT min(revert_at) FROM actions WHERE status = 'succeeded' AND revert_at IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(at.and_then(|a| super::super::normalize::parse_timestamp(&a)))
}

/// The key a connector passes on so a receiver can drop a repeated call.
pub fn idempotency_key(row: &ActionRow) -> String {
    format!(
        "vigil-{}-{}",
        row.id,
        &row.call_hash[..16.min(row.call_hash.len())]
    )
}

fn must(conn: &Connection, id: i64) -> Result<ActionRow, DecisionError> {
    action(conn, id)?.ok_or(DecisionError::NoSuchAction(id))
}

fn record(
    conn: &Connection,
    actor: &Actor,
    row: &ActionRow,
    kind: &str,
    reason: Option<&str>,
    detail: Value,
) -> rusqlite::Result<()> {
    audit::append(
        conn,
        Entry {
            actor,
            kind,
            alert_id: row.alert_ids.first().copied(),
            action_id: Some(row.id),
            reason,
            detail,
        },
    )?;
    Ok(())
}

/// Change the status from `from` to `to` (and whatever else `set` names), or fail when someone
/// else changed it first.
fn transition(
    conn: &Connection,
    id: i64,
    from: &str,
    to: &str,
    set: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<(), DecisionError> {
    let sql = format!("UPDATE actions SET status = ?1{set} WHERE id = ?2 AND status = ?3");
    let mut all: Vec<&dyn rusqlite::ToSql> = vec![&to, &id, &from];
    all.extend_from_slice(args);
    let changed = conn.execute(&sql, all.as_slice())?;
    if changed != 1 {
        let now_status = action(conn, id)?.map(|a| a.status).unwrap_or_default();
        return Err(DecisionError::NotPending {
            id,
            status: now_status,
        });
    }
    Ok(())
}

/// Store a proposal (or link an identical pending one to this alert). An `auto` step is
/// approved on the spot by the proposing process.
///
/// # Errors
/// SQLite errors.
pub fn propose(
    conn: &Connection,
    p: &ProposedAction,
    alert_id: i64,
    actor: &Actor,
) -> rusqlite::Result<()> {
    let at = ts(now());
    let auto = p.approval == ApprovalPolicy::Auto;
    let approvals = if auto {
        vec![ApprovalRecord {
            uid: actor.uid,
            name: actor.name.clone(),
            host: actor.host.clone(),
            at: at.clone(),
            reason: "auto: the playbook step needs no analyst".into(),
            call_hash: p.call_hash.clone(),
        }]
    } else {
        Vec::new()
    };
    let until =
        auto.then(|| ts(now() + ChronoDuration::seconds(p.approval_expires_seconds as i64)));
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO actions (playbook, step, title, connector, params, rendered, call_hash,
               approval, status, created_at, step_index, approvals, approved_until, approved_hash, proposer_uid,
               expires_seconds, retry, timeout_seconds, on_error, rollback, revert_after_seconds, destination)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
        )?
        .execute(params![
            p.playbook,
            p.step,
            p.title,
            p.connector,
            Value::Object(p.params.clone()).to_string(),
            p.rendered,
            p.call_hash,
            p.approval.as_str(),
            if auto { "approved" } else { "proposed" },
            at,
            p.step_index,
            serde_json::to_string(&approvals).unwrap_or_else(|_| "[]".into()),
            until,
            auto.then_some(p.call_hash.as_str()),
            actor.uid,
            p.approval_expires_seconds as i64,
            serde_json::to_string(&p.retry).unwrap_or_default(),
            p.timeout_seconds as i64,
            p.on_error.as_str(),
            p.rollback.as_ref().map(|r| serde_json::to_string(r).unwrap_or_default()),
            p.revert_after_seconds.map(|s| s as i64),
            p.destination,
        ])?;
    let action_id: i64 = conn
        .prepare_cached(
            "SELECT id FROM actions WHERE playbook = ?1 AND step = ?2 AND call_hash = ?3",
        )?
        .query_row(params![p.playbook, p.step, p.call_hash], |r| r.get(0))?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO action_alerts (action_id, alert_id) VALUES (?1, ?2)",
    )?
    .execute(params![action_id, alert_id])?;
    if inserted == 1 {
        audit::append(
            conn,
            Entry {
                actor,
                kind: "proposal",
                alert_id: Some(alert_id),
                action_id: Some(action_id),
                reason: None,
                detail: json!({
                    "playbook": p.playbook, "step": p.step, "connector": p.connector,
                    "rendered": p.rendered, "destination": p.destination, "call_hash": p.call_hash,
                    "approval": p.approval.as_str(),
                    "rollback": p.rollback.as_ref().map(|r| &r.rendered),
                    "after": if auto { "approved" } else { "proposed" },
                }),
            },
        )?;
    }
    Ok(())
}

/// The checks every analyst decision on a proposal starts with: a reason was given and the
/// action is still waiting for a decision.
fn pending_with_reason(
    conn: &Connection,
    id: i64,
    reason: &str,
) -> Result<ActionRow, DecisionError> {
    if reason.trim().is_empty() {
        return Err(DecisionError::NoReason);
    }
    let row = must(conn, id)?;
    if row.status != "proposed" && row.status != "awaiting_second" {
        return Err(DecisionError::NotPending {
            id,
            status: row.status,
        });
    }
    Ok(row)
}

/// Run one analyst decision; when it is refused, append a `decision_refused` record naming who
/// asked for what and why it was refused (in the same transaction, which the writer keeps for
/// every refusal but a database error). Refusals that change the action record themselves.
fn recording_refusal(
    conn: &Connection,
    id: i64,
    decision: &str,
    reason: &str,
    actor: &Actor,
    f: impl FnOnce() -> Result<ActionRow, DecisionError>,
) -> Result<ActionRow, DecisionError> {
    let result = f();
    let recorded_elsewhere = matches!(
        result,
        Ok(_) | Err(DecisionError::Db(_)) | Err(DecisionError::Expired(_))
    );
    if recorded_elsewhere {
        return result;
    }
    let why = result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    let row = action(conn, id)?;
    audit::append(
        conn,
        Entry {
            actor,
            kind: "decision_refused",
            alert_id: row.as_ref().and_then(|r| r.alert_ids.first().copied()),
            action_id: Some(id),
            reason: Some(&why),
            detail: json!({
                "decision": decision,
                "reason_given": reason,
                "status": row.as_ref().map(|r| r.status.as_str()),
                "call_hash": row.as_ref().map(|r| r.call_hash.as_str()),
            }),
        },
    )?;
    result
}

/// Record an analyst's approval or rejection.
///
/// One-analyst steps are approved by the first approval. Two-analyst steps need a second
/// approval from a different uid that is neither the first approver nor the proposer; the first
/// approval lapses after the step's expiry. Both approvals bind to the same call hash.
///
/// # Errors
/// Missing reason, wrong state, two-person violations, lapsed approvals, races lost.
pub fn decide(
    conn: &Connection,
    id: i64,
    approve: bool,
    reason: &str,
    actor: &Actor,
) -> Result<ActionRow, DecisionError> {
    let decision = if approve { "approve" } else { "reject" };
    recording_refusal(conn, id, decision, reason, actor, || {
        decide_or_refuse(conn, id, approve, reason, actor)
    })
}

fn decide_or_refuse(
    conn: &Connection,
    id: i64,
    approve: bool,
    reason: &str,
    actor: &Actor,
) -> Result<ActionRow, DecisionError> {
    let row = pending_with_reason(conn, id, reason)?;
    let t = now();
    if !approve {
        transition(
            conn,
            id,
            &row.status,
            "rejected",
            ", decided_at = ?4, decided_by_uid = ?5, decided_by_name = ?6, reason = ?7",
            &[&ts(t), &actor.uid, &actor.name, &reason],
        )?;
        record(
            conn,
            actor,
            &row,
            "rejection",
            Some(reason),
            json!({
                "playbook": row.playbook, "step": row.step, "rendered": row.rendered, "call_hash": row.call_hash,
                "alert_ids": row.alert_ids, "before": row.status, "after": "rejected",
            }),
        )?;
        return must(conn, id);
    }
    if row.status == "awaiting_second"
        && row
            .approved_until
            .as_deref()
            .is_some_and(|u| u < ts(t).as_str())
    {
        // The first approval lapsed: the action needs two fresh approvals.
        transition(
            conn,
            id,
            "awaiting_second",
            "proposed",
            ", approvals = '[]', approved_until = NULL",
            &[],
        )?;
        record(
            conn,
            actor,
            &row,
            "approval_expired",
            None,
            json!({"before": "awaiting_second", "after": "proposed", "approvals": row.approvals}),
        )?;
        return Err(DecisionError::Expired(id));
    }
    let two = row.approval == ApprovalPolicy::TwoAnalysts;
    if two && row.status == "awaiting_second" {
        let first = row.approvals.first();
        if first.is_some_and(|a| a.uid == actor.uid) {
            return Err(DecisionError::TwoPerson(format!(
                "{} (uid {}) gave the first approval; a second, different analyst must approve",
                actor.name, actor.uid
            )));
        }
        if row.proposer_uid == Some(actor.uid) {
            return Err(DecisionError::TwoPerson(format!(
                "{} (uid {}) proposed this action and cannot give the second approval",
                actor.name, actor.uid
            )));
        }
        if first.is_some_and(|a| a.call_hash != row.call_hash) {
            return Err(DecisionError::Refused {
                id,
                why: "the first approval was for another call; approve it again".into(),
            });
        }
    }
    let mut approvals = row.approvals.clone();
    approvals.push(ApprovalRecord {
        uid: actor.uid,
        name: actor.name.clone(),
        host: actor.host.clone(),
        at: ts(t),
        reason: reason.to_string(),
        call_hash: row.call_hash.clone(),
    });
    let approvals_json = serde_json::to_string(&approvals).unwrap_or_else(|_| "[]".into());
    let complete = !two || approvals.len() >= 2;
    let (after, until) = if complete {
        (
            "approved",
            ts(t + ChronoDuration::seconds(expiry_seconds(conn, id)?)),
        )
    } else {
        (
            "awaiting_second",
            ts(t + ChronoDuration::seconds(expiry_seconds(conn, id)?)),
        )
    };
    transition(
        conn,
        id,
        &row.status,
        after,
        ", decided_at = ?4, decided_by_uid = ?5, decided_by_name = ?6, reason = ?7, approvals = ?8, approved_until = ?9,
           approved_hash = CASE WHEN ?1 = 'approved' THEN call_hash END",
        &[&ts(t), &actor.uid, &actor.name, &reason, &approvals_json, &until],
    )?;
    record(
        conn,
        actor,
        &row,
        "approval",
        Some(reason),
        json!({
            "playbook": row.playbook, "step": row.step, "connector": row.connector, "rendered": row.rendered,
            "destination": row.destination, "call_hash": row.call_hash, "alert_ids": row.alert_ids,
            "policy": row.approval.as_str(),
            "approval_number": approvals.len(), "approved_until": until, "before": row.status, "after": after,
        }),
    )?;
    must(conn, id)
}

fn expiry_seconds(conn: &Connection, id: i64) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT expires_seconds FROM actions WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
}

/// Replace a pending action's params before approving it. The connector resolved the new call
/// (the caller passes it); every earlier approval is void.
///
/// # Errors
/// Missing reason, wrong state, or a call identical to another proposal of the same step.
pub fn edit(
    conn: &Connection,
    id: i64,
    params: &Map<String, Value>,
    resolved: &Resolved,
    reason: &str,
    actor: &Actor,
) -> Result<ActionRow, DecisionError> {
    recording_refusal(conn, id, "edit", reason, actor, || {
        edit_or_refuse(conn, id, params, resolved, reason, actor)
    })
}

fn edit_or_refuse(
    conn: &Connection,
    id: i64,
    params: &Map<String, Value>,
    resolved: &Resolved,
    reason: &str,
    actor: &Actor,
) -> Result<ActionRow, DecisionError> {
    let row = pending_with_reason(conn, id, reason)?;
    let (rendered, hash) = (&resolved.rendered, &resolved.call_hash);
    transition(
        conn,
        id,
        &row.status,
        "proposed",
        ", params = ?4, rendered = ?5, call_hash = ?6, destination = ?7, approvals = '[]', approved_until = NULL,
           approved_hash = NULL",
        &[
            &Value::Object(params.clone()).to_string(),
            rendered,
            hash,
            &resolved.destination,
        ],
    )
    .map_err(|e| match e {
        DecisionError::Db(m) if m.contains("UNIQUE") => DecisionError::Refused {
            id,
            why: "the edited call is identical to another proposal of this step".into(),
        },
        other => other,
    })?;
    record(
        conn,
        actor,
        &row,
        "edit",
        Some(reason),
        json!({
            "before": {"params": row.params, "rendered": row.rendered, "destination": row.destination,
                       "call_hash": row.call_hash, "status": row.status},
            "after": {"params": params, "rendered": rendered, "destination": resolved.destination,
                      "call_hash": hash, "status": "proposed"},
        }),
    )?;
    must(conn, id)
}

/// Take the execution lease: an approved action whose approval has not lapsed, and whose call
/// as the running process resolves it now (`resolve`: its configuration, its destination) is
/// the call that was approved, becomes `running`, owned by `runner`. The intent is recorded
/// before the call is made. A refusal is recorded with why.
///
/// # Errors
/// Not approved, lapsed, changed (params or destination), not bound to a destination (an
/// approval from an earlier version: it must be given again), or already taken by another
/// process.
pub fn begin(
    conn: &Connection,
    id: i64,
    actor: &Actor,
    runner: &str,
    resolve: Resolve<'_>,
) -> Result<ActionRow, DecisionError> {
    let row = must(conn, id)?;
    if row.status != "approved" {
        return Err(DecisionError::NotPending {
            id,
            status: row.status,
        });
    }
    if row
        .approved_until
        .as_deref()
        .is_some_and(|u| u < ts(now()).as_str())
    {
        transition(conn, id, "approved", "expired", "", &[])?;
        record(
            conn,
            actor,
            &row,
            "approval_expired",
            None,
            json!({"before": "approved", "after": "expired"}),
        )?;
        return Err(DecisionError::Expired(id));
    }
    let now = match resolve(&row.connector, &row.params) {
        Ok(r) => r,
        Err(e) => {
            let why = format!("the approved call can no longer be made here: {e}");
            refuse_run(conn, actor, &row, &why, json!({"approved": row.rendered}))?;
            return Err(DecisionError::Refused { id, why });
        }
    };
    if row.approved_hash.as_deref() == Some(unbound_call_hash(&row.connector, &row.params).as_str())
    {
        return Err(ask_again(conn, actor, &row, &now));
    }
    let bound = row.approved_hash.as_deref() == Some(now.call_hash.as_str())
        && row.approvals.iter().all(|a| a.call_hash == now.call_hash);
    if !bound {
        refuse_run(
            conn,
            actor,
            &row,
            &format!(
                "the call changed after approval; nothing was run (approved: {}; now it would be: {})",
                row.rendered, now.rendered
            ),
            json!({
                "approved": {"rendered": row.rendered, "destination": row.destination, "call_hash": row.approved_hash},
                "now": {"rendered": now.rendered, "destination": now.destination, "call_hash": now.call_hash},
            }),
        )?;
        return Err(DecisionError::Changed {
            id,
            approved: row.rendered,
            now: now.rendered,
        });
    }
    transition(conn, id, "approved", "running", ", runner = ?4", &[&runner])?;
    record(
        conn,
        actor,
        &row,
        "execution_intent",
        None,
        json!({
            "connector": row.connector, "rendered": row.rendered, "destination": row.destination,
            "call_hash": row.call_hash, "idempotency_key": idempotency_key(&row), "runner": runner,
            "before": "approved", "after": "running",
        }),
    )?;
    must(conn, id)
}

/// An approved action that will not run: `refused`, with `outcome` saying why, and its record.
/// The audit reason is the first clause of `outcome` (what happened; the detail says how).
fn refuse_run(
    conn: &Connection,
    actor: &Actor,
    row: &ActionRow,
    outcome: &str,
    mut detail: Value,
) -> Result<(), DecisionError> {
    transition(
        conn,
        row.id,
        "approved",
        "refused",
        ", outcome = ?4",
        &[&outcome],
    )?;
    let reason = outcome.split(';').next().unwrap_or(outcome);
    if let Value::Object(m) = &mut detail {
        m.insert("before".into(), json!("approved"));
        m.insert("after".into(), json!("refused"));
        m.insert("outcome".into(), json!(outcome));
    }
    record(conn, actor, row, "refused", Some(reason), detail)?;
    Ok(())
}

/// An approval given before approvals named their destination: it does not say where the
/// approver agreed the call should go, so it is not run. The action goes back to `proposed`,
/// shown and bound as this process resolves it, for an analyst to approve again.
fn ask_again(conn: &Connection, actor: &Actor, row: &ActionRow, now: &Resolved) -> DecisionError {
    const WHY: &str = "re-approve: call not bound to a destination";
    let id = row.id;
    let back = transition(
        conn,
        id,
        "approved",
        "proposed",
        ", call_hash = ?4, rendered = ?5, destination = ?6, outcome = ?7, approvals = '[]',
           approved_until = NULL, approved_hash = NULL",
        &[&now.call_hash, &now.rendered, &now.destination, &WHY],
    );
    let detail = json!({
        "approved": {"rendered": row.rendered, "call_hash": row.approved_hash},
        "now": {"rendered": now.rendered, "destination": now.destination, "call_hash": now.call_hash},
    });
    let recorded = match back {
        Ok(()) => {
            let mut d = detail;
            if let Value::Object(m) = &mut d {
                m.insert("before".into(), json!("approved"));
                m.insert("after".into(), json!("proposed"));
            }
            record(conn, actor, row, "refused", Some(WHY), d).map_err(DecisionError::from)
        }
        // The same call is already proposed again as its own action: this one ends here.
        Err(DecisionError::Db(m)) if m.contains("UNIQUE") => {
            refuse_run(conn, actor, row, WHY, detail)
        }
        Err(e) => Err(e),
    };
    match recorded {
        Ok(()) => DecisionError::Refused {
            id,
            why: format!("{WHY}; it is now shown as: {}", now.rendered),
        },
        Err(e) => e,
    }
}

/// A failed attempt that will be retried.
///
/// # Errors
/// SQLite errors.
pub fn attempt_failed(
    conn: &Connection,
    id: i64,
    attempt: u32,
    detail: &str,
    actor: &Actor,
) -> Result<ActionRow, DecisionError> {
    let row = must(conn, id)?;
    record(
        conn,
        actor,
        &row,
        "attempt_failed",
        None,
        json!({"attempt": attempt, "detail": detail}),
    )?;
    Ok(row)
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Succeeded,
    Failed,
    /// The call may or may not have taken effect (a timeout, a crash mid-call).
    Unknown,
}

impl Ending {
    fn status(self, rollback: bool) -> &'static str {
        match (self, rollback) {
            (Ending::Succeeded, false) => "succeeded",
            (Ending::Failed, false) => "failed",
            (Ending::Unknown, false) => "unknown",
            (Ending::Succeeded, true) => "rolled_back",
            (Ending::Failed, true) => "rollback_failed",
            (Ending::Unknown, true) => "rollback_unknown",
        }
    }
}

/// Record how a running action ended. A success schedules its automatic revert; a failure
/// applies the step's `on_error`.
///
/// # Errors
/// Not running.
pub fn finish(
    conn: &Connection,
    id: i64,
    ending: Ending,
    detail: &str,
    actor: &Actor,
) -> Result<ActionRow, DecisionError> {
    let row = must(conn, id)?;
    let status = ending.status(false);
    let revert_after: Option<i64> = conn.query_row(
        "SELECT revert_after_seconds FROM actions WHERE id = ?1",
        [id],
        |r| r.get(0),
    )?;
    let revert_at = (ending == Ending::Succeeded && row.rollback.is_some())
        .then_some(revert_after)
        .flatten()
        .map(|s| ts(now() + ChronoDuration::seconds(s)));
    transition(
        conn,
        id,
        "running",
        status,
        ", outcome = ?4, finished_at = ?5, revert_at = ?6",
        &[&detail, &ts(now()), &revert_at],
    )?;
    record(
        conn,
        actor,
        &row,
        "outcome",
        None,
        json!({
            "ending": ending, "detail": detail, "revert_at": revert_at, "before": "running", "after": status,
        }),
    )?;
    if ending == Ending::Failed && row.on_error != OnError::Continue {
        cancel_later_steps(conn, &row, actor)?;
        if row.on_error == OnError::Escalate {
            conn.execute("UPDATE actions SET escalated = 1 WHERE id = ?1", [id])?;
            record(
                conn,
                actor,
                &row,
                "escalation",
                Some("the step failed and its playbook escalates"),
                json!({"detail": detail}),
            )?;
        }
    }
    must(conn, id)
}

/// `on_error: stop`: the playbook's later steps for the same alerts that have not run are
/// cancelled, each with its own record.
fn cancel_later_steps(
    conn: &Connection,
    failed: &ActionRow,
    actor: &Actor,
) -> rusqlite::Result<()> {
    let ids: Vec<i64> = {
        let mut stmt = conn.prepare(
            "SELECT DISTINCT x.id FROM actions x JOIN action_alerts aa ON aa.action_id = x.id
             WHERE x.playbook = ?1 AND x.step_index > ?2 AND x.status IN ('proposed', 'awaiting_second', 'approved')
               AND aa.alert_id IN (SELECT alert_id FROM action_alerts WHERE action_id = ?3)",
        )?;
        let r = stmt.query_map(
            params![failed.playbook, failed.step_index, failed.id],
            |r| r.get(0),
        )?;
        r.collect::<rusqlite::Result<_>>()?
    };
    for id in ids {
        if let Some(row) = action(conn, id)? {
            let n = conn.execute(
                "UPDATE actions SET status = 'cancelled', outcome = ?2 WHERE id = ?1 AND status = ?3",
                params![id, format!("cancelled: step {} failed", failed.step), row.status],
            )?;
            if n == 1 {
                record(
                    conn,
                    actor,
                    &row,
                    "cancellation",
                    Some("an earlier step of the playbook failed"),
                    json!({
                        "failed_action": failed.id, "before": row.status, "after": "cancelled",
                    }),
                )?;
            }
        }
    }
    Ok(())
}

/// Start undoing a succeeded action (by an analyst, or automatically when its revert is due).
/// The rollback call is the one rendered and shown with the proposal.
///
/// # Errors
/// No rollback defined, wrong state, the rollback call changed (params or destination), or no
/// reason.
pub fn begin_rollback(
    conn: &Connection,
    id: i64,
    reason: &str,
    actor: &Actor,
    runner: &str,
    resolve: Resolve<'_>,
) -> Result<ActionRow, DecisionError> {
    recording_refusal(conn, id, "rollback", reason, actor, || {
        rollback_or_refuse(conn, id, reason, actor, runner, resolve)
    })
}

fn rollback_or_refuse(
    conn: &Connection,
    id: i64,
    reason: &str,
    actor: &Actor,
    runner: &str,
    resolve: Resolve<'_>,
) -> Result<ActionRow, DecisionError> {
    if reason.trim().is_empty() {
        return Err(DecisionError::NoReason);
    }
    let row = must(conn, id)?;
    let Some(rb) = &row.rollback else {
        return Err(DecisionError::Refused {
            id,
            why: "its playbook step defines no rollback".into(),
        });
    };
    if row.status != "succeeded" {
        return Err(DecisionError::Refused {
            id,
            why: format!(
                "only a succeeded action can be rolled back; it is {}",
                row.status
            ),
        });
    }
    let now = resolve(&rb.connector, &rb.params).map_err(|e| DecisionError::Refused {
        id,
        why: format!("the rollback call can no longer be made here: {e}"),
    })?;
    // A rollback stored by an earlier version has no destination in its hash; the text shown
    // with the proposal named it, so that is what must still match.
    let same = if rb.call_hash == unbound_call_hash(&rb.connector, &rb.params) {
        now.rendered == rb.rendered
    } else {
        now.call_hash == rb.call_hash
    };
    if !same {
        return Err(DecisionError::Changed {
            id,
            approved: rb.rendered.clone(),
            now: now.rendered,
        });
    }
    transition(
        conn,
        id,
        "succeeded",
        "rolling_back",
        ", runner = ?4, revert_at = NULL",
        &[&runner],
    )?;
    record(
        conn,
        actor,
        &row,
        "rollback_intent",
        Some(reason),
        json!({
            "connector": rb.connector, "rendered": rb.rendered, "call_hash": rb.call_hash,
            "idempotency_key": format!("{}-rollback", idempotency_key(&row)), "before": "succeeded", "after": "rolling_back",
        }),
    )?;
    must(conn, id)
}

/// Record how a rollback ended.
///
/// # Errors
/// Not rolling back.
pub fn finish_rollback(
    conn: &Connection,
    id: i64,
    ending: Ending,
    detail: &str,
    actor: &Actor,
) -> Result<ActionRow, DecisionError> {
    let row = must(conn, id)?;
    let status = ending.status(true);
    transition(
        conn,
        id,
        "rolling_back",
        status,
        ", outcome = ?4",
        &[&format!("rollback: {detail}")],
    )?;
    record(
        conn,
        actor,
        &row,
        "rollback_outcome",
        None,
        json!({"ending": ending, "detail": detail, "before": "rolling_back", "after": status}),
    )?;
    must(conn, id)
}

/// After a crash: actions whose runner died mid-call have an unknown outcome. They are never
/// retried blindly; the analyst decides. `alive(id, runner)` says whether a live process still
/// holds the action (its execution lease); those are left alone.
///
/// # Errors
/// SQLite errors.
pub fn recover(
    conn: &Connection,
    actor: &Actor,
    alive: &dyn Fn(i64, &str) -> bool,
) -> rusqlite::Result<Vec<i64>> {
    let stuck: Vec<(i64, String, Option<String>)> = {
        let mut stmt = conn.prepare(
            "SELECT id, status, runner FROM actions WHERE status IN ('running', 'rolling_back')",
        )?;
        let r = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        r.collect::<rusqlite::Result<_>>()?
    };
    let mut marked = Vec::new();
    for (id, status, runner) in stuck {
        let runner = runner.unwrap_or_default();
        if alive(id, &runner) {
            continue;
        }
        let Some(row) = action(conn, id)? else {
            continue;
        };
        let to = if status == "running" {
            "unknown"
        } else {
            "rollback_unknown"
        };
        let n = conn.execute(
            "UPDATE actions SET status = ?2, outcome = ?3 WHERE id = ?1 AND status = ?4",
            params![
                id,
                to,
                format!("outcome unknown: {runner} stopped while the call was in progress"),
                status
            ],
        )?;
        if n == 1 {
            record(
                conn,
                actor,
                &row,
                "outcome_unknown",
                Some("the process running it stopped mid-call"),
                json!({
                    "runner": runner, "before": status, "after": to,
                }),
            )?;
            marked.push(id);
        }
    }
    Ok(marked)
}

/// Lapse old approvals: a first approval of a two-analyst step past its expiry returns to
/// `proposed`; an approved action that has not started by its expiry becomes `expired`.
///
/// # Errors
/// SQLite errors.
pub fn sweep(conn: &Connection, actor: &Actor) -> rusqlite::Result<usize> {
    let t = ts(now());
    let lapsed: Vec<(i64, String)> = {
        let mut stmt = conn.prepare(
            "SELECT id, status FROM actions WHERE status IN ('awaiting_second', 'approved')
             AND approved_until IS NOT NULL AND approved_until < ?1",
        )?;
        let r = stmt.query_map([&t], |r| Ok((r.get(0)?, r.get(1)?)))?;
        r.collect::<rusqlite::Result<_>>()?
    };
    let mut n = 0;
    for (id, status) in lapsed {
        let Some(row) = action(conn, id)? else {
            continue;
        };
        let (to, set) = if status == "awaiting_second" {
            ("proposed", ", approvals = '[]', approved_until = NULL")
        } else {
            ("expired", "")
        };
        if transition(conn, id, &status, to, set, &[]).is_ok() {
            record(
                conn,
                actor,
                &row,
                "approval_expired",
                None,
                json!({"before": status, "after": to}),
            )?;
            n += 1;
        }
    }
    Ok(n)
}
