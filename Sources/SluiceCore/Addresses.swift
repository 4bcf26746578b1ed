#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A 48-bit IEEE 802 MAC address, held in the low 48 bits of a `UInt64` in transmission order
/// (the first octet on the wire is bits 47...40), so that comparison is one integer compare.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64

    @inlinable public init(value: UInt64) { self.value = value & 0xFFFF_FFFF_FFFF }

    public static let zero = MACAddress(value: 0)
    public static let broadcast = MACAddress(value: 0xFFFF_FFFF_FFFF)

    /// Parses `aa:bb:cc:dd:ee:ff` (also with `-` separators).
    public init?(_ text: String) {
        let parts = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == ":" || $0 == "-" })
        guard parts.count == 6 else { return nil }
        var v: UInt64 = 0
        for part in parts {
            // Hex digits only: UInt8(_:radix:) alone would take "+f" as 15.
            guard part.count == 2, part.allSatisfy(\.isHexDigit), let byte = UInt8(part, radix: 16) else { return nil }
            v = v << 8 | UInt64(byte)
        }
        self.value = v
    }

    /// Group bit (I/G, RFC 7042 §2.1): set for multicast and broadcast.
    @inlinable public var isMulticast: Bool { (value >> 40) & 1 == 1 }

    @inlinable @inline(__always)
    public static func load(_ p: UnsafeRawPointer, _ offset: Int) -> MACAddress {
        MACAddress(value: UInt64(p.loadBE16(offset)) << 32 | UInt64(p.loadBE32(offset + 2)))
    }

    @inlinable @inline(__always)
    public func store(_ p: UnsafeMutableRawPointer, _ offset: Int) {
        p.storeBE16(UInt16(truncatingIfNeeded: value >> 32), offset)
        p.storeBE32(UInt32(truncatingIfNeeded: value), offset + 2)
    }

    /// The IPv6 multicast MAC for a group address (RFC 2464 §7): 33:33 + the low 32 bits.
    @inlinable public static func ipv6Multicast(_ group: IPv6Address) -> MACAddress {
        MACAddress(value: 0x3333_0000_0000 | (group.low & 0xFFFF_FFFF))
    }

    public var description: String {
        (0..<6).map { i in
            let byte = UInt8(truncatingIfNeeded: value >> UInt64(40 - 8 * i))
            return (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined(separator: ":")
    }
}

/// An IPv4 address as a host-order `UInt32` (192.0.2.1 is 0xC0000201).
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt32

    @inlinable public init(value: UInt32) { self.value = value }

    /// Parses dotted-quad text strictly: four decimal octets, no leading zeros, nothing else.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for part in parts {
            // ASCII digits only: UInt8(_:) alone would take "+1" as 1.
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  part.count == 1 || part.first != "0",
                  let octet = UInt8(part) else { return nil }
            v = v << 8 | UInt32(octet)
        }
        self.value = v
    }

    @inlinable public var isMulticast: Bool { value >> 28 == 0xE }
    @inlinable public var isUnspecified: Bool { value == 0 }
    @inlinable public var isLimitedBroadcast: Bool { value == 0xFFFF_FFFF }

    @inlinable public static func < (a: Self, b: Self) -> Bool { a.value < b.value }

    public var description: String {
        "\(value >> 24).\((value >> 16) & 0xFF).\((value >> 8) & 0xFF).\(value & 0xFF)"
    }
}

/// An IPv6 address as two host-order halves (`high` holds the first 8 octets on the wire).
public struct IPv6Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    @inlinable public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public static let unspecified = IPv6Address(high: 0, low: 0)
    /// ff02::1, all nodes on the link (RFC 4291 §2.7.1).
    public static let allNodes = IPv6Address(high: 0xFF02_0000_0000_0000, low: 1)

    /// Parses any RFC 4291 §2.2 text form (through `inet_pton`, which is exactly that grammar).
    public init?(_ text: String) {
        var raw = in6_addr()
        guard inet_pton(AF_INET6, text, &raw) == 1 else { return nil }
        let parsed = withUnsafeBytes(of: &raw) { bytes in
            IPv6Address.load(bytes.baseAddress!, 0)
        }
        self = parsed
    }

    /// `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2), the form IPv4 addresses take in shared tables.
    @inlinable public init(ipv4Mapped a: UInt32) { self.init(high: 0, low: 0x0000_FFFF_0000_0000 | UInt64(a)) }
    @inlinable public var isIPv4Mapped: Bool { high == 0 && low >> 32 == 0xFFFF }
    @inlinable public var ipv4Value: UInt32 { UInt32(truncatingIfNeeded: low) }

    @inlinable public var isMulticast: Bool { high >> 56 == 0xFF }
    @inlinable public var isUnspecified: Bool { high == 0 && low == 0 }

    /// The solicited-node multicast group for this address (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
    @inlinable public var solicitedNodeGroup: IPv6Address {
        IPv6Address(high: 0xFF02_0000_0000_0000, low: 0x0000_0001_FF00_0000 | (low & 0x00FF_FFFF))
    }

    @inlinable @inline(__always)
    public static func load(_ p: UnsafeRawPointer, _ offset: Int) -> IPv6Address {
        IPv6Address(high: p.loadBE64(offset), low: p.loadBE64(offset + 8))
    }

    @inlinable @inline(__always)
    public func store(_ p: UnsafeMutableRawPointer, _ offset: Int) {
        p.storeBE64(high, offset)
        p.storeBE64(low, offset + 8)
    }

    @inlinable public static func < (a: Self, b: Self) -> Bool {
        a.high != b.high ? a.high < b.high : a.low < b.low
    }

    public var description: String {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { store($0.baseAddress!, 0) }
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = bytes.withUnsafeBytes { b in inet_ntop(AF_INET6, b.baseAddress, &out, socklen_t(out.count)) }
        return out.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
