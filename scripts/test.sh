#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite through CTest, with a throwaway
# PostgreSQL server on loopback for the team-store tests (tests/pg/with_pg.sh).
# Extra arguments go to ctest (e.g. -L unit, -LE slow, -R tokenizer).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
scripts/build.sh
cd "${DPO_BUILD_DIR:-build}"
"$ROOT/tests/pg/with_pg.sh" ctest --output-on-failure -j "${DPO_JOBS:-$(nproc)}" "$@"
