#!/usr/bin/env bash
# Control-plane storm: backend updates over the control socket at UPDATE_RATE/s (default 1000)
# for STORM seconds (default 30) while one worker forwards established TCP flows at full speed,
# with BASELINE (default 5) quiet seconds before and AFTER (default 5) after.
#
#   source: net_pcap0,rx_pcap=FILE,infinite_rx=1 — FLOWS (default 1000) established TCP flows to
#           VIP:80 replayed forever from memory (the source never misses a packet, so a dip in
#           the rate is the worker's); sink: net_null0,no-rx=1 with static backend neighbors.
#   storm:  backend.update toggling one backend's weight 1 ↔ 2: every request is a real change
#           (a new snapshot with new Maglev tables, built and published through RCU).
#
# Reports (bench/results/control-storm.md): updates sent and achieved rate, snapshots published,
# request → response latency p50 / p99 / max (the response leaves after `publish` returned,
# i.e. after every worker passed a quiescent state: the new configuration is in force for
# every packet after that moment), the worker's RX and forwarded packets per second in each
# phase, and packets dropped in each phase (for any reason). Reported, never asserted.
# Not measured here: the time until a change is seen on the wire by an outside observer.
#
# BATCH=N (default 1) sends the updates N to a JSON-RPC batch (one publication per batch), each
# to one of N backends.
#
# Usage: bench/control-storm.sh [--no-build]    SCRATCH=.build-lbbench UPDATE_RATE=1000 STORM=30 BATCH=1
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
UPDATE_RATE=${UPDATE_RATE:-1000}
STORM=${STORM:-30}
BASELINE=${BASELINE:-5}
AFTER=${AFTER:-5}
FLOWS=${FLOWS:-1000}
export BATCH=${BATCH:-1}
SCRATCH=${SCRATCH:-.build-lbbench}
RESULTS=${RESULTS:-bench/results/control-storm.md}
SLUICED="$SCRATCH/release/sluiced"
PYTHON=/usr/bin/python3   # Debian's, with python3-scapy
PREFIX="slcst$$"
if [ "${1:-}" != "--no-build" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product sluiced 2>&1 | grep -E "error|Build" | tail -2
fi
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
"$PYTHON" -c 'import scapy' 2>/dev/null || { echo "FAIL: $PYTHON has no scapy (Debian package python3-scapy)"; exit 1; }
bench_workdir sluice-ctlstorm
bench_environment
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

"$PYTHON" - "$WORK/ack.pcap" "$FLOWS" <<'PY'
import sys
from scapy.all import Ether, IP, TCP, Raw, wrpcap
path, flows = sys.argv[1], int(sys.argv[2])
wrpcap(path, [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:5e:10")
              / IP(src="10.0.%d.%d" % (i >> 8, i & 255), dst="192.0.2.10") / TCP(sport=1024 + i, dport=80, flags="A")
              / Raw(b"\0" * 6) for i in range(flows)])
PY
cat >"$WORK/sluiced.yaml" <<YAML
eal: ["--no-huge", "-m", "1024", "--no-pci", "--file-prefix", "$PREFIX", "--log-level", "lib.eal:error"]
ports:
  - { name: pcap0, device: "net_pcap0,rx_pcap=$WORK/ack.pcap,infinite_rx=1", mac: "02:00:00:00:5e:10", addresses: ["192.0.2.2/24"] }
  - { name: sink, device: "net_null0,no-rx=1", mac: "02:00:00:00:5e:11", addresses: ["198.51.100.1/24"] }
workers: { lcores: [1], idle: { mode: poll } }
mempool: { mbufs: $((FLOWS + 16383)), cache_size: 256, data_room: 1792 }
flows: { capacity: 65536, hash_seed: "000102030405060708090a0b0c0d0e0f" }
control: { socket: "$WORK/sluiced.sock" }
neighbors:
$(for i in 1 2 3 4; do echo "  - { address: 198.51.100.1$i, mac: \"02:00:00:00:00:1$i\" }"; done)
vips:
  - { address: 192.0.2.10, port: pcap0 }
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends:
$(for i in 1 2 3 4; do echo "      - { address: 198.51.100.1$i, port: 8080 }"; done)
YAML
"$SLUICED" --config "$WORK/sluiced.yaml" >"$WORK/sluiced.log" 2>&1 &
PID=$!
PIDS+=("$PID")
for _ in $(seq 300); do grep -q "sluiced: running" "$WORK/sluiced.log" && break; sleep 0.1; done
grep -q "sluiced: running" "$WORK/sluiced.log" || { echo "FAIL: sluiced did not start"; cat "$WORK/sluiced.log"; exit 1; }
sleep 2   # the first pass over the pcap creates the flows
RESULT=$(taskset -c 0 "$PYTHON" bench/control_storm.py "$WORK/sluiced.sock" web 198.51.100.14 "$UPDATE_RATE" "$BASELINE" "$STORM" "$AFTER" "$PID")
kill -INT $PID; wait $PID || true
echo "$RESULT"
mkdir -p "$(dirname "$RESULTS")"
# One section per run, appended (run batch 1 and batch N for the comparison).
[ -s "$RESULTS" ] || {
  echo "# Control-plane storm: backend updates over the socket under full forwarding"
  echo
  echo "\`bench/control-storm.sh\`: one worker (lcore 1, poll) forwards $FLOWS established TCP flows from an"
  echo "in-memory pcap source to a net_null sink; the control client runs on the other core with the"
  echo "main lcore and the control thread."
  echo
  echo "- latency_ms: request (or batch) sent → response read, one at a time; the response is sent"
  echo "  after \`publish\` returned (every worker passed a quiescent state)."
  echo "- rx_pps / forwarded_pps: the worker's counters sampled once a second through \`stats\`."
  echo "- dropped: packets dropped (any reason) in each phase; a loss caused by updates shows as"
  echo "  drops during the storm that the baseline does not have."
  echo "- worker_cpu_share_pct: the worker thread's run time / (run + runnable-but-waiting) in each"
  echo "  phase; forwarded_per_oncpu_s: forwarded packets per second of worker CPU time. On a shared"
  echo "  2-core machine the scheduler may put other work on the worker's core while the control"
  echo "  thread and the client keep the other one busy; these two separate that from the updates' cost."
} >"$RESULTS"
{
  echo
  echo "## $UPDATE_RATE updates/s for $STORM s, batch $BATCH ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $COMMIT$DIRTY, load $LOAD)"
  echo
  echo '```json'
  echo "$RESULT"
  echo '```'
} >>"$RESULTS"
echo "results: $RESULTS"
