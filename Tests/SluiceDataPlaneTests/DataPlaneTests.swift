import Testing
import SluiceCore
@testable import SluiceDataPlane

@Suite struct OwnedAddressLookup {
    let portMAC = MACAddress("02:00:00:00:00:01")!
    let vipMAC = MACAddress("02:00:00:00:00:02")!

    @Test func findsEveryAddressAndNothingElse() {
        // Many addresses in scrambled order: the table sorts them; lookups are binary searches.
        let v4 = (0..<200).map { i in (IPv4Address(value: 0xC000_0200 &+ UInt32((i * 37) % 200)), i % 2 == 0 ? portMAC : vipMAC) }
        let v6 = (0..<50).map { i in (IPv6Address(high: 0x2001_0DB8_0000_0000, low: UInt64((i * 13) % 50)), vipMAC) }
        let owned = OwnedAddresses(portMAC: portMAC, ipv4: v4, ipv6: v6)
        for (address, mac) in v4 { #expect(owned.macFor(address.value) == mac) }
        for (address, mac) in v6 { #expect(owned.macFor(address) == mac) }
        #expect(owned.macFor(0xC000_0200 &+ 200) == nil)
        #expect(owned.macFor(0xC000_01FF) == nil)
        #expect(owned.macFor(IPv6Address(high: 0x2001_0DB8_0000_0000, low: 50)) == nil)
        #expect(owned.macFor(IPv6Address(high: 0x2001_0DB8_0000_0001, low: 0)) == nil)
        #expect(owned.ipv4Addresses.count == 200)
    }

    @Test func emptyTableOwnsNothing() {
        let owned = OwnedAddresses(portMAC: portMAC, ipv4: [], ipv6: [])
        #expect(owned.macFor(0xC000_020A) == nil)
        #expect(owned.macFor(IPv6Address("2001:db8::10")!) == nil)
    }

    @Test func acceptsOnlyOurUnicastOrGroupFrames() {
        let owned = OwnedAddresses(portMAC: portMAC, ipv4: [], ipv6: [])
        #expect(owned.accepts(.broadcast, ownerMAC: vipMAC))
        #expect(owned.accepts(MACAddress("33:33:ff:00:00:10")!, ownerMAC: vipMAC))
        #expect(owned.accepts(portMAC, ownerMAC: vipMAC))
        #expect(owned.accepts(vipMAC, ownerMAC: vipMAC))
        #expect(!owned.accepts(MACAddress("02:00:00:00:00:03")!, ownerMAC: vipMAC))
    }
}

@Suite struct Counters {
    @Test func slotsAreDistinctAndSummed() {
        let a = WorkerCounters(), b = WorkerCounters()
        a.add(.rxPackets, 5)
        b.add(.rxPackets, 7)
        a.count(.drop(.truncatedIPv4))
        a.count(.drop(.truncatedIPv4))
        b.count(.drop(.noService))
        b.count(.transmit(.arpReply))
        a.countDrop(.transmitQueueFull, 3)
        let s = CounterSnapshot(summing: [a, b])
        #expect(s.counters[.rxPackets] == 12)
        #expect(s.counters[.txPackets] == 0)
        #expect(s.drops[.truncatedIPv4] == 2)
        #expect(s.drops[.noService] == 1)
        #expect(s.drops[.transmitQueueFull] == 3)
        #expect(s.actions[.arpReply] == 1)
        #expect(s.totalDrops == 6)
        #expect(s.lines.contains("rx_packets 12"))
        #expect(s.lines.contains("drop_truncated_ipv4 2"))
        #expect(!s.lines.contains { $0.hasPrefix("drop_bad_ip_version") })
    }

    @Test func everySlotIsIndependent() {
        let c = WorkerCounters()
        for i in 0..<WorkerCounters.slotCount { c.add(i, UInt64(i + 1)) }
        for i in 0..<WorkerCounters.slotCount { #expect(c.read(i) == UInt64(i + 1)) }
    }

    @Test func namesAreUniqueAndStable() {
        let names = Counter.allCases.map(\.name) + DropReason.allCases.map(\.name) + TransmitAction.allCases.map(\.name)
        #expect(Set(names).count == names.count)
        for r in DropReason.allCases { #expect(DropReason(name: r.name) == r) }
        #expect(DropReason.allCases.enumerated().allSatisfy { Int($0.element.rawValue) == $0.offset })
    }
}

/// Neighbor entries: learned ones are forgotten when no longer confirmed, configured ones never.
@Suite struct NeighborExpiry {
    let learned = IPv6Address(ipv4Mapped: 0xC633_640B)     // 198.51.100.11
    let configured = IPv6Address(ipv4Mapped: 0xC633_640C)  // 198.51.100.12
    let mac = MACAddress(value: 0x02_00_00_00_BE_11)

    @Test func learnedEntriesExpireConfiguredOnesStay() {
        let table = NeighborTable(capacity: 64)
        table.learn(learned, mac: mac, now: 100)
        table.learn(configured, mac: mac, now: 0, permanent: true)
        #expect(table.expire(now: 100 + NeighborTable.reachableFor) == 0)
        #expect(table.lookup(learned) == mac)
        #expect(table.expire(now: 101 + NeighborTable.reachableFor) == 1)
        #expect(table.lookup(learned) == nil, "an unconfirmed MAC is no longer used")
        #expect(table.lookup(configured) == mac, "a configured MAC never expires")
        // An answer restores it; the wire never overrides a configured MAC.
        table.learn(learned, mac: mac, now: 200)
        #expect(table.lookup(learned) == mac)
        table.learn(configured, mac: MACAddress(value: 0x02_00_00_00_66_66), now: 200)
        #expect(table.lookup(configured) == mac)
        #expect(table.entries.first { $0.address == configured }?.permanent == true)
    }

    @Test func theResolverAsksForExpiredAndUnconfirmedNeighborsButNotConfiguredOnes() throws {
        let table = NeighborTable(capacity: 64)
        table.learn(learned, mac: mac, now: 100)
        table.learn(configured, mac: mac, now: 0, permanent: true)
        let port = PortContext(mac: MACAddress(value: 0x02_00_00_00_00_02),
                               owned: OwnedAddresses(portMAC: MACAddress(value: 0x02_00_00_00_00_02), ipv4: [], ipv6: []),
                               selfIPv4: IPv6Address(ipv4Mapped: 0xC633_6401),
                               connected: [AddressPrefix(ipv4: IPv4Address(value: 0xC633_6400), length: 24)])
        let resolver = NeighborResolver(ports: [port], wanted: [(0, learned), (0, configured)])
        #expect(resolver.due(now: 110, neighbors: table).isEmpty)
        #expect(resolver.due(now: 100 + NeighborResolver.refreshAfter, neighbors: table).map(\.target) == [learned])
        #expect(resolver.due(now: 100_000, neighbors: table).map(\.target) == [learned])
    }
}
