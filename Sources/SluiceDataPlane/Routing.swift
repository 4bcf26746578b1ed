import SluiceCore

/// A prefix over IPv4-mapped or IPv6 addresses, as two 64-bit masks.
public struct AddressPrefix: Sendable, Equatable {
    public var network: IPv6Address
    public var highMask: UInt64
    public var lowMask: UInt64
    /// Prefix length on the 128-bit (mapped) address.
    public var length: Int

    /// `length` counts bits of the 128-bit form: an IPv4 /24 is `length: 96 + 24`.
    public init(network: IPv6Address, length: Int) {
        self.length = length
        highMask = length == 0 ? 0 : (length >= 64 ? ~0 : ~UInt64(0) << UInt64(64 - length))
        lowMask = length <= 64 ? 0 : (length == 128 ? ~0 : ~UInt64(0) << UInt64(128 - length))
        self.network = IPv6Address(high: network.high & highMask, low: network.low & lowMask)
    }

    public init(ipv4 network: IPv4Address, length: Int) {
        self.init(network: IPv6Address(ipv4Mapped: network.value), length: 96 + length)
    }

    @inlinable @inline(__always)
    public func contains(_ a: IPv6Address) -> Bool {
        a.high & highMask == network.high && a.low & lowMask == network.low
    }
}

/// Where to send a packet for an address: the ports' connected prefixes (the host itself is
/// the next hop), then static routes (their gateway is), longest prefix first.
///
/// A linear scan over a short, sorted list: LB hosts have a handful of connected prefixes and
/// routes. It runs for a flow's return path per packet; the forward path reads the next hop the
/// snapshot precomputed per backend.
public final class Routing: @unchecked Sendable {
    public struct Entry: Sendable, Equatable {
        public var prefix: AddressPrefix
        public var port: UInt16
        /// nil: connected (the destination is the next hop).
        public var gateway: IPv6Address?
        public init(prefix: AddressPrefix, port: UInt16, gateway: IPv6Address?) {
            self.prefix = prefix
            self.port = port
            self.gateway = gateway
        }
    }

    public let entries: [Entry]
    // Safe: written in `init`, freed in `deinit`, read-only in between.
    @usableFromInline let table: UnsafeMutableBufferPointer<Entry>

    public init(entries: [Entry]) {
        // Longest prefix first; connected before a route of the same length.
        let sorted = entries.enumerated().sorted {
            $0.element.prefix.length != $1.element.prefix.length
                ? $0.element.prefix.length > $1.element.prefix.length
                : ($0.element.gateway == nil) != ($1.element.gateway == nil) ? $0.element.gateway == nil : $0.offset < $1.offset
        }.map(\.element)
        self.entries = sorted
        table = .allocate(capacity: max(1, sorted.count))
        _ = table.initialize(from: sorted)
    }

    deinit { table.deallocate() }

    /// The egress port and next-hop address for `destination`, or nil (no route).
    @inlinable
    public func nextHop(_ destination: IPv6Address) -> (port: UInt16, hop: IPv6Address)? {
        for i in 0..<entries.count {
            let e = table[i]
            if e.prefix.contains(destination) { return (e.port, e.gateway ?? destination) }
        }
        return nil
    }
}
