import SluiceTestSupport
import Foundation
import Testing
import SluiceCore

// Golden tests for the rewrites in SluiceCore: NAT, VXLAN encapsulation and its receive check,
// fragmentation-needed / packet-too-big errors, MSS clamping, and ICMP error quotes. Inputs and
// expected outputs come from `Tests/Fixtures/rewrites.json`, built by scapy in
// `tools/fixtures/generate.py` (`rewrite_fixtures()`); nothing there is derived from Sluice.

// MARK: Fixture model

struct RewriteFixtures: Decodable, Sendable {
    struct NAT: Decodable, Sendable, CustomStringConvertible {
        var description: String
        var scapy: String
        var input: String
        var family: Int
        var source: String?
        var sourcePort: UInt16?
        var destination: String?
        var destinationPort: UInt16?
        var decrementHopLimit: Bool
        var outcome: String
        var output: String?
    }

    struct Outer: Decodable, Sendable {
        var family: Int
        var destinationMac: String
        var sourceMac: String
        var vlan: UInt16?
        var source: String
        var destination: String
        var vni: UInt32
        var port: UInt16
        var hopLimit: UInt8
    }

    struct Encapsulation: Decodable, Sendable, CustomStringConvertible {
        var description: String
        var scapy: String
        var input: String
        var outer: Outer
        var flowHash: UInt32
        var ipId: UInt16
        var headroom: Int
        var prepended: Int
        var scapyOutput: String?
        var output: String?
    }

    struct Decapsulation: Decodable, Sendable, CustomStringConvertible {
        struct Expect: Decodable, Sendable {
            var vni: UInt32
            var offset: Int
            var length: Int
        }
        var description: String
        var scapy: String
        var input: String
        var port: UInt16
        var expect: Expect?
    }

    struct TooBig: Decodable, Sendable, CustomStringConvertible {
        var description: String
        var scapy: String
        var input: String
        var family: Int
        var mtu: UInt32
        var mac: String
        var address: String
        var capacity: Int
        var output: String?
    }

    struct MSS: Decodable, Sendable, CustomStringConvertible {
        var description: String
        var scapy: String
        var input: String
        var mss: UInt16
        var changed: Bool
        var output: String
    }

    struct Quote: Decodable, Sendable, CustomStringConvertible {
        struct Expect: Decodable, Sendable {
            var `protocol`: UInt8
            var source: String
            var destination: String
            var sourcePort: UInt16
            var destinationPort: UInt16
        }
        struct Rewrite: Decodable, Sendable {
            var outerSource: String?
            var outerDestination: String?
            var source: String
            var sourcePort: UInt16
            var destination: String
            var destinationPort: UInt16
        }
        var description: String
        var scapy: String
        var input: String
        var family: Int
        var expect: Expect?
        var rewrite: Rewrite?
        var scapyOutput: String?
        var output: String?
    }

    var nat: [NAT]
    var vxlan: [Encapsulation]
    var vxlanDecap: [Decapsulation]
    var tooBig: [TooBig]
    var mss: [MSS]
    var icmpQuote: [Quote]

    static func load() throws -> RewriteFixtures {
        let data = try Data(contentsOf: Fixtures.directory.appendingPathComponent("rewrites.json"))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(RewriteFixtures.self, from: data)
    }

    /// Empty groups if the file is missing or malformed (`fixturesLoad` fails then).
    static let all: RewriteFixtures = (try? load())
        ?? RewriteFixtures(nat: [], vxlan: [], vxlanDecap: [], tooBig: [], mss: [], icmpQuote: [])
}

extension NATRewrite.Outcome {
    var fixtureName: String {
        switch self {
        case .rewritten: "rewritten"
        case .hopLimitExpired: "hop_limit_expired"
        case .sctpFragmentPortChange: "sctp_fragment_port_change"
        }
    }
}

// MARK: Helpers

/// A packet buffer: `bytes` at offset `headroom` of an allocation of `headroom + capacity`
/// bytes, the rest filled with 0xA5 so that stray writes show.
final class PacketBuffer {
    let base: UnsafeMutableRawPointer
    let headroom: Int
    let capacity: Int
    var length: Int

    init(_ bytes: [UInt8], headroom: Int = 0, capacity: Int? = nil) {
        self.headroom = headroom
        self.capacity = capacity ?? bytes.count
        precondition(self.capacity >= bytes.count)
        let base = UnsafeMutableRawPointer.allocate(byteCount: max(1, headroom + self.capacity), alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0xA5, count: max(1, headroom + self.capacity))
        bytes.withUnsafeBytes { if let b = $0.baseAddress { (base + headroom).copyMemory(from: b, byteCount: bytes.count) } }
        self.base = base
        length = bytes.count
    }

    deinit { base.deallocate() }

    var p: UnsafeMutableRawPointer { base + headroom }

    func bytes(from offset: Int = 0, count: Int? = nil) -> [UInt8] {
        [UInt8](UnsafeRawBufferPointer(start: p + offset, count: count ?? length - offset))
    }

    func parse() -> (ParsedFrame, DropReason?) {
        var frame = ParsedFrame()
        let reason = FrameParser.parse(p, length: length, into: &frame)
        return (frame, reason)
    }
}

func expectBytes(_ actual: [UInt8], _ expected: [UInt8], _ context: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    let same = actual == expected
    #expect(same, "\(context)\n\(Hex.diff(expected: expected, actual: actual))", sourceLocation: sourceLocation)
}

func v4(_ text: String) -> IPv4Address { IPv4Address(text)! }
func v6(_ text: String) -> IPv6Address { IPv6Address(text)! }

/// Applies the NAT a fixture asks for, through the public entry point that fits it.
func applyNAT(_ f: RewriteFixtures.NAT, _ p: UnsafeMutableRawPointer, _ frame: ParsedFrame) -> NATRewrite.Outcome {
    let decrement = f.decrementHopLimit
    if f.family == 4 {
        switch (f.source.map(v4), f.destination.map(v4)) {
        case let (s?, d?):
            return NATRewrite.rewriteIPv4(p, frame: frame, source: s, sourcePort: f.sourcePort!,
                                          destination: d, destinationPort: f.destinationPort!, decrementTTL: decrement)
        case let (nil, d?):
            return NATRewrite.rewriteIPv4Destination(p, frame: frame, address: d, port: f.destinationPort!,
                                                     decrementTTL: decrement)
        case let (s?, nil):
            return NATRewrite.rewriteIPv4Source(p, frame: frame, address: s, port: f.sourcePort!, decrementTTL: decrement)
        case (nil, nil):
            preconditionFailure("fixture rewrites nothing")
        }
    }
    switch (f.source.map(v6), f.destination.map(v6)) {
    case let (s?, d?):
        return NATRewrite.rewriteIPv6(p, frame: frame, source: s, sourcePort: f.sourcePort!,
                                      destination: d, destinationPort: f.destinationPort!, decrementHopLimit: decrement)
    case let (nil, d?):
        return NATRewrite.rewriteIPv6Destination(p, frame: frame, address: d, port: f.destinationPort!,
                                                 decrementHopLimit: decrement)
    case let (s?, nil):
        return NATRewrite.rewriteIPv6Source(p, frame: frame, address: s, port: f.sourcePort!, decrementHopLimit: decrement)
    case (nil, nil):
        preconditionFailure("fixture rewrites nothing")
    }
}

// MARK: Tests

@Suite("Rewrite golden packets (scapy)")
struct RewriteGoldenTests {
    @Test("rewrites.json loads and every group is substantial")
    func fixturesLoad() throws {
        let f = try RewriteFixtures.load()
        #expect(f.nat.count >= 30)
        #expect(f.vxlan.count >= 8)
        #expect(f.vxlanDecap.count >= 8)
        #expect(f.tooBig.count >= 12)
        #expect(f.mss.count >= 15)
        #expect(f.icmpQuote.count >= 25)
    }

    // MARK: NAT

    @Test("NAT", arguments: RewriteFixtures.all.nat)
    func nat(_ f: RewriteFixtures.NAT) throws {
        let input = Hex.decode(f.input)
        let buffer = PacketBuffer(input)
        let (frame, reason) = buffer.parse()
        try #require(reason == nil, "input does not parse: \(String(describing: reason))")
        let outcome = applyNAT(f, buffer.p, frame)
        #expect(outcome.fixtureName == f.outcome, "scapy: \(f.scapy)")
        let expected = f.output.map(Hex.decode) ?? input
        expectBytes(buffer.bytes(), expected, "scapy: \(f.scapy)")
        // What NAT emits parses again (the IPv4 header checksum included).
        var again = ParsedFrame()
        #expect(FrameParser.parse(buffer.p, length: buffer.length, into: &again) == nil)
    }

    @Test("NAT then the reverse NAT restores the original bytes", arguments: RewriteFixtures.all.nat.filter {
        $0.outcome == "rewritten" && !$0.decrementHopLimit
    })
    func natRoundTrip(_ f: RewriteFixtures.NAT) throws {
        let input = Hex.decode(f.input)
        let buffer = PacketBuffer(input)
        let (frame, reason) = buffer.parse()
        try #require(reason == nil)
        // The original endpoints, read before the rewrite.
        let l3 = frame.l3Offset
        var oldPorts: (UInt16, UInt16) = (0, 0)
        if frame.hasL4Header, frame.l4Length >= 8 {
            let l4 = frame.l4Offset
            switch frame.l4Protocol {
            case IPProtocol.tcp, IPProtocol.udp, IPProtocol.sctp:
                oldPorts = (buffer.p.loadBE16(l4), buffer.p.loadBE16(l4 + 2))
            case IPProtocol.icmp, IPProtocol.icmpv6:
                let id = buffer.p.loadBE16(l4 + 4)
                oldPorts = (id, id)
            default: break
            }
        }
        #expect(applyNAT(f, buffer.p, frame) == .rewritten)
        var back = f
        back.decrementHopLimit = false
        if f.family == 4 {
            back.source = f.source == nil ? nil : IPv4Address(value: Self.load32(input, l3 + 12)).description
            back.destination = f.destination == nil ? nil : IPv4Address(value: Self.load32(input, l3 + 16)).description
        } else {
            back.source = f.source == nil ? nil : input.withUnsafeBytes { IPv6Address.load($0.baseAddress!, l3 + 8) }.description
            back.destination = f.destination == nil ? nil : input.withUnsafeBytes { IPv6Address.load($0.baseAddress!, l3 + 24) }.description
        }
        back.sourcePort = f.sourcePort == nil ? nil : oldPorts.0
        back.destinationPort = f.destinationPort == nil ? nil : oldPorts.1
        #expect(applyNAT(back, buffer.p, frame) == .rewritten)
        expectBytes(buffer.bytes(), input, "round trip; scapy: \(f.scapy)")
    }

    static func load32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        bytes.withUnsafeBytes { $0.baseAddress!.loadBE32(offset) }
    }

    // MARK: VXLAN

    @Test("VXLAN encapsulation", arguments: RewriteFixtures.all.vxlan)
    func encapsulate(_ f: RewriteFixtures.Encapsulation) throws {
        let inner = Hex.decode(f.input)
        let o = f.outer
        let outer: VXLANEncapsulation.Outer = o.family == 4
            ? .ipv4(source: v4(o.source), destination: v4(o.destination))
            : .ipv6(source: v6(o.source), destination: v6(o.destination))
        let encapsulation = VXLANEncapsulation(destinationMAC: MACAddress(o.destinationMac)!,
                                               sourceMAC: MACAddress(o.sourceMac)!, vlanID: o.vlan,
                                               outer: outer, vni: o.vni, destinationPort: o.port, hopLimit: o.hopLimit)
        // 16 sentinel bytes before the headroom the call is told about.
        let buffer = PacketBuffer(inner, headroom: f.headroom + 16)
        let n = encapsulation.encapsulate(buffer.p, length: inner.count, headroom: f.headroom,
                                          flowHash: f.flowHash, ipID: f.ipId)
        #expect(n == f.prepended, "scapy: \(f.scapy)")
        guard let output = f.output.map(Hex.decode) else {
            // Refused: nothing written anywhere.
            let all = [UInt8](UnsafeRawBufferPointer(start: buffer.base, count: f.headroom + 16))
            #expect(all.allSatisfy { $0 == 0xA5 })
            expectBytes(buffer.bytes(), inner, "inner frame touched")
            return
        }
        #expect(encapsulation.overhead == n)
        let actual = [UInt8](UnsafeRawBufferPointer(start: buffer.p - n, count: n + inner.count))
        expectBytes(actual, output, "scapy: \(f.scapyOutput ?? "")")
        let before = [UInt8](UnsafeRawBufferPointer(start: buffer.base, count: f.headroom + 16 - n))
        #expect(before.allSatisfy { $0 == 0xA5 }, "wrote before the prepended bytes")
        // The receive side finds the inner frame again.
        var frame = ParsedFrame()
        try #require(FrameParser.parse(buffer.p - n, length: n + inner.count, into: &frame) == nil)
        let found = try #require(VXLANDecapsulation.parse(buffer.p - n, frame: frame, port: o.port))
        #expect(found == VXLANDecapsulation.Inner(vni: o.vni, offset: n, length: inner.count))
    }

    @Test("VXLAN receive check", arguments: RewriteFixtures.all.vxlanDecap)
    func decapsulate(_ f: RewriteFixtures.Decapsulation) throws {
        let input = Hex.decode(f.input)
        try withExactAllocation(input) { p in
            var frame = ParsedFrame()
            try #require(FrameParser.parse(p, length: input.count, into: &frame) == nil)
            let found = VXLANDecapsulation.parse(p, frame: frame, port: f.port)
            let expected = f.expect.map { VXLANDecapsulation.Inner(vni: $0.vni, offset: $0.offset, length: $0.length) }
            #expect(found == expected, "scapy: \(f.scapy)")
        }
    }

    @Test("VXLAN overhead, inner MTU and source ports")
    func vxlanArithmetic() {
        let mac = MACAddress(value: 2)
        let e4 = VXLANEncapsulation(destinationMAC: mac, sourceMAC: mac,
                                    outer: .ipv4(source: v4("203.0.113.2"), destination: v4("203.0.113.40")), vni: 1)
        let e6 = VXLANEncapsulation(destinationMAC: mac, sourceMAC: mac, vlanID: 5,
                                    outer: .ipv6(source: v6("2001:db8::1"), destination: v6("2001:db8::2")), vni: 1)
        #expect(e4.overhead == 50 && VXLANEncapsulation.ipv4Overhead == 50)
        #expect(e6.overhead == 74 && VXLANEncapsulation.ipv6Overhead == 70)
        #expect(e4.innerMTU(portMTU: 1500) == 1450)
        #expect(e6.innerMTU(portMTU: 1500) == 1430)   // the outer tag is not part of the IP MTU
        #expect(e4.destinationPort == 4789 && e4.hopLimit == 64)
        var rng = SplitMix64(seed: 7348)
        for _ in 0..<10_000 {
            let port = VXLANEncapsulation.sourcePort(flowHash: UInt32.random(in: .min ... .max, using: &rng))
            #expect(port >= 49152)
        }
        #expect(VXLANEncapsulation.sourcePort(flowHash: 0) == 49152)
        #expect(VXLANEncapsulation.sourcePort(flowHash: 0x0000_3FFF) == 65535)
        #expect(VXLANEncapsulation.sourcePort(flowHash: 0x3FFF_0000) == 65535)  // the high half counts
    }

    @Test("VXLAN refuses an outer packet over 65535 bytes")
    func vxlanTooLong() {
        let mac = MACAddress(value: 2)
        let e4 = VXLANEncapsulation(destinationMAC: mac, sourceMAC: mac,
                                    outer: .ipv4(source: v4("203.0.113.2"), destination: v4("203.0.113.40")), vni: 1)
        let buffer = PacketBuffer([UInt8](repeating: 0, count: 65535 - 36 + 1), headroom: 64)
        #expect(e4.encapsulate(buffer.p, length: buffer.length, headroom: 64, flowHash: 1) == 0)
        #expect(e4.encapsulate(buffer.p, length: buffer.length - 1, headroom: 64, flowHash: 1) == 50)
    }

    // MARK: Fragmentation needed / packet too big

    @Test("fragmentation needed and packet too big, built in place", arguments: RewriteFixtures.all.tooBig)
    func tooBig(_ f: RewriteFixtures.TooBig) throws {
        let input = Hex.decode(f.input)
        let buffer = PacketBuffer(input, capacity: max(input.count, f.capacity))
        let (frame, reason) = buffer.parse()
        try #require(reason == nil, "input does not parse: \(String(describing: reason))")
        let mac = try #require(MACAddress(f.mac))
        let n: Int
        if f.family == 4 {
            n = ICMPTooBig.fragmentationNeeded(buffer.p, length: input.count, capacity: f.capacity, frame: frame,
                                               nextHopMTU: UInt16(f.mtu), sourceMAC: mac, source: v4(f.address))
        } else {
            n = ICMPTooBig.packetTooBig(buffer.p, length: input.count, capacity: f.capacity, frame: frame,
                                        mtu: f.mtu, sourceMAC: mac, source: v6(f.address))
        }
        guard let output = f.output.map(Hex.decode) else {
            #expect(n == 0, "scapy: \(f.scapy)")
            expectBytes(buffer.bytes(), input, "refused but touched")
            return
        }
        #expect(n == output.count, "scapy: \(f.scapy)")
        #expect(n <= f.capacity)
        buffer.length = n
        expectBytes(buffer.bytes(), output, "scapy: \(f.scapy)")
        // Nothing past the capacity the call was given.
        if buffer.capacity > f.capacity {
            #expect(buffer.bytes(from: f.capacity, count: buffer.capacity - f.capacity)
                == [UInt8](input.dropFirst(f.capacity)))
        }
    }

    // MARK: MSS clamping

    @Test("TCP MSS clamping", arguments: RewriteFixtures.all.mss)
    func mss(_ f: RewriteFixtures.MSS) throws {
        let input = Hex.decode(f.input)
        let buffer = PacketBuffer(input)
        let (frame, reason) = buffer.parse()
        try #require(reason == nil, "input does not parse: \(String(describing: reason))")
        #expect(TCPMSSClamp.clamp(buffer.p, frame: frame, maximum: f.mss) == f.changed, "scapy: \(f.scapy)")
        expectBytes(buffer.bytes(), Hex.decode(f.output), "scapy: \(f.scapy)")
    }

    @Test("MSS for an MTU")
    func mssForMTU() {
        #expect(TCPMSSClamp.mss(forMTU: 1450, ipv6: false) == 1410)
        #expect(TCPMSSClamp.mss(forMTU: 1430, ipv6: true) == 1370)
        #expect(TCPMSSClamp.mss(forMTU: 10, ipv6: true) == 0)
    }

    // MARK: ICMP error quotes

    @Test("ICMP error quote: lookup tuple and rewrite", arguments: RewriteFixtures.all.icmpQuote)
    func quote(_ f: RewriteFixtures.Quote) throws {
        let input = Hex.decode(f.input)
        // Parse over an exact allocation: a read past the frame would leave it.
        let tuple: (UInt8, String, String, UInt16, UInt16)? = try withExactAllocation(input) { p in
            var frame = ParsedFrame()
            try #require(FrameParser.parse(p, length: input.count, into: &frame) == nil)
            if f.family == 4 {
                return ICMPErrorQuote.parseIPv4(p, frame: frame).map {
                    #expect($0.l4Offset + 8 <= frame.l3End)
                    return ($0.proto, $0.source.description, $0.destination.description, $0.sourcePort, $0.destinationPort)
                }
            }
            return ICMPErrorQuote.parseIPv6(p, frame: frame).map {
                #expect($0.l4Offset + 8 <= frame.l3End)
                return ($0.proto, $0.source.description, $0.destination.description, $0.sourcePort, $0.destinationPort)
            }
        }
        if let e = f.expect {
            let t = try #require(tuple, "scapy: \(f.scapy)")
            #expect(t.0 == e.protocol && t.1 == e.source && t.2 == e.destination
                && t.3 == e.sourcePort && t.4 == e.destinationPort, "got \(t); scapy: \(f.scapy)")
        } else {
            #expect(tuple == nil, "scapy: \(f.scapy)")
        }
        guard let r = f.rewrite, let output = f.output.map(Hex.decode) else { return }
        // Both orders (outer NAT first, or quote first) give the same bytes.
        for natFirst in [true, false] {
            let buffer = PacketBuffer(input)
            let (frame, _) = buffer.parse()
            if natFirst { try Self.natOuter(r, f.family, buffer.p, frame) }
            if f.family == 4 {
                let q = try #require(ICMPErrorQuote.parseIPv4(buffer.p, frame: frame))
                #expect(ICMPErrorQuote.rewriteIPv4(buffer.p, frame: frame, quote: q,
                                                   source: v4(r.source), sourcePort: r.sourcePort,
                                                   destination: v4(r.destination), destinationPort: r.destinationPort))
            } else {
                let q = try #require(ICMPErrorQuote.parseIPv6(buffer.p, frame: frame))
                #expect(ICMPErrorQuote.rewriteIPv6(buffer.p, frame: frame, quote: q,
                                                   source: v6(r.source), sourcePort: r.sourcePort,
                                                   destination: v6(r.destination), destinationPort: r.destinationPort))
            }
            if !natFirst { try Self.natOuter(r, f.family, buffer.p, frame) }
            expectBytes(buffer.bytes(), output, "natFirst \(natFirst); scapy: \(f.scapyOutput ?? "")")
        }
    }

    /// The outer translation of an ICMP error: addresses only (ports are ignored for errors).
    static func natOuter(_ r: RewriteFixtures.Quote.Rewrite, _ family: Int, _ p: UnsafeMutableRawPointer,
                         _ frame: ParsedFrame) throws {
        var outcome = NATRewrite.Outcome.rewritten
        if family == 4 {
            switch (r.outerSource.map(v4), r.outerDestination.map(v4)) {
            case let (s?, d?): outcome = NATRewrite.rewriteIPv4(p, frame: frame, source: s, sourcePort: 1,
                                                                destination: d, destinationPort: 2)
            case let (nil, d?): outcome = NATRewrite.rewriteIPv4Destination(p, frame: frame, address: d, port: 3)
            case let (s?, nil): outcome = NATRewrite.rewriteIPv4Source(p, frame: frame, address: s, port: 4)
            case (nil, nil): break
            }
        } else {
            switch (r.outerSource.map(v6), r.outerDestination.map(v6)) {
            case let (s?, d?): outcome = NATRewrite.rewriteIPv6(p, frame: frame, source: s, sourcePort: 1,
                                                                destination: d, destinationPort: 2)
            case let (nil, d?): outcome = NATRewrite.rewriteIPv6Destination(p, frame: frame, address: d, port: 3)
            case let (s?, nil): outcome = NATRewrite.rewriteIPv6Source(p, frame: frame, address: s, port: 4)
            case (nil, nil): break
            }
        }
        #expect(outcome == .rewritten)
    }

    @Test("rewriting the quote of a fragmented ICMP error is refused")
    func quoteRewriteOfFragmentRefused() throws {
        let fixture = try #require(RewriteFixtures.all.icmpQuote.first { $0.rewrite != nil && $0.family == 4 })
        var input = Hex.decode(fixture.input)
        // Set MF and fix the header checksum: a first fragment of the same error.
        let l3 = 14
        input[l3 + 6] |= 0x20
        input[l3 + 10] = 0
        input[l3 + 11] = 0
        let payload = input.count - l3 - 20
        // Trim the data to a multiple of 8 as a non-last fragment must be.
        input.removeLast(payload % 8)
        input[l3 + 2] = UInt8((input.count - l3) >> 8)
        input[l3 + 3] = UInt8((input.count - l3) & 0xFF)
        let sum = input.withUnsafeBytes { InternetChecksum.checksum($0.baseAddress! + l3, count: 20) }
        input[l3 + 10] = UInt8(sum >> 8)
        input[l3 + 11] = UInt8(sum & 0xFF)
        let buffer = PacketBuffer(input)
        let (frame, reason) = buffer.parse()
        try #require(reason == nil && frame.isFragment)
        let q = try #require(ICMPErrorQuote.parseIPv4(buffer.p, frame: frame))
        #expect(!ICMPErrorQuote.rewriteIPv4(buffer.p, frame: frame, quote: q, source: q.destination, sourcePort: 1,
                                            destination: q.source, destinationPort: 2))
        expectBytes(buffer.bytes(), input, "refused but touched")
    }
}

// MARK: Properties

@Suite("Rewrite properties")
struct RewritePropertyTests {
    @Test("accumulated RFC 1624 differences equal a full recompute")
    func differenceMatchesRecompute() {
        var rng = SplitMix64(seed: 1624)
        for round in 0..<5000 {
            let count = 40 + 2 * Int.random(in: 0..<40, using: &rng)
            var bytes = [UInt8].random(count: count, using: &rng)
            bytes[0] = 0x45   // never an all-zero buffer
            let before = bytes.withUnsafeBytes { InternetChecksum.checksum($0.baseAddress!, count: count) }
            // Change a 16-bit, a 32-bit and a 128-bit field at even offsets, accumulate, apply once.
            let o16 = 2 * Int.random(in: 0..<4, using: &rng)
            let o32 = 8 + 2 * Int.random(in: 0..<4, using: &rng)
            let o128 = 20 + 2 * Int.random(in: 0..<2, using: &rng)
            var difference: UInt64 = 0
            bytes.withUnsafeMutableBytes { b in
                let p = b.baseAddress!
                let n16 = UInt16.random(in: .min ... .max, using: &rng)
                difference &+= InternetChecksum.difference(old: p.loadBE16(o16), new: n16)
                p.storeBE16(n16, o16)
                let n32 = UInt32.random(in: .min ... .max, using: &rng)
                difference &+= InternetChecksum.difference(old: p.loadBE32(o32), new: n32)
                p.storeBE32(n32, o32)
                let n128 = IPv6Address(high: .random(in: .min ... .max, using: &rng), low: .random(in: .min ... .max, using: &rng))
                difference &+= InternetChecksum.difference(old: IPv6Address.load(p, o128), new: n128)
                n128.store(p, o128)
            }
            let updated = InternetChecksum.adjust(before, by: difference)
            let full = bytes.withUnsafeBytes { InternetChecksum.checksum($0.baseAddress!, count: count) }
            // Equal, or the two spellings of zero (RFC 1624 §3) — which a non-zero buffer never needs.
            #expect(updated == full, "round \(round)")
        }
    }

    @Test("clamping, quote lookup, NAT and the VXLAN check never read or write past a mutated frame")
    func mutatedFramesStayInBounds() throws {
        let f = RewriteFixtures.all
        let seeds = f.mss.map(\.input) + f.icmpQuote.map(\.input) + f.nat.map(\.input) + f.vxlanDecap.map(\.input)
        try #require(!seeds.isEmpty)
        var rng = SplitMix64(seed: 0x5EED)
        var exercised = 0
        for seed in seeds {
            let original = Hex.decode(seed)
            for _ in 0..<60 {
                var bytes = original
                // Truncate, then flip a few bytes after the Ethernet header.
                if Bool.random(using: &rng), bytes.count > 20 {
                    bytes.removeLast(Int.random(in: 1..<(bytes.count - 14), using: &rng))
                }
                for _ in 0..<Int.random(in: 0...3, using: &rng) where bytes.count > 15 {
                    bytes[Int.random(in: 14..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                try withExactAllocation(bytes) { p in
                    var frame = ParsedFrame()
                    guard FrameParser.parse(p, length: bytes.count, into: &frame) == nil else { return }
                    exercised += 1
                    _ = TCPMSSClamp.clamp(p, frame: frame, maximum: 536)
                    _ = VXLANDecapsulation.parse(p, frame: frame)
                    if let q = ICMPErrorQuote.parseIPv4(p, frame: frame) {
                        #expect(q.l4Offset + 8 <= frame.l3End)
                        _ = ICMPErrorQuote.rewriteIPv4(p, frame: frame, quote: q, source: q.destination, sourcePort: 9,
                                                       destination: q.source, destinationPort: 10)
                    }
                    if let q = ICMPErrorQuote.parseIPv6(p, frame: frame) {
                        #expect(q.l4Offset + 8 <= frame.l3End)
                        _ = ICMPErrorQuote.rewriteIPv6(p, frame: frame, quote: q, source: q.destination, sourcePort: 9,
                                                       destination: q.source, destinationPort: 10)
                    }
                    if frame.isIPv4 {
                        _ = NATRewrite.rewriteIPv4(p, frame: frame, source: v4("192.0.2.1"), sourcePort: 1,
                                                   destination: v4("192.0.2.2"), destinationPort: 2, decrementTTL: true)
                        // The IPv4 header checksum is still right.
                        var again = ParsedFrame()
                        #expect(FrameParser.parse(p, length: bytes.count, into: &again) == nil)
                    } else if frame.isIPv6 {
                        _ = NATRewrite.rewriteIPv6(p, frame: frame, source: v6("2001:db8::1"), sourcePort: 1,
                                                   destination: v6("2001:db8::2"), destinationPort: 2,
                                                   decrementHopLimit: true)
                    }
                }
            }
        }
        #expect(exercised > 1000)
    }

    @Test("NAT keeps TCP, UDP and ICMPv6 checksums valid on random packets")
    func natChecksumsVerify() throws {
        var rng = SplitMix64(seed: 768)
        for round in 0..<500 {
            let ipv6 = round % 2 == 1
            let proto: UInt8 = [IPProtocol.tcp, IPProtocol.udp, ipv6 ? IPProtocol.icmpv6 : IPProtocol.tcp][round % 3]
            let payload = [UInt8].random(count: Int.random(in: 0..<64, using: &rng), using: &rng)
            var bytes = [UInt8](repeating: 0, count: 14)
            bytes[12] = ipv6 ? 0x86 : 0x08
            bytes[13] = ipv6 ? 0xDD : 0x00
            let l4Length = (proto == IPProtocol.tcp ? 20 : 8) + payload.count
            let l3Length = (ipv6 ? 40 : 20) + l4Length
            var l3 = [UInt8](repeating: 0, count: ipv6 ? 40 : 20)
            if ipv6 {
                l3[0] = 0x60; l3[4] = UInt8(l4Length >> 8); l3[5] = UInt8(l4Length & 0xFF); l3[6] = proto; l3[7] = 64
                for i in 8..<40 { l3[i] = UInt8.random(in: 0...255, using: &rng) }
            } else {
                l3[0] = 0x45; l3[2] = UInt8(l3Length >> 8); l3[3] = UInt8(l3Length & 0xFF); l3[8] = 64; l3[9] = proto
                for i in 12..<20 { l3[i] = UInt8.random(in: 0...255, using: &rng) }
                let c = l3.withUnsafeBytes { InternetChecksum.checksum($0.baseAddress!, count: 20) }
                l3[10] = UInt8(c >> 8); l3[11] = UInt8(c & 0xFF)
            }
            var l4 = [UInt8].random(count: proto == IPProtocol.tcp ? 20 : 8, using: &rng)
            if proto == IPProtocol.tcp { l4[12] = 0x50 }
            if proto == IPProtocol.udp { l4[4] = UInt8(l4Length >> 8); l4[5] = UInt8(l4Length & 0xFF) }
            if proto == IPProtocol.icmpv6 { l4[0] = ICMPv6Type.echoRequest; l4[1] = 0 }
            var segment = l4 + payload
            let checksumOffset = proto == IPProtocol.tcp ? 16 : (proto == IPProtocol.udp ? 6 : 2)
            segment[checksumOffset] = 0
            segment[checksumOffset + 1] = 0
            let pseudo = Self.pseudo(l3, ipv6: ipv6, proto: proto, length: l4Length)
            var c = segment.withUnsafeBytes { InternetChecksum.checksum($0.baseAddress!, count: segment.count, initial: pseudo) }
            if proto == IPProtocol.udp && c == 0 { c = 0xFFFF }
            segment[checksumOffset] = UInt8(c >> 8)
            segment[checksumOffset + 1] = UInt8(c & 0xFF)
            bytes += l3 + segment
            let buffer = PacketBuffer(bytes)
            let (frame, reason) = buffer.parse()
            try #require(reason == nil, "round \(round): \(String(describing: reason))")
            let outcome: NATRewrite.Outcome
            if ipv6 {
                outcome = NATRewrite.rewriteIPv6(buffer.p, frame: frame,
                                                 source: IPv6Address(high: rng.next(), low: rng.next()), sourcePort: UInt16.random(in: 0...65535, using: &rng),
                                                 destination: IPv6Address(high: rng.next(), low: rng.next()), destinationPort: UInt16.random(in: 0...65535, using: &rng),
                                                 decrementHopLimit: true)
            } else {
                outcome = NATRewrite.rewriteIPv4(buffer.p, frame: frame,
                                                 source: IPv4Address(value: UInt32.random(in: 0...UInt32.max, using: &rng)), sourcePort: UInt16.random(in: 0...65535, using: &rng),
                                                 destination: IPv4Address(value: UInt32.random(in: 0...UInt32.max, using: &rng)), destinationPort: UInt16.random(in: 0...65535, using: &rng),
                                                 decrementTTL: true)
            }
            #expect(outcome == .rewritten)
            let out = buffer.bytes()
            let newL3 = Array(out[14..<(14 + (ipv6 ? 40 : 20))])
            let newSegment = Array(out[(14 + newL3.count)...])
            let newPseudo = Self.pseudo(newL3, ipv6: ipv6, proto: proto, length: l4Length)
            let verifies = newSegment.withUnsafeBytes {
                InternetChecksum.verifies($0.baseAddress!, count: newSegment.count, initial: newPseudo)
            }
            #expect(verifies, "round \(round)")
            var again = ParsedFrame()
            #expect(FrameParser.parse(buffer.p, length: buffer.length, into: &again) == nil)
        }
    }

    static func pseudo(_ l3: [UInt8], ipv6: Bool, proto: UInt8, length: Int) -> UInt64 {
        l3.withUnsafeBytes { b in
            let p = b.baseAddress!
            return ipv6
                ? InternetChecksum.pseudoHeaderSum(source: IPv6Address.load(p, 8), destination: IPv6Address.load(p, 24),
                                                   nextHeader: proto, length: length)
                : InternetChecksum.pseudoHeaderSum(source: IPv4Address(value: p.loadBE32(12)),
                                                   destination: IPv4Address(value: p.loadBE32(16)),
                                                   protocol: proto, length: length)
        }
    }
}
