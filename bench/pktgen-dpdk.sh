#!/usr/bin/env bash
# Pktgen-DPDK drives sluiced: the recipe of docs/pktgen.md ("Pktgen-DPDK driving sluiced") as one
# script. Pktgen-DPDK is not shipped; build it yourself and pass the binary:
#
#   bench/pktgen-dpdk.sh /path/to/Pktgen-DPDK/build/app/pktgen
#
# One network namespace (slit-pgdpdk<pid>, no route out, documentation addresses only) holds two
# veth pairs: pg0-lb0 (clients' link) and pg1-lb1 (backends' link). sluiced runs on lb0/lb1 over
# net_af_packet with one TCP service (VIP 192.0.2.10:80, BACKENDS backends 198.51.100.101.. with
# static neighbors); Pktgen-DPDK runs on pg0/pg1, sends a range of TCP flows (ACK segments,
# 254 source addresses x 100 source ports, 64 bytes) from port 0 to the VIP for SEND_SECONDS, and
# counts on port 1 what sluiced forwarded to the backends. Pktgen-DPDK's port counters are read
# over its DPDK telemetry socket, sluiced's per-backend counters from its Prometheus endpoint and
# its totals from the `counter` lines it prints at SIGINT.
#
# Exits 0 when sluiced balanced the traffic (every backend got at least half its fair share of
# packets, the per-backend packets add up to forward_to_backend, and Pktgen-DPDK's port 1 received
# at least MIN_RX_PERCENT of them), 1 when it did not, 2 when Pktgen-DPDK is missing. Everything
# it starts is stopped and the namespace deleted on every exit path. Not part of tools/test-all.sh:
# a fresh machine has no Pktgen-DPDK.
#
# Knobs (environment): SLUICED (.build/release/sluiced), SEND_SECONDS (10), RATE (Pktgen-DPDK's
# `set 0 rate`, percent of the 10 Gb/s the veth reports; 1 = about 148k pps of 64-byte frames),
# BACKENDS (4), PKTGEN_MEM (4096: MB of EAL memory; Pktgen-DPDK 23.06 makes several 24576-mbuf
# pools per port and 2048 is not enough for two ports), MIN_RX_PERCENT (90), AF_PACKET_ARGS
# (",framecnt=8192": appended to all four af_packet devices; the PMD's default 512-frame socket
# rings overflow and lose about a tenth of the frames at 149k pps; set it empty for the default).
set -euo pipefail
cd "$(dirname "$0")/.."

PKTGEN=${1:-}
if [ -z "$PKTGEN" ] || [ ! -x "$PKTGEN" ]; then
  cat >&2 <<'EOF'
usage: bench/pktgen-dpdk.sh PKTGEN_BINARY
Pktgen-DPDK is not shipped with Sluice. Build it (Debian 12, DPDK 22.11 from libdpdk-dev):
  apt-get install -y meson ninja-build libpcap-dev libnuma-dev
  git clone https://github.com/pktgen/Pktgen-DPDK.git && cd Pktgen-DPDK
  git checkout pktgen-23.06.1      # the newest release that builds against DPDK 22.11
  meson setup build && ninja -C build
then: bench/pktgen-dpdk.sh "$PWD/build/app/pktgen"   (as root)
EOF
  exit 2
fi
SLUICED=${SLUICED:-.build/release/sluiced}
SEND_SECONDS=${SEND_SECONDS:-10}
RATE=${RATE:-1}
BACKENDS=${BACKENDS:-4}
PKTGEN_MEM=${PKTGEN_MEM:-4096}
MIN_RX_PERCENT=${MIN_RX_PERCENT:-90}
AF_PACKET_ARGS=${AF_PACKET_ARGS-,framecnt=8192}
[ "$(id -u)" -eq 0 ] || { echo "FAIL: run as root (namespaces, DPDK)"; exit 1; }
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built (swift build -c release --product sluiced)"; exit 1; }
for tool in script dpdk-telemetry.py curl ip; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed"; exit 1; }
done
PKTGEN=$(realpath "$PKTGEN")

. tools/lib/netns.sh
lab_init slpgdpdk
NS="slit-pgdpdk$$"
LB_PREFIX="slit-pgdpdk-lb$$"
PG_PREFIX="slit-pgdpdk-pg$$"
# Besides lab_cleanup's work: whatever still runs inside the namespace (Pktgen-DPDK runs under
# script(1) through `ip netns exec`) is stopped by its pid, and the two EAL runtime directories go.
pg_cleanup() {
  local rc=$? pid
  set +e
  trap '' INT TERM   # a second Ctrl-C must not cut the teardown short
  for pid in $(ip netns pids "$NS" 2>/dev/null); do kill "$pid" 2>/dev/null; done
  sleep 0.5
  for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  rm -rf "/var/run/dpdk/$LB_PREFIX" "/var/run/dpdk/$PG_PREFIX"
  (exit $rc)
  lab_cleanup
}
trap pg_cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- sluiced output (tail)"; tail -20 "$LAB_DIR/sluiced.log" 2>/dev/null
  echo "--- Pktgen-DPDK output (text lines)"
  tr '\r' '\n' <"$LAB_DIR/pktgen.out" 2>/dev/null | grep -aE 'EAL|PANIC|Cannot|Error|error|Port' | head -20
  exit 1
}

# The lab: both veth pairs inside one namespace; the kernel must not answer on them.
lab_netns "$NS"
ip -n "$NS" link add pg0 type veth peer name lb0
ip -n "$NS" link add pg1 type veth peer name lb1
for i in pg0 lb0 pg1 lb1; do
  ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$i.disable_ipv6=1"
  ip -n "$NS" link set "$i" up
done

# sluiced: worker on lcore 0, main on lcore 1 (Pktgen-DPDK's busy-polling worker takes lcore 1).
{
  cat <<YAML
eal: ["--no-huge", "-m", "512", "--no-pci", "--file-prefix", "$LB_PREFIX", "--log-level", "lib.eal:error"]
ports:
  - { name: clients, device: "net_af_packet0,iface=lb0${AF_PACKET_ARGS}", mac: "02:00:00:00:5e:10", addresses: ["192.0.2.2/24"] }
  - { name: backends, device: "net_af_packet1,iface=lb1${AF_PACKET_ARGS}", mac: "02:00:00:00:5e:11", addresses: ["198.51.100.1/24"] }
workers: { lcores: [0], main_lcore: 1, idle: { mode: sleep, sleep_us: 50 } }
mempool: { mbufs: 8191, cache_size: 128 }
flows: { capacity: 65536 }
metrics: { enabled: true, listen: "127.0.0.1:9469" }
control: { socket: "$LAB_DIR/sluiced.sock" }
vips:
  - { address: 192.0.2.10, port: clients }
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends:
YAML
  for i in $(seq "$BACKENDS"); do printf '      - { address: 198.51.100.%d, port: 8080 }\n' $((100 + i)); done
  echo "neighbors:"
  for i in $(seq "$BACKENDS"); do
    printf '  - { address: 198.51.100.%d, mac: "02:00:00:00:0b:%02x" }\n' $((100 + i)) "$i"
  done
} >"$LAB_DIR/lb.yaml"
ip netns exec "$NS" "$SLUICED" --config "$LAB_DIR/lb.yaml" >"$LAB_DIR/sluiced.log" 2>&1 &
SLUICED_PID=$!
lab_bg $SLUICED_PID
wait_for_line "$LAB_DIR/sluiced.log" "sluiced: running" 30 || fail "sluiced did not start"

# The command file: port 0 sends TCP ACK segments to the VIP's MAC (sluiced's clients port);
# each `range` field steps once per packet, so the 254 x 100 (source address, source port)
# pairs repeat with period lcm(254, 100) = 12700 distinct flows.
cat >"$LAB_DIR/flows.pkt" <<EOF
range 0 dst mac start 02:00:00:00:5e:10
range 0 src ip 203.0.113.1 203.0.113.1 203.0.113.254 0.0.0.1
range 0 dst ip 192.0.2.10 192.0.2.10 192.0.2.10 0.0.0.0
range 0 src port 1024 1024 1123 1
range 0 dst port 80 80 80 0
range 0 proto tcp
range 0 size 64 64 64 0
enable 0 range
set 0 rate $RATE
start 0
sleep $SEND_SECONDS
stop 0
sleep 4
quit
EOF

# Pktgen-DPDK wants a terminal (without one it exits: "scrn_constructor: tcgetattr failed"):
# script(1) gives it a pseudo-terminal; the command file does the rest and quits.
( cd "$LAB_DIR" && exec script -qfec "ip netns exec $NS $PKTGEN -l 0,1 --no-huge --no-pci -m $PKTGEN_MEM \
    --file-prefix $PG_PREFIX --vdev net_af_packet0,iface=pg0${AF_PACKET_ARGS} --vdev net_af_packet1,iface=pg1${AF_PACKET_ARGS} \
    -- -P -m 1.[0-1] -f flows.pkt" pktgen.out </dev/null >/dev/null 2>&1 ) &
PG_PID=$!
lab_bg $PG_PID

# Read Pktgen-DPDK's port counters over telemetry while it runs; the last answer is taken after
# `stop 0` (the 4 s before `quit`), so it holds the run's totals.
telemetry() { echo "/ethdev/stats,$1" | dpdk-telemetry.py -f "$PG_PREFIX" 2>/dev/null | tr -d ' \n'; }
deadline=$((SECONDS + SEND_SECONDS + 60))
while kill -0 $PG_PID 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "Pktgen-DPDK did not quit within $((SEND_SECONDS + 60)) s"
  for p in 0 1; do
    s=$(telemetry $p)
    case $s in *'"ipackets"'*) echo "$s" >"$LAB_DIR/pg-port$p.json" ;; esac
  done
  sleep 0.5
done
wait $PG_PID && pg_rc=0 || pg_rc=$?
[ "$pg_rc" -eq 0 ] || fail "Pktgen-DPDK exited $pg_rc"
[ -s "$LAB_DIR/pg-port0.json" ] && [ -s "$LAB_DIR/pg-port1.json" ] || fail "no telemetry answer from Pktgen-DPDK"
pg_stat() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$LAB_DIR/pg-port$1.json"; }
pg_tx=$(pg_stat 0 opackets); pg_rx=$(pg_stat 1 ipackets)

ip netns exec "$NS" curl -sf http://127.0.0.1:9469/metrics >"$LAB_DIR/metrics.txt" \
  || fail "sluiced's metrics endpoint did not answer"
# Where packets were lost on the way: the veths' drop counters (the kernel's side of af_packet).
kdrops() { ip netns exec "$NS" cat "/sys/class/net/$1/statistics/$2"; }
veth_drops="pg0 tx_dropped $(kdrops pg0 tx_dropped), lb0 rx_dropped $(kdrops lb0 rx_dropped), lb1 tx_dropped $(kdrops lb1 tx_dropped), pg1 rx_dropped $(kdrops pg1 rx_dropped)"
kill -INT $SLUICED_PID
wait $SLUICED_PID && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "sluiced exited $rc on SIGINT"
counter() { awk -v n="$1" '$1 == "counter" && $2 == n { print $3 }' "$LAB_DIR/sluiced.log"; }
metric() { awk -v n="$1" -v p="port=\"$2\"" '$1 ~ "^" n "[{]" && index($1, p) { print $2 }' "$LAB_DIR/metrics.txt"; }
lb_rx=$(counter rx_packets); forwarded=$(counter forward_to_backend); flows=$(counter new_flows)

version=$(grep -aoE 'Pktgen [0-9]+\.[0-9]+\.[0-9]+ \(DPDK [0-9.]+\)' "$LAB_DIR/pktgen.out" | head -1)
echo "${version:-Pktgen-DPDK} over net_af_packet, rate $RATE %, $SEND_SECONDS s:"
echo "  Pktgen-DPDK port 0 sent     $pg_tx packets ($((pg_tx / SEND_SECONDS)) pps)"
echo "  sluiced received            $lb_rx packets, new_flows $flows, forward_to_backend $forwarded"
echo "  sluiced rx_missed: clients $(metric sluice_port_rx_missed_total clients), backends $(metric sluice_port_rx_missed_total backends); veth drops: $veth_drops"
echo "  Pktgen-DPDK port 1 received $pg_rx packets ($((pg_rx / SEND_SECONDS)) pps)"
echo "  per backend (sluice_backend_packets_total):"
grep '^sluice_backend_packets_total' "$LAB_DIR/metrics.txt" \
  | sed 's/.*backend="\([^"]*\)".* \([0-9]*\)$/\1 \2/' >"$LAB_DIR/per-backend.txt"
python3 - "$BACKENDS" "$forwarded" "$pg_rx" "$MIN_RX_PERCENT" "$LAB_DIR/per-backend.txt" <<'PY' || exit 1
import sys
backends, forwarded, pg_rx, min_rx = map(int, sys.argv[1:5])
rows = [l.split() for l in open(sys.argv[5]) if l.strip()]
counts = {b: int(n) for b, n in rows}
total = sum(counts.values())
for b, n in sorted(counts.items()):
    print(f"    {b:22} {n:10d}  {100.0 * n / max(total, 1):5.1f} %")
problems = []
if forwarded <= 0:
    problems.append("sluiced forwarded nothing")
if len(counts) != backends:
    problems.append(f"{len(counts)} backends in the metrics, {backends} configured")
if total != forwarded:
    problems.append(f"per-backend packets add up to {total}, forward_to_backend is {forwarded}")
fair = forwarded / max(backends, 1)
for b, n in counts.items():
    if n < fair / 2:
        problems.append(f"{b} got {n} packets, under half its fair share {fair:.0f}")
if pg_rx < forwarded * min_rx / 100:
    problems.append(f"Pktgen-DPDK port 1 received {pg_rx} of {forwarded} forwarded (< {min_rx} %)")
if problems:
    print("FAIL: " + "; ".join(problems))
    sys.exit(1)
print(f"PASS: sluiced balanced Pktgen-DPDK's traffic over {backends} backends "
      f"(largest/smallest {max(counts.values()) / max(min(counts.values()), 1):.3f}); "
      f"port 1 received {100.0 * pg_rx / forwarded:.2f} % of what sluiced forwarded")
PY
