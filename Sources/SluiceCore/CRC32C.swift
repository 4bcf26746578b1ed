/// CRC32c (Castagnoli polynomial 0x1EDC6F41, reflected 0x82F63B78), the SCTP checksum
/// (RFC 9260 §6.8 and Appendix A; first specified in RFC 3309).
///
/// Table-driven, slicing by 8 bytes: SCTP is rare enough on an L4 LB that this is not on the
/// common path; DPDK's `rte_hash_crc` (SSE4.2 `crc32` instruction) is the fast alternative where
/// the data plane links DPDK.
public enum CRC32C {
    /// Eight 256-entry slices, slice k at `k * 256`. Built once and never freed: an immortal,
    /// read-only table that workers read without reference counting (a `[[UInt32]]` retained its
    /// inner arrays on every call).
    // Safe: written only inside this initializer (run once, under swift_once), read-only after.
    @usableFromInline
    nonisolated(unsafe) static let table: UnsafePointer<UInt32> = {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let previous = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return UnsafePointer(t)
    }()

    /// Continues a CRC over `count` bytes. Start with `0` for a fresh checksum.
    public static func update(_ crc: UInt32, _ p: UnsafeRawPointer, count: Int) -> UInt32 {
        var c = ~crc
        var i = 0
        // Safe: every index is a byte (0...255) plus a slice base k * 256 with k < 8.
        let t = table
        while i + 8 <= count {
            let lo = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ c
            let hi = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
            c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
              ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
              ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
              ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
            i += 8
        }
        while i < count {
            c = (c >> 8) ^ t[Int((c ^ UInt32(p.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)]
            i += 1
        }
        return ~c
    }

    public static func checksum(_ p: UnsafeRawPointer, count: Int) -> UInt32 {
        update(0, p, count: count)
    }
}

/// The SCTP common header checksum (RFC 9260 §6.8): CRC32c over the whole packet with the
/// checksum field taken as zero, stored in the field least significant byte first (the CRC's
/// own bit order, as RFC 9260 Appendix A's reference code writes it).
public enum SCTPChecksum {
    /// Offset of the checksum in the common header.
    public static let fieldOffset = 8

    public static func compute(_ p: UnsafeRawPointer, count: Int) -> UInt32 {
        precondition(count >= HeaderSize.sctpCommon)
        var crc = CRC32C.update(0, p, count: fieldOffset)
        var zero: UInt32 = 0
        crc = withUnsafeBytes(of: &zero) { CRC32C.update(crc, $0.baseAddress!, count: 4) }
        return CRC32C.update(crc, p + fieldOffset + 4, count: count - fieldOffset - 4)
    }

    public static func verifies(_ p: UnsafeRawPointer, count: Int) -> Bool {
        guard count >= HeaderSize.sctpCommon else { return false }
        return compute(p, count: count) == UInt32(littleEndian: p.loadUnaligned(fromByteOffset: fieldOffset, as: UInt32.self))
    }

    public static func store(_ p: UnsafeMutableRawPointer, count: Int) {
        p.storeBytes(of: 0, toByteOffset: fieldOffset, as: UInt32.self)
        let crc = CRC32C.update(0, UnsafeRawPointer(p), count: count)
        p.storeBytes(of: crc.littleEndian, toByteOffset: fieldOffset, as: UInt32.self)
    }
}
