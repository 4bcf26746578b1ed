#!/usr/bin/env bash
# End-to-end vxlan mode with real TCP: the backend is a "pod" address on a node's kernel VXLAN
# device (VNI 42, UDP 4789) in another namespace. sluiced DNATs the client's packets and wraps
# them in VXLAN to the node's VTEP; the Linux kernel's own VXLAN device must accept them. The
# node sends the pod's replies back over VXLAN to sluiced, which unwraps them and returns them
# to the client from the VIP. MSS clamping keeps the client's segments within the tunnel.
# The backend-side port is net_tap, which offloads IPv4 header checksums: the outer header's
# checksum is left to the port, and the kernel (which drops a bad one) must accept every packet.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/netns.sh
. tools/lib/lb-lab.sh
SLUICED=${SLUICED:-.build/release/sluiced}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
REQUESTS=${REQUESTS:-50}

lab_init slvx
LB_LAN1=tap
lb_lab_up "sv$$"
fail() {
  echo "FAIL: $*"
  kill -INT "${SLUICED_PID:-0}" 2>/dev/null; sleep 1
  echo "--- sluiced output"; tail -40 "$LAB_DIR/sluiced.log" 2>/dev/null
  exit 1
}

# The overlay node: 198.51.100.21 on the backend segment, VTEP for VNI 42, pod 203.0.113.5.
NODE="sv$$-node"
lab_netns "$NODE"
ip -n "$LB_BK_NS" link add node0 type veth peer name eth0 netns "$NODE"
ip -n "$LB_BK_NS" link set node0 master br0 up
ip -n "$NODE" addr add 198.51.100.21/24 dev eth0
ip -n "$NODE" link set eth0 up
ip -n "$NODE" link add vx42 address 02:42:00:00:00:05 type vxlan id 42 dstport 4789 local 198.51.100.21 dev eth0 nolearning
ip -n "$NODE" addr add 203.0.113.5/24 dev vx42
ip -n "$NODE" link set vx42 up
# Replies to clients go back into the tunnel to sluiced's VTEP address.
ip netns exec "$NODE" bridge fdb append 00:00:00:00:00:00 dev vx42 dst 198.51.100.1
ip -n "$NODE" route add 192.0.2.0/24 dev vx42
ip -n "$NODE" neigh add 192.0.2.1 lladdr 02:00:00:00:5e:11 dev vx42 nud permanent
for dev in eth0 vx42; do ip netns exec "$NODE" ethtool -K "$dev" tx off >/dev/null; done
mkdir -p "$LAB_DIR/pod"; echo "pod on node1" >"$LAB_DIR/pod/index.html"
ip netns exec "$NODE" python3 -m http.server 8080 --bind 203.0.113.5 --directory "$LAB_DIR/pod" >"$LAB_DIR/pod.log" 2>&1 &
lab_bg $!
for _ in $(seq 50); do ip netns exec "$NODE" bash -c 'exec 3<>/dev/tcp/203.0.113.5/8080' 2>/dev/null && break; sleep 0.1; done

lb_config "slvx$$" '
services:
  - name: pods
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    mode: vxlan
    mss_clamp: 1380
    backends:
      - { address: 203.0.113.5, port: 8080, vtep: 198.51.100.21, vni: 42, inner_mac: "02:42:00:00:00:05" }'
"$SLUICED" --config "$LAB_DIR/sluiced.yaml" >"$LAB_DIR/sluiced.log" 2>&1 &
SLUICED_PID=$!
lab_bg $SLUICED_PID
wait_for_line "$LAB_DIR/sluiced.log" "sluiced: running" 30 || fail "sluiced did not start"
lb_attach_tap
grep -q "^port lan1: .*driver=net_tap .*ipv4_checksum_offload=rx,tx" "$LAB_DIR/sluiced.log" \
  || fail "lan1 is not net_tap with IPv4 checksum offload: $(grep '^port lan1' "$LAB_DIR/sluiced.log")"
sleep 2.5

ok=0
for i in $(seq "$REQUESTS"); do
  body=$(ip netns exec "$LB_CLIENT_NS" curl -sS -m 3 --fail http://192.0.2.10/ 2>>"$LAB_DIR/curl.err") && \
    [ "$body" = "pod on node1" ] && ok=$((ok + 1))
done
[ "$ok" -eq "$REQUESTS" ] || fail "only $ok of $REQUESTS requests through the VXLAN overlay succeeded: $(tail -3 "$LAB_DIR/curl.err")"
echo "ok: $ok/$REQUESTS HTTP requests to the VIP answered by the pod behind the kernel VXLAN device"

# A 200 kB response: the pod's full-size segments come back through the tunnel and the client's
# ACK stream goes in; the transfer must be complete.
head -c 200000 /dev/urandom >"$LAB_DIR/pod/big.bin"
got=$(ip netns exec "$LB_CLIENT_NS" curl -sS -m 10 --fail http://192.0.2.10/big.bin | wc -c)
[ "$got" -eq 200000 ] || fail "large response: got $got of 200000 bytes"
echo "ok: 200000-byte response intact through the overlay"

rx_errors=$(ip netns exec "$NODE" ip -s link show vx42 | awk '/RX:/ {getline; print $3}')
[ "${rx_errors:-0}" -eq 0 ] || fail "the kernel VXLAN device counted $rx_errors receive errors"

kill -INT $SLUICED_PID
wait $SLUICED_PID && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "sluiced exited $rc on SIGINT"
counter() { awk -v n="$1" '$1 == "counter" && $2 == n { print $3 }' "$LAB_DIR/sluiced.log"; }
echo "ok: counters: new_flows=$(counter new_flows) forward_to_backend=$(counter forward_to_backend) return_to_client=$(counter return_to_client)"
[ "$(counter return_to_client)" -gt 0 ] || fail "no return traffic counted"
echo "PASS: netns-lb-vxlan"
