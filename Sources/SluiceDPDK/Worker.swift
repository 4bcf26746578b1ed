import CDPDK
import SluiceConntrack
import SluiceCore
import SluiceDataPlane
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The named constants of the worker loop (BRIEF hot-path rule 5), as in DPDK l3fwd.
public enum WorkerLoop {
    /// BURST_SIZE: packets asked of one RX burst, and the size of each TX buffer.
    public static let burstSize = 32
    /// PREFETCH_DISTANCE: while packet i is processed, the data of packet i + 3 is prefetched,
    /// so its first cache line is in L1 by the time the parser reads it.
    public static let prefetchDistance = 3
    /// Longest single wait for an RX interrupt. It bounds how late an idle worker notices a
    /// stop request; the interrupt itself normally ends the wait much sooner.
    public static let interruptWaitMilliseconds: Int32 = 10
}

/// What a worker does with the packets it receives.
public enum ForwardingMode: String, Sendable {
    /// The Sluice pipeline: FrameDispatcher decides, replies leave by the port they came in on.
    case pipeline
    /// Benchmark mode (testpmd's `io` forwarding): each RX burst from port p goes unread and
    /// unchanged to TX on port p^1 (port 0 ↔ 1, 2 ↔ 3; a lone last port to itself).
    case io
}

/// What a worker does after a run of empty polls.
public struct IdlePolicy: Sendable {
    public enum Mode: String, Sendable {
        /// Never back off: lowest latency, one core always at 100 %.
        case poll
        /// nanosleep for `sleepMicroseconds`.
        case sleep
        /// Arm RX interrupts and wait on them (falls back to `sleep` where the driver has none).
        case interrupt
    }
    public var mode: Mode
    /// Consecutive polls of all the worker's queues that found nothing before it backs off.
    public var emptyPollsBeforeBackoff: Int
    public var sleepMicroseconds: Int

    public init(mode: Mode, emptyPollsBeforeBackoff: Int, sleepMicroseconds: Int) {
        self.mode = mode
        self.emptyPollsBeforeBackoff = emptyPollsBeforeBackoff
        self.sleepMicroseconds = sleepMicroseconds
    }
}

/// One port as one worker sees it: the queue pair it owns there. Lane i of every worker is
/// port i, so the pipeline's egress port index is the lane index.
public struct WorkerQueue: Sendable {
    public var port: UInt16
    /// This worker's RX queue and TX queue index on `port` (and on `transmitPort`).
    public var queue: UInt16
    /// Where this lane's frames leave: the peer port in `io` mode, `port` itself in pipeline
    /// mode (lane i buffers what the pipeline sends out of port i).
    public var transmitPort: UInt16
    /// `port` computes IPv4 header checksums on TX (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM is on).
    public var txIPv4Checksum: Bool
    /// `port` verifies IPv4 header checksums on RX (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM is on): only
    /// then is an mbuf's GOOD flag trusted.
    public var rxIPv4Checksum: Bool

    public init(port: UInt16, queue: UInt16, transmitPort: UInt16, txIPv4Checksum: Bool = false,
                rxIPv4Checksum: Bool = false) {
        self.txIPv4Checksum = txIPv4Checksum
        self.rxIPv4Checksum = rxIPv4Checksum
        self.port = port
        self.queue = queue
        self.transmitPort = transmitPort
    }
}

/// The stop request every worker checks once per loop iteration.
public final class StopSignal: Sendable {
    @usableFromInline let requested = Atomic<Bool>(false)

    public init() {}

    /// Relaxed on both sides: the flag carries no data with it. Everything a worker wrote is
    /// ordered before the main lcore reads it by the join (rte_eal_wait_lcore), not by this flag.
    public func request() { requested.store(true, ordering: .relaxed) }

    @inlinable @inline(__always)
    public var isRequested: Bool { requested.load(ordering: .relaxed) }
}

/// Chores a worker does on the TX drain tick, never per packet.
public enum WorkerChores {
    /// Flow-table buckets visited per drain tick by each worker's expiry sweep: bounded work
    /// (~1 µs) that never stalls the loop. At the default 100 µs tick that is 640k buckets a
    /// second per worker: a 4M-slot table (~600k buckets) is swept about once a second, well
    /// inside the shortest timeout; 256 cost ~8 % of a busy worker in the profile.
    public static let expiryBudget = 64
}

/// One (worker, port) pair's loop state. Trivial (no reference counting): it lives in the
/// worker's arena and is touched by that worker only.
@usableFromInline
struct Lane {
    var rxPort: UInt16
    var queue: UInt16
    var txPort: UInt16
    /// The RX port verifies IPv4 header checksums (see `WorkerQueue.rxIPv4Checksum`).
    var rxIPv4Checksum: Bool
    /// Packets waiting in `transmitBuffer[0..<pending]`, and their bytes.
    var pending: UInt16
    var pendingBytes: UInt64
    /// `WorkerLoop.burstSize` slots.
    var transmitBuffer: UnsafeMutablePointer<OpaquePointer?>
}

/// Cycle and poll counts kept in registers and published to `WorkerCounters` on each TX
/// drain tick, so the per-iteration cost is a few adds rather than counter stores.
@usableFromInline
struct PollTally {
    var busyPolls: UInt64 = 0
    var idlePolls: UInt64 = 0
    var busyCycles: UInt64 = 0
    var totalCycles: UInt64 = 0

    @inline(__always)
    mutating func record(cycles: UInt64, busy: Bool) {
        totalCycles &+= cycles
        if busy {
            busyPolls &+= 1
            busyCycles &+= cycles
        } else {
            idlePolls &+= 1
        }
    }

    @inline(__always)
    mutating func publish(to counters: WorkerCounters) {
        counters.add(.busyPolls, busyPolls)
        counters.add(.idlePolls, idlePolls)
        counters.add(.busyCycles, busyCycles)
        counters.add(.totalCycles, totalCycles)
        self = PollTally()
    }
}

/// Where verdicts are counted in `WorkerCounters`, read once before the loop starts:
/// `WorkerCounters.dropBase`/`actionBase` are lazily initialised globals, and reading them per
/// packet (as `WorkerCounters.count(_:)` does) costs an initialisation-check call each time.
@usableFromInline
struct VerdictSlots {
    let drop = WorkerCounters.dropBase
    let action = WorkerCounters.actionBase
}

/// A worker's memory: RX and drop arrays, lanes and TX buffers in one cache-aligned block.
/// Allocated by the worker on its own lcore, so first touch places it on that lcore's NUMA
/// node; freed when the worker returns.
@usableFromInline
struct WorkerArena {
    let laneCount: Int
    /// `burstSize` slots that RX bursts fill.
    let received: UnsafeMutablePointer<OpaquePointer?>
    /// `burstSize` slots collecting one burst's dropped mbufs for a single bulk free.
    let dropped: UnsafeMutablePointer<OpaquePointer?>
    let lanes: UnsafeMutablePointer<Lane>
    /// `burstSize` slots for the pipeline's first stage (parsed frame, flow hash) of one burst.
    let prepared: UnsafeMutablePointer<PreparedFrame>
    private let base: UnsafeMutableRawPointer

    init(queues: [WorkerQueue]) {
        let cacheLine = 64
        func roundUp(_ n: Int) -> Int { (n + cacheLine - 1) & ~(cacheLine - 1) }
        let burst = WorkerLoop.burstSize
        let pointerArray = roundUp(burst * MemoryLayout<OpaquePointer?>.stride)
        let lanesBytes = roundUp(queues.count * MemoryLayout<Lane>.stride)
        let total = 2 * pointerArray + lanesBytes + queues.count * pointerArray
        base = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: cacheLine)
        prepared = .allocate(capacity: burst)
        prepared.initialize(repeating: PreparedFrame(), count: burst)
        laneCount = queues.count
        received = base.initializeMemory(as: OpaquePointer?.self, repeating: nil, count: burst)
        dropped = (base + pointerArray).initializeMemory(as: OpaquePointer?.self, repeating: nil, count: burst)
        let lanesBase = base + 2 * pointerArray
        let buffersBase = lanesBase + lanesBytes
        lanes = lanesBase.bindMemory(to: Lane.self, capacity: queues.count)
        for (i, q) in queues.enumerated() {
            let buffer = (buffersBase + i * pointerArray)
                .initializeMemory(as: OpaquePointer?.self, repeating: nil, count: burst)
            (lanes + i).initialize(to: Lane(rxPort: q.port, queue: q.queue, txPort: q.transmitPort,
                                            rxIPv4Checksum: q.rxIPv4Checksum, pending: 0,
                                            pendingBytes: 0,
                                            transmitBuffer: buffer))
        }
    }

    func deallocate() {
        base.deallocate()
        prepared.deallocate()
    }
}

/// A poll-mode worker: pinned to one lcore by DPDK, it owns queue `index` of every port and
/// shares nothing writable with other workers (DPDK l3fwd's model).
///
/// The loop never allocates, locks, or touches a reference count: all state is in the
/// worker's arena (trivial values, unsafe pointers), class instances are reached through
/// references held here, outside the loop; the only syscall is the idle back-off.
public final class Worker: @unchecked Sendable {
    // Safe (@unchecked Sendable): the lets are immutable; `fallbackReason` is written by the
    // worker thread while it runs and read by the main lcore only after `wait()` joined it.
    public let index: Int
    public let lcore: Int
    public let counters: WorkerCounters
    public let queues: [WorkerQueue]
    public let mode: ForwardingMode
    public let idle: IdlePolicy
    /// TX buffers are flushed at least this often (TSC cycles), even when not full.
    public let txDrainCycles: UInt64
    let stop: StopSignal
    /// The load-balancing tables; nil runs the responder alone (no services configured).
    public let resources: PipelineResources?
    /// ICMP errors the worker may originate per second (`ICMPErrorBudget`).
    public let icmpErrorsPerSecond: Int
    /// Why `interrupt` mode fell back to `sleep`, if it did.
    public private(set) var fallbackReason: String?

    public init(index: Int, lcore: Int, queues: [WorkerQueue], mode: ForwardingMode, idle: IdlePolicy,
                txDrainMicroseconds: Int, stop: StopSignal, counters: WorkerCounters,
                resources: PipelineResources? = nil, icmpErrorsPerSecond: Int = ICMPErrorBudget.defaultPerSecond) {
        self.resources = resources
        self.icmpErrorsPerSecond = icmpErrorsPerSecond
        self.index = index
        self.lcore = lcore
        self.queues = queues
        self.mode = mode
        self.idle = idle
        let hz = EAL.tscHz
        self.txDrainCycles = max(1, hz / 1_000_000 * UInt64(max(0, txDrainMicroseconds))
                                    + hz % 1_000_000 * UInt64(max(0, txDrainMicroseconds)) / 1_000_000)
        self.stop = stop
        self.counters = counters
    }

    /// Starts `run` on the worker's lcore (rte_eal_remote_launch). The caller keeps this
    /// object alive until `wait()` returns: the lcore holds only an unretained pointer.
    public func launch() throws(DPDKError) {
        let ret = sl_lcore_launch(Worker.entry, Unmanaged.passUnretained(self).toOpaque(), UInt32(lcore))
        guard ret == 0 else {
            throw DPDKError(subject: "worker \(index) (lcore \(lcore))", operation: "rte_eal_remote_launch", code: ret)
        }
    }

    /// Joins the worker (rte_eal_wait_lcore); returns `run`'s result.
    @discardableResult
    public func wait() -> Int32 { sl_lcore_wait(UInt32(lcore)) }

    /// False once `run` has returned (or before launch).
    public var isRunning: Bool { sl_lcore_is_running(UInt32(lcore)) }

    private static let entry: sl_lcore_entry = { context in
        // Safe: `context` is the unretained Worker from `launch`, kept alive by its caller.
        Unmanaged<Worker>.fromOpaque(context.unsafelyUnwrapped).takeUnretainedValue().run()
    }

    /// The body on the worker's lcore.
    private func run() -> Int32 {
        let arena = WorkerArena(queues: queues)
        defer { arena.deallocate() }
        var idleMode = idle.mode
        if idleMode == .interrupt {
            if let reason = registerInterrupts(arena) {
                fallbackReason = reason
                logFallback(reason)
                idleMode = .sleep
            }
        }
        var status: Int32 = 0
        switch mode {
        case .pipeline:
            // Safe: the daemon gives every pipeline-mode worker its resources (checked at launch).
            let rcu = resources.unsafelyUnwrapped.rcu
            let reader = UInt32(index)
            guard index < resources.unsafelyUnwrapped.maxWorkers, sl_rcu_register(rcu, reader) == 0 else {
                Log.error("worker \(index): cannot register with the snapshot RCU (max \(resources.unsafelyUnwrapped.maxWorkers) workers)")
                status = 1
                break
            }
            sl_rcu_online(rcu, reader)
            pipelineLoop(arena, idleMode: idleMode, slots: VerdictSlots())
            sl_rcu_offline(rcu, reader)
            _ = sl_rcu_unregister(rcu, reader)
        case .io: ioLoop(arena, idleMode: idleMode)
        }
        if idleMode == .interrupt { unregisterInterrupts(arena, count: arena.laneCount) }
        return status
    }

    // MARK: - The loops

    /// The Sluice pipeline: RX burst → PacketPipeline → frames buffered per egress lane, drops
    /// freed in bulk. On the drain tick: a bounded flow-expiry sweep, and on worker 0, once a
    /// second, the neighbor solicitations the resolver asks for.
    @inline(never)
    func pipelineLoop(_ arena: WorkerArena, idleMode: IdlePolicy.Mode, slots: VerdictSlots) {
        // Safe: the daemon gives every pipeline-mode worker its resources (checked at launch).
        let resources = self.resources.unsafelyUnwrapped
        let counters = self.counters
        let received = arena.received, dropped = arena.dropped, prepared = arena.prepared
        let lanes = arena.lanes
        let hz = max(1, EAL.tscHz)
        let flows = resources.flows.view
        // Registered and online with the snapshot RCU (by `run`) for the whole loop.
        let rcu = resources.rcu
        let reader = UInt32(index)
        // The snapshot is re-read at the top of every iteration (`beforePoll`), after the
        // quiescent state: publications take effect within one loop iteration.
        var context = PipelineContext(snapshot: resources.load().takeUnretainedValue(), neighbors: resources.neighbors,
                                      flows: flows, counters: counters, now: UInt32(truncatingIfNeeded: sl_rdtsc() / hz),
                                      fragments: resources.fragments, neighborMisses: resources.neighborMisses)
        for (i, q) in queues.enumerated() where q.txIPv4Checksum && i < 64 { context.txIPv4ChecksumPorts |= 1 << UInt64(i) }
        // New flows' reverse entries wait for the end of their burst (DeferredReverseEntries).
        let deferred = UnsafeMutablePointer<DeferredReverseEntries>.allocate(capacity: 1)
        deferred.initialize(to: DeferredReverseEntries(capacity: WorkerLoop.burstSize))
        defer {
            deferred.deinitialize(count: 1)
            deferred.deallocate()
        }
        context.deferredReverse = deferred
        context.limitICMPErrors(perSecond: icmpErrorsPerSecond)
        var lastChoreSecond = context.now &- 1
        let resolves = index == 0
        // Unretained in the loop: `self.resources` keeps the tables alive while the worker runs.
        let resourcesRef = Unmanaged.passUnretained(resources)
        pollLoop(arena, idleMode: idleMode, rcu: rcu, reader: reader, beforePoll: {
            context.snapshot = resourcesRef._withUnsafeGuaranteedRef { $0.load() }
        }, onDrainTick: { tsc in
            context.now = UInt32(truncatingIfNeeded: tsc / hz)
            _ = flows.expire(now: context.now, budget: WorkerChores.expiryBudget)
            if resolves && context.now != lastChoreSecond {
                lastChoreSecond = context.now
                Worker.solicitNeighbors(resourcesRef, snapshot: context.snapshot, lanes: lanes, now: context.now,
                                        counters: counters)
            }
            if resolves { Worker.sendAnnouncements(resourcesRef, lanes: lanes) }
        }) { lane in
            Worker.receiveAndProcess(lane, lanes: lanes, received: received, dropped: dropped, prepared: prepared,
                                     counters: counters, slots: slots, context: &context)
        }
    }

    /// Builds and queues the ARP requests / neighbor solicitations due now. Cold: at most once a
    /// second, on worker 0, which owns its TX queue on every port.
    @inline(never)
    static func solicitNeighbors(_ resourcesRef: Unmanaged<PipelineResources>, snapshot: Unmanaged<DataPlaneSnapshot>,
                                 lanes: UnsafeMutablePointer<Lane>, now: UInt32, counters: WorkerCounters) {
        let resources = resourcesRef.takeUnretainedValue()
        let resolver = snapshot.takeUnretainedValue().resolver
        let expired = resources.neighbors.expire(now: now)
        if expired > 0 { counters.add(.neighborsExpired, UInt64(expired)) }
        let current = snapshot.takeUnretainedValue()
        let due = resolver.due(now: now, neighbors: resources.neighbors)
        let misses = NeighborResolver.requests(forMisses: resources.neighborMisses.take(now: now), routing: current.routing,
                                               ports: current.ports, neighbors: resources.neighbors, alreadyDue: due)
        if !misses.isEmpty { counters.add(.neighborMissesSolicited, UInt64(misses.count)) }
        for request in due + misses {
            guard let m = sl_mbuf_alloc(resources.pool.pointer) else { return }
            // Safe: a fresh mbuf's data pointer is valid for its capacity.
            let length = NeighborResolver.write(request, into: sl_mbuf_data(m), capacity: Int(sl_mbuf_capacity(m)))
            guard length > 0 else { sl_mbuf_free(m); continue }
            sl_mbuf_set_length(m, UInt16(truncatingIfNeeded: length))
            enqueue(m, length: length, on: lanes + request.port, counters: counters)
        }
    }

    /// GARP / unsolicited NA for addresses a publication newly owns, on worker 0's TX queue of
    /// each port (worker 0 owns queue 0 everywhere). Cold: an atomic try-lock per drain tick.
    @inline(never)
    static func sendAnnouncements(_ resourcesRef: Unmanaged<PipelineResources>, lanes: UnsafeMutablePointer<Lane>) {
        let resources = resourcesRef.takeUnretainedValue()
        for (port, owned) in resources.takeAnnouncements() {
            let report = Announcer.announce(owned, portID: lanes[port].txPort, queue: lanes[port].queue, pool: resources.pool)
            if report.failed > 0 { Log.error("port \(lanes[port].txPort): \(report.failed) announcements not sent") }
        }
    }

    /// Benchmark forwarding without looking at packets, as testpmd `--forward-mode=io`:
    /// RX burst, TX burst of the same array on the peer port, free what TX refused.
    /// Counts packets only (bytes would mean reading every mbuf, which testpmd does not).
    @inline(never)
    func ioLoop(_ arena: WorkerArena, idleMode: IdlePolicy.Mode) {
        let counters = self.counters
        let received = arena.received
        pollLoop(arena, idleMode: idleMode, rcu: nil, reader: 0, beforePoll: {}, onDrainTick: { _ in }) { lane in
            Worker.forwardBurst(lane, received: received, counters: counters)
        }
    }

    /// The loop skeleton shared by both modes: poll every lane, account the iteration's
    /// cycles as busy or idle, drain TX buffers and publish tallies on the drain tick, back off
    /// after a run of empty iterations, stop when asked. `pollLane` returns packets received.
    /// With `rcu`, each iteration starts with a quiescent state of reader `reader`, then
    /// `beforePoll` (which re-reads published state); the worker is offline while backed off.
    @inline(__always)
    func pollLoop(_ arena: WorkerArena, idleMode: IdlePolicy.Mode, rcu: OpaquePointer?, reader: UInt32,
                  beforePoll: () -> Void, onDrainTick: (UInt64) -> Void,
                  _ pollLane: (UnsafeMutablePointer<Lane>) -> Int) {
        let counters = self.counters
        let stop = self.stop
        let lanes = arena.lanes, laneCount = arena.laneCount
        let drainCycles = txDrainCycles
        let backoffAfter = idleMode == .poll ? Int.max : max(1, idle.emptyPollsBeforeBackoff)
        var tally = PollTally()
        var emptyPolls = 0
        var iterationStart = sl_rdtsc()
        var lastDrain = iterationStart

        while !stop.isRequested {
            if let rcu { sl_rcu_quiescent(rcu, reader) }
            beforePoll()
            var received = 0
            var fullBurst = false
            for l in 0..<laneCount {
                let n = pollLane(lanes + l)
                received &+= n
                fullBurst = fullBurst || n == WorkerLoop.burstSize
            }
            let now = sl_rdtsc()
            tally.record(cycles: now &- iterationStart, busy: received > 0)
            iterationStart = now
            emptyPolls = received > 0 ? 0 : emptyPolls &+ 1

            if now &- lastDrain >= drainCycles {
                onDrainTick(now)
                Worker.flushAll(lanes, count: laneCount, counters: counters)
                tally.publish(to: counters)
                lastDrain = now
            } else if received > 0 && !fullBurst {
                // No lane filled a burst: the RX rings are drained, so nothing more will join the
                // buffered frames soon; they leave now rather than at the drain tick (under full
                // load bursts are full and TX stays batched; the tick still bounds the wait).
                Worker.flushAll(lanes, count: laneCount, counters: counters)
            }
            if emptyPolls >= backoffAfter {
                onDrainTick(now)
                Worker.flushAll(lanes, count: laneCount, counters: counters)
                if let rcu { sl_rcu_offline(rcu, reader) }
                backOff(idleMode, arena)
                if let rcu { sl_rcu_online(rcu, reader) }
                let resumed = sl_rdtsc()
                tally.totalCycles &+= resumed &- now   // time backed off is idle time
                iterationStart = resumed
                emptyPolls = 0
            }
        }
        Worker.flushAll(lanes, count: laneCount, counters: counters)
        tally.publish(to: counters)
    }

    // MARK: - Per burst

    /// One RX burst on `lane` through PacketPipeline, in two passes over the burst (VPP's
    /// pattern): first parse and hash every packet and prefetch its flow-table bucket, then its
    /// entry lines, then process; the table's cache misses overlap instead of stalling one by
    /// one. Frames leave on the lane of the port the pipeline chose (lane i is port i). Returns
    /// the packets received.
    @inline(__always)
    static func receiveAndProcess(_ lane: UnsafeMutablePointer<Lane>, lanes: UnsafeMutablePointer<Lane>,
                                  received: UnsafeMutablePointer<OpaquePointer?>,
                                  dropped: UnsafeMutablePointer<OpaquePointer?>,
                                  prepared: UnsafeMutablePointer<PreparedFrame>, counters: WorkerCounters,
                                  slots: VerdictSlots, context: inout PipelineContext) -> Int {
        let count = Int(sl_rx_burst(lane.pointee.rxPort, lane.pointee.queue, received, UInt16(WorkerLoop.burstSize)))
        if count == 0 { return 0 }
        let distance = WorkerLoop.prefetchDistance
        for i in 0..<min(count, distance) {
            // Safe: rx burst filled received[0..<count] with valid mbufs.
            sl_prefetch0(sl_mbuf_data(received[i].unsafelyUnwrapped))
        }
        var bytes: UInt64 = 0
        let verifiesIPv4 = lane.pointee.rxIPv4Checksum
        for i in 0..<count {
            if i &+ distance < count {
                // Safe: i + distance < count, inside the filled part.
                sl_prefetch0(sl_mbuf_data(received[i &+ distance].unsafelyUnwrapped))
            }
            // Safe: i < count; one segment per received frame (no RX scatter), so data_len is its length.
            let m = received[i].unsafelyUnwrapped
            let length = Int(sl_mbuf_data_len(m))
            bytes &+= UInt64(truncatingIfNeeded: length)
            prepared[i] = PacketPipeline.prepare(sl_mbuf_data(m).unsafelyUnwrapped, length: length, context: context,
                                                 ipv4HeaderVerified: verifiesIPv4 && sl_mbuf_rx_ipv4_checksum_good(m))
        }
        for i in 0..<count where prepared[i].hash != 0 { context.flows.prefetchEntry(hash: prepared[i].hash) }
        let ingress = lane - lanes
        var dropCount = 0
        for i in 0..<count {
            let m = received[i].unsafelyUnwrapped   // Safe: i < count.
            let frame = sl_mbuf_data(m).unsafelyUnwrapped
            let receivedLength = Int(sl_mbuf_data_len(m))
            var length = receivedLength
            var output = PacketOutput(port: ingress)
            let verdict = PacketPipeline.process(frame, length: &length, capacity: Int(sl_mbuf_capacity(m)),
                                                 headroom: Int(sl_mbuf_headroom(m)), ingress: ingress,
                                                 prepared: prepared[i], output: &output, context: &context)
            switch verdict {
            case .transmit(let action):
                counters.add(slots.action &+ Int(action.rawValue))
                if output.prepended > 0 {
                    // Safe: the pipeline wrote `prepended` bytes into the headroom it was given.
                    _ = sl_mbuf_prepend(m, UInt16(truncatingIfNeeded: output.prepended))
                } else if output.prepended < 0 {
                    // Safe: the pipeline removed outer headers that lie inside this mbuf's data.
                    _ = sl_mbuf_adj(m, UInt16(truncatingIfNeeded: -output.prepended))
                }
                if length != Int(sl_mbuf_data_len(m)) { sl_mbuf_set_length(m, UInt16(truncatingIfNeeded: length)) }
                if output.ipv4ChecksumOffload != 0 {
                    sl_mbuf_offload_ipv4_checksum(m, UInt16(truncatingIfNeeded: output.ipv4ChecksumOffload),
                                                  UInt16(HeaderSize.ipv4Minimum))
                }
                // A full buffer leaves now: the reverse entries kept back so far go in first (a
                // reply must never beat its entry).
                enqueue(m, length: length, on: lanes + output.port, counters: counters) {
                    PacketPipeline.commitDeferred(&context)
                }
            case .drop(let reason):
                counters.add(slots.drop &+ Int(reason.rawValue))
                dropped[dropCount] = m   // Safe: at most `count` ≤ burstSize drops per burst.
                dropCount &+= 1
            }
        }
        PacketPipeline.commitDeferred(&context)
        counters.add(.rxPackets, UInt64(truncatingIfNeeded: count))
        counters.add(.rxBytes, bytes)
        if dropCount > 0 { sl_mbuf_free_bulk(dropped, UInt32(truncatingIfNeeded: dropCount)) }
        return count
    }

    /// One io-mode burst: RX on `lane.rxPort`, TX on `lane.txPort`, same queue index.
    @inline(__always)
    static func forwardBurst(_ lane: UnsafeMutablePointer<Lane>, received: UnsafeMutablePointer<OpaquePointer?>,
                             counters: WorkerCounters) -> Int {
        let queue = lane.pointee.queue
        let count = sl_rx_burst(lane.pointee.rxPort, queue, received, UInt16(WorkerLoop.burstSize))
        if count == 0 { return 0 }
        let sent = sl_tx_burst(lane.pointee.txPort, queue, received, count)
        if sent < count { dropUnsent(received + Int(sent), count: Int(count &- sent), counters: counters) }
        counters.add(.rxPackets, UInt64(count))
        counters.add(.txPackets, UInt64(sent))
        return Int(count)
    }

    /// Appends a reply to the lane's TX buffer; a full buffer goes to the driver at once, after
    /// `beforeFlush` (within a burst: `PacketPipeline.commitDeferred`, since no frame may leave
    /// before the reverse entries its burst kept back, DeferredReverseEntries).
    @inline(__always)
    static func enqueue(_ m: OpaquePointer, length: Int, on lane: UnsafeMutablePointer<Lane>, counters: WorkerCounters,
                        beforeFlush: () -> Void = {}) {
        let slot = Int(lane.pointee.pending)
        lane.pointee.transmitBuffer[slot] = m   // Safe: pending < burstSize (flushed when it reaches it).
        lane.pointee.pending = UInt16(truncatingIfNeeded: slot &+ 1)
        lane.pointee.pendingBytes &+= UInt64(truncatingIfNeeded: length)
        if slot &+ 1 == WorkerLoop.burstSize {
            beforeFlush()
            flush(lane, counters: counters)
        }
    }

    /// Hands the lane's TX buffer to the driver; what it refuses is freed and counted.
    @inline(__always)
    static func flush(_ lane: UnsafeMutablePointer<Lane>, counters: WorkerCounters) {
        let pending = lane.pointee.pending
        if pending == 0 { return }
        let buffer = lane.pointee.transmitBuffer
        var bytes = lane.pointee.pendingBytes
        let sent = sl_tx_burst(lane.pointee.txPort, lane.pointee.queue, buffer, pending)
        if sent < pending {
            bytes &-= dropUnsent(buffer + Int(sent), count: Int(pending &- sent), counters: counters)
        }
        counters.add(.txPackets, UInt64(sent))
        counters.add(.txBytes, bytes)
        lane.pointee.pending = 0
        lane.pointee.pendingBytes = 0
    }

    @inline(__always)
    static func flushAll(_ lanes: UnsafeMutablePointer<Lane>, count: Int, counters: WorkerCounters) {
        for l in 0..<count { flush(lanes + l, counters: counters) }
    }

    /// Frees packets the TX queue refused (it was full) and counts them; returns their bytes.
    /// Cold: a full TX ring means the link or the peer is the bottleneck.
    @inline(never) @discardableResult
    static func dropUnsent(_ packets: UnsafeMutablePointer<OpaquePointer?>, count: Int, counters: WorkerCounters) -> UInt64 {
        var bytes: UInt64 = 0
        for i in 0..<count {
            // Safe: the caller passes only slots the TX burst did not take; each holds an mbuf.
            bytes &+= UInt64(sl_mbuf_data_len(packets[i].unsafelyUnwrapped))
        }
        sl_mbuf_free_bulk(packets, UInt32(count))
        counters.countDrop(.transmitQueueFull, UInt64(count))
        return bytes
    }

    // MARK: - Idle

    /// Backs off after `emptyPollsBeforeBackoff` empty iterations. TX buffers were flushed by
    /// the caller, so nothing waits in them while the worker sleeps.
    @inline(never)
    func backOff(_ mode: IdlePolicy.Mode, _ arena: WorkerArena) {
        counters.add(.idleSleeps)
        switch mode {
        case .poll:
            return
        case .sleep:
            let us = max(1, idle.sleepMicroseconds)
            var request = timespec(tv_sec: us / 1_000_000, tv_nsec: (us % 1_000_000) * 1_000)
            _ = nanosleep(&request, nil)
        case .interrupt:
            // l3fwd-power's pattern: arm, wait, disarm, then poll. A packet that arrived just
            // before arming is seen after the wait's timeout at the latest.
            for l in 0..<arena.laneCount {
                _ = sl_rx_interrupt_enable(arena.lanes[l].rxPort, arena.lanes[l].queue)
            }
            _ = sl_rx_interrupt_wait(WorkerLoop.interruptWaitMilliseconds)
            for l in 0..<arena.laneCount {
                _ = sl_rx_interrupt_disable(arena.lanes[l].rxPort, arena.lanes[l].queue)
            }
        }
    }

    /// Adds every RX queue of this worker to its thread's epoll set. Returns nil on success, or
    /// why interrupts cannot be used (after undoing what was registered).
    @inline(never)
    func registerInterrupts(_ arena: WorkerArena) -> String? {
        for l in 0..<arena.laneCount {
            let lane = arena.lanes[l]
            let ret = sl_rx_interrupt_register(lane.rxPort, lane.queue, true)
            if ret != 0 {
                unregisterInterrupts(arena, count: l)
                return "port \(lane.rxPort) queue \(lane.queue): rte_eth_dev_rx_intr_ctl_q: "
                    + String(cString: sl_strerror(ret))
            }
        }
        return nil
    }

    @inline(never)
    func unregisterInterrupts(_ arena: WorkerArena, count: Int) {
        for l in 0..<count { _ = sl_rx_interrupt_register(arena.lanes[l].rxPort, arena.lanes[l].queue, false) }
    }

    @inline(never)
    func logFallback(_ reason: String) {
        Log.error("worker \(index) (lcore \(lcore)): RX interrupts unavailable (\(reason)); "
                  + "idle mode falls back to sleep")
    }
}
