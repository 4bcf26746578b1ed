#!/usr/bin/env bash
# sluiced and sluice-pktgen, two processes over two net_memif links (sluiced the server, pktgen
# the client; no namespaces, no kernel networking): at a low fixed rate every packet pktgen sends
# to the VIP comes back on the backends' link, DNAT'ed to one of the configured backends, with
# valid checksums, each flow always at the same backend, nothing lost; sluiced's counters agree.
# Cases: IPv4 TCP established flows with a warm-up pass; IPv6 UDP; whole TCP connections
# (--traffic handshake: pktgen answers as the backends, sluiced translates the replies back) over
# IPv4 DNAT and IPv6 full-NAT. Bounded to ~60 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
SLUICED=${SLUICED:-.build/release/sluiced}
PKTGEN=${PKTGEN:-$(dirname "$SLUICED")/sluice-pktgen}
for binary in "$SLUICED" "$PKTGEN"; do [ -x "$binary" ] || { echo "FAIL: $binary not built"; exit 1; }; done
dir=$(mktemp -d /tmp/sluice-pktgen-memif.XXXXXX)
prefix="slit-pg$$"
pids=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$dir" /var/run/dpdk/"$prefix"-* 2>/dev/null || true
}
trap cleanup EXIT
# Rings of 2^14 slots (the memif maximum) each way hold every packet of a case: on a loaded
# machine either process may be starved of its CPU for a while, which must delay, never drop.
memif="socket-abstract=no,rsize=14"

write_config() { # FILE PROTOCOL FAMILY [MODE]
  local vip backends mode=${4:-dnat} pool=""
  if [ "$3" = 6 ]; then
    vip='"2001:db8::10"'
    backends='      - { address: "2001:db8:1::11", port: 8080 }
      - { address: "2001:db8:1::12", port: 8080 }
      - { address: "2001:db8:1::13", port: 8080 }'
  else
    vip=192.0.2.10
    backends='      - { address: 198.51.100.11, port: 8080 }
      - { address: 198.51.100.12, port: 8080 }
      - { address: 198.51.100.13, port: 8080 }'
  fi
  if [ "$mode" = fullnat ]; then
    if [ "$3" = 6 ]; then pool='    source_pool: ["2001:db8:1::200"]'; else pool='    source_pool: ["198.51.100.200"]'; fi
  fi
  cat >"$1" <<YAML
ports:
  - { name: clients, device: "net_memif0,role=server,socket=$dir/c.sock,$memif", mac: "02:00:00:00:5e:10", addresses: ["192.0.2.2/24", "2001:db8::2/64"] }
  - { name: backends, device: "net_memif1,role=server,socket=$dir/b.sock,$memif", mac: "02:00:00:00:5e:11", addresses: ["198.51.100.1/24", "2001:db8:1::1/64"] }
workers: { lcores: [1], main_lcore: 0, idle: { mode: poll } }
mempool: { mbufs: 16383, cache_size: 128 }
flows: { capacity: 65536, hash_seed: "7465737470677e6d656d69660000a5a5" }
vips:
  - { address: 192.0.2.10, port: clients }
  - { address: "2001:db8::10", port: clients }
services:
  - name: svc
    vip: $vip
    protocol: $2
    port: 80
    mode: $mode
$pool
    backends:
$backends
# Replies to the clients (pktgen's client ends) leave through a gateway on the clients' link.
routes:
  - { prefix: 203.0.113.0/24, via: 192.0.2.1, port: clients }
  - { prefix: "2001:db8:ffff::/64", via: "2001:db8::1", port: clients }
neighbors:
  - { address: 192.0.2.1, mac: "02:00:00:00:0c:01" }
  - { address: "2001:db8::1", mac: "02:00:00:00:0c:01" }
  - { address: 198.51.100.11, mac: "02:00:00:00:0b:01" }
  - { address: 198.51.100.12, mac: "02:00:00:00:0b:02" }
  - { address: 198.51.100.13, mac: "02:00:00:00:0b:03" }
  - { address: "2001:db8:1::11", mac: "02:00:00:00:0b:01" }
  - { address: "2001:db8:1::12", mac: "02:00:00:00:0b:02" }
  - { address: "2001:db8:1::13", mac: "02:00:00:00:0b:03" }
YAML
}

# exchange NAME PROTOCOL FAMILY MODE TARGET PKTGEN-OPTIONS...: sluiced with write_config's
# configuration, then sluice-pktgen over the two links until its report exists; sluiced stops
# first, then pktgen sees its links go down and closes (docs/pktgen.md). Leaves the logs and
# NAME.json in $dir.
exchange() {
  local name=$1 proto=$2 family=$3 mode=$4 target=$5; shift 5
  rm -f "$dir/c.sock" "$dir/b.sock"
  write_config "$dir/$name.yaml" "$proto" "$family" "$mode"
  timeout 50 "$SLUICED" --config "$dir/$name.yaml" -- --no-huge --no-pci -l 0,1 -m 256 \
    --file-prefix "$prefix-lb-$name" --log-level lib.eal:error >"$dir/$name.lb.log" 2>&1 &
  local lb=$!
  pids+=("$lb")
  local waited=0
  until [ -S "$dir/c.sock" ] && [ -S "$dir/b.sock" ]; do
    kill -0 "$lb" 2>/dev/null || { echo "FAIL: $name: sluiced exited"; cat "$dir/$name.lb.log"; exit 1; }
    sleep 0.05; waited=$((waited + 1)); [ $waited -lt 400 ] || { echo "FAIL: $name: no memif sockets"; exit 1; }
  done
  timeout 40 "$PKTGEN" --tx-port "net_memif0,role=client,socket=$dir/c.sock,$memif" \
    --rx-port "net_memif1,role=client,socket=$dir/b.sock,$memif" --target "$target" --dst-mac 02:00:00:00:5e:10 \
    "$@" --json "$dir/$name.json" --wait-peer-close-ms 5000 -- \
    --no-huge --no-pci -l 0 -m 256 --file-prefix "$prefix-pg-$name" --log-level lib.eal:error >"$dir/$name.pg.log" 2>&1 &
  local pg=$!
  pids+=("$pg")
  while [ ! -f "$dir/$name.json" ] && kill -0 "$pg" 2>/dev/null; do sleep 0.1; done
  kill -INT "$lb"
  wait "$lb" || { echo "FAIL: $name: sluiced exited $?"; tail -20 "$dir/$name.lb.log"; exit 1; }
  wait "$pg" || { echo "FAIL: $name: sluice-pktgen exited $?"; cat "$dir/$name.pg.log"; exit 1; }
  [ -f "$dir/$name.json" ] || { echo "FAIL: $name: no report"; cat "$dir/$name.pg.log"; exit 1; }
}

run_case() { # NAME PROTOCOL FAMILY TARGET BACKEND-PATTERN PKTGEN-OPTIONS...
  local name=$1 proto=$2 family=$3 target=$4 pattern=$5; shift 5
  exchange "$name" "$proto" "$family" dnat "$target" "$@"
  local forwarded
  forwarded=$(awk '$1 == "counter" && $2 == "forward_to_backend" { print $3 }' "$dir/$name.lb.log")
  local drops
  drops=$(awk '$1 == "counter" && $2 ~ /^drop_/ { s += $3 } END { print s + 0 }' "$dir/$name.lb.log")
  /usr/bin/python3 - "$dir/$name.json" "$name" "$pattern" "${forwarded:-0}" "$drops" <<'PY' || { cat "$dir/$name.pg.log"; exit 1; }
import json, re, sys
r = json.load(open(sys.argv[1])); name, pattern = sys.argv[2], sys.argv[3]
forwarded, drops = int(sys.argv[4]), int(sys.argv[5])
m, f = r["measured"], r["flows"]
warm = r.get("warmup") or {"sent": 0, "received": 0}
problems = []
if m["sent"] == 0: problems.append("nothing sent")
if m["received"] != m["sent"] or m["lost"] != 0: problems.append(f"sent {m['sent']} but received {m['received']}")
if warm["received"] != warm["sent"]: problems.append(f"warm-up sent {warm['sent']} but received {warm['received']}")
if f["seen"] != f["flows"]: problems.append(f"only {f['seen']} of {f['flows']} flows came back")
if f["moved_flows"] != 0: problems.append(f"{f['moved_flows']} flows moved backend: {f['moved_examples']}")
if m["bad_checksums"] or m["malformed"] or m["no_stamp"]: problems.append(f"bad returned packets: {m}")
backends = [b["backend"] for b in f["backends"]]
if len(backends) != 3 or not all(re.fullmatch(pattern, b) for b in backends):
    problems.append(f"backends {backends} are not the 3 configured ones ({pattern})")
if min(b["flows"] for b in f["backends"]) == 0: problems.append("a backend got no flow")
if forwarded != m["sent"] + warm["sent"]: problems.append(f"sluiced forwarded {forwarded}, pktgen sent {m['sent'] + warm['sent']}")
# sluiced's own frames (neighbor requests, announcements) may meet a link that is not yet up and
# count as drops; every generated packet must have been forwarded (checked above) and received.
if r["latency"]["count"] != m["received"] or r["latency"]["p50_ns"] <= 0: problems.append(f"latency not recorded: {r['latency']['count']}")
if problems:
    print(f"FAIL: {name}: " + "; ".join(problems)); sys.exit(1)
spread = ", ".join("%s=%d" % (b["backend"], b["flows"]) for b in f["backends"])
print(f"ok: {name}: {m['sent']} sent, {m['received']} back, {f['flows']} flows on {spread}; "
      f"p50 {r['latency']['p50_ns'] / 1000:.0f} us; sluiced drops (its own frames) {drops}")
PY
}

# run_handshake_case NAME FAMILY MODE TARGET BACKEND-PATTERN CONNECTIONS: every connection opened
# completes (five segments, each through sluiced once), at one backend throughout; sluiced made
# one new flow per connection and forwarded 3 / returned 2 segments of each.
run_handshake_case() {
  local name=$1 family=$2 mode=$3 target=$4 pattern=$5 connections=$6
  exchange "$name" tcp "$family" "$mode" "$target" \
    --traffic handshake --flows "$connections" --rate 5000 --packets "$connections" --duration 0
  counter() { awk -v c="$1" '$1 == "counter" && $2 == c { print $3 }' "$dir/$name.lb.log"; }
  local drops
  drops=$(awk '$1 == "counter" && $2 ~ /^drop_/ { s += $3 } END { print s + 0 }' "$dir/$name.lb.log")
  /usr/bin/python3 - "$dir/$name.json" "$name" "$pattern" "$(counter new_flows)" "$(counter forward_to_backend)" \
      "$(counter return_to_client)" "$(counter rx_packets)" "$(counter tx_packets)" "$drops" <<'PY' \
      || { cat "$dir/$name.pg.log"; awk '$1 == "counter" && $3 != 0' "$dir/$name.lb.log"; exit 1; }
import json, re, sys
r = json.load(open(sys.argv[1])); name, pattern = sys.argv[2], sys.argv[3]
new, forwarded, returned, rx, tx, drops = (int(x or 0) for x in sys.argv[4:10])
m, f, n = r["measured"], r["flows"], r["connections"]
problems = []
opened, probes = n["opened"], n["probes"]
if n["opened"] != f["flows"]: problems.append(f"opened {n['opened']} of {f['flows']}")
for step in ("syn_at_backend", "syn_ack_at_client", "request_at_backend", "fin_ack_at_client", "completed"):
    if n[step] != n["opened"]: problems.append(f"{step} {n[step]} of {n['opened']} opened")
if n["failed"] or n["unexpected"] or m["bad_checksums"] or m["malformed"]: problems.append(f"failures: {n} {m}")
if f["moved_flows"]: problems.append(f"{f['moved_flows']} connections changed backend: {f['moved_examples']}")
backends = [b["backend"] for b in f["backends"]]
if len(backends) != 3 or not all(re.fullmatch(pattern, b) for b in backends):
    problems.append(f"backends {backends} are not the 3 configured ones ({pattern})")
if r["latency"]["count"] != n["opened"] or r["latency"]["p50_ns"] <= 0: problems.append(f"connect time not recorded: {r['latency']}")
# Flow 0's probe tuple is used again by the measured phase: sluiced reuses its entry.
if new != opened: problems.append(f"sluiced made {new} new flows for {opened} client ends")
# Before the measured phase pktgen opens flow 0's connection once a second until one completes
# (`probes` times, usually once): that last one crossed sluiced whole, the earlier ones may have
# been lost anywhere while the links came up (a SYN that sluiced forwarded into a backends' link
# whose peer was not connected yet: drop_transmit_queue_full). Every connection of the measured
# phase crossed it whole, and every frame sluiced received it sent or counted as a drop.
if not 3 <= forwarded - 3 * opened <= 3 * probes:
    problems.append(f"sluiced forwarded {forwarded} segments to backends, expected {3 * opened} + 3 to {3 * probes} of {probes} probes")
if not 2 <= returned - 2 * opened <= 2 * probes:
    problems.append(f"sluiced returned {returned} segments to clients, expected {2 * opened} + 2 to {2 * probes} of {probes} probes")
if rx != tx + drops: problems.append(f"sluiced received {rx} frames but sent {tx} and counted {drops} dropped")
if probes == 1 and drops: problems.append(f"sluiced dropped {drops} frames")
if problems:
    print(f"FAIL: {name}: " + "; ".join(problems)); sys.exit(1)
print(f"ok: {name}: {n['completed']} connections of 5 segments each completed on {len(backends)} backends; "
      f"connect time p50 {r['latency']['p50_ns'] / 1000:.0f} us; sluiced: {new} new flows, {forwarded} forwarded, {returned} returned; {probes} probe(s), {drops} dropped")
PY
}

run_case tcp4 tcp 4 192.0.2.10:80 '198\.51\.100\.1[123]:8080' \
  --flows 64 --traffic established --warmup --rate 10000 --packets 10000 --duration 0
run_case udp6 udp 6 '[2001:db8::10]:80' '…:0:1[123]:8080' \
  --flows 32 --traffic udp --rate 10000 --packets 5000 --duration 0 --size 128
run_handshake_case handshake4-dnat 4 dnat 192.0.2.10:80 '198\.51\.100\.1[123]:8080' 2000
run_handshake_case handshake6-fullnat 6 fullnat '[2001:db8::10]:80' '…:0:1[123]:8080' 1000
echo "PASS: pktgen-memif"
