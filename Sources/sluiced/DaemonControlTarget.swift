import SluiceConfig
import SluiceConntrack
import SluiceControl
import SluiceCore
import SluiceDataPlane
import SluiceDPDK

/// The running data plane as the control socket drives it: each accepted state is built into a
/// snapshot against the one in force (stable ids keep flows on their backends) and published
/// to the workers through RCU (`PipelineResources.publish`), from the control thread.
final class DaemonControlTarget: ControlTarget {
    let resources: PipelineResources
    let ports: [Port]
    let workers: [Worker]
    /// Called with each snapshot just before it is published (the metrics' counter baselines).
    let willPublish: (DataPlaneSnapshot) -> Void

    init(resources: PipelineResources, ports: [Port], workers: [Worker],
         willPublish: @escaping (DataPlaneSnapshot) -> Void = { _ in }) {
        self.resources = resources
        self.ports = ports
        self.workers = workers
        self.willPublish = willPublish
    }

    var snapshot: DataPlaneSnapshot { resources.snapshot }
    var flows: FlowTable { resources.flows }
    var neighbors: NeighborTable { resources.neighbors }
    /// The workers' clock: TSC seconds.
    var now: UInt32 { EAL.tscSeconds }

    func publish(_ config: SluicedConfig) throws(ConfigError) -> UInt64 {
        let next = try config.makeSnapshot(portMACs: ports.map(\.mac), portMTUs: ports.map(\.effectiveMTU), file: "state",
                                           previous: resources.snapshot)
        for (address, mac) in config.neighbors { resources.neighbors.learn(address.mapped, mac: mac, now: 0, permanent: true) }
        willPublish(next)
        return resources.publish(next)
    }

    func waitForWorkers() -> Bool { resources.waitForWorkers() }

    func statistics() -> DataPlaneStatistics {
        DataPlaneStatistics(
            generation: resources.generation,
            workers: workers.map { CounterSnapshot(summing: [$0.counters]) },
            ports: ports.map { port in
                var c = PortCounters(name: port.name)
                if let s = port.statistics {
                    c.rxPackets = s.rxPackets
                    c.txPackets = s.txPackets
                    c.rxBytes = s.rxBytes
                    c.txBytes = s.txBytes
                    c.rxMissed = s.rxMissed
                    c.rxErrors = s.rxErrors
                    c.txErrors = s.txErrors
                    c.rxNoMbuf = s.rxNoMbuf
                }
                return c
            })
    }
}
