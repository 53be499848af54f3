"""Prints the side-by-side table of bench/compare_sklearn from the two sides' JSON."""
import json
import statistics
import sys


def summary(d):
    runs = d["runs"]
    return {"auc": statistics.mean(r["auc"] for r in runs),
            "auc_sd": statistics.pstdev(r["auc"] for r in runs),
            "train": statistics.median(r["train_seconds"] for r in runs),
            "score": statistics.median(r["score_seconds"] for r in runs),
            "batch": statistics.median(r.get("batch_seconds", r["score_seconds"]) for r in runs),
            "rows": d["test_rows"]}


def main():
    vigil, sk = (json.load(open(p)) for p in sys.argv[1:3])
    print(f"isolation forest, 100 trees, sample size 256, {len(vigil['datasets'][0]['runs'])} "
          f"seeds: Vigil vs {sk['implementation']}")
    for v, s in zip(vigil["datasets"], sk["datasets"]):
        a, b = summary(v), summary(s)
        print(f"\n{v['dataset']}: {v['train_rows']} training rows, {v['test_rows']} test rows "
              f"({v['test_attacks']} attacks), {v['features']} features")
        print(f"  {'':14}{'AUC (mean±sd)':>18}{'train cpu-s':>13}{'rows/cpu-s batch':>18}"
              f"{'row by row':>12}")
        for name, x in (("vigil", a), ("scikit-learn", b)):
            one = f"{x['rows'] / x['score']:>12.0f}" if name == "vigil" else f"{'-':>12}"
            print(f"  {name:14}{x['auc']:>11.4f}±{x['auc_sd']:.4f}{x['train']:>13.3f}"
                  f"{x['rows'] / x['batch']:>18.0f}{one}")
        print(f"  AUC difference (vigil - sklearn): {a['auc'] - b['auc']:+.4f}")
        print(f"  scoring throughput vs sklearn's batch: x{b['batch'] / a['batch']:.1f} (batch), "
              f"x{b['batch'] / a['score']:.1f} (row by row)")
        print(f"  training time (sklearn/vigil): x{b['train'] / a['train']:.1f}")


if __name__ == "__main__":
    main()
