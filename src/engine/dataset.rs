//! Labelled training and evaluation data: labelled alerts (JSON lines), tables (CSV with a
//! header, NSL-KDD) and analyst dispositions from a vigil database, each turned into feature
//! rows plus labels. Owns the readers, the bad-row rule and the `[input]` section of the model
//! card; knows nothing of fitting.

pub mod table;

use super::alert::{sha256_hex, Alert};
use super::features::{self, FeatureContext};
use super::incident;
use super::model::DataSource;
use super::normalize::{normalize_line, Parsed};
use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The shape of the input a model reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// JSON lines `{"label": ..., "alert": {...}}`; features are vigil's alert features.
    #[default]
    Alerts,
    /// CSV with a header row; `--label` names the label column.
    Csv,
    /// NSL-KDD: 41 features, the label, optionally the difficulty; no header.
    NslKdd,
}

impl InputFormat {
    /// The name the `--format` flag and the card use.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Alerts => "alerts",
            InputFormat::Csv => "csv",
            InputFormat::NslKdd => "nsl-kdd",
        }
    }
}

/// The `[input]` section of a model card.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub format: InputFormat,
    /// The label column of a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// Label values that mean benign; any other value means malicious. Empty: labels must be
    /// one of malicious/benign/attack/normal/tp/fp/1/0/true/false.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub benign_values: Vec<String>,
    /// How each table column became features, in column order (label column excluded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<table::ColumnEncoding>,
    /// Every Nth row was held out at training (when the data has no `split` field); eval's
    /// `--split test` picks the same rows.
    #[serde(default)]
    pub holdout_every: usize,
}

/// A labelled set ready for fitting or evaluation.
#[derive(Debug, Default)]
pub struct Labelled {
    pub x: Vec<Vec<f64>>,
    pub y: Vec<bool>,
    /// True for rows held out for evaluation.
    pub test: Vec<bool>,
    pub sources: Vec<DataSource>,
    /// One line per rejected row: `file:line: reason`.
    pub bad_rows: Vec<String>,
}

impl Labelled {
    /// Split into (training rows, held-out rows), each as (x, y).
    #[allow(clippy::type_complexity)]
    pub fn split(self) -> ((Vec<Vec<f64>>, Vec<bool>), (Vec<Vec<f64>>, Vec<bool>)) {
        let (mut tr, mut te) = ((vec![], vec![]), (vec![], vec![]));
        for ((x, y), t) in self.x.into_iter().zip(self.y).zip(self.test) {
            let side = if t { &mut te } else { &mut tr };
            side.0.push(x);
            side.1.push(y);
        }
        (tr, te)
    }
}

/// Limits on reading labelled data.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Hold out every Nth row (by line) for evaluation when the data does not say; 0 = none.
    pub holdout_every: usize,
    /// Most rows a file may reject before reading stops: past this the data is wrong, not noisy.
    pub max_bad_fraction: f64,
    /// The incident rules, for incident size and rate features (as the writer groups alerts).
    pub incident_rules: Vec<super::incident::IncidentRule>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            holdout_every: 5,
            max_bad_fraction: 0.10,
            // Callers pass the configured rules; without them no alert joins an incident.
            incident_rules: Vec::new(),
        }
    }
}

/// Stop when a file rejected more than the allowed share of its rows.
///
/// # Errors
/// Over the limit: names the file, the counts and the first bad row.
pub fn check_bad_fraction(
    path: &str,
    rows: usize,
    bad: usize,
    first_bad: Option<&str>,
    max: f64,
) -> anyhow::Result<()> {
    if rows > 0 && bad as f64 / rows as f64 > max {
        bail!(
            "{path}: {bad} of {rows} rows are bad (over the {:.0}% limit); first: {}",
            max * 100.0,
            first_bad.unwrap_or("")
        );
    }
    Ok(())
}

/// Read a label value. `benign` lists the values meaning benign (anything else is malicious);
/// without it the value must be a recognised word or number.
pub fn parse_label(v: &serde_json::Value, benign: &[String]) -> Option<bool> {
    if !benign.is_empty() {
        let s = match v {
            serde_json::Value::String(s) => s.trim().to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        return (!s.is_empty()).then(|| !benign.iter().any(|b| b.eq_ignore_ascii_case(&s)));
    }
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        serde_json::Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "malicious" | "true_positive" | "tp" | "attack" | "1" | "true" => Some(true),
            "benign" | "false_positive" | "fp" | "normal" | "0" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// One labelled alert before features: the features need the whole set (incident figures).
pub struct LabelledAlert {
    pub alert: Alert,
    pub label: bool,
    pub test: bool,
}

/// Turn labelled alerts into feature rows, with incident figures computed over the whole set in
/// time order (what the live pipeline would have seen).
pub fn alerts_to_rows(
    items: Vec<LabelledAlert>,
    rules: &[incident::IncidentRule],
    into: &mut Labelled,
) {
    let refs: Vec<&Alert> = items.iter().map(|i| &i.alert).collect();
    let figs = incident::figures_in_time_order(&refs, rules);
    for (item, f) in items.iter().zip(figs) {
        into.x.push(features::extract(
            &item.alert,
            &FeatureContext::with_incident(f),
        ));
        into.y.push(item.label);
        into.test.push(item.test);
    }
}

/// Read labelled alerts: JSON lines `{"label": ..., "alert": {...}, "split": "train"|"test"}`.
/// Rows without `split` are held out by line number (every `holdout_every`th) so evaluation
/// never sees training rows.
///
/// # Errors
/// An unreadable file, or more bad rows than `max_bad_fraction` allows.
pub fn read_labelled_alerts(
    path: &Path,
    opts: &ReadOptions,
    items: &mut Vec<LabelledAlert>,
    into: &mut Labelled,
) -> anyhow::Result<()> {
    let bytes = super::reader::read_maybe_gz(path)?;
    let (mut rows, mut bad) = (0usize, 0usize);
    let first_bad = into.bad_rows.len();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        rows += 1;
        let line_no = i + 1;
        let mut fail = |msg: String| {
            bad += 1;
            into.bad_rows
                .push(format!("{}:{line_no}: {msg}", path.display()));
        };
        let doc: serde_json::Value = match serde_json::from_slice(line) {
            Ok(d) => d,
            Err(e) => {
                fail(format!("not valid JSON: {e}"));
                continue;
            }
        };
        let Some(label) = doc.get("label").and_then(|l| parse_label(l, &[])) else {
            fail("field `label`: missing or not one of malicious/benign/true_positive/false_positive/1/0".into());
            continue;
        };
        let Some(alert) = doc.get("alert").filter(|a| a.is_object()) else {
            fail("field `alert`: missing or not an object".into());
            continue;
        };
        let raw = alert.to_string();
        let a = match normalize_line(raw.as_bytes()) {
            Ok(Parsed::Alert(a, _)) => a,
            Ok(Parsed::Skipped) => {
                fail("field `alert`: the document is not an alert event".into());
                continue;
            }
            Err(e) => {
                fail(format!("field `alert`: {e}"));
                continue;
            }
        };
        let test = match doc.get("split").and_then(|s| s.as_str()) {
            Some("test") => true,
            Some(_) => false,
            None => opts.holdout_every > 0 && line_no.is_multiple_of(opts.holdout_every),
        };
        items.push(LabelledAlert {
            alert: *a,
            label,
            test,
        });
    }
    into.sources.push(DataSource {
        path: path.display().to_string(),
        sha256: sha256_hex(&bytes),
        rows,
        bad_rows: bad,
    });
    check_bad_fraction(
        &path.display().to_string(),
        rows,
        bad,
        into.bad_rows.get(first_bad).map(String::as_str),
        opts.max_bad_fraction,
    )
}

/// Labelled alerts from analyst dispositions in a vigil database: true positive = malicious,
/// false positive and benign = benign; the latest disposition of an alert wins. Incident size
/// and rate are the stored incident's as of the alert's time.
///
/// # Errors
/// The database cannot be read.
pub fn read_dispositions(
    db: &Path,
    opts: &ReadOptions,
    into: &mut Labelled,
) -> anyhow::Result<usize> {
    let conn =
        super::store::open_read_only(db).map_err(|e| anyhow::anyhow!("{}: {e}", db.display()))?;
    let rows = super::store::labelled_dispositions(&conn)
        .map_err(|e| anyhow::anyhow!("{}: {e}", db.display()))?;
    let n = rows.len();
    let mut hasher = Vec::new();
    for (i, r) in rows.into_iter().enumerate() {
        hasher.extend_from_slice(
            format!("{}:{}:{};", r.alert_id, r.verdict, r.decided_at).as_bytes(),
        );
        let figs = incident::figures(
            &incident::OpenIncident {
                first_seen: r.incident_first_seen.unwrap_or(r.alert.timestamp),
                last_seen: r.alert.timestamp,
                alerts: r.incident_alerts_so_far.max(1),
            },
            incident::group(&opts.incident_rules, &r.alert)
                .map_or(chrono::Duration::minutes(15), |(_, w)| w),
        );
        into.x.push(features::extract(
            &r.alert,
            &FeatureContext::with_incident(figs),
        ));
        into.y.push(r.verdict == "tp");
        into.test
            .push(opts.holdout_every > 0 && (i + 1).is_multiple_of(opts.holdout_every));
    }
    into.sources.push(DataSource {
        path: format!("{} (dispositions)", db.display()),
        sha256: sha256_hex(&hasher),
        rows: n,
        bad_rows: 0,
    });
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_read_strictly_or_by_benign_values() {
        assert_eq!(parse_label(&json!("malicious"), &[]), Some(true));
        assert_eq!(parse_label(&json!(0), &[]), Some(false));
        assert_eq!(parse_label(&json!("smurf"), &[]), None);
        let normal = vec!["normal".to_string()];
        assert_eq!(parse_label(&json!("smurf"), &normal), Some(true));
        assert_eq!(parse_label(&json!("Normal"), &normal), Some(false));
        assert_eq!(parse_label(&json!(""), &normal), None);
    }

    #[test]
    fn bad_alert_rows_are_named_and_too_many_stop_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("l.jsonl");
        let good = r#"{"label":"benign","alert":{"timestamp":"2020-01-01T00:00:00Z","event_type":"alert","alert":{"signature":"x"}}}"#;
        let text = format!("{good}\n{{\"label\":\"maybe\",\"alert\":{{}}}}\n{good}\n{good}\n");
        std::fs::write(&f, &text).expect("write");
        let (mut items, mut set) = (vec![], Labelled::default());
        let opts = ReadOptions {
            max_bad_fraction: 0.5,
            ..ReadOptions::default()
        };
        read_labelled_alerts(&f, &opts, &mut items, &mut set).expect("one bad row is fine");
        assert_eq!(items.len(), 3);
        assert_eq!(set.bad_rows.len(), 1);
        assert!(
            set.bad_rows[0].starts_with(&format!("{}:2: field `label`", f.display())),
            "{:?}",
            set.bad_rows
        );
        let strict = ReadOptions {
            max_bad_fraction: 0.1,
            ..ReadOptions::default()
        };
        let err = read_labelled_alerts(&f, &strict, &mut vec![], &mut Labelled::default())
            .expect_err("over the limit")
            .to_string();
        assert!(err.contains("1 of 4 rows are bad"), "{err}");
    }
}
