//! Approval rules through the library: the two-person rule, lapsing approvals, edit-then-approve,
//! a call changed after approval, and rollback by hand and on a timer. Analysts are `Actor`s
//! with chosen uids (the OS lookup is tested in the CLI tests); every connector call goes to a
//! local mock that counts them.

#[path = "common/engine.rs"]
mod engine;

use rusqlite::Connection;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vigil::engine::connector::Connectors;
use vigil::engine::format::Format;
use vigil::engine::respond::Responder;
use vigil::engine::store::{self, DecisionError, WriteOp, WriterConfig};
use vigil::identity::Actor;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn analyst(uid: u32, name: &str) -> Actor {
    Actor {
        uid,
        name: name.into(),
        host: "test-host".into(),
    }
}

const PLAYBOOK: &str = r#"
name: contain
description: test playbook with a two-person step that can be undone
match:
  all:
    - field: rule.name
      contains: "Mirai"
steps:
  - id: isolate
    title: Isolate the source
    connector: webhook
    approval: two_analysts
    approval_expires: 1h
    params:
      action: isolate
      host: "${alert.source.ip}"
    rollback:
      connector: webhook
      revert_after: REVERT
      params:
        action: release
        host: "${alert.source.ip}"
  - id: notify
    title: Tell the channel
    connector: webhook
    approval: one_analyst
    params:
      text: "isolating ${alert.source.ip}"
"#;

struct World {
    _dir: tempfile::TempDir,
    db: PathBuf,
    tx: tokio::sync::mpsc::Sender<WriteOp>,
    connectors: Arc<Connectors>,
    server: MockServer,
}

impl World {
    async fn new(revert: &str) -> World {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        // The proposing process runs as uid 500.
        let cfg = WriterConfig {
            incident_rules: vigil::config::Config::embedded()
                .expect("config")
                .incidents
                .rules,
            actor: analyst(500, "vigil-daemon"),
            playbooks: None,
        };
        let e = engine::with_fixture_alert(
            &PLAYBOOK.replace("REVERT", revert),
            &format!("{}/hook", server.uri()),
            Duration::from_secs(5),
            cfg,
        )
        .await;
        World {
            _dir: e.dir,
            db: e.db,
            tx: e.tx,
            connectors: e.connectors,
            server,
        }
    }

    fn as_analyst(&self, actor: Actor) -> Responder {
        Responder::new(
            self.tx.clone(),
            self.connectors.clone(),
            actor,
            vigil::engine::lease::Leases::beside(&self.db),
        )
    }

    /// Two analysts approve `id` in turn; what the second approval left.
    async fn approved_by_alice_and_bob(&self, id: i64) -> store::ActionRow {
        self.as_analyst(analyst(1001, "alice"))
            .decide(id, true, "ok".into(), &none)
            .await
            .expect("first");
        self.as_analyst(analyst(1002, "bob"))
            .decide(id, true, "ok".into(), &none)
            .await
            .expect("second")
    }

    fn action(&self, step: &str) -> store::ActionRow {
        let conn = Connection::open(&self.db).expect("db");
        store::actions(&conn, None)
            .expect("actions")
            .into_iter()
            .find(|a| a.step == step)
            .expect("the step was proposed")
    }

    async fn calls(&self) -> Vec<serde_json::Value> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("json body"))
            .collect()
    }
}

fn none(_: &store::ActionRow) {}

#[tokio::test]
async fn two_person_rule_refuses_one_uid_and_the_proposer() {
    let w = World::new("4h").await;
    let id = w.action("isolate").id;
    let alice = w.as_analyst(analyst(1001, "alice"));
    let first = alice
        .decide(id, true, "first look".into(), &none)
        .await
        .expect("first approval");
    assert_eq!(first.status, "awaiting_second");
    assert!(w.calls().await.is_empty(), "nothing runs on one approval");

    // The same uid can never give the second approval, whatever name or host it claims.
    for (name, host) in [
        ("alice", "test-host"),
        ("root", "test-host"),
        ("bob", "other-host"),
    ] {
        let same_uid = w.as_analyst(Actor {
            uid: 1001,
            name: name.into(),
            host: host.into(),
        });
        let err = same_uid
            .decide(id, true, "again".into(), &none)
            .await
            .expect_err("same uid refused");
        assert!(matches!(err, DecisionError::TwoPerson(_)), "{err}");
    }
    // Nor can the uid that proposed it.
    let proposer = w.as_analyst(analyst(500, "vigil-daemon"));
    let err = proposer
        .decide(id, true, "me too".into(), &none)
        .await
        .expect_err("proposer refused");
    assert!(err.to_string().contains("proposed this action"), "{err}");
    assert_eq!(w.action("isolate").status, "awaiting_second");
    assert!(w.calls().await.is_empty());

    let bob = w.as_analyst(analyst(1002, "bob"));
    let done = bob
        .decide(id, true, "confirmed on the EDR".into(), &none)
        .await
        .expect("second approval");
    assert_eq!(done.status, "succeeded");
    assert_eq!(
        done.approvals.iter().map(|a| a.uid).collect::<Vec<_>>(),
        [1001, 1002]
    );
    let calls = w.calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["params"]["action"], "isolate");
}

#[tokio::test]
async fn a_lapsed_first_approval_must_be_given_again() {
    let w = World::new("4h").await;
    let id = w.action("isolate").id;
    w.as_analyst(analyst(1001, "alice"))
        .decide(id, true, "ok".into(), &none)
        .await
        .expect("first");
    // An hour passes.
    Connection::open(&w.db)
        .expect("db")
        .execute(
            "UPDATE actions SET approved_until = '2000-01-01T00:00:00Z' WHERE id = ?1",
            [id],
        )
        .expect("age");
    let err = w
        .as_analyst(analyst(1002, "bob"))
        .decide(id, true, "ok".into(), &none)
        .await
        .expect_err("lapsed");
    assert!(matches!(err, DecisionError::Expired(_)), "{err}");
    let row = w.action("isolate");
    assert_eq!(row.status, "proposed");
    assert!(row.approvals.is_empty());
    assert!(w.calls().await.is_empty());
}

#[tokio::test]
async fn editing_voids_approvals_and_a_changed_call_never_runs() {
    let w = World::new("4h").await;
    let id = w.action("isolate").id;
    let (alice, bob) = (
        w.as_analyst(analyst(1001, "alice")),
        w.as_analyst(analyst(1002, "bob")),
    );
    let before = alice
        .decide(id, true, "ok".into(), &none)
        .await
        .expect("first");
    let mut params = before.params.clone();
    params.insert("host".into(), json!("203.0.113.77"));
    let edited = bob
        .edit(id, params, "isolate the NAT address instead".into())
        .await
        .expect("edit");
    assert_eq!(edited.status, "proposed");
    assert!(
        edited.approvals.is_empty(),
        "the first approval was for another call"
    );
    assert_ne!(edited.call_hash, before.call_hash);
    assert!(edited.rendered.contains("203.0.113.77"));
    alice
        .decide(id, true, "ok".into(), &none)
        .await
        .expect("first again");
    let done = bob
        .decide(id, true, "ok".into(), &none)
        .await
        .expect("second");
    assert_eq!(done.status, "succeeded");
    assert_eq!(w.calls().await[0]["params"]["host"], "203.0.113.77");

    // The notify step: approved, then its params are changed behind vigil's back.
    let notify = w.action("notify").id;
    let conn = Connection::open(&w.db).expect("db");
    conn.execute(
        "UPDATE actions SET status = 'approved', approved_hash = call_hash WHERE id = ?1",
        [notify],
    )
    .expect("approve");
    conn.execute(
        "UPDATE actions SET params = '{\"text\":\"rm -rf /\"}' WHERE id = ?1",
        [notify],
    )
    .expect("tamper");
    let err = bob
        .run(notify, &none)
        .await
        .expect_err("changed call refused");
    assert!(matches!(err, DecisionError::Changed { .. }), "{err}");
    assert_eq!(w.action("notify").status, "refused");
    assert_eq!(w.calls().await.len(), 1, "the changed call was not made");
}

#[tokio::test]
async fn rollback_by_hand_runs_the_call_shown_at_proposal() {
    let w = World::new("4h").await;
    let id = w.action("isolate").id;
    assert!(w
        .action("isolate")
        .rollback
        .as_ref()
        .is_some_and(|r| r.rendered.contains("release")));
    let done = w.approved_by_alice_and_bob(id).await;
    assert!(
        done.revert_at.is_some(),
        "revert_after schedules an automatic revert"
    );
    let carol = w.as_analyst(analyst(1003, "carol"));
    let err = carol
        .rollback(id, " ".into(), &none)
        .await
        .expect_err("reason required");
    assert!(matches!(err, DecisionError::NoReason));
    let back = carol
        .rollback(
            id,
            "false positive: the host is a scanner we run".into(),
            &none,
        )
        .await
        .expect("rollback");
    assert_eq!(back.status, "rolled_back");
    assert!(
        back.revert_at.is_none(),
        "a manual rollback cancels the timer"
    );
    let calls = w.calls().await;
    assert_eq!(
        calls
            .iter()
            .map(|c| c["params"]["action"].clone())
            .collect::<Vec<_>>(),
        [json!("isolate"), json!("release")]
    );
    let kinds = engine::audit_kinds(&w.db, id);
    assert_eq!(
        kinds,
        [
            "proposal",
            "approval",
            "approval",
            "execution_intent",
            "outcome",
            // The rollback asked for without a reason.
            "decision_refused",
            "rollback_intent",
            "rollback_outcome"
        ]
    );
    let err = carol
        .rollback(id, "again".into(), &none)
        .await
        .expect_err("only once");
    assert!(err.to_string().contains("rolled_back"), "{err}");
}

/// The whole engine: an action with `revert_after: 1s` is undone by the executor when due,
/// without anyone asking. The wait is on the engine's action events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_revert_runs_when_due() {
    let w = World::new("1s").await;
    let id = w.action("isolate").id;
    let done = w.approved_by_alice_and_bob(id).await;
    assert_eq!(done.status, "succeeded");
    let mut h = vigil::engine::start(vigil::engine::EngineConfig {
        db: w.db.clone(),
        watch: vec![],
        format: Format::Auto,
        format_settings: vigil::engine::format::FormatSettings::builtin(),
        pipeline: engine::pipeline(None, &w.connectors),
        incident_rules: vec![],
        actor: analyst(0, "engine"),
        loaded: json!({}),
        enrichment: None,
    })
    .expect("engine");
    let reverted = async {
        loop {
            match h.events.recv().await.expect("engine alive") {
                vigil::engine::EngineEvent::Action(a)
                    if a.id == id && a.status == "rolled_back" =>
                {
                    return *a
                }
                _ => {}
            }
        }
    };
    let row = tokio::time::timeout(Duration::from_secs(30), reverted)
        .await
        .expect("reverted in time");
    assert!(row
        .outcome
        .as_deref()
        .is_some_and(|o| o.starts_with("rollback:")));
    h.shutdown().await;
    assert_eq!(w.calls().await.len(), 2);
}

/// An approval stored by an earlier version bound only connector and params, not where the
/// call goes: it is not run. The action goes back to `proposed`, bound to the destination this
/// process resolves, the refusal is recorded, and a fresh approval runs it.
#[tokio::test]
async fn an_approval_not_bound_to_a_destination_must_be_given_again() {
    let w = World::new("4h").await;
    let row = w.action("notify");
    let old_hash = vigil::engine::connector::unbound_call_hash(&row.connector, &row.params);
    Connection::open(&w.db)
        .expect("db")
        .execute(
            "UPDATE actions SET status = 'approved', call_hash = ?2, approved_hash = ?2, destination = NULL,
               approvals = '[]', approved_until = NULL WHERE id = ?1",
            rusqlite::params![row.id, old_hash],
        )
        .expect("an approval as an earlier version stored it");
    let bob = w.as_analyst(analyst(1002, "bob"));
    let err = bob.run(row.id, &none).await.expect_err("not run");
    assert!(
        err.to_string()
            .contains("re-approve: call not bound to a destination"),
        "{err}"
    );
    assert!(w.calls().await.is_empty(), "nothing was sent");
    let again = w.action("notify");
    assert_eq!(again.status, "proposed");
    assert_eq!(again.call_hash, row.call_hash, "bound as resolved now");
    assert_eq!(
        again.destination.as_deref(),
        Some(format!("{}/hook", w.server.uri()).as_str())
    );
    let refused: Vec<String> = Connection::open(&w.db)
        .expect("db")
        .prepare("SELECT reason FROM audit WHERE action_id = ?1 AND kind = 'refused'")
        .expect("prepare")
        .query_map([row.id], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(refused, ["re-approve: call not bound to a destination"]);
    let done = bob
        .decide(row.id, true, "approved with its destination".into(), &none)
        .await
        .expect("approve again");
    assert_eq!(done.status, "succeeded");
    assert_eq!(w.calls().await.len(), 1);
}

/// Every refused decision leaves a record of who tried and why it was refused: the same uid
/// twice, the proposer, no reason, a decided action, an action that does not exist.
#[tokio::test]
async fn every_refused_decision_is_recorded_with_who_and_why() {
    let w = World::new("4h").await;
    let (isolate, notify) = (w.action("isolate").id, w.action("notify").id);
    let alice = w.as_analyst(analyst(1001, "alice"));
    let bob = w.as_analyst(analyst(1002, "bob"));
    let carol = w.as_analyst(analyst(1003, "carol"));
    alice
        .decide(isolate, true, "first".into(), &none)
        .await
        .expect("first approval");
    let refusals = [
        alice.decide(isolate, true, "again".into(), &none).await,
        w.as_analyst(analyst(500, "vigil-daemon"))
            .decide(isolate, true, "mine".into(), &none)
            .await,
        bob.decide(isolate, true, "  ".into(), &none).await,
        bob.decide(999, false, "no such".into(), &none).await,
    ];
    assert!(refusals.iter().all(Result::is_err), "{refusals:?}");
    bob.decide(notify, true, "tell them".into(), &none)
        .await
        .expect("notify approved");
    let late = carol.decide(notify, false, "too late".into(), &none).await;
    assert!(late.is_err());

    let rows: Vec<(i64, String, i64, String, String)> = Connection::open(&w.db)
        .expect("db")
        .prepare(
            "SELECT actor_uid, actor_name, action_id, reason, detail FROM audit
             WHERE kind = 'decision_refused' ORDER BY seq",
        )
        .expect("prepare")
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let who_why: Vec<(i64, i64, &str)> = rows
        .iter()
        .map(|(uid, _, id, why, _)| (*uid, *id, why.as_str()))
        .collect();
    assert_eq!(who_why.len(), 5, "{rows:?}");
    assert_eq!((who_why[0].0, who_why[0].1), (1001, isolate));
    assert!(who_why[0].2.contains("gave the first approval"), "{rows:?}");
    assert_eq!((who_why[1].0, who_why[1].1), (500, isolate));
    assert!(who_why[1].2.contains("proposed this action"), "{rows:?}");
    assert_eq!((who_why[2].0, who_why[2].1), (1002, isolate));
    assert!(who_why[2].2.contains("reason is required"), "{rows:?}");
    assert_eq!((who_why[3].0, who_why[3].1), (1002, 999));
    assert!(who_why[3].2.contains("does not exist"), "{rows:?}");
    assert_eq!((who_why[4].0, who_why[4].1), (1003, notify));
    assert!(who_why[4].2.contains("not pending"), "{rows:?}");
    assert_eq!(rows[4].1, "carol");
    let detail: serde_json::Value = serde_json::from_str(&rows[4].4).expect("detail json");
    assert_eq!(detail["decision"], "reject");
    assert_eq!(detail["status"], "succeeded");
    let v =
        vigil::engine::audit::verify(&Connection::open(&w.db).expect("db"), &[]).expect("verify");
    assert!(v.first_bad.is_none(), "{:?}", v.first_bad);
}
