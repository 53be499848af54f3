#!/usr/bin/env bash
# Installs every Debian package Vigil needs to build, run and test. Idempotent: packages already
# present are left alone, and apt-get runs only when something is missing.
# Usage: scripts/install-deps.sh [run|test|bench]   (test adds the tools that only the tests need;
# bench adds those and what the benchmarks compare against, e.g. scikit-learn)
set -euo pipefail

profile=${1:-run}
build_pkgs=(
  cmake ninja-build g++ pkg-config git
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libeigen3-dev libxgboost-dev libsodium-dev libssl-dev libcpp-httplib-dev libsqlite3-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libtorch-dev libopenblas0-pthread
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  clang bpftool libbpf-dev libelf-dev
  libseccomp-dev
  libtss2-dev
  libmodbus-dev libmosquitto-dev
  libpqxx-dev
  libnats-dev
  libnghttp2-dev  # bench/api_load --mode h2: a gRPC load generator without gRPC's client
)
test_pkgs=(
  clang libclang-rt-14-dev libfuzzer-14-dev prometheus curl procps minisign swtpm swtpm-tools
  mosquitto nats-server openssl
  postgresql
  chromium nodejs npm
)

bench_pkgs=(
  python3-sklearn python3-numpy
  strace  # gate_latency_bench --strace: system calls per gated call
  valgrind  # bench/agent/callgrind-agent.sh: instruction counts of the agent's per-event path
  linux-perf jq redis-server redis-tools  # bench/agent/redis-cost.sh: the agent's cost per request
)

want=("${build_pkgs[@]}")
[[ $profile == test || $profile == bench ]] && want+=("${test_pkgs[@]}")
[[ $profile == bench ]] && want+=("${bench_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] && continue
  # A nodejs package that bundles npm (NodeSource's) conflicts with Debian's npm package: a
  # working npm command is enough.
  [[ $p == npm ]] && command -v npm >/dev/null && continue
  missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or install them with apt-get) and try again" >&2
  exit 2
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
