//! Enrichment in the ECS export: `threat.enrichments` (indicator and matched fields), GeoIP
//! under `source.geo`/`destination.geo` and `*.as`, ATT&CK names and references beside
//! `threat.technique.id`, and the model's signals under `vigil.enrichment`. Owns the shape
//! only; carries no secret (results never hold keys or request URLs).

use super::{attack, EnrichmentResult, SourceKind};
use crate::engine::alert::{put_path, Alert};
use crate::engine::features::EnrichmentSignals;
use serde_json::{json, Value};

/// Add enrichment to an ECS document built by `store::ecs_document`.
pub fn add_to_ecs(
    doc: &mut Value,
    alert: &Alert,
    results: &[EnrichmentResult],
    signals: Option<&EnrichmentSignals>,
) {
    let Value::Object(m) = doc else {
        return;
    };
    let now = chrono::Utc::now();
    let entries: Vec<Value> = results
        .iter()
        .filter(|r| r.source_kind != SourceKind::Geoip)
        .map(|r| r.to_ecs(now))
        .collect();
    if !entries.is_empty() {
        put_path(m, "threat.enrichments", Value::Array(entries));
    }
    for (side, ip) in [
        ("source", alert.source_ip),
        ("destination", alert.destination_ip),
    ] {
        let Some(ip) = ip.map(|i| i.to_string()) else {
            continue;
        };
        if let Some(g) = results
            .iter()
            .find(|r| r.source_kind == SourceKind::Geoip && r.indicator == ip)
        {
            let d = &g.detail;
            for (from, to) in [
                ("country_iso_code", "geo.country_iso_code"),
                ("country_name", "geo.country_name"),
                ("city_name", "geo.city_name"),
                ("asn", "as.number"),
                ("as_organization", "as.organization.name"),
            ] {
                if let Some(v) = d.get(from).filter(|v| !v.is_null()) {
                    put_path(m, &format!("{side}.{to}"), v.clone());
                }
            }
        }
    }
    let known: Vec<&attack::Technique> = alert
        .technique_ids
        .iter()
        .filter_map(|t| attack::technique(t))
        .collect();
    if !known.is_empty() {
        put_path(
            m,
            "threat.technique.name",
            json!(known.iter().map(|t| t.name).collect::<Vec<_>>()),
        );
        put_path(
            m,
            "threat.technique.reference",
            json!(known.iter().map(|t| t.url).collect::<Vec<_>>()),
        );
        if alert.tactics.is_empty() {
            let mut tactics: Vec<&str> = known
                .iter()
                .flat_map(|t| t.tactics.iter().copied())
                .collect();
            tactics.dedup();
            put_path(m, "threat.tactic.name", json!(tactics));
        }
    }
    if let Some(s) = signals {
        put_path(m, "vigil.enrichment", json!(s));
    }
}
