//! The engine with no terminal: live tailing (append → committed, partial lines, restart
//! resumes at the checkpoint) and the approval chain (decision → audit → connector → outcome).
//! Every wait is on an engine signal, bounded by a timeout that fails the test.

use rusqlite::Connection;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vigil::engine::connector::Connectors;
use vigil::engine::model::Model;
use vigil::engine::pipeline::{IncidentSource, Pipeline};
use vigil::engine::score::{Bands, Scorer};
use vigil::engine::store;
use vigil::engine::{self, EngineCommand, EngineConfig, EngineEvent, EngineHandle};
use vigil::identity::Actor;

const LIMIT: Duration = Duration::from_secs(20);

fn fixture_lines(name: &str) -> Vec<String> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(p)
        .expect("fixture")
        .lines()
        .map(str::to_string)
        .collect()
}

fn pipeline(dir: &Path, webhook: Option<String>, playbooks: Option<&Path>) -> Pipeline {
    let mut connectors = Connectors::new(dir.join("blocklist.txt"));
    if let Some(url) = webhook {
        connectors = connectors
            .with_webhook(&url, Duration::from_secs(5))
            .expect("webhook url");
    }
    let playbooks = vigil::engine::playbook::load(playbooks, &connectors).expect("playbooks");
    Pipeline {
        scorer: Scorer::new(Model::embedded(), Bands::default()),
        playbooks: Arc::new(playbooks),
        connectors: Arc::new(connectors),
        incidents: IncidentSource::new(None, Vec::new()),
    }
}

fn start(db: &Path, watch: Vec<PathBuf>, p: Pipeline) -> EngineHandle {
    engine::start(EngineConfig {
        db: db.to_path_buf(),
        watch,
        format: Default::default(),
        format_settings: vigil::engine::format::FormatSettings::builtin(),
        pipeline: p,
        incident_rules: vigil::config::Config::embedded()
            .expect("config")
            .incidents
            .rules,
        actor: Actor::current(),
        loaded: serde_json::json!({}),
        enrichment: None,
    })
    .expect("engine starts")
}

fn totals(db: &Path) -> store::Totals {
    store::totals(&Connection::open(db).expect("db")).expect("totals")
}

/// Wait for commits until `done` holds for the database.
async fn until(h: &mut EngineHandle, db: &Path, what: &str, done: impl Fn(&store::Totals) -> bool) {
    let wait = async {
        loop {
            if done(&totals(db)) {
                return;
            }
            h.db_changed.changed().await.expect("engine alive");
        }
    };
    tokio::time::timeout(LIMIT, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", totals(db)));
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("append");
    f.sync_all().expect("sync");
}

fn last_checkpoint_from(db: &Path) -> u64 {
    let conn = Connection::open(db).expect("db");
    let detail: String = conn
        .query_row(
            "SELECT detail FROM audit WHERE kind = 'ingest_batch' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("an ingest batch");
    let v: Value = serde_json::from_str(&detail).expect("json");
    v["checkpoint"]["from"].as_u64().expect("from")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_lines_are_ingested_live_and_restart_resumes_at_the_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("vigil.db");
    let watched = dir.path().join("alerts");
    std::fs::create_dir_all(&watched).expect("mkdir");
    let eve = watched.join("eve.json");
    let lines = fixture_lines("suricata-alert.json");
    append(&eve, &format!("{}\n", lines[0]));
    // Not an alert file: never read.
    std::fs::write(watched.join("README.md"), "not alerts\n").expect("write");

    let mut h = start(&db, vec![watched.clone()], pipeline(dir.path(), None, None));
    until(&mut h, &db, "the first alert", |t| t.alerts == 1).await;

    // A partial line waits for its newline; then it and a bad line arrive together.
    let (head, tail) = lines[1].split_at(40);
    append(&eve, head);
    append(&eve, &format!("{tail}\n{{\"broken\": \n"));
    until(
        &mut h,
        &db,
        "the second alert and one quarantined line",
        |t| t.alerts == 2 && t.quarantined == 1,
    )
    .await;
    assert_eq!(totals(&db).quarantined, 1);

    // A file created later in the watched directory is picked up.
    let wazuh = watched.join("alerts.json");
    append(
        &wazuh,
        &format!("{}\n", fixture_lines("wazuh-alert.json")[0]),
    );
    until(&mut h, &db, "the new file's alert", |t| t.alerts == 3).await;
    h.shutdown().await;

    // Restart: the next batch starts exactly where the last commit ended.
    let size = std::fs::metadata(&eve).expect("meta").len();
    let mut h = start(&db, vec![watched.clone()], pipeline(dir.path(), None, None));
    append(&eve, &format!("{}\n", lines[2]));
    until(&mut h, &db, "the alert appended after restart", |t| {
        t.alerts == 4
    })
    .await;
    assert_eq!(
        last_checkpoint_from(&db),
        size,
        "resumed at the committed offset, not from 0"
    );
    let t = totals(&db);
    assert_eq!((t.alerts, t.quarantined), (4, 1), "nothing read twice");
    h.shutdown().await;
}

async fn next_event(h: &mut EngineHandle) -> EngineEvent {
    tokio::time::timeout(LIMIT, h.events.recv())
        .await
        .expect("an engine event in time")
        .expect("engine alive")
}

fn audit_kinds(db: &Path, action_id: i64) -> Vec<(i64, String, Option<String>)> {
    let conn = Connection::open(db).expect("db");
    let mut stmt = conn
        .prepare("SELECT seq, kind, reason FROM audit WHERE action_id = ?1 ORDER BY seq")
        .expect("prepare");
    stmt.query_map([action_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_is_audited_before_the_connector_runs_and_its_outcome_after() {
    use wiremock::matchers::{header_exists, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(header_exists("idempotency-key"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pb_dir = dir.path().join("playbooks");
    std::fs::create_dir_all(&pb_dir).expect("mkdir");
    std::fs::write(
        pb_dir.join("notify.yaml"),
        r#"
name: notify-and-block
description: test playbook
match:
  all:
    - field: rule.name
      contains: "Mirai"
steps:
  - id: notify
    title: Tell the on-call channel
    connector: webhook
    params:
      text: "alert ${alert.rule.name} from ${alert.source.ip}"
      port: "${alert.source.port}"
  - id: block
    title: Block the source
    connector: blocklist
    params:
      entry: "${alert.source.ip}"
"#,
    )
    .expect("write");
    let db = dir.path().join("vigil.db");
    let watched = dir.path().join("eve.json");
    append(
        &watched,
        &format!("{}\n", fixture_lines("suricata-alert.json")[0]),
    );
    let p = pipeline(
        dir.path(),
        Some(format!("{}/hook", server.uri())),
        Some(&pb_dir),
    );
    let mut h = start(&db, vec![watched], p);
    until(&mut h, &db, "the proposals", |t| t.pending_actions == 2).await;
    let conn = Connection::open(&db).expect("db");
    let pending = store::actions(&conn, Some("proposed")).expect("actions");
    let hook = pending
        .iter()
        .find(|a| a.connector == "webhook")
        .expect("webhook action");
    assert_eq!(
        hook.params["port"],
        serde_json::json!(54520),
        "a whole placeholder keeps its type"
    );
    let block = pending
        .iter()
        .find(|a| a.connector == "blocklist")
        .expect("blocklist action");

    // A decision without a reason is refused, changes nothing, and is recorded as refused.
    h.commands
        .send(EngineCommand::Decide {
            action_id: block.id,
            approve: true,
            reason: "  ".into(),
        })
        .await
        .expect("send");
    // Progress events for other rows may come first; the refusal is what this waits for.
    loop {
        match next_event(&mut h).await {
            EngineEvent::Error(e) => {
                assert!(e.contains("a reason is required"), "{e}");
                break;
            }
            EngineEvent::Action(row) => assert_ne!(
                row.status, "approved",
                "a decision without a reason approved action {}",
                row.id
            ),
            _ => {}
        }
    }
    let before: Vec<(String, Option<String>)> = audit_kinds(&db, block.id)
        .into_iter()
        .map(|k| (k.1, k.2))
        .collect();
    assert_eq!(
        before,
        [
            ("proposal".to_string(), None),
            (
                "decision_refused".to_string(),
                Some("a reason is required".to_string())
            )
        ],
        "a refused decision changes nothing but is on the record with why"
    );

    for (id, approve) in [(hook.id, true), (block.id, false)] {
        h.commands
            .send(EngineCommand::Decide {
                action_id: id,
                approve,
                reason: "checked by test".into(),
            })
            .await
            .expect("send");
        loop {
            if let EngineEvent::Notice(n) = next_event(&mut h).await {
                assert!(n.starts_with(&format!("action {id}:")), "{n}");
                break;
            }
        }
    }
    let kinds = audit_kinds(&db, hook.id);
    let names: Vec<&str> = kinds.iter().map(|k| k.1.as_str()).collect();
    assert_eq!(
        names,
        ["proposal", "approval", "execution_intent", "outcome"]
    );
    assert_eq!(kinds[1].2.as_deref(), Some("checked by test"));
    let rejected = audit_kinds(&db, block.id);
    assert_eq!(
        rejected.iter().map(|k| k.1.as_str()).collect::<Vec<_>>(),
        ["proposal", "decision_refused", "rejection"]
    );
    let done = store::action_by_id(&conn, hook.id)
        .expect("q")
        .expect("row");
    assert_eq!(done.status, "succeeded");
    assert_eq!(
        done.outcome.as_deref(),
        Some(format!("POST {}/hook: HTTP 200", server.uri()).as_str())
    );
    assert!(
        !dir.path().join("blocklist.txt").exists(),
        "a rejected block never runs"
    );

    let received = server.received_requests().await.expect("recorded");
    let body: Value = serde_json::from_slice(&received[0].body).expect("json body");
    assert_eq!(
        body["params"]["text"],
        "alert MALWARE-CNC User-Agent known malicious user-agent string - Mirai from 41.108.52.138"
    );

    // Deciding again is refused: an action runs once.
    h.commands
        .send(EngineCommand::Decide {
            action_id: hook.id,
            approve: true,
            reason: "again".into(),
        })
        .await
        .expect("send");
    match next_event(&mut h).await {
        EngineEvent::Error(e) => assert!(e.contains("not pending"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let v = vigil::engine::audit::verify(&conn, &[]).expect("verify");
    assert!(v.first_bad.is_none(), "{v:?}");
    h.shutdown().await;
    server.verify().await;
}

#[test]
fn tampering_with_the_audit_trail_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = store::open(&dir.path().join("a.db")).expect("db");
    let actor = Actor::current();
    for i in 0..5 {
        vigil::engine::audit::append(
            &conn,
            vigil::engine::audit::Entry {
                actor: &actor,
                kind: "test",
                alert_id: Some(i),
                action_id: None,
                reason: Some("r"),
                detail: serde_json::json!({"i": i}),
            },
        )
        .expect("append");
    }
    assert!(vigil::engine::audit::verify(&conn, &[])
        .expect("verify")
        .first_bad
        .is_none());
    let err = conn
        .execute("UPDATE audit SET reason = 'x' WHERE seq = 3", [])
        .expect_err("append-only");
    assert!(err.to_string().contains("append-only"));
    // Someone with the sqlite3 shell drops the guard and edits a record.
    conn.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET reason = 'edited' WHERE seq = 3;",
    )
    .expect("tamper");
    let v = vigil::engine::audit::verify(&conn, &[]).expect("verify");
    assert_eq!(v.first_bad.map(|b| b.0), Some(3));
}
