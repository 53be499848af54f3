#!/usr/bin/env bash
# Hub ingest through NATS JetStream into SQLite and PostgreSQL (docs/benchmarks.md), one command:
# starts a throwaway nats-server with JetStream (Debian's, on a free loopback port, its store in a
# temporary directory) and PostgreSQL 15 (bench/hub/pg_server.sh), then runs bench/hub_nats_bench
# for each configuration below, each on its own stream and a fresh database. Every line it prints
# has events/s (one event is one finding), loss, duplicates, publish-to-incident P50/P99, the load
# average and the CPU per event of the hub process, the publishers and PostgreSQL's backends.
# Usage: bash bench/hub/nats_ingest.sh [MESSAGES] [FINDINGS_PER_MESSAGE] (default 2000 50)
#   Extra arguments for every run: HUB_NATS_BENCH_ARGS="--publishers 4" bash bench/hub/nats_ingest.sh
#   The last run is paced at RATE findings/s (default 2000).
#   after: cmake --build --preset release --target hub_nats_bench
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=build/release/bench/hub_nats_bench
[[ -x $bench ]] || { echo "build it first: cmake --build --preset release --target hub_nats_bench" >&2; exit 2; }
messages=${1:-2000}
findings=${2:-50}
read -r -a extra <<<"${HUB_NATS_BENCH_ARGS:-}"
source bench/hub/pg_server.sh
source bench/hub/nats_server.sh
url=$nats_url
run() { "$bench" --nats "$url" --messages "$messages" --findings "$findings" "${extra[@]}" "$@"; }

# Before (one message per transaction, as the consumer stored them before batching) and after.
run --batch 1
run --batch 64
n=0
for spec in "1 1" "1 64" "2 64"; do
  read -r hubs batch <<<"$spec"
  n=$((n + 1))
  run --hubs "$hubs" --batch "$batch" --store "$(pg_newdb "nats$n")" --server-pid "$pg_pid"
done
# Latency below capacity: publishing paced at RATE findings/s (the runs above publish as fast as
# the stream takes them, so their latency is mostly the backlog).
run --hubs 1 --batch 64 --store "$(pg_newdb nats_paced)" --server-pid "$pg_pid" --rate "${RATE:-2000}"
