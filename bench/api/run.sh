#!/usr/bin/env bash
# Score latency and throughput of `vigil serve` over HTTP/JSON and gRPC on loopback
# (docs/benchmarks.md). Trains an n-gram model on ADFA-LD's training traces, starts vigil serve
# (plain HTTP and gRPC, anonymous score scope, no rate limit, default batching) and drives it
# from a separate process (api_load), in each of api_load's modes: `events` (the clients'
# connections multiplexed on one thread, as wrk/ghz do), `h2` (gRPC only: the same, but HTTP/2
# by nghttp2 without gRPC's client library, a third of its instructions per call) and `threads`
# (one blocking OS thread per client, which on 2 cores queue for CPU beside the server's):
#   1. single scores at 1, 8 and 64 clients over each transport, with repeated requests
#      (verdict-cache hits) and varied ones (every request scored by the model);
#   2. throughput over gRPC with score:batch calls of BATCH varied items at 1, 8 and 64 clients;
#   3. scoring on the request's thread against the engine's worker: a second server with
#      batch.inline false (every item through the worker's micro-batches) against the default
#      (inline while the model is fast), single varied scores over gRPC at 8 clients, then
#      score:batch calls of BATCH varied items, the two alternated three times (events mode).
# Each line: api_load's figures, then the server's CPU and context switches per call, its
# thread count and its own time per call (admission to answer), then the load generator's CPU
# and switches per call (bench/api/report.py). Prints the machine's load average before, between
# the parts and after, the service's engine metrics, and at the end all runs as one Markdown
# table.
# Usage: bench/api/run.sh [SECONDS] [BATCH]   (build dir: $BUILD, default build/release;
#   VIGIL_BENCH_AUTH=jwt: every request carries a bearer token; VIGIL_BENCH_THREADS=1: the
#   server's threads that ran, per run; VIGIL_BENCH_MODES: "events h2 threads" by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build/release}
seconds=${1:-5}
batch=${2:-64}
modes=${VIGIL_BENCH_MODES:-events h2 threads}
data=${VIGIL_DATA:-../shared/data/adfa-ld}
cmake --build "$build" --target vigil api_load >/dev/null
source bench/api/common.sh
export VIGIL_BENCH_ROWS="$work/rows"
loadavg() { echo "load average $1: $(cut -d' ' -f1-3 /proc/loadavg)"; }

start main ""
echo "cpus: $(nproc); server threads at rest: $(ls /proc/$main_pid/task | wc -l)"
loadavg before
for gen in $modes; do
  for req in same vary; do
    flag=(); [[ $req == vary ]] && flag=(--vary)
    for clients in 1 8 64; do
      for t in http grpc; do
        [[ $gen == h2 && $t != grpc ]] && continue  # api_load's h2 mode speaks gRPC only
        run main "$t" --mode "$gen" --clients "$clients" "${flag[@]}"
      done
    done
  done
  loadavg "after the single scores ($gen)"
done
for gen in $modes; do
  for clients in 1 8 64; do
    run main grpc --mode "$gen" --clients "$clients" --batch "$batch" --vary
  done
done
loadavg "after the batches"
curl -s "http://127.0.0.1:$main_http/metrics" |
  grep -E '^vigil_(api_(ready_seconds|scores_total|fallbacks_total\{api="score(_batch)?"\})|engine_(requests_total|batches_total|cache_hit_ratio|fallbacks_total\{.*\} [1-9]))'

start queued "batch: {inline: false}"
for round in 1 2 3; do
  for b in 0 "$batch"; do
    run main grpc --clients 8 --vary --batch "$b"
    run queued grpc --clients 8 --vary --batch "$b"
  done
done
loadavg "at the end"
echo
echo "All runs above as one table (latency in µs; server = main: the default config, queued: batch.inline false):"
python3 bench/api/report.py table "$VIGIL_BENCH_ROWS"
