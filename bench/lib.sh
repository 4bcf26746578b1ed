# Helpers shared by the bench/ scripts that run sluiced and dpdk-testpmd side by side on one
# forwarding core (EAL lcore 1, thread `rte-worker-1`; main lcore 0). Source it from bash after
# `cd` to the repository root; it defines functions and nothing runs.
#
# Conventions: PREFIX is the script's DPDK --file-prefix stem (runs use PREFIX-something);
# WORK, its temporary directory; PIDS, the processes to stop on exit.

# bench_workdir STEM: makes WORK (a fresh temporary directory) and sets the EXIT trap that stops
# every process in PIDS (SIGINT, then SIGKILL), removes the DPDK runtime directories
# /var/run/dpdk/$PREFIX-* and, unless KEEP_BENCH_DIR is set, WORK.
bench_workdir() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup() {
  local rc=$?
  for pid in "${PIDS[@]:-}"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -INT "$pid" 2>/dev/null || true; fi
  done
  sleep 0.5
  for pid in "${PIDS[@]:-}"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  rm -rf /var/run/dpdk/"$PREFIX"-* 2>/dev/null || true
  [ -z "${KEEP_BENCH_DIR:-}" ] && rm -rf "$WORK"
  exit $rc
}

# run_for SECONDS LOG CMD...: run CMD in the background, SIGINT after SECONDS, wait for it.
# LOG.schedstat gets the forwarding thread's "RUN_NS WAIT_NS" as it ended.
run_for() {
  local seconds=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  sleep "$seconds"
  worker_schedstat "$pid" >"$log.schedstat"
  kill -INT "$pid" 2>/dev/null || true
  # The forwarding thread keeps running until the stop reaches it: sample its CPU time until it
  # is gone, so that the time matches the final packet count.
  local waited=0 sample
  while kill -0 "$pid" 2>/dev/null && [ $waited -lt 1000 ]; do
    sample=$(worker_schedstat "$pid")
    [ "$sample" != "0 0" ] && echo "$sample" >"$log.schedstat"
    sleep 0.01
    waited=$((waited + 1))
  done
  wait "$pid" || { echo "FAIL: $* exited $? (log: $log)"; tail -20 "$log"; exit 1; }
}

# worker_schedstat PID: "RUN_NS WAIT_NS" of the process's forwarding thread (EAL lcore 1).
worker_schedstat() {
  local t
  for t in /proc/"$1"/task/*; do
    if [ "$(cat "$t/comm" 2>/dev/null)" = "rte-worker-1" ]; then
      cut -d' ' -f1,2 "$t/schedstat" 2>/dev/null || echo "0 0"   # it may end between the two reads
      return
    fi
  done
  echo "0 0"
}
# testpmd_packets LOG: RX-packets of "Accumulated forward statistics for all ports".
testpmd_packets() { awk '/Accumulated forward statistics for all ports/ { getline; print $2 }' "$1"; }
# oncpu_mpps PACKETS SCHEDSTAT-FILE, cpu_share SCHEDSTAT-FILE (percent)
oncpu_mpps() { awk -v n="$1" '{ if ($1 == 0) exit 1; printf "%.3f", n * 1e3 / $1 }' "$2"; }
cpu_share() { awk '{ printf "%.0f", ($1 + $2 > 0 ? 100 * $1 / ($1 + $2) : 0) }' "$1"; }

# testpmd_mpps LOG PORTS: mean over periods (first two skipped) of Rx-pps summed over PORTS ports.
testpmd_mpps() {
  awk -v ports="$2" '/Rx-pps:/ { sum += $2; n++; if (n % ports == 0) { period++; if (period > 2) { total += sum; kept++ } sum = 0 } }
    END { if (kept == 0) exit 1; printf "%.3f", total / kept / 1e6 }' "$1"
}
# sluiced_mpps LOG: final rx_packets over the worker's elapsed seconds.
sluiced_mpps() {
  awk '$1 == "counter" && $2 == "rx_packets" { rx = $3 }
       /^sluiced: stopped by/ { for (i = 1; i <= NF; i++) if ($i == "after") secs = $(i + 1) }
       END { if (secs == 0) exit 1; printf "%.3f", rx / secs / 1e6 }' "$1"
}
# counter LOG NAME: sluiced's final `counter NAME VALUE`.
counter() { awk -v n="$2" '$1 == "counter" && $2 == n { print $3 }' "$1"; }
# drops LOG: the sum of sluiced's final drop_* counters.
drops() { awk '$1 == "counter" && $2 ~ /^drop_/ { s += $3 } END { print s + 0 }' "$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", (y > 0 ? x / y : 0) }'; }
# tsc_mhz LOG: the TSC frequency sluiced printed at start (`…, tsc 2300 MHz`).
tsc_mhz() { sed -n 's/.*, tsc \([0-9]*\) MHz$/\1/p' "$1" | head -1; }

# bench_environment: CPU, DPDK_VERSION, SWIFT_VERSION, COMMIT and DIRTY (" (with uncommitted
# changes)" when Sources or CShims differ from HEAD) for a results header.
bench_environment() {
  CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
  DPDK_VERSION=$(dpkg-query -W -f='${Version}' libdpdk-dev 2>/dev/null || echo unknown)
  SWIFT_VERSION=$(swift --version 2>/dev/null | head -1)
  COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  DIRTY=$(git diff --quiet HEAD -- Sources CShims 2>/dev/null && echo "" || echo " (with uncommitted changes)")
}
