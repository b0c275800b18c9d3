//! Incident grouping: which alerts belong together (the configured rules and an alert's group
//! key), and what the risk model learns from that: incident size and rate when an alert
//! arrives. The writer applies the same rules inside its transaction.

use super::alert::Alert;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

/// One open incident as the window rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenIncident {
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub alerts: u32,
}

impl OpenIncident {
    /// Whether an alert at `t` joins this incident (the writer's rule, kept identical).
    pub fn accepts(&self, t: DateTime<Utc>, window: Duration) -> bool {
        self.last_seen >= t - window && self.first_seen <= t + window
    }
}

/// Incident size and rate an alert is scored with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IncidentFigures {
    /// Alerts in the incident including this one.
    pub alerts: u32,
    /// Alerts per hour over the incident's span, the span counted as at least one window so a
    /// burst of two does not read as thousands per hour.
    pub rate_per_hour: f64,
}

impl IncidentFigures {
    /// An alert no rule groups: an incident of its own.
    pub const ALONE: IncidentFigures = IncidentFigures {
        alerts: 1,
        rate_per_hour: 0.0,
    };
}

/// Size and rate of `inc` (already including the alert).
pub fn figures(inc: &OpenIncident, window: Duration) -> IncidentFigures {
    let span = (inc.last_seen - inc.first_seen).max(window);
    let hours = (span.num_milliseconds() as f64 / 3_600_000.0).max(1.0 / 3600.0);
    IncidentFigures {
        alerts: inc.alerts,
        rate_per_hour: f64::from(inc.alerts) / hours,
    }
}

/// The key and window of the first rule that groups `a`.
pub fn group(rules: &[IncidentRule], a: &Alert) -> Option<(String, Duration)> {
    matching(rules, a).map(|(r, k)| (k, Duration::minutes(i64::from(r.window_minutes))))
}

/// The window rule over alerts seen in order, seeded (optionally) with incidents that are
/// already stored.
#[derive(Debug, Clone, Default)]
pub struct IncidentTracker {
    open: HashMap<String, OpenIncident>,
}

impl IncidentTracker {
    pub fn new() -> Self {
        IncidentTracker::default()
    }

    /// Whether `key` has been seen or seeded.
    pub fn knows(&self, key: &str) -> bool {
        self.open.contains_key(key)
    }

    /// Start from a stored incident (the live pipeline seeds from the database).
    pub fn seed(&mut self, key: String, inc: OpenIncident) {
        self.open.insert(key, inc);
    }

    /// Add one alert under `key` and return its incident's figures.
    pub fn observe(&mut self, key: &str, t: DateTime<Utc>, window: Duration) -> IncidentFigures {
        let inc = match self.open.get_mut(key) {
            Some(inc) if inc.accepts(t, window) => {
                inc.alerts = inc.alerts.saturating_add(1);
                inc.first_seen = inc.first_seen.min(t);
                inc.last_seen = inc.last_seen.max(t);
                *inc
            }
            _ => {
                let inc = OpenIncident {
                    first_seen: t,
                    last_seen: t,
                    alerts: 1,
                };
                self.open.insert(key.to_string(), inc);
                inc
            }
        };
        figures(&inc, window)
    }
}

/// Figures for a set of alerts read from files (training, `vigil score`): alerts are taken in
/// time order, as a tailer following the producer would have stored them.
pub fn figures_in_time_order(alerts: &[&Alert], rules: &[IncidentRule]) -> Vec<IncidentFigures> {
    let mut placements = Placements::default();
    for a in alerts {
        placements.add(rules, a);
    }
    placements.figures()
}

/// Where each alert of a file falls for incident figures (its time, and its incident key and
/// window when a rule groups it), kept without the alerts themselves so a file of any size
/// can be placed in one pass and scored in a second.
#[derive(Debug, Default)]
pub struct Placements {
    keys: HashMap<String, u32>,
    alerts: Vec<Placed>,
}

/// One alert's time, and its incident key (an index into `keys`) and window when grouped.
#[derive(Debug, Clone, Copy)]
struct Placed {
    at: DateTime<Utc>,
    group: Option<(u32, Duration)>,
}

impl Placements {
    /// Place the next alert.
    pub fn add(&mut self, rules: &[IncidentRule], a: &Alert) {
        let grouped = group(rules, a).map(|(key, window)| {
            let next = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
            (*self.keys.entry(key).or_insert(next), window)
        });
        self.alerts.push(Placed {
            at: a.timestamp,
            group: grouped,
        });
    }

    /// Alerts placed so far.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// True when no alert was placed.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// Each placed alert's figures, in the order they were placed.
    pub fn figures(&self) -> Vec<IncidentFigures> {
        let mut order: Vec<usize> = (0..self.alerts.len()).collect();
        order.sort_by_key(|i| self.alerts[*i].at);
        let mut tracker = IncidentTracker::new();
        let mut out = vec![IncidentFigures::ALONE; self.alerts.len()];
        for i in order {
            let Placed { at, group } = self.alerts[i];
            if let Some((key, window)) = group {
                out[i] = tracker.observe(&key.to_string(), at, window);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_grows_one_incident_and_a_gap_starts_another() {
        let w = Duration::minutes(15);
        let t0 = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .expect("ts")
            .with_timezone(&Utc);
        let mut tr = IncidentTracker::new();
        assert_eq!(tr.observe("k", t0, w).alerts, 1);
        let f = tr.observe("k", t0 + Duration::minutes(1), w);
        assert_eq!(f.alerts, 2);
        assert!((f.rate_per_hour - 8.0).abs() < 1e-9, "2 per 15 min window");
        assert_eq!(tr.observe("other", t0, w).alerts, 1);
        assert_eq!(tr.observe("k", t0 + Duration::hours(2), w).alerts, 1);
    }
}
