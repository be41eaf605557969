#!/usr/bin/env bash
# Expands the compressed parts of .deps/ (see bench/stage_deps.sh) and unpacks FER2013 to
# .deps/data/fer2013.csv when the pack travelled along. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=.deps
[ -d "$DEPS" ] || { echo "no $DEPS folder: run bench/stage_deps.sh on a machine with the packages"; exit 2; }
if [ -f "$DEPS/lib/libopenblas.so.0.xz" ] && [ ! -f "$DEPS/lib/libopenblas.so.0" ]; then
  xz -dc "$DEPS/lib/libopenblas.so.0.xz" > "$DEPS/lib/libopenblas.so.0"
  ln -sf libopenblas.so.0 "$DEPS/lib/libopenblas.so"
fi
if [ -f "$DEPS/googletest.tar.xz" ] && [ ! -d "$DEPS/googletest" ]; then
  tar -C "$DEPS" -xJf "$DEPS/googletest.tar.xz"
fi
if [ -f "$DEPS/data/fer2013-6class.ferpack" ] && [ ! -f "$DEPS/data/fer2013.csv" ]; then
  python3 "$DEPS/data/unpack_fer2013.py" "$DEPS/data/fer2013-6class.ferpack" --csv "$DEPS/data/fer2013.csv"
fi
echo "deps ready in $DEPS"
