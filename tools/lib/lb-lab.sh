# The load-balancing lab, shared by tools/demo.sh and Tests/integration/netns-lb-*.sh.
# Source tools/lib/netns.sh first and call lab_init. Then `lb_lab_up PREFIX` builds:
#
#   client ns  (192.0.2.1/24, 2001:db8::1/64) ──veth── ${PREFIX}c  [sluiced lan0: 192.0.2.2, 2001:db8::2;
#                                                                    VIPs 192.0.2.10, 2001:db8::10]
#   backends:  bridge in ns ${PREFIX}-bk ──veth── ${PREFIX}b  [sluiced lan1: 198.51.100.1, 2001:db8:1::1]
#              b1..b3 ns (198.51.100.11..13, 2001:db8:1::11..13), default route via sluiced,
#              each serving HTTP on :8080 (body "backend bN")
#
# No namespace has a route out of the lab: the backends' only gateway is sluiced, the client's
# only network is its /24. LB_CONFIG gets a sluiced config for it (services added by the caller).
#
# LB_LAN1=tap: lan1 is a net_tap device instead of net_af_packet over a veth. sluiced creates
# the tap interface ${PREFIX}b itself; call lb_attach_tap once sluiced runs to move it into the
# backend bridge. (net_tap has IPv4 checksum offload, RX and TX: this exercises that path.)
#
# Two optional knobs, set before calling lb_lab_up:
#   LB_ROUTER_NS=NAME  the load balancer's ends (${PREFIX}c, ${PREFIX}b) go into a namespace of
#                      that name instead of staying in the root namespace, so that the same veths
#                      can serve either sluiced (`ip netns exec NAME sluiced …`) or the kernel
#                      (addresses + nftables in NAME): bench/kernel-vs-sluiced.sh swaps the two.
#   LB_HTTP=nginx      each backend runs nginx (worker 1 process, own config, pid, logs and temp
#                      paths in $LAB_DIR/nginxN, access log $LAB_DIR/nginxN/access.log) instead
#                      of python3 http.server; the body is the same "backend bN". LB_HTTP_CPUS
#                      (a taskset CPU list) pins the nginx processes.

lb_lab_up() {
  local p=$1
  LB_PREFIX=$p; LB_CLIENT_NS="$p-cl"; LB_BK_NS="$p-bk"
  LB_PORT0="${p}c"; LB_PORT1="${p}b"
  lab_netns "$LB_CLIENT_NS"
  lab_veth "$LB_PORT0" "${p}c1" "$LB_CLIENT_NS"
  ip netns exec "$LB_CLIENT_NS" sysctl -qw "net.ipv6.conf.${p}c1.accept_dad=0"
  ip -n "$LB_CLIENT_NS" addr add 192.0.2.1/24 dev "${p}c1"
  ip -n "$LB_CLIENT_NS" addr add 2001:db8::1/64 dev "${p}c1" nodad
  ip -n "$LB_CLIENT_NS" link set "${p}c1" up
  # veth hands af_packet frames whose TCP/UDP checksum the sender left for "hardware" to finish
  # (CHECKSUM_PARTIAL); a real wire never carries those. Make the lab's hosts checksum in software.
  ip netns exec "$LB_CLIENT_NS" ethtool -K "${p}c1" tx off >/dev/null

  lab_netns "$LB_BK_NS"
  ip -n "$LB_BK_NS" link add br0 type bridge
  ip -n "$LB_BK_NS" link set br0 up
  if [ "${LB_LAN1:-}" != tap ]; then
    lab_veth "$LB_PORT1" "${p}b1" "$LB_BK_NS"
    ip -n "$LB_BK_NS" link set "${p}b1" master br0 up
  fi
  for i in 1 2 3; do
    local ns="$p-b$i"
    lab_netns "$ns"
    ip -n "$LB_BK_NS" link add "bk$i" type veth peer name eth0 netns "$ns"
    ip -n "$LB_BK_NS" link set "bk$i" master br0 up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.eth0.accept_dad=0
    ip -n "$ns" addr add "198.51.100.1$i/24" dev eth0
    ip -n "$ns" addr add "2001:db8:1::1$i/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
    ip netns exec "$ns" ethtool -K eth0 tx off >/dev/null
    ip -n "$ns" route add default via 198.51.100.1
    ip -n "$ns" -6 route add default via 2001:db8:1::1
    mkdir -p "$LAB_DIR/www$i"
    echo "backend b$i" >"$LAB_DIR/www$i/index.html"
    if [ "${LB_HTTP:-python}" = nginx ]; then
      lb_nginx_conf "$i"
      local pin=()
      [ -n "${LB_HTTP_CPUS:-}" ] && pin=(taskset -c "$LB_HTTP_CPUS")
      ip netns exec "$ns" "${pin[@]}" nginx -p "$LAB_DIR/nginx$i" -c "$LAB_DIR/nginx$i/nginx.conf" \
        >"$LAB_DIR/http$i.log" 2>&1 &
    else
      ip netns exec "$ns" python3 -m http.server 8080 --bind :: --directory "$LAB_DIR/www$i" \
        >"$LAB_DIR/http$i.log" 2>&1 &
    fi
    lab_bg $!
  done
  local in_router=()
  if [ -n "${LB_ROUTER_NS:-}" ]; then
    lab_netns "$LB_ROUTER_NS"
    ip link set "$LB_PORT0" netns "$LB_ROUTER_NS"
    ip link set "$LB_PORT1" netns "$LB_ROUTER_NS"
    in_router=(ip netns exec "$LB_ROUTER_NS")
  fi
  for h in "$LB_PORT0" "$LB_PORT1"; do
    [ "$h" = "$LB_PORT1" ] && [ "${LB_LAN1:-}" = tap ] && continue
    "${in_router[@]}" sysctl -qw "net.ipv6.conf.$h.disable_ipv6=1"
    "${in_router[@]}" ip link set "$h" up
  done
  # Wait for the HTTP servers.
  for i in 1 2 3; do
    for _ in $(seq 50); do
      ip netns exec "$p-b$i" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080' 2>/dev/null && break
      sleep 0.1
    done
  done
}

# lb_attach_tap: (LB_LAN1=tap) moves sluiced's tap interface into the backend bridge.
lb_attach_tap() {
  local i
  for i in $(seq 50); do ip link show "$LB_PORT1" >/dev/null 2>&1 && break; sleep 0.1; done
  ip link set "$LB_PORT1" netns "$LB_BK_NS"
  ip netns exec "$LB_BK_NS" sysctl -qw "net.ipv6.conf.$LB_PORT1.disable_ipv6=1"
  # The kernel end took sluiced's MAC; as a bridge port it would make the bridge keep frames to
  # that MAC for itself. The wire end needs a MAC of its own.
  ip -n "$LB_BK_NS" link set "$LB_PORT1" address 02:00:00:00:5e:f1
  ip -n "$LB_BK_NS" link set "$LB_PORT1" master br0 up
}

# lb_nginx_conf N: $LAB_DIR/nginxN/nginx.conf serving $LAB_DIR/wwwN on :8080 (IPv4 and IPv6) in
# the foreground (the lab stops it by its pid), every path inside $LAB_DIR/nginxN. Keep-alive
# connections are never closed by a request count (nginx's default closes after 1000), so a
# benchmark's keep-alive run opens only the connections it asks for.
lb_nginx_conf() {
  local d="$LAB_DIR/nginx$1"
  mkdir -p "$d/logs" "$d/tmp"
  cat >"$d/nginx.conf" <<NGINX
daemon off;
user root;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log $d/access.log combined buffer=32k flush=1s;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  sendfile on;
  keepalive_requests 100000000;
  default_type text/plain;
  server {
    listen 8080 backlog=4096;
    listen [::]:8080 backlog=4096;
    root $LAB_DIR/www$1;
  }
}
NGINX
}

# lb_config FILE-PREFIX SERVICES-YAML: writes $LAB_DIR/sluiced.yaml. Optional overrides (the
# defaults are what the tests use): LB_PMD (net_af_packet; or net_af_xdp), LB_PMD_ARGS (more
# device arguments, starting with a comma), LB_IDLE (the workers' idle: block), LB_TX_DRAIN_US,
# LB_FLOW_CAPACITY, LB_MBUFS.
lb_config() {
  local pmd=${LB_PMD:-net_af_packet}
  local lan1="${pmd}1,iface=$LB_PORT1${LB_PMD_ARGS:-}"
  [ "${LB_LAN1:-}" = tap ] && lan1="net_tap0,iface=$LB_PORT1"
  cat >"$LAB_DIR/sluiced.yaml" <<YAML
eal: ["--no-huge", "-m", "512", "--no-pci", "--file-prefix", "$1", "--log-level", "lib.eal:error"]
ports:
  - { name: lan0, device: "${pmd}0,iface=$LB_PORT0${LB_PMD_ARGS:-}", mac: "02:00:00:00:5e:10",
      addresses: ["192.0.2.2/24", "2001:db8::2/64"]${LB_LAN0_MTU:+, mtu: $LB_LAN0_MTU} }
  - { name: lan1, device: "$lan1", mac: "02:00:00:00:5e:11",
      addresses: ["198.51.100.1/24", "2001:db8:1::1/64"] }
workers:
  lcores: [1]
  idle: ${LB_IDLE:-{ mode: sleep, sleep_us: 50 \}}
  tx_drain_us: ${LB_TX_DRAIN_US:-100}
mempool: { mbufs: ${LB_MBUFS:-4095}, cache_size: 128 }
flows: { capacity: ${LB_FLOW_CAPACITY:-65536} }
vips:
  - { address: 192.0.2.10, port: lan0 }
  - { address: "2001:db8::10", port: lan0 }
$2
YAML
}

# lb_udp_echo_up: each backend bN also runs a UDP echo on :9000 (IPv4 and IPv6) that answers a
# datagram with the same bytes followed by " bN". Datagrams over the links' 1500-byte MTU leave
# the client, and the answers leave the backends, in IP fragments.
lb_udp_echo_up() {
  local i
  for i in 1 2 3; do
    ip netns exec "$LB_PREFIX-b$i" /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 9000))
tag = (" b" + sys.argv[1]).encode()
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(data + tag, peer)
' "$i" >"$LAB_DIR/udpecho$i.log" 2>&1 &
    lab_bg $!
  done
  sleep 0.3
}

# lb_udp_echo_check VIP PORT COUNT SIZE: COUNT datagrams of SIZE bytes from the client, each from
# a new socket (a new flow), to VIP:PORT; each answer must come from VIP:PORT and be the same
# bytes plus " bN". Prints "N/COUNT answered whole; b1=… b2=… b3=…" and fails unless all were.
lb_udp_echo_check() {
  ip netns exec "$LB_CLIENT_NS" /usr/bin/python3 - "$@" <<'PY'
import collections, os, socket, sys
vip, port, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
family = socket.AF_INET6 if ":" in vip else socket.AF_INET
answered, backends, problems = 0, collections.Counter(), []
for i in range(count):
    data = os.urandom(size)
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(data, (vip, port))
        try:
            reply, peer = s.recvfrom(65535)
        except socket.timeout:
            problems.append(f"datagram {i}: no answer"); continue
    if peer[0] != vip or peer[1] != port:
        problems.append(f"datagram {i}: answered from {peer[0]}:{peer[1]}"); continue
    if reply[:size] != data or not reply[size:].startswith(b" b"):
        problems.append(f"datagram {i}: answer of {len(reply)} bytes differs"); continue
    answered += 1
    backends[reply[size:].decode()[1:]] += 1
print(f"{answered}/{count} answered whole; " + " ".join(f"{b}={n}" for b, n in sorted(backends.items())))
if problems:
    print("; ".join(problems[:5]))
    sys.exit(1)
PY
}
