//! Wazuh `alerts.json`: every line is an alert. Wazuh's `id` alone is not unique (the sample
//! generator reuses one, and ids restart per manager), so the fingerprint also takes the
//! timestamp, the manager, the agent and the rule.

use super::{opt_int, opt_ip, opt_port, opt_str, str_list, timestamp, Parsed, Reject};
use crate::engine::alert::{sha256_hex, Alert, Severity};
use serde_json::Value;

pub(super) fn normalize(doc: &Value, text: &str) -> Result<Parsed, Reject> {
    let level = opt_int(doc, "rule.level")?;
    // Wazuh levels run 0-15; 12+ is Wazuh's own "high importance" band.
    let severity = match level.unwrap_or(0) {
        i64::MIN..=4 => Severity::Low,
        5..=7 => Severity::Medium,
        8..=11 => Severity::High,
        _ => Severity::Critical,
    };
    let groups = str_list(doc, "rule.groups")?;
    let user = match opt_str(doc, "data.dstuser")? {
        Some(u) => Some(u),
        None => match opt_str(doc, "data.srcuser")? {
            Some(u) => Some(u),
            None => opt_str(doc, "data.win.eventdata.targetUserName")?,
        },
    };
    let ts = timestamp(doc, "timestamp")?;
    let id = opt_str(doc, "id")?;
    let manager = opt_str(doc, "manager.name")?;
    let rule_id = opt_str(doc, "rule.id")?;
    let agent = opt_str(doc, "agent.id")?;
    let alert = Alert {
        timestamp: ts,
        module: "wazuh".into(),
        severity,
        severity_original: level.map(|l| l.to_string()),
        rule_id: rule_id.clone(),
        rule_name: opt_str(doc, "rule.description")?,
        rule_category: (!groups.is_empty()).then(|| groups.join(",")),
        source_ip: opt_ip(doc, "data.srcip")?,
        source_port: opt_port(doc, "data.srcport")?,
        destination_ip: opt_ip(doc, "data.dstip")?,
        destination_port: opt_port(doc, "data.dstport")?,
        transport: opt_str(doc, "data.protocol")?.map(|p| p.to_ascii_lowercase()),
        host_name: opt_str(doc, "agent.name")?,
        user_name: user,
        technique_ids: str_list(doc, "rule.mitre.id")?,
        tactics: str_list(doc, "rule.mitre.tactic")?,
        message: opt_str(doc, "full_log")?,
        original: text.to_string(),
    };
    let fp = match id {
        Some(id) => sha256_hex(
            format!(
                "wazuh\0{id}\0{}\0{}\0{}\0{}",
                ts.timestamp_nanos_opt().unwrap_or_default(),
                manager.unwrap_or_default(),
                agent.unwrap_or_default(),
                rule_id.unwrap_or_default()
            )
            .as_bytes(),
        ),
        None => super::content_fingerprint(doc),
    };
    Ok(Parsed::Alert(Box::new(alert), fp))
}
