//! Suricata EVE JSON: `alert` events become alerts; every other event type is skipped.

use super::{opt_int, opt_ip, opt_port, opt_str, str_list, timestamp, Parsed, Reject};
use crate::engine::alert::{Alert, Severity};
use serde_json::Value;

pub(super) fn normalize(doc: &Value, text: &str) -> Result<Parsed, Reject> {
    let event_type = opt_str(doc, "event_type")?;
    if event_type.as_deref() != Some("alert") {
        return Ok(Parsed::Skipped);
    }
    if !doc.get("alert").is_some_and(Value::is_object) {
        return Err(Reject(
            "field `alert`: missing or not an object in an alert event".into(),
        ));
    }
    // Suricata priority: 1 is the most severe, 3 (or more) the least.
    let priority = opt_int(doc, "alert.severity")?;
    let severity = match priority {
        Some(1) => Severity::High,
        Some(2) => Severity::Medium,
        Some(_) | None => Severity::Low,
    };
    let mut techniques = str_list(doc, "alert.metadata.mitre_technique_id")?;
    techniques.sort();
    techniques.dedup();
    let rule_name = opt_str(doc, "alert.signature")?;
    let alert = Alert {
        timestamp: timestamp(doc, "timestamp")?,
        module: "suricata".into(),
        severity,
        severity_original: priority.map(|p| p.to_string()),
        rule_id: opt_str(doc, "alert.signature_id")?,
        rule_category: opt_str(doc, "alert.category")?,
        source_ip: opt_ip(doc, "src_ip")?,
        source_port: opt_port(doc, "src_port")?,
        destination_ip: opt_ip(doc, "dest_ip")?,
        destination_port: opt_port(doc, "dest_port")?,
        transport: opt_str(doc, "proto")?.map(|p| p.to_ascii_lowercase()),
        host_name: opt_str(doc, "host")?,
        user_name: None,
        technique_ids: techniques,
        tactics: str_list(doc, "alert.metadata.mitre_tactic_name")?,
        message: rule_name.clone(),
        rule_name,
        original: text.to_string(),
    };
    let fp = super::content_fingerprint(doc);
    Ok(Parsed::Alert(Box::new(alert), fp))
}
