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
