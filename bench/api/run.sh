#!/usr/bin/env bash
# Score latency and throughput of `vigil serve` over HTTP/JSON on loopback (docs/benchmarks.md).
# Trains an n-gram model on ADFA-LD's training traces, starts vigil serve (plain HTTP, anonymous
# score scope, no rate limit), and drives POST /v1/score from a separate process (api_load) at 1,
# 8 and 64 clients, with repeated requests (verdict-cache hits) and varied ones (model calls).
# Usage: bench/api/run.sh [SECONDS]   (build dir: $BUILD, default build/release)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build/release}
seconds=${1:-5}
data=${VIGIL_DATA:-../shared/data/adfa-ld}
cmake --build "$build" --target vigil api_load >/dev/null
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
"$build/apps/vigil/vigil" train --dataset adfa-ld --data "$data" --out "$work/model.vmod" >/dev/null
cat > "$work/rules.yaml" <<'YAML'
- rule: Anomalous program
  desc: the model flags it
  condition: ml.anomalous=true
  output: "anomalous %proc.name"
  priority: warning
YAML
cat > "$work/serve.yaml" <<'YAML'
http: {listen: "127.0.0.1:0", threads: 72}
auth: {allow_anonymous: true, anonymous_scopes: [score]}
model: model.vmod
rules: [rules.yaml]
limits: {max_in_flight: 1024, default_deadline_ms: 1000, workers: 2, queue: 4096}
YAML
"$build/apps/vigil/vigil" serve --config "$work/serve.yaml" --json > "$work/ready.json" &
server=$!
for _ in $(seq 100); do [[ -s $work/ready.json ]] && break; sleep 0.1; done
port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http_port"])' "$work/ready.json")
echo "vigil serve ready: $(cat "$work/ready.json")"
for mode in same vary; do
  for clients in 1 8 64; do
    flag=(); [[ $mode == vary ]] && flag=(--vary)
    "$build/bench/api_load" --url "http://127.0.0.1:$port" --clients "$clients" \
      --seconds "$seconds" "${flag[@]}"
  done
done
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^vigil_api_(cache_hit_ratio|ready_seconds|scores_total|fallbacks_total\{api="score"\})'
