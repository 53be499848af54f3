#!/usr/bin/env bash
# Instruction counts of the agent's per-event path (docs/benchmarks.md, "Agent: short file
# records, buffers returned to the reader"): runs `vigil agent` (learning, null sink) under
# callgrind with collection only inside ReplayRunner::Run and its workers (no start-up), the
# agent filtered in the kernel to the load generator's program, then PAIRS open/close pairs of
# bench/agent/syscall_loop (small enough to fit in the ring buffer while the agent runs ~50x
# slower under valgrind), waits for the agent to drain, stops it and prints the events read,
# the kernel losses and the instructions collected. Repeatable under load, unlike wall clock.
# MODE getppid runs COUNT getppid calls instead (the raw syscall stream alone: no typed records,
# no policy).
#
# Usage: bench/agent/callgrind-agent.sh VIGIL_BINARY OUT_DIR [COUNT] [MODE]
#        (COUNT default 3000; MODE openclose (default: COUNT pairs) or getppid (COUNT calls))
# Needs root (the eBPF sensor) and valgrind (scripts/install-deps.sh bench). Compare two builds by running it once for each,
# one after the other (two agents at once would each see both loops).
set -euo pipefail
bin=${1:?usage: callgrind-agent.sh VIGIL_BINARY OUT_DIR [COUNT] [MODE]}
out=${2:?usage: callgrind-agent.sh VIGIL_BINARY OUT_DIR [COUNT] [MODE]}
pairs=${3:-3000}
mode=${4:-openclose}
[[ $mode == openclose || $mode == getppid ]] ||
  { echo "callgrind-agent: MODE must be openclose or getppid, got '$mode'" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
command -v valgrind >/dev/null ||
  { echo "callgrind-agent: valgrind is not installed (scripts/install-deps.sh bench)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "callgrind-agent: the eBPF agent needs root" >&2; exit 2; }
mkdir -p "$out"
tmp=$(mktemp -d /tmp/vigil-callgrind.XXXXXX)
pid=''
cleanup() {
  [[ -z $pid ]] || { kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT
gcc -O2 -Wall -Wextra -Werror -o "$tmp/syscall_loop" "$here/syscall_loop.c"
cat >"$tmp/vigil.yaml" <<'YAML'
log:
  level: info
sinks: []
agent:
  filters:
    include_comms: [syscall_loop]
YAML
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
  --toggle-collect='*ReplayRunner::Run*' \
  "$bin" agent --config "$tmp/vigil.yaml" --state-dir "$tmp/state" --learn 1h --sink null \
  --quiet --metrics-listen 127.0.0.1:0 >"$tmp/agent.out" 2>"$tmp/agent.log" &
pid=$!
port=''
for _ in $(seq 600); do
  kill -0 "$pid" 2>/dev/null || { echo "callgrind-agent: the agent exited" >&2; cat "$tmp/agent.log" >&2; exit 1; }
  port=$(sed -n 's|.*metrics and health on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$tmp/agent.log" | head -1)
  [[ -n $port ]] && grep -q 'vigil agent on ' "$tmp/agent.log" && break
  sleep 0.5
done
[[ -n $port ]] || { echo "callgrind-agent: the agent did not start" >&2; exit 1; }
sleep 5
"$tmp/syscall_loop" "$mode" "$pairs"
sleep 20  # the agent drains the ring buffer at valgrind's pace
curl -fsS "http://127.0.0.1:$port/metrics" |
  grep -E '^vigil_events_read_total |^vigil_kernel_events_lost_total\{cause="ringbuf_full"\}'
kill -INT "$pid"
wait "$pid" || true
pid=''
grep -h 'Collected' "$tmp/agent.log" || true
echo "callgrind output: $out (callgrind_annotate --inclusive=yes $out/callgrind.out.*)"
