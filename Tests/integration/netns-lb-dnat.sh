#!/usr/bin/env bash
# End-to-end load balancing with real TCP: a client namespace opens HTTP connections (curl) to
# the VIP through `sluiced` on net_af_packet; three backends in other namespaces, weights 1:1:2,
# answer through sluiced (their gateway) in dnat mode, over IPv4 and IPv6. Checks that every
# request succeeds, that connections spread over the backends in Maglev's proportions, and that
# the counters agree. Everything is torn down on every exit path.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/netns.sh
. tools/lib/lb-lab.sh
SLUICED=${SLUICED:-.build/release/sluiced}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl is not installed"; exit 1; }
REQUESTS=${REQUESTS:-200}

lab_init sllb
lb_lab_up "sl$$"
fail() {
  echo "FAIL: $*"
  kill -INT "${SLUICED_PID:-0}" 2>/dev/null; sleep 1
  echo "--- sluiced output"; tail -50 "$LAB_DIR/sluiced.log" 2>/dev/null
  exit 1
}
lb_config "sllb$$" '
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends:
      - { address: 198.51.100.11, port: 8080, weight: 1 }
      - { address: 198.51.100.12, port: 8080, weight: 1 }
      - { address: 198.51.100.13, port: 8080, weight: 2 }
  - name: web6
    vip: "2001:db8::10"
    protocol: tcp
    port: 80
    backends:
      - { address: "2001:db8:1::11", port: 8080 }
      - { address: "2001:db8:1::12", port: 8080 }
      - { address: "2001:db8:1::13", port: 8080 }'
"$SLUICED" --config "$LAB_DIR/sluiced.yaml" >"$LAB_DIR/sluiced.log" 2>&1 &
SLUICED_PID=$!
lab_bg $SLUICED_PID
wait_for_line "$LAB_DIR/sluiced.log" "sluiced: running" 30 || fail "sluiced did not start"
# The resolver asks for the backends once a second; give it a moment.
sleep 2.5

run_requests() { # URL COUNT OUTFILE
  local ok=0
  : >"$3"
  for i in $(seq "$2"); do
    if body=$(ip netns exec "$LB_CLIENT_NS" curl -sS -m 3 --fail "$1" 2>>"$LAB_DIR/curl.err"); then
      echo "$body" >>"$3"; ok=$((ok + 1))
    fi
  done
  echo "$ok"
}

ok=$(run_requests "http://192.0.2.10/" "$REQUESTS" "$LAB_DIR/v4.txt")
[ "$ok" -eq "$REQUESTS" ] || fail "IPv4: only $ok of $REQUESTS requests succeeded: $(tail -3 "$LAB_DIR/curl.err")"
declare -A count
for b in b1 b2 b3; do count[$b]=$(grep -c "backend $b" "$LAB_DIR/v4.txt" || true); done
echo "ok: IPv4 $REQUESTS/$REQUESTS requests through the VIP: b1=${count[b1]} b2=${count[b2]} b3=${count[b3]} (weights 1:1:2)"
# Each connection has a new client port, so a new Maglev choice: expect 25 % / 25 % / 50 %.
# Bounds at about 4 standard deviations for n = REQUESTS.
python3 - "$REQUESTS" "${count[b1]}" "${count[b2]}" "${count[b3]}" <<'PY' || fail "IPv4 spread does not follow the weights"
import math, sys
n, *c = map(int, sys.argv[1:])
for got, share in zip(c, (0.25, 0.25, 0.5)):
    sd = math.sqrt(n * share * (1 - share))
    if abs(got - n * share) > 4 * sd:
        sys.exit(f"{got} vs expected {n * share:.0f} ± {4 * sd:.0f}")
PY
echo "ok: spread within 4 sigma of Maglev's 1:1:2"

ok=$(run_requests "http://[2001:db8::10]/" $((REQUESTS / 2)) "$LAB_DIR/v6.txt")
[ "$ok" -eq $((REQUESTS / 2)) ] || fail "IPv6: only $ok of $((REQUESTS / 2)) requests succeeded: $(tail -3 "$LAB_DIR/curl.err")"
seen=$(sort -u "$LAB_DIR/v6.txt" | wc -l)
[ "$seen" -eq 3 ] || fail "IPv6: only $seen backends answered"
echo "ok: IPv6 $ok/$ok requests through the VIP over all 3 backends"

# A connection to a port with no service is dropped, not forwarded.
ip netns exec "$LB_CLIENT_NS" curl -sS -m 1 "http://192.0.2.10:81/" >/dev/null 2>&1 && fail "port 81 answered"

kill -INT $SLUICED_PID
wait $SLUICED_PID && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "sluiced exited $rc on SIGINT"
counter() { awk -v n="$1" '$1 == "counter" && $2 == n { print $3 }' "$LAB_DIR/sluiced.log"; }
flows=$(counter new_flows)
# The HTTP server closes first, so the client holds no TIME_WAIT and may reuse a source port at
# once: that connection's 5-tuple is still in the table (closing), so it is not a new flow.
connections=$((REQUESTS + REQUESTS / 2))
[ "$flows" -ge $((connections * 95 / 100)) ] && [ "$flows" -le "$connections" ] \
  || fail "new_flows $flows for $connections connections"
[ "$(counter forward_to_backend)" -gt 0 ] && [ "$(counter return_to_client)" -gt 0 ] || fail "forward/return counters are zero"
[ "$(counter drop_no_service)" -ge 1 ] || fail "the port-81 SYN was not counted as no_service"
echo "ok: counters: new_flows=$flows forward_to_backend=$(counter forward_to_backend) return_to_client=$(counter return_to_client)"
echo "PASS: netns-lb-dnat"
