//! Classifier quality measures used by `train` and `eval`. Pure functions over scores and
//! labels.

use serde::Serialize;

/// The figures a model card and `vigil eval` report.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Metrics {
    pub rows: usize,
    pub positives: usize,
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub brier: f64,
    /// `[[tn, fp], [fn, tp]]`
    pub confusion: [[usize; 2]; 2],
}

/// ROC-AUC by the rank statistic (ties count one half).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let (mut rank_sum, mut i) = (0.0, 0usize);
    let n_pos = labels.iter().filter(|l| **l).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for k in &idx[i..=j] {
            if labels[*k] {
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// Average precision (area under the precision-recall curve, step-wise as scikit-learn does).
pub fn pr_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let n_pos = labels.iter().filter(|l| **l).count() as f64;
    if n_pos == 0.0 {
        return f64::NAN;
    }
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j < idx.len() && scores[idx[j]] == scores[idx[i]] {
            if labels[idx[j]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            j += 1;
        }
        let recall = tp / n_pos;
        let precision = tp / (tp + fp);
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j;
    }
    ap
}

/// All metrics at one decision threshold.
pub fn evaluate(scores: &[f64], labels: &[bool], threshold: f64) -> Metrics {
    let mut c = [[0usize; 2]; 2];
    let mut brier = 0.0;
    for (s, l) in scores.iter().zip(labels) {
        let pred = *s >= threshold;
        c[usize::from(*l)][usize::from(pred)] += 1;
        let y = if *l { 1.0 } else { 0.0 };
        brier += (s - y) * (s - y);
    }
    let (tp, fp, fneg) = (c[1][1] as f64, c[0][1] as f64, c[1][0] as f64);
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fneg > 0.0 {
        tp / (tp + fneg)
    } else {
        0.0
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Metrics {
        rows: scores.len(),
        positives: labels.iter().filter(|l| **l).count(),
        roc_auc: roc_auc(scores, labels),
        pr_auc: pr_auc(scores, labels),
        threshold,
        precision,
        recall,
        f1,
        brier: if scores.is_empty() {
            f64::NAN
        } else {
            brier / scores.len() as f64
        },
        confusion: c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_inverted_rankings() {
        let l = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &l), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &l), 0.0);
        assert_eq!(roc_auc(&[0.5, 0.5, 0.5, 0.5], &l), 0.5);
        assert!((pr_auc(&[0.1, 0.2, 0.8, 0.9], &l) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn confusion_and_f1() {
        let m = evaluate(&[0.9, 0.6, 0.4, 0.1], &[true, false, true, false], 0.5);
        assert_eq!(m.confusion, [[1, 1], [1, 1]]);
        assert!((m.precision - 0.5).abs() < 1e-12);
        assert!((m.recall - 0.5).abs() < 1e-12);
        assert!((m.brier - (0.01 + 0.36 + 0.36 + 0.01) / 4.0).abs() < 1e-12);
    }
}
