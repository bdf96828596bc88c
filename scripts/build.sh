#!/usr/bin/env bash
# Configures (once) and builds DPO Studio in Release into ./build. Extra args go to cmake configure.
# DPO_BUILD_TARGETS="dpo-studio dpo-cli" builds only those targets (and what they need); default: all.
# Waits while another build runs in the same folder (flock on BUILD_DIR/.build.lock).
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
# One build at a time in a folder (scripts/run.sh may still be building dpo-cli in the background).
exec 9> "$BUILD_DIR/.build.lock"
if ! flock -n 9; then
  echo "Waiting for the build running in $BUILD_DIR to finish..."
  flock 9
fi
cmake --build "$BUILD_DIR" -j "$JOBS" "${targets[@]}"
