//! `vigil ingest`, `vigil score` and `vigil iocs` on the files an analyst hands them: a batch
//! with a broken gzip in the middle, a line too long to parse, pretty-printed arrays and
//! configured mappings. Each test runs the real binary.

#[path = "common/cli.rs"]
mod cli;
mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/db.rs"]
mod db;
#[path = "common/eve.rs"]
mod eve;
#[path = "common/wait.rs"]
mod wait;

use cli::json_lines;
use common::vigil;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use wait::wait_until;

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).expect("gzip");
    gz.finish().expect("gzip")
}

fn summary(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "summary JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_truncated_gzip_in_a_batch_keeps_its_readable_part_and_the_next_file_is_read() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    let a = dir.join("a.json");
    let b = dir.join("b.json.gz");
    let c = dir.join("c.json");
    std::fs::write(&a, eve::alert_lines(0..3, "first file", 1)).expect("a");
    let whole = gzip(&eve::alert_lines(100..2100, "broken file", 1));
    std::fs::write(&b, &whole[..whole.len() * 2 / 3]).expect("b");
    std::fs::write(&c, eve::alert_lines(200..205, "last file", 1)).expect("c");
    let args: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let out = vigil(dir, &["ingest", &args[0], &args[1], &args[2]]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a file that could not be read to its end is exit 1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["files"], 3, "{s}");
    assert_eq!(s["unreadable"], 1, "{s}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&args[1]), "stderr names the file: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line per unreadable file: {stderr}"
    );

    let db = dir.join("data/vigil.db");
    let rules = db::texts(&db, "SELECT rule_name FROM alerts");
    let count = |prefix: &str| rules.iter().filter(|r| r.starts_with(prefix)).count();
    assert_eq!(count("first file"), 3);
    assert_eq!(
        count("last file"),
        5,
        "the file after the broken one is read"
    );
    let readable = count("broken file");
    assert!(
        readable > 100 && readable < 2000,
        "the readable part of the broken gzip is kept: {readable}"
    );
    assert_eq!(s["alerts"].as_u64(), Some(3 + 5 + readable as u64), "{s}");
    let reasons = db::texts(&db, "SELECT reason FROM quarantine");
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with(&format!("{}:{}: ", args[1], readable + 1)),
        "the reason names the file and the line it broke on: {reasons:?}"
    );
    assert_eq!(s["quarantined"], 1, "{s}");
}

#[test]
fn a_missing_file_in_a_batch_is_reported_and_the_rest_is_read() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    let a = dir.join("a.json");
    std::fs::write(&a, eve::alert_lines(0..2, "present", 1)).expect("a");
    let missing = dir.join("gone.json").display().to_string();
    let out = vigil(dir, &["ingest", &missing, &a.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let s = summary(&out);
    assert_eq!(
        (s["alerts"].as_u64(), s["unreadable"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&missing));
}

#[test]
fn an_over_long_line_is_quarantined_whole_once_by_ingest_and_by_the_tailer() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let file = logs.join("eve.json");
    // 2 MiB of junk, then an alert on the same line: none of it may be read as an alert.
    let mut text = "A".repeat(2 * 1024 * 1024);
    text.push_str(&eve::alert_line(1, "hidden after junk", 1));
    text.push_str(&eve::alert_line(2, "visible", 1));
    std::fs::write(&file, &text).expect("write");
    let path = file.display().to_string();

    let out = vigil(dir, &["ingest", &path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out);
    assert_eq!(
        (s["alerts"].as_u64(), s["quarantined"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let ingested = dir.join("data/vigil.db");
    let want = format!(
        "{path}:1: line is {} bytes, over the 1048576 byte limit ([ingest] max_record_bytes)",
        2 * 1024 * 1024 + eve::alert_line(1, "hidden after junk", 1).len() - 1
    );
    assert_eq!(
        db::texts(&ingested, "SELECT reason FROM quarantine"),
        vec![want.clone()]
    );

    let tailed = dir.join("tailed.db");
    let mut cmd = common::command(
        dir,
        &[
            "daemon",
            "--db",
            &tailed.display().to_string(),
            "--watch",
            &path,
        ],
    );
    cmd.env("VIGIL_DATA", dir.join("data2"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let daemon = daemon::Daemon::spawn(cmd);
    wait_until(
        Duration::from_secs(60),
        "the tailer to commit the visible alert",
        || {
            db::number(
                &tailed,
                "SELECT count(*) FROM alerts WHERE rule_name LIKE 'visible%'",
            ) == 1
        },
    );
    let out = daemon.stop();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db::texts(&tailed, "SELECT rule_name FROM alerts"),
        vec!["visible 2".to_string()],
        "nothing after the junk is read as an alert"
    );
    assert_eq!(
        db::texts(&tailed, "SELECT reason FROM quarantine"),
        vec![want],
        "the tailer quarantines the line whole, once, with the same reason as ingest"
    );
}

fn okta_config(home: &Path) {
    std::fs::create_dir_all(home.join("config")).expect("config dir");
    std::fs::write(
        home.join("config/config.toml"),
        r#"[ingest.mappings.okta]
module = "okta"
when = ["eventType", "published"]
fingerprint = ["uuid"]
[ingest.mappings.okta.fields]
published = "@timestamp"
eventType = "rule.id"
displayMessage = "rule.name"
severity = "event.severity"
"client.ipAddress" = "source.ip"
[ingest.mappings.okta.severity]
info = 1
warn = 2
error = 3
"#,
    )
    .expect("config");
}

fn okta_file(dir: &Path) -> PathBuf {
    let f = dir.join("okta.json");
    let lines: String = (0..4)
        .map(|i| {
            format!(
                r#"{{"published":"2024-08-13T15:58:2{i}.353Z","eventType":"security.threat.detected","severity":"WARN","displayMessage":"Request from suspicious actor","client":{{"ipAddress":"203.0.113.{i}"}},"uuid":"dc9fd3c0-598c-11ef-8478-2b7584bf8d5{i}"}}"#
            ) + "\n"
        })
        .collect();
    std::fs::write(&f, lines).expect("okta");
    f
}

#[test]
fn score_and_iocs_read_every_file_ingest_reads() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    okta_config(dir);
    let array = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats/suricata-array.json");
    let pretty = dir.join("pretty.json.gz");
    std::fs::write(
        &pretty,
        gzip(&std::fs::read_to_string(&array).expect("array")),
    )
    .expect("gz");
    for file in [array, pretty, okta_file(dir)] {
        let name = file.display().to_string();
        let db = dir.join(format!(
            "{}.db",
            file.file_name().and_then(|n| n.to_str()).unwrap_or("x")
        ));
        let out = vigil(dir, &["ingest", "--db", &db.display().to_string(), &name]);
        let s = summary(&out);
        assert_eq!(s["quarantined"], 0, "{name}: {s}");
        let stored = s["alerts"].as_u64().expect("alerts");
        assert!(stored >= 2, "{name}: {s}");

        let out = vigil(dir, &["score", &name]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let scored = json_lines(&out);
        assert_eq!(scored.len() as u64, stored, "{name}: {scored:?}");
        assert!(
            scored.iter().all(|v| v["vigil"].is_object()),
            "{name}: {scored:?}"
        );

        let out = vigil(dir, &["iocs", &name]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let found = json_lines(&out);
        assert_eq!(found.len() as u64, stored, "{name}: {found:?}");
        assert!(
            found.iter().all(|v| v["iocs"].is_array()),
            "{name}: {found:?}"
        );
        assert!(
            found
                .iter()
                .all(|v| v["line"].as_u64().is_some_and(|l| l >= 1)),
            "{name}: {found:?}"
        );
    }
}
