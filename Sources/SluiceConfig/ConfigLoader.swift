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
        guard case .scalar(let s) = node else { throw fail(path, "expected a string") }
        return s.string
    }

    func int(_ node: Node, _ path: String, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard case .scalar(let s) = node, let v = Int(s.string) else {
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
        let top = try mapping(root, "", allowed: ["eal", "ports", "workers", "mempool", "vips"])
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
                let path = "vips[\(i)]"
                let vip = try vipConfig(item, path)
                guard ports.contains(where: { $0.name == vip.port }) else {
                    throw fail("\(path).port", "no port named '\(vip.port)' (ports: \(ports.map(\.name).joined(separator: ", ")))")
                }
                if vips.contains(where: { $0.address == vip.address && $0.port == vip.port }) {
                    throw fail("\(path).address", "\(vip.address) is listed twice on port \(vip.port)")
                }
                vips.append(vip)
            }
        }
        return SluicedConfig(eal: eal, ports: ports, workers: workers, mempool: mempool, vips: vips)
    }

    func portConfig(_ node: Node, _ path: String) throws(ConfigError) -> PortConfig {
        let m = try mapping(node, path, allowed: ["name", "device", "mac", "rx_descriptors", "tx_descriptors", "mtu"])
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
        let m = try mapping(node, path, allowed: ["lcores", "main_lcore", "mode", "idle", "tx_drain_us"])
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
