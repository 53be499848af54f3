#!/usr/bin/env bash
# The README's run command: installs what Vigil needs, builds it in release mode, and runs its
# main job on this host with embedded defaults: `vigil agent` (learn per-program baselines for
# five minutes, then alert on anomalous behaviour; Ctrl-C stops it cleanly, a restart reuses the
# baselines in /var/lib/vigil). Extra arguments go to `vigil agent` (e.g. --learn 60s).
#
#   bash scripts/run.sh                 build and run the agent
#   bash scripts/run.sh --build-only    build only (build/run/apps/vigil/vigil)
#   bash scripts/offline-demo.sh        the offline path on ADFA-LD (train, replay, evaluate)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh run
cmake -S . -B build/run -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DVIGIL_BUILD_TESTS=OFF -DVIGIL_BUILD_BENCH=OFF >/dev/null
cmake --build build/run -j2 --target vigil
if [[ ${1:-} == --build-only ]]; then
  echo "built build/run/apps/vigil/vigil"
  exit 0
fi
exec build/run/apps/vigil/vigil agent "$@"
