import SluiceCore

/// Stable 16-bit ids for services and backends, carried from one snapshot to the next.
///
/// Flow-table entries name their service and backend by id, not by position: when a new
/// snapshot adds or removes backends, positions shift, but an established flow must keep its
/// backend as long as that backend exists (and only then). Rules:
/// - an identity (service: VIP, protocol, port; backend: address, port) present in the previous
///   snapshot keeps its id;
/// - an identity removed and later added again gets its old id back while it is remembered,
///   so flows to it stay on it (they are the same backend);
/// - an id is given to a *different* identity only after `quarantine` seconds: by then every
///   flow-table entry that named the old identity has either been rebound by a packet (the
///   pipeline rebinds a flow whose id no longer resolves) or expired (no timeout is longer).
///
/// Control-plane only (built off the hot path); the hot path reads the dense id → position maps
/// that `Service` and `ServiceTable` build from these ids.
public struct StableIDs<Identity: Hashable & Sendable>: Sendable {
    /// No id: the slot-map value for "not in this snapshot".
    public static var none: UInt16 { 0xFFFF }
    /// Ids are 0..<limit (0xFFFF is `none`).
    public static var limit: Int { 0xFFFF }

    public struct Retired: Sendable {
        public var identity: Identity
        public var id: UInt16
        /// Monotonic seconds when it left the snapshot.
        public var since: UInt64
    }

    /// Identity → id of everything in the snapshot.
    public private(set) var live: [Identity: UInt16] = [:]
    /// Identities that left, still remembered (their ids are not given to others).
    public private(set) var retired: [Retired] = []

    public init() {}

    public enum Failure: Error, Sendable { case exhausted }

    /// The ids for `identities` (in order), and the registry to keep for the next snapshot.
    /// `now` is monotonic seconds; `quarantine` the longest flow timeout.
    public func assigning(_ identities: [Identity], now: UInt64, quarantine: UInt64) throws(Failure) -> (ids: [UInt16], next: StableIDs) {
        var next = StableIDs()
        let wanted = Set(identities)
        // Still remembered: retired ones inside the quarantine, and previously live ones that left now.
        var remembered: [Identity: Retired] = [:]
        for r in retired where now &- r.since < quarantine && !wanted.contains(r.identity) {
            remembered[r.identity] = r
        }
        for (identity, id) in live where !wanted.contains(identity) {
            remembered[identity] = Retired(identity: identity, id: id, since: now)
        }
        var taken = Set<UInt16>()
        for r in remembered.values { taken.insert(r.id) }
        var ids: [UInt16] = []
        ids.reserveCapacity(identities.count)
        var fresh: [Int] = []
        for (i, identity) in identities.enumerated() {
            if let id = live[identity] ?? retired.first(where: { $0.identity == identity && now &- $0.since < quarantine })?.id {
                ids.append(id)
                taken.insert(id)
                next.live[identity] = id
            } else {
                ids.append(Self.none)
                fresh.append(i)
            }
        }
        var candidate: UInt16 = 0
        for i in fresh {
            while taken.contains(candidate) {
                guard Int(candidate) + 1 < Self.limit else { throw .exhausted }
                candidate += 1
            }
            ids[i] = candidate
            taken.insert(candidate)
            next.live[identities[i]] = candidate
        }
        next.retired = Array(remembered.values)
        return (ids, next)
    }
}

/// A backend's identity within its service: address and target port.
public struct BackendIdentity: Hashable, Sendable {
    public var address: IPv6Address
    public var port: UInt16
    public init(address: IPv6Address, port: UInt16) {
        self.address = address
        self.port = port
    }
}

/// A service's identity: VIP, protocol, port — and how its flow entries are to be read: the
/// forwarding mode (a dnat entry has no full-NAT source, a full-NAT one no reverse entry) and
/// the full-NAT source pool (entries name a pool address by position). A change of either makes
/// a new service: its flows are re-balanced and rebound rather than misread.
public struct ServiceIdentity: Hashable, Sendable {
    public var vip: IPv6Address
    public var proto: UInt8
    public var port: UInt16
    /// `ServiceMode.rawValue`.
    public var mode: UInt8
    public var sourcePool: [IPv6Address]
    public init(vip: IPv6Address, proto: UInt8, port: UInt16, mode: UInt8 = 0, sourcePool: [IPv6Address] = []) {
        self.vip = vip
        self.proto = proto
        self.port = port
        self.mode = mode
        self.sourcePool = sourcePool
    }
}

/// id → position, dense over 0...max id, `StableIDs.none` where no entry has that id. One load
/// per lookup on the hot path.
@usableFromInline
struct SlotMap {
    // Safe: allocated in `init`, freed by `deallocate()` from the owner's deinit; read-only between.
    @usableFromInline let slots: UnsafeMutableBufferPointer<UInt16>

    init(ids: [UInt16]) {
        let size = (ids.max().map { Int($0) + 1 }) ?? 0
        slots = .allocate(capacity: max(1, size))
        slots.initialize(repeating: 0xFFFF)
        for (position, id) in ids.enumerated() { slots[Int(id)] = UInt16(truncatingIfNeeded: position) }
    }

    func deallocate() { slots.deallocate() }

    /// The position of `id`, or nil when it is not in this snapshot.
    @inlinable @inline(__always)
    func position(_ id: Int) -> Int? {
        guard id < slots.count else { return nil }
        let p = slots[id]
        return p == 0xFFFF ? nil : Int(p)
    }
}
