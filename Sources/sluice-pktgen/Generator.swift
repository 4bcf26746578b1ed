import CDPDK
import Histogram
import SluiceCore
import SluiceDPDK
import SluicePktgen
import Synchronization

/// Set by SIGINT / SIGTERM: the sending phase ends early, the drain and the report still run.
let stopRequested = Atomic<Bool>(false)

/// Counters of one phase (warm-up or measured).
struct PhaseCounters {
    var sent: UInt64 = 0
    /// Generated packets coming back on the receive port, stamp and flow id intact.
    var received: UInt64 = 0
    var receivedBytes: UInt64 = 0
    /// Returned packets whose innermost L4 checksum does not verify.
    var badChecksums: UInt64 = 0
    var encapsulated: UInt64 = 0
    /// Frames on the receive port that are not generated traffic (ARP, ND, announcements).
    var notTraffic: UInt64 = 0
    var malformed: UInt64 = 0
    var noStamp: UInt64 = 0
    /// Frames arriving on the transmit port (the clients' side): nothing should come back there
    /// but the balancer's own announcements.
    var onTransmitPort: UInt64 = 0
    /// TX bursts the port did not take whole (the peer's ring was full); retried, not dropped.
    var transmitRetries: UInt64 = 0
    var allocationFailures: UInt64 = 0
    /// TSC at the first and last transmit of the phase.
    var firstSendTSC: UInt64 = 0
    var lastSendTSC: UInt64 = 0
    var lastReceiveTSC: UInt64 = 0
    /// Handshake traffic: segments of each step that arrived where they were going (the SYN's
    /// count is at the backends; `received` counts the last ACKs, i.e. completed connections).
    var arrivedSteps = InlineArray<5, UInt64>(repeating: 0)
    /// Handshake traffic: segments of the generated connections that were not the next step of
    /// any (HandshakeOutcome.unexpected).
    var unexpected: UInt64 = 0
    /// Handshake traffic: connections given up as lost, so that the concurrency limit does not
    /// stall on them (a lower bound of those opened over a second ago and not completed).
    var abandoned: UInt64 = 0
    /// Handshake traffic: frames received at either end (for the drain's idle test).
    var handshakeFrames: UInt64 = 0
}

/// One sample of the rate-over-time series.
struct IntervalSample {
    var tsc: UInt64
    var sent: UInt64
    var received: UInt64
}

/// The generator: builds packets from templates on one port, receives what comes back on the
/// other, checks flows against backends and records latency. One thread (the EAL main lcore)
/// runs everything: on a 2-core machine the load balancer has the other core.
final class Generator {
    static let burst = 32
    let txPort: UInt16
    let rxPort: UInt16
    let pool: OpaquePointer
    let templates: TemplateSet
    let space: FlowSpace
    let sequence: FlowSequence
    let classifier: ReturnClassifier
    let tscHz: UInt64
    /// Handshake traffic: connections open at once at most (0: no limit).
    let concurrency: UInt64
    /// `sent` over the last second, one sample per slot (see `run`).
    let sentHistory: UnsafeMutablePointer<UInt64>
    static let historySlots = 100
    var backends: FlowBackends
    /// Handshake traffic: writes SYNs and answers both ends (nil for the other kinds).
    let handshake: HandshakeSegments?
    let targets: [Target]
    let sourceMAC: MACAddress
    let destinationMAC: MACAddress
    /// Answers built in place from received bursts, waiting for the port they arrived on:
    /// the backends' end (rx port) and the clients' end (tx port).
    var backendAnswers = AnswerQueue()
    var clientAnswers = AnswerQueue()
    /// Latency in nanoseconds, 1 ns to 10 s, 3 significant digits.
    var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000_000,
                                    numberOfSignificantValueDigits: .three)
    var intervals: [IntervalSample] = []
    let txBuffer: UnsafeMutablePointer<OpaquePointer?>
    let rxBuffer: UnsafeMutablePointer<OpaquePointer?>
    /// Index of the next packet in the flow sequence (continues across phases).
    var nextIndex: UInt64 = 0

    init(txPort: UInt16, rxPort: UInt16, pool: OpaquePointer, templates: TemplateSet, plan: TrafficPlan,
         verifyChecksums: Bool, tscHz: UInt64, sourceMAC: MACAddress) {
        self.txPort = txPort
        self.rxPort = rxPort
        self.pool = pool
        self.templates = templates
        space = FlowSpace(plan: plan)
        sequence = FlowSequence(flows: plan.flows, popularity: plan.popularity)
        classifier = ReturnClassifier(kind: plan.kind, flows: plan.flows, verifyChecksums: verifyChecksums)
        self.tscHz = tscHz
        concurrency = plan.kind == .handshake ? UInt64(plan.concurrency) : 0
        sentHistory = .allocate(capacity: Generator.historySlots)
        sentHistory.initialize(repeating: 0, count: Generator.historySlots)
        backends = FlowBackends(flows: plan.flows)
        handshake = plan.kind == .handshake ? HandshakeSegments(plan: plan, verifyChecksums: verifyChecksums) : nil
        targets = plan.targets
        self.sourceMAC = sourceMAC
        destinationMAC = plan.destinationMAC ?? .broadcast
        txBuffer = .allocate(capacity: Generator.burst)
        txBuffer.initialize(repeating: nil, count: Generator.burst)
        rxBuffer = .allocate(capacity: Generator.burst)
        rxBuffer.initialize(repeating: nil, count: Generator.burst)
    }

    deinit {
        sequence.release()
        txBuffer.deallocate()
        rxBuffer.deallocate()
        backendAnswers.release()
        clientAnswers.release()
        sentHistory.deallocate()
    }

    /// What one sending phase does.
    struct PhaseSpec {
        /// Packets to send; 0: unbounded (then `seconds` bounds it).
        var packets: UInt64
        var seconds: Double
        /// 0: as fast as the port takes them.
        var ratePPS: Double
        /// A warm-up pass walks the flows in order (each once), whatever the popularity.
        var inOrder: Bool
        var recordLatency: Bool
        /// TSC ticks between rate-over-time samples; 0: none.
        var intervalTicks: UInt64
        /// After sending: wait until nothing arrived for `drainIdleSeconds`, at most `drainSeconds`.
        var drainSeconds: Double
        var drainIdleSeconds: Double
    }

    /// Sends, receives and drains one phase. Hot loop: no allocation (but the rare interval
    /// sample), no locks; one TSC read per burst.
    func run(_ spec: PhaseSpec) -> PhaseCounters {
        var c = PhaseCounters()
        let burst = Generator.burst
        let hz = Double(tscHz)
        let start = sl_rdtsc()
        let end: UInt64 = spec.seconds > 0 ? start &+ UInt64(spec.seconds * hz) : UInt64.max
        let packetsPerTick = spec.ratePPS > 0 ? spec.ratePPS / hz : 0
        let patternCount = templates.sizePattern.count
        let targetCount = templates.targetCount
        var pendingStart = 0
        var pendingCount = 0
        var generated: UInt64 = 0
        var index: UInt64 = spec.inOrder ? 0 : nextIndex
        var nextInterval = spec.intervalTicks > 0 ? start &+ spec.intervalTicks : UInt64.max
        // A ring of `sent` sampled every 10 ms, one second long (the abandonment bound).
        let historyTicks = max(1, tscHz / UInt64(Generator.historySlots))
        var nextHistoryTick = start &+ historyTicks
        var historyIndex = 0
        sentHistory.initialize(repeating: 0, count: Generator.historySlots)
        c.firstSendTSC = start

        sending: while true {
            let now = sl_rdtsc()
            // Time or a signal ends the phase even with a burst the port still refuses (freed below).
            if now >= end || stopRequested.load(ordering: .relaxed) { break sending }
            if concurrency > 0 && now >= nextHistoryTick {
                // The connections opened over a second ago and not completed yet are given up:
                // at least (opened a second ago) − (completed so far), a bound that needs no
                // state per connection. Without it a lost connection would hold its place in the
                // concurrency limit for ever.
                let slot = historyIndex % Generator.historySlots
                let openedASecondAgo = sentHistory[slot]
                if openedASecondAgo > c.received &+ c.abandoned { c.abandoned = openedASecondAgo &- c.received }
                sentHistory[slot] = c.sent
                historyIndex &+= 1
                nextHistoryTick &+= historyTicks
            }
            if pendingCount == 0 {
                if spec.packets > 0 && generated >= spec.packets { break sending }
                var want = burst
                // Handshake traffic: answers to connections already open go first; while a port
                // holds back some of them, no new connection opens (a closed loop, as a client
                // whose connect() blocks).
                if backendAnswers.count > 0 || clientAnswers.count > 0 { want = 0 }
                if concurrency > 0 {
                    // Saturating: abandoned connections may still complete late.
                    let done = c.received &+ c.abandoned
                    let open = c.sent > done ? c.sent &- done : 0
                    want = min(want, Int(concurrency &- min(concurrency, open)))
                }
                if packetsPerTick > 0 {
                    let due = Int(Double(now &- start) * packetsPerTick) - Int(generated)
                    want = min(want, due)
                }
                if spec.packets > 0 { want = min(want, Int(spec.packets - generated)) }
                if want > 0 {
                    if sl_mbuf_alloc_bulk(pool, txBuffer, UInt32(want)) == 0 {
                        for i in 0..<want {
                            let flow = spec.inOrder ? UInt32(truncatingIfNeeded: index) : sequence.flow(at: index)
                            let slot = patternCount == 1 ? 0 : Int(index % UInt64(patternCount))
                            index &+= 1
                            // Safe: a fresh mbuf holds the longest template or segment (checked at start-up).
                            let m = txBuffer[i].unsafelyUnwrapped
                            if let handshake {
                                let length = handshake.writeSYN(into: sl_mbuf_data(m).unsafelyUnwrapped, flow: flow, space: space,
                                                                target: targets[space.target(flow)], sourceMAC: sourceMAC,
                                                                destinationMAC: destinationMAC, tsc: UInt32(truncatingIfNeeded: now))
                                sl_mbuf_set_length(m, UInt16(truncatingIfNeeded: length))
                            } else {
                                let template = templates.templates[slot &* targetCount &+ space.target(flow)]
                                template.write(into: sl_mbuf_data(m).unsafelyUnwrapped, flow: flow, space: space, tsc: now)
                                sl_mbuf_set_length(m, UInt16(truncatingIfNeeded: template.length))
                            }
                        }
                        pendingStart = 0
                        pendingCount = want
                        generated &+= UInt64(want)
                    } else {
                        c.allocationFailures &+= 1
                    }
                }
            }
            if pendingCount > 0 {
                let taken = Int(sl_tx_burst(txPort, 0, txBuffer + pendingStart, UInt16(pendingCount)))
                pendingStart &+= taken
                pendingCount &-= taken
                c.sent &+= UInt64(taken)
                if taken > 0 { c.lastSendTSC = now }
                if pendingCount > 0 { c.transmitRetries &+= 1 }
            }
            receive(into: &c, recordLatency: spec.recordLatency)
            if now >= nextInterval {
                intervals.append(IntervalSample(tsc: now, sent: c.sent, received: c.received))
                nextInterval &+= spec.intervalTicks
            }
        }
        // Packets generated but never taken by the port are not sent: free them.
        if pendingCount > 0 { sl_mbuf_free_bulk(txBuffer + pendingStart, UInt32(pendingCount)) }
        if !spec.inOrder { nextIndex = index }

        // Drain: what is still in flight comes back (or is lost).
        let drainStart = sl_rdtsc()
        let drainEnd = drainStart &+ UInt64(spec.drainSeconds * hz)
        let idleTicks = UInt64(spec.drainIdleSeconds * hz)
        var lastArrival = drainStart
        while true {
            let before = c.received &+ c.notTraffic &+ c.onTransmitPort &+ c.handshakeFrames
            receive(into: &c, recordLatency: spec.recordLatency)
            let now = sl_rdtsc()
            if c.received &+ c.notTraffic &+ c.onTransmitPort &+ c.handshakeFrames != before { lastArrival = now }
            if c.received >= c.sent && now &- lastArrival >= idleTicks / 4 { break }
            if now &- lastArrival >= idleTicks || now >= drainEnd { break }
            if now >= nextInterval {
                intervals.append(IntervalSample(tsc: now, sent: c.sent, received: c.received))
                nextInterval &+= spec.intervalTicks
            }
        }
        if spec.intervalTicks > 0 { intervals.append(IntervalSample(tsc: sl_rdtsc(), sent: c.sent, received: c.received)) }
        return c
    }

    /// Polls both ports once: the receive port's frames are classified, the transmit port's
    /// only counted.
    @inline(__always)
    func receive(into c: inout PhaseCounters, recordLatency: Bool) {
        if let handshake {
            answer(port: rxPort, side: .backend, handshake, queue: &backendAnswers, into: &c, recordLatency: recordLatency)
            answer(port: txPort, side: .client, handshake, queue: &clientAnswers, into: &c, recordLatency: recordLatency)
            return
        }
        let count = Int(sl_rx_burst(rxPort, 0, rxBuffer, UInt16(Generator.burst)))
        if count > 0 {
            let arrival = sl_rdtsc()
            let now = arrival & PacketStamp.timestampMask
            c.lastReceiveTSC = arrival
            let nsPerTick = 1e9 / Double(tscHz)
            for i in 0..<count {
                let m = rxBuffer[i].unsafelyUnwrapped
                // Safe: the driver wrote data_len bytes at the data pointer.
                let data = UnsafeRawPointer(sl_mbuf_data(m).unsafelyUnwrapped)
                let length = Int(sl_mbuf_data_len(m))
                switch classifier.classify(data, length: length) {
                case .success(let packet):
                    c.received &+= 1
                    c.receivedBytes &+= UInt64(length)
                    if !packet.checksumOK { c.badChecksums &+= 1 }
                    if packet.encapsulated { c.encapsulated &+= 1 }
                    backends.record(flow: packet.flow, backend: packet.backend)
                    if recordLatency {
                        let ticks = (now &- packet.timestamp) & PacketStamp.timestampMask
                        _ = latency.record(UInt64(Double(ticks) * nsPerTick))
                    }
                case .failure(.notTraffic): c.notTraffic &+= 1
                case .failure(.malformed): c.malformed &+= 1
                case .failure(.noStamp): c.noStamp &+= 1
                }
            }
            sl_mbuf_free_bulk(rxBuffer, UInt32(count))
        }
        if txPort != rxPort {
            let back = Int(sl_rx_burst(txPort, 0, rxBuffer, UInt16(Generator.burst)))
            if back > 0 {
                c.onTransmitPort &+= UInt64(back)
                sl_mbuf_free_bulk(rxBuffer, UInt32(back))
            }
        }
    }

    /// Handshake traffic: polls one end and answers every segment in place, out of the port it
    /// came from. The backends' end counts a last ACK as a completed connection (`received`)
    /// and checks each flow's backend; the clients' end records the connect time (SYN →
    /// SYN-ACK) from the SYN-ACK's echoed timestamp. Answers a port does not take wait in
    /// `queue`, and that end is not polled again until they have left: the generator never
    /// drops a segment, the backpressure reaches the balancer instead.
    @inline(__always)
    func answer(port: UInt16, side: HandshakeSide, _ handshake: HandshakeSegments, queue: inout AnswerQueue,
                into c: inout PhaseCounters, recordLatency: Bool) {
        if queue.count > 0 {
            queue.flush(port: port, retries: &c.transmitRetries)
            if queue.count > 0 { return }
        }
        let count = Int(sl_rx_burst(port, 0, rxBuffer, UInt16(Generator.burst)))
        guard count > 0 else { return }
        let arrival = sl_rdtsc()
        c.lastReceiveTSC = arrival
        c.handshakeFrames &+= UInt64(count)
        let stamp = UInt32(truncatingIfNeeded: arrival)
        let nsPerTick = 1e9 / Double(tscHz)
        for i in 0..<count {
            let m = rxBuffer[i].unsafelyUnwrapped
            // Safe: the driver wrote data_len bytes at the data pointer; capacity is the mbuf's.
            let data = sl_mbuf_data(m).unsafelyUnwrapped
            let outcome = handshake.respond(data, length: Int(sl_mbuf_data_len(m)), capacity: Int(sl_mbuf_capacity(m)),
                                            side: side, tsc: stamp)
            switch outcome {
            case .reply(let length, let step, let flow, let backend, let echoed):
                c.arrivedSteps[step.rawValue] &+= 1
                if side == .backend { backends.record(flow: flow, backend: backend) }
                if step == .synAck && recordLatency {
                    // 32-bit TSC stamps: exact while the connect time is under 2^32 ticks (> 1 s).
                    _ = latency.record(UInt64(Double(stamp &- echoed) * nsPerTick))
                }
                sl_mbuf_set_length(m, UInt16(truncatingIfNeeded: length))
                queue.append(m)
                continue
            case .complete(let flow, let backend):
                c.arrivedSteps[HandshakeStep.lastAck.rawValue] &+= 1
                c.received &+= 1
                c.receivedBytes &+= UInt64(sl_mbuf_data_len(m))
                backends.record(flow: flow, backend: backend)
            case .foreign(.notTraffic): c.notTraffic &+= 1
            case .foreign(.malformed): c.malformed &+= 1
            case .foreign(.noStamp): c.noStamp &+= 1
            case .unexpected: c.unexpected &+= 1
            case .badChecksum: c.badChecksums &+= 1
            }
            sl_mbuf_free(m)
        }
        queue.flush(port: port, retries: &c.transmitRetries)
    }
}

/// Frames waiting to leave one port, in order. Holds one received burst: its owner polls the
/// port again only once the queue is empty.
struct AnswerQueue: ~Copyable {
    let buffer: UnsafeMutablePointer<OpaquePointer?>
    var start = 0
    var count = 0

    init() {
        buffer = .allocate(capacity: Generator.burst)
        buffer.initialize(repeating: nil, count: Generator.burst)
    }

    func release() {
        if count > 0 { sl_mbuf_free_bulk(buffer + start, UInt32(count)) }
        buffer.deallocate()
    }

    /// Precondition: fewer than `Generator.burst` frames queued (the owner's invariant).
    @inline(__always)
    mutating func append(_ m: OpaquePointer) {
        buffer[start &+ count] = m
        count &+= 1
    }

    /// One transmit attempt: what the port takes leaves, the rest stays.
    @inline(__always)
    mutating func flush(port: UInt16, retries: inout UInt64) {
        guard count > 0 else { return }
        let taken = Int(sl_tx_burst(port, 0, buffer + start, UInt16(count)))
        start &+= taken
        count &-= taken
        if count == 0 {
            start = 0
        } else {
            retries &+= 1
        }
    }
}
