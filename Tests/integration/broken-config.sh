#!/usr/bin/env bash
# `sluiced` rejects a malformed config before the EAL starts: the message names the file, the
# field and the reason, and the exit status is 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
SLUICED=${SLUICED:-.build/release/sluiced}
[ -x "$SLUICED" ] || { echo "FAIL: $SLUICED not built"; exit 1; }
dir=$(mktemp -d /tmp/sluice-badcfg.XXXXXX)
trap 'rm -rf "$dir"' EXIT

check() { # NAME YAML EXPECTED-MESSAGE
  printf '%s\n' "$2" >"$dir/$1.yaml"
  set +e
  out=$(timeout 20 "$SLUICED" --config "$dir/$1.yaml" 2>&1)
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || { echo "FAIL: $1: exit status $rc, expected 2: $out"; exit 1; }
  grep -qF "$dir/$1.yaml: $3" <<<"$out" || { echo "FAIL: $1: message '$out' lacks '$dir/$1.yaml: $3'"; exit 1; }
  grep -q "EAL" <<<"$out" && { echo "FAIL: $1: the EAL started: $out"; exit 1; }
  echo "ok: $1 -> $(head -1 <<<"$out")"
}
check bad-device 'ports: [{name: lan0, device: eth0}]' "ports[0].device: 'eth0' is neither"
check bad-vip $'ports: [{name: lan0, device: net_null0}]\nvips: [{address: 192.0.2.300, port: lan0}]' "vips[0].address: '192.0.2.300' is not"
check unknown-field $'ports: [{name: lan0, device: net_null0}]\nworker: {lcores: [1]}' "worker: unknown field"
check not-yaml 'ports: [' "not valid YAML"
check no-ports 'vips: []' "ports: required field missing"

set +e
out=$(timeout 20 "$SLUICED" --config "$dir/does-not-exist.yaml" 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] && grep -qF "$dir/does-not-exist.yaml: cannot read file" <<<"$out" \
  || { echo "FAIL: missing file: rc=$rc $out"; exit 1; }
echo "ok: missing file -> $out"
echo "PASS: broken-config"
