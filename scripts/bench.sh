#!/usr/bin/env bash
# The benchmark command (docs/benchmarks.md): installs what the build needs, builds the
# benchmarks of the release preset, runs each VIGIL_BENCH_REPETITIONS times (default 5) and ends
# with a table of the medians, the ratios between runs of this invocation, and the targets.
#
# Usage: scripts/bench.sh [--data=DIR] [Google Benchmark flags, e.g. --benchmark_filter=Replay]
# Environment: VIGIL_BENCH_REPETITIONS (default 5), VIGIL_DATA (ADFA-LD root; default
# ../shared/data/adfa-ld beside the repository).
# Figures are measurements, not pass/fail: the exit status is non-zero only when a build or a
# benchmark binary fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh test
reps=${VIGIL_BENCH_REPETITIONS:-5}
benches=(sequence_model_bench replay_bench audit_bench engine_bench)

echo "== build: release preset, targets ${benches[*]}"
cmake --preset release >/dev/null
cmake --build --preset release --target "${benches[@]}"

out=build/release/bench/results
mkdir -p "$out"
for b in "${benches[@]}"; do
  echo "== run: $b, $reps repetitions (aggregates only)"
  "build/release/bench/$b" --benchmark_repetitions="$reps" \
    --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/$b.json" --benchmark_out_format=json "$@"
done

python3 - "$reps" "${benches[@]/#/$out/}" <<'PY'
import json
import sys

reps = sys.argv[1]
rows, errors = {}, []
for path in sys.argv[2:]:
    with open(path + ".json") as f:
        doc = json.load(f)
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred"):
            errors.append(f"{b['run_name']}: {b.get('error_message', '')}")
        elif b.get("aggregate_name") == "median":
            rows[b["run_name"]] = b

def si(x):
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{suffix}"
    return f"{x:.1f}"

def extras(b):
    keys = ["p50_ns", "p99_ns", "p999_ns", "cpu_ns_per_event", "cores_used", "dropped",
            "records_per_batch", "fsyncs_per_s", "per_writer_cpu_s", "per_producer_cpu_s",
            "items_per_cpu_s", "mean_batch", "fallbacks"]
    return "  ".join(f"{k}={b[k]:.4g}" for k in keys if k in b)

print(f"\n== medians of {reps} repetitions (items/s: single-thread benches per CPU-second of "
      "the benchmark thread; replay per wall-clock second)")
print(f"{'benchmark':<40} {'time/iter':>12} {'items/s':>10}  counters")
for name, b in rows.items():
    t = f"{b['real_time']:.1f} {b['time_unit']}"
    ips = si(b["items_per_second"]) if "items_per_second" in b else "-"
    print(f"{name:<40} {t:>12} {ips:>10}  {extras(b)}")

def ips(name):
    b = rows.get(name)
    return b.get("items_per_second") if b else None

print("\n== ratios (same run)")
for num, den, what in [
    ("BM_ReplayMemory/workers:2/real_time", "BM_ReplayMemory/workers:1/real_time",
     "replay, in memory: workers=2 / workers=1"),
    ("BM_ReplayAdfaFiles/workers:2/real_time", "BM_ReplayAdfaFiles/workers:1/real_time",
     "replay, ADFA files: workers=2 / workers=1"),
    ("BM_ReplayMemory/workers:1/real_time", "BM_ScoreThroughput",
     "replay workers=1 / bare scoring"),
    ("BM_ScorePerEvent", "BM_ScoreThroughput", "Observe per event / ObserveSyscalls"),
]:
    a, b = ips(num), ips(den)
    if a and b:
        print(f"{what:<44} {a / b:6.2f}x")

print("\n== targets")
for name, target, what in [
    ("BM_ScoreThroughput", 2e6, "scoring >= 2M syscalls/s per core"),
    ("BM_ReplayMemory/workers:2/real_time", 1e6, "replay >= 1M events/s on 2 cores"),
    ("BM_AuditAppendCanonical/fsync:0/real_time", 2e5,
     "audit append >= 200k records/s (fsync/batch)"),
    ("BM_AuditAppend/fsync:0/real_time", 2e5, "  the same, nlohmann::json payloads"),
]:
    v = ips(name)
    if v is not None:
        print(f"{what:<44} {si(v):>8}/s  {'met' if v >= target else 'MISSED'}")
for name, what in [
    ("BM_EngineSync/model:0/inline:1", "engine verdict P99 <= 10 us, n-gram model"),
    ("BM_EngineSync/model:1/inline:1", "engine verdict P99 <= 10 us, isolation forest"),
    ("BM_EngineSync/model:2/inline:1", "engine verdict P99 <= 10 us, covering model"),
]:
    b = rows.get(name)
    if b and "p99_ns" in b:
        p99 = b["p99_ns"] / 1e3
        print(f"{what:<44} {p99:>7.2f} us  {'met' if p99 <= 10 else 'MISSED'}")
drops = {n: b["dropped"] for n, b in rows.items() if "dropped" in b}
if drops:
    print(f"{'replay drops (every replay run)':<44} {sum(drops.values()):>8.0f}    "
          f"{'met' if not any(drops.values()) else 'MISSED'}")
for e in errors:
    print(f"SKIPPED/ERROR {e}")
PY
