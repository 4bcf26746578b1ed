#!/usr/bin/env bash
# Load-balancing fast path, per core: sluiced on one worker core (lcore 1; main lcore 0, no
# hugepages) receives 64-byte TCP packets to a VIP from a realistic in-process source and
# forwards them to backends on a second port, measured next to dpdk-testpmd io forwarding from
# the same source to the same sink in the same run (the ceiling: what the source and sink cost).
#
#   source: net_pcap0,rx_pcap=FILE,infinite_rx=1 — a pcap of one packet per flow to VIP:80,
#           replayed forever from memory (the PMD copies every packet into a fresh mbuf; the
#           pool needs more mbufs than the file has packets)
#   sink:   net_null0,no-rx=1 — the backends' port: TX frees and counts, RX is always empty
#           (still polled, as a real second port would be); backends are static neighbors
#
# Cases (run in this order each round, ROUNDS interleaved rounds):
#   tp-ack-1k    testpmd io, pcap of FLOWS_SMALL ACKs (distinct flows)          ceiling for the next two
#   dnat-1k      sluiced dnat, established flows: the same pcap
#   vxlan-1k     sluiced vxlan (DNAT + VXLAN to the node's VTEP), the same pcap
#   tp-ack-1m    testpmd io, pcap of FLOWS_LARGE ACKs                            ceiling for the next two
#   dnat-1m      sluiced dnat, established flows: the same pcap
#   vxlan-1m     sluiced vxlan, the same pcap
#   tp-syn-1m    testpmd io, pcap of NEW_FLOWS SYNs, each from a new source     ceiling for the next
#   new-flows    sluiced dnat, new flows only: the first pass over that pcap
#
# Established flows: the first pass over the pcap creates each flow's entries (an ACK that
# opens a flow is taken up mid-stream as established) and every later pass hits them; the rate
# is measured after a warm-up of FLOWS + WARMUP packets, for MEASURE wall-clock seconds.
# New flows: only the first pass is new flows (a second pass would hit the entries the first
# created), so the rate is measured over packets 5 %..95 % of the first pass: every packet a
# SYN from a source never seen, each inserting a forward and a reverse entry. The table
# (flows.capacity FLOW_CAPACITY) fills from 0 to 2 × NEW_FLOWS entries while it is measured.
#
# How the rate is taken: bench/telemetry-window.py samples, through the process's DPDK
# telemetry socket, port 0's ipackets together with the forwarding thread's run and wait time
# (/proc/PID/task/TID/schedstat). Mpps on-CPU = packets in the window / CPU time the forwarding
# thread ran in it; cycles/packet = TSC Hz × that CPU time / packets. The CPU share (run / (run
# + runnable-but-waiting)) shows how much of the core the thread got: this is a small shared
# machine. Mempool: data_room 1792 for every run (sluiced and testpmd alike), so that without
# hugepages two mbufs share a 4 KiB page (with the default 2176 a 1.1M-mbuf pool needs ~4.5 GB).
# Results: bench/results/lb-fastpath.md. Reported, never asserted: the script fails only when a
# run produces no number or its counters show it did not do what the case says.
#
# Usage: bench/lb-fastpath.sh [--no-build]
#        ROUNDS=3 MEASURE=4 FLOWS_SMALL=1000 FLOWS_LARGE=1000000 NEW_FLOWS=1000000
#        WARMUP=1000000 FLOW_CAPACITY=4194304 BACKENDS=8 SCRATCH=.build-lbbench
#        CASES="tp-ack-1k dnat-1k ..." (a subset, in that order)   RESULTS=bench/results/lb-fastpath.md
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3}
MEASURE=${MEASURE:-4}
FLOWS_SMALL=${FLOWS_SMALL:-1000}
FLOWS_LARGE=${FLOWS_LARGE:-1000000}
NEW_FLOWS=${NEW_FLOWS:-1000000}
WARMUP=${WARMUP:-1000000}
FLOW_CAPACITY=${FLOW_CAPACITY:-4194304}
BACKENDS=${BACKENDS:-8}
SCRATCH=${SCRATCH:-.build-lbbench}
ALL_CASES="tp-ack-1k dnat-1k vxlan-1k tp-ack-1m dnat-1m vxlan-1m tp-syn-1m new-flows"
CASES=${CASES:-$ALL_CASES}
RESULTS=${RESULTS:-bench/results/lb-fastpath.md}
SLUICED="$SCRATCH/release/sluiced"
TESTPMD=${TESTPMD:-dpdk-testpmd}
PYTHON=/usr/bin/python3   # Debian's, with python3-scapy
VIP=192.0.2.10
VIP_MAC=02:00:00:00:5e:10
DATA_ROOM=1792
PREFIX="sllb$$"

if [ "${1:-}" != "--no-build" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product sluiced 2>&1 | grep -E "error|Build" | tail -2
fi
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
command -v "$TESTPMD" >/dev/null || { echo "FAIL: $TESTPMD not found (Debian package dpdk-dev)"; exit 1; }
"$PYTHON" -c 'import scapy' 2>/dev/null || { echo "FAIL: $PYTHON has no scapy (Debian package python3-scapy)"; exit 1; }
bench_workdir sluice-lbbench
# What is measured: the commit now, and whether the binary is older than the sources.
bench_environment
STALE=$(find Sources CShims Package.swift -type f -newer "$SLUICED" 2>/dev/null | head -1)
STALE_NOTE=""
if [ -n "$STALE" ]; then
  echo "warning: $SLUICED is older than $STALE (rebuild: run without --no-build)"
  STALE_NOTE="; **older than $STALE: not the code of this commit**"
fi

# ---- pcaps: one 60-byte frame (64 on the wire) per flow, flow i from 10.0.0.1 + i ----------------
# The template is built by scapy; per flow only the source address and port change, with both
# checksums recomputed (scapy for every one of a million packets would take minutes); the first
# frame is checked against scapy's own checksums.
make_pcap() { # FILE FLOWS FLAGS
  "$PYTHON" - "$1" "$2" "$3" "$VIP" "$VIP_MAC" <<'PY'
import struct, sys
from scapy.all import Ether, IP, TCP, Raw, raw, rdpcap
path, flows, flags, vip, vip_mac = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
# The template with the varying fields (source address and port, both checksums) zeroed.
t = bytearray(raw(Ether(src="02:00:00:00:00:01", dst=vip_mac) / IP(src="0.0.0.0", dst=vip, ttl=64, id=0, chksum=0)
                  / TCP(sport=0, dport=80, flags=flags, seq=1000, ack=2000 if "A" in flags else 0, window=64240, chksum=0)
                  / Raw(b"\0" * 6)))
assert len(t) == 60
fold = lambda s: fold((s & 0xFFFF) + (s >> 16)) if s >> 16 else s
sum16 = lambda b: sum(struct.unpack("!%dH" % (len(b) // 2), b))
ip_base = sum16(t[14:34])
tcp_base = sum16(t[30:34]) + 6 + (len(t) - 34) + sum16(t[34:60])   # pseudo-header + TCP (+ padding)
with open(path, "wb") as out:
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    record = struct.pack("<IIII", 0, 0, 60, 60)
    for i in range(flows):
        src, sport = 0x0A000001 + i, 1024 + (i * 40503) % 64000
        t[26:30] = struct.pack("!I", src)
        t[34:36] = struct.pack("!H", sport)
        t[24:26] = struct.pack("!H", ~fold(ip_base + (src >> 16) + (src & 0xFFFF)) & 0xFFFF)
        t[50:52] = struct.pack("!H", ~fold(tcp_base + (src >> 16) + (src & 0xFFFF) + sport) & 0xFFFF)
        out.write(record)
        out.write(t)
p = rdpcap(path, count=1)[0]
q = Ether(raw(p))
del q[IP].chksum, q[TCP].chksum
assert raw(Ether(raw(q))) == raw(p), "generated checksums differ from scapy's"
PY
}
PCAP_ACK_SMALL="$WORK/ack-$FLOWS_SMALL.pcap"
PCAP_ACK_LARGE="$WORK/ack-$FLOWS_LARGE.pcap"
PCAP_SYN="$WORK/syn-$NEW_FLOWS.pcap"
case " $CASES " in *-1k\ *) make_pcap "$PCAP_ACK_SMALL" "$FLOWS_SMALL" A ;; esac
case " $CASES " in *\ tp-ack-1m\ *|*\ dnat-1m\ *|*\ vxlan-1m\ *) make_pcap "$PCAP_ACK_LARGE" "$FLOWS_LARGE" A ;; esac
case " $CASES " in *\ tp-syn-1m\ *|*\ new-flows\ *) make_pcap "$PCAP_SYN" "$NEW_FLOWS" S ;; esac

# ---- configurations ----------------------------------------------------------------------------
# config FILE MODE PCAP FLOWS: port 0 the pcap (VIP side), port 1 net_null (backends' side).
config() {
  local file=$1 mode=$2 pcap=$3 flows=$4 i
  {
    cat <<YAML
ports:
  - { name: pcap0, device: "net_pcap0,rx_pcap=$pcap,infinite_rx=1", mac: "$VIP_MAC", addresses: ["192.0.2.2/24"] }
  - { name: null1, device: "net_null0,no-rx=1", mac: "02:00:00:00:5e:11", addresses: ["198.51.100.1/24"] }
workers: { lcores: [1], main_lcore: 0, mode: pipeline, idle: { mode: poll } }
mempool: { mbufs: $(mbufs "$flows"), cache_size: 256, data_room: $DATA_ROOM }
flows: { capacity: $FLOW_CAPACITY, hash_seed: "6c62656e63680000000000000000a5a5" }
vips:
  - { address: $VIP, port: pcap0 }
services:
  - name: web
    vip: $VIP
    protocol: tcp
    port: 80
    mode: $mode
    backends:
YAML
    for i in $(seq 1 "$BACKENDS"); do
      if [ "$mode" = vxlan ]; then
        printf '      - { address: 10.244.%d.10, port: 8080, vtep: 198.51.100.%d, vni: %d, inner_mac: "02:00:00:00:0c:%02x" }\n' \
          "$i" $((100 + i)) $((4096 + i)) "$i"
      else
        printf '      - { address: 198.51.100.%d, port: 8080 }\n' $((100 + i))
      fi
    done
    echo "neighbors:"   # the backends (dnat) or their nodes' VTEPs (vxlan): no ARP on net_null
    for i in $(seq 1 "$BACKENDS"); do
      printf '  - { address: 198.51.100.%d, mac: "02:00:00:00:0b:%02x" }\n' $((100 + i)) "$i"
    done
  } >"$file"
}
# mbufs FLOWS: the pool holds every packet of the pcap plus what rings, caches and bursts use.
mbufs() { if [ "$1" -le 16384 ]; then echo 32767; else echo $(($1 + 114111)); fi; }
# memory FLOWS: -m for that pool (2 mbufs per 4 KiB page without hugepages) and the rest.
memory() { if [ "$1" -le 16384 ]; then echo 1024; else echo $(( ($1 + 114111) / 2 * 4096 / 1048576 + 768 )); fi; }

# case_* NAME: the pcap, flows and program of each case.
case_pcap() { case $1 in *-1k) echo "$PCAP_ACK_SMALL" ;; *-syn-1m|new-flows) echo "$PCAP_SYN" ;; *) echo "$PCAP_ACK_LARGE" ;; esac; }
case_flows() { case $1 in *-1k) echo "$FLOWS_SMALL" ;; *-syn-1m|new-flows) echo "$NEW_FLOWS" ;; *) echo "$FLOWS_LARGE" ;; esac; }
case_ceiling() { case $1 in dnat-1k|vxlan-1k) echo tp-ack-1k ;; dnat-1m|vxlan-1m) echo tp-ack-1m ;; new-flows) echo tp-syn-1m ;; esac; }
for c in $CASES; do
  case " $ALL_CASES " in *" $c "*) ;; *) echo "FAIL: unknown case $c (cases: $ALL_CASES)"; exit 1 ;; esac
  case $c in
    dnat-*|new-flows) config "$WORK/$c.yaml" dnat "$(case_pcap "$c")" "$(case_flows "$c")" ;;
    vxlan-*) config "$WORK/$c.yaml" vxlan "$(case_pcap "$c")" "$(case_flows "$c")" ;;
  esac
done

EAL_COMMON=(--no-huge --no-pci -l 0,1 --main-lcore 0 --log-level lib.eal:error)
TESTPMD_COMMON=(--no-mlockall --mbuf-size=$DATA_ROOM --forward-mode=io --nb-cores=1 --auto-start --stats-period 1)

# run_case NAME ROUND: one run; appends "MPPS SHARE CYCLES CHECK" to $WORK/NAME.results.
run_case() {
  local c=$1 round=$2 flows pcap log prefix pid window rc=0 others
  flows=$(case_flows "$c"); pcap=$(case_pcap "$c")
  log="$WORK/$c.$round.log"; prefix="$PREFIX-$c-$round"
  others=$(pgrep -f 'dpdk-testpmd|release/sluiced' | grep -v -x -F -f <(printf '%s\n' "${PIDS[@]:-0}") | wc -l || true)
  case $c in
    tp-*) "$TESTPMD" "${EAL_COMMON[@]}" -m "$(memory "$flows")" --file-prefix "$prefix" \
            --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev "net_null0,no-rx=1" -- \
            "${TESTPMD_COMMON[@]}" --total-num-mbufs="$(mbufs "$flows")" >"$log" 2>&1 & ;;
    *) "$SLUICED" --config "$WORK/$c.yaml" -- "${EAL_COMMON[@]}" -m "$(memory "$flows")" --file-prefix "$prefix" \
            >"$log" 2>&1 & ;;
  esac
  pid=$!
  PIDS+=("$pid")
  # Sample once the ports are started (before, ipackets counts the pcap being loaded).
  case $c in tp-*) window=(--ready-text "start packet forwarding") ;; *) window=(--ready-text "sluiced: running") ;; esac
  if [ "$c" = new-flows ]; then
    window+=(--from $((flows / 20)) --to $((flows - flows / 20)) --interval 0.005)
  else
    window+=(--from $((flows + WARMUP)) --seconds "$MEASURE" --interval 0.02)
  fi
  # The sampler runs on the main lcore's CPU, away from the forwarding thread.
  taskset -c 0 "$PYTHON" bench/telemetry-window.py "$pid" "/var/run/dpdk/$prefix/dpdk_telemetry.v2" \
    --ready-log "$log" "${window[@]}" >"$log.window" 2>"$log.window-err" || rc=$?
  kill -INT "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null && [ $waited -lt 200 ]; do sleep 0.05; waited=$((waited + 1)); done
  if [ $rc -ne 0 ]; then echo "FAIL: $c, round $round: $(cat "$log.window-err")"; tail -20 "$log"; exit 1; fi
  wait "$pid" || { echo "FAIL: $c, round $round: exited $? (log: $log)"; tail -20 "$log"; exit 1; }

  # PACKETS RUN_NS WAIT_NS WALL_NS FIRST LAST
  local packets run wait mpps share check rx fwd new stateless dropped
  read -r packets run wait _ _ _ <"$log.window"
  mpps=$(awk -v n="$packets" -v r="$run" 'BEGIN { printf "%.3f", n * 1e3 / r }')
  share=$(awk -v r="$run" -v w="$wait" 'BEGIN { printf "%.0f", 100 * r / (r + w) }')
  [ "${c#tp-}" != "$c" ] || TSC=$(tsc_mhz "$log")
  if [ "${c#tp-}" != "$c" ]; then
    check="rx $(testpmd_packets "$log")"
  else
    rx=$(counter "$log" rx_packets); fwd=$(counter "$log" forward_to_backend); new=$(counter "$log" new_flows)
    stateless=$(counter "$log" stateless_forwards); dropped=$(drops "$log")
    check="rx $rx, forward_to_backend $fwd, new_flows $new, stateless $stateless, drops $dropped"
    # The case did what it says: everything forwarded; established: one entry per flow, all
    # created in the warm-up pass; new flows: every packet of the window created one.
    local bad=""
    [ "$fwd" = "$rx" ] && [ "$dropped" = 0 ] && [ "$stateless" = 0 ] || bad="not every packet was forwarded statefully"
    if [ "$c" = new-flows ]; then
      local last; read -r _ _ _ _ _ last <"$log.window"
      [ "$new" -ge "$last" ] || bad="new_flows $new < packets of the first pass measured ($last)"
    else
      [ "$new" = "$flows" ] || bad="new_flows $new != $flows flows"
    fi
    [ -z "$bad" ] || { echo "FAIL: $c, round $round: $bad ($check; log: $log)"; exit 1; }
    check+=", busy_cycles/rx_packets (whole run, wall TSC) $(awk -v b="$(counter "$log" busy_cycles)" -v r="$rx" 'BEGIN { printf "%.0f", b / r }')"
  fi
  echo "$mpps $share $packets $others $check" >>"$WORK/$c.results"
  printf '  %-10s %7s Mpps on-CPU  CPU share %3s%%  window %9s packets  (%s)\n' "$c" "$mpps" "$share" "$packets" "$check"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date +%s)
n=$(echo $CASES | wc -w)
echo "lb fast path: $ROUNDS rounds of $n runs; forwarding core = lcore 1, main = lcore 0; window ${MEASURE}s after a warm-up"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  for c in $CASES; do run_case "$c" "$round"; done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(( $(date +%s) - STARTED ))

# ---- results ----------------------------------------------------------------------------------
col() { awk -v k="$2" '{ print $k }' "$WORK/$1.results"; }
med() { median $(col "$1" "$2"); }
every() { col "$1" "$2" | paste -sd/ | sed 's|/| / |g'; }
describe() {
  case $1 in
    tp-ack-1k) echo "\`dpdk-testpmd\` io | $FLOWS_SMALL ACKs (distinct flows) |" ;;
    dnat-1k) echo "sluiced \`dnat\`, established | $FLOWS_SMALL flows (ACKs) |" ;;
    vxlan-1k) echo "sluiced \`vxlan\`, established | $FLOWS_SMALL flows (ACKs) |" ;;
    tp-ack-1m) echo "\`dpdk-testpmd\` io | $FLOWS_LARGE ACKs (distinct flows) |" ;;
    dnat-1m) echo "sluiced \`dnat\`, established | $FLOWS_LARGE flows (ACKs) |" ;;
    vxlan-1m) echo "sluiced \`vxlan\`, established | $FLOWS_LARGE flows (ACKs) |" ;;
    tp-syn-1m) echo "\`dpdk-testpmd\` io | $NEW_FLOWS SYNs (distinct sources) |" ;;
    new-flows) echo "sluiced \`dnat\`, new flows only | first pass over $NEW_FLOWS SYNs |" ;;
  esac
}
TABLE=""
SUMMARY=""
for c in $CASES; do
  m=$(med "$c" 1); ceiling=$(case_ceiling "$c")
  r="—"
  if [ -n "$ceiling" ] && [ -f "$WORK/$ceiling.results" ]; then r="**$(ratio "$m" "$(med "$ceiling" 1)")**"; fi
  cyc=$(awk -v mhz="${TSC:-0}" -v mpps="$m" 'BEGIN { printf "%.0f", (mpps > 0 ? mhz / mpps : 0) }')
  TABLE+="| $c | $(describe "$c") **$m** | $cyc | $r | $(every "$c" 1) | $(col "$c" 2 | sed 's/$/%/' | paste -sd' ') |"$'\n'
  SUMMARY+="$(printf '| %s | %s | %s | %s |' "$c" "$m" "$cyc" "${r//\*/}")"$'\n'
done
CHECKS=""
for c in $CASES; do CHECKS+="- $c, last round: $(tail -1 "$WORK/$c.results" | cut -d' ' -f5-)"$'\n'; done
OTHERS=$(cat "$WORK"/*.results | awk '{ print $4 }' | sort -n | tail -1)

MODEL=$(lscpu | awk -F: '/^Model:/ { gsub(/ /, "", $2); print $2 }')
FAMILY=$(lscpu | awk -F: '/^CPU family:/ { gsub(/ /, "", $2); print $2 }')
CACHES=$(lscpu | awk -F: '/^L[123]d? cache:|^L[23] cache:/ { gsub(/^ +/, "", $2); printf "%s%s %s", sep, $1, $2; sep = ", " }')
mkdir -p "$(dirname "$RESULTS")"
cat >"$RESULTS" <<MD
# Load-balancing fast path, per core

Measured by \`bench/lb-fastpath.sh\` on $(date -u +%Y-%m-%d) at commit \`$COMMIT\`$DIRTY
(sluiced built $(date -u -r "$SLUICED" '+%Y-%m-%d %H:%M UTC')$STALE_NOTE), $ROUNDS interleaved rounds, $ELAPSED s in all.
One forwarding core (lcore 1; main lcore 0), \`--no-huge --no-pci\`, 64-byte TCP frames to a VIP.
CPU: $CPU (family $FAMILY model $MODEL), $(nproc) vCPUs, TSC ${TSC:-?} MHz; $CACHES;
virtual machine, no hardware performance counters. DPDK $DPDK_VERSION (Debian); $SWIFT_VERSION.
Load average before / after: $LOAD_BEFORE / $LOAD_AFTER; at most $OTHERS other DPDK process(es)
(testpmd / sluiced) seen running at the start of a run.

| case | what | source | Mpps on-CPU (median) | cycles/packet | ÷ testpmd, same pcap | Mpps on-CPU, every round | CPU share, every round |
|---|---|---|---:|---:|---:|---|---|
$TABLE
Per-core goals in issue 3: ≥ 10 Mpps with 1M established flows, ≥ 4 Mpps of new flows; published
per-core figures: Katran 5.2 Mpps (1k flows), VPP lb ~3 Mpps (1M flows), DPVS 2.9 Mpps, Maglev ~2.4 Mpps.

Checks (sluiced's final counters; every run of every round is checked the same way, the script
stops on a run that did not forward every packet statefully or created other than one entry per
flow):
$CHECKS
## What is measured

- Source: \`net_pcap0,rx_pcap=FILE,infinite_rx=1\`: a pcap of one 60-byte frame per flow (flow i
  from 10.0.0.1 + i, source port from i; to $VIP:80, destination MAC the VIP's), replayed forever
  from memory; the PMD copies each packet into a fresh mbuf, which is much of the source's cost.
  Sink: \`net_null0,no-rx=1\` holding the $BACKENDS backends (static \`neighbors\`; in vxlan mode
  pods 10.244.i.10 behind VTEPs 198.51.100.10i). The two ports are polled in both programs.
- Established flows: an ACK per flow. The first pass over the pcap creates each flow (an ACK
  that opens a flow is taken up mid-stream as established) and its reverse entry; the window
  opens after a warm-up of flows + $WARMUP packets and lasts $MEASURE s of wall clock.
- New flows: a SYN per flow, each from an address never seen. Only the first pass is new flows
  (a second would hit the entries the first made), so the window is packets 5 %..95 % of that
  pass: each packet is a flow-table miss, a Maglev pick, a forward and a reverse insert. The
  table (\`flows.capacity: $FLOW_CAPACITY\`) goes from 0 to 2 × $NEW_FLOWS entries while measured;
  the window is $((NEW_FLOWS * 9 / 10)) packets, a fraction of a second, sampled every 5 ms.
- Rates: \`bench/telemetry-window.py\` samples port 0's \`ipackets\` through the process's DPDK
  telemetry socket with the forwarding thread's run and wait time from
  \`/proc/PID/task/TID/schedstat\` (kernel-accounted, at most one tick old). Mpps on-CPU = packets
  in the window / time the thread ran in it; cycles/packet = TSC cycles in that time / packets;
  CPU share = run / (run + runnable-but-waiting). On-CPU rates are what the loop does per second
  of core it gets; on this shared 2-vCPU machine the thread also waits for its core, and a
  neighbour on the same core also evicts its caches, so single runs vary: the rounds show by how
  much. The ratio is the median of the case over the median of its testpmd run on the same pcap.
- Mempool: \`data_room: $DATA_ROOM\` (testpmd \`--mbuf-size=$DATA_ROOM\`) for every run: without
  hugepages a pool object may not cross a 4 KiB page, and DPDK pads objects to an odd number of
  cache lines, so the default 2176 takes a whole page per mbuf (a 1.1M-mbuf pool would need
  ~4.5 GB); 1792 fits two per page. Pools of pcap packets + 114111 mbufs (32767 for 1k flows).

Commands (\`P\` a per-run file prefix; \`C.yaml\` as the script writes it; \`M\` = $(memory "$FLOWS_LARGE") for
1M-packet pcaps, 1024 otherwise; \`N\` = $(mbufs "$FLOWS_LARGE") or $(mbufs "$FLOWS_SMALL")):

\`\`\`sh
bench/lb-fastpath.sh        # all of it; ROUNDS=$ROUNDS MEASURE=$MEASURE FLOWS_SMALL=$FLOWS_SMALL FLOWS_LARGE=$FLOWS_LARGE NEW_FLOWS=$NEW_FLOWS
dpdk-testpmd ${EAL_COMMON[*]} -m M --file-prefix P \\
  --vdev net_pcap0,rx_pcap=FILE.pcap,infinite_rx=1 --vdev net_null0,no-rx=1 -- \\
  ${TESTPMD_COMMON[*]} --total-num-mbufs=N
sluiced --config C.yaml -- ${EAL_COMMON[*]} -m M --file-prefix P
bench/telemetry-window.py PID /var/run/dpdk/P/dpdk_telemetry.v2 --from FLOWS+$WARMUP --seconds $MEASURE
bench/telemetry-window.py PID /var/run/dpdk/P/dpdk_telemetry.v2 --from N/20 --to N-N/20   # new flows
\`\`\`

The sluiced configuration of \`dnat-1m\` (vxlan: \`mode: vxlan\`, backends with \`vtep\`, \`vni\`, \`inner_mac\`):

\`\`\`yaml
$(sed "s|$WORK/||" "$WORK/dnat-1m.yaml" 2>/dev/null || sed "s|$WORK/||" "$WORK/$(echo $CASES | tr ' ' '\n' | grep -v '^tp-' | head -1).yaml")
\`\`\`
MD

printf '\n| case (medians of %s rounds) | Mpps on-CPU | cycles/packet | ÷ testpmd |\n|---|---:|---:|---:|\n%s' "$ROUNDS" "$SUMMARY"
echo "-> $RESULTS"
