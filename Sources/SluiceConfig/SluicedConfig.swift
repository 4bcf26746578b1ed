import SluiceCore
import SluiceDataPlane

/// The configuration of one `sluiced`: ports, worker lcores, the mbuf pool and the VIPs each
/// port answers for. Loaded from YAML and validated whole before the EAL starts; any problem is
/// a `ConfigError` naming the file, the field and the reason, and nothing runs.
public struct SluicedConfig: Sendable, Equatable {
    /// EAL arguments from the file (`--no-huge`, `-m`, `--file-prefix`, …); command-line EAL
    /// arguments after `--` are appended to these.
    public var eal: [String]
    public var ports: [PortConfig]
    public var workers: WorkerConfig
    public var mempool: MempoolConfig
    public var vips: [VIPConfig]
    public var services: [ServiceConfig]
    public var routes: [RouteConfig]
    public var flows: FlowConfig
    /// Next hops whose MAC is known up front (no ARP / NDP needed: ports that cannot resolve,
    /// such as benchmark sources, or hosts that must not be asked).
    public var neighbors: [(address: IPAddress, mac: MACAddress)] = []
    /// The control socket (issue 4).
    public var control = ControlConfig()
    /// The Prometheus endpoint.
    public var metrics = MetricsConfig()

    public static func == (a: SluicedConfig, b: SluicedConfig) -> Bool {
        a.eal == b.eal && a.ports == b.ports && a.workers == b.workers && a.mempool == b.mempool && a.vips == b.vips
            && a.services == b.services && a.routes == b.routes && a.flows == b.flows && a.control == b.control
            && a.neighbors.map(\.address) == b.neighbors.map(\.address) && a.neighbors.map(\.mac) == b.neighbors.map(\.mac)
            && a.metrics == b.metrics
    }

    public init(eal: [String] = [], ports: [PortConfig], workers: WorkerConfig = WorkerConfig(),
                mempool: MempoolConfig = MempoolConfig(), vips: [VIPConfig] = [],
                services: [ServiceConfig] = [], routes: [RouteConfig] = [], flows: FlowConfig = FlowConfig()) {
        self.eal = eal
        self.ports = ports
        self.workers = workers
        self.mempool = mempool
        self.vips = vips
        self.services = services
        self.routes = routes
        self.flows = flows
    }

    /// The VIPs of port `portIndex`, each answering with its own MAC or the port's.
    public func ownedAddresses(portIndex: Int, portMAC: MACAddress) -> OwnedAddresses {
        let name = ports[portIndex].name
        var v4: [(IPv4Address, MACAddress)] = []
        var v6: [(IPv6Address, MACAddress)] = []
        for vip in vips where vip.port == name {
            switch vip.address {
            case .v4(let a): v4.append((a, vip.mac ?? portMAC))
            case .v6(let a): v6.append((a, vip.mac ?? portMAC))
            }
        }
        return OwnedAddresses(portMAC: portMAC, ipv4: v4, ipv6: v6)
    }
}

/// One DPDK port.
public struct PortConfig: Sendable, Equatable {
    /// The name VIPs and logs refer to the port by (`lan0`).
    public var name: String
    /// A virtual device spec (`net_af_packet0,iface=veth0`, `net_null0`, `net_memif0,role=server`)
    /// or a PCI address (`0000:01:00.0`).
    public var device: String
    /// A MAC to use instead of the device's own (virtual devices often make one up per run).
    public var mac: MACAddress?
    public var rxDescriptors: Int
    public var txDescriptors: Int
    public var mtu: Int?
    /// Sluice's own addresses on this port: the source of its ARP / NDP requests and ICMP
    /// errors, and the connected prefixes whose hosts it resolves directly.
    public var addresses: [IPPrefix]

    public init(name: String, device: String, mac: MACAddress? = nil,
                rxDescriptors: Int = 1024, txDescriptors: Int = 1024, mtu: Int? = nil, addresses: [IPPrefix] = []) {
        self.name = name
        self.addresses = addresses
        self.device = device
        self.mac = mac
        self.rxDescriptors = rxDescriptors
        self.txDescriptors = txDescriptors
        self.mtu = mtu
    }

    /// True when `device` names a virtual device (passed to the EAL as `--vdev`), false for PCI.
    public var isVirtualDevice: Bool { device.hasPrefix("net_") }
}

/// The poll-mode workers: one per lcore; with N workers every port has N RX and N TX queues and
/// worker i owns queue i of every port (shared nothing, as in DPDK's l3fwd).
public struct WorkerConfig: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        /// The full pipeline: parse, dispatch, reply or drop.
        case pipeline
        /// Bare forwarding for benchmarks: port 0 ↔ port 1, packets untouched (testpmd's io).
        case io
    }
    public var lcores: [Int]
    /// The EAL main lcore (not a worker). Default: the lowest lcore not in `lcores`, else 0.
    public var mainLcore: Int?
    public var mode: Mode
    public var idle: IdleConfig
    /// Longest time a partly filled TX buffer waits before it is flushed.
    public var txDrainMicroseconds: Int
    /// ICMP errors each worker may originate per second (`ICMPErrorBudget`); 0: none.
    public var icmpErrorsPerSecond: Int

    public init(lcores: [Int] = [1], mainLcore: Int? = nil, mode: Mode = .pipeline,
                idle: IdleConfig = IdleConfig(), txDrainMicroseconds: Int = 100,
                icmpErrorsPerSecond: Int = ICMPErrorBudget.defaultPerSecond) {
        self.lcores = lcores
        self.mainLcore = mainLcore
        self.mode = mode
        self.idle = idle
        self.txDrainMicroseconds = txDrainMicroseconds
        self.icmpErrorsPerSecond = icmpErrorsPerSecond
    }

    /// The main lcore to run the EAL's control thread on.
    public var effectiveMainLcore: Int {
        if let mainLcore { return mainLcore }
        return (0...(lcores.max() ?? 0) + 1).first { !lcores.contains($0) } ?? 0
    }
}

/// What a worker does when there is no traffic.
public struct IdleConfig: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable {
        /// Spin at full speed always (lowest latency, one whole core per worker).
        case poll
        /// After a run of empty polls, sleep briefly between polls.
        case sleep
        /// After a run of empty polls, wait for an RX interrupt where the PMD supports it
        /// (falls back to `sleep` otherwise).
        case interrupt
    }
    public var mode: Mode
    public var emptyPollsBeforeBackoff: Int
    public var sleepMicroseconds: Int

    public init(mode: Mode = .sleep, emptyPollsBeforeBackoff: Int = 256, sleepMicroseconds: Int = 100) {
        self.mode = mode
        self.emptyPollsBeforeBackoff = emptyPollsBeforeBackoff
        self.sleepMicroseconds = sleepMicroseconds
    }
}

/// The packet buffer pool shared by all ports.
public struct MempoolConfig: Sendable, Equatable {
    public var mbufs: Int
    public var cacheSize: Int
    /// Bytes of packet data per mbuf, headroom included (DPDK's RTE_MBUF_DEFAULT_BUF_SIZE).
    public var dataRoom: Int

    public init(mbufs: Int = 8191, cacheSize: Int = 256, dataRoom: Int = 2176) {
        self.mbufs = mbufs
        self.cacheSize = cacheSize
        self.dataRoom = dataRoom
    }
}

/// The Prometheus text-format endpoint (`GET /metrics`), served by a thread that is not a
/// worker. Loopback by default: the counters name every VIP and backend.
public struct MetricsConfig: Sendable, Equatable {
    public var enabled: Bool
    /// An IP literal and a port; port 0 takes any free port (sluiced prints the one it got).
    public var listen: ListenAddress

    public static let defaultListen = ListenAddress(host: .v4(IPv4Address(value: 0x7F00_0001)), port: 9469)

    public init(enabled: Bool = true, listen: ListenAddress = MetricsConfig.defaultListen) {
        self.enabled = enabled
        self.listen = listen
    }
}

/// `192.0.2.1:9469` or `[2001:db8::1]:9469`.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: IPAddress
    public var port: UInt16

    public init(host: IPAddress, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `IPv4:PORT` or `[IPv6]:PORT` (no host names: nothing is resolved).
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]),
              !text[text.index(after: colon)...].hasPrefix("+") else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
            guard let a = IPv6Address(String(host)) else { return nil }
            self.host = .v6(a)
        } else {
            guard let a = IPv4Address(String(host)) else { return nil }
            self.host = .v4(a)
        }
        self.port = port
    }

    public var description: String {
        switch host {
        case .v4(let a): "\(a):\(port)"
        case .v6(let a): "[\(a)]:\(port)"
        }
    }
}

/// An address this `sluiced` owns on one port: it answers ARP / NDP and echo for it and
/// announces it at start.
public struct VIPConfig: Sendable, Equatable {
    public typealias Address = IPAddress
    public var address: Address
    /// The `PortConfig.name` it is owned on.
    public var port: String
    /// The MAC it answers with; default: the port's.
    public var mac: MACAddress?

    public init(address: Address, port: String, mac: MACAddress? = nil) {
        self.address = address
        self.port = port
        self.mac = mac
    }
}

/// The control socket: where it is, who may use it, and its limits.
public struct ControlConfig: Sendable, Equatable {
    public static let defaultSocket = "/run/sluice/sluiced.sock"
    /// `sizeof(sockaddr_un.sun_path)` minus the terminating NUL.
    public static let maxSocketPathBytes = 107
    public var enabled = true
    /// False when the file has no `control` section: then a socket that cannot be opened is
    /// logged and `sluiced` forwards without one, instead of refusing to start.
    public var isExplicit = false
    public var socket = ControlConfig.defaultSocket
    /// The socket's owner and group (names or numeric ids); peers must be root, this user, or
    /// in this group (SO_PEERCRED). Default: the user and group `sluiced` runs as.
    public var owner: String?
    public var group: String?
    /// The socket file's permission bits.
    public var mode = 0o660
    /// Connected clients at most; one more is told so and disconnected.
    public var maxClients = 16
    /// A client that has sent nothing, or left a request half written, for this long is
    /// disconnected (event subscribers excepted while they keep reading).
    public var idleTimeoutSeconds = 30

    public init() {}
}

/// A configuration that cannot be used: which file, which field (a path such as
/// `ports[0].device`), and why. The description is what `sluiced` prints before exiting 2.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public var file: String
    public var field: String
    public var reason: String

    public init(file: String, field: String, reason: String) {
        self.file = file
        self.field = field
        self.reason = reason
    }

    public var description: String {
        field.isEmpty ? "\(file): \(reason)" : "\(file): \(field): \(reason)"
    }
}
