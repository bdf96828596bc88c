#!/usr/bin/env bash
# The Debian package as a user gets it: build it with CPack, unpack it into a scratch root with
# `dpkg -x` (no root, no container), then run the installed dpo-cli and the GUI (offscreen) from there.
# Checks the freedesktop files land where desktop environments look, and validates them when the
# validators (desktop-file-utils, appstream) are installed.
# usage: test_install.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$scratch/pkg" > "$scratch/cpack.log" 2>&1) || { cat "$scratch/cpack.log"; fail "cpack -G DEB"; }
deb=$(ls "$scratch"/pkg/*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "no .deb produced"
echo "package: $(basename "$deb") ($(du -h "$deb" | cut -f1))"

depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for need in libqt6sql6-sqlite libtorch libqt6widgets6; do
  grep -q "$need" <<<"$depends" || fail "Depends lacks $need"
done

root="$scratch/root"
dpkg -x "$deb" "$root"
for f in usr/bin/dpo-studio usr/bin/dpo-cli usr/lib/dpo-studio/libdpo_spm_shim.so \
         usr/share/dpo-studio/demo-model/config.json \
         usr/share/applications/org.dpostudio.DPOStudio.desktop \
         usr/share/icons/hicolor/scalable/apps/org.dpostudio.DPOStudio.svg \
         usr/share/metainfo/org.dpostudio.DPOStudio.metainfo.xml \
         usr/share/mime/packages/org.dpostudio.DPOStudio.xml; do
  [ -e "$root/$f" ] || fail "missing $f"
done
grep -q '^MimeType=application/x-dpo-studio-project;' "$root/usr/share/applications/org.dpostudio.DPOStudio.desktop" \
  || fail "desktop entry does not claim .dpo projects"
grep -q 'glob pattern="\*.dpo"' "$root/usr/share/mime/packages/org.dpostudio.DPOStudio.xml" || fail "MIME type lacks *.dpo"
if command -v desktop-file-validate > /dev/null; then
  desktop-file-validate "$root/usr/share/applications/org.dpostudio.DPOStudio.desktop"
fi
if command -v appstreamcli > /dev/null; then
  appstreamcli validate --no-net --explain "$root/usr/share/metainfo/org.dpostudio.DPOStudio.metainfo.xml" || fail "metainfo invalid"
fi

# Run from the scratch root only: the build folder must not be what makes it work.
export HOME="$scratch/home" XDG_DATA_HOME="$scratch/home/.local/share" XDG_CONFIG_HOME="$scratch/home/.config"
mkdir -p "$HOME"
version=$("$root/usr/bin/dpo-cli" --version)
echo "dpo-cli --version: $version"
grep -Eq '^dpo-cli [0-9]+\.[0-9]+\.[0-9]+$' <<<"$version" || fail "dpo-cli --version printed '$version'"
gui_version=$(QT_QPA_PLATFORM=offscreen "$root/usr/bin/dpo-studio" --version)
grep -Eq '^DPO Studio [0-9]+\.[0-9]+\.[0-9]+$' <<<"$gui_version" || fail "dpo-studio --version printed '$gui_version'"
# The installed engine finds its sentencepiece shim and the bundled demo model.
out=$("$root/usr/bin/dpo-cli" tokenize --model "$root/usr/share/dpo-studio/demo-model" --text "What is 3 plus 4?")
[ -n "$out" ] || fail "installed dpo-cli tokenize printed nothing"
# The installed GUI starts, opens the bundled demo project and draws its window.
QT_QPA_PLATFORM=offscreen timeout 120 "$root/usr/bin/dpo-studio" --screenshot "$scratch/window.png" --delay 500 \
  || fail "installed dpo-studio did not start"
[ -s "$scratch/window.png" ] || fail "no screenshot from the installed GUI"
[ -f "$XDG_DATA_HOME/DPO Studio/DPO Studio/demo.dpo" ] || find "$HOME" -name '*.dpo' | grep -q . \
  || fail "the installed GUI did not open the bundled demo project"
echo "installed package OK"
