//! Turning the forest's raw score into a probability an analyst can read as "how often alerts
//! like this were malicious". Owns fitting (isotonic or Platt, on out-of-bag predictions) and
//! applying the calibrator; the forest and the scorer know nothing of how it was fitted.
//!
//! Why: class-balanced training makes the raw leaf fractions answer "malicious or not, if both
//! were equally common", which overstates risk whenever malicious alerts are rare.

use serde::{Deserialize, Serialize};

/// Which calibrator `vigil train` fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    /// Monotone step fit (pool-adjacent-violators), interpolated between block centres.
    Isotonic,
    /// A logistic curve on the raw score (two parameters; smoother, for little data).
    Platt,
    /// Keep the raw score.
    None,
}

/// A fitted calibrator, stored in the model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Calibration {
    /// Piecewise-linear through `(x[i], y[i])`, flat beyond the ends. `x` strictly increases,
    /// `y` never decreases, so ranking is preserved.
    Isotonic {
        fitted_on: String,
        x: Vec<f64>,
        y: Vec<f64>,
    },
    /// `1 / (1 + exp(-(a * p + b)))`.
    Platt { fitted_on: String, a: f64, b: f64 },
}

impl Calibration {
    /// Calibrated probability for a raw forest score `p`.
    pub fn apply(&self, p: f64) -> f64 {
        match self {
            Calibration::Isotonic { x, y, .. } => interpolate(x, y, p),
            Calibration::Platt { a, b, .. } => 1.0 / (1.0 + (-(a * p + b)).exp()),
        }
    }

    /// Refuse a calibrator that could produce something other than a probability or reorder
    /// alerts.
    ///
    /// # Errors
    /// A short reason naming what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Calibration::Isotonic { x, y, .. } => {
                if x.is_empty() || x.len() != y.len() {
                    return Err(
                        "isotonic calibration needs as many x as y values, at least one".into(),
                    );
                }
                if x.iter().chain(y).any(|v| !v.is_finite()) {
                    return Err("isotonic calibration has a non-finite value".into());
                }
                if y.iter().any(|v| !(0.0..=1.0).contains(v)) {
                    return Err("isotonic calibration maps outside 0..1".into());
                }
                if x.windows(2).any(|w| w[0] >= w[1]) || y.windows(2).any(|w| w[0] > w[1]) {
                    return Err("isotonic calibration is not increasing".into());
                }
                Ok(())
            }
            Calibration::Platt { a, b, .. } => {
                if !a.is_finite() || !b.is_finite() || *a < 0.0 {
                    return Err("Platt calibration needs finite a >= 0 and b".into());
                }
                Ok(())
            }
        }
    }

    /// Fit `method` on raw scores and their labels. `None` when the method is `None` or the
    /// data cannot support a fit (one class only).
    pub fn fit(
        method: CalibrationMethod,
        scores: &[f64],
        labels: &[bool],
        fitted_on: String,
    ) -> Option<Calibration> {
        let pos = labels.iter().filter(|l| **l).count();
        if scores.is_empty() || pos == 0 || pos == labels.len() {
            return None;
        }
        match method {
            CalibrationMethod::None => None,
            CalibrationMethod::Isotonic => {
                let (x, y) = isotonic(scores, labels);
                Some(Calibration::Isotonic { fitted_on, x, y })
            }
            CalibrationMethod::Platt => {
                let (a, b) = platt(scores, labels);
                Some(Calibration::Platt { fitted_on, a, b })
            }
        }
    }
}

fn interpolate(x: &[f64], y: &[f64], p: f64) -> f64 {
    let (Some(&x0), Some(&xn)) = (x.first(), x.last()) else {
        return p;
    };
    if p <= x0 {
        return y[0];
    }
    if p >= xn {
        return y[y.len() - 1];
    }
    // First point strictly above p; p lies between it and the one before.
    let i = x.partition_point(|v| *v <= p);
    let (xa, xb, ya, yb) = (x[i - 1], x[i], y[i - 1], y[i]);
    ya + (yb - ya) * (p - xa) / (xb - xa)
}

/// Pool adjacent violators over scores sorted ascending, ties pooled first; returns each
/// block's mean score and mean label. Adjacent blocks with equal means are merged so `x`
/// strictly increases.
fn isotonic(scores: &[f64], labels: &[bool]) -> (Vec<f64>, Vec<f64>) {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    // (sum of scores, sum of labels, count)
    let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        let (mut sx, mut sy) = (0.0, 0.0);
        while j < idx.len() && scores[idx[j]] == scores[idx[i]] {
            sx += scores[idx[j]];
            sy += if labels[idx[j]] { 1.0 } else { 0.0 };
            j += 1;
        }
        blocks.push((sx, sy, (j - i) as f64));
        while blocks.len() >= 2 {
            let n = blocks.len();
            let (a, b) = (blocks[n - 2], blocks[n - 1]);
            if a.1 / a.2 >= b.1 / b.2 {
                blocks.pop();
                blocks[n - 2] = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
            } else {
                break;
            }
        }
        i = j;
    }
    let x = blocks.iter().map(|b| b.0 / b.2).collect();
    let y = blocks.iter().map(|b| b.1 / b.2).collect();
    (x, y)
}

/// Platt scaling by Newton's method on the log-loss, with Platt's smoothed targets so a
/// separable set does not drive the slope to infinity.
fn platt(scores: &[f64], labels: &[bool]) -> (f64, f64) {
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    let (t_pos, t_neg) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
    let (mut a, mut b) = (1.0f64, 0.0f64);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (s, l) in scores.iter().zip(labels) {
            let t = if *l { t_pos } else { t_neg };
            let p = 1.0 / (1.0 + (-(a * s + b)).exp());
            let d = p - t;
            let w = (p * (1.0 - p)).max(1e-12);
            ga += d * s;
            gb += d;
            haa += w * s * s;
            hab += w * s;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-18 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() < 1e-10 && db.abs() < 1e-10 {
            break;
        }
    }
    (a.max(0.0), b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_is_monotone_and_maps_to_observed_rates() {
        // Raw scores overstate: rows at 0.9 are malicious half the time.
        let scores = [0.1, 0.1, 0.2, 0.2, 0.9, 0.9, 0.9, 0.9];
        let labels = [false, false, false, false, true, false, true, false];
        let c = Calibration::fit(CalibrationMethod::Isotonic, &scores, &labels, "t".into())
            .expect("fits");
        c.validate().expect("valid");
        assert_eq!(c.apply(0.1), 0.0);
        assert!((c.apply(0.9) - 0.5).abs() < 1e-12);
        assert!(
            (c.apply(1.0) - 0.5).abs() < 1e-12,
            "flat beyond the last point"
        );
        let mid = c.apply(0.5);
        assert!(mid > 0.0 && mid < 0.5, "interpolated: {mid}");
    }

    #[test]
    fn violators_are_pooled() {
        let scores = [0.1, 0.2, 0.3, 0.4];
        let labels = [false, true, false, true];
        let Some(Calibration::Isotonic { x, y, .. }) =
            Calibration::fit(CalibrationMethod::Isotonic, &scores, &labels, "t".into())
        else {
            panic!("isotonic expected")
        };
        assert_eq!(y, vec![0.0, 0.5, 1.0]);
        assert!((x[1] - 0.25).abs() < 1e-12);
    }

    #[test]
    fn platt_is_increasing_and_one_class_gives_none() {
        let scores: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        let labels: Vec<bool> = (0..100).map(|i| i % 10 == 0 || i > 80).collect();
        let c =
            Calibration::fit(CalibrationMethod::Platt, &scores, &labels, "t".into()).expect("fits");
        c.validate().expect("valid");
        assert!(c.apply(0.9) > c.apply(0.1));
        assert!(Calibration::fit(CalibrationMethod::Platt, &[0.1], &[true], "t".into()).is_none());
    }

    #[test]
    fn broken_calibrators_are_refused() {
        let c = Calibration::Isotonic {
            fitted_on: String::new(),
            x: vec![0.5, 0.1],
            y: vec![0.0, 1.0],
        };
        assert!(c.validate().is_err());
        let c = Calibration::Isotonic {
            fitted_on: String::new(),
            x: vec![0.1],
            y: vec![1.5],
        };
        assert!(c.validate().is_err());
    }
}
