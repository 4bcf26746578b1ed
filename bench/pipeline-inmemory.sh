#!/usr/bin/env bash
# In-memory pipeline benchmark (no DPDK): PacketPipeline.process over bursts of 32 prepared
# packets on one core (CPU 1; CPU 0 runs the system), with the malloc interposer preloaded to
# count heap allocations in the measured loop. Builds bench/pipeline-bench (its own package:
# the main build never compiles it), runs the cases below and writes bench/results/pipeline-inmemory.md.
#
#   dnat 1k      the headline: established flows, must print `allocations during N bursts: 0`
#   dnat 1M, vxlan 1k / 1M, new flows (1M SYNs into an empty table)
#   each burst runs as the worker runs it: stage one (parse, hash, prefetch the bucket) over the
#   whole burst, the entry lines prefetched, then stage two packet by packet; dnat 1k / 1M and
#   new flows also with --one-by-one (stage one then two for each packet before the next: the
#   worker before the two-stage burst, for comparison); new flows also with --immediate-reverse
#   (each new flow's reverse entry inserted at once instead of at the end of the burst: the
#   worker before DeferredReverseEntries, for comparison)
#
# Usage: bench/pipeline-inmemory.sh [--no-build]     DURATION=3 REPS=3 CORE=1 RESULTS=bench/results/pipeline-inmemory.md
# With SITES=1 every allocation in the measured loop is recorded with its backtrace.
# Reported, never asserted: it fails only when a case does not run or forwards other than every packet.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECONDS_PER_CASE=${DURATION:-3}
REPS=${REPS:-3}
CORE=${CORE:-1}
RESULTS=${RESULTS:-bench/results/pipeline-inmemory.md}
PKG=bench/pipeline-bench
if [ "${1:-}" != "--no-build" ]; then
  (cd "$PKG" && swift build -c release 2>&1 | grep -E "error|Build" | tail -2)
fi
BIN="$PKG/.build/release/sluice-pipeline-bench"
PRELOAD="$PWD/$PKG/.build/release/libMallocInterposerSwift.so"
[ -x "$BIN" ] && [ -f "$PRELOAD" ] || { echo "FAIL: $BIN or $PRELOAD not built"; exit 1; }
bench_environment   # the commit measured: now, before the runs
# (only what the benchmark links: not SluiceDPDK, CDPDK or sluiced)
STALE=$(find Sources/SluiceCore Sources/SluiceDataPlane Sources/SluiceMaglev Sources/SluiceConntrack Sources/SluiceConfig \
  CShims/CSluiceIntrinsics "$PKG/Sources" "$PKG/Package.swift" -type f -newer "$BIN" 2>/dev/null | head -1)
STALE_NOTE=""
if [ -n "$STALE" ]; then
  echo "warning: $BIN is older than $STALE (rebuild: run without --no-build)"
  STALE_NOTE=" (**binary older than $STALE: not the code of this commit**)"
fi
OUT=$(mktemp /tmp/sluice-pipeline-bench.XXXXXX)
trap 'rm -f "$OUT"' EXIT

CASES=(
  "--mode dnat --flows 1000"
  "--mode dnat --flows 1000000"
  "--mode vxlan --flows 1000"
  "--mode vxlan --flows 1000000"
  "--mode new --flows 1000000"
  "--mode new --flows 1000000 --immediate-reverse"
  "--mode dnat --flows 1000 --one-by-one"
  "--mode dnat --flows 1000000 --one-by-one"
  "--mode new --flows 1000000 --one-by-one"
)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
LABEL=() NS=() MPPS=() SHARE=() COPY=() ALLOCS=() BURSTS=()
# REPS interleaved repetitions of every case; the table gives medians and the allocation counts
# of every repetition.
for rep in $(seq 1 "$REPS"); do
  echo "repetition $rep of $REPS"
  for c in "${!CASES[@]}"; do
    args=${CASES[$c]}
    # shellcheck disable=SC2086
    LD_PRELOAD="$PRELOAD" taskset -c "$CORE" "$BIN" $args --seconds "$SECONDS_PER_CASE" ${SITES:+--sites} >"$OUT" 2>&1 \
      || { echo "FAIL: $BIN $args"; cat "$OUT"; exit 1; }
    grep -v '^interposer check' "$OUT" | sed 's/^/  /'
    LABEL[$c]=$(grep -E ' packets in [0-9]+ bursts' "$OUT" | sed 's/:.*//')
    read -r ns mpps cycles share < <(sed -n 's/.*total (copy + pipeline): \([0-9.]*\) ns\/packet on-CPU, \([0-9.]*\) Mpps, \([0-9]*\) TSC cycles\/packet.*CPU share \([0-9]*\)%.*/\1 \2 \3 \4/p' "$OUT")
    NS[$c]+="$ns "; MPPS[$c]+="$mpps "; SHARE[$c]+="$share% "
    COPY[$c]+="$(sed -n 's/.*copy only: \([0-9.]*\) ns\/packet.*/\1/p' "$OUT") "
    ALLOCS[$c]+="$(sed -n 's/^allocations during \([0-9]*\) bursts: \([0-9]*\).*/\2/p' "$OUT") "
    BURSTS[$c]+="$(sed -n 's/^allocations during \([0-9]*\) bursts.*/\1/p' "$OUT") "
    TSC=$(sed -n 's/.*(TSC \([0-9]*\) MHz).*/\1/p' "$OUT")
  done
done
ROWS=""
SUMMARY=""
for c in "${!CASES[@]}"; do
  # shellcheck disable=SC2086
  ns=$(median ${NS[$c]}); mpps=$(median ${MPPS[$c]})
  cycles=$(awk -v ns="$ns" -v mhz="$TSC" 'BEGIN { printf "%.0f", ns * mhz / 1e3 }')
  copy=$(echo ${COPY[$c]}); [ -n "$copy" ] && copy=$(median $copy) || copy="—"
  allocs=$(echo ${ALLOCS[$c]} | sed 's/ / \/ /g'); bursts=$(echo ${BURSTS[$c]} | sed 's/ / \/ /g')
  ROWS+="| ${LABEL[$c]} | \`${CASES[$c]}\` | $ns | **$mpps** | $cycles | $(echo ${MPPS[$c]} | sed 's/ / \/ /g') | $copy | $(echo ${SHARE[$c]}) | **$allocs** in $bursts bursts |"$'\n'
  SUMMARY+="$(printf '%-60s %8s ns/packet %6s Mpps %5s cycles/packet  allocations: %s' "${LABEL[$c]}" "$ns" "$mpps" "$cycles" "$allocs")"$'\n'
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$(dirname "$RESULTS")"
cat >"$RESULTS" <<MD
# Pipeline in memory: ns/packet and heap allocations per burst

Measured by \`bench/pipeline-inmemory.sh\` on $(date -u +%Y-%m-%d) at commit \`$COMMIT\`$DIRTY$STALE_NOTE,
one thread pinned to CPU $CORE, ${SECONDS_PER_CASE} s per case, $REPS interleaved repetitions (medians). CPU: $CPU; TSC ${TSC:-?} MHz.
$SWIFT_VERSION. Load average before / after: $LOAD_BEFORE / $LOAD_AFTER (a shared 2-vCPU VM).

| case | arguments | ns/packet on-CPU (median) | Mpps (median) | TSC cycles/packet | Mpps, every repetition | copy alone, ns/packet | CPU share | heap allocations in the measured loop, every repetition |
|---|---|---:|---:|---:|---|---:|---|---|
$ROWS
What runs (\`bench/pipeline-bench\`, its own package depending on this one by path): a snapshot
built from YAML as sluiced builds it (\`SluicedConfig.parse\` + \`makeSnapshot\`: VIP 192.0.2.10:80,
8 backends, static neighbors; vxlan: pods behind 8 VTEPs), a \`FlowTable\` of 4194304 slots
committed up front (as sluiced's \`flows.capacity\` in \`bench/lb-fastpath.sh\`), a
\`NeighborTable\`; then bursts of 32 packets: each burst copies 32 prepared 60-byte TCP frames
(one per flow, cycled as a pcap replay is) into 32 buffers with 128 bytes of headroom — the
work of an RX burst — and runs them through the pipeline as \`Worker.receiveAndProcess\` does:
\`PacketPipeline.prepare\` (parse, flow hash, bucket-header prefetch) over the burst, then
\`FlowTableView.prefetchEntry\` for each, then \`PacketPipeline.process(…, prepared:)\` packet by
packet. No DPDK, no counters, no
expiry sweep, no TX: the pipeline alone, plus the copy. Established flows: a warm-up of two
passes over the flows (the first creates every flow and its reverse entry) before the measured
loop. New flows: one pass of 1M SYNs, each from a new source, into an empty table (a fresh
table per pass, made outside the measured time), repeated; the table fills to 2M entries in
each pass.

- ns/packet, Mpps: on-CPU (the thread's CPU clock, \`CLOCK_THREAD_CPUTIME_ID\`), copy included;
  TSC cycles/packet = ns/packet × the TSC rate (measured against \`CLOCK_MONOTONIC\`). "Copy
  alone" times the same copy in a loop of its own, where its lines stay cached: inside the real
  loop it costs more (its source and destination lines are evicted by the pipeline's).
- Heap allocations: \`malloc\`, \`calloc\`, \`realloc\`, \`posix_memalign\` … counted by
  ordo-one/malloc-interposer 1.6.1 (\`LD_PRELOAD\` of \`libMallocInterposerSwift.so\`), switched on
  for the measured loop only; the benchmark first checks that a deliberate allocation in a
  counted window is counted, and fails if it is not. \`SITES=1\` records a backtrace per counted
  allocation (\`--sites\`; it first shows the deliberate one, to prove the recording works;
  frames inside the benchmark print as offsets: \`addr2line -f -e BIN OFFSET | swift demangle\`).
- \`--immediate-reverse\`: two-stage bursts, but each new flow's reverse entry (backend →
  client) is inserted as the flow is created instead of being kept back to the end of the burst
  (\`DeferredReverseEntries\`: its bucket prefetched when kept, its slot at the end, the
  inserts together) — the worker before that change.
- \`--one-by-one\`: each packet goes through both stages (\`PacketPipeline.process\` without
  \`prepared:\`) before the next, as the worker did before commit ddf72a8: the flow-table misses
  of successive packets do not overlap.

Reproduce: \`bench/pipeline-inmemory.sh\`, or one case:

\`\`\`sh
(cd bench/pipeline-bench && swift build -c release)
LD_PRELOAD=\$PWD/bench/pipeline-bench/.build/release/libMallocInterposerSwift.so taskset -c 1 \\
  bench/pipeline-bench/.build/release/sluice-pipeline-bench --mode dnat --flows 1000 --seconds 3
\`\`\`
MD
printf '\n%s' "$SUMMARY"
echo "-> $RESULTS"
