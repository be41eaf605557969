#!/usr/bin/env bash
# CI, after the README's test command (.ci/run): CPU tests built with clang under AddressSanitizer
# + UndefinedBehaviorSanitizer, then a short run of every libFuzzer target (tests/fuzz). One build
# (build-san, -DFER_FUZZ=ON, which implies -DFER_SANITIZE=ON) serves both; the CUDA backend is
# compiled out (-DFER_CUDA=OFF): sanitizers do not instrument device code.
#
# Scope: by default the whole CPU suite (ctest -LE gpu, fuzz replays included; seen clean on
# 1e475f2, bench/results/2026-11-30-fuzz.md). FER_SANITIZE_QUICK=1 builds and runs only the input
# parsers' suites (CSV, image folders, image decoding with EXIF, the binary cache) and the fuzz
# replays, for a quick local check.
# FER_FUZZ_SECONDS sets the seconds per fuzz target (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
# -DFER_MPI=OFF: Open MPI keeps allocations to process exit that LeakSanitizer would report; the
# data-parallel suites run in the plain build (.ci/run).
CC=clang CXX=clang++ cmake -S . -B build-san -G Ninja -DFER_CUDA=OFF -DFER_MPI=OFF -DFER_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
suites=(tests/loaders/test_loaders_csv tests/loaders/test_loaders_folders tests/loaders/test_loaders_images
        tests/loaders/test_loaders_cache)
fuzzers=(fuzz_csv fuzz_image fuzz_config fuzz_checkpoint fuzz_cache)
if [ "${FER_SANITIZE_QUICK:-0}" != 1 ]; then
  cmake --build build-san -j"$(nproc)"
else
  targets=("${fuzzers[@]}")
  for s in "${suites[@]}"; do targets+=("$(basename "$s")"); done
  cmake --build build-san -j"$(nproc)" --target "${targets[@]}"
fi
t1=$(date +%s)
# Leaks count as failures too; UBSan stops at its first report (also compiled in: -fno-sanitize-recover).
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [ "${FER_SANITIZE_QUICK:-0}" != 1 ]; then
  ctest --test-dir build-san --output-on-failure -j2 -LE gpu
else
  for s in "${suites[@]}"; do
    echo "== ASan+UBSan: $s"
    (cd "$PWD" && "build-san/$s" --gtest_brief=1)
  done
  ctest --test-dir build-san --output-on-failure -j2 -L fuzz
fi
t2=$(date +%s)
tests/fuzz/run_fuzz.sh build-san "${FER_FUZZ_SECONDS:-30}"
t3=$(date +%s)
echo "sanitize.sh: build $((t1 - t0)) s, sanitized tests $((t2 - t1)) s, fuzzing $((t3 - t2)) s, total $((t3 - t0)) s"
