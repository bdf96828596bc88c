#!/usr/bin/env bash
# Installs the Debian 12 packages DPO Studio needs, only those missing (quick when nothing is).
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config git
      qt6-base-dev qt6-base-dev-tools libqt6sql6-sqlite libqt6sql6-psql libqcustomplot-dev
      libtorch-dev libsentencepiece-dev sentencepiece nlohmann-json3-dev libopenblas0-openmp
      libpcre2-dev libcli11-dev libgtest-dev libgloo-dev postgresql xvfb xauth
      dpkg-dev file)  # dpkg-dev + file: cpack -G DEB (dpkg-shlibdeps), the package test
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "Installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
