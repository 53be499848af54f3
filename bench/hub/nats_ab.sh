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
# At the end: per build the median over the rounds of events/s (first publish to last commit),
# of the sustained rate (10% to 90% of the events committed; the median and the minimum
# 5-second window; builds that print them), of the CPU per event of each process, and the
# ratio B / A of each median. A sustained run: MESSAGES x FINDINGS
# of 2000 x 500 is 1 M events (about 10-15 s per run on a quiet machine).
# Extra arguments for every run of both builds: HUB_NATS_BENCH_ARGS="--rate 100000".
# Usage: bash bench/hub/nats_ab.sh BENCH_A BENCH_B [ROUNDS] [MESSAGES] [FINDINGS]
#   (default 3 rounds of 2000 x 50); e.g. a copy of main's build against this one:
#   cp build/release/bench/hub_nats_bench /tmp/bench.main   (on main)
#   bash bench/hub/nats_ab.sh /tmp/bench.main build/release/bench/hub_nats_bench
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $# -ge 2 && -x $1 && -x $2 ]] || { echo "usage: $0 BENCH_A BENCH_B [ROUNDS] [MESSAGES] [FINDINGS]" >&2; exit 2; }
a=$1 b=$2 rounds=${3:-3} messages=${4:-2000} findings=${5:-50}
source bench/hub/pg_server.sh
read -r -a extra <<<"${HUB_NATS_BENCH_ARGS:-}"
source bench/hub/nats_server.sh
log=$pg_dir/ab.log
n=0
for round in $(seq "$rounds"); do
  for which in A B; do
    bin=$a
    [[ $which == B ]] && bin=$b
    n=$((n + 1))
    before=$(nats_cpu_seconds)
    echo "round $round, $which ($bin):" | tee -a "$log"
    "$bin" --nats "$nats_url" --messages "$messages" --findings "$findings" --hubs "${HUBS:-1}" --batch "${BATCH:-64}" \
      --store "$(pg_newdb "ab$n")" --server-pid "$pg_pid" "${extra[@]}" 2>&1 | grep -v '\[info\]' | tee -a "$log"
    python3 -c "print('  nats-server %.2f us per event' % (($(nats_cpu_seconds) - $before) * 1e6 / ($messages * $findings)))" |
      tee -a "$log"
  done
done
python3 - "$log" <<'EOF'
import re, statistics, sys
runs, cur = {"A": [], "B": []}, None
pats = {"events/s": r"^hub nats ingest .* s: (\d+) events/s",
        "sustained": r"sustained: .*?s: (\d+) events/s", "windows": r"windows of .*median (\d+)",
        "min window": r"windows of .*min (\d+)", "store busy %": r"store busy: (\d+)%",
        "hub us": r"hub process ([\d.]+) us", "bench us": r"bench process ([\d.]+) us",
        "publishers us": r"publishers ([\d.]+) us", "postgres us": r"postgres backends ([\d.]+) us",
        "nats-server us": r"nats-server ([\d.]+) us"}
for line in open(sys.argv[1]):
    m = re.match(r"round \d+, ([AB]) ", line)
    if m:
        cur = {}
        runs[m.group(1)].append(cur)
        continue
    for k, p in pats.items():
        m = re.search(p, line)
        if m and cur is not None:
            cur[k] = float(m.group(1))
print("medians over %d rounds (A / B, ratio B/A):" % len(runs["B"]))
for k in pats:
    a = [r[k] for r in runs["A"] if k in r]
    b = [r[k] for r in runs["B"] if k in r]
    if not a and not b:
        continue
    ma = statistics.median(a) if a else float("nan")
    mb = statistics.median(b) if b else float("nan")
    ratio = "%.3f" % (mb / ma) if a and b and ma else "-"
    print("  %-15s %12.2f / %12.2f  %s   (A %s; B %s)" % (k, ma, mb, ratio, a, b))
EOF
