//! `vigil ingest`: read each file once as a stream, store its alerts in bounded batches, print
//! one JSON summary. A file that cannot be read, or not to its end, is named on stderr and
//! counted, its readable part kept, and the batch goes on to the next file.

use super::{one_line, runtime, Failure, Setup};
use crate::engine::format::Format;
use crate::engine::pipeline::Pipeline;
use crate::engine::reader::AlertFile;
use crate::engine::store::{IngestBatch, IngestSummary, WriteOp};
use anyhow::anyhow;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// Records per batch: one commit each, and what one batch holds in memory.
const BATCH_RECORDS: usize = 5_000;
/// Record bytes per batch, so a batch of long records is bounded the same way.
const BATCH_BYTES: usize = 16 * 1024 * 1024;

/// The summary line: what was stored, over how many files, and how many could not be read
/// to their end.
#[derive(Serialize)]
struct Summary {
    #[serde(flatten)]
    stored: IngestSummary,
    files: u64,
    unreadable: u64,
}

/// Exit 0 when every file was read to its end, 1 when one was not (the rest is stored).
pub(super) fn ingest(
    setup: &Setup,
    files: &[PathBuf],
    forced: Format,
) -> Result<ExitCode, Failure> {
    let pipeline = setup.pipeline(None)?;
    let formats = setup
        .config
        .format_settings()
        .map_err(|e| Failure::Usage(e.0))?;
    setup.refuse_damaged_db()?;
    setup.create_db()?;
    let rt = runtime()?;
    let mut unreadable: Vec<String> = Vec::new();
    let stored = rt.block_on(async {
        // Bounded: the reader waits for the writer rather than queueing batches.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (changed, _keep) = tokio::sync::watch::channel(0);
        let writer = setup.spawn_writer(rx, changed, Some(&pipeline))?;
        let mut total = IngestSummary::default();
        for f in files {
            let label = f.display().to_string();
            let (path, settings) = (f.clone(), formats.clone());
            let opened =
                tokio::task::spawn_blocking(move || AlertFile::open(&path, forced, &settings))
                    .await?;
            let mut file = match opened {
                Ok(file) => file,
                Err(e) => {
                    unreadable.push(format!("{label}: cannot read: {e}"));
                    continue;
                }
            };
            loop {
                let (p, l) = (pipeline.clone(), label.clone());
                let (back, batch) = tokio::task::spawn_blocking(move || {
                    let batch = next_batch(&mut file, &p, &l);
                    (file, batch)
                })
                .await?;
                file = back;
                let Some(batch) = batch else { break };
                let (reply, done) = tokio::sync::oneshot::channel();
                tx.send(WriteOp::Ingest(batch, Some(reply)))
                    .await
                    .map_err(|_| anyhow!("database writer stopped"))?;
                let s = done
                    .await
                    .map_err(|_| anyhow!("database writer stopped"))??;
                total.add(s.summary());
            }
            if let Some(why) = file.unread() {
                unreadable.push(format!("{label}: {why}"));
            }
        }
        drop(tx);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        anyhow::Ok(total)
    })?;
    for why in &unreadable {
        errln!("vigil: {}", one_line(why));
    }
    let summary = Summary {
        stored,
        files: files.len() as u64,
        unreadable: unreadable.len() as u64,
    };
    super::output::print_json(&summary).map_err(anyhow::Error::from)?;
    Ok(if unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The next batch of `file`'s records, processed; `None` at its end. Blank lines are passed
/// over here so a file of them costs no commits.
fn next_batch(file: &mut AlertFile, pipeline: &Pipeline, label: &str) -> Option<IngestBatch> {
    let mut records = Vec::new();
    let mut bytes = 0;
    while records.len() < BATCH_RECORDS && bytes < BATCH_BYTES {
        let Some(r) = file.next_record() else { break };
        if r.refused.is_none() && r.bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        bytes += r.bytes.len();
        records.push(r);
    }
    if records.is_empty() {
        return None;
    }
    Some(pipeline.process(label, file.format(), records))
}
