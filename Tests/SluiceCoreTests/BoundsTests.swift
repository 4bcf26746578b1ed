import Testing
import SluiceCore
import SluiceDataPlane

/// Checks the ParsedFrame invariant documented in FrameParser.swift for a frame of `length`.
private func checkInvariant(_ f: ParsedFrame, length: Int, _ context: @autoclosure () -> String) {
    #expect(f.l3Offset >= HeaderSize.ethernet && f.l3Offset <= length, "\(context()): l3Offset \(f.l3Offset)")
    #expect(f.l3End <= length, "\(context()): l3End \(f.l3End) > \(length)")
    if f.isIPv4 {
        #expect(f.l3Offset + HeaderSize.ipv4Minimum <= f.l3End, "\(context())")
    } else if f.isIPv6 {
        #expect(f.l3Offset + HeaderSize.ipv6 <= f.l3End, "\(context())")
    } else if f.isARP {
        #expect(f.l3Offset + HeaderSize.arpIPv4 <= f.l3End, "\(context())")
    }
    if f.hasL4Header {
        #expect(f.l4Offset >= f.l3Offset && f.l4Offset <= f.l3End, "\(context()): l4Offset \(f.l4Offset)")
        let minimum: Int? = switch f.l4Protocol {
        case IPProtocol.tcp: HeaderSize.tcpMinimum
        case IPProtocol.udp: HeaderSize.udp
        case IPProtocol.sctp: HeaderSize.sctpCommon
        case IPProtocol.icmp: HeaderSize.icmpEcho
        case IPProtocol.icmpv6: HeaderSize.icmpv6Minimum
        default: nil
        }
        if let minimum {
            #expect(f.l4Offset + minimum <= f.l3End, "\(context()): L4 header past l3End")
        }
    }
}

/// Parse and dispatch `bytes` from an exactly-sized heap allocation whose capacity is its length.
private func run(_ bytes: [UInt8], owned: OwnedAddresses, _ context: @autoclosure () -> String) {
    withExactAllocation(bytes) { p in
        var frame = ParsedFrame()
        if FrameParser.parse(UnsafeRawPointer(p), length: bytes.count, into: &frame) == nil {
            checkInvariant(frame, length: bytes.count, context())
        }
        var length = bytes.count
        let verdict = FrameDispatcher.process(p, length: &length, capacity: bytes.count, owned: owned)
        if case .transmit = verdict {
            #expect(length > 0 && length <= bytes.count, "\(context()): reply length \(length)")
        } else {
            #expect(length == bytes.count, "\(context())")
        }
    }
}

@Suite("Never reads out of bounds")
struct BoundsTests {
    @Test("every truncation of every fixture input, from an exactly-sized allocation", arguments: Fixtures.packetCore)
    func truncations(_ fixture: GoldenFixture) throws {
        let owned = try fixture.ownedAddresses()
        let input = fixture.inputBytes
        for n in 0...input.count {
            run(Array(input[0..<n]), owned: owned, "\(fixture.description) cut to \(n)")
        }
    }

    @Test("seeded random byte mutations of every fixture input")
    func mutations() throws {
        var rng = SplitMix64(seed: 0xB0B5)
        for fixture in Fixtures.packetCore {
            let owned = try fixture.ownedAddresses()
            let input = fixture.inputBytes
            guard !input.isEmpty else { continue }
            for round in 0..<300 {
                var bytes = input
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    // Favour the values that steer parsers: 0, 0xFF, small lengths, next-header numbers.
                    let interesting: [UInt8] = [0, 0xFF, 1, 2, 4, 5, 6, 8, 15, 17, 43, 44, 58, 59, 60, 0x81, 0x86, 0x88]
                    bytes[i] = rng.next() % 2 == 0
                        ? interesting[Int.random(in: 0..<interesting.count, using: &rng)]
                        : UInt8.random(in: 0...255, using: &rng)
                }
                let cut = rng.next() % 4 == 0 ? Int.random(in: 0...bytes.count, using: &rng) : bytes.count
                run(Array(bytes[0..<cut]), owned: owned, "\(fixture.description) mutation \(round)")
            }
        }
    }

    @Test("frames stuffed with extension headers and VLAN tags up to the limits")
    func deepChains() {
        let owned = OwnedAddresses(portMAC: MACAddress("02:00:00:00:00:01")!, ipv4: [],
                                   ipv6: [(IPv6Address("2001:db8::10")!, MACAddress("02:00:00:00:00:0a")!)])
        // IPv6 with n destination-options headers (8 bytes each), then nothing.
        for n in 0...20 {
            var bytes: [UInt8] = [2, 0, 0, 0, 0, 0x0A, 2, 0, 0, 0, 1, 1, 0x86, 0xDD]
            let payload = 8 * n
            bytes += [0x60, 0, 0, 0, UInt8(payload >> 8), UInt8(payload & 0xFF), n == 0 ? 59 : 60, 64]
            bytes += [UInt8](repeating: 0x20, count: 16)
            bytes += [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [0x10]
            for i in 0..<n { bytes += [i == n - 1 ? 59 : 60, 0, 1, 4, 0, 0, 0, 0] }
            var frame = ParsedFrame()
            let reason = withExactAllocation(bytes) { FrameParser.parse($0, length: bytes.count, into: &frame) }
            #expect(reason == (n <= FrameParser.maxIPv6ExtensionHeaders ? nil : .badIPv6ExtensionHeader), "n \(n)")
            for cut in 0...bytes.count { run(Array(bytes[0..<cut]), owned: owned, "\(n) headers cut to \(cut)") }
        }
    }
}
