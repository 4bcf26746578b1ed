/// The Internet checksum: the 16-bit one's-complement of the one's-complement sum
/// (RFC 1071), and its incremental update (RFC 1624).
///
/// Sums are carried in a `UInt64` accumulator of big-endian words; because 2^16 ≡ 1 (mod 2^16 − 1),
/// adding 64-bit words with end-around carry and folding at the end gives the same result as
/// adding 16-bit words one at a time (RFC 1071 §2(B), "deferred carries" and "parallel summation").
public enum InternetChecksum {
    /// Adds `count` bytes at `p` to `initial` (a partial sum, e.g. a pseudo-header). An odd final
    /// byte is padded with a zero byte on its right, as RFC 1071 §4.1 does.
    @inlinable
    public static func sum(_ p: UnsafeRawPointer, count: Int, initial: UInt64 = 0) -> UInt64 {
        var acc = initial
        var i = 0
        while i + 8 <= count {
            let (s, overflow) = acc.addingReportingOverflow(p.loadBE64(i))
            acc = s &+ (overflow ? 1 : 0)
            i += 8
        }
        var tail: UInt64 = 0
        if i + 4 <= count { tail += UInt64(p.loadBE32(i)); i += 4 }
        if i + 2 <= count { tail += UInt64(p.loadBE16(i)); i += 2 }
        if i < count { tail += UInt64(p.loadBE8(i)) << 8 }
        let (s, overflow) = acc.addingReportingOverflow(tail)
        return s &+ (overflow ? 1 : 0)
    }

    /// Folds a partial sum to 16 bits with end-around carry (not complemented).
    @inlinable @inline(__always)
    public static func fold(_ sum: UInt64) -> UInt16 {
        var s = (sum & 0xFFFF_FFFF) &+ (sum >> 32)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        s = (s & 0xFFFF) &+ (s >> 16)
        return UInt16(truncatingIfNeeded: s)
    }

    /// The checksum field value for `count` bytes (with the field itself zero or included).
    @inlinable
    public static func checksum(_ p: UnsafeRawPointer, count: Int, initial: UInt64 = 0) -> UInt16 {
        ~fold(sum(p, count: count, initial: initial))
    }

    /// True when the bytes, checksum field included, sum to 0xFFFF (RFC 1071 §1, verification).
    @inlinable
    public static func verifies(_ p: UnsafeRawPointer, count: Int, initial: UInt64 = 0) -> Bool {
        fold(sum(p, count: count, initial: initial)) == 0xFFFF
    }

    /// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a 16-bit field changing from `old` to `new`.
    /// Unlike eqn. 2 it never yields 0x0000 from a non-zero sum where 0xFFFF belongs.
    @inlinable @inline(__always)
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        let s = UInt64(~checksum) &+ UInt64(~old) &+ UInt64(new)
        return ~fold(s)
    }

    /// RFC 1624 eqn. 3 for a 32-bit field (an IPv4 address): two 16-bit words at once.
    @inlinable @inline(__always)
    public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        let s = UInt64(~checksum) &+ UInt64(~old & 0xFFFF) &+ UInt64(~old >> 16)
            &+ UInt64(new & 0xFFFF) &+ UInt64(new >> 16)
        return ~fold(s)
    }

    /// RFC 1624 eqn. 3 for a 128-bit field (an IPv6 address).
    @inlinable @inline(__always)
    public static func update(_ checksum: UInt16, old: IPv6Address, new: IPv6Address) -> UInt16 {
        @inline(__always) func words(_ w: UInt64) -> UInt64 {
            (w & 0xFFFF) &+ ((w >> 16) & 0xFFFF) &+ ((w >> 32) & 0xFFFF) &+ (w >> 48)
        }
        let s = UInt64(~checksum) &+ words(~old.high) &+ words(~old.low)
            &+ words(new.high) &+ words(new.low)
        return ~fold(s)
    }

    /// The IPv4 pseudo-header sum (RFC 793 §3.1, RFC 768): source, destination, protocol, length.
    @inlinable @inline(__always)
    public static func pseudoHeaderSum(source: IPv4Address, destination: IPv4Address,
                                       protocol proto: UInt8, length: Int) -> UInt64 {
        UInt64(source.value) &+ UInt64(destination.value) &+ UInt64(proto) &+ UInt64(length)
    }

    /// The IPv6 pseudo-header sum (RFC 8200 §8.1): addresses, upper-layer length, next header.
    @inlinable @inline(__always)
    public static func pseudoHeaderSum(source: IPv6Address, destination: IPv6Address,
                                       nextHeader: UInt8, length: Int) -> UInt64 {
        @inline(__always) func words(_ w: UInt64) -> UInt64 { (w & 0xFFFF_FFFF) &+ (w >> 32) }
        let s = UInt64(nextHeader) &+ UInt64(length) &+ words(source.high) &+ words(source.low)
            &+ words(destination.high) &+ words(destination.low)
        return s
    }
}
