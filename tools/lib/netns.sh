# Shared helpers for scripts that build a small lab in network namespaces.
# Source it; call `lab_init NAME`, then `lab_cleanup` runs on every exit path (trap set here).
# Only documentation address ranges are used; no namespace gets a route out of the lab.

lab_init() {
  LAB_ID="$1$$"
  LAB_NS=()
  LAB_LINKS=()
  LAB_PIDS=()
  LAB_DIR=$(mktemp -d "/tmp/sluice-$1.XXXXXX")
  trap lab_cleanup EXIT
  trap 'exit 130' INT TERM
}

# lab_netns NAME: create a namespace with loopback up.
lab_netns() {
  ip netns add "$1"
  LAB_NS+=("$1")
  ip -n "$1" link set lo up
}

# lab_veth HOST_END NS_END NS: a veth pair with one end moved into NS.
lab_veth() {
  ip link add "$1" type veth peer name "$2"
  LAB_LINKS+=("$1")
  ip link set "$2" netns "$3"
}

lab_bg() { LAB_PIDS+=("$1"); }

lab_cleanup() {
  local rc=$?
  set +e   # every step runs even when an earlier one finds nothing to remove
  for pid in "${LAB_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
  done
  for pid in "${LAB_PIDS[@]:-}"; do
    [ -n "$pid" ] && { timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -9 "$pid" 2>/dev/null; }
  done
  for l in "${LAB_LINKS[@]:-}"; do [ -n "$l" ] && ip link del "$l" 2>/dev/null; done
  for n in "${LAB_NS[@]:-}"; do [ -n "$n" ] && ip netns del "$n" 2>/dev/null; done
  [ -n "${LAB_DIR:-}" ] && [ -z "${KEEP_LAB_DIR:-}" ] && rm -rf "$LAB_DIR"
  exit $rc
}

# wait_for_line FILE PATTERN SECONDS
wait_for_line() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
