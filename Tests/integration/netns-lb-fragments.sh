#!/usr/bin/env bash
# IP fragments end to end, both ways, IPv4 and IPv6, in dnat and full-NAT: UDP datagrams of
# 3000 bytes over 1500-byte links leave the client's kernel in three fragments, and the backends'
# echoes leave theirs in three too. Only the first fragment carries the ports; sluiced sends every
# later fragment where its first went, rewritten as that one was (to the backend, from the pool
# address in full-NAT; back to the client from the VIP), and the kernels reassemble whole
# datagrams. sluiced runs on net_af_xdp here: net_af_packet hands it datagrams the kernel already
# reassembled (the PMD's packet-socket fanout group defragments), so fragments never reach it.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/netns.sh
. tools/lib/lb-lab.sh
SLUICED=${SLUICED:-.build/release/sluiced}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
DATAGRAMS=${DATAGRAMS:-20}

lab_init slfr
p="fr$$"
lb_lab_up "$p"
lb_udp_echo_up
xdp_off() {
  ip link set dev "$LB_PORT0" xdp off 2>/dev/null || true
  ip link set dev "$LB_PORT1" xdp off 2>/dev/null || true
}
fail() {
  echo "FAIL: $*"
  kill -INT "${SLUICED_PID:-0}" 2>/dev/null; sleep 1
  echo "--- sluiced output"; tail -40 "$LAB_DIR/sluiced.log" 2>/dev/null
  xdp_off
  exit 1
}
# net_af_xdp's receive queues take their fill-ring frames from the pool when they are set up.
LB_PMD=net_af_xdp LB_MBUFS=16383 lb_config "slfr$$" '
services:
  - { name: echo, vip: 192.0.2.10, protocol: udp, port: 9000,
      backends: [{ address: 198.51.100.11, port: 9000 }, { address: 198.51.100.12, port: 9000 },
                 { address: 198.51.100.13, port: 9000 }] }
  - { name: echo6, vip: "2001:db8::10", protocol: udp, port: 9000,
      backends: [{ address: "2001:db8:1::11", port: 9000 }, { address: "2001:db8:1::12", port: 9000 },
                 { address: "2001:db8:1::13", port: 9000 }] }
  - { name: echo-fullnat, vip: 192.0.2.10, protocol: udp, port: 9001, mode: fullnat,
      source_pool: [198.51.100.200, 198.51.100.201],
      backends: [{ address: 198.51.100.11, port: 9000 }, { address: 198.51.100.12, port: 9000 },
                 { address: 198.51.100.13, port: 9000 }] }
  - { name: echo6-fullnat, vip: "2001:db8::10", protocol: udp, port: 9001, mode: fullnat,
      source_pool: ["2001:db8:1::200"],
      backends: [{ address: "2001:db8:1::11", port: 9000 }, { address: "2001:db8:1::12", port: 9000 },
                 { address: "2001:db8:1::13", port: 9000 }] }'
"$SLUICED" --config "$LAB_DIR/sluiced.yaml" >"$LAB_DIR/sluiced.log" 2>&1 &
SLUICED_PID=$!
lab_bg $SLUICED_PID
wait_for_line "$LAB_DIR/sluiced.log" "sluiced: running" 30 || fail "sluiced did not start"
# The resolver asks for the backends once a second; give it a moment, then check the path with
# datagrams that fit one frame.
sleep 2.5
for target in "192.0.2.10 9000" "2001:db8::10 9000" "192.0.2.10 9001" "2001:db8::10 9001"; do
  # shellcheck disable=SC2086
  out=$(lb_udp_echo_check $target 6 1000) || fail "unfragmented UDP to $target: $out"
done
echo "ok: unfragmented UDP answered through all four services"

exchanges=0
for target in "192.0.2.10 9000 dnat IPv4" "2001:db8::10 9000 dnat IPv6" \
              "192.0.2.10 9001 full-NAT IPv4" "2001:db8::10 9001 full-NAT IPv6"; do
  set -- $target
  out=$(lb_udp_echo_check "$1" "$2" "$DATAGRAMS" 3000) || fail "$3 $4 fragmented UDP: $out"
  echo "ok: $3 $4: 3000-byte datagrams, 3 fragments each way: $out"
  exchanges=$((exchanges + DATAGRAMS))
done

kill -INT $SLUICED_PID
wait $SLUICED_PID && rc=0 || rc=$?
xdp_off
[ "$rc" -eq 0 ] || fail "sluiced exited $rc on SIGINT"
counter() { awk -v n="$1" '$1 == "counter" && $2 == n { print $3 }' "$LAB_DIR/sluiced.log"; }
# Each exchange: the query's 2 later fragments, and the answer's 2.
followed=$(counter fragments_followed)
[ "${followed:-0}" -ge $((exchanges * 4)) ] || fail "fragments_followed ${followed:-0} for $exchanges fragmented exchanges"
[ -z "$(counter drop_fragment_not_handled)" ] || fail "fragment_not_handled drops: $(counter drop_fragment_not_handled)"
echo "ok: counters: fragments_followed=$followed for $exchanges exchanges, new_flows=$(counter new_flows), no fragment_not_handled"
echo "PASS: netns-lb-fragments"
