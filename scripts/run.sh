#!/usr/bin/env bash
# Installs what is missing, builds the app in Release and starts the GUI. Arguments go to dpo-studio.
# Only dpo-studio and what it links are built before the window opens. dpo-cli, which the window does
# not need, is built right after in the background at the lowest CPU priority, so it takes only idle
# CPU (log: build/dpo-cli-build.log). Tests and benchmarks are built by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${DPO_BUILD_DIR:-build}
DPO_BUILD_TARGETS="dpo-studio" scripts/build.sh
if ! cmake --build "$BUILD_DIR" --target dpo-cli -- -n 2>/dev/null | grep -q "no work to do"; then
  echo "Building dpo-cli in the background (log: $BUILD_DIR/dpo-cli-build.log)"
  # The lock keeps scripts/build.sh (and test.sh) from running ninja in the same folder meanwhile.
  nohup flock "$BUILD_DIR/.build.lock" nice -n 19 \
    cmake --build "$BUILD_DIR" -j "${DPO_JOBS:-$(nproc)}" --target dpo-cli \
    > "$BUILD_DIR/dpo-cli-build.log" 2>&1 < /dev/null &
fi
exec "$BUILD_DIR/bin/dpo-studio" "$@"
