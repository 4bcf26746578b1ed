import SluiceTestSupport
import Testing
import SluiceCore

@Suite("Builders: announcements compared with scapy-made frames")
struct BuilderTests {
    @Test("gratuitous ARP announcement equals scapy's bytes")
    func garp() throws {
        let fixtures = try #require(Fixtures.builders)
        try #require(!fixtures.garp.isEmpty)
        for fixture in fixtures.garp {
            let mac = try #require(MACAddress(fixture.mac))
            let address = try #require(IPv4Address(fixture.address))
            let expected = Hex.decode(fixture.output)
            let capacity = 128
            let p = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
            defer { p.deallocate() }
            p.initializeMemory(as: UInt8.self, repeating: 0xA5, count: capacity)
            let n = ARPPacket.writeAnnouncement(p, capacity: capacity, mac: mac, address: address, vlanID: fixture.vlan)
            let actual = [UInt8](UnsafeRawBufferPointer(start: p, count: n))
            let same = actual == expected
            #expect(same, "\(fixture.description)\n\(Hex.diff(expected: expected, actual: actual))")
            // Nothing is written past the frame.
            #expect(UnsafeRawBufferPointer(start: p + n, count: capacity - n).allSatisfy { $0 == 0xA5 })
        }
    }

    @Test("unsolicited NA equals scapy's bytes")
    func unsolicitedNA() throws {
        let fixtures = try #require(Fixtures.builders)
        try #require(!fixtures.unsolicitedNA.isEmpty)
        for fixture in fixtures.unsolicitedNA {
            let mac = try #require(MACAddress(fixture.mac))
            let address = try #require(IPv6Address(fixture.address))
            let expected = Hex.decode(fixture.output)
            let capacity = 256
            let p = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
            defer { p.deallocate() }
            p.initializeMemory(as: UInt8.self, repeating: 0xA5, count: capacity)
            let n = NeighborDiscovery.writeUnsolicitedAdvertisement(p, capacity: capacity, mac: mac, address: address,
                                                                    vlanID: fixture.vlan)
            let actual = [UInt8](UnsafeRawBufferPointer(start: p, count: n))
            let same = actual == expected
            #expect(same, "\(fixture.description)\n\(Hex.diff(expected: expected, actual: actual))")
            #expect(UnsafeRawBufferPointer(start: p + n, count: capacity - n).allSatisfy { $0 == 0xA5 })
        }
    }

    @Test("builders return 0 and write nothing when the buffer is one byte short")
    func bufferTooSmall() throws {
        let fixtures = try #require(Fixtures.builders)
        for fixture in fixtures.garp {
            let need = Hex.decode(fixture.output).count
            let mac = try #require(MACAddress(fixture.mac))
            let address = try #require(IPv4Address(fixture.address))
            for capacity in [0, 1, need - 1] {
                let p = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 1)
                defer { p.deallocate() }
                p.initializeMemory(as: UInt8.self, repeating: 0xA5, count: max(capacity, 1))
                #expect(ARPPacket.writeAnnouncement(p, capacity: capacity, mac: mac, address: address,
                                                    vlanID: fixture.vlan) == 0)
                #expect(UnsafeRawBufferPointer(start: p, count: max(capacity, 1)).allSatisfy { $0 == 0xA5 })
            }
        }
        for fixture in fixtures.unsolicitedNA {
            let need = Hex.decode(fixture.output).count
            let mac = try #require(MACAddress(fixture.mac))
            let address = try #require(IPv6Address(fixture.address))
            for capacity in [0, 1, need - 1] {
                let p = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 1)
                defer { p.deallocate() }
                p.initializeMemory(as: UInt8.self, repeating: 0xA5, count: max(capacity, 1))
                #expect(NeighborDiscovery.writeUnsolicitedAdvertisement(p, capacity: capacity, mac: mac,
                                                                        address: address, vlanID: fixture.vlan) == 0)
                #expect(UnsafeRawBufferPointer(start: p, count: max(capacity, 1)).allSatisfy { $0 == 0xA5 })
            }
        }
        // writeAdvertisement on its own: 14 + 40 + 32 = 86 bytes.
        let p = UnsafeMutableRawPointer.allocate(byteCount: 86, alignment: 1)
        defer { p.deallocate() }
        let vip = IPv6Address("2001:db8::10")!
        let mac = MACAddress("02:00:00:00:00:0a")!
        #expect(NeighborDiscovery.writeAdvertisement(p, capacity: 85, l3: 14, target: vip, targetMAC: mac,
                                                     destination: .allNodes, destinationMAC: .broadcast,
                                                     solicited: false) == 0)
        #expect(NeighborDiscovery.writeAdvertisement(p, capacity: 86, l3: 14, target: vip, targetMAC: mac,
                                                     destination: .allNodes, destinationMAC: .broadcast,
                                                     solicited: false) == 86)
    }

    @Test("what the builders write parses cleanly")
    func buildersParse() throws {
        let fixtures = try #require(Fixtures.builders)
        for fixture in fixtures.garp + fixtures.unsolicitedNA {
            let bytes = Hex.decode(fixture.output)
            var frame = ParsedFrame()
            #expect(withExactAllocation(bytes) { FrameParser.parse($0, length: bytes.count, into: &frame) } == nil)
            #expect(frame.vlanID == (fixture.vlan ?? 0))
        }
    }
}
