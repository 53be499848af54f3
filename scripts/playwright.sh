#!/usr/bin/env bash
# Runs a Node script that drives Debian's Chromium with playwright-core (the web UI's end-to-end
# test, tests/e2e/web/ui_flow.js). playwright-core (npm, pinned) is installed once into
# build/npm-playwright (or $VIGIL_NPM_DIR) with --ignore-scripts, so it downloads no browser;
# later runs reuse that install and need no network. The browser is the chromium binary of
# Debian's `chromium` package (scripts/install-deps.sh test), passed to the script in
# VIGIL_CHROMIUM; the script loads playwright-core from VIGIL_PLAYWRIGHT_MODULES.
# Usage: scripts/playwright.sh SCRIPT.js [ARGS...]   Exit: the script's, or 2 when setup failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${VIGIL_NPM_DIR:-$root/build/npm-playwright}
pins=(playwright-core@1.65.1)
chromium=${VIGIL_CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $chromium ]]; then
  echo "playwright: $chromium not found (Debian's chromium package: scripts/install-deps.sh test)" >&2
  exit 2
fi
# Never fetch a browser, whatever the install or the script asks.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PLAYWRIGHT_BROWSERS_PATH=/nonexistent
source "$root/scripts/npm-pinned.sh"
npm_pinned playwright "$dir" "${pins[@]}"
export VIGIL_PLAYWRIGHT_MODULES="$dir/node_modules" VIGIL_CHROMIUM="$chromium"
exec node "$@"
