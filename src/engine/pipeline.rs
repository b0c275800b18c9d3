//! Lines in, a batch ready to commit out: normalise, fingerprint, score (with the alert's
//! incident so far), propose. CPU work plus one read query per new incident key (callers run it
//! on the blocking pool); shared by the live tailer and `vigil ingest` so both treat every line
//! the same way. Never writes: the writer assigns incidents when it commits.

use super::connector::Connectors;
use super::features::FeatureContext;
use super::format::FileFormat;
use super::incident::{IncidentFigures, IncidentRule, IncidentTracker};
use super::normalize::Parsed;
use super::playbook::Playbook;
use super::score::Scorer;
use super::store::{match_document, IngestBatch, Quarantined, ReadyAlert};
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
    pub rules: Arc<Vec<IncidentRule>>,
    db: Option<PathBuf>,
    conn: Arc<Mutex<Option<rusqlite::Connection>>>,
}

impl IncidentSource {
    /// Read stored incidents from `db` (when given), grouped by `rules`.
    pub fn new(db: Option<PathBuf>, rules: Vec<IncidentRule>) -> Self {
        IncidentSource {
            rules: Arc::new(rules),
            db,
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// Figures for one batch's alerts, observed in order.
    pub fn batch(&self) -> BatchIncidents<'_> {
        BatchIncidents {
            source: self,
            tracker: IncidentTracker::new(),
        }
    }

    /// Seed `tracker` with the stored incident an alert under `key` at `t` would join.
    fn seed(
        &self,
        tracker: &mut IncidentTracker,
        key: &str,
        t: chrono::DateTime<chrono::Utc>,
        window: chrono::Duration,
    ) {
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
            match super::store::open_incident(conn, key, t, window) {
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
    pub fn observe(&mut self, a: &super::alert::Alert) -> IncidentFigures {
        let Some((key, window)) = super::incident::group(&self.source.rules, a) else {
            return IncidentFigures::ALONE;
        };
        if !self.tracker.knows(&key) {
            self.source
                .seed(&mut self.tracker, &key, a.timestamp, window);
        }
        self.tracker.observe(&key, a.timestamp, window)
    }
}

/// One complete line (or record of a document) read from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    pub byte_offset: u64,
    pub line_no: u64,
    pub bytes: Vec<u8>,
    /// Why the reader refused the record before any parsing (too long, the file broke in it);
    /// `bytes` then holds only its head, kept for quarantine.
    pub refused: Option<String>,
}

/// Most raw bytes of a bad line kept in quarantine: enough to see what went wrong without
/// letting one hostile line bloat the database.
const QUARANTINE_RAW_LIMIT: usize = super::reader::lines::KEPT_BYTES;

impl Pipeline {
    /// Process lines of one file into a batch (checkpoint left for the caller to set).
    pub fn process(&self, file: &str, format: &FileFormat, lines: Vec<RawLine>) -> IngestBatch {
        let mut batch = IngestBatch {
            file: file.to_string(),
            ..IngestBatch::default()
        };
        let mut incidents = self.incidents.batch();
        for line in lines {
            if line.refused.is_none() && line.bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed = format.parse_record(&line);
            self.add(
                &mut batch,
                &mut incidents,
                line.line_no,
                line.byte_offset,
                parsed,
                line.bytes,
            );
        }
        batch
    }

    /// Process a whole document (a JSON array, a findings list): each record in turn.
    pub fn process_document(&self, file: &str, format: &FileFormat, bytes: &[u8]) -> IngestBatch {
        let mut batch = IngestBatch {
            file: file.to_string(),
            ..IngestBatch::default()
        };
        let mut incidents = self.incidents.batch();
        for r in format.parse_records(bytes) {
            let raw = match &r.parsed {
                Ok(_) => Vec::new(),
                Err(_) => bytes.get(r.span.clone()).unwrap_or_default().to_vec(),
            };
            self.add(
                &mut batch,
                &mut incidents,
                r.line_no,
                r.byte_offset,
                r.parsed,
                raw,
            );
        }
        batch
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &self,
        batch: &mut IngestBatch,
        incidents: &mut BatchIncidents<'_>,
        line_no: u64,
        byte_offset: u64,
        parsed: Result<Parsed, super::normalize::Reject>,
        mut raw: Vec<u8>,
    ) {
        batch.read += 1;
        match parsed {
            Ok(Parsed::Alert(mut alert, fingerprint)) => {
                let figures = incidents.observe(&alert);
                // Enrichment fills `ctx.enrichment` when it re-scores the stored alert.
                let ctx = FeatureContext::with_incident(figures);
                let score = self.scorer.score(&alert, &ctx);
                let view = AlertFields {
                    alert: &alert,
                    score: &score,
                    fingerprint: &fingerprint,
                    doc: std::cell::OnceCell::new(),
                };
                let mut proposals = Vec::new();
                let mut deferred = Vec::new();
                for (i, pb) in self.playbooks.iter().enumerate() {
                    if pb.needs_incident() {
                        if pb.matches_before_incident(&view) {
                            deferred.push(i);
                        }
                        continue;
                    }
                    if !pb.matches(&view) {
                        continue;
                    }
                    let (mut p, skipped) = pb.propose(view.doc(), &self.connectors);
                    for s in skipped {
                        tracing::debug!("proposal not made: {s}");
                    }
                    proposals.append(&mut p);
                }
                // Serialised here, on the parsing thread, so the one writer only binds text. The
                // raw document has its own column; it is not repeated inside the alert's JSON.
                let match_doc = (!deferred.is_empty()).then(|| view.doc().clone());
                let original = std::mem::take(&mut alert.original);
                let alert_json = serde_json::to_string(&alert).unwrap_or_default();
                alert.original = original;
                let score_json = serde_json::to_string(&score).unwrap_or_default();
                batch.alerts.push(ReadyAlert {
                    alert: *alert,
                    fingerprint,
                    score,
                    proposals,
                    line_no,
                    alert_json,
                    score_json,
                    deferred,
                    match_doc,
                });
            }
            Ok(Parsed::Skipped) => batch.skipped += 1,
            Err(reject) => {
                raw.truncate(QUARANTINE_RAW_LIMIT);
                batch.quarantined.push(Quarantined {
                    byte_offset,
                    line_no,
                    reason: format!("{}:{line_no}: {}", batch.file, reject.0),
                    raw,
                });
            }
        }
    }
}

/// An alert as playbook conditions see it (see `playbook::Fields`).
struct AlertFields<'a> {
    alert: &'a super::alert::Alert,
    score: &'a super::score::Score,
    fingerprint: &'a str,
    doc: std::cell::OnceCell<serde_json::Value>,
}

impl AlertFields<'_> {
    fn doc(&self) -> &serde_json::Value {
        self.doc.get_or_init(|| {
            let mut doc = match_document(self.alert, self.score, self.fingerprint);
            if let serde_json::Value::Object(m) = &mut doc {
                // Indicators only for alerts that reach a playbook: extraction is not free.
                let iocs = super::ioc::extract(self.alert);
                m.insert("ioc".into(), super::ioc::for_playbooks(&iocs));
            }
            doc
        })
    }
}

/// Fields read straight off the alert, without building its ECS document.
const DIRECT_FIELDS: &[&str] = &[
    "rule.id",
    "rule.name",
    "rule.category",
    "source.ip",
    "destination.ip",
    "host.name",
    "user.name",
    "event.module",
    "network.transport",
];

impl super::playbook::Fields for AlertFields<'_> {
    fn field(&self, path: &str) -> Option<serde_json::Value> {
        if path == "vigil.risk" {
            return self.score.risk().map(|r| serde_json::json!(r));
        }
        if DIRECT_FIELDS.contains(&path) {
            return super::incident::field(self.alert, path).map(serde_json::Value::String);
        }
        // Lists, shaped as the document has them (absent when empty).
        let list = |v: &Vec<String>| (!v.is_empty()).then(|| serde_json::json!(v));
        match path {
            "threat.technique.id" => list(&self.alert.technique_ids),
            "threat.tactic.name" => list(&self.alert.tactics),
            "message" => self.alert.message.clone().map(serde_json::Value::String),
            _ => super::playbook::Fields::field(self.doc(), path),
        }
    }

    fn cheap(&self, path: &str) -> bool {
        matches!(
            path,
            "vigil.risk" | "threat.technique.id" | "threat.tactic.name" | "message"
        ) || DIRECT_FIELDS.contains(&path)
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
            refused: None,
        });
        line_no += 1;
        start = end + 1;
    }
    (out, start)
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|c| *c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::split_lines;

    /// The fields read straight off the alert must be exactly what the full document holds,
    /// or a playbook would match differently depending on which condition came first.
    #[test]
    fn direct_fields_equal_the_document() {
        use super::super::playbook::Fields;
        use super::super::score::Score;
        let text = include_str!("../../tests/fixtures/suricata-alert.json");
        let format = super::super::format::FileFormat::detect(
            text.as_bytes(),
            super::super::format::Format::Auto,
        );
        let Ok(super::super::normalize::Parsed::Alert(mut alert, fp)) =
            format.parse_line(text.lines().next().unwrap_or_default().as_bytes())
        else {
            panic!("the Suricata fixture did not parse as an alert");
        };
        alert.technique_ids = vec!["T1071".into(), "T1105".into()];
        alert.tactics = vec!["Command and Control".into()];
        let score = Score::Unscored {
            reason: "test".into(),
            attack: None,
        };
        let view = super::AlertFields {
            alert: &alert,
            score: &score,
            fingerprint: &fp,
            doc: std::cell::OnceCell::new(),
        };
        let mut checked = 0;
        for path in super::DIRECT_FIELDS.iter().chain(&[
            "threat.technique.id",
            "threat.tactic.name",
            "message",
            "vigil.risk",
        ]) {
            assert!(view.cheap(path), "{path} should be cheap");
            let direct = view.field(path);
            let from_doc = Fields::field(view.doc(), path);
            assert_eq!(direct, from_doc, "{path}");
            checked += usize::from(direct.is_some());
        }
        assert!(
            checked >= 8,
            "only {checked} fields were present in the fixture"
        );
    }

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
