#!/usr/bin/env bash
# Proves that the conntrack hot path allocates nothing: runs the benchmark's fixed mix of
# operations (insert, lookup hit/miss with prefetch, lookup + update, remove + insert, expire, on a
# shared and a per-worker table) twice, N and 2N times each, under valgrind, and compares the
# total number of heap allocations. Equal counts: zero allocations per operation.
#
#     bench/conntrack-alloc-check.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20000}"
scratch="${SCRATCH:-.build-ct-rel}"
swift build -c release --scratch-path "$scratch" --product sluice-conntrack-bench >/dev/null
bin="$scratch/release/sluice-conntrack-bench"
allocs() {
    valgrind --tool=memcheck --leak-check=no "$bin" --alloc-check "$1" 2>&1 \
        | sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' | tr -d ,
}
a=$(allocs "$n")
b=$(allocs $((2 * n)))
echo "heap allocations: $a with $n operations of each kind, $b with $((2 * n))"
if [ "$a" = "$b" ]; then
    echo "OK: no allocation per operation"
else
    echo "FAIL: $(( (b - a) )) allocations for $n extra operations of each kind"
    exit 1
fi
