#!/usr/bin/env bash
# One command for a newcomer: set up the machine, build, and run `sluiced` on the embedded
# default config (examples/demo.yaml) against a Linux client in a network namespace, showing it
# answer ARP, neighbor discovery and ping for its VIPs; then stop it and print its counters.
# Run as root. Everything it creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh release
. tools/lib/netns.sh
lab_init demo
NS=sluice-demo
ip netns del "$NS" 2>/dev/null || true
ip link del sl-demo-lb 2>/dev/null || true
lab_netns "$NS"
lab_veth sl-demo-lb sl-demo-cl "$NS"
sysctl -qw net.ipv6.conf.sl-demo-lb.disable_ipv6=1
ip link set sl-demo-lb up
ip netns exec "$NS" sysctl -qw net.ipv6.conf.sl-demo-cl.accept_dad=0
ip -n "$NS" addr add 192.0.2.1/24 dev sl-demo-cl
ip -n "$NS" addr add 2001:db8::1/64 dev sl-demo-cl nodad
ip -n "$NS" link set sl-demo-cl up

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "starting sluiced --config examples/demo.yaml"
log="$LAB_DIR/sluiced.log"
.build/release/sluiced --config examples/demo.yaml >"$log" 2>&1 &
SLUICED_PID=$!
lab_bg $SLUICED_PID
tail -n +1 -f "$log" --pid=$SLUICED_PID | sed -u 's/^/  [sluiced] /' &
lab_bg $!
wait_for_line "$log" "sluiced: running" 30 || { echo "sluiced did not start"; exit 1; }
sleep 0.5

step "client (namespace $NS, 192.0.2.1): arping 192.0.2.10"
ip netns exec "$NS" arping -c 2 -I sl-demo-cl 192.0.2.10 | sed 's/^/  /'
step "client: ping 192.0.2.10"
ip netns exec "$NS" ping -c 3 -i 0.2 192.0.2.10 | sed 's/^/  /'
step "client: ping -6 2001:db8::10 (neighbor discovery first)"
ip netns exec "$NS" ping -6 -c 3 -i 0.2 2001:db8::10 | sed 's/^/  /'
step "client's neighbor table: the VIPs resolve to sluiced's MAC"
ip -n "$NS" neigh show dev sl-demo-cl | sed 's/^/  /'
step "stopping sluiced (SIGINT): final counters"
kill -INT $SLUICED_PID
wait $SLUICED_PID || true
sleep 0.3
step "done: sluiced answered ARP, NDP and ping on a virtual port"
