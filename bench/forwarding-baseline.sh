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
# Packet rates, the same way for both programs: packets received on all forwarding ports
# divided by the forwarding core's own TSC time. sluiced: final `counter rx_packets` over its
# worker's elapsed cycles (`sluiced: stopped by SIGINT after S s`); testpmd: with
# --record-core-cycles, "total io packets" over "total cycles" at its TSC clock. Results go to
# bench/results/forwarding-baseline.md. Benchmarks are reported, never asserted: this script
# fails only when a run does not produce a number.
#
# Usage: bench/forwarding-baseline.sh [--no-build]   DURATION=10 FLOWS=4096 SCRATCH=.build-dpdk
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
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

WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]:-}"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -INT "$pid" 2>/dev/null || true; fi
  done
  sleep 0.5
  for pid in "${PIDS[@]:-}"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  rm -rf /var/run/dpdk/"$PREFIX"-* 2>/dev/null || true
  [ -z "${KEEP_BENCH_DIR:-}" ] && rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

EAL_COMMON=(--no-huge -m 1024 --no-pci -l 0,1 --main-lcore 0 --log-level lib.eal:error)

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

# run_for SECONDS LOG CMD...: run CMD in the background, SIGINT after SECONDS, wait for it.
run_for() {
  local seconds=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  sleep "$seconds"
  kill -INT "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null && [ $waited -lt 100 ]; do sleep 0.1; waited=$((waited + 1)); done
  wait "$pid" || { echo "FAIL: $* exited $? (log: $log)"; tail -20 "$log"; exit 1; }
}

# testpmd_mpps LOG: from "CPU cycles/packet=C (total cycles=X / total io packets=N) at H MHz Clock".
testpmd_mpps() {
  sed -n 's/.*total cycles=\([0-9]*\) \/ total io packets=\([0-9]*\)) at \([0-9]*\) MHz.*/\1 \2 \3/p' "$1" \
    | awk '{ if ($1 == 0) exit 1; printf "%.3f", $2 / ($1 / ($3 * 1e6)) / 1e6; found = 1 } END { if (!found) exit 1 }'
}

# sluiced_mpps LOG: rx_packets / the worker's elapsed seconds, from the final report.
sluiced_mpps() {
  awk '$1 == "counter" && $2 == "rx_packets" { rx = $3 }
       /^sluiced: stopped by/ { for (i = 1; i <= NF; i++) if ($i == "after") secs = $(i + 1) }
       END { if (secs == 0) exit 1; printf "%.3f", rx / secs / 1e6 }' "$1"
}
counter() { awk -v n="$2" '$1 == "counter" && $2 == n { print $3 }' "$1"; }

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "forwarding baseline: ${DURATION}s per run, worker/forwarding core = lcore 1, main = lcore 0"

# ---- (a) testpmd io, net_null <-> net_null -----------------------------------------------------
run_for "$DURATION" "$WORK/a.log" "$TESTPMD" "${EAL_COMMON[@]}" --file-prefix "$PREFIX-a" \
  --vdev net_null0 --vdev net_null1 -- --total-num-mbufs=16384 --forward-mode=io --nb-cores=1 \
  --auto-start --stats-period 1 --record-core-cycles
A=$(testpmd_mpps "$WORK/a.log") || { echo "FAIL: no rate from testpmd (a)"; tail "$WORK/a.log"; exit 1; }
echo "a. testpmd io          net_null <-> net_null   $A Mpps"

# ---- (b) sluiced io, net_null <-> net_null -----------------------------------------------------
cat >"$WORK/b.yaml" <<YAML
eal: ["--file-prefix", "$PREFIX-b"]
ports:
  - { name: null0, device: net_null0 }
  - { name: null1, device: net_null1 }
workers: { lcores: [1], main_lcore: 0, mode: io, idle: { mode: poll } }
mempool: { mbufs: 16383, cache_size: 256 }
YAML
run_for "$DURATION" "$WORK/b.log" "$SLUICED" --config "$WORK/b.yaml" -- "${EAL_COMMON[@]}"
B=$(sluiced_mpps "$WORK/b.log") || { echo "FAIL: no rate from sluiced (b)"; tail "$WORK/b.log"; exit 1; }
echo "b. sluiced io          net_null <-> net_null   $B Mpps"

# ---- (c) sluiced pipeline, pcap of ICMP echo requests -> echo replies --------------------------
cat >"$WORK/c.yaml" <<YAML
eal: ["--file-prefix", "$PREFIX-c"]
ports:
  - { name: pcap0, device: "net_pcap0,rx_pcap=$PCAP,infinite_rx=1", mac: "$VIP_MAC" }
workers: { lcores: [1], main_lcore: 0, mode: pipeline, idle: { mode: poll } }
mempool: { mbufs: 16383, cache_size: 256 }
vips:
  - { address: $VIP, port: pcap0 }
YAML
run_for "$DURATION" "$WORK/c.log" "$SLUICED" --config "$WORK/c.yaml" -- "${EAL_COMMON[@]}"
C=$(sluiced_mpps "$WORK/c.log") || { echo "FAIL: no rate from sluiced (c)"; tail "$WORK/c.log"; exit 1; }
C_RX=$(counter "$WORK/c.log" rx_packets)
C_REPLIES=$(counter "$WORK/c.log" icmp_echo_reply)
C_TX=$(counter "$WORK/c.log" tx_packets)
C_DROPS=$(awk '$1 == "counter" && $2 ~ /^drop_/ { s += $3 } END { print s + 0 }' "$WORK/c.log")
echo "c. sluiced pipeline    pcap ICMP echo -> reply $C Mpps  (rx $C_RX, echo replies $C_REPLIES, tx $C_TX, drops $C_DROPS)"

# ---- (d) testpmd io on the same pcap source, port 0 -> port 0 -----------------------------------
run_for "$DURATION" "$WORK/d.log" "$TESTPMD" "${EAL_COMMON[@]}" --file-prefix "$PREFIX-d" \
  --vdev "net_pcap0,rx_pcap=$PCAP,infinite_rx=1" -- --total-num-mbufs=16384 --forward-mode=io \
  --port-topology=loop --nb-cores=1 --auto-start --stats-period 1 --record-core-cycles
D=$(testpmd_mpps "$WORK/d.log") || { echo "FAIL: no rate from testpmd (d)"; tail "$WORK/d.log"; exit 1; }
echo "d. testpmd io          pcap -> same port       $D Mpps"

ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", (y > 0 ? x / y : 0) }'; }
RATIO_IO=$(ratio "$B" "$A")
RATIO_PIPE=$(ratio "$C" "$D")

CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
DPDK_VERSION=$(dpkg-query -W -f='${Version}' libdpdk-dev 2>/dev/null || echo unknown)
SWIFT_VERSION=$(swift --version 2>/dev/null | head -1)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git diff --quiet HEAD -- Sources CShims 2>/dev/null && echo "" || echo " (with uncommitted changes)")
PCAP_PACKETS=$FLOWS

mkdir -p "$(dirname "$RESULTS")"
cat >"$RESULTS" <<MD
# Forwarding baseline

Measured by \`bench/forwarding-baseline.sh\` on $(date -u +%Y-%m-%d) — commit \`$COMMIT\`$DIRTY.
One forwarding core (lcore 1, main lcore 0), \`--no-huge -m 1024 --no-pci\`, ${DURATION} s per run,
64-byte frames. CPU: $CPU ($(nproc) cores); DPDK $DPDK_VERSION (Debian); $SWIFT_VERSION.

| run | what | source → sink | Mpps |
|---|---|---|---:|
| a | \`dpdk-testpmd --forward-mode=io\` | net_null0 ↔ net_null1 | $A |
| b | \`sluiced --forward-io\` (workers.mode io) | net_null0 ↔ net_null1 | $B |
| c | \`sluiced\` pipeline: parse, dispatch, ICMP echo → reply | net_pcap (${PCAP_PACKETS} echo requests to $VIP, replayed from memory) → same port's TX (drop sink) | $C |
| d | \`dpdk-testpmd --forward-mode=io --port-topology=loop\` | the same pcap → same port's TX | $D |

- sluiced io / testpmd io (b / a): **$RATIO_IO**
- sluiced pipeline / testpmd io on the same source (c / d): **$RATIO_PIPE**
- run c: rx_packets $C_RX, icmp_echo_reply $C_REPLIES, tx_packets $C_TX, drops $C_DROPS (every request answered when drops = 0 and replies = rx).

How the numbers are taken, the same way for both programs: packets received on all forwarding
ports divided by the forwarding core's own TSC time. sluiced: its final \`counter rx_packets\`
over the worker's elapsed cycles (printed as \`sluiced: stopped by SIGINT after S s\`);
testpmd (\`--record-core-cycles\`): "total io packets" over "total cycles" at its TSC clock. In (c) and (d) the pcap PMD copies each replayed packet into a fresh mbuf
(\`infinite_rx\`), which is most of the cost of the source; (d) is therefore the ceiling for (c).
On a 2-core machine lcore 0 also runs the OS and this script, and anything else running on
the machine shares lcore 1 too (load average before the runs: $LOAD). Numbers vary by a few
percent between runs. Reported, never asserted.

Commands (as run, with \`$PREFIX\` file prefixes and a temporary pcap):

\`\`\`sh
dpdk-testpmd ${EAL_COMMON[*]} --file-prefix P-a --vdev net_null0 --vdev net_null1 -- \\
  --total-num-mbufs=16384 --forward-mode=io --nb-cores=1 --auto-start --stats-period 1 --record-core-cycles
sluiced --config b.yaml -- ${EAL_COMMON[*]}    # ports net_null0, net_null1; workers.mode io
sluiced --config c.yaml -- ${EAL_COMMON[*]}    # port net_pcap0,rx_pcap=icmp-echo.pcap,infinite_rx=1; VIP $VIP
dpdk-testpmd ${EAL_COMMON[*]} --file-prefix P-d --vdev net_pcap0,rx_pcap=icmp-echo.pcap,infinite_rx=1 -- \\
  --total-num-mbufs=16384 --forward-mode=io --port-topology=loop --nb-cores=1 --auto-start --stats-period 1 --record-core-cycles
\`\`\`
MD

printf '\n| run | Mpps |\n|---|---:|\n| a testpmd io (null↔null) | %s |\n| b sluiced io (null↔null) | %s |\n| c sluiced pipeline (pcap ICMP echo) | %s |\n| d testpmd io (same pcap) | %s |\n' "$A" "$B" "$C" "$D"
echo "b/a = $RATIO_IO   c/d = $RATIO_PIPE   -> $RESULTS"
