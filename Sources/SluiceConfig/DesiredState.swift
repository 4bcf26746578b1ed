import SluiceCore
import Yams

/// The part of a configuration that may change while `sluiced` runs: which VIPs it owns and
/// which services it balances. `generation` numbers a controller's desired state (state.apply).
///
/// The same schema and the same validation serve the YAML file, `sluicectl apply -f` and the
/// control socket's JSON (JSON is YAML; `strictTypes` then keeps JSON's types): one set of
/// field paths and messages everywhere.
public struct DesiredState: Sendable, Equatable {
    public var generation: UInt64?
    public var vips: [VIPConfig]
    public var services: [ServiceConfig]

    public init(generation: UInt64? = nil, vips: [VIPConfig], services: [ServiceConfig]) {
        self.generation = generation
        self.vips = vips
        self.services = services
    }

    /// Same VIPs and services, whatever the generation.
    public func sameContent(as other: DesiredState) -> Bool {
        vips == other.vips && services == other.services
    }
}

/// Parsers for the objects the control plane changes one at a time. `path` is the field path of
/// `node` in the request (e.g. `params`), used in every error; `strictTypes` is true for JSON.
public struct StateSchema: Sendable {
    public let file: String
    public let strictTypes: Bool

    public init(file: String, strictTypes: Bool) {
        self.file = file
        self.strictTypes = strictTypes
    }

    var reader: NodeReader { NodeReader(file: file, strictTypes: strictTypes) }

    public func service(_ node: Node, path: String) throws(ConfigError) -> ServiceConfig {
        try reader.serviceConfig(node, path)
    }

    public func backend(_ node: Node, path: String, of service: ServiceConfig) throws(ConfigError) -> BackendConfig {
        try reader.backendConfig(node, path, service: service)
    }

    public func vip(_ node: Node, path: String) throws(ConfigError) -> VIPConfig {
        try reader.vipConfig(node, path)
    }

    public func address(_ node: Node, path: String) throws(ConfigError) -> IPAddress {
        try reader.ipAddress(node, path)
    }

    public func string(_ node: Node, path: String) throws(ConfigError) -> String {
        try reader.string(node, path)
    }

    public func int(_ node: Node, path: String, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        try reader.int(node, path, range: range)
    }

    /// The keys of a mapping, each checked against `allowed`.
    public func mapping(_ node: Node, path: String, allowed: Set<String>) throws(ConfigError) -> [String: Node] {
        try reader.mapping(node, path, allowed: allowed)
    }

    /// `{generation?, vips, services}`: each entry validated as in the configuration file; the
    /// cross-checks (VIP ports exist, services' VIPs owned, no duplicates) too. `ports` nil: a
    /// client that does not know the ports leaves the port names to the server.
    public func state(_ node: Node, path: String, ports: [PortConfig]?) throws(ConfigError) -> DesiredState {
        let r = reader
        let m = try r.mapping(node, path, allowed: ["generation", "vips", "services"])
        var generation: UInt64?
        if let n = m["generation"] {
            generation = try generationNumber(n, path: NodeReader.join(path, "generation"))
        }
        var vips: [VIPConfig] = []
        if let n = m["vips"] {
            for (i, item) in try r.sequence(n, NodeReader.join(path, "vips")).enumerated() {
                vips.append(try r.vipConfig(item, NodeReader.join(path, "vips[\(i)]")))
            }
        }
        var services: [ServiceConfig] = []
        if let n = m["services"] {
            for (i, item) in try r.sequence(n, NodeReader.join(path, "services")).enumerated() {
                services.append(try r.serviceConfig(item, NodeReader.join(path, "services[\(i)]")))
            }
        }
        let known = ports ?? vips.map { PortConfig(name: $0.port, device: "net_unknown") }
        try r.checkVIPs(vips, ports: known, prefix: path)
        try r.checkServices(services, vips: vips, prefix: path)
        return DesiredState(generation: generation, vips: vips, services: services)
    }

    /// A generation number: 0 ... 2⁶³ − 1 (fits every JSON implementation's 64-bit integers).
    public func generationNumber(_ node: Node, path: String) throws(ConfigError) -> UInt64 {
        UInt64(try reader.int(node, path, range: 0...Int.max))
    }

    /// The cross-checks of a whole state, as the configuration file gets them.
    public func check(vips: [VIPConfig], services: [ServiceConfig], ports: [PortConfig], prefix: String = "") throws(ConfigError) {
        try reader.checkVIPs(vips, ports: ports, prefix: prefix)
        try reader.checkServices(services, vips: vips, prefix: prefix)
    }
}

extension SluicedConfig {
    /// The changeable part of this configuration.
    public func desiredState(generation: UInt64?) -> DesiredState {
        DesiredState(generation: generation, vips: vips, services: services)
    }

    /// This configuration with `state`'s VIPs and services.
    public func replacing(_ state: DesiredState) -> SluicedConfig {
        var next = self
        next.vips = state.vips
        next.services = state.services
        return next
    }
}
