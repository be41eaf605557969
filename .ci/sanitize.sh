#!/usr/bin/env bash
# CI, after the README's test command (.ci/run): the CPU test suite built with clang under
# AddressSanitizer + UndefinedBehaviorSanitizer, then a short run of every libFuzzer target
# (tests/fuzz). One build (build-san, -DFER_FUZZ=ON, which implies -DFER_SANITIZE=ON) serves both;
# the CUDA backend is compiled out (-DFER_CUDA=OFF): sanitizers do not instrument device code.
# FER_FUZZ_SECONDS sets the seconds per fuzz target (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
CC=clang CXX=clang++ cmake -S . -B build-san -G Ninja -DFER_CUDA=OFF -DFER_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-san -j"$(nproc)"
t1=$(date +%s)
# Leaks count as failures too; UBSan stops at its first report (also compiled in: -fno-sanitize-recover).
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-san --output-on-failure -j2 -LE gpu
t2=$(date +%s)
tests/fuzz/run_fuzz.sh build-san "${FER_FUZZ_SECONDS:-30}"
t3=$(date +%s)
echo "sanitize.sh: build $((t1 - t0)) s, sanitized tests $((t2 - t1)) s, fuzzing $((t3 - t2)) s, total $((t3 - t0)) s"
