#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for Sluice and builds it: installs the Debian packages that
# are missing (DPDK 22.11, libnuma, scapy, tcpdump, arping, …), then `swift build`.
# Usage: tools/setup.sh [debug|release]   (default: release). Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-release}

packages=(
  libdpdk-dev dpdk-dev dpdk libnuma-dev pkg-config   # the data plane
  python3-scapy                                      # fixture generator, lab traffic
  iproute2 iputils-ping arping tcpdump socat procps ethtool curl  # namespace tests
  python3-prometheus-client                          # metrics test: the Prometheus text parser
  wrk nginx nftables conntrack util-linux            # bench/kernel-vs-sluiced.sh (taskset: util-linux)
  python3-matplotlib                                 # bench/scenarios.sh's plots (benchmarks only)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "setup: run as root to install packages" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null; then
  echo "setup: the Swift 6.3 toolchain must be on PATH" >&2
  exit 1
fi
echo "setup: swift build -c $config"
swift build -c "$config" --product sluiced 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
swift build -c "$config" --product sluicectl 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
test -x ".build/$config/sluiced" && test -x ".build/$config/sluicectl" || { echo "setup: build failed" >&2; exit 1; }
# The traffic generator: Tests/integration/pktgen-memif.sh and bench/scenarios.sh drive sluiced with it.
swift build -c "$config" --product sluice-pktgen 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
test -x ".build/$config/sluice-pktgen" || { echo "setup: sluice-pktgen build failed" >&2; exit 1; }
echo "setup: built .build/$config/sluiced, sluicectl and sluice-pktgen"
