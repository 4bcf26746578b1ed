import SluiceCore

/// The addresses (VIPs) that one port answers for, each with the MAC it answers with.
///
/// Immutable once built, off the hot path; workers only read it. Lookups are binary searches
/// over sorted keys in contiguous memory: no hashing, no ARC, no allocation. VIP counts per port
/// are small (tens to thousands), where a sorted array stays within a few cache lines per probe.
public final class OwnedAddresses: @unchecked Sendable {
    // Safe: the buffers are written only in `init` and freed in `deinit`; after `init` returns
    // they are read-only, so concurrent readers need no synchronisation.
    @usableFromInline let ipv4Keys: UnsafeMutableBufferPointer<UInt32>
    @usableFromInline let ipv4MACs: UnsafeMutableBufferPointer<MACAddress>
    @usableFromInline let ipv6Keys: UnsafeMutableBufferPointer<IPv6Address>
    @usableFromInline let ipv6MACs: UnsafeMutableBufferPointer<MACAddress>
    /// The port's own MAC: frames unicast to it are ours even before a VIP matches.
    public let portMAC: MACAddress

    public init(portMAC: MACAddress, ipv4: [(IPv4Address, MACAddress)], ipv6: [(IPv6Address, MACAddress)]) {
        self.portMAC = portMAC
        let v4 = ipv4.sorted { $0.0 < $1.0 }
        let v6 = ipv6.sorted { $0.0 < $1.0 }
        ipv4Keys = .allocate(capacity: v4.count)
        ipv4MACs = .allocate(capacity: v4.count)
        ipv6Keys = .allocate(capacity: v6.count)
        ipv6MACs = .allocate(capacity: v6.count)
        for (i, entry) in v4.enumerated() {
            ipv4Keys.initializeElement(at: i, to: entry.0.value)
            ipv4MACs.initializeElement(at: i, to: entry.1)
        }
        for (i, entry) in v6.enumerated() {
            ipv6Keys.initializeElement(at: i, to: entry.0)
            ipv6MACs.initializeElement(at: i, to: entry.1)
        }
    }

    deinit {
        ipv4Keys.deallocate()
        ipv4MACs.deallocate()
        ipv6Keys.deallocate()
        ipv6MACs.deallocate()
    }

    public var ipv4Addresses: [(IPv4Address, MACAddress)] {
        (0..<ipv4Keys.count).map { (IPv4Address(value: ipv4Keys[$0]), ipv4MACs[$0]) }
    }
    public var ipv6Addresses: [(IPv6Address, MACAddress)] {
        (0..<ipv6Keys.count).map { (ipv6Keys[$0], ipv6MACs[$0]) }
    }

    /// The MAC that answers for `address`, or nil if this port does not own it.
    @inlinable
    public func macFor(_ address: UInt32) -> MACAddress? {
        var lo = 0, hi = ipv4Keys.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            let key = ipv4Keys[mid]
            if key == address { return ipv4MACs[mid] }
            if key < address { lo = mid + 1 } else { hi = mid }
        }
        return nil
    }

    @inlinable
    public func macFor(_ address: IPv6Address) -> MACAddress? {
        var lo = 0, hi = ipv6Keys.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            let key = ipv6Keys[mid]
            if key == address { return ipv6MACs[mid] }
            if key < address { lo = mid + 1 } else { hi = mid }
        }
        return nil
    }

    /// True when a frame with Ethernet destination `mac` may be for us: broadcast, multicast,
    /// the port MAC, or the MAC of the owned address it is for (`ownerMAC`).
    @inlinable @inline(__always)
    public func accepts(_ destination: MACAddress, ownerMAC: MACAddress) -> Bool {
        destination.isMulticast || destination == ownerMAC || destination == portMAC
    }
}
