#!/usr/bin/env bash
# Hub ingest into SQLite and into PostgreSQL, same build, same run (docs/benchmarks.md):
# starts a throwaway PostgreSQL 15 (initdb + postgres from /usr/lib/postgresql/15/bin, as the
# `postgres` user when run as root, in a private temporary directory on a free loopback port;
# stopped on exit), then runs bench/hub_ingest_bench for each batch size on both stores, each
# PostgreSQL run on a fresh database.
# Usage: bash bench/hub/postgres.sh [MESSAGES_AT_BATCH_1] (default 2000)
#   after: cmake --build --preset release --target hub_ingest_bench
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=build/release/bench/hub_ingest_bench
bin=/usr/lib/postgresql/15/bin
[[ -x $bench ]] || { echo "build it first: cmake --build --preset release --target hub_ingest_bench" >&2; exit 2; }
[[ -x $bin/postgres ]] || { echo "$bin/postgres missing: bash scripts/install-deps.sh test" >&2; exit 2; }
small=${1:-2000}

dir=$(mktemp -d /tmp/vigil-pg-bench-XXXXXX)
as=()
if [[ $(id -u) -eq 0 ]]; then
  chown postgres:postgres "$dir"
  as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
pid=
cleanup() {
  if [[ -n $pid ]]; then kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -i LANG=C PATH=/usr/bin:/bin "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust \
  -E UTF8 --locale=C --no-instructions >"$dir/initdb.log" 2>&1
# Durability as a production server has it (fsync, synchronous_commit on).
env -i LANG=C PATH=/usr/bin:/bin "${as[@]}" "$bin/postgres" -D "$dir/data" -h 127.0.0.1 \
  -p "$port" -k "$dir" >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
  sleep 0.1
done
"$bin/pg_isready" -q -h 127.0.0.1 -p "$port" || { cat "$dir/server.log" >&2; exit 1; }

n=0
for spec in "$small 1" "200 100" "200 500"; do
  read -r messages batch <<<"$spec"
  "$bench" --messages "$messages" --batch "$batch"
  n=$((n + 1))
  "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE bench$n"
  "$bench" --messages "$messages" --batch "$batch" \
    --store "postgresql://postgres@127.0.0.1:$port/bench$n"
done
