#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import Synchronization

/// Why a `FlowTable` could not be created.
public enum FlowTableError: Error, Equatable, CustomStringConvertible {
    case invalidCapacity(Int)
    case invalidTimeout(FlowState, UInt32)
    case mapFailed(bytes: Int, errno: Int32)

    public var description: String {
        switch self {
        case .invalidCapacity(let n):
            "flow table capacity \(n) is outside 1...\(FlowTable.maxCapacity)"
        case .invalidTimeout(let s, let t):
            "timeout \(t) for \(s) is outside 1...\(FlowTimeouts.maximum) ticks"
        case .mapFailed(let bytes, let e):
            "mmap of \(bytes) bytes for the flow table failed: errno \(e)"
        }
    }
}

/// The connection-tracking table: owner of the memory, and the control plane's handle.
///
/// One contiguous, page-aligned, pre-allocated region per array (bucket headers and entries;
/// see `Layout`), mapped with `mmap(MAP_NORESERVE)`: pages are zero-filled and committed on
/// first touch, so a table sized for 10 million flows costs nothing until flows arrive — or
/// everything at creation with `prefault` (`MADV_POPULATE_WRITE`; what a data plane wants: no
/// page fault on a worker).
/// With `hugePages` the regions are 2 MiB-aligned and advised `MADV_HUGEPAGE`, so that at one
/// million flows a lookup does not also miss the TLB.
///
/// Workers use `view` (a `FlowTableView`: raw pointers, no reference counting) on the hot path;
/// the table must outlive every copy of it.
public final class FlowTable: @unchecked Sendable {
    // @unchecked Sendable: all mutable state is the mapped memory, accessed only through
    // `Atomic` operations by `FlowTableView`; the stored properties are immutable.

    public struct Configuration: Sendable, Equatable {
        /// Slots wanted; rounded up to a multiple of 7 (one bucket). Size it about 25 % above
        /// the flows expected: inserts start failing (a rare `.full`) past ~80 % occupancy.
        public var capacity: Int
        public var sharing: FlowTableSharing
        public var timeouts: FlowTimeouts
        /// Fault every page in at creation (after the huge-page advice, so that the pages are huge).
        public var prefault: Bool
        /// 2 MiB-align the regions and advise transparent huge pages.
        public var hugePages: Bool

        public init(capacity: Int, sharing: FlowTableSharing = .shared, timeouts: FlowTimeouts = .default,
                    prefault: Bool = false, hugePages: Bool = true) {
            self.capacity = capacity
            self.sharing = sharing
            self.timeouts = timeouts
            self.prefault = prefault
            self.hugePages = hugePages
        }
    }

    /// 7 × 4 294 967 291 slots (the largest prime bucket count below 2³²): the bucket index is a
    /// 32-bit multiply-shift of the hash.
    public static let maxCapacity = Layout.slotsPerBucket * 4_294_967_291
    /// Bytes of table memory per slot, overhead included: (64 + 7 × 48) / 7.
    public static let bytesPerSlot = Double(Layout.headerBytes + Layout.slotsPerBucket * Layout.entryBytes)
        / Double(Layout.slotsPerBucket)

    /// The bucket count for `capacity` slots: the smallest prime ≥ capacity / 7 (1 for a single
    /// bucket). A prime count makes every double-hashing step coprime with it, so a probe
    /// sequence always visits 16 distinct buckets (with a power of two, an even step would
    /// cycle). Primes are dense: the overshoot is a few buckets.
    public static func bucketCount(forCapacity capacity: Int) -> Int {
        let minimum = (capacity + Layout.slotsPerBucket - 1) / Layout.slotsPerBucket
        guard minimum > 1 else { return 1 }
        var n = minimum
        while !isPrime(n) { n += 1 }
        return n
    }

    static func isPrime(_ n: Int) -> Bool {
        if n < 4 { return n >= 2 }
        if n % 2 == 0 || n % 3 == 0 { return false }
        var d = 5
        while d * d <= n {
            if n % d == 0 || n % (d + 2) == 0 { return false }
            d += 6
        }
        return true
    }

    public let view: FlowTableView
    public let configuration: Configuration
    /// Bytes of the header and entry arrays (the table proper; what `prefault` commits).
    public let tableBytes: Int

    private let headerMapping: (base: UnsafeMutableRawPointer, length: Int)
    private let entryMapping: (base: UnsafeMutableRawPointer, length: Int)
    private let meta: UnsafeMutableRawPointer

    public init(_ configuration: Configuration) throws {
        guard configuration.capacity >= 1, configuration.capacity <= Self.maxCapacity else {
            throw FlowTableError.invalidCapacity(configuration.capacity)
        }
        if let bad = configuration.timeouts.invalidState {
            throw FlowTableError.invalidTimeout(bad, configuration.timeouts[bad])
        }
        let bucketCount = Self.bucketCount(forCapacity: configuration.capacity)
        let headerBytes = bucketCount * Layout.headerBytes
        let entryBytes = bucketCount * Layout.slotsPerBucket * Layout.entryBytes
        let headers = try Self.map(headerBytes, configuration)
        let entries: (UnsafeMutableRawPointer, UnsafeMutableRawPointer, Int)
        do {
            entries = try Self.map(entryBytes, configuration)
        } catch {
            munmap(headers.mapBase, headers.mapLength)
            throw error
        }
        headerMapping = (headers.mapBase, headers.mapLength)
        entryMapping = (entries.1, entries.2)
        tableBytes = headerBytes + entryBytes
        self.configuration = configuration

        // The cursor and the timeouts: one page, the cursor alone on the first cache line.
        meta = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        let cursor = meta.bindMemory(to: Atomic<UInt64>.self, capacity: 1)
        cursor.initialize(to: Atomic(0))
        let timeouts = (meta + 64).bindMemory(to: Atomic<UInt32>.self, capacity: 16)
        for i in 0..<16 {
            let state = FlowState(rawValue: UInt8(i)) ?? .generic
            (timeouts + i).initialize(to: Atomic(configuration.timeouts[state]))
        }

        // Safe: fresh anonymous pages read as zero, and an all-zero `Atomic<UInt64>` is the value
        // 0 (`Atomic` is `@_rawLayout(like: UInt64)` with no deinit); binding touches no page.
        let headerWords = headers.base.bindMemory(to: Atomic<UInt64>.self, capacity: bucketCount * Layout.headerWords)
        let entryWords = entries.0.bindMemory(to: Atomic<UInt64>.self,
                                              capacity: bucketCount * Layout.slotsPerBucket * Layout.entryWords)
        view = FlowTableView(buckets: headerWords, entries: entryWords, cursor: cursor, timeouts: timeouts,
                             bucketCount: bucketCount, sharing: configuration.sharing)
    }

    /// Convenience: `FlowTable(.init(capacity:sharing:))`.
    public convenience init(capacity: Int, sharing: FlowTableSharing = .shared) throws {
        try self.init(Configuration(capacity: capacity, sharing: sharing))
    }

    deinit {
        munmap(headerMapping.base, headerMapping.length)
        munmap(entryMapping.base, entryMapping.length)
        meta.deallocate()
    }

    private static let hugePageSize = 2 << 20

    /// Maps `bytes` of zero-filled memory; returns the usable (page- or 2 MiB-aligned) base and
    /// the mapping to unmap.
    private static func map(_ bytes: Int, _ config: Configuration) throws
        -> (base: UnsafeMutableRawPointer, mapBase: UnsafeMutableRawPointer, mapLength: Int) {
        let align = config.hugePages && bytes >= hugePageSize ? hugePageSize : 0
        let length = bytes + align
        // No MAP_POPULATE: pages populated before the MADV_HUGEPAGE advice would be 4 KiB pages.
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              p != MAP_FAILED else {
            throw FlowTableError.mapFailed(bytes: length, errno: errno)
        }
        var base = p
        if align > 0 {
            // Safe: the aligned base lies within the first `align` bytes of a mapping `align`
            // bytes longer than needed.
            let misalignment = Int(bitPattern: p) & (align - 1)
            if misalignment != 0 { base = p + (align - misalignment) }
            #if os(Linux)
            _ = madvise(base, bytes, MADV_HUGEPAGE)  // advice only; fine if THP is off
            #endif
        }
        if config.prefault {
            #if os(Linux)
            let populated = madvise(base, bytes, 23 /* MADV_POPULATE_WRITE, Linux 5.14 */) == 0
            #else
            let populated = false
            #endif
            if !populated {
                // Safe: writes one zero byte per page inside the mapping, before the memory is
                // bound to any type; zero is what the page held.
                var offset = 0
                while offset < bytes {
                    (base + offset).storeBytes(of: 0, as: UInt8.self)
                    offset += 4096
                }
            }
        }
        return (base, p, length)
    }
}

// MARK: - Control plane: list, count, flush, statistics

/// One entry as the control plane sees it (copied out, validated against concurrent change).
public struct FlowSnapshot: Sendable, Equatable {
    public var key: ConntrackKey
    public var value: FlowValue
    public var state: FlowState
    public var replySeen: Bool
    /// Ticks before expiry at the `now` the snapshot was taken (0 once expired).
    public var remaining: UInt32
    public var isExpired: Bool
    public var slot: Int
    /// Buckets between the entry and its home bucket (0 for most).
    public var displacement: Int
}

/// A conjunction of optional conditions on an entry, for `count`, `list` and `flush`.
public struct FlowFilter: Sendable, Equatable {
    public var backend: UInt32?
    public var proto: UInt8?
    public var zone: UInt16?
    public var state: FlowState?
    /// Matches the source or the destination address (IPv4 as IPv4-mapped IPv6: `mapped(_:)`).
    public var address: IPv6Address?
    /// Matches the source or the destination port.
    public var port: UInt16?
    /// Also match entries whose deadline passed but which the sweep has not freed yet.
    public var includeExpired: Bool

    public init(backend: UInt32? = nil, proto: UInt8? = nil, zone: UInt16? = nil, state: FlowState? = nil,
                address: IPv6Address? = nil, port: UInt16? = nil, includeExpired: Bool = false) {
        self.backend = backend
        self.proto = proto
        self.zone = zone
        self.state = state
        self.address = address
        self.port = port
        self.includeExpired = includeExpired
    }

    /// An IPv4 address as the key stores it (`::ffff:a.b.c.d`).
    public static func mapped(_ v4: IPv4Address) -> IPv6Address {
        IPv6Address(high: 0, low: 0xFFFF_0000_0000 | UInt64(v4.value))
    }

    public func matches(_ s: FlowSnapshot) -> Bool {
        if s.isExpired && !includeExpired { return false }
        if let backend, s.value.backend != backend { return false }
        if let proto, s.key.proto != proto { return false }
        if let zone, s.key.zone != zone { return false }
        if let state, s.state != state { return false }
        if let port, s.key.sourcePort != port && s.key.destinationPort != port { return false }
        if let address {
            let src = s.key.w0 == address.high && s.key.w1 == address.low
            let dst = s.key.w2 == address.high && s.key.w3 == address.low
            if !src && !dst { return false }
        }
        return true
    }
}

/// Slot states counted from the header array alone.
public struct FlowTableOccupancy: Sendable, Equatable {
    public var slots = 0
    /// VALID entries not yet expired.
    public var live = 0
    /// VALID entries past their deadline, waiting for the sweep or a reclaiming insert.
    public var expired = 0
    /// Inserts in flight (BUSY or PENDING).
    public var inFlight = 0
    /// Live entries by `FlowState.rawValue`.
    public var byState = [Int](repeating: 0, count: 16)
    /// Live or expired entries stored outside their home bucket, and the largest distance.
    public var displaced = 0
    public var maxDisplacement = 0
    /// Sum of all home buckets' displacement counters, and the claimed slots (in-flight ones
    /// included) they should count: equal whenever the table is quiescent (the tests check it).
    public var recordedDisplaced: UInt64 = 0
    public var claimedDisplaced: UInt64 = 0

    public var load: Double { slots == 0 ? 0 : Double(live + expired + inFlight) / Double(slots) }
}

extension FlowTableView {
    /// The entry in `slot` if it is VALID, copied out consistently (seqlock read).
    public func snapshot(slot: Int, now: UInt32) -> FlowSnapshot? {
        readSlot(slot, now: now)?.snapshot
    }

    /// The snapshot and the control word it was validated against.
    func readSlot(_ slot: Int, now: UInt32) -> (snapshot: FlowSnapshot, control: UInt64)? {
        guard slot >= 0, slot < slotCount else { return nil }
        let b = slot / Layout.slotsPerBucket
        let i = slot - b * Layout.slotsPerBucket
        while true {
            guard let read = readValid(b, i) else { return nil }
            guard read.stable else { continue }
            let c2 = read.control
            let s = FlowSnapshot(key: read.key, value: read.value, state: Ctrl.state(c2),
                                 replySeen: Ctrl.replySeen(c2), remaining: Ctrl.remaining(c2, now: now),
                                 isExpired: Ctrl.isExpired(c2, now: now), slot: slot,
                                 displacement: Ctrl.dist(c2))
            return (s, c2)
        }
    }

    /// Calls `body` for every VALID entry (expired ones included; check `isExpired`) until it
    /// returns false. Entries inserted or removed during the walk may or may not be seen; none
    /// is seen twice unless it was removed and re-inserted into a later slot.
    public func forEach(now: UInt32, _ body: (FlowSnapshot) throws -> Bool) rethrows {
        for slot in 0..<slotCount {
            let b = slot / Layout.slotsPerBucket
            // Cheap pre-check on the header word before the validated copy.
            guard Ctrl.life(header(b)[1 + slot - b * Layout.slotsPerBucket].load(ordering: .relaxed)) == Ctrl.valid,
                  let s = snapshot(slot: slot, now: now) else { continue }
            if try !body(s) { return }
        }
    }

    /// Entries matching `filter`.
    public func count(now: UInt32, matching filter: FlowFilter = FlowFilter()) -> Int {
        var n = 0
        forEach(now: now) { s in
            if filter.matches(s) { n += 1 }
            return true
        }
        return n
    }

    /// Up to `limit` entries matching `filter`, in slot order.
    public func list(now: UInt32, matching filter: FlowFilter = FlowFilter(), limit: Int = .max) -> [FlowSnapshot] {
        var out: [FlowSnapshot] = []
        guard limit > 0 else { return out }
        forEach(now: now) { s in
            if filter.matches(s) { out.append(s) }
            return out.count < limit
        }
        return out
    }

    /// Removes every entry matching `filter` (e.g. `FlowFilter(backend: 3)` when backend 3 is
    /// deleted without draining). Returns how many this call removed. Runs concurrently with
    /// workers; an entry inserted during the flush may survive it.
    @discardableResult
    public func flush(now: UInt32, matching filter: FlowFilter) -> Int {
        flush(now: now, where: filter.matches)
    }

    /// Removes every entry for which `predicate` is true.
    @discardableResult
    public func flush(now: UInt32, where predicate: (FlowSnapshot) -> Bool) -> Int {
        var removed = 0
        for slot in 0..<slotCount {
            let b = slot / Layout.slotsPerBucket
            let p = header(b) + 1 + (slot - b * Layout.slotsPerBucket)
            while let (s, c) = readSlot(slot, now: now), predicate(s) {
                // Remove exactly the incarnation the predicate saw; if its state or deadline
                // moved meanwhile, read it again and re-decide.
                if p.pointee.compareExchange(expected: c, desired: Ctrl.freed(c), ordering: .releasing).exchanged {
                    releaseDisplaced(bucket: b, control: c)
                    removed += 1
                    break
                }
            }
        }
        return removed
    }

    /// Counts slot states from the header array (no entry reads).
    public func occupancy(now: UInt32) -> FlowTableOccupancy {
        var o = FlowTableOccupancy()
        o.slots = slotCount
        for b in 0..<bucketCount {
            let h = header(b)
            let m = h[0].load(ordering: .relaxed)
            for n in 0..<12 { o.recordedDisplaced &+= Meta.count(m, UInt64(n)) }
            for i in 0..<Layout.slotsPerBucket {
                let c = h[1 + i].load(ordering: .relaxed)
                let life = Ctrl.life(c)
                if life == Ctrl.free { continue }
                let d = Ctrl.dist(c)
                if d > 0 { o.claimedDisplaced &+= 1 }
                if life != Ctrl.valid {
                    o.inFlight += 1
                    continue
                }
                if d > 0 {
                    o.displaced += 1
                    o.maxDisplacement = max(o.maxDisplacement, d)
                }
                if Ctrl.isExpired(c, now: now) {
                    o.expired += 1
                } else {
                    o.live += 1
                    o.byState[Int(Ctrl.state(c).rawValue)] += 1
                }
            }
        }
        return o
    }

    /// Recomputes every home bucket's displacement record from the slots and compares: each
    /// counter equals its slots (or sticks at 15 with at least 15), each `max` covers its slots.
    /// For tests on a quiescent table; O(slots), allocates.
    func displacementRecordsAreExact() -> Bool {
        var counts = [Int: Int]()
        var maxima = [Int: Int]()
        for b in 0..<bucketCount {
            for i in 0..<Layout.slotsPerBucket {
                let c = header(b)[1 + i].load(ordering: .relaxed)
                guard Ctrl.life(c) != Ctrl.free, Ctrl.dist(c) > 0 else { continue }
                let home = home(ofBucket: b, control: c)
                let nibble = Int(Meta.nibble((c & Ctrl.tagMask) >> Ctrl.tagShift))
                counts[home * 12 + nibble, default: 0] += 1
                maxima[home] = max(maxima[home, default: 0], Ctrl.dist(c))
            }
        }
        for home in 0..<bucketCount {
            let m = header(home)[0].load(ordering: .relaxed)
            if Meta.maxDistance(m) < maxima[home, default: 0] { return false }
            for n in 0..<12 {
                let want = counts[home * 12 + n, default: 0]
                let have = Int(Meta.count(m, UInt64(n)))
                if have != 15 && have != want { return false }   // 15 is sticky
            }
            if m & Meta.countersMask == 0 && Meta.maxDistance(m) != 0 { return false }
        }
        return true
    }

    /// The per-state timeouts in force.
    public var timeouts: FlowTimeouts {
        var t = FlowTimeouts.default
        for s in FlowState.allCases { t[s] = timeout(s) }
        return t
    }

    /// Changes one state's timeout; entries pick it up at their next packet. Returns false if
    /// the value is out of range.
    @discardableResult
    public func setTimeout(_ ticks: UInt32, for state: FlowState) -> Bool {
        guard ticks >= 1, ticks <= FlowTimeouts.maximum else { return false }
        timeoutTicks[Int(state.rawValue)].store(ticks, ordering: .relaxed)
        return true
    }
}
