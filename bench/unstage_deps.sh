#!/usr/bin/env bash
# Expands the compressed parts of .deps/ (see bench/stage_deps.sh) in place: lib/*.xz (OpenBLAS, libexif and
# the libraries they need) plus the unversioned libX.so links the linker looks for,
# googletest.tar.xz, and the FER2013 cut to .deps/data/fer2013-cut.csv. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=.deps
[ -d "$DEPS" ] || { echo "no $DEPS folder: run bench/stage_deps.sh on a machine with the packages"; exit 2; }
# xz may be missing on a bare image; Python's lzma module then does the same.
unxz_to() {
  if command -v xz >/dev/null 2>&1; then xz -dc "$1" > "$2.tmp"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2.tmp"
  fi && mv "$2.tmp" "$2"
}
for z in "$DEPS"/lib/*.xz; do
  [ -f "$z" ] || continue
  so="${z%.xz}"
  [ -f "$so" ] || unxz_to "$z" "$so"
done
# The unversioned name the linker looks for (-lexif, find_library): libX.so -> libX.so.N.
for so in "$DEPS"/lib/*.so.*; do
  [ -f "$so" ] || continue
  case "$so" in *.xz) continue ;; esac
  base="${so%%.so.*}.so"
  [ -e "$base" ] || ln -sf "$(basename "$so")" "$base"
done
if [ -f "$DEPS/googletest.tar.xz" ] && [ ! -d "$DEPS/googletest" ]; then
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$DEPS/googletest.tar.xz" "$DEPS"
fi
cut="$DEPS/data/fer2013-cut.csv"
if [ -f "$cut.xz" ] && [ ! -f "$cut" ]; then
  unxz_to "$cut.xz" "$cut"
fi
echo "deps ready in $DEPS"
