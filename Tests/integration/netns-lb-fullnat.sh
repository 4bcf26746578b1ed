#!/usr/bin/env bash
# full-NAT end to end with real TCP: the backends have NO route back through sluiced (their only
# network is their own /24), so replies reach sluiced only because full-NAT made the connection
# come from a pool address on that segment (answered for by sluiced's ARP / NDP). Checks that
# every request succeeds over IPv4 and IPv6, that the backends saw the pool addresses as their
# clients (not the real client), and that sources come from both pool addresses.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/netns.sh
. tools/lib/lb-lab.sh
SLUICED=${SLUICED:-.build/release/sluiced}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
REQUESTS=${REQUESTS:-60}

lab_init slfn
p="sf$$"
lb_lab_up "$p"
fail() {
  echo "FAIL: $*"
  kill -INT "${SLUICED_PID:-0}" 2>/dev/null; sleep 1
  echo "--- sluiced output"; tail -40 "$LAB_DIR/sluiced.log" 2>/dev/null
  exit 1
}
# The backends lose their way back: no default route, only their connected /24 and /64.
for i in 1 2 3; do
  ip -n "$p-b$i" route del default
  ip -n "$p-b$i" -6 route del default
done
lb_config "slfn$$" '
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    mode: fullnat
    source_pool: [198.51.100.200, 198.51.100.201]
    backends:
      - { address: 198.51.100.11, port: 8080 }
      - { address: 198.51.100.12, port: 8080 }
      - { address: 198.51.100.13, port: 8080 }
  - name: web6
    vip: "2001:db8::10"
    protocol: tcp
    port: 80
    mode: fullnat
    source_pool: ["2001:db8:1::200"]
    backends:
      - { address: "2001:db8:1::11", port: 8080 }
      - { address: "2001:db8:1::12", port: 8080 }'
"$SLUICED" --config "$LAB_DIR/sluiced.yaml" >"$LAB_DIR/sluiced.log" 2>&1 &
SLUICED_PID=$!
lab_bg $SLUICED_PID
wait_for_line "$LAB_DIR/sluiced.log" "sluiced: running" 30 || fail "sluiced did not start"
sleep 2.5

ok=0
for _ in $(seq "$REQUESTS"); do
  ip netns exec "$LB_CLIENT_NS" curl -sS -m 3 --fail "http://192.0.2.10/" >>"$LAB_DIR/v4.txt" 2>>"$LAB_DIR/curl.err" && ok=$((ok + 1))
done
[ "$ok" -eq "$REQUESTS" ] || fail "IPv4: $ok of $REQUESTS requests succeeded: $(tail -3 "$LAB_DIR/curl.err")"
echo "ok: IPv4 $ok/$REQUESTS requests through the full-NAT VIP; backends: $(sort "$LAB_DIR/v4.txt" | uniq -c | tr -s ' \n' ' ')"
ok=0
for _ in $(seq $((REQUESTS / 2))); do
  ip netns exec "$LB_CLIENT_NS" curl -sS -m 3 --fail "http://[2001:db8::10]/" >>"$LAB_DIR/v6.txt" 2>>"$LAB_DIR/curl.err" && ok=$((ok + 1))
done
[ "$ok" -eq $((REQUESTS / 2)) ] || fail "IPv6: $ok of $((REQUESTS / 2)) requests succeeded: $(tail -3 "$LAB_DIR/curl.err")"
echo "ok: IPv6 $ok/$((REQUESTS / 2)) requests through the full-NAT VIP"

# What the backends saw as their clients (python http.server logs the peer address first).
cat "$LAB_DIR"/http[123].log | awk '/"GET/ { print $1 }' | sort | uniq -c >"$LAB_DIR/peers.txt"
cat "$LAB_DIR/peers.txt"
# (IPv4 peers appear IPv4-mapped: the servers listen on a dual-stack socket.)
grep -Eq ' (::ffff:)?192\.0\.2\.1$| 2001:db8::1$' "$LAB_DIR/peers.txt" && fail "a backend saw the real client address"
for a in ::ffff:198.51.100.200 ::ffff:198.51.100.201 2001:db8:1::200; do
  grep -q " $a\$" "$LAB_DIR/peers.txt" || fail "no connection came from pool address $a"
done
echo "ok: backends saw only the pool addresses, all of them used"

kill -INT $SLUICED_PID
wait $SLUICED_PID && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "sluiced exited $rc on SIGINT"
counter() { awk -v n="$1" '$1 == "counter" && $2 == n { print $3 }' "$LAB_DIR/sluiced.log"; }
[ "$(counter drop_no_source_port)" = "" ] || fail "no_source_port drops: $(counter drop_no_source_port)"
echo "ok: counters: new_flows=$(counter new_flows) return_to_client=$(counter return_to_client)"
echo "PASS: netns-lb-fullnat"
