//! A crash at each point of an action's life, with the real binary killed by `abort()` at that
//! point (`VIGIL_FAULT`) and a local HTTP service counting the calls it receives:
//! - after the approval is committed: the action is still only approved; the next vigil runs it
//!   exactly once;
//! - after the intent is committed, before the call: outcome unknown, 0 calls;
//! - after the call, before the outcome: outcome unknown, 1 call;
//!
//! and an unknown action is never run again. Nothing is retried blindly.

#[path = "common/cli.rs"]
mod cli;
mod common;
#[path = "common/daemon.rs"]
mod daemon;

use cli::{actions, ingest_fixture, status};
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// `vigil ARGS`, made to abort at the point `fault` names.
fn vigil(home: &Path, fault: Option<&str>, args: &[&str]) -> Output {
    let mut c = common::command(home, args);
    c.env_remove("VIGIL_FAULT");
    if let Some(f) = fault {
        c.env("VIGIL_FAULT", f);
    }
    c.output().expect("run vigil")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_point_leaves_a_known_or_unknown_outcome_never_a_double_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    std::fs::create_dir_all(h.join("config/playbooks")).expect("mkdir");
    std::fs::write(
        h.join("config/config.toml"),
        format!(
            "[playbooks]\ndir = \"{}\"\n[connectors.webhook]\nurl = \"{}/hook\"\n",
            h.join("config/playbooks").display(),
            server.uri()
        ),
    )
    .expect("config");
    // One webhook step per alert, so each alert gives one action to crash.
    std::fs::write(
        h.join("config/playbooks/notify.yaml"),
        "name: notify\ndescription: test\nmatch:\n  all:\n    - field: event.module\n      equals: suricata\nsteps:\n  - id: tell\n    title: Tell\n    connector: webhook\n    params:\n      rule: \"${alert.rule.name}\"\n",
    )
    .expect("playbook");
    ingest_fixture(h);
    let ids: Vec<i64> = actions(h)
        .iter()
        .map(|a| a["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 3);
    let calls = || async { server.received_requests().await.unwrap_or_default().len() };

    // 1. Crash after the approval commits: the action waits, approved, and a later vigil runs it
    //    once.
    let crashed = vigil(
        h,
        Some("after_decision"),
        &["approve", &ids[0].to_string(), "--reason", "go"],
    );
    assert!(!crashed.status.success(), "the fault aborts the process");
    assert_eq!(status(h, ids[0]), "approved");
    assert_eq!(calls().await, 0);

    // 2. Crash after the intent commits, before the call is made.
    let crashed = vigil(
        h,
        Some("after_intent"),
        &["approve", &ids[1].to_string(), "--reason", "go"],
    );
    assert!(!crashed.status.success());
    assert_eq!(status(h, ids[1]), "running");
    assert_eq!(calls().await, 0);

    // 3. Crash after the call, before the outcome is recorded.
    let crashed = vigil(
        h,
        Some("after_call"),
        &["approve", &ids[2].to_string(), "--reason", "go"],
    );
    assert!(!crashed.status.success());
    assert_eq!(calls().await, 1);

    // The next vigil to touch the database recovers: interrupted calls become "unknown" and
    // are refused, never retried; the merely approved one may run.
    let again = vigil(
        h,
        None,
        &["approve", &ids[1].to_string(), "--reason", "retry?"],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is unknown"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(status(h, ids[1]), "unknown");
    assert_eq!(status(h, ids[2]), "unknown");
    assert_eq!(calls().await, 1, "nothing ran during recovery");

    // A daemon's executor runs what is approved and not yet started (action 1), once.
    let mut cmd = common::command(
        h,
        &[
            "daemon",
            "--watch",
            &h.join("nothing").display().to_string(),
        ],
    );
    cmd.stdout(std::process::Stdio::null());
    let daemon = daemon::Daemon::spawn(cmd);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while status(h, ids[0]) != "succeeded" {
        assert!(
            std::time::Instant::now() < deadline,
            "the approved action did not run"
        );
        // Wait for the next request to reach the mock (or the deadline).
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), async {
            while calls().await < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await;
    }
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon.wait();
    assert_eq!(
        calls().await,
        2,
        "action 1 ran exactly once; 2 and 3 were not retried"
    );
    let bodies: Vec<Value> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("json"))
        .collect();
    let keys: std::collections::HashSet<&str> = bodies
        .iter()
        .filter_map(|b| b["idempotency_key"].as_str())
        .collect();
    assert_eq!(keys.len(), 2, "each call carries its own idempotency key");

    let audit = vigil(h, None, &["audit"]);
    let kinds: Vec<String> = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["kind"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "outcome_unknown").count(), 2);
    let verify = vigil(h, None, &["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
