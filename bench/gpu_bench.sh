#!/usr/bin/env bash
# GPU benchmarks (called by, or beside, bench/gpu_suite.sh on a GPU machine): fer_gpu bench
# --device both --layers on the six configs, the PyTorch GPU peers in all their modes, a whole
# 50-epoch model5-v2 run (validation every epoch) of fer_gpu and of PyTorch on the real data when it
# is present, one comparison table, and bench/results/<date>-<device>.md (copied to $OUT when set).
#
# Usage: bench/gpu_bench.sh [stage ...]   stages: build fer peers fullrun report
#        (default: all five; every stage keeps its JSON in the work folder, so stages may run in
#        separate calls of a few minutes each while the machine stays up: a finished config is
#        skipped unless FER_SUITE_FRESH=1)
# Environment:
#   FER_SUITE_CONFIGS     (default: model4 model5 model5-v2 model6 model7 model8)
#   FER_SUITE_BUILD_DIR   build folder (default build-gpu-suite, shared with gpu_suite.sh)
#   FER_GPU               an existing fer_gpu binary (default: $FER_SUITE_BUILD_DIR/tools/fer_gpu)
#   FER_CUDA_ARCH         CMAKE_CUDA_ARCHITECTURES for the build stage (default 90)
#   FER_PEERS_PYTHON      Python with torch (default python3)
#   FER_SUITE_TORCH_MODES (default eager,channels_last,bf16,compile,cudagraph,cudagraph_bf16)
#   FER_SUITE_PRECISIONS  fer_gpu precisions measured besides the default tf32 run (default bf16;
#                         "" for none): fer_gpu bench --device cuda --precision P, written to
#                         fer_P_<config>.json, the "fer_gpu cuda bf16" column of the table
#   FER_SUITE_RUN_CONFIG  config of the whole run (default model5-v2); FER_SUITE_RUN_EPOCHS (default 50)
#   FER_SUITE_RUN_MODES   PyTorch modes of the whole run (default: channels_last,cudagraph)
#   FER_DATA              FER2013 CSV (default: .deps/data/fer2013.csv, the work folder's, the staged
#                         4,096-row cut .deps/data/fer2013-cut.csv, else unpacked from
#                         .deps/data or ../shared/data fer2013-6class.ferpack into the work folder)
#   FER_SUITE_WORK        work folder (default $FER_SUITE_BUILD_DIR/gpu-bench)
#   FER_SUITE_RESULTS     results file (default bench/results/<date>-<gpu>.md)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
CONFIGS=(${FER_SUITE_CONFIGS:-model4 model5 model5-v2 model6 model7 model8})
BUILD="${FER_SUITE_BUILD_DIR:-build-gpu-suite}"
ARCH="${FER_CUDA_ARCH:-90}"
PY="${FER_PEERS_PYTHON:-python3}"
TORCH_MODES="${FER_SUITE_TORCH_MODES:-eager,channels_last,bf16,compile,cudagraph,cudagraph_bf16}"
PRECISIONS=(${FER_SUITE_PRECISIONS-bf16})
RUN_CONFIG="${FER_SUITE_RUN_CONFIG:-model5-v2}"
RUN_EPOCHS="${FER_SUITE_RUN_EPOCHS:-50}"
RUN_MODES="${FER_SUITE_RUN_MODES:-channels_last,cudagraph}"
WORK="${FER_SUITE_WORK:-$BUILD/gpu-bench}"
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(build fer peers fullrun report)
mkdir -p "$WORK"
export PYTHONUNBUFFERED=1

if [ -d "$ROOT/.deps" ]; then
  [ -x "$ROOT/bench/unstage_deps.sh" ] && bash "$ROOT/bench/unstage_deps.sh" >/dev/null
  export LD_LIBRARY_PATH="$ROOT/.deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
for d in /usr/local/cuda/bin; do
  [ -d "$d" ] && case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
done
export PATH
FER_GPU="${FER_GPU:-$BUILD/tools/fer_gpu}"
fresh() { [ "${FER_SUITE_FRESH:-0}" = 1 ] || [ ! -s "$1" ]; }
log_cmd() { echo "$*" >>"$WORK/commands.txt"; echo "+ $*"; }

find_data() {
  if [ -n "${FER_DATA:-}" ]; then echo "$FER_DATA"; return; fi
  for f in "$ROOT/.deps/data/fer2013.csv" "$WORK/fer2013.csv" "$ROOT/.deps/data/fer2013-cut.csv"; do
    [ -s "$f" ] && { echo "$f"; return; }
  done
  for pack in "$ROOT/.deps/data/fer2013-6class.ferpack" "$ROOT/../shared/data/fer2013-6class.ferpack"; do
    local script; script="$(dirname "$pack")/unpack_fer2013.py"
    if [ -f "$pack" ] && [ -f "$script" ]; then
      python3 "$script" "$pack" --csv "$WORK/fer2013.csv" >&2 && { echo "$WORK/fer2013.csv"; return; }
    fi
  done
  echo ""
}

stage_build() {
  if [ -x "$FER_GPU" ] && [ "${FER_SUITE_FRESH:-0}" != 1 ]; then echo "fer_gpu present: $FER_GPU"; return; fi
  local gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  local deps=(); [ -d "$ROOT/.deps" ] && deps=("-DFER_DEPS_DIR=$ROOT/.deps")
  log_cmd cmake -S . -B "$BUILD" ${gen[@]+"${gen[@]}"} ${deps[@]+"${deps[@]}"} -DCMAKE_BUILD_TYPE=Release -DFER_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$ARCH"
  cmake -S . -B "$BUILD" ${gen[@]+"${gen[@]}"} ${deps[@]+"${deps[@]}"} -DCMAKE_BUILD_TYPE=Release -DFER_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$ARCH" >"$WORK/build.log" 2>&1 &&
    cmake --build "$BUILD" --target fer_gpu -j "$(nproc)" >>"$WORK/build.log" 2>&1 ||
    { tail -n 40 "$WORK/build.log"; echo "build failed"; return 1; }
}

stage_fer() {
  for c in "${CONFIGS[@]}"; do
    fresh "$WORK/fer_$c.json" || { echo "fer_gpu bench $c: done already"; continue; }
    log_cmd "$FER_GPU" bench "configs/$c.toml" --device both --layers --json "$WORK/fer_$c.json"
    "$FER_GPU" bench "configs/$c.toml" --device both --layers --json "$WORK/fer_$c.json" 2>&1 | tee "$WORK/fer_$c.txt"
  done
  local p
  for p in ${PRECISIONS[@]+"${PRECISIONS[@]}"}; do
    for c in "${CONFIGS[@]}"; do
      fresh "$WORK/fer_${p}_$c.json" || { echo "fer_gpu bench $c $p: done already"; continue; }
      log_cmd "$FER_GPU" bench "configs/$c.toml" --device cuda --precision "$p" --layers --json "$WORK/fer_${p}_$c.json"
      "$FER_GPU" bench "configs/$c.toml" --device cuda --precision "$p" --layers \
        --json "$WORK/fer_${p}_$c.json" 2>&1 | tee "$WORK/fer_${p}_$c.txt"
    done
  done
}

stage_peers() {
  if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "PyTorch with CUDA not available to $PY: peers skipped" | tee "$WORK/peers_skipped.txt"
    return
  fi
  for c in "${CONFIGS[@]}"; do
    fresh "$WORK/torch_$c.json" || { echo "PyTorch $c: done already"; continue; }
    log_cmd "$PY" bench/peers/torch_peer.py "configs/$c.toml" --device cuda --modes "$TORCH_MODES" --json "$WORK/torch_$c.json"
    "$PY" bench/peers/torch_peer.py "configs/$c.toml" --device cuda --modes "$TORCH_MODES" \
      --json "$WORK/torch_$c.json" 2>&1 | tee "$WORK/torch_$c.txt"
  done
}

stage_fullrun() {
  local data; data="$(find_data)"
  if [ -z "$data" ]; then
    echo "no FER2013 data (FER_DATA, .deps/data, ../shared/data): whole runs skipped" | tee "$WORK/fullrun_skipped.txt"
    return
  fi
  local c="$RUN_CONFIG" run_dir="$WORK/run_$RUN_CONFIG"
  if fresh "$WORK/fer_run_$c.json"; then
    rm -rf "$run_dir"
    log_cmd "$FER_GPU" train "configs/$c.toml" --data "$data" --device cuda --epochs "$RUN_EPOCHS" --out "$run_dir"
    local t0 t1
    t0=$(date +%s.%N)
    "$FER_GPU" train "configs/$c.toml" --data "$data" --device cuda --epochs "$RUN_EPOCHS" --out "$run_dir" \
      >"$WORK/fer_run_$c.txt" 2>&1
    local rc=$?
    t1=$(date +%s.%N)
    tail -n 5 "$WORK/fer_run_$c.txt"
    python3 - "$run_dir/history.csv" "$t0" "$t1" "$rc" "$RUN_EPOCHS" >"$WORK/fer_run_$c.json" <<'PY'
import csv, json, sys
path, t0, t1, rc, epochs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = {"device": "cuda", "epochs": epochs, "wall_s": t1 - t0, "exit_status": rc}
try:
    rows = list(csv.DictReader(open(path)))
    acc = [float(x["val_accuracy"]) for x in rows]
    r.update(epochs=len(rows), final_val_accuracy=acc[-1], best_val_accuracy=max(acc))
except Exception as e:
    r["note"] = "no history: %s" % e
if rc != 0:
    r["error"] = "fer_gpu train exited with status %d" % rc
print(json.dumps(r))
PY
  fi
  if "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    if fresh "$WORK/torch_run_$c.json"; then
      # A separate file: the throughput file of this config stays as the peers stage wrote it.
      log_cmd "$PY" bench/peers/torch_peer.py "configs/$c.toml" --device cuda --modes "$RUN_MODES" --data "$data" \
        --epochs "$RUN_EPOCHS" --steps 20 --repeats 2 --json "$WORK/torch_run_$c.json"
      "$PY" bench/peers/torch_peer.py "configs/$c.toml" --device cuda --modes "$RUN_MODES" --data "$data" \
        --epochs "$RUN_EPOCHS" --steps 20 --repeats 2 --json "$WORK/torch_run_$c.json" 2>&1 | tee "$WORK/torch_run_$c.txt"
    fi
  fi
}

stage_report() {
  local gpu slug date commit dirty
  gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
  slug="$(echo "${gpu:-unknown-gpu}" | tr '[:upper:]' '[:lower:]' | sed -e 's/[^a-z0-9]\+/-/g' -e 's/^-//' -e 's/-$//')"
  date="$(date -u +%Y-%m-%d)"
  local results="${FER_SUITE_RESULTS:-bench/results/$date-$slug.md}"
  commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  dirty=""; [ -n "$(git status --porcelain 2>/dev/null)" ] && dirty=" (plus uncommitted changes)"
  local cfg_list; cfg_list=$(IFS=,; echo "${CONFIGS[*]}")
  # The whole-run peer file joins the table under its own name.
  local tables="$WORK/tables"; rm -rf "$tables"; mkdir -p "$tables"
  cp "$WORK"/fer_*.json "$tables/" 2>/dev/null
  for c in "${CONFIGS[@]}"; do
    [ -f "$WORK/torch_$c.json" ] && cp "$WORK/torch_$c.json" "$tables/"
    if [ -f "$WORK/torch_run_$c.json" ]; then
      python3 - "$tables/torch_$c.json" "$WORK/torch_run_$c.json" <<'PY'
import json, os, sys
base_path, run_path = sys.argv[1], sys.argv[2]
run = json.load(open(run_path))
base = json.load(open(base_path)) if os.path.exists(base_path) else dict(run, results=[])
base["runs"] = run.get("runs", [])
json.dump(base, open(base_path, "w"))
PY
    fi
  done
  mkdir -p "$(dirname "$results")"
  {
    echo "# GPU benchmark: fer_gpu versus PyTorch, $date, ${gpu:-unknown GPU}"
    echo
    echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm --format=csv,noheader 2>/dev/null | head -n 1)"
    echo "- CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) CPUs usable (fer_gpu's CPU column)"
    echo "- CUDA: $(nvcc --version 2>/dev/null | tail -n 1); PyTorch: $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'not available')"
    echo "- Commit: \`$commit\`$dirty"
    echo "- fer_gpu bench: synthetic data resident on the device, batch 128, config augmentation; GPU: 10 warm-up steps,"
    echo "  5 repeats x 50 steps, CUDA events, TF32 convolutions/GEMMs (the bf16 column: --precision bf16, bf16 operands,"
    echo "  FP32 accumulation); CPU: 3 warm-up, 3 x 10 steps. PyTorch: same data"
    echo "  handling and counts on the GPU; medians shown."
    echo
    echo "## Training throughput (images/s)"
    echo
    python3 bench/peers/suite_table.py "$tables" --configs "$cfg_list" --fer-device cuda --metric train
    echo
    echo "## Inference throughput (images/s)"
    echo
    python3 bench/peers/suite_table.py "$tables" --configs "$cfg_list" --fer-device cuda --metric infer | sed '/^$/,$d'
    [ -f "$WORK/peers_skipped.txt" ] && { echo; cat "$WORK/peers_skipped.txt"; }
    [ -f "$WORK/fullrun_skipped.txt" ] && { echo; cat "$WORK/fullrun_skipped.txt"; }
    for c in "${CONFIGS[@]}"; do
      [ -f "$WORK/fer_$c.txt" ] || continue
      echo
      echo "## fer_gpu bench $c --device both --layers"
      echo
      echo '```'
      cat "$WORK/fer_$c.txt"
      echo '```'
    done
    for p in ${PRECISIONS[@]+"${PRECISIONS[@]}"}; do
      for c in "${CONFIGS[@]}"; do
        [ -f "$WORK/fer_${p}_$c.txt" ] || continue
        echo
        echo "## fer_gpu bench $c --device cuda --precision $p --layers"
        echo
        echo '```'
        cat "$WORK/fer_${p}_$c.txt"
        echo '```'
      done
    done
    echo
    echo "## Commands"
    echo
    echo '```'
    cat "$WORK/commands.txt" 2>/dev/null
    echo '```'
  } >"$results.tmp" && mv "$results.tmp" "$results"
  echo "results: $results"
  sed -n '/^## Training/,/^## fer_gpu bench/p' "$results" | sed '$d'
  if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT" && cp "$results" "$OUT/" && tar -C "$WORK" -czf "$OUT/gpu_bench_work.tgz" --exclude='fer2013.csv' --exclude='run_*' . 2>/dev/null
  fi
}

status=0
for s in "${STAGES[@]}"; do
  echo; echo "################ gpu_bench stage: $s"
  case "$s" in
    build) stage_build || status=1 ;;
    fer) if [ -x "$FER_GPU" ]; then stage_fer; else echo "no fer_gpu binary: run the build stage"; status=1; fi ;;
    peers) stage_peers ;;
    fullrun) if [ -x "$FER_GPU" ]; then stage_fullrun; else status=1; fi ;;
    report) stage_report ;;
    *) echo "unknown stage $s (build fer peers fullrun report)"; status=2 ;;
  esac
done
exit $status
