//! The CLI contract, driven through the real binary with isolated config and data directories:
//! ingest summaries, exactly-once on re-ingest, export shape, audit, exit codes.

#[path = "common/cli.rs"]
mod cli;
mod common;
#[path = "common/db.rs"]
mod db;
use cli::json_lines;
use common::vigil;
use serde_json::Value;
use std::path::PathBuf;

fn repo(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(p)
        .display()
        .to_string()
}

fn count_lines(path: &str, pred: impl Fn(&str) -> bool) -> u64 {
    std::fs::read_to_string(path)
        .expect("read sample")
        .lines()
        .filter(|l| !l.trim().is_empty() && pred(l))
        .count() as u64
}

#[test]
fn ingest_twice_adds_nothing_the_second_time() {
    let home = tempfile::tempdir().expect("tempdir");
    let eve = repo("samples/suricata-eve.json");
    let wazuh = repo("samples/wazuh-alerts.json");
    let first = vigil(home.path(), &["ingest", &eve, &wazuh]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let s = &json_lines(&first)[0];
    let eve_alerts = count_lines(&eve, |l| l.contains("\"event_type\":\"alert\""));
    let eve_other = count_lines(&eve, |l| !l.contains("\"event_type\":\"alert\""));
    let wazuh_alerts = count_lines(&wazuh, |_| true);
    assert_eq!(s["read"], eve_alerts + eve_other + wazuh_alerts);
    assert_eq!(s["skipped"], eve_other);
    assert_eq!(s["quarantined"], 0);
    assert_eq!(
        s["alerts"].as_u64().expect("n") + s["duplicates"].as_u64().expect("n"),
        eve_alerts + wazuh_alerts
    );
    let stored = s["alerts"].as_u64().expect("n");
    assert!(stored > 300, "{s}");

    let second = vigil(home.path(), &["ingest", &eve, &wazuh]);
    let s2 = &json_lines(&second)[0];
    assert_eq!(s2["alerts"], 0, "re-ingest must add nothing: {s2}");
    assert_eq!(
        s2["duplicates"].as_u64().expect("n"),
        eve_alerts + wazuh_alerts
    );

    let export = vigil(home.path(), &["export"]);
    assert!(export.status.success());
    let docs = json_lines(&export);
    assert_eq!(docs.len() as u64, stored);
}

#[test]
fn export_has_nested_ecs_fields_risk_and_incident() {
    let home = tempfile::tempdir().expect("tempdir");
    let fixture = repo("tests/fixtures/suricata-alert.json");
    assert!(vigil(home.path(), &["ingest", &fixture]).status.success());
    let docs = json_lines(&vigil(home.path(), &["export", "--format", "jsonl"]));
    assert_eq!(docs.len(), 3);
    let raw: Vec<Value> = std::fs::read_to_string(&fixture)
        .expect("fixture")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    for (doc, src) in docs.iter().zip(&raw) {
        let ip = |v: &Value| {
            v.as_str()
                .map(|s| s.parse::<std::net::IpAddr>().expect("ip"))
        };
        assert_eq!(ip(&doc["source"]["ip"]), ip(&src["src_ip"]));
        assert_eq!(ip(&doc["destination"]["ip"]), ip(&src["dest_ip"]));
        assert_eq!(doc["source"]["port"], src["src_port"]);
        assert_eq!(doc["destination"]["port"], src["dest_port"]);
        assert_eq!(doc["rule"]["name"], src["alert"]["signature"]);
        assert_eq!(doc["rule"]["id"], src["alert"]["signature_id"].to_string());
        assert_eq!(doc["event"]["module"], "suricata");
        assert_eq!(
            doc["network"]["transport"],
            src["proto"].as_str().expect("proto").to_lowercase()
        );
        let risk = doc["vigil"]["risk"].as_u64().expect("risk is a number");
        assert!(risk <= 100);
        assert!(doc["vigil"]["incident_id"].as_i64().is_some());
        let original: Value =
            serde_json::from_str(doc["event"]["original"].as_str().expect("original"))
                .expect("json");
        assert_eq!(&original, src, "the raw document is kept whole");
    }
}

#[test]
fn malformed_lines_are_quarantined_with_file_line_and_field() {
    let home = tempfile::tempdir().expect("tempdir");
    let fixture = repo("tests/fixtures/malformed.json");
    let out = vigil(home.path(), &["ingest", &fixture]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = &json_lines(&out)[0];
    assert_eq!(s["alerts"], 3, "{s}");
    assert_eq!(s["quarantined"], 5, "{s}");
    let reasons = db::texts(
        &home.path().join("data/vigil.db"),
        "SELECT reason FROM quarantine ORDER BY line_no",
    );
    assert_eq!(reasons.len(), 5);
    assert!(
        reasons
            .iter()
            .all(|r| r.starts_with(&format!("{fixture}:"))),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(
            |r| r.contains("field `src_port`: expected a port 0-65535, found a string \"abc\"")
        ),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("invalid UTF-8")),
        "{reasons:?}"
    );
}

#[test]
fn audit_records_every_ingest_batch_and_verifies() {
    let home = tempfile::tempdir().expect("tempdir");
    let fixture = repo("tests/fixtures/wazuh-alert.json");
    assert!(vigil(home.path(), &["ingest", &fixture]).status.success());
    let all = json_lines(&vigil(home.path(), &["audit"]));
    let records: Vec<&Value> = all.iter().filter(|r| r["kind"] == "ingest_batch").collect();
    assert_eq!(records.len(), 1, "one batch: {all:?}");
    assert!(
        all.iter()
            .all(|r| ["ingest_batch", "proposal"].contains(&r["kind"].as_str().unwrap_or(""))),
        "{all:?}"
    );
    assert_eq!(
        records[0]["actor_uid"].as_u64(),
        Some(u64::from(nix::unistd::getuid().as_raw()))
    );
    let v = vigil(home.path(), &["audit", "verify"]);
    assert!(v.status.success());
    assert_eq!(json_lines(&v)[0]["intact"], true);
}

#[test]
fn errors_are_one_line_with_the_right_exit_code() {
    let home = tempfile::tempdir().expect("tempdir");
    let missing = vigil(home.path(), &["export", "--db", "/nonexistent/x.db"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.trim(), "vigil: /nonexistent/x.db: no such database");

    let unreadable = vigil(home.path(), &["ingest", "/nonexistent/alerts.json"]);
    assert_eq!(unreadable.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unreadable.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("vigil: /nonexistent/alerts.json: cannot read"),
        "{err}"
    );

    std::fs::create_dir_all(home.path().join("config")).expect("mkdir");
    std::fs::write(home.path().join("config/config.toml"), "[risk]\nhihg = 3\n").expect("write");
    let bad = vigil(
        home.path(),
        &["ingest", &repo("tests/fixtures/wazuh-alert.json")],
    );
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("config.toml: unknown field `hihg`"), "{err}");

    let usage = vigil(home.path(), &["ingest"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn version_prints_the_directories() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = vigil(home.path(), &["--version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(concat!("vigil ", env!("CARGO_PKG_VERSION"))));
    assert!(
        text.contains(&format!("data:   {}", home.path().join("data").display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("config: {}", home.path().join("config").display())),
        "{text}"
    );
}

#[test]
fn score_prints_risk_and_explanation_per_alert() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = vigil(
        home.path(),
        &["score", &repo("tests/fixtures/suricata-alert.json")],
    );
    assert!(out.status.success());
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    for l in &lines {
        let risk = l["vigil"]["risk"].as_f64().expect("risk");
        let base = l["vigil"]["explanation"]["base_points"]
            .as_f64()
            .expect("base");
        assert!((0.0..=100.0).contains(&risk));
        assert!(base > 0.0);
    }
    let broken = home.path().join("broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(broken.join("model.toml"), "name = 1").expect("write");
    std::fs::write(broken.join("forest.json"), "{}").expect("write");
    let out = vigil(
        home.path(),
        &[
            "score",
            "--model",
            &broken.display().to_string(),
            &repo("tests/fixtures/suricata-alert.json"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model.toml"));
}
