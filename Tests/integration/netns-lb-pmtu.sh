#!/usr/bin/env bash
# Path MTU discovery through sluiced with real kernels: the clients' port (lan0) has an MTU of
# 1400 (set by sluiced's configuration), then 1350 (set on the kernel interface only, which
# sluiced must read: net_af_packet reports 1500), the backends' link 1500. A backend answers a download with 1460-byte segments (the
# client's MSS); each is too big for lan0, so sluiced, as the backend's gateway, sends it ICMP
# "fragmentation needed" (RFC 1191) / "packet too big" (RFC 4443 §3.2, RFC 8201) from its own
# address on lan1, the backend's kernel lowers its path MTU to 1400 and sends again, and the
# download completes, whole, over IPv4 and IPv6.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/netns.sh
. tools/lib/lb-lab.sh
SLUICED=${SLUICED:-.build/release/sluiced}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl is not installed"; exit 1; }
DOWNLOADS=${DOWNLOADS:-6}

lab_init slpm
p="pm$$"
lb_lab_up "$p"
fail() {
  echo "FAIL: $*"
  kill -INT "${SLUICED_PID:-0}" 2>/dev/null; sleep 1
  echo "--- sluiced output"; tail -40 "$LAB_DIR/sluiced.log" 2>/dev/null
  exit 1
}
for i in 1 2 3; do head -c 300000 /dev/urandom >"$LAB_DIR/www$i/big.bin"; done
SERVICES='
services:
  - { name: web, vip: 192.0.2.10, protocol: tcp, port: 80,
      backends: [{ address: 198.51.100.11, port: 8080 }, { address: 198.51.100.12, port: 8080 },
                 { address: 198.51.100.13, port: 8080 }] }
  - { name: web6, vip: "2001:db8::10", protocol: tcp, port: 80,
      backends: [{ address: "2001:db8:1::11", port: 8080 }, { address: "2001:db8:1::12", port: 8080 },
                 { address: "2001:db8:1::13", port: 8080 }] }'
counter() { awk -v n="$1" '$1 == "counter" && $2 == n { print $3 }' "$LAB_DIR/sluiced.log"; }

# run_variant NAME MTU HOW: lan0 at MTU (HOW = config: `mtu:` in sluiced's configuration, set on
# the interface through the PMD; kernel: set on the kernel interface beforehand, sluiced's
# configuration silent), then the downloads; the backends must learn MTU as their path MTU.
run_variant() {
  local name=$1 mtu=$2 how=$3
  if [ "$how" = config ]; then
    LB_LAN0_MTU=$mtu lb_config "slpm$$" "$SERVICES"
  else
    ip link set dev "$LB_PORT0" mtu "$mtu"
    lb_config "slpm$$" "$SERVICES"
  fi
  "$SLUICED" --config "$LAB_DIR/sluiced.yaml" >"$LAB_DIR/sluiced.log" 2>&1 &
  SLUICED_PID=$!
  lab_bg $SLUICED_PID
  wait_for_line "$LAB_DIR/sluiced.log" "sluiced: running" 30 || fail "$name: sluiced did not start"
  grep -q "^port lan0: .* mtu=$mtu " "$LAB_DIR/sluiced.log" \
    || fail "$name: lan0 is not at MTU $mtu: $(grep '^port lan0' "$LAB_DIR/sluiced.log")"
  sleep 2.5
  # The client's MSS stays 1460: its own link is at 1500, only sluiced's lan0 is smaller.
  local url ok size
  for url in "http://192.0.2.10/big.bin" "http://[2001:db8::10]/big.bin"; do
    ok=0
    for _ in $(seq "$DOWNLOADS"); do
      size=$(ip netns exec "$LB_CLIENT_NS" curl -sS -m 10 --fail -o /dev/null -w '%{size_download}' "$url" 2>>"$LAB_DIR/curl.err") \
        && [ "$size" = 300000 ] && ok=$((ok + 1))
    done
    [ "$ok" -eq "$DOWNLOADS" ] || fail "$name: $url: $ok of $DOWNLOADS downloads of 300000 bytes completed: $(tail -2 "$LAB_DIR/curl.err")"
    echo "ok: $name: $url: $ok/$DOWNLOADS downloads of 300000 bytes whole"
  done
  # The backends learned the smaller path MTU from sluiced's errors.
  local learned
  learned=$(for i in 1 2 3; do ip -n "$p-b$i" route get 192.0.2.1 2>/dev/null; ip -n "$p-b$i" -6 route get 2001:db8::1 2>/dev/null; done | grep -c "mtu $mtu" || true)
  [ "$learned" -ge 1 ] || fail "$name: no backend holds a $mtu-byte path MTU towards the client"
  kill -INT $SLUICED_PID
  local rc=0
  wait $SLUICED_PID || rc=$?
  [ "$rc" -eq 0 ] || fail "$name: sluiced exited $rc on SIGINT"
  [ "$(counter icmp_too_big)" -ge 2 ] || fail "$name: icmp_too_big $(counter icmp_too_big): sluiced sent no errors"
  [ -z "$(counter drop_packet_too_big)" ] || fail "$name: packet_too_big drops: $(counter drop_packet_too_big)"
  if [ "$how" = kernel ]; then
    # Started under the client's warm cache: the first replies found the client unresolved.
    [ "$(counter neighbor_misses_solicited)" -ge 1 ] || fail "$name: sluiced never solicited the client"
  fi
  echo "ok: $name: icmp_too_big=$(counter icmp_too_big), $learned backend route(s) at path MTU $mtu"
}

run_variant "mtu in the configuration" 1400 config
# Smaller than the first: the backends hold 1400 from it and must learn again. sluiced starts
# afresh while the client's ARP / neighbor cache still holds its MAC: the client asks for nothing,
# so sluiced must solicit it on the first reply it cannot deliver (NeighborMisses).
run_variant "mtu of the kernel interface (af_packet does not report it)" 1350 kernel
echo "PASS: netns-lb-pmtu"
