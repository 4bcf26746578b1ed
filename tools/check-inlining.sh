#!/usr/bin/env bash
# Proves from the release binary that the worker loop is what the source says it is:
#
#  1. no call to any CDPDK `sl_*` per-packet wrapper, nor to the DPDK inline functions they wrap
#     (rte_eth_rx_burst, rte_eth_tx_burst, rte_pktmbuf_*, rte_prefetch0, rte_rdtsc, ...): they
#     were inlined into the Swift loop. What remains of rx/tx burst is an indirect call through
#     DPDK's fast-path table `rte_eth_fp_ops` (as in C), plus the never-taken branch to
#     rte_eth_call_{rx,tx}_callbacks; rte_pktmbuf_free_bulk is an exported function in 22.11 and
#     stays a call (drop path only);
#  2. the inlined bodies are there: rdtsc, prefetcht0, loads from rte_eth_fp_ops;
#  3. nothing reachable from the loop through direct calls (FrameDispatcher and what it calls)
#     touches reference counts or allocates: no swift_retain/release, swift_allocObject,
#     swift_slowAlloc, malloc.
#
# Usage: tools/check-inlining.sh [--no-build]     (SCRATCH=.build-dpdk by default)
# Prints the evidence and PASS or FAIL; exit status 0 on PASS.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRATCH=${SCRATCH:-.build-dpdk}
BIN="$SCRATCH/release/sluiced"
if [ "${1:-}" != "--no-build" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product sluiced 2>&1 | grep -E "error|warning: unre|Compiling|Build" | tail -3
fi
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }
command -v objdump >/dev/null || { echo "FAIL: objdump (binutils) not installed"; exit 1; }

exec /usr/bin/python3 - "$BIN" <<'PY'
import re, subprocess, sys

binary = sys.argv[1]

def run(*args, stdin=None):
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=True).stdout

symbols = {}
for line in run("nm", binary).splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tT":
        symbols[parts[2]] = int(parts[0], 16)

def demangle(text):
    return run("swift", "demangle", "--simplified", stdin=text)

def find(pattern):
    hits = [s for s in symbols if re.search(pattern, s)]
    if len(hits) != 1:
        print(f"FAIL: expected one symbol matching {pattern}, found {hits}")
        sys.exit(1)
    return hits[0]

def disassemble(symbol):
    out = run("objdump", "-d", "--no-show-raw-insn", f"--disassemble={symbol}", binary)
    return [l for l in out.splitlines() if re.match(r"\s+[0-9a-f]+:\s", l)]

CALL = re.compile(r"\scall\s+(?:[0-9a-f]+\s+<([^>]+)>|(\*.*))")
def calls(lines):
    direct, indirect = [], []
    for l in lines:
        m = CALL.search(l)
        if m:
            (direct if m.group(1) else indirect).append(m.group(1) or m.group(2).strip())
    return direct, indirect

loops = {
    "Worker.pipelineLoop": find(r"6Worker.*12pipelineLoop.*F$"),
    "Worker.ioLoop": find(r"6Worker.*6ioLoop.*F$"),
}
# Calls allowed in a loop: out-of-line Swift (checked transitively below), the DPDK library
# functions named above, and the cold idle path.
ALLOWED_LIBRARY = {"rte_eth_call_rx_callbacks@plt", "rte_eth_call_tx_callbacks@plt", "rte_pktmbuf_free_bulk@plt"}
FORBIDDEN = re.compile(r"^(sl_|rte_eth_rx_burst|rte_eth_tx_burst|rte_pktmbuf_(?!free_bulk)|rte_prefetch|rte_rdtsc|rte_pause|rte_mempool)")
ARC_OR_ALLOC = re.compile(r"^(swift_retain|swift_release|swift_bridgeObjectRe|swift_allocObject|swift_slowAlloc|malloc|calloc|free@|swift_beginAccess)")
# A lazily initialised global read per packet: not ARC, but a call and a branch; reported.
LAZY_GLOBAL = re.compile(r"^swift_once")
# Cold by design: reached only when idle or when a TX queue is full.
COLD = ("backOff", "dropUnsent")

ok = True
for name, symbol in loops.items():
    lines = disassemble(symbol)
    direct, indirect = calls(lines)
    text = "\n".join(lines)
    print(f"== {name}  ({symbol}, {len(lines)} instructions)")
    print(f"   rdtsc: {text.count('rdtsc')}   prefetcht0: {text.count('prefetcht0')}   "
          f"rte_eth_fp_ops loads: {len(re.findall(r'rte_eth_fp_ops', text))}   indirect calls: {len(indirect)}")
    first = next((i for i, l in enumerate(lines) if "rte_eth_fp_ops" in l), None)
    if first is not None and name.endswith("pipelineLoop"):
        end = next((i for i in range(first, min(first + 40, len(lines))) if "call   *" in lines[i]), first + 8)
        print("   excerpt: sl_rx_burst inlined (rte_eth_fp_ops[port] -> rx_pkt_burst(rxq, pkts, 32)):")
        for l in lines[first:end + 1]: print("     " + l.strip())
    for target in sorted(set(indirect)):
        print(f"   indirect call {target}   (rx/tx burst through the fast-path ops table)")
    names = dict(zip(direct, demangle("\n".join(direct)).splitlines())) if direct else {}
    for target in sorted(set(direct)):
        print(f"   call {names.get(target, target)}")
        bare = target.split("@")[0]
        if FORBIDDEN.match(bare):
            print(f"   FAIL: {name} calls {target}: a per-packet wrapper was not inlined"); ok = False
        if ARC_OR_ALLOC.match(bare):
            print(f"   FAIL: {name} calls {target}"); ok = False
        if target.endswith("@plt") and target not in ALLOWED_LIBRARY and not ARC_OR_ALLOC.match(bare):
            print(f"   FAIL: {name} calls library function {target}"); ok = False
    expected = ["rdtsc", "rte_eth_fp_ops"] + (["prefetcht0"] if name.endswith("pipelineLoop") else [])
    missing = [e for e in expected if e not in text]
    if missing:
        print(f"   FAIL: {name}: inlined {', '.join(missing)} not found"); ok = False
    if any(".unsafeMutableAddressor" in names.get(t, "") for t in direct):
        print(f"   FAIL: {name} reads a lazily initialised global (hoist it out of the loop)"); ok = False

# Transitively: every Swift function the loops call directly, and what those call.
seen, queue = set(), [t for s in loops.values() for t in calls(disassemble(s))[0] if "@plt" not in t]
print("== reachable through direct calls (reference counting / allocation check)")
while queue:
    target = queue.pop()
    if target in seen or target not in symbols: continue
    seen.add(target)
    pretty = demangle(target).strip()
    direct, _ = calls(disassemble(target))
    bad = sorted({d for d in direct if ARC_OR_ALLOC.match(d.split("@")[0])})
    lazy = sorted({d for d in direct if LAZY_GLOBAL.match(d)})
    cold = any(c in pretty for c in COLD)
    print(f"   {pretty}{'  (cold path)' if cold else ''}{'  -> ' + ', '.join(bad) if bad else ''}"
          f"{'  (note: lazy global initialisation check, ' + ', '.join(lazy) + ')' if lazy else ''}")
    if bad and not cold:
        print(f"   FAIL: {pretty} calls {bad}"); ok = False
    queue += [d for d in direct if "@plt" not in d]

print("PASS: the worker loop inlines every sl_* wrapper and does no reference counting or allocation"
      if ok else "FAIL: see above")
sys.exit(0 if ok else 1)
PY
