#!/usr/bin/env bash
# Builds DPO Studio (everything, Release) and packages it as a Debian package with CPack:
# build/dpo-studio_<version>_amd64.deb. Install it with `sudo apt install ./build/dpo-studio_*.deb`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd "${DPO_BUILD_DIR:-build}"
cpack -G DEB
