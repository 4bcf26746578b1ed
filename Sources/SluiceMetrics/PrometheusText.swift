import SluiceCore
import SluiceDataPlane

/// The Prometheus text exposition format, version 0.0.4: for each metric family a `# HELP` and a
/// `# TYPE` line, then one `name{label="value",…} value` line per sample. Counters end in
/// `_total`. Label values escape `\`, `"` and line feed; HELP text escapes `\` and line feed.
/// (Prometheus, "Exposition formats", text-based format.)
public struct PrometheusText {
    /// What the HTTP response's Content-Type says.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public enum Kind: String, Sendable {
        case counter, gauge
    }

    public private(set) var text = ""
    /// Families written so far: a name may appear only once (the format requires one block).
    private var families: Set<String> = []

    public init() {}

    /// Starts a metric family. `name` must match `[a-zA-Z_:][a-zA-Z0-9_:]*` and be new.
    public mutating func family(_ name: String, _ kind: Kind, help: String) {
        precondition(PrometheusText.isValidMetricName(name), "invalid metric name \(name)")
        precondition(families.insert(name).inserted, "metric family \(name) written twice")
        precondition(kind != .counter || name.hasSuffix("_total"), "counter \(name) must end in _total")
        text += "# HELP \(name) \(PrometheusText.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
    }

    /// One sample of the current family.
    public mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String>, _ value: UInt64) {
        line(name, labels, String(value))
    }

    public mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String>, _ value: Double) {
        line(name, labels, PrometheusText.format(value))
    }

    private mutating func line(_ name: String, _ labels: KeyValuePairs<String, String>, _ value: String) {
        text += name
        if !labels.isEmpty {
            text += "{"
            var first = true
            for (key, v) in labels {
                precondition(PrometheusText.isValidLabelName(key), "invalid label name \(key)")
                if !first { text += "," }
                first = false
                text += "\(key)=\"\(PrometheusText.escapeLabelValue(v))\""
            }
            text += "}"
        }
        text += " \(value)\n"
    }

    // MARK: Escaping and names

    /// `\` → `\\`, `"` → `\"`, line feed → `\n`.
    public static func escapeLabelValue(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// `\` → `\\`, line feed → `\n`.
    public static func escapeHelp(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    public static func isValidMetricName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first else { return false }
        func letter(_ c: Unicode.Scalar) -> Bool { (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_" || c == ":" }
        return letter(first) && s.unicodeScalars.allSatisfy { letter($0) || ($0 >= "0" && $0 <= "9") }
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, and not starting with `__` (reserved for Prometheus itself).
    public static func isValidLabelName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, !s.hasPrefix("__") else { return false }
        func letter(_ c: Unicode.Scalar) -> Bool { (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "_" }
        return letter(first) && s.unicodeScalars.allSatisfy { letter($0) || ($0 >= "0" && $0 <= "9") }
    }

    /// Go's ParseFloat reads Swift's shortest round-trip form; non-finite values use the
    /// format's spellings.
    public static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v < 0 ? "-Inf" : "+Inf" }
        return v.description
    }
}

extension MetricsSample {
    /// The whole exposition: ports, workers, services and backends, conntrack, generation.
    /// Every family is written even when it has no samples yet (a scraper sees its HELP/TYPE).
    public var prometheusText: String {
        var p = PrometheusText()
        renderPorts(&p)
        renderWorkers(&p)
        renderServices(&p)
        renderConntrack(&p)
        p.family("sluice_snapshot_generation", .gauge,
                 help: "Generation of the configuration snapshot the workers read (1 for the configuration loaded at start).")
        p.sample("sluice_snapshot_generation", [:], generation)
        return p.text
    }

    private func renderPorts(_ p: inout PrometheusText) {
        let fields: [(String, String, KeyPath<PortSample, UInt64>)] = [
            ("rx_packets", "Packets received by the port (device counter).", \.rxPackets),
            ("tx_packets", "Packets transmitted by the port (device counter).", \.txPackets),
            ("rx_bytes", "Bytes received by the port (device counter).", \.rxBytes),
            ("tx_bytes", "Bytes transmitted by the port (device counter).", \.txBytes),
            ("rx_errors", "Erroneous packets received (device counter).", \.rxErrors),
            ("tx_errors", "Failed transmissions (device counter).", \.txErrors),
            ("rx_missed", "Packets dropped by the device because its RX ring was full: workers fell behind.", \.rxMissed),
            ("rx_no_mbuf", "RX failures for want of a packet buffer: the mbuf pool was empty.", \.rxNoMbuf),
        ]
        for (suffix, help, field) in fields {
            let name = "sluice_port_\(suffix)_total"
            p.family(name, .counter, help: help)
            for port in ports { p.sample(name, ["port": port.name, "device": port.device], port[keyPath: field]) }
        }
    }

    private func renderWorkers(_ p: inout PrometheusText) {
        func labels(_ w: WorkerSample) -> KeyValuePairs<String, String> { ["worker": String(w.index), "lcore": String(w.lcore)] }
        let plain: [(Counter, String, String)] = [
            (.rxPackets, "rx_packets", "Packets the worker received from its RX queues."),
            (.rxBytes, "rx_bytes", "Bytes the worker received from its RX queues."),
            (.txPackets, "tx_packets", "Packets the worker's TX queues accepted."),
            (.txBytes, "tx_bytes", "Bytes the worker's TX queues accepted."),
            (.newFlows, "new_flows", "Flows the worker created in the connection table."),
            (.statelessForwards, "stateless_forwards", "New flows forwarded by Maglev alone because the connection table was full."),
            (.reverseEntriesLost, "reverse_entries_lost",
             "Reply-direction entry inserts that found the connection table full (those flows' replies are dropped)."),
            (.neighborsLearned, "neighbors_learned", "Neighbors (IP to MAC) learned or refreshed from ARP and NDP."),
            (.neighborMissesSolicited, "neighbor_misses_solicited",
             "ARP requests / neighbor solicitations for clients a reply found unresolved."),
            (.fragmentsFollowed, "fragments_followed",
             "Later IP fragments sent where their datagram's first fragment went (to its backend, or back to its client)."),
            (.flowsRebound, "flows_rebound", "Known flows whose backend had left the service, balanced again and rebound."),
            (.idleSleeps, "idle_sleeps", "Times the worker backed off after a run of empty polls."),
            (.busyCycles, "busy_cycles", "TSC cycles spent in polls that found packets."),
            (.totalCycles, "cycles", "TSC cycles of the worker's loop in all (busy share = busy_cycles / cycles)."),
        ]
        for (counter, suffix, help) in plain {
            let name = "sluice_worker_\(suffix)_total"
            p.family(name, .counter, help: help)
            for w in workers { p.sample(name, labels(w), w[counter]) }
        }
        p.family("sluice_worker_polls_total", .counter, help: "Polls of all the worker's queues, by whether they found packets.")
        for w in workers {
            p.sample("sluice_worker_polls_total", ["worker": String(w.index), "lcore": String(w.lcore), "result": "busy"], w[.busyPolls])
            p.sample("sluice_worker_polls_total", ["worker": String(w.index), "lcore": String(w.lcore), "result": "idle"], w[.idlePolls])
        }
        p.family("sluice_worker_busy_ratio", .gauge,
                 help: "Share of the worker's loop time in polls that found packets, since start (busy_cycles / cycles).")
        for w in workers { p.sample("sluice_worker_busy_ratio", labels(w), w.busyRatio) }
        p.family("sluice_worker_drops_total", .counter, help: "Packets the worker dropped, by reason.")
        for w in workers {
            for r in DropReason.allCases {
                p.sample("sluice_worker_drops_total", ["worker": String(w.index), "lcore": String(w.lcore), "reason": r.name], w[r])
            }
        }
        p.family("sluice_worker_transmits_total", .counter, help: "Packets the worker sent, by what it did with them.")
        for w in workers {
            for a in TransmitAction.allCases {
                p.sample("sluice_worker_transmits_total", ["worker": String(w.index), "lcore": String(w.lcore), "action": a.name], w[a])
            }
        }
    }

    private func renderServices(_ p: inout PrometheusText) {
        let fields: [(String, String, String, KeyPath<BackendCounts, UInt64>)] = [
            ("packets", "Client packets forwarded", "", \.packets),
            ("bytes", "Bytes of client frames forwarded", " (as received, Ethernet header included, before encapsulation)", \.bytes),
            ("new_flows", "Flows created in the connection table", "", \.newFlows),
        ]
        for (suffix, what, detail, field) in fields {
            let name = "sluice_service_\(suffix)_total"
            p.family(name, .counter, help: "\(what) to the service's backends, summed over workers and backends\(detail).")
            for s in services {
                p.sample(name, ["service": s.name, "vip": s.vip, "protocol": s.protocol, "port": String(s.port)],
                         s.totals[keyPath: field])
            }
        }
        for (suffix, what, detail, field) in fields {
            let name = "sluice_backend_\(suffix)_total"
            p.family(name, .counter, help: "\(what) to the backend, summed over workers\(detail).")
            for s in services {
                for b in s.backends {
                    p.sample(name, ["service": s.name, "vip": s.vip, "protocol": s.protocol, "port": String(s.port),
                                    "backend": b.address], b.counts[keyPath: field])
                }
            }
        }
    }

    private func renderConntrack(_ p: inout PrometheusText) {
        p.family("sluice_conntrack_entries", .gauge,
                 help: "Live entries in the connection table (a flow has two: client side and backend side).")
        if let c = conntrack { p.sample("sluice_conntrack_entries", [:], UInt64(c.live)) }
        p.family("sluice_conntrack_expired_entries", .gauge, help: "Expired entries in the connection table not yet swept.")
        if let c = conntrack { p.sample("sluice_conntrack_expired_entries", [:], UInt64(c.expired)) }
        p.family("sluice_conntrack_capacity", .gauge, help: "Slots in the connection table.")
        if let c = conntrack { p.sample("sluice_conntrack_capacity", [:], UInt64(c.capacity)) }
    }
}
