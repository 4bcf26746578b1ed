import ArgumentParser
import SluiceConfig
import SluiceControl
import Yams

#if canImport(Glibc)
import Glibc
#endif

/// `sluicectl`: the operator's CLI for `sluiced`'s control socket (docs/control-api.md).
///
/// Tables for people; `--json` prints the server's result as one JSON line for scripts. Exit
/// status: 0 on success, 1 when the server answered with an error (printed as `error CODE:
/// MESSAGE`), 2 when the socket cannot be reached or the input file is invalid.
@main
struct Sluicectl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluicectl",
        abstract: "Drive a running sluiced through its control socket.",
        subcommands: [Version.self, Apply.self, State.self, ServiceCommand.self, BackendCommand.self, VIPCommand.self,
                      Stats.self, Conntrack.self, Neighbors.self, Events.self])
}

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The control socket (default: $SLUICE_SOCKET or /run/sluice/sluiced.sock).",
                                            valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Print the server's result as JSON.")
    var json = false

    var socketPath: String {
        if let socket { return socket }
        if let env = getenv("SLUICE_SOCKET") { return String(cString: env) }
        return ControlConfig.defaultSocket
    }

    func connect() throws -> ControlClient {
        do {
            return try ControlClient(path: socketPath)
        } catch {
            throw Failure(message: error.description, status: 2)
        }
    }

    /// One call; the server's error becomes exit status 1.
    func call(_ method: String, _ params: JSONValue = .object([])) throws -> JSONValue {
        let client = try connect()
        do {
            return try client.call(method, params)
        } catch {
            if case .server = error { throw Failure(message: error.description, status: 1) }
            throw Failure(message: error.description, status: 2)
        }
    }

    /// Prints `result` as JSON with --json, else `human(result)`.
    func show(_ result: JSONValue, _ human: (JSONValue) -> String) {
        print(json ? result.serialized : human(result))
    }
}

/// An error message for stderr and an exit status.
struct Failure: Error, CustomStringConvertible {
    var message: String
    var status: Int32
    var description: String { message }
}

extension ParsableCommand {
    /// Runs `body`, turning `Failure` into `sluicectl: MESSAGE` on stderr and its exit status.
    func guarded(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let f as Failure {
            let line = Array("sluicectl: \(f.message)\n".utf8)
            _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            throw ExitCode(f.status)
        }
    }
}

// MARK: - Formatting

/// Left-aligned columns separated by two spaces.
func table(_ headers: [String], _ rows: [[String]]) -> String {
    var widths = headers.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in i == cells.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count) }
            .joined(separator: "  ")
    }
    return ([line(headers)] + rows.map(line)).joined(separator: "\n")
}

/// A scalar as text: strings bare, numbers as written, null as `-`.
func text(_ v: JSONValue?) -> String {
    switch v {
    case .string(let s)?: s
    case .number(let n)?: n
    case .bool(let b)?: b ? "yes" : "no"
    case nil, .null?: "-"
    case let other?: other.serialized
    }
}

func servicesTable(_ services: [JSONValue]) -> String {
    var rows: [[String]] = []
    for s in services {
        let backends = s["backends"]?.arrayValue ?? []
        let key = "\(text(s["vip"])):\(text(s["port"]))/\(text(s["protocol"]))"
        if backends.isEmpty { rows.append([text(s["name"]), key, text(s["mode"]), "-", "-"]) }
        for (i, b) in backends.enumerated() {
            rows.append([i == 0 ? text(s["name"]) : "", i == 0 ? key : "", i == 0 ? text(s["mode"]) : "",
                         "\(text(b["address"])):\(text(b["port"]))", text(b["weight"]) == "0" ? "0 (draining)" : text(b["weight"])])
        }
    }
    return table(["SERVICE", "VIP", "MODE", "BACKEND", "WEIGHT"], rows)
}

func vipsTable(_ vips: [JSONValue]) -> String {
    table(["VIP", "PORT", "MAC"], vips.map { [text($0["address"]), text($0["port"]), text($0["mac"])] })
}

/// `generation N` for the result of a change.
func changed(_ r: JSONValue) -> String {
    var s = "ok, generation \(text(r["generation"]))"
    if r["changed"] == .bool(false) { s += " (no change)" }
    return s
}

// MARK: - Commands

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The server's API version and methods.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try guarded {
            let r = try global.call("api.version")
            global.show(r) { "\(text($0["server"])) control API \(text($0["api"]))\nmethods: "
                + ($0["methods"]?.arrayValue ?? []).map(text).joined(separator: " ") }
        }
    }
}

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply a complete desired state (YAML: generation, vips, services; the config file's schema).",
        discussion: "Without a generation in the file, the current generation + 1 is used. All or nothing.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .short, help: ArgumentHelp("The YAML file.", valueName: "file")) var file: String
    @Option(help: "The generation (overrides the file's).") var generation: UInt64?

    func run() throws {
        try guarded {
            var desired = try Apply.load(file)
            if let generation { desired.generation = generation }
            if desired.generation == nil {
                let current = try global.call("state.get")
                desired.generation = (current["generation"]?.uint64Value ?? 0) + 1
            }
            let r = try global.call("state.apply", .state(desired))
            global.show(r, changed)
        }
    }

    static func load(_ path: String) throws -> DesiredState {
        guard let f = fopen(path, "rb") else { throw Failure(message: "\(path): cannot read file", status: 2) }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            bytes.append(contentsOf: chunk[0..<n])
            if n < chunk.count { break }
        }
        do {
            guard let node = try Yams.compose(yaml: String(decoding: bytes, as: UTF8.self)) else {
                throw Failure(message: "\(path): empty file", status: 2)
            }
            return try StateSchema(file: path, strictTypes: false).state(node, path: "", ports: nil)
        } catch let e as ConfigError {
            throw Failure(message: e.description, status: 2)
        } catch let f as Failure {
            throw f
        } catch {
            throw Failure(message: "\(path): not valid YAML: \(error)", status: 2)
        }
    }
}

struct State: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the current desired state (VIPs and services).")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try guarded {
            let r = try global.call("state.get")
            global.show(r) { r in
                "generation \(text(r["generation"]))\n\n" + vipsTable(r["vips"]?.arrayValue ?? []) + "\n\n"
                    + servicesTable(r["services"]?.arrayValue ?? [])
            }
        }
    }
}

/// `ADDRESS[:PORT][@WEIGHT]`, IPv6 as `[2001:db8::1]:80@2`.
func backendSpec(_ spec: String) throws -> JSONValue {
    var rest = Substring(spec)
    var weight: String?
    if let at = rest.lastIndex(of: "@") {
        weight = String(rest[rest.index(after: at)...])
        rest = rest[..<at]
    }
    var address = String(rest)
    var port: String?
    if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
        address = String(rest[rest.index(after: rest.startIndex)..<close])
        let after = rest[rest.index(after: close)...]
        if after.hasPrefix(":") { port = String(after.dropFirst()) }
    } else if rest.filter({ $0 == ":" }).count == 1, let colon = rest.firstIndex(of: ":") {
        address = String(rest[..<colon])
        port = String(rest[rest.index(after: colon)...])
    }
    var m: [(String, JSONValue)] = [("address", .string(address))]
    if let port {
        guard let p = Int(port) else { throw Failure(message: "--backend \(spec): '\(port)' is not a port number", status: 2) }
        m.append(("port", .int(p)))
    }
    if let weight {
        guard let w = Int(weight) else { throw Failure(message: "--backend \(spec): '\(weight)' is not a weight", status: 2) }
        m.append(("weight", .int(w)))
    }
    return .object(m)
}

struct ServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "List, add, update or remove services.",
        subcommands: [List.self, Add.self, Update.self, Remove.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List services and their backends.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Only this service.") var name: String?

        func run() throws {
            try guarded {
                let r = try global.call("service.list", name.map { .object([("name", .string($0))]) } ?? .object([]))
                global.show(r) { servicesTable($0["services"]?.arrayValue ?? []) }
            }
        }
    }

    struct Fields: ParsableArguments {
        @Option(help: "The VIP.") var vip: String?
        @Option(name: .customLong("protocol"), help: "tcp, udp or sctp.") var proto: String?
        @Option(help: "The service port (0: all ports).") var port: Int?
        @Option(help: "dnat, fullnat or vxlan.") var mode: String?
        @Option(name: .customLong("maglev-size"), help: "The Maglev table size (a prime).") var maglevSize: Int?
        @Option(name: .customLong("backend"), help: ArgumentHelp("A backend ADDRESS[:PORT][@WEIGHT] (repeat).", valueName: "spec"))
        var backends: [String] = []

        /// `base` with these fields set.
        func apply(to base: [(String, JSONValue)]) throws -> JSONValue {
            var m = base
            func set(_ key: String, _ v: JSONValue) {
                if let i = m.firstIndex(where: { $0.0 == key }) { m[i].1 = v } else { m.append((key, v)) }
            }
            if let vip { set("vip", .string(vip)) }
            if let proto { set("protocol", .string(proto)) }
            if let port { set("port", .int(port)) }
            if let mode { set("mode", .string(mode)) }
            if let maglevSize { set("maglev_size", .int(maglevSize)) }
            if !backends.isEmpty || m.first(where: { $0.0 == "backends" }) == nil {
                set("backends", .array(try backends.map(backendSpec)))
            }
            return .object(m)
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a service.",
            discussion: "Example: sluicectl service add web --vip 192.0.2.10 --protocol tcp --port 80 --backend 198.51.100.11:8080 --backend 198.51.100.12:8080@2")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The service name.") var name: String
        @OptionGroup var fields: Fields

        func run() throws {
            try guarded {
                let r = try global.call("service.add", try fields.apply(to: [("name", .string(name))]))
                global.show(r, changed)
            }
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a service: the given fields replace the current ones (--backend replaces all backends).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The service name.") var name: String
        @OptionGroup var fields: Fields

        func run() throws {
            try guarded {
                let current = try global.call("service.list", .object([("name", .string(name))]))
                guard let service = current["services"]?.arrayValue?.first?.objectValue else {
                    throw Failure(message: "no service named '\(name)'", status: 1)
                }
                let r = try global.call("service.update", try fields.apply(to: service))
                global.show(r, changed)
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a service.", aliases: ["delete"])
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The service name.") var name: String

        func run() throws {
            try guarded {
                global.show(try global.call("service.delete", .object([("name", .string(name))])), changed)
            }
        }
    }
}

struct BackendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backend", abstract: "Add, reweight, drain or remove one backend of a service.",
        subcommands: [Add.self, Update.self, Remove.self])

    struct Target: ParsableArguments {
        @Argument(help: "The service name.") var service: String
        @Argument(help: "The backend's address.") var address: String
        @Option(help: "The backend's port (needed when the address has several).") var port: Int?

        var members: [(String, JSONValue)] {
            var m: [(String, JSONValue)] = [("service", .string(service)), ("address", .string(address))]
            if let port { m.append(("port", .int(port))) }
            return m
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a backend to a service.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: Target
        @Option(help: "Relative share of new flows (0-65535; 0 drains).") var weight: Int?

        func run() throws {
            try guarded {
                var b: [(String, JSONValue)] = [("address", .string(target.address))]
                if let port = target.port { b.append(("port", .int(port))) }
                if let weight { b.append(("weight", .int(weight))) }
                let r = try global.call("backend.add", .object([("service", .string(target.service)), ("backend", .object(b))]))
                global.show(r, changed)
            }
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a backend's weight, or drain it (weight 0: no new flows, existing ones continue).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: Target
        @Option(help: "The new weight (0-65535).") var weight: Int?
        @Flag(help: "Drain: weight 0.") var drain = false

        func run() throws {
            try guarded {
                var m = target.members
                if let weight { m.append(("weight", .int(weight))) }
                if drain { m.append(("drain", .bool(true))) }
                global.show(try global.call("backend.update", .object(m)), changed)
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a backend (its flows move to others).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: Target

        func run() throws {
            try guarded { global.show(try global.call("backend.remove", .object(target.members)), changed) }
        }
    }
}

struct VIPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vip", abstract: "Own a VIP on a port (answer ARP/NDP, announce it) or stop owning it.",
        subcommands: [Own.self, Disown.self, List.self])

    struct Own: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Own ADDRESS on a port: answer ARP / NDP and send gratuitous ARP / unsolicited NA.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The VIP.") var address: String
        @Option(name: .customLong("on"), help: "The sluiced port name (ports[].name).") var port: String
        @Option(help: "Answer with this MAC instead of the port's.") var mac: String?

        func run() throws {
            try guarded {
                var m: [(String, JSONValue)] = [("address", .string(address)), ("port", .string(port))]
                if let mac { m.append(("mac", .string(mac))) }
                global.show(try global.call("vip.own", .object(m)), changed)
            }
        }
    }

    struct Disown: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop owning ADDRESS (on one port, or everywhere).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The VIP.") var address: String
        @Option(name: .customLong("on"), help: "Only on this port.") var port: String?

        func run() throws {
            try guarded {
                var m: [(String, JSONValue)] = [("address", .string(address))]
                if let port { m.append(("port", .string(port))) }
                global.show(try global.call("vip.disown", .object(m)), changed)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List owned VIPs.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try guarded {
                let r = try global.call("state.get")
                global.show(r["vips"] ?? .array([])) { vipsTable($0.arrayValue ?? []) }
            }
        }
    }
}

/// Non-zero counters of a `counters` object, drops as `drop_NAME`.
func counterRows(_ c: JSONValue?) -> [[String]] {
    var rows: [[String]] = []
    for (k, v) in c?.objectValue ?? [] {
        if k == "drops" {
            for (reason, n) in v.objectValue ?? [] where text(n) != "0" { rows.append(["drop_" + reason, text(n)]) }
        } else if text(v) != "0" {
            rows.append([k, text(v)])
        }
    }
    return rows
}

func statsText(_ r: JSONValue) -> String {
    var out = "generation \(text(r["generation"])) (data plane \(text(r["dataplane_generation"])))"
    out += "  conntrack \(text(r["conntrack"]?["count"]))/\(text(r["conntrack"]?["capacity"]))\n\n"
    out += table(["PORT", "RX_PACKETS", "TX_PACKETS", "RX_MISSED", "RX_ERRORS", "TX_ERRORS", "RX_NO_MBUF"],
                 (r["ports"]?.arrayValue ?? []).map { p in
                     [text(p["name"]), text(p["rx_packets"]), text(p["tx_packets"]), text(p["rx_missed"]),
                      text(p["rx_errors"]), text(p["tx_errors"]), text(p["rx_no_mbuf"])]
                 })
    let workers = r["workers"]?.arrayValue ?? []
    var names: [String] = []
    var perWorker: [[String: String]] = []
    for w in workers {
        var values: [String: String] = [:]
        for row in counterRows(w["counters"]) {
            if !names.contains(row[0]) { names.append(row[0]) }
            values[row[0]] = row[1]
        }
        perWorker.append(values)
    }
    let totals = Dictionary(counterRows(r["total"]).map { ($0[0], $0[1]) }, uniquingKeysWith: { a, _ in a })
    out += "\n\n" + table(["COUNTER", "TOTAL"] + workers.indices.map { "WORKER\($0)" },
                          names.map { n in [n, totals[n] ?? "0"] + perWorker.map { $0[n] ?? "0" } })
    return out
}

/// `--interval` seconds as events.subscribe's interval_ms (100…60,000). The Double is clamped
/// before it is converted: `Int(_:)` traps on NaN, infinity and anything past Int's range.
func subscriptionMilliseconds(_ seconds: Double) -> Int {
    guard seconds >= 0.1 else { return 100 }  // also NaN
    guard seconds <= 60 else { return 60_000 }
    return Int(seconds * 1000)
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Counters per port and worker, drop reasons, conntrack occupancy.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Keep printing, every --interval seconds (events.subscribe).") var watch = false
    @Option(help: "Seconds between updates with --watch.") var interval: Double = 1

    func run() throws {
        try guarded {
            guard watch else {
                global.show(try global.call("stats"), statsText)
                return
            }
            let client = try global.connect()
            do {
                let ms = subscriptionMilliseconds(interval)
                try client.call("events.subscribe", .object([("interval_ms", .int(ms)), ("stats", .bool(true))]))
                while let event = try client.nextNotification(timeoutMilliseconds: ms * 5 + 5000) {
                    guard let params = event["params"] else { continue }
                    if params["type"] == .string("stats") {
                        if global.json { print(params.serialized) } else { print("\u{1B}[H\u{1B}[2J" + statsText(params)) }
                    } else if global.json {
                        print(params.serialized)
                    }
                    fflush(nil)
                }
            } catch let f as Failure {
                throw f
            } catch {
                throw Failure(message: "\(error)", status: 2)
            }
        }
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stream change notifications (and counters with --stats) as JSON lines.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Also stream counters.") var stats = false
    @Option(help: "Seconds between counter updates.") var interval: Double = 1

    func run() throws {
        try guarded {
            let client = try global.connect()
            do {
                let ms = subscriptionMilliseconds(interval)
                try client.call("events.subscribe", .object([("interval_ms", .int(ms)), ("stats", .bool(stats))]))
                while true {
                    do {
                        guard let event = try client.nextNotification(timeoutMilliseconds: 3_600_000) else { break }
                        print((event["params"] ?? event).serialized)
                        fflush(nil)
                    } catch ControlClientError.io(let s) where s.hasPrefix("no response") {
                        continue
                    }
                }
            } catch let f as Failure {
                throw f
            } catch {
                throw Failure(message: "\(error)", status: 2)
            }
        }
    }
}

struct Conntrack: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Count, list or flush connection-table entries.",
                                                    subcommands: [List.self, Count.self, Flush.self])

    struct Filter: ParsableArguments {
        @Option(help: "Flows of services on this VIP.") var vip: String?
        @Option(help: "Flows of this service.") var service: String?
        @Option(help: "Flows to this backend address.") var backend: String?
        @Option(name: .customLong("protocol"), help: "tcp, udp, sctp, icmp or icmpv6.") var proto: String?

        var members: [(String, JSONValue)] {
            var m: [(String, JSONValue)] = []
            if let vip { m.append(("vip", .string(vip))) }
            if let service { m.append(("service", .string(service))) }
            if let backend { m.append(("backend", .string(backend))) }
            if let proto { m.append(("protocol", .string(proto))) }
            return m
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List flows.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var filter: Filter
        @Option(help: "At most this many (1-10000).") var limit: Int = 100

        func run() throws {
            try guarded {
                let r = try global.call("conntrack.list", .object(filter.members + [("limit", .int(limit))]))
                global.show(r) { r in
                    let rows = (r["flows"]?.arrayValue ?? []).map { f in
                        [text(f["protocol"]), "\(text(f["source"])):\(text(f["source_port"]))",
                         "\(text(f["destination"])):\(text(f["destination_port"]))", text(f["direction"]), text(f["state"]),
                         text(f["service"]), f["backend"] == nil ? "-" : "\(text(f["backend"])):\(text(f["backend_port"]))",
                         text(f["expires_in_s"])]
                    }
                    return table(["PROTO", "SOURCE", "DESTINATION", "DIR", "STATE", "SERVICE", "BACKEND", "EXPIRES_S"], rows)
                        + (r["truncated"] == .bool(true) ? "\n(more flows not shown: raise --limit)" : "")
                }
            }
        }
    }

    struct Count: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count flows.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var filter: Filter

        func run() throws {
            try guarded {
                let r = try global.call("conntrack.count", .object(filter.members))
                global.show(r) { "\(text($0["count"])) of \(text($0["capacity"])) slots" }
            }
        }
    }

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove flows matching a filter (or --all).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var filter: Filter
        @Flag(help: "Remove every flow.") var all = false

        func run() throws {
            try guarded {
                let r = try global.call("conntrack.flush", .object(filter.members + (all ? [("all", .bool(true))] : [])))
                global.show(r) { "flushed \(text($0["flushed"]))" }
            }
        }
    }
}

struct Neighbors: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The neighbor (ARP / NDP) table.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try guarded {
            let r = try global.call("neighbors.list")
            global.show(r) {
                table(["ADDRESS", "MAC", "CONFIRMED"],
                      ($0["neighbors"]?.arrayValue ?? []).map { [text($0["address"]), text($0["mac"]), text($0["confirmed"])] })
            }
        }
    }
}
