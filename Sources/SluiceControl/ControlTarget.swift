import SluiceConfig
import SluiceConntrack
import SluiceCore
import SluiceDataPlane

/// What the control plane drives: a data plane that takes whole configurations, and the
/// shared tables it reads from. `sluiced` implements it over `PipelineResources` (RCU
/// publication to DPDK workers); `InProcessTarget` implements it without DPDK.
///
/// All calls come from the control thread, one at a time.
public protocol ControlTarget: AnyObject {
    /// Builds the workers' snapshot for `config` and publishes it. Returns the data plane's
    /// generation once no worker can still see the previous snapshot. Throws, publishing
    /// nothing, when the configuration cannot be built (an unreachable backend, say).
    func publish(_ config: SluicedConfig) throws(ConfigError) -> UInt64
    /// The snapshot the workers read now.
    var snapshot: DataPlaneSnapshot { get }
    var flows: FlowTable { get }
    var neighbors: NeighborTable { get }
    /// The current time in the flow table's ticks (what the workers pass as `now`).
    var now: UInt32 { get }
    /// Counters per worker and per port, read now.
    func statistics() -> DataPlaneStatistics
    /// Returns once every worker has finished the burst it was in (an RCU grace period), or
    /// after the wait limit (false). A flush runs twice around it: a worker keeps new flows'
    /// reverse entries back to the end of its burst, and may insert them after a first pass.
    @discardableResult
    func waitForWorkers() -> Bool
}

/// A port's device counters, as the control plane reports them.
public struct PortCounters: Sendable, Equatable {
    public var name: String
    public var rxPackets: UInt64 = 0, txPackets: UInt64 = 0, rxBytes: UInt64 = 0, txBytes: UInt64 = 0
    public var rxMissed: UInt64 = 0, rxErrors: UInt64 = 0, txErrors: UInt64 = 0, rxNoMbuf: UInt64 = 0

    public init(name: String) { self.name = name }
}

/// Everything `stats` reports, read at one moment (counters are not mutually consistent:
/// each is a recent value, see `WorkerCounters`).
public struct DataPlaneStatistics: Sendable {
    public var generation: UInt64
    public var workers: [CounterSnapshot]
    public var ports: [PortCounters]

    public init(generation: UInt64, workers: [CounterSnapshot], ports: [PortCounters]) {
        self.generation = generation
        self.workers = workers
        self.ports = ports
    }
}

/// A data plane target without DPDK: snapshots really built with `makeSnapshot` (so every
/// refusal a real `sluiced` gives, it gives), a real flow table and neighbor table, real
/// per-worker counters. For tests and for tools that validate a configuration offline.
public final class InProcessTarget: ControlTarget {
    public private(set) var snapshot: DataPlaneSnapshot
    public let flows: FlowTable
    public let neighbors: NeighborTable
    public let counters: [WorkerCounters]
    public let portMACs: [MACAddress]
    public private(set) var generation: UInt64 = 1
    public private(set) var config: SluicedConfig
    /// Set by tests to move time.
    public var now: UInt32 = 1

    public init(config: SluicedConfig, portMACs: [MACAddress], flowCapacity: Int = 4096, workers: Int = 2) throws {
        self.portMACs = portMACs
        self.config = config
        snapshot = try config.makeSnapshot(portMACs: portMACs, file: "config")
        flows = try FlowTable(FlowTable.Configuration(capacity: flowCapacity))
        neighbors = NeighborTable()
        counters = (0..<workers).map { _ in WorkerCounters() }
    }

    public func publish(_ config: SluicedConfig) throws(ConfigError) -> UInt64 {
        let next = try config.makeSnapshot(portMACs: portMACs, file: "state", previous: snapshot)
        snapshot = next
        self.config = config
        generation += 1
        return generation
    }

    public func statistics() -> DataPlaneStatistics {
        DataPlaneStatistics(generation: generation, workers: counters.map { CounterSnapshot(summing: [$0]) },
                            ports: config.ports.map { PortCounters(name: $0.name) })
    }

    /// No worker threads run here: nothing is mid-burst.
    public func waitForWorkers() -> Bool { true }
}
