#!/usr/bin/env bash
# The load generator's own instructions per call, under callgrind (repeatable on a busy machine,
# unlike its CPU time): a normal `vigil serve` with run.sh's model and config (common.sh), and
# api_load under valgrind for 0.2 s and then SECONDS in each of MODES (gRPC, CLIENTS clients,
# single varied scores). Instructions per call are the slope between the two runs (the
# difference of instructions over the difference of calls), which leaves out start-up and exit
# (a closed-loop client waiting for answers runs no instructions). So that the two sides of a
# machine's two cores can be compared: on this machine api_load shares the CPU with the server
# it measures. User-space instructions only: the kernel's side of the calls (one send and one
# recv per call in each mode, `strace -f -c`) is not counted.
# Usage: bench/api/callgrind_load.sh [MODES] [CLIENTS] [SECONDS]
#   MODES: api_load's gRPC modes, default "events h2"; CLIENTS default 8; SECONDS default 4
#   ($BUILD, $VIGIL_DATA; docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build/release}
modes=${1:-events h2} clients=${2:-8} seconds=${3:-4}
data=${VIGIL_DATA:-../shared/data/adfa-ld}
command -v valgrind >/dev/null ||
  { echo "callgrind_load.sh: error: valgrind is not installed" >&2; exit 2; }
cmake --build "$build" --target vigil api_load >/dev/null
source bench/api/common.sh
start main ""
# Instructions and calls of one api_load run of $2 seconds in mode $1, as "INSTR CALLS".
measure() {
  local out="$work/cg.$1.$2" result
  result=$(valgrind --tool=callgrind --callgrind-out-file="$out" "$build/bench/api_load" \
    --grpc "127.0.0.1:$main_grpc" --mode "$1" --clients "$clients" --vary --seconds "$2" \
    --json 2>/dev/null)
  echo "$(awk '/^(summary|totals):/ {print $2; exit}' "$out")" \
    "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["calls"])' "$result")"
}
for mode in $modes; do
  read -r i1 c1 < <(measure "$mode" 0.2)
  read -r i2 c2 < <(measure "$mode" "$seconds")
  if (( c2 <= c1 )); then
    echo "$mode: no more calls in the longer run ($c1, $c2): no slope" >&2
    continue
  fi
  echo "api_load --mode $mode, $clients clients: $i1 instructions / $c1 calls in 0.2 s," \
    "$i2 / $c2 in $seconds s: $(( (i2 - i1) / (c2 - c1) )) instructions per call"
done
