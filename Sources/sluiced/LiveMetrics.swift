import SluiceConntrack
import SluiceDataPlane
import SluiceDPDK
import SluiceMetrics
import Synchronization

/// What the Prometheus endpoint and the telemetry commands read from the running daemon: the
/// ports, the workers' counters, the pipeline's tables. Their threads (the HTTP server's event
/// loop, DPDK's telemetry thread) take `state`'s lock to sample; the workers never touch it (they
/// only write their own counters, which a sample reads with relaxed loads).
///
/// `close()` comes first in shutdown: once it returns, no sample is in progress or will start,
/// so the ports can be closed and the workers' memory freed.
final class LiveMetrics: Sendable {
    private struct Sources: @unchecked Sendable {
        // Safe (@unchecked Sendable): Port, Worker and PipelineResources are themselves
        // Sendable; the arrays are only touched under the lock.
        var ports: [Port]
        var workers: [Worker]
        var resources: PipelineResources?
        /// Per reused backend record, its value when the snapshot that reused it was published.
        var baselines: [Int: BackendCounts] = [:]
    }

    private let state: Mutex<Sources?>

    init(ports: [Port], workers: [Worker], resources: PipelineResources?) {
        state = Mutex(Sources(ports: ports, workers: workers, resources: resources))
    }

    /// Every counter now; nil after `close()`.
    func sample() -> MetricsSample? {
        state.withLock { sources -> MetricsSample? in
            guard let sources else { return nil }
            let ports = sources.ports.map { port in
                var p = PortSample(name: port.name, device: port.device.name)
                if let s = port.statistics {
                    p.rxPackets = s.rxPackets; p.txPackets = s.txPackets; p.rxBytes = s.rxBytes; p.txBytes = s.txBytes
                    p.rxErrors = s.rxErrors; p.txErrors = s.txErrors; p.rxMissed = s.rxMissed; p.rxNoMbuf = s.rxNoMbuf
                }
                return p
            }
            let conntrack = sources.resources.map { r in
                let o = r.flows.view.occupancy(now: EAL.tscSeconds)
                return ConntrackSample(live: o.live, expired: o.expired, capacity: o.slots)
            }
            let (snapshot, generation) = sources.resources?.snapshotAndGeneration ?? (nil, 0)
            return MetricsSample(ports: ports, workers: sources.workers.map { ($0.index, $0.lcore, $0.counters) },
                                 snapshot: snapshot, conntrack: conntrack, generation: generation,
                                 baselines: sources.baselines)
        }
    }

    /// Before `next` is published: the records it gives to a new (service, backend) pair counted
    /// another pair before, whose last packet is at least a quarantine old (no worker writes them
    /// now); their values become the baselines a sample subtracts, so the new pair starts at 0.
    func willPublish(_ next: DataPlaneSnapshot) {
        let reused = next.backendCounters.reused
        guard !reused.isEmpty else { return }
        state.withLock { sources in
            guard let workers = sources?.workers.map(\.counters) else { return }
            for record in reused { sources?.baselines[record] = MetricsSample.sum(record: record, over: workers) }
        }
    }

    /// Ends sampling; waits for a sample in progress.
    func close() {
        state.withLock { $0 = nil }
    }
}
