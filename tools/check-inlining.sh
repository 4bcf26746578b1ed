#!/usr/bin/env bash
# Proves from the release binary that the worker loop is what the source says it is:
#
#  1. no call to any per-packet CDPDK wrapper (every `SL_ALWAYS_INLINE` function of
#     CShims/CDPDK/include/cdpdk.h) nor to the DPDK inline functions they wrap: they were
#     inlined into the Swift loop. What remains of rx/tx burst is an indirect call through DPDK's
#     fast-path table `rte_eth_fp_ops` (as in C), plus the never-taken branch to
#     rte_eth_call_{rx,tx}_callbacks; rte_pktmbuf_free_bulk is an exported function in 22.11 and
#     stays a call (drop path only);
#  2. the inlined bodies are there: rdtsc, prefetcht0 (pipeline), loads from rte_eth_fp_ops;
#  3. inside the loop, and in everything it reaches through direct calls, nothing touches a
#     reference count or allocates (swift_retain/release, swift_allocObject, swift_slowAlloc,
#     malloc). The loop is the span of the backward jumps around the RX burst call; calls outside
#     it (setup before, final flush after) are listed, not failed. Functions named in COLD (idle back-off, TX-full drops,
#     once-a-second chores) are listed and not descended into.
#
# Usage: tools/check-inlining.sh [--no-build]     (SCRATCH=.build-dpdk by default)
# Prints the evidence and PASS or FAIL; exit status 0 on PASS.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRATCH=${SCRATCH:-.build-dpdk}
BIN="$SCRATCH/release/sluiced"
if [ "${1:-}" != "--no-build" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product sluiced 2>&1 | grep -E "error|Build" | tail -3
fi
[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; exit 1; }
command -v objdump >/dev/null || { echo "FAIL: objdump (binutils) not installed"; exit 1; }

exec /usr/bin/python3 - "$BIN" CShims/CDPDK/include/cdpdk.h <<'PY'
import re, subprocess, sys

binary, header = sys.argv[1], sys.argv[2]

def run(*args, stdin=None):
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=True).stdout

symbols = {}
for line in run("nm", binary).splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tT":
        symbols[parts[2]] = int(parts[0], 16)

def demangle_all(names):
    names = list(names)
    return dict(zip(names, run("swift", "demangle", "--simplified", stdin="\n".join(names)).splitlines())) if names else {}

def find(pattern):
    hits = [s for s in symbols if re.search(pattern, s)]
    if len(hits) != 1:
        print(f"FAIL: expected one symbol matching {pattern}, found {hits}")
        sys.exit(1)
    return hits[0]

INSN = re.compile(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$")
def disassemble(symbol):
    out = run("objdump", "-d", "--no-show-raw-insn", f"--disassemble={symbol}", binary)
    return [(int(m.group(1), 16), m.group(2), m.group(3), l) for l in out.splitlines() if (m := INSN.match(l))]

def call_target(op, args):
    if op != "call": return None
    m = re.match(r"[0-9a-f]+\s+<([^>]+)>", args)
    return m.group(1) if m else "*" + args.split("#")[0].strip().lstrip("*")

# The per-packet wrappers: every always-inline function of the CDPDK header.
inline_wrappers = set(re.findall(r"SL_ALWAYS_INLINE\s+[^(]*?\b(sl_\w+)\s*\(", open(header).read()))
FORBIDDEN = re.compile(r"^(" + "|".join(sorted(inline_wrappers)) +
                       r"|rte_eth_rx_burst|rte_eth_tx_burst|rte_pktmbuf_(?!free_bulk)|rte_prefetch|rte_rdtsc|rte_pause|rte_mempool)(@|$)")
ALLOWED_LIBRARY = {"rte_eth_call_rx_callbacks@plt", "rte_eth_call_tx_callbacks@plt", "rte_pktmbuf_free_bulk@plt"}
ARC_OR_ALLOC = re.compile(r"^(swift_retain|swift_release|swift_bridgeObjectRe|swift_allocObject|swift_slowAlloc|malloc|calloc|realloc|free@|swift_beginAccess)")
LAZY_GLOBAL = re.compile(r"^swift_once")
# Cold by design: the idle back-off, drops when a TX queue is full, logging, once-a-second chores.
COLD = ("backOff", "dropUnsent", "logFallback", "solicitNeighbors", "sendAnnouncements")

loops = {
    "Worker.pipelineLoop": find(r"6Worker.*12pipelineLoop.*F$"),
    "Worker.ioLoop": find(r"6Worker.*6ioLoop.*F$"),
}

def loop_span(insns):
    """Addresses of the polling loop: the union of backward-jump ranges that contain the first
    indirect call after a load of rte_eth_fp_ops (the RX burst)."""
    fp = next((i for i, x in enumerate(insns) if "rte_eth_fp_ops" in x[3]), None)
    if fp is None: return None
    rx = next((x[0] for x in insns[fp:] if x[1] == "call" and "*" in x[2]), None)
    if rx is None: return None
    lo = hi = rx
    changed = True
    jumps = []
    start = insns[0][0]
    for address, op, args, _ in insns:
        if op.startswith("j"):
            m = re.match(r"([0-9a-f]+)\s+<", args)
            # A tail call (`jmp swift_release@plt`) jumps backwards too, out of the function: only
            # jumps to this function's own code delimit loops.
            if m and start <= int(m.group(1), 16) < address: jumps.append((int(m.group(1), 16), address))
    while changed:
        changed = False
        for target, source in jumps:
            if target <= hi and source >= lo and (target < lo or source > hi):
                lo, hi, changed = min(lo, target), max(hi, source), True
    return lo, hi

ok = True
reachable = []
for name, symbol in loops.items():
    insns = disassemble(symbol)
    text = "\n".join(x[3] for x in insns)
    span = loop_span(insns)
    calls = [(x[0], call_target(x[1], x[2])) for x in insns if x[1] == "call"]
    names = demangle_all({t for _, t in calls if not t.startswith("*")})
    print(f"== {name}  ({len(insns)} instructions; loop {hex(span[0]) if span else '?'}..{hex(span[1]) if span else '?'})")
    print(f"   rdtsc: {text.count('rdtsc')}   prefetcht0: {text.count('prefetcht0')}   "
          f"rte_eth_fp_ops loads: {text.count('rte_eth_fp_ops')}")
    if name.endswith("pipelineLoop") and span:
        first = next(i for i, x in enumerate(insns) if "rte_eth_fp_ops" in x[3] and x[0] >= span[0])
        end = next(i for i in range(first, len(insns)) if insns[i][1] == "call")
        print("   excerpt: sl_rx_burst inlined (rte_eth_fp_ops[port] -> rx_pkt_burst(rxq, pkts, 32)):")
        for x in insns[first:end + 1]: print("     " + x[3].strip())
    expected = ["rdtsc", "rte_eth_fp_ops"] + (["prefetcht0"] if name.endswith("pipelineLoop") else [])
    missing = [e for e in expected if e not in text]
    if missing or not span:
        print(f"   FAIL: inlined {', '.join(missing) or 'RX burst'} not found"); ok = False
    seen_here = set()
    for address, target in calls:
        inside = span and span[0] <= address <= span[1]
        where = "loop" if inside else "outside loop"
        if target.startswith("*"):
            if (where, "indirect") not in seen_here:
                print(f"   {where}: indirect call(s) {target}   (rx/tx burst through rte_eth_fp_ops, or a closure)")
            seen_here.add((where, "indirect")); continue
        key = (where, target)
        if key in seen_here: continue
        seen_here.add(key)
        pretty = names.get(target, target)
        bare = target.split("@")[0]
        print(f"   {where}: call {pretty}")
        if FORBIDDEN.match(bare):
            print(f"   FAIL: {target} is a per-packet inline wrapper that was not inlined"); ok = False
        if inside and ARC_OR_ALLOC.match(bare):
            print(f"   FAIL: reference counting or allocation inside the loop: {target}"); ok = False
        if inside and ".unsafeMutableAddressor" in pretty:
            print(f"   FAIL: the loop reads a lazily initialised global (hoist it out): {pretty}"); ok = False
        if inside and target.endswith("@plt") and target not in ALLOWED_LIBRARY and not ARC_OR_ALLOC.match(bare):
            print(f"   FAIL: the loop calls library function {target}"); ok = False
        if inside and not target.endswith("@plt"):
            reachable.append(target)

print("== reachable from the loops through direct calls (reference counting / allocation check)")
seen = set()
while reachable:
    target = reachable.pop()
    if target in seen or target not in symbols: continue
    seen.add(target)
    pretty = demangle_all([target])[target].strip()
    cold = any(c in pretty for c in COLD)
    direct = [t for x in disassemble(target) if (t := call_target(x[1], x[2])) and not t.startswith("*")]
    bad = sorted({d for d in direct if ARC_OR_ALLOC.match(d.split("@")[0])})
    lazy = sorted({d for d in direct if LAZY_GLOBAL.match(d)})
    print(f"   {pretty}{'  (cold, not descended into)' if cold else ''}"
          f"{'  -> ' + ', '.join(bad) if bad else ''}"
          f"{'  (note: lazy global initialisation check)' if lazy else ''}")
    if cold: continue
    if bad:
        print(f"   FAIL: {pretty} calls {bad}"); ok = False
    reachable += [d for d in direct if "@plt" not in d]

print("PASS: the worker loops inline every per-packet sl_* wrapper and do no reference counting or allocation"
      if ok else "FAIL: see above")
sys.exit(0 if ok else 1)
PY
