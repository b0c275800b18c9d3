//! Risk for one alert: features → forest → probability × 100, a band, and the features that
//! pushed it up or down. Owns nothing but the loaded model; pure CPU work, run off the async
//! threads by the caller.

use super::alert::Alert;
use super::features::{self, FEATURES};
use super::model::{Model, ModelError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Risk bands an analyst triages by. Thresholds are configurable; the label is always printed
/// so severity never depends on colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Band {
    Low,
    Medium,
    High,
    Critical,
}

impl Band {
    pub fn label(self) -> &'static str {
        match self {
            Band::Low => "LOW",
            Band::Medium => "MED",
            Band::High => "HIGH",
            Band::Critical => "CRIT",
        }
    }
}

/// Band lower bounds (risk is in a band when it is >= that band's bound).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bands {
    pub medium: u8,
    pub high: u8,
    pub critical: u8,
}

impl Default for Bands {
    fn default() -> Self {
        Bands {
            medium: 30,
            high: 70,
            critical: 90,
        }
    }
}

impl Bands {
    pub fn band(&self, risk: u8) -> Band {
        if risk >= self.critical {
            Band::Critical
        } else if risk >= self.high {
            Band::High
        } else if risk >= self.medium {
            Band::Medium
        } else {
            Band::Low
        }
    }
}

/// One feature's push on the risk, in risk points (probability × 100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    pub value: f64,
    pub points: f64,
}

/// The outcome of scoring: a risk with its reasons, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Score {
    Scored {
        risk: u8,
        band: Band,
        probability: f64,
        /// Risk points before any feature is considered (the forest's mean root value).
        base_points: f64,
        /// Largest absolute contributions first.
        top: Vec<Contribution>,
        model: String,
    },
    /// The alert is kept and shown; it just has no risk yet.
    Unscored { reason: String },
}

impl Score {
    pub fn risk(&self) -> Option<u8> {
        match self {
            Score::Scored { risk, .. } => Some(*risk),
            Score::Unscored { .. } => None,
        }
    }
}

/// How many contributions to keep with each score.
const TOP_CONTRIBUTIONS: usize = 5;

/// A model ready to score alerts, or the reason there is none.
#[derive(Debug, Clone)]
pub struct Scorer {
    model: Result<Arc<Model>, String>,
    bands: Bands,
}

impl Scorer {
    /// Wrap a model after checking it reads this vigil's features. A bad model does not stop
    /// ingestion: alerts are stored unscored with the reason.
    pub fn new(model: Result<Model, ModelError>, bands: Bands) -> Self {
        let model = model
            .and_then(|m| m.check_features(FEATURES).map(|()| m))
            .map(Arc::new)
            .map_err(|e| e.to_string());
        Scorer { model, bands }
    }

    /// The model's problem, if it has one.
    pub fn model_error(&self) -> Option<&str> {
        self.model.as_ref().err().map(String::as_str)
    }

    /// `{origin, name, sha256}` of the model in use, or its error.
    pub fn model_record(&self) -> serde_json::Value {
        match &self.model {
            Ok(m) => {
                serde_json::json!({"origin": m.origin, "name": m.card.name, "sha256": m.sha256})
            }
            Err(e) => serde_json::json!({"error": e}),
        }
    }

    pub fn model_name(&self) -> Option<&str> {
        self.model.as_ref().ok().map(|m| m.card.name.as_str())
    }

    pub fn bands(&self) -> Bands {
        self.bands
    }

    pub fn score(&self, alert: &Alert) -> Score {
        let model = match &self.model {
            Ok(m) => m,
            Err(reason) => {
                return Score::Unscored {
                    reason: reason.clone(),
                }
            }
        };
        let x = features::extract(alert);
        // One walk gives both: the prediction is the bias plus every contribution.
        let (bias, contrib) = model.forest.explain(&x);
        let p = (bias + contrib.iter().sum::<f64>()).clamp(0.0, 1.0);
        let mut top: Vec<Contribution> = contrib
            .iter()
            .enumerate()
            .filter(|(_, c)| c.abs() > 1e-9)
            .map(|(i, c)| Contribution {
                feature: FEATURES[i].to_string(),
                value: x[i],
                points: c * 100.0,
            })
            .collect();
        top.sort_by(|a, b| b.points.abs().total_cmp(&a.points.abs()));
        top.truncate(TOP_CONTRIBUTIONS);
        let risk = (p * 100.0).round() as u8;
        Score::Scored {
            risk,
            band: self.bands.band(risk),
            probability: p,
            base_points: bias * 100.0,
            top,
            model: model.card.name.clone(),
        }
    }
}
