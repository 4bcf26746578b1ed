#!/usr/bin/env bash
# End-to-end: `sluiced` on net_af_packet over the host end of a veth pair answers a real Linux
# peer in a network namespace: the gratuitous ARP and unsolicited NA at start are seen, arping
# and ping to the IPv4 VIP, neighbor discovery and ping6 to the IPv6 VIP all work, and SIGINT
# stops it cleanly with final counters. Everything is torn down on every exit path.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/netns.sh
SLUICED=${SLUICED:-.build/release/sluiced}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }

lab_init slit
NS="slit-$$"
HOST_IF="slh$$"
NS_IF="sln$$"
VIP4=192.0.2.10
VIP6=2001:db8::10
PEER4=192.0.2.1
PEER6=2001:db8::1
VIP_MAC=02:00:00:00:5e:10
fail() { echo "FAIL: $*"; kill -INT ${SLUICED_PID:-0} 2>/dev/null; sleep 1; echo "--- sluiced output"; cat "$LAB_DIR/sluiced.log" 2>/dev/null | tail -40; exit 1; }

lab_netns "$NS"
lab_veth "$HOST_IF" "$NS_IF" "$NS"
# The host end belongs to sluiced: no addresses, and the kernel kept quiet on it.
sysctl -qw "net.ipv6.conf.$HOST_IF.disable_ipv6=1"
ip link set "$HOST_IF" up
ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$NS_IF.accept_dad=0"
ip netns exec "$NS" sysctl -qw "net.ipv4.conf.$NS_IF.arp_accept=1"
ip -n "$NS" addr add "$PEER4/24" dev "$NS_IF"
ip -n "$NS" addr add "$PEER6/64" dev "$NS_IF" nodad
ip -n "$NS" link set "$NS_IF" up

# Capture what sluiced announces at start, from the peer's side.
ip netns exec "$NS" tcpdump -i "$NS_IF" -n -e -l -U -w "$LAB_DIR/start.pcap" \
  'arp or (icmp6 and ip6[40] == 136)' >/dev/null 2>"$LAB_DIR/tcpdump.err" &
lab_bg $!
wait_for_line "$LAB_DIR/tcpdump.err" "listening on" 10 || fail "tcpdump did not start"

cat >"$LAB_DIR/sluiced.yaml" <<YAML
eal: ["--no-huge", "-m", "256", "--no-pci", "--file-prefix", "slit$$", "--log-level", "lib.eal:error"]
ports:
  - name: lan0
    device: net_af_packet0,iface=$HOST_IF
    mac: "$VIP_MAC"
workers:
  lcores: [1]
  idle: { mode: sleep, sleep_us: 50 }
mempool: { mbufs: 2047, cache_size: 64 }
vips:
  - { address: $VIP4, port: lan0 }
  - { address: "$VIP6", port: lan0 }
YAML
"$SLUICED" --config "$LAB_DIR/sluiced.yaml" >"$LAB_DIR/sluiced.log" 2>&1 &
SLUICED_PID=$!
lab_bg $SLUICED_PID
wait_for_line "$LAB_DIR/sluiced.log" "sluiced: running" 30 || fail "sluiced did not start"
sleep 1

# 1. Gratuitous ARP and unsolicited NA at start.
ip netns exec "$NS" tcpdump -r "$LAB_DIR/start.pcap" -n -e 2>/dev/null >"$LAB_DIR/start.txt" || true
grep -qi "$VIP_MAC.*Request who-has $VIP4 tell $VIP4" "$LAB_DIR/start.txt" \
  || fail "no gratuitous ARP for $VIP4 from $VIP_MAC at start: $(cat "$LAB_DIR/start.txt")"
grep -qi "$VIP_MAC > 33:33:00:00:00:01.*neighbor advertisement, tgt is $VIP6" "$LAB_DIR/start.txt" \
  || fail "no unsolicited NA for $VIP6 at start: $(cat "$LAB_DIR/start.txt")"
ip -n "$NS" neigh show "$VIP4" | grep -qi "$VIP_MAC" \
  || fail "the peer's neighbor table did not learn $VIP4 from the gratuitous ARP"
echo "ok: gratuitous ARP and unsolicited NA seen at start"

# 2. arping gets the VIP's MAC.
out=$(ip netns exec "$NS" arping -c 3 -w 5 -I "$NS_IF" "$VIP4" 2>&1) || fail "arping: $out"
echo "$out" | grep -qi "from $VIP4 ($VIP_MAC)\|$VIP_MAC ($VIP4)" || fail "arping reply not from $VIP_MAC: $out"
echo "ok: arping $VIP4 -> $VIP_MAC"

# 3. ping gets replies.
out=$(ip netns exec "$NS" ping -c 3 -i 0.2 -W 2 "$VIP4" 2>&1) || fail "ping: $out"
echo "$out" | grep -q " 0% packet loss" || fail "ping lost packets: $out"
echo "ok: ping $VIP4"

# 4. IPv6: neighbor discovery resolves the VIP, ping6 gets replies.
ip -n "$NS" neigh flush dev "$NS_IF"
out=$(ip netns exec "$NS" ping -6 -c 3 -i 0.2 -W 2 "$VIP6" 2>&1) || fail "ping6: $out"
echo "$out" | grep -q " 0% packet loss" || fail "ping6 lost packets: $out"
ip -n "$NS" -6 neigh show "$VIP6" | grep -qi "lladdr $VIP_MAC" \
  || fail "neighbor discovery did not resolve $VIP6 to $VIP_MAC: $(ip -n "$NS" -6 neigh show)"
echo "ok: NDP $VIP6 -> $VIP_MAC, ping6 $VIP6"

# 5. Something not for us is dropped and counted; a clean stop prints the counters.
ip netns exec "$NS" ping -c 1 -W 1 192.0.2.99 >/dev/null 2>&1 || true
kill -INT $SLUICED_PID
for _ in $(seq 100); do kill -0 $SLUICED_PID 2>/dev/null || break; sleep 0.1; done
kill -0 $SLUICED_PID 2>/dev/null && fail "sluiced did not stop on SIGINT"
wait $SLUICED_PID && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "sluiced exited $rc on SIGINT"
counter() { awk -v n="$1" '$1 == "counter" && $2 == n { print $3 }' "$LAB_DIR/sluiced.log"; }
[ "$(counter arp_reply)" -ge 3 ] 2>/dev/null || fail "arp_reply counter: '$(counter arp_reply)'"
[ "$(counter icmp_echo_reply)" -ge 3 ] 2>/dev/null || fail "icmp_echo_reply counter: '$(counter icmp_echo_reply)'"
[ "$(counter icmpv6_echo_reply)" -ge 3 ] 2>/dev/null || fail "icmpv6_echo_reply counter: '$(counter icmpv6_echo_reply)'"
[ "$(counter neighbor_advertisement)" -ge 1 ] 2>/dev/null || fail "neighbor_advertisement counter: '$(counter neighbor_advertisement)'"
grep -q "^counter drop_" "$LAB_DIR/sluiced.log" || fail "no drop counted for traffic not for a VIP"
echo "ok: clean stop on SIGINT with counters"
echo "PASS: netns-arp-ndp-ping"
