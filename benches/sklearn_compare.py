#!/usr/bin/env python3
"""Quality anchor: vigil's random forest against scikit-learn's on NSL-KDD, same folds.

Stratified 5-fold cross-validation on the NSL-KDD 20% training file. For each fold the raw
training and test lines are written to files; vigil trains on them with `vigil train --format
nsl-kdd` and is measured with `vigil eval`, and scikit-learn's RandomForestClassifier (n_jobs=1)
trains on the same rows with the same encoding (the 41 NSL-KDD columns, protocol_type / service /
flag as sorted ordinal codes fitted on the training fold, unseen categories -1; label: normal vs
any attack). Prints ROC-AUC and training time per fold side by side, then one JSON summary line.

The product never runs Python; this script only needs `pip install scikit-learn numpy`.

    cargo build --release
    python3 benches/sklearn_compare.py                       # release build, shared data
    python3 benches/sklearn_compare.py -- --trees 64         # other `vigil train` flags

Without flags after `--`, vigil trains 32 linfa trees, each on a 10% bootstrap with half the
features (DEFAULT_VIGIL_ARGS): linfa's splitter scans every row of the tree's sample at every
node, so smaller bootstraps are how bagged linfa trees get near scikit-learn's training time.
The trees fit in parallel on the machine's cores; scikit-learn runs with n_jobs=1.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import OrdinalEncoder

TEXT_COLUMNS = [1, 2, 3]  # protocol_type, service, flag
DEFAULT_VIGIL_ARGS = ["--trees", "32", "--sample-fraction", "0.1", "--feature-fraction", "0.5"]


def load(path):
    with open(path) as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    rows = [l.split(",") for l in lines]
    y = np.array([0 if r[41].strip() == "normal" else 1 for r in rows])
    return lines, rows, y


def encode(train_rows, test_rows):
    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    text_tr = [[r[i] for i in TEXT_COLUMNS] for r in train_rows]
    text_te = [[r[i] for i in TEXT_COLUMNS] for r in test_rows]
    enc.fit(text_tr)

    def matrix(rows, text):
        codes = enc.transform(text)
        out = np.empty((len(rows), 41))
        for j in range(41):
            if j in TEXT_COLUMNS:
                out[:, j] = codes[:, TEXT_COLUMNS.index(j)]
            else:
                out[:, j] = [float(r[j]) for r in rows]
        return out

    return matrix(train_rows, text_tr), matrix(test_rows, text_te)


def run_vigil(vigil, env, args):
    out = subprocess.run([vigil, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"vigil {' '.join(args)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", default="target/release/vigil")
    ap.add_argument("--data", default="../shared/data/labeled/nsl-kdd/KDDTrain+_20Percent.txt")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--sklearn-trees", type=int, default=100)
    ap.add_argument("vigil_args", nargs="*", help="extra `vigil train` flags, after --")
    a = ap.parse_args()
    a.vigil_args = a.vigil_args or DEFAULT_VIGIL_ARGS
    if not os.path.exists(a.data):
        sys.exit(f"{a.data}: not found (the shared data folder is needed for this benchmark)")
    lines, rows, y = load(a.data)
    folds = StratifiedKFold(n_splits=a.folds, shuffle=True, random_state=a.seed)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, VIGIL_DATA=f"{tmp}/data", VIGIL_CONFIG=f"{tmp}/config",
                   VIGIL_CACHE=f"{tmp}/cache")
        for k, (tr, te) in enumerate(folds.split(np.zeros(len(y)), y), 1):
            ftr, fte, mdir = f"{tmp}/train{k}.txt", f"{tmp}/test{k}.txt", f"{tmp}/model{k}"
            with open(ftr, "w") as f:
                f.write("\n".join(lines[i] for i in tr) + "\n")
            with open(fte, "w") as f:
                f.write("\n".join(lines[i] for i in te) + "\n")
            t0 = time.perf_counter()
            trained = run_vigil(a.vigil, env, ["train", "--format", "nsl-kdd", "--data", ftr,
                                               "--out", mdir, "--holdout-every", "0",
                                               *a.vigil_args])
            vigil_wall = time.perf_counter() - t0
            ev = run_vigil(a.vigil, env, ["eval", "--model", mdir, "--data", fte])

            xtr, xte = encode([rows[i] for i in tr], [rows[i] for i in te])
            rf = RandomForestClassifier(n_estimators=a.sklearn_trees, n_jobs=1,
                                        random_state=a.seed)
            t0 = time.perf_counter()
            rf.fit(xtr, y[tr])
            sk_fit = time.perf_counter() - t0
            sk_auc = roc_auc_score(y[te], rf.predict_proba(xte)[:, 1])
            r = {"fold": k, "vigil_auc": ev["roc_auc"], "sklearn_auc": sk_auc,
                 "vigil_fit_s": trained["training_seconds"], "vigil_train_wall_s": vigil_wall,
                 "sklearn_fit_s": sk_fit, "vigil_trees": trained["trees"]}
            results.append(r)
            print(f"fold {k}: ROC-AUC vigil {r['vigil_auc']:.5f}  sklearn {sk_auc:.5f}   "
                  f"train vigil {r['vigil_fit_s']:.2f}s (wall {vigil_wall:.2f}s, "
                  f"{trained['trees']} trees)  sklearn {sk_fit:.2f}s ({a.sklearn_trees} trees)",
                  flush=True)
    mean = lambda key: float(np.mean([r[key] for r in results]))
    summary = {"folds": a.folds, "rows": len(y), "vigil_auc": mean("vigil_auc"),
               "sklearn_auc": mean("sklearn_auc"),
               "auc_gap": mean("vigil_auc") - mean("sklearn_auc"),
               "vigil_fit_s": mean("vigil_fit_s"), "vigil_train_wall_s": mean("vigil_train_wall_s"),
               "sklearn_fit_s": mean("sklearn_fit_s"), "vigil_args": a.vigil_args,
               "sklearn_trees": a.sklearn_trees, "cores": os.cpu_count()}
    print(f"mean: ROC-AUC vigil {summary['vigil_auc']:.5f}  sklearn {summary['sklearn_auc']:.5f}  "
          f"(gap {summary['auc_gap']:+.5f}); train vigil {summary['vigil_fit_s']:.2f}s "
          f"sklearn {summary['sklearn_fit_s']:.2f}s (single-threaded)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
