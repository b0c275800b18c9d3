//! What an analyst reads back from the real binary: commands that must succeed, their JSON
//! lines, and the actions `vigil actions --all` lists. Include it with `mod common;` and
//! `#[path = "common/cli.rs"] mod cli;`.
#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;
use std::process::Output;

/// `vigil ARGS` in a private home; fails the test with vigil's stderr unless it succeeds.
pub fn vigil_ok(home: &Path, args: &[&str]) -> Output {
    let out = crate::common::vigil(home, args);
    assert!(
        out.status.success(),
        "vigil {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every line vigil printed, each one JSON.
pub fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout line is JSON"))
        .collect()
}

/// `tests/fixtures/suricata-alert.json` ingested into `home`'s database.
pub fn ingest_fixture(home: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/suricata-alert.json");
    vigil_ok(home, &["ingest", &fixture.display().to_string()]);
}

/// Every action, as `vigil actions --all` prints it.
pub fn actions(home: &Path) -> Vec<Value> {
    json_lines(&vigil_ok(home, &["actions", "--all"]))
}

/// The status of action `id`.
pub fn status(home: &Path, id: i64) -> String {
    actions(home)
        .into_iter()
        .find(|a| a["id"] == id)
        .and_then(|a| a["status"].as_str().map(str::to_string))
        .expect("action")
}
