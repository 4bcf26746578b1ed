#!/usr/bin/env bash
# The kernel alternative, same machine, same run: real HTTP through a load balancer in network
# namespaces, once with Linux nftables DNAT (what kube-proxy's nftables mode programs) and once
# with `sluiced`, over the very same veths, measured with wrk against nginx backends.
#
#   client ns (wrk)  192.0.2.1 ──veth── LB ns ──veth── backends ns (bridge) ── b1, b2, b3 ns
#                                        │                                     nginx :8080,
#                                        │                                     198.51.100.11..13,
#                                        │                                     default route via
#                                        │                                     the LB (198.51.100.1)
#       nft:     the LB ns owns 192.0.2.2 and the VIP 192.0.2.10, forwards, and DNATs VIP:80 with
#                `numgen random mod 3 vmap { … : goto endpoint }` → `dnat to backend:8080`
#                (kube-proxy's nftables layout: service-ips map → service chain → endpoint
#                chains), conntrack doing the return path;
#       sluiced-af_packet, sluiced-af_xdp: the LB ns has no addresses and no forwarding;
#                `sluiced` (release build, dnat mode, 3 backends of weight 1) runs in it over the
#                same two veth ends, through net_af_packet or net_af_xdp (an XDP program on each
#                veth, AF_XDP in copy mode), worker on lcore 1. A fresh sluiced for every wrk
#                run, so that its final counters (busy cycles, new flows) are that run's.
# The lab is tools/lib/lb-lab.sh (LB_ROUTER_NS puts the LB's veth ends in their own namespace,
# LB_HTTP=nginx runs nginx in the backends). It is built once; each round switches the LB ns
# from one configuration to the other (addresses, forwarding, ruleset and conntrack flushed;
# neighbour caches flushed in the client and backends), so both see identical links.
#
# Per configuration and round, two wrk runs from the client ns to http://192.0.2.10/:
#   keep-alive: `wrk -t1 -c$CONNS -d${DURATION}s --latency`                 → requests/s
#   close:      the same with `-H "Connection: close"`: every request is a new TCP connection
#               (handshake, request, FIN both ways) through the LB         → connections/s
# ROUNDS interleaved rounds (the order of the configurations rotates), medians reported;
# p50/p99 latency from wrk --latency; per-backend spread from the nginx access logs (flushed
# with SIGUSR1 around every run); CPU shares from /proc/stat deltas over each run.
#
# CPU placement (2 vCPUs): everything that is not the load balancer runs on CPU $HOST_CPU (wrk
# and nginx by taskset; the client's and backends' receive processing by RPS on their veths),
# the load balancer gets CPU $LB_CPU: sluiced's worker lcore, and for both configurations the
# receive processing of the LB ns's two veth ends (RPS mask) — for nft that is all of its work
# (conntrack, NAT, forwarding run in that softirq), for sluiced it is the kernel's af_packet
# copy into the socket's ring (net_af_xdp's XDP program runs on the transmitting peer's CPU,
# which RPS cannot change). sluiced's main lcore is $HOST_CPU (idle after start).
# On a machine shared with other work, nft's load balancing (softirq) runs ahead of every task,
# while sluiced's worker is a task that the scheduler shares out; with autogroup scheduling
# (kernel.sched_autogroup_enabled) each session gets an equal share and plain nice does nothing
# across sessions. So sluiced runs in its own session whose autogroup is weighted as nice
# $SLUICED_NICE: its worker gets most of the LB core, as nft's softirq does. wrk and nginx get no
# such help; they compete with the rest of the machine alike for every configuration.
#
# Usage: bench/kernel-vs-sluiced.sh [--no-build]      (root; about 4 minutes)
#        ROUNDS=5 DURATION=5 CONNS=32 SLUICED_IDLE=poll SLUICED_TX_DRAIN_US=100 SLUICED_NICE=-10
#        SCRATCH=.build-kernelbench
#        CONFIGS="nft sluiced-af_packet sluiced-af_xdp" (nft must be among them: the reference)
#        RESULTS=bench/results/kernel-vs-sluiced.md JSON=bench/results/kernel-vs-sluiced.json
# Reported, never asserted: the script fails only when a configuration does not carry HTTP.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
. tools/lib/netns.sh
. tools/lib/lb-lab.sh
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}
SLUICED_IDLE=${SLUICED_IDLE:-poll}
SLUICED_TX_DRAIN_US=${SLUICED_TX_DRAIN_US:-100}
SLUICED_NICE=${SLUICED_NICE:--10}
CONFIGS=${CONFIGS:-nft sluiced-af_packet sluiced-af_xdp}
SCRATCH=${SCRATCH:-.build-kernelbench}
RESULTS=${RESULTS:-bench/results/kernel-vs-sluiced.md}
JSON=${JSON:-bench/results/kernel-vs-sluiced.json}
SLUICED="$SCRATCH/release/sluiced"
HOST_CPU=0
LB_CPU=1
PYTHON=/usr/bin/python3
VIP=192.0.2.10
STARTED=$(date +%s)

if [ "${1:-}" != "--no-build" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product sluiced 2>&1 | grep -E "error|Build" | tail -2
fi
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "FAIL: run as root (namespaces, nftables, DPDK)"; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "FAIL: needs 2 CPUs (LB on CPU $LB_CPU, the rest on CPU $HOST_CPU)"; exit 1; }
for tool in wrk nginx nft conntrack taskset curl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (tools/setup.sh installs it)"; exit 1; }
done
bench_environment
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

P="slkb$$"
PREFIX="slkb$$"
lab_init slkb
# lab_cleanup ends the processes, links and namespaces; sluiced's DPDK runtime directory too.
trap 'rc=$?; set +e; rm -rf /var/run/dpdk/"$PREFIX" 2>/dev/null; (exit $rc); lab_cleanup' EXIT
LB_NS="$P-lb"
LB_ROUTER_NS="$LB_NS" LB_HTTP=nginx LB_HTTP_CPUS=$HOST_CPU lb_lab_up "$P"
in_lb() { ip netns exec "$LB_NS" "$@"; }
in_client() { ip netns exec "$LB_CLIENT_NS" "$@"; }
for i in 1 2 3; do
  [ -s "$LAB_DIR/nginx$i/nginx.pid" ] || { echo "FAIL: nginx b$i did not start"; cat "$LAB_DIR/http$i.log"; exit 1; }
done

# Receive processing: RPS on every veth end (one RX queue each).
rps() { ip netns exec "$1" sh -c "echo $3 >/sys/class/net/$2/queues/rx-0/rps_cpus"; }
HOST_MASK=$(printf '%x' $((1 << HOST_CPU)))
LB_MASK=$(printf '%x' $((1 << LB_CPU)))
rps "$LB_CLIENT_NS" "${P}c1" "$HOST_MASK"
rps "$LB_NS" "$LB_PORT0" "$LB_MASK"
rps "$LB_NS" "$LB_PORT1" "$LB_MASK"
rps "$LB_BK_NS" "${P}b1" "$HOST_MASK"
for i in 1 2 3; do
  rps "$LB_BK_NS" "bk$i" "$HOST_MASK"
  rps "$P-b$i" eth0 "$HOST_MASK"
done
# Many short connections: let the client use the whole port range.
in_client sysctl -qw net.ipv4.ip_local_port_range="1024 65535"

# --- the two load balancers -------------------------------------------------------------------
cat >"$LAB_DIR/lb.nft" <<NFT
# kube-proxy nftables mode, reduced to one service: VIP . proto . port → service chain →
# random endpoint → DNAT. No masquerade: the LB is the backends' gateway (as sluiced's dnat).
table ip slbench {
  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = { $VIP . tcp . 80 : goto svc-web }
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr . meta l4proto . th dport vmap @service-ips
  }
  chain svc-web {
    numgen random mod 3 vmap { 0 : goto ep-b1, 1 : goto ep-b2, 2 : goto ep-b3 }
  }
  chain ep-b1 {
    meta l4proto tcp dnat to 198.51.100.11:8080
  }
  chain ep-b2 {
    meta l4proto tcp dnat to 198.51.100.12:8080
  }
  chain ep-b3 {
    meta l4proto tcp dnat to 198.51.100.13:8080
  }
}
NFT
SERVICES='
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends:
      - { address: 198.51.100.11, port: 8080 }
      - { address: 198.51.100.12, port: 8080 }
      - { address: 198.51.100.13, port: 8080 }'
# net_af_xdp's receive queues take their fill-ring frames from the pool when they are set up:
# 4095 mbufs (the tests' default) leave the second port none. Both PMDs get the same pool.
for pmd in af_packet af_xdp; do
  LB_PMD=net_$pmd LB_IDLE="{ mode: $SLUICED_IDLE }" LB_TX_DRAIN_US=$SLUICED_TX_DRAIN_US \
    LB_FLOW_CAPACITY=1048576 LB_MBUFS=16383 \
    lb_config "$PREFIX" "$SERVICES"
  mv "$LAB_DIR/sluiced.yaml" "$LAB_DIR/sluiced-$pmd.yaml"
done

flush_neighbours() {
  for ns in "$LB_CLIENT_NS" "$P-b1" "$P-b2" "$P-b3"; do ip -n "$ns" neigh flush all; done
}
# probe: the VIP answers HTTP (retries while neighbours are resolved).
probe() {
  local ok=0
  for _ in $(seq 40); do
    if in_client curl -sS -m 1 -o /dev/null "http://$VIP/" 2>/dev/null; then
      ok=$((ok + 1)); [ $ok -ge 3 ] && return 0
    else
      sleep 0.1
    fi
  done
  return 1
}
nft_up() {
  in_lb ip addr add 192.0.2.2/24 dev "$LB_PORT0"
  in_lb ip addr add "$VIP/32" dev "$LB_PORT0"
  in_lb ip addr add 198.51.100.1/24 dev "$LB_PORT1"
  in_lb sysctl -qw net.ipv4.ip_forward=1
  in_lb nft -f "$LAB_DIR/lb.nft"
  in_lb conntrack -F 2>/dev/null || true
  flush_neighbours
  probe || { echo "FAIL: no HTTP through nftables"; exit 1; }
}
nft_down() {
  CT_COUNT=$(in_lb cat /proc/sys/net/netfilter/nf_conntrack_count)
  CT_DROPS=$(in_lb conntrack -S 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(drop|insert_failed|early_drop)=/) { split($i, kv, "="); s += kv[2] } } END { print s + 0 }')
  in_lb nft delete table ip slbench
  in_lb sysctl -qw net.ipv4.ip_forward=0
  in_lb ip addr flush dev "$LB_PORT0"
  in_lb ip addr flush dev "$LB_PORT1"
  in_lb conntrack -F 2>/dev/null || true
}
# sluiced_up PMD ROUND
sluiced_up() {
  SLUICED_LOG="$LAB_DIR/sluiced-$1-$2.log"
  flush_neighbours
  # Its own session, hence its own scheduler autogroup, weighted as nice $SLUICED_NICE (see above).
  ip netns exec "$LB_NS" setsid "$SLUICED" --config "$LAB_DIR/sluiced-$1.yaml" >"$SLUICED_LOG" 2>&1 &
  SLUICED_PID=$!
  lab_bg $SLUICED_PID
  wait_for_line "$SLUICED_LOG" "sluiced: running" 30 || { echo "FAIL: sluiced did not start"; tail -20 "$SLUICED_LOG"; exit 1; }
  # Only now: setsid has made the new session (and autogroup) by the time sluiced runs.
  if [ -w "/proc/$SLUICED_PID/autogroup" ]; then
    echo "$SLUICED_NICE" >"/proc/$SLUICED_PID/autogroup" 2>/dev/null || true
  fi
  SLUICED_AUTOGROUP=$(cat "/proc/$SLUICED_PID/autogroup" 2>/dev/null || echo "no autogroup")
  probe || { echo "FAIL: no HTTP through sluiced"; tail -20 "$SLUICED_LOG"; exit 1; }
}
sluiced_down() {
  # The worker thread's CPU time so far (it spins in poll mode: all the core it was given).
  read -r SLUICED_RUN_NS SLUICED_WAIT_NS < <(worker_schedstat "$SLUICED_PID")
  kill -INT "$SLUICED_PID"
  wait "$SLUICED_PID" || { echo "FAIL: sluiced exited $? on SIGINT"; tail -20 "$SLUICED_LOG"; exit 1; }
  rm -rf /var/run/dpdk/"$PREFIX" 2>/dev/null || true
  # net_af_xdp detaches its XDP program on close; make sure nothing is left for the next config.
  in_lb ip link set dev "$LB_PORT0" xdp off 2>/dev/null || true
  in_lb ip link set dev "$LB_PORT1" xdp off 2>/dev/null || true
}

# --- one measured run -------------------------------------------------------------------------
# access_counts: "b1 b2 b3" requests logged so far (buffers flushed first by SIGUSR1: reopen).
access_counts() {
  local i
  for i in 1 2 3; do kill -USR1 "$(cat "$LAB_DIR/nginx$i/nginx.pid")"; done
  sleep 0.3
  for i in 1 2 3; do printf '%s ' "$(wc -l <"$LAB_DIR/nginx$i/access.log")"; done
}
cpu_sample() { awk '$1 == "cpu'$HOST_CPU'" || $1 == "cpu'$LB_CPU'" { print }' /proc/stat; }
# run_wrk CONFIG TEST ROUND: appends one line to runs.tsv.
run_wrk() {
  local config=$1 test=$2 round=$3 out="$LAB_DIR/$1-$2-$3.wrk" header=()
  [ "$test" = close ] && header=(-H "Connection: close")
  local before cpu_before cpu_after after
  before=$(access_counts)
  cpu_before=$(cpu_sample)
  in_client taskset -c "$HOST_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${header[@]}" "http://$VIP/" >"$out"
  cpu_after=$(cpu_sample)
  after=$(access_counts)
  "$PYTHON" - "$config" "$test" "$round" "$out" "$before" "$after" "$cpu_before" "$cpu_after" \
    "$HOST_CPU" "$LB_CPU" >>"$LAB_DIR/runs.jsonl" <<'PY'
import json, re, sys
config, test, rnd, path, before, after, cpu_b, cpu_a, host_cpu, lb_cpu = sys.argv[1:]
text = open(path).read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)$", v)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.M))
errors = {k: int(v) for k, v in re.findall(r"(connect|read|write|timeout) (\d+)", text)}
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
total = re.search(r"(\d+) requests in ([\d.]+)(s|m)", text)
def cpu(lines):
    out = {}
    for line in lines.splitlines():
        f = line.split()
        v = list(map(int, f[1:9]))  # user nice system idle iowait irq softirq steal
        out[f[0]] = v
    return out
b, a = cpu(cpu_b), cpu(cpu_a)
shares = {}
for name in sorted(a):
    d = [x - y for x, y in zip(a[name], b[name])]
    tot = sum(d) or 1
    shares[name] = {"ticks": tot, "softirq_ticks": d[5] + d[6],
                    "busy": round(100 * (tot - d[3] - d[4]) / tot, 1),
                    "user": round(100 * (d[0] + d[1]) / tot, 1),
                    "system": round(100 * d[2] / tot, 1),
                    "softirq": round(100 * (d[5] + d[6]) / tot, 1),
                    "steal": round(100 * d[7] / tot, 1)}
per_backend = [int(y) - int(x) for x, y in zip(before.split(), after.split())]
print(json.dumps({
    "config": config, "test": test, "round": int(rnd),
    "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
    "requests": int(total.group(1)) if total else None,
    "p50_ms": ms(lat["50"]), "p99_ms": ms(lat["99"]),
    "socket_errors": errors, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    "per_backend": per_backend, "cpu": shares,
}))
PY
  tail -1 "$LAB_DIR/runs.jsonl" | "$PYTHON" -c 'import json, sys; r = json.load(sys.stdin); print("  {config:8} {test:10} round {round}: {requests_per_s:>9.0f}/s  p50 {p50_ms:.2f} ms  p99 {p99_ms:.2f} ms  backends {per_backend}  errors {socket_errors}".format(**r))'
}

# attach_worker_counters: adds sluiced's worker busy time to the last run's line. busy_cycles /
# total_cycles is the share of the worker loop's wall-clock time spent in polls that found
# packets (their transmits' syscalls included); on a shared core the thread is also preempted,
# and wall-clock cycles count that too. So the busy CPU time is taken as that share of the CPU
# time the thread actually ran (schedstat): preemptions hit busy and idle polls alike.
attach_worker_counters() {
  local busy total mhz rx
  busy=$(counter "$SLUICED_LOG" busy_cycles)
  total=$(counter "$SLUICED_LOG" total_cycles)
  rx=$(counter "$SLUICED_LOG" rx_packets)
  mhz=$(tsc_mhz "$SLUICED_LOG")
  "$PYTHON" - "$LAB_DIR/runs.jsonl" "$busy" "$total" "$mhz" "$rx" "$SLUICED_RUN_NS" "$SLUICED_WAIT_NS" <<'PY'
import json, sys
path = sys.argv[1]
busy, total, mhz, rx, run_ns, wait_ns = map(int, sys.argv[2:])
lines = open(path).read().splitlines()
r = json.loads(lines[-1])
wall = total / (mhz * 1e6)
r["worker_wall_s"] = round(wall, 3)
r["worker_ran_s"] = round(run_ns / 1e9, 3)
r["worker_waited_s"] = round(wait_ns / 1e9, 3)   # runnable, but another task had the core
r["worker_busy_share"] = round(busy / total, 4) if total else 0
r["worker_busy_s"] = round(r["worker_busy_share"] * run_ns / 1e9, 4)
r["worker_rx_packets"] = rx
r["worker_busy_cycles_per_packet"] = round(r["worker_busy_s"] * mhz * 1e6 / rx) if rx else None
lines[-1] = json.dumps(r)
open(path, "w").write("\n".join(lines) + "\n")
PY
}

: >"$LAB_DIR/runs.jsonl"
: >"$LAB_DIR/checks.txt"
read -r -a CONFIG_LIST <<<"$CONFIGS"
echo "kernel-vs-sluiced: $ROUNDS rounds × ($CONFIGS) × (keep-alive, close), ${DURATION} s each, $CONNS connections"
for round in $(seq "$ROUNDS"); do
  # Rotate the order each round so that no configuration always runs first.
  n=${#CONFIG_LIST[@]}
  for k in $(seq 0 $((n - 1))); do
    config=${CONFIG_LIST[$(((k + round - 1) % n))]}
    case "$config" in
      nft)
        nft_up
        run_wrk nft keepalive "$round"
        run_wrk nft close "$round"
        nft_down
        echo "nft round $round: conntrack entries at the end $CT_COUNT, conntrack drop + insert_failed + early_drop $CT_DROPS" >>"$LAB_DIR/checks.txt"
        ;;
      sluiced-af_packet | sluiced-af_xdp)
        # One sluiced per test, so that its worker's counters (busy cycles) belong to that run.
        pmd=${config#sluiced-}
        for test in keepalive close; do
          sluiced_up "$pmd" "$round-$test"
          run_wrk "$config" "$test" "$round"
          sluiced_down
          attach_worker_counters
          echo "$config $test round $round: new_flows $(counter "$SLUICED_LOG" new_flows), forward_to_backend $(counter "$SLUICED_LOG" forward_to_backend), return_to_client $(counter "$SLUICED_LOG" return_to_client), drops $(drops "$SLUICED_LOG"), worker $(grep -o 'busy [0-9.]*%' "$SLUICED_LOG" | tail -1) of $(grep -o 'after [0-9.]* s' "$SLUICED_LOG" | tail -1), ran $(awk -v n="$SLUICED_RUN_NS" 'BEGIN { printf "%.1f", n / 1e9 }') s, waited for the core $(awk -v n="$SLUICED_WAIT_NS" 'BEGIN { printf "%.1f", n / 1e9 }') s, autogroup ${SLUICED_AUTOGROUP##*/}; $(grep '^port lan' "$SLUICED_LOG" | grep -o 'rx_missed=[0-9]* rx_no_mbuf=[0-9]*' | tr '\n' ' ')" >>"$LAB_DIR/checks.txt"
        done
        ;;
      *) echo "FAIL: unknown configuration $config (nft, sluiced-af_packet, sluiced-af_xdp)"; exit 1 ;;
    esac
  done
done
ELAPSED=$(($(date +%s) - STARTED))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
SLUICED_BUILT=$(date -u -r "$SLUICED" '+%Y-%m-%d %H:%M UTC')
cat "$LAB_DIR/checks.txt"

# --- report ------------------------------------------------------------------------------------
export CPU DPDK_VERSION SWIFT_VERSION COMMIT DIRTY LOAD_BEFORE LOAD_AFTER ELAPSED SLUICED_BUILT \
  ROUNDS DURATION CONNS SLUICED_IDLE SLUICED_TX_DRAIN_US SLUICED_NICE HOST_CPU LB_CPU CONFIGS
KERNEL=$(uname -r) NGINX_VERSION=$(nginx -v 2>&1 | sed 's/.*nginx\///') \
WRK_VERSION=$(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo unknown) \
NFT_VERSION=$(nft -v | awk '{ print $2 }') \
VIRT=$(lscpu 2>/dev/null | awk -F': *' '/^Hypervisor vendor/ { print "virtual machine (" $2 ")" }') \
"$PYTHON" - "$LAB_DIR/runs.jsonl" "$LAB_DIR/checks.txt" "$RESULTS" "$JSON" <<'PY'
import json, os, statistics, sys, datetime
runs_path, checks_path, md_path, json_path = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path)]
checks = open(checks_path).read().strip().splitlines()
E = os.environ
host, lb = f"cpu{E['HOST_CPU']}", f"cpu{E['LB_CPU']}"
TICKS = os.sysconf("SC_CLK_TCK")
configs = E["CONFIGS"].split()
tests = ("keepalive", "close")
med = statistics.median
summary = {}
for config in configs:
    for test in tests:
        rs = [r for r in runs if r["config"] == config and r["test"] == test]
        pb = [sum(r["per_backend"][i] for r in rs) for i in range(3)]
        pick = lambda key, c: round(med([r["cpu"][c][key] for r in rs]), 1)
        def lb_us(r):
            # The LB core's softirq (nft: all of its work; af_packet: the copy into the ring),
            # plus sluiced's worker busy time.
            secs = r["cpu"][lb]["softirq_ticks"] / TICKS + r.get("worker_busy_s", 0)
            return 1e6 * secs / r["requests"]
        summary[f"{config}/{test}"] = {
            "lb_cpu_us_per_request": round(med([lb_us(r) for r in rs]), 2),
            "lb_softirq_us_per_request": round(med([1e6 * r["cpu"][lb]["softirq_ticks"] / TICKS / r["requests"] for r in rs]), 2),
            "worker_busy_us_per_request": (round(med([1e6 * r["worker_busy_s"] / r["requests"] for r in rs]), 2)
                                           if all("worker_busy_s" in r for r in rs) else None),
            "worker_busy_cycles_per_packet": (round(med([r["worker_busy_cycles_per_packet"] for r in rs]))
                                              if all("worker_busy_s" in r for r in rs) else None),
            "rate_per_s": round(med([r["requests_per_s"] for r in rs]), 1),
            "every_round": [round(r["requests_per_s"]) for r in rs],
            "p50_ms": round(med([r["p50_ms"] for r in rs]), 3),
            "p99_ms": round(med([r["p99_ms"] for r in rs]), 3),
            "socket_errors": sum(sum(r["socket_errors"].values()) for r in rs),
            "non_2xx": sum(r["non_2xx"] for r in rs),
            "per_backend_requests": pb,
            "per_backend_share_pct": [round(100 * x / (sum(pb) or 1), 1) for x in pb],
            "cpu_pct": {c: {k: pick(k, c) for k in ("busy", "user", "system", "softirq", "steal")}
                        for c in (host, lb)},
        }
ratio = {f"{c}/{t}": round(summary[f"{c}/{t}"]["rate_per_s"] / summary[f"nft/{t}"]["rate_per_s"], 2)
         for c in configs if c != "nft" for t in tests}
# The same ratio taken within each round (neighbouring runs share the machine's load), then
# the median over rounds: less sensitive to load that drifts over the run.
def rate(c, t, rnd):
    return next(r["requests_per_s"] for r in runs if r["config"] == c and r["test"] == t and r["round"] == rnd)
rounds = sorted({r["round"] for r in runs})
ratio_in_round = {f"{c}/{t}": round(med([rate(c, t, k) / rate("nft", t, k) for k in rounds]), 2)
                  for c in configs if c != "nft" for t in tests}
for key, v in ratio_in_round.items():
    summary[key]["ratio_to_nft_median_of_rounds"] = v
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
command = "bench/kernel-vs-sluiced.sh"
env = {
    "date": date, "commit": E["COMMIT"] + E["DIRTY"], "sluiced_built": E["SLUICED_BUILT"],
    "cpu": E["CPU"], "cpus": os.cpu_count(), "kernel": E["KERNEL"], "dpdk": E["DPDK_VERSION"],
    "swift": E["SWIFT_VERSION"], "nginx": E["NGINX_VERSION"], "wrk": E["WRK_VERSION"],
    "nftables": E["NFT_VERSION"], "virtualisation": E.get("VIRT") or "unknown",
    "load_before": E["LOAD_BEFORE"], "load_after": E["LOAD_AFTER"], "elapsed_s": int(E["ELAPSED"]),
}
params = {"rounds": int(E["ROUNDS"]), "duration_s": int(E["DURATION"]), "connections": int(E["CONNS"]),
          "wrk_threads": 1, "configs": configs, "sluiced_idle": E["SLUICED_IDLE"],
          "sluiced_tx_drain_us": int(E["SLUICED_TX_DRAIN_US"]), "sluiced_autogroup_nice": int(E["SLUICED_NICE"]),
          "host_cpu": int(E["HOST_CPU"]), "lb_cpu": int(E["LB_CPU"]), "backends": 3}
json.dump({"command": command, "environment": env, "parameters": params, "summary": summary,
           "ratio_to_nft": ratio, "ratio_to_nft_median_of_rounds": ratio_in_round, "runs": runs, "checks": checks}, open(json_path, "w"), indent=1)
json_file = os.path.basename(json_path)

S = summary
def cell(config, test):
    x = S[f"{config}/{test}"]
    r = "—" if config == "nft" else f"**{ratio[f'{config}/{test}']:.2f}** ({ratio_in_round[f'{config}/{test}']:.2f})"
    return f"**{x['rate_per_s']:.0f}** | {r} | {x['p50_ms']:.2f} / {x['p99_ms']:.2f} | {' / '.join(map(str, x['every_round']))}"
rows = "\n".join(f"| {c} | {cell(c, 'keepalive')} | {cell(c, 'close')} |" for c in configs)
def cpu_row(config, test):
    x = S[f"{config}/{test}"]["cpu_pct"]
    return (f"| {config} | {test} | {x[host]['busy']:.0f}% ({x[host]['softirq']:.0f}% softirq) | "
            f"{x[lb]['busy']:.0f}% ({x[lb]['user']:.0f}% user, {x[lb]['system']:.0f}% system, {x[lb]['softirq']:.0f}% softirq) | "
            f"{x[host]['steal']:.0f}% / {x[lb]['steal']:.0f}% |")
def spread_row(config, test):
    x = S[f"{config}/{test}"]
    return (f"| {config} | {test} | {' / '.join(map(str, x['per_backend_requests']))} | "
            f"{' / '.join(f'{v:.1f}' for v in x['per_backend_share_pct'])} | {x['socket_errors']} | {x['non_2xx']} |")
def cost_row(config, test):
    x = S[f"{config}/{test}"]
    w = "—" if x["worker_busy_us_per_request"] is None else f"{x['worker_busy_us_per_request']:.1f} ({x['worker_busy_cycles_per_packet']} cycles/packet)"
    return f"| {config} | {test} | **{x['lb_cpu_us_per_request']:.1f}** | {x['lb_softirq_us_per_request']:.1f} | {w} |"
cost_rows = "\n".join(cost_row(c, t) for t in tests for c in configs)
cpu_rows = "\n".join(cpu_row(c, t) for t in tests for c in configs)
spread_rows = "\n".join(spread_row(c, t) for t in tests for c in configs)
hc, lc = params["host_cpu"], params["lb_cpu"]
md = f"""# The kernel alternative: nftables DNAT vs sluiced, HTTP through the same veths

Measured by `{command}` on {date} at commit `{env['commit']}` (sluiced built {env['sluiced_built']}),
{params['rounds']} interleaved rounds × {len(configs)} configurations × 2 tests, {params['duration_s']} s per wrk run, {env['elapsed_s']} s in all.
CPU: {env['cpu']}, {env['cpus']} vCPUs, {env['virtualisation']}; kernel {env['kernel']};
DPDK {env['dpdk']} (Debian); {env['swift']}; nginx {env['nginx']}, wrk {env['wrk']}, nftables {env['nftables']}.
Load average before / after: {env['load_before']} / {env['load_after']} (other work on the machine shows here
and in the CPU table below). Every figure is also in `{json_file}`, each run included.

wrk from the client namespace to `http://192.0.2.10/` (a 10-byte static body from one of three
nginx backends), `-t1 -c{params['connections']} -d{params['duration_s']}s --latency`, pinned to CPU {hc}:

| config | keep-alive requests/s (median) | ÷ nft | p50 / p99 ms | every round | `Connection: close` connections/s (median) | ÷ nft | p50 / p99 ms | every round |
|---|---:|---:|---|---|---:|---:|---|---|
{rows}

÷ nft: the ratio of the medians, and in brackets the median of the ratios taken within each
round (neighbouring runs see similar load from the rest of the machine).

- **nft**: Linux nftables DNAT in the LB namespace, kube-proxy's nftables layout
  (`ip daddr . meta l4proto . th dport vmap @service-ips` → `numgen random mod 3 vmap` →
  `dnat to 198.51.100.1x:8080`), conntrack, forwarding, the LB namespace as the backends' gateway.
- **sluiced-af_packet / sluiced-af_xdp**: release build, `dnat` mode, Maglev over the same three
  backends (weight 1), one worker on lcore {lc} (idle mode `{params['sluiced_idle']}`, `tx_drain_us: {params['sluiced_tx_drain_us']}`), main lcore {hc}; the same two
  veth ends through `net_af_packet` (TPACKET rings: the kernel copies every frame into the ring
  and out of it) or `net_af_xdp` (an XDP program on each veth redirects frames to an AF_XDP
  socket; copy mode, since veth has no zero-copy).
- This machine is shared with other work (see the load average). nft's load balancing runs in
  softirq, ahead of every task; sluiced's worker is a task, so sluiced runs in its own session
  whose scheduler autogroup is weighted as nice {E['SLUICED_NICE']} (autogroup scheduling is on here: plain
  nice does not act across sessions). wrk and nginx get no such help in any configuration. The
  CPU time sluiced's worker actually got is in the JSON (`worker_ran_s` of `worker_wall_s`).
- keep-alive: {params['connections']} connections opened once, requests/s. `Connection: close`: nginx closes
  after each response, wrk opens a new connection per request, so requests/s = connections/s
  through the LB (SYN, request, FINs: a new conntrack entry / flow each time).
- Latency is wrk's per-request latency; the columns give the median over rounds of each round's
  p50 / p99.

CPU placement and shares (median over rounds of /proc/stat deltas during each wrk run). CPU {hc}
carries wrk, the three nginx workers and the receive processing of the client's and backends'
veths (taskset; RPS on their veths); CPU {lc} is the load balancer's: the receive processing of
the LB namespace's two veth ends (RPS) — for nft that is all of its work: conntrack, NAT and
forwarding run in that softirq — and sluiced's worker. net_af_xdp is the exception: the XDP
program runs when the peer transmits (veth's NAPI on the sending CPU), before RPS can steer
anything, so its redirect-and-copy runs on CPU {hc}.

| config | test | CPU {hc} busy (client + backends) | CPU {lc} busy (load balancer) | steal CPU {hc} / {lc} |
|---|---|---|---|---|
{cpu_rows}

What the load balancer itself costs, per request (median over rounds): the LB core's softirq
time (for nft all of its work; for sluiced-af_packet the kernel's copy into the RX ring) plus
sluiced's worker busy time over the requests wrk completed. The worker's busy time is the share
of its loop's wall-clock cycles spent in polls that found packets (`busy_cycles` /
`total_cycles`, the `sendto` of its transmits included) times the CPU time the thread ran
(schedstat), since on a shared core preemption stretches busy and idle polls alike; the
cycles/packet are that time in TSC cycles over the packets the worker received (both directions). For sluiced-af_xdp the receive side's
redirect and copy run on CPU {hc} (see above) and are not in this figure.

| config | test | LB CPU µs per request | of which softirq on CPU {lc} | sluiced worker busy µs per request |
|---|---|---:|---:|---|
{cost_rows}

For nft, the LB core's user and system time is not the load balancer's (nft has no process):
it is other work on this shared machine, competing with the softirq for that core.

Per-backend spread, from the nginx access logs (all rounds together):

| config | test | requests b1 / b2 / b3 | share % | wrk socket errors | non-2xx |
|---|---|---|---|---:|---:|
{spread_rows}

With keep-alive only {params['connections']} connections are balanced and each keeps its backend, so the request
spread follows where those few connections landed; with `Connection: close` every request is a
new balancing decision (nft: `numgen random`; sluiced: Maglev on the 5-tuple hash).

Checks (per round; sluiced's final counters, nft's conntrack statistics):
""" + "\n".join(f"- {c.strip()}" for c in checks) + "\n"
# The analysis below the figures is written by hand; keep it across runs.
try:
    old = open(md_path).read()
    if "\n## Analysis" in old:
        md += old[old.index("\n## Analysis"):]
except FileNotFoundError:
    pass
open(md_path, "w").write(md)
print(md.split("\n## Analysis")[0])
PY
echo "results: $RESULTS, $JSON (${ELAPSED} s)"
