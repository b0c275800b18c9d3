//! Fitting the random forest: bagged linfa decision trees (bootstrap rows, a random feature
//! subspace per tree, class weights), compiled into the flat `Forest`, then calibrated on
//! out-of-bag predictions. Owns training runs end to end (read, fit, calibrate, measure, card);
//! knows nothing of the UI.

use super::calibrate::Calibration;
use super::dataset::table::{self, CategoricalPolicy, TableRead};
use super::dataset::{self, InputFormat, InputSpec, Labelled, ReadOptions};
use super::features;
use super::forest::{Forest, Node, Tree};
use super::metrics::{self, Metrics};
use super::model::{Model, ModelCard, TrainParams};
use anyhow::{bail, Context};
use linfa::prelude::*;
use linfa_trees::{DecisionTree, TreeNode};
use ndarray::{Array1, Array2};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::path::{Path, PathBuf};

/// One linfa tree as fitted, with the feature columns it saw: kept only when the caller wants
/// to compare linfa's own predictions with the compiled forest.
pub struct LinfaTree {
    pub tree: DecisionTree<f64, usize>,
    /// Indices into the full feature list, in the order the tree's columns use.
    pub cols: Vec<usize>,
}

/// A fitted forest with what training learned on the side.
pub struct Fitted {
    pub forest: Forest,
    /// Per training row: the mean raw score of the trees that did not see it (out-of-bag), or
    /// `None` if every tree saw it.
    pub oob: Vec<Option<f64>>,
    /// The linfa trees, when asked for.
    pub linfa: Vec<LinfaTree>,
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
    Ok(fit(x, y, names, params, false)?.forest)
}

/// What one tree's fit returns: the compiled tree, its out-of-bag rows with their scores, and
/// the linfa tree if kept.
type TreeFit = (Tree, Vec<(u32, f64)>, Option<LinfaTree>);

/// Fit a forest, with out-of-bag scores and (if `keep_linfa`) the linfa trees. Trees are
/// spread over the machine's cores; the result does not depend on the core count.
///
/// # Errors
/// Empty or one-class data, bad parameters, or a linfa fitting error.
pub fn fit(
    x: &[Vec<f64>],
    y: &[bool],
    names: &[String],
    params: &TrainParams,
    keep_linfa: bool,
) -> anyhow::Result<Fitted> {
    let n = x.len();
    let d = names.len();
    if n == 0 {
        bail!("no training rows");
    }
    if x.iter().any(|r| r.len() != d) {
        bail!("rows do not all have {d} features");
    }
    if params.trees == 0 {
        bail!("trees must be at least 1");
    }
    if !(params.sample_fraction > 0.0 && params.sample_fraction <= 1.0) {
        bail!("sample_fraction must be in (0, 1]");
    }
    if !(params.feature_fraction > 0.0 && params.feature_fraction <= 1.0) {
        bail!("feature_fraction must be in (0, 1]");
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
        .min(params.trees);
    let results: Vec<anyhow::Result<TreeFit>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let weights = &weights;
                s.spawn(move || {
                    (t..params.trees)
                        .step_by(threads)
                        .map(|i| fit_tree(x, y, weights, k, params, i, keep_linfa))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut per_thread: Vec<std::vec::IntoIter<anyhow::Result<TreeFit>>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(anyhow::anyhow!("training thread panicked"))])
                    .into_iter()
            })
            .collect();
        // Restore tree order (thread t fitted trees t, t+threads, ...) so the output does not
        // depend on the machine's core count.
        (0..params.trees)
            .map_while(|i| per_thread[i % threads].next())
            .collect()
    });
    let mut trees = Vec::with_capacity(params.trees);
    let mut linfa = Vec::new();
    let (mut oob_sum, mut oob_n) = (vec![0.0f64; n], vec![0u32; n]);
    for r in results {
        let (tree, oob, lt) = r?;
        for (row, v) in oob {
            oob_sum[row as usize] += v;
            oob_n[row as usize] += 1;
        }
        trees.push(tree);
        linfa.extend(lt);
    }
    let oob = oob_sum
        .iter()
        .zip(&oob_n)
        .map(|(s, c)| (*c > 0).then(|| s / f64::from(*c)))
        .collect();
    Ok(Fitted {
        forest: Forest {
            features: names.to_vec(),
            trees,
        },
        oob,
        linfa,
    })
}

/// One tree: bootstrap sample (as per-row multiplicities, which is how scikit-learn bags too:
/// a row drawn three times is one row of triple weight), feature subspace, linfa fit, compile,
/// then fill each node with the weighted malicious fraction of the bootstrap rows reaching it.
fn fit_tree(
    x: &[Vec<f64>],
    y: &[bool],
    weights: &[f32],
    k: usize,
    params: &TrainParams,
    index: usize,
    keep_linfa: bool,
) -> anyhow::Result<TreeFit> {
    let n = x.len();
    let d = x[0].len();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(params.seed.wrapping_add(index as u64 * 7919));
    let draws = ((params.sample_fraction * n as f64).round() as usize).max(1);
    let mut count = vec![0u32; n];
    for _ in 0..draws {
        count[rng.gen_range(0..n)] += 1;
    }
    let rows: Vec<usize> = (0..n).filter(|r| count[*r] > 0).collect();
    let mut cols: Vec<usize> = sample(&mut rng, d, k).into_vec();
    cols.sort_unstable();
    let mut records = Array2::<f64>::zeros((rows.len(), k));
    for (r, &src) in rows.iter().enumerate() {
        for (c, &col) in cols.iter().enumerate() {
            records[[r, c]] = x[src][col];
        }
    }
    let targets: Array1<usize> = rows.iter().map(|&r| usize::from(y[r])).collect();
    let w: Array1<f32> = rows.iter().map(|&r| weights[r] * count[r] as f32).collect();
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
    fill_values(&mut compiled, x, y, weights, &rows, &count);
    let oob = (0..n)
        .filter(|r| count[*r] == 0)
        .map(|r| (r as u32, compiled.nodes[compiled.leaf_index(&x[r])].value()))
        .collect();
    Ok((
        compiled,
        oob,
        keep_linfa.then_some(LinfaTree { tree, cols }),
    ))
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

fn fill_values(
    tree: &mut Tree,
    x: &[Vec<f64>],
    y: &[bool],
    w: &[f32],
    rows: &[usize],
    count: &[u32],
) {
    let mut pos = vec![0.0f64; tree.nodes.len()];
    let mut tot = vec![0.0f64; tree.nodes.len()];
    for &r in rows {
        // The same f32 product linfa weighed the row with.
        let wt = f64::from(w[r] * count[r] as f32);
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

/// Everything one training run needs.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    pub data: Vec<PathBuf>,
    pub format: InputFormat,
    pub label_column: Option<String>,
    /// Label values meaning benign (tables); NSL-KDD defaults to `normal`.
    pub benign_values: Vec<String>,
    /// Also read analyst dispositions from this vigil database.
    pub from_db: Option<PathBuf>,
    pub params: TrainParams,
    pub read: ReadOptions,
    pub categorical: CategoricalPolicy,
    pub one_hot_max: usize,
    /// Working threshold on the calibrated probability, written into the card.
    pub threshold: f64,
    pub name: String,
}

/// Labelled rows plus how they were read.
pub struct LoadedData {
    pub set: Labelled,
    pub input: InputSpec,
    pub features: Vec<String>,
}

/// Read every input of a training request into one labelled set.
///
/// # Errors
/// Unreadable or unusable data (see the readers), or inputs of different shapes mixed.
pub fn load(req: &TrainRequest) -> anyhow::Result<LoadedData> {
    let mut set = Labelled::default();
    match req.format {
        InputFormat::Alerts => {
            let mut items = Vec::new();
            for f in &req.data {
                dataset::read_labelled_alerts(f, &req.read, &mut items, &mut set)?;
            }
            dataset::alerts_to_rows(items, &req.read.incident_rules, &mut set);
            if let Some(db) = &req.from_db {
                dataset::read_dispositions(db, &req.read, &mut set)?;
            }
            Ok(LoadedData {
                set,
                input: InputSpec {
                    format: InputFormat::Alerts,
                    holdout_every: req.read.holdout_every,
                    ..InputSpec::default()
                },
                features: features::FEATURES.iter().map(|s| s.to_string()).collect(),
            })
        }
        InputFormat::Csv | InputFormat::NslKdd => {
            if req.from_db.is_some() {
                bail!(
                    "--from-db gives labelled alerts; it cannot be mixed with --format {}",
                    req.format.name()
                );
            }
            let benign = if req.benign_values.is_empty() && req.format == InputFormat::NslKdd {
                vec!["normal".to_string()]
            } else {
                req.benign_values.clone()
            };
            let paths: Vec<&Path> = req.data.iter().map(PathBuf::as_path).collect();
            let how = TableRead {
                format: req.format,
                label_column: req.label_column.as_deref(),
                benign_values: &benign,
            };
            let input = table::read_tables(
                &paths,
                &how,
                None,
                req.categorical,
                req.one_hot_max,
                &req.read,
                &mut set,
            )?;
            let features = table::feature_names(&input.columns);
            Ok(LoadedData {
                set,
                input,
                features,
            })
        }
    }
}

/// What a training run produced.
pub struct TrainOutcome {
    pub model: Model,
    /// Rows skipped, `file:line: reason`.
    pub bad_rows: Vec<String>,
    /// The one-line JSON summary `vigil train` prints.
    pub summary: serde_json::Value,
}

/// Read, fit, calibrate on out-of-bag scores, measure on the held-out rows, and build the card.
///
/// # Errors
/// Any reading or fitting error.
pub fn run(req: &TrainRequest) -> anyhow::Result<TrainOutcome> {
    let LoadedData {
        set,
        input,
        features: names,
    } = load(req)?;
    let bad_rows = set.bad_rows.clone();
    let sources = set.sources.clone();
    let ((xtr, ytr), (xte, yte)) = set.split();
    let started = std::time::Instant::now();
    let fitted = fit(&xtr, &ytr, &names, &req.params, false)?;
    let secs = started.elapsed().as_secs_f64();
    let (oob_scores, oob_labels): (Vec<f64>, Vec<bool>) = fitted
        .oob
        .iter()
        .zip(&ytr)
        .filter_map(|(s, y)| s.map(|s| (s, *y)))
        .unzip();
    let calibration = Calibration::fit(
        req.params.calibration,
        &oob_scores,
        &oob_labels,
        format!(
            "out-of-bag scores of {} training rows ({} malicious)",
            oob_scores.len(),
            oob_labels.iter().filter(|l| **l).count()
        ),
    );
    let labels_word = match req.format {
        InputFormat::Alerts => "malicious",
        _ => "attack (any label not listed as benign)",
    };
    let card = ModelCard {
        name: req.name.clone(),
        kind: "random_forest (bagged linfa-trees, per-tree feature subspace)".into(),
        vigil_version: env!("CARGO_PKG_VERSION").into(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        label_positive: labels_word.into(),
        features: names,
        input,
        threshold: req.threshold,
        parameters: req.params.clone(),
        sources,
        train_rows: xtr.len(),
        test_rows: xte.len(),
        training_seconds: (secs * 1000.0).round() / 1000.0,
        metrics: None,
        notes: "Metrics are on held-out rows (split field, or every Nth row) never seen in training, with calibrated probabilities.".into(),
        explanation: EXPLANATION_NOTE.into(),
        calibration,
    };
    let mut model = Model::new(card, fitted.forest, req.name.clone());
    let m: Option<Metrics> = (!xte.is_empty()).then(|| {
        let scores: Vec<f64> = xte.iter().map(|x| model.probability(x)).collect();
        metrics::evaluate(&scores, &yte, req.threshold)
    });
    model.card.metrics = m.clone();
    let summary = serde_json::json!({
        "train_rows": xtr.len(), "test_rows": xte.len(), "bad_rows": bad_rows.len(),
        "features": model.card.features.len(),
        "trees": model.forest.trees.len(), "nodes": model.forest.node_count(),
        "training_seconds": model.card.training_seconds,
        "calibration": model.card.calibration.as_ref().map(|c| match c {
            Calibration::Isotonic { .. } => "isotonic",
            Calibration::Platt { .. } => "platt",
        }),
        "metrics": m,
    });
    Ok(TrainOutcome {
        model,
        bad_rows,
        summary,
    })
}

/// How the explanation relates to the risk, written into every card.
pub const EXPLANATION_NOTE: &str = "Contributions are path attributions (Saabas) on the forest's raw, class-balanced score, summed over the trees. They are scaled by (calibrated(raw) - calibrated(base)) / (raw - base), so base_points + the sum of all contributions equals the calibrated risk; signs and order are unchanged because the calibrator is monotone.";

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
