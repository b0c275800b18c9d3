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

/// The inference layout: every tree's nodes in one array, depth-first with each left child
/// right after its parent, 16 bytes a node, leaf values apart. A leaf is a node whose comparison
/// always fails (threshold NaN) and whose right child is itself, so a walk is one compare and
/// one select per step and stops when the index stops moving.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedForest {
    nodes: Vec<PackedNode>,
    /// Leaf values by node index (0 for splits).
    values: Vec<f64>,
    roots: Vec<u32>,
    /// Longest root-to-leaf path of each tree, in steps.
    depths: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct PackedNode {
    /// Split threshold; NaN for a leaf.
    threshold: f64,
    /// Feature index (0 for a leaf, never read to decide anything).
    feature: u32,
    /// Index of the right child (the left child is the next node); a leaf points at itself.
    right: u32,
}

impl PackedForest {
    /// Lay out a validated forest (validation guarantees every index used here exists).
    pub fn new(forest: &Forest) -> Self {
        let mut p = PackedForest {
            nodes: Vec::with_capacity(forest.node_count()),
            values: Vec::with_capacity(forest.node_count()),
            roots: Vec::with_capacity(forest.trees.len()),
            depths: Vec::with_capacity(forest.trees.len()),
        };
        for t in &forest.trees {
            p.roots.push(p.nodes.len() as u32);
            let depth = pack(t, 0, &mut p);
            p.depths.push(depth);
        }
        p
    }

    #[inline]
    fn step(&self, i: usize, x: &[f64]) -> usize {
        let n = self.nodes[i];
        // A leaf's feature may not exist (a forest over no features); NaN sends it to itself.
        if x.get(n.feature as usize).copied().unwrap_or(f64::NAN) < n.threshold {
            i + 1
        } else {
            n.right as usize
        }
    }

    /// The leaf `x` reaches from `root`, walking until a node points at itself.
    #[inline]
    fn leaf(&self, root: u32, x: &[f64]) -> usize {
        let mut i = root as usize;
        loop {
            let next = self.step(i, x);
            if next == i {
                return i;
            }
            i = next;
        }
    }

    /// Same as `Forest::predict_proba`, bit for bit (same values summed in the same order).
    pub fn predict_proba(&self, x: &[f64]) -> f64 {
        let sum: f64 = self
            .roots
            .iter()
            .map(|r| self.values[self.leaf(*r, x)])
            .sum();
        sum / self.roots.len() as f64
    }

    /// Trees voting malicious for one row (same as `Forest::tree_votes`).
    pub fn votes(&self, x: &[f64]) -> usize {
        self.roots
            .iter()
            .filter(|r| self.values[self.leaf(**r, x)] > 0.5)
            .count()
    }

    /// Trees voting malicious for each row of `rows` (row-major, `width` values a row), into
    /// `votes`. Row at a time: on this machine it measured faster than walking blocks of rows
    /// tree by tree (in lock-step or not) and than walking four trees of a row interleaved.
    pub fn votes_batch(&self, rows: &[f64], width: usize, votes: &mut [u32]) {
        for (v, x) in votes.iter_mut().zip(rows.chunks_exact(width.max(1))) {
            *v = self.votes(x) as u32;
        }
    }

    /// Raw score of each row of `rows`, as `predict_proba` computes it.
    pub fn predict_batch(&self, rows: &[f64], width: usize, out: &mut [f64]) {
        for (o, x) in out.iter_mut().zip(rows.chunks_exact(width.max(1))) {
            *o = self.predict_proba(x);
        }
    }

    /// Number of trees.
    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// Mean of the trees' depths (longest paths), for the benchmark report.
    pub fn mean_depth(&self) -> f64 {
        self.depths.iter().map(|d| f64::from(*d)).sum::<f64>() / self.depths.len().max(1) as f64
    }
}

/// Append tree `t`'s subtree at `i` depth-first; returns the subtree's depth in steps.
fn pack(t: &Tree, i: usize, out: &mut PackedForest) -> u32 {
    let at = out.nodes.len();
    let n = t.nodes[i];
    if n.is_leaf() {
        out.nodes.push(PackedNode {
            threshold: f64::NAN,
            feature: 0,
            right: at as u32,
        });
        out.values.push(n.4);
        return 0;
    }
    out.nodes.push(PackedNode {
        threshold: n.1,
        feature: n.0 as u32,
        right: 0,
    });
    out.values.push(0.0);
    let left = pack(t, n.2 as usize, out);
    let right_at = out.nodes.len() as u32;
    let right = pack(t, n.3 as usize, out);
    out.nodes[at].right = right_at;
    1 + left.max(right)
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
    fn the_packed_layout_predicts_exactly_what_the_forest_does() {
        // Children stored right-before-left to prove packing re-lays them out.
        let f = Forest {
            features: vec!["a".into(), "b".into()],
            trees: vec![
                Tree {
                    nodes: vec![
                        Node(0, 0.5, 4, 1, 0.5),
                        Node(1, 2.0, 2, 3, 0.8),
                        Node::leaf(0.6),
                        Node::leaf(1.0),
                        Node::leaf(0.1),
                    ],
                },
                stump().trees[0].clone(),
            ],
        };
        f.validate().expect("valid");
        let p = PackedForest::new(&f);
        let rows = [0.0, 0.0, 1.0, 1.0, 1.0, 5.0];
        let mut votes = [0u32; 3];
        p.votes_batch(&rows, 2, &mut votes);
        let mut probs = [0.0; 3];
        p.predict_batch(&rows, 2, &mut probs);
        for ((r, v), pb) in rows.chunks(2).zip(votes).zip(probs) {
            assert_eq!(p.predict_proba(r), f.predict_proba(r));
            assert_eq!(pb, f.predict_proba(r));
            assert_eq!(v as usize, f.tree_votes(r));
            assert_eq!(p.votes(r), f.tree_votes(r));
        }
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
