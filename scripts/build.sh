#!/usr/bin/env bash
# Configures (once) and builds DPO Studio in Release into ./build. Extra args go to cmake configure.
set -euo pipefail
cd "$(dirname "$0")/.."
"$(pwd)/scripts/deps.sh"
BUILD_DIR=${DPO_BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
JOBS=${DPO_JOBS:-$(nproc)}
cmake --build "$BUILD_DIR" -j "$JOBS"
