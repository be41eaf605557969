#!/usr/bin/env bash
# `mpirun -np 2 fer_gpu train` from the command line, as the README shows it: it trains on two
# ranks, rank 0 alone prints and writes the run directory; an indivisible global batch exits 2
# with one error message and leaves nothing behind. Usage: cli_test.sh PATH/TO/fer_gpu
set -uo pipefail
fer_gpu="$1"
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v mpirun > /dev/null; then
  echo "SKIPPED: mpirun not found (install openmpi-bin)"
  exit 77
fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/fer_dp_cli_XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cat > "$tmp/small.toml" <<TOML
[model]
name = "small"
input_shape = [48, 48, 1]
classes = 6
[train]
batch_size = 16
epochs = 1
seed = 3
[data]
path = "$here/../../data/sample/fer2013_sample.csv"
drop_classes = [1]
[[layers]]
type = "Conv2D"
filters = 4
kernel_size = 3
strides = 2
activation = "relu"
[[layers]]
type = "Flatten"
[[layers]]
type = "Dense"
units = 6
activation = "softmax"
TOML

"$here/run_mpi.sh" 2 "$fer_gpu" train "$tmp/small.toml" --device cpu --out "$tmp/run" > "$tmp/out.txt" 2> "$tmp/err.txt"
rc=$?
cat "$tmp/out.txt" "$tmp/err.txt"
[ "$rc" = 0 ] || fail "mpirun -np 2 fer_gpu train exited $rc"
[ -f "$tmp/run/last.ckpt" ] || fail "no last.ckpt in the run directory"
[ "$(wc -l < "$tmp/run/history.csv")" = 2 ] || fail "history.csv should have a header and one epoch"
[ "$(grep -c 'on 2 ranks' "$tmp/out.txt")" = 1 ] || fail "the 'on 2 ranks' banner should be printed once (rank 0 alone)"
[ "$(grep -c 'Finished 1 epochs' "$tmp/out.txt")" = 1 ] || fail "the summary should be printed once"

"$here/run_mpi.sh" 2 "$fer_gpu" train "$tmp/small.toml" --device cpu --batch-size 15 --out "$tmp/bad" > "$tmp/out.txt" 2> "$tmp/err.txt"
rc=$?
cat "$tmp/out.txt" "$tmp/err.txt"
[ "$rc" = 2 ] || fail "an indivisible global batch should exit 2, not $rc"
[ "$(grep -c 'batch_size 15 .*2 ranks' "$tmp/err.txt")" = 1 ] || fail "the batch error should be printed once, naming 15 and 2 ranks"
[ ! -e "$tmp/bad" ] || fail "a refused run left its directory behind"
echo "PASS"
