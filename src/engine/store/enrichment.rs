//! SQL for enrichment: results per alert, the per-alert state (signals, online lookups still
//! pending), the lookup cache and the provider request log. Writes run only on the writer
//! thread (called from `apply_ops`); reads take any connection.

use super::{now, ts};
use crate::engine::alert::Alert;
use crate::engine::enrich::{EnrichmentResult, SourceKind, Verdict};
use crate::engine::features::EnrichmentSignals;
use crate::engine::ioc::IocKind;
use crate::engine::score::Score;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS enrichments (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    indicator TEXT NOT NULL,
    kind TEXT NOT NULL,
    fields TEXT NOT NULL,
    source TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    verdict TEXT NOT NULL,
    score INTEGER,
    detail TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    feed_date TEXT,
    UNIQUE (alert_id, source, kind, indicator)
);
CREATE INDEX IF NOT EXISTS enrichments_by_alert ON enrichments(alert_id);
CREATE TABLE IF NOT EXISTS enrichment_state (
    alert_id INTEGER PRIMARY KEY REFERENCES alerts(id),
    signals TEXT NOT NULL,
    online_pending INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS enrichment_state_pending ON enrichment_state(online_pending);
CREATE TABLE IF NOT EXISTS lookup_cache (
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    indicator TEXT NOT NULL,
    result TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (provider, kind, indicator)
);
CREATE TABLE IF NOT EXISTS provider_requests (
    provider TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS provider_requests_by ON provider_requests(provider, at);
CREATE TABLE IF NOT EXISTS provider_status (
    provider TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"#;

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn label<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn from_label<T: serde::de::DeserializeOwned>(s: String) -> Option<T> {
    serde_json::from_value(Value::String(s)).ok()
}

/// Store results for one alert, its signals and (when re-scored) its new score.
pub(super) fn record(
    tx: &Connection,
    alert_id: i64,
    results: &[EnrichmentResult],
    signals: &EnrichmentSignals,
    score: Option<&Score>,
    online_pending: bool,
) -> rusqlite::Result<()> {
    for r in results {
        tx.execute(
            "INSERT INTO enrichments (alert_id, indicator, kind, fields, source, source_kind, verdict, score,
               detail, fetched_at, feed_date)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(alert_id, source, kind, indicator) DO UPDATE SET fields = ?4, verdict = ?7,
               score = ?8, detail = ?9, fetched_at = ?10, feed_date = ?11",
            params![
                alert_id,
                r.indicator,
                label(&r.kind),
                json_text(&r.fields),
                r.source,
                label(&r.source_kind),
                label(&r.verdict),
                r.score,
                r.detail.to_string(),
                ts(&r.fetched_at),
                r.feed_date,
            ],
        )?;
    }
    tx.execute(
        "INSERT INTO enrichment_state (alert_id, signals, online_pending, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(alert_id) DO UPDATE SET signals = ?2, online_pending = ?3, updated_at = ?4",
        params![alert_id, json_text(signals), online_pending, now()],
    )?;
    if let Some(s) = score {
        tx.execute(
            "UPDATE alerts SET risk = ?1, band = ?2, score = ?3 WHERE id = ?4",
            params![
                s.risk(),
                match s {
                    Score::Scored { band, .. } => Some(band.label()),
                    Score::Unscored { .. } => None,
                },
                json_text(s),
                alert_id
            ],
        )?;
        tx.execute(
            "UPDATE incidents SET max_risk = max(coalesce(max_risk, -1), coalesce(?1, -1))
             WHERE id = (SELECT incident_id FROM alerts WHERE id = ?2)",
            params![s.risk(), alert_id],
        )?;
    }
    Ok(())
}

pub(super) fn cache_put(
    tx: &Connection,
    provider: &str,
    r: &EnrichmentResult,
    expires_at: &DateTime<Utc>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO lookup_cache (provider, kind, indicator, result, fetched_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(provider, kind, indicator) DO UPDATE SET result = ?4, fetched_at = ?5, expires_at = ?6",
        params![provider, label(&r.kind), r.indicator, json_text(r), ts(&r.fetched_at), ts(expires_at)],
    )?;
    Ok(())
}

pub(super) fn usage(tx: &Connection, provider: &str, at: &DateTime<Utc>) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO provider_requests (provider, at) VALUES (?1, ?2)",
        params![provider, ts(at)],
    )?;
    // The log only has to cover the longest budget window (a day); keep two.
    tx.execute(
        "DELETE FROM provider_requests WHERE provider = ?1 AND at < ?2",
        params![provider, ts(&(*at - chrono::Duration::days(2)))],
    )?;
    Ok(())
}

pub(super) fn status(tx: &Connection, statuses: &[(String, Value)]) -> rusqlite::Result<()> {
    for (p, v) in statuses {
        tx.execute(
            "INSERT INTO provider_status (provider, status, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(provider) DO UPDATE SET status = ?2, updated_at = ?3",
            params![p, v.to_string(), now()],
        )?;
    }
    Ok(())
}

/// A fresh cached answer, if there is one.
///
/// # Errors
/// SQLite errors.
pub fn cache_get(
    conn: &Connection,
    provider: &str,
    kind: IocKind,
    indicator: &str,
    at: DateTime<Utc>,
) -> rusqlite::Result<Option<EnrichmentResult>> {
    let row: Option<String> = conn
        .query_row(
            "SELECT result FROM lookup_cache WHERE provider = ?1 AND kind = ?2 AND indicator = ?3 AND expires_at > ?4",
            params![provider, label(&kind), indicator, ts(&at)],
            |r| r.get(0),
        )
        .optional()?;
    Ok(row.and_then(|s| serde_json::from_str(&s).ok()))
}

/// When each request to `provider` since `since` was sent (to restore budgets on restart).
///
/// # Errors
/// SQLite errors.
pub fn provider_usage_since(
    conn: &Connection,
    provider: &str,
    since: DateTime<Utc>,
) -> rusqlite::Result<Vec<DateTime<Utc>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at FROM provider_requests WHERE provider = ?1 AND at >= ?2 ORDER BY at",
    )?;
    let rows = stmt.query_map(params![provider, ts(&since)], |r| r.get::<_, String>(0))?;
    Ok(rows
        .filter_map(Result::ok)
        .filter_map(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|d| d.with_timezone(&Utc))
        .collect())
}

/// The last status snapshot each provider's lane wrote, with when it was written.
///
/// # Errors
/// SQLite errors.
pub fn provider_status(conn: &Connection) -> rusqlite::Result<Vec<(String, Value, String)>> {
    let mut stmt =
        conn.prepare("SELECT provider, status, updated_at FROM provider_status ORDER BY provider")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or(Value::Null),
            r.get::<_, String>(2)?,
        ))
    })?;
    rows.collect()
}

/// An alert to enrich: id, incident and the alert.
pub type ToEnrich = (i64, Option<i64>, Alert);

fn to_enrich(r: &rusqlite::Row<'_>) -> rusqlite::Result<ToEnrich> {
    let alert: String = r.get(2)?;
    let mut alert: Alert = serde_json::from_str(&alert).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    // The raw document is stored beside the alert, not inside it; IOCs are also read from it.
    alert.original = r.get(3)?;
    Ok((r.get(0)?, r.get(1)?, alert))
}

/// Alerts after `cursor` not enriched yet (or every alert after it when `again`), oldest first.
///
/// # Errors
/// SQLite errors.
pub fn alerts_to_enrich(
    conn: &Connection,
    cursor: i64,
    limit: u64,
    again: bool,
) -> rusqlite::Result<Vec<ToEnrich>> {
    let sql = if again {
        "SELECT a.id, a.incident_id, a.alert, a.original FROM alerts a WHERE a.id > ?1 ORDER BY a.id LIMIT ?2"
    } else {
        "SELECT a.id, a.incident_id, a.alert, a.original FROM alerts a LEFT JOIN enrichment_state s ON s.alert_id = a.id
         WHERE s.alert_id IS NULL AND a.id > ?1 ORDER BY a.id LIMIT ?2"
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![cursor, limit as i64], to_enrich)?;
    rows.collect()
}

/// Alerts whose online lookups had not finished (a restart interrupted them).
///
/// # Errors
/// SQLite errors.
pub fn alerts_pending_online(conn: &Connection, limit: u64) -> rusqlite::Result<Vec<ToEnrich>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.id, a.incident_id, a.alert, a.original FROM alerts a JOIN enrichment_state s ON s.alert_id = a.id
         WHERE s.online_pending = 1 ORDER BY a.id LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit as i64], to_enrich)?;
    rows.collect()
}

/// Alerts of one incident (the focused one), for jumping the queue.
///
/// # Errors
/// SQLite errors.
pub fn incident_alerts(
    conn: &Connection,
    incident: i64,
    limit: u64,
) -> rusqlite::Result<Vec<ToEnrich>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.id, a.incident_id, a.alert, a.original FROM alerts a WHERE a.incident_id = ?1 ORDER BY a.id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![incident, limit as i64], to_enrich)?;
    rows.collect()
}

/// Every result stored for one alert, worst first.
///
/// # Errors
/// SQLite errors.
pub fn results(conn: &Connection, alert_id: i64) -> rusqlite::Result<Vec<EnrichmentResult>> {
    let mut stmt = conn.prepare_cached(
        "SELECT indicator, kind, fields, source, source_kind, verdict, score, detail, fetched_at, feed_date
         FROM enrichments WHERE alert_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([alert_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, Option<u8>>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, String>(8)?,
            r.get::<_, Option<String>>(9)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (
            indicator,
            kind,
            fields,
            source,
            source_kind,
            verdict,
            score,
            detail,
            fetched_at,
            feed_date,
        ) = row?;
        let (Some(kind), Some(source_kind), Some(verdict)) = (
            from_label::<IocKind>(kind),
            from_label::<SourceKind>(source_kind),
            from_label::<Verdict>(verdict),
        ) else {
            continue;
        };
        out.push(EnrichmentResult {
            indicator,
            kind,
            fields: serde_json::from_str(&fields).unwrap_or_default(),
            source,
            source_kind,
            verdict,
            score,
            detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
            fetched_at: DateTime::parse_from_rfc3339(&fetched_at)
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_default(),
            feed_date,
        });
    }
    out.sort_by_key(|r| (r.verdict, std::cmp::Reverse(r.score)));
    Ok(out)
}

/// The stored signals of one alert and whether online lookups are still running.
///
/// # Errors
/// SQLite errors.
pub fn state(
    conn: &Connection,
    alert_id: i64,
) -> rusqlite::Result<Option<(EnrichmentSignals, bool)>> {
    conn.query_row(
        "SELECT signals, online_pending FROM enrichment_state WHERE alert_id = ?1",
        [alert_id],
        |r| {
            Ok((
                serde_json::from_str(&r.get::<_, String>(0)?).unwrap_or_default(),
                r.get::<_, bool>(1)?,
            ))
        },
    )
    .optional()
}
