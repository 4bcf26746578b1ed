#!/usr/bin/env bash
# Builds fuzz/FrameFuzzer.swift with libFuzzer + AddressSanitizer and runs it.
#
#   fuzz/run.sh                        # 2,000,000 runs or FUZZ_MAX_TIME seconds, whichever first
#   FUZZ_RUNS=200000 fuzz/run.sh
#
# Environment:
#   FUZZ_RUNS      libFuzzer -runs (default 2000000)
#   FUZZ_MAX_TIME  libFuzzer -max_total_time in seconds, the time bound of the fuzzing itself
#                  (default 60; the build takes 20-50 s more)
#   FUZZ_JOBS      parallel libFuzzer processes sharing one corpus, each running FUZZ_RUNS/JOBS
#                  (default: the number of CPUs, at most 4)
#   FUZZ_SEED      libFuzzer -seed of job 0, job j gets FUZZ_SEED+j (default: random, printed)
#   FUZZ_KEEP=1    keep the work directory (binary, corpus, log) even when nothing crashed
#   SWIFTC         the compiler (default: swiftc on PATH)
#
# Prints, last, `fuzz: N executions, K crashes` (N summed over the jobs' "Done N runs"); exits 0
# only when K is 0 and every libFuzzer process and the build succeeded. On a crash the work directory under /tmp is kept and each crash input is
# printed in hex with the check that failed.
#
# Build: fuzz/build.py compiles SluiceCore, SluiceDataPlane and whatever local targets they
# depend on (read from Package.swift with `swift package dump-package`: no network, no SwiftPM
# build) as separate modules with -sanitize=fuzzer,address -O, then the harness against them.
# Needs swiftc (with the toolchain's clang beside it) and python3. -O, never -Ounchecked.
set -euo pipefail
shopt -s nullglob

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${FUZZ_RUNS:-2000000}"
MAX_TIME="${FUZZ_MAX_TIME:-60}"
SWIFTC="${SWIFTC:-swiftc}"
cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
JOBS="${FUZZ_JOBS:-$(( cpus < 4 ? cpus : 4 ))}"
(( JOBS >= 1 )) || JOBS=1

command -v "$SWIFTC" >/dev/null || { echo "fuzz: $SWIFTC not found" >&2; exit 2; }
WORK="$(mktemp -d /tmp/sluice-fuzz.XXXXXX)"
mkdir -p "$WORK/corpus" "$WORK/fixture-seeds" "$WORK/artifacts"
keep=${FUZZ_KEEP:-0}
pids=()
cleanup() {
    (( ${#pids[@]} == 0 )) || kill "${pids[@]}" 2>/dev/null || true
    if [[ "$keep" != 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- build -----------------------------------------------------------------------------------
PY="$(command -v python3 || true)"
[[ -n "$PY" ]] || { echo "fuzz: python3 not found (fuzz/build.py needs it)" >&2; exit 2; }
echo "fuzz: building with -sanitize=fuzzer,address -O (modules from Package.swift) ..."
build_start=$(date +%s)
if ! SWIFTC="$SWIFTC" "$PY" "$ROOT/fuzz/build.py" "$ROOT" "$WORK/build" "$WORK/frame-fuzzer"; then
    echo "fuzz: build failed (logs in $WORK/build/logs)" >&2
    keep=1
    exit 2
fi
build_s=$(( $(date +%s) - build_start ))
echo "fuzz: built in ${build_s}s"

# --- seeds -------------------------------------------------------------------------------------
# Committed seeds (fuzz/seeds/*.bin, from fuzz/make_seeds.py) plus every "input" (frames) and
# "packet" (raw SCTP packets, for the CRC checks) hex string in Tests/Fixtures/*.json, if any.
fixtures=("$ROOT"/Tests/Fixtures/*.json)
fixture_count=0
if (( ${#fixtures[@]} > 0 )); then
    fixture_count=$("$PY" - "$WORK/fixture-seeds" "${fixtures[@]}" <<'EOF'
import json, os, re, sys
out, files = sys.argv[1], sys.argv[2:]
n = 0
def walk(node, name):
    global n
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("input", "packet") and isinstance(v, str):
                text = re.sub(r"(0x|[\s:._-])", "", v)
                if text and len(text) % 2 == 0 and re.fullmatch(r"[0-9a-fA-F]+", text):
                    data = bytes.fromhex(text)
                    if len(data) <= 2048:
                        with open(os.path.join(out, "%s-%04d" % (name, n)), "wb") as f:
                            f.write(data)
                        n += 1
            else:
                walk(v, name)
    elif isinstance(node, list):
        for v in node:
            walk(v, name)
for path in files:
    try:
        with open(path) as f:
            walk(json.load(f), os.path.splitext(os.path.basename(path))[0])
    except (OSError, ValueError) as e:
        print("fuzz: skipping %s: %s" % (path, e), file=sys.stderr)
print(n)
EOF
)
fi
seed_count=$(find "$ROOT/fuzz/seeds" -type f | wc -l)
echo "fuzz: seeds: $seed_count from fuzz/seeds, $fixture_count from Tests/Fixtures"

# --- fuzz --------------------------------------------------------------------------------------
symbolizer="$(dirname "$(command -v "$SWIFTC")")/llvm-symbolizer"
[[ -x "$symbolizer" ]] && export ASAN_SYMBOLIZER_PATH="$symbolizer"
# A 32 MB quarantine (default 256) keeps RSS ~100 MB and runs ~20% faster; every buffer the
# harness frees is freed within the same input, so use-after-free is still caught.
export ASAN_OPTIONS="quarantine_size_mb=32:${ASAN_OPTIONS:-}"
# The Swift runtime's backtracer would otherwise catch abort() first and trip over ASan's
# shadow memory; libFuzzer's and ASan's own reports are the ones wanted.
export SWIFT_BACKTRACE="enable=no"

per_job=$(( (RUNS + JOBS - 1) / JOBS ))
args=(-runs="$per_job" -max_len=2048 -max_total_time="$MAX_TIME" -timeout=10 -rss_limit_mb=2048
      -print_final_stats=1 -artifact_prefix="$WORK/artifacts/")
echo "fuzz: running $JOBS job(s) x ${args[*]} (work dir $WORK)"
pids=()
for (( j = 0; j < JOBS; j++ )); do
    seed_arg=()
    [[ -n "${FUZZ_SEED:-}" ]] && seed_arg=(-seed=$(( FUZZ_SEED + j )))
    "$WORK/frame-fuzzer" "${args[@]}" "${seed_arg[@]}" \
        "$WORK/corpus" "$ROOT/fuzz/seeds" "$WORK/fixture-seeds" >"$WORK/fuzz-$j.log" 2>&1 &
    pids+=($!)
done
# As soon as one job fails (a crash), stop the others: the run has failed already.
rc=0
live=("${pids[@]}")
while (( ${#live[@]} > 0 )); do
    still=()
    for pid in "${live[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then still+=("$pid"); continue; fi
        r=0
        wait "$pid" || r=$?
        if (( r != 0 && rc == 0 )); then
            rc=$r
            kill "${pids[@]}" 2>/dev/null || true
        fi
    done
    live=("${still[@]+"${still[@]}"}")
    (( ${#live[@]} == 0 )) || sleep 0.5
done
pids=()

# --- summary -----------------------------------------------------------------------------------
executions=0
best_cov=""; total_rate=0
for (( j = 0; j < JOBS; j++ )); do
    log="$WORK/fuzz-$j.log"
    n=$(sed -nE 's/^Done ([0-9]+) runs in .*/\1/p' "$log" | tail -1)
    if [[ -z "$n" ]]; then   # no "Done" line after a crash: the final stats or last status line
        n=$(sed -nE 's/^stat::number_of_executed_units: ([0-9]+)/\1/p' "$log" | tail -1)
        [[ -z "$n" ]] && n=$(sed -nE 's/^#([0-9]+)[[:space:]].*/\1/p' "$log" | tail -1)
        n=${n:-0}
    fi
    executions=$(( executions + n ))
    grep -E "^INFO: Seed:|INITED|^Done " "$log" | sed "s/^/  job $j: /" || true
    last_status=$(grep -E "^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)" "$log" | tail -1 || true)
    cov=$(sed -nE 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*/\1/p' <<<"$last_status")
    rate=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$last_status")
    total_rate=$(( total_rate + ${rate:-0} ))
    # Jobs share the corpus; report the job that reached the most coverage.
    c=$(sed -nE 's/^cov: ([0-9]+).*/\1/p' <<<"$cov")
    if [[ -z "$best_cov" ]] || (( ${c:-0} > $(sed -nE 's/^cov: ([0-9]+).*/\1/p' <<<"$best_cov") )); then
        best_cov=$cov
    fi
done
echo "fuzz: ${best_cov:-cov: ?} exec/s: $total_rate (all jobs) build: ${build_s}s"
if (( executions < RUNS )) && [[ $rc -eq 0 ]]; then
    echo "fuzz: stopped by the ${MAX_TIME}s time bound before FUZZ_RUNS=$RUNS"
fi

artifacts=("$WORK"/artifacts/*)
crashes=${#artifacts[@]}
if (( crashes > 0 )) || [[ $rc -ne 0 ]]; then
    keep=1
    (( crashes == 0 )) && crashes=1   # libFuzzer failed without writing an input: count it
    echo "fuzz: FAILED (libFuzzer exit $rc); log, binary and inputs kept in $WORK" >&2
    grep -h -E "SLUICE FUZZ INVARIANT VIOLATED|^  detail:|^  input|^  failed on|ERROR: AddressSanitizer|^SUMMARY:|Fatal error|deadly signal|ERROR: libFuzzer" "$WORK"/fuzz-*.log | head -20 >&2 || true
    for a in "${artifacts[@]}"; do
        echo "fuzz: crash input $(basename "$a") ($(wc -c <"$a") bytes): $(od -An -v -tx1 "$a" | tr -d ' \n')" >&2
        echo "fuzz:   reproduce: $WORK/frame-fuzzer $a" >&2
        echo "fuzz:   minimize:  $WORK/frame-fuzzer -minimize_crash=1 -runs=100000 $a" >&2
    done
    echo "fuzz: $executions executions, $crashes crashes"
    exit 1
fi
echo "fuzz: $executions executions, 0 crashes"
