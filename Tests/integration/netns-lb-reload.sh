#!/usr/bin/env bash
# Live reconfiguration (SIGHUP → a new snapshot published through RCU) under real TCP traffic:
#  1. a long-lived TCP connection keeps its backend while another backend is removed;
#  2. a removed backend gets no new connections; added back, it gets them again;
#  3. a reload that changes what cannot change live (ports) is rejected, nothing changes;
#  4. a newly owned VIP is announced at once by gratuitous ARP and served;
#  5. a connection whose backend was removed is rebound (counted as flows_rebound).
# Everything is torn down on every exit path.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/netns.sh
. tools/lib/lb-lab.sh
SLUICED=${SLUICED:-.build/release/sluiced}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }

lab_init slrl
lb_lab_up "sr$$"
fail() {
  echo "FAIL: $*"
  kill -INT "${SLUICED_PID:-0}" 2>/dev/null; sleep 1
  echo "--- sluiced output"; tail -40 "$LAB_DIR/sluiced.log" 2>/dev/null
  exit 1
}
# A line-echo server on :9000 in every backend: "bN: <line>" per line, one connection per client.
for i in 1 2 3; do
  ip netns exec "sr$$-b$i" python3 -c '
import socket, sys, threading
name = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.listen(16)
def serve(c):
    with c, c.makefile("rwb", buffering=0) as f:
        for line in f:
            f.write(name.encode() + b": " + line)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
' "b$i" >"$LAB_DIR/echo$i.log" 2>&1 &
  lab_bg $!
done

services() { # BACKENDS-OF-web (space-separated last octets), EXTRA-YAML
  local list=""
  for o in $1; do list+="      - { address: 198.51.100.$o, port: 8080 }"$'\n'; done
  local echo_list=""
  for o in $1; do echo_list+="      - { address: 198.51.100.$o, port: 9000 }"$'\n'; done
  lb_config "slrl$$" "
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends:
$list
  - name: echo
    vip: 192.0.2.10
    protocol: tcp
    port: 9000
    backends:
$echo_list
$2"
}
services "11 12 13" ""
"$SLUICED" --config "$LAB_DIR/sluiced.yaml" >"$LAB_DIR/sluiced.log" 2>&1 &
SLUICED_PID=$!
lab_bg $SLUICED_PID
wait_for_line "$LAB_DIR/sluiced.log" "sluiced: running" 30 || fail "sluiced did not start"
sleep 2.5

reload() { # EXPECTED-LOG-PATTERN
  local before
  before=$(grep -c "$1" "$LAB_DIR/sluiced.log" || true)
  kill -HUP $SLUICED_PID
  for _ in $(seq 50); do
    [ "$(grep -c "$1" "$LAB_DIR/sluiced.log" || true)" -gt "$before" ] && return 0
    sleep 0.1
  done
  fail "no '$1' after SIGHUP"
}
spread() { # COUNT URL → "b1=N b2=N b3=N failed=N"
  local b1=0 b2=0 b3=0 bad=0 body
  for _ in $(seq "$1"); do
    if body=$(ip netns exec "$LB_CLIENT_NS" curl -sS -m 3 --fail "$2" 2>/dev/null); then
      case "$body" in *b1) b1=$((b1 + 1));; *b2) b2=$((b2 + 1));; *b3) b3=$((b3 + 1));; esac
    else bad=$((bad + 1)); fi
  done
  echo "b1=$b1 b2=$b2 b3=$b3 failed=$bad"
}

# The long-lived connection: a coprocess that sends a line whenever asked and prints the reply.
coproc ECHO { ip netns exec "$LB_CLIENT_NS" python3 -u -c '
import socket, sys
s = socket.create_connection(("192.0.2.10", 9000), timeout=3)
f = s.makefile("rwb", buffering=0)
for line in sys.stdin:
    try:
        f.write(line.encode()); print(f.readline().decode().strip() or "closed", flush=True)
    except OSError as e:
        print("error " + type(e).__name__, flush=True)
'; }
lab_bg $ECHO_PID
ask() { echo "$1" >&"${ECHO[1]}"; local r; read -r -t 5 r <&"${ECHO[0]}" || r="timeout"; echo "$r"; }
first=$(ask one)
case "$first" in b[123]:\ one) ;; *) fail "echo connection: '$first'";; esac
mine=${first%%:*}
echo "ok: long-lived connection on $mine"

# 1 + 2: remove a backend that is not the long-lived connection's (b3, or b2 if that is it).
gone=13; [ "$mine" = b3 ] && gone=12
keep=$(echo 11 12 13 | tr ' ' '\n' | grep -v "^$gone$" | tr '\n' ' ')
services "$keep" ""
reload "generation 2"
again=$(ask two)
[ "$again" = "$mine: two" ] || fail "after removing 198.51.100.$gone the long-lived connection answered '$again' (was $mine)"
echo "ok: the long-lived connection stayed on $mine across the reload"
s=$(spread 40 "http://192.0.2.10/")
echo "after removing b${gone#1}: $s"
[[ "$s" == *"b${gone#1}=0"* && "$s" == *"failed=0"* ]] || fail "removed backend still gets connections: $s"

# 3: a reload that changes a port is rejected; the running state stays.
cp "$LAB_DIR/sluiced.yaml" "$LAB_DIR/good.yaml"
sed -i 's/mac: "02:00:00:00:5e:10"/mac: "02:00:00:00:5e:99"/' "$LAB_DIR/sluiced.yaml"
reload "reload rejected"
grep -q "reload rejected, configuration unchanged: .*: ports: cannot change while sluiced runs" "$LAB_DIR/sluiced.log" \
  || fail "rejection does not name the field"
s=$(spread 20 "http://192.0.2.10/")
[[ "$s" == *"b${gone#1}=0"* && "$s" == *"failed=0"* ]] || fail "state changed after a rejected reload: $s"
echo "ok: rejected reload named ports; state unchanged ($s)"

# 4: all three back, plus a new VIP 192.0.2.11 (owned and served): GARP must reach the client.
ip netns exec "$LB_CLIENT_NS" sysctl -qw "net.ipv4.conf.all.arp_accept=1"
ip netns exec "$LB_CLIENT_NS" sysctl -qw "net.ipv4.conf.sr$$c1.arp_accept=1"
services "11 12 13" "
  - name: web-new
    vip: 192.0.2.11
    protocol: tcp
    port: 80
    backends:
      - { address: 198.51.100.12, port: 8080 }"
sed -i 's/^vips:$/vips:\n  - { address: 192.0.2.11, port: lan0 }/' "$LAB_DIR/sluiced.yaml"
reload "generation 3"
for _ in $(seq 20); do
  ip -n "$LB_CLIENT_NS" neigh show 192.0.2.11 | grep -q "02:00:00:00:5e:10" && break
  sleep 0.1
done
ip -n "$LB_CLIENT_NS" neigh show 192.0.2.11 | grep -q "02:00:00:00:5e:10" \
  || fail "no gratuitous ARP for the new VIP 192.0.2.11 reached the client"
echo "ok: gratuitous ARP for the newly owned VIP 192.0.2.11"
s=$(spread 40 "http://192.0.2.10/")
[[ "$s" == *"failed=0"* && "$s" != *"b${gone#1}=0"* ]] || fail "re-added backend gets no connections: $s"
echo "ok: backend b${gone#1} back: $s"
s=$(spread 5 "http://192.0.2.11/")
[ "$s" = "b1=0 b2=5 b3=0 failed=0" ] || fail "new VIP: $s"
echo "ok: new VIP served: $s"

# 5: remove the long-lived connection's backend: its flow is rebound (the new backend resets it).
case "$mine" in b1) keep="12 13";; b2) keep="11 13";; b3) keep="11 12";; esac
services "$keep" ""
reload "generation 4"
after=$(ask three)
echo "long-lived connection after its backend left: $after"
[ "$after" != "$mine: three" ] || fail "the connection still reached the removed backend $mine"

kill -INT $SLUICED_PID
wait $SLUICED_PID && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "sluiced exited $rc on SIGINT"
counter() { awk -v n="$1" '$1 == "counter" && $2 == n { print $3 }' "$LAB_DIR/sluiced.log"; }
[ "$(counter flows_rebound)" -ge 1 ] || fail "flows_rebound is $(counter flows_rebound)"
echo "ok: counters: flows_rebound=$(counter flows_rebound) new_flows=$(counter new_flows)"
echo "PASS: netns-lb-reload"
