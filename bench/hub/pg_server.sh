# Sourced by the hub benchmarks: starts a throwaway PostgreSQL 15 (initdb + postgres from
# /usr/lib/postgresql/15/bin, as the `postgres` user when run as root, in a private temporary
# directory on a free loopback port, with fsync and synchronous_commit on as in production) and
# stops it on exit. Sets: pg_bin, pg_dir, pg_port; pg_newdb NAME creates a database and prints
# its URI. PG_SERVER_OPTS adds server options (e.g. "-c shared_preload_libraries=pg_stat_statements").
# Needs `set -euo pipefail` and sets the EXIT trap (pg_cleanup; callers that have their
# own cleanup call pg_cleanup from it).
pg_bin=/usr/lib/postgresql/15/bin
[[ -x $pg_bin/postgres ]] || { echo "$pg_bin/postgres missing: bash scripts/install-deps.sh test" >&2; exit 2; }
pg_dir=$(mktemp -d /tmp/vigil-pg-bench-XXXXXX)
pg_as=()
if [[ $(id -u) -eq 0 ]]; then
  chown postgres:postgres "$pg_dir"
  pg_as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
pg_pid=
pg_cleanup() {
  if [[ -n $pg_pid ]]; then kill -INT "$pg_pid" 2>/dev/null || true; wait "$pg_pid" 2>/dev/null || true; fi
  rm -rf "$pg_dir"
}
trap pg_cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
env -i LANG=C PATH=/usr/bin:/bin "${pg_as[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust \
  -E UTF8 --locale=C --no-instructions >"$pg_dir/initdb.log" 2>&1
env -i LANG=C PATH=/usr/bin:/bin "${pg_as[@]}" "$pg_bin/postgres" -D "$pg_dir/data" -h 127.0.0.1 \
  -p "$pg_port" -k "$pg_dir" ${PG_SERVER_OPTS:-} >"$pg_dir/server.log" 2>&1 &
pg_pid=$!
for _ in $(seq 100); do
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
  sleep 0.1
done
"$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" || { cat "$pg_dir/server.log" >&2; exit 1; }
pg_newdb() {
  "$pg_bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE $1" >&2
  echo "postgresql://postgres@127.0.0.1:$pg_port/$1"
}
