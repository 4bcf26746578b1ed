// sluice-conntrack-bench: single-thread cost of the conntrack table, both sharing modes.
//
//     swift build -c release --scratch-path .build-ct-rel --product sluice-conntrack-bench
//     .build-ct-rel/release/sluice-conntrack-bench                 # 1k and 1M flows
//     .build-ct-rel/release/sluice-conntrack-bench --flows 1000,1000000,8000000 --two-threads
//     .build-ct-rel/release/sluice-conntrack-bench --alloc-check 100000   # for bench/conntrack-alloc-check.sh
//
// Each table is sized for 80 % occupancy at the flow count (capacity = flows × 1.25),
// prefaulted, on transparent huge pages. Every figure is the best of `--reps` runs (default 5). Keys are IPv4 TCP 5-tuples, hashed once up front (the
// hash is reported separately); lookups visit the keys in a random order so that a 1M-flow run
// is not helped by locality. Timings are wall-clock per operation over at least ~20 M operations.
// Results are printed, never asserted.

#if canImport(Glibc)
import Glibc
#endif
import SluiceConntrack

// MARK: Helpers

@inline(never)
func nanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct SplitMix {
    var s: UInt64
    mutating func next() -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Distinct IPv4 TCP keys: client 10.0.0.0/8-ish address and port from `n`, one VIP.
@inline(__always)
func key(_ n: Int, salt: UInt32) -> ConntrackKey {
    ConntrackKey(ipv4Source: 0x0A00_0000 &+ UInt32(truncatingIfNeeded: n >> 14) &+ salt,
                 destination: 0xC000_020A, sourcePort: UInt16(truncatingIfNeeded: 1024 + (n & 0x3FFF)),
                 destinationPort: 80, protocol: 6)
}

/// Keys and their hashes in flat buffers (no Array bounds checks or ARC in the timed loops), in
/// a random order: the loops read them sequentially — as a worker reads keys from the packets
/// in front of it — while the table is accessed at random.
final class KeySet {
    let keys: UnsafeMutableBufferPointer<ConntrackKey>
    let hashes: UnsafeMutableBufferPointer<UInt64>

    init(count: Int, salt: UInt32, seed: ConntrackHashSeed) {
        keys = .allocate(capacity: count)
        hashes = .allocate(capacity: count)
        var rng = SplitMix(s: UInt64(salt) &+ 7)
        for n in 0..<count { keys[n] = key(n, salt: salt) }
        for i in stride(from: count - 1, to: 0, by: -1) {
            keys.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        for n in 0..<count { hashes[n] = keys[n].hash(seed) }
    }

    deinit {
        keys.deallocate()
        hashes.deallocate()
    }
}

let syn = FlowEvent.tcp(flags: 0x02)
let ack = FlowEvent.tcp(flags: 0x10)

// MARK: Timed loops (each @inline(never), taking only the view and raw buffers)

@inline(never)
func insertAll(_ v: FlowTableView, _ ks: KeySet, now: UInt32) -> (ok: Int, full: Int) {
    var ok = 0, full = 0
    let keys = ks.keys, hashes = ks.hashes
    for n in 0..<keys.count {
        switch v.insert(keys[n], hash: hashes[n], value: FlowValue(backend: UInt32(n & 0xFFFF)),
                        event: syn, now: now) {
        case .full: full += 1
        default: ok += 1
        }
    }
    return (ok, full)
}

/// New flows with the VPP pipeline: prefetch the header 16 flows ahead and the entry to write
/// 8 ahead, then insert.
@inline(never)
func insertPrefetchAll(_ v: FlowTableView, _ ks: KeySet, now: UInt32) -> (ok: Int, full: Int) {
    var ok = 0, full = 0
    let keys = ks.keys, hashes = ks.hashes
    let n = keys.count
    for i in 0..<n {
        if i + 16 < n { v.prefetch(hash: hashes[i + 16]) }
        if i + 8 < n { v.prefetchEntry(hash: hashes[i + 8]) }
        switch v.insert(keys[i], hash: hashes[i], value: FlowValue(backend: UInt32(i & 0xFFFF)),
                        event: syn, now: now) {
        case .full: full += 1
        default: ok += 1
        }
    }
    return (ok, full)
}

@inline(never)
func lookupLoop(_ v: FlowTableView, _ ks: KeySet, ops: Int, now: UInt32) -> UInt64 {
    var sum: UInt64 = 0
    let keys = ks.keys, hashes = ks.hashes
    let n = keys.count
    var i = 0
    for _ in 0..<ops {
        let j = i
        if let h = v.lookup(keys[j], hash: hashes[j], now: now) { sum &+= UInt64(h.value.backend) } else { sum &+= 1 }
        i += 1
        if i == n { i = 0 }
    }
    return sum
}

/// The VPP pipeline: header prefetch `far` packets ahead, entry prefetch `near` packets ahead
/// (`near` 0: headers only — for a stream of misses, where no entry line is read).
@inline(never)
func lookupPrefetchLoop(_ v: FlowTableView, _ ks: KeySet, ops: Int, now: UInt32, far: Int, near: Int) -> UInt64 {
    var sum: UInt64 = 0
    let keys = ks.keys, hashes = ks.hashes
    let n = keys.count
    var i = 0
    var iFar = far % n
    var iNear = near % n
    for _ in 0..<ops {
        v.prefetch(hash: hashes[iFar])
        if near > 0 { v.prefetchEntry(hash: hashes[iNear]) }
        let j = i
        if let h = v.lookup(keys[j], hash: hashes[j], now: now) { sum &+= UInt64(h.value.backend) } else { sum &+= 1 }
        i += 1; if i == n { i = 0 }
        iFar += 1; if iFar == n { iFar = 0 }
        iNear += 1; if iNear == n { iNear = 0 }
    }
    return sum
}

/// Per packet of an established flow: lookup, then the state machine with the packet's flags.
@inline(never)
func lookupUpdateLoop(_ v: FlowTableView, _ ks: KeySet, ops: Int, now: UInt32, prefetch: Bool) -> UInt64 {
    var sum: UInt64 = 0
    let keys = ks.keys, hashes = ks.hashes
    let n = keys.count
    var i = 0
    var iFar = 16 % n
    var iNear = 8 % n
    for _ in 0..<ops {
        if prefetch {
            v.prefetch(hash: hashes[iFar])
            v.prefetchEntry(hash: hashes[iNear])
        }
        let j = i
        if var h = v.lookup(keys[j], hash: hashes[j], now: now), v.update(&h, event: ack, now: now) {
            sum &+= UInt64(h.value.backend)
        }
        i += 1; if i == n { i = 0 }
        iFar += 1; if iFar == n { iFar = 0 }
        iNear += 1; if iNear == n { iNear = 0 }
    }
    return sum
}

/// New flows at a steady population: remove a resident flow, insert a fresh one; after a full
/// round the two sets swap roles, so the table stays at `resident.count` flows.
@inline(never)
func churnLoop(_ v: FlowTableView, _ resident: KeySet, _ fresh: KeySet, ops: Int, now: UInt32,
               prefetch: Bool = false) -> Int {
    var full = 0
    let rk = resident.keys, rh = resident.hashes, fk = fresh.keys, fh = fresh.hashes
    let n = min(rk.count, fk.count)
    var j = 0
    var forward = true
    for _ in 0..<ops {
        if prefetch {
            // Both keys 16 operations ahead (header) and 8 ahead (entries), in this pass's roles.
            let far = j + 16 < n ? j + 16 : j + 16 - n
            let near = j + 8 < n ? j + 8 : j + 8 - n
            v.prefetch(hash: rh[far])
            v.prefetch(hash: fh[far])
            v.prefetchEntry(hash: forward ? rh[near] : fh[near])
            v.prefetchEntry(hash: forward ? fh[near] : rh[near])
        }
        if forward {
            v.remove(rk[j], hash: rh[j])
            if case .full = v.insert(fk[j], hash: fh[j], value: FlowValue(backend: 1), event: syn, now: now) { full += 1 }
        } else {
            v.remove(fk[j], hash: fh[j])
            if case .full = v.insert(rk[j], hash: rh[j], value: FlowValue(backend: 1), event: syn, now: now) { full += 1 }
        }
        j += 1
        if j == n {
            j = 0
            forward.toggle()
        }
    }
    return full
}

@inline(never)
func hashLoop(_ ks: KeySet, seed: ConntrackHashSeed, ops: Int) -> UInt64 {
    var x: UInt64 = 0
    let keys = ks.keys
    let n = keys.count
    var i = 0
    for _ in 0..<ops {
        x ^= keys[i].hash(seed)
        i += 1; if i == n { i = 0 }
    }
    return x
}

// MARK: Reporting

nonisolated(unsafe) var sink: UInt64 = 0

func fmt(_ x: Double, _ width: Int, _ decimals: Int) -> String {
    var s = "\(Int((x * pow(10, Double(decimals))).rounded()))"
    while s.count <= decimals { s = "0" + s }
    s.insert(".", at: s.index(s.endIndex, offsetBy: -decimals))
    return String(repeating: " ", count: max(0, width - s.count)) + s
}

/// CPU time of the calling thread around `body`: time slices lost to other processes on a
/// shared machine are not counted (their cache pollution still is).
func time(_ body: () -> Void) -> UInt64 {
    let t0 = threadNanos()
    body()
    return threadNanos() - t0
}

func threadNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func makeTable(flows: Int, sharing: FlowTableSharing) -> FlowTable {
    do {
        return try FlowTable(FlowTable.Configuration(capacity: flows + flows / 4, sharing: sharing,
                                                     prefault: true, hugePages: true))
    } catch {
        fatalError("\(error)")
    }
}

/// The fastest of `reps` runs of `body(mode)` for each mode, the modes interleaved run by run
/// so that both see the same background: on a shared two-core machine the slower runs measure
/// the neighbours, not the table.
func best(_ modes: [FlowTableSharing], _ body: (Int) -> UInt64) -> [UInt64] {
    var m = [UInt64](repeating: .max, count: modes.count)
    for _ in 0..<reps {
        for i in modes.indices { m[i] = min(m[i], body(i)) }
    }
    return m
}

func row(_ label: String, ops: Int, _ ns: [UInt64]) {
    var line = "  " + label + String(repeating: " ", count: max(0, 38 - label.count))
    for t in ns {
        let per = Double(t) / Double(ops)
        line += fmt(per, 8, 1) + " ns" + fmt(1e3 / per, 8, 2) + " Mops/s"
    }
    print(line)
}

func bench(flows: Int, modes: [FlowTableSharing], seed: ConntrackHashSeed, present: KeySet, absent: KeySet) {
    let ops = max(10_000_000, flows * 2)
    let now: UInt32 = 1000
    var tables = modes.map { makeTable(flows: flows, sharing: $0) }
    let t0 = tables[0]
    print("\(flows) flows: \(t0.view.slotCount) slots, \(t0.tableBytes) bytes per table, "
          + "\(fmt(Double(t0.tableBytes) / Double(flows), 0, 1)) bytes/flow at "
          + "\(fmt(Double(flows) * 100 / Double(t0.view.slotCount), 0, 1)) % load; best of \(reps)")
    var header = "  " + String(repeating: " ", count: 38)
    for m in modes { header += String(repeating: " ", count: 26 - "\(m)".count) + "\(m)" }
    print(header)

    var r = (ok: 0, full: 0)
    row("insert (fill 0 → 80 %)", ops: flows, best(modes) { i in
        tables[i] = makeTable(flows: flows, sharing: modes[i])
        let v = tables[i].view
        return time { r = insertAll(v, present, now: now) }
    })
    row("insert, prefetch 16/8 ahead", ops: flows, best(modes) { i in
        tables[i] = makeTable(flows: flows, sharing: modes[i])
        let v = tables[i].view
        return time { r = insertPrefetchAll(v, present, now: now) }
    })
    let views = tables.map(\.view)
    let occ = views[0].occupancy(now: now)
    print("    inserted \(r.ok), refused \(r.full); \(occ.displaced) outside their home bucket, "
          + "max distance \(occ.maxDisplacement)")
    // Warm the caches (and the TLB) once before timing lookups.
    for v in views { sink &+= lookupLoop(v, present, ops: flows, now: now) }
    row("lookup hit", ops: ops, best(modes) { i in
        time { sink &+= lookupLoop(views[i], present, ops: ops, now: now) }
    })
    row("lookup hit, prefetch 16/8 ahead", ops: ops, best(modes) { i in
        time { sink &+= lookupPrefetchLoop(views[i], present, ops: ops, now: now, far: 16, near: 8) }
    })
    row("lookup miss", ops: ops, best(modes) { i in
        time { sink &+= lookupLoop(views[i], absent, ops: ops, now: now) }
    })
    row("lookup miss, prefetch 16 ahead", ops: ops, best(modes) { i in
        time { sink &+= lookupPrefetchLoop(views[i], absent, ops: ops, now: now, far: 16, near: 0) }
    })
    row("lookup + update (established)", ops: ops, best(modes) { i in
        time { sink &+= lookupUpdateLoop(views[i], present, ops: ops, now: now, prefetch: false) }
    })
    row("lookup + update, prefetch", ops: ops, best(modes) { i in
        time { sink &+= lookupUpdateLoop(views[i], present, ops: ops, now: now, prefetch: true) }
    })
    let churnOps = max(2_000_000, flows)
    var refused = 0
    row("remove + insert (steady population)", ops: churnOps, best(modes) { i in
        time { refused += churnLoop(views[i], present, absent, ops: churnOps, now: now) }
    })
    row("remove + insert, prefetch 16/8 ahead", ops: churnOps, best(modes) { i in
        time { refused += churnLoop(views[i], present, absent, ops: churnOps, now: now, prefetch: true) }
    })
    let after = views[0].occupancy(now: now)
    print("    after churn: \(after.live) live, \(after.displaced) outside their home bucket, "
          + "max distance \(after.maxDisplacement), \(refused) inserts refused")
    row("expire sweep, per bucket (7 slots)", ops: views[0].bucketCount, best(modes) { i in
        time {
            var visited = 0
            while visited < views[i].bucketCount { visited += views[i].expire(now: now, budget: 256).visited }
        }
    })
    withExtendedLifetime(tables) {}
}

/// Two threads, each with its own flows (as RSS would split them): one shared table against
/// one table per thread, for lookup + update and for remove + insert churn (with prefetch).
nonisolated(unsafe) var jobs: [(view: FlowTableView, keys: KeySet, fresh: KeySet)] = []
nonisolated(unsafe) var jobNanos = [UInt64](repeating: 0, count: 2)
nonisolated(unsafe) var jobChurn = false
let twoThreadOps = 10_000_000

func jobMain(_ arg: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let t = Int(bitPattern: arg) - 1
    let job = jobs[t]
    var local: UInt64 = 0
    let ns = time {
        if jobChurn {
            local = UInt64(churnLoop(job.view, job.keys, job.fresh, ops: twoThreadOps / 5, now: 1000, prefetch: true))
        } else {
            local = lookupUpdateLoop(job.view, job.keys, ops: twoThreadOps, now: 1000, prefetch: true)
        }
    }
    jobNanos[t] = ns &+ (local & 0)
    return nil
}

func twoThreads(flows: Int, seed: ConntrackHashSeed) {
    let halves = [KeySet(count: flows / 2, salt: 0x100, seed: seed), KeySet(count: flows / 2, salt: 0x200, seed: seed)]
    let fresh = [KeySet(count: flows / 2, salt: 0x300, seed: seed), KeySet(count: flows / 2, salt: 0x400, seed: seed)]
    print("2 threads, \(flows) flows split between them (best of \(reps); per-thread ns/op, total Mops/s):")
    for churn in [false, true] {
        jobChurn = churn
        let ops = churn ? twoThreadOps / 5 : twoThreadOps
        for sharing in [FlowTableSharing.shared, .perWorker] {
            let tables = sharing == .shared
                ? [makeTable(flows: flows, sharing: .shared)]
                : [makeTable(flows: flows / 2, sharing: .perWorker), makeTable(flows: flows / 2, sharing: .perWorker)]
            jobs = (0..<2).map { (tables[sharing == .shared ? 0 : $0].view, halves[$0], fresh[$0]) }
            for t in 0..<2 { _ = insertAll(jobs[t].view, jobs[t].keys, now: 1000) }
            var bestTotal = 0.0
            var bestPer = (0.0, 0.0)
            for _ in 0..<reps {
                var threads = [pthread_t](repeating: pthread_t(), count: 2)
                for t in 0..<2 { pthread_create(&threads[t], nil, jobMain, UnsafeMutableRawPointer(bitPattern: t + 1)) }
                for t in 0..<2 { pthread_join(threads[t], nil) }
                let per = (Double(jobNanos[0]) / Double(ops), Double(jobNanos[1]) / Double(ops))
                let total = 1e3 / per.0 + 1e3 / per.1
                if total > bestTotal { bestTotal = total; bestPer = per }
            }
            let what = churn ? "remove + insert, prefetch" : "lookup + update, prefetch"
            let label = sharing == .shared ? "one shared table" : "one table per thread"
            print("  \(what), \(label): \(fmt(bestPer.0, 0, 1)) / \(fmt(bestPer.1, 0, 1)) ns, "
                  + "\(fmt(bestTotal, 0, 2)) Mops/s")
            jobs = []
            withExtendedLifetime(tables) {}
        }
    }
}

/// A fixed number of every hot-path operation, for counting heap allocations under valgrind:
/// two runs with different `ops` must report the same number of allocations.
func allocCheck(ops: Int, seed: ConntrackHashSeed) {
    let ks = KeySet(count: 4096, salt: 1, seed: seed)
    let miss = KeySet(count: 4096, salt: 2, seed: seed)
    let table = makeTable(flows: 4096, sharing: .shared)
    let owned = makeTable(flows: 4096, sharing: .perWorker)
    for v in [table.view, owned.view] {
        _ = insertAll(v, ks, now: 1)
        sink &+= lookupLoop(v, ks, ops: ops, now: 1)
        sink &+= lookupPrefetchLoop(v, miss, ops: ops, now: 1, far: 16, near: 8)
        sink &+= lookupUpdateLoop(v, ks, ops: ops, now: 2, prefetch: true)
        _ = churnLoop(v, ks, miss, ops: ops, now: 3)
        _ = v.expire(now: 100_000, budget: v.bucketCount)
    }
    print("alloc-check: \(ops) operations of each kind done (\(sink & 1))")
}

// MARK: Main

var flowCounts = [1000, 1_000_000]
var modes: [FlowTableSharing] = [.shared, .perWorker]
var withTwoThreads = false
nonisolated(unsafe) var reps = 5
var allocOps: Int? = nil
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--flows": flowCounts = (args.popFirst() ?? "").split(separator: ",").compactMap { Int($0) }
    case "--mode": modes = (args.popFirst() ?? "") == "shared" ? [.shared] : [.perWorker]
    case "--two-threads": withTwoThreads = true
    case "--reps": reps = max(1, Int(args.popFirst() ?? "") ?? 5)
    case "--alloc-check": allocOps = Int(args.popFirst() ?? "") ?? 100_000
    default:
        print("usage: sluice-conntrack-bench [--flows N,N...] [--mode shared|per-worker] [--reps N] [--two-threads] [--alloc-check OPS]")
        exit(2)
    }
}

let seed = ConntrackHashSeed(0xB3EC4)
if let allocOps {
    allocCheck(ops: allocOps, seed: seed)
    exit(0)
}

print("sluice-conntrack-bench: \(FlowTable.bytesPerSlot) bytes per slot (64-byte header line per 7 slots + 48-byte entries)")
let hashKeys = KeySet(count: 1 << 16, salt: 9, seed: seed)
row("ConntrackKey.hash (40-byte key)", ops: 20_000_000,
    best([.shared]) { _ in time { sink &+= hashLoop(hashKeys, seed: seed, ops: 20_000_000) } })
for flows in flowCounts {
    let present = KeySet(count: flows, salt: 0, seed: seed)
    let absent = KeySet(count: flows, salt: 0x4000_0000, seed: seed)
    bench(flows: flows, modes: modes, seed: seed, present: present, absent: absent)
}
if withTwoThreads { twoThreads(flows: 1_000_000, seed: seed) }
print("(checksum \(sink & 0xFFFF))")
