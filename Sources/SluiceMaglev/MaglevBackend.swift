import SluiceCore

/// A backend as Maglev sees it: a stable identity and a weight.
///
/// Only `identity` feeds the permutation (paper §3.4 hashes the backend's "name"), so changing a
/// weight never moves a backend's preference list, and two hosts that agree on the identities
/// build the same table. The identity must be the same on every host: address and port bytes
/// (the initialisers below), or an operator-chosen name; never a per-process value.
public struct MaglevBackend: Hashable, Sendable {
    /// The bytes h1 and h2 hash; non-empty, unique within one table.
    public var identity: [UInt8]
    /// Relative share of the table; 0 = draining (no entries, so no new flows).
    public var weight: UInt32

    public init(identity: [UInt8], weight: UInt32 = 1) {
        self.identity = identity
        self.weight = weight
    }

    /// The UTF-8 bytes of a stable name, as the paper's `name[i]`.
    public init(name: String, weight: UInt32 = 1) {
        self.init(identity: Array(name.utf8), weight: weight)
    }

    /// 6 bytes: the address then the port, both in network byte order.
    public init(address: IPv4Address, port: UInt16, weight: UInt32 = 1) {
        let a = address.value
        self.init(identity: [UInt8(a >> 24), UInt8(truncatingIfNeeded: a >> 16), UInt8(truncatingIfNeeded: a >> 8),
                             UInt8(truncatingIfNeeded: a), UInt8(port >> 8), UInt8(truncatingIfNeeded: port)],
                  weight: weight)
    }

    /// 18 bytes: the address then the port, both in network byte order.
    public init(address: IPv6Address, port: UInt16, weight: UInt32 = 1) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(18)
        for half in [address.high, address.low] {
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: half >> UInt64(shift))) }
        }
        bytes += [UInt8(port >> 8), UInt8(truncatingIfNeeded: port)]
        self.init(identity: bytes, weight: weight)
    }
}

/// Why a `MaglevTable` could not be built. Every input is checked before any work is done.
public enum MaglevError: Error, Equatable, Sendable, CustomStringConvertible {
    /// M must be prime so that every skip in 1...M−1 is coprime to M (paper §3.4).
    case tableSizeNotPrime(Int)
    /// M must lie in `MaglevTable.sizeRange`.
    case tableSizeOutOfRange(Int)
    /// Entries are `UInt16` with 0xFFFF reserved, so at most `MaglevTable.maximumBackends`.
    case tooManyBackends(Int)
    /// The backend at this index (in the caller's array) has an empty identity.
    case emptyIdentity(backend: Int)
    /// Two backends (caller's indices) share an identity; their permutations would coincide.
    case duplicateIdentity(backend: Int, sameAs: Int)

    public var description: String {
        switch self {
        case .tableSizeNotPrime(let m):
            return "Maglev table size \(m) is not prime (try 65537 or 655373)"
        case .tableSizeOutOfRange(let m):
            return "Maglev table size \(m) is outside \(MaglevTable.sizeRange.lowerBound)...\(MaglevTable.sizeRange.upperBound)"
        case .tooManyBackends(let n):
            return "\(n) backends; a Maglev table holds at most \(MaglevTable.maximumBackends)"
        case .emptyIdentity(let i):
            return "backend \(i) has an empty identity"
        case .duplicateIdentity(let i, let j):
            return "backends \(j) and \(i) have the same identity"
        }
    }
}

/// The two permutation hashes of paper §3.4 and the (offset, skip) pair they give.
///
/// h1 and h2 are SipHash-2-4 of the identity bytes under two fixed, public 16-byte keys: the ASCII
/// strings "Sluice Maglev h1" and "Sluice Maglev h2". They are independent (different keys of a
/// PRF), and reproducible on every host and version; tools/maglev/reference.py computes the same.
/// They are not secret: an identity is chosen by the operator, not by the traffic.
public enum MaglevPermutation {
    /// SipHash key bytes "Sluice Maglev h1" / "Sluice Maglev h2".
    public static let h1KeyBytes: [UInt8] = Array("Sluice Maglev h1".utf8)
    public static let h2KeyBytes: [UInt8] = Array("Sluice Maglev h2".utf8)

    public static func h1(_ identity: [UInt8]) -> UInt64 {
        let k = SipHash.key(fromBytes: h1KeyBytes)!
        return SipHash.hash24(identity, key0: k.key0, key1: k.key1)
    }

    public static func h2(_ identity: [UInt8]) -> UInt64 {
        let k = SipHash.key(fromBytes: h2KeyBytes)!
        return SipHash.hash24(identity, key0: k.key0, key1: k.key1)
    }

    /// offset = h1 mod M, skip = h2 mod (M − 1) + 1; backend's preference list is then
    /// permutation[j] = (offset + j·skip) mod M, j = 0..<M, a permutation of 0..<M for prime M.
    public static func offsetAndSkip(identity: [UInt8], size m: Int) -> (offset: Int, skip: Int) {
        let offset = Int(h1(identity) % UInt64(m))
        let skip = Int(h2(identity) % UInt64(m - 1)) + 1
        return (offset, skip)
    }
}
