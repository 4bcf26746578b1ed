#!/usr/bin/env bash
# Sets up a fresh machine (packages, build) and runs every test: the Swift unit and golden
# tests, the namespace integration tests against the real `sluiced`, and a bounded fuzz run.
# Prints one line per suite and a closing "N passed, N failed". Run as root.
set -uo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C.UTF-8

tools/setup.sh release || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
failures=()
run() { # NAME COMMAND...
  local name=$1; shift
  local start=$SECONDS
  echo "=== $name"
  if "$@"; then
    passed=$((passed + 1)); echo "=== $name: passed ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "=== $name: FAILED ($((SECONDS - start)) s)"
  fi
}

run "swift test" swift test --parallel
# The connection table's concurrent stress tests, under ThreadSanitizer (own build folder).
run "conntrack under ThreadSanitizer" swift test --sanitize=thread --scratch-path .build-tsan --filter SluiceConntrackTests
for t in Tests/integration/*.sh; do
  run "integration $(basename "$t" .sh)" env SLUICED=.build/release/sluiced "$t"
done
if [ -x fuzz/run.sh ]; then
  run "fuzz frame parser" env FUZZ_RUNS="${FUZZ_RUNS:-1000000}" fuzz/run.sh
fi

# The control socket, fuzzed against the real sluiced for a bounded 45 s (about 50 s in all).
run "fuzz control socket" env SLUICED=.build/release/sluiced CONTROL_FUZZ_SECONDS="${CONTROL_FUZZ_SECONDS:-45}" fuzz/control-fuzz.sh

left=$(ip netns list 2>/dev/null | grep -c '^slit-' || true)
[ "$left" -eq 0 ] || { echo "namespaces left behind: $(ip netns list)"; failed=$((failed + 1)); failures+=("cleanup"); }

((failed)) && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
