#!/usr/bin/env bash
# Expands the compressed parts of .deps/ (see bench/stage_deps.sh) in place: lib/*.xz (OpenBLAS and
# the libraries it needs) plus the unversioned libopenblas.so link the linker looks for,
# googletest.tar.xz, and the FER2013 cut to .deps/data/fer2013-cut.csv. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=.deps
[ -d "$DEPS" ] || { echo "no $DEPS folder: run bench/stage_deps.sh on a machine with the packages"; exit 2; }
for z in "$DEPS"/lib/*.xz; do
  [ -f "$z" ] || continue
  so="${z%.xz}"
  [ -f "$so" ] || { xz -dc "$z" > "$so.tmp" && mv "$so.tmp" "$so"; }
done
[ -f "$DEPS/lib/libopenblas.so.0" ] && ln -sf libopenblas.so.0 "$DEPS/lib/libopenblas.so"
if [ -f "$DEPS/googletest.tar.xz" ] && [ ! -d "$DEPS/googletest" ]; then
  tar -C "$DEPS" -xJf "$DEPS/googletest.tar.xz"
fi
cut="$DEPS/data/fer2013-cut.csv"
if [ -f "$cut.xz" ] && [ ! -f "$cut" ]; then
  xz -dc "$cut.xz" > "$cut.tmp" && mv "$cut.tmp" "$cut"
fi
echo "deps ready in $DEPS"
