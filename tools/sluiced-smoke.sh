#!/usr/bin/env bash
# Smoke tests of the DPDK side of `sluiced` on virtual devices, a few seconds each, no
# hugepages, each run with its own --file-prefix:
#
#  1. pipeline on net_null: starts, announces (2 frames out of port a), drops null frames with a
#     reason, stops on SIGTERM with exit 0 and counters;
#  2. io mode (--forward-io): every packet received is transmitted on the other port;
#  3. two workers (two queues per port, RSS where the driver hashes) with lcores mapped onto
#     this machine's CPUs through `-- --lcores`;
#  4. idle mode `interrupt` on a driver without RX interrupts (net_ring): logged fallback to sleep;
#  5. idle mode `interrupt` on net_tap inside a network namespace: the port reports RX
#     interrupts, the worker sleeps in epoll, and the kernel's ping to the VIP is answered;
#  6. setup errors exit 1 with the port or lcore named: a worker lcore the EAL does not run,
#     an MTU that does not fit the mbufs, a main lcore that is a worker (EAL option).
#
# Usage: tools/sluiced-smoke.sh        (SLUICED=.build-dpdk/release/sluiced by default)
set -euo pipefail
cd "$(dirname "$0")/.."
SLUICED=${SLUICED:-.build-dpdk/release/sluiced}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built (swift build -c release --scratch-path .build-dpdk)"; exit 1; }
SLUICED=$(realpath "$SLUICED")

WORK=$(mktemp -d /tmp/sluice-smoke.XXXXXX)
PREFIX="slsmoke$$"
NS="slsmoke$$"
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]:-}"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf /var/run/dpdk/"$PREFIX"-* 2>/dev/null || true
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

EAL=(--no-huge -m 256 --no-pci --log-level lib.eal:error)
fail() { echo "FAIL: $*"; [ -n "${LOG:-}" ] && tail -30 "$LOG"; exit 1; }
counter() { awk -v n="$2" '$1 == "counter" && $2 == n { print $3 }' "$1"; }

# run NAME SECONDS SIGNAL [sluiced args...]: start, wait for "sluiced: running", let it run,
# stop it with SIGNAL; sets LOG and RC.
run() {
  local name=$1 seconds=$2 signal=$3; shift 3
  LOG="$WORK/$name.log"
  "$SLUICED" "$@" >"$LOG" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q "^sluiced: running" "$LOG" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "^sluiced: running" "$LOG" || { wait "$pid" || true; fail "$name: sluiced did not start"; }
  sleep "$seconds"
  kill "-$signal" "$pid"
  RC=0
  wait "$pid" || RC=$?
}

# expect_error NAME PATTERN [sluiced args...]: must exit 1 (before running) saying PATTERN.
expect_error() {
  local name=$1 pattern=$2; shift 2
  LOG="$WORK/$name.log"
  RC=0
  timeout 30 "$SLUICED" "$@" >"$LOG" 2>&1 || RC=$?
  [ "$RC" -eq 1 ] || fail "$name: exit status $RC, expected 1"
  grep -q "$pattern" "$LOG" || fail "$name: no '$pattern' in the output"
  grep -q "^sluiced: running" "$LOG" && fail "$name: it ran"
  echo "ok: $name -> $(grep "^sluiced: " "$LOG" | head -1)"
}

two_null_ports() { # FILE PREFIX [workers-line]
  local workers='{ lcores: [1], idle: { mode: poll } }'
  [ -n "${3:-}" ] && workers=$3
  cat >"$1" <<YAML
eal: ["--file-prefix", "$2"]
ports:
  - { name: a, device: net_null0 }
  - { name: b, device: net_null1 }
workers: $workers
mempool: { mbufs: 8191, cache_size: 256 }
vips:
  - { address: 192.0.2.10, port: a }
  - { address: "2001:db8::10", port: a }
YAML
}

# 1. pipeline on net_null ------------------------------------------------------------------------
two_null_ports "$WORK/null.yaml" "$PREFIX-1"
run pipeline 2 TERM --config "$WORK/null.yaml" -- "${EAL[@]}"
[ "$RC" -eq 0 ] || fail "pipeline: exit status $RC after SIGTERM"
grep -q "^port a: dpdk_port=0 .*driver=net_null .*vips=192.0.2.10,2001:db8::10" "$LOG" || fail "pipeline: port line"
rx=$(counter "$LOG" rx_packets)
[ "${rx:-0}" -gt 0 ] || fail "pipeline: nothing received"
[ "$(counter "$LOG" drop_unsupported_ethertype)" = "$rx" ] || fail "pipeline: null frames not all dropped as unsupported_ethertype"
grep -q "^port a: stats .*tx_packets=2 " "$LOG" || fail "pipeline: expected 2 announcements (ARP + NA) out of port a"
grep -q "^sluiced: stopped by SIGTERM after" "$LOG" || fail "pipeline: no summary"
echo "ok: pipeline on net_null -> $(grep '^sluiced: stopped' "$LOG")"

# 2. io mode -----------------------------------------------------------------------------------
two_null_ports "$WORK/io.yaml" "$PREFIX-2"
run io 2 INT --config "$WORK/io.yaml" --forward-io -- "${EAL[@]}"
[ "$RC" -eq 0 ] || fail "io: exit status $RC after SIGINT"
rx=$(counter "$LOG" rx_packets); tx=$(counter "$LOG" tx_packets)
full=$(counter "$LOG" drop_transmit_queue_full); full=${full:-0}
[ "${rx:-0}" -gt 0 ] && [ $((tx + full)) -eq "$rx" ] || fail "io: rx $rx != tx $tx + unsent $full"
grep -q "mode io" "$LOG" || fail "io: not in io mode"
echo "ok: io forwarding -> $(grep '^sluiced: stopped' "$LOG")"

# 3. two workers, lcores 1 and 2 both on CPU 1 -------------------------------------------------------
two_null_ports "$WORK/two.yaml" "$PREFIX-3" "{ lcores: [1, 2], main_lcore: 0, idle: { mode: poll } }"
run two-workers 2 INT --config "$WORK/two.yaml" --forward-io -- "${EAL[@]}" --lcores 0@0,1@1,2@1
[ "$RC" -eq 0 ] || fail "two-workers: exit status $RC"
grep -q "^port a: .* queues=2 " "$LOG" || fail "two-workers: port a does not have 2 queue pairs"
grep -q "^sluiced: 2 worker(s) on lcore(s) 1,2, main lcore 0" "$LOG" || fail "two-workers: worker line"
echo "ok: two workers -> $(grep '^port a: dpdk' "$LOG" | grep -o 'queues=2 .* rss=[^ ]*')"

# 4. interrupt mode without driver support --------------------------------------------------------
cat >"$WORK/ring.yaml" <<YAML
eal: ["--file-prefix", "$PREFIX-4"]
ports: [{ name: r, device: net_ring0, mac: "02:00:00:00:5e:30" }]
workers: { lcores: [1], idle: { mode: interrupt, empty_polls: 16 } }
mempool: { mbufs: 2047, cache_size: 64 }
YAML
run interrupt-fallback 1 INT --config "$WORK/ring.yaml" -- "${EAL[@]}"
[ "$RC" -eq 0 ] || fail "interrupt-fallback: exit status $RC"
grep -q "RX interrupts unavailable .*falls back to sleep" "$LOG" || fail "interrupt-fallback: no fallback logged"
[ "$(counter "$LOG" idle_sleeps)" -gt 0 ] || fail "interrupt-fallback: never slept"
echo "ok: interrupt mode falls back to sleep on net_ring ($(counter "$LOG" idle_sleeps) sleeps)"

# 5. interrupt mode on net_tap in a namespace ------------------------------------------------------
ip netns add "$NS"
ip -n "$NS" link set lo up
cat >"$WORK/tap.yaml" <<YAML
eal: ["--file-prefix", "$PREFIX-5"]
ports: [{ name: t, device: "net_tap0,iface=sltap$$", mac: "02:00:00:00:5e:20" }]
workers: { lcores: [1], idle: { mode: interrupt, empty_polls: 32 } }
mempool: { mbufs: 2047, cache_size: 64 }
vips: [{ address: 192.0.2.20, port: t }]
YAML
LOG="$WORK/tap.log"
ip netns exec "$NS" "$SLUICED" --config "$WORK/tap.yaml" -- "${EAL[@]}" >"$LOG" 2>&1 &
TAP_PID=$!
PIDS+=("$TAP_PID")
for ((i = 0; i < 100; i++)); do grep -q "^sluiced: running" "$LOG" && break; sleep 0.1; done
grep -q "^sluiced: running" "$LOG" || fail "tap: sluiced did not start"
grep -q "^port t: .*driver=net_tap .*rx_interrupts=on" "$LOG" || fail "tap: RX interrupts not available on net_tap"
ip -n "$NS" addr add 192.0.2.1/24 dev "sltap$$"
ip -n "$NS" link set "sltap$$" up
out=$(ip netns exec "$NS" ping -c 5 -i 0.2 -W 2 192.0.2.20 2>&1) || fail "tap: ping: $out"
kill -INT "$TAP_PID"
RC=0; wait "$TAP_PID" || RC=$?
[ "$RC" -eq 0 ] || fail "tap: exit status $RC"
[ "$(counter "$LOG" icmp_echo_reply)" -ge 5 ] || fail "tap: echo replies $(counter "$LOG" icmp_echo_reply)"
[ "$(counter "$LOG" idle_sleeps)" -gt 0 ] || fail "tap: never waited for an interrupt"
grep -q "falls back" "$LOG" && fail "tap: fell back to sleep"
echo "ok: interrupt mode on net_tap answers ping ($(echo "$out" | tail -1))"
ip netns del "$NS"

# 6. setup errors --------------------------------------------------------------------------------
two_null_ports "$WORK/err.yaml" "$PREFIX-6"
expect_error lcore-not-enabled "lcore 1: not in the EAL's lcore set" --config "$WORK/err.yaml" -- "${EAL[@]}" -l 0
expect_error main-is-worker "lcore 1: is the EAL main lcore" --config "$WORK/err.yaml" -- "${EAL[@]}" --main-lcore 1
cat >"$WORK/mtu.yaml" <<YAML
eal: ["--file-prefix", "$PREFIX-6"]
ports: [{ name: a, device: net_null0, mtu: 9000 }]
workers: { lcores: [1] }
YAML
expect_error mtu-too-big "port a (net_null0): mtu: MTU 9000 needs" --config "$WORK/mtu.yaml" -- "${EAL[@]}"
echo "PASS: sluiced-smoke"
