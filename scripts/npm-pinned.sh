# Sourced by scripts that run Node tools from npm (cyclonedx-validate.sh, playwright.sh).
# npm_pinned WHO DIR PKG@VERSION...: installs the pinned packages once into DIR (with
# --ignore-scripts: no install script runs, so nothing else is downloaded) and records the pins in
# DIR/.installed; later calls with the same pins reuse the install and need no network. Exits 2
# (naming WHO) when node or npm is missing or the install fails.
npm_pinned() {
  local who=$1 dir=$2
  shift 2
  local pins=("$@") stamp="$dir/.installed" tool
  for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
      echo "$who: $tool is not installed (scripts/install-deps.sh test)" >&2
      exit 2
    fi
  done
  if [[ -f $stamp && $(cat "$stamp") == "${pins[*]}" ]]; then
    return 0
  fi
  mkdir -p "$dir"
  [[ -f $dir/package.json ]] || echo '{"private": true}' >"$dir/package.json"
  echo "$who: installing ${pins[*]} into $dir" >&2
  if ! (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --silent "${pins[@]}" >&2);
  then
    echo "$who: npm install failed (no network and no earlier install?)" >&2
    exit 2
  fi
  echo "${pins[*]}" >"$stamp"
}
