#!/usr/bin/env bash
# Installs what is missing, builds in Release and starts the GUI. Arguments go to dpo-studio.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec "${DPO_BUILD_DIR:-build}/bin/dpo-studio" "$@"
