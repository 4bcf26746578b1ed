@testable import SluiceConntrack
import SluiceCore
import Testing

@Suite("FlowTable")
struct FlowTableTests {
    static let modes: [FlowTableSharing] = [.shared, .perWorker]

    /// full-NAT's return entries name their forward entry by (slot, generation tag): the
    /// reference resolves while that incarnation lives and never to a later one in the slot.
    @Test(arguments: modes)
    func entryReferencesResolveOnlyToTheirIncarnation(sharing: FlowTableSharing) throws {
        let table = try T.table(1000, sharing)
        let v = table.view
        let k = T.v4(7)
        let first = try #require(v.insert(k, hash: k.hash(T.seed), value: FlowValue(backend: 1, aux: 2), event: T.syn,
                                          now: 10).handle)
        let found = try #require(v.entry(slot: first.slot, generationTag: first.generationTag))
        #expect(found.key == k && found.handle.value == FlowValue(backend: 1, aux: 2))
        #expect(v.entry(slot: first.slot, generationTag: first.generationTag &+ 1) == nil)
        #expect(v.entry(slot: -1, generationTag: 0) == nil && v.entry(slot: v.slotCount, generationTag: 0) == nil)
        #expect(v.remove(first))
        #expect(v.entry(slot: first.slot, generationTag: first.generationTag) == nil)
        // The same key again lands in the same slot: a new incarnation, the old reference stays dead.
        let second = try #require(v.insert(k, hash: k.hash(T.seed), value: FlowValue(backend: 3), event: T.syn, now: 11).handle)
        #expect(second.slot == first.slot && second.generationTag != first.generationTag)
        #expect(v.entry(slot: first.slot, generationTag: first.generationTag) == nil)
        #expect(v.entry(slot: second.slot, generationTag: second.generationTag)?.handle.value.backend == 3)
    }

    @Test(arguments: modes)
    func insertLookupRemoveIPv4AndIPv6(sharing: FlowTableSharing) throws {
        let table = try T.table(1000, sharing)
        let v = table.view
        let keys = (0..<200).map { T.v4($0) } + (0..<200).map { T.v6($0, proto: IPProtocol.udp) }
        for (n, k) in keys.enumerated() {
            let r = v.insert(k, hash: k.hash(T.seed), value: FlowValue(backend: UInt32(n), aux: 7),
                             event: k.proto == IPProtocol.tcp ? T.syn : .packet(), now: 10)
            #expect(r.isInserted)
        }
        for (n, k) in keys.enumerated() {
            let h = try #require(v.lookup(k, hash: k.hash(T.seed), now: 11))
            #expect(h.value == FlowValue(backend: UInt32(n), aux: 7))
            #expect(h.state == (k.proto == IPProtocol.tcp ? .tcpSynRecv : .udp))
            #expect(v.snapshot(slot: h.slot, now: 11)?.key == k)
        }
        // A second insert returns the entry already there, with the first value.
        let again = v.insert(keys[5], hash: keys[5].hash(T.seed), value: FlowValue(backend: 999), event: T.syn, now: 12)
        #expect(again.isExisting && again.handle?.value.backend == 5)
        // Absent keys miss, including a key differing only in the zone or the address family.
        #expect(v.lookup(T.v4(5000), hash: T.v4(5000).hash(T.seed), now: 11) == nil)
        #expect(v.lookup(T.v4(5, zone: 1), hash: T.v4(5, zone: 1).hash(T.seed), now: 11) == nil)
        // Remove half by key, half by handle.
        for (n, k) in keys.enumerated() {
            if n % 2 == 0 {
                #expect(v.remove(k, hash: k.hash(T.seed)))
            } else {
                let h = try #require(v.lookup(k, hash: k.hash(T.seed), now: 11))
                #expect(v.remove(h))
                #expect(!v.remove(h))               // a handle removes its incarnation once
            }
            #expect(v.lookup(k, hash: k.hash(T.seed), now: 11) == nil)
        }
        let o = v.occupancy(now: 11)
        #expect(o.live == 0 && o.inFlight == 0 && o.recordedDisplaced == 0)
    }

    /// The table works with a hash that does not come from `ConntrackKey.hash` (the Maglev flow
    /// hash, say), and two keys with the same hash are still told apart by the full key.
    @Test func fullKeyComparisonSeparatesIdenticalHashes() throws {
        let table = try T.table(70)
        let v = table.view
        let h: UInt64 = 0xDEAD_BEEF_0000_0123
        for n in 0..<10 {
            #expect(v.insert(T.v4(n), hash: h, value: FlowValue(backend: UInt32(n)), event: T.syn, now: 0).isInserted)
        }
        for n in 0..<10 { #expect(v.lookup(T.v4(n), hash: h, now: 0)?.value.backend == UInt32(n)) }
        #expect(v.occupancy(now: 0).displaced == 3)   // 7 in the home bucket, 3 in the next one
    }

    @Test(arguments: modes)
    func staleHandlesFailCleanly(sharing: FlowTableSharing) throws {
        let table = try T.table(70, sharing)
        let v = table.view
        let k = T.v4(1), h = k.hash(T.seed)
        var old = try #require(v.insert(k, hash: h, value: FlowValue(backend: 1), event: T.syn, now: 0).handle)
        #expect(v.remove(k, hash: h))
        // The slot is reused by another incarnation of the same key.
        let new = try #require(v.insert(k, hash: h, value: FlowValue(backend: 2), event: T.syn, now: 0).handle)
        #expect(new.slot == old.slot)
        #expect(!v.update(&old, event: T.ack, now: 1))
        #expect(!v.remove(old))
        #expect(v.lookup(k, hash: h, now: 1)?.value.backend == 2)
        #expect(v.lookup(k, hash: h, now: 1)?.state == .tcpSynRecv)
    }

    @Test(arguments: modes)
    func updateWritesOnlyOnChange(sharing: FlowTableSharing) throws {
        let table = try T.table(70, sharing)
        let v = table.view
        let k = T.v4(1, proto: IPProtocol.udp), h = k.hash(T.seed)
        var e = try #require(v.insert(k, hash: h, value: FlowValue(backend: 1), event: .packet(), now: 50).handle)
        let word = e.control
        #expect(v.update(&e, event: .packet(), now: 50))
        #expect(e.control == word)                                     // same tick: no write
        #expect(v.update(&e, event: .packet(reply: true), now: 51))
        #expect(e.state == .udpReplied && e.replySeen && e.remaining(now: 51) == 120)
        #expect(v.lookup(k, hash: h, now: 52)?.state == .udpReplied)
    }

    /// Lookups treat an entry past its deadline as absent; an insert of the same key reclaims its
    /// slot (no second entry); the sweep frees the others.
    @Test(arguments: modes)
    func expiryByLookupReclaimAndSweep(sharing: FlowTableSharing) throws {
        let table = try T.table(7 * 40, sharing)
        let v = table.view
        for n in 0..<100 {
            let k = T.v4(n, proto: IPProtocol.udp)
            _ = v.insert(k, hash: k.hash(T.seed), value: FlowValue(backend: 1), event: .packet(), now: 1000)
        }
        // Keep every tenth flow alive with a packet at 1020.
        for n in stride(from: 0, to: 100, by: 10) {
            let k = T.v4(n, proto: IPProtocol.udp)
            var e = try #require(v.lookup(k, hash: k.hash(T.seed), now: 1020))
            #expect(v.update(&e, event: .packet(), now: 1020))
        }
        let k1 = T.v4(1, proto: IPProtocol.udp)
        #expect(v.lookup(k1, hash: k1.hash(T.seed), now: 1029) != nil)
        #expect(v.lookup(k1, hash: k1.hash(T.seed), now: 1030) == nil)
        #expect(v.occupancy(now: 1030).expired == 90)

        let again = v.insert(k1, hash: k1.hash(T.seed), value: FlowValue(backend: 2), event: .packet(), now: 1030)
        #expect(again.isInserted && again.handle?.value.backend == 2)
        #expect(v.count(now: 1030, matching: FlowFilter(includeExpired: true)) == 100)  // reclaimed in place

        // An incremental sweep in small steps frees exactly the 89 other expired entries.
        var freed = 0, visited = 0, passes = 0
        while passes == 0 {
            let r = v.expire(now: 1030, budget: 7)
            freed += r.freed
            visited += r.visited
            if r.passCompleted { passes += 1 }
        }
        #expect(visited >= v.bucketCount && visited < v.bucketCount + 7 && freed == 89)
        let o = v.occupancy(now: 1030)
        #expect(o.live == 11 && o.expired == 0 && v.displacementRecordsAreExact())
        #expect(v.expire(now: 1030, budget: 1000).freed == 0)
        #expect(v.expire(now: 1030, budget: 0) == FlowExpiry(visited: 0, freed: 0, passCompleted: false))
    }

    /// One bucket, no overflow: expired entries are reclaimed first, then half-open ones (closest
    /// to expiry first), and established flows are never evicted — the insert reports `.full`.
    @Test(arguments: modes)
    func fullBucketEvictionOrder(sharing: FlowTableSharing) throws {
        let table = try T.table(7, sharing)
        let v = table.view
        #expect(v.bucketCount == 1)
        func ins(_ n: Int, _ event: FlowEvent, now: UInt32, proto: UInt8 = IPProtocol.tcp) -> FlowInsertResult {
            let k = T.v4(n, proto: proto)
            return v.insert(k, hash: k.hash(T.seed), value: FlowValue(backend: UInt32(n)), event: event, now: now)
        }
        for n in 0..<4 { #expect(ins(n, T.ack, now: 0).isInserted) }                 // established
        #expect(ins(4, .packet(), now: 0, proto: IPProtocol.udp).isInserted)       // UDP, expires at 30
        #expect(ins(5, T.syn, now: 20).isInserted)                                 // half-open, expires at 50
        #expect(ins(6, T.syn, now: 10).isInserted)                                 // half-open, expires at 40
        #expect(ins(7, T.syn, now: 35).evicted == nil)                             // reclaims the expired UDP slot
        #expect(v.lookup(T.v4(4, proto: IPProtocol.udp), hash: T.v4(4, proto: IPProtocol.udp).hash(T.seed), now: 35) == nil)
        // Three half-open entries now (deadlines 65, 50, 40): the one expiring first goes first.
        #expect(ins(8, T.ack, now: 36).evicted == .tcpSynRecv)
        #expect(v.lookup(T.v4(6), hash: T.v4(6).hash(T.seed), now: 36) == nil)
        #expect(ins(9, T.ack, now: 36).evicted == .tcpSynRecv)
        #expect(v.lookup(T.v4(5), hash: T.v4(5).hash(T.seed), now: 36) == nil)
        #expect(ins(10, T.ack, now: 36).evicted == .tcpSynRecv)
        #expect(v.lookup(T.v4(7), hash: T.v4(7).hash(T.seed), now: 36) == nil)
        // All seven established: a new flow is refused, nothing crashes, nothing is lost.
        #expect(ins(11, T.syn, now: 36).isFull)
        #expect(ins(12, T.ack, now: 36).isFull)
        for n in [0, 1, 2, 3, 8, 9, 10] {
            #expect(v.lookup(T.v4(n), hash: T.v4(n).hash(T.seed), now: 36)?.state == .tcpEstablished)
        }
        // A closed flow is evictable again.
        var e = try #require(v.lookup(T.v4(8), hash: T.v4(8).hash(T.seed), now: 36))
        #expect(v.update(&e, event: T.rst, now: 36))
        #expect(ins(13, T.syn, now: 37).evicted == .tcpClose)
    }

    /// Double-hashing probes with per-home displacement records: keys spill into other buckets,
    /// stay findable, and the records return to zero when the spilled keys leave.
    @Test(arguments: modes)
    func probingAndDisplacementRecords(sharing: FlowTableSharing) throws {
        let table = try T.table(21, sharing)     // three buckets: home and two more steps
        let v = table.view
        #expect(v.bucketCount == 3)
        let tag: UInt64 = 0xABC
        let hash = T.hash(bucket: 1, of: 3, tag: tag)
        #expect(v.homeBucket(hash) == 1)
        for n in 0..<21 {
            #expect(v.insert(T.v4(n), hash: hash, value: FlowValue(backend: UInt32(n)), event: T.ack, now: 0).isInserted)
        }
        #expect(v.insert(T.v4(21), hash: hash, value: FlowValue(backend: 21), event: T.ack, now: 0).isFull)
        var o = v.occupancy(now: 0)
        #expect(o.live == 21 && o.displaced == 14 && o.maxDisplacement == 2)
        let m = v.header(1)[0].load(ordering: .relaxed)
        #expect(Meta.count(m, Meta.nibble(tag)) == 14 && Meta.maxDistance(m) == 2)
        #expect(v.header(0)[0].load(ordering: .relaxed) == 0 && v.header(2)[0].load(ordering: .relaxed) == 0)
        #expect(v.displacementRecordsAreExact())
        for n in 0..<21 { #expect(v.lookup(T.v4(n), hash: hash, now: 0)?.value.backend == UInt32(n)) }
        // A key homed elsewhere finds every bucket full of established flows: refused.
        let other = T.hash(bucket: 2, of: 3, tag: 0x001)
        #expect(v.insert(T.v4(100), hash: other, value: FlowValue(backend: 0), event: T.ack, now: 0).isFull)
        // Free a home-bucket slot: the next key lands at distance 0.
        #expect(v.remove(T.v4(0), hash: hash))
        let r = try #require(v.insert(T.v4(22), hash: hash, value: FlowValue(backend: 22), event: T.ack, now: 0).handle)
        #expect(r.slot / 7 == 1)
        // Remove everything: every record is back to zero (counters and maximum distance).
        for n in Array(1...20) + [22] { #expect(v.remove(T.v4(n), hash: hash)) }
        o = v.occupancy(now: 0)
        #expect(o.live == 0 && o.recordedDisplaced == 0 && o.claimedDisplaced == 0)
        for b in 0..<3 { #expect(v.header(b)[0].load(ordering: .relaxed) == 0) }
    }

    /// A miss stops at the home bucket when no key with its tag nibble was displaced from there.
    @Test func missesStopAtHomeUnlessTheirNibbleWasDisplaced() throws {
        let table = try T.table(70)
        let v = table.view
        let hash = T.hash(bucket: 4, of: v.bucketCount, tag: 0x000)     // nibble 0
        for n in 0..<8 { _ = v.insert(T.v4(n), hash: hash, value: FlowValue(backend: 1), event: T.ack, now: 0) }
        let m = v.header(4)[0].load(ordering: .relaxed)
        #expect(Meta.count(m, 0) == 1 && Meta.maxDistance(m) == 1)
        #expect(Meta.probeLimit(m, Meta.nibble(0xFFF)) == 0)  // nibble 11: nothing displaced
        #expect(Meta.probeLimit(m, 0) == 1)
    }

    @Test func listCountFlushWithFilters() throws {
        let table = try T.table(700)
        let v = table.view
        for n in 0..<60 {
            let k = n % 3 == 0 ? T.v6(n) : T.v4(n, proto: n % 2 == 0 ? IPProtocol.tcp : IPProtocol.udp)
            _ = v.insert(k, hash: k.hash(T.seed), value: FlowValue(backend: UInt32(n % 4)),
                         event: k.proto == IPProtocol.tcp ? T.ack : .packet(), now: 0)
        }
        #expect(v.count(now: 0) == 60)
        #expect(v.count(now: 0, matching: FlowFilter(backend: 2)) == 15)
        #expect(v.count(now: 0, matching: FlowFilter(proto: IPProtocol.udp)) == 20)
        #expect(v.count(now: 0, matching: FlowFilter(state: .tcpEstablished)) == 40)
        #expect(v.count(now: 0, matching: FlowFilter(port: 80)) == 40)             // the IPv4 VIP port
        let vip6 = IPv6Address(high: 0x2001_0DB8_0000_0000, low: 0x10)
        #expect(v.count(now: 0, matching: FlowFilter(address: vip6)) == 20)
        #expect(v.count(now: 0, matching: FlowFilter(address: FlowFilter.mapped(IPv4Address(value: 0xC000_020A)))) == 40)
        #expect(v.list(now: 0, matching: FlowFilter(backend: 1), limit: 4).count == 4)
        #expect(v.list(now: 0, matching: FlowFilter(backend: 1)).allSatisfy { $0.value.backend == 1 })
        #expect(v.count(now: 100, matching: FlowFilter(proto: IPProtocol.udp)) == 0)   // expired at 30
        #expect(v.count(now: 100, matching: FlowFilter(proto: IPProtocol.udp, includeExpired: true)) == 20)

        #expect(v.flush(now: 0, matching: FlowFilter(backend: 2)) == 15)
        #expect(v.count(now: 0, matching: FlowFilter(backend: 2)) == 0)
        #expect(v.flush(now: 0) { $0.key.isIPv6 } == 15)
        #expect(v.count(now: 0) == 30)
        let o = v.occupancy(now: 0)
        #expect(o.live == 30 && v.displacementRecordsAreExact())
    }

    @Test func rebindReplacesTheBackendAndKeepsState() throws {
        let table = try T.table(70)
        let v = table.view
        let k = T.v4(3), h = k.hash(T.seed)
        var e = try #require(v.insert(k, hash: h, value: FlowValue(backend: 1), event: T.syn, now: 0).handle)
        #expect(v.update(&e, event: T.ack, now: 1))
        let r = v.rebind(k, hash: h, handle: e, value: FlowValue(backend: 9, aux: 4), now: 2)
        #expect(r.isInserted)
        let now = try #require(v.lookup(k, hash: h, now: 2))
        #expect(now.value == FlowValue(backend: 9, aux: 4) && now.state == .tcpEstablished)
        #expect(v.count(now: 2) == 1)
    }

    /// Fill to 80 % of the slots with random hashes: nothing fails, every key is found, the
    /// counters are exact, and most keys sit in their home bucket.
    @Test(arguments: modes)
    func highLoadRandomKeys(sharing: FlowTableSharing) throws {
        let table = try T.table(70_000, sharing)
        let v = table.view
        let n = v.slotCount * 8 / 10
        var full = 0
        for i in 0..<n {
            let k = T.v6(i)
            if v.insert(k, hash: k.hash(T.seed), value: FlowValue(backend: UInt32(i)), event: T.ack, now: 0).isFull { full += 1 }
        }
        #expect(full <= n / 1000)                  // the simulation predicts ~0.01 % at 80 %
        var found = 0
        for i in 0..<n where v.lookup(T.v6(i), hash: T.v6(i).hash(T.seed), now: 0)?.value.backend == UInt32(i) {
            found += 1
        }
        #expect(found == n - full)
        let o = v.occupancy(now: 0)
        #expect(o.live == n - full && v.displacementRecordsAreExact())
        #expect(Double(o.live - o.displaced) / Double(o.live) > 0.85)
    }

    @Test func capacityTenMillionIsReservedNotTouched() throws {
        let table = try FlowTable(FlowTable.Configuration(capacity: 10_000_000))
        #expect(table.view.slotCount >= 10_000_000)
        #expect(table.view.bucketCount == 1_428_587)                  // the next prime ≥ 10 M / 7
        #expect(table.tableBytes == 1_428_587 * 400)                  // 571 434 800 bytes
        #expect(abs(FlowTable.bytesPerSlot - 57.142857) < 1e-5)
        // Usable without touching the rest: one flow at each end of the table.
        let v = table.view
        let lo = T.hash(bucket: 0, of: v.bucketCount, tag: 1)
        let hi = T.hash(bucket: v.bucketCount - 1, of: v.bucketCount, tag: 2)
        #expect(v.insert(T.v4(1), hash: lo, value: FlowValue(backend: 1), event: T.syn, now: 0).isInserted)
        #expect(v.insert(T.v4(2), hash: hi, value: FlowValue(backend: 2), event: T.syn, now: 0).isInserted)
        #expect(v.lookup(T.v4(2), hash: hi, now: 0)?.value.backend == 2)
        print("flow table, capacity 10 000 000: \(v.slotCount) slots, \(table.tableBytes) bytes,"
              + " \(FlowTable.bytesPerSlot) bytes per slot")
    }

    @Test func bucketCountsArePrime() {
        #expect(FlowTable.bucketCount(forCapacity: 1) == 1)
        #expect(FlowTable.bucketCount(forCapacity: 7) == 1)
        #expect(FlowTable.bucketCount(forCapacity: 8) == 2)
        #expect(FlowTable.bucketCount(forCapacity: 70) == 11)
        #expect(FlowTable.bucketCount(forCapacity: 7 * 64) == 67)
        #expect(FlowTable.isPrime(4_294_967_291) && !FlowTable.isPrime(4_294_967_293))
    }

    @Test func invalidCapacitiesAreRejected() {
        #expect(throws: FlowTableError.invalidCapacity(0)) { _ = try FlowTable(capacity: 0) }
        #expect(throws: FlowTableError.invalidCapacity(-1)) { _ = try FlowTable(capacity: -1) }
        #expect(throws: FlowTableError.invalidCapacity(FlowTable.maxCapacity + 1)) {
            _ = try FlowTable(capacity: FlowTable.maxCapacity + 1)
        }
    }
}
