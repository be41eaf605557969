#!/usr/bin/env bash
# The GPU run in one command, for a lent GPU machine (no package registry, no -dev packages; the
# checkout plus the staged .deps/ folder of bench/stage_deps.sh are sent along).
#
#   bash bench/gpu_suite.sh                   the whole run: every stage below, in order
#   bash bench/gpu_suite.sh --rerun STAGE...  the second entry point: only the named stages, on
#                                             the build already there (build = incremental)
#   bash bench/gpu_suite.sh --check-budgets   only checks that the default stages' budgets fit the total
#   bash bench/gpu_suite.sh --rehearse        on a machine WITHOUT a GPU (this CPU machine): stage,
#                                             size check, a build that cannot see this machine's
#                                             Debian -dev packages or the CUDA toolkit's own
#                                             cuDNN/cuBLAS (they come from the pip wheels of the
#                                             versions on the GPU image, downloaded here), the GPU
#                                             tests (they skip), and checks that the binaries took
#                                             nothing from where the GPU machine has nothing.
#                                             Writes bench/results/<date>-rehearsal.md.
#
# Stages, in order of value, each with its time budget in seconds (a stage is killed at its
# budget; the whole run is at most 480 s = 8 minutes of the 10 a command may run on the GPU
# machine, which leaves room for its start and for one rerun of failed stages in the 15 minutes
# of device time a task is lent). Why each budget:
#   probe     10  nvidia-smi, nvcc, python3 imports: a second each.
#   build    130  arch 90 only, all cores: 13 .cu files and ~80 C++ files; the 2-core CPU machine
#                 builds everything in ~6 minutes, 16 cores in well under 2.
#   test      80  ctest -L gpu, 8 tests at once with 2 CPU threads each (16 cores not oversubscribed):
#                 ~220 tests, each its own process with a CUDA context and cuDNN/cuBLAS handles
#                 (0.6-2 s each before any work; 3-5 s for the model parity tests, whose CPU side
#                 runs at batch 8, and cuDNN's algorithm search once per shape). At 4 at once a
#                 review estimated ~70 s: too close to 80, hence 8.
#   train     30  model5-v2, 3 epochs on the 4,096-row cut (24 steps of 128 each): a few seconds of
#                 GPU work after loading 35 MB of CSV; shows the loss falling, img/s, loader stall.
#   train-bf16 20 the same run with --precision bf16 (cuDNN/cuBLAS bf16 operands), 2 epochs: the
#                 loss must fall in bf16 too.
#   bench     75  fer_gpu bench --device both for model5-v2 and model8, then --device cuda
#                 --precision bf16 for both: the GPU parts take seconds; the CPU part (3 warm-up +
#                 3 x 10 steps at batch 128 on 16 cores) dominates.
#   peers     70  PyTorch on the same two models, modes channels_last, bf16 (channels_last + bf16
#                 autocast, the peer of fer_gpu's bf16 column) and cudagraph (no torch.compile:
#                 its start alone can take a minute).
#   memcheck  40  compute-sanitizer memcheck on the custom-kernel tests only (cuDNN/cuBLAS tests
#                 are left out: the sanitizer slows their algorithm search 10-100x).
#   longrun   25  model5-v2 for 50 epochs on the cut (1,200 steps, ~154k images: ~15 s at the
#                 10k img/s the H200 should reach), only with the time left over; its budget is
#                 whatever remains of the 480 s, at most 25.
#   ---------
#   total    480  (the caps add up to exactly 480; longrun runs only with at least 15 s left)
# racecheck (not in the default list; name it with --rerun) has no budget of its own: FER_BUDGET_racecheck.
#
# The summary ($OUT/gpu_suite_summary.md, else build-gpu-suite-logs/) is rewritten after EVERY
# stage, so a run killed at the command's limit still returns what it learned.
#
# Environment:
#   FER_CUDA_ARCH (90), FER_SUITE_BUILD_DIR (build-gpu-suite), FER_SUITE_JOBS (8 ctest jobs),
#   FER_BUDGET_<stage> (seconds, overrides the table above), FER_SUITE_TOTAL (480),
#   FER_WHEELS (rehearsal: folder the NVIDIA wheels are pip-installed into, default
#   ../wheels-fer-gpu; never inside the checkout), OUT (folder receiving summary and logs).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2

# ------------------------------------------------------------------ budgets (seconds)
declare -A BUDGET=([probe]=10 [build]=130 [test]=80 [train]=30 [train-bf16]=20 [bench]=75 [peers]=70 [memcheck]=40 [longrun]=25
                   [racecheck]=120 [stage]=600 [rehearse-build]=5400 [rehearse-test]=900 [rehearse-check]=120)
TOTAL_BUDGET="${FER_SUITE_TOTAL:-480}"
DEFAULT_STAGES=(probe build test train train-bf16 bench peers memcheck longrun)
REHEARSE_STAGES=(stage rehearse-build rehearse-check rehearse-test)
for s in "${!BUDGET[@]}"; do
  v="FER_BUDGET_${s//-/_}"
  [ -n "${!v:-}" ] && BUDGET[$s]="${!v}"
done

# The default stages' caps must fit the run's total (the command limit on the GPU machine is
# 600 s, and a rerun must still fit in the 15 device minutes): checked on every start, and by
# ctest (gpu_suite.budgets_fit) on every CI run.
budget_sum=0
for s in "${DEFAULT_STAGES[@]}"; do budget_sum=$(( budget_sum + BUDGET[$s] )); done
if [ "$budget_sum" -gt "$TOTAL_BUDGET" ]; then
  echo "gpu_suite.sh: the default stages' budgets add up to $budget_sum s, more than the total $TOTAL_BUDGET s"
  exit 2
fi

MODE=run
case "${1:-}" in
  --check-budgets) echo "default stages: ${DEFAULT_STAGES[*]}; budgets add up to $budget_sum s of $TOTAL_BUDGET s"; exit 0 ;;
  --rehearse) MODE=rehearse; shift ;;
  --rerun) MODE=rerun; shift ;;
  -h|--help) sed -n '2,50p' "$0"; exit 0 ;;
esac
STAGES=("$@")
if [ ${#STAGES[@]} -eq 0 ]; then
  case "$MODE" in
    run) STAGES=("${DEFAULT_STAGES[@]}") ;;
    rehearse) STAGES=("${REHEARSE_STAGES[@]}") ;;
    rerun) echo "--rerun needs stage names: ${DEFAULT_STAGES[*]} racecheck"; exit 2 ;;
  esac
fi

ARCH="${FER_CUDA_ARCH:-90}"
BUILD="${FER_SUITE_BUILD_DIR:-build-gpu-suite}"
JOBS="${FER_SUITE_JOBS:-8}"
NPROC="$(nproc)"
THREADS_PER_TEST=$(( NPROC / JOBS > 0 ? NPROC / JOBS : 1 ))
[ "$MODE" = rehearse ] && BUILD="${FER_SUITE_BUILD_DIR:-build-rehearsal}"
WHEELS="${FER_WHEELS:-$(dirname "$ROOT")/wheels-fer-gpu}"
# The wheel versions on the GPU image (torch 2.11.0+cu130 pins them: nvidia-cudnn-cu13==9.19.0.56,
# cuda-toolkit[cublas]==13.0.2 -> nvidia-cublas 13.1.0.3).
WHEEL_SPECS=("nvidia-cudnn-cu13==9.19.0.56" "cuda-toolkit[cublas]==13.0.2")
# Tests that provoke a CUDA API error on purpose (a petabyte allocation, device ordinal 1000).
API_ERROR_TESTS="CudaBackendBasics.OutOfMemoryNamesBytesAndFree:CudaBackendBasics.MissingDeviceOrdinalIsAClearError"
# The custom kernels' tests (kernels/cuda): no cuDNN/cuBLAS inside.
CUSTOM_KERNEL_TESTS="ActivationParity*:BatchNormParity*:PoolParity*:PoolCoveringWindows*:DropoutParity*:SoftmaxXentParity*:AdamParity*:SgdParity*:ImagesToFloatParity*:ChannelReduction*:CudaBackendBasics.CopyFillRoundTrip"
CUT="$ROOT/.deps/data/fer2013-cut.csv"

for d in /usr/local/cuda/bin /usr/local/cuda/compute-sanitizer; do
  [ -d "$d" ] && case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
done
export PATH

LOGDIR="${OUT:-$ROOT/$BUILD-logs}"
mkdir -p "$LOGDIR"
SUMMARY="$LOGDIR/gpu_suite_summary.md"
ROWS=()  # "stage|result|budget|seconds|note"
T_START=$(date +%s)
have() { command -v "$1" >/dev/null 2>&1; }
now() { date +%s; }
elapsed() { echo $(( $(now) - T_START )); }

write_summary() {
  {
    echo "# fer_gpu GPU suite ($MODE)"
    echo
    echo '```'
    cat "$LOGDIR/gpu_suite_env.txt" 2>/dev/null
    echo '```'
    echo
    echo "| stage | result | budget s | seconds | note |"
    echo "|---|---|---|---|---|"
    for r in "${ROWS[@]}"; do echo "| ${r//|/ | } |"; done
    echo
    echo "elapsed: $(elapsed) s of $TOTAL_BUDGET"
  } >"$SUMMARY.tmp" && mv "$SUMMARY.tmp" "$SUMMARY"
}
row() { ROWS+=("$1|$2|$3|$4|$5"); write_summary; }

# run_budgeted STAGE LOG CMD...: runs CMD with the stage's budget, output to LOG; returns its status
# (124 when the budget ran out).
run_budgeted() {
  local stage="$1" log="$2"; shift 2
  timeout --kill-after=5 "${BUDGET[$stage]}" "$@" >>"$log" 2>&1
}

# ------------------------------------------------------------------ environment
{
  echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host:      $(hostname 2>/dev/null || echo '?'), $NPROC CPUs"
  echo "commit:    $(git rev-parse HEAD 2>/dev/null || echo 'unknown (no git metadata)')$([ -n "$(git status --porcelain 2>/dev/null)" ] && echo ' (plus uncommitted changes)')"
  echo "command:   bench/gpu_suite.sh ${MODE/run/} ${STAGES[*]}  (arch $ARCH, build $BUILD)"
} >"$LOGDIR/gpu_suite_env.txt"
write_summary

# ------------------------------------------------------------------ deps
if [ -d "$ROOT/.deps" ] && [ "$MODE" != rehearse ]; then
  bash "$ROOT/bench/unstage_deps.sh" >/dev/null || echo "unstage_deps failed"
fi

# The python3 whose site-packages hold the NVIDIA wheels: the GPU image's own, or in a rehearsal
# the folder the wheels are installed into (PYTHONPATH).
PYTHON_FOR_WHEELS="$(command -v python3 || true)"

cmake_args() {
  local a=(-S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFER_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH"
           "-DFER_PYTHON=$PYTHON_FOR_WHEELS")
  have ninja && a+=(-G Ninja)
  if [ -d "$ROOT/.deps" ]; then
    # Only the staged folder: /usr's headers, libraries and CMake packages are not looked at (the
    # GPU machine has none of the -dev ones; here they must not be taken by accident).
    a+=("-DFER_DEPS_DIR=$ROOT/.deps")
    # ... unless the CUDA toolkit itself lives in /usr (a distribution's nvcc in /usr/bin): then
    # hiding /usr would hide cudart too.
    case "$(readlink -f "$(command -v nvcc 2>/dev/null)" 2>/dev/null)" in
      /usr/bin/*|/usr/lib/*) [ "$MODE" = rehearse ] && a+=("-DCMAKE_IGNORE_PREFIX_PATH=/usr") ;;
      *) a+=("-DCMAKE_IGNORE_PREFIX_PATH=/usr") ;;
    esac
  fi
  if [ "$MODE" = rehearse ]; then
    a+=(-DFER_CUDA_LIBS_FROM=pip -DFER_ONEDNN=OFF)
    # ccache changes nothing that is seen, and makes a second rehearsal quick.
    have ccache && a+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  fi
  [ -n "${FER_CMAKE_EXTRA:-}" ] && a+=($FER_CMAKE_EXTRA)
  printf '%s\n' "${a[@]}"
}

# ------------------------------------------------------------------ stages
stage_probe() {
  local log="$LOGDIR/gpu_suite_probe.txt" t0; t0=$(now)
  {
    if have nvidia-smi; then
      nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm --format=csv 2>&1
    else
      echo "nvidia-smi: not found"
    fi
    have nvcc && nvcc --version | tail -n 2 || echo "nvcc: not on PATH"
    echo "cmake: $(cmake --version 2>/dev/null | head -n 1); ninja: $(ninja --version 2>/dev/null || echo none)"
    have compute-sanitizer && compute-sanitizer --version 2>/dev/null | tail -n 1 || echo "compute-sanitizer: not on PATH"
    for h in "${CUDNN_ROOT:-/nonexistent}/include/cudnn_version.h" /usr/local/cuda/include/cudnn_version.h; do
      [ -f "$h" ] && echo "cuDNN header: $h $(awk '/#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{printf "%s%s", s, $3; s="."}' "$h")"
    done
    "$PYTHON_FOR_WHEELS" - <<'PY' 2>&1
import importlib, os
for mod, dist in (("nvidia.cudnn", "nvidia-cudnn-cu13"), ("nvidia.cu13", "nvidia-cublas"), ("torch", "torch")):
    try:
        m = importlib.import_module(mod)
        from importlib import metadata
        try:
            v = metadata.version(dist)
        except Exception:
            v = "?"
        print("python %s: %s %s at %s" % (mod, dist, v, list(getattr(m, "__path__", [""]))[0]))
    except Exception as e:
        print("python %s: not importable (%s)" % (mod, e))
try:
    import torch
    print("torch %s cuda %s device %s cudnn %s" % (torch.__version__, torch.version.cuda,
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none", torch.backends.cudnn.version()))
except Exception as e:
    print("torch: %s" % e)
PY
  } >"$log" 2>&1
  cat "$log" | tee -a "$LOGDIR/gpu_suite_env.txt" >/dev/null
  local gpu; gpu=$(grep -v '^name' "$log" | head -n 1)
  row probe PASS "${BUDGET[probe]}" $(( $(now) - t0 )) "$(echo "$gpu" | cut -c1-80)"
}

stage_build() {
  local log="$LOGDIR/gpu_suite_build.log" t0 budget_stage="${1:-build}"; t0=$(now)
  : >"$log"
  [ "$MODE" != rerun ] && rm -rf "$BUILD"
  local args; mapfile -t args < <(cmake_args)
  echo "+ cmake ${args[*]}" >>"$log"
  if run_budgeted "$budget_stage" "$log" cmake "${args[@]}" &&
     run_budgeted "$budget_stage" "$log" cmake --build "$BUILD" -j "$NPROC"; then
    local took; took=$(grep -E 'fer_gpu: (cuDNN|cuBLAS|BLAS)' "$log" | sed 's/^-- fer_gpu: //' | cut -d: -f1 | tr '\n' ';')
    row "$budget_stage" PASS "${BUDGET[$budget_stage]}" $(( $(now) - t0 )) "arch $ARCH; $took"
  else
    tail -n 30 "$log"
    row "$budget_stage" FAIL "${BUDGET[$budget_stage]}" $(( $(now) - t0 )) "see gpu_suite_build.log"
  fi
  grep -E 'fer_gpu: ' "$log" | sed 's/^-- //' >>"$LOGDIR/gpu_suite_env.txt"
}

stage_test() {
  local stage="${1:-test}" log="$LOGDIR/gpu_suite_ctest.log" t0; t0=$(now)
  : >"$log"
  OMP_NUM_THREADS=$THREADS_PER_TEST OPENBLAS_NUM_THREADS=$THREADS_PER_TEST \
    run_budgeted "$stage" "$log" ctest --test-dir "$BUILD" -L gpu -j "$JOBS" --output-on-failure
  local rc=$?
  local passed skipped failed
  passed=$(grep -E 'Test +#[0-9]+: ' "$log" | grep -cE ' Passed +[0-9.]+ sec')
  skipped=$(grep -E 'Test +#[0-9]+: ' "$log" | grep -cE '\*\*\*Skipped')
  failed=$(grep -E 'Test +#[0-9]+: ' "$log" | grep -cE '\*\*\*(Failed|Exception|Timeout|Not Run)|Failed +[0-9.]+ sec')
  tail -n 15 "$log"
  local result=PASS
  [ "$rc" -ne 0 ] && result=FAIL
  [ $((passed + skipped)) -eq 0 ] && result=FAIL
  [ "$rc" -eq 124 ] && result="FAIL (budget)"
  local note="$passed passed, $failed failed, $skipped skipped; $THREADS_PER_TEST threads/test"
  # On the GPU machine a run where every test skipped is no pass: the CUDA runtime saw no device
  # (a driver older than the toolkit, say), and the rest of the window must not be spent as if
  # the tests had run. The rehearsal has no GPU, so skipping is all it can do there.
  if [ "$MODE" != rehearse ] && [ "$passed" -eq 0 ] && [ "$skipped" -gt 0 ]; then
    result="FAIL (all skipped)"
    note="every test skipped: the CUDA runtime saw no usable device (see the probe stage and gpu_suite_ctest.log); $note"
  fi
  row "$stage" "$result" "${BUDGET[$stage]}" $(( $(now) - t0 )) "$note"
}

# train_run STAGE EPOCHS [ARGS...]: fer_gpu train on the cut (ARGS added to its command line); the
# verdict reads history.csv.
train_run() {
  local stage="$1" epochs="$2" t0; t0=$(now)
  shift 2
  local fer="$BUILD/tools/fer_gpu" dir="$BUILD/run-$stage" log="$LOGDIR/gpu_suite_$stage.log"
  if [ ! -x "$fer" ]; then row "$stage" SKIP "${BUDGET[$stage]}" 0 "no fer_gpu binary"; return; fi
  if [ ! -s "$CUT" ]; then row "$stage" SKIP "${BUDGET[$stage]}" 0 "no data cut ($CUT)"; return; fi
  rm -rf "$dir"
  echo "+ $fer train configs/model5-v2.toml --data $CUT --device cuda --epochs $epochs --out $dir $*" >"$log"
  run_budgeted "$stage" "$log" "$fer" train configs/model5-v2.toml --data "$CUT" --device cuda \
    --epochs "$epochs" --out "$dir" "$@"
  local rc=$?
  [ -f "$dir/history.csv" ] && cp "$dir/history.csv" "$LOGDIR/gpu_suite_${stage}_history.csv"
  local verdict
  verdict=$(python3 - "$dir/history.csv" <<'PY'
import csv, sys
try:
    rows = list(csv.DictReader(open(sys.argv[1])))
except Exception as e:
    print("FAIL|no history (%s)" % e); sys.exit()
if not rows:
    print("FAIL|no epoch finished"); sys.exit()
loss = [float(r["loss"]) for r in rows]
ips = sorted(float(r["images_per_second"]) for r in rows[1:] or rows)
stall = sum(float(r["loader_stall_seconds"]) for r in rows)
ok = len(rows) == 1 or loss[-1] < loss[0]
print("%s|%d epochs, loss %.4f -> %.4f, val_acc %.3f (best %.3f), %.0f img/s (median after epoch 1), loader stall %.2f s"
      % ("PASS" if ok else "FAIL", len(rows), loss[0], loss[-1], float(rows[-1]["val_accuracy"]),
         max(float(r["val_accuracy"]) for r in rows), ips[len(ips) // 2], stall))
PY
)
  local result="${verdict%%|*}" note="${verdict#*|}"
  [ "$rc" -ne 0 ] && { result=FAIL; note="exit $rc; $note"; tail -n 20 "$log"; }
  [ "$rc" -eq 124 ] && note="stopped at its budget; $note"
  row "$stage" "$result" "${BUDGET[$stage]}" $(( $(now) - t0 )) "$note"
}

# The bench and peers stages are bench/gpu_bench.sh's stages on the two models named in issue 12.
bench_stage() {
  local stage="$1" which="$2" t0; t0=$(now)
  local log="$LOGDIR/gpu_suite_$stage.log"
  FER_SUITE_BUILD_DIR="$BUILD" FER_SUITE_CONFIGS="model5-v2 model8" FER_SUITE_FRESH=1 \
    FER_SUITE_TORCH_MODES="channels_last,bf16,cudagraph" FER_SUITE_PRECISIONS="bf16" \
    run_budgeted "$stage" "$log" bash bench/gpu_bench.sh "$which"
  local rc=$?
  tail -n 30 "$log"
  local result=PASS note
  [ "$rc" -ne 0 ] && result=FAIL
  [ "$rc" -eq 124 ] && result="FAIL (budget)"
  note=$(grep -hE 'images/s|img/s|train' "$log" | tail -n 4 | tr '\n' ' ' | cut -c1-200)
  grep -q "peers skipped" "$log" && { result=SKIP; note="PyTorch with CUDA not available"; }
  cp "$BUILD"/gpu-bench/*.json "$LOGDIR/" 2>/dev/null
  row "$stage" "$result" "${BUDGET[$stage]}" $(( $(now) - t0 )) "rc $rc; $note"
}

gpu_test_executables() {
  find "$BUILD/tests/gpu" -maxdepth 1 -type f -name 'fer_gpu_*' -perm -u+x 2>/dev/null | sort
}

# sanitize TOOL FILTER: compute-sanitizer over the GPU test executables. The tests that provoke an
# API error on purpose run in a second, separate invocation with --report-api-errors no: their
# memory accesses are still checked, their intended errors do not count. Every other test runs with
# API errors reported (explicit calls), so an unintended one fails the stage.
sanitize() {
  local stage="$1" tool="$2" filter="$3" t0; t0=$(now)
  local log="$LOGDIR/gpu_suite_$stage.log"
  : >"$log"
  if ! have compute-sanitizer; then row "$stage" SKIP "${BUDGET[$stage]}" 0 "compute-sanitizer not found"; return; fi
  local status=0 exe summaries=""
  local deadline=$(( $(now) + BUDGET[$stage] ))
  for exe in $(gpu_test_executables); do
    case "$(basename "$exe")" in fer_gpu_host_*) continue ;; esac
    local pass
    for pass in main api-errors; do
      local left=$(( deadline - $(now) ))
      [ "$left" -le 0 ] && { status=124; break 2; }
      local f="$filter" api=explicit
      if [ "$pass" = main ]; then f="$filter-$API_ERROR_TESTS"; [[ "$filter" == *-* ]] && f="$filter:$API_ERROR_TESTS"
      else f="$API_ERROR_TESTS"; api=no; fi
      echo "=== compute-sanitizer --tool $tool --report-api-errors $api $(basename "$exe") --gtest_filter=$f" >>"$log"
      timeout --kill-after=5 "$left" compute-sanitizer --tool "$tool" --report-api-errors "$api" --error-exitcode 99 \
        "$exe" --gtest_brief=1 "--gtest_filter=$f" >>"$log" 2>&1
      local rc=$?
      [ "$rc" -ne 0 ] && status=$rc
      summaries+="$(basename "$exe")/$pass: $(grep -E '(ERROR|RACECHECK) SUMMARY' "$log" | tail -n 1 | sed 's/=* *//') rc $rc; "
    done
  done
  grep -E '(ERROR|RACECHECK) SUMMARY|^=== ' "$log"
  local result=PASS
  [ "$status" -ne 0 ] && result=FAIL
  [ "$status" -eq 124 ] && result="FAIL (budget)"
  row "$stage" "$result" "${BUDGET[$stage]}" $(( $(now) - t0 )) "$summaries"
}

# ------------------------------------------------------------------ rehearsal stages
stage_stage() {
  local t0 log="$LOGDIR/gpu_suite_stage.log"; t0=$(now)
  if run_budgeted stage "$log" bash bench/stage_deps.sh && bash bench/unstage_deps.sh >>"$log" 2>&1; then
    row stage PASS "${BUDGET[stage]}" $(( $(now) - t0 )) "$(grep -E '^sent:' "$log" | sed 's/^sent: //')"
  else
    tail -n 20 "$log"
    row stage FAIL "${BUDGET[stage]}" $(( $(now) - t0 )) "$(grep -E '^(sent|ldd|too large)' "$log" | tr '\n' ' ')"
  fi
  SENT_MIB=$(awk '{printf "%.1f", $1 / 1048576}' "$ROOT/.deps/SENT_BYTES" 2>/dev/null)
}

# The wheels of the GPU image's versions, pip-installed into $WHEELS (outside the checkout).
ensure_wheels() {
  if [ ! -d "$WHEELS/nvidia/cudnn/lib" ] || [ ! -d "$WHEELS/nvidia/cu13/lib" ]; then
    echo "+ pip install --target $WHEELS ${WHEEL_SPECS[*]}"
    python3 -m pip install --quiet --no-compile --target "$WHEELS" "${WHEEL_SPECS[@]}" ||
      python3 -m pip install --quiet --no-compile --break-system-packages --target "$WHEELS" "${WHEEL_SPECS[@]}" ||
      return 1
  fi
  export PYTHONPATH="$WHEELS${PYTHONPATH:+:$PYTHONPATH}"
}

stage_rehearse_build() {
  local log="$LOGDIR/gpu_suite_build.log"
  if ! ensure_wheels >"$LOGDIR/gpu_suite_wheels.log" 2>&1; then
    row rehearse-build FAIL "${BUDGET[rehearse-build]}" 0 "pip install of the wheels failed: gpu_suite_wheels.log"
    return
  fi
  bash bench/unstage_deps.sh >/dev/null 2>&1
  stage_build rehearse-build
}

# What the build took must come from where the GPU machine has it: headers (ninja's dependency
# records), link lines, and every binary's resolved libraries (ldd, with no LD_LIBRARY_PATH).
stage_rehearse_check() {
  local t0 log="$LOGDIR/gpu_suite_check.log"; t0=$(now)
  : >"$log"
  if [ ! -x "$BUILD/tools/fer_gpu" ]; then row rehearse-check FAIL "${BUDGET[rehearse-check]}" 0 "no build"; return; fi
  local status=0
  local forbidden_headers='^ */usr/(include/(toml\+\+|CLI|nlohmann|stb|libexif|gtest|gmock|oneapi|dnnl|x86_64-linux-gnu/(openblas|cblas))|src/googletest)|/usr/local/cuda[^ ]*/include/(cudnn|cublas)'
  if (cd "$BUILD" && ninja -t deps) | grep -E "$forbidden_headers" | sort -u >"$log.h"; [ -s "$log.h" ]; then
    echo "headers taken from outside the staged folder/wheels:" >>"$log"; head -n 20 "$log.h" >>"$log"; status=1
  fi
  local forbidden_libs='/usr/lib/x86_64-linux-gnu/(libopenblas|libblas|libexif|libgtest|libdnnl|libcudnn|libcublas)|/usr/local/cuda[^ ]*/lib[^ ]*/lib(cudnn|cublas)'
  if (cd "$BUILD" && ninja -t commands) | grep -oE "$forbidden_libs[^ ]*" | sort -u >"$log.l"; [ -s "$log.l" ]; then
    echo "link lines name libraries from outside:" >>"$log"; cat "$log.l" >>"$log"; status=1
  fi
  local bins=("$BUILD/tools/fer_gpu" $(gpu_test_executables))
  local want_cudnn="$WHEELS/nvidia/cudnn/lib" want_cublas="$WHEELS/nvidia/cu13/lib" want_deps="$ROOT/.deps/lib"
  for b in "${bins[@]}"; do
    while read -r name _ path _; do
      local real; real=$(readlink -f "$path" 2>/dev/null)
      case "$name" in
        libcudnn*) [[ "$real" == "$(readlink -f "$want_cudnn")"/* ]] || { echo "$b: $name -> $real (want $want_cudnn)" >>"$log"; status=1; } ;;
        libcublas*) [[ "$real" == "$(readlink -f "$want_cublas")"/* ]] || { echo "$b: $name -> $real (want $want_cublas)" >>"$log"; status=1; } ;;
        libopenblas*|libexif*|libgfortran*|libquadmath*) [[ "$real" == "$(readlink -f "$want_deps")"/* ]] || { echo "$b: $name -> $real (want $want_deps)" >>"$log"; status=1; } ;;
        libdnnl*|libgtest*) echo "$b: $name -> $real (not on the GPU machine)" >>"$log"; status=1 ;;
      esac
    done < <(env -u LD_LIBRARY_PATH ldd "$b" | grep '=>')
    if env -u LD_LIBRARY_PATH ldd "$b" | grep -q 'not found'; then
      echo "$b: $(env -u LD_LIBRARY_PATH ldd "$b" | grep 'not found' | tr '\n' ' ')" >>"$log"; status=1
    fi
  done
  # cuDNN's sub-libraries are dlopened by soname from libcudnn.so.9's folder ($ORIGIN): present?
  for sub in libcudnn_cnn.so.9 libcudnn_ops.so.9 libcudnn_graph.so.9 libcudnn_engines_precompiled.so.9; do
    [ -f "$want_cudnn/$sub" ] || { echo "missing $want_cudnn/$sub" >>"$log"; status=1; }
  done
  {
    echo "fer_gpu resolves (no LD_LIBRARY_PATH):"
    env -u LD_LIBRARY_PATH ldd "$BUILD/tools/fer_gpu" | grep -E 'cudnn|cublas|openblas|exif|gfortran|quadmath|cudart'
  } >>"$log"
  cat "$log"
  local result=PASS; [ "$status" -ne 0 ] && result=FAIL
  row rehearse-check "$result" "${BUDGET[rehearse-check]}" $(( $(now) - t0 )) \
    "$([ $status -eq 0 ] && echo "no header, link line or resolved library from /usr's -dev packages or the toolkit's cuDNN/cuBLAS; ${#bins[@]} binaries ldd-checked" || echo 'see gpu_suite_check.log')"
}

write_rehearsal_record() {
  local date commit file
  date=$(date -u +%Y-%m-%d); commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  file="$ROOT/bench/results/$date-rehearsal.md"
  mkdir -p "$(dirname "$file")"
  {
    echo "# GPU-run rehearsal on a machine without a GPU, $date"
    echo
    echo "- Command: \`bash bench/gpu_suite.sh --rehearse\` (from a fresh clone, ../shared beside it)"
    echo "- Commit: \`$commit\`$([ -n "$(git status --porcelain -- . ':(exclude)bench/results/*-rehearsal.md' 2>/dev/null)" ] && echo ' (plus uncommitted changes)')"
    echo "- Machine: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $NPROC CPUs, no GPU; $(nvcc --version 2>/dev/null | tail -n 1)"
    echo "- Wheels (the GPU image's versions): ${WHEEL_SPECS[*]}, pip-installed into $WHEELS"
    echo "- Sent to the GPU machine: ${SENT_MIB:-?} MiB (checkout + .deps), limit 64 MiB"
    echo
    echo "| stage | result | budget s | seconds | note |"
    echo "|---|---|---|---|---|"
    for r in "${ROWS[@]}"; do echo "| ${r//|/ | } |"; done
    echo
    echo "What the configure took:"
    echo
    echo '```'
    grep -E 'fer_gpu: ' "$LOGDIR/gpu_suite_build.log" | sed 's/^-- //'
    echo '```'
    echo
    echo "Resolved at run time without LD_LIBRARY_PATH:"
    echo
    echo '```'
    sed -n '/^fer_gpu resolves/,$p' "$LOGDIR/gpu_suite_check.log" 2>/dev/null | sed "s#$ROOT#<clone>#g; s#$WHEELS#<wheels>#g" | sed 's/ (0x[0-9a-f]*)//'
    echo '```'
  } >"$file"
  echo "rehearsal record: $file"
}

# ------------------------------------------------------------------ run
built() { [ -x "$BUILD/tools/fer_gpu" ]; }
for s in "${STAGES[@]}"; do
  echo
  echo "################ stage: $s ($(elapsed) s elapsed)"
  if [ "$MODE" != rehearse ] && [ "$(elapsed)" -ge "$TOTAL_BUDGET" ]; then
    row "$s" SKIP "${BUDGET[$s]:-?}" 0 "no time left of $TOTAL_BUDGET s"; continue
  fi
  case "$s" in
    probe) stage_probe ;;
    build) stage_build build ;;
    test) if built; then stage_test test; else row test SKIP "${BUDGET[test]}" 0 "no build"; fi ;;
    train) train_run train 3 ;;
    train-bf16) train_run train-bf16 2 --precision bf16 ;;
    bench) if built; then bench_stage bench fer; else row bench SKIP "${BUDGET[bench]}" 0 "no build"; fi ;;
    peers) bench_stage peers peers ;;
    memcheck) if built; then sanitize memcheck memcheck "$CUSTOM_KERNEL_TESTS"; else row memcheck SKIP "${BUDGET[memcheck]}" 0 "no build"; fi ;;
    racecheck) if built; then sanitize racecheck racecheck "$CUSTOM_KERNEL_TESTS"; else row racecheck SKIP "${BUDGET[racecheck]}" 0 "no build"; fi ;;
    longrun)
      left=$(( TOTAL_BUDGET - $(elapsed) ))
      [ "$left" -lt "${BUDGET[longrun]}" ] && BUDGET[longrun]=$left
      if [ "$left" -lt 15 ]; then row longrun SKIP "$left" 0 "under 15 s left"; else train_run longrun 50; fi ;;
    stage) stage_stage ;;
    rehearse-build) stage_rehearse_build ;;
    rehearse-check) stage_rehearse_check ;;
    rehearse-test) if built; then stage_test rehearse-test; else row rehearse-test SKIP "${BUDGET[rehearse-test]}" 0 "no build"; fi ;;
    *) row "$s" FAIL - 0 "unknown stage (${DEFAULT_STAGES[*]} racecheck; rehearsal: ${REHEARSE_STAGES[*]})" ;;
  esac
done

write_summary
echo
cat "$SUMMARY"
[ "$MODE" = rehearse ] && write_rehearsal_record
for f in "$LOGDIR"/gpu_suite_*.log; do  # the device tool returns files up to 16 MiB
  [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 15000000 ] && { tail -c 15000000 "$f" >"$f.tmp" && mv "$f.tmp" "$f"; }
done
for r in "${ROWS[@]}"; do
  case "$r" in *"|FAIL"*) exit 1 ;; esac
done
exit 0
