#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, and runs every suite through
# CTest: the thread-sanitizer run of the queue and inference engine tests, the bounded fuzz
# runs, then all unit, integration and end-to-end tests of the release build (its summary
# closes the output).
#
# Environment: VIGIL_FUZZ_SECONDS (per fuzz target, default 10; the fuzz targets run two at a
# time, one per core).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh test
fuzz_seconds=${VIGIL_FUZZ_SECONDS:-10}

echo "== build: release (-Werror)"
cmake --preset release >/dev/null
cmake --build --preset release

echo "== build: tsan (pipeline queue and inference engine tests)"
cmake --preset tsan >/dev/null
cmake --build --preset tsan --target pipeline_queue_test model_engine_test

echo "== build: fuzz targets (clang, libFuzzer + ASan/UBSan)"
cmake --preset fuzz -DVIGIL_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
cmake --build --preset fuzz --target config_fuzz event_json_fuzz model_file_fuzz batadal_fuzz \
  kitnet_file_fuzz policy_rules_fuzz rnn_model_fuzz audit_log_fuzz triage_labels_fuzz \
  triage_model_fuzz minisign_fuzz manifest_fuzz enforce_proc_fuzz attest_fuzz gateway_config_fuzz \
  modbus_frame_fuzz api_request_fuzz telemetry_payload_fuzz hub_request_fuzz hub_users_fuzz \
  model_header_fuzz serve_config_fuzz credential_fuzz enrol_fuzz ingest_json_fuzz \
  http_answer_fuzz

status=0
echo "== ctest: queue and inference engine tests under ThreadSanitizer"
ctest --test-dir build/tsan -R '^(pipeline_queue_test|model_engine_test)[.]' --output-on-failure \
  || status=1
echo "== ctest: fuzz targets, ${fuzz_seconds}s each"
ctest --test-dir build/fuzz --output-on-failure -j2 || status=1
echo "== ctest: unit, integration and end-to-end tests"
ctest --test-dir build/release --output-on-failure -j2 || status=1
exit $status
