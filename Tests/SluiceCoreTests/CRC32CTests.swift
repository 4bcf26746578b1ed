import SluiceTestSupport
import Testing
import SluiceCore

/// Bit-at-a-time CRC32c (reflected polynomial 0x82F63B78): the reference for the sliced tables.
private func bitwiseCRC32C(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
    }
    return ~c
}

private func crc(_ bytes: [UInt8]) -> UInt32 {
    withExactAllocation(bytes) { CRC32C.checksum($0, count: bytes.count) }
}

@Suite("CRC32c and the SCTP checksum")
struct CRC32CTests {
    @Test("RFC 3720 B.4 vectors")
    func rfc3720Vectors() {
        #expect(crc([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(crc([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(crc((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(crc((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
    }

    @Test("the CRC-32C check value: \"123456789\" → 0xE3069283")
    func checkValue() {
        #expect(crc(Array("123456789".utf8)) == 0xE306_9283)
        #expect(crc([]) == 0)
    }

    @Test("sliced tables equal the bitwise reference on random data, every length 0...200")
    func randomAgainstReference() {
        var rng = SplitMix64(seed: 0x3720)
        for length in 0...200 {
            let data = [UInt8].random(count: length, using: &rng)
            #expect(crc(data) == bitwiseCRC32C(data), "length \(length)")
        }
    }

    @Test("update continues a CRC across any split point and any alignment")
    func incremental() {
        var rng = SplitMix64(seed: 0x3309)
        let data = [UInt8].random(count: 77, using: &rng)
        let whole = bitwiseCRC32C(data)
        data.withUnsafeBytes { raw in
            let p = raw.baseAddress!
            for split in 0...data.count {
                let first = CRC32C.update(0, p, count: split)
                #expect(CRC32C.update(first, p + split, count: data.count - split) == whole, "split \(split)")
            }
            for start in 0..<9 {
                let tail = Array(data[start...])
                #expect(CRC32C.checksum(p + start, count: tail.count) == bitwiseCRC32C(tail), "start \(start)")
            }
        }
    }

    @Test("scapy-made SCTP packets verify, and store() writes scapy's exact checksum bytes")
    func scapySCTP() throws {
        let fixtures = try #require(Fixtures.builders)
        try #require(!fixtures.sctp.isEmpty)
        for packet in fixtures.sctp {
            let bytes = Hex.decode(packet.packet)
            let field = Hex.decode(packet.checksumField)
            #expect(Array(bytes[8..<12]) == field)
            withExactAllocation(bytes) { p in
                #expect(SCTPChecksum.verifies(p, count: bytes.count), "\(packet.description)")
                // RFC 9260 Appendix A: the CRC goes into the field least significant byte first.
                let computed = SCTPChecksum.compute(p, count: bytes.count)
                let stored = UInt32(field[0]) | UInt32(field[1]) << 8 | UInt32(field[2]) << 16 | UInt32(field[3]) << 24
                #expect(computed == stored, "\(packet.description)")
                // compute() ignores whatever is in the field.
                p.storeBE32(0xDEAD_BEEF, SCTPChecksum.fieldOffset)
                #expect(SCTPChecksum.compute(p, count: bytes.count) == computed)
                #expect(!SCTPChecksum.verifies(p, count: bytes.count))
                SCTPChecksum.store(p, count: bytes.count)
                #expect([UInt8](UnsafeRawBufferPointer(start: p, count: bytes.count)) == bytes)
                // Any flipped payload bit is caught.
                let last = bytes.count - 1
                p.storeBE8(p.loadBE8(last) ^ 0x10, last)
                #expect(!SCTPChecksum.verifies(p, count: bytes.count))
            }
        }
    }

    @Test("SCTP verify refuses anything shorter than the common header")
    func sctpTooShort() {
        let bytes = [UInt8](repeating: 0, count: 11)
        #expect(!withExactAllocation(bytes) { SCTPChecksum.verifies($0, count: bytes.count) })
    }
}
