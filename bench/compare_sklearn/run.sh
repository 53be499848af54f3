#!/usr/bin/env bash
# Vigil's isolation forest against scikit-learn's (Debian's python3-sklearn), side by side in
# one run, on identical feature matrices: ADFA-LD per-trace system-call counts and BATADAL's
# signals (dataset03 train, dataset04 test with its full labels). Prints, per dataset, the mean
# ROC AUC of each over the same seeds, the training time, and the scoring throughput of each with
# Vigil/sklearn ratios. Figures: docs/benchmarks.md.
#
#   bash bench/compare_sklearn/run.sh [--seeds N] [--repeats N]
#
# Environment: VIGIL_SHARED_DATA (default <repo>/../shared/data).
set -euo pipefail
cd "$(dirname "$0")/../.."

bash scripts/install-deps.sh bench
cmake --preset release >/dev/null
cmake --build --preset release --target compare_sklearn_vigil >/dev/null

data=${VIGIL_SHARED_DATA:-$(pwd)/../shared/data}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== Vigil (build/release/bench/compare_sklearn_vigil): exporting matrices, measuring" >&2
build/release/bench/compare_sklearn_vigil --out "$work" --adfa "$data/adfa-ld" \
  --batadal "$data/batadal" "$@" >"$work/vigil.json"
echo "== scikit-learn (/usr/bin/python3): same matrices" >&2
/usr/bin/python3 bench/compare_sklearn/sklearn_iforest.py "$work" "$@" >"$work/sklearn.json"
/usr/bin/python3 bench/compare_sklearn/report.py "$work/vigil.json" "$work/sklearn.json"
