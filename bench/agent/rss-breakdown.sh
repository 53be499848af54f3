#!/usr/bin/env bash
# What an agent's resident memory is made of (docs/benchmarks.md, "Agent memory: what the RSS
# is"): starts `vigil agent` (learning, null sink, the bench's explicit config) with its own
# state dir, waits until it serves /healthz, starts COUNT idle processes (bench/agent/idle_procs),
# waits SETTLE seconds, then prints VmRSS and /proc/PID/smaps summed by kind of mapping: the
# heap arenas (main [heap] and the threads' arenas), BPF maps (the ring buffer among them),
# thread stacks, other anonymous memory, and file-backed pages by library. With gdb installed it
# also prints glibc's malloc_stats() (bytes the allocator holds per arena against bytes in use).
#
# Usage: bench/agent/rss-breakdown.sh VIGIL_BINARY [COUNT] [SETTLE] [-- EXTRA AGENT ARGS...]
#        (COUNT default 1000, SETTLE default 20 s). Needs root (the eBPF sensor).
# Environment: VIGIL_RSS_CONFIG_EXTRA: top-level YAML appended to the agent's config, with \n for
# newlines (e.g. "pipeline:\n  queue:\n    capacity: 1024"), to try a setting.
set -euo pipefail
bin=${1:?usage: rss-breakdown.sh VIGIL_BINARY [COUNT] [SETTLE] [-- AGENT ARGS...]}
count=${2:-1000}
settle=${3:-20}
shift $(($# < 3 ? $# : 3))
[[ ${1:-} == -- ]] && shift
extra_args=("$@")
here=$(cd "$(dirname "$0")" && pwd)
[[ $(id -u) -eq 0 ]] || { echo "rss-breakdown: the eBPF agent needs root" >&2; exit 2; }
[[ -x $bin ]] || { echo "rss-breakdown: $bin is not executable" >&2; exit 2; }
tmp=$(mktemp -d /tmp/vigil-rss.XXXXXX)
pid='' procs=''
cleanup() {
  [[ -z $procs ]] || { kill -TERM "$procs" 2>/dev/null || true; wait "$procs" 2>/dev/null || true; }
  [[ -z $pid ]] || { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT
gcc -O2 -Wall -Wextra -Werror -o "$tmp/idle_procs" "$here/idle_procs.c"
printf 'log:\n  level: info\nsinks: []\nagent:\n  syscall_stream: true\n%b\n' \
  "${VIGIL_RSS_CONFIG_EXTRA:-}" >"$tmp/vigil.yaml"
"$bin" agent --config "$tmp/vigil.yaml" --state-dir "$tmp/state" --learn 1h --sink null --quiet \
  --metrics-listen 127.0.0.1:0 "${extra_args[@]}" >"$tmp/agent.out" 2>"$tmp/agent.log" &
pid=$!
port=''
for _ in $(seq 450); do
  kill -0 "$pid" 2>/dev/null || { echo "rss-breakdown: the agent exited:" >&2; cat "$tmp/agent.log" >&2; exit 1; }
  [[ -n $port ]] || port=$(sed -n 's|.*metrics and health on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' \
    "$tmp/agent.log" | head -1)
  [[ -n $port ]] && curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
[[ -n $port ]] || { echo "rss-breakdown: the agent did not start" >&2; cat "$tmp/agent.log" >&2; exit 1; }
sleep 2
idle=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
mkfifo "$tmp/fifo"
"$tmp/idle_procs" "$count" >"$tmp/fifo" &
procs=$!
read -r _ _ <"$tmp/fifo" || true
sleep "$settle"
tracked=$(curl -fsS --max-time 5 "http://127.0.0.1:$port/healthz" |
  sed -n 's/.*"processes_tracked":\([0-9]*\).*/\1/p')
echo "agent pid $pid: VmRSS idle $((idle / 1024)).$((idle % 1024 * 10 / 1024)) MB;" \
  "with $count idle processes (${settle} s, ${tracked:-?} tracked):"
grep -E '^(VmRSS|RssAnon|RssFile|RssShmem|VmHWM|Threads)' "/proc/$pid/status"
# smaps: one line per mapping "start-end perms offset dev inode [name]", then "Rss: N kB".
# Thread stacks: an anonymous rw mapping right after a small guard (---p); the heaps of glibc's
# thread arenas: anonymous rw mappings aligned to 64 MiB.
python3 - "/proc/$pid/smaps" <<'PY'
import collections, re, sys
rss = collections.Counter()
kind, prev_guard, prev_end = None, False, 0
for line in open(sys.argv[1]):
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+ *(.*)$", line)
    if m:
        lo, hi, perms, name = int(m[1], 16), int(m[2], 16), m[3], m[4].strip()
        size = (hi - lo) // 1024
        if name == "[heap]": kind = "heap (main arena)"
        elif "bpf" in name: kind = "BPF maps (" + name + ")"
        elif name.startswith("[stack"): kind = "main thread stack"
        elif name.startswith("/"): kind = "file " + name.rsplit("/", 1)[1]
        elif name: kind = name
        elif prev_guard and prev_end == lo and perms == "rw-p": kind = "thread stacks"
        elif perms == "rw-p" and lo % (64 << 20) == 0:  # glibc aligns each arena heap to 64 MiB
            kind = "malloc thread arenas"
        else: kind = "anonymous (other)"
        prev_guard = perms == "---p" and not name and size <= 64
        prev_end = hi
    elif line.startswith("Rss:"):
        rss[kind] += int(line.split()[1])
for k, v in sorted(rss.items(), key=lambda kv: -kv[1])[:40]:
    if v: print(f"{v:8d} kB  {k}")
print(f"{sum(rss.values()):8d} kB  total")
PY
if command -v gdb >/dev/null; then
  echo "-- malloc_stats() (per arena: system bytes = held, in use bytes = allocated):"
  gdb -p "$pid" -batch -ex 'call (void)malloc_stats()' >/dev/null 2>&1 || true
  sleep 0.5
  sed -n '/^Arena\|system bytes\|in use bytes\|Total (incl. mmap)\|max mmap/p' "$tmp/agent.log" |
    tail -n 60
fi
