//! Retries only for calls that certainly never arrived. A webhook step with `retry: 3` against a
//! receiver that reads the request and never answers is sent once and ends "outcome unknown"; a
//! closed port on 127.0.0.1 (connection refused: nothing was sent) is tried all three times.

#[path = "common/engine.rs"]
mod engine;
#[path = "common/mock_http.rs"]
mod mock_http;

use mock_http::{closed_port_url, silent_receiver};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;
use vigil::engine::respond::Responder;
use vigil::engine::store::{self, WriterConfig};
use vigil::identity::Actor;

const PLAYBOOK: &str = r#"
name: notify
description: one webhook call, tried up to three times
match:
  all:
    - field: rule.name
      contains: "Mirai"
steps:
  - id: tell
    title: Tell the receiver
    connector: webhook
    approval: one_analyst
    retry:
      attempts: 3
      backoff_seconds: 0
    params:
      host: "${alert.source.ip}"
"#;

fn analyst() -> Actor {
    Actor {
        uid: 1001,
        name: "alice".into(),
        host: "test-host".into(),
    }
}

struct World {
    _dir: tempfile::TempDir,
    db: PathBuf,
    responder: Responder,
}

async fn world(webhook: &str) -> World {
    let cfg = WriterConfig {
        incident_rules: Vec::new(),
        actor: analyst(),
        playbooks: None,
    };
    let e = engine::with_fixture_alert(PLAYBOOK, webhook, Duration::from_secs(1), cfg).await;
    let leases = vigil::engine::lease::Leases::beside(&e.db);
    let responder = Responder::new(e.tx, e.connectors, analyst(), leases);
    World {
        _dir: e.dir,
        db: e.db,
        responder,
    }
}

impl World {
    fn only_action(&self) -> store::ActionRow {
        let conn = Connection::open(&self.db).expect("db");
        let mut all = store::actions(&conn, None).expect("actions");
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    /// The one proposed action approved, run to its end; its id and what became of it.
    async fn approve_only_action(&self) -> (i64, store::ActionRow) {
        let id = self.only_action().id;
        let done = self
            .responder
            .decide(id, true, "tell them".into(), &none)
            .await
            .expect("approved and run");
        (id, done)
    }

    fn audit_kinds(&self, id: i64) -> Vec<String> {
        engine::audit_kinds(&self.db, id)
    }
}

fn none(_: &store::ActionRow) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_call_is_sent_once_and_its_outcome_is_unknown() {
    let (url, seen) = silent_receiver();
    let w = world(&url).await;
    let (id, done) = w.approve_only_action().await;
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "exactly one request arrived"
    );
    assert_eq!(done.status, "unknown");
    assert!(
        done.outcome
            .as_deref()
            .is_some_and(|o| o.contains("outcome unknown")),
        "{:?}",
        done.outcome
    );
    let kinds = w.audit_kinds(id);
    assert!(
        !kinds.iter().any(|k| k == "attempt_failed"),
        "not retried: {kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried() {
    let w = world(&closed_port_url()).await;
    let (id, done) = w.approve_only_action().await;
    assert_eq!(done.status, "failed");
    let kinds = w.audit_kinds(id);
    assert_eq!(
        kinds.iter().filter(|k| *k == "attempt_failed").count(),
        2,
        "three attempts in all: {kinds:?}"
    );
    assert!(
        done.outcome
            .as_deref()
            .is_some_and(|o| o.contains("not sent")),
        "{:?}",
        done.outcome
    );
}
