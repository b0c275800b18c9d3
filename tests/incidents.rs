//! Incident grouping through the real binary: the default rules (same rule and source within
//! 15 minutes; same host and ATT&CK tactic within an hour) and a custom rule from config.

#[path = "common/cli.rs"]
mod cli;
mod common;

use cli::{json_lines, vigil_ok};
use common::vigil;
use std::path::Path;

fn eve(ts: &str, sig: u32, src: &str) -> String {
    format!(
        r#"{{"timestamp":"{ts}","event_type":"alert","src_ip":"{src}","dest_ip":"10.0.0.9","proto":"TCP","alert":{{"signature_id":{sig},"signature":"test {sig}","category":"Misc","severity":2}}}}"#
    )
}

fn wazuh(ts: &str, rule: u32, host: &str, tactic: &str) -> String {
    format!(
        r#"{{"timestamp":"{ts}","id":"{rule}.{ts}","manager":{{"name":"m"}},"agent":{{"id":"001","name":"{host}"}},"rule":{{"id":"{rule}","level":10,"description":"r{rule}","mitre":{{"id":["T1110"],"tactic":["{tactic}"]}}}}}}"#
    )
}

fn incidents(home: &Path, lines: &[String], config: Option<&str>) -> Vec<Option<i64>> {
    let file = home.join("alerts.json");
    std::fs::write(&file, lines.join("\n") + "\n").expect("write");
    if let Some(c) = config {
        std::fs::create_dir_all(home.join("config")).expect("mkdir");
        std::fs::write(home.join("config/config.toml"), c).expect("config");
    }
    vigil_ok(home, &["ingest", &file.display().to_string()]);
    json_lines(&vigil_ok(home, &["export"]))
        .iter()
        .map(|v| v["vigil"]["incident_id"].as_i64())
        .collect()
}

#[test]
fn default_rules_group_by_rule_and_source_then_host_and_tactic() {
    let home = tempfile::tempdir().expect("tempdir");
    let lines = vec![
        eve("2024-01-01T10:00:00Z", 1, "203.0.113.5"),
        eve("2024-01-01T10:14:00Z", 1, "203.0.113.5"), // same rule+source, within 15 min
        eve("2024-01-01T10:40:00Z", 1, "203.0.113.5"), // 26 min after the last: a new incident
        eve("2024-01-01T10:00:30Z", 1, "198.51.100.7"), // another source
        wazuh("2024-01-01T10:00:00Z", 5710, "web-1", "Credential Access"),
        wazuh("2024-01-01T10:50:00Z", 5712, "web-1", "Credential Access"), // other rule, same host+tactic, within 1 h
        wazuh("2024-01-01T12:30:00Z", 5712, "web-1", "Credential Access"), // over an hour later
    ];
    let ids = incidents(home.path(), &lines, None);
    assert_eq!(ids.len(), 7);
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_ne!(ids[0], ids[3]);
    assert_eq!(ids[4], ids[5]);
    assert_ne!(ids[5], ids[6]);
}

#[test]
fn rules_come_from_config_and_bad_rules_are_refused() {
    let home = tempfile::tempdir().expect("tempdir");
    let cfg = "[incidents]\nrules = [{ name = \"by-destination\", group_by = [\"destination.ip\"], window_minutes = 600 }]\n";
    let lines = vec![
        eve("2024-01-01T10:00:00Z", 1, "203.0.113.5"),
        eve("2024-01-01T15:00:00Z", 2, "198.51.100.7"),
    ];
    let ids = incidents(home.path(), &lines, Some(cfg));
    assert_eq!(ids[0], ids[1], "both hit 10.0.0.9 within 10 hours");

    std::fs::write(
        home.path().join("config/config.toml"),
        "[incidents]\nrules = [{ name = \"x\", group_by = [\"source.port\"], window_minutes = 5 }]\n",
    )
    .expect("config");
    let out = vigil(
        home.path(),
        &[
            "ingest",
            &home.path().join("alerts.json").display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[[incidents.rules]] x: cannot group by `source.port`"),
        "{err}"
    );
}

/// A playbook that reads the incident: it proposes only once the incident is big enough, and
/// its template sees the count.
#[test]
fn playbooks_can_match_and_template_on_the_incident() {
    let home = tempfile::tempdir().expect("tempdir");
    let pb_dir = home.path().join("playbooks");
    std::fs::create_dir_all(&pb_dir).expect("mkdir");
    std::fs::write(
        pb_dir.join("burst.yaml"),
        r#"
name: burst
description: block a source that fires the same rule five times
match:
  all:
    - field: rule.id
      equals: "1"
    - field: incident.alert_count
      gte: 5
steps:
  - id: block
    title: Block the bursting source
    connector: blocklist
    params:
      entry: "${alert.source.ip}"
    rollback:
      connector: blocklist
      params:
        entry: "${alert.source.ip}"
        op: remove
  - id: tell
    title: Tell the channel how big the burst is
    connector: blocklist
    params:
      entry: "${incident.alert_count}.burst.example"
"#,
    )
    .expect("playbook");
    let config = format!("[playbooks]\ndir = \"{}\"\n", pb_dir.display());
    let lines: Vec<String> = (0..7)
        .map(|m| eve(&format!("2024-01-01T10:0{m}:00Z"), 1, "203.0.113.5"))
        .collect();
    let ids = incidents(home.path(), &lines, Some(&config));
    assert!(ids.iter().all(|i| *i == ids[0]), "one incident: {ids:?}");
    let actions = cli::actions(home.path());
    // Alerts 5, 6 and 7 each match: the block is one call (same source, deduplicated); the
    // counts differ, so three notes.
    let entries: Vec<&str> = actions
        .iter()
        .filter_map(|a| a["params"]["entry"].as_str())
        .collect();
    assert_eq!(
        entries,
        [
            "203.0.113.5",
            "5.burst.example",
            "6.burst.example",
            "7.burst.example"
        ]
    );
    assert!(actions[0]["rollback"]["rendered"]
        .as_str()
        .is_some_and(|r| r.starts_with("remove 203.0.113.5 from blocklist")));
}
