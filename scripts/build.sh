#!/usr/bin/env bash
# Configures (once) and builds DPO Studio in Release into ./build. Extra args go to cmake configure.
# DPO_BUILD_TARGETS="dpo-studio dpo-cli" builds only those targets (and what they need); default: all.
# ccache is used automatically when installed (apt-get install ccache): rebuilds and other clones of
# the same sources then compile in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
"$(pwd)/scripts/deps.sh"
BUILD_DIR=${DPO_BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
JOBS=${DPO_JOBS:-$(nproc)}
targets=()
for t in ${DPO_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j "$JOBS" "${targets[@]}"
