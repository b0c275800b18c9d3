//! Retries only for calls that certainly never arrived. A webhook step with `retry: 3` against a
//! receiver that reads the request and never answers is sent once and ends "outcome unknown"; a
//! closed port on 127.0.0.1 (connection refused: nothing was sent) is tried all three times.

use rusqlite::Connection;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vigil::engine::connector::Connectors;
use vigil::engine::format::{FileFormat, Format};
use vigil::engine::model::Model;
use vigil::engine::pipeline::{split_lines, Pipeline};
use vigil::engine::respond::Responder;
use vigil::engine::score::{Bands, Scorer};
use vigil::engine::store::{self, WriteOp, WriterConfig};
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

/// A receiver that accepts, reads what arrives and never answers; counts the requests.
fn silent_receiver() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            if s.read(&mut buf).is_ok_and(|n| n > 0) {
                count.fetch_add(1, Ordering::SeqCst);
            }
            // Keep the connection open so the client waits for an answer that never comes.
            held.push(s);
        }
    });
    (url, seen)
}

/// A port nothing listens on: bound, then released.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/hook")
}

struct World {
    _dir: tempfile::TempDir,
    db: PathBuf,
    responder: Responder,
}

async fn world(webhook: &str) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = dir.path().join("playbooks");
    std::fs::create_dir_all(&pb).expect("mkdir");
    std::fs::write(pb.join("notify.yaml"), PLAYBOOK).expect("write");
    let connectors = Arc::new(
        Connectors::new(dir.path().join("bl.txt"))
            .with_webhook(webhook, Duration::from_secs(1))
            .expect("webhook url"),
    );
    let playbooks = vigil::engine::playbook::load(Some(&pb), &connectors).expect("playbooks");
    let pipeline = Pipeline {
        scorer: Scorer::new(Model::embedded(), Bands::default()),
        playbooks: Arc::new(playbooks),
        incidents: vigil::engine::pipeline::IncidentSource::new(None, Vec::new()),
        connectors: connectors.clone(),
    };
    let db = dir.path().join("vigil.db");
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let (changed, _keep) = tokio::sync::watch::channel(0);
    let cfg = WriterConfig {
        incident_rules: Vec::new(),
        actor: analyst(),
        playbooks: None,
    };
    let _writer = store::spawn_writer(db.clone(), cfg, rx, changed).expect("writer");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/suricata-alert.json");
    let text = std::fs::read_to_string(fixture).expect("fixture");
    let first = format!("{}\n", text.lines().next().expect("line"));
    let (lines, _) = split_lines(first.as_bytes(), 0, 1);
    let batch = pipeline.process(
        "fixture",
        &FileFormat::detect(first.as_bytes(), Format::Auto),
        lines,
    );
    let (reply, done) = tokio::sync::oneshot::channel();
    tx.send(WriteOp::Ingest(batch, Some(reply)))
        .await
        .expect("send");
    done.await.expect("reply").expect("ingest");
    let leases = vigil::engine::lease::Leases::beside(&db);
    let responder = Responder::new(tx, connectors, analyst(), leases);
    World {
        _dir: dir,
        db,
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

    fn audit_kinds(&self, id: i64) -> Vec<String> {
        Connection::open(&self.db)
            .expect("db")
            .prepare("SELECT kind FROM audit WHERE action_id = ?1 ORDER BY seq")
            .expect("prepare")
            .query_map([id], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }
}

fn none(_: &store::ActionRow) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_call_is_sent_once_and_its_outcome_is_unknown() {
    let (url, seen) = silent_receiver();
    let w = world(&url).await;
    let id = w.only_action().id;
    let done = w
        .responder
        .decide(id, true, "tell them".into(), &none)
        .await
        .expect("approved and run");
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
    let id = w.only_action().id;
    let done = w
        .responder
        .decide(id, true, "tell them".into(), &none)
        .await
        .expect("approved and run");
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
