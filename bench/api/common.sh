# Shared by bench/api/run.sh and ab.sh (sourced, from the repository root): a temp dir with an
# n-gram model trained on ADFA-LD's training traces, one rule, a JWT key and a token for it,
# servers stopped on exit, and
#   start NAME EXTRA_YAML [VIGIL]: starts `vigil serve` (plain HTTP and gRPC on loopback,
#     anonymous score scope, JWT bearer tokens accepted, no rate limit) and sets NAME_http,
#     NAME_grpc (ports) and NAME_pid;
#   run NAME TRANSPORT ARGS...: one api_load run (ARGS are api_load's) against server NAME,
#     printed as one line by bench/api/report.py with the server's CPU and context switches per
#     call (all its threads, from /proc) and its own time (vigil_api_request_seconds).
# Needs: build (build dir), data (ADFA-LD dir), seconds; VIGIL defaults to
# $build/apps/vigil/vigil. Environment: VIGIL_BENCH_AUTH=jwt sends the bearer token with every
# request (default: anonymous); VIGIL_BENCH_THREADS=1 adds, per run, the server's threads that
# ran, by name.
work=$(mktemp -d)
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
"$build/apps/vigil/vigil" train --dataset adfa-ld --model-type sequence --data "$data" --out "$work/model.vmod" >/dev/null
cat > "$work/rules.yaml" <<'YAML'
- rule: Anomalous program
  desc: the model flags it
  condition: ml.anomalous=true
  output: "anomalous %proc.name"
  priority: warning
YAML
head -c 48 /dev/urandom | base64 > "$work/jwt.key"
"$build/apps/vigil/vigil" token issue --key-file "$work/jwt.key" --issuer vigil-bench \
  --audience vigil-api --subject bench --scope score --ttl 2h > "$work/token"
auth_args=()
[[ ${VIGIL_BENCH_AUTH:-} == jwt ]] && auth_args=(--token-file "$work/token")
echo "requests: ${VIGIL_BENCH_AUTH:-anonymous}"

start() {
  cat > "$work/$1.yaml" <<YAML
http: {listen: "127.0.0.1:0", threads: 72}
grpc: {listen: "127.0.0.1:0", max_threads: 256}
auth:
  allow_anonymous: true
  anonymous_scopes: [score]
  jwt: {hs256_key_file: $work/jwt.key, issuer: vigil-bench, audience: vigil-api}
model: model.vmod
rules: [rules.yaml]
limits: {max_in_flight: 1024, default_deadline_ms: 1000, queue: 65536}
$2
YAML
  "${3:-$build/apps/vigil/vigil}" serve --config "$work/$1.yaml" --json > "$work/$1.ready" &
  servers+=($!)
  printf -v "${1}_pid" %s $!
  for _ in $(seq 100); do [[ -s $work/$1.ready ]] && break; sleep 0.1; done
  echo "vigil serve ($1) ready: $(cat "$work/$1.ready")"
  read -r "${1}_http" "${1}_grpc" < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["http_port"], r["grpc_port"])' "$work/$1.ready")
}

metrics() { curl -s "http://127.0.0.1:$1/metrics" | grep '^vigil_api_request_seconds_bucket' || true; }
run() {
  local name=$1 transport=$2 pid http grpc target s0 s1 out m0 m1 extra=()
  shift 2
  pid=${name}_pid http=${name}_http grpc=${name}_grpc
  if [[ $transport == grpc ]]; then target=(--grpc "127.0.0.1:${!grpc}"); else target=(--url "http://127.0.0.1:${!http}"); fi
  [[ ${VIGIL_BENCH_THREADS:-} == 1 ]] && extra=(--threads)
  m0=$(metrics "${!http}")
  s0=$(python3 bench/api/report.py snap "${!pid}")
  out=$("$build/bench/api_load" "${target[@]}" --seconds "$seconds" --json "${auth_args[@]}" "$@" || true)
  s1=$(python3 bench/api/report.py snap "${!pid}")
  m1=$(metrics "${!http}")
  python3 bench/api/report.py line "$name" "$out" "$s0" "$s1" "$m0" "$m1" "${extra[@]}"
}
