import SluiceCore
import SluiceMaglev

/// How a service's packets reach its backends.
public enum ServiceMode: UInt8, Sendable {
    /// Destination rewritten to the backend; replies come back through Sluice.
    case dnat
    /// As `dnat`, and the source rewritten to a local pool address and port.
    case fullnat
    /// As `dnat`, then VXLAN-encapsulated (RFC 7348) to the backend node's VTEP.
    case vxlan
}

/// Where one backend is and how to reach it. Trivial (no references), stored in contiguous
/// memory that workers read without ARC traffic. Addresses are IPv4-mapped for IPv4.
public struct BackendTarget: Sendable, Equatable {
    public var address: IPv6Address
    /// Destination port after NAT; 0 keeps the client's (all-ports services).
    public var port: UInt16
    public var weight: UInt32
    /// The port index the backend (or its VTEP) is reached through.
    public var egressPort: UInt16
    /// The first hop's address, the neighbor-table key: the backend or VTEP itself when it is in
    /// a connected prefix of `egressPort`, else the route's gateway.
    public var nextHop: IPv6Address
    /// `vxlan` only: the node's VTEP, the VNI, the inner destination MAC.
    public var vtep: IPv6Address
    public var vni: UInt32
    public var innerMAC: MACAddress
    /// Stable within the service across snapshots (`StableIDs`): what flow entries store.
    /// `StableIDs.none` (the default) means "its position", for services built by hand.
    public var id: UInt16

    public init(address: IPv6Address, port: UInt16, weight: UInt32, egressPort: UInt16, nextHop: IPv6Address,
                vtep: IPv6Address = .unspecified, vni: UInt32 = 0, innerMAC: MACAddress = .zero, id: UInt16 = 0xFFFF) {
        self.id = id
        self.address = address
        self.port = port
        self.weight = weight
        self.egressPort = egressPort
        self.nextHop = nextHop
        self.vtep = vtep
        self.vni = vni
        self.innerMAC = innerMAC
    }

    @inlinable public var isIPv4: Bool { address.isIPv4Mapped }
    public var identity: BackendIdentity { BackendIdentity(address: address, port: port) }
}

/// One load-balanced service, immutable once built (off the hot path).
public final class Service: @unchecked Sendable {
    public let name: String
    public let mode: ServiceMode
    /// The VIP, IPv4-mapped for IPv4.
    public let vip: IPv6Address
    public let proto: UInt8
    /// 0: every port.
    public let port: UInt16
    public let maglev: MaglevTable
    /// 0: no clamping.
    public let mssClamp: UInt16
    public let sourcePool: [IPv6Address]
    /// Stable across snapshots (`StableIDs`): what flow entries store to name the service.
    /// `StableIDs.none` (the default) until a `ServiceTable` gives it its position; set once,
    /// before any worker can see the service.
    public internal(set) var id: UInt16
    /// The backend ids to carry into the next snapshot of this service (control plane only).
    public let backendIDs: StableIDs<BackendIdentity>
    // Safe: written in `init` only, freed in `deinit`; read-only while workers use it.
    @usableFromInline let backendStorage: UnsafeMutableBufferPointer<BackendTarget>
    /// Backend id → position in `backendStorage`.
    @usableFromInline let backendSlots: SlotMap
    /// `sourcePool` in memory the hot path reads without reference counting (full-NAT).
    @usableFromInline let sourceStorage: UnsafeMutableBufferPointer<IPv6Address>
    /// full-NAT source addresses: `sourcePool.count`.
    public let sourceCount: Int

    /// Backends whose `id` is `StableIDs.none` get their position as id.
    public init(name: String, mode: ServiceMode, vip: IPv6Address, proto: UInt8, port: UInt16,
                backends: [BackendTarget], maglev: MaglevTable, mssClamp: UInt16 = 0, sourcePool: [IPv6Address] = [],
                id: UInt16 = 0xFFFF, backendIDs: StableIDs<BackendIdentity> = StableIDs()) {
        var backends = backends
        for i in backends.indices where backends[i].id == StableIDs<BackendIdentity>.none { backends[i].id = UInt16(i) }
        self.id = id
        self.backendIDs = backendIDs
        backendSlots = SlotMap(ids: backends.map(\.id))
        sourceStorage = .allocate(capacity: max(1, sourcePool.count))
        sourceCount = sourcePool.count
        _ = sourceStorage.initialize(from: sourcePool)
        self.name = name
        self.mode = mode
        self.vip = vip
        self.proto = proto
        self.port = port
        self.maglev = maglev
        self.mssClamp = mssClamp
        self.sourcePool = sourcePool
        backendStorage = .allocate(capacity: max(1, backends.count))
        _ = backendStorage.initialize(from: backends)
        backendCount = backends.count
    }

    public let backendCount: Int

    deinit {
        backendStorage.deallocate()
        backendSlots.deallocate()
        sourceStorage.deallocate()
    }

    public var identity: ServiceIdentity {
        ServiceIdentity(vip: vip, proto: proto, port: port, mode: mode.rawValue, sourcePool: sourcePool)
    }


    /// full-NAT source address `index` (< the pool's size).
    @inlinable @inline(__always)
    public func source(_ index: Int) -> IPv6Address {
        // Safe: callers pass an index below the pool's size (checked when the flow was bound).
        sourceStorage.baseAddress.unsafelyUnwrapped[index]
    }

    /// The position of the backend with stable id `id`, or nil when this snapshot has none.
    @inlinable @inline(__always)
    public func backendIndex(id: Int) -> Int? { backendSlots.position(id) }

    public var backends: [BackendTarget] { Array(backendStorage.prefix(backendCount)) }

    /// The backend at `index`. The caller has checked `index < backendCount`.
    @inlinable @inline(__always)
    public func backend(_ index: Int) -> UnsafeMutablePointer<BackendTarget> {
        // Safe: index < backendCount ≤ allocated count (caller's precondition).
        backendStorage.baseAddress.unsafelyUnwrapped + index
    }
}

/// (VIP, protocol, port) → service, with an all-ports service (port 0) as the fallback.
///
/// Sorted keys, binary search, contiguous memory; built once per snapshot. Services per LB are
/// counted in hundreds to thousands: a search touches ~log₂(n) cache lines.
public final class ServiceTable: @unchecked Sendable {
    @usableFromInline struct Key: Comparable {
        @usableFromInline var high: UInt64
        @usableFromInline var low: UInt64
        /// proto << 16 | port
        @usableFromInline var protoPort: UInt32
        @inlinable init(_ vip: IPv6Address, _ proto: UInt8, _ port: UInt16) {
            high = vip.high
            low = vip.low
            protoPort = UInt32(proto) << 16 | UInt32(port)
        }
        @inlinable static func < (a: Key, b: Key) -> Bool {
            if a.high != b.high { return a.high < b.high }
            if a.low != b.low { return a.low < b.low }
            return a.protoPort < b.protoPort
        }
    }

    public let services: [Service]
    public let count: Int
    // Safe: written in `init`, freed in `deinit`, read-only in between.
    @usableFromInline let keys: UnsafeMutableBufferPointer<Key>
    @usableFromInline let indices: UnsafeMutableBufferPointer<UInt16>
    @usableFromInline let unmanaged: UnsafeMutableBufferPointer<Unmanaged<Service>>
    /// Service id → index in `services`.
    @usableFromInline let serviceSlots: SlotMap
    /// The service ids to carry into the next snapshot (control plane only).
    public let serviceIDs: StableIDs<ServiceIdentity>
    /// Backend ids of every service identity live or remembered in `serviceIDs` (control plane).
    public let backendRegistries: [ServiceIdentity: StableIDs<BackendIdentity>]

    public init(services: [Service], serviceIDs: StableIDs<ServiceIdentity> = StableIDs(),
                backendRegistries: [ServiceIdentity: StableIDs<BackendIdentity>] = [:]) {
        self.services = services
        self.serviceIDs = serviceIDs
        self.backendRegistries = backendRegistries
        for (i, s) in services.enumerated() where s.id == StableIDs<ServiceIdentity>.none { s.id = UInt16(i) }
        serviceSlots = SlotMap(ids: services.map(\.id))
        count = services.count
        let order = services.indices.sorted { Key(services[$0].vip, services[$0].proto, services[$0].port)
            < Key(services[$1].vip, services[$1].proto, services[$1].port) }
        keys = .allocate(capacity: max(1, services.count))
        indices = .allocate(capacity: max(1, services.count))
        unmanaged = .allocate(capacity: max(1, services.count))
        for (i, s) in order.enumerated() {
            keys.initializeElement(at: i, to: Key(services[s].vip, services[s].proto, services[s].port))
            indices.initializeElement(at: i, to: UInt16(s))
        }
        for (i, s) in services.enumerated() { unmanaged.initializeElement(at: i, to: .passUnretained(s)) }
    }

    deinit {
        keys.deallocate()
        indices.deallocate()
        unmanaged.deallocate()
        serviceSlots.deallocate()
    }

    /// The index of the service with stable id `id`, or nil when this snapshot has none.
    @inlinable @inline(__always)
    public func index(id: Int) -> Int? { serviceSlots.position(id) }

    @inlinable
    func find(_ key: Key) -> Int? {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) >> 1
            let k = keys[mid]
            if k == key { return Int(indices[mid]) }
            if k < key { lo = mid + 1 } else { hi = mid }
        }
        return nil
    }

    /// The index of the service for a packet to `vip`:`port` over `proto`, exact port first.
    @inlinable
    public func lookup(vip: IPv6Address, proto: UInt8, port: UInt16) -> Int? {
        if let i = find(Key(vip, proto, port)) { return i }
        return port == 0 ? nil : find(Key(vip, proto, 0))
    }

    /// The service at `index`, without retaining it (the table keeps it alive).
    @inlinable @inline(__always)
    public func service(_ index: Int) -> Unmanaged<Service> { unmanaged[index] }
}
