#!/usr/bin/env bash
# Named benchmark scenarios for sluiced, driven by sluice-pktgen over net_memif, next to
# dpdk-testpmd io forwarding over the same link in the same run (the ceiling), plus the
# conntrack memory and Maglev build-time figures. One command, a few minutes on 2 cores:
#
#   bench/scenarios.sh [--no-build]
#
# Shape: two processes share the 2-vCPU machine. The load balancer (sluiced, one worker on EAL
# lcore 1 = CPU 1; or testpmd io, one forwarding core on CPU 1) is the memif *server* of two links;
# sluice-pktgen (one lcore, CPU 0) is the *client*: it transmits on the clients' link and
# receives on the backends' link. The balancer's main lcore (CPU 0) sleeps in sigtimedwait.
#
#   sluice-pktgen ──memif c.sock──▶ port clients  [sluiced / testpmd on CPU 1]  port backends ──memif b.sock──▶ sluice-pktgen
#
# Scenarios (SCENARIOS="..." runs a subset, in this order; ROUNDS interleaved rounds, medians):
#   ceiling           testpmd io, 1k established flows, as fast as the link takes them
#   ceiling-latency   testpmd io, 1k flows at a fixed LAT_RATE pps: latency without queueing
#   dnat-1k|100k|1m|10m  sluiced dnat, established flows (warm-up pass first), 64-byte TCP ACKs
#   dnat-1k-latency   sluiced dnat, 1k flows at LAT_RATE pps
#   dnat-1k-latency-drain10  the same with workers.tx_drain_us 10 (default 100): below a full
#                     burst per drain interval, sluiced holds packets up to the drain timer
#   dnat-1m-zipf      sluiced dnat, 1M flows, Zipf(0.99) popularity
#   syn-1m            sluiced dnat, new flows only: 1M SYNs, each from a new client end
#   handshake-1m      sluiced dnat, whole TCP connections (SYN, SYN-ACK, ACK + request + FIN, FIN-ACK,
#                     last ACK; pktgen answers as the backends) over 1M client ends, as fast as they complete
#   handshake-1m-latency  the same at HS_RATE connections/s: the connect time without queueing
#   vxlan-100k        sluiced vxlan (DNAT + VXLAN to the node's VTEP), 100k flows
#   ipv6-1k           sluiced dnat over IPv6, 1k flows, 84-byte frames (the smallest IPv6 TCP + stamp)
#   update-storm      1,000 backend changes/s over the control socket while pktgen sends a fixed rate (round 1),
#                     after a baseline run of the same traffic without changes (loss side by side)
#   conntrack         sluice-conntrack-bench: table bytes per flow at 1M and CONNTRACK_FLOWS flows
#   maglev            sluice-maglev-report --quick: table build time vs backends and table size
#
# Per figure: Mpps delivered (what came back to pktgen per second of the sending window),
# sluiced's busy share and cycles/packet (busy TSC cycles / packets received, from its counters
# at SIGINT; the same "busy cycles" testpmd prints with --record-core-cycles), the single-core
# capacity TSC Hz / cycles-per-packet, the ratio to the ceiling, latency p50/p99/p99.9 (pktgen's
# HDR histogram of TSC stamps) and loss (sent − received after a drain). Because two polling
# processes share two vCPUs with whatever else runs, the balancer's forwarding thread's CPU share
# (run / (run + runnable-waiting), /proc/PID/task/TID/schedstat) and its on-CPU cycles per
# packet are reported too: TSC "busy cycles" include time the thread was preempted mid-burst.
#
# Results: bench/results/scenarios.json, bench/results/scenarios.md, bench/results/scenarios-*.png.
# Reported, never asserted: the script fails only when a run produces no result or a flow moved.
#
# Env: ROUNDS=1 MEASURE=3 LAT_RATE=200000 LAT_SECONDS=2 FLOWS_XL=10000000 (0 skips dnat-10m)
#      CONNTRACK_FLOWS=10000000 HS_RATE=100000 SCRATCH=.build-pktgen RESULTS_DIR=bench/results SCENARIOS="..."
#      PKTGEN_EXTRA="..." (appended to every scenario's sluice-pktgen options, e.g. "--concurrency 0")
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-1}
MEASURE=${MEASURE:-3}
LAT_RATE=${LAT_RATE:-200000}
LAT_SECONDS=${LAT_SECONDS:-2}
FLOWS_XL=${FLOWS_XL:-10000000}
CONNTRACK_FLOWS=${CONNTRACK_FLOWS:-10000000}
HS_RATE=${HS_RATE:-100000}
PKTGEN_EXTRA=${PKTGEN_EXTRA:-}
SCRATCH=${SCRATCH:-.build-pktgen}
RESULTS_DIR=${RESULTS_DIR:-bench/results}
ALL_SCENARIOS="ceiling ceiling-latency dnat-1k dnat-1k-latency dnat-1k-latency-drain10 dnat-100k dnat-1m dnat-1m-zipf dnat-10m syn-1m handshake-1m handshake-1m-latency vxlan-100k fullnat-100k udp-1k ipv6-1k update-storm conntrack maglev"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
[ "$FLOWS_XL" = 0 ] && SCENARIOS=$(echo " $SCENARIOS " | sed 's/ dnat-10m / /')
SLUICED="$SCRATCH/release/sluiced"
PKTGEN="$SCRATCH/release/sluice-pktgen"
CTBENCH="$SCRATCH/release/sluice-conntrack-bench"
MAGLEV="$SCRATCH/release/sluice-maglev-report"
TESTPMD=${TESTPMD:-dpdk-testpmd}
PYTHON=/usr/bin/python3   # Debian's, with python3-matplotlib
PREFIX="slsc$$"
VIP=192.0.2.10
VIP6=2001:db8::10
LB_MAC=02:00:00:00:5e:10
BACKENDS=8

for s in $SCENARIOS; do
  case " $ALL_SCENARIOS " in *" $s "*) ;; *) echo "FAIL: unknown scenario $s (scenarios: $ALL_SCENARIOS)"; exit 1 ;; esac
done
if [ "${1:-}" != "--no-build" ]; then
  for product in sluiced sluice-pktgen sluice-conntrack-bench sluice-maglev-report; do
    swift build -c release --scratch-path "$SCRATCH" --product "$product" 2>&1 | grep -E "error|Compiling|Build of" | tail -1
  done
fi
for binary in "$SLUICED" "$PKTGEN"; do [ -x "$binary" ] || { echo "FAIL: $binary not built"; exit 1; }; done
command -v "$TESTPMD" >/dev/null || { echo "FAIL: $TESTPMD not found (Debian package dpdk-dev)"; exit 1; }
"$PYTHON" -c 'import matplotlib' 2>/dev/null || { echo "FAIL: $PYTHON has no matplotlib (Debian package python3-matplotlib)"; exit 1; }
bench_workdir sluice-scenarios
mkdir -p "$WORK/runs"
bench_environment

# ---- the link ------------------------------------------------------------------------------------
# memif rings of the default 2^10 slots: larger rings (2^12 was tried) spread the copies over more
# buffer memory than the caches hold and lowered the testpmd ceiling about threefold here.
MEMIF_OPTS=${MEMIF_OPTS:-"socket-abstract=no"}
lb_devices() { echo "net_memif0,role=server,socket=$WORK/c.sock,$MEMIF_OPTS" "net_memif1,role=server,socket=$WORK/b.sock,$MEMIF_OPTS"; }
PG_TX="net_memif0,role=client,socket=$WORK/c.sock,$MEMIF_OPTS"
PG_RX="net_memif1,role=client,socket=$WORK/b.sock,$MEMIF_OPTS"
EAL_LB=(--no-huge --no-pci -l 0,1 --main-lcore 0 --log-level lib.eal:error)
EAL_PG=(--no-huge --no-pci -l 0 --log-level lib.eal:error -m 768)

# lb_config FILE MODE FLOWS FAMILY DRAIN-US: sluiced's configuration (8 backends, static neighbors;
# replies to the clients' networks leave through a gateway on the clients' link, which is pktgen).
lb_config() {
  local file=$1 mode=$2 flows=$3 family=$4 drain=$5 i devices capacity
  read -r -a devices <<<"$(lb_devices)"
  capacity=$(( flows * 5 / 2 ))   # forward + reverse entry per flow at 80 % occupancy
  [ "$capacity" -lt 65536 ] && capacity=65536
  {
    cat <<YAML
ports:
  - { name: clients, device: "${devices[0]}", mac: "$LB_MAC", addresses: ["192.0.2.2/24", "2001:db8::2/64"] }
  - { name: backends, device: "${devices[1]}", mac: "02:00:00:00:5e:11", addresses: ["198.51.100.1/24", "2001:db8:1::1/64"] }
workers: { lcores: [1], main_lcore: 0, mode: pipeline, idle: { mode: poll }, tx_drain_us: $drain }
mempool: { mbufs: 16383, cache_size: 256 }
flows: { capacity: $capacity, hash_seed: "6c62656e63680000000000000000a5a5" }
vips:
  - { address: $VIP, port: clients }
  - { address: "$VIP6", port: clients }
services:
  - name: web
    vip: $([ "$family" = 6 ] && echo "\"$VIP6\"" || echo $VIP)
    protocol: $([ "$mode" = udp ] && echo udp || echo tcp)
    port: 80
    mode: $([ "$mode" = udp ] && echo dnat || echo "$mode")
YAML
    # full-NAT: two source addresses on the backends' segment (64512 ports each per backend).
    [ "$mode" = fullnat ] && echo '    source_pool: ["198.51.100.200", "198.51.100.201"]'
    echo "    backends:"
    for i in $(seq 1 $BACKENDS); do
      if [ "$mode" = vxlan ]; then
        printf '      - { address: 10.244.%d.10, port: 8080, vtep: 198.51.100.%d, vni: %d, inner_mac: "02:00:00:00:0c:%02x" }\n' "$i" $((100 + i)) $((4096 + i)) "$i"
      elif [ "$family" = 6 ]; then
        printf '      - { address: "2001:db8:1::%x", port: 8080 }\n' $((0x10 + i))
      else
        printf '      - { address: 198.51.100.%d, port: 8080 }\n' $((100 + i))
      fi
    done
    echo "routes:"
    echo "  - { prefix: 203.0.113.0/24, via: 192.0.2.1, port: clients }"
    echo '  - { prefix: "2001:db8:ffff::/64", via: "2001:db8::1", port: clients }'
    echo "neighbors:"
    echo '  - { address: 192.0.2.1, mac: "02:00:00:00:0c:01" }'
    echo '  - { address: "2001:db8::1", mac: "02:00:00:00:0c:01" }'
    for i in $(seq 1 $BACKENDS); do
      printf '  - { address: 198.51.100.%d, mac: "02:00:00:00:0b:%02x" }\n' $((100 + i)) "$i"
      printf '  - { address: "2001:db8:1::%x", mac: "02:00:00:00:0b:%02x" }\n' $((0x10 + i)) "$i"
    done
  } >"$file"
}

# scenario_spec NAME: "PROGRAM MODE FLOWS FAMILY TX-DRAIN-US|pktgen options"
scenario_spec() {
  local est="--traffic established --warmup --duration $MEASURE"
  local lat="--traffic established --warmup --rate $LAT_RATE --duration $LAT_SECONDS"
  case $1 in
    ceiling)         echo "testpmd - 1000 4 -|--flows 1000 $est" ;;
    ceiling-latency) echo "testpmd - 1000 4 -|--flows 1000 $lat" ;;
    dnat-1k)         echo "sluiced dnat 1000 4 100|--flows 1000 $est" ;;
    dnat-1k-latency) echo "sluiced dnat 1000 4 100|--flows 1000 $lat" ;;
    dnat-1k-latency-drain10) echo "sluiced dnat 1000 4 10|--flows 1000 $lat" ;;
    dnat-100k)       echo "sluiced dnat 100000 4 100|--flows 100000 $est" ;;
    dnat-1m)         echo "sluiced dnat 1000000 4 100|--flows 1000000 $est" ;;
    dnat-1m-zipf)    echo "sluiced dnat 1000000 4 100|--flows 1000000 --popularity zipf --zipf-exponent 0.99 $est" ;;
    dnat-10m)        echo "sluiced dnat $FLOWS_XL 4 100|--flows $FLOWS_XL $est" ;;
    syn-1m)          echo "sluiced dnat 1000000 4 100|--flows 1000000 --traffic syn --packets 1000000 --duration 0" ;;
    handshake-1m)    echo "sluiced dnat 1000000 4 100|--flows 1000000 --traffic handshake --duration $MEASURE" ;;
    handshake-1m-latency) echo "sluiced dnat 1000000 4 100|--flows 1000000 --traffic handshake --rate $HS_RATE --duration $LAT_SECONDS" ;;
    vxlan-100k)      echo "sluiced vxlan 100000 4 100|--flows 100000 $est" ;;
    fullnat-100k)    echo "sluiced fullnat 100000 4 100|--flows 100000 $est" ;;
    udp-1k)          echo "sluiced udp 1000 4 100|--flows 1000 --traffic udp --warmup --duration $MEASURE" ;;
    ipv6-1k)         echo "sluiced dnat 1000 6 100|--flows 1000 $est" ;;
  esac
}

# run_lb NAME ROUND: one balancer process and one pktgen run over the memif link.
run_lb() {
  local name=$1 round=$2 spec program mode flows family drain options log pg json target pid pgpid
  spec=$(scenario_spec "$name")
  read -r program mode flows family drain <<<"${spec%%|*}"
  options="${spec#*|} $PKTGEN_EXTRA"
  log="$WORK/runs/$name.r$round.lb.log"
  pg="$WORK/runs/$name.r$round.pktgen.log"
  json="$WORK/runs/$name.r$round.pktgen.json"
  rm -f "$WORK/c.sock" "$WORK/b.sock"
  # Other DPDK processes polling on this machine (other benchmarks) take the same CPUs.
  others=$(ps -eo comm= | grep -cE '^(sluiced|dpdk-testpmd|sluice-pktgen|pktgen|dpdk-l3fwd|l3fwd)$' || true)
  echo "$name $round $others" >>"$WORK/runs/others"
  local devices; read -r -a devices <<<"$(lb_devices)"
  if [ "$program" = testpmd ]; then
    "$TESTPMD" "${EAL_LB[@]}" -m 1024 --file-prefix "$PREFIX-$name-$round" --vdev "${devices[0]}" --vdev "${devices[1]}" -- \
      --no-mlockall --forward-mode=io --nb-cores=1 --auto-start --stats-period 1 --total-num-mbufs=16384 \
      --record-core-cycles >"$log" 2>&1 &
  else
    lb_config "$WORK/$name.yaml" "$mode" "$flows" "$family" "$drain"
    "$SLUICED" --config "$WORK/$name.yaml" -- "${EAL_LB[@]}" -m 768 --file-prefix "$PREFIX-$name-$round" >"$log" 2>&1 &
  fi
  pid=$!
  PIDS+=("$pid")
  local waited=0
  until [ -S "$WORK/c.sock" ] && [ -S "$WORK/b.sock" ]; do
    kill -0 "$pid" 2>/dev/null || { echo "FAIL: $name: $program exited at start"; tail -5 "$log"; exit 1; }
    sleep 0.05; waited=$((waited + 1))
    [ $waited -lt 1200 ] || { echo "FAIL: $name: no memif sockets after 60 s"; exit 1; }
  done
  target=$([ "$family" = 6 ] && echo "[$VIP6]:80" || echo "$VIP:80")
  # shellcheck disable=SC2086
  # --no-verify-checksums: pktgen's one core is the tighter limit here (checking costs it ~16 %);
  # Tests/integration/pktgen-memif.sh and the golden tests check sluiced's checksums.
  "$PKTGEN" --tx-port "$PG_TX" --rx-port "$PG_RX" --target "$target" --dst-mac "$LB_MAC" $options --no-verify-checksums \
    --json "$json" --wait-peer-close-ms 10000 -- "${EAL_PG[@]}" --file-prefix "$PREFIX-pg-$name-$round" >"$pg" 2>&1 &
  pgpid=$!
  PIDS+=("$pgpid")
  # The steady window (bench/telemetry-window.py, as in lb-fastpath.sh): port 0's ipackets and the
  # forwarding thread's CPU time, sampled through the balancer's telemetry socket, over a window
  # that opens after the warm-up pass (flows + 100k packets) and ends before pktgen stops; for
  # syn-1m, packets 5 %..95 % of its one pass. It excludes the warm-up that the whole-run
  # counters include.
  local window_args
  case $name in
    syn-*) window_args=(--from $((flows / 20)) --to $((flows - flows / 20)) --interval 0.005) ;;
    # Port 0 receives three segments of each connection (SYN, request, last ACK); skip the first 100k.
    handshake-*latency) window_args=(--from 100000 --seconds $((LAT_SECONDS > 1 ? LAT_SECONDS - 1 : 1))) ;;
    handshake-*) window_args=(--from 100000 --seconds $((MEASURE > 1 ? MEASURE - 1 : 1))) ;;
    *-latency*) window_args=(--from $((flows + 100000)) --seconds $((LAT_SECONDS > 1 ? LAT_SECONDS - 1 : 1))) ;;
    *) window_args=(--from $((flows + 100000)) --seconds $((MEASURE > 1 ? MEASURE - 1 : 1))) ;;
  esac
  # sluiced's worker 0 also gives its busy share over the window (testpmd has no such command).
  [ "$program" = sluiced ] && window_args+=(--worker 0)
  "$PYTHON" bench/telemetry-window.py "$pid" "/var/run/dpdk/$PREFIX-$name-$round/dpdk_telemetry.v2" \
    "${window_args[@]}" --timeout 600 >"$log.window" 2>"$log.window.err" &
  local twpid=$!
  # The balancer stops first (SIGINT once the report is written), then pktgen sees the links go
  # down and closes: a memif peer that disappears under a polling worker can crash DPDK 22.11's
  # memif PMD (docs/pktgen.md).
  while [ ! -f "$json" ] && kill -0 "$pgpid" 2>/dev/null; do sleep 0.1; done
  wait "$twpid" || echo "  ($name: no steady window: $(cat "$log.window.err"))"
  grep -E '^(VmHWM|VmRSS)' "/proc/$pid/status" >"$log.memory" 2>/dev/null || true   # the balancer's peak memory
  worker_schedstat "$pid" >"$log.schedstat"   # its forwarding thread's run / wait ns (bench/lib.sh)
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" || { echo "FAIL: $name: $program exited $? (log: $log)"; tail -20 "$log"; exit 1; }
  wait "$pgpid" || { echo "FAIL: $name: sluice-pktgen exited $? (log: $pg)"; tail -20 "$pg"; exit 1; }
  [ -f "$json" ] || { echo "FAIL: $name: no pktgen report"; tail -20 "$pg"; exit 1; }
  "$PYTHON" - "$json" "$log" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = r["measured"]; l = r["latency"]; f = r["flows"]; n = r.get("connections")
if n:
    print(f"  {sys.argv[3]:<16} {n['completed_per_s'] / 1e6:7.3f} M connections/s completed ({n['balancer_mpps']:.3f} Mpps of segments "
          f"through the balancer), failed {n['failed']}, connect time p50 {l['p50_ns']/1000:.1f} us, p99 {l['p99_ns']/1000:.1f} us, "
          f"{f['moved_flows']} moved")
else:
    print(f"  {sys.argv[3]:<16} {m['rx_mpps']:7.3f} Mpps delivered, lost {m['lost']}, p50 {l['p50_ns']/1000:.1f} us, "
          f"p99 {l['p99_ns']/1000:.1f} us, {f['seen']}/{f['flows']} flows back, {f['moved_flows']} moved")
PY
}

# update-storm: sluiced with dnat-1k's configuration and a control socket; sluice-pktgen sends
# 1k established flows at STORM_RATE pps for STORM_SECONDS, sampling its delivered rate every
# 50 ms; after STORM_LEAD s a client on the socket changes backend 2's weight 1 <-> 2,
# STORM_UPDATES times a second for STORM_WINDOW s (every change a new Maglev table and an RCU
# publication). Reported: loss, flows that moved backend (0 expected: established flows keep
# their backends), the delivered rate before / during / after, request->response latency.
# scenario_update_storm baseline runs the same traffic with no client first: the loss the
# storm adds is the difference between the two runs.
STORM_RATE=${STORM_RATE:-1000000}
STORM_SECONDS=${STORM_SECONDS:-12}
STORM_LEAD=${STORM_LEAD:-3}
STORM_WINDOW=${STORM_WINDOW:-5}
STORM_UPDATES=${STORM_UPDATES:-1000}
scenario_update_storm() {
  local variant=$1 name=update-storm
  [ "$variant" = baseline ] && name=update-storm-baseline
  local log="$WORK/runs/$name.lb.log" pg="$WORK/runs/$name.pktgen.log"
  local json="$WORK/runs/$name.pktgen.json" updates="$WORK/runs/$name.updates.json" pid pgpid upid=
  rm -f "$WORK/c.sock" "$WORK/b.sock" "$WORK/control.sock"
  local devices; read -r -a devices <<<"$(lb_devices)"
  lb_config "$WORK/$name.yaml" dnat 1000 4 100
  printf 'control: { socket: "%s" }\n' "$WORK/control.sock" >>"$WORK/$name.yaml"
  "$SLUICED" --config "$WORK/$name.yaml" -- "${EAL_LB[@]}" -m 768 --file-prefix "$PREFIX-$name" >"$log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  local waited=0
  until [ -S "$WORK/c.sock" ] && [ -S "$WORK/b.sock" ] && [ -S "$WORK/control.sock" ]; do
    kill -0 "$pid" 2>/dev/null || { echo "FAIL: $name: sluiced exited at start"; tail -5 "$log"; exit 1; }
    sleep 0.05; waited=$((waited + 1))
    [ $waited -lt 1200 ] || { echo "FAIL: $name: no memif or control socket after 60 s"; exit 1; }
  done
  # shellcheck disable=SC2086
  "$PKTGEN" --tx-port "$PG_TX" --rx-port "$PG_RX" --target "$VIP:80" --dst-mac "$LB_MAC" --flows 1000 \
    --traffic established --warmup --rate "$STORM_RATE" --duration "$STORM_SECONDS" --interval-ms 50 \
    --no-verify-checksums --json "$json" --wait-peer-close-ms 10000 -- "${EAL_PG[@]}" --file-prefix "$PREFIX-pg-$name" \
    >"$pg" 2>&1 &
  pgpid=$!
  PIDS+=("$pgpid")
  [ "$variant" = storm ] && "$PYTHON" - "$WORK/control.sock" "$updates" "$STORM_LEAD" "$STORM_WINDOW" "$STORM_UPDATES" <<'PY' &
import json, socket, sys, time
path, out, lead, window, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
time.sleep(lead + 1.0)   # pktgen's warm-up pass and the lead-in
s = socket.socket(socket.AF_UNIX); s.connect(path); f = s.makefile("rwb", buffering=0)
start = time.monotonic(); latencies = []; errors = 0; n = 0; wall_start = time.time()
while time.monotonic() - start < window:
    due = start + n / rate
    now = time.monotonic()
    if due > now: time.sleep(due - now)
    req = {"jsonrpc": "2.0", "id": n, "method": "backend.update",
           "params": {"service": "web", "address": "198.51.100.102", "weight": 1 + n % 2}}
    t0 = time.monotonic(); f.write((json.dumps(req) + "\n").encode()); reply = json.loads(f.readline())
    latencies.append(time.monotonic() - t0); errors += "error" in reply; n += 1
elapsed = time.monotonic() - start
latencies.sort()
q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
json.dump({"updates": n, "errors": errors, "seconds": elapsed, "achieved_rate": n / elapsed,
           "start_unix": wall_start, "latency_ms": {"p50": q(0.50), "p99": q(0.99), "max": latencies[-1] * 1000}},
          open(out, "w"))
PY
  [ "$variant" = storm ] && upid=$!
  while [ ! -f "$json" ] && kill -0 "$pgpid" 2>/dev/null; do sleep 0.1; done
  [ -z "$upid" ] || wait "$upid" || echo "  ($name: the update client failed)"
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" || { echo "FAIL: $name: sluiced exited $? (log: $log)"; tail -20 "$log"; exit 1; }
  wait "$pgpid" || { echo "FAIL: $name: sluice-pktgen exited $? (log: $pg)"; tail -20 "$pg"; exit 1; }
  "$PYTHON" - "$json" "$updates" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = r["measured"]; f = r["flows"]
try:
    u = json.load(open(sys.argv[2]))
    changes = (f"{u['updates']} updates at {u['achieved_rate']:.0f}/s (errors {u['errors']}, p50 "
               f"{u['latency_ms']['p50']:.2f} ms, p99 {u['latency_ms']['p99']:.2f} ms)")
except OSError:
    changes = "no changes" if sys.argv[3].endswith("baseline") else "THE UPDATE CLIENT WROTE NO RESULT"
print(f"  {sys.argv[3]:<21} {changes}; {m['rx_mpps']:.3f} Mpps delivered, "
      f"lost {m['lost']} of {m['sent']}, {f['moved_flows']} of {f['flows']} flows moved")
PY
}

run_conntrack() {
  [ -x "$CTBENCH" ] || { echo "FAIL: $CTBENCH not built"; exit 1; }
  "$CTBENCH" --flows "1000000,$CONNTRACK_FLOWS" --mode shared --reps 1 >"$WORK/runs/conntrack.log" 2>&1 \
    || { echo "FAIL: sluice-conntrack-bench"; tail "$WORK/runs/conntrack.log"; exit 1; }
  grep -E "bytes/flow" "$WORK/runs/conntrack.log" | sed 's/^/  conntrack        /'
}

run_maglev() {
  [ -x "$MAGLEV" ] || { echo "FAIL: $MAGLEV not built"; exit 1; }
  "$MAGLEV" --quick --output "$WORK/runs/maglev.md" >"$WORK/runs/maglev.log" 2>&1 \
    || { echo "FAIL: sluice-maglev-report"; tail "$WORK/runs/maglev.log"; exit 1; }
  awk '/## 3. Table build time/,/## 4/' "$WORK/runs/maglev.md" | grep -E '^\| [0-9]' | sed 's/^/  maglev build     /'
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date +%s)
echo "scenarios: $ROUNDS round(s); balancer on CPU 1 (lcore 1), sluice-pktgen on CPU 0; memif; ${MEASURE}s windows"
for round in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && echo "round $round"
  for s in $SCENARIOS; do
    case $s in
      update-storm) [ "$round" = 1 ] && { scenario_update_storm baseline; scenario_update_storm storm; } ;;
      conntrack) [ "$round" = 1 ] && run_conntrack ;;
      maglev) [ "$round" = 1 ] && run_maglev ;;
      *) run_lb "$s" "$round" ;;
    esac
  done
done
ELAPSED=$(( $(date +%s) - STARTED ))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$RESULTS_DIR"
export WORK RESULTS_DIR ROUNDS MEASURE LAT_RATE LAT_SECONDS ELAPSED LOAD_BEFORE LOAD_AFTER CPU DPDK_VERSION SWIFT_VERSION \
  COMMIT DIRTY SCENARIOS CONNTRACK_FLOWS HS_RATE STORM_RATE STORM_SECONDS STORM_LEAD STORM_WINDOW STORM_UPDATES
export COMMAND="bench/scenarios.sh $*"
export DATE=$(date -u +%Y-%m-%d)
export SETTINGS="ROUNDS=$ROUNDS MEASURE=$MEASURE LAT_RATE=$LAT_RATE LAT_SECONDS=$LAT_SECONDS FLOWS_XL=$FLOWS_XL CONNTRACK_FLOWS=$CONNTRACK_FLOWS HS_RATE=$HS_RATE${PKTGEN_EXTRA:+ PKTGEN_EXTRA=\"$PKTGEN_EXTRA\"}"
export MHZ=$(awk -F': ' '/cpu MHz/ { printf "%.0f", $2; exit }' /proc/cpuinfo)
export EAL_LB_TEXT="${EAL_LB[*]}" EAL_PG_TEXT="${EAL_PG[*]}" MEMIF_OPTS
"$PYTHON" bench/scenarios-report.py
