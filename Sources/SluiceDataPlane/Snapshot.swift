import SluiceCore
import SluiceMaglev

/// One port as the pipeline sees it.
// Safe (@unchecked Sendable): `connectedTable` points into the owning snapshot's read-only storage.
public struct PortContext: @unchecked Sendable {
    public var mac: MACAddress
    /// VIPs and Sluice's own addresses on the port: answered for ARP / NDP / echo.
    public var owned: OwnedAddresses
    /// Sluice's own addresses (IPv4-mapped for IPv4): the source of its ARP / NDP requests
    /// and its VXLAN packets. `.unspecified` when the port has none of that family.
    public var selfIPv4: IPv6Address
    public var selfIPv6: IPv6Address
    /// Prefixes on the port's segment: neighbors learned only from inside them.
    public var connected: [AddressPrefix]
    /// The port's IP MTU: what an encapsulated packet must fit.
    public var mtu: Int
    /// `owned` without reference counting, for the hot path: the snapshot keeps `owned` alive.
    public let ownedRef: Unmanaged<OwnedAddresses>
    /// `connected` in memory the snapshot owns (set by `DataPlaneSnapshot.init`): reading an
    /// array stored in a struct behind a pointer would retain its buffer per packet.
    @usableFromInline var connectedTable = UnsafeBufferPointer<AddressPrefix>(start: nil, count: 0)

    public init(mac: MACAddress, owned: OwnedAddresses, selfIPv4: IPv6Address = .unspecified,
                selfIPv6: IPv6Address = .unspecified, connected: [AddressPrefix] = [], mtu: Int = 1500) {
        self.mtu = mtu
        self.ownedRef = .passUnretained(owned)
        self.mac = mac
        self.owned = owned
        self.selfIPv4 = selfIPv4
        self.selfIPv6 = selfIPv6
        self.connected = connected
    }

    @inlinable public func isConnected(_ a: IPv6Address) -> Bool {
        for i in 0..<connectedTable.count where connectedTable[i].contains(a) { return true }
        return false
    }
}

/// Everything a worker reads to decide a packet's fate, built whole off the hot path and never
/// changed after: ports, services with their Maglev tables, routes, the flow hasher.
/// Running workers get a new one through RCU publication (`PipelineResources.publish`).
public final class DataPlaneSnapshot: @unchecked Sendable {
    public let ports: [PortContext]
    public let services: ServiceTable
    public let routing: Routing
    public let hasher: FlowHasher
    /// UDP destination port of VXLAN (RFC 7348 §5: 4789).
    public let vxlanPort: UInt16
    // Safe: written in `init`, freed in `deinit`, read-only in between.
    @usableFromInline let portTable: UnsafeMutableBufferPointer<PortContext>
    public let portCount: Int
    /// The next hops to solicit for this snapshot (worker 0 asks once a second).
    public let resolver: NeighborResolver
    /// Metrics: which per-worker record counts each (service, backend) pair.
    public let backendCounters: BackendCounterLayout
    /// Every full-NAT service's source addresses: a backend's reply to one of them is a
    /// full-NAT return (few addresses; searched only when no service matched).
    @usableFromInline let fullNATSources: UnsafeMutableBufferPointer<IPv6Address>

    public init(ports: [PortContext], services: [Service], routing: Routing, hasher: FlowHasher, vxlanPort: UInt16 = 4789,
                serviceIDs: StableIDs<ServiceIdentity> = StableIDs(),
                backendRegistries: [ServiceIdentity: StableIDs<BackendIdentity>] = [:],
                backendRecords: BackendCounterRecords.Assignment? = nil) {
        self.ports = ports
        self.services = ServiceTable(services: services, serviceIDs: serviceIDs, backendRegistries: backendRegistries)
        backendCounters = backendRecords.map { BackendCounterLayout(serviceIDs: services.map(\.id), assignment: $0) }
            ?? BackendCounterLayout(fresh: services)
        self.routing = routing
        self.hasher = hasher
        self.vxlanPort = vxlanPort
        resolver = NeighborResolver(ports: ports, wanted: DataPlaneSnapshot.wantedNeighbors(services: services, routing: routing))
        portCount = ports.count
        var sources: [IPv6Address] = []
        for s in services where s.mode == .fullnat {
            for a in s.sourcePool where !sources.contains(a) { sources.append(a) }
        }
        fullNATSources = .allocate(capacity: sources.count)
        _ = fullNATSources.initialize(from: sources)
        portTable = .allocate(capacity: max(1, ports.count))
        let prefixCount = ports.reduce(0) { $0 + $1.connected.count }
        prefixStorage = .allocate(capacity: max(1, prefixCount))
        var next = 0
        var withTables = ports
        for i in withTables.indices {
            let start = prefixStorage.baseAddress! + next
            start.initialize(from: withTables[i].connected, count: withTables[i].connected.count)
            withTables[i].connectedTable = UnsafeBufferPointer(start: start, count: withTables[i].connected.count)
            next += withTables[i].connected.count
        }
        _ = portTable.initialize(from: withTables)
    }

    // Safe: written in `init`, freed in `deinit`; ports' `connectedTable`s point into it.
    @usableFromInline let prefixStorage: UnsafeMutableBufferPointer<AddressPrefix>

    deinit {
        portTable.deinitialize()
        portTable.deallocate()
        prefixStorage.deallocate()
        backendCounters.deallocate()
        fullNATSources.deallocate()
    }

    /// True when `address` is a full-NAT source address of some service.
    @inlinable @inline(__always)
    public func isFullNATSource(_ address: IPv6Address) -> Bool {
        for i in 0..<fullNATSources.count where fullNATSources[i] == address { return true }
        return false
    }

    /// The port at `index` (< portCount), borrowed: no reference counting.
    @inlinable @inline(__always)
    public func port(_ index: Int) -> UnsafeMutablePointer<PortContext> {
        // Safe: callers pass port indices that the worker's lanes were built from (< portCount).
        portTable.baseAddress.unsafelyUnwrapped + index
    }

    /// Every next hop the forward path can need (backends, VTEPs, gateways): the resolver asks
    /// for these before any packet does.
    static func wantedNeighbors(services: [Service], routing: Routing) -> [(port: UInt16, address: IPv6Address)] {
        var out: [(UInt16, IPv6Address)] = []
        var seen = Set<[UInt64]>()
        for s in services {
            for b in s.backends where seen.insert([UInt64(b.egressPort), b.nextHop.high, b.nextHop.low]).inserted {
                out.append((b.egressPort, b.nextHop))
            }
        }
        for e in routing.entries {
            if let g = e.gateway, seen.insert([UInt64(e.port), g.high, g.low]).inserted { out.append((e.port, g)) }
        }
        return out
    }
}
