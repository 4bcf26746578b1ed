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
    /// Later IP fragments sent to the backend their first fragment went to.
    case fragmentsFollowed
    /// Known flows whose backend had left the service: re-balanced by Maglev and rebound.
    case flowsRebound

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

    public init() {
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<Atomic<UInt64>>.stride * Self.slotCount, alignment: 64)
        slots = raw.bindMemory(to: Atomic<UInt64>.self, capacity: Self.slotCount)
        for i in 0..<Self.slotCount { (slots + i).initialize(to: Atomic(0)) }
    }

    deinit {
        slots.deinitialize(count: Self.slotCount)
        slots.deallocate()
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
