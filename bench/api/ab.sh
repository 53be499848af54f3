# Two `vigil serve` binaries, A and B, side by side under the same load (docs/benchmarks.md):
# the same model, rules and config as bench/api/run.sh; for each transport (gRPC, HTTP/JSON),
# 8 clients, single varied scores, then batches of BATCH varied items; A and B alternated
# ROUNDS times (A first in odd rounds, B first in even ones). Prints, per run, api_load's figures; the server's CPU time per 10,000 scores
# (utime + stime from /proc/PID/stat over the run), which a busy machine disturbs less than
# latency; the load generator's CPU per call (its share of the 2 cores); and the server's own
# time per call, admission to answer (vigil_api_request_seconds from /metrics over the run, as
# bucket bounds: "<= X us"), which leaves out the transport, the kernel and the scheduler.
# Usage: bench/api/ab.sh VIGIL_A VIGIL_B [SECONDS] [ROUNDS] [BATCH] [TRANSPORTS]
#   TRANSPORTS: "grpc http" (default), "grpc" or "http"; $BUILD, $VIGIL_DATA
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build/release}
a=$1 b=$2 seconds=${3:-5} rounds=${4:-3} batch=${5:-64} transports=${6:-grpc http}
data=${VIGIL_DATA:-../shared/data/adfa-ld}
cmake --build "$build" --target vigil api_load >/dev/null
source bench/api/common.sh
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metrics() { curl -s "http://127.0.0.1:$1/metrics" | grep '^vigil_api_request_seconds_bucket' || true; }
# run NAME TRANSPORT ARGS...: one api_load run against NAME, with its CPU cost per 10k scores,
# the load generator's CPU per call and the server's own latency quantiles.
run() {
  local name=$1 transport=$2 pid http grpc target before after out m0 m1
  shift 2
  pid=${name}_pid http=${name}_http grpc=${name}_grpc
  if [[ $transport == grpc ]]; then target=(--grpc "127.0.0.1:${!grpc}"); else target=(--url "http://127.0.0.1:${!http}"); fi
  m0=$(metrics "${!http}")
  before=$(cpu_ticks "${!pid}")
  out=$("$build/bench/api_load" "${target[@]}" --seconds "$seconds" --json "$@" || true)
  after=$(cpu_ticks "${!pid}")
  m1=$(metrics "${!http}")
  python3 - "$name" "$out" "$before" "$after" "$(getconf CLK_TCK)" "$m0" "$m1" <<'PY'
import json, re, sys
name, out = sys.argv[1], json.loads(sys.argv[2])
before, after, hz = map(int, sys.argv[3:6])
def buckets(text, api):
    b = {}
    for m in re.finditer(r'api="%s",le="([^"]+)"\} (\d+)' % api, text):
        b[float(m.group(1))] = int(m.group(2))
    return b
api = "score_batch" if out["batch"] > 0 else "score"
b0, b1 = buckets(sys.argv[6], api), buckets(sys.argv[7], api)
delta = sorted((le, b1[le] - b0.get(le, 0)) for le in b1)
total = delta[-1][1] if delta else 0
def q(p):
    for le, n in delta:
        if total and n >= p * total: return f"<={le * 1e6:.0f}"
    return "?"
cpu = (after - before) / hz
calls = max(out["calls"], 1)
print(f"{name} {out['transport']:4s} batch {out['batch']:3d}: {out['calls_per_s']:8.0f} calls/s"
      f" {out['scores_per_s']:8.0f} scores/s P50 {out['p50_us']:6.0f} P95 {out['p95_us']:6.0f}"
      f" P99 {out['p99_us']:6.0f} us; errors {out['errors']} fallbacks {out['fallbacks']};"
      f" server CPU {cpu:.2f} s = {cpu / max(out['scores'], 1) * 1e4:.3f} s per 10k scores,"
      f" {cpu / calls * 1e6:.0f} us per call; load generator {out['cpu_s'] / calls * 1e6:.0f} us"
      f" CPU per call ({out['cpu_s'] / max(out['cpu_s'] + cpu, 1e-9) * 100:.0f} % of the two);"
      f" server's own time P50 {q(0.5)} P99 {q(0.99)} us")
PY
}
start A "" "$a"
start B "" "$b"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# A then B in odd rounds, B then A in even ones, so that a load that grows or shrinks during
# the run does not favour one side.
for round in $(seq "$rounds"); do
  order="A B"
  (( round % 2 == 0 )) && order="B A"
  echo "round $round ($order)"
  for t in $transports; do
    for s in $order; do run "$s" "$t" --clients 8 --vary; done
    for s in $order; do run "$s" "$t" --clients 8 --vary --batch "$batch"; done
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
