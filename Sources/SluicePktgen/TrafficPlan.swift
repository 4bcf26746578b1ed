import SluiceCore

/// One destination of generated traffic: a VIP and its service port. Flow `i` goes to
/// `targets[i % targets.count]`, so every target gets the same number of flows.
public struct Target: Sendable, Equatable, CustomStringConvertible {
    public enum Address: Sendable, Equatable {
        case v4(IPv4Address)
        case v6(IPv6Address)
    }
    public var address: Address
    public var port: UInt16

    public init(address: Address, port: UInt16) {
        self.address = address
        self.port = port
    }

    public var isIPv4: Bool { if case .v4 = address { true } else { false } }

    public var description: String {
        switch address {
        case .v4(let a): "\(a):\(port)"
        case .v6(let a): "[\(a)]:\(port)"
        }
    }

    /// `192.0.2.10:80` or `[2001:db8::10]:80`; nil when either part does not parse.
    public init?(parsing text: String) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"),
                  let address = IPv6Address(String(text[text.index(after: text.startIndex)..<close])),
                  text[text.index(after: close)...].hasPrefix(":"),
                  let port = UInt16(text[text.index(close, offsetBy: 2)...]), port != 0 else { return nil }
            self.init(address: .v6(address), port: port)
        } else {
            let parts = text.split(separator: ":")
            guard parts.count == 2, let address = IPv4Address(String(parts[0])),
                  let port = UInt16(parts[1]), port != 0 else { return nil }
            self.init(address: .v4(address), port: port)
        }
    }
}

/// What kind of packet every flow sends.
public enum TrafficKind: String, Sendable, CaseIterable {
    /// TCP with only SYN set: each packet opens a flow (a SYN-flood shape when every flow is new).
    case syn
    /// TCP ACK carrying data: the packets of established connections.
    case established
    /// UDP datagrams.
    case udp
    /// Whole TCP connections: SYN, SYN-ACK, ACK with a request and FIN, FIN-ACK, last ACK, with
    /// sluice-pktgen answering as the backends too (`HandshakeSegments`).
    case handshake
}

/// How often each flow is picked.
public enum Popularity: Sendable, Equatable {
    /// Round-robin over the flows: every flow equally often, each once per pass.
    case uniform
    /// Flow of rank k (0-based) picked with probability ∝ 1 / (k + 1)^s.
    case zipf(exponent: Double)
}

/// Frame sizes on the wire, FCS included (64 is the Ethernet minimum).
public enum FrameSizes: Sendable, Equatable {
    /// The smallest frame the plan allows (TrafficPlan.minimumFrameSize): 64 bytes for IPv4.
    case smallest
    case fixed(Int)
    /// The simple IMIX: 64, 594 and 1518-byte frames in the ratio 7:4:1, interleaved.
    case imix

    public static let imixPattern = [64, 64, 64, 594, 64, 64, 594, 64, 1518, 594, 64, 594]
    /// The Ethernet frame check sequence, counted in wire sizes but never written by software.
    public static let fcs = 4
}

/// Everything a run sends: targets, flows and their popularity, the packet kind and sizes,
/// rate and bounds. Built from a scenario file and/or command-line flags, validated whole.
public struct TrafficPlan: Sendable, Equatable {
    public var targets: [Target] = []
    public var kind: TrafficKind = .established
    public var flows: Int = 1_000
    public var popularity: Popularity = .uniform
    public var sizes: FrameSizes = .smallest
    /// Packets per second; 0 sends as fast as the port takes them.
    public var ratePPS: Double = 0
    /// Seconds of measured sending; 0 means no time bound (then `packets` must be set).
    public var durationSeconds: Double = 5
    /// Packets to send in the measured phase; 0 means no count bound.
    public var packets: UInt64 = 0
    /// Before measuring, send each flow once (not counted) so that the measured phase sees
    /// established flows only.
    public var warmup: Bool = false
    /// Handshake traffic: at most this many connections open at once (0: no limit), as a
    /// client with a connection pool (wrk's `-c`). A new connection opens when one completes.
    /// The default keeps every segment in flight within one memif ring (1024 slots), so an
    /// overloaded generator slows down instead of overflowing the balancer's transmit rings.
    public var concurrency: Int = 512
    /// Client (source) addresses: flow i comes from host i % hosts of this network.
    public var clientNetwork4: (IPv4Address, Int) = (IPv4Address("203.0.113.0")!, 24)
    public var clientNetwork6: (IPv6Address, Int) = (IPv6Address("2001:db8:ffff::")!, 64)
    /// The destination MAC of every frame (the load balancer's port); nil: broadcast.
    public var destinationMAC: MACAddress?

    public init() {}

    public static let maxFlows = 10_000_000
    /// Source ports used per client host (1024 ... 65535).
    public static let portsPerHost = 64_512

    public static func == (a: TrafficPlan, b: TrafficPlan) -> Bool {
        a.targets == b.targets && a.kind == b.kind && a.flows == b.flows && a.popularity == b.popularity
            && a.sizes == b.sizes && a.ratePPS == b.ratePPS && a.durationSeconds == b.durationSeconds
            && a.packets == b.packets && a.warmup == b.warmup && a.concurrency == b.concurrency && a.clientNetwork4 == b.clientNetwork4
            && a.clientNetwork6 == b.clientNetwork6 && a.destinationMAC == b.destinationMAC
    }

    /// True when the targets are IPv4 (validated: all of one family).
    public var isIPv4: Bool { targets.first?.isIPv4 ?? true }

    /// The smallest wire size (FCS included) a packet of this plan can have: headers plus the
    /// 6-byte timestamp (and for UDP the 4-byte flow id), at least the 64-byte Ethernet minimum.
    public var minimumFrameSize: Int {
        if kind == .handshake { return HandshakeSegments.synWireSize(ipv4: isIPv4) }
        let l3 = isIPv4 ? HeaderSize.ipv4Minimum : HeaderSize.ipv6
        let l4 = kind == .udp ? HeaderSize.udp : HeaderSize.tcpMinimum
        let stamp = PacketStamp.timestampBytes + (kind == .udp ? PacketStamp.flowIDBytes : 0)
        return max(64, HeaderSize.ethernet + l3 + l4 + stamp + FrameSizes.fcs)
    }

    /// Checks every field; the error names the field. Returns nil when the plan can run.
    public func validate() -> PlanError? {
        guard !targets.isEmpty else { return PlanError(field: "targets", reason: "at least one VIP:port is required") }
        if targets.contains(where: { $0.isIPv4 != isIPv4 }) {
            return PlanError(field: "targets", reason: "all targets must be of one address family")
        }
        guard flows >= 1, flows <= TrafficPlan.maxFlows else {
            return PlanError(field: "flows", reason: "\(flows) is outside 1...\(TrafficPlan.maxFlows)")
        }
        let hosts = isIPv4 ? hostCount(prefixLength: clientNetwork4.1, bits: 32) : hostCount(prefixLength: clientNetwork6.1, bits: 128)
        if hosts * TrafficPlan.portsPerHost < flows {
            return PlanError(field: "client_network",
                             reason: "\(hosts) hosts × \(TrafficPlan.portsPerHost) ports cannot give \(flows) distinct flows")
        }
        if case .zipf(let s) = popularity, !(s > 0 && s <= 5) {
            return PlanError(field: "zipf_exponent", reason: "\(s) is outside (0, 5]")
        }
        guard concurrency >= 0, concurrency <= TrafficPlan.maxFlows else {
            return PlanError(field: "concurrency", reason: "\(concurrency) is outside 0...\(TrafficPlan.maxFlows)")
        }
        if kind == .handshake {
            // Every connection is new: a warm-up pass would be connections like the others.
            if warmup { return PlanError(field: "warmup", reason: "handshake traffic opens a new connection every time; there is nothing to warm up") }
            if sizes == .imix { return PlanError(field: "sizes", reason: "handshake traffic takes a fixed size (of its request segment), not imix") }
            if case .fixed(let size) = sizes, size < HandshakeSegments.minimumRequestWireSize(ipv4: isIPv4) || size > 1518 {
                return PlanError(field: "sizes", reason: "\(size) is outside \(HandshakeSegments.minimumRequestWireSize(ipv4: isIPv4))...1518 "
                                    + "for the request segment of handshake traffic over IPv\(isIPv4 ? 4 : 6) (headers and an 18-byte GET)")
            }
        }
        if case .fixed(let size) = sizes {
            guard size >= minimumFrameSize, size <= 1518 else {
                return PlanError(field: "sizes", reason: "\(size) is outside \(minimumFrameSize)...1518 for \(kind.rawValue) over IPv\(isIPv4 ? 4 : 6)")
            }
        }
        guard ratePPS >= 0, ratePPS.isFinite else { return PlanError(field: "rate", reason: "\(ratePPS) is not a packet rate") }
        guard durationSeconds >= 0, durationSeconds.isFinite else {
            return PlanError(field: "duration", reason: "\(durationSeconds) is not a duration")
        }
        if durationSeconds == 0 && packets == 0 {
            return PlanError(field: "duration", reason: "give a duration, a packet count or both")
        }
        return nil
    }

    /// Usable hosts of a prefix: all but the network and broadcast addresses (IPv4), capped.
    func hostCount(prefixLength: Int, bits: Int) -> Int {
        let hostBits = bits - prefixLength
        if hostBits >= 30 { return 1 << 30 }
        return max(0, (1 << hostBits) - 2)
    }

    /// Client hosts flows are spread over.
    public var clientHosts: Int {
        isIPv4 ? hostCount(prefixLength: clientNetwork4.1, bits: 32) : hostCount(prefixLength: clientNetwork6.1, bits: 128)
    }
}

/// A plan field that cannot be used, and why.
public struct PlanError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let reason: String
    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }
    public var description: String { "\(field): \(reason)" }
}
