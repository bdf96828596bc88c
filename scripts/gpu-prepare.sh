#!/usr/bin/env bash
# Run once on a Debian 12 machine before scripts/gpu-check.sh travels to a GPU machine: downloads the
# Debian packages the engine builds against (headers and libraries that a PyTorch-only GPU machine
# lacks) into .gpu/, which git ignores (.git/info/exclude) and the device tool carries.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
cd .gpu
apt-get download libsentencepiece0 libsentencepiece-dev libprotobuf-lite32 nlohmann-json3-dev \
  libpcre2-8-0 libpcre2-dev libcli11-dev libgtest-dev
ls -la
