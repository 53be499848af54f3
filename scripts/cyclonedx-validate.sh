#!/usr/bin/env bash
# Validates CycloneDX 1.5 JSON files against the official JSON schema with ajv.
# The validator (npm: @cyclonedx/cyclonedx-library for the schema files, ajv, ajv-formats,
# ajv-formats-draft2019) is installed once into build/npm-cyclonedx (or $VIGIL_NPM_DIR) at pinned
# versions; later runs reuse that install and need no network.
# Usage: scripts/cyclonedx-validate.sh FILE...   Exit 0 all valid, 1 any invalid, 2 setup failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${VIGIL_NPM_DIR:-$root/build/npm-cyclonedx}
pins=(@cyclonedx/cyclonedx-library@10.3.0 ajv@8.20.0 ajv-formats@3.0.1
      ajv-formats-draft2019@1.6.1)
stamp="$dir/.installed"

if ! command -v node >/dev/null; then
  echo "cyclonedx-validate: node is not installed" >&2
  exit 2
fi
if [[ ! -f $stamp || $(cat "$stamp") != "${pins[*]}" ]]; then
  mkdir -p "$dir"
  [[ -f $dir/package.json ]] || echo '{"private": true}' >"$dir/package.json"
  echo "cyclonedx-validate: installing ${pins[*]} into $dir" >&2
  if ! (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --silent "${pins[@]}" >&2);
  then
    echo "cyclonedx-validate: npm install failed (no network and no earlier install?)" >&2
    exit 2
  fi
  echo "${pins[*]}" >"$stamp"
fi
exec node "$root/scripts/cyclonedx-validate.js" "$dir/node_modules" "$@"
