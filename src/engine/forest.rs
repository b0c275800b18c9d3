//! The compiled random forest: flat node arrays walked without allocation, plus path
//! attribution. Owns inference and the on-disk model format; training lives in `train`.
//!
//! Each node stores the (weighted) fraction of malicious training rows that reached it, so a
//! prediction is the mean leaf fraction (like scikit-learn's `predict_proba`) and the
//! contribution of a split is the change in that fraction along the path (Saabas attribution):
//! bias + sum(contributions) == probability, exactly.

use serde::{Deserialize, Serialize};

/// One node: `[feature, threshold, left, right, value]`. `feature < 0` marks a leaf. Rows go
/// left when `x[feature] < threshold`, the same rule linfa's trees use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node(pub i32, pub f64, pub u32, pub u32, pub f64);

impl Node {
    pub fn leaf(value: f64) -> Self {
        Node(-1, 0.0, 0, 0, value)
    }
    pub fn is_leaf(&self) -> bool {
        self.0 < 0
    }
    pub fn value(&self) -> f64 {
        self.4
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// A forest over a named feature list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    pub features: Vec<String>,
    pub trees: Vec<Tree>,
}

/// Why a forest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ForestError {
    #[error("model has no trees")]
    Empty,
    #[error("tree {tree} node {node}: {what}")]
    Corrupt {
        tree: usize,
        node: usize,
        what: &'static str,
    },
}

impl Tree {
    /// Index of the leaf `x` lands in (rows go left when `x[feature] < threshold`).
    #[inline]
    pub fn leaf_index(&self, x: &[f64]) -> usize {
        let mut i = 0usize;
        loop {
            let n = &self.nodes[i];
            if n.0 < 0 {
                return i;
            }
            i = if x[n.0 as usize] < n.1 {
                n.2 as usize
            } else {
                n.3 as usize
            };
        }
    }
}

impl Forest {
    /// Check every index so inference can never go out of bounds or loop: children must point
    /// forward (trees are stored parent-before-child) and features must exist.
    ///
    /// # Errors
    /// The first structural fault found.
    pub fn validate(&self) -> Result<(), ForestError> {
        if self.trees.is_empty() {
            return Err(ForestError::Empty);
        }
        for (t, tree) in self.trees.iter().enumerate() {
            if tree.nodes.is_empty() {
                return Err(ForestError::Corrupt {
                    tree: t,
                    node: 0,
                    what: "tree has no nodes",
                });
            }
            for (i, n) in tree.nodes.iter().enumerate() {
                let bad = |what| ForestError::Corrupt {
                    tree: t,
                    node: i,
                    what,
                };
                if !n.4.is_finite() || !(0.0..=1.0).contains(&n.4) {
                    return Err(bad("value is not a probability"));
                }
                if n.is_leaf() {
                    continue;
                }
                if n.0 as usize >= self.features.len() {
                    return Err(bad("split on a feature the model does not have"));
                }
                let (l, r) = (n.2 as usize, n.3 as usize);
                if l <= i || r <= i || l >= tree.nodes.len() || r >= tree.nodes.len() {
                    return Err(bad("child index out of order or out of range"));
                }
                if n.1.is_nan() {
                    return Err(bad("threshold is NaN"));
                }
            }
        }
        Ok(())
    }

    /// Probability that `x` is malicious: the mean leaf value over the trees.
    pub fn predict_proba(&self, x: &[f64]) -> f64 {
        let sum: f64 = self.trees.iter().map(|t| t.nodes[t.leaf_index(x)].4).sum();
        sum / self.trees.len() as f64
    }

    /// Majority class of each tree's leaf, for comparison with linfa's own `predict`.
    pub fn tree_votes(&self, x: &[f64]) -> usize {
        self.trees
            .iter()
            .filter(|t| t.nodes[t.leaf_index(x)].4 > 0.5)
            .count()
    }

    /// Path attribution: `(bias, contribution per feature)`, where bias is the mean root value
    /// and `bias + contributions.sum() == predict_proba(x)`.
    pub fn explain(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let mut contrib = vec![0.0; self.features.len()];
        let mut bias = 0.0;
        for t in &self.trees {
            let mut i = 0usize;
            bias += t.nodes[0].4;
            loop {
                let n = &t.nodes[i];
                if n.0 < 0 {
                    break;
                }
                let next = if x[n.0 as usize] < n.1 {
                    n.2 as usize
                } else {
                    n.3 as usize
                };
                contrib[n.0 as usize] += t.nodes[next].4 - n.4;
                i = next;
            }
        }
        let k = self.trees.len() as f64;
        contrib.iter_mut().for_each(|c| *c /= k);
        (bias / k, contrib)
    }

    pub fn node_count(&self) -> usize {
        self.trees.iter().map(|t| t.nodes.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stump() -> Forest {
        // x0 < 0.5 → 0.1 else 0.9; root value 0.5
        Forest {
            features: vec!["a".into(), "b".into()],
            trees: vec![Tree {
                nodes: vec![Node(0, 0.5, 1, 2, 0.5), Node::leaf(0.1), Node::leaf(0.9)],
            }],
        }
    }

    #[test]
    fn attribution_sums_to_the_prediction() {
        let f = stump();
        for x in [[0.0, 3.0], [1.0, 3.0]] {
            let (bias, c) = f.explain(&x);
            let p = f.predict_proba(&x);
            assert!((bias + c.iter().sum::<f64>() - p).abs() < 1e-12);
            assert_eq!(c[1], 0.0);
        }
        assert!((f.predict_proba(&[1.0, 0.0]) - 0.9).abs() < 1e-12);
    }

    #[test]
    fn validation_rejects_loops_and_bad_features() {
        let mut f = stump();
        f.trees[0].nodes[0].2 = 0;
        assert!(f.validate().is_err());
        let mut f = stump();
        f.trees[0].nodes[0].0 = 7;
        assert!(f.validate().is_err());
        assert!(stump().validate().is_ok());
        let empty = Forest {
            features: vec![],
            trees: vec![],
        };
        assert!(matches!(empty.validate(), Err(ForestError::Empty)));
    }
}
