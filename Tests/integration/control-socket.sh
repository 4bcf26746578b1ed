#!/usr/bin/env bash
# The control socket against the real `sluiced` (net_af_packet into the load-balancing lab of
# tools/lib/lb-lab.sh), driven by `sluicectl` and by plain `socat`:
#  1. the socket is 0660 in its configured group; a client running as `nobody` is refused (by
#     the file mode, and by SO_PEERCRED once the mode would let it in), and let in when the
#     group is one of its supplementary groups (SO_PEERGROUPS, more than 64 of them);
#  2. live backend changes proven by traffic: a removed backend gets no new connections, added
#     back it gets them again; a drained one gets none;
#  3. a request the data plane refuses (unreachable backend), malformed JSON, an unknown method
#     and an oversized line get their error codes and change nothing; sluiced keeps forwarding;
#  4. vip own makes the VIP answer ARP and ping, vip disown stops it;
#  5. apply -f is all-or-nothing and idempotent; stats, conntrack, neighbors answer.
# Everything is torn down on every exit path.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/netns.sh
. tools/lib/lb-lab.sh
SLUICED=${SLUICED:-.build/release/sluiced}
SLUICECTL=${SLUICECTL:-$(dirname "$SLUICED")/sluicectl}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
[ -x "$SLUICECTL" ] || { echo "FAIL: $SLUICECTL not built"; exit 1; }
for c in curl socat setpriv python3 prlimit; do command -v $c >/dev/null || { echo "FAIL: $c is not installed"; exit 1; }; done

lab_init slcs
lb_lab_up "sc$$"
fail() {
  echo "FAIL: $*"
  kill -INT "${SLUICED_PID:-0}" 2>/dev/null; sleep 1
  echo "--- sluiced output"; tail -40 "$LAB_DIR/sluiced.log" 2>/dev/null
  exit 1
}
# `nobody` must be able to reach the socket's directory for the SO_PEERCRED check to be reached.
chmod 711 "$LAB_DIR"
SOCK="$LAB_DIR/sluiced.sock"
# The socket's group: a numeric gid no account needs (nothing to create or delete); a client
# gets it only as a supplementary group through setpriv.
SOCK_GID=$((61000 + $$ % 4000))
lb_config "slcs$$" "
control: { socket: \"$SOCK\", group: \"$SOCK_GID\" }
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends:
      - { address: 198.51.100.11, port: 8080 }
      - { address: 198.51.100.12, port: 8080 }
      - { address: 198.51.100.13, port: 8080 }"
"$SLUICED" --config "$LAB_DIR/sluiced.yaml" >"$LAB_DIR/sluiced.log" 2>&1 &
SLUICED_PID=$!
lab_bg $SLUICED_PID
wait_for_line "$LAB_DIR/sluiced.log" "sluiced: running" 30 || fail "sluiced did not start"
grep -q "control socket $SOCK" "$LAB_DIR/sluiced.log" || fail "no control socket line"
sleep 2.5   # the resolver asks for the backends once a second

ctl() { SLUICE_SOCKET="$SOCK" "$SLUICECTL" "$@"; }
rpc() { # one JSON-RPC line through socat, prints the response line
  printf '%s\n' "$1" | socat -t 5 - "UNIX-CONNECT:$SOCK"
}
alive() { kill -0 $SLUICED_PID 2>/dev/null || fail "sluiced died"; }

# --- 1. Permissions
[ "$(stat -c %a "$SOCK")" = 660 ] || fail "socket mode $(stat -c %a "$SOCK"), expected 660"
ctl version | grep -q "control API 1.0" || fail "sluicectl version"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$SLUICECTL" "$@" --socket "$SOCK"; }
if out=$(as_nobody version 2>&1); then fail "nobody connected through mode 0660: $out"; fi
echo "$out" | grep -q "Permission denied" || fail "nobody: expected EACCES, got: $out"
# Open the file mode: now only SO_PEERCRED stands in the way.
chmod 666 "$SOCK"
set +e; out=$(as_nobody version 2>&1); rc=$?; set -e
chmod 660 "$SOCK"
[ "$rc" -eq 1 ] && echo "$out" | grep -q -- "-32004" || fail "nobody with mode 0666: rc=$rc: $out"
[ "$(stat -c %g "$SOCK")" = "$SOCK_GID" ] || fail "socket group $(stat -c %g "$SOCK"), expected $SOCK_GID"
# Granted by a supplementary group (SO_PEERGROUPS), listed after 70 others so the server's
# first 64-entry buffer is too small.
others=$(seq -s, 70000 70069)
out=$(setpriv --reuid=nobody --regid=nogroup --groups="$others,$SOCK_GID" "$SLUICECTL" version --socket "$SOCK" 2>&1) \
  || fail "nobody with supplementary group $SOCK_GID refused: $out"
echo "$out" | grep -q "control API 1.0" || fail "nobody in group $SOCK_GID: $out"
# Through mode 0666 again, with many groups but not that one: still refused by the server.
chmod 666 "$SOCK"
set +e; out=$(setpriv --reuid=nobody --regid=nogroup --groups="$others" "$SLUICECTL" version --socket "$SOCK" 2>&1); rc=$?; set -e
chmod 660 "$SOCK"
[ "$rc" -eq 1 ] && echo "$out" | grep -q -- "-32004" || fail "nobody with 70 other groups, mode 0666: rc=$rc: $out"
echo "ok: socket 0660; nobody refused by the mode and by SO_PEERCRED (-32004); granted by a supplementary group (SO_PEERGROUPS)"

# --- 2. Live backend changes, proven by traffic
requests() { # COUNT OUTFILE → number of successes; bodies in OUTFILE
  local ok=0
  : >"$2"
  for _ in $(seq "$1"); do
    if body=$(ip netns exec "$LB_CLIENT_NS" curl -sS -m 3 --fail http://192.0.2.10/ 2>>"$LAB_DIR/curl.err"); then
      echo "$body" >>"$2"; ok=$((ok + 1))
    fi
  done
  echo "$ok"
}
seen() { grep -c "backend $1" "$2" || true; }
N=60
ok=$(requests $N "$LAB_DIR/r1.txt")
[ "$ok" -eq $N ] || fail "before: $ok/$N requests"
[ "$(seen b3 "$LAB_DIR/r1.txt")" -gt 0 ] || fail "b3 got nothing before its removal"
ctl backend remove web 198.51.100.13 | grep -q "generation 1" || fail "backend remove"
ok=$(requests $N "$LAB_DIR/r2.txt")
[ "$ok" -eq $N ] || fail "after remove: $ok/$N requests"
[ "$(seen b3 "$LAB_DIR/r2.txt")" -eq 0 ] || fail "b3 still got $(seen b3 "$LAB_DIR/r2.txt") requests after its removal"
echo "ok: b3 removed: $N/$N requests, none to b3 (b1=$(seen b1 "$LAB_DIR/r2.txt") b2=$(seen b2 "$LAB_DIR/r2.txt"))"
ctl backend add web 198.51.100.13 --port 8080 >/dev/null || fail "backend add"
ok=$(requests $N "$LAB_DIR/r3.txt")
[ "$ok" -eq $N ] || fail "after add: $ok/$N requests"
[ "$(seen b3 "$LAB_DIR/r3.txt")" -gt 0 ] || fail "b3 got nothing after it was added back"
echo "ok: b3 added back: $(seen b3 "$LAB_DIR/r3.txt")/$N requests to b3"
ctl backend update web 198.51.100.12 --drain >/dev/null || fail "drain"
ok=$(requests $N "$LAB_DIR/r4.txt")
[ "$ok" -eq $N ] && [ "$(seen b2 "$LAB_DIR/r4.txt")" -eq 0 ] || fail "drained b2: $ok/$N, b2 got $(seen b2 "$LAB_DIR/r4.txt")"
ctl backend update web 198.51.100.12 --weight 1 >/dev/null
echo "ok: b2 drained: $N/$N requests, none to b2"

# --- 3. Refused requests change nothing
before=$(rpc '{"jsonrpc":"2.0","id":1,"method":"state.get"}')
set +e; out=$(ctl backend add web 203.0.113.9 2>&1); rc=$?; set -e
[ "$rc" -eq 1 ] && echo "$out" | grep -q -- "-32003" || fail "unreachable backend: rc=$rc $out"
set +e; out=$(ctl backend update web 198.51.100.11 --weight 70000 2>&1); rc=$?; set -e
[ "$rc" -eq 1 ] && echo "$out" | grep -q "params.weight" || fail "weight 70000: rc=$rc $out"
rpc '{"jsonrpc":"2.0","id":1,"method":"backend.add","params":{"service":"web","backend":{"address":"198.51.100.14","port":"80"}}}' \
  | grep -q '"field":"params.backend.port"' || fail "string port accepted"
rpc '{"jsonrpc":"2.0","id":1,"method":' | grep -q -- '-32700' || fail "parse error"
rpc '{"jsonrpc":"2.0","id":1,"method":"nope"}' | grep -q -- '-32601' || fail "unknown method"
rpc '[{"jsonrpc":"2.0","id":1,"method":"vip.own","params":{"address":"192.0.2.30","port":"lan0"}},{"jsonrpc":"2.0","id":2,"method":"service.delete","params":{"name":"nope"}}]' \
  | grep -q -- '-32005' || fail "batch not aborted"
python3 - "$SOCK" <<'PY' || fail "oversized request not refused"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
try:
    s.sendall(b"x" * (2 << 20))
except OSError:
    pass  # the server may close before all is sent
data = b""
while b"\n" not in data:
    chunk = s.recv(4096)
    if not chunk: break
    data += chunk
assert b"-32006" in data, data
PY
after=$(rpc '{"jsonrpc":"2.0","id":1,"method":"state.get"}')
[ "$before" = "$after" ] || fail "state changed by refused requests: $before vs $after"
alive
ok=$(requests 10 "$LAB_DIR/r5.txt"); [ "$ok" -eq 10 ] || fail "forwarding after bad requests: $ok/10"
echo "ok: refused requests (-32003, -32602, -32700, -32601, -32005, -32006) left the state unchanged; still forwarding"

# --- 4. VIP ownership
ip netns exec "$LB_CLIENT_NS" ping -c 1 -W 1 192.0.2.20 >/dev/null 2>&1 && fail "192.0.2.20 answered before vip own"
ctl vip own 192.0.2.20 --on lan0 >/dev/null || fail "vip own"
ip netns exec "$LB_CLIENT_NS" ping -c 2 -W 2 192.0.2.20 >/dev/null || fail "owned VIP 192.0.2.20 does not answer ping"
ctl vip disown 192.0.2.20 >/dev/null || fail "vip disown"
ip netns exec "$LB_CLIENT_NS" ip neigh flush dev "${LB_PORT0}1" 2>/dev/null || true
ip netns exec "$LB_CLIENT_NS" ping -c 1 -W 1 192.0.2.20 >/dev/null 2>&1 && fail "192.0.2.20 still answers after vip disown"
echo "ok: vip own → ARP + ping answered; vip disown → silent"

# --- 5. apply -f, stats, conntrack, neighbors
cat >"$LAB_DIR/desired.yaml" <<'YAML'
generation: 100
vips:
  - { address: 192.0.2.10, port: lan0 }
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends:
      - { address: 198.51.100.11, port: 8080 }
YAML
ctl apply -f "$LAB_DIR/desired.yaml" | grep -q "generation 100" || fail "apply"
ctl apply -f "$LAB_DIR/desired.yaml" | grep -q "no change" || fail "apply is not idempotent"
ok=$(requests 20 "$LAB_DIR/r6.txt")
[ "$ok" -eq 20 ] && [ "$(seen b1 "$LAB_DIR/r6.txt")" -eq 20 ] || fail "after apply: $ok/20, b1=$(seen b1 "$LAB_DIR/r6.txt")"
sed -i 's/generation: 100/generation: 99/' "$LAB_DIR/desired.yaml"
set +e; out=$(ctl apply -f "$LAB_DIR/desired.yaml" 2>&1); rc=$?; set -e
[ "$rc" -eq 1 ] && echo "$out" | grep -q -- "-32002" || fail "stale generation accepted: $out"
echo "ok: apply -f: generation 100 applied (20/20 to b1), repeat is a no-op, stale generation refused"
ctl stats --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["total"]["rx_packets"] > 0 and s["ports"][0]["rx_packets"] > 0, s["total"]
assert s["conntrack"]["capacity"] >= 65536
assert "no_service" in s["total"]["drops"]
' || fail "stats"
count=$(ctl conntrack count --service web --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
[ "$count" -gt 0 ] || fail "conntrack count $count"
ctl conntrack list --backend 198.51.100.11 --limit 3 | grep -q "198.51.100.11:8080" || fail "conntrack list"
flushed=$(ctl conntrack flush --service web --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["flushed"])')
[ "$flushed" -gt 0 ] || fail "conntrack flush removed nothing"
ctl neighbors | grep -q "198.51.100.11" || fail "neighbors"
echo "ok: stats, conntrack count=$count (flushed $flushed), neighbors"
# Extreme --interval values are clamped (100 ms … 60 s), never a crash: each still streams
# until `timeout` ends it (rc 124).
for iv in inf nan 1e300 -5; do
  set +e; timeout 2 "$SLUICECTL" events --socket "$SOCK" --interval="$iv" >/dev/null 2>"$LAB_DIR/iv.err"; rc=$?; set -e
  [ "$rc" -eq 124 ] || fail "sluicectl events --interval $iv: rc=$rc $(cat "$LAB_DIR/iv.err")"
done
echo "ok: sluicectl --interval inf/nan/1e300/-5 clamped"

# --- 6. Out of file descriptors: accept fails (EMFILE) while a connection waits; the control
# thread must not spin on its readable listener, and serves the connection once fds are back.
CTL_TID=$(grep -lx sluice-control /proc/$SLUICED_PID/task/*/comm | head -1 | cut -d/ -f5)
[ -n "$CTL_TID" ] || fail "no sluice-control thread"
ctl_ticks() { awk '{print $14 + $15}' "/proc/$SLUICED_PID/task/$CTL_TID/stat"; }
lowest_free=$(python3 -c '
import os, sys
used = {int(x) for x in os.listdir("/proc/%s/fd" % sys.argv[1])}
n = 0
while n in used: n += 1
print(n)' $SLUICED_PID)
soft=$(prlimit --pid $SLUICED_PID --nofile --output SOFT --noheadings | tr -d ' ')
prlimit --pid $SLUICED_PID --nofile=$lowest_free:
python3 - "$SOCK" >"$LAB_DIR/emfile.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
time.sleep(3)   # the limit is restored after about 2.3 s
s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"api.version"}\n')
print(s.recv(65536).decode())
PY
EMFILE_CLIENT=$!
sleep 0.3
t0=$(ctl_ticks); sleep 2; t1=$(ctl_ticks)
prlimit --pid $SLUICED_PID --nofile=$soft:
wait $EMFILE_CLIENT || fail "client waiting through EMFILE: $(cat "$LAB_DIR/emfile.out")"
grep -q '"api":"1.0"' "$LAB_DIR/emfile.out" || fail "not served after EMFILE: $(cat "$LAB_DIR/emfile.out")"
[ $((t1 - t0)) -lt 50 ] || fail "control thread used $((t1 - t0)) ticks of 200 in 2 s at EMFILE (busy loop)"
echo "ok: EMFILE: control thread used $((t1 - t0)) ticks in 2 s, the waiting client served once fds were back"

alive
kill -INT $SLUICED_PID
wait $SLUICED_PID && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "sluiced exited $rc on SIGINT"
[ ! -e "$SOCK" ] || fail "socket file left behind"
echo "PASS: control-socket"
