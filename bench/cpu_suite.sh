#!/usr/bin/env bash
# CPU comparison that runs on any machine: fer_gpu's CPU backend against PyTorch on the CPU (eager
# and channels_last) and Keras/TensorFlow on the CPU (a tf.function training step), same cores,
# same networks (built from the same configs/*.toml), same batch, synthetic data; one table.
# Writes bench/results/<date>-cpu-<host>.md with the CPU, core count, commit, commands, numbers and
# fer_gpu's per-layer profile of model5-v2.
#
# Usage: bench/cpu_suite.sh
# Environment:
#   FER_SUITE_CONFIGS    configs to run (default: model4 model5 model5-v2 model6 model7 model8)
#   FER_SUITE_WARMUP / FER_SUITE_STEPS / FER_SUITE_REPEATS   (default 3 / 10 / 2, for every framework)
#   FER_SUITE_THREADS    threads for every framework (default: nproc)
#   FER_PEERS_PYTHON     Python that has torch and/or tensorflow (default python3); a framework that
#                        does not import is skipped and the table says so
#   FER_SUITE_TORCH_MODES  (default eager,channels_last, plus bf16 = channels_last + bf16 autocast on
#                        CPUs with bf16 instructions)   FER_SUITE_KERAS_MODES (default graph)
#   FER_SUITE_PRECISIONS fer_gpu precisions to run, "fp32" and/or "bf16" (default: "fp32 bf16" on CPUs
#                        with AVX512-BF16 or AMX-BF16, else "fp32"); bf16 results go to fer_bf16_<config>.json
#   FER_GPU              an existing fer_gpu binary (default: build one in FER_SUITE_BUILD_DIR)
#   FER_SUITE_BUILD_DIR  (default build-cpu-suite)
#   FER_SUITE_PROFILE    config whose per-layer profile goes into the results (default model5-v2)
#   FER_SUITE_RESULTS    results file (default bench/results/<date>-cpu-<host>.md)
#   FER_SUITE_WAIT_IDLE  seconds to wait for the 1-minute load average to fall under 0.5 before
#                        starting (default 0: do not wait; the load is recorded either way)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
CONFIGS=(${FER_SUITE_CONFIGS:-model4 model5 model5-v2 model6 model7 model8})
WARMUP="${FER_SUITE_WARMUP:-3}"
STEPS="${FER_SUITE_STEPS:-10}"
REPEATS="${FER_SUITE_REPEATS:-2}"
THREADS="${FER_SUITE_THREADS:-$(nproc)}"
PY="${FER_PEERS_PYTHON:-python3}"
HAS_BF16=0; grep -q -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo && HAS_BF16=1
if [ "$HAS_BF16" = 1 ]; then
  TORCH_MODES="${FER_SUITE_TORCH_MODES:-eager,channels_last,bf16}"
  PRECISIONS=(${FER_SUITE_PRECISIONS:-fp32 bf16})
else
  TORCH_MODES="${FER_SUITE_TORCH_MODES:-eager,channels_last}"
  PRECISIONS=(${FER_SUITE_PRECISIONS:-fp32})
fi
KERAS_MODES="${FER_SUITE_KERAS_MODES:-graph}"
BUILD="${FER_SUITE_BUILD_DIR:-build-cpu-suite}"
PROFILE="${FER_SUITE_PROFILE:-model5-v2}"
HOST="$(hostname -s 2>/dev/null || hostname)"
DATE="$(date -u +%Y-%m-%d)"
RESULTS="${FER_SUITE_RESULTS:-bench/results/$DATE-cpu-$HOST.md}"
WORK="$BUILD/cpu-suite"
mkdir -p "$WORK" "$(dirname "$RESULTS")"
rm -f "$WORK"/*.json "$WORK"/*.txt

export OMP_NUM_THREADS="$THREADS"
export OPENBLAS_NUM_THREADS="$THREADS"
export TF_CPP_MIN_LOG_LEVEL=2
export PYTHONUNBUFFERED=1
COMMANDS=()
run() {  # run LOGFILE CMD...: records the command, tees its output
  local log="$1"; shift
  COMMANDS+=("$*")
  echo "+ $*"
  "$@" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

# ------------------------------------------------------------------ build
if [ -z "${FER_GPU:-}" ]; then
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  deps=(); [ -d "$ROOT/.deps" ] && deps=("-DFER_DEPS_DIR=$ROOT/.deps")
  echo "building fer_gpu (CPU only) in $BUILD"
  cmake -S . -B "$BUILD" ${gen[@]+"${gen[@]}"} ${deps[@]+"${deps[@]}"} -DFER_CUDA=OFF -DFER_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=Release >"$WORK/build.log" 2>&1 &&
    cmake --build "$BUILD" --target fer_gpu -j "$(nproc)" >>"$WORK/build.log" 2>&1 ||
    { tail -n 30 "$WORK/build.log"; echo "build failed"; exit 1; }
  FER_GPU="$BUILD/tools/fer_gpu"
fi

have_torch=0; have_tf=0
torch_version="not installed"; tf_version="not installed"
if v=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null); then have_torch=1; torch_version="$v"; fi
if v=$("$PY" -c 'import os; os.environ["TF_CPP_MIN_LOG_LEVEL"]="3"; import tensorflow as tf, keras; print(tf.__version__ + " / keras " + keras.__version__)' 2>/dev/null | tail -n 1); then
  [ -n "$v" ] && { have_tf=1; tf_version="$v"; }
fi

# ------------------------------------------------------------------ wait for a quiet machine
load1() { cut -d' ' -f1 /proc/loadavg; }
waited=0
while [ "${FER_SUITE_WAIT_IDLE:-0}" -gt "$waited" ] && awk "BEGIN{exit !($(load1) >= 0.5)}"; do
  sleep 10; waited=$((waited + 10))
done
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
T0=$(date +%s)

# ------------------------------------------------------------------ runs, interleaved per config
common=(--warmup "$WARMUP" --steps "$STEPS" --repeats "$REPEATS")
for c in "${CONFIGS[@]}"; do
  echo; echo "################ $c"
  echo "$c $(cut -d' ' -f1 /proc/loadavg)" >>"$WORK/load.txt"
  layers=(); [ "$c" = "$PROFILE" ] && layers=(--layers)
  for p in "${PRECISIONS[@]}"; do
    if [ "$p" = fp32 ]; then
      run "$WORK/fer_$c.txt" "$FER_GPU" bench "configs/$c.toml" --device cpu --precision fp32 "${common[@]}" \
        ${layers[@]+"${layers[@]}"} --json "$WORK/fer_$c.json"
    else
      run "$WORK/fer_${p}_$c.txt" "$FER_GPU" bench "configs/$c.toml" --device cpu --precision "$p" "${common[@]}" \
        ${layers[@]+"${layers[@]}"} --json "$WORK/fer_${p}_$c.json"
    fi
  done
  if [ "$have_torch" = 1 ]; then
    run "$WORK/torch_$c.txt" "$PY" bench/peers/torch_peer.py "configs/$c.toml" --device cpu --modes "$TORCH_MODES" \
      "${common[@]}" --threads "$THREADS" --json "$WORK/torch_$c.json"
  fi
  if [ "$have_tf" = 1 ]; then
    run "$WORK/keras_$c.txt" "$PY" bench/peers/keras_peer.py "configs/$c.toml" --modes "$KERAS_MODES" \
      "${common[@]}" --threads "$THREADS" --json "$WORK/keras_$c.json"
  fi
done
T1=$(date +%s)
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------------ results file
cfg_list=$(IFS=,; echo "${CONFIGS[*]}")
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
dirty=""; [ -n "$(git status --porcelain 2>/dev/null)" ] && dirty=" (plus uncommitted changes in the working tree)"
cpu_model="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)"
cores="$(lscpu 2>/dev/null | sed -n 's/^Core(s) per socket: *//p' | head -n 1)"
sockets="$(lscpu 2>/dev/null | sed -n 's/^Socket(s): *//p' | head -n 1)"
tpc="$(lscpu 2>/dev/null | sed -n 's/^Thread(s) per core: *//p' | head -n 1)"
flags="$(grep -m1 -o -w -E 'avx512f|avx512_bf16|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
{
  echo "# CPU benchmark: fer_gpu versus PyTorch and Keras/TensorFlow, $DATE, $HOST"
  echo
  echo "- CPU: ${cpu_model:-unknown}; ${sockets:-?} socket(s) x ${cores:-?} core(s), ${tpc:-?} thread(s) per core; $(nproc) CPUs usable; flags: $flags"
  echo "- Threads given to every framework: $THREADS (OMP_NUM_THREADS/OPENBLAS_NUM_THREADS for fer_gpu, torch.set_num_threads, TF intra/inter-op)"
  echo "- Commit: \`$commit\`$dirty"
  echo "- fer_gpu: its CPU backend, binary \`$FER_GPU\` (Release build of this tree)"
  echo "- PyTorch: $torch_version; Keras/TensorFlow: $tf_version; Python: $("$PY" --version 2>&1)"
  echo "- Every framework: batch from the config (128), FP32 unless the column says bf16 (fer_gpu --precision bf16:"
  echo "  bf16 convolution/dense operands, FP32 accumulation and master weights; PyTorch bf16: channels_last +"
  echo "  torch.autocast(cpu, bfloat16)), the config's augmentation, synthetic uint8 images"
  echo "  held in memory, $WARMUP warm-up steps then $REPEATS repeats of $STEPS timed steps. Cells: median over repeats"
  echo "  (best repeat); the last column compares medians."
  echo "- Load average (1, 5, 15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER; wall time $((T1 - T0)) s."
  echo "  1-minute load average when each config started: $(awk '{printf "%s%s %s", sep, $1, $2; sep=", "}' "$WORK/load.txt")."
  echo "  A load above ~0.5 means other work shared the cores: then the numbers of that config are lower bounds."
  echo
  echo "## Training throughput (images/s, higher is better)"
  echo
  python3 bench/peers/suite_table.py "$WORK" --configs "$cfg_list" --fer-device cpu --metric train --show-best
  echo
  echo "## Inference throughput (images/s, forward pass in inference mode)"
  echo
  python3 bench/peers/suite_table.py "$WORK" --configs "$cfg_list" --fer-device cpu --metric infer --show-best
  echo
  echo "GFLOP/step counts the multiply-adds of convolutions and dense layers (x2) plus the element-wise"
  echo "layers' own counts, forward + backward (backward = 2x forward for convolutions and dense layers)."
  [ "$have_torch" = 1 ] || echo "PyTorch was skipped: \`$PY -c 'import torch'\` failed."
  [ "$have_tf" = 1 ] || echo "Keras/TensorFlow was skipped: \`$PY -c 'import tensorflow'\` failed."
  for p in "${PRECISIONS[@]}"; do
    f="$WORK/fer_$PROFILE.txt"; [ "$p" = fp32 ] || f="$WORK/fer_${p}_$PROFILE.txt"
    if [ -f "$f" ]; then
      echo
      echo "## Where fer_gpu's CPU time goes: $PROFILE, $p"
      echo
      echo '```'
      cat "$f"
      echo '```'
    fi
  done
  echo
  echo "## Commands"
  echo
  echo '```'
  echo "bench/cpu_suite.sh   # FER_PEERS_PYTHON=$PY"
  for c in "${COMMANDS[@]}"; do echo "$c"; done
  echo '```'
} >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
echo
echo "results: $RESULTS"
sed -n '/^## Training/,/^## Where/p' "$RESULTS" | sed '$d'
