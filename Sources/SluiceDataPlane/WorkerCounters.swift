#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SluiceCore

/// The one list of per-worker counters (BRIEF, hot-path rule 4): fixed counters, then one slot
/// per `DropReason`, then one per `TransmitAction`. Summed across workers on read.
public enum Counter: Int, CaseIterable, Sendable {
    case rxPackets = 0
    case rxBytes
    case txPackets
    case txBytes
    /// Polls that returned at least one packet, and polls that returned none.
    case busyPolls
    case idlePolls
    /// TSC cycles spent in polls that found work, and in all polls (busy share = busy / total).
    case busyCycles
    case totalCycles
    /// Times the worker backed off after a run of empty polls.
    case idleSleeps
    /// Flows created in the connection table.
    case newFlows
    /// New flows forwarded by Maglev alone because the connection table had no room.
    case statelessForwards
    /// Neighbors (IP → MAC) learned or refreshed from ARP / NDP.
    case neighborsLearned
    /// Later IP fragments sent where their datagram's first fragment went: to its backend, or
    /// back to its client (counted when matched; a drop after that is counted too).
    case fragmentsFollowed
    /// Known flows whose backend had left the service: re-balanced by Maglev and rebound.
    case flowsRebound
    /// Learned neighbors forgotten after `NeighborTable.reachableFor` seconds unconfirmed.
    case neighborsExpired
    /// Reply-direction (dnat / vxlan reverse) entry inserts that found the connection table full
    /// (a SYN retransmitted meanwhile tries, and counts, again): their flows were forwarded, but
    /// the backends' replies find no way back
    /// (drop_not_owned_address) until the client's next SYN on the flow puts the entry back.
    case reverseEntriesLost
    /// Solicitations for clients a reply found unresolved (`NeighborMisses`).
    case neighborMissesSolicited

    public var name: String {
        switch self {
        case .rxPackets: "rx_packets"
        case .rxBytes: "rx_bytes"
        case .txPackets: "tx_packets"
        case .txBytes: "tx_bytes"
        case .busyPolls: "busy_polls"
        case .idlePolls: "idle_polls"
        case .busyCycles: "busy_cycles"
        case .totalCycles: "total_cycles"
        case .idleSleeps: "idle_sleeps"
        case .newFlows: "new_flows"
        case .statelessForwards: "stateless_forwards"
        case .neighborsLearned: "neighbors_learned"
        case .fragmentsFollowed: "fragments_followed"
        case .flowsRebound: "flows_rebound"
        case .neighborsExpired: "neighbors_expired"
        case .reverseEntriesLost: "reverse_entries_lost"
        case .neighborMissesSolicited: "neighbor_misses_solicited"
        }
    }
}

/// One worker's counters, on their own cache lines.
///
/// Single writer: only the owning worker adds, with a relaxed load and a relaxed store (a plain
/// `mov` pair on x86, no locked instruction); any thread may read with relaxed loads. Readers see
/// each counter's value at some recent moment; counters are not a consistent snapshot of each other.
public final class WorkerCounters: @unchecked Sendable {
    public static let dropBase = Counter.allCases.count
    public static let actionBase = dropBase + DropReason.allCases.count
    public static let slotCount = actionBase + TransmitAction.allCases.count

    // Safe: allocated and initialised in `init`, deinitialised in `deinit`; `Atomic` makes every
    // concurrent access well defined.
    @usableFromInline let slots: UnsafeMutablePointer<Atomic<UInt64>>

    /// Per-backend records (see `BackendCounterLayout`): `backendSlots` records of
    /// `BackendCounter.recordWords` words, then one overflow record (index `backendSlots`) that
    /// takes the packets of services whose backends did not fit, so that no index ever leaves
    /// the mapping. A record is 32 bytes at a 32-byte boundary: never split across cache lines.
    // Safe: mapped in `init`, unmapped in `deinit`; `Atomic` makes every concurrent access well
    // defined.
    @usableFromInline let backendRecords: UnsafeMutablePointer<Atomic<UInt64>>
    private let backendMapping: (base: UnsafeMutableRawPointer, length: Int)

    /// (service, backend) pairs a worker counts: 65,536 records of 32 bytes, 2 MiB of address
    /// space per worker, of which only the pages of configured backends are ever touched
    /// (anonymous memory, zero until written). A snapshot with more backends in all is refused
    /// by its builder (`BackendCounterRecords.assigning`).
    public static let backendSlots = 65_536

    public init() {
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<Atomic<UInt64>>.stride * Self.slotCount, alignment: 64)
        slots = raw.bindMemory(to: Atomic<UInt64>.self, capacity: Self.slotCount)
        for i in 0..<Self.slotCount { (slots + i).initialize(to: Atomic(0)) }
        let words = (Self.backendSlots + 1) * BackendCounter.recordWords
        let length = words * MemoryLayout<UInt64>.stride
        // MAP_NORESERVE: address space only; a page is committed when a backend on it is counted.
        // A failed mapping leaves the process without memory for 2 MiB: nothing can run anyway.
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              p != MAP_FAILED else { fatalError("WorkerCounters: mmap of \(length) bytes failed (errno \(errno))") }
        backendMapping = (p, length)
        // Safe: fresh anonymous pages read as zero, and an all-zero `Atomic<UInt64>` is the value 0
        // (`Atomic` is `@_rawLayout(like: UInt64)` with no deinit); binding touches no page.
        backendRecords = p.bindMemory(to: Atomic<UInt64>.self, capacity: words)
    }

    deinit {
        slots.deinitialize(count: Self.slotCount)
        slots.deallocate()
        munmap(backendMapping.base, backendMapping.length)
    }

    // MARK: Per backend

    /// One packet forwarded to the backend of record `slot` (from `BackendCounterLayout.slot`),
    /// `bytes` long as received. Only the owning worker may call this.
    @inlinable @inline(__always)
    public func countForward(slot: Int, bytes: Int) {
        let record = backendRecords + slot &* BackendCounter.recordWords
        record.pointee.store(record.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        let b = record + BackendCounter.bytes.rawValue
        b.pointee.store(b.pointee.load(ordering: .relaxed) &+ UInt64(truncatingIfNeeded: bytes), ordering: .relaxed)
    }

    /// A flow created in the connection table towards the backend of record `slot`.
    @inlinable @inline(__always)
    public func countNewFlow(slot: Int) {
        let n = backendRecords + (slot &* BackendCounter.recordWords &+ BackendCounter.newFlows.rawValue)
        n.pointee.store(n.pointee.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    /// Record `slot` (0...backendSlots; `backendSlots` is the overflow record), relaxed loads.
    public func read(backendSlot slot: Int) -> BackendCounts {
        precondition(slot >= 0 && slot <= Self.backendSlots, "backend slot \(slot) out of range")
        let r = backendRecords + slot * BackendCounter.recordWords
        return BackendCounts(packets: r[BackendCounter.packets.rawValue].load(ordering: .relaxed),
                             bytes: r[BackendCounter.bytes.rawValue].load(ordering: .relaxed),
                             newFlows: r[BackendCounter.newFlows.rawValue].load(ordering: .relaxed))
    }

    /// Adds `n` to slot `index`. Only the owning worker may call this.
    @inlinable @inline(__always)
    public func add(_ index: Int, _ n: UInt64 = 1) {
        let slot = slots + index
        slot.pointee.store(slot.pointee.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    @inlinable @inline(__always)
    public func add(_ counter: Counter, _ n: UInt64 = 1) { add(counter.rawValue, n) }

    @inlinable @inline(__always)
    public func count(_ verdict: Verdict) {
        switch verdict {
        case .transmit(let action): add(Self.actionBase + Int(action.rawValue))
        case .drop(let reason): add(Self.dropBase + Int(reason.rawValue))
        }
    }

    @inlinable @inline(__always)
    public func countDrop(_ reason: DropReason, _ n: UInt64 = 1) {
        add(Self.dropBase + Int(reason.rawValue), n)
    }

    public func read(_ index: Int) -> UInt64 { (slots + index).pointee.load(ordering: .relaxed) }
    public func read(_ counter: Counter) -> UInt64 { read(counter.rawValue) }
    public func read(_ reason: DropReason) -> UInt64 { read(Self.dropBase + Int(reason.rawValue)) }
    public func read(_ action: TransmitAction) -> UInt64 { read(Self.actionBase + Int(action.rawValue)) }
}

/// Counters summed over workers, with names, for printing and export.
public struct CounterSnapshot: Sendable, Equatable {
    public var counters: [Counter: UInt64] = [:]
    public var drops: [DropReason: UInt64] = [:]
    public var actions: [TransmitAction: UInt64] = [:]

    public init(summing workers: [WorkerCounters]) {
        for c in Counter.allCases { counters[c] = workers.reduce(0) { $0 &+ $1.read(c) } }
        for r in DropReason.allCases { drops[r] = workers.reduce(0) { $0 &+ $1.read(r) } }
        for a in TransmitAction.allCases { actions[a] = workers.reduce(0) { $0 &+ $1.read(a) } }
    }

    public var totalDrops: UInt64 { drops.values.reduce(0, &+) }

    /// `name value` lines: every fixed counter and action, and every drop reason that is non-zero.
    public var lines: [String] {
        Counter.allCases.map { "\($0.name) \(counters[$0] ?? 0)" }
            + TransmitAction.allCases.map { "\($0.name) \(actions[$0] ?? 0)" }
            + DropReason.allCases.compactMap { r in
                let n = drops[r] ?? 0
                return n == 0 ? nil : "drop_\(r.name) \(n)"
            }
    }
}

/// The words of one per-backend record.
public enum BackendCounter: Int, CaseIterable, Sendable {
    /// Client packets forwarded to the backend (verdict `forward_to_backend`: first packets,
    /// packets of known flows and later fragments alike).
    case packets = 0
    /// Their bytes, each frame counted as received from the client (Ethernet header included,
    /// before any VXLAN encapsulation).
    case bytes
    /// Flows created in the connection table towards the backend (as `Counter.newFlows`).
    case newFlows

    /// Words per record: three counters and one word of padding, 32 bytes.
    public static let recordWords = 4
}

/// One backend's counters, read or summed.
public struct BackendCounts: Sendable, Equatable {
    public var packets: UInt64
    public var bytes: UInt64
    public var newFlows: UInt64

    public init(packets: UInt64 = 0, bytes: UInt64 = 0, newFlows: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
        self.newFlows = newFlows
    }

    public static func &+ (a: BackendCounts, b: BackendCounts) -> BackendCounts {
        BackendCounts(packets: a.packets &+ b.packets, bytes: a.bytes &+ b.bytes, newFlows: a.newFlows &+ b.newFlows)
    }

    public static func &- (a: BackendCounts, b: BackendCounts) -> BackendCounts {
        BackendCounts(packets: a.packets &- b.packets, bytes: a.bytes &- b.bytes, newFlows: a.newFlows &- b.newFlows)
    }
}
