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
    var backends: FlowBackends
    /// Latency in nanoseconds, 1 ns to 10 s, 3 significant digits.
    var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 10_000_000_000,
                                    numberOfSignificantValueDigits: .three)
    var intervals: [IntervalSample] = []
    let txBuffer: UnsafeMutablePointer<OpaquePointer?>
    let rxBuffer: UnsafeMutablePointer<OpaquePointer?>
    /// Index of the next packet in the flow sequence (continues across phases).
    var nextIndex: UInt64 = 0

    init(txPort: UInt16, rxPort: UInt16, pool: OpaquePointer, templates: TemplateSet, plan: TrafficPlan,
         verifyChecksums: Bool, tscHz: UInt64) {
        self.txPort = txPort
        self.rxPort = rxPort
        self.pool = pool
        self.templates = templates
        space = FlowSpace(plan: plan)
        sequence = FlowSequence(flows: plan.flows, popularity: plan.popularity)
        classifier = ReturnClassifier(kind: plan.kind, flows: plan.flows, verifyChecksums: verifyChecksums)
        self.tscHz = tscHz
        backends = FlowBackends(flows: plan.flows)
        txBuffer = .allocate(capacity: Generator.burst)
        txBuffer.initialize(repeating: nil, count: Generator.burst)
        rxBuffer = .allocate(capacity: Generator.burst)
        rxBuffer.initialize(repeating: nil, count: Generator.burst)
    }

    deinit {
        sequence.release()
        txBuffer.deallocate()
        rxBuffer.deallocate()
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
        c.firstSendTSC = start

        sending: while true {
            let now = sl_rdtsc()
            if pendingCount == 0 {
                if now >= end || (spec.packets > 0 && generated >= spec.packets)
                    || stopRequested.load(ordering: .relaxed) { break sending }
                var want = burst
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
                            let template = templates.templates[slot &* targetCount &+ space.target(flow)]
                            // Safe: a fresh mbuf holds the longest template (checked at start-up).
                            let m = txBuffer[i].unsafelyUnwrapped
                            template.write(into: sl_mbuf_data(m).unsafelyUnwrapped, flow: flow, space: space, tsc: now)
                            sl_mbuf_set_length(m, UInt16(truncatingIfNeeded: template.length))
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
            let before = c.received &+ c.notTraffic &+ c.onTransmitPort
            receive(into: &c, recordLatency: spec.recordLatency)
            let now = sl_rdtsc()
            if c.received &+ c.notTraffic &+ c.onTransmitPort != before { lastArrival = now }
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
}
