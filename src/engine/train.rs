//! Fitting the random forest: bagged linfa decision trees (bootstrap rows, a random feature
//! subspace per tree, class weights), compiled into the flat `Forest`. Owns training and the
//! labelled-alert reader; knows nothing of the database or the UI.

use super::alert::sha256_hex;
use super::features;
use super::forest::{Forest, Node, Tree};
use super::model::{DataSource, TrainParams};
use super::normalize::{normalize_line, Parsed};
use anyhow::{bail, Context};
use linfa::prelude::*;
use linfa_trees::{DecisionTree, TreeNode};
use ndarray::{Array1, Array2};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::path::Path;

/// A labelled table ready for fitting.
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

/// Most rows a file may reject before training stops: past this the data is wrong, not noisy.
pub const MAX_BAD_FRACTION: f64 = 0.10;

fn parse_label(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        serde_json::Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "malicious" | "true_positive" | "tp" | "attack" | "1" | "true" => Some(true),
            "benign" | "false_positive" | "fp" | "normal" | "0" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Read labelled alerts: JSON lines `{"label": ..., "alert": {...}, "split": "train"|"test"}`.
/// Rows without `split` are held out by line number (every fifth) so evaluation never sees
/// training rows.
///
/// # Errors
/// An unreadable file, or more than `MAX_BAD_FRACTION` bad rows.
pub fn read_labelled_alerts(path: &Path, into: &mut Labelled) -> anyhow::Result<()> {
    let bytes = super::pipeline::read_maybe_gz(path)?;
    let (mut rows, mut bad) = (0usize, 0usize);
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
        let Some(label) = doc.get("label").and_then(parse_label) else {
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
            None => line_no % 5 == 0,
        };
        into.x.push(features::extract(&a));
        into.y.push(label);
        into.test.push(test);
    }
    into.sources.push(DataSource {
        path: path.display().to_string(),
        sha256: sha256_hex(&bytes),
        rows,
        bad_rows: bad,
    });
    if rows > 0 && bad as f64 / rows as f64 > MAX_BAD_FRACTION {
        bail!(
            "{}: {bad} of {rows} rows are bad (over the {:.0}% limit); first: {}",
            path.display(),
            MAX_BAD_FRACTION * 100.0,
            into.bad_rows.first().map(String::as_str).unwrap_or("")
        );
    }
    Ok(())
}

/// Fit a forest with `params` on rows `x` labelled `y`.
///
/// # Errors
/// Empty or one-class data, or a linfa fitting error.
pub fn fit_forest(
    x: &[Vec<f64>],
    y: &[bool],
    names: &[String],
    params: &TrainParams,
) -> anyhow::Result<Forest> {
    let n = x.len();
    let d = names.len();
    if n == 0 {
        bail!("no training rows");
    }
    if x.iter().any(|r| r.len() != d) {
        bail!("rows do not all have {d} features");
    }
    let pos = y.iter().filter(|v| **v).count();
    if pos == 0 || pos == n {
        bail!("training data has only one class ({pos} malicious of {n} rows)");
    }
    let weights = if params.balance_classes {
        let (wp, wn) = (
            n as f32 / (2.0 * pos as f32),
            n as f32 / (2.0 * (n - pos) as f32),
        );
        y.iter()
            .map(|l| if *l { wp } else { wn })
            .collect::<Vec<f32>>()
    } else {
        vec![1.0; n]
    };
    let k = ((params.feature_fraction * d as f64).ceil() as usize).clamp(1, d);
    let threads = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1)
        .min(params.trees.max(1));
    let results: Vec<anyhow::Result<Tree>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let weights = &weights;
                s.spawn(move || {
                    (t..params.trees)
                        .step_by(threads)
                        .map(|i| fit_tree(x, y, weights, k, params, i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut per_thread: Vec<Vec<anyhow::Result<Tree>>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(anyhow::anyhow!("training thread panicked"))])
            })
            .collect();
        // Restore tree order (thread t fitted trees t, t+threads, ...) so the output does not
        // depend on the machine's core count.
        let mut ordered = Vec::with_capacity(params.trees);
        for i in 0..params.trees {
            let t = i % threads;
            if per_thread[t].is_empty() {
                break;
            }
            ordered.push(per_thread[t].remove(0));
        }
        ordered
    });
    let trees = results.into_iter().collect::<anyhow::Result<Vec<Tree>>>()?;
    Ok(Forest {
        features: names.to_vec(),
        trees,
    })
}

/// One tree: bootstrap sample, feature subspace, linfa fit, compile, then fill each node with
/// the weighted malicious fraction of the bootstrap rows that reach it.
fn fit_tree(
    x: &[Vec<f64>],
    y: &[bool],
    weights: &[f32],
    k: usize,
    params: &TrainParams,
    index: usize,
) -> anyhow::Result<Tree> {
    let n = x.len();
    let d = x[0].len();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(params.seed.wrapping_add(index as u64 * 7919));
    let rows: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
    let mut cols: Vec<usize> = sample(&mut rng, d, k).into_vec();
    cols.sort_unstable();
    let mut records = Array2::<f64>::zeros((n, k));
    for (r, &src) in rows.iter().enumerate() {
        for (c, &col) in cols.iter().enumerate() {
            records[[r, c]] = x[src][col];
        }
    }
    let targets: Array1<usize> = rows.iter().map(|&r| usize::from(y[r])).collect();
    let w: Array1<f32> = rows.iter().map(|&r| weights[r]).collect();
    let dataset = linfa::Dataset::new(records, targets).with_weights(w);
    let tree = DecisionTree::<f64, usize>::params()
        .max_depth((params.max_depth > 0).then_some(params.max_depth))
        .min_weight_leaf(params.min_weight_leaf)
        .min_weight_split(params.min_weight_split)
        .fit(&dataset)
        .context("linfa decision tree fit")?;
    let mut nodes = Vec::new();
    compile(tree.root_node(), &cols, &mut nodes);
    let mut compiled = Tree { nodes };
    fill_values(&mut compiled, x, y, weights, &rows);
    Ok(compiled)
}

/// Flatten a linfa tree depth-first (parent before children), mapping subspace feature
/// indices back to the full feature list. Leaf values are filled in later.
fn compile(node: &TreeNode<f64, usize>, cols: &[usize], out: &mut Vec<Node>) -> u32 {
    let at = out.len();
    out.push(Node::leaf(0.0));
    let children = node.children();
    if let (false, Some(Some(l)), Some(Some(r))) = (
        node.is_leaf(),
        children.first().copied(),
        children.get(1).copied(),
    ) {
        let (f, thr, _) = node.split();
        let li = compile(l, cols, out);
        let ri = compile(r, cols, out);
        out[at] = Node(cols[f] as i32, thr, li, ri, 0.0);
    } else {
        // Remember linfa's own class so an empty node still predicts what linfa would.
        out[at] = Node::leaf(if node.prediction() == Some(1) {
            1.0
        } else {
            0.0
        });
    }
    at as u32
}

fn fill_values(tree: &mut Tree, x: &[Vec<f64>], y: &[bool], w: &[f32], rows: &[usize]) {
    let mut pos = vec![0.0f64; tree.nodes.len()];
    let mut tot = vec![0.0f64; tree.nodes.len()];
    for &r in rows {
        let wt = f64::from(w[r]);
        let mut i = 0usize;
        loop {
            tot[i] += wt;
            if y[r] {
                pos[i] += wt;
            }
            let n = tree.nodes[i];
            if n.is_leaf() {
                break;
            }
            i = if x[r][n.0 as usize] < n.1 {
                n.2 as usize
            } else {
                n.3 as usize
            };
        }
    }
    for (i, node) in tree.nodes.iter_mut().enumerate() {
        if tot[i] > 0.0 {
            node.4 = pos[i] / tot[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_separable_rule_and_is_deterministic() {
        // label = x0 > 5 ; x1 is noise
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let x: Vec<Vec<f64>> = (0..400)
            .map(|_| vec![rng.gen_range(0.0..10.0), rng.gen_range(0.0..10.0)])
            .collect();
        let y: Vec<bool> = x.iter().map(|r| r[0] > 5.0).collect();
        let names = vec!["signal".to_string(), "noise".to_string()];
        let p = TrainParams {
            trees: 8,
            feature_fraction: 1.0,
            ..TrainParams::default()
        };
        let f = fit_forest(&x, &y, &names, &p).expect("fits");
        f.validate().expect("valid");
        assert_eq!(f.trees.len(), 8);
        assert!(f.predict_proba(&[9.0, 1.0]) > 0.9);
        assert!(f.predict_proba(&[1.0, 9.0]) < 0.1);
        let (_, c) = f.explain(&[9.0, 1.0]);
        assert!(c[0] > c[1].abs(), "signal explains more than noise: {c:?}");
        let again = fit_forest(&x, &y, &names, &p).expect("fits");
        assert_eq!(f, again, "same seed, same forest");
    }

    #[test]
    fn one_class_is_an_error() {
        let x = vec![vec![1.0], vec![2.0]];
        let err = fit_forest(&x, &[true, true], &["a".into()], &TrainParams::default())
            .expect_err("one class")
            .to_string();
        assert!(err.contains("only one class"), "{err}");
    }
}
