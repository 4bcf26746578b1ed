#!/usr/bin/env bash
# Forwarding baseline, measured side by side in one run on one forwarding core (lcore 1; the
# main lcore is 0), no hugepages:
#
#  a. dpdk-testpmd --forward-mode=io between two net_null ports          (DPDK's own bare loop)
#  b. sluiced --forward-io between the same two net_null ports            (our bare loop)
#  c. sluiced pipeline on a realistic source: net_pcap replaying, forever from memory, a pcap of
#     ICMP echo requests to a VIP; every one is parsed, dispatched and turned into an echo reply
#     that leaves through the same port, whose TX is the pcap PMD's drop sink (no tx_pcap given:
#     mbufs are freed and counted, as net_null's TX does)
#  d. dpdk-testpmd io on that same pcap source, loop topology (port 0 -> port 0): the ceiling
#     for (c), what the source and sink cost without any processing
#
# The four runs are interleaved (a b c d, ROUNDS times) so that a change in what else the
# machine does hits all of them alike; the table gives medians and every round's value.
#
# Two rates per run, received packets summed over the forwarding ports:
#  - wall clock: sluiced's final `counter rx_packets` over the worker's own elapsed time (its
#    TSC cycles, `sluiced: stopped by SIGINT after S s`); testpmd's mean per-second Rx-pps (its
#    own TSC-timed statistics), the first two seconds skipped;
#  - on-CPU: the same packets over the CPU time the forwarding thread (rte-worker-1) actually
#    ran, from /proc/PID/task/TID/schedstat sampled until the thread ends. On a shared machine the
#    forwarding thread also waits for its core; its CPU share (run / (run + wait)) is reported,
#    and the on-CPU rate is what the loop does per second of core it gets. The ratios use it.
#    A run whose thread got less than MIN_SHARE % of its core is repeated (ATTEMPTS in all).
# Results go to bench/results/forwarding-baseline.md. Benchmarks are reported, never asserted:
# this script fails only when a run does not produce a number.
#
# Usage: bench/forwarding-baseline.sh [--no-build]
#        DURATION=10 ROUNDS=3 FLOWS=4096 MIN_SHARE=90 ATTEMPTS=3 SCRATCH=.build-dpdk
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh   # run_for, worker_schedstat, counter, median, ratio, … (shared with lb-fastpath.sh)
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
MIN_SHARE=${MIN_SHARE:-90}
ATTEMPTS=${ATTEMPTS:-3}
FLOWS=${FLOWS:-4096}
SCRATCH=${SCRATCH:-.build-dpdk}
SLUICED="$SCRATCH/release/sluiced"
TESTPMD=${TESTPMD:-dpdk-testpmd}
RESULTS=bench/results/forwarding-baseline.md
VIP=192.0.2.10
VIP_MAC=02:00:00:00:5e:10
PREFIX="slbench$$"

if [ "${1:-}" != "--no-build" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product sluiced 2>&1 | grep -E "error|Build" | tail -2
fi
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
command -v "$TESTPMD" >/dev/null || { echo "FAIL: $TESTPMD not found (Debian package dpdk-dev)"; exit 1; }

bench_workdir sluice-bench

EAL_COMMON=(--no-huge -m 1024 --no-pci -l 0,1 --main-lcore 0 --log-level lib.eal:error)
TESTPMD_COMMON=(--total-num-mbufs=16384 --forward-mode=io --nb-cores=1 --auto-start --stats-period 1)

# ---- the pcap: FLOWS ICMP echo requests to the VIP, 60-byte frames (64 on the wire) ---------
PCAP="$WORK/icmp-echo.pcap"
/usr/bin/python3 - "$PCAP" "$FLOWS" "$VIP" "$VIP_MAC" <<'PY'
import sys
from scapy.all import Ether, IP, ICMP, Raw, wrpcap
path, flows, vip, vip_mac = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
packets = []
for i in range(flows):
    # Clients from two documentation ranges, many echo identifiers: FLOWS distinct flows.
    src = f"198.51.100.{1 + i % 254}" if (i // 254) % 2 == 0 else f"203.0.113.{1 + i % 254}"
    mac = "02:00:00:%02x:%02x:%02x" % ((i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF)
    packets.append(Ether(src=mac, dst=vip_mac) / IP(src=src, dst=vip, ttl=64)
                   / ICMP(type=8, id=i & 0xFFFF, seq=i >> 16) / Raw(b"\x00" * 18))
wrpcap(path, packets)
PY

cat >"$WORK/b.yaml" <<YAML
ports:
  - { name: null0, device: net_null0 }
  - { name: null1, device: net_null1 }
workers: { lcores: [1], main_lcore: 0, mode: io, idle: { mode: poll } }
mempool: { mbufs: 16383, cache_size: 256 }
YAML
cat >"$WORK/c.yaml" <<YAML
ports:
  - { name: pcap0, device: "net_pcap0,rx_pcap=$PCAP,infinite_rx=1", mac: "$VIP_MAC" }
workers: { lcores: [1], main_lcore: 0, mode: pipeline, idle: { mode: poll } }
mempool: { mbufs: 16383, cache_size: 256 }
vips:
  - { address: $VIP, port: pcap0 }
YAML

no_rate() { echo "FAIL: run $1 of round $round gave no rate:"; tail -20 "$WORK/$1$round.log"; exit 1; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "forwarding baseline: $ROUNDS rounds of 4 runs, ${DURATION}s each; forwarding core = lcore 1, main = lcore 0"
A=() B=() C=() D=() C_CHECK=()
OA=() OB=() OC=() OD=() SA=() SB=() SC=() SD=()
# on_cpu RUN PACKETS: append RUN's on-CPU rate and CPU share to its arrays.
on_cpu() {
  local f="$WORK/$1$round.log.schedstat" v share
  v=$(oncpu_mpps "$2" "$f") || no_rate "$1"
  share=$(cpu_share "$f")
  case $1 in
    a) OA+=("$v"); SA+=("$share") ;; b) OB+=("$v"); SB+=("$share") ;;
    c) OC+=("$v"); SC+=("$share") ;; d) OD+=("$v"); SD+=("$share") ;;
  esac
}
# run_case RUN: one run of a, b, c or d for this round, repeated (up to ATTEMPTS times) while
# its forwarding thread got less than MIN_SHARE % of its core; the last attempt is kept and
# marked with * in the results when it never got that much.
run_case() {
  local run=$1 attempt log
  for attempt in $(seq 1 "$ATTEMPTS"); do
    log="$WORK/$run$round.log"
    case $run in
      a) run_for "$DURATION" "$log" "$TESTPMD" "${EAL_COMMON[@]}" --file-prefix "$PREFIX-a$round$attempt" \
           --vdev net_null0 --vdev net_null1 -- "${TESTPMD_COMMON[@]}" ;;
      b) run_for "$DURATION" "$log" "$SLUICED" --config "$WORK/b.yaml" -- "${EAL_COMMON[@]}" \
           --file-prefix "$PREFIX-b$round$attempt" ;;
      c) run_for "$DURATION" "$log" "$SLUICED" --config "$WORK/c.yaml" -- "${EAL_COMMON[@]}" \
           --file-prefix "$PREFIX-c$round$attempt" ;;
      d) run_for "$DURATION" "$log" "$TESTPMD" "${EAL_COMMON[@]}" --file-prefix "$PREFIX-d$round$attempt" \
           --vdev "net_pcap0,rx_pcap=$PCAP,infinite_rx=1" -- "${TESTPMD_COMMON[@]}" --port-topology=loop ;;
    esac
    [ "$(cpu_share "$log.schedstat")" -ge "$MIN_SHARE" ] && return 0
    echo "  run $run, round $round: forwarding thread got $(cpu_share "$log.schedstat")% of its core; again" >&2
  done
  DISTURBED+=("$run$round")
}

DISTURBED=()
for round in $(seq 1 "$ROUNDS"); do
  run_case a
  v=$(testpmd_mpps "$WORK/a$round.log" 2) || v=0; A+=("$v")   # 0: too few periods (a starved main lcore)
  on_cpu a "$(testpmd_packets "$WORK/a$round.log")"

  run_case b
  v=$(sluiced_mpps "$WORK/b$round.log") || no_rate b; B+=("$v")
  on_cpu b "$(counter "$WORK/b$round.log" rx_packets)"

  run_case c
  v=$(sluiced_mpps "$WORK/c$round.log") || no_rate c; C+=("$v")
  on_cpu c "$(counter "$WORK/c$round.log" rx_packets)"
  rx=$(counter "$WORK/c$round.log" rx_packets); replies=$(counter "$WORK/c$round.log" icmp_echo_reply)
  tx=$(counter "$WORK/c$round.log" tx_packets)
  drops=$(awk '$1 == "counter" && $2 ~ /^drop_/ { s += $3 } END { print s + 0 }' "$WORK/c$round.log")
  C_CHECK+=("rx $rx, icmp_echo_reply $replies, tx $tx, drops $drops")

  run_case d
  v=$(testpmd_mpps "$WORK/d$round.log" 1) || v=0; D+=("$v")
  on_cpu d "$(testpmd_packets "$WORK/d$round.log")"

  echo "round $round (Mpps wall / on-CPU, CPU share): a testpmd io ${A[-1]} / ${OA[-1]} ${SA[-1]}%;" \
    "b sluiced io ${B[-1]} / ${OB[-1]} ${SB[-1]}%; c sluiced pipeline ${C[-1]} / ${OC[-1]} ${SC[-1]}%;" \
    "d testpmd io pcap ${D[-1]} / ${OD[-1]} ${SD[-1]}%  (c: ${C_CHECK[-1]})"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

MA=$(median "${A[@]}"); MB=$(median "${B[@]}"); MC=$(median "${C[@]}"); MD=$(median "${D[@]}")
NA=$(median "${OA[@]}"); NB=$(median "${OB[@]}"); NC=$(median "${OC[@]}"); ND=$(median "${OD[@]}")
shares() { local out="" v; for v in "$@"; do out+="${out:+ }$v%"; done; echo "$out"; }
TSC_MHZ=$(sed -n 's/.*, tsc \([0-9]*\) MHz$/\1/p' "$WORK/b1.log" | head -1)
cpp() { awk -v mhz="${TSC_MHZ:-0}" -v mpps="$1" 'BEGIN { printf "%.0f", (mpps > 0 ? mhz / mpps : 0) }'; }
all() { local out=$1 v; shift; for v in "$@"; do out+=" / $v"; done; echo "$out"; }

bench_environment   # CPU, DPDK_VERSION, SWIFT_VERSION, COMMIT, DIRTY

mkdir -p "$(dirname "$RESULTS")"
cat >"$RESULTS" <<MD
# Forwarding baseline

Measured by \`bench/forwarding-baseline.sh\` on $(date -u +%Y-%m-%d) at commit \`$COMMIT\`$DIRTY
(sluiced binary built $(date -u -r "$SLUICED" '+%Y-%m-%d %H:%M UTC')):
one forwarding core (lcore 1; main lcore 0), \`--no-huge -m 1024 --no-pci\`, 64-byte frames,
$ROUNDS interleaved rounds of ${DURATION} s per run. CPU: $CPU, $(nproc) cores, TSC ${TSC_MHZ:-?} MHz;
DPDK $DPDK_VERSION (Debian); $SWIFT_VERSION. Load average before / after: $LOAD_BEFORE / $LOAD_AFTER.

| run | what | source → sink | Mpps on-CPU (median) | cycles/packet | Mpps wall clock (median) | on-CPU, every round | CPU share, every round |
|---|---|---|---:|---:|---:|---|---|
| a | \`dpdk-testpmd --forward-mode=io\` | net_null0 ↔ net_null1 | $NA | $(cpp "$NA") | $MA | $(all "${OA[@]}") | $(shares "${SA[@]}") |
| b | \`sluiced --forward-io\` (workers.mode io) | net_null0 ↔ net_null1 | $NB | $(cpp "$NB") | $MB | $(all "${OB[@]}") | $(shares "${SB[@]}") |
| c | \`sluiced\` pipeline: parse, dispatch, ICMP echo → reply | net_pcap ($FLOWS echo requests to $VIP from $FLOWS flows, replayed from memory) → the same port's TX (drop sink) | $NC | $(cpp "$NC") | $MC | $(all "${OC[@]}") | $(shares "${SC[@]}") |
| d | \`dpdk-testpmd --forward-mode=io --port-topology=loop\` | the same pcap → the same port's TX | $ND | $(cpp "$ND") | $MD | $(all "${OD[@]}") | $(shares "${SD[@]}") |

- sluiced io / testpmd io (b / a): **$(ratio "$NB" "$NA")** on-CPU ($(ratio "$MB" "$MA") wall clock)
- sluiced pipeline / testpmd io on the same source (c / d): **$(ratio "$NC" "$ND")** on-CPU ($(ratio "$MC" "$MD") wall clock)
- run c, last round: ${C_CHECK[-1]} (every request answered: replies = rx, drops = 0).
- runs whose forwarding thread never got ${MIN_SHARE}% of its core in $ATTEMPTS attempts: ${DISTURBED[*]:-none}.

How the numbers are taken: received packets summed over the forwarding ports, per second.
Wall clock: sluiced's final \`counter rx_packets\` over the worker's own elapsed time (its TSC
cycles; \`sluiced: stopped by SIGINT after S s\`); testpmd's mean per-second \`Rx-pps\`
(TSC-timed by testpmd), the first two seconds skipped. On-CPU: the same packet counts over the
CPU time the forwarding thread \`rte-worker-1\` really ran (\`/proc/PID/task/TID/schedstat\`,
sampled every 10 ms until the thread ends); CPU share is its run time over run + runnable-but-waiting time, 100%
on an otherwise idle core. Cycles per packet: TSC cycles per packet at the on-CPU rate. In (c) and (d) the pcap PMD
copies every replayed packet into a fresh mbuf (\`infinite_rx\`), which is much of the cost of
that source: (d) is the ceiling for (c). This is a 2-core virtual machine: lcore 0 also runs the
OS and this script, and anything else running shares the cores, so single runs vary; the
interleaved rounds show by how much. Reported, never asserted.

Commands (a temporary pcap; \`P\` a per-run file prefix):

\`\`\`sh
dpdk-testpmd ${EAL_COMMON[*]} --file-prefix P --vdev net_null0 --vdev net_null1 -- \\
  ${TESTPMD_COMMON[*]}
sluiced --config b.yaml -- ${EAL_COMMON[*]} --file-prefix P    # net_null0, net_null1; workers.mode io
sluiced --config c.yaml -- ${EAL_COMMON[*]} --file-prefix P    # net_pcap0,rx_pcap=icmp-echo.pcap,infinite_rx=1; VIP $VIP
dpdk-testpmd ${EAL_COMMON[*]} --file-prefix P --vdev net_pcap0,rx_pcap=icmp-echo.pcap,infinite_rx=1 -- \\
  ${TESTPMD_COMMON[*]} --port-topology=loop
\`\`\`
MD

printf '\n| run (medians of %s rounds) | Mpps on-CPU | Mpps wall clock |\n|---|---:|---:|\n' "$ROUNDS"
printf '| a testpmd io (null↔null) | %s | %s |\n' "$NA" "$MA"
printf '| b sluiced io (null↔null) | %s | %s |\n' "$NB" "$MB"
printf '| c sluiced pipeline (pcap ICMP echo) | %s | %s |\n' "$NC" "$MC"
printf '| d testpmd io (same pcap) | %s | %s |\n' "$ND" "$MD"
echo "on-CPU: b/a = $(ratio "$NB" "$NA")   c/d = $(ratio "$NC" "$ND")   (wall clock: $(ratio "$MB" "$MA"), $(ratio "$MC" "$MD"))   -> $RESULTS"
