#!/usr/bin/env bash
# Two builds of hub_nats_bench, alternated against one throwaway nats-server and PostgreSQL 15
# (bench/hub/pg_server.sh, nats_server.sh), each run on its own stream and a fresh database
# (so each build creates its own schema): PostgreSQL, HUBS hubs (default 1), BATCH messages per
# fetch (default 64). Every run prints the bench's line (events/s, where one event is one finding;
# loss, duplicates, P50/P99 publish to incident, load average, CPU per event of the hub process,
# the publishers and the PostgreSQL backends; builds before the publishers' own process print
# the hub and publishers together as "bench process") and nats-server's CPU per event.
# FINDINGS is the findings per JetStream message: the agent's nats sink packs up to 500
# (batch_findings) when findings come faster than one message per batch_delay.
# Usage: bash bench/hub/nats_ab.sh BENCH_A BENCH_B [ROUNDS] [MESSAGES] [FINDINGS]
#   (default 3 rounds of 2000 x 50); e.g. a copy of main's build against this one:
#   cp build/release/bench/hub_nats_bench /tmp/bench.main   (on main)
#   bash bench/hub/nats_ab.sh /tmp/bench.main build/release/bench/hub_nats_bench
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $# -ge 2 && -x $1 && -x $2 ]] || { echo "usage: $0 BENCH_A BENCH_B [ROUNDS] [MESSAGES] [FINDINGS]" >&2; exit 2; }
a=$1 b=$2 rounds=${3:-3} messages=${4:-2000} findings=${5:-50}
source bench/hub/pg_server.sh
source bench/hub/nats_server.sh
n=0
for round in $(seq "$rounds"); do
  for which in A B; do
    bin=$a
    [[ $which == B ]] && bin=$b
    n=$((n + 1))
    before=$(nats_cpu_seconds)
    echo "round $round, $which ($bin):"
    "$bin" --nats "$nats_url" --messages "$messages" --findings "$findings" --hubs "${HUBS:-1}" --batch "${BATCH:-64}" \
      --store "$(pg_newdb "ab$n")" --server-pid "$pg_pid" 2>&1 | grep -v '\[info\]'
    python3 -c "print('  nats-server %.2f us per event' % (($(nats_cpu_seconds) - $before) * 1e6 / ($messages * $findings)))"
  done
done
