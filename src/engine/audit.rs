//! The audit trail: an append-only hash chain in SQLite. Owns record hashing, appending (inside
//! the caller's transaction, so a record commits with what it describes) and verification.
//! Each record's hash covers its fields and the previous record's hash, so editing, deleting or
//! reordering any record breaks every hash after it.

use super::alert::{canonical_json, sha256_hex};
use crate::identity::Actor;
use chrono::{SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub ts: String,
    pub actor_uid: u32,
    pub actor_name: String,
    pub host: String,
    /// What happened: `approval`, `rejection`, `execution_intent`, `outcome`, `ingest_batch`, ...
    pub kind: String,
    pub alert_id: Option<i64>,
    pub action_id: Option<i64>,
    pub reason: Option<String>,
    pub detail: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// SHA-256 over the canonical JSON of every field but `hash`.
    pub fn compute_hash(&self) -> String {
        let doc = serde_json::json!({
            "seq": self.seq, "ts": self.ts, "actor_uid": self.actor_uid,
            "actor_name": self.actor_name, "host": self.host, "kind": self.kind,
            "alert_id": self.alert_id, "action_id": self.action_id, "reason": self.reason,
            "detail": self.detail, "prev_hash": self.prev_hash,
        });
        sha256_hex(canonical_json(&doc).as_bytes())
    }
}

/// What to record; the chain fields are filled in by `append`.
pub struct Entry<'a> {
    pub actor: &'a Actor,
    pub kind: &'a str,
    pub alert_id: Option<i64>,
    pub action_id: Option<i64>,
    pub reason: Option<&'a str>,
    pub detail: Value,
}

/// Append a record inside the caller's open transaction.
///
/// # Errors
/// SQLite errors.
pub fn append(conn: &Connection, e: Entry<'_>) -> rusqlite::Result<AuditRecord> {
    let head: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev_hash) = match head {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let mut rec = AuditRecord {
        seq,
        ts: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        actor_uid: e.actor.uid,
        actor_name: e.actor.name.clone(),
        host: e.actor.host.clone(),
        kind: e.kind.to_string(),
        alert_id: e.alert_id,
        action_id: e.action_id,
        reason: e.reason.map(str::to_string),
        detail: e.detail,
        prev_hash,
        hash: String::new(),
    };
    rec.hash = rec.compute_hash();
    conn.execute(
        "INSERT INTO audit (seq, ts, actor_uid, actor_name, host, kind, alert_id, action_id, reason, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            rec.seq, rec.ts, rec.actor_uid, rec.actor_name, rec.host, rec.kind, rec.alert_id,
            rec.action_id, rec.reason, rec.detail.to_string(), rec.prev_hash, rec.hash
        ],
    )?;
    Ok(rec)
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    let detail: String = r.get(9)?;
    Ok(AuditRecord {
        seq: r.get(0)?,
        ts: r.get(1)?,
        actor_uid: r.get(2)?,
        actor_name: r.get(3)?,
        host: r.get(4)?,
        kind: r.get(5)?,
        alert_id: r.get(6)?,
        action_id: r.get(7)?,
        reason: r.get(8)?,
        detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
        prev_hash: r.get(10)?,
        hash: r.get(11)?,
    })
}

/// Every record, oldest first, streamed to `f`.
///
/// # Errors
/// SQLite errors, or the first error `f` returns.
pub fn for_each(
    conn: &Connection,
    mut f: impl FnMut(AuditRecord) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT seq, ts, actor_uid, actor_name, host, kind, alert_id, action_id, reason, detail, prev_hash, hash
         FROM audit ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        f(row_to_record(r)?)?;
    }
    Ok(())
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub records: u64,
    pub head_seq: i64,
    pub head_hash: String,
    /// The first record that does not verify, and why.
    pub first_bad: Option<(i64, String)>,
}

/// Recompute the chain from the first record.
///
/// # Errors
/// SQLite errors (a tampered row that cannot even be read counts as bad, not as an error).
pub fn verify(conn: &Connection) -> anyhow::Result<Verification> {
    let mut v = Verification {
        records: 0,
        head_seq: 0,
        head_hash: GENESIS.to_string(),
        first_bad: None,
    };
    for_each(conn, |rec| {
        if v.first_bad.is_some() {
            return Ok(());
        }
        v.records += 1;
        let expected_seq = v.head_seq + 1;
        if rec.seq != expected_seq {
            v.first_bad = Some((rec.seq, format!("sequence gap: expected {expected_seq}")));
        } else if rec.prev_hash != v.head_hash {
            v.first_bad = Some((rec.seq, "previous-hash link broken".into()));
        } else if rec.compute_hash() != rec.hash {
            v.first_bad = Some((rec.seq, "record hash does not match its contents".into()));
        } else {
            v.head_seq = rec.seq;
            v.head_hash = rec.hash;
        }
        Ok(())
    })?;
    Ok(v)
}
