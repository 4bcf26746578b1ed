import SluiceCore
import SluiceDataPlane

/// One port's device counters (rte_eth_stats_get), as the metrics read them.
public struct PortSample: Sendable, Equatable {
    /// The configured name (`lan0`) and the DPDK device name (`net_af_packet0`).
    public var name: String
    public var device: String
    public var rxPackets: UInt64 = 0, txPackets: UInt64 = 0, rxBytes: UInt64 = 0, txBytes: UInt64 = 0
    public var rxErrors: UInt64 = 0, txErrors: UInt64 = 0
    /// Dropped by the device with its RX ring full, and RX without an mbuf (pool empty).
    public var rxMissed: UInt64 = 0, rxNoMbuf: UInt64 = 0

    public init(name: String, device: String) {
        self.name = name
        self.device = device
    }
}

/// One worker's counters, read with relaxed loads at one moment (not a consistent snapshot
/// of each other: see `WorkerCounters`).
public struct WorkerSample: Sendable, Equatable {
    public var index: Int
    public var lcore: Int
    /// Indexed by `Counter.rawValue`, `DropReason.rawValue`, `TransmitAction.rawValue`.
    public var counters: [UInt64]
    public var drops: [UInt64]
    public var actions: [UInt64]

    public init(index: Int, lcore: Int, reading c: WorkerCounters) {
        self.index = index
        self.lcore = lcore
        counters = Counter.allCases.map { c.read($0) }
        drops = DropReason.allCases.map { c.read($0) }
        actions = TransmitAction.allCases.map { c.read($0) }
    }

    public subscript(_ counter: Counter) -> UInt64 { counters[counter.rawValue] }
    public subscript(_ reason: DropReason) -> UInt64 { drops[Int(reason.rawValue)] }
    public subscript(_ action: TransmitAction) -> UInt64 { actions[Int(action.rawValue)] }

    /// Share of the worker's loop time spent in polls that found packets, since it started;
    /// 0 before the first drain tick publishes its cycle counts.
    public var busyRatio: Double {
        let total = self[.totalCycles]
        return total == 0 ? 0 : Double(self[.busyCycles]) / Double(total)
    }
}

/// One backend of a service, its counters summed over workers.
public struct BackendSample: Sendable, Equatable {
    /// `198.51.100.11:8080`, `[2001:db8:1::11]:8080` (port 0: the client's port is kept).
    public var address: String
    public var counts: BackendCounts

    public init(address: String, counts: BackendCounts) {
        self.address = address
        self.counts = counts
    }
}

/// One service and its backends.
public struct ServiceSample: Sendable, Equatable {
    public var name: String
    /// The VIP without its port; `protocol` is tcp, udp or sctp; port 0 is an all-ports service.
    public var vip: String
    public var `protocol`: String
    public var port: UInt16
    public var mode: String
    public var backends: [BackendSample]

    public init(name: String, vip: String, protocol: String, port: UInt16, mode: String, backends: [BackendSample]) {
        self.name = name
        self.vip = vip
        self.protocol = `protocol`
        self.port = port
        self.mode = mode
        self.backends = backends
    }

    /// The service's counters: the sum over its backends.
    public var totals: BackendCounts { backends.reduce(BackendCounts()) { $0 &+ $1.counts } }
}

/// The connection table's occupancy (`FlowTable.occupancy`).
public struct ConntrackSample: Sendable, Equatable {
    /// Valid entries not yet expired (forward and reverse entries both count: two per flow).
    public var live: Int
    /// Valid entries past their deadline, not yet swept.
    public var expired: Int
    /// Slots in the table.
    public var capacity: Int

    public init(live: Int, expired: Int, capacity: Int) {
        self.live = live
        self.expired = expired
        self.capacity = capacity
    }
}

/// Every counter the metrics export, read at one moment: what both the Prometheus endpoint and
/// the DPDK telemetry commands render. Building one allocates; it runs on the reader's thread,
/// never on a worker.
public struct MetricsSample: Sendable, Equatable {
    public var ports: [PortSample]
    public var workers: [WorkerSample]
    public var services: [ServiceSample]
    public var conntrack: ConntrackSample?
    /// The generation of the configuration snapshot the workers read.
    public var generation: UInt64

    public init(ports: [PortSample], workers: [WorkerSample], services: [ServiceSample],
                conntrack: ConntrackSample?, generation: UInt64) {
        self.ports = ports
        self.workers = workers
        self.services = services
        self.conntrack = conntrack
        self.generation = generation
    }

    /// Reads the workers' counters and sums each (service, backend) record of `snapshot`'s
    /// layout over them, less the record's baseline (its value when it was reused for this pair:
    /// see `BackendCounterRecords`).
    public init(ports: [PortSample], workers: [(index: Int, lcore: Int, counters: WorkerCounters)],
                snapshot: DataPlaneSnapshot?, conntrack: ConntrackSample?, generation: UInt64,
                baselines: [Int: BackendCounts] = [:]) {
        self.ports = ports
        self.workers = workers.map { WorkerSample(index: $0.index, lcore: $0.lcore, reading: $0.counters) }
        self.conntrack = conntrack
        self.generation = generation
        services = []
        guard let snapshot else { return }
        let layout = snapshot.backendCounters
        for service in snapshot.services.services {
            var backends: [BackendSample] = []
            for (b, target) in service.backends.enumerated() {
                // A pair on the overflow record has no figures of its own (the builder refuses
                // that configuration; a snapshot built by hand may still have one).
                var counts = BackendCounts()
                if let record = layout.record(serviceID: Int(service.id), backend: b) {
                    counts = workers.reduce(BackendCounts()) { $0 &+ $1.counters.read(backendSlot: record) }
                        &- (baselines[record] ?? BackendCounts())
                }
                backends.append(BackendSample(address: MetricsSample.endpoint(target.address, port: target.port),
                                              counts: counts))
            }
            services.append(ServiceSample(name: service.name, vip: MetricsSample.address(service.vip),
                                          protocol: MetricsSample.protocolName(service.proto), port: service.port,
                                          mode: "\(service.mode)", backends: backends))
        }
    }

    /// The sum over `workers` of record `record`: what a reused record's baseline is taken from.
    public static func sum(record: Int, over workers: [WorkerCounters]) -> BackendCounts {
        workers.reduce(BackendCounts()) { $0 &+ $1.read(backendSlot: record) }
    }

    /// Every worker's counter `counter`, summed.
    public func total(_ counter: Counter) -> UInt64 { workers.reduce(0) { $0 &+ $1[counter] } }
    public func total(_ reason: DropReason) -> UInt64 { workers.reduce(0) { $0 &+ $1[reason] } }
    public func total(_ action: TransmitAction) -> UInt64 { workers.reduce(0) { $0 &+ $1[action] } }

    /// An address as people write it: dotted quad for IPv4-mapped, RFC 5952 text for IPv6.
    public static func address(_ a: IPv6Address) -> String {
        a.isIPv4Mapped ? IPv4Address(value: a.ipv4Value).description : a.description
    }

    /// `a.b.c.d:port` or `[v6]:port`.
    public static func endpoint(_ a: IPv6Address, port: UInt16) -> String {
        a.isIPv4Mapped ? "\(address(a)):\(port)" : "[\(address(a))]:\(port)"
    }

    public static func protocolName(_ proto: UInt8) -> String {
        switch proto {
        case IPProtocol.tcp: "tcp"
        case IPProtocol.udp: "udp"
        case IPProtocol.sctp: "sctp"
        default: String(proto)
        }
    }
}
