#!/usr/bin/env bash
# Score latency and throughput of `vigil serve` over HTTP/JSON and gRPC on loopback
# (docs/benchmarks.md). Trains an n-gram model on ADFA-LD's training traces, starts vigil serve
# (plain HTTP and gRPC, anonymous score scope, no rate limit, default batching) and drives it
# from a separate process (api_load):
#   1. single scores at 1, 8 and 64 clients over each transport, with repeated requests
#      (verdict-cache hits) and varied ones (every request scored by the model);
#   2. throughput over gRPC with score:batch calls of BATCH varied items at 1, 8 and 64 clients;
#   3. scoring on the request's thread against the engine's worker: a second server with
#      batch.inline false (every item through the worker's micro-batches) against the default
#      (inline while the model is fast), single varied scores over gRPC at 8 clients, then
#      score:batch calls of BATCH varied items, the two alternated three times.
# Prints the machine's load average before and after, and the service's engine metrics.
# Usage: bench/api/run.sh [SECONDS] [BATCH]   (build dir: $BUILD, default build/release)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build/release}
seconds=${1:-5}
batch=${2:-64}
data=${VIGIL_DATA:-../shared/data/adfa-ld}
cmake --build "$build" --target vigil api_load >/dev/null
source bench/api/common.sh
# A run with errors prints them and the script goes on (the figures say how many).
load() { "$build/bench/api_load" --seconds "$seconds" "$@" || true; }

start main ""
echo "cpus: $(nproc); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in same vary; do
  flag=(); [[ $mode == vary ]] && flag=(--vary)
  for clients in 1 8 64; do
    load --url "http://127.0.0.1:$main_http" --clients "$clients" "${flag[@]}"
    load --grpc "127.0.0.1:$main_grpc" --clients "$clients" "${flag[@]}"
  done
done
for clients in 1 8 64; do
  load --grpc "127.0.0.1:$main_grpc" --clients "$clients" --batch "$batch" --vary
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -s "http://127.0.0.1:$main_http/metrics" |
  grep -E '^vigil_(api_(ready_seconds|scores_total|fallbacks_total\{api="score(_batch)?"\})|engine_(requests_total|batches_total|cache_hit_ratio|fallbacks_total\{.*\} [1-9]))'

start queued "batch: {inline: false}"
for round in 1 2 3; do
  for b in 0 "$batch"; do
    echo -n "round $round, inline:  "
    load --grpc "127.0.0.1:$main_grpc" --clients 8 --vary --batch "$b"
    echo -n "round $round, queued:  "
    load --grpc "127.0.0.1:$queued_grpc" --clients 8 --vary --batch "$b"
  done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
