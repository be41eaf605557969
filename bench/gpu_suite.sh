#!/usr/bin/env bash
# GPU acceptance suite for a lent GPU machine (no package access needed):
#   1. build   configure a clean Release build (FER_DEPS_DIR=$PWD/.deps when that folder exists)
#   2. test    ctest -L gpu (CUDA parity tests + host-only CUDA-backend checks)
#   3. memcheck   the tests/gpu executables under compute-sanitizer --tool memcheck
#   4. racecheck  the same (minus the largest shapes) under compute-sanitizer --tool racecheck
# Every stage runs even when an earlier one failed (except that nothing runs without a build);
# a summary table goes to stdout and, with the environment/log files, into $OUT when it is set.
#
# Usage: bench/gpu_suite.sh [stage ...]      (default: build test memcheck racecheck)
# Environment:
#   FER_CUDA_ARCH        CMAKE_CUDA_ARCHITECTURES (default 90)
#   FER_SUITE_BUILD_DIR  build folder (default build-gpu-suite); `build` wipes it first
#   FER_SUITE_JOBS       parallel ctest jobs (default 8)
#   FER_SUITE_TIMEOUT    seconds allowed per sanitizer run (default 900)
#   FER_RACECHECK_FILTER gtest filter for racecheck (default: skip the biggest shapes)
#   OUT                  folder receiving summary and logs (optional)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
ARCH="${FER_CUDA_ARCH:-90}"
BUILD="${FER_SUITE_BUILD_DIR:-build-gpu-suite}"
JOBS="${FER_SUITE_JOBS:-8}"
SAN_TIMEOUT="${FER_SUITE_TIMEOUT:-900}"
RACE_FILTER="${FER_RACECHECK_FILTER:--*fer_first_layer*:*fer_mid_layer*:*fer_5x5_mid*:*n64_in4608*:*fer_48_p2*:*n1000003*:*rows9216_c64*:*relu_big*:*n100003*}"
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(build test memcheck racecheck)

# Pre-staged dependencies (bench/stage_deps.sh): expand them and let the binaries find OpenBLAS.
if [ -d "$ROOT/.deps" ]; then
  [ -x "$ROOT/bench/unstage_deps.sh" ] && bash "$ROOT/bench/unstage_deps.sh"
  export LD_LIBRARY_PATH="$ROOT/.deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# The CUDA tools may live outside PATH on a bare machine.
for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do
  [ -d "$d" ] && case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
done
export PATH

LOGDIR="${OUT:-$ROOT/$BUILD-logs}"
mkdir -p "$LOGDIR"
SUMMARY="$LOGDIR/gpu_suite_summary.md"
ROWS=()  # "stage|result|passed|failed|skipped|seconds|note"

have() { command -v "$1" >/dev/null 2>&1; }
now() { date +%s; }
row() { ROWS+=("$1|$2|$3|$4|$5|$6|$7"); }

# ------------------------------------------------------------------ environment
{
  echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host:      $(hostname 2>/dev/null || echo '?')"
  echo "commit:    $(git rev-parse HEAD 2>/dev/null || echo 'unknown (no git metadata)')"
  echo "command:   $0 ${STAGES[*]}  (CUDA arch $ARCH, build dir $BUILD)"
  if have nvidia-smi; then
    echo "gpu:       $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -n 4 | tr '\n' ';')"
    nvidia-smi 2>&1 | head -n 15
  else
    echo "gpu:       nvidia-smi not found"
  fi
  if have nvcc; then nvcc --version | tail -n 2; else echo "nvcc: not on PATH"; fi
  for h in /usr/local/cuda/include/cudnn_version.h /usr/include/cudnn_version.h \
           /usr/include/x86_64-linux-gnu/cudnn_version.h; do
    if [ -f "$h" ]; then
      echo "cuDNN:     $(awk '/#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{printf "%s%s", sep, $3; sep="."}' "$h") ($h)"
      break
    fi
  done
  echo "cmake:     $(cmake --version 2>/dev/null | head -n 1)"
  if have compute-sanitizer; then echo "sanitizer: $(compute-sanitizer --version 2>/dev/null | tail -n 1)"; else echo "sanitizer: compute-sanitizer not on PATH"; fi
} 2>&1 | tee "$LOGDIR/gpu_suite_env.txt"
HEADER="$(cat "$LOGDIR/gpu_suite_env.txt" | grep -E '^(date|host|commit|command|gpu|cuDNN):')"

# ------------------------------------------------------------------ stages
stage_build() {
  local t0; t0=$(now)
  rm -rf "$BUILD"
  local gen=(); have ninja && gen=(-G Ninja)
  local deps=(); [ -d "$ROOT/.deps" ] && deps=("-DFER_DEPS_DIR=$ROOT/.deps")
  local log="$LOGDIR/gpu_suite_build.log"
  if cmake -S . -B "$BUILD" ${gen[@]+"${gen[@]}"} ${deps[@]+"${deps[@]}"} -DCMAKE_BUILD_TYPE=Release -DFER_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES="$ARCH" >"$log" 2>&1 &&
     cmake --build "$BUILD" -j "$(nproc)" >>"$log" 2>&1; then
    row build PASS - 0 - $(( $(now) - t0 )) "arch $ARCH"
  else
    tail -n 40 "$log"
    row build FAIL - 1 - $(( $(now) - t0 )) "see gpu_suite_build.log"
  fi
}

stage_test() {
  local t0; t0=$(now)
  local log="$LOGDIR/gpu_suite_ctest.log"
  ctest --test-dir "$BUILD" -L gpu -j "$JOBS" --output-on-failure >"$log" 2>&1
  local rc=$?
  local passed failed skipped
  # ctest's per-test lines end in "Passed", "***Skipped", "***Failed", "***Timeout", ...
  passed=$(grep -E 'Test +#[0-9]+: ' "$log" | grep -cE '[. ]Passed +[0-9.]+ sec')
  skipped=$(grep -E 'Test +#[0-9]+: ' "$log" | grep -cE '\*\*\*Skipped')
  failed=$(grep -E 'Test +#[0-9]+: ' "$log" | grep -cE '\*\*\*(Failed|Exception|Timeout|Not Run)|[. ]Failed +[0-9.]+ sec')
  tail -n 25 "$log"
  local result=PASS
  [ "$rc" -ne 0 ] && result=FAIL
  [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ] && result=FAIL
  row "ctest -L gpu" "$result" "$passed" "$failed" "$skipped" $(( $(now) - t0 )) "rc $rc"
}

gpu_test_executables() {
  find "$BUILD/tests/gpu" -maxdepth 1 -type f -name 'fer_gpu_*' -perm -u+x 2>/dev/null | sort
}

# stage_sanitize TOOL [gtest filter]
stage_sanitize() {
  local tool="$1" filter="${2:-*}"
  local log="$LOGDIR/gpu_suite_$tool.log"
  : >"$log"
  if ! have compute-sanitizer; then
    row "$tool" SKIP - - - 0 "compute-sanitizer not found"
    return
  fi
  local exe
  for exe in $(gpu_test_executables); do
    local name t0 rc
    name=$(basename "$exe")
    case "$name" in fer_gpu_host_math_tests) continue ;; esac  # no device code to check
    t0=$(now)
    local part="$log.part"
    echo "=== compute-sanitizer --tool $tool $name (filter $filter)" >"$part"
    timeout "$SAN_TIMEOUT" compute-sanitizer --tool "$tool" --error-exitcode 99 \
      "$exe" --gtest_brief=1 --gtest_filter="$filter" >>"$part" 2>&1
    rc=$?
    local passed failed skipped errors note result
    passed=$(grep -oE '\[  PASSED  \] [0-9]+' "$part" | tail -n 1 | grep -oE '[0-9]+$')
    failed=$(grep -oE '\[  FAILED  \] [0-9]+ test' "$part" | tail -n 1 | grep -oE '[0-9]+')
    skipped=$(grep -oE '\[  SKIPPED \] [0-9]+' "$part" | tail -n 1 | grep -oE '[0-9]+$')
    errors=$(grep -E '(ERROR|RACECHECK) SUMMARY' "$part" | tail -n 1)
    cat "$part" >>"$log"
    rm -f "$part"
    note="rc $rc; ${errors:-no sanitizer summary}"
    result=PASS
    [ "$rc" -ne 0 ] && result=FAIL
    [ "$rc" -eq 124 ] && note="timed out after ${SAN_TIMEOUT}s; $note"
    row "$tool $name" "$result" "${passed:-0}" "${failed:-0}" "${skipped:-0}" $(( $(now) - t0 )) "$note"
  done
  grep -E '(ERROR|RACECHECK) SUMMARY|^=== ' "$log"
}

built() { [ -d "$BUILD/tests/gpu" ]; }

for s in "${STAGES[@]}"; do
  echo
  echo "################ stage: $s"
  case "$s" in
    build) stage_build ;;
    test) if built; then stage_test; else row "ctest -L gpu" SKIP - - - 0 "no build"; fi ;;
    memcheck) if built; then stage_sanitize memcheck '*'; else row memcheck SKIP - - - 0 "no build"; fi ;;
    racecheck) if built; then stage_sanitize racecheck "$RACE_FILTER"; else row racecheck SKIP - - - 0 "no build"; fi ;;
    *) row "$s" SKIP - - - 0 "unknown stage" ;;
  esac
done

# ------------------------------------------------------------------ summary
{
  echo "# fer_gpu GPU suite"
  echo
  echo '```'
  echo "$HEADER"
  echo '```'
  echo
  echo "| stage | result | passed | failed | skipped | seconds | note |"
  echo "|---|---|---|---|---|---|---|"
  for r in "${ROWS[@]}"; do echo "| ${r//|/ | } |"; done
} >"$SUMMARY"
echo
cat "$SUMMARY"

# Keep the returned logs under the size limits of the device tool (16 MiB a file).
for f in "$LOGDIR"/gpu_suite_*.log; do
  [ -f "$f" ] || continue
  if [ "$(stat -c %s "$f")" -gt 15000000 ]; then
    tail -c 15000000 "$f" >"$f.tmp" && mv "$f.tmp" "$f"
  fi
done

# Exit status: 0 only when no stage failed.
for r in "${ROWS[@]}"; do
  case "$r" in *"|FAIL|"*) exit 1 ;; esac
done
exit 0
