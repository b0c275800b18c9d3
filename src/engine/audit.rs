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
#[serde(deny_unknown_fields)]
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

/// A head someone kept elsewhere (a SIEM, a ticket): `SEQ:HASH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
}

impl std::str::FromStr for Checkpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected SEQ:HASH"))?;
        let seq: i64 = seq
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: SEQ is not a number"))?;
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("`{s}`: HASH must be 64 hex digits"));
        }
        Ok(Checkpoint { seq, hash })
    }
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub records: u64,
    pub head_seq: i64,
    pub head_hash: String,
    pub checkpoints_checked: usize,
    /// The first record that does not verify, and why.
    pub first_bad: Option<(i64, String)>,
}

/// Check a sequence of records from the first: sequence numbers, links, hashes, and every
/// checkpoint (a record at a checkpoint's sequence must carry its hash; a checkpoint past the
/// end means records were removed). An unreadable record counts as bad.
pub fn verify_chain(
    records: impl IntoIterator<Item = Result<AuditRecord, String>>,
    checkpoints: &[Checkpoint],
) -> Verification {
    let mut v = Verification {
        records: 0,
        head_seq: 0,
        head_hash: GENESIS.to_string(),
        checkpoints_checked: 0,
        first_bad: None,
    };
    for (i, rec) in records.into_iter().enumerate() {
        v.records += 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                v.first_bad = Some((
                    v.head_seq + 1,
                    format!("record {} cannot be read: {e}", i + 1),
                ));
                return v;
            }
        };
        let expected_seq = v.head_seq + 1;
        let bad = if rec.seq != expected_seq {
            Some(format!("sequence gap: expected {expected_seq}"))
        } else if rec.prev_hash != v.head_hash {
            Some("previous-hash link broken".into())
        } else if rec.compute_hash() != rec.hash {
            Some("record hash does not match its contents".into())
        } else {
            checkpoints
                .iter()
                .find(|c| c.seq == rec.seq && c.hash != rec.hash)
                .map(|cp| {
                    format!(
                        "checkpoint {} has hash {}: the history up to it was rewritten",
                        cp.seq, cp.hash
                    )
                })
        };
        if let Some(why) = bad {
            v.first_bad = Some((rec.seq, why));
            return v;
        }
        v.checkpoints_checked += checkpoints.iter().filter(|c| c.seq == rec.seq).count();
        v.head_seq = rec.seq;
        v.head_hash = rec.hash;
    }
    if let Some(cp) = checkpoints
        .iter()
        .filter(|c| c.seq > v.head_seq)
        .min_by_key(|c| c.seq)
    {
        v.first_bad = Some((
            cp.seq,
            format!(
                "checkpoint {} is past the end (the trail ends at {}): records were removed",
                cp.seq, v.head_seq
            ),
        ));
    }
    v
}

/// Checkpoints kept in the database by `vigil audit checkpoint`.
///
/// # Errors
/// SQLite errors.
pub fn stored_checkpoints(conn: &Connection) -> rusqlite::Result<Vec<Checkpoint>> {
    let mut stmt = conn.prepare("SELECT seq, hash FROM audit_checkpoints ORDER BY seq")?;
    let r = stmt.query_map([], |r| {
        Ok(Checkpoint {
            seq: r.get(0)?,
            hash: r.get(1)?,
        })
    })?;
    r.collect()
}

/// Recompute the chain in the database against its stored checkpoints and `extra` ones.
///
/// # Errors
/// SQLite errors opening the table (a tampered row that cannot be read counts as bad).
pub fn verify(conn: &Connection, extra: &[Checkpoint]) -> anyhow::Result<Verification> {
    let mut checkpoints = stored_checkpoints(conn).unwrap_or_default();
    checkpoints.extend_from_slice(extra);
    let mut stmt = conn.prepare(
        "SELECT seq, ts, actor_uid, actor_name, host, kind, alert_id, action_id, reason, detail, prev_hash, hash
         FROM audit ORDER BY seq",
    )?;
    let rows = stmt.query_map([], row_to_record)?;
    Ok(verify_chain(
        rows.map(|r| r.map_err(|e| e.to_string())),
        &checkpoints,
    ))
}

/// Verify an exported trail (`vigil audit export`): JSON lines, strictly parsed.
pub fn verify_export(text: &[u8], checkpoints: &[Checkpoint]) -> Verification {
    let records = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice::<AuditRecord>(l).map_err(|e| e.to_string()));
    verify_chain(records, checkpoints)
}

/// Record the current head as a checkpoint (in the checkpoints table, then as a record of its
/// own) and return it.
///
/// # Errors
/// SQLite errors.
pub fn checkpoint(conn: &Connection, actor: &Actor) -> rusqlite::Result<Checkpoint> {
    let head: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, hash) = head.unwrap_or((0, GENESIS.to_string()));
    conn.execute(
        "INSERT INTO audit_checkpoints (seq, hash, at, actor_name) VALUES (?1, ?2, ?3, ?4)",
        params![
            seq,
            hash,
            Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            actor.name
        ],
    )?;
    append(
        conn,
        Entry {
            actor,
            kind: "checkpoint",
            alert_id: None,
            action_id: None,
            reason: None,
            detail: serde_json::json!({"seq": seq, "hash": hash}),
        },
    )?;
    Ok(Checkpoint { seq, hash })
}
