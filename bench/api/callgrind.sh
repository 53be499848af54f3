#!/usr/bin/env bash
# The gRPC server's instructions per single varied score, under callgrind (repeatable on a busy
# machine, unlike time): `vigil serve` with run.sh's model and rule (common.sh), a 60 s default
# deadline so that nothing falls back under valgrind's slowness; api_load warms it up for 2 s,
# the counts are zeroed, the load runs SECONDS, the counts are dumped and divided by the calls.
# Usage: bench/api/callgrind.sh [VIGIL] [CLIENTS] [SECONDS]   ($BUILD, $VIGIL_DATA; docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build/release}
vigil=${1:-$build/apps/vigil/vigil} clients=${2:-2} seconds=${3:-4}
data=${VIGIL_DATA:-../shared/data/adfa-ld}
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null ||
  { echo "callgrind.sh: error: valgrind (callgrind_control) is not installed" >&2; exit 2; }
cmake --build "$build" --target vigil api_load >/dev/null
source bench/api/common.sh
cat > "$work/cg.yaml" <<YAML
grpc: {listen: "127.0.0.1:0", max_threads: 256}
auth:
  allow_anonymous: true
  anonymous_scopes: [score]
model: model.vmod
rules: [rules.yaml]
limits: {max_in_flight: 1024, default_deadline_ms: 60000, queue: 65536}
YAML
out=$(mktemp /tmp/vigil-api-callgrind.XXXXXX)
valgrind --tool=callgrind --callgrind-out-file="$out.%p" "$vigil" serve --config "$work/cg.yaml" \
  --json > "$work/cg.ready" 2>/dev/null &
pid=$!
servers+=($pid)
for _ in $(seq 600); do [[ -s $work/cg.ready ]] && break; sleep 0.1; done
[[ -s $work/cg.ready ]] || { echo "callgrind.sh: error: vigil serve did not become ready" >&2; exit 1; }
port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc_port"])' "$work/cg.ready")
"$build/bench/api_load" --grpc "127.0.0.1:$port" --clients "$clients" --vary --seconds 2 >/dev/null
callgrind_control -z "$pid" >/dev/null
result=$("$build/bench/api_load" --grpc "127.0.0.1:$port" --clients "$clients" --vary \
  --seconds "$seconds" --json)
callgrind_control -d "$pid" >/dev/null
dump=$(ls -t "$out.$pid".* | head -1)
calls=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["calls"])' "$result")
instr=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
echo "server instructions: $instr over $calls calls, $((instr / calls)) per call ($clients clients, $seconds s); call tree: $dump"
rm -f "$out"
