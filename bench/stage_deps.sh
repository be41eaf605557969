#!/usr/bin/env bash
# Stages what a machine without package access needs into .deps/ (git-ignored), small enough to
# travel with the checkout (the lent GPU machine takes at most 64 MiB): header-only libraries,
# cblas headers, OpenBLAS (xz-compressed), GoogleTest sources and the FER2013 pack.
# bench/unstage_deps.sh (run on the other machine) expands the compressed parts in place.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=.deps
rm -rf "$DEPS"
mkdir -p "$DEPS/include/stb" "$DEPS/lib" "$DEPS/data"
cp -r /usr/include/toml++ /usr/include/CLI "$DEPS/include/"
cp /usr/include/stb/stb_image.h /usr/include/stb/stb_image_write.h /usr/include/stb/stb_image_resize.h "$DEPS/include/stb/"
blas_inc=/usr/include/x86_64-linux-gnu/openblas-pthread
cp "$blas_inc"/cblas.h "$blas_inc"/openblas_config.h "$DEPS/include/"
xz -T0 -6 -c "$(readlink -f /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0)" > "$DEPS/lib/libopenblas.so.0.xz"
tar -C /usr/src -cJf "$DEPS/googletest.tar.xz" googletest
shared=../shared/data
if [ -f "$shared/fer2013-6class.ferpack" ]; then
  cp "$shared/fer2013-6class.ferpack" "$shared/unpack_fer2013.py" "$DEPS/data/"
fi
du -sh "$DEPS"
