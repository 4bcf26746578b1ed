import SluiceCore

/// Which per-worker record (`WorkerCounters`' backend region) counts each (service, backend)
/// pair, kept from one snapshot to the next so that a backend's counters go on across
/// reconfigurations instead of moving with positions.
///
/// Rules, as for `StableIDs` (and keyed by the same identities: service VIP, protocol and port;
/// backend address and port):
/// - a pair present in the previous snapshot keeps its record;
/// - a pair removed and added again within `quarantine` seconds gets its record back;
/// - a record is given to another pair only `quarantine` seconds after its pair left. By then no
///   worker writes it (the snapshot that named it was replaced long before), so its value is
///   frozen: `reused` lists such records and the reader subtracts the value they had when the
///   snapshot that reuses them was published (`MetricsSample`'s baselines).
///
/// Why records per pair and not a fixed `services × backends` grid: services have from one to
/// thousands of backends, so a grid sized for the largest (4,096 × 256 records of 32 bytes is
/// 32 MiB per worker) is mostly empty yet still too small for one big service. Records are handed
/// out one per pair: `WorkerCounters.backendSlots` (65,536) pairs live or in quarantine.
/// Control plane only: built off the hot path.
public struct BackendCounterRecords: Sendable {
    public struct Key: Hashable, Sendable {
        public var service: ServiceIdentity
        public var backend: BackendIdentity
        public init(service: ServiceIdentity, backend: BackendIdentity) {
            self.service = service
            self.backend = backend
        }
    }

    struct Retired: Sendable {
        var key: Key
        var record: Int
        var since: UInt64
    }

    /// Pair → record of everything in the snapshot.
    public private(set) var live: [Key: Int] = [:]
    var retired: [Retired] = []
    /// Records whose pair left more than `quarantine` ago: given out again before new ones.
    var free: [Int] = []
    /// Records ever given out: 0..<highWater.
    public private(set) var highWater = 0

    public init() {}

    public enum Failure: Error, Sendable, Equatable { case exhausted(needed: Int) }

    /// One assignment: per service (in order) the record of each backend (in order), the
    /// registry for the next snapshot, and the records reused for another pair.
    public struct Assignment: Sendable {
        public var records: [[Int]]
        public var next: BackendCounterRecords
        public var reused: [Int]

        public init(records: [[Int]], next: BackendCounterRecords, reused: [Int]) {
            self.records = records
            self.next = next
            self.reused = reused
        }
    }

    /// Records for `pairs` (per service, per backend). `now` is monotonic seconds (as `StableIDs`);
    /// `capacity` the records a worker has.
    public func assigning(_ pairs: [[Key]], now: UInt64, quarantine: UInt64,
                          capacity: Int = WorkerCounters.backendSlots) throws(Failure) -> Assignment {
        var next = BackendCounterRecords()
        next.highWater = highWater
        var wanted = Set<Key>()
        for service in pairs { for key in service { wanted.insert(key) } }
        var remembered: [Key: Retired] = [:]
        var free = self.free
        for r in retired where !wanted.contains(r.key) {
            if now &- r.since < quarantine { remembered[r.key] = r } else { free.append(r.record) }
        }
        for (key, record) in live where !wanted.contains(key) {
            remembered[key] = Retired(key: key, record: record, since: now)
        }
        var reused: [Int] = []
        var records: [[Int]] = []
        var fresh: [(Int, Int)] = []
        for (s, service) in pairs.enumerated() {
            var row: [Int] = []
            for (b, key) in service.enumerated() {
                if let record = next.live[key] {
                    row.append(record)   // listed twice: one record
                } else if let record = live[key] ?? retired.first(where: { $0.key == key })?.record {
                    // (A pair back after its quarantine still finds its record: nobody took it.)
                    row.append(record)
                    next.live[key] = record
                } else {
                    row.append(-1)
                    fresh.append((s, b))
                }
            }
            records.append(row)
        }
        free.sort(by: >)   // lowest first from the end: records stay packed at the front
        for (s, b) in fresh {
            let key = pairs[s][b]
            if let record = next.live[key] { records[s][b] = record; continue }
            let record: Int
            if let f = free.popLast() {
                record = f
                reused.append(f)
            } else {
                guard next.highWater < capacity else {
                    throw .exhausted(needed: wanted.count + remembered.count)
                }
                record = next.highWater
                next.highWater += 1
            }
            records[s][b] = record
            next.live[key] = record
        }
        next.retired = Array(remembered.values)
        next.free = free
        return Assignment(records: records, next: next, reused: reused)
    }
}

/// The hot path's view of an assignment: service id → first entry of its backends, then backend
/// position → record. Owned by its snapshot (freed by its deinit), read-only in between.
public struct BackendCounterLayout: @unchecked Sendable {
    // Safe (@unchecked Sendable): written in `init`, read-only until `deallocate`.
    @usableFromInline let bases: UnsafeMutableBufferPointer<Int32>
    @usableFromInline let records: UnsafeMutableBufferPointer<Int32>
    /// Where pairs that got no record of their own are counted (a snapshot built by hand with
    /// more pairs than records); never exported.
    public let overflow: Int
    /// The registry to carry into the next snapshot.
    public let registry: BackendCounterRecords
    /// Records that counted another pair before this snapshot (see `BackendCounterRecords`).
    public let reused: [Int]

    /// `serviceIDs[s]` is service `s`'s stable id; `assignment.records[s][b]` its backend `b`'s record.
    public init(serviceIDs: [UInt16], assignment: BackendCounterRecords.Assignment,
                capacity: Int = WorkerCounters.backendSlots) {
        let size = (serviceIDs.max().map { Int($0) + 1 }) ?? 0
        bases = .allocate(capacity: max(1, size))
        bases.initialize(repeating: 0)
        let total = assignment.records.reduce(0) { $0 + $1.count }
        records = .allocate(capacity: max(1, total))
        var next = 0
        for (s, row) in assignment.records.enumerated() {
            bases[Int(serviceIDs[s])] = Int32(next)
            for record in row {
                records.initializeElement(at: next, to: Int32(record < 0 || record > capacity ? capacity : record))
                next += 1
            }
        }
        overflow = capacity
        registry = assignment.next
        reused = assignment.reused
    }

    /// For snapshots built without a previous registry (tests, hand-built): records in order,
    /// pairs beyond `capacity` on the overflow record.
    public init(fresh services: [Service], capacity: Int = WorkerCounters.backendSlots) {
        var next = 0
        let records = services.map { s in
            (0..<s.backendCount).map { _ in
                defer { next += 1 }
                return next < capacity ? next : capacity
            }
        }
        self.init(serviceIDs: services.map(\.id),
                  assignment: .init(records: records, next: BackendCounterRecords(), reused: []), capacity: capacity)
    }

    /// The record of the backend at position `backend` of the service with stable id `serviceID`
    /// (both of this layout's snapshot): two dependent loads.
    @inlinable @inline(__always)
    public func slot(serviceID: Int, backend: Int) -> Int {
        // Safe: the pipeline passes the id of a service of this snapshot and a backend position
        // below that service's backendCount.
        Int(records[Int(bases[serviceID]) &+ backend])
    }

    /// The record counting that pair, or nil when it has none of its own (overflow).
    public func record(serviceID: Int, backend: Int) -> Int? {
        let r = slot(serviceID: serviceID, backend: backend)
        return r == overflow ? nil : r
    }

    public func deallocate() {
        bases.deallocate()
        records.deallocate()
    }
}
