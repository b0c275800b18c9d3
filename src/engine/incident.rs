//! How alerts group into incidents, and what the risk model learns from that: the group key,
//! the window rule, and incident size and rate at the moment an alert arrives. Owns the rule in
//! memory; the database copy of the same rule lives in `store` (which calls `group_key`), so a
//! model trained on files sees the same numbers the live pipeline computes from the database.

use super::alert::Alert;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

/// Alerts with the same key and overlapping windows form one incident: same producer, same rule,
/// same source address.
pub fn group_key(a: &Alert) -> String {
    let src = a.source_ip.map(|i| i.to_string()).unwrap_or_default();
    format!(
        "rule:{}|{}|src:{src}",
        a.module,
        a.rule_id
            .as_deref()
            .unwrap_or(a.rule_name.as_deref().unwrap_or(""))
    )
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

/// Size and rate of `inc` (already including the alert).
pub fn figures(inc: &OpenIncident, window: Duration) -> IncidentFigures {
    let span = (inc.last_seen - inc.first_seen).max(window);
    let hours = (span.num_milliseconds() as f64 / 3_600_000.0).max(1.0 / 3600.0);
    IncidentFigures {
        alerts: inc.alerts,
        rate_per_hour: f64::from(inc.alerts) / hours,
    }
}

/// The window rule over alerts seen in order, seeded (optionally) with incidents that are
/// already stored.
#[derive(Debug, Clone)]
pub struct IncidentTracker {
    window: Duration,
    open: HashMap<String, OpenIncident>,
}

impl IncidentTracker {
    /// An empty tracker with the incident window.
    pub fn new(window: Duration) -> Self {
        IncidentTracker {
            window,
            open: HashMap::new(),
        }
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
    pub fn observe(&mut self, key: &str, t: DateTime<Utc>) -> IncidentFigures {
        let window = self.window;
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
pub fn figures_in_time_order(alerts: &[&Alert], window: Duration) -> Vec<IncidentFigures> {
    let mut order: Vec<usize> = (0..alerts.len()).collect();
    order.sort_by_key(|i| alerts[*i].timestamp);
    let mut tracker = IncidentTracker::new(window);
    let mut out = vec![
        IncidentFigures {
            alerts: 1,
            rate_per_hour: 0.0
        };
        alerts.len()
    ];
    for i in order {
        out[i] = tracker.observe(&group_key(alerts[i]), alerts[i].timestamp);
    }
    out
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
        let mut tr = IncidentTracker::new(w);
        assert_eq!(tr.observe("k", t0).alerts, 1);
        let f = tr.observe("k", t0 + Duration::minutes(1));
        assert_eq!(f.alerts, 2);
        assert!((f.rate_per_hour - 8.0).abs() < 1e-9, "2 per 15 min window");
        assert_eq!(tr.observe("other", t0).alerts, 1);
        assert_eq!(tr.observe("k", t0 + Duration::hours(2)).alerts, 1);
    }
}
