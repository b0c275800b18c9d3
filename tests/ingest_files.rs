//! `vigil ingest`, `vigil score` and `vigil iocs` on the files an analyst hands them: a batch
//! with a broken gzip in the middle, a line too long to parse, pretty-printed arrays and
//! configured mappings. Each test runs the real binary.

mod common;

use common::vigil;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn alert_line(id: u64, rule: &str) -> String {
    format!(
        r#"{{"timestamp":"2024-05-01T12:00:{:02}.{:06}Z","flow_id":{id},"event_type":"alert","src_ip":"198.51.100.{}","src_port":{},"dest_ip":"10.1.0.5","dest_port":443,"proto":"TCP","alert":{{"action":"allowed","gid":1,"signature_id":{},"rev":1,"signature":"{rule} {id}","category":"A Network Trojan was detected","severity":1}}}}"#,
        id % 60,
        id % 1_000_000,
        id % 250,
        1024 + id % 60000,
        2_000_000 + id % 7
    ) + "\n"
}

fn alerts(ids: std::ops::Range<u64>, rule: &str) -> String {
    ids.map(|i| alert_line(i, rule)).collect()
}

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

fn query(db: &Path, sql: &str) -> Vec<String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("db");
    let mut stmt = conn.prepare(sql).expect("prepare");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn a_truncated_gzip_in_a_batch_keeps_its_readable_part_and_the_next_file_is_read() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    let a = dir.join("a.json");
    let b = dir.join("b.json.gz");
    let c = dir.join("c.json");
    std::fs::write(&a, alerts(0..3, "first file")).expect("a");
    let whole = gzip(&alerts(100..2100, "broken file"));
    std::fs::write(&b, &whole[..whole.len() * 2 / 3]).expect("b");
    std::fs::write(&c, alerts(200..205, "last file")).expect("c");
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
    let rules = query(&db, "SELECT rule_name FROM alerts");
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
    let reasons = query(&db, "SELECT reason FROM quarantine");
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
    std::fs::write(&a, alerts(0..2, "present")).expect("a");
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

/// A running daemon, killed if the test fails before it stops.
struct Daemon(Option<Child>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
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
    text.push_str(&alert_line(1, "hidden after junk"));
    text.push_str(&alert_line(2, "visible"));
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
        2 * 1024 * 1024 + alert_line(1, "hidden after junk").len() - 1
    );
    assert_eq!(
        query(&ingested, "SELECT reason FROM quarantine"),
        vec![want.clone()]
    );

    let tailed = dir.join("tailed.db");
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "daemon",
            "--db",
            &tailed.display().to_string(),
            "--watch",
            &path,
        ])
        .env("VIGIL_DATA", dir.join("data2"))
        .env("VIGIL_CONFIG", dir.join("config"))
        .env("VIGIL_CACHE", dir.join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("daemon");
    let mut daemon = Daemon(Some(child));
    let count = |sql: &str| {
        rusqlite::Connection::open_with_flags(&tailed, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0)
    };
    wait_until("the tailer to commit the visible alert", || {
        count("SELECT count(*) FROM alerts WHERE rule_name LIKE 'visible%'") == 1
    });
    let pid = daemon.0.as_ref().map_or(0, Child::id);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let out = daemon
        .0
        .take()
        .expect("running")
        .wait_with_output()
        .expect("exit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        query(&tailed, "SELECT rule_name FROM alerts"),
        vec!["visible 2".to_string()],
        "nothing after the junk is read as an alert"
    );
    assert_eq!(
        query(&tailed, "SELECT reason FROM quarantine"),
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
