//! `vigil bench score`: inference speed of the compiled forest against linfa's own `predict`
//! on the same rows, with a check that both predict the same classes. Owns the measurement
//! only; training and the forest layouts live in `train` and `forest`.

use super::dataset::InputFormat;
use super::forest::PackedForest;
use super::train::{self, TrainRequest};
use linfa::prelude::Predict;
use ndarray::{Array1, Array2};
use std::path::PathBuf;
use std::time::Instant;

/// Wall and on-CPU time of this thread: the machine is shared, so rows/s are reported per
/// second of CPU the benchmark thread actually got, beside the wall-clock figure.
struct Stopwatch {
    wall: Instant,
    cpu: f64,
}

fn thread_cpu_seconds() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

impl Stopwatch {
    fn start() -> Self {
        Stopwatch {
            wall: Instant::now(),
            cpu: thread_cpu_seconds(),
        }
    }

    /// `(wall seconds, cpu seconds)` since start.
    fn stop(&self) -> (f64, f64) {
        (
            self.wall.elapsed().as_secs_f64(),
            thread_cpu_seconds() - self.cpu,
        )
    }
}

/// What to benchmark on.
pub struct ScoreBench {
    /// The training request for the benchmark forest (its rows are also the rows predicted).
    pub train: TrainRequest,
    /// Rows to predict with each form: the data rows, repeated.
    pub rows: usize,
}

/// The shared NSL-KDD file, if this machine has it.
pub fn shared_nsl_kdd() -> Option<PathBuf> {
    let base = std::env::var_os("VIGIL_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    let p = base.join("labeled/nsl-kdd/KDDTrain+_20Percent.txt");
    p.exists().then_some(p)
}

/// Train a forest (keeping the linfa trees), predict `rows` rows single-threaded with the
/// packed layout, the plain node layout and linfa, and compare the class predictions.
///
/// # Errors
/// Reading or fitting errors.
pub fn score(b: &ScoreBench) -> anyhow::Result<serde_json::Value> {
    let data = train::load(&b.train)?;
    let x = data.set.x;
    let y = data.set.y;
    let n = x.len();
    let width = data.features.len();
    let started = Instant::now();
    let fitted = train::fit(&x, &y, &data.features, &b.train.params, true)?;
    let train_secs = started.elapsed().as_secs_f64();
    let forest = &fitted.forest;
    let trees = forest.trees.len();
    let passes = b.rows.div_ceil(n).max(1);
    let total = passes * n;
    let flat: Vec<f64> = x.iter().flatten().copied().collect();

    // Compiled, packed layout: the form `Scorer` uses (`PackedForest`).
    let packed = PackedForest::new(forest);
    let mut votes = vec![0u32; n];
    let mut malicious = 0usize;
    let t = Stopwatch::start();
    for _ in 0..passes {
        packed.votes_batch(&flat, width, &mut votes);
        malicious += votes.iter().filter(|v| **v as usize * 2 > trees).count();
    }
    let packed_secs = t.stop();
    let compiled_class: Vec<bool> = votes.iter().map(|v| *v as usize * 2 > trees).collect();

    // Compiled, node-per-struct layout (before packing), row at a time.
    let t = Stopwatch::start();
    let mut plain_malicious = 0usize;
    for _ in 0..passes {
        plain_malicious += x
            .iter()
            .filter(|r| forest.tree_votes(r) * 2 > trees)
            .count();
    }
    let plain_secs = t.stop();

    // linfa: each tree predicts on its own feature columns (projected once, not timed).
    let t = Instant::now();
    let projected: Vec<Array2<f64>> = fitted
        .linfa
        .iter()
        .map(|lt| Array2::from_shape_fn((n, lt.cols.len()), |(r, c)| x[r][lt.cols[c]]))
        .collect();
    let projection_secs = t.elapsed().as_secs_f64();
    let mut linfa_votes = vec![0u32; n];
    let mut tree_mismatches = 0usize;
    let t = Stopwatch::start();
    for pass in 0..passes {
        let mut pass_votes = vec![0u32; n];
        for (lt, rows) in fitted.linfa.iter().zip(&projected) {
            let pred: Array1<usize> = lt.tree.predict(rows);
            for (v, p) in pass_votes.iter_mut().zip(pred.iter()) {
                *v += u32::from(*p == 1);
            }
        }
        if pass == 0 {
            linfa_votes = pass_votes;
        }
    }
    let linfa_secs = t.stop();
    // Per-tree agreement, outside the timing.
    for (tree, (lt, rows)) in forest.trees.iter().zip(fitted.linfa.iter().zip(&projected)) {
        let pred: Array1<usize> = lt.tree.predict(rows);
        for (r, p) in x.iter().zip(pred.iter()) {
            let compiled = tree.nodes[tree.leaf_index(r)].value() > 0.5;
            tree_mismatches += usize::from(compiled != (*p == 1));
        }
    }
    let linfa_class: Vec<bool> = linfa_votes
        .iter()
        .map(|v| *v as usize * 2 > trees)
        .collect();
    let mismatches = compiled_class
        .iter()
        .zip(&linfa_class)
        .filter(|(a, b)| a != b)
        .count();
    let per_s = |secs: f64| (total as f64 / secs.max(1e-9)).round();
    let both = |(wall, cpu): (f64, f64)| serde_json::json!({"per_cpu_s": per_s(cpu), "per_wall_s": per_s(wall)});
    Ok(serde_json::json!({
        "data": b.train.data.first().map(|p| p.display().to_string()),
        "format": b.train.format.name(),
        "data_rows": n, "features": width, "trees": trees, "nodes": forest.node_count(),
        "train_seconds": (train_secs * 1000.0).round() / 1000.0,
        "rows": total, "threads": 1, "mean_tree_depth": packed.mean_depth(),
        "compiled_rows_per_s": per_s(packed_secs.1),
        "linfa_rows_per_s": per_s(linfa_secs.1),
        "speedup_vs_linfa": ((linfa_secs.1 / packed_secs.1.max(1e-9)) * 10.0).round() / 10.0,
        "compiled": both(packed_secs),
        "compiled_unpacked": both(plain_secs),
        "linfa": both(linfa_secs),
        "linfa_projection_seconds": (projection_secs * 1000.0).round() / 1000.0,
        "load_average": std::fs::read_to_string("/proc/loadavg").ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string)),
        "class_mismatches": mismatches,
        "tree_leaf_mismatches": tree_mismatches,
        "malicious_per_pass": malicious / passes,
        "unpacked_agrees": plain_malicious == malicious,
    }))
}

/// The data a bare `vigil bench score` trains on: NSL-KDD from the shared data when present,
/// else the shipped labelled alerts.
pub fn default_data() -> (PathBuf, InputFormat) {
    match shared_nsl_kdd() {
        Some(p) => (p, InputFormat::NslKdd),
        None => (
            PathBuf::from("models/training/alerts-labelled.jsonl.gz"),
            InputFormat::Alerts,
        ),
    }
}
