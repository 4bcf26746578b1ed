import SluiceCore

/// An address with its prefix length: `192.0.2.2/24`, `2001:db8::2/64`.
public enum IPPrefix: Sendable, Equatable, Hashable, CustomStringConvertible {
    case v4(IPv4Address, Int)
    case v6(IPv6Address, Int)

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let length = Int(parts[1]), !parts[1].hasPrefix("+") else { return nil }
        if let a = IPv4Address(String(parts[0])), (0...32).contains(length) {
            self = .v4(a, length)
        } else if let a = IPv6Address(String(parts[0])), (0...128).contains(length) {
            self = .v6(a, length)
        } else {
            return nil
        }
    }

    public var length: Int {
        switch self {
        case .v4(_, let n), .v6(_, let n): n
        }
    }

    /// True when `address` is inside this prefix.
    public func contains(_ address: IPAddress) -> Bool {
        switch (self, address) {
        case (.v4(let net, let n), .v4(let a)):
            let mask: UInt32 = n == 0 ? 0 : ~UInt32(0) << UInt32(32 - n)
            return net.value & mask == a.value & mask
        case (.v6(let net, let n), .v6(let a)):
            let highMask: UInt64 = n == 0 ? 0 : (n >= 64 ? ~0 : ~UInt64(0) << UInt64(64 - n))
            let lowMask: UInt64 = n <= 64 ? 0 : (n == 128 ? ~0 : ~UInt64(0) << UInt64(128 - n))
            return net.high & highMask == a.high & highMask && net.low & lowMask == a.low & lowMask
        default:
            return false
        }
    }

    public var address: IPAddress {
        switch self {
        case .v4(let a, _): .v4(a)
        case .v6(let a, _): .v6(a)
        }
    }

    public var description: String { "\(address)/\(length)" }
}

/// An IPv4 or IPv6 address.
public enum IPAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    public init?(_ text: String) {
        if let a = IPv4Address(text) { self = .v4(a) } else if let a = IPv6Address(text) { self = .v6(a) } else { return nil }
    }

    public var isIPv4: Bool { if case .v4 = self { true } else { false } }

    public var description: String {
        switch self {
        case .v4(let a): a.description
        case .v6(let a): a.description
        }
    }
}

/// How a service's packets reach its backends (issue "Load-balancing fast path").
public enum ForwardingMethod: String, Sendable, CaseIterable {
    /// Destination rewritten to the backend; replies come back through Sluice (its gateway).
    case dnat
    /// As `dnat`, and the source rewritten to a local pool address and port.
    case fullnat
    /// As `dnat`, then VXLAN-encapsulated (RFC 7348) to the backend's node VTEP.
    case vxlan
}

/// L4 protocol a service matches.
public enum ServiceProtocol: String, Sendable, CaseIterable {
    case tcp, udp, sctp

    public var number: UInt8 {
        switch self {
        case .tcp: IPProtocol.tcp
        case .udp: IPProtocol.udp
        case .sctp: IPProtocol.sctp
        }
    }
}

/// One backend of a service.
public struct BackendConfig: Sendable, Equatable {
    public var address: IPAddress
    /// Destination port after NAT; 0 keeps the client's destination port (all-ports services).
    public var port: UInt16
    /// Relative share of new flows; 0 drains (no new flows, existing ones continue).
    public var weight: UInt32
    /// For `vxlan`: the node's VTEP address, the VNI and the MAC the inner frame is sent to.
    public var vtep: IPAddress?
    public var vni: UInt32?
    public var innerMAC: MACAddress?

    public init(address: IPAddress, port: UInt16, weight: UInt32 = 1, vtep: IPAddress? = nil,
                vni: UInt32? = nil, innerMAC: MACAddress? = nil) {
        self.address = address
        self.port = port
        self.weight = weight
        self.vtep = vtep
        self.vni = vni
        self.innerMAC = innerMAC
    }
}

/// A load-balanced service: (VIP, protocol, port or all ports) → backends.
public struct ServiceConfig: Sendable, Equatable {
    public var name: String
    public var vip: IPAddress
    public var proto: ServiceProtocol
    /// 0 means every port of the VIP for this protocol.
    public var port: UInt16
    public var method: ForwardingMethod
    public var backends: [BackendConfig]
    /// Maglev table size (a prime).
    public var maglevSize: Int
    /// Clamp the MSS option of SYNs to this value (for `vxlan`, to fit the encapsulation).
    public var mssClamp: UInt16?
    /// For `fullnat`: local source addresses; ports are allocated from `sourcePorts`.
    public var sourcePool: [IPAddress]

    public init(name: String, vip: IPAddress, proto: ServiceProtocol, port: UInt16, method: ForwardingMethod,
                backends: [BackendConfig], maglevSize: Int = 65537, mssClamp: UInt16? = nil,
                sourcePool: [IPAddress] = []) {
        self.name = name
        self.vip = vip
        self.proto = proto
        self.port = port
        self.method = method
        self.backends = backends
        self.maglevSize = maglevSize
        self.mssClamp = mssClamp
        self.sourcePool = sourcePool
    }
}

/// A static route for next hops outside the ports' connected prefixes.
public struct RouteConfig: Sendable, Equatable {
    public var prefix: IPPrefix
    public var via: IPAddress
    public var port: String

    public init(prefix: IPPrefix, via: IPAddress, port: String) {
        self.prefix = prefix
        self.via = via
        self.port = port
    }
}

/// The connection table and flow hash.
public struct FlowConfig: Sendable, Equatable {
    /// Flows the connection table holds (rounded up to its bucket size).
    public var capacity: Int
    /// 16-byte SipHash key for the flow hash, as 32 hex digits. Every LB host behind one ECMP
    /// group must use the same seed, so that a flow picks the same backend wherever it lands.
    public var hashSeed: [UInt8]

    public static let defaultSeed: [UInt8] = Array("sluice-flow-seed".utf8)

    public init(capacity: Int = 1 << 20, hashSeed: [UInt8] = FlowConfig.defaultSeed) {
        self.capacity = capacity
        self.hashSeed = hashSeed
    }
}
