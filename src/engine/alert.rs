//! The normalised alert: what every producer's document becomes, with ECS field names. Owns the
//! shape and its ECS rendering; knows nothing about files, scoring or storage.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::net::IpAddr;

/// vigil's one severity scale (ECS `event.severity`), 1 = low .. 4 = critical. The producer's
/// own value is kept beside it in `severity_original`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    Low = 1,
    Medium = 2,
    High = 3,
    Critical = 4,
}

impl Severity {
    pub fn from_level(n: i64) -> Self {
        match n {
            i64::MIN..=1 => Severity::Low,
            2 => Severity::Medium,
            3 => Severity::High,
            _ => Severity::Critical,
        }
    }
    pub fn level(self) -> u8 {
        self as u8
    }
}

/// One alert after normalisation. Optional fields are absent in the producer's document, never
/// guessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub timestamp: DateTime<Utc>,
    /// `event.module`: which producer wrote it (suricata, wazuh, ...).
    pub module: String,
    pub severity: Severity,
    pub severity_original: Option<String>,
    pub rule_id: Option<String>,
    pub rule_name: Option<String>,
    pub rule_category: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub source_port: Option<u16>,
    pub destination_ip: Option<IpAddr>,
    pub destination_port: Option<u16>,
    pub transport: Option<String>,
    pub host_name: Option<String>,
    pub user_name: Option<String>,
    pub technique_ids: Vec<String>,
    pub tactics: Vec<String>,
    pub message: Option<String>,
    /// The producer's document exactly as read (ECS `event.original`). Stored in its own
    /// column, not inside the alert's JSON.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub original: String,
}

/// Insert `value` at a dotted ECS path in a nested object, creating intermediate objects.
pub fn put_path(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = root;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_string(), value);
            return;
        }
        let next = cur
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        match next {
            Value::Object(m) => cur = m,
            _ => return,
        }
    }
}

/// Read a dotted path out of nested JSON (`source.ip`), for templates and playbook conditions.
pub fn get_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, part| v.get(part))
}

impl Alert {
    /// The alert as a nested ECS document. `event.original` carries the raw document so nothing
    /// the producer said is lost.
    pub fn to_ecs(&self) -> Value {
        let mut doc = self.to_ecs_fields();
        if let Value::Object(m) = &mut doc {
            put_path(m, "event.original", json!(self.original));
        }
        doc
    }

    /// The ECS document without `event.original`: what playbooks match on (the raw text is not
    /// a field to match, and copying it for every alert costs more than the rest together).
    pub fn to_ecs_fields(&self) -> Value {
        let mut m = Map::new();
        put_path(
            &mut m,
            "@timestamp",
            json!(self.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true)),
        );
        put_path(&mut m, "event.kind", json!("alert"));
        put_path(&mut m, "event.module", json!(self.module));
        put_path(&mut m, "event.severity", json!(self.severity.level()));
        let opt = |m: &mut Map<String, Value>, path: &str, v: &Option<String>| {
            if let Some(v) = v {
                put_path(m, path, json!(v));
            }
        };
        opt(&mut m, "vigil.severity_original", &self.severity_original);
        opt(&mut m, "rule.id", &self.rule_id);
        opt(&mut m, "rule.name", &self.rule_name);
        opt(&mut m, "rule.category", &self.rule_category);
        if let Some(ip) = self.source_ip {
            put_path(&mut m, "source.ip", json!(ip.to_string()));
        }
        if let Some(p) = self.source_port {
            put_path(&mut m, "source.port", json!(p));
        }
        if let Some(ip) = self.destination_ip {
            put_path(&mut m, "destination.ip", json!(ip.to_string()));
        }
        if let Some(p) = self.destination_port {
            put_path(&mut m, "destination.port", json!(p));
        }
        opt(&mut m, "network.transport", &self.transport);
        opt(&mut m, "host.name", &self.host_name);
        opt(&mut m, "user.name", &self.user_name);
        if !self.technique_ids.is_empty() {
            put_path(&mut m, "threat.technique.id", json!(self.technique_ids));
        }
        if !self.tactics.is_empty() {
            put_path(&mut m, "threat.tactic.name", json!(self.tactics));
        }
        opt(&mut m, "message", &self.message);
        Value::Object(m)
    }
}

/// Serialise JSON with object keys sorted at every level: the one canonical form used for
/// fingerprints and hashes, so key order in the source never changes an identity.
pub fn canonical_json(v: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// SHA-256 of the canonical form of `v`, streamed into the hasher without building the text.
pub fn canonical_sha256(v: &Value) -> String {
    use sha2::{Digest, Sha256};
    struct HashWriter(Sha256);
    impl Sink for HashWriter {
        fn put(&mut self, b: &[u8]) {
            self.0.update(b);
        }
    }
    let mut h = HashWriter(Sha256::new());
    write_canonical(v, &mut h);
    hex::encode(h.0.finalize())
}

trait Sink {
    fn put(&mut self, b: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

fn write_canonical(v: &Value, out: &mut impl Sink) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.put(b"{");
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                write_str(k, out);
                out.put(b":");
                write_canonical(val, out);
            }
            out.put(b"}");
        }
        Value::Array(a) => {
            out.put(b"[");
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                write_canonical(x, out);
            }
            out.put(b"]");
        }
        Value::String(s) => write_str(s, out),
        other => out.put(other.to_string().as_bytes()),
    }
}

/// A JSON string, escaped exactly as serde_json escapes it, written without a temporary.
fn write_str(s: &str, out: &mut impl Sink) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.put(b"\"");
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.put(&bytes[start..i]);
                out.put(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.put(&bytes[start..i]);
        out.put(esc);
        start = i + 1;
    }
    out.put(&bytes[start..]);
    out.put(b"\"");
}

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_sorts_keys_and_escapes_like_serde_json() {
        let v: Value = serde_json::from_str(
            r#"{"b":1,"a":{"y":"q\"\\\n\u0001\u001f é","x":[true,null,1.5]}}"#,
        )
        .expect("json");
        let c = canonical_json(&v);
        assert_eq!(
            c,
            r#"{"a":{"x":[true,null,1.5],"y":"q\"\\\n\u0001\u001f é"},"b":1}"#
        );
        let reparsed: Value = serde_json::from_str(&c).expect("canonical is JSON");
        assert_eq!(reparsed, v);
        assert_eq!(canonical_sha256(&v), sha256_hex(c.as_bytes()));
    }
}
