import Foundation
@testable import SluiceConntrack
import SluiceCore
import Synchronization
import Testing

/// Several threads insert, look up, update, expire, flush, list and delete at once over shared
/// buckets, then the table is checked: no key in two slots, no tracked key lost, every overflow
/// counter exact. Meant to run under ThreadSanitizer:
///
///     swift test --sanitize=thread --scratch-path .build-ct-tsan --filter SluiceConntrackTests
///
/// Bounded by iteration counts (a few seconds under TSan on two cores). The hashes are folded
/// onto a few home buckets so that probe windows overlap and overflow counters, tag collisions
/// and same-key races are exercised all the time.
@Suite("FlowTable concurrency", .serialized)
struct FlowTableStressTests {
    // MARK: Harness

    /// Runs `body(t)` on `count` threads that start together; returns when all have finished.
    static func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let ready = Counter()
        let done = DispatchGroup()
        for t in 0..<count {
            done.enter()
            let thread = Thread {
                ready.value.add(1, ordering: .sequentiallyConsistent)
                while ready.value.load(ordering: .sequentiallyConsistent) < count { sched_yield() }
                body(t)
                done.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        done.wait()
    }

    final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    /// Per-thread results collected after the threads finished.
    final class Results<Value: Sendable>: Sendable {
        let slots: Mutex<[Int: Value]> = Mutex([:])
        func put(_ t: Int, _ v: Value) { slots.withLock { $0[t] = v } }
        func all() -> [Int: Value] { slots.withLock { $0 } }
    }

    struct Rng {
        var s: UInt64
        mutating func next() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// The key's real hash, folded so that its home is one of `homes` buckets spaced `spacing`
    /// apart in a table of `buckets` buckets; the tag keeps only 3 bits so that tag matches
    /// between different keys are frequent (the full-key compare must sort them out).
    static func crowdedHash(_ k: ConntrackKey, homes: Int, spacing: Int, buckets: Int) -> UInt64 {
        let h = k.hash(T.seed)
        return T.hash(bucket: Int((h >> 32) % UInt64(homes)) * spacing, of: buckets, tag: h & 0x7)
    }

    /// Every VALID entry's key, with multiplicity; fails the test on a duplicate.
    static func checkNoDuplicates(_ v: FlowTableView, now: UInt32) -> [ConntrackKey: FlowSnapshot] {
        var seen: [ConntrackKey: FlowSnapshot] = [:]
        var dups = 0
        v.forEach(now: now) { s in
            if seen.updateValue(s, forKey: s.key) != nil { dups += 1 }
            return true
        }
        #expect(dups == 0, "a key appears in two slots")
        let o = v.occupancy(now: now)
        #expect(o.inFlight == 0, "an insert was left BUSY or PENDING")
        #expect(v.displacementRecordsAreExact(), "displacement records drifted")
        return seen
    }

    // MARK: Racing inserts of the same keys

    /// All threads insert the same keys at once, each with its own value. Exactly one insert per
    /// key wins; every other thread is handed the winner's entry; the table holds each key once.
    @Test func racingInsertsOfTheSameKeysLeaveOneEntryEach() throws {
        let threads = 4, keys = 150, rounds = 60
        for round in 0..<rounds {
            let table = try T.table(7 * 32)
            let v = table.view
            let keyList = (0..<keys).map { T.v4($0 &* 7919 &+ round) }
            let hashes = keyList.map { Self.crowdedHash($0, homes: 8, spacing: 4, buckets: v.bucketCount) }
            let results = Results<[(Int, UInt8, UInt32, Bool)]>()   // (key, kind, backend, pending)
            Self.runThreads(threads) { t in
                var rng = Rng(s: UInt64(round * 100 + t))
                var order = Array(0..<keys)
                for i in stride(from: keys - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
                var out: [(Int, UInt8, UInt32, Bool)] = []
                out.reserveCapacity(keys)
                for n in order {
                    switch v.insert(keyList[n], hash: hashes[n], value: FlowValue(backend: UInt32(t)),
                                    event: T.ack, now: 100) {
                    case .inserted(let h): out.append((n, 0, h.value.backend, false))
                    case .existing(let h): out.append((n, 1, h.value.backend, h.isPending))
                    case .replaced(let h, _): out.append((n, 2, h.value.backend, false))
                    case .full: out.append((n, 3, 0, false))
                    }
                }
                results.put(t, out)
            }
            let stored = Self.checkNoDuplicates(v, now: 100)
            var winners = [Int](repeating: 0, count: keys)
            for (_, out) in results.all() {
                for (n, kind, backend, pending) in out {
                    #expect(kind != 3 && kind != 2, "no eviction or full expected at this load")
                    let final = try #require(stored[keyList[n]], "key \(n) lost")
                    if kind == 0 {
                        winners[n] += 1
                        #expect(final.value.backend == backend, "the winner's value is stored")
                    } else if !pending {
                        #expect(final.value.backend == backend, "losers are handed the winner's entry")
                    }
                }
            }
            #expect(winners.allSatisfy { $0 == 1 }, "exactly one insert per key wins")
            #expect(stored.count == keys)
        }
    }

    // MARK: Updates racing removals

    /// One thread inserts and removes a few keys over and over; three others look them up and
    /// update them with a changing clock (so that every update writes). A removed entry must
    /// stay removed: an update that raced the removal must fail, never bring the entry back.
    @Test(arguments: [FlowTableSharing.shared, .perWorker])
    func updatesNeverResurrectRemovedEntries(sharing: FlowTableSharing) throws {
        let table = try T.table(14, sharing)
        let v = table.view
        let keys = (0..<6).map { T.v4($0, proto: IPProtocol.udp) }
        let hashes = keys.map { $0.hash(T.seed) }
        let running = Counter()
        running.value.store(1, ordering: .relaxed)
        let failures = Counter()
        let updates = Counter()
        Self.runThreads(4) { t in
            if t == 0 {
                for round in 0..<4000 {
                    for (k, h) in zip(keys, hashes) where !v.insert(k, hash: h, value: FlowValue(backend: UInt32(round)),
                                                                  event: .packet(), now: 1000).isInserted {
                        failures.value.add(1, ordering: .relaxed)   // a removed entry came back
                    }
                    for (k, h) in zip(keys, hashes) where !v.remove(k, hash: h) {
                        failures.value.add(1, ordering: .relaxed)
                    }
                    for (k, h) in zip(keys, hashes) where v.lookup(k, hash: h, now: 1000) != nil {
                        failures.value.add(1, ordering: .relaxed)
                    }
                }
                running.value.store(0, ordering: .releasing)
                return
            }
            var rng = Rng(s: UInt64(t))
            var i: UInt32 = 0
            while running.value.load(ordering: .acquiring) != 0 {
                let n = rng.below(keys.count)
                i &+= 1
                if var e = v.lookup(keys[n], hash: hashes[n], now: 1000), v.update(&e, event: .packet(), now: 1000 + (i & 7)) {
                    updates.value.add(1, ordering: .relaxed)
                }
            }
        }
        #expect(failures.value.load(ordering: .relaxed) == 0)
        #expect(updates.value.load(ordering: .relaxed) > 0)
        let o = v.occupancy(now: 1000)
        #expect(o.live == 0 && o.inFlight == 0 && o.recordedDisplaced == 0)
    }

    // MARK: Mixed churn

    /// Four workers churn over shared buckets while an expiry thread sweeps and a control thread
    /// lists and flushes. Each worker also owns "durable" keys (established, never evictable or
    /// expiring) and checks them exactly against its own model; at the end every durable key the
    /// model holds is present exactly once with its value, the others are absent, and no key of
    /// any kind appears twice.
    @Test(arguments: [FlowTableSharing.shared, .perWorker])
    func churnWithExpiryFlushAndListing(sharing: FlowTableSharing) throws {
        let workers = 4, durablePerWorker = 40, chaosKeys = 100, ephemeralPerWorker = 20, ops = 40_000
        let table = try T.table(7 * 64, sharing)
        let v = table.view
        let buckets = v.bucketCount
        let durable = (0..<workers).map { t in (0..<durablePerWorker).map { T.v6(t * 1000 + $0, zone: 1) } }
        let ephemeral = (0..<workers).map { t in
            (0..<ephemeralPerWorker).map { T.v4(t * 1000 + $0, proto: IPProtocol.tcp, zone: 3) }
        }
        let chaos = (0..<chaosKeys).map { T.v4($0, proto: IPProtocol.udp, zone: 2) }
        let hash: @Sendable (ConntrackKey) -> UInt64 = {
            Self.crowdedHash($0, homes: 16, spacing: 4, buckets: buckets)
        }
        let running = Counter()
        running.value.store(workers, ordering: .relaxed)
        let models = Results<Set<Int>>()
        let failures = Counter()

        Self.runThreads(workers + 2) { t in
            if t == workers {
                // Ageing: sweep continuously at a clock where only the ephemeral (CLOSE, 10 s)
                // entries inserted at 1000 have expired.
                while running.value.load(ordering: .acquiring) > 0 { _ = v.expire(now: 1015, budget: 5) }
                return
            }
            if t == workers + 1 {
                // Control thread: count, list and flush (ephemeral keys of odd backends).
                var rounds = 0
                while running.value.load(ordering: .acquiring) > 0 || rounds < 3 {
                    _ = v.count(now: 1000)
                    _ = v.list(now: 1000, matching: FlowFilter(zone: 1), limit: 10)
                    _ = v.flush(now: 1000) { $0.key.zone == 3 && $0.value.backend % 2 == 1 }
                    rounds += 1
                }
                return
            }
            // A worker. In perWorker mode only worker 0 inserts (the table's owner); the others
            // look up, update and remove.
            let mayInsert = sharing == .shared || t == 0
            var rng = Rng(s: UInt64(0xC0FFEE + t))
            var model = Set<Int>()
            func fail() { failures.value.add(1, ordering: .relaxed) }
            for _ in 0..<ops {
                let op = rng.below(100)
                switch op {
                case 0..<40:   // durable key, exact model
                    let j = rng.below(durablePerWorker)
                    let k = durable[t][j]
                    let h = hash(k)
                    switch rng.below(4) {
                    case 0 where mayInsert:
                        let r = v.insert(k, hash: h, value: FlowValue(backend: UInt32(t), aux: UInt32(j)),
                                         event: T.ack, now: 1000)
                        switch r {
                        case .inserted, .replaced:
                            if model.contains(j) { fail() }
                            model.insert(j)
                        case .existing(let e):
                            if !model.contains(j) || e.value != FlowValue(backend: UInt32(t), aux: UInt32(j)) { fail() }
                        case .full:
                            if model.contains(j) { fail() }
                        }
                    case 1:
                        if v.remove(k, hash: h) != model.contains(j) { fail() }
                        model.remove(j)
                    case 2:
                        if var e = v.lookup(k, hash: h, now: 1000) {
                            if !model.contains(j) || e.value.aux != UInt32(j) { fail() }
                            if !v.update(&e, event: T.ack, now: 1000) { fail() }
                        } else if model.contains(j) {
                            fail()
                        }
                    default:
                        if (v.lookup(k, hash: h, now: 1000) != nil) != model.contains(j) { fail() }
                    }
                case 40..<55 where mayInsert:   // ephemeral: expire under the sweeper, flushed by control
                    let k = ephemeral[t][rng.below(ephemeralPerWorker)]
                    _ = v.insert(k, hash: hash(k), value: FlowValue(backend: UInt32(rng.below(4))),
                                 event: T.rst, now: 1000)
                default:       // chaos: any thread, any key, any operation, two clocks
                    let k = chaos[rng.below(chaosKeys)]
                    let h = hash(k)
                    let now: UInt32 = rng.below(2) == 0 ? 1000 : 1015
                    switch rng.below(5) {
                    case 0 where mayInsert, 1 where mayInsert:
                        if let e = v.insert(k, hash: h, value: FlowValue(backend: UInt32(t)), event: .packet(),
                                            now: now).handle, e.value.backend >= UInt32(workers) { fail() }
                    case 2:
                        _ = v.remove(k, hash: h)
                    default:
                        if var e = v.lookup(k, hash: h, now: now) {
                            if e.value.backend >= UInt32(workers) { fail() }
                            _ = v.update(&e, event: .packet(reply: true), now: now)
                        }
                    }
                }
            }
            models.put(t, model)
            running.value.subtract(1, ordering: .releasing)
        }

        #expect(failures.value.load(ordering: .relaxed) == 0, "a worker saw its own keys misbehave")
        let final = Self.checkNoDuplicates(v, now: 1000)
        for (t, model) in models.all() {
            for j in 0..<durablePerWorker {
                let s = final[durable[t][j]]
                if model.contains(j) {
                    #expect(s?.value == FlowValue(backend: UInt32(t), aux: UInt32(j)), "durable key lost")
                    #expect(s?.state == .tcpEstablished)
                } else {
                    #expect(s == nil, "a removed durable key came back")
                }
            }
        }
        // The table is still fully usable: every chaos key can be inserted and found once.
        var usable = 0
        for k in chaos {
            let r = v.insert(k, hash: hash(k), value: FlowValue(backend: 0), event: .packet(), now: 1000)
            if let h = r.handle, v.lookup(k, hash: hash(k), now: 1000)?.slot == h.slot { usable += 1 }
        }
        #expect(usable > chaosKeys / 2)
        _ = Self.checkNoDuplicates(v, now: 1000)
    }
}
