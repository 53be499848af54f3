#!/usr/bin/env bash
# How much alert volume the hub's triage model removes at a fixed recall, on ADFA-LD through the
# hub (docs/benchmarks.md, "Hub triage"):
#   1. an n-gram model trained on ADFA-LD's normal training traces (vigil train);
#   2. the evaluation split (validation + attack traces) replayed through it (vigil replay); the
#      anomalous verdicts are the alerts, one per trace;
#   3. a hub on loopback ingests them (vigil hub ingest); an analyst labels every incident through
#      POST /v1/incidents/ID/adjudication: true_positive for an attack trace, false_positive else;
#   4. the labelled incidents exported (vigil hub triage export) and split by attack run (whole
#      runs and traces on one side: runs and trace numbers 3, 7, 11, ... train, 1, 5, 9, ... test);
#   5. a triage model trained on the training half (vigil train --model-type triage --dataset
#      jsonl, 5-fold CV) and measured on the test half (vigil hub triage measure) at each recall.
# Usage: bash bench/hub/triage_volume.sh [RECALL...] (default 0.9 0.95 0.99)
#   after: cmake --build --preset release --target vigil
set -euo pipefail
cd "$(dirname "$0")/../.."
vigil=$PWD/build/release/apps/vigil/vigil
data=${VIGIL_ADFA:-$PWD/../shared/data/adfa-ld}
[[ -x $vigil ]] || { echo "build it first: cmake --build --preset release --target vigil" >&2; exit 2; }
[[ -d $data ]] || { echo "ADFA-LD not found at $data (set VIGIL_ADFA)" >&2; exit 2; }
recalls=("$@")
[[ ${#recalls[@]} -gt 0 ]] || recalls=(0.9 0.95 0.99)

dir=$(mktemp -d /tmp/vigil-triage-bench-XXXXXX)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"

"$vigil" train --dataset adfa-ld --data "$data" --out ngram.vmod >/dev/null
"$vigil" replay --data "$data" --model ngram.vmod --split eval --sink file:verdicts.jsonl >/dev/null
grep '"anomalous":true' verdicts.jsonl >alerts.jsonl

state=$dir/hub
mkdir -p "$state"
"$vigil" hub token --state-dir "$state" --role agent --subject vm --ttl 1h >agent.token
"$vigil" hub token --state-dir "$state" --role analyst --subject bench --ttl 1h >analyst.token
"$vigil" hub --state-dir "$state" --listen 127.0.0.1:0 --json >ready.json 2>hub.log &
pid=$!
for _ in $(seq 100); do [[ -s ready.json ]] && break; sleep 0.1; done
port=$(python3 -c 'import json; print(json.load(open("ready.json"))["port"])')
url=http://127.0.0.1:$port
"$vigil" hub ingest alerts.jsonl --server "$url" --token-file agent.token --host vm >/dev/null

# The analyst's labels, and each incident's side of the split (by attack run / trace number).
python3 - "$url" <<'EOF'
import json, re, sys, urllib.request
url = sys.argv[1]
token = open("analyst.token").read().strip()
def call(method, path, body=None):
    req = urllib.request.Request(url + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
side = {}
for inc in call("GET", "/v1/incidents?limit=1000")["incidents"]:
    stream = call("GET", "/v1/incidents/%d" % inc["id"])["incident"]["alerts"][0]["uid"]
    attack = stream.startswith("Attack_Data_Master/")
    call("POST", "/v1/incidents/%d/adjudication" % inc["id"],
         {"label": "true_positive" if attack else "false_positive"})
    # Attack_Data_Master/Adduser_3/... -> run 3; Validation_Data_Master/UVD-0041.txt -> trace 41.
    n = int(re.search(r"_(\d+)/" if attack else r"(\d+)\.txt$", stream).group(1))
    # Only odd numbers are in this copy of the dataset: 1, 5, 9, ... test; 3, 7, 11, ... train.
    side["hub:vm:%d" % inc["id"]] = "train" if (n // 2) % 2 == 1 else "test"
json.dump(side, open("side.json", "w"))
EOF
"$vigil" hub triage export --state-dir "$state" --out labels.jsonl 2>/dev/null
python3 - <<'EOF'
import json
side = json.load(open("side.json"))
out = {"train": open("train.jsonl", "w"), "test": open("test.jsonl", "w")}
for line in open("labels.jsonl"):
    out[side[json.loads(line)["id"]]].write(line)
EOF
"$vigil" train --model-type triage --dataset jsonl --labels train.jsonl --cv 5 --out triage.vmod \
  --triage-threads 1 >train.txt
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "alerts (anomalous n-gram verdicts): $(wc -l <alerts.jsonl); labelled incidents: $(wc -l <labels.jsonl)" \
  "(train $(wc -l <train.jsonl), test $(wc -l <test.jsonl))"
sed -n '1,3p' train.txt
for r in "${recalls[@]}"; do
  echo "--- vigil hub triage measure --model triage.vmod --set test.jsonl --recall $r"
  "$vigil" hub triage measure --model triage.vmod --set test.jsonl --recall "$r"
done
