#!/usr/bin/env bash
# Two `vigil serve` binaries, A and B, side by side under the same load (docs/benchmarks.md):
# the same model, rules and config as bench/api/run.sh; for each transport (gRPC, HTTP/JSON)
# and each of api_load's modes, 8 clients (or VIGIL_BENCH_CLIENTS), single varied scores, then
# batches of BATCH varied items; A and B alternated ROUNDS times (A first in odd rounds, B first in even ones). Prints,
# per run, one line (bench/api/report.py): api_load's figures; the server's CPU time and context
# switches per call (all its threads, from /proc), which a busy machine disturbs less than
# latency; its own time per call, admission to answer (vigil_api_request_seconds from /metrics
# over the run, as bucket bounds: "<= X us"), which leaves out the transport, the kernel and
# the scheduler; the load generator's CPU per call and its share of the two. Ends with all runs
# as one Markdown table.
# Usage: bench/api/ab.sh VIGIL_A VIGIL_B [SECONDS] [ROUNDS] [BATCH] [TRANSPORTS] [MODES]
#   TRANSPORTS: "grpc http" (default), "grpc" or "http"; MODES: any of api_load's "events",
#   "threads" and "h2" (gRPC only: HTTP/2 by nghttp2, no gRPC client library), "events threads"
#   by default; $BUILD, $VIGIL_DATA; VIGIL_BENCH_AUTH=jwt (requests carry a bearer
#   token), VIGIL_BENCH_THREADS=1 (the server's threads that ran, per run),
#   VIGIL_BENCH_CLIENTS="1 8 64" (the single-score runs at each of these client counts; default
#   8; batches always at 8), VIGIL_BENCH_YAML_A / _B (YAML lines added to A's / B's config,
#   e.g. "grpc: {listen: \"127.0.0.1:0\", max_threads: 256, poll_threads: 2}")
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build/release}
a=$1 b=$2 seconds=${3:-5} rounds=${4:-3} batch=${5:-64} transports=${6:-grpc http}
modes=${7:-events threads}
clients_list=${VIGIL_BENCH_CLIENTS:-8}
data=${VIGIL_DATA:-../shared/data/adfa-ld}
cmake --build "$build" --target vigil api_load >/dev/null
source bench/api/common.sh
export VIGIL_BENCH_ROWS="$work/rows"
start A "${VIGIL_BENCH_YAML_A:-}" "$a"
start B "${VIGIL_BENCH_YAML_B:-}" "$b"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# A then B in odd rounds, B then A in even ones, so that a load that grows or shrinks during
# the run does not favour one side.
for round in $(seq "$rounds"); do
  order="A B"
  (( round % 2 == 0 )) && order="B A"
  echo "round $round ($order), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for t in $transports; do
    for gen in $modes; do
      [[ $gen == h2 && $t != grpc ]] && continue  # api_load's h2 mode speaks gRPC only
      for clients in $clients_list; do
        for s in $order; do run "$s" "$t" --mode "$gen" --clients "$clients" --vary; done
      done
    done
    for s in $order; do run "$s" "$t" --clients 8 --vary --batch "$batch"; done
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "All runs above as one table, in the order run (latency in µs):"
python3 bench/api/report.py table "$VIGIL_BENCH_ROWS"
