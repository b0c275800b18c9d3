//! A configured mapping from a producer's field names to vigil's ECS fields: every
//! `[ingest.mappings.NAME]` entry and the CSV column table become one of these. Owns applying
//! a mapping to one document; reading the mapping out of the configuration is `format`'s job.

use super::{
    content_fingerprint, describe, field, kind, reject, severity_from_table, sorted_unique,
    timestamp_value, Parsed, Reject,
};
use crate::engine::alert::{sha256_hex, Alert, Severity};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;

/// The ECS fields a mapping may fill: exactly the fields of an `Alert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcsField {
    Timestamp,
    Module,
    Severity,
    RuleId,
    RuleName,
    RuleCategory,
    SourceIp,
    SourcePort,
    DestinationIp,
    DestinationPort,
    Transport,
    HostName,
    UserName,
    TechniqueId,
    TacticName,
    Message,
}

/// Every field with its ECS name: the one table both directions read.
const ECS_NAMES: [(EcsField, &str); 16] = [
    (EcsField::Timestamp, "@timestamp"),
    (EcsField::Module, "event.module"),
    (EcsField::Severity, "event.severity"),
    (EcsField::RuleId, "rule.id"),
    (EcsField::RuleName, "rule.name"),
    (EcsField::RuleCategory, "rule.category"),
    (EcsField::SourceIp, "source.ip"),
    (EcsField::SourcePort, "source.port"),
    (EcsField::DestinationIp, "destination.ip"),
    (EcsField::DestinationPort, "destination.port"),
    (EcsField::Transport, "network.transport"),
    (EcsField::HostName, "host.name"),
    (EcsField::UserName, "user.name"),
    (EcsField::TechniqueId, "threat.technique.id"),
    (EcsField::TacticName, "threat.tactic.name"),
    (EcsField::Message, "message"),
];

impl EcsField {
    /// Every name a mapping may use, for the error that lists them.
    pub fn names() -> Vec<&'static str> {
        ECS_NAMES.iter().map(|(_, n)| *n).collect()
    }

    /// The field for an ECS name, or `None` when vigil has no such field.
    pub fn from_name(name: &str) -> Option<Self> {
        ECS_NAMES.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }
}

/// A compiled mapping, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// Shown in errors and used in producer-id fingerprints.
    pub name: String,
    pub module: String,
    /// Field paths that must all be present for the mapping to apply.
    pub when: Vec<String>,
    /// Source path → ECS field, in priority order: the first present source fills a field.
    pub fields: Vec<(String, EcsField)>,
    /// Producer severity (lower-case) → vigil's scale.
    pub severity: HashMap<String, Severity>,
    /// Used when no mapped severity field is present in a document.
    pub default_severity: Severity,
    /// Paths of the producer's own id; when all are present they make the fingerprint.
    pub fingerprint: Vec<String>,
}

impl Mapping {
    /// True when every `when` path is present (a mapping with no condition never applies by
    /// shape: it would swallow every document).
    pub fn applies(&self, doc: &Value) -> bool {
        !self.when.is_empty() && self.when.iter().all(|p| field(doc, p).is_some())
    }

    /// Apply the mapping to `doc` (read as `text`).
    ///
    /// # Errors
    /// A mapped field of the wrong type or an unknown severity, naming the source field; no
    /// timestamp at all.
    pub fn normalize(&self, doc: &Value, text: &str) -> Result<Parsed, Reject> {
        let mut a = Alert {
            timestamp: chrono::DateTime::<chrono::Utc>::MIN_UTC,
            module: self.module.clone(),
            severity: self.default_severity,
            severity_original: None,
            rule_id: None,
            rule_name: None,
            rule_category: None,
            source_ip: None,
            source_port: None,
            destination_ip: None,
            destination_port: None,
            transport: None,
            host_name: None,
            user_name: None,
            technique_ids: Vec::new(),
            tactics: Vec::new(),
            message: None,
            original: text.to_string(),
        };
        let mut filled: Vec<EcsField> = Vec::with_capacity(self.fields.len());
        for (path, target) in &self.fields {
            if filled.contains(target) {
                continue;
            }
            let Some(v) = field(doc, path) else {
                continue;
            };
            if matches!(v, Value::String(s) if s.trim().is_empty()) {
                continue;
            }
            self.set(&mut a, *target, path, v)?;
            filled.push(*target);
        }
        if !filled.contains(&EcsField::Timestamp) {
            let sources: Vec<&str> = self
                .fields
                .iter()
                .filter(|(_, t)| *t == EcsField::Timestamp)
                .map(|(p, _)| p.as_str())
                .collect();
            return Err(reject(if sources.is_empty() {
                format!(
                    "mapping `{}` maps no field to @timestamp, so no alert time can be read",
                    self.name
                )
            } else {
                format!(
                    "field `{}`: missing (the alert time for mapping `{}`)",
                    sources.join("` / `"),
                    self.name
                )
            }));
        }
        a.technique_ids = sorted_unique(std::mem::take(&mut a.technique_ids));
        let fp = self
            .producer_id(doc)
            .unwrap_or_else(|| content_fingerprint(doc));
        Ok(Parsed::Alert(Box::new(a), fp))
    }

    fn producer_id(&self, doc: &Value) -> Option<String> {
        if self.fingerprint.is_empty() {
            return None;
        }
        let mut key = format!("mapping\0{}", self.name);
        for p in &self.fingerprint {
            let v = field(doc, p)?;
            key.push('\0');
            match v {
                Value::String(s) => key.push_str(s),
                other => key.push_str(&other.to_string()),
            }
        }
        Some(sha256_hex(key.as_bytes()))
    }

    fn set(&self, a: &mut Alert, target: EcsField, path: &str, v: &Value) -> Result<(), Reject> {
        match target {
            EcsField::Timestamp => a.timestamp = timestamp_value(v, path)?,
            EcsField::Module => a.module = text(v, path)?,
            EcsField::Severity => {
                let raw = text(v, path)?;
                a.severity = severity_from_table(&self.severity, &raw).ok_or_else(|| {
                    reject(format!(
                        "field `{path}`: severity {} is not in the severity table of mapping `{}`",
                        describe(v),
                        self.name
                    ))
                })?;
                a.severity_original = Some(raw);
            }
            EcsField::RuleId => a.rule_id = Some(text(v, path)?),
            EcsField::RuleName => a.rule_name = Some(text(v, path)?),
            EcsField::RuleCategory => a.rule_category = Some(text(v, path)?),
            EcsField::SourceIp => a.source_ip = Some(ip(v, path)?),
            EcsField::SourcePort => a.source_port = Some(port(v, path)?),
            EcsField::DestinationIp => a.destination_ip = Some(ip(v, path)?),
            EcsField::DestinationPort => a.destination_port = Some(port(v, path)?),
            EcsField::Transport => a.transport = Some(text(v, path)?.to_ascii_lowercase()),
            EcsField::HostName => a.host_name = Some(text(v, path)?),
            EcsField::UserName => a.user_name = Some(text(v, path)?),
            EcsField::TechniqueId => a.technique_ids = list(v, path)?,
            EcsField::TacticName => a.tactics = list(v, path)?,
            EcsField::Message => a.message = Some(text(v, path)?),
        }
        Ok(())
    }
}

fn text(v: &Value, path: &str) -> Result<String, Reject> {
    match v {
        Value::String(s) => Ok(s.trim().to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(reject(format!(
            "field `{path}`: expected a string, found {}",
            kind(other)
        ))),
    }
}

fn ip(v: &Value, path: &str) -> Result<IpAddr, Reject> {
    match v {
        Value::String(s) => s.trim().parse::<IpAddr>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        reject(format!(
            "field `{path}`: expected an IP address, found {}",
            describe(v)
        ))
    })
}

fn port(v: &Value, path: &str) -> Result<u16, Reject> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(s) => s.trim().parse::<u16>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        reject(format!(
            "field `{path}`: expected a port 0-65535, found {}",
            describe(v)
        ))
    })
}

/// A list field: a JSON list of strings, or one string holding several values separated by
/// `,` or `;` (how a CSV cell carries a list).
fn list(v: &Value, path: &str) -> Result<Vec<String>, Reject> {
    let split = |s: &str| -> Vec<String> {
        s.split([',', ';'])
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    match v {
        Value::String(s) => Ok(split(s)),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.trim().to_string()),
                other => Err(reject(format!(
                    "field `{path}`: expected a list of strings, found an item that is {}",
                    kind(other)
                ))),
            })
            .collect(),
        other => Err(reject(format!(
            "field `{path}`: expected a list of strings, found {}",
            kind(other)
        ))),
    }
}
