import Testing
import SluiceCore

/// The reference: RFC 1071 §4.1 word by word, with the end-around carry folded at every step.
private func naiveSum(_ bytes: [UInt8]) -> UInt16 {
    var sum: UInt32 = 0
    var i = 0
    while i < bytes.count {
        let word = UInt32(bytes[i]) << 8 | (i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0)
        sum += word
        sum = (sum & 0xFFFF) + (sum >> 16)
        i += 2
    }
    return UInt16(sum)
}

private func naiveChecksum(_ bytes: [UInt8]) -> UInt16 { ~naiveSum(bytes) }

private func checksum(_ bytes: [UInt8], initial: UInt64 = 0) -> UInt16 {
    withExactAllocation(bytes) { InternetChecksum.checksum($0, count: bytes.count, initial: initial) }
}

private func words(_ bytes: [UInt8]) -> [UInt16] {
    stride(from: 0, to: bytes.count, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
}

private func bytes(_ words: [UInt16]) -> [UInt8] {
    words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
}

@Suite("Internet checksum (RFC 1071, RFC 1624)")
struct InternetChecksumTests {
    @Test("RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2")
    func rfc1071Example() {
        let data: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        let sum = withExactAllocation(data) { InternetChecksum.fold(InternetChecksum.sum($0, count: data.count)) }
        #expect(sum == 0xDDF2)
        #expect(checksum(data) == 0x220D)
        #expect(naiveChecksum(data) == 0x220D)
    }

    @Test("a textbook IPv4 header checksum (0xb861)")
    func ipv4HeaderExample() {
        let header: [UInt8] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
                               0xC0, 0xA8, 0x00, 0x01, 0xC0, 0xA8, 0x00, 0xC7]
        #expect(checksum(header) == 0xB861)
        var filled = header
        filled[10] = 0xB8
        filled[11] = 0x61
        #expect(withExactAllocation(filled) { InternetChecksum.verifies($0, count: filled.count) })
    }

    @Test("full checksum equals the naive reference on random data of every length 0...300")
    func randomAgainstReference() {
        var rng = SplitMix64(seed: 0x5EED_0001)
        for length in 0...300 {
            for _ in 0..<4 {
                let data = [UInt8].random(count: length, using: &rng)
                #expect(checksum(data) == naiveChecksum(data), "length \(length)")
            }
        }
    }

    @Test("checksum at an unaligned start equals the reference")
    func unaligned() {
        var rng = SplitMix64(seed: 0x5EED_0002)
        let data = [UInt8].random(count: 200, using: &rng)
        data.withUnsafeBytes { raw in
            for start in 0..<16 {
                for length in [0, 1, 7, 8, 9, 63, 64, 65, 101] where start + length <= data.count {
                    let got = InternetChecksum.checksum(raw.baseAddress! + start, count: length)
                    #expect(got == naiveChecksum(Array(data[start..<start + length])), "start \(start) length \(length)")
                }
            }
        }
    }

    @Test("carries: long runs of 0xFF and a large initial sum")
    func carries() {
        for length in [1, 2, 7, 8, 9, 64, 1500, 9000, 65535] {
            let data = [UInt8](repeating: 0xFF, count: length)
            #expect(checksum(data) == naiveChecksum(data), "length \(length)")
        }
        // An initial partial sum near the top of the 64-bit accumulator must wrap end-around.
        let data = [UInt8](repeating: 0xFF, count: 64)
        let initial: UInt64 = 0xFFFF_FFFF_FFFF_0000
        let expected = ~naiveSum(data + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00])
        #expect(checksum(data, initial: initial) == expected)
    }

    @Test("a filled-in checksum verifies; any single flipped bit does not")
    func verifyRoundTrip() {
        var rng = SplitMix64(seed: 0x5EED_0003)
        for length in stride(from: 4, through: 120, by: 2) {
            var data = [UInt8].random(count: length, using: &rng)
            data[2] = 0
            data[3] = 0
            let c = checksum(data)
            data[2] = UInt8(c >> 8)
            data[3] = UInt8(c & 0xFF)
            #expect(withExactAllocation(data) { InternetChecksum.verifies($0, count: data.count) })
            let bit = Int.random(in: 0..<(length * 8), using: &rng)
            data[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(!withExactAllocation(data) { InternetChecksum.verifies($0, count: data.count) })
        }
    }

    @Test("all-zero data: checksum 0xFFFF, and 0xFFFF verifies (RFC 1624 §3)")
    func allZero() {
        #expect(checksum([0, 0, 0, 0]) == 0xFFFF)
        #expect(withExactAllocation([0, 0, 0xFF, 0xFF]) { InternetChecksum.verifies($0, count: 4) })
        #expect(!withExactAllocation([0, 0, 0, 0]) { InternetChecksum.verifies($0, count: 4) })
    }

    // MARK: RFC 1624 incremental update

    @Test("RFC 1624 §4 example: 0xDD2F with m 0x5555 → 0x3285 gives 0x0000, as recomputation does")
    func rfc1624Example() {
        // "The one's complement sum of all other header octets is 0xCD7A."
        let before: [UInt16] = [0xCD7A, 0x5555]
        let after: [UInt16] = [0xCD7A, 0x3285]
        let hc = checksum(bytes(before))
        #expect(hc == 0xDD2F)
        #expect(checksum(bytes(after)) == 0x0000)
        #expect(InternetChecksum.update(hc, old: UInt16(0x5555), new: UInt16(0x3285)) == 0x0000)
    }

    @Test("eqn. 3 yields -0 for an all-zero result: callers must recompute there (see ICMP echo)")
    func rfc1624AllZeroCorner() {
        // Before: one word 0x0800 (an echo request's type), after: 0x0000 (an all-zero echo reply).
        let hc = checksum(bytes([0x0800]))
        #expect(hc == 0xF7FF)
        #expect(checksum(bytes([0x0000])) == 0xFFFF)
        // The incremental form cannot know the rest of the message is zero: it returns 0x0000.
        // FrameDispatcher's echo reply detects exactly this value and recomputes (golden fixture
        // "ICMP echo whose reply is all zero").
        #expect(InternetChecksum.update(hc, old: UInt16(0x0800), new: UInt16(0x0000)) == 0x0000)
    }

    /// A message of `count` random words with the checksum field at word 0; returns the words with
    /// the checksum filled in.
    private func message(_ count: Int, _ rng: inout SplitMix64) -> [UInt16] {
        var w = (0..<count).map { _ in UInt16.random(in: 0...0xFFFF, using: &rng) }
        w[0] = 0
        w[0] = checksum(bytes(w))
        return w
    }

    private func recomputed(_ w: [UInt16]) -> UInt16 {
        var z = w
        z[0] = 0
        return checksum(bytes(z))
    }

    @Test("16-bit update equals full recomputation on random data")
    func update16() {
        var rng = SplitMix64(seed: 0x1624_0016)
        for _ in 0..<5000 {
            var w = message(Int.random(in: 2...30, using: &rng), &rng)
            let i = Int.random(in: 1..<w.count, using: &rng)
            let old = w[i]
            let new = UInt16.random(in: 0...0xFFFF, using: &rng)
            w[i] = new
            let updated = InternetChecksum.update(w[0], old: old, new: new)
            #expect(updated == recomputed(w))
        }
    }

    @Test("16-bit update where the new sum is -0 or the field goes to/from 0x0000 and 0xFFFF")
    func update16Corners() {
        var rng = SplitMix64(seed: 0x1624_0FFF)
        for _ in 0..<2000 {
            var w = message(8, &rng)
            let i = Int.random(in: 1..<w.count, using: &rng)
            let old = w[i]
            // Choose the new value so that the sum of the other words plus it is 0xFFFF (-0).
            var others = w
            others[0] = 0
            others[i] = 0
            let rest = naiveSum(bytes(others))
            let choices: [UInt16] = [~rest, 0x0000, 0xFFFF]
            let new = choices[Int.random(in: 0..<choices.count, using: &rng)]
            w[i] = new
            let updated = InternetChecksum.update(w[0], old: old, new: new)
            #expect(updated == recomputed(w), "old \(old) new \(new) rest \(rest)")
            w[0] = updated
            #expect(naiveSum(bytes(w)) == 0xFFFF, "the updated message verifies")
        }
    }

    @Test("32-bit update (an IPv4 address) equals full recomputation")
    func update32() {
        var rng = SplitMix64(seed: 0x1624_0032)
        for _ in 0..<5000 {
            var w = message(Int.random(in: 4...30, using: &rng), &rng)
            let i = Int.random(in: 1..<(w.count - 1), using: &rng)
            let old = UInt32(w[i]) << 16 | UInt32(w[i + 1])
            let new = rng.next() % 8 == 0 ? UInt32(0) : UInt32.random(in: 0...UInt32.max, using: &rng)
            w[i] = UInt16(new >> 16)
            w[i + 1] = UInt16(new & 0xFFFF)
            #expect(InternetChecksum.update(w[0], old: old, new: new) == recomputed(w))
        }
    }

    @Test("128-bit update (an IPv6 address) equals full recomputation")
    func update128() {
        var rng = SplitMix64(seed: 0x1624_0128)
        for _ in 0..<5000 {
            var w = message(Int.random(in: 10...40, using: &rng), &rng)
            let i = Int.random(in: 1...(w.count - 8), using: &rng)
            func address(_ at: Int) -> IPv6Address {
                let b = bytes(Array(w[at..<at + 8]))
                return b.withUnsafeBytes { IPv6Address.load($0.baseAddress!, 0) }
            }
            let old = address(i)
            let newWords = (0..<8).map { _ in
                rng.next() % 4 == 0 ? UInt16(0) : UInt16.random(in: 0...0xFFFF, using: &rng)
            }
            w.replaceSubrange(i..<i + 8, with: newWords)
            let new = address(i)
            #expect(InternetChecksum.update(w[0], old: old, new: new) == recomputed(w))
        }
    }

    // MARK: pseudo-headers

    @Test("IPv4 pseudo-header sum equals the RFC 793 12-byte pseudo-header")
    func pseudoHeader4() {
        var rng = SplitMix64(seed: 0x793)
        for _ in 0..<1000 {
            let s = IPv4Address(value: UInt32.random(in: 0...UInt32.max, using: &rng))
            let d = IPv4Address(value: UInt32.random(in: 0...UInt32.max, using: &rng))
            let proto = UInt8.random(in: 0...255, using: &rng)
            let length = Int.random(in: 0...0xFFFF, using: &rng)
            let pseudo: [UInt8] = [UInt8(s.value >> 24), UInt8((s.value >> 16) & 0xFF), UInt8((s.value >> 8) & 0xFF),
                                   UInt8(s.value & 0xFF), UInt8(d.value >> 24), UInt8((d.value >> 16) & 0xFF),
                                   UInt8((d.value >> 8) & 0xFF), UInt8(d.value & 0xFF), 0, proto,
                                   UInt8(length >> 8), UInt8(length & 0xFF)]
            let sum = InternetChecksum.pseudoHeaderSum(source: s, destination: d, protocol: proto, length: length)
            #expect(InternetChecksum.fold(sum) == naiveSum(pseudo))
        }
    }

    @Test("IPv6 pseudo-header sum equals the RFC 8200 §8.1 40-byte pseudo-header")
    func pseudoHeader6() {
        var rng = SplitMix64(seed: 0x8200)
        for _ in 0..<1000 {
            let s = IPv6Address(high: rng.next(), low: rng.next())
            let d = IPv6Address(high: rng.next(), low: rng.next())
            let next = UInt8.random(in: 0...255, using: &rng)
            let length = Int.random(in: 0...0xFFFF, using: &rng)
            var pseudo = [UInt8](repeating: 0, count: 40)
            pseudo.withUnsafeMutableBytes { b in
                s.store(b.baseAddress!, 0)
                d.store(b.baseAddress!, 16)
                b.baseAddress!.storeBE32(UInt32(length), 32)
                b.baseAddress!.storeBE32(UInt32(next), 36)
            }
            let sum = InternetChecksum.pseudoHeaderSum(source: s, destination: d, nextHeader: next, length: length)
            #expect(InternetChecksum.fold(sum) == naiveSum(pseudo))
        }
    }

    /// Fixtures whose upper-layer bytes are written by hand (or cut short), so carry no valid checksum.
    private let handWrittenL4: Set<String> = [
        "NS with a bad ICMPv6 checksum (RFC 4861 §7.1.1)",
        "NS shorter than 24 bytes",
        "ICMPv6 router solicitation to a VIP",
        "ICMPv6 echo of 6 bytes (shorter than the 8-byte echo header)",
    ]

    @Test("scapy's TCP/UDP/ICMP/ICMPv6 checksums in the golden fixtures verify with Sluice's sums")
    func scapyChecksumsVerify() throws {
        var checked = 0
        for fixture in Fixtures.packetCore {
            for frameBytes in [fixture.inputBytes] + (fixture.outputBytes.map { [$0] } ?? []) {
                var frame = ParsedFrame()
                let reason = frameBytes.withUnsafeBytes {
                    FrameParser.parse($0.baseAddress!, length: frameBytes.count, into: &frame)
                }
                guard reason == nil, frame.hasL4Header, !frame.isFragment,
                      !handWrittenL4.contains(fixture.description) else { continue }
                let ok: Bool? = frameBytes.withUnsafeBytes { raw in
                    let p = raw.baseAddress!
                    let l4 = p + frame.l4Offset
                    switch frame.l4Protocol {
                    case IPProtocol.icmp:
                        return InternetChecksum.verifies(l4, count: frame.l4Length)
                    case IPProtocol.tcp, IPProtocol.udp, IPProtocol.icmpv6:
                        let pseudo: UInt64
                        if frame.isIPv4 {
                            pseudo = InternetChecksum.pseudoHeaderSum(
                                source: IPv4Address(value: p.loadBE32(frame.l3Offset + 12)),
                                destination: IPv4Address(value: p.loadBE32(frame.l3Offset + 16)),
                                protocol: frame.l4Protocol, length: frame.l4Length)
                        } else {
                            pseudo = InternetChecksum.pseudoHeaderSum(
                                source: IPv6Address.load(p, frame.l3Offset + 8),
                                destination: IPv6Address.load(p, frame.l3Offset + 24),
                                nextHeader: frame.l4Protocol, length: frame.l4Length)
                        }
                        return InternetChecksum.verifies(l4, count: frame.l4Length, initial: pseudo)
                    case IPProtocol.sctp:
                        return SCTPChecksum.verifies(l4, count: frame.l4Length)
                    default:
                        return nil
                    }
                }
                // Fixtures that deliberately break a header (bad lengths) never get this far.
                guard let ok else { continue }
                #expect(ok, "\(fixture.description): scapy's checksum does not verify")
                checked += 1
            }
        }
        #expect(checked >= 40)
    }
}
