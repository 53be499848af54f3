# Sourced after bench/hub/pg_server.sh: starts a throwaway nats-server with JetStream (Debian's,
# on a free loopback port, its store in pg_dir) and sets nats_pid and nats_url. The EXIT trap
# stops it, then calls pg_cleanup.
command -v nats-server >/dev/null || { echo "nats-server missing: bash scripts/install-deps.sh test" >&2; exit 2; }
nats_port=$(free_port)
nats_pid=
nats_cleanup() {
  if [[ -n $nats_pid ]]; then kill -TERM "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
  pg_cleanup
}
trap nats_cleanup EXIT
mkdir -p "$pg_dir/nats"
nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$pg_dir/nats/js" -l "$pg_dir/nats/server.log" &
nats_pid=$!
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/"$nats_port") 2>/dev/null && break
  sleep 0.1
done
nats_url=nats://127.0.0.1:$nats_port
# nats-server's CPU seconds so far (user + system), for CPU per finding.
nats_cpu_seconds() {
  local f
  read -r -a f <<<"$(sed 's/.*) //' "/proc/$nats_pid/stat")"
  python3 -c "print(($((f[11] + f[12]))) / $(getconf CLK_TCK))"
}
