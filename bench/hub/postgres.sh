#!/usr/bin/env bash
# Hub ingest into SQLite and into PostgreSQL, same build, same run (docs/benchmarks.md):
# starts a throwaway PostgreSQL 15 (bench/hub/pg_server.sh), then runs bench/hub_ingest_bench for
# each batch size on both stores, each PostgreSQL run on a fresh database.
# Usage: bash bench/hub/postgres.sh [MESSAGES_AT_BATCH_1] (default 2000)
#   after: cmake --build --preset release --target hub_ingest_bench
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=build/release/bench/hub_ingest_bench
[[ -x $bench ]] || { echo "build it first: cmake --build --preset release --target hub_ingest_bench" >&2; exit 2; }
small=${1:-2000}
source bench/hub/pg_server.sh

n=0
for spec in "$small 1" "200 100" "200 500"; do
  read -r messages batch <<<"$spec"
  "$bench" --messages "$messages" --batch "$batch"
  n=$((n + 1))
  "$bench" --messages "$messages" --batch "$batch" --store "$(pg_newdb "bench$n")"
done
