//! Turns one producer document into an `Alert`, or says why it cannot. Owns format detection
//! and field mapping; never touches files or the database.

mod suricata;
mod wazuh;

use super::alert::Alert;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::net::IpAddr;

/// Longest line accepted; anything longer is quarantined rather than parsed.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// What one input line turned out to be.
#[derive(Debug)]
pub enum Parsed {
    /// A normalised alert and its dedup fingerprint.
    Alert(Box<Alert>, String),
    /// A valid document that is not an alert (Suricata `flow`, `dns`, `stats`, ...).
    Skipped,
}

/// Why a line was quarantined: one line naming the field where one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Reject(pub String);

fn reject(msg: impl Into<String>) -> Reject {
    Reject(msg.into())
}

/// Parse and normalise one line (without its newline).
///
/// # Errors
/// A `Reject` naming what is wrong: invalid UTF-8, not JSON, too long or too deep, an
/// unrecognised producer, or a field of the wrong type.
pub fn normalize_line(line: &[u8]) -> Result<Parsed, Reject> {
    if line.len() > MAX_LINE_BYTES {
        return Err(reject(format!(
            "line is {} bytes, over the {} byte limit",
            line.len(),
            MAX_LINE_BYTES
        )));
    }
    let text = std::str::from_utf8(line).map_err(|e| {
        reject(format!(
            "invalid UTF-8 at byte {} of the line",
            e.valid_up_to()
        ))
    })?;
    let text = text.trim_end_matches('\r');
    let doc: Value =
        serde_json::from_str(text).map_err(|e| reject(format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = &doc else {
        return Err(reject("not a JSON object"));
    };
    if obj.contains_key("event_type") {
        return suricata::normalize(&doc, text);
    }
    if obj.get("rule").and_then(|r| r.get("level")).is_some()
        && (obj.contains_key("agent") || obj.contains_key("manager"))
    {
        return wazuh::normalize(&doc, text);
    }
    Err(reject(
        "unrecognised document: neither Suricata EVE (event_type) nor Wazuh (rule.level with agent)",
    ))
}

/// Fingerprint from the canonical document: used when the producer gives no id of its own.
pub fn content_fingerprint(doc: &Value) -> String {
    super::alert::canonical_sha256(doc)
}

// ---- field helpers shared by the producers: each error names the field ----

fn field<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    super::alert::get_path(doc, path).filter(|v| !v.is_null())
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
    let Value::String(s) = v else {
        return Err(reject(format!(
            "field `{path}`: expected a timestamp string, found {}",
            kind(v)
        )));
    };
    parse_timestamp(s).ok_or_else(|| {
        reject(format!(
            "field `{path}`: unparsable timestamp {}",
            describe(v)
        ))
    })
}

/// RFC 3339, or the `+0000` offset form Suricata and Wazuh write. Always returned in UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
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
            "not a JSON object"
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
