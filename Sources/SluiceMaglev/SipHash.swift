/// SipHash (Aumasson & Bernstein, "SipHash: a fast short-input PRF", INDOCRYPT 2012), the keyed
/// 64-bit PRF that both the Maglev permutation hashes and the flow hash are built on.
///
/// SipHash-c-d runs `c` compression rounds per 8-byte message word and `d` finalization rounds.
/// The message is read as little-endian 64-bit words; the last word carries the 0–7 trailing bytes
/// and the message length mod 256 in its top byte (paper §2). The key is 16 bytes; `key0` is the
/// little-endian value of bytes 0–7 and `key1` of bytes 8–15, exactly as in the reference code,
/// so the official test vectors (key 00 01 … 0f) apply unchanged.
///
/// The result depends only on the key, the bytes and (c, d): never on the host, its byte order or
/// the process, which is why Sluice uses it instead of Swift's `Hasher` (randomly seeded per
/// process).
public struct SipHashState: Sendable {
    @usableFromInline var v0: UInt64
    @usableFromInline var v1: UInt64
    @usableFromInline var v2: UInt64
    @usableFromInline var v3: UInt64

    /// The initial state for a key (SipHash paper §2, "Initialization").
    @inlinable @inline(__always)
    public init(key0: UInt64, key1: UInt64) {
        v0 = key0 ^ 0x736f_6d65_7073_6575  // "somepseu"
        v1 = key1 ^ 0x646f_7261_6e64_6f6d  // "dorandom"
        v2 = key0 ^ 0x6c79_6765_6e65_7261  // "lygenera"
        v3 = key1 ^ 0x7465_6462_7974_6573  // "tedbytes"
    }

    @inlinable @inline(__always)
    static func rotl(_ x: UInt64, _ n: UInt64) -> UInt64 { (x &<< n) | (x &>> (64 &- n)) }

    /// One SipRound (SipHash paper §2, Figure 2).
    @inlinable @inline(__always)
    mutating func sipRound() {
        v0 &+= v1; v1 = Self.rotl(v1, 13); v1 ^= v0; v0 = Self.rotl(v0, 32)
        v2 &+= v3; v3 = Self.rotl(v3, 16); v3 ^= v2
        v0 &+= v3; v3 = Self.rotl(v3, 21); v3 ^= v0
        v2 &+= v1; v1 = Self.rotl(v1, 17); v1 ^= v2; v2 = Self.rotl(v2, 32)
    }

    /// Absorbs one message word with `rounds` compression rounds (c = 1 for SipHash-1-3).
    @inlinable @inline(__always)
    public mutating func compress(_ word: UInt64, rounds: Int) {
        v3 ^= word
        for _ in 0..<rounds { sipRound() }
        v0 ^= word
    }

    /// Absorbs the final word (`tail` holds the last `length % 8` bytes in its low bytes, the
    /// caller's `length` goes in the top byte), then runs `finalRounds` finalization rounds.
    @inlinable @inline(__always)
    public mutating func finish(tail: UInt64, length: Int, rounds: Int, finalRounds: Int) -> UInt64 {
        compress(tail | UInt64(truncatingIfNeeded: length) &<< 56, rounds: rounds)
        v2 ^= 0xFF
        for _ in 0..<finalRounds { sipRound() }
        return v0 ^ v1 ^ v2 ^ v3
    }
}

/// SipHash over a byte buffer, for cold paths (backend identities, tests, the reference cross-check).
/// The flow hash has its own fixed-layout fast path in `FlowHasher`.
public enum SipHash {
    /// SipHash-c-d of `bytes` under the key (`key0`, `key1`).
    public static func hash(
        _ bytes: UnsafeRawBufferPointer, key0: UInt64, key1: UInt64,
        compressionRounds c: Int, finalizationRounds d: Int
    ) -> UInt64 {
        var state = SipHashState(key0: key0, key1: key1)
        let fullWords = bytes.count / 8
        for w in 0..<fullWords {
            state.compress(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self)), rounds: c)
        }
        var tail: UInt64 = 0
        for i in stride(from: bytes.count - 1, through: fullWords * 8, by: -1) {
            tail = tail << 8 | UInt64(bytes[i])
        }
        return state.finish(tail: tail, length: bytes.count, rounds: c, finalRounds: d)
    }

    /// SipHash-2-4, the standard PRF (official test vectors in the reference implementation).
    public static func hash24(_ bytes: [UInt8], key0: UInt64, key1: UInt64) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, key0: key0, key1: key1, compressionRounds: 2, finalizationRounds: 4) }
    }

    /// SipHash-1-3, the reduced-round variant used for hash tables by CPython (since 3.11) and Rust's std.
    public static func hash13(_ bytes: [UInt8], key0: UInt64, key1: UInt64) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, key0: key0, key1: key1, compressionRounds: 1, finalizationRounds: 3) }
    }

    /// The (`key0`, `key1`) pair for 16 key bytes, as the reference implementation reads them.
    public static func key(fromBytes bytes: [UInt8]) -> (key0: UInt64, key1: UInt64)? {
        guard bytes.count == 16 else { return nil }
        var k0: UInt64 = 0
        var k1: UInt64 = 0
        for i in (0..<8).reversed() {
            k0 = k0 << 8 | UInt64(bytes[i])
            k1 = k1 << 8 | UInt64(bytes[i + 8])
        }
        return (k0, k1)
    }
}
