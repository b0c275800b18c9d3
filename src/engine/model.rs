//! A model directory: `forest.json` (the compiled forest) and `model.toml` (its card). Owns
//! reading, writing and checking them; the default model is embedded in the binary so vigil
//! scores with no configuration.

use super::calibrate::{Calibration, CalibrationMethod};
use super::dataset::InputSpec;
use super::forest::{Forest, PackedForest};
use super::metrics::Metrics;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Hyper-parameters of a forest, recorded in the card so a model can be rebuilt exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    pub trees: usize,
    /// 0 = unlimited depth.
    pub max_depth: usize,
    /// Fraction of features each tree sees (a per-tree random subspace).
    pub feature_fraction: f64,
    /// Bootstrap size as a fraction of the training rows (1.0 = classic bagging). Smaller
    /// samples train faster and decorrelate trees more.
    #[serde(default = "one")]
    pub sample_fraction: f64,
    pub min_weight_leaf: f32,
    pub min_weight_split: f32,
    /// Weight classes inversely to their frequency so a rare class is not ignored.
    pub balance_classes: bool,
    pub seed: u64,
    /// How the raw forest score becomes a probability (fitted on out-of-bag predictions).
    #[serde(default = "isotonic")]
    pub calibration: CalibrationMethod,
}

fn one() -> f64 {
    1.0
}

fn isotonic() -> CalibrationMethod {
    CalibrationMethod::Isotonic
}

fn half() -> f64 {
    0.5
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            trees: 64,
            max_depth: 12,
            feature_fraction: 0.7,
            sample_fraction: 1.0,
            min_weight_leaf: 1.0,
            min_weight_split: 2.0,
            balance_classes: true,
            seed: 42,
            calibration: CalibrationMethod::Isotonic,
        }
    }
}

/// One input file of a training run, identified by content so the card proves what was used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    pub path: String,
    pub sha256: String,
    pub rows: usize,
    pub bad_rows: usize,
}

/// The model card: what the model reads, what it was trained on, and how good it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    pub kind: String,
    pub vigil_version: String,
    pub created: String,
    pub label_positive: String,
    pub features: Vec<String>,
    /// What the model reads and how raw columns became features, so eval and score encode
    /// rows exactly as training did.
    #[serde(default)]
    pub input: InputSpec,
    /// Calibrated probability at or above which an alert counts as malicious in `eval`.
    #[serde(default = "half")]
    pub threshold: f64,
    pub parameters: TrainParams,
    pub sources: Vec<DataSource>,
    pub train_rows: usize,
    pub test_rows: usize,
    pub training_seconds: f64,
    /// Measured on the held-out rows, never on training rows, with calibrated probabilities.
    pub metrics: Option<Metrics>,
    pub notes: String,
    /// How to read the explanation's numbers.
    #[serde(default)]
    pub explanation: String,
    /// Maps the forest's raw score to a probability; absent = the raw score is used.
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

/// A loaded model: card plus forest, checked against each other.
#[derive(Debug, Clone)]
pub struct Model {
    pub card: ModelCard,
    pub forest: Forest,
    /// Where it came from, for error messages and the UI.
    pub origin: String,
    /// SHA-256 of the card and forest texts, recorded when a session loads the model (empty
    /// for a model made in this process).
    pub sha256: String,
    /// The forest laid out for fast inference.
    packed: PackedForest,
}

/// Why a model cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Parse { path: String, msg: String },
    #[error("{origin}: mismatched model: {msg}")]
    Mismatch { origin: String, msg: String },
    #[error("{origin}: corrupt forest: {source}")]
    Corrupt {
        origin: String,
        source: super::forest::ForestError,
    },
}

const EMBEDDED_CARD: &str = include_str!("../../models/default/model.toml");
const EMBEDDED_FOREST: &str = include_str!("../../models/default/forest.json");

impl Model {
    /// The default model shipped in `models/default`, compiled into the binary.
    ///
    /// # Errors
    /// Only if the shipped files are broken (a test guards against that).
    pub fn embedded() -> Result<Self, ModelError> {
        Self::from_texts(EMBEDDED_CARD, EMBEDDED_FOREST, "embedded models/default")
    }

    /// Load `DIR/model.toml` and `DIR/forest.json`.
    ///
    /// # Errors
    /// Unreadable, unparsable, inconsistent or structurally corrupt files, each naming the file.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| ModelError::Read { path, source })
        };
        let card = read("model.toml")?;
        let forest = read("forest.json")?;
        Self::from_texts(&card, &forest, &dir.display().to_string())
    }

    fn from_texts(card_text: &str, forest_text: &str, origin: &str) -> Result<Self, ModelError> {
        let (card, forest) = (card_text, forest_text);
        let card: ModelCard = toml::from_str(card).map_err(|e| ModelError::Parse {
            path: format!("{origin}/model.toml"),
            msg: e.message().to_string(),
        })?;
        let forest: Forest = serde_json::from_str(forest).map_err(|e| ModelError::Parse {
            path: format!("{origin}/forest.json"),
            msg: e.to_string(),
        })?;
        if card.features != forest.features {
            return Err(ModelError::Mismatch {
                origin: origin.into(),
                msg: "model.toml and forest.json list different features".into(),
            });
        }
        forest.validate().map_err(|source| ModelError::Corrupt {
            origin: origin.into(),
            source,
        })?;
        if let Some(c) = &card.calibration {
            c.validate().map_err(|msg| ModelError::Parse {
                path: format!("{origin}/model.toml"),
                msg: format!("[calibration]: {msg}"),
            })?;
        }
        if !(0.0..=1.0).contains(&card.threshold) {
            return Err(ModelError::Parse {
                path: format!("{origin}/model.toml"),
                msg: format!("threshold {} is not a probability", card.threshold),
            });
        }
        let mut m = Model::new(card, forest, origin.into());
        m.sha256 = super::alert::sha256_hex(format!("{card_text}\0{forest_text}").as_bytes());
        Ok(m)
    }

    /// Write the model directory, creating it.
    ///
    /// # Errors
    /// I/O or serialisation failures.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("model.toml"), toml::to_string_pretty(&self.card)?)?;
        let mut forest = crate::sanitize::json::to_string(&self.forest)?;
        forest.push('\n');
        std::fs::write(dir.join("forest.json"), forest)?;
        Ok(())
    }

    /// Assemble a model from a card and a validated forest.
    pub fn new(card: ModelCard, forest: Forest, origin: String) -> Self {
        let packed = PackedForest::new(&forest);
        Model {
            card,
            forest,
            origin,
            sha256: String::new(),
            packed,
        }
    }

    /// The raw (uncalibrated) forest score, from the packed layout.
    pub fn raw_score(&self, x: &[f64]) -> f64 {
        self.packed.predict_proba(x)
    }

    /// Calibrated probability of a feature vector (the raw forest score when the card has no
    /// calibrator).
    pub fn probability(&self, x: &[f64]) -> f64 {
        self.calibrate(self.raw_score(x))
    }

    /// Map a raw forest score to the card's calibrated probability.
    pub fn calibrate(&self, raw: f64) -> f64 {
        match &self.card.calibration {
            Some(c) => c.apply(raw),
            None => raw,
        }
        .clamp(0.0, 1.0)
    }

    /// Refuse a model whose feature list is not `expected`: feeding it our vectors would
    /// silently misread every feature.
    ///
    /// # Errors
    /// `Mismatch` naming the first differing feature.
    pub fn check_features(&self, expected: &[&str]) -> Result<(), ModelError> {
        let have: Vec<&str> = self.card.features.iter().map(String::as_str).collect();
        if have == expected {
            return Ok(());
        }
        let first = have
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(have.len().min(expected.len()));
        Err(ModelError::Mismatch {
            origin: self.origin.clone(),
            msg: format!(
                "feature list differs from this vigil's at position {first} (model has {} features: {:?}…, vigil expects {}: {:?}…)",
                have.len(),
                have.get(first),
                expected.len(),
                expected.get(first)
            ),
        })
    }
}
