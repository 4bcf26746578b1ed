#!/usr/bin/env bash
# One command for a newcomer: set up the machine, build, and run `sluiced` on the embedded
# default config (examples/demo.yaml) in a lab of network namespaces: a client, and three HTTP
# backends behind sluiced. Shows the client resolving and pinging the VIPs, then HTTP requests
# to the VIP spread by Maglev over the backends (IPv4 and IPv6); stops sluiced and prints its
# counters. Run as root. Everything it creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh release
. tools/lib/netns.sh
. tools/lib/lb-lab.sh
for ns in $(ip netns list | awk '/^sdemo-/ {print $1}'); do ip netns del "$ns"; done
ip link del sdemoc 2>/dev/null || true
ip link del sdemob 2>/dev/null || true
lab_init demo
lb_lab_up sdemo

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "starting sluiced --config examples/demo.yaml"
log="$LAB_DIR/sluiced.log"
.build/release/sluiced --config examples/demo.yaml >"$log" 2>&1 &
SLUICED_PID=$!
lab_bg $SLUICED_PID
tail -n +1 -f "$log" --pid=$SLUICED_PID | sed -u 's/^/  [sluiced] /' &
lab_bg $!
wait_for_line "$log" "sluiced: running" 30 || { echo "sluiced did not start"; exit 1; }
sleep 2   # the resolver asks for the backends' MACs once a second

in_client() { ip netns exec "$LB_CLIENT_NS" "$@"; }
step "client (192.0.2.1, namespace $LB_CLIENT_NS): arping and ping the VIP 192.0.2.10"
in_client arping -c 2 -I sdemoc1 192.0.2.10 | sed 's/^/  /'
in_client ping -c 2 -i 0.2 192.0.2.10 | sed 's/^/  /'
step "client: 20 HTTP requests to http://192.0.2.10/ (backends weighted 1:1:2)"
for i in $(seq 20); do in_client curl -sS -m 3 http://192.0.2.10/; done | sort | uniq -c | sed 's/^/  /'
step "client: 10 HTTP requests to http://[2001:db8::10]/"
for i in $(seq 10); do in_client curl -sS -m 3 'http://[2001:db8::10]/'; done | sort | uniq -c | sed 's/^/  /'
step "stopping sluiced (SIGINT): final counters"
kill -INT $SLUICED_PID
wait $SLUICED_PID || true
sleep 0.3
step "done: sluiced balanced HTTP over IPv4 and IPv6 and answered ARP, NDP and ping on virtual ports"
