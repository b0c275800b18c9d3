//! ECS documents: Elastic Security alerts (8.x `kibana.alert.*`, 7.x `signal.*`, bare or in a
//! search hit's `_source`) and any ECS event whose `event.kind` is `alert` or `signal`. An ECS
//! document of another kind (`event`, `metric`, `state`) is skipped.

use super::{
    content_fingerprint, field, first, kind, lookup, opt_int, opt_ip, opt_port, opt_str, reject,
    severity_from_risk, sorted_unique, str_list, timestamp, Parsed, Reject, Value,
};
use crate::engine::alert::{sha256_hex, Alert, Severity};

/// An ECS document: `@timestamp` with an ECS marker (a search hit wrapping one counts too).
pub(super) fn recognises(doc: &Value) -> bool {
    let doc = lookup(doc, "_source")
        .filter(|s| s.is_object())
        .unwrap_or(doc);
    lookup(doc, "@timestamp").is_some()
        && (lookup(doc, "ecs.version").is_some()
            || lookup(doc, "event.kind").is_some()
            || lookup(doc, "kibana.alert.uuid").is_some()
            || lookup(doc, "kibana.alert.rule.name").is_some()
            || lookup(doc, "signal.rule").is_some())
}

fn severity_word(word: &str) -> Option<Severity> {
    match word.trim().to_ascii_lowercase().as_str() {
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

/// One ECS document (`text` as read) to an alert or a skip.
pub(super) fn normalize(outer: &Value, text: &str) -> Result<Parsed, Reject> {
    // A search hit: the alert is `_source`, Elasticsearch's `_id` is its identity.
    let (doc, hit_id) = match lookup(outer, "_source") {
        Some(s @ Value::Object(_)) => (s, opt_str(outer, "_id")?),
        _ => (outer, None),
    };
    let kibana =
        field(doc, "kibana.alert.rule.name").is_some() || field(doc, "kibana.alert.uuid").is_some();
    let signal = !kibana && field(doc, "signal.rule").is_some();
    let event_kind = opt_str(doc, "event.kind")?;
    if !kibana && !signal && !matches!(event_kind.as_deref(), Some("alert" | "signal")) {
        return Ok(Parsed::Skipped);
    }
    let rule = if kibana {
        "kibana.alert.rule"
    } else {
        "signal.rule"
    };
    let (severity, original) = severity(doc, kibana || signal, rule)?;
    let ts = match (kibana, signal) {
        (true, _) if field(doc, "kibana.alert.original_time").is_some() => {
            timestamp(doc, "kibana.alert.original_time")?
        }
        (_, true) if field(doc, "signal.original_time").is_some() => {
            timestamp(doc, "signal.original_time")?
        }
        _ => timestamp(doc, "@timestamp")?,
    };
    let (rule_id, rule_name, category, message) = if kibana || signal {
        let (rule_id, rule_uuid, rule_category) = (
            format!("{rule}.rule_id"),
            format!("{rule}.uuid"),
            format!("{rule}.category"),
        );
        let id = first(doc, &[&rule_id, &rule_uuid, &format!("{rule}.id")], opt_str)?;
        let category = first(doc, &["rule.category", &rule_category], opt_str)?;
        let reason = if kibana {
            "kibana.alert.reason"
        } else {
            "signal.reason"
        };
        let message = first(doc, &[reason, "message"], opt_str)?;
        (
            id,
            opt_str(doc, &format!("{rule}.name"))?,
            category,
            message,
        )
    } else {
        (
            opt_str(doc, "rule.id")?,
            opt_str(doc, "rule.name")?,
            opt_str(doc, "rule.category")?,
            opt_str(doc, "message")?,
        )
    };
    let (mut techniques, mut tactics) = if kibana || signal {
        threat(doc, &format!("{rule}.threat"))?
    } else {
        (Vec::new(), Vec::new())
    };
    if techniques.is_empty() {
        techniques = str_list(doc, "threat.technique.id")?;
        techniques.extend(str_list(doc, "threat.technique.subtechnique.id")?);
    }
    if tactics.is_empty() {
        tactics = str_list(doc, "threat.tactic.name")?;
    }
    let module = if kibana || signal {
        "elastic".to_string()
    } else {
        opt_str(doc, "event.module")?.unwrap_or_else(|| "ecs".into())
    };
    let user = first(doc, &["user.name", "user.target.name"], opt_str)?;
    let alert = Alert {
        timestamp: ts,
        module,
        severity,
        severity_original: original,
        rule_id,
        rule_name,
        rule_category: category,
        source_ip: opt_ip(doc, "source.ip")?,
        source_port: opt_port(doc, "source.port")?,
        destination_ip: opt_ip(doc, "destination.ip")?,
        destination_port: opt_port(doc, "destination.port")?,
        transport: opt_str(doc, "network.transport")?.map(|t| t.to_ascii_lowercase()),
        host_name: opt_str(doc, "host.name")?,
        user_name: user,
        technique_ids: sorted_unique(techniques),
        tactics,
        message,
        original: text.to_string(),
    };
    // Elastic's alert uuid, else the search hit's id, else the fingerprint vigil exported (so
    // `vigil export | vigil ingest` adds nothing), else the content.
    let fp = if let Some(uuid) = opt_str(doc, "kibana.alert.uuid")? {
        sha256_hex(format!("elastic\0{uuid}").as_bytes())
    } else if let Some(id) = hit_id {
        sha256_hex(format!("elastic\0{id}").as_bytes())
    } else if let Some(fp) = opt_str(doc, "vigil.fingerprint")? {
        fp
    } else {
        content_fingerprint(doc)
    };
    Ok(Parsed::Alert(Box::new(alert), fp))
}

/// Severity of an Elastic alert (its rule's severity word) or of an ECS event: vigil's own
/// 1-4 when the document is a vigil export, Suricata's priority from Elastic's Suricata
/// module, otherwise `event.severity` read on Elastic's 0-100 risk bands. No severity is low.
fn severity(doc: &Value, elastic: bool, rule: &str) -> Result<(Severity, Option<String>), Reject> {
    if elastic {
        for path in ["kibana.alert.severity", &format!("{rule}.severity")] {
            if let Some(word) = opt_str(doc, path)? {
                let sev = severity_word(&word).ok_or_else(|| {
                    reject(format!(
                        "field `{path}`: expected low, medium, high or critical, found {word:?}"
                    ))
                })?;
                return Ok((sev, Some(word)));
            }
        }
        for path in ["kibana.alert.risk_score", &format!("{rule}.risk_score")] {
            if let Some(score) = opt_int(doc, path)? {
                return Ok((severity_from_risk(score as f64), Some(score.to_string())));
            }
        }
        return Ok((Severity::Low, None));
    }
    if field(doc, "vigil").is_some() {
        if let Some(original) = opt_str(doc, "vigil.severity_original")? {
            let level = opt_int(doc, "event.severity")?.unwrap_or(1);
            return Ok((Severity::from_level(level), Some(original)));
        }
    }
    // Elastic's Suricata module keeps Suricata's priority (1 most severe) in event.severity.
    if opt_str(doc, "event.module")?.as_deref() == Some("suricata") {
        if let Some(p) = opt_int(doc, "event.severity")? {
            let sev = match p {
                1 => Severity::High,
                2 => Severity::Medium,
                _ => Severity::Low,
            };
            return Ok((sev, Some(p.to_string())));
        }
    }
    match field(doc, "event.severity") {
        None => Ok((Severity::Low, None)),
        Some(Value::Number(n)) if n.as_f64().is_some() => {
            let v = n.as_f64().unwrap_or_default();
            Ok((severity_from_risk(v), Some(n.to_string())))
        }
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(v) => Ok((severity_from_risk(v), Some(s.clone()))),
            Err(_) => match severity_word(s) {
                Some(sev) => Ok((sev, Some(s.clone()))),
                None => Err(reject(format!(
                    "field `event.severity`: expected a number, found the string {s:?}"
                ))),
            },
        },
        Some(v) => Err(reject(format!(
            "field `event.severity`: expected a number, found {}",
            kind(v)
        ))),
    }
}

/// ATT&CK ids and tactic names from a rule's `threat` list (technique ids with their
/// sub-technique ids, tactic names).
fn threat(doc: &Value, path: &str) -> Result<(Vec<String>, Vec<String>), Reject> {
    let Some(v) = field(doc, path) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let entries: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        other => {
            return Err(reject(format!(
                "field `{path}`: expected a list of threat entries, found {}",
                kind(other)
            )))
        }
    };
    let (mut techniques, mut tactics) = (Vec::new(), Vec::new());
    for e in entries {
        if let Some(t) = opt_str(e, "tactic.name").map_err(|r| in_threat(path, r))? {
            tactics.push(t);
        }
        let list = match field(e, "technique") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(t @ Value::Object(_)) => vec![t],
            _ => Vec::new(),
        };
        for t in list {
            if let Some(id) = opt_str(t, "id").map_err(|r| in_threat(path, r))? {
                techniques.push(id);
            }
            if let Some(Value::Array(subs)) = field(t, "subtechnique") {
                for s in subs {
                    if let Some(id) = opt_str(s, "id").map_err(|r| in_threat(path, r))? {
                        techniques.push(id);
                    }
                }
            }
        }
    }
    Ok((techniques, tactics))
}

fn in_threat(path: &str, r: Reject) -> Reject {
    Reject(r.0.replacen("field `", &format!("field `{path}[]."), 1))
}
