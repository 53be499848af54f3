#!/usr/bin/env bash
# Two `vigil serve` binaries, A and B, side by side under the same load (docs/benchmarks.md):
# the same model, rules and config as bench/api/run.sh; gRPC, 8 clients, single varied scores,
# then ScoreBatch of BATCH varied items; A and B alternated ROUNDS times. Prints, per run,
# api_load's figures and the server's CPU time per 10,000 scores (utime + stime from
# /proc/PID/stat over the run), which a busy machine disturbs less than latency.
# Usage: bench/api/ab.sh VIGIL_A VIGIL_B [SECONDS] [ROUNDS] [BATCH]   ($BUILD, $VIGIL_DATA)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build/release}
a=$1 b=$2 seconds=${3:-5} rounds=${4:-3} batch=${5:-64}
data=${VIGIL_DATA:-../shared/data/adfa-ld}
cmake --build "$build" --target vigil api_load >/dev/null
source bench/api/common.sh
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run NAME ARGS...: one api_load run against NAME, with its CPU cost per 10k scores.
run() {
  local name=$1 pid port before after out scores
  shift
  pid=${name}_pid port=${name}_grpc
  before=$(cpu_ticks "${!pid}")
  out=$("$build/bench/api_load" --grpc "127.0.0.1:${!port}" --seconds "$seconds" --json "$@" || true)
  after=$(cpu_ticks "${!pid}")
  scores=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["scores"])' "$out")
  python3 - "$name" "$out" "$before" "$after" "$(getconf CLK_TCK)" "$scores" <<'PY'
import json, sys
name, out, before, after, hz, scores = sys.argv[1], json.loads(sys.argv[2]), *map(int, sys.argv[3:])
cpu = (after - before) / hz
print(f"{name}: batch {out['batch']:3d}: {out['calls_per_s']:8.0f} calls/s {out['scores_per_s']:8.0f}"
      f" scores/s P50 {out['p50_us']:7.0f} P95 {out['p95_us']:7.0f} P99 {out['p99_us']:7.0f} us;"
      f" errors {out['errors']} fallbacks {out['fallbacks']}; server CPU {cpu:.2f} s ="
      f" {cpu / max(scores, 1) * 1e4:.3f} s per 10k scores")
PY
}
start A "" "$a"
start B "" "$b"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
  echo "round $round"
  for s in A B; do run "$s" --clients 8 --vary; done
  for s in A B; do run "$s" --clients 8 --vary --batch "$batch"; done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
