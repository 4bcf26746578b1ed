@testable import SluiceConntrack
import SluiceCore
import Testing

@Suite("ConntrackKey")
struct ConntrackKeyTests {
    @Test func ipv4FieldsRoundTrip() throws {
        let k = ConntrackKey(source: try #require(IPv4Address("198.51.100.7")),
                             destination: try #require(IPv4Address("192.0.2.10")),
                             sourcePort: 40001, destinationPort: 80, protocol: IPProtocol.tcp, zone: 3)
        #expect(k.sourceIPv4 == IPv4Address("198.51.100.7"))
        #expect(k.destinationIPv4 == IPv4Address("192.0.2.10"))
        #expect(k.sourcePort == 40001 && k.destinationPort == 80)
        #expect(k.proto == IPProtocol.tcp && k.zone == 3 && !k.isIPv6)
        #expect(k.sourceIPv6 == IPv6Address("::ffff:198.51.100.7"))
        #expect(k.description == "6 198.51.100.7:40001 -> 192.0.2.10:80 zone 3")
    }

    @Test func ipv6FieldsRoundTrip() throws {
        let src = try #require(IPv6Address("2001:db8:1::7"))
        let dst = try #require(IPv6Address("2001:db8::10"))
        let k = ConntrackKey(source: src, destination: dst, sourcePort: 5, destinationPort: 443,
                             protocol: IPProtocol.udp)
        #expect(k.isIPv6 && k.sourceIPv4 == nil)
        #expect(k.sourceIPv6 == src && k.destinationIPv6 == dst)
        #expect(k.description == "17 [2001:db8:1::7]:5 -> [2001:db8::10]:443 zone 0")
    }

    @Test func ipv6MappedAddressDoesNotAliasIPv4() throws {
        let v4 = ConntrackKey(ipv4Source: 0xC633_6407, destination: 0xC000_020A, sourcePort: 1,
                              destinationPort: 2, protocol: IPProtocol.udp)
        let v6 = ConntrackKey(source: try #require(IPv6Address("::ffff:198.51.100.7")),
                              destination: try #require(IPv6Address("::ffff:192.0.2.10")),
                              sourcePort: 1, destinationPort: 2, protocol: IPProtocol.udp)
        #expect(v4 != v6)
        #expect(v4.hash(T.seed) != v6.hash(T.seed))
    }

    @Test func reversedSwapsEndpointsAndKeepsZone() {
        let k = T.v6(9, zone: 0x8001)
        let r = k.reversed
        #expect(r.sourceIPv6 == k.destinationIPv6 && r.destinationIPv6 == k.sourceIPv6)
        #expect(r.sourcePort == k.destinationPort && r.destinationPort == k.sourcePort)
        #expect(r.zone == k.zone && r.proto == k.proto && r.isIPv6)
        #expect(r.reversed == k)
        #expect(k.withZone(7).zone == 7 && k.withZone(7).withZone(0x8001) == k)
    }

    @Test func hashIsSeededAndSpreads() {
        let a = ConntrackHashSeed(1), b = ConntrackHashSeed(2)
        #expect(T.v4(1).hash(a) == T.v4(1).hash(a))
        #expect(T.v4(1).hash(a) != T.v4(1).hash(b))
        // 70 000 keys differing only in the source port: both the bucket bits (high 32) and the
        // tag bits (low 12) must be close to uniform.
        var high = [Int](repeating: 0, count: 64)
        var low = [Int](repeating: 0, count: 64)
        for n in 0..<70_000 {
            let h = T.v4(n).hash(a)
            high[Int(h >> 58)] += 1
            low[Int(h & 63)] += 1
        }
        let expected = 70_000 / 64
        #expect(high.allSatisfy { abs($0 - expected) < expected / 5 })
        #expect(low.allSatisfy { abs($0 - expected) < expected / 5 })
    }

    /// The key built from packet bytes equals the one built from fields (IPv4 TCP, IPv6 UDP,
    /// ICMP echo).
    @Test func keyFromPacketBytes() throws {
        // IPv4 / TCP 198.51.100.7:40001 → 192.0.2.10:80, SYN.
        var v4 = [UInt8](repeating: 0, count: 54)
        v4.replaceSubrange(12..<14, with: [0x08, 0x00])
        v4.replaceSubrange(14..<34, with: [0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0,
                                          198, 51, 100, 7, 192, 0, 2, 10])
        v4.replaceSubrange(34..<38, with: [0x9C, 0x41, 0x00, 0x50])
        v4[46] = 0x50
        v4[47] = 0x02
        // IPv6 / UDP [2001:db8:1::7]:5 → [2001:db8::10]:443.
        var v6 = [UInt8](repeating: 0, count: 62)
        v6.replaceSubrange(12..<14, with: [0x86, 0xDD])
        v6.replaceSubrange(14..<22, with: [0x60, 0, 0, 0, 0, 8, 17, 64])
        v6.replaceSubrange(22..<38, with: [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7])
        v6.replaceSubrange(38..<54, with: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10])
        v6.replaceSubrange(54..<58, with: [0, 5, 0x01, 0xBB])
        v6[59] = 8
        // IPv4 / ICMP echo request id 0x1234.
        var icmp = [UInt8](repeating: 0, count: 42)
        icmp.replaceSubrange(12..<14, with: [0x08, 0x00])
        icmp.replaceSubrange(14..<34, with: [0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0,
                                            198, 51, 100, 7, 192, 0, 2, 10])
        icmp.replaceSubrange(34..<40, with: [8, 0, 0, 0, 0x12, 0x34])

        func key(_ input: [UInt8]) throws -> ConntrackKey? {
            var bytes = input
            if bytes[12] == 0x08 {   // fill in the IPv4 header checksum the parser verifies
                let sum = bytes.withUnsafeBytes { InternetChecksum.checksum($0.baseAddress! + 14, count: 20) }
                bytes[24] = UInt8(sum >> 8)
                bytes[25] = UInt8(sum & 0xFF)
            }
            return try bytes.withUnsafeBytes { raw -> ConntrackKey? in
                let p = try #require(raw.baseAddress)
                var frame = ParsedFrame()
                let drop = FrameParser.parse(p, length: raw.count, into: &frame)
                #expect(drop == nil)
                return ConntrackKey(packet: p, frame: frame, zone: 1)
            }
        }
        #expect(try key(v4) == ConntrackKey(ipv4Source: 0xC633_6407, destination: 0xC000_020A,
                                            sourcePort: 40001, destinationPort: 80, protocol: 6, zone: 1))
        #expect(try key(v6) == ConntrackKey(source: try #require(IPv6Address("2001:db8:1::7")),
                                            destination: try #require(IPv6Address("2001:db8::10")),
                                            sourcePort: 5, destinationPort: 443, protocol: 17, zone: 1))
        #expect(try key(icmp) == ConntrackKey(ipv4Source: 0xC633_6407, destination: 0xC000_020A,
                                              sourcePort: 0x1234, destinationPort: 0, protocol: 1, zone: 1))
    }
}
