import Foundation
import Histogram
import SluiceDPDK
import SluicePktgen

/// What a run measured: printed for people, written as JSON for bench/scenarios.sh.
struct Report: Encodable {
    struct Plan: Encodable {
        var targets: [String]
        var traffic: String
        var flows: Int
        var popularity: String
        var sizes: [Int]
        var rate_pps: Double
        var duration_s: Double
        var packets: UInt64
        var warmup: Bool
    }
    struct Phase: Encodable {
        var sent: UInt64
        var received: UInt64
        /// sent − received after the drain (negative would mean duplicates).
        var lost: Int64
        var loss_ratio: Double
        var seconds: Double
        var tx_mpps: Double
        var rx_mpps: Double
        var rx_gbps: Double
        var bad_checksums: UInt64
        var encapsulated: UInt64
        var not_traffic: UInt64
        var malformed: UInt64
        var no_stamp: UInt64
        var frames_on_tx_port: UInt64
        var tx_retries: UInt64
        var allocation_failures: UInt64
    }
    struct Latency: Encodable {
        var count: UInt64
        var min_ns: UInt64
        var p50_ns: UInt64
        var p90_ns: UInt64
        var p99_ns: UInt64
        var p999_ns: UInt64
        var max_ns: UInt64
        var mean_ns: Double
        /// [value_ns, percentile] points of the distribution, for a CDF plot.
        var cdf: [[Double]]
    }
    struct Backend: Encodable {
        var backend: String
        var flows: Int
    }
    struct Moved: Encodable {
        var flow: UInt32
        var first: String
        var then: String
    }
    struct Flows: Encodable {
        var flows: Int
        var seen: Int
        var moved_flows: Int
        var moved_packets: UInt64
        var moved_examples: [Moved]
        var backends: [Backend]
    }
    struct Interval: Encodable {
        var t_s: Double
        var tx_mpps: Double
        var rx_mpps: Double
    }
    /// Handshake traffic: how far the connections got. `opened` is SYNs sent; each step counts
    /// segments that arrived at their end; `completed` is last ACKs at the backends.
    struct Connections: Encodable {
        var opened: UInt64
        var syn_at_backend: UInt64
        var syn_ack_at_client: UInt64
        var request_at_backend: UInt64
        var fin_ack_at_client: UInt64
        var completed: UInt64
        var failed: Int64
        /// Of the failed: given up as lost by the concurrency limit (opened over a second before
        /// and not completed; at most `failed`).
        var abandoned: UInt64
        var concurrency: Int
        /// Connections opened on flow 0 before the measured phase until one completed (the
        /// probe); not in `opened`, but the balancer saw them.
        var probes: Int
        /// Completed connections per second of the sending window.
        var completed_per_s: Double
        /// Segments that crossed the balancer (all five steps) per second, in millions.
        var balancer_mpps: Double
        var unexpected: UInt64
        /// What `latency` measures for this traffic.
        var latency_is: String = "connect time: SYN sent to SYN-ACK received by the client, through the balancer both ways"
    }
    struct PortCounters: Encodable {
        var port: String
        var rx_packets: UInt64
        var tx_packets: UInt64
        var rx_missed: UInt64
        var rx_no_mbuf: UInt64
        var tx_errors: UInt64
    }

    var tool = "sluice-pktgen"
    var plan: Plan
    var tsc_hz: UInt64
    var warmup: Phase?
    var measured: Phase
    /// Wall clock (Unix seconds) at the start of the measured phase: lines its rate-over-time
    /// series up with other programs' events (an update storm's requests).
    var measured_start_unix: Double
    var latency: Latency
    var flows: Flows
    var connections: Connections?
    var intervals: [Interval]
    var ports: [PortCounters]

    init(plan: TrafficPlan, command: SluicePktgenCommand, tscHz: UInt64, warmup: PhaseCounters?, measured: PhaseCounters,
         measuredStart: Date, probeConnections: Int, generator: Generator, portStats: [(String, PortStatistics?)]) {
        measured_start_unix = measuredStart.timeIntervalSince1970
        let popularity: String = switch plan.popularity {
        case .uniform: "uniform"
        case .zipf(let s): "zipf(\(s))"
        }
        self.plan = Plan(targets: plan.targets.map(\.description), traffic: plan.kind.rawValue, flows: plan.flows,
                         popularity: popularity, sizes: generator.templates.sizePattern, rate_pps: plan.ratePPS,
                         duration_s: plan.durationSeconds, packets: plan.packets, warmup: plan.warmup)
        tsc_hz = tscHz
        self.warmup = warmup.map { Report.phase($0, hz: tscHz) }
        self.measured = Report.phase(measured, hz: tscHz)
        let h = generator.latency
        var cdf: [[Double]] = []
        if h.totalCount > 0 {
            for point in h.percentiles(ticksPerHalfDistance: 5) {
                cdf.append([Double(point.value), point.percentile])
                if point.percentile >= 100 { break }
            }
        }
        latency = Latency(count: h.totalCount, min_ns: h.totalCount > 0 ? h.min : 0, p50_ns: h.valueAtPercentile(50),
                          p90_ns: h.valueAtPercentile(90), p99_ns: h.valueAtPercentile(99),
                          p999_ns: h.valueAtPercentile(99.9), max_ns: h.max, mean_ns: h.totalCount > 0 ? h.mean : 0,
                          cdf: cdf)
        let ipv4 = plan.isIPv4
        flows = Flows(flows: generator.backends.flows, seen: generator.backends.flowsSeen,
                      moved_flows: generator.backends.movedFlows, moved_packets: generator.backends.movedPackets,
                      moved_examples: generator.backends.movedExamples.map {
                          Moved(flow: $0.flow, first: ReturnClassifier.describeBackend($0.first, ipv4: ipv4),
                                then: ReturnClassifier.describeBackend($0.then, ipv4: ipv4))
                      },
                      backends: generator.backends.backends.map { Backend(backend: ReturnClassifier.describeBackend($0.key, ipv4: ipv4), flows: $0.flows) })
        if plan.kind == .handshake {
            let m = measured
            let steps = m.arrivedSteps
            let seconds = self.measured.seconds
            var crossed: UInt64 = 0
            for i in steps.indices { crossed &+= steps[i] }
            connections = Connections(opened: m.sent, syn_at_backend: steps[HandshakeStep.syn.rawValue],
                                      syn_ack_at_client: steps[HandshakeStep.synAck.rawValue],
                                      request_at_backend: steps[HandshakeStep.request.rawValue],
                                      fin_ack_at_client: steps[HandshakeStep.finAck.rawValue], completed: m.received,
                                      failed: Int64(bitPattern: m.sent) - Int64(bitPattern: m.received),
                                      abandoned: min(m.abandoned, m.sent > m.received ? m.sent - m.received : 0),
                                      concurrency: plan.concurrency, probes: probeConnections,
                                      completed_per_s: seconds > 0 ? Double(m.received) / seconds : 0,
                                      balancer_mpps: seconds > 0 ? Double(crossed) / seconds / 1e6 : 0,
                                      unexpected: m.unexpected)
        }
        var series: [Interval] = []
        let samples = generator.intervals
        if let first = samples.first {
            var previous = IntervalSample(tsc: measured.firstSendTSC, sent: 0, received: 0)
            _ = first
            for s in samples where s.tsc > previous.tsc {
                let seconds = Double(s.tsc - previous.tsc) / Double(tscHz)
                series.append(Interval(t_s: Double(s.tsc - measured.firstSendTSC) / Double(tscHz),
                                       tx_mpps: Double(s.sent - previous.sent) / seconds / 1e6,
                                       rx_mpps: Double(s.received - previous.received) / seconds / 1e6))
                previous = s
            }
        }
        intervals = series
        ports = portStats.compactMap { name, s in
            s.map { PortCounters(port: name, rx_packets: $0.rxPackets, tx_packets: $0.txPackets, rx_missed: $0.rxMissed,
                                 rx_no_mbuf: $0.rxNoMbuf, tx_errors: $0.txErrors) }
        }
    }

    /// Rates over the sending window: first to last transmit (receive rate: the same window,
    /// packets received in it and in the drain, i.e. what the balancer forwarded of it).
    static func phase(_ c: PhaseCounters, hz: UInt64) -> Phase {
        let seconds = c.lastSendTSC > c.firstSendTSC ? Double(c.lastSendTSC - c.firstSendTSC) / Double(hz) : 0
        let lost = Int64(bitPattern: c.sent) - Int64(bitPattern: c.received)
        return Phase(sent: c.sent, received: c.received, lost: lost,
                     loss_ratio: c.sent > 0 ? Double(lost) / Double(c.sent) : 0, seconds: seconds,
                     tx_mpps: seconds > 0 ? Double(c.sent) / seconds / 1e6 : 0,
                     rx_mpps: seconds > 0 ? Double(c.received) / seconds / 1e6 : 0,
                     rx_gbps: seconds > 0 ? Double(c.receivedBytes + 24 * c.received) * 8 / seconds / 1e9 : 0,
                     bad_checksums: c.badChecksums, encapsulated: c.encapsulated, not_traffic: c.notTraffic,
                     malformed: c.malformed, no_stamp: c.noStamp, frames_on_tx_port: c.onTransmitPort,
                     tx_retries: c.transmitRetries, allocation_failures: c.allocationFailures)
    }

    func humanSummary() -> String {
        func f(_ v: Double, _ d: Int = 3) -> String { String(format: "%.\(d)f", v) }
        func us(_ ns: UInt64) -> String { f(Double(ns) / 1000, 1) + " us" }
        let m = measured
        var lines: [String] = []
        if let w = warmup {
            lines.append("warm-up:  sent \(w.sent), received \(w.received), lost \(w.lost)")
        }
        lines.append("measured: \(f(m.seconds)) s, sent \(m.sent) (\(f(m.tx_mpps)) Mpps), received \(m.received) "
                     + "(\(f(m.rx_mpps)) Mpps, \(f(m.rx_gbps, 2)) Gb/s on the wire), lost \(m.lost) (\(f(100 * m.loss_ratio, 4)) %)")
        if let n = connections {
            lines.append("connections: opened \(n.opened), SYN at backend \(n.syn_at_backend), SYN-ACK at client \(n.syn_ack_at_client), "
                         + "request at backend \(n.request_at_backend), FIN-ACK at client \(n.fin_ack_at_client), completed \(n.completed) "
                         + "(\(f(n.completed_per_s / 1e6)) M/s; \(f(n.balancer_mpps)) Mpps through the balancer), failed \(n.failed) "
                         + "(abandoned \(n.abandoned) at the concurrency limit \(n.concurrency)), "
                         + "unexpected \(n.unexpected)")
            lines.append("          latency below is the connect time (SYN to SYN-ACK at the client); 'received' counts completed connections")
        }
        lines.append("latency:  p50 \(us(latency.p50_ns)), p90 \(us(latency.p90_ns)), p99 \(us(latency.p99_ns)), "
                     + "p99.9 \(us(latency.p999_ns)), max \(us(latency.max_ns)) over \(latency.count) packets")
        lines.append("flows:    \(flows.seen) of \(flows.flows) came back; \(flows.moved_flows) moved backend "
                     + "(\(flows.moved_packets) packets); \(flows.backends.count) backends: "
                     + flows.backends.prefix(16).map { "\($0.backend)=\($0.flows)" }.joined(separator: " "))
        for moved in flows.moved_examples {
            lines.append("  moved:  flow \(moved.flow) \(moved.first) -> \(moved.then)")
        }
        lines.append("other:    bad_checksums \(m.bad_checksums), encapsulated \(m.encapsulated), not_traffic \(m.not_traffic), "
                     + "malformed \(m.malformed), no_stamp \(m.no_stamp), frames_on_tx_port \(m.frames_on_tx_port), "
                     + "tx_retries \(m.tx_retries), allocation_failures \(m.allocation_failures)")
        return lines.joined(separator: "\n")
    }
}
