#!/usr/bin/env bash
# Stages into .deps/ (git-ignored) everything a build on the lent GPU machine needs beyond the
# CUDA toolkit and the NVIDIA pip wheels that machine has (cuDNN, cuBLAS): that machine has no
# Debian -dev packages and no package registry. Then checks it and prints what is sent.
#
#   include/      toml++/, CLI/, nlohmann/, stb/, libexif/, cblas.h + openblas_config.h (header-only or headers)
#   lib/*.xz      the shared libraries the build links that the GPU image lacks (STAGED_LIBS below:
#                 libopenblas.so.0, libexif.so.12) and every library they need that is not part
#                 of a bare glibc/GCC runtime: libgfortran.so.5, libquadmath.so.0 (found with ldd,
#                 not listed by hand). bench/unstage_deps.sh expands them there.
#   googletest.tar.xz   GoogleTest sources (built with the suite)
#   data/fer2013-cut.csv.xz   4,096 FER2013 rows (3,072 Training, 512 PublicTest, 512
#                 PrivateTest; bench/make_data_cut.py) instead of the 53 MB pack
#   MANIFEST      what was staged, from where, with versions
#
# oneDNN is NOT staged: libdnnl.so.2 is 40 MB (about 9 MB compressed) and pulls in libOpenCL; on the
# GPU machine the CPU backend (the CPU column of `fer_gpu bench --device both`) then runs its
# im2col + OpenBLAS path, and the results file says so.
#
# Checks (non-zero exit when one fails):
#   - every staged library resolves all its dependencies from .deps/lib or the bare runtime
#     (ldd on the expanded copies, LD_LIBRARY_PATH=.deps/lib only);
#   - what the GPU machine is sent (the checkout's tracked and untracked-unignored files plus
#     .deps/) is at most FER_SEND_LIMIT_MIB (default 64).
# Environment: FER_SHARED (default ../shared), FER_SEND_LIMIT_MIB.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=.deps
SHARED="${FER_SHARED:-../shared}"
LIMIT_MIB="${FER_SEND_LIMIT_MIB:-64}"
# The bare runtime a GPU image has without any -dev package: glibc, the GCC runtime (nvcc needs
# a host GCC, which brings libgomp), the vDSO.
BASE_RE='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libgcc_s\.so|libstdc\+\+\.so|libgomp\.so)'

# Keep a data cut that is already there: decoding it takes minutes on a slow machine.
cut="$DEPS/data/fer2013-cut.csv.xz"
keep=""
if [ -s "$cut" ]; then keep=$(mktemp); cp "$cut" "$keep"; fi
rm -rf "$DEPS"
mkdir -p "$DEPS/include/stb" "$DEPS/lib" "$DEPS/data"
[ -n "$keep" ] && mv "$keep" "$cut"

# ---- headers
cp -r /usr/include/toml++ /usr/include/CLI /usr/include/nlohmann "$DEPS/include/"
cp /usr/include/stb/stb_image.h /usr/include/stb/stb_image_write.h /usr/include/stb/stb_image_resize.h "$DEPS/include/stb/"
blas_inc=/usr/include/x86_64-linux-gnu/openblas-pthread
cp "$blas_inc"/cblas.h "$blas_inc"/openblas_config.h "$DEPS/include/"

cp -r /usr/include/libexif "$DEPS/include/"

# ---- shared libraries the build links (cmake/Dependencies.cmake's REQUIRED ones that are not
# header-only), by soname, and their non-base dependencies (transitively, by ldd). A library
# added to the build as REQUIRED must be added here too: the rehearsal's configure fails otherwise.
STAGED_LIBS=(/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0
             /usr/lib/x86_64-linux-gnu/libexif.so.12)
expanded=$(mktemp -d)
trap 'rm -rf "$expanded"' EXIT
for lib in "${STAGED_LIBS[@]}"; do
  cp "$(readlink -f "$lib")" "$expanded/$(basename "$lib")"
done
for _ in 1 2 3; do  # dependencies of dependencies
  for so in "$expanded"/*.so.*; do
    ldd "$so" | awk '/=>/ {print $1, $3}' | while read -r name path; do
      [[ "$name" =~ $BASE_RE ]] && continue
      [ -f "$expanded/$name" ] || cp "$(readlink -f "$path")" "$expanded/$name"
    done
  done
done
for so in "$expanded"/*.so.*; do
  xz -T0 -6 -c "$so" > "$DEPS/lib/$(basename "$so").xz"
done

# ---- check: every staged library resolves from .deps/lib or the bare runtime
status=0
for so in "$expanded"/*.so.*; do
  while read -r line; do
    name=$(echo "$line" | awk '{print $1}')
    path=$(echo "$line" | awk '/=>/ {print $3}')
    if echo "$line" | grep -q 'not found'; then
      echo "ldd: $(basename "$so") needs $name: not found"; status=1
    elif [ -n "$path" ] && [[ ! "$name" =~ $BASE_RE ]] && [ "$(dirname "$path")" != "$expanded" ]; then
      echo "ldd: $(basename "$so") takes $name from $path, not from the staged folder"; status=1
    fi
  done < <(env -i LD_LIBRARY_PATH="$expanded" ldd "$so")
done
[ $status -eq 0 ] && echo "ldd: staged libraries resolve within .deps/lib and the bare runtime: $(cd "$expanded" && ls | tr '\n' ' ')"

# ---- GoogleTest sources
tar -C /usr/src -cJf "$DEPS/googletest.tar.xz" googletest

# ---- data cut
if [ ! -s "$cut" ]; then
  if [ -f "$SHARED/data/fer2013-6class.ferpack" ]; then
    python3 bench/make_data_cut.py "$SHARED/data/fer2013-6class.ferpack" "$cut"
  else
    echo "no $SHARED/data/fer2013-6class.ferpack: no data cut staged (training stages will skip)"
  fi
fi

# ---- manifest
{
  echo "staged $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(hostname) at commit $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  for p in libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libstb-dev libexif-dev libexif12 libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0 libgtest-dev googletest; do
    v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
    [ -n "$v" ] && echo "$p $v"
  done
  (cd "$DEPS" && find . -type f ! -name MANIFEST | sort | xargs du -b)
} > "$DEPS/MANIFEST"

# ---- size of what is sent
checkout_bytes=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
deps_bytes=$(find "$DEPS" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
total=$((checkout_bytes + deps_bytes))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
echo "sent: checkout $(mib "$checkout_bytes") MiB + .deps $(mib "$deps_bytes") MiB = $(mib "$total") MiB (limit $LIMIT_MIB MiB)"
echo "$total" > "$DEPS/SENT_BYTES"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "too large for the GPU machine: $(mib "$total") MiB > $LIMIT_MIB MiB"; status=1
fi
exit $status
