#!/usr/bin/env bash
# Bounded fuzz of the control socket against the real `sluiced` (net_null ports, --no-huge):
# fuzz/control_fuzz.py sends random and mutated requests for CONTROL_FUZZ_SECONDS (default 45)
# while a worker forwards, then this script checks that sluiced is alive, that its state equals
# the last state the fuzzer saw accepted, and that it stops cleanly.
#
#   fuzz/control-fuzz.sh                         # SLUICED=.build/release/sluiced
#   CONTROL_FUZZ_SECONDS=20 CONTROL_FUZZ_SEED=7 fuzz/control-fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SLUICED=${SLUICED:-.build/release/sluiced}
SECONDS_BUDGET=${CONTROL_FUZZ_SECONDS:-45}
SEED=${CONTROL_FUZZ_SEED:-$RANDOM$RANDOM}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
DIR=$(mktemp -d /tmp/sluice-ctlfuzz.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill -INT "$PID" 2>/dev/null && sleep 1 && kill -KILL "$PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cat >"$DIR/sluiced.yaml" <<YAML
eal: ["--no-huge", "-m", "512", "--no-pci", "--file-prefix", "slcf$$", "--log-level", "lib.eal:error"]
ports:
  # lan0 receives a constant stream of (garbage) frames: the worker is busy while snapshots change.
  - { name: lan0, device: "net_null0", mac: "02:00:00:00:5f:10", addresses: ["192.0.2.2/24", "2001:db8::2/64"] }
  - { name: lan1, device: "net_null1,no-rx=1", mac: "02:00:00:00:5f:11",
      addresses: ["198.51.100.1/24", "2001:db8:1::1/64"] }
workers: { lcores: [1] }
mempool: { mbufs: 4095, cache_size: 128 }
flows: { capacity: 65536, hash_seed: "000102030405060708090a0b0c0d0e0f" }
control: { socket: "$DIR/sluiced.sock" }
neighbors:
  - { address: 198.51.100.11, mac: "02:00:00:00:00:0b" }
vips:
  - { address: 192.0.2.10, port: lan0 }
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends:
      - { address: 198.51.100.11, port: 8080 }
      - { address: 198.51.100.12, port: 8080 }
YAML
"$SLUICED" --config "$DIR/sluiced.yaml" >"$DIR/sluiced.log" 2>&1 &
PID=$!
for _ in $(seq 300); do grep -q "sluiced: running" "$DIR/sluiced.log" && break; sleep 0.1; done
grep -q "sluiced: running" "$DIR/sluiced.log" || { echo "FAIL: sluiced did not start"; cat "$DIR/sluiced.log"; exit 1; }
set +e
python3 fuzz/control_fuzz.py "$DIR/sluiced.sock" "$SECONDS_BUDGET" "$SEED"
rc=$?
set -e
kill -0 "$PID" 2>/dev/null || { echo "FAIL: sluiced died"; tail -30 "$DIR/sluiced.log"; exit 1; }
[ "$rc" -eq 0 ] || { echo "FAIL: control fuzz (seed $SEED)"; tail -20 "$DIR/sluiced.log"; exit 1; }
kill -INT "$PID"
wait "$PID" && st=0 || st=$?
PID=
[ "$st" -eq 0 ] || { echo "FAIL: sluiced exited $st on SIGINT"; tail -20 "$DIR/sluiced.log"; exit 1; }
rx=$(awk '$1 == "counter" && $2 == "rx_packets" { print $3 }' "$DIR/sluiced.log")
echo "PASS: control fuzz: sluiced alive, state = last accepted state, $rx packets received meanwhile"
