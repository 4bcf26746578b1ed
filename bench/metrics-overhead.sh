#!/usr/bin/env bash
# What the per-backend counters cost the pipeline: bench/pipeline-bench (in memory, no DPDK) built
# at BASE (default: main) and at HEAD, run side by side, interleaved, on one core, with the malloc
# interposer counting heap allocations in the measured loop. Writes bench/results/metrics-overhead.md.
#
# Usage: bench/metrics-overhead.sh     BASE=main DURATION=3 REPS=3 CORE=1 RESULTS=bench/results/metrics-overhead.md
# BASE is checked out (detached) into a temporary git worktree, removed on exit.
# Reported, never asserted: it fails only when a build or a case does not run.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BASE=${BASE:-main}
SECONDS_PER_CASE=${DURATION:-3}
REPS=${REPS:-3}
CORE=${CORE:-1}
RESULTS=${RESULTS:-bench/results/metrics-overhead.md}
bench_environment
BASE_COMMIT=$(git rev-parse --short "$BASE")
TREE=$(mktemp -d /tmp/sluice-metrics-base.XXXXXX)
OUT=$(mktemp /tmp/sluice-metrics-overhead.XXXXXX)
cleanup() { git worktree remove --force "$TREE" 2>/dev/null || rm -rf "$TREE"; rm -f "$OUT"; }
trap cleanup EXIT
git worktree add -q --detach "$TREE" "$BASE"
for dir in "$TREE" "$PWD"; do
  echo "building bench/pipeline-bench in $dir"
  (cd "$dir/bench/pipeline-bench" && swift build -c release 2>&1 | grep -E "error|Build" | tail -2)
done
CASES=("--mode dnat --flows 1000" "--mode dnat --flows 1000000" "--mode vxlan --flows 1000" "--mode new --flows 1000000")
declare -A NS ALLOCS
LABEL=()
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for rep in $(seq 1 "$REPS"); do
  echo "repetition $rep of $REPS"
  for c in "${!CASES[@]}"; do
    for side in base head; do
      dir=$([ $side = base ] && echo "$TREE" || echo "$PWD")/bench/pipeline-bench/.build/release
      # shellcheck disable=SC2086
      LD_PRELOAD="$dir/libMallocInterposerSwift.so" taskset -c "$CORE" "$dir/sluice-pipeline-bench" ${CASES[$c]} \
        --seconds "$SECONDS_PER_CASE" >"$OUT" 2>&1 || { echo "FAIL: $side ${CASES[$c]}"; cat "$OUT"; exit 1; }
      LABEL[$c]=$(grep -E ' packets in [0-9]+ bursts' "$OUT" | sed 's/:.*//')
      ns=$(sed -n 's/.*total (copy + pipeline): \([0-9.]*\) ns\/packet.*/\1/p' "$OUT")
      allocs=$(sed -n 's/^allocations during [0-9]* bursts: \([0-9]*\).*/\1/p' "$OUT")
      NS[$c,$side]+="$ns "; ALLOCS[$c,$side]+="$allocs "
      printf '  %-5s %-32s %8s ns/packet  allocations %s\n' "$side" "${CASES[$c]}" "$ns" "$allocs"
    done
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=""
for c in "${!CASES[@]}"; do
  # shellcheck disable=SC2086
  b=$(median ${NS[$c,base]}); h=$(median ${NS[$c,head]})
  delta=$(awk -v b="$b" -v h="$h" 'BEGIN { printf "%+.1f ns (%+.1f %%)", h - b, 100 * (h - b) / b }')
  ROWS+="| ${LABEL[$c]} | $b | $h | $delta | $(echo ${NS[$c,base]}) | $(echo ${NS[$c,head]}) | $(echo ${ALLOCS[$c,base]}) / $(echo ${ALLOCS[$c,head]}) |"$'\n'
done
mkdir -p "$(dirname "$RESULTS")"
cat >"$RESULTS" <<MD
# Per-backend counters: what they cost the pipeline

Measured by \`bench/metrics-overhead.sh\` on $(date -u +%Y-%m-%d): \`bench/pipeline-bench\` (the pipeline
in memory, as \`bench/pipeline-inmemory.sh\` describes) built at \`$BASE_COMMIT\` ($BASE) and at
\`$COMMIT\`$DIRTY, run alternately (base, head, next case …), $REPS repetitions of ${SECONDS_PER_CASE} s
per case, one thread pinned to CPU $CORE. CPU: $CPU. $SWIFT_VERSION. Load average before / after:
$LOAD_BEFORE / $LOAD_AFTER (a shared 2-vCPU VM: differences of a few per cent are within its noise).

| case | base ns/packet (median) | head ns/packet (median) | head − base | base, every repetition | head, every repetition | heap allocations in the measured loop, base / head |
|---|---:|---:|---|---|---|---|
$ROWS
What head adds per packet forwarded to a backend: the record index (service id → first entry,
backend position → record: two dependent loads from the snapshot), then a relaxed load and
store of the record's packet and byte counters (one cache line the worker alone writes); per new
flow one more pair. No lock, no atomic read-modify-write, no allocation (the last column).
MD
cat "$RESULTS" | sed -n '/^| case/,/^$/p'
echo "-> $RESULTS"
