#!/usr/bin/env bash
# Metrics end to end: the real `sluiced` balances HTTP connections (curl in a client namespace,
# three backends; the lab of tools/lib/lb-lab.sh), then
#  - GET /metrics (curl, on a loopback port the kernel picks) is parsed by the Prometheus
#    project's own Python parser (Debian's python3-prometheus-client): every family has HELP and
#    TYPE, counters end in _total; the per-backend packets are > 0 for the backends that served,
#    new flows add up to the connections made, the dropped port-81 SYN shows as
#    reason="no_service", the ports and conntrack are there;
#  - DPDK's own client, dpdk-telemetry.py (Debian's dpdk package), on the EAL's telemetry socket
#    returns the same per-service and per-backend counters as /metrics, and /sluice/stats agrees;
#  - after SIGINT the endpoint is gone and sluiced exits 0.
# Everything is torn down on every exit path.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/lib/netns.sh
. tools/lib/lb-lab.sh
SLUICED=${SLUICED:-.build/release/sluiced}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
for tool in curl dpdk-telemetry.py; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (tools/setup.sh)"; exit 1; }
done
# Debian's interpreter: python3 on PATH may be another one without Debian's packages.
PY=/usr/bin/python3
$PY -c 'import prometheus_client' 2>/dev/null || { echo "FAIL: python3-prometheus-client is not installed (tools/setup.sh)"; exit 1; }
REQUESTS=${REQUESTS:-40}

lab_init slmt
lb_lab_up "sm$$"
PREFIX="slmt$$"
fail() {
  echo "FAIL: $*"
  kill -INT "${SLUICED_PID:-0}" 2>/dev/null; sleep 1
  echo "--- sluiced output"; tail -30 "$LAB_DIR/sluiced.log" 2>/dev/null
  exit 1
}
lb_config "$PREFIX" '
metrics: { listen: "127.0.0.1:0" }
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends:
      - { address: 198.51.100.11, port: 8080 }
      - { address: 198.51.100.12, port: 8080 }
      - { address: 198.51.100.13, port: 8080 }
  - name: "web6/v6"
    vip: "2001:db8::10"
    protocol: tcp
    port: 80
    backends:
      - { address: "2001:db8:1::11", port: 8080 }'
"$SLUICED" --config "$LAB_DIR/sluiced.yaml" >"$LAB_DIR/sluiced.log" 2>&1 &
SLUICED_PID=$!
lab_bg $SLUICED_PID
wait_for_line "$LAB_DIR/sluiced.log" "sluiced: running" 30 || fail "sluiced did not start"
URL=$(sed -n 's/^metrics: listening on \(http:[^ ]*\)$/\1/p' "$LAB_DIR/sluiced.log")
[[ "$URL" == http://127.0.0.1:*/metrics ]] || fail "no 'metrics: listening on' line"
echo "ok: metrics at $URL"
sleep 2.5   # the resolver asks for the backends once a second

ok=0
for _ in $(seq "$REQUESTS"); do
  ip netns exec "$LB_CLIENT_NS" curl -sS -m 3 --fail -o /dev/null "http://192.0.2.10/" 2>>"$LAB_DIR/curl.err" && ok=$((ok + 1))
done
[ "$ok" -eq "$REQUESTS" ] || fail "only $ok of $REQUESTS requests succeeded: $(tail -3 "$LAB_DIR/curl.err")"
ip netns exec "$LB_CLIENT_NS" curl -sS -m 1 "http://192.0.2.10:81/" >/dev/null 2>&1 && fail "port 81 answered"
echo "ok: $REQUESTS requests through the VIP, one SYN to a port with no service"
sleep 1   # the last FINs and ACKs

curl -sS -m 5 -D "$LAB_DIR/headers.txt" -o "$LAB_DIR/metrics.txt" "$URL" || fail "GET $URL failed"
grep -qi '^content-type: text/plain; version=0.0.4' "$LAB_DIR/headers.txt" || fail "content type: $(grep -i content-type "$LAB_DIR/headers.txt")"
echo "/sluice/services,web
/sluice/stats
/sluice/services
/sluice/workers,0" | dpdk-telemetry.py -f "$PREFIX" >"$LAB_DIR/telemetry.txt" || fail "dpdk-telemetry.py failed"
[ "$(wc -l <"$LAB_DIR/telemetry.txt")" -eq 4 ] || fail "dpdk-telemetry.py answered: $(cat "$LAB_DIR/telemetry.txt")"

$PY - "$LAB_DIR/metrics.txt" "$LAB_DIR/telemetry.txt" "$REQUESTS" <<'PY' || fail "checks above"
import json, re, sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1]).read()
requests = int(sys.argv[3])
def check(cond, what):
    if not cond:
        sys.exit(f"  {what}")

# Every family announced by HELP and TYPE, before its samples; counters end in _total.
helped = re.findall(r"^# HELP (\S+) ", text, re.M)
typed = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
check(helped and set(helped) == set(typed), "HELP and TYPE lines do not match")
for name, kind in typed.items():
    check(kind in ("counter", "gauge"), f"{name}: type {kind}")
    check(kind != "counter" or name.endswith("_total"), f"counter {name} does not end in _total")
for line in text.splitlines():
    if line and not line.startswith("#"):
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        check(name in typed, f"sample {name} without TYPE")

# The Prometheus project's parser reads it all (it strips _total from counter family names).
samples = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
def values(name, **labels):
    return [v for (n, l), v in samples.items() if n == name and all(dict(l).get(k) == x for k, x in labels.items())]
def one(name, **labels):
    v = values(name, **labels)
    check(len(v) == 1, f"{name} {labels}: {len(v)} samples")
    return v[0]

backends = ["198.51.100.11:8080", "198.51.100.12:8080", "198.51.100.13:8080"]
packets = {b: one("sluice_backend_packets_total", service="web", vip="192.0.2.10", protocol="tcp", port="80", backend=b)
           for b in backends}
bytes_ = {b: one("sluice_backend_bytes_total", service="web", backend=b) for b in backends}
flows = {b: one("sluice_backend_new_flows_total", service="web", backend=b) for b in backends}
served = [b for b in backends if flows[b] > 0]
check(len(served) >= 2, f"only {served} got flows")
for b in served:
    check(packets[b] >= 5 * flows[b], f"{b}: {packets[b]} packets for {flows[b]} flows (a curl is at least 5)")
    check(bytes_[b] >= 60 * packets[b], f"{b}: {bytes_[b]} bytes for {packets[b]} packets")
check(sum(flows.values()) == requests, f"backend new flows {sum(flows.values())} != {requests} connections")
check(one("sluice_service_packets_total", service="web") == sum(packets.values()), "service packets != sum over backends")
check(one("sluice_service_new_flows_total", service="web") == requests, "service new flows")
check(one("sluice_backend_packets_total", service="web6/v6", backend="[2001:db8:1::11]:8080") == 0, "web6/v6 counted traffic")
check(one("sluice_worker_new_flows_total", worker="0", lcore="1") == requests, "worker new_flows != connections")
check(one("sluice_worker_transmits_total", worker="0", action="forward_to_backend") == sum(packets.values()),
      "forward_to_backend != sum of backend packets")
check(one("sluice_worker_drops_total", worker="0", reason="no_service") >= 1, "the port-81 SYN is not a no_service drop")
check(len(values("sluice_worker_drops_total", worker="0")) >= 30, "drop reasons missing")
check(one("sluice_port_rx_packets_total", port="lan0", device="net_af_packet0") > 0, "lan0 rx")
check(one("sluice_port_tx_packets_total", port="lan1", device="net_af_packet1") > 0, "lan1 tx")
check(one("sluice_conntrack_capacity") >= 65536, "conntrack capacity")
check(one("sluice_conntrack_entries") >= 1, "conntrack entries (TIME-WAIT flows are still live)")
check(one("sluice_snapshot_generation") == 1, "generation")
busy = one("sluice_worker_busy_ratio", worker="0")
check(0 < busy <= 1, f"busy ratio {busy}")
print(f"  /metrics: web packets {packets}, new flows {flows}, busy ratio {busy:.4f}")

# DPDK telemetry: the same counters.
replies = [json.loads(line) for line in open(sys.argv[2])]
svc = replies[0]["/sluice/services"]
check(svc["name"] == "web" and svc["vip"] == "192.0.2.10" and svc["port"] == 80, f"service reply {svc}")
check(svc["backends"] == backends, f"telemetry backends {svc['backends']}")
check(svc["backend_packets"] == [packets[b] for b in backends], f"telemetry packets {svc['backend_packets']} != /metrics")
check(svc["backend_bytes"] == [bytes_[b] for b in backends], "telemetry bytes != /metrics")
check(svc["backend_new_flows"] == [flows[b] for b in backends], "telemetry new flows != /metrics")
check(svc["packets"] == sum(packets.values()), "telemetry service packets")
stats = replies[1]["/sluice/stats"]
check(stats["new_flows"] == requests and stats["forward_to_backend"] == sum(packets.values()), f"stats {stats}")
check(stats["drop_no_service"] >= 1 and stats["snapshot_generation"] == 1, "stats drops / generation")
check(stats["conntrack_capacity"] == one("sluice_conntrack_capacity"), "stats conntrack capacity")
check(replies[2]["/sluice/services"] == ["web", "web6/v6"], f"service list {replies[2]}")
check(replies[3]["/sluice/workers"]["lcore"] == 1, f"worker 0 {replies[3]}")
print(f"  telemetry: /sluice/services,web backend_packets {svc['backend_packets']} (same as /metrics)")
PY
echo "ok: /metrics parses, counts every connection per backend, shows drop reasons; telemetry agrees"

# A reload (SIGHUP) that drops 198.51.100.11 and lists the others in another order: generation 2,
# and the backends that stay keep their counters (records follow the backend, not its position).
sed -i 's|      - { address: 198.51.100.11, port: 8080 }||; s|      - { address: 198.51.100.12, port: 8080 }|      - { address: 198.51.100.13, port: 8080 }\n      - { address: 198.51.100.12, port: 8080 }|2' \
  "$LAB_DIR/sluiced.yaml"
kill -HUP $SLUICED_PID
wait_for_line "$LAB_DIR/sluiced.log" "reloaded .*generation 2" 10 || fail "no reload to generation 2"
curl -sS -m 5 -o "$LAB_DIR/metrics2.txt" "$URL" || fail "GET $URL after the reload failed"
$PY - "$LAB_DIR/metrics.txt" "$LAB_DIR/metrics2.txt" <<'PY' || fail "counters after the reload"
import sys
from prometheus_client.parser import text_string_to_metric_families
def read(path):
    out = {}
    for f in text_string_to_metric_families(open(path).read()):
        for s in f.samples:
            if s.name in ("sluice_backend_packets_total", "sluice_backend_bytes_total", "sluice_backend_new_flows_total") \
               and s.labels["service"] == "web":
                out[(s.name, s.labels["backend"])] = s.value
            if s.name == "sluice_snapshot_generation":
                out["generation"] = s.value
    return out
before, after = read(sys.argv[1]), read(sys.argv[2])
if after.get("generation") != 2: sys.exit(f"  generation {after.get('generation')}")
if any(b == "198.51.100.11:8080" for (_, b) in [k for k in after if k != "generation"]): sys.exit("  .11 still listed")
for k, v in after.items():
    if k != "generation" and before[k] != v: sys.exit(f"  {k}: {before[k]} before the reload, {v} after")
print(f"  after the reload: {sorted((b, v) for (n, b), v in ((k, v) for k, v in after.items() if k != 'generation') if n == 'sluice_backend_packets_total')}")
PY
echo "ok: SIGHUP reload: generation 2, the remaining backends' counters carried over unchanged"

# Errors: unknown paths and methods, an unknown telemetry parameter.
[ "$(curl -s -o /dev/null -w '%{http_code}' "${URL%/metrics}/nope")" = 404 ] || fail "unknown path is not 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL")" = 405 ] || fail "POST is not 405"
echo "/sluice/services,nope" | dpdk-telemetry.py -f "$PREFIX" | grep -q '"/sluice/services": null' \
  || fail "unknown service is not null"
echo "ok: 404, 405, null for an unknown service"

kill -INT $SLUICED_PID
wait $SLUICED_PID && rc=0 || rc=$?
[ "$rc" -eq 0 ] || fail "sluiced exited $rc on SIGINT"
curl -s -m 2 "$URL" >/dev/null && fail "the endpoint still answers after exit"
echo "PASS: metrics"
