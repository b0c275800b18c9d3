//! Lines in, a batch ready to commit out: normalise, fingerprint, score (with the alert's
//! incident so far), propose. CPU work plus one read query per new incident key (callers run it
//! on the blocking pool); shared by the live tailer and `vigil ingest` so both treat every line
//! the same way. Never writes: the writer assigns incidents when it commits.

use super::connector::Connectors;
use super::features::FeatureContext;
use super::incident::{group_key, IncidentTracker};
use super::normalize::{normalize_line, Parsed};
use super::playbook::Playbook;
use super::score::Scorer;
use super::store::{ecs_document, IngestBatch, Quarantined, ReadyAlert};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Everything needed to turn a line into a stored alert.
#[derive(Clone)]
pub struct Pipeline {
    pub scorer: Scorer,
    pub playbooks: Arc<Vec<Playbook>>,
    pub connectors: Arc<Connectors>,
    pub incidents: IncidentSource,
}

/// Where incident size and rate come from when scoring: the stored incidents (read-only) plus
/// the alerts earlier in the same batch, under the writer's own window rule. A batch being
/// committed at the same moment can make a count lag by that batch; the writer's incident
/// assignment is unaffected.
#[derive(Clone)]
pub struct IncidentSource {
    pub window: chrono::Duration,
    db: Option<PathBuf>,
    conn: Arc<Mutex<Option<rusqlite::Connection>>>,
}

impl IncidentSource {
    /// Read stored incidents from `db` (when given) with this window.
    pub fn new(db: Option<PathBuf>, window: chrono::Duration) -> Self {
        IncidentSource {
            window,
            db,
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// Figures for one batch's alerts, observed in order.
    pub fn batch(&self) -> BatchIncidents<'_> {
        BatchIncidents {
            source: self,
            tracker: IncidentTracker::new(self.window),
        }
    }

    /// Seed `tracker` with the stored incident an alert under `key` at `t` would join.
    fn seed(&self, tracker: &mut IncidentTracker, key: &str, t: chrono::DateTime<chrono::Utc>) {
        let Some(db) = &self.db else { return };
        let Ok(mut guard) = self.conn.lock() else {
            return;
        };
        if guard.is_none() {
            match super::store::open_read_only(db) {
                Ok(c) => *guard = Some(c),
                Err(e) => {
                    tracing::debug!("incident figures without stored incidents: {e}");
                    return;
                }
            }
        }
        if let Some(conn) = guard.as_ref() {
            match super::store::open_incident(conn, key, t, self.window) {
                Ok(Some(inc)) => tracker.seed(key.to_string(), inc),
                Ok(None) => {}
                Err(e) => tracing::debug!("incident lookup failed: {e}"),
            }
        }
    }
}

/// Incident size and rate for the alerts of one batch: stored incidents first, then the alerts
/// observed earlier in the batch.
pub struct BatchIncidents<'a> {
    source: &'a IncidentSource,
    tracker: IncidentTracker,
}

impl BatchIncidents<'_> {
    /// Count `a` into its incident and return the incident's figures.
    pub fn observe(&mut self, a: &super::alert::Alert) -> super::incident::IncidentFigures {
        let key = group_key(a);
        if !self.tracker.knows(&key) {
            self.source.seed(&mut self.tracker, &key, a.timestamp);
        }
        self.tracker.observe(&key, a.timestamp)
    }
}

/// One complete line read from a source.
#[derive(Debug, Clone)]
pub struct RawLine {
    pub byte_offset: u64,
    pub line_no: u64,
    pub bytes: Vec<u8>,
}

/// Most raw bytes of a bad line kept in quarantine: enough to see what went wrong without
/// letting one hostile line bloat the database.
const QUARANTINE_RAW_LIMIT: usize = 64 * 1024;

impl Pipeline {
    /// Process lines of one file into a batch (checkpoint left for the caller to set).
    pub fn process(&self, file: &str, lines: Vec<RawLine>) -> IngestBatch {
        let mut batch = IngestBatch {
            file: file.to_string(),
            ..IngestBatch::default()
        };
        let mut incidents = self.incidents.batch();
        for line in lines {
            if line.bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            batch.read += 1;
            match normalize_line(&line.bytes) {
                Ok(Parsed::Alert(alert, fingerprint)) => {
                    let figures = incidents.observe(&alert);
                    // Enrichment fills `ctx.enrichment` once it runs in the pipeline.
                    let ctx = FeatureContext::with_incident(figures);
                    let score = self.scorer.score(&alert, &ctx);
                    let doc = ecs_document(0, &alert, &score, None, &fingerprint);
                    let mut proposals = Vec::new();
                    for pb in self.playbooks.iter().filter(|p| p.matches(&doc)) {
                        let (mut p, skipped) = pb.propose(&doc, &self.connectors);
                        for s in skipped {
                            tracing::debug!("proposal not made: {s}");
                        }
                        proposals.append(&mut p);
                    }
                    batch.alerts.push(ReadyAlert {
                        alert: *alert,
                        fingerprint,
                        score,
                        proposals,
                        line_no: line.line_no,
                    });
                }
                Ok(Parsed::Skipped) => batch.skipped += 1,
                Err(reject) => {
                    let mut raw = line.bytes;
                    raw.truncate(QUARANTINE_RAW_LIMIT);
                    batch.quarantined.push(Quarantined {
                        byte_offset: line.byte_offset,
                        line_no: line.line_no,
                        reason: format!("{file}:{}: {}", line.line_no, reject.0),
                        raw,
                    });
                }
            }
        }
        batch
    }
}

/// Split `buf` (which starts at `base_offset`, line `first_line`) into complete lines. Returns
/// the lines and the number of bytes consumed; a trailing partial line is left for later.
pub fn split_lines(buf: &[u8], base_offset: u64, first_line: u64) -> (Vec<RawLine>, usize) {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut line_no = first_line;
    while let Some(rel) = memchr_newline(&buf[start..]) {
        let end = start + rel;
        out.push(RawLine {
            byte_offset: base_offset + start as u64,
            line_no,
            bytes: buf[start..end].to_vec(),
        });
        line_no += 1;
        start = end + 1;
    }
    (out, start)
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|c| *c == b'\n')
}

/// Read a whole file, gunzipping when it ends in `.gz`.
///
/// # Errors
/// I/O or gzip errors, naming the file.
pub fn read_maybe_gz(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{}: not valid gzip", path.display()))?;
        return Ok(out);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::split_lines;

    #[test]
    fn partial_last_line_is_left() {
        let (lines, used) = split_lines(b"a\nbb\ncc", 100, 7);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].bytes, b"bb");
        assert_eq!(lines[1].byte_offset, 102);
        assert_eq!(lines[1].line_no, 8);
        assert_eq!(used, 5);
    }
}
