"""scikit-learn's side of bench/compare_sklearn: IsolationForest on the CSV matrices that
compare_sklearn_vigil wrote (identical inputs), with the same settings as Vigil's forest
(100 trees, max_samples 256, fitted on every training row, seeds 1..N, one job). Times are
process CPU seconds, as on the Vigil side. Prints one JSON object shaped like the Vigil side's. Run with Debian's python3 (python3-sklearn).

    /usr/bin/python3 sklearn_iforest.py DIR [--seeds N] [--repeats N]
"""
import argparse
import json
import sys
import time

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score


def load(path):
    try:
        return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as e:
        sys.exit(f"sklearn_iforest: {path}: {e}")


def measure(folder, stem, name, seeds, repeats):
    train = load(f"{folder}/{stem}_train.csv")
    test = load(f"{folder}/{stem}_test.csv")
    labels = load(f"{folder}/{stem}_labels.csv")[:, 0]
    runs = []
    for seed in range(1, seeds + 1):
        forest = IsolationForest(n_estimators=100, max_samples=256, random_state=seed, n_jobs=1)
        start = time.process_time()
        forest.fit(train)
        train_s = time.process_time() - start
        secs = []
        for _ in range(repeats):
            start = time.process_time()
            # score_samples is the opposite of the anomaly score of the paper.
            scores = -forest.score_samples(test)
            secs.append(time.process_time() - start)
        secs.sort()
        runs.append({"seed": seed, "auc": float(roc_auc_score(labels, scores)),
                     "train_seconds": train_s, "score_seconds": secs[len(secs) // 2]})
    return {"dataset": name, "features": int(train.shape[1]), "train_rows": int(train.shape[0]),
            "test_rows": int(test.shape[0]), "test_attacks": int(labels.sum()), "runs": runs}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("--seeds", type=int, default=80)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    out = {"implementation": f"scikit-learn {sklearn.__version__}", "datasets": [
        measure(a.dir, "adfa", "adfa-ld", a.seeds, a.repeats),
        measure(a.dir, "batadal", "batadal", a.seeds, a.repeats)]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
