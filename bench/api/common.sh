# Shared by bench/api/run.sh and ab.sh (sourced, from the repository root): a temp dir with an
# n-gram model trained on ADFA-LD's training traces and one rule, servers stopped on exit, and
#   start NAME EXTRA_YAML [VIGIL]: starts `vigil serve` (plain HTTP and gRPC on loopback,
#   anonymous score scope, no rate limit) and sets NAME_http, NAME_grpc (ports) and NAME_pid.
# Needs: build (build dir), data (ADFA-LD dir); VIGIL defaults to $build/apps/vigil/vigil.
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

start() {
  cat > "$work/$1.yaml" <<YAML
http: {listen: "127.0.0.1:0", threads: 72}
grpc: {listen: "127.0.0.1:0", max_threads: 256}
auth: {allow_anonymous: true, anonymous_scopes: [score]}
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
