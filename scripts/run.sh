#!/usr/bin/env bash
# Installs what is missing, builds the app (dpo-studio and dpo-cli only: no tests, no benchmarks)
# in Release and starts the GUI. Arguments go to dpo-studio.
set -euo pipefail
cd "$(dirname "$0")/.."
DPO_BUILD_TARGETS="dpo-studio dpo-cli" scripts/build.sh
exec "${DPO_BUILD_DIR:-build}/bin/dpo-studio" "$@"
