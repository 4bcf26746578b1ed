import Testing
import SluiceCore
@testable import SluiceMaglev

@Suite struct SipHashVectors {
    /// The reference implementation's SipHash-2-4 vectors (key 00…0f, message 00…n−1).
    @Test func officialSipHash24() {
        let key = SipHash.key(fromBytes: Array(0...15))!
        let vectors: [Int: UInt64] = [
            0: 0x726f_db47_dd0e_0e31, 1: 0x74f8_39c5_93dc_67fd, 7: 0xab02_00f5_8b01_d137,
            8: 0x93f5_f579_9a93_2462, 15: 0xa129_ca61_49be_45e5, 16: 0x3f2a_cc7f_57c2_9bdb,
            63: 0x958a_324c_eb06_4572,
        ]
        for (n, want) in vectors {
            #expect(SipHash.hash24((0..<n).map { UInt8($0) }, key0: key.key0, key1: key.key1) == want, "length \(n)")
        }
    }

    /// Vectors from the Python model (SipHash-1-3 for every tail length, and 2-4).
    @Test func referenceModelVectors() {
        for v in ReferenceFixture.shared.siphash {
            let key = SipHash.key(fromBytes: bytes(hex: v.key))!
            let got = bytes(hex: v.message).withUnsafeBytes {
                SipHash.hash($0, key0: key.key0, key1: key.key1, compressionRounds: v.c, finalizationRounds: v.d)
            }
            #expect(got == uint64(hex: v.hash), "SipHash-\(v.c)-\(v.d) of \(v.message)")
        }
    }

    /// CPython's own SipHash-1-3 (`hash(bytes)` under PYTHONHASHSEED=0, key all zeros): an
    /// implementation independent of both ours.
    @Test func cpythonSipHash13() {
        let vectors = ReferenceFixture.shared.cpythonSiphash13Key0
        #expect(!vectors.isEmpty)
        for v in vectors {
            #expect(SipHash.hash13(bytes(hex: v.message), key0: 0, key1: 0) == uint64(hex: v.hash), "\(v.message)")
        }
    }
}

@Suite struct FlowHashing {
    static let seed = FlowHashSeed(hex: "000102030405060708090a0b0c0d0e0f")!

    @Test func seedParsing() {
        #expect(Self.seed == FlowHashSeed(bytes: Array(0...15)))
        #expect(Self.seed.key0 == 0x0706_0504_0302_0100 && Self.seed.key1 == 0x0f0e_0d0c_0b0a_0908)
        #expect(FlowHashSeed(hex: "00") == nil)
        #expect(FlowHashSeed(hex: "zz0102030405060708090a0b0c0d0e0f") == nil)
        #expect(FlowHashSeed(bytes: [1, 2, 3]) == nil)
    }

    /// The straight-line fast path equals generic SipHash-1-3 over the documented byte layout.
    @Test func fastPathMatchesGenericSipHash() {
        var rng = SplitMix64(seed: 1)
        for _ in 0..<2000 {
            let seed = FlowHashSeed(key0: rng.next(), key1: rng.next())
            let hasher = FlowHasher(seed: seed)
            let k4 = IPv4FlowKey(source: IPv4Address(value: UInt32(truncatingIfNeeded: rng.next())),
                                 destination: IPv4Address(value: UInt32(truncatingIfNeeded: rng.next())),
                                 sourcePort: UInt16(truncatingIfNeeded: rng.next()),
                                 destinationPort: UInt16(truncatingIfNeeded: rng.next()),
                                 proto: UInt8(truncatingIfNeeded: rng.next()))
            #expect(k4.hashedBytes.count == 13)
            #expect(hasher.hash(k4) == SipHash.hash13(k4.hashedBytes, key0: seed.key0, key1: seed.key1))
            let k6 = IPv6FlowKey(source: IPv6Address(high: rng.next(), low: rng.next()),
                                 destination: IPv6Address(high: rng.next(), low: rng.next()),
                                 sourcePort: UInt16(truncatingIfNeeded: rng.next()),
                                 destinationPort: UInt16(truncatingIfNeeded: rng.next()),
                                 proto: UInt8(truncatingIfNeeded: rng.next()))
            #expect(k6.hashedBytes.count == 37)
            #expect(hasher.hash(k6) == SipHash.hash13(k6.hashedBytes, key0: seed.key0, key1: seed.key1))
        }
    }

    /// Flow hashes and Maglev slots computed by the Python model.
    @Test func referenceModelFlows() {
        for f in ReferenceFixture.shared.flows {
            let hasher = FlowHasher(seed: FlowHashSeed(hex: f.seed)!)
            let h: UInt64
            if let s = IPv4Address(f.source), let d = IPv4Address(f.destination) {
                h = hasher.hash(IPv4FlowKey(source: s, destination: d, sourcePort: f.sourcePort,
                                            destinationPort: f.destinationPort, proto: f.proto))
            } else {
                h = hasher.hash(IPv6FlowKey(source: IPv6Address(f.source)!, destination: IPv6Address(f.destination)!,
                                            sourcePort: f.sourcePort, destinationPort: f.destinationPort, proto: f.proto))
            }
            #expect(h == uint64(hex: f.hash), "\(f.source) → \(f.destination)")
            #expect(MaglevTable.slot(forHash: h, slots: 65537) == f.slot65537)
        }
    }

    /// Every field and the seed change the hash (a sanity check of the layout, not a proof).
    @Test func everyFieldMatters() {
        let base = IPv4FlowKey(source: IPv4Address("192.0.2.1")!, destination: IPv4Address("198.51.100.10")!,
                               sourcePort: 49152, destinationPort: 80, proto: IPProtocol.tcp)
        let hasher = FlowHasher(seed: Self.seed)
        var variants = [base]
        var k = base; k.source.value ^= 1; variants.append(k)
        k = base; k.destination.value ^= 0x8000_0000; variants.append(k)
        k = base; k.sourcePort ^= 1; variants.append(k)
        k = base; k.destinationPort ^= 0x100; variants.append(k)
        k = base; k.proto = IPProtocol.udp; variants.append(k)
        // Swapping the two addresses is a different flow (the hash is directional).
        k = base; swap(&k.source, &k.destination); variants.append(k)
        let hashes = Set(variants.map { hasher.hash($0) })
        #expect(hashes.count == variants.count)
        #expect(FlowHasher(seed: FlowHashSeed(key0: 1, key1: 0)).hash(base) != hasher.hash(base))
    }

    /// The 5-tuple read from parsed frames (TCP over IPv4, UDP over IPv6, ICMP without ports).
    @Test func keysFromParsedFrames() {
        // Ethernet + IPv4 (20) + TCP (20), 192.0.2.1:49152 → 198.51.100.10:80.
        var v4: [UInt8] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00,
                           0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 1, 198, 51, 100, 10,
                           0xC0, 0x00, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xFF, 0xFF, 0, 0, 0, 0]
        v4.withUnsafeMutableBytes { b in
            b.baseAddress!.storeBE16(InternetChecksum.checksum(b.baseAddress! + 14, count: 20), 24)
        }
        let key4: IPv4FlowKey? = v4.withUnsafeBytes { b in
            var frame = ParsedFrame()
            guard FrameParser.parse(b.baseAddress!, length: b.count, into: &frame) == nil else { return nil }
            return IPv4FlowKey(packet: b.baseAddress!, frame: frame)
        }
        #expect(key4 == IPv4FlowKey(source: IPv4Address("192.0.2.1")!, destination: IPv4Address("198.51.100.10")!,
                                    sourcePort: 49152, destinationPort: 80, proto: IPProtocol.tcp))

        // Ethernet + IPv6 (40) + UDP (8), [2001:db8::1]:5353 → [2001:db8::10]:53.
        var v6: [UInt8] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xDD,
                           0x60, 0, 0, 0, 0, 8, 17, 64]
        v6 += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
        v6 += [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [0x10]
        v6 += [0x14, 0xE9, 0x00, 0x35, 0x00, 0x08, 0, 0]
        let key6: IPv6FlowKey? = v6.withUnsafeBytes { b in
            var frame = ParsedFrame()
            guard FrameParser.parse(b.baseAddress!, length: b.count, into: &frame) == nil else { return nil }
            return IPv6FlowKey(packet: b.baseAddress!, frame: frame)
        }
        #expect(key6 == IPv6FlowKey(source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::10")!,
                                    sourcePort: 5353, destinationPort: 53, proto: IPProtocol.udp))

        // ICMP echo: no ports.
        var icmp: [UInt8] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00,
                             0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0, 0, 192, 0, 2, 1, 198, 51, 100, 10,
                             8, 0, 0xF7, 0xFE, 0, 1, 0, 0]
        icmp.withUnsafeMutableBytes { b in
            b.baseAddress!.storeBE16(InternetChecksum.checksum(b.baseAddress! + 14, count: 20), 24)
        }
        let keyICMP: IPv4FlowKey? = icmp.withUnsafeBytes { b in
            var frame = ParsedFrame()
            guard FrameParser.parse(b.baseAddress!, length: b.count, into: &frame) == nil else { return nil }
            return IPv4FlowKey(packet: b.baseAddress!, frame: frame)
        }
        #expect(keyICMP == IPv4FlowKey(source: IPv4Address("192.0.2.1")!, destination: IPv4Address("198.51.100.10")!,
                                       sourcePort: 0, destinationPort: 0, proto: IPProtocol.icmp))
    }
}

/// A small deterministic generator for test inputs (Steele, Lea, Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
