#!/usr/bin/env bash
# The agent overhead benchmark (docs/benchmarks.md, "vigil agent: overhead on the host"):
# installs what the build needs, builds `vigil` with the release preset, compiles the load
# generators of bench/agent/ and measures, each VIGIL_BENCH_REPETITIONS times (default 5):
#   1. open/close and getppid loops without the agent, then with `vigil agent` running (full
#      syscall stream, default event set) in its learning phase and in its detection phase;
#   2. the agent's events/s, loss in the kernel and in the queue, and its CPU per event while the
#      loops run; then two getppid loops at once ("getppid x2": the most events one 2-core host
#      makes here, for the 1 M events/s target);
#   3. the agent's RSS with VIGIL_BENCH_PROCS (default 1000) live idle processes;
#   4. redis-benchmark against a loopback redis-server, without/with the agent (skipped with a
#      message when redis cannot be installed). Method, for a figure that redis' own noise
#      (+-10 % between runs) does not swamp: each repetition runs VIGIL_BENCH_REDIS_PAIRS pairs
#      of without/with (the order alternating between pairs), and the slowdown is taken within
#      each pair, then summarised as median, quartiles and range over all pairs; every run,
#      with or without the agent, is preceded by VIGIL_BENCH_REDIS_WARMUP seconds of untimed SET
#      load, so that the agent's stream cycler has measured the load and reached its steady duty
#      (the first on-period after start is not what a long-running host sees; the stream's duty
#      during the warm-up is reported separately as "redis warm-up (start)"); redis-server runs
#      on CPU 0 and redis-benchmark on CPU 1 (taskset; the agent is not pinned and shares them,
#      as on a real 2-core host), so that the scheduler moving them about adds no noise;
#   (for every measurement with the agent, the share of its time the syscall stream was on,
#   from the agent's vigil_syscall_stream_on_seconds_total, is recorded and summarised);
#   5. a compile of a C project: GNU binutils' C libraries (libiberty, zlib, libsframe, bfd) from
#      Debian's binutils-source, configured once, then cleaned and rebuilt with
#      `make -j$(nproc) all-bfd`, timed without/with the agent (skipped with a message when
#      binutils-source cannot be installed).
# It ends with a table of medians, ratios taken within each repetition, and the targets.
#
# Usage: scripts/bench-agent.sh
# Environment (all optional):
#   VIGIL_BENCH_REPETITIONS   repetitions of every measurement (default 5)
#   VIGIL_BENCH_PHASES        agent phases to measure (default "learning detecting"); a phase
#                             may carry its own stream budget, e.g. "detecting detecting@0.005",
#                             to compare budgets within the same repetitions (budget mode only)
#   VIGIL_BENCH_OPENCLOSE     open+close pairs per loop run (default 2000000)
#   VIGIL_BENCH_GETPPID       getppid calls per loop run (default 5000000)
#   VIGIL_BENCH_PROCS         idle processes for the RSS test (default 1000; 0 skips it)
#   VIGIL_BENCH_SETTLE        seconds the agent runs with them before RSS is read (default 20)
#   VIGIL_BENCH_REDIS         redis-benchmark requests per test (default 500000; 0 skips redis)
#   VIGIL_BENCH_REDIS_PAIRS   without/with pairs per repetition (default 3)
#   VIGIL_BENCH_REDIS_WARMUP  seconds of untimed SET load before every timed run (default 5;
#                             0: none, the timed run starts right after the agent is ready)
#   VIGIL_BENCH_REDIS_PIN     1 (default): redis-server on CPU 0, redis-benchmark on CPU 1
#                             (when there are 2 CPUs or more); 0: not pinned
#   VIGIL_BENCH_SYSCALL_STREAM  the agent's agent.syscall_stream: default (the default: the key
#                             left out, so the embedded default event set is measured: the
#                             stream under its CPU budget), budget, true (the full per-call
#                             stream all the time) or false (typed events only)
#   VIGIL_BENCH_STREAM_BUDGET agent.syscall_stream_budget (default: left out, the embedded 0.01)
#   VIGIL_BENCH_SECTIONS      which measurements to run (default "loops rss redis compile")
#   VIGIL_BIN                 a prebuilt vigil binary: skips install-deps and the build
#   VIGIL_BENCH_BEFORE_BIN    another vigil binary (e.g. a build of the previous commit): adds
#                             the phase "before" (that binary, learning) to every repetition, so
#                             before/after are measured in the same run against the same baseline
#                             (phases run in the given order on odd repetitions, reversed on even)
#   VIGIL_BENCH_OUT           where binaries and results go (default build/release/bench-agent)
# Needs root (the eBPF sensor). Every process it starts (agents, idle processes, redis-server, make) is
# stopped on exit, also on error or Ctrl-C; each agent gets its own state dir in a temp dir.
# Figures are measurements, not pass/fail: the exit status is non-zero only when a build, a
# load generator or the agent fails.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
repo=$PWD

reps=${VIGIL_BENCH_REPETITIONS:-5}
phases=${VIGIL_BENCH_PHASES:-"learning detecting"}
before_bin=${VIGIL_BENCH_BEFORE_BIN:-}
if [[ -n $before_bin ]]; then
  [[ -x $before_bin ]] || { echo "bench-agent: VIGIL_BENCH_BEFORE_BIN=$before_bin is not executable" >&2;
                            exit 2; }
  # Added once: VIGIL_BENCH_PHASES may already name it (it was measured twice then).
  [[ " $phases " == *" before "* ]] || phases="before $phases"
elif [[ " $phases " == *" before "* || " $phases " == *" before@"* ]]; then
  echo "bench-agent: VIGIL_BENCH_PHASES names the phase 'before' but VIGIL_BENCH_BEFORE_BIN is" \
    "not set (the binary that phase runs)" >&2
  exit 2
fi
oc_count=${VIGIL_BENCH_OPENCLOSE:-2000000}
gp_count=${VIGIL_BENCH_GETPPID:-5000000}
nprocs=${VIGIL_BENCH_PROCS:-1000}
settle=${VIGIL_BENCH_SETTLE:-20}
redis_n=${VIGIL_BENCH_REDIS:-500000}
redis_pairs=${VIGIL_BENCH_REDIS_PAIRS:-3}
redis_warmup=${VIGIL_BENCH_REDIS_WARMUP:-5}
redis_pin=${VIGIL_BENCH_REDIS_PIN:-1}
for x in redis_n redis_pairs redis_warmup; do
  [[ ${!x} =~ ^[0-9]+$ ]] || { echo "bench-agent: $x must be a whole number, not '${!x}'" >&2; exit 2; }
done
((redis_pairs > 0)) || { echo "bench-agent: VIGIL_BENCH_REDIS_PAIRS must be at least 1" >&2; exit 2; }
[[ $redis_pin == [01] ]] || { echo "bench-agent: VIGIL_BENCH_REDIS_PIN must be 0 or 1" >&2; exit 2; }
sections=${VIGIL_BENCH_SECTIONS:-"loops rss redis compile"}
out=${VIGIL_BENCH_OUT:-$repo/build/release/bench-agent}

if [[ $(id -u) -ne 0 ]]; then
  echo "bench-agent: the eBPF agent needs root; run as root" >&2
  exit 2
fi

# --- build -------------------------------------------------------------------------------------
if [[ -n ${VIGIL_BIN:-} ]]; then
  vigil=$VIGIL_BIN
  echo "== using prebuilt $vigil (VIGIL_BIN): no install-deps, no build"
else
  bash scripts/install-deps.sh test
  echo "== build: release preset, target vigil"
  cmake --preset release >/dev/null
  cmake --build --preset release --target vigil
  vigil=$repo/build/release/apps/vigil/vigil
fi
[[ -x $vigil ]] || { echo "bench-agent: no vigil binary at $vigil" >&2; exit 1; }
mkdir -p "$out/bin"
for prog in syscall_loop idle_procs; do
  gcc -O2 -Wall -Wextra -Werror -o "$out/bin/$prog" "bench/agent/$prog.c"
done
loop_bin=$out/bin/syscall_loop
results=$out/results.tsv
: >"$results"

# --- process bookkeeping: everything started here is stopped on exit --------------------------
tmp=$(mktemp -d /tmp/vigil-bench-agent.XXXXXX)
started=()  # pids of background processes we own
cleanup() {
  local pid
  for pid in "${started[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${started[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  started=()
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
forget() {  # forget a pid we have stopped ourselves
  local keep=() p
  for p in "${started[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  started=("${keep[@]}")
}

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"; }  # rep phase key value

# An explicit config, so that a /etc/vigil/vigil.yaml on this host cannot change the event set.
# Everything else keeps the embedded defaults: the syscall stream under its CPU budget (unless
# VIGIL_BENCH_SYSCALL_STREAM says otherwise), every typed event, 4 MiB ring buffer, queue 4096
# per worker with backpressure `block`, 2 workers.
syscall_stream=${VIGIL_BENCH_SYSCALL_STREAM:-default}
stream_budget=${VIGIL_BENCH_STREAM_BUDGET:-}
case $syscall_stream in
  default | budget | true | false) ;;
  *) echo "bench-agent: VIGIL_BENCH_SYSCALL_STREAM must be default, budget, true or false, not" \
       "'$syscall_stream'" >&2
     exit 2 ;;
esac
{
  printf 'log:\n  level: info\nsinks: []\nagent:\n'
  [[ $syscall_stream == default ]] || printf '  syscall_stream: %s\n' "$syscall_stream"
  [[ -z $stream_budget ]] || printf '  syscall_stream_budget: %s\n' "$stream_budget"
} >"$tmp/vigil.yaml"
# A phase may name its own budget, PHASE@BUDGET (e.g. detecting@0.005): its agent runs with
# agent.syscall_stream_budget BUDGET, so that budgets are compared within the same pairs.
for phase in $phases; do
  base=${phase%%@*}
  case $base in
    learning | detecting | before) ;;
    *) echo "bench-agent: VIGIL_BENCH_PHASES: unknown phase '$base' in '$phase' (learning," \
         "detecting, each optionally @BUDGET)" >&2
       exit 2 ;;
  esac
  [[ $phase == *@* ]] || continue
  b=${phase#*@}
  [[ $b =~ ^0?\.[0-9]+$ && $syscall_stream == default ]] || {
    echo "bench-agent: VIGIL_BENCH_PHASES: '$phase': the budget must be a number between 0 and 1" \
      "like 0.005, with VIGIL_BENCH_SYSCALL_STREAM unset (the budget mode)" >&2; exit 2; }
  { grep -v syscall_stream_budget "$tmp/vigil.yaml"; printf '  syscall_stream_budget: %s\n' "$b"; } \
    >"$tmp/vigil@$b.yaml"
done

# --- the agent ---------------------------------------------------------------------------------
agent_pid='' agent_port='' agent_log='' agent_stops=0 agent_clean=0
# agent_start NAME STATE_DIR LEARN [WAIT_FOR_DETECTION [BINARY [CONFIG]]]
agent_start() {
  local name=$1 state=$2 learn=$3 want_detect=${4:-} bin=${5:-$vigil}
  local config=${6:-$tmp/vigil.yaml}
  agent_log=$tmp/agent-$name.log
  mkdir -p "$state"
  : >"$agent_log"  # exists before the background job opens it, for the polls below
  "$bin" agent --config "$config" --state-dir "$state" --learn "$learn" \
    --sink null --quiet --metrics-listen 127.0.0.1:0 >"$tmp/agent-$name.out" 2>"$agent_log" &
  agent_pid=$!
  started+=("$agent_pid")
  local deadline=$((SECONDS + 90))
  agent_port=''
  while ((SECONDS < deadline)); do
    if ! kill -0 "$agent_pid" 2>/dev/null; then
      echo "bench-agent: the agent exited during start-up; its log:" >&2
      cat "$agent_log" >&2
      exit 1
    fi
    if [[ -z $agent_port ]]; then
      agent_port=$(sed -n 's|.*metrics and health on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' \
        "$agent_log" | head -1)
    fi
    if [[ -n $agent_port ]] && grep -q 'vigil agent on ' "$agent_log" &&
      { [[ -z $want_detect ]] || grep -q 'detection started' "$agent_log"; } &&
      curl -fsS --max-time 2 "http://127.0.0.1:$agent_port/healthz" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  echo "bench-agent: the agent was not ready within 90 s; its log:" >&2
  cat "$agent_log" >&2
  exit 1
}
# agent_stop: SIGTERM, wait (deadline 60 s), then the summary line is in $agent_log.
agent_stop() {
  kill -TERM "$agent_pid" 2>/dev/null || true
  local deadline=$((SECONDS + 60)) rc=0
  while kill -0 "$agent_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  if kill -0 "$agent_pid" 2>/dev/null; then
    echo "bench-agent: the agent did not stop within 60 s of SIGTERM; killing it" >&2
    kill -KILL "$agent_pid" 2>/dev/null || true
  fi
  wait "$agent_pid" || rc=$?
  forget "$agent_pid"
  # 143 = killed by the SIGTERM itself. Known agent bug: the metrics server's threads are
  # created before the agent blocks SIGINT/SIGTERM, so the signal usually lands on one of them
  # and kills the process instead of stopping it cleanly. The figures come from /metrics
  # snapshots taken before the stop, so they do not depend on the exit; count clean exits.
  agent_stops=$((agent_stops + 1))
  ((rc != 0)) || agent_clean=$((agent_clean + 1))
  if ((rc != 0 && rc != 143)); then
    echo "bench-agent: the agent exited $rc; its log:" >&2
    cat "$agent_log" >&2
    exit 1
  fi
}
# snap: "<time_s> <events_read> <lost_ringbuf_full> <queue_dropped> <cpu_s> <rss_kb> <hwm_kb>
#        <stream_on_s>" (stream_on_s: seconds the syscall stream was on; 0 for an agent without
#        the metric)
clk_tck=$(getconf CLK_TCK)
snap() {
  local t m cpu rss hwm
  t=$(date +%s.%N)
  m=$(curl -fsS --max-time 5 "http://127.0.0.1:$agent_port/metrics")
  # utime + stime (fields 14, 15 of /proc/PID/stat; field 2 may hold spaces, so cut after ')').
  cpu=$(sed 's/.*) //' "/proc/$agent_pid/stat" | awk -v hz="$clk_tck" '{print ($12 + $13) / hz}')
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$agent_pid/status")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$agent_pid/status")
  awk -v t="$t" -v cpu="$cpu" -v rss="$rss" -v hwm="$hwm" '
    /^vigil_events_read_total / {ev = $2 + 0}
    /^vigil_kernel_events_lost_total\{cause="ringbuf_full"\} / {lost = $2 + 0}
    /^vigil_queue_dropped_total\{cause="full"\} / {qd = $2 + 0}
    /^vigil_syscall_stream_on_seconds_total / {on = $2 + 0}
    END {printf "%s %.0f %.0f %.0f %s %s %s %.6f\n", t, ev, lost, qd, cpu, rss, hwm, on}' <<<"$m"
}
# window REP PHASE TEST "<snap before>" "<snap after>": events/s, loss, CPU per event, RSS.
window() {
  local rep=$1 phase=$2 test=$3
  read -r t0 e0 l0 q0 c0 _ _ _ <<<"$4"
  read -r t1 e1 l1 q1 c1 rss hwm _ <<<"$5"
  stream_duty "$rep" "$phase" "$test" "$4" "$5"
  local de=$((e1 - e0)) dl=$((l1 - l0)) dq=$((q1 - q0))
  record "$rep" "$phase" "$test.events" "$de"
  record "$rep" "$phase" "$test.events_per_s" "$(awk -v n="$de" -v a="$t0" -v b="$t1" \
    'BEGIN {print n / (b - a)}')"
  record "$rep" "$phase" "$test.lost_kernel" "$dl"
  record "$rep" "$phase" "$test.dropped_queue" "$dq"
  record "$rep" "$phase" "$test.loss_pct" "$(awk -v n="$de" -v l="$dl" -v q="$dq" \
    'BEGIN {print (n + l > 0) ? 100 * (l + q) / (n + l) : 0}')"
  record "$rep" "$phase" "$test.cpu_ns_per_event" "$(awk -v n="$de" -v a="$c0" -v b="$c1" \
    'BEGIN {print (n > 0) ? (b - a) * 1e9 / n : 0}')"
  record "$rep" "$phase" "$test.agent_cores" "$(awk -v a="$c0" -v b="$c1" -v x="$t0" -v y="$t1" \
    'BEGIN {print (b - a) / (y - x)}')"
  record "$rep" "$phase" "$test.rss_mb" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')"
  record "$rep" "$phase" "$test.hwm_mb" "$(awk -v k="$hwm" 'BEGIN {print k / 1024}')"
}
# stream_duty REP PHASE TEST "<snap before>" "<snap after>": the share of the time between the two
# snapshots that the agent's syscall stream was on, as TEST.stream_duty.
stream_duty() {
  local t0 o0 t1 o1
  read -r t0 _ _ _ _ _ _ o0 <<<"$4"
  read -r t1 _ _ _ _ _ _ o1 <<<"$5"
  record "$1" "$2" "$3.stream_duty" "$(awk -v a="$o0" -v b="$o1" -v x="$t0" -v y="$t1" \
    'BEGIN {print (y > x) ? (b - a) / (y - x) : 0}')"
}
# loops2 REP PHASE COUNT: two getppid loops at once; records the mean of their ns (and CPU ns)
# per call as getppid2.ns / getppid2.cpu_ns (exits when either fails).
loops2() {
  local a=$tmp/loop-a.out b=$tmp/loop-b.out pa pb
  "$loop_bin" getppid "$3" >"$a" &
  pa=$!
  "$loop_bin" getppid "$3" >"$b" &
  pb=$!
  wait "$pa" || { echo "bench-agent: a getppid loop failed" >&2; exit 1; }
  wait "$pb" || { echo "bench-agent: a getppid loop failed" >&2; exit 1; }
  record "$1" "$2" getppid2.ns "$(cat "$a" "$b" | awk '{s += $4} END {print s / NR}')"
  record "$1" "$2" getppid2.cpu_ns "$(cat "$a" "$b" | awk '{s += $5} END {print s / NR}')"
}
# loop REP PHASE MODE COUNT: runs the loop, records its ns per iteration (exits on failure).
loop() {
  local line
  line=$("$loop_bin" "$3" "$4")
  record "$1" "$2" "$3.ns" "$(awk '{print $4}' <<<"$line")"
  record "$1" "$2" "$3.cpu_ns" "$(awk '{print $5}' <<<"$line")"
}

# Detection needs baselines. Learn them once, in a state dir of their own, from this host with
# the loops running (so the loop programs get baselines of their own), then every detection run
# starts from a copy of that state dir ("reusing the baselines ... detection started").
if [[ $phases == *detecting* ]]; then
  echo "== learning baselines for the detection phase (learn 15 s)"
  agent_start learn "$tmp/state-learn" 15s
  for _ in 1 2 3; do
    "$loop_bin" openclose 20000 >/dev/null
    "$loop_bin" getppid 20000 >/dev/null
    sleep 3
  done
  deadline=$((SECONDS + 120))
  until grep -q 'detection started' "$agent_log"; do
    ((SECONDS < deadline)) || { echo "bench-agent: learning did not end; log:" >&2;
                                cat "$agent_log" >&2; exit 1; }
    sleep 0.5
  done
  agent_stop
  grep -o 'learned [0-9]* windows; [0-9]* programs have their own model' "$agent_log" || true
fi
agent_state() {  # agent_state PHASE REP -> a fresh state dir for that run
  local d=$tmp/state-$1-$2
  rm -rf "$d"
  if [[ ${1%%@*} == detecting ]]; then cp -a "$tmp/state-learn" "$d"; else mkdir -p "$d"; fi
  echo "$d"
}
start_phase() {  # start_phase PHASE[@BUDGET] REP
  local base=${1%%@*} config=$tmp/vigil.yaml bin=$vigil detect=''
  [[ $1 != *@* ]] || config=$tmp/vigil@${1#*@}.yaml
  [[ $base != before ]] || bin=$before_bin
  [[ $base != detecting ]] || detect=detect
  agent_start "$1-$2" "$(agent_state "$1" "$2")" 1h "$detect" "$bin" "$config"
}

echo "== conditions: $(nproc) cores, agent.syscall_stream $syscall_stream, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
  "other vigil processes: $(pgrep -c -x vigil || true)"
record 0 - loadavg_start "$(cut -d' ' -f1 /proc/loadavg)"

# The phases of repetition REP in the order they run: as given on odd repetitions, reversed on
# even ones, so that before/after (and learning/detecting) alternate and neither always runs
# first, when the machine's load drifts during a run.
phase_order() {
  if (($1 % 2 == 1)); then
    echo "$phases"
  else
    echo "$phases" | awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n")}'
  fi
}

# --- 1 + 2: syscall loops, agent throughput and loss -------------------------------------------
for rep in $(seq "$reps"); do
  [[ $sections == *loops* ]] || break
  echo "== loops, repetition $rep/$reps: open/close x $oc_count, getppid x $gp_count"
  loop "$rep" none openclose "$oc_count"
  loop "$rep" none getppid "$gp_count"
  loops2 "$rep" none "$gp_count"
  for phase in $(phase_order "$rep"); do
    start_phase "$phase" "$rep"
    s0=$(snap)
    loop "$rep" "$phase" openclose "$oc_count"
    sleep 0.3  # the consumer polls the ring at least every 10 ms
    s1=$(snap)
    loop "$rep" "$phase" getppid "$gp_count"
    sleep 0.3
    s2=$(snap)
    loops2 "$rep" "$phase" "$gp_count"
    sleep 0.3
    s3=$(snap)
    window "$rep" "$phase" openclose "$s0" "$s1"
    window "$rep" "$phase" getppid "$s1" "$s2"
    window "$rep" "$phase" getppid2 "$s2" "$s3"
    agent_stop
    summary=$(grep "^vigil agent: .* events in " "$agent_log" | tail -1 || true)
    [[ -z $summary ]] || record "$rep" "$phase" summary "${summary#vigil agent: }"
  done
  tail -n +1 "$results" | awk -F'\t' -v r="$rep" '$1 == r && $3 ~ /\.ns$/ {
    printf "   %-10s %-14s %s ns\n", $2, $3, $4}'
done

# --- 3: RSS with many live processes -----------------------------------------------------------
if ((nprocs > 0)) && [[ $sections == *rss* ]]; then
  for rep in $(seq "$reps"); do
    for phase in $(phase_order "$rep"); do
      echo "== RSS, repetition $rep/$reps, $phase: $nprocs idle processes for $settle s"
      start_phase "$phase" "rss-$rep"
      read -r _ _ _ _ _ rss0 _ _ <<<"$(snap)"
      fifo=$tmp/procs.fifo
      rm -f "$fifo" && mkfifo "$fifo"
      "$out/bin/idle_procs" "$nprocs" >"$fifo" &
      procs_pid=$!
      started+=("$procs_pid")
      read -r word count <"$fifo" || true
      [[ $word == ready && $count == "$nprocs" ]] || {
        echo "bench-agent: idle_procs started ${count:-0} of $nprocs" >&2; exit 1; }
      sleep "$settle"
      read -r _ _ _ _ _ rss hwm _ <<<"$(snap)"
      tracked=$(curl -fsS --max-time 5 "http://127.0.0.1:$agent_port/healthz" |
        sed -n 's/.*"processes_tracked":\([0-9]*\).*/\1/p')
      kill -TERM "$procs_pid"
      wait "$procs_pid" || { echo "bench-agent: idle_procs failed" >&2; exit 1; }
      forget "$procs_pid"
      agent_stop
      record "rss-$rep" "$phase" rss_idle_mb "$(awk -v k="$rss0" 'BEGIN {print k / 1024}')"
      record "rss-$rep" "$phase" rss_procs_mb "$(awk -v k="$rss" 'BEGIN {print k / 1024}')"
      record "rss-$rep" "$phase" hwm_procs_mb "$(awk -v k="$hwm" 'BEGIN {print k / 1024}')"
      record "rss-$rep" "$phase" processes_tracked "${tracked:-0}"
    done
  done
fi

# --- 4: redis-benchmark ------------------------------------------------------------------------
redis_skip=''
if ((redis_n > 0)) && [[ $sections == *redis* ]]; then
  if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "== installing redis-server and redis-tools (Debian) for the redis benchmark"
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y --no-install-recommends \
      redis-server redis-tools >"$tmp/apt.log" 2>&1 || true
  fi
  if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    redis_skip="redis-server/redis-benchmark unavailable (apt-get install failed; see above)"
  fi
else
  redis_skip="VIGIL_BENCH_REDIS=0 or not in VIGIL_BENCH_SECTIONS"
fi
if [[ -z $redis_skip ]]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Pinning (VIGIL_BENCH_REDIS_PIN=1, the default, with 2 CPUs or more): redis-server on CPU 0,
  # redis-benchmark on CPU 1, the agent on neither set (it may run anywhere, as on a real host).
  server_pin=() bench_pin=()
  if [[ $redis_pin == 1 ]] && (($(nproc) >= 2)); then
    server_pin=(taskset -c 0) bench_pin=(taskset -c 1)
  fi
  "${server_pin[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
  redis_pid=$!
  started+=("$redis_pid")
  deadline=$((SECONDS + 30))
  until redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; do
    ((SECONDS < deadline)) || { echo "bench-agent: redis-server did not start" >&2;
                                cat "$tmp/redis.log" >&2; exit 1; }
    sleep 0.2
  done
  # redis_cpu: redis-server's CPU time so far (user + system, which holds the kernel's syscall
  # path and the BPF programs run in its context), in seconds
  redis_cpu() {
    sed 's/.*) //' "/proc/$redis_pid/stat" | awk -v hz="$clk_tck" '{print ($12 + $13) / hz}'
  }
  # redis_rps: one timed run of SET then GET, prints "set_rps get_rps cpu_us_per_request": the
  # last is the CPU time redis-server and redis-benchmark used per request (user + system), a
  # figure that other load on the machine moves much less than the rates
  redis_rps() {
    local c0 c1 client
    c0=$(redis_cpu)
    # `times` in the subshell: the CPU of its reaped children, i.e. redis-benchmark's
    client=$( { "${bench_pin[@]}" redis-benchmark -h 127.0.0.1 -p "$port" -n "$redis_n" -c 50 \
                -t set,get --csv 2>/dev/null >"$tmp/redis.csv"; times; } |
              awk 'NR == 2 {gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4}')
    c1=$(redis_cpu)
    awk -F'"' -v a="$c0" -v b="$c1" -v c="$client" -v n="$redis_n" '
      $2 == "SET" {s = $4} $2 == "GET" {g = $4}
      END {print s, g, (b - a + c) * 1e6 / (2 * n)}' "$tmp/redis.csv"
  }
  # agent_wakeups: voluntary context switches of all the agent's threads so far (each is a wait
  # that ended: a wake-up; a thread that ended meanwhile no longer counts, hence the 2>/dev/null)
  agent_wakeups() {
    cat /proc/"$agent_pid"/task/*/status 2>/dev/null |
      awk '/^voluntary_ctxt_switches:/ {n += $2} END {print n + 0}'
  }
  # redis_warm: SET requests for $redis_warmup seconds (untimed), so that a just-started agent's
  # cycler has measured the load and left its first on-period before the timed run, and redis'
  # memory is in the same state with and without the agent.
  redis_warm() {
    ((redis_warmup > 0)) || return 0
    local rc=0
    timeout "$redis_warmup" "${bench_pin[@]}" redis-benchmark -h 127.0.0.1 -p "$port" \
      -n 1000000000 -c 50 -t set -q >/dev/null 2>&1 || rc=$?
    ((rc == 0 || rc == 124)) || { echo "bench-agent: redis-benchmark (warm-up) failed: $rc" >&2
                                  exit 1; }
  }
  for rep in $(seq "$reps"); do
    echo "== redis-benchmark, repetition $rep/$reps: $redis_pairs pairs of without/with, SET and" \
      "GET x $redis_n each, 50 clients, ${redis_warmup} s warm-up, load $(cut -d' ' -f1 /proc/loadavg)"
    for pair in $(seq "$redis_pairs"); do
      id=$rep.$pair  # each pair is a unit of its own: ratios are taken within it
      # without first in odd pairs of odd repetitions, etc.: neither side always runs first
      if (((rep + pair) % 2 == 0)); then order="none $(phase_order "$rep")"
      else order="$(phase_order "$rep") none"; fi
      for phase in $order; do
        if [[ $phase == none ]]; then
          redis_warm
          read -r s g c <<<"$(redis_rps)"
        else
          start_phase "$phase" "redis-$id"
          s0=$(snap)
          redis_warm
          s1=$(snap)
          w1=$(agent_wakeups)
          read -r s g c <<<"$(redis_rps)"
          w2=$(agent_wakeups)
          s2=$(snap)
          stream_duty "$id" "$phase" redis_start "$s0" "$s1"
          stream_duty "$id" "$phase" redis "$s1" "$s2"
          read -r _ _ _ _ a0 _ _ _ <<<"$s1"
          read -r _ _ _ _ a1 _ _ _ <<<"$s2"
          record "$id" "$phase" redis.agent_cpu_us "$(awk -v a="$a0" -v b="$a1" -v n="$redis_n" \
            'BEGIN {print (b - a) * 1e6 / (2 * n)}')"
          read -r t1 _ <<<"$s1"
          read -r t2 _ <<<"$s2"
          record "$id" "$phase" redis.agent_wakeups_per_s "$(awk -v a="$w1" -v b="$w2" -v t="$t1" \
            -v u="$t2" 'BEGIN {print (b - a) / (u - t)}')"
          agent_stop
        fi
        [[ -n $s && -n $g ]] || { echo "bench-agent: redis-benchmark gave no figures" >&2; exit 1; }
        record "$id" "$phase" redis.set_rps "$s"
        record "$id" "$phase" redis.get_rps "$g"
        record "$id" "$phase" redis.cpu_us "$c"
      done
    done
  done
  redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$redis_pid" 2>/dev/null || true
  forget "$redis_pid"
fi
# --- 5: a compile of a C project ----------------------------------------------------------------
# GNU binutils' sources come with Debian (binutils-source: /usr/src/binutils/binutils-*.tar.xz).
# The tree is unpacked and configured, and built once, outside the timed runs; every timed run
# cleans the C library part of binutils (libiberty, zlib, libsframe, bfd: about 200 C files;
# untimed) and builds it again with `make -j$(nproc) all-bfd` (timed, wall clock).
compile_skip=''
compile_tar=''
if [[ $sections == *compile* ]]; then
  compile_tar=$(ls /usr/src/binutils/binutils-*.tar.xz 2>/dev/null | head -1 || true)
  if [[ -z $compile_tar ]]; then
    echo "== installing binutils-source (Debian) for the compile benchmark"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends binutils-source \
      >"$tmp/apt-compile.log" 2>&1 || true
    compile_tar=$(ls /usr/src/binutils/binutils-*.tar.xz 2>/dev/null | head -1 || true)
  fi
  [[ -n $compile_tar ]] ||
    compile_skip="binutils-source unavailable (apt-get install binutils-source failed)"
else
  compile_skip="not in VIGIL_BENCH_SECTIONS"
fi
if [[ -z $compile_skip ]]; then
  echo "== compile: unpacking, configuring and building $(basename "$compile_tar") once (untimed)"
  mkdir -p "$tmp/compile/build"
  tar -C "$tmp/compile" -xf "$compile_tar"
  compile_src=$(ls -d "$tmp"/compile/binutils-*/)
  compile_dirs=(bfd libiberty zlib libsframe)
  if ! (cd "$tmp/compile/build" && "$compile_src/configure" --disable-nls --disable-werror \
          --disable-gdb --disable-gdbserver --disable-gprofng --disable-gold --disable-sim \
          --disable-readline --disable-libdecnumber &&
        make -j"$(nproc)" all-bfd) >"$tmp/compile.log" 2>&1; then
    echo "bench-agent: configuring or building binutils failed; the last lines of its log:" >&2
    tail -20 "$tmp/compile.log" >&2
    exit 1
  fi
  # compile REP PHASE: one timed build, recorded as compile.s (exits when the build fails)
  compile() {
    local t0 t1
    make -C "$tmp/compile/build" "${compile_dirs[@]/#/clean-}" >/dev/null 2>&1
    t0=$(date +%s.%N)
    if ! make -C "$tmp/compile/build" -j"$(nproc)" all-bfd >"$tmp/compile.log" 2>&1; then
      echo "bench-agent: building binutils' bfd failed; the last lines of its log:" >&2
      tail -20 "$tmp/compile.log" >&2
      exit 1
    fi
    t1=$(date +%s.%N)
    record "$1" "$2" compile.s "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')"
  }
  for rep in $(seq "$reps"); do
    echo "== compile, repetition $rep/$reps: make -j$(nproc) all-bfd (binutils)"
    compile "$rep" none
    for phase in $(phase_order "$rep"); do
      start_phase "$phase" "compile-$rep"
      s0=$(snap)
      compile "$rep" "$phase"
      s1=$(snap)
      stream_duty "$rep" "$phase" compile "$s0" "$s1"
      agent_stop
    done
  done
fi
record 0 - loadavg_end "$(cut -d' ' -f1 /proc/loadavg)"
record 0 - agent_stops "$agent_stops"
record 0 - agent_clean_stops "$agent_clean"

# --- summary -----------------------------------------------------------------------------------
python3 - "$results" "$reps" "$phases" "$redis_skip" "$oc_count" "$gp_count" "$nprocs" \
  "$settle" "$compile_skip" "$redis_pairs" "$redis_pin" <<'PY'
import collections
import os
import statistics
import sys

path, reps, phases, redis_skip, oc, gp, nprocs, settle, compile_skip, redis_pairs, redis_pin = \
    sys.argv[1:]
phases = phases.split()
v = collections.defaultdict(dict)  # (phase, key) -> {rep: value}
text = {}
for line in open(path):
    rep, phase, key, value = line.rstrip("\n").split("\t")
    try:
        v[(phase, key)][rep] = float(value)
    except ValueError:
        text[(rep, phase, key)] = value

def med(phase, key):
    d = v.get((phase, key))
    return statistics.median(d.values()) if d else None

def ratio(phase, key, invert=False):  # median over repetitions of (with / without) in that rep
    a, b = v.get((phase, key), {}), v.get(("none", key), {})
    rs = [(b[r] / a[r]) if invert else (a[r] / b[r]) for r in a if r in b and a[r] and b[r]]
    return (statistics.median(rs), min(rs), max(rs)) if rs else None

def si(x):
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{suffix}"
    return f"{x:.1f}"

def verdict(ok):
    return "met" if ok else "MISSED"

print(f"\n== vigil agent overhead: medians of {reps} repetitions; ratios are with/without in the "
      "same repetition (median [min..max])")
print(f"load average: {v[('-', 'loadavg_start')]['0']:.1f} at start, "
      f"{v[('-', 'loadavg_end')]['0']:.1f} at end")
cpu_notes = []
for loop, count in (("openclose", oc), ("getppid", gp), ("getppid2", gp)):
    unit = "pair" if loop == "openclose" else "call"
    calls = 2 if loop == "openclose" else 1
    base = med("none", f"{loop}.ns")
    if base is None:
        continue
    name = "two getppid loops at once" if loop == "getppid2" else f"{loop} loop"
    print(f"\n{name} ({count} iterations each): without agent {base:.0f} ns/{unit}")
    print(f"  {'phase':<10} {'ns/' + unit:>9} {'ratio':>22} {'ns/syscall':>10} {'events/s':>9} "
          f"{'loss %':>7} {'lost':>8} {'qdrop':>6} {'cpu ns/ev':>9} {'cores':>5} {'rss MB':>6}")
    for p in phases:
        w, r = med(p, f"{loop}.ns"), ratio(p, f"{loop}.ns")
        if w is None or r is None:
            continue
        per = [(v[(p, f"{loop}.ns")][k] - v[("none", f"{loop}.ns")][k]) / calls
               for k in v[(p, f"{loop}.ns")] if k in v[("none", f"{loop}.ns")]]
        rc = ratio(p, f"{loop}.cpu_ns")
        if rc:
            cper = [(v[(p, f"{loop}.cpu_ns")][k] - v[("none", f"{loop}.cpu_ns")][k]) / calls
                    for k in v[(p, f"{loop}.cpu_ns")] if k in v[("none", f"{loop}.cpu_ns")]]
            cpu_notes.append(f"  {loop} {p}: loop CPU {med(p, loop + '.cpu_ns'):.0f} ns/{unit} "
                             f"(without {med('none', loop + '.cpu_ns'):.0f}): ratio {rc[0]:.2f}x "
                             f"[{rc[1]:.2f}..{rc[2]:.2f}], {statistics.median(cper):.0f} ns of "
                             "CPU per syscall in the loop's own context")
        print(f"  {p:<10} {w:>9.0f} {r[0]:>7.2f}x [{r[1]:.2f}..{r[2]:.2f}] "
              f"{statistics.median(per):>10.0f} {si(med(p, loop + '.events_per_s')):>9} "
              f"{med(p, loop + '.loss_pct'):>7.3f} {med(p, loop + '.lost_kernel'):>8.0f} "
              f"{med(p, loop + '.dropped_queue'):>6.0f} {med(p, loop + '.cpu_ns_per_event'):>9.0f} "
              f"{med(p, loop + '.agent_cores'):>5.2f} {med(p, loop + '.rss_mb'):>6.1f}")

if cpu_notes:
    print("\nloop CPU time (CLOCK_PROCESS_CPUTIME_ID: the tracing programs' cost, no waiting for a "
          "core)")
    print("\n".join(cpu_notes))

def pair(p, q, key):  # median over repetitions of (phase p / phase q), both in one repetition
    a, b = v.get((p, key), {}), v.get((q, key), {})
    rs = [a[r] / b[r] for r in a if r in b and a[r] and b[r]]
    return (statistics.median(rs), min(rs), max(rs)) if rs else None

if "before" in phases and "learning" in phases:
    print("\nthis build (learning) / the VIGIL_BENCH_BEFORE_BIN build, same repetitions:")
    for key, what in (("openclose.ns", "open/close wall"), ("openclose.cpu_ns", "open/close loop CPU"),
                      ("getppid.ns", "getppid wall"), ("getppid.cpu_ns", "getppid loop CPU"),
                      ("openclose.cpu_ns_per_event", "agent CPU per event (open/close)"),
                      ("getppid.cpu_ns_per_event", "agent CPU per event (getppid)"),
                      ("getppid2.events_per_s", "events/s (two getppid loops)"),
                      ("getppid2.cpu_ns_per_event", "agent CPU per event (two loops)"),
                      ("redis.set_rps", "redis SET req/s"), ("redis.get_rps", "redis GET req/s"),
                      ("compile.s", "binutils all-bfd make seconds"),
                      ("rss_procs_mb", "RSS with processes")):
        r = pair("learning", "before", key)
        if r:
            print(f"  {what:<34} {r[0]:.3f}x [{r[1]:.3f}..{r[2]:.3f}]")

duty_rows = []
for test, what in (("openclose", "open/close loop"), ("getppid", "one getppid loop"),
                   ("getppid2", "two getppid loops"),
                   ("redis_start", "redis warm-up (start)"), ("redis", "redis-benchmark (timed)"),
                   ("compile", "compile of a C project")):
    cells = []
    for p in phases:
        d = v.get((p, f"{test}.stream_duty"))
        if d:
            cells.append(f"{p} {100 * statistics.median(d.values()):.1f} % "
                         f"[{100 * min(d.values()):.1f}..{100 * max(d.values()):.1f}]")
    if cells:
        duty_rows.append(f"  {what:<24} " + "; ".join(cells))
if duty_rows:
    print("\nsyscall stream on (share of the measurement's time, from the agent's "
          "vigil_syscall_stream_on_seconds_total; median [min..max])")
    print("\n".join(duty_rows))

if med(phases[0], "rss_procs_mb") is not None:
    print(f"\nRSS with {nprocs} live idle processes after {settle} s (VmRSS of the agent)")
    for p in phases:
        print(f"  {p:<10} idle {med(p, 'rss_idle_mb'):.1f} MB -> with processes "
              f"{med(p, 'rss_procs_mb'):.1f} MB (peak {med(p, 'hwm_procs_mb'):.1f} MB), "
              f"processes tracked {med(p, 'processes_tracked'):.0f}")

if redis_skip:
    print(f"\nredis-benchmark: SKIPPED ({redis_skip})")
else:
    npairs = len(v.get(("none", "redis.set_rps"), {}))
    print(f"\nredis-benchmark (loopback, 50 clients, {npairs} without/with pairs: "
          f"{reps} repetitions x {redis_pairs}, server and client pinned: {redis_pin}): "
          "requests/s; slowdown = without/with within each pair, median [quartiles] (min..max)")
    for t in ("set", "get"):
        base = v.get(("none", f"redis.{t}_rps"), {})
        spread = (100 * (max(base.values()) - min(base.values())) / statistics.median(base.values())
                  if base else 0)
        print(f"  {t.upper()}: without {si(med('none', f'redis.{t}_rps'))} (range "
              f"{spread:.0f} % of the median)", end="")
        for p in phases:
            a = v.get((p, f"redis.{t}_rps"), {})
            rs = sorted(base[k] / a[k] for k in a if k in base and a[k] and base[k])
            if rs:
                q = statistics.quantiles(rs, n=4, method="inclusive") if len(rs) > 1 else [rs[0]] * 3
                print(f"; {p} {si(med(p, f'redis.{t}_rps'))} (slowdown {q[1]:.3f}x "
                      f"[{q[0]:.3f}..{q[2]:.3f}] ({rs[0]:.3f}..{rs[-1]:.3f}))", end="")
        print()
    base = v.get(("none", "redis.cpu_us"), {})
    if base:
        print(f"  CPU per request, redis-server + redis-benchmark (user + system; load moves it "
              f"far less than the rates): without {med('none', 'redis.cpu_us'):.2f} us")
        for p in phases:
            a, ag = v.get((p, "redis.cpu_us"), {}), v.get((p, "redis.agent_cpu_us"), {})
            rs = sorted(a[k] / base[k] for k in a if k in base and base[k])
            ts = sorted((a[k] + ag[k]) / base[k] for k in a if k in base and k in ag and base[k])
            if rs and ts:
                print(f"    {p}: {med(p, 'redis.cpu_us'):.2f} us ({statistics.median(rs):.3f}x "
                      f"({rs[0]:.3f}..{rs[-1]:.3f})); with the agent's own CPU per request "
                      f"({med(p, 'redis.agent_cpu_us'):.2f} us): {statistics.median(ts):.3f}x "
                      f"({ts[0]:.3f}..{ts[-1]:.3f})")
    if any(med(p, "redis.agent_wakeups_per_s") is not None for p in phases):
        print("  the agent's wake-ups (voluntary context switches of all its threads) per second "
              "during the timed runs, median (min..max):")
        for p in phases:
            w = sorted(v.get((p, "redis.agent_wakeups_per_s"), {}).values())
            if w:
                print(f"    {p}: {statistics.median(w):.0f} ({w[0]:.0f}..{w[-1]:.0f})")

if compile_skip:
    print(f"\ncompile of a C project: SKIPPED ({compile_skip})")
else:
    print(f"\ncompile of a C project (binutils' bfd and the libraries it needs, "
          f"make -j{os.cpu_count()} all-bfd): seconds")
    print(f"  without {med('none', 'compile.s'):.2f} s", end="")
    for p in phases:
        r = ratio(p, "compile.s")
        if r:
            print(f"; {p} {med(p, 'compile.s'):.2f} s (slowdown {r[0]:.3f}x "
                  f"[{r[1]:.3f}..{r[2]:.3f}])", end="")
    print()

print("\n== targets (issue 3)")
for p in phases:
    r = ratio(p, "openclose.ns")
    if r:
        print(f"  open/close slowdown <= 1.4x ({p}): {r[0]:.2f}x  {verdict(r[0] <= 1.4)}")
    for loop, what in (("openclose", "open/close"), ("getppid", "one getppid loop"),
                       ("getppid2", "two getppid loops")):
        eps, loss = med(p, f"{loop}.events_per_s"), med(p, f"{loop}.loss_pct")
        if eps is not None:
            print(f"  >= 1M events/s with < 0.1% loss, {what} ({p}): {si(eps)}/s, "
                  f"{loss:.3f}% lost  {verdict(eps >= 1e6 and loss < 0.1)}")
    if med(p, "openclose.cpu_ns_per_event") is not None:
        c = med(p, "openclose.cpu_ns_per_event")
        print(f"  user-space CPU <= 0.4 us/event ({p}): {c / 1000:.2f} us  {verdict(c <= 400)}")
    rss = med(p, "rss_procs_mb")
    if rss is not None:
        print(f"  RSS <= 48 MB with {nprocs} processes ({p}): {rss:.1f} MB  {verdict(rss <= 48)}")
    for t in ("set", "get"):
        r = ratio(p, f"redis.{t}_rps", invert=True)
        if r:
            print(f"  redis-benchmark {t.upper()} slowdown <= 5% ({p}): {100 * (r[0] - 1):.1f}%  "
                  f"{verdict(r[0] <= 1.05)}")
    r = ratio(p, "compile.s")
    if r:
        print(f"  compile slowdown <= 5% ({p}): {100 * (r[0] - 1):.1f}%  {verdict(r[0] <= 1.05)}")
print(f"\nagent stops: {v[('-', 'agent_clean_stops')]['0']:.0f} of "
      f"{v[('-', 'agent_stops')]['0']:.0f} clean on SIGTERM (exit 0 with its summary line); the "
      "rest were killed by the signal (exit 143)")
print("agent exit summaries:")
for (rep, p, key), s in sorted(text.items()):
    print(f"  rep {rep} {p}: {s}")
PY
echo "results: $results"
