//! The engine through the library, without the binary: one playbook whose steps call a
//! webhook, a writer on a fresh database, and the first alert of
//! `tests/fixtures/suricata-alert.json` ingested so the playbook proposes its actions.
//! Include it with `#[path = "common/engine.rs"] mod engine;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vigil::engine::connector::Connectors;
use vigil::engine::format::{FileFormat, Format};
use vigil::engine::model::Model;
use vigil::engine::pipeline::{split_lines, IncidentSource, Pipeline};
use vigil::engine::score::{Bands, Scorer};
use vigil::engine::store::{self, WriteOp, WriterConfig};

pub struct Engine {
    /// Holds the database, the playbook and the blocklist; removed when the test ends.
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    /// The writer's queue, for a `Responder`.
    pub tx: tokio::sync::mpsc::Sender<WriteOp>,
    pub connectors: Arc<Connectors>,
}

/// The embedded model with the default bands, no incident source, and the playbooks in
/// `playbooks` (none without it) calling `connectors`.
pub fn pipeline(playbooks: Option<&Path>, connectors: &Arc<Connectors>) -> Pipeline {
    Pipeline {
        scorer: Scorer::new(Model::embedded(), Bands::default()),
        playbooks: Arc::new(
            vigil::engine::playbook::load(playbooks, connectors).expect("playbooks"),
        ),
        incidents: IncidentSource::new(None, Vec::new()),
        connectors: connectors.clone(),
    }
}

/// `playbook` (YAML) as the only playbook, its webhook at `webhook` given `timeout` to answer,
/// the writer committing as `cfg` says, and the fixture alert stored.
pub async fn with_fixture_alert(
    playbook: &str,
    webhook: &str,
    timeout: Duration,
    cfg: WriterConfig,
) -> Engine {
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = dir.path().join("playbooks");
    std::fs::create_dir_all(&pb).expect("mkdir");
    std::fs::write(pb.join("playbook.yaml"), playbook).expect("write");
    let connectors = Arc::new(
        Connectors::new(dir.path().join("bl.txt"))
            .with_webhook(webhook, timeout)
            .expect("webhook url"),
    );
    let pipeline = pipeline(Some(&pb), &connectors);
    let db = dir.path().join("vigil.db");
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let (changed, _keep) = tokio::sync::watch::channel(0);
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
    Engine {
        dir,
        db,
        tx,
        connectors,
    }
}

/// The kinds of the audit records about action `id`, oldest first.
pub fn audit_kinds(db: &Path, id: i64) -> Vec<String> {
    rusqlite::Connection::open(db)
        .expect("db")
        .prepare("SELECT kind FROM audit WHERE action_id = ?1 ORDER BY seq")
        .expect("prepare")
        .query_map([id], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}
