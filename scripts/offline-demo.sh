#!/usr/bin/env bash
# The offline detection path on ADFA-LD: installs what Vigil needs, builds it in release mode,
# trains the default adfa-ld model (sequence covering) on the training traces, streams the
# development split (validation + attack traces) through the pipeline into a JSONL file, and
# prints the evaluation.
#
# Environment: VIGIL_DATA (ADFA-LD root, default ../shared/data/adfa-ld),
#              VIGIL_STATE_DIR (model and verdicts, default ./var).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/run.sh --build-only

vigil=build/run/apps/vigil/vigil
data=${VIGIL_DATA:-../shared/data/adfa-ld}
state=${VIGIL_STATE_DIR:-var}
mkdir -p "$state"
model="$state/models/adfa-ld.vgm"
verdicts="$state/verdicts.jsonl"
rm -f "$verdicts"

echo "== training on $data/Training_Data_Master"
"$vigil" train --dataset adfa-ld --data "$data" --out "$model"
echo
echo "== replaying the development split (validation + attack traces) through the pipeline"
"$vigil" replay --source adfa-ld --data "$data" --split eval --model "$model" \
  --sink "file:$verdicts" --workers 2
echo
echo "== evaluation"
"$vigil" eval --dataset adfa-ld --data "$data" --model "$model"
echo
echo "model file:    $model"
echo "verdicts:      $verdicts ($(wc -l <"$verdicts") OCSF Detection Findings, one per trace)"
