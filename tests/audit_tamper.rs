//! Tampering with the audit trail: every single-bit flip of an exported trail, and deletion,
//! reordering, editing, truncation and a re-hashed rewrite of the stored one. Each must be
//! detected (truncation and a consistent rewrite given a checkpoint kept elsewhere).

use rusqlite::Connection;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use vigil::engine::audit::{self, Checkpoint, Entry};
use vigil::engine::store;
use vigil::identity::Actor;

/// A trail like a real one: ingest batches, a proposal, decisions with reasons (one with
/// quotes, a newline and non-ASCII text), an outcome.
fn trail(db: &Path) -> Connection {
    let conn = store::open(db).expect("db");
    let alice = Actor {
        uid: 1001,
        name: "alice".into(),
        host: "soc-1".into(),
    };
    let kinds: [(&str, Option<&str>, serde_json::Value); 8] = [
        (
            "session_start",
            None,
            json!({"pid": 42, "loaded": {"config": {"sha256": null}}}),
        ),
        (
            "ingest_batch",
            None,
            json!({"file": "/var/log/suricata/eve.json", "summary": {"read": 120, "alerts": 80}}),
        ),
        (
            "proposal",
            None,
            json!({"rendered": "add 203.0.113.5 to blocklist /var/lib/vigil/blocklist.txt"}),
        ),
        (
            "approval",
            Some("C2 beacon \"confirmed\"\nby EDR — ü"),
            json!({"before": "proposed", "after": "approved"}),
        ),
        (
            "execution_intent",
            None,
            json!({"idempotency_key": "vigil-1-abcdef"}),
        ),
        (
            "outcome",
            None,
            json!({"ok": true, "detail": "added 203.0.113.5"}),
        ),
        (
            "rejection",
            Some("false positive"),
            json!({"before": "proposed", "after": "rejected"}),
        ),
        ("session_end", None, json!({"pid": 42})),
    ];
    for (i, (kind, reason, detail)) in kinds.into_iter().enumerate() {
        audit::append(
            &conn,
            Entry {
                actor: &alice,
                kind,
                alert_id: Some(i as i64 + 1),
                action_id: Some(1),
                reason,
                detail,
            },
        )
        .expect("append");
    }
    conn
}

fn export(conn: &Connection) -> Vec<u8> {
    let mut out = Vec::new();
    audit::for_each(conn, |r| {
        serde_json::to_writer(&mut out, &r)?;
        out.push(b'\n');
        Ok(())
    })
    .expect("export");
    out
}

#[test]
fn every_bit_flip_of_an_export_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = trail(&dir.path().join("a.db"));
    let text = export(&conn);
    assert!(
        audit::verify_export(&text, &[]).first_bad.is_none(),
        "the untouched export verifies"
    );
    let (mut flips, mut detected) = (0u64, 0u64);
    for i in 0..text.len() {
        for bit in 0..8 {
            let mut t = text.clone();
            t[i] ^= 1 << bit;
            flips += 1;
            if audit::verify_export(&t, &[]).first_bad.is_some() {
                detected += 1;
            }
        }
    }
    println!(
        "{}",
        json!({"bytes": text.len(), "flips": flips, "detected": detected})
    );
    assert_eq!(detected, flips, "every flipped bit is detected");
}

fn first_bad(conn: &Connection, cps: &[Checkpoint]) -> Option<(i64, String)> {
    audit::verify(conn, cps).expect("verify").first_bad
}

fn tampered(f: impl FnOnce(&Connection)) -> Connection {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = trail(&dir.path().join("a.db"));
    // Whoever tampers has the sqlite3 shell: the append-only triggers go first.
    conn.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .expect("drop guards");
    f(&conn);
    std::mem::forget(dir); // keep the file for the connection's life
    conn
}

#[test]
fn deletion_reordering_and_edits_are_detected_at_the_first_bad_record() {
    let c = tampered(|c| {
        c.execute("DELETE FROM audit WHERE seq = 4", [])
            .expect("delete");
    });
    assert_eq!(first_bad(&c, &[]).map(|b| b.0), Some(5));

    let c = tampered(|c| {
        c.execute_batch("UPDATE audit SET seq = 100 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 6; UPDATE audit SET seq = 6 WHERE seq = 100;")
            .expect("swap");
    });
    assert_eq!(first_bad(&c, &[]).map(|b| b.0), Some(3));

    for (column, value) in [
        ("reason", "'approved by bob'"),
        ("actor_uid", "0"),
        ("ts", "'2020-01-01T00:00:00Z'"),
        ("detail", "'{}'"),
        ("kind", "'rejection'"),
    ] {
        let c = tampered(|c| {
            c.execute(
                &format!("UPDATE audit SET {column} = {value} WHERE seq = 4"),
                [],
            )
            .expect("edit");
        });
        assert_eq!(first_bad(&c, &[]).map(|b| b.0), Some(4), "edit of {column}");
    }
}

#[test]
fn truncation_and_a_rehashed_rewrite_need_a_checkpoint_and_are_then_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = trail(&dir.path().join("a.db"));
    let kept = audit::checkpoint(&conn, &Actor::current()).expect("checkpoint");
    assert_eq!(kept.seq, 8);
    conn.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .expect("drop guards");

    // Cut the tail, stored checkpoint included: the chain that is left is consistent...
    conn.execute_batch("DELETE FROM audit WHERE seq >= 6; DELETE FROM audit_checkpoints;")
        .expect("truncate");
    assert!(
        first_bad(&conn, &[]).is_none(),
        "a clean cut is invisible without a checkpoint"
    );
    // ...but the head kept elsewhere proves records were removed.
    let bad = first_bad(&conn, std::slice::from_ref(&kept)).expect("detected");
    assert_eq!(bad.0, 8);
    assert!(bad.1.contains("records were removed"), "{}", bad.1);

    // Rewrite history and re-hash every record after it so the chain is consistent again.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let conn = trail(&dir2.path().join("b.db"));
    let kept = audit::checkpoint(&conn, &Actor::current()).expect("checkpoint");
    conn.execute_batch("DROP TRIGGER audit_no_update; DELETE FROM audit_checkpoints;")
        .expect("drop");
    let mut records = Vec::new();
    audit::for_each(&conn, |r| {
        records.push(r);
        Ok(())
    })
    .expect("read");
    records[3].reason = Some("approved by bob".into());
    let mut prev = audit::GENESIS.to_string();
    for r in &mut records {
        r.prev_hash = prev.clone();
        r.hash = r.compute_hash();
        prev = r.hash.clone();
        conn.execute(
            "UPDATE audit SET reason = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
            rusqlite::params![r.seq, r.reason, r.prev_hash, r.hash],
        )
        .expect("rewrite");
    }
    assert!(
        first_bad(&conn, &[]).is_none(),
        "a consistent forgery passes without a checkpoint"
    );
    let bad = first_bad(&conn, std::slice::from_ref(&kept)).expect("detected with the checkpoint");
    assert!(bad.1.contains("rewritten"), "{}", bad.1);
}

#[test]
fn cli_checkpoint_export_and_verify() {
    let home = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .env("VIGIL_DATA", home.path().join("data"))
            .env("VIGIL_CONFIG", home.path().join("config"))
            .output()
            .expect("vigil")
    };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/suricata-alert.json");
    assert!(run(&["ingest", &fixture.display().to_string()])
        .status
        .success());
    let cp = run(&["audit", "checkpoint"]);
    assert!(
        cp.status.success(),
        "{}",
        String::from_utf8_lossy(&cp.stderr)
    );
    let cp: Checkpoint = serde_json::from_slice(&cp.stdout).expect("checkpoint json");
    let given = format!("{}:{}", cp.seq, cp.hash);
    let ok = run(&["audit", "verify", "--checkpoint", &given]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("json");
    assert_eq!(
        v["checkpoints_checked"], 2,
        "the stored and the given checkpoint"
    );

    let exported = run(&["audit", "export"]);
    let file = home.path().join("trail.jsonl");
    std::fs::write(&file, &exported.stdout).expect("write");
    let ok = run(&[
        "audit",
        "verify",
        "--file",
        &file.display().to_string(),
        "--checkpoint",
        &given,
    ]);
    assert!(
        ok.status.success(),
        "an export verifies on its own: {}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let mut bad = exported.stdout.clone();
    let at = bad.iter().position(|b| *b == b'r').expect("a letter");
    bad[at] ^= 1;
    std::fs::write(&file, &bad).expect("write");
    let fail = run(&["audit", "verify", "--file", &file.display().to_string()]);
    assert_eq!(fail.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&fail.stderr).starts_with("vigil: audit record 1 does not verify")
    );
}
