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
source "$root/scripts/npm-pinned.sh"
npm_pinned cyclonedx-validate "$dir" "${pins[@]}"
exec node "$root/scripts/cyclonedx-validate.js" "$dir/node_modules" "$@"
