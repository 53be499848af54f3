#!/usr/bin/env bash
# What the agent adds per redis request, in measures that other load on the machine does not
# swamp (docs/benchmarks.md, "Where redis' slowdown comes from"): for each binary given, and
# once without any agent, a loopback redis-server (CPU 0) serves redis-benchmark (CPU 1,
# -c 50, SET then GET) while this records
#   - each of the agent's BPF programs: runs and run time per request (kernel.bpf_stats_enabled,
#     `bpftool prog show`, only the programs the agent's pid holds);
#   - redis-server's CPU time and context switches per request (`perf stat -e task-clock,
#     context-switches -p`, user and kernel: the syscall slow path that any syscall tracepoint
#     switches on shows here; a VM without hardware counters has no cycles);
#   - the agent's CPU per request and its wake-ups per second (voluntary context switches of all
#     its threads, /proc/PID/task/*/status) over the run, and over VIGIL_COST_IDLE seconds with
#     no load.
# Usage: bench/agent/redis-cost.sh VIGIL_BINARY [VIGIL_BINARY...]
# Environment: VIGIL_COST_REQUESTS requests per test (default 200000), VIGIL_COST_REPS runs of
# each (default 3, the order rotating; medians are printed), VIGIL_COST_IDLE (default 10),
# VIGIL_COST_STREAM agent.syscall_stream (default: left out, the embedded default event set).
# Needs root, bpftool, perf, jq, redis-server and redis-benchmark (scripts/install-deps.sh bench).
set -euo pipefail
shopt -s inherit_errexit
(($# > 0)) || { echo "usage: $0 VIGIL_BINARY [VIGIL_BINARY...]" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "redis-cost: needs root (the eBPF sensor, bpf_stats)" >&2; exit 2; }
for t in bpftool perf redis-server redis-benchmark redis-cli jq; do
  command -v "$t" >/dev/null || { echo "redis-cost: $t is not installed" >&2; exit 2; }
done
for b in "$@"; do [[ -x $b ]] || { echo "redis-cost: $b is not executable" >&2; exit 2; }; done
n=${VIGIL_COST_REQUESTS:-200000}
reps=${VIGIL_COST_REPS:-3}
idle=${VIGIL_COST_IDLE:-10}
for x in n reps idle; do
  [[ ${!x} =~ ^[0-9]+$ ]] && ((${!x} > 0)) ||
    { echo "redis-cost: $x must be a positive whole number, not '${!x}'" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/vigil-redis-cost.XXXXXX)
started=()
old_stats=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
  local p
  for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${started[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  sysctl -q kernel.bpf_stats_enabled="$old_stats" || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
sysctl -q kernel.bpf_stats_enabled=1

port=$((20000 + RANDOM % 20000))
until ! redis-cli -p "$port" ping >/dev/null 2>&1; do port=$((20000 + RANDOM % 20000)); done
taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
redis_pid=$!
started+=("$redis_pid")
deadline=$((SECONDS + 30))
until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do
  ((SECONDS < deadline)) || { echo "redis-cost: redis-server did not start" >&2; exit 1; }
  sleep 0.1
done
printf 'log:\n  level: info\nsinks: []\nagent:\n' >"$tmp/vigil.yaml"
[[ -z ${VIGIL_COST_STREAM:-} ]] || printf '  syscall_stream: %s\n' "$VIGIL_COST_STREAM" >>"$tmp/vigil.yaml"

agent_pid=''
agent_start() {  # agent_start BINARY
  mkdir -p "$tmp/state"
  rm -rf "$tmp/state"/*
  : >"$tmp/agent.log"
  "$1" agent --config "$tmp/vigil.yaml" --state-dir "$tmp/state" --learn 1h --sink null --quiet --metrics-listen 127.0.0.1:0 \
    >/dev/null 2>"$tmp/agent.log" &
  agent_pid=$!
  started+=("$agent_pid")
  local deadline=$((SECONDS + 90))
  until grep -q 'vigil agent on ' "$tmp/agent.log"; do
    kill -0 "$agent_pid" 2>/dev/null || { cat "$tmp/agent.log" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "redis-cost: the agent did not start" >&2; exit 1; }
    sleep 0.2
  done
}
agent_stop() {
  kill -TERM "$agent_pid" 2>/dev/null || true
  wait "$agent_pid" 2>/dev/null || true
  local keep=() p
  for p in "${started[@]}"; do [[ $p == "$agent_pid" ]] || keep+=("$p"); done
  started=("${keep[@]}")
  agent_pid=''
}
# agent_snap: "<cpu_ns> <voluntary switches>" of every thread of the agent (0 0 without one).
agent_snap() {
  [[ -n $agent_pid ]] || { echo "0 0"; return; }
  local cpu vol
  cpu=$(awk '{print $1}' "/proc/$agent_pid/schedstat")
  vol=$(cat /proc/"$agent_pid"/task/*/status 2>/dev/null |
        awk '/^voluntary_ctxt_switches:/ {s += $2} END {print s + 0}')
  echo "$cpu $vol"
}
# bpf_snap: "name run_cnt run_time_ns" per program the agent holds.
bpf_snap() {
  [[ -n $agent_pid ]] || return 0
  # The agent's programs: the prog_id of its BPF fds (bpftool here lists no owner pids).
  local ids
  ids=$(cat /proc/"$agent_pid"/fdinfo/* 2>/dev/null | awk '/^prog_id:/ {print $2}' | sort -u |
        jq -s -c .)
  bpftool prog show -j | jq -r --argjson ids "$ids" \
    '.[] | select(.id as $i | $ids | index($i)) | "\(.name) \(.run_cnt // 0) \(.run_time_ns // 0)"'
}

run_one() {  # run_one LABEL REP
  local label=$1 rep=$2 a0 a1 t0 t1
  taskset -c 1 redis-benchmark -p "$port" -n "$n" -c 50 -t set -q >/dev/null  # warm-up
  bpf_snap >"$tmp/bpf0"
  a0=$(agent_snap)
  perf stat -x, -e task-clock,context-switches -p "$redis_pid" -o "$tmp/perf" &
  local perf_pid=$!
  sleep 0.5  # perf has attached (an upper bound is not needed: it only counts)
  t0=$(date +%s.%N)
  taskset -c 1 redis-benchmark -p "$port" -n "$n" -c 50 -t set,get --csv >"$tmp/csv" 2>/dev/null
  t1=$(date +%s.%N)
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  a1=$(agent_snap)
  bpf_snap >"$tmp/bpf1"
  local req=$((2 * n))
  awk -F'"' '/"SET"/ {s = $4} /"GET"/ {g = $4} END {printf "rps %s %s\n", s, g}' "$tmp/csv" \
    >"$tmp/r"
  awk -F, -v req="$req" '$3 ~ /^task-clock/ {printf "redis_cpu_ns_per_req %.1f\n", $1 * 1e6 / req}
       $3 ~ /^context-switches/ {printf "redis_switches_per_req %.3f\n", $1 / req}' "$tmp/perf" >>"$tmp/r"
  read -r c0 v0 <<<"$a0"
  read -r c1 v1 <<<"$a1"
  awk -v c0="$c0" -v c1="$c1" -v v0="$v0" -v v1="$v1" -v t0="$t0" -v t1="$t1" -v req="$req" \
    'BEGIN {printf "agent_cpu_ns_per_req %.1f\nagent_wakeups_per_s_loaded %.0f\n",
            (c1 - c0) / req, (v1 - v0) / (t1 - t0)}' >>"$tmp/r"
  awk -v req="$req" 'NR == FNR {c[$1] = $2; t[$1] = $3; next}
       {printf "bpf %s runs_per_req %.3f ns_per_req %.1f\n", $1, ($2 - c[$1]) / req, ($3 - t[$1]) / req}' \
    "$tmp/bpf0" "$tmp/bpf1" >>"$tmp/r"
  if [[ -n $agent_pid ]]; then
    a0=$(agent_snap)
    sleep "$idle"
    a1=$(agent_snap)
    read -r c0 v0 <<<"$a0"
    read -r c1 v1 <<<"$a1"
    awk -v c0="$c0" -v c1="$c1" -v v0="$v0" -v v1="$v1" -v s="$idle" \
      'BEGIN {printf "agent_wakeups_per_s_idle %.1f\nagent_cpu_ms_per_s_idle %.3f\n",
              (v1 - v0) / s, (c1 - c0) / s / 1e6}' >>"$tmp/r"
  fi
  sed "s|^|$label $rep |" "$tmp/r" >>"$tmp/all"
}

labels=(none)
i=0
for b in "$@"; do i=$((i + 1)); labels+=("agent$i"); done
: >"$tmp/all"
echo "== redis-cost: $n SET + $n GET per run, $reps runs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= reps; r++)); do
  # Rotate the order so that no label always runs first.
  for ((k = 0; k < ${#labels[@]}; k++)); do
    j=$(((k + r) % ${#labels[@]}))
    label=${labels[$j]}
    if [[ $label == none ]]; then
      run_one none "$r"
    else
      bin=${!j}
      agent_start "$bin"
      run_one "$label" "$r"
      agent_stop
    fi
  done
done
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
for ((k = 1; k < ${#labels[@]}; k++)); do echo "agent$k = ${!k}"; done
# Medians per label and measure (key, then the values in order).
awk '{
  if ($3 == "rps") {print $1 "|set_rps", $4; print $1 "|get_rps", $5}
  else if ($3 == "bpf") {print $1 "|bpf:" $4 ":runs/req", $6; print $1 "|bpf:" $4 ":ns/req", $8}
  else print $1 "|" $3, $4
}' "$tmp/all" | sort -k1,1 -k2,2g |
  awk 'function out() {if (m) printf "%-46s median %12.3f  (%s)\n", k, (m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2), substr(all, 2)}
       $1 != k {out(); k = $1; m = 0; all = ""}
       {a[++m] = $2; all = all " " $2}
       END {out()}'
