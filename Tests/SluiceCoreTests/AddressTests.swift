import Testing
import SluiceCore

@Suite("Addresses: parsing and printing")
struct AddressTests {
    // MARK: IPv4

    @Test("IPv4 round trips", arguments: [
        ("192.0.2.1", 0xC000_0201 as UInt32), ("0.0.0.0", 0), ("255.255.255.255", 0xFFFF_FFFF),
        ("198.51.100.7", 0xC633_6407), ("203.0.113.0", 0xCB00_7100), ("10.0.0.10", 0x0A00_000A),
    ])
    func ipv4RoundTrip(_ text: String, _ value: UInt32) throws {
        let a = try #require(IPv4Address(text))
        #expect(a.value == value)
        #expect(a.description == text)
        #expect(IPv4Address(value: value).description == text)
    }

    @Test("IPv4 rejections", arguments: [
        "", "192.0.2", "192.0.2.1.5", "192.0.2.1.", ".192.0.2.1", "192..2.1",
        "192.0.02.1", "01.0.0.0", "192.0.2.00", "000.0.0.0",   // leading zeros (octal ambiguity)
        "256.0.0.1", "192.0.2.1000", "1.2.3.-1", "+1.2.3.4", "1.2.3.+4", "1.2.3.4 ", " 1.2.3.4",
        "a.b.c.d", "0x1.2.3.4", "1.2.3.0x4", "1e2.0.0.1", "١.٢.٣.٤", "192.0.2.1/24", "1,2,3,4",
    ])
    func ipv4Rejects(_ text: String) {
        #expect(IPv4Address(text) == nil, "accepted \(text)")
    }

    @Test("IPv4 predicates")
    func ipv4Predicates() {
        #expect(IPv4Address("224.0.0.1")!.isMulticast)
        #expect(IPv4Address("239.255.255.255")!.isMulticast)
        #expect(!IPv4Address("240.0.0.1")!.isMulticast)
        #expect(IPv4Address("0.0.0.0")!.isUnspecified)
        #expect(IPv4Address("255.255.255.255")!.isLimitedBroadcast)
        #expect(IPv4Address("192.0.2.1")! < IPv4Address("192.0.2.2")!)
    }

    // MARK: MAC

    @Test("MAC round trips", arguments: [
        ("02:00:00:00:00:01", 0x0200_0000_0001 as UInt64, "02:00:00:00:00:01"),
        ("ff:ff:ff:ff:ff:ff", 0xFFFF_FFFF_FFFF, "ff:ff:ff:ff:ff:ff"),
        ("00:00:00:00:00:00", 0, "00:00:00:00:00:00"),
        ("AA:bb:CC:dd:EE:0f", 0xAABB_CCDD_EE0F, "aa:bb:cc:dd:ee:0f"),
        ("02-00-5e-10-00-00", 0x0200_5E10_0000, "02:00:5e:10:00:00"),
    ])
    func macRoundTrip(_ text: String, _ value: UInt64, _ printed: String) throws {
        let m = try #require(MACAddress(text))
        #expect(m.value == value)
        #expect(m.description == printed)
        #expect(MACAddress(printed) == m)
    }

    @Test("MAC rejections", arguments: [
        "", "02:00:00:00:00", "02:00:00:00:00:01:02", "02:00:00:00:00:", ":02:00:00:00:00:01",
        "2:0:0:0:0:1", "002:00:00:00:00:01", "0g:00:00:00:00:01", "02:00:00:00:00:zz",
        "+2:00:00:00:00:01", "02:00:00:00:00:+1", "02:00:00:00:00:-1", "0x:00:00:00:00:01",
        "02.00.00.00.00.01", "0200.0000.0001", "020000000001", " 02:00:00:00:00:01",
    ])
    func macRejects(_ text: String) {
        #expect(MACAddress(text) == nil, "accepted \(text)")
    }

    @Test("MAC multicast bit and load/store")
    func macBits() {
        #expect(MACAddress.broadcast.isMulticast)
        #expect(MACAddress("33:33:00:00:00:01")!.isMulticast)
        #expect(MACAddress("01:00:5e:00:00:01")!.isMulticast)
        #expect(!MACAddress("02:00:00:00:00:01")!.isMulticast)
        var buffer = [UInt8](repeating: 0xEE, count: 10)
        let m = MACAddress("02:11:22:33:44:55")!
        buffer.withUnsafeMutableBytes { m.store($0.baseAddress!, 2) }
        #expect(buffer == [0xEE, 0xEE, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0xEE, 0xEE])
        #expect(buffer.withUnsafeBytes { MACAddress.load($0.baseAddress!, 2) } == m)
        #expect(MACAddress(value: 0xFFFF_0200_0000_0001).value == 0x0200_0000_0001, "masked to 48 bits")
    }

    // MARK: IPv6

    @Test("IPv6 round trips in RFC 5952 form", arguments: [
        ("2001:db8::10", "2001:db8::10"), ("::", "::"), ("::1", "::1"),
        ("ff02::1:ff00:10", "ff02::1:ff00:10"), ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"), ("2001:0db8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1"),
        ("fe80::0200:00ff:fe00:0001", "fe80::200:ff:fe00:1"), ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("2001:db8:0:1::", "2001:db8:0:1::"),
    ])
    func ipv6RoundTrip(_ text: String, _ printed: String) throws {
        let a = try #require(IPv6Address(text))
        #expect(a.description == printed)
        #expect(IPv6Address(printed) == a)
    }

    @Test("IPv6 halves are in wire order")
    func ipv6Halves() {
        let a = IPv6Address("2001:db8::1:2")!
        #expect(a.high == 0x2001_0DB8_0000_0000)
        #expect(a.low == 0x0000_0000_0001_0002)
    }

    @Test("IPv6 rejections", arguments: [
        "", ":", ":::", "2001:db8:::1", "2001:db8::1::2", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7",
        "12345::", "g::1", "2001:db8::1%eth0", "2001:db8::/32", "[2001:db8::1]", " ::1", "::1 ",
        "192.0.2.1", "::ffff:192.0.2.256", "02:00:00:00:00:01",
    ])
    func ipv6Rejects(_ text: String) {
        #expect(IPv6Address(text) == nil, "accepted \(text)")
    }

    @Test("solicited-node group and its multicast MAC (RFC 4291 §2.7.1, RFC 2464 §7)")
    func solicitedNode() {
        let vip = IPv6Address("2001:db8::abcd:1234:5678")!
        #expect(vip.solicitedNodeGroup == IPv6Address("ff02::1:ff34:5678")!)
        #expect(MACAddress.ipv6Multicast(vip.solicitedNodeGroup) == MACAddress("33:33:ff:34:56:78")!)
        #expect(MACAddress.ipv6Multicast(.allNodes) == MACAddress("33:33:00:00:00:01")!)
        #expect(IPv6Address.allNodes == IPv6Address("ff02::1")!)
        #expect(IPv6Address("ff02::1:ff00:10")!.isMulticast)
        #expect(!vip.isMulticast)
        #expect(IPv6Address("::")!.isUnspecified)
        #expect(IPv6Address("2001:db8::1")! < IPv6Address("2001:db8::2")!)
        #expect(IPv6Address("2001:db8::ffff")! < IPv6Address("2001:db9::")!)
    }
}
