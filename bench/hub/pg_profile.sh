#!/usr/bin/env bash
# Where PostgreSQL's CPU per ingested finding goes (docs/benchmarks.md, "Into PostgreSQL: where
# the backend's time goes"): one hub_nats_bench run (1 hub, batch 64) against a throwaway
# nats-server and PostgreSQL 15 with pg_stat_statements loaded, then per statement: calls, time,
# rows and WAL bytes, per finding; the WAL written per finding; the tables' and indexes' sizes.
# With PERF=1 also `perf record` of the whole machine during the run, reported for the
# PostgreSQL processes only (top symbols, self time) into $PERF_OUT (default /tmp/pg_profile.perf).
#   PG_PROFILE_SQL="ALTER TABLE ..." runs once the schema exists, before the measured run.
# Usage: bash bench/hub/pg_profile.sh [MESSAGES] [FINDINGS] [BENCH_BINARY]
#   (default 2000 50 build/release/bench/hub_nats_bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
messages=${1:-2000}
findings=${2:-50}
bench=${3:-build/release/bench/hub_nats_bench}
[[ -x $bench ]] || { echo "build it first: cmake --build --preset release --target hub_nats_bench" >&2; exit 2; }
PG_SERVER_OPTS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
PG_SERVER_OPTS+=" -c pg_stat_statements.track_utility=on -c track_io_timing=on"
source bench/hub/pg_server.sh
source bench/hub/nats_server.sh
uri=$(pg_newdb profile)
sql() { "$pg_bin/psql" -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d profile "$@"; }
sql -c "CREATE EXTENSION pg_stat_statements"
# The schema first (a hub opening the store creates it), so that the counters hold ingest only.
"$bench" --nats "$nats_url" --messages 1 --findings 1 --store "$uri" --stream WARM --prefix warm \
  >/dev/null
# PG_PROFILE_SQL (statements run once the schema exists) tries a schema change without a build.
[[ -n ${PG_PROFILE_SQL:-} ]] && sql -c "$PG_PROFILE_SQL"
sql -c "TRUNCATE alerts, incidents, messages, agents RESTART IDENTITY" \
  -c "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset()" -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
lsn=$(sql -At -c "SELECT pg_current_wal_lsn()")
perf_pid=
if [[ ${PERF:-0} == 1 ]]; then
  perf_out=${PERF_OUT:-/tmp/pg_profile.perf}
  perf record -F ${PERF_FREQ:-499} -g -a -o "$perf_out" -- sleep 600 2>/dev/null &
  perf_pid=$!
fi
"$bench" --nats "$nats_url" --messages "$messages" --findings "$findings" --store "$uri" \
  --server-pid "$pg_pid"
if [[ -n $perf_pid ]]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
total=$((messages * findings))
echo "per statement (per finding: exec µs, WAL bytes; $total findings):"
sql -P pager=off -c "SELECT calls, round((total_exec_time * 1000 / $total)::numeric, 2) AS us_per_finding,
  round(mean_exec_time::numeric, 3) AS mean_ms, rows,
  round((wal_bytes / $total)::numeric, 1) AS wal_b_per_finding, wal_fpi,
  left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
  FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%' ORDER BY total_exec_time DESC LIMIT 14"
echo "WAL per finding (bytes), records, full-page images:"
sql -At -c "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn') / $total, 1),
  wal_records, wal_fpi, wal_sync FROM pg_stat_wal"
sql -P pager=off -c "SELECT relname, pg_size_pretty(pg_relation_size(relid)) AS heap,
  pg_size_pretty(pg_indexes_size(relid)) AS indexes, pg_size_pretty(pg_total_relation_size(relid) - pg_relation_size(relid) - pg_indexes_size(relid)) AS toast,
  n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE n_tup_ins > 0 ORDER BY relname"
if [[ -n $perf_pid ]]; then
  echo "perf: PostgreSQL processes, self time, top 40 symbols ($perf_out):"
  perf report -i "$perf_out" --comm postgres --no-children --sort symbol --stdio 2>/dev/null |
    grep -v '^#' | grep -v '^$' | grep '%' | head -40
fi
