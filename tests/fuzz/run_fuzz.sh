#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each, two at a time, on a copy of its committed corpus (the
# committed seeds never change), and fails if any target finds a crash, leak, timeout or
# sanitizer report. Crash inputs are kept under WORK/<target>/ (artifact_prefix) for reproduction:
#   build-san/tests/fuzz/fuzz_<target> WORK/<target>/crash-...
# Usage: tests/fuzz/run_fuzz.sh BUILD_DIR SECONDS [WORK_DIR] [TARGET...]
# (BUILD_DIR configured with -DFER_FUZZ=ON; see .ci/sanitize.sh.)
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: run_fuzz.sh BUILD_DIR SECONDS [WORK_DIR] [TARGET...]}
seconds=${2:?seconds per target}
work=${3:-$(mktemp -d /tmp/fer_fuzz.XXXXXX)}
shift $(( $# >= 3 ? 3 : $# ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(csv image config checkpoint cache)

run_one() {
  local t=$1 dir="$work/$1"
  mkdir -p "$dir/corpus"
  # fuzz_cache writes each input to a file under TMPDIR: keep that in memory when possible.
  local tmp=${TMPDIR:-/tmp}
  [ -d /dev/shm ] && [ -w /dev/shm ] && tmp=/dev/shm
  cp -r tests/fuzz/corpus/"$t"/. "$dir/corpus/"
  # -rss_limit_mb: a decoder may allocate what an (accepted) header asks for; -timeout: a single
  # input taking longer than 20 s counts as a hang.
  TMPDIR=$tmp "$build/tests/fuzz/fuzz_$t" "$dir/corpus" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$dir/" >"$dir/log.txt" 2>&1
  local rc=$?
  local stats
  stats=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$dir/log.txt" | tail -1)
  local execs
  execs=$(grep -E '^stat::number_of_executed_units' "$dir/log.txt" | awk '{print $2}')
  echo "fuzz_$t: rc=$rc executions=${execs:-?} last: ${stats}" >"$dir/summary.txt"
  return $rc
}

status=0
pids=()
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  pids=()
  for t in "${targets[@]:i:2}"; do
    run_one "$t" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
done
for t in "${targets[@]}"; do
  cat "$work/$t/summary.txt"
  if ls "$work/$t"/crash-* "$work/$t"/leak-* "$work/$t"/timeout-* "$work/$t"/oom-* >/dev/null 2>&1; then
    echo "fuzz_$t: FOUND PROBLEM INPUTS in $work/$t (log: $work/$t/log.txt)"
    grep -m5 -E 'ERROR|SUMMARY|runtime error|==[0-9]+==' "$work/$t/log.txt" || true
    status=1
  # A failing exit without a problem input (a sanitizer report outside an input's run, a failed
  # artifact write, a killed process) must still say why: CI keeps nothing but this output. The
  # report lines come first, then the log's end (the mutation lines before it are noise).
  elif ! grep -q '^fuzz_[a-z]*: rc=0 ' "$work/$t/summary.txt"; then
    echo "fuzz_$t: exit status not 0; the log's report lines and its last 40 lines other than progress:"
    grep -E 'ERROR|SUMMARY|runtime error|WARNING|==[0-9]+==|^ *#[0-9]+ 0x' "$work/$t/log.txt" | head -60 || true
    echo "---"
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|RELOAD)' "$work/$t/log.txt" | tail -40 || true
    echo "--- df $work:"; df -h "$work" | tail -1 || true
    status=1
  fi
done
exit $status
