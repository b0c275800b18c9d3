//! Incident grouping rules: which alerts belong together. Owns the rule shape and the group key
//! of an alert; the writer applies them inside its transaction.

use super::alert::Alert;
use serde::{Deserialize, Serialize};

/// One grouping rule from config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentRule {
    pub name: String,
    pub group_by: Vec<String>,
    pub window_minutes: u32,
}

/// ECS fields a rule may group by.
pub const GROUP_FIELDS: &[&str] = &[
    "rule.id",
    "rule.name",
    "rule.category",
    "source.ip",
    "destination.ip",
    "host.name",
    "user.name",
    "event.module",
    "network.transport",
    "threat.tactic.name",
    "threat.technique.id",
];

impl IncidentRule {
    /// # Errors
    /// An empty or unknown field list, or a zero window.
    pub fn check(&self) -> Result<(), String> {
        if self.group_by.is_empty() {
            return Err(format!("{}: group_by is empty", self.name));
        }
        if let Some(f) = self
            .group_by
            .iter()
            .find(|f| !GROUP_FIELDS.contains(&f.as_str()))
        {
            return Err(format!(
                "{}: cannot group by `{f}` (known: {})",
                self.name,
                GROUP_FIELDS.join(", ")
            ));
        }
        if self.window_minutes == 0 {
            return Err(format!("{}: window_minutes must be at least 1", self.name));
        }
        Ok(())
    }

    /// The group key of `alert` under this rule, or `None` when the alert lacks a field.
    pub fn key(&self, alert: &Alert) -> Option<String> {
        let mut key = self.name.clone();
        for f in &self.group_by {
            let v = field(alert, f)?;
            key.push('|');
            key.push_str(&v);
        }
        Some(key)
    }
}

fn joined(v: &[String]) -> Option<String> {
    let mut v = v.to_vec();
    v.sort();
    (!v.is_empty()).then(|| v.join(","))
}

/// The text value of a groupable field.
pub fn field(a: &Alert, name: &str) -> Option<String> {
    match name {
        "rule.id" => a.rule_id.clone(),
        "rule.name" => a.rule_name.clone(),
        "rule.category" => a.rule_category.clone(),
        "source.ip" => a.source_ip.map(|i| i.to_string()),
        "destination.ip" => a.destination_ip.map(|i| i.to_string()),
        "host.name" => a.host_name.clone(),
        "user.name" => a.user_name.clone(),
        "event.module" => Some(a.module.clone()),
        "network.transport" => a.transport.clone(),
        "threat.tactic.name" => joined(&a.tactics),
        "threat.technique.id" => joined(&a.technique_ids),
        _ => None,
    }
}

/// The first rule that applies to `alert`, with the alert's key under it.
pub fn matching<'a>(
    rules: &'a [IncidentRule],
    alert: &Alert,
) -> Option<(&'a IncidentRule, String)> {
    rules.iter().find_map(|r| r.key(alert).map(|k| (r, k)))
}
