import CDPDK
import SluiceConntrack
import SluiceCore
import SluiceDataPlane
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the load-balancing pipeline shares across workers: the snapshot they read, the tables
/// they read and write lock-free, and what worker 0 needs for its once-a-second chores.
///
/// ## Snapshot publication (RCU)
/// The control thread builds a whole new `DataPlaneSnapshot` off the hot path and `publish`es
/// it: one release store of a pointer. Each worker loads that pointer (acquire) at the top of
/// every loop iteration, right after reporting a quiescent state to DPDK's QSBR
/// (`rte_rcu_qsbr`, "Quiescent State Based Reclamation", DPDK Programmer's Guide §RCU): at
/// that point it holds nothing from the previous iteration. `publish` then waits until every
/// online worker has passed such a point and only then drops the old snapshot. A burst is
/// processed wholly under one snapshot — workers see the old configuration or the new one,
/// never a mix — and no worker ever waits for the control thread: a worker that backs off
/// (sleep, interrupt wait) goes offline first, so the writer does not wait for it either.
public final class PipelineResources: @unchecked Sendable {
    // Safe (@unchecked Sendable): `current` is atomic; `published` and the pending
    // announcements are behind Mutexes; the tables are lock-free; `rcu` is DPDK's thread-safe QSBR.
    public let neighbors: NeighborTable
    public let flows: FlowTable
    /// Where first fragments went, so later ones follow (shared: RSS may split a datagram).
    public let fragments = FragmentTable()
    /// Clients' next hops the workers found unresolved, for worker 0's resolver pass.
    public let neighborMisses = NeighborMisses()
    /// Buffers for the resolver's solicitations and the announcements.
    public let pool: Mempool
    /// DPDK QSBR variable, one reader id per worker index.
    let rcu: OpaquePointer
    public let maxWorkers: Int

    /// The snapshot workers load: an unretained `DataPlaneSnapshot` that `published` keeps alive.
    @usableFromInline let current: Atomic<UnsafeMutableRawPointer>

    private struct Published {
        var snapshot: DataPlaneSnapshot
        var generation: UInt64
        /// Replaced snapshots some worker may still hold: freed once their token has passed.
        var parked: [(token: UInt64, snapshot: DataPlaneSnapshot)] = []
    }

    /// How long `publish` waits for the workers before it parks the old snapshot and returns:
    /// a worker stuck while online (a driver hang) must not hold up the control thread.
    public static let quiescenceWaitNanoseconds = 1_000_000_000
    /// The strong reference behind `current`, and its generation (1 for the first). Held while
    /// a publication waits for the workers, so publications are serialised.
    private let published: Mutex<Published>
    /// GARP / unsolicited NA owed for newly owned addresses, by port index; worker 0 sends them
    /// on its drain tick, taking this lock only if it is free (it never waits for it).
    let pendingAnnouncements = Mutex<[(port: Int, owned: OwnedAddresses)]>([])

    public init(snapshot: DataPlaneSnapshot, neighbors: NeighborTable, flows: FlowTable, pool: Mempool,
                maxWorkers: Int) throws(DPDKError) {
        guard let rcu = sl_rcu_create(UInt32(max(1, maxWorkers))) else {
            throw DPDKError(subject: "rcu", operation: "rte_rcu_qsbr_init", reason: "cannot allocate the QSBR variable")
        }
        self.rcu = rcu
        self.maxWorkers = max(1, maxWorkers)
        self.neighbors = neighbors
        self.flows = flows
        self.pool = pool
        current = Atomic(Unmanaged.passUnretained(snapshot).toOpaque())
        published = Mutex(Published(snapshot: snapshot, generation: 1))
    }

    deinit { sl_rcu_free(rcu) }

    /// The snapshot in force (for the control thread; workers use `load()`).
    public var snapshot: DataPlaneSnapshot { published.withLock { $0.snapshot } }

    /// How many snapshots have been published, the first one included.
    public var generation: UInt64 { published.withLock { $0.generation } }

    /// The snapshot in force and its generation, read together (for metrics).
    public var snapshotAndGeneration: (snapshot: DataPlaneSnapshot, generation: UInt64) {
        published.withLock { ($0.snapshot, $0.generation) }
    }

    /// Workers: the current snapshot, unretained. Valid until the caller's next quiescent state.
    @inlinable @inline(__always)
    func load() -> Unmanaged<DataPlaneSnapshot> {
        Unmanaged.fromOpaque(current.load(ordering: .acquiring))
    }

    /// Makes `next` the snapshot every worker uses and returns its generation. Returns after
    /// every online worker has passed a quiescent state, when no worker can still hold the old
    /// snapshot, which is released here. Addresses `next` owns that the old one did not are
    /// announced (GARP, unsolicited NA) by worker 0 within a drain tick. Call from a thread that
    /// is not a worker; concurrent calls are serialised.
    @discardableResult
    public func publish(_ next: DataPlaneSnapshot) -> UInt64 {
        // The swap and the token under the lock; the wait outside it, so that readers of
        // `snapshot` / `generation` (metrics, telemetry) never wait for the workers. Each old
        // snapshot is released only after a token taken after it stopped being current.
        let (old, generation, token) = published.withLock { state -> (DataPlaneSnapshot, UInt64, UInt64) in
            state.parked.removeAll { sl_rcu_passed(rcu, $0.token) }
            let old = state.snapshot
            state.snapshot = next
            state.generation &+= 1
            current.store(Unmanaged.passUnretained(next).toOpaque(), ordering: .releasing)
            return (old, state.generation, sl_rcu_start(rcu))
        }
        if !PipelineResources.wait(rcu, token: token) {
            // Kept alive until that token passes (checked at the next publication).
            published.withLock { $0.parked.append((token, old)) }
            Log.error("snapshot generation \(generation &- 1): a worker has not passed a quiescent state "
                      + "in \(PipelineResources.quiescenceWaitNanoseconds / 1_000_000) ms; kept until it does")
        }
        let owed = PipelineResources.newlyOwned(old: old, new: next)
        if !owed.isEmpty { pendingAnnouncements.withLock { $0.append(contentsOf: owed) } }
        return generation
        // `old` is released here: no worker can reach it any more.
    }

    /// Returns once every online worker has passed a quiescent state (finished the loop
    /// iteration it was in, its burst included), or after the wait limit (false). Call from a
    /// thread that is not a worker.
    @discardableResult
    public func waitForWorkers() -> Bool {
        PipelineResources.wait(rcu, token: sl_rcu_start(rcu))
    }

    /// Polls until every online worker passed a quiescent state after `token` (true), or the
    /// wait limit is reached (false). Workers pass one per loop iteration, so this normally
    /// returns within microseconds.
    static func wait(_ rcu: OpaquePointer, token: UInt64) -> Bool {
        func nanoseconds() -> Int {
            var t = timespec()
            clock_gettime(CLOCK_MONOTONIC, &t)
            return t.tv_sec * 1_000_000_000 + t.tv_nsec
        }
        let deadline = nanoseconds() + quiescenceWaitNanoseconds
        var pause = timespec(tv_sec: 0, tv_nsec: 20_000)
        while !sl_rcu_passed(rcu, token) {
            guard nanoseconds() < deadline else { return false }
            nanosleep(&pause, nil)
        }
        return true
    }

    /// Per port, the addresses `new` answers for that `old` did not (or with another MAC).
    static func newlyOwned(old: DataPlaneSnapshot, new: DataPlaneSnapshot) -> [(port: Int, owned: OwnedAddresses)] {
        var out: [(port: Int, owned: OwnedAddresses)] = []
        for (i, port) in new.ports.enumerated() {
            let before = i < old.ports.count ? old.ports[i].owned : OwnedAddresses(portMAC: port.mac, ipv4: [], ipv6: [])
            let v4 = port.owned.ipv4Addresses.filter { a in !before.ipv4Addresses.contains { $0.0 == a.0 && $0.1 == a.1 } }
            let v6 = port.owned.ipv6Addresses.filter { a in !before.ipv6Addresses.contains { $0.0 == a.0 && $0.1 == a.1 } }
            if !v4.isEmpty || !v6.isEmpty {
                out.append((i, OwnedAddresses(portMAC: port.mac, ipv4: v4, ipv6: v6)))
            }
        }
        return out
    }

    /// Worker 0, on its drain tick: the announcements owed, if the lock is free right now.
    func takeAnnouncements() -> [(port: Int, owned: OwnedAddresses)] {
        pendingAnnouncements.withLockIfAvailable { pending -> [(port: Int, owned: OwnedAddresses)] in
            defer { pending.removeAll() }
            return pending
        } ?? []
    }
}
