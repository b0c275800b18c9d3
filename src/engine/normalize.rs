//! Turns one producer document into an `Alert`, or says why it cannot. Owns recognising the
//! producer of a JSON document and each producer's field mapping; never touches files or the
//! database. Cutting a file into records (lines, a CSV header, Zeek's `#fields`, a JSON array)
//! is `format`'s job.

mod cef;
mod ecs;
mod guardduty;
pub(crate) mod mapped;
mod suricata;
mod wazuh;
mod zeek;

pub(crate) use cef::{field_holding_replacement as cef_field_at, normalize_cef};
pub(crate) use zeek::normalize as normalize_zeek;

use super::alert::{Alert, Severity};
use super::format::{FileFormat, Format};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use mapped::Mapping;
use serde_json::Value;
use std::net::IpAddr;

/// Longest line accepted by default; anything longer is quarantined rather than parsed
/// (`[ingest] max_record_bytes` changes it).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// What one input line turned out to be.
#[derive(Debug)]
pub enum Parsed {
    /// A normalised alert and its dedup fingerprint.
    Alert(Box<Alert>, String),
    /// A valid document that is not an alert (Suricata `flow`, `dns`, `stats`, a Zeek log
    /// other than notice, a header or comment line, ...).
    Skipped,
}

/// Why a line was quarantined: one line naming the field where one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Reject(pub String);

fn reject(msg: impl Into<String>) -> Reject {
    Reject(msg.into())
}

/// Parse and normalise one JSON line (without its newline) with the built-in settings,
/// recognising the producer by the document's shape.
///
/// # Errors
/// A `Reject` naming what is wrong: invalid UTF-8, not JSON, too long or too deep, an
/// unrecognised producer, or a field of the wrong type.
pub fn normalize_line(line: &[u8]) -> Result<Parsed, Reject> {
    FileFormat::detect(b"", Format::JsonLines).parse_line(line)
}

/// Which producer a JSON document is expected to come from: `Any` recognises it by shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonProducer {
    Any,
    Suricata,
    Wazuh,
    Zeek,
    Ecs,
    GuardDuty,
    SecurityHub,
}

/// One parsed JSON document to an alert. `text` is the document as read (kept whole in
/// `original`); `mappings` are the configured `[ingest.mappings]`, tried before the built-in
/// producers so a user's mapping wins over a guess.
pub(crate) fn normalize_json(
    doc: &Value,
    text: &str,
    producer: JsonProducer,
    mappings: &[Mapping],
) -> Result<Parsed, Reject> {
    let Value::Object(obj) = doc else {
        return Err(reject(format!(
            "not a JSON object: the document is {}",
            kind(doc)
        )));
    };
    match producer {
        JsonProducer::Suricata => return suricata::normalize(doc, text),
        JsonProducer::Wazuh => return wazuh::normalize(doc, text),
        JsonProducer::Zeek => return zeek::normalize(doc, text),
        JsonProducer::Ecs => return ecs::normalize(doc, text),
        JsonProducer::GuardDuty => return guardduty::normalize_any(doc, text),
        JsonProducer::SecurityHub => return guardduty::normalize_asff(doc, text),
        JsonProducer::Any => {}
    }
    if let Some(m) = mappings.iter().find(|m| m.applies(doc)) {
        return m.normalize(doc, text);
    }
    if obj.contains_key("event_type") {
        return suricata::normalize(doc, text);
    }
    if obj.get("rule").and_then(|r| r.get("level")).is_some()
        && (obj.contains_key("agent") || obj.contains_key("manager"))
    {
        return wazuh::normalize(doc, text);
    }
    if zeek::recognises(doc) {
        return zeek::normalize(doc, text);
    }
    if guardduty::recognises_asff(doc) {
        return guardduty::normalize_asff(doc, text);
    }
    if guardduty::recognises(doc) {
        return guardduty::normalize_any(doc, text);
    }
    if ecs::recognises(doc) {
        return ecs::normalize(doc, text);
    }
    // CloudTrail records are API activity, not alerts (GuardDuty is what judges them), alone
    // or as a `Records` file on one line.
    let cloudtrail = |v: &Value| {
        ["eventSource", "eventName", "userIdentity", "awsRegion"]
            .iter()
            .all(|k| v.get(*k).is_some())
    };
    let records = match obj.get("Records") {
        Some(Value::Array(r)) if obj.len() == 1 => r.iter().all(cloudtrail),
        _ => false,
    };
    if cloudtrail(doc) || records {
        return Ok(Parsed::Skipped);
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).take(6).collect();
    if obj.len() > keys.len() {
        keys.push("…");
    }
    Err(reject(format!(
        "unrecognised document (keys: {}): not Suricata EVE, Wazuh, Zeek, ECS/Elastic, \
         GuardDuty or Security Hub, and no [ingest.mappings] entry applies",
        keys.join(", ")
    )))
}

/// Fingerprint from the canonical document: used when the producer gives no id of its own.
pub fn content_fingerprint(doc: &Value) -> String {
    super::alert::canonical_sha256(doc)
}

// ---- field helpers shared by the producers: each error names the field ----

/// A field by dotted path, where any run of the path may be one flat key: Elastic writes
/// `"kibana.alert.rule.name"` as one key beside nested `host.name`, Zeek writes `"id.orig_h"`.
/// The longest key wins at each level.
pub(crate) fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let Value::Object(map) = root else {
        return None;
    };
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    path.rmatch_indices('.').find_map(|(i, _)| {
        map.get(&path[..i])
            .and_then(|child| lookup(child, &path[i + 1..]))
    })
}

fn field<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    lookup(doc, path).filter(|v| !v.is_null())
}

/// The first of `paths` present, each read with `get`: a bad value on the way is still an
/// error naming its field.
fn first<T>(
    doc: &Value,
    paths: &[&str],
    get: fn(&Value, &str) -> Result<Option<T>, Reject>,
) -> Result<Option<T>, Reject> {
    for p in paths {
        if let Some(v) = get(doc, p)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

fn opt_str(doc: &Value, path: &str) -> Result<Option<String>, Reject> {
    match field(doc, path) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(reject(format!(
            "field `{path}`: expected a string, found {}",
            kind(other)
        ))),
    }
}

fn opt_port(doc: &Value, path: &str) -> Result<Option<u16>, Reject> {
    let bad = |v: &Value| {
        reject(format!(
            "field `{path}`: expected a port 0-65535, found {}",
            describe(v)
        ))
    };
    match field(doc, path) {
        None => Ok(None),
        Some(v @ Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .map(Some)
            .ok_or_else(|| bad(v)),
        // Wazuh decoders write ports as strings.
        Some(v @ Value::String(s)) => s.trim().parse::<u16>().map(Some).map_err(|_| bad(v)),
        Some(v) => Err(bad(v)),
    }
}

fn opt_ip(doc: &Value, path: &str) -> Result<Option<IpAddr>, Reject> {
    match field(doc, path) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(v @ Value::String(s)) => s.trim().parse::<IpAddr>().map(Some).map_err(|_| {
            reject(format!(
                "field `{path}`: expected an IP address, found {}",
                describe(v)
            ))
        }),
        Some(v) => Err(reject(format!(
            "field `{path}`: expected an IP address, found {}",
            describe(v)
        ))),
    }
}

fn opt_int(doc: &Value, path: &str) -> Result<Option<i64>, Reject> {
    match field(doc, path) {
        None => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
        Some(v @ Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            reject(format!(
                "field `{path}`: expected an integer, found {}",
                describe(v)
            ))
        }),
        Some(v) => Err(reject(format!(
            "field `{path}`: expected an integer, found {}",
            describe(v)
        ))),
    }
}

fn str_list(doc: &Value, path: &str) -> Result<Vec<String>, Reject> {
    match field(doc, path) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                other => Err(reject(format!(
                    "field `{path}`: expected a list of strings, found an item that is {}",
                    kind(other)
                ))),
            })
            .collect(),
        Some(other) => Err(reject(format!(
            "field `{path}`: expected a list of strings, found {}",
            kind(other)
        ))),
    }
}

fn timestamp(doc: &Value, path: &str) -> Result<DateTime<Utc>, Reject> {
    let Some(v) = field(doc, path) else {
        return Err(reject(format!("field `{path}`: missing")));
    };
    timestamp_value(v, path)
}

/// A timestamp from a string or an epoch number, naming `path` when it cannot be read.
fn timestamp_value(v: &Value, path: &str) -> Result<DateTime<Utc>, Reject> {
    let parsed = match v {
        Value::String(s) => parse_timestamp(s),
        Value::Number(n) => parse_epoch(&n.to_string()),
        _ => {
            return Err(reject(format!(
                "field `{path}`: expected a timestamp, found {}",
                kind(v)
            )))
        }
    };
    parsed.ok_or_else(|| {
        reject(format!(
            "field `{path}`: unparsable timestamp {}",
            describe(v)
        ))
    })
}

/// RFC 3339, the `+0000` offset form Suricata and Wazuh write, `YYYY-MM-DD HH:MM:SS[.f]`
/// (taken as UTC: a time without a zone is UTC), or epoch seconds / milliseconds as digits.
/// Always returned in UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%z"))
    {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok();
    if let Some(n) = naive {
        return Some(Utc.from_utc_datetime(&n));
    }
    parse_epoch(s)
}

/// Epoch time written as decimal digits: seconds with an optional fraction (Zeek's `ts`), or
/// whole milliseconds (13+ digits, CEF's `rt`). Parsed from the digits, never through a float,
/// so the same text always gives the same instant.
pub(crate) fn parse_epoch(s: &str) -> Option<DateTime<Utc>> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || whole.len() > 16
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    if frac.is_empty() && whole >= 100_000_000_000 {
        return DateTime::from_timestamp_millis(whole);
    }
    let mut nanos = 0u32;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    DateTime::from_timestamp(whole, nanos)
}

/// A severity word or number to vigil's scale through a producer's table (keys lower-case).
fn severity_from_table(
    table: &std::collections::HashMap<String, Severity>,
    raw: &str,
) -> Option<Severity> {
    table.get(&raw.trim().to_ascii_lowercase()).copied()
}

/// The 0-100 risk score bands Elastic uses for its own severities (low 0-21, medium 22-47,
/// high 48-73, critical 74-100); also used for any other 0-100 producer score.
fn severity_from_risk(score: f64) -> Severity {
    if score < 22.0 {
        Severity::Low
    } else if score < 48.0 {
        Severity::Medium
    } else if score < 74.0 {
        Severity::High
    } else {
        Severity::Critical
    }
}

/// Sorted, de-duplicated ATT&CK ids: producers repeat them across parallel lists.
fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short, quoted rendering of a bad value for an error line (capped so a huge field cannot
/// flood the log).
fn describe(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 60 {
        let cut = (0..=60).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.truncate(cut);
        s.push('…');
    }
    format!("{} {}", kind(v), s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_name_the_field() {
        let line = br#"{"timestamp":"2010-01-04T17:29:26.981507+0000","event_type":"alert","src_ip":"10.0.0.1","src_port":"abc","alert":{"signature":"x","severity":1}}"#;
        let err = normalize_line(line).expect_err("rejected");
        assert_eq!(
            err.0,
            "field `src_port`: expected a port 0-65535, found a string \"abc\""
        );
    }

    #[test]
    fn rejects_bad_utf8_and_non_json() {
        assert!(normalize_line(b"\xff\xfe{}")
            .expect_err("rejected")
            .0
            .starts_with("invalid UTF-8 at byte 0"));
        assert!(normalize_line(b"{\"a\":")
            .expect_err("rejected")
            .0
            .starts_with("not valid JSON"));
        assert_eq!(
            normalize_line(b"[1,2]").expect_err("rejected").0,
            "not a JSON object: the document is an array"
        );
    }

    #[test]
    fn rejects_deep_nesting_without_panicking() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(normalize_line(deep.as_bytes()).is_err());
    }

    #[test]
    fn timestamps_accept_both_offset_forms() {
        let a = parse_timestamp("2010-01-04T17:29:26.981507+0000");
        let b = parse_timestamp("2010-01-04T18:29:26.981507+01:00");
        assert!(a.is_some());
        assert_eq!(a, b);
    }
}
