//! Risk for one alert: features → forest → calibrated probability × 100, a band, a
//! recommendation, the attack class, and the features that pushed the risk up or down. Owns
//! nothing but the loaded model; pure CPU work, run off the async threads by the caller.

use super::alert::Alert;
use super::classify::{self, Classification};
use super::features::{self, FeatureContext, FEATURES};
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

/// What to do about an alert at this risk, as the seeds' triage put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    /// LOW: let it be.
    Allow,
    /// MED: limit it (watch, rate-limit, quarantine) while someone looks.
    Restrict,
    /// HIGH and CRIT: stop it.
    Block,
}

impl Recommendation {
    /// LOW allow, MED restrict, HIGH and CRIT block.
    pub fn for_band(band: Band) -> Self {
        match band {
            Band::Low => Recommendation::Allow,
            Band::Medium => Recommendation::Restrict,
            Band::High | Band::Critical => Recommendation::Block,
        }
    }

    /// The word shown and exported.
    pub fn label(self) -> &'static str {
        match self {
            Recommendation::Allow => "allow",
            Recommendation::Restrict => "restrict",
            Recommendation::Block => "block",
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
        /// Calibrated probability of malicious; `risk` is this × 100, rounded.
        probability: f64,
        /// Risk points before any feature is considered (the calibrated mean root value).
        /// `base_points` + every contribution's points = `probability` × 100.
        base_points: f64,
        /// Largest absolute contributions first.
        top: Vec<Contribution>,
        model: String,
        #[serde(default = "default_recommendation")]
        recommendation: Recommendation,
        #[serde(default)]
        attack: Option<Classification>,
    },
    /// The alert is kept and shown; it just has no risk yet.
    Unscored {
        reason: String,
        /// From the rules alone.
        #[serde(default)]
        attack: Option<Classification>,
    },
}

fn default_recommendation() -> Recommendation {
    Recommendation::Allow
}

impl Score {
    pub fn risk(&self) -> Option<u8> {
        match self {
            Score::Scored { risk, .. } => Some(*risk),
            Score::Unscored { .. } => None,
        }
    }

    /// The attack class, scored or not.
    pub fn attack(&self) -> Option<&Classification> {
        match self {
            Score::Scored { attack, .. } | Score::Unscored { attack, .. } => attack.as_ref(),
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

    /// Score one alert in its context.
    pub fn score(&self, alert: &Alert, ctx: &FeatureContext) -> Score {
        let suspicious_from = self.bands.medium;
        let model = match &self.model {
            Ok(m) => m,
            Err(reason) => {
                return Score::Unscored {
                    reason: reason.clone(),
                    attack: Some(classify::classify(alert, None, suspicious_from)),
                }
            }
        };
        let x = features::extract(alert, ctx);
        let (p, base_points, points) = attribution(model, &x);
        let mut top: Vec<Contribution> = points
            .iter()
            .enumerate()
            .filter(|(_, c)| c.abs() > 1e-7)
            .map(|(i, c)| Contribution {
                feature: FEATURES[i].to_string(),
                value: x[i],
                points: *c,
            })
            .collect();
        top.sort_by(|a, b| b.points.abs().total_cmp(&a.points.abs()));
        top.truncate(TOP_CONTRIBUTIONS);
        let risk = (p * 100.0).round() as u8;
        let band = self.bands.band(risk);
        Score::Scored {
            risk,
            band,
            probability: p,
            base_points,
            top,
            model: model.card.name.clone(),
            recommendation: Recommendation::for_band(band),
            attack: Some(classify::classify(alert, Some(risk), suspicious_from)),
        }
    }

    /// The base and every contribution in risk points (not just the top ones), for checking
    /// that they add up.
    pub fn contributions(&self, alert: &Alert, ctx: &FeatureContext) -> Option<(f64, Vec<f64>)> {
        let model = self.model.as_ref().ok()?;
        let (_, base, points) = attribution(model, &features::extract(alert, ctx));
        Some((base, points))
    }
}

/// `(calibrated probability, base points, points per feature)`: raw path attributions scaled
/// onto the calibrated scale so base + sum = calibrated risk. The calibrator is monotone, so the
/// factor is >= 0 and signs are kept.
fn attribution(model: &Model, x: &[f64]) -> (f64, f64, Vec<f64>) {
    let raw = model.raw_score(x).clamp(0.0, 1.0);
    let (bias, contrib) = model.forest.explain(x);
    let (p, base) = (model.calibrate(raw), model.calibrate(bias));
    let scale = if (raw - bias).abs() > 1e-12 {
        (p - base) / (raw - bias)
    } else {
        1.0
    };
    (
        p,
        base * 100.0,
        contrib.iter().map(|c| c * scale * 100.0).collect(),
    )
}
