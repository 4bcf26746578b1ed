import SluiceCore

/// Decides which next hops to solicit: every next hop the snapshot's services and routes need,
/// asked for once a second while unresolved, and re-asked when its MAC has not been confirmed
/// for `refreshAfter` seconds (a moved or replaced host answers with its new MAC; RFC 4861
/// §7.3's reachability confirmation, simplified to periodic unicast-free re-solicitation).
///
/// Runs on one worker's cold path, at most once per second; the frames it asks for are built
/// with `ARPPacket.writeRequest` / `NeighborDiscovery.writeSolicitation`.
public struct NeighborResolver: Sendable {
    public struct Request: Sendable, Equatable {
        public var port: Int
        public var target: IPv6Address
        /// Our address on that port of the target's family.
        public var source: IPv6Address
        public var mac: MACAddress
    }

    public static let refreshAfter: UInt32 = 30
    public let wanted: [Request]

    init(ports: [PortContext], wanted hops: [(port: UInt16, address: IPv6Address)]) {
        var wanted: [Request] = []
        for (port, hop) in hops {
            let context = ports[Int(port)]
            let source = hop.isIPv4Mapped ? context.selfIPv4 : context.selfIPv6
            guard source != .unspecified else { continue }
            wanted.append(Request(port: Int(port), target: hop, source: source, mac: context.mac))
        }
        self.wanted = wanted
    }

    /// The requests due at `now`.
    public func due(now: UInt32, neighbors: NeighborTable) -> [Request] {
        wanted.filter { request in
            guard let status = neighbors.status(request.target), status.mac != nil else { return true }
            // UInt32.max: a configured (permanent) neighbor, never asked for.
            return status.confirmed != UInt32.max && now &- status.confirmed >= Self.refreshAfter
        }
    }

    /// The solicitations for `NeighborMisses`' addresses: each one still unresolved, unicast,
    /// not ours, on a connected prefix (its own next hop) of a port with an address of its
    /// family, and not already among `alreadyDue` (the resolver's own requests this pass).
    public static func requests(forMisses addresses: [IPv6Address], routing: Routing, ports: [PortContext],
                                neighbors: NeighborTable, alreadyDue: [Request] = []) -> [Request] {
        var requests: [Request] = []
        for address in addresses where !alreadyDue.contains(where: { $0.target == address }) {
            let v4 = IPv4Address(value: address.ipv4Value)
            let unicast = address.isIPv4Mapped ? !v4.isMulticast && !v4.isUnspecified && !v4.isLimitedBroadcast
                                               : !address.isMulticast && !address.isUnspecified
            guard unicast, let route = routing.nextHop(address), route.hop == address, Int(route.port) < ports.count,
                  neighbors.lookup(address) == nil else { continue }
            let port = ports[Int(route.port)]
            let ours = address.isIPv4Mapped ? port.owned.macFor(address.ipv4Value) : port.owned.macFor(address)
            guard ours == nil else { continue }
            let source = address.isIPv4Mapped ? port.selfIPv4 : port.selfIPv6
            guard source != .unspecified else { continue }
            requests.append(Request(port: Int(route.port), target: address, source: source, mac: port.mac))
        }
        return requests
    }

    /// Writes the solicitation for `request` into `p`; returns its length (0: no room).
    public static func write(_ request: Request, into p: UnsafeMutableRawPointer, capacity: Int) -> Int {
        if request.target.isIPv4Mapped {
            return ARPPacket.writeRequest(p, capacity: capacity, mac: request.mac,
                                          sender: IPv4Address(value: request.source.ipv4Value),
                                          target: IPv4Address(value: request.target.ipv4Value))
        }
        return NeighborDiscovery.writeSolicitation(p, capacity: capacity, mac: request.mac,
                                                   source: request.source, target: request.target)
    }
}
