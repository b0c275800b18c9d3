//! Measuring a saved model on labelled data: the same readers and encodings as training, the
//! model's calibrated probabilities, and the metrics `vigil eval` prints. Owns nothing else.

use super::dataset::table::{self, CategoricalPolicy, TableRead};
use super::dataset::{self, InputFormat, Labelled, ReadOptions};
use super::features;
use super::metrics::{self, Metrics};
use super::model::Model;
use anyhow::bail;
use std::path::{Path, PathBuf};

/// Which rows to measure on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalSplit {
    /// Every labelled row.
    All,
    /// Only rows the training run held out (the `split` field, or every Nth row as in the card).
    Test,
}

/// What to evaluate on.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    pub data: Vec<PathBuf>,
    /// Defaults to the format the model was trained on.
    pub format: Option<InputFormat>,
    pub split: EvalSplit,
    /// Defaults to the card's working threshold.
    pub threshold: Option<f64>,
    pub max_bad_fraction: f64,
    pub incident_rules: Vec<super::incident::IncidentRule>,
}

/// The outcome: metrics plus skipped rows.
pub struct Evaluation {
    pub metrics: Metrics,
    pub bad_rows: Vec<String>,
}

/// Score every labelled row with `model` and measure.
///
/// # Errors
/// Unreadable data, a format the model does not read, a feature list that differs from the
/// model's, or no rows to measure.
pub fn run(model: &Model, req: &EvalRequest) -> anyhow::Result<Evaluation> {
    let card = &model.card;
    let format = req.format.unwrap_or(card.input.format);
    if format != card.input.format
        && !(format != InputFormat::Alerts && card.input.format != InputFormat::Alerts)
    {
        bail!(
            "{}: mismatched model: it reads {} data, not {}",
            model.origin,
            card.input.format.name(),
            format.name()
        );
    }
    let opts = ReadOptions {
        holdout_every: card.input.holdout_every,
        max_bad_fraction: req.max_bad_fraction,
        incident_rules: req.incident_rules.clone(),
    };
    let mut set = Labelled::default();
    match format {
        InputFormat::Alerts => {
            model.check_features(features::FEATURES)?;
            let mut items = Vec::new();
            for f in &req.data {
                dataset::read_labelled_alerts(f, &opts, &mut items, &mut set)?;
            }
            dataset::alerts_to_rows(items, &opts.incident_rules, &mut set);
        }
        InputFormat::Csv | InputFormat::NslKdd => {
            let paths: Vec<&Path> = req.data.iter().map(PathBuf::as_path).collect();
            let how = TableRead {
                format,
                label_column: card.input.label_column.as_deref(),
                benign_values: &card.input.benign_values,
            };
            let spec = table::read_tables(
                &paths,
                &how,
                Some(&card.input.columns),
                CategoricalPolicy::Auto,
                0,
                &opts,
                &mut set,
            )?;
            let names = table::feature_names(&spec.columns);
            let expected: Vec<&str> = names.iter().map(String::as_str).collect();
            model.check_features(&expected)?;
        }
    }
    let bad_rows = set.bad_rows.clone();
    let (mut scores, mut labels) = (Vec::new(), Vec::new());
    for ((x, y), t) in set.x.iter().zip(&set.y).zip(&set.test) {
        if req.split == EvalSplit::Test && !t {
            continue;
        }
        scores.push(model.probability(x));
        labels.push(*y);
    }
    if scores.is_empty() {
        bail!("no labelled rows to evaluate on");
    }
    Ok(Evaluation {
        metrics: metrics::evaluate(&scores, &labels, req.threshold.unwrap_or(card.threshold)),
        bad_rows,
    })
}
