#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite through CTest.
# Extra arguments go to ctest (e.g. -L unit, -LE slow, -R tokenizer).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd "${DPO_BUILD_DIR:-build}"
ctest --output-on-failure -j "${DPO_JOBS:-$(nproc)}" "$@"
