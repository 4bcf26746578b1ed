#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import Yams

extension SluicedConfig {
    /// Upper bounds that catch typos (`mbufs: 81910000`) before they become a failed EAL start.
    public static let maxLcore = 1023
    public static let maxDescriptors = 32768
    public static let maxMbufs = 16_777_215
    public static let maxConfigBytes = 1 << 20

    /// Reads and validates the YAML file at `path`. Unknown keys are errors (a misspelt key would
    /// otherwise silently take its default).
    public static func load(path: String) throws(ConfigError) -> SluicedConfig {
        guard let text = readFile(path) else {
            throw ConfigError(file: path, field: "", reason: "cannot read file (\(String(cString: strerror(errno))))")
        }
        guard text.utf8.count <= maxConfigBytes else {
            throw ConfigError(file: path, field: "", reason: "file larger than \(maxConfigBytes) bytes")
        }
        return try parse(yaml: text, file: path)
    }

    /// Validates YAML text; `file` names it in errors.
    public static func parse(yaml text: String, file: String) throws(ConfigError) -> SluicedConfig {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ConfigError(file: file, field: "", reason: "empty configuration")
            }
            root = node
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError(file: file, field: "", reason: "not valid YAML: \(error)")
        }
        let reader = NodeReader(file: file)
        return try reader.config(root)
    }

    private static func readFile(_ path: String) -> String? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count { break }
            if bytes.count > maxConfigBytes { break }
        }
        if ferror(f) != 0 { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Walks the YAML node tree with the path of the field in hand, so every error names it.
struct NodeReader {
    let file: String
    /// JSON's types (control socket): integers must be unquoted scalars and strings quoted
    /// ones, so `"port": "80"` and `"name": 7` are type errors. YAML files keep YAML's
    /// untyped scalars (`port: "80"` is 80).
    var strictTypes = false

    init(file: String, strictTypes: Bool = false) {
        self.file = file
        self.strictTypes = strictTypes
    }

    func fail(_ field: String, _ reason: String) -> ConfigError {
        ConfigError(file: file, field: field, reason: reason)
    }

    func mapping(_ node: Node, _ path: String, allowed: Set<String>) throws(ConfigError) -> [String: Node] {
        guard case .mapping(let m) = node else { throw fail(path, "expected a mapping") }
        var out: [String: Node] = [:]
        for (k, v) in m {
            guard let key = k.scalar?.string else { throw fail(path, "keys must be strings") }
            let field = path.isEmpty ? key : "\(path).\(key)"
            guard allowed.contains(key) else {
                throw fail(field, "unknown field (expected one of: \(allowed.sorted().joined(separator: ", ")))")
            }
            guard out[key] == nil else { throw fail(field, "duplicate field") }
            out[key] = v
        }
        return out
    }

    func sequence(_ node: Node, _ path: String) throws(ConfigError) -> [Node] {
        guard case .sequence(let s) = node else { throw fail(path, "expected a list") }
        return Array(s)
    }

    func string(_ node: Node, _ path: String) throws(ConfigError) -> String {
        guard case .scalar(let s) = node, !strictTypes || s.style != .plain else { throw fail(path, "expected a string") }
        return s.string
    }

    func int(_ node: Node, _ path: String, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard case .scalar(let s) = node, !strictTypes || s.style == .plain, let v = Int(s.string) else {
            throw fail(path, "expected an integer")
        }
        guard range.contains(v) else { throw fail(path, "\(v) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    func mac(_ node: Node, _ path: String) throws(ConfigError) -> MACAddress {
        let text = try string(node, path)
        guard let mac = MACAddress(text) else { throw fail(path, "'\(text)' is not a MAC address (aa:bb:cc:dd:ee:ff)") }
        guard !mac.isMulticast else { throw fail(path, "\(mac) is a multicast MAC; a port or VIP needs a unicast one") }
        guard mac != .zero else { throw fail(path, "the zero MAC cannot be used") }
        return mac
    }

    func config(_ root: Node) throws(ConfigError) -> SluicedConfig {
        let top = try mapping(root, "", allowed: ["eal", "ports", "workers", "mempool", "vips", "services", "routes", "flows",
                                                  "neighbors", "control", "metrics"])
        var eal: [String] = []
        if let node = top["eal"] {
            for (i, item) in try sequence(node, "eal").enumerated() {
                eal.append(try string(item, "eal[\(i)]"))
            }
        }
        guard let portsNode = top["ports"] else { throw fail("ports", "required field missing") }
        let portNodes = try sequence(portsNode, "ports")
        guard !portNodes.isEmpty else { throw fail("ports", "at least one port is required") }
        var ports: [PortConfig] = []
        for (i, node) in portNodes.enumerated() {
            let port = try portConfig(node, "ports[\(i)]")
            if ports.contains(where: { $0.name == port.name }) {
                throw fail("ports[\(i)].name", "duplicate port name '\(port.name)'")
            }
            if ports.contains(where: { $0.device == port.device }) {
                throw fail("ports[\(i)].device", "device '\(port.device)' is already used by another port")
            }
            ports.append(port)
        }
        let workers = try top["workers"].map { (n: Node) throws(ConfigError) in try workerConfig(n, "workers") } ?? WorkerConfig()
        if workers.mode == .io && ports.count != 2 {
            throw fail("workers.mode", "io forwarding needs exactly two ports (has \(ports.count))")
        }
        let mempool = try top["mempool"].map { (n: Node) throws(ConfigError) in try mempoolConfig(n, "mempool") } ?? MempoolConfig()
        var vips: [VIPConfig] = []
        if let node = top["vips"] {
            for (i, item) in try sequence(node, "vips").enumerated() {
                vips.append(try vipConfig(item, "vips[\(i)]"))
            }
        }
        try checkVIPs(vips, ports: ports, prefix: "")
        var routes: [RouteConfig] = []
        if let node = top["routes"] {
            for (i, item) in try sequence(node, "routes").enumerated() {
                routes.append(try routeConfig(item, "routes[\(i)]", ports: ports))
            }
        }
        let flows = try top["flows"].map { (n: Node) throws(ConfigError) in try flowConfig(n, "flows") } ?? FlowConfig()
        var services: [ServiceConfig] = []
        if let node = top["services"] {
            for (i, item) in try sequence(node, "services").enumerated() {
                services.append(try serviceConfig(item, "services[\(i)]"))
            }
        }
        try checkServices(services, vips: vips, prefix: "")
        var config = SluicedConfig(eal: eal, ports: ports, workers: workers, mempool: mempool, vips: vips,
                                   services: services, routes: routes, flows: flows)
        if let node = top["control"] { config.control = try controlConfig(node, "control") }
        if let node = top["neighbors"] {
            for (i, item) in try sequence(node, "neighbors").enumerated() {
                let path = "neighbors[\(i)]"
                let m = try mapping(item, path, allowed: ["address", "mac"])
                guard let a = m["address"] else { throw fail("\(path).address", "required field missing") }
                guard let n = m["mac"] else { throw fail("\(path).mac", "required field missing") }
                let address = try ipAddress(a, "\(path).address")
                guard !config.neighbors.contains(where: { $0.address == address }) else {
                    throw fail("\(path).address", "\(address) is listed twice")
                }
                config.neighbors.append((address, try mac(n, "\(path).mac")))
            }
        }
        if let node = top["metrics"] { config.metrics = try metricsConfig(node, "metrics") }
        return config
    }

    /// `prefix.rest`, or `rest` alone at the top level.
    static func join(_ prefix: String, _ rest: String) -> String { prefix.isEmpty ? rest : "\(prefix).\(rest)" }

    /// Cross-checks of a VIP list (the per-entry checks are in `vipConfig`): the port exists,
    /// no address twice on one port. `prefix` is where the list sits (`""` in a file, `params`
    /// on the control socket).
    func checkVIPs(_ vips: [VIPConfig], ports: [PortConfig], prefix: String) throws(ConfigError) {
        for (i, vip) in vips.enumerated() {
            let path = Self.join(prefix, "vips[\(i)]")
            guard ports.contains(where: { $0.name == vip.port }) else {
                throw fail("\(path).port", "no port named '\(vip.port)' (ports: \(ports.map(\.name).joined(separator: ", ")))")
            }
            if vips[..<i].contains(where: { $0.address == vip.address && $0.port == vip.port }) {
                throw fail("\(path).address", "\(vip.address) is listed twice on port \(vip.port)")
            }
        }
    }

    /// Cross-checks of a service list: unique names, unique (VIP, protocol, port), VIP owned.
    func checkServices(_ services: [ServiceConfig], vips: [VIPConfig], prefix: String) throws(ConfigError) {
        for (i, service) in services.enumerated() {
            let path = Self.join(prefix, "services[\(i)]")
            let before = services[..<i]
            if before.contains(where: { $0.name == service.name }) {
                throw fail("\(path).name", "duplicate service name '\(service.name)'")
            }
            if let other = before.first(where: { $0.vip == service.vip && $0.proto == service.proto && $0.port == service.port }) {
                throw fail("\(path).port", "\(service.vip) \(service.proto.rawValue) port \(service.port) is already service '\(other.name)'")
            }
            guard vips.contains(where: { $0.address == service.vip }) else {
                throw fail("\(path).vip", "\(service.vip) is not owned on any port (list it under vips)")
            }
        }
    }

    func controlConfig(_ node: Node, _ path: String) throws(ConfigError) -> ControlConfig {
        let m = try mapping(node, path, allowed: ["socket", "owner", "group", "mode", "max_clients", "idle_timeout_s", "enabled"])
        var control = ControlConfig()
        control.isExplicit = true
        if let n = m["enabled"] {
            let text = try string(n, "\(path).enabled")
            guard let on = ["true": true, "false": false][text] else { throw fail("\(path).enabled", "expected true or false") }
            control.enabled = on
        }
        if let n = m["socket"] {
            let socket = try string(n, "\(path).socket")
            guard socket.hasPrefix("/") else { throw fail("\(path).socket", "'\(socket)' must be an absolute path") }
            // sockaddr_un.sun_path holds 108 bytes, the terminating NUL included.
            guard socket.utf8.count <= ControlConfig.maxSocketPathBytes else {
                throw fail("\(path).socket", "longer than \(ControlConfig.maxSocketPathBytes) bytes (the limit of a Unix socket address)")
            }
            control.socket = socket
        }
        if let n = m["owner"] {
            let owner = try string(n, "\(path).owner")
            guard !owner.isEmpty else { throw fail("\(path).owner", "must be a user name or a numeric uid") }
            control.owner = owner
        }
        if let n = m["group"] {
            let group = try string(n, "\(path).group")
            guard !group.isEmpty else { throw fail("\(path).group", "must be a group name or a numeric gid") }
            control.group = group
        }
        if let n = m["mode"] {
            let text = try string(n, "\(path).mode")
            guard (3...4).contains(text.count), let mode = Int(text, radix: 8), mode <= 0o777 else {
                throw fail("\(path).mode", "'\(text)' is not an octal file mode such as 0660")
            }
            control.mode = mode
        }
        if let n = m["max_clients"] { control.maxClients = try int(n, "\(path).max_clients", range: 1...1024) }
        if let n = m["idle_timeout_s"] { control.idleTimeoutSeconds = try int(n, "\(path).idle_timeout_s", range: 1...3600) }
        return control
    }

    func metricsConfig(_ node: Node, _ path: String) throws(ConfigError) -> MetricsConfig {
        let m = try mapping(node, path, allowed: ["enabled", "listen"])
        var metrics = MetricsConfig()
        if let n = m["enabled"] {
            let text = try string(n, "\(path).enabled")
            switch text {
            case "true": metrics.enabled = true
            case "false": metrics.enabled = false
            default: throw fail("\(path).enabled", "expected true or false, not '\(text)'")
            }
        }
        if let n = m["listen"] {
            let text = try string(n, "\(path).listen")
            guard let address = ListenAddress(text) else {
                throw fail("\(path).listen", "'\(text)' is not ADDRESS:PORT (127.0.0.1:9469, [::1]:9469)")
            }
            metrics.listen = address
        }
        return metrics
    }

    func ipAddress(_ node: Node, _ path: String) throws(ConfigError) -> IPAddress {
        let text = try string(node, path)
        guard let address = IPAddress(text) else { throw fail(path, "'\(text)' is not an IPv4 or IPv6 address") }
        return address
    }

    func prefix(_ node: Node, _ path: String) throws(ConfigError) -> IPPrefix {
        let text = try string(node, path)
        guard let prefix = IPPrefix(text) else { throw fail(path, "'\(text)' is not an address with a prefix length (192.0.2.2/24)") }
        return prefix
    }

    func routeConfig(_ node: Node, _ path: String, ports: [PortConfig]) throws(ConfigError) -> RouteConfig {
        let m = try mapping(node, path, allowed: ["prefix", "via", "port"])
        guard let p = m["prefix"] else { throw fail("\(path).prefix", "required field missing") }
        guard let v = m["via"] else { throw fail("\(path).via", "required field missing") }
        guard let n = m["port"] else { throw fail("\(path).port", "required field missing") }
        let route = RouteConfig(prefix: try prefix(p, "\(path).prefix"), via: try ipAddress(v, "\(path).via"),
                                port: try string(n, "\(path).port"))
        guard route.prefix.address.isIPv4 == route.via.isIPv4 else {
            throw fail("\(path).via", "\(route.via) is not of the prefix's address family")
        }
        guard let port = ports.first(where: { $0.name == route.port }) else {
            throw fail("\(path).port", "no port named '\(route.port)'")
        }
        guard port.addresses.contains(where: { $0.contains(route.via) }) else {
            throw fail("\(path).via", "\(route.via) is not inside any address prefix of port \(route.port)")
        }
        return route
    }

    func flowConfig(_ node: Node, _ path: String) throws(ConfigError) -> FlowConfig {
        let m = try mapping(node, path, allowed: ["capacity", "hash_seed"])
        var flows = FlowConfig()
        if let n = m["capacity"] { flows.capacity = try int(n, "\(path).capacity", range: 1024...(1 << 27)) }
        if let n = m["hash_seed"] {
            let text = try string(n, "\(path).hash_seed")
            let digits = Array(text.utf8)
            guard digits.count == 32, digits.allSatisfy({ Character(Unicode.Scalar($0)).isHexDigit }) else {
                throw fail("\(path).hash_seed", "must be 32 hex digits (16 bytes)")
            }
            let bytes = stride(from: 0, to: 32, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
            flows.hashSeed = bytes
        }
        return flows
    }

    func serviceConfig(_ node: Node, _ path: String) throws(ConfigError) -> ServiceConfig {
        let m = try mapping(node, path, allowed: ["name", "vip", "protocol", "port", "mode", "backends",
                                                  "maglev_size", "mss_clamp", "source_pool"])
        guard let nameNode = m["name"] else { throw fail("\(path).name", "required field missing") }
        let name = try string(nameNode, "\(path).name")
        guard !name.isEmpty, name.utf8.count <= 64,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_./".contains($0)) }) else {
            throw fail("\(path).name", "'\(name)' must be 1-64 characters of letters, digits, '-', '_', '.' or '/'")
        }
        guard let vipNode = m["vip"] else { throw fail("\(path).vip", "required field missing") }
        let vip = try ipAddress(vipNode, "\(path).vip")
        guard let protoNode = m["protocol"] else { throw fail("\(path).protocol", "required field missing") }
        let protoText = try string(protoNode, "\(path).protocol")
        guard let proto = ServiceProtocol(rawValue: protoText) else {
            throw fail("\(path).protocol", "'\(protoText)' is not one of: tcp, udp, sctp")
        }
        let port = try m["port"].map { (n: Node) throws(ConfigError) in UInt16(try int(n, "\(path).port", range: 0...65535)) } ?? 0
        var method = ForwardingMethod.dnat
        if let n = m["mode"] {
            let text = try string(n, "\(path).mode")
            guard let parsed = ForwardingMethod(rawValue: text) else {
                throw fail("\(path).mode", "'\(text)' is not one of: \(ForwardingMethod.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            method = parsed
        }
        var service = ServiceConfig(name: name, vip: vip, proto: proto, port: port, method: method, backends: [])
        if let n = m["maglev_size"] {
            let size = try int(n, "\(path).maglev_size", range: 3...16_777_213)
            guard isPrime(size) else { throw fail("\(path).maglev_size", "\(size) is not a prime (Maglev needs a prime table size)") }
            service.maglevSize = size
        }
        if let n = m["mss_clamp"] { service.mssClamp = UInt16(try int(n, "\(path).mss_clamp", range: 536...9000)) }
        if let n = m["source_pool"] {
            for (i, item) in try sequence(n, "\(path).source_pool").enumerated() {
                let a = try ipAddress(item, "\(path).source_pool[\(i)]")
                guard a.isIPv4 == vip.isIPv4 else { throw fail("\(path).source_pool[\(i)]", "\(a) is not of the VIP's address family") }
                service.sourcePool.append(a)
            }
        }
        if method == .fullnat && service.sourcePool.isEmpty {
            throw fail("\(path).source_pool", "fullnat needs at least one source address")
        }
        guard let backendsNode = m["backends"] else { throw fail("\(path).backends", "required field missing") }
        for (i, item) in try sequence(backendsNode, "\(path).backends").enumerated() {
            let b = try backendConfig(item, "\(path).backends[\(i)]", service: service)
            if service.backends.contains(where: { $0.address == b.address && $0.port == b.port }) {
                throw fail("\(path).backends[\(i)]", "backend \(b.address) port \(b.port) is listed twice")
            }
            service.backends.append(b)
        }
        guard service.backends.count <= 65534 else { throw fail("\(path).backends", "more than 65534 backends") }
        return service
    }

    func backendConfig(_ node: Node, _ path: String, service: ServiceConfig) throws(ConfigError) -> BackendConfig {
        let m = try mapping(node, path, allowed: ["address", "port", "weight", "vtep", "vni", "inner_mac"])
        guard let a = m["address"] else { throw fail("\(path).address", "required field missing") }
        let address = try ipAddress(a, "\(path).address")
        if service.method != .vxlan {
            guard address.isIPv4 == service.vip.isIPv4 else {
                throw fail("\(path).address", "\(address) is not of the VIP's address family (\(service.vip))")
            }
        }
        let port = try m["port"].map { (n: Node) throws(ConfigError) in UInt16(try int(n, "\(path).port", range: 0...65535)) } ?? service.port
        guard port != 0 || service.port == 0 else { throw fail("\(path).port", "0 is only allowed for all-ports services") }
        var b = BackendConfig(address: address, port: port)
        if let n = m["weight"] { b.weight = UInt32(try int(n, "\(path).weight", range: 0...65535)) }
        if service.method == .vxlan {
            guard let v = m["vtep"] else { throw fail("\(path).vtep", "required for vxlan services") }
            b.vtep = try ipAddress(v, "\(path).vtep")
            guard let n = m["vni"] else { throw fail("\(path).vni", "required for vxlan services") }
            b.vni = UInt32(try int(n, "\(path).vni", range: 0...0xFF_FFFF))
            guard let mn = m["inner_mac"] else { throw fail("\(path).inner_mac", "required for vxlan services") }
            b.innerMAC = try mac(mn, "\(path).inner_mac")
            guard address.isIPv4 == service.vip.isIPv4 else {
                throw fail("\(path).address", "\(address) is not of the VIP's address family (\(service.vip))")
            }
        } else {
            for key in ["vtep", "vni", "inner_mac"] where m[key] != nil {
                throw fail("\(path).\(key)", "only vxlan services take \(key)")
            }
        }
        return b
    }

    func isPrime(_ n: Int) -> Bool {
        guard n >= 2 else { return false }
        if n < 4 { return true }
        if n % 2 == 0 { return false }
        var d = 3
        while d * d <= n {
            if n % d == 0 { return false }
            d += 2
        }
        return true
    }

    func portConfig(_ node: Node, _ path: String) throws(ConfigError) -> PortConfig {
        let m = try mapping(node, path, allowed: ["name", "device", "mac", "rx_descriptors", "tx_descriptors", "mtu", "addresses"])
        guard let nameNode = m["name"] else { throw fail("\(path).name", "required field missing") }
        let name = try string(nameNode, "\(path).name")
        guard !name.isEmpty, name.utf8.count <= 32,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw fail("\(path).name", "'\(name)' must be 1-32 characters of letters, digits, '-' or '_'")
        }
        guard let deviceNode = m["device"] else { throw fail("\(path).device", "required field missing") }
        let device = try string(deviceNode, "\(path).device")
        guard device.hasPrefix("net_") || isPCIAddress(device) else {
            throw fail("\(path).device", "'\(device)' is neither a virtual device (net_...) nor a PCI address (0000:01:00.0)")
        }
        guard !device.contains(where: { $0 == " " || $0 == "\n" }) else {
            throw fail("\(path).device", "must not contain whitespace")
        }
        var port = PortConfig(name: name, device: device)
        if let n = m["mac"] { port.mac = try mac(n, "\(path).mac") }
        if let n = m["rx_descriptors"] { port.rxDescriptors = try powerOfTwo(n, "\(path).rx_descriptors") }
        if let n = m["tx_descriptors"] { port.txDescriptors = try powerOfTwo(n, "\(path).tx_descriptors") }
        if let n = m["mtu"] { port.mtu = try int(n, "\(path).mtu", range: 68...9702) }
        if let n = m["addresses"] {
            for (i, item) in try sequence(n, "\(path).addresses").enumerated() {
                port.addresses.append(try prefix(item, "\(path).addresses[\(i)]"))
            }
        }
        return port
    }

    func powerOfTwo(_ node: Node, _ path: String) throws(ConfigError) -> Int {
        let v = try int(node, path, range: 64...SluicedConfig.maxDescriptors)
        guard v & (v - 1) == 0 else { throw fail(path, "\(v) is not a power of two") }
        return v
    }

    func isPCIAddress(_ s: String) -> Bool {
        // DDDD:BB:DD.F (domain optional), hex digits.
        let parts = s.split(separator: ":")
        guard parts.count == 2 || parts.count == 3 else { return false }
        let hex = { (t: Substring) in !t.isEmpty && t.allSatisfy { $0.isHexDigit } }
        guard let last = parts.last else { return false }
        let df = last.split(separator: ".")
        return parts.dropLast().allSatisfy(hex) && df.count == 2 && df.allSatisfy(hex)
    }

    func workerConfig(_ node: Node, _ path: String) throws(ConfigError) -> WorkerConfig {
        let m = try mapping(node, path, allowed: ["lcores", "main_lcore", "mode", "idle", "tx_drain_us",
                                                  "icmp_errors_per_second"])
        var w = WorkerConfig()
        if let n = m["lcores"] {
            let items = try sequence(n, "\(path).lcores")
            guard !items.isEmpty else { throw fail("\(path).lcores", "at least one worker lcore is required") }
            var lcores: [Int] = []
            for (i, item) in items.enumerated() {
                let lcore = try int(item, "\(path).lcores[\(i)]", range: 0...SluicedConfig.maxLcore)
                guard !lcores.contains(lcore) else { throw fail("\(path).lcores[\(i)]", "lcore \(lcore) is listed twice") }
                lcores.append(lcore)
            }
            w.lcores = lcores
        }
        if let n = m["main_lcore"] {
            let main = try int(n, "\(path).main_lcore", range: 0...SluicedConfig.maxLcore)
            guard !w.lcores.contains(main) else {
                throw fail("\(path).main_lcore", "lcore \(main) is also a worker lcore; the main lcore must be another one")
            }
            w.mainLcore = main
        }
        if let n = m["mode"] {
            let text = try string(n, "\(path).mode")
            guard let mode = WorkerConfig.Mode(rawValue: text) else {
                throw fail("\(path).mode", "'\(text)' is not one of: \(WorkerConfig.Mode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            w.mode = mode
        }
        if let n = m["idle"] { w.idle = try idleConfig(n, "\(path).idle") }
        if let n = m["tx_drain_us"] { w.txDrainMicroseconds = try int(n, "\(path).tx_drain_us", range: 1...100_000) }
        if let n = m["icmp_errors_per_second"] {
            w.icmpErrorsPerSecond = try int(n, "\(path).icmp_errors_per_second", range: 0...10_000_000)
        }
        return w
    }

    func idleConfig(_ node: Node, _ path: String) throws(ConfigError) -> IdleConfig {
        let m = try mapping(node, path, allowed: ["mode", "empty_polls", "sleep_us"])
        var idle = IdleConfig()
        if let n = m["mode"] {
            let text = try string(n, "\(path).mode")
            guard let mode = IdleConfig.Mode(rawValue: text) else {
                throw fail("\(path).mode", "'\(text)' is not one of: \(IdleConfig.Mode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            idle.mode = mode
        }
        if let n = m["empty_polls"] { idle.emptyPollsBeforeBackoff = try int(n, "\(path).empty_polls", range: 1...10_000_000) }
        if let n = m["sleep_us"] { idle.sleepMicroseconds = try int(n, "\(path).sleep_us", range: 1...1_000_000) }
        return idle
    }

    func mempoolConfig(_ node: Node, _ path: String) throws(ConfigError) -> MempoolConfig {
        let m = try mapping(node, path, allowed: ["mbufs", "cache_size", "data_room"])
        var pool = MempoolConfig()
        if let n = m["mbufs"] { pool.mbufs = try int(n, "\(path).mbufs", range: 1024...SluicedConfig.maxMbufs) }
        if let n = m["cache_size"] { pool.cacheSize = try int(n, "\(path).cache_size", range: 0...512) }
        if let n = m["data_room"] { pool.dataRoom = try int(n, "\(path).data_room", range: 256...65535) }
        guard pool.cacheSize <= pool.mbufs / 4 else {
            throw fail("\(path).cache_size", "\(pool.cacheSize) is more than a quarter of mbufs (\(pool.mbufs))")
        }
        return pool
    }

    func vipConfig(_ node: Node, _ path: String) throws(ConfigError) -> VIPConfig {
        let m = try mapping(node, path, allowed: ["address", "port", "mac"])
        guard let addressNode = m["address"] else { throw fail("\(path).address", "required field missing") }
        let text = try string(addressNode, "\(path).address")
        let address: VIPConfig.Address
        if let v4 = IPv4Address(text) {
            guard !v4.isMulticast, !v4.isUnspecified, !v4.isLimitedBroadcast, v4.value >> 24 != 127 else {
                throw fail("\(path).address", "\(text) cannot be a VIP (multicast, broadcast, unspecified or loopback)")
            }
            address = .v4(v4)
        } else if let v6 = IPv6Address(text) {
            guard !v6.isMulticast, !v6.isUnspecified, v6 != IPv6Address(high: 0, low: 1) else {
                throw fail("\(path).address", "\(text) cannot be a VIP (multicast, unspecified or loopback)")
            }
            address = .v6(v6)
        } else {
            throw fail("\(path).address", "'\(text)' is not an IPv4 or IPv6 address")
        }
        guard let portNode = m["port"] else { throw fail("\(path).port", "required field missing") }
        var vip = VIPConfig(address: address, port: try string(portNode, "\(path).port"))
        if let n = m["mac"] { vip.mac = try mac(n, "\(path).mac") }
        return vip
    }
}
