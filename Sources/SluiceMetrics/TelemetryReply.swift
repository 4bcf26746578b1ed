import SluiceCore
import SluiceDataPlane

/// What a DPDK telemetry command answers, in the shapes DPDK 22.11's `rte_tel_data` can hold:
/// a dict of scalars and arrays (one level of nesting), or a flat array. Names are at most 63
/// characters of `[A-Za-z0-9_/]` (what `rte_tel_data_add_dict_*` documents), strings at most
/// 127 bytes, at most 256 dict entries and 512 array entries (RTE_TEL_MAX_*); the reply must
/// also fit the telemetry socket's 16 KiB.
public enum TelemetryReply: Sendable, Equatable {
    case dict([(String, TelemetryValue)])
    case u64Array([UInt64])
    case stringArray([String])
    /// The command's parameter was not understood: the callback returns -EINVAL, and the client
    /// sees `null` for the command.
    case invalidParameter

    public static func == (a: TelemetryReply, b: TelemetryReply) -> Bool {
        switch (a, b) {
        case (.dict(let x), .dict(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.u64Array(let x), .u64Array(let y)): x == y
        case (.stringArray(let x), .stringArray(let y)): x == y
        case (.invalidParameter, .invalidParameter): true
        default: false
        }
    }

    public static let maxDictEntries = 256
    public static let maxArrayEntries = 512
    public static let maxStringBytes = 127
    public static let maxNameBytes = 63

    /// `[A-Za-z0-9_/]`, 1 to 63 bytes.
    public static func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= maxNameBytes
            && s.unicodeScalars.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "_" || $0 == "/" }
    }
}

/// A value in a telemetry dict.
public enum TelemetryValue: Sendable, Equatable {
    case u64(UInt64)
    case string(String)
    case u64Array([UInt64])
    case stringArray([String])
}

/// The `/sluice/...` commands, as pure functions of a sample: the DPDK side only copies the
/// reply into `rte_tel_data`.
public enum TelemetryCommands {
    /// Command → help text, in the order they are registered.
    public static let help: [(command: String, help: String)] = [
        ("/sluice/stats", "Sluice counters summed over workers, drops by reason, conntrack, snapshot generation. No parameters"),
        ("/sluice/workers", "Without a parameter: worker indices. Parameter: worker index; returns its counters"),
        ("/sluice/services", "Without a parameter: service names. Parameter: service name; returns its and its backends' counters"),
    ]

    /// The answer to `command` with `parameter` (the text after the comma; nil when absent).
    public static func reply(_ command: String, parameter: String?, sample: MetricsSample) -> TelemetryReply {
        switch command {
        case "/sluice/stats": return parameter == nil ? stats(sample) : .invalidParameter
        case "/sluice/workers":
            guard let parameter else { return .u64Array(sample.workers.map { UInt64($0.index) }) }
            guard let i = Int(parameter), let w = sample.workers.first(where: { $0.index == i }) else { return .invalidParameter }
            return worker(w)
        case "/sluice/services":
            guard let parameter else { return .stringArray(sample.services.map(\.name)) }
            guard let s = sample.services.first(where: { $0.name == parameter }) else { return .invalidParameter }
            return service(s)
        default: return .invalidParameter
        }
    }

    static func counterEntries(_ value: (Counter) -> UInt64, _ drop: (DropReason) -> UInt64,
                               _ action: (TransmitAction) -> UInt64) -> [(String, TelemetryValue)] {
        Counter.allCases.map { ($0.name, .u64(value($0))) }
            + TransmitAction.allCases.map { ($0.name, .u64(action($0))) }
            + DropReason.allCases.map { ("drop_" + $0.name, .u64(drop($0))) }
    }

    static func stats(_ s: MetricsSample) -> TelemetryReply {
        var entries = counterEntries({ s.total($0) }, { s.total($0) }, { s.total($0) })
        entries.append(("drops", .u64(DropReason.allCases.reduce(0) { $0 &+ s.total($1) })))
        if let c = s.conntrack {
            entries += [("conntrack_entries", .u64(UInt64(c.live))), ("conntrack_expired_entries", .u64(UInt64(c.expired))),
                        ("conntrack_capacity", .u64(UInt64(c.capacity)))]
        }
        entries += [("workers", .u64(UInt64(s.workers.count))), ("services", .u64(UInt64(s.services.count))),
                    ("snapshot_generation", .u64(s.generation))]
        return .dict(entries)
    }

    static func worker(_ w: WorkerSample) -> TelemetryReply {
        .dict([("worker", .u64(UInt64(w.index))), ("lcore", .u64(UInt64(w.lcore)))]
              + counterEntries({ w[$0] }, { w[$0] }, { w[$0] }))
    }

    /// Backends in one reply: DPDK 22.11 silently cuts a reply at 16 KiB of JSON; a backend
    /// costs at most ~120 bytes there (an IPv6 address and port, three 20-digit counters, the
    /// quotes and commas), so 128 of them and the service's fields fit. The HTTP endpoint has all.
    public static let maxBackendsPerReply = 128

    /// Backends as parallel arrays (22.11 nests one level only), at most `maxBackendsPerReply`;
    /// `backends_total` says how many the service has.
    static func service(_ s: ServiceSample) -> TelemetryReply {
        let t = s.totals
        let backends = s.backends.prefix(min(TelemetryReply.maxArrayEntries, maxBackendsPerReply))
        return .dict([
            ("name", .string(s.name)), ("vip", .string(s.vip)), ("protocol", .string(s.protocol)),
            ("port", .u64(UInt64(s.port))), ("mode", .string(s.mode)),
            ("packets", .u64(t.packets)), ("bytes", .u64(t.bytes)), ("new_flows", .u64(t.newFlows)),
            ("backends_total", .u64(UInt64(s.backends.count))),
            ("backends", .stringArray(backends.map(\.address))),
            ("backend_packets", .u64Array(backends.map(\.counts.packets))),
            ("backend_bytes", .u64Array(backends.map(\.counts.bytes))),
            ("backend_new_flows", .u64Array(backends.map(\.counts.newFlows))),
        ])
    }
}
