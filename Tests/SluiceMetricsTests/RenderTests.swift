import Testing
import SluiceConfig
import SluiceCore
import SluiceDataPlane
@testable import SluiceMetrics

/// Two services (one IPv6 with a name that needs no escaping but has a '/'), three backends,
/// built from YAML as sluiced builds its snapshot.
let metricsYAML = """
ports:
  - { name: lan0, device: net_null0, addresses: ["192.0.2.2/24", "2001:db8::2/64"] }
  - { name: lan1, device: net_null1, addresses: ["198.51.100.1/24", "2001:db8:1::1/64"] }
vips: [{ address: 192.0.2.10, port: lan0 }, { address: "2001:db8::10", port: lan0 }]
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends: [{ address: 198.51.100.11, port: 8080 }, { address: 198.51.100.12, port: 8080 }]
  - name: dns/v6
    vip: "2001:db8::10"
    protocol: udp
    port: 53
    backends: [{ address: "2001:db8:1::11" }]
"""

func makeSnapshot() throws -> DataPlaneSnapshot {
    try SluicedConfig.parse(yaml: metricsYAML, file: "m.yaml")
        .makeSnapshot(portMACs: [MACAddress("02:00:00:00:00:01")!, MACAddress("02:00:00:00:00:02")!])
}

/// Samples of one rendered metric, as `(labels text, value text)`.
func samples(_ text: String, _ name: String) -> [(String, String)] {
    text.split(separator: "\n").compactMap { line in
        guard line.hasPrefix(name + "{") || line.hasPrefix(name + " ") else { return nil }
        let rest = line.dropFirst(name.count)
        let space = rest.lastIndex(of: " ")!
        return (String(rest[..<space]), String(rest[rest.index(after: space)...]))
    }
}

@Suite struct PrometheusRendering {
    @Test func labelValuesAndHelpAreEscaped() {
        #expect(PrometheusText.escapeLabelValue(#"a"b\c"#) == #"a\"b\\c"#)
        #expect(PrometheusText.escapeLabelValue("line\nbreak") == #"line\nbreak"#)
        #expect(PrometheusText.escapeLabelValue("plain-ünïcode/é") == "plain-ünïcode/é")
        #expect(PrometheusText.escapeHelp("a \\ b\nc \"q\"") == #"a \\ b\nc "q""#)
        var p = PrometheusText()
        p.family("x_total", .counter, help: "two\nlines \\ here")
        p.sample("x_total", ["service": "we\"b\\\n", "b": ""], UInt64(7))
        #expect(p.text == "# HELP x_total two\\nlines \\\\ here\n# TYPE x_total counter\nx_total{service=\"we\\\"b\\\\\\n\",b=\"\"} 7\n")
    }

    @Test func namesAreChecked() {
        for good in ["sluice_port_rx_packets_total", "a:b_c", "_x9"] { #expect(PrometheusText.isValidMetricName(good)) }
        for bad in ["", "9a", "a-b", "a.b", "a b", "é"] { #expect(!PrometheusText.isValidMetricName(bad)) }
        for good in ["service", "_x", "a9"] { #expect(PrometheusText.isValidLabelName(good)) }
        for bad in ["", "__name", "a:b", "9", "a-b"] { #expect(!PrometheusText.isValidLabelName(bad)) }
    }

    @Test func floatsUseTheFormatsSpellings() {
        #expect(PrometheusText.format(0.25) == "0.25")
        #expect(PrometheusText.format(.nan) == "NaN")
        #expect(PrometheusText.format(.infinity) == "+Inf")
        #expect(PrometheusText.format(-.infinity) == "-Inf")
        #expect(Double(PrometheusText.format(1e-7)) == 1e-7)
    }

    /// Every family: one HELP then one TYPE line, right before its samples, valid names, counters
    /// in _total, each family once, every sample line of a family announced just above it.
    @Test func everyFamilyHasHelpAndTypeBeforeItsSamples() throws {
        let snapshot = try makeSnapshot()
        let w = WorkerCounters()
        let sample = MetricsSample(ports: [PortSample(name: "lan0", device: "net_null0")], workers: [(0, 1, w)],
                                   snapshot: snapshot, conntrack: ConntrackSample(live: 4, expired: 1, capacity: 65536),
                                   generation: 1)
        let lines = sample.prometheusText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.last == "")
        var current: String?
        var typed: [String: String] = [:]
        var i = 0
        while i < lines.count - 1 {
            let line = lines[i]
            if line.hasPrefix("# HELP ") {
                let name = String(line.dropFirst(7).prefix { $0 != " " })
                #expect(PrometheusText.isValidMetricName(name))
                #expect(typed[name] == nil, "\(name) twice")
                let type = lines[i + 1]
                #expect(type.hasPrefix("# TYPE \(name) "))
                let kind = String(type.dropFirst("# TYPE \(name) ".count))
                #expect(kind == "counter" || kind == "gauge")
                if kind == "counter" { #expect(name.hasSuffix("_total"), "\(name)") }
                typed[name] = kind
                current = name
                i += 2
                continue
            }
            #expect(!line.hasPrefix("#"))
            let name = String(line.prefix { $0 != "{" && $0 != " " })
            #expect(name == current, "\(line) outside its family \(current ?? "-")")
            i += 1
        }
        #expect(typed.count >= 30)
        #expect(typed["sluice_worker_busy_ratio"] == "gauge")
        #expect(typed["sluice_snapshot_generation"] == "gauge")
        #expect(typed["sluice_backend_packets_total"] == "counter")
    }

    /// Per-backend records summed over workers, services summed over backends, worker counters
    /// per worker, drops for every reason.
    @Test func sumsOverWorkersAndBackends() throws {
        let snapshot = try makeSnapshot()
        let layout = snapshot.backendCounters
        let web = Int(snapshot.services.services[0].id), dns = Int(snapshot.services.services[1].id)
        let a = WorkerCounters(), b = WorkerCounters()
        a.countForward(slot: layout.slot(serviceID: web, backend: 0), bytes: 100)
        a.countForward(slot: layout.slot(serviceID: web, backend: 0), bytes: 60)
        b.countForward(slot: layout.slot(serviceID: web, backend: 0), bytes: 1000)
        b.countForward(slot: layout.slot(serviceID: web, backend: 1), bytes: 70)
        a.countNewFlow(slot: layout.slot(serviceID: web, backend: 1))
        b.countNewFlow(slot: layout.slot(serviceID: web, backend: 1))
        b.countForward(slot: layout.slot(serviceID: dns, backend: 0), bytes: 90)
        a.add(.rxPackets, 10)
        b.add(.rxPackets, 5)
        a.countDrop(.noService, 3)
        a.add(.busyCycles, 25)
        a.add(.totalCycles, 100)
        let sample = MetricsSample(ports: [], workers: [(0, 1, a), (1, 2, b)], snapshot: snapshot, conntrack: nil, generation: 7)
        #expect(sample.services.map(\.name) == ["web", "dns/v6"])
        #expect(sample.services[0].backends.map(\.address) == ["198.51.100.11:8080", "198.51.100.12:8080"])
        #expect(sample.services[1].backends.map(\.address) == ["[2001:db8:1::11]:53"])
        #expect(sample.services[0].backends[0].counts == BackendCounts(packets: 3, bytes: 1160, newFlows: 0))
        #expect(sample.services[0].backends[1].counts == BackendCounts(packets: 1, bytes: 70, newFlows: 2))
        #expect(sample.services[0].totals == BackendCounts(packets: 4, bytes: 1230, newFlows: 2))
        #expect(sample.total(.rxPackets) == 15)

        let text = sample.prometheusText
        let webLabels = #"service="web",vip="192.0.2.10",protocol="tcp",port="80""#
        #expect(samples(text, "sluice_backend_packets_total").map { $0.0 + " " + $0.1 } == [
            "{\(webLabels),backend=\"198.51.100.11:8080\"} 3",
            "{\(webLabels),backend=\"198.51.100.12:8080\"} 1",
            #"{service="dns/v6",vip="2001:db8::10",protocol="udp",port="53",backend="[2001:db8:1::11]:53"} 1"#,
        ])
        #expect(samples(text, "sluice_service_bytes_total").first! == ("{\(webLabels)}", "1230"))
        #expect(samples(text, "sluice_service_new_flows_total").first! == ("{\(webLabels)}", "2"))
        #expect(samples(text, "sluice_worker_rx_packets_total").map(\.1) == ["10", "5"])
        #expect(samples(text, "sluice_worker_rx_packets_total").first!.0 == #"{worker="0",lcore="1"}"#)
        let drops = samples(text, "sluice_worker_drops_total")
        #expect(drops.count == 2 * DropReason.allCases.count)
        #expect(drops.contains { $0 == (#"{worker="0",lcore="1",reason="no_service"}"#, "3") })
        #expect(samples(text, "sluice_worker_busy_ratio").map(\.1) == ["0.25", "0.0"])
        #expect(samples(text, "sluice_snapshot_generation").map(\.1) == ["7"])
        // No conntrack reading: the families are announced with no samples.
        #expect(text.contains("# TYPE sluice_conntrack_entries gauge\n# HELP sluice_conntrack_expired_entries"))
    }

    @Test func portsAreLabelledByNameAndDevice() {
        var port = PortSample(name: "lan0", device: "net_af_packet0")
        port.rxPackets = 5
        port.rxMissed = 2
        let text = MetricsSample(ports: [port], workers: [], services: [], conntrack: nil, generation: 1).prometheusText
        #expect(samples(text, "sluice_port_rx_packets_total").map { $0.0 + " " + $0.1 } == [#"{port="lan0",device="net_af_packet0"} 5"#])
        #expect(samples(text, "sluice_port_rx_missed_total").map(\.1) == ["2"])
        #expect(samples(text, "sluice_port_tx_errors_total").map(\.1) == ["0"])
    }
}

@Suite struct BackendRecords {
    typealias Key = BackendCounterRecords.Key
    func key(_ service: UInt16, _ backend: UInt8) -> Key {
        Key(service: ServiceIdentity(vip: IPv6Address(ipv4Mapped: 0xC000_020A), proto: 6, port: service),
            backend: BackendIdentity(address: IPv6Address(ipv4Mapped: 0xC633_6400 | UInt32(backend)), port: 8080))
    }

    @Test func pairsArePackedInOrder() throws {
        let a = try BackendCounterRecords().assigning([[key(80, 1), key(80, 2)], [], [key(443, 1)]], now: 0, quarantine: 100)
        #expect(a.records == [[0, 1], [], [2]])
        #expect(a.reused.isEmpty)
        let layout = BackendCounterLayout(serviceIDs: [4, 0, 7], assignment: a)
        defer { layout.deallocate() }
        #expect(layout.slot(serviceID: 4, backend: 1) == 1)
        #expect(layout.slot(serviceID: 7, backend: 0) == 2)
    }

    /// A backend added in front of others, or a service added first, moves no record.
    @Test func recordsFollowTheirPairAcrossSnapshots() throws {
        let first = try BackendCounterRecords().assigning([[key(80, 1), key(80, 2)], [key(443, 1)]], now: 0, quarantine: 100)
        let second = try first.next.assigning([[key(53, 9)], [key(80, 3), key(80, 1), key(80, 2)], [key(443, 1)]],
                                              now: 10, quarantine: 100)
        #expect(second.records == [[3], [4, 0, 1], [2]])
        #expect(second.reused.isEmpty)
    }

    /// A removed pair keeps its record through the quarantine (and gets it back if it returns);
    /// after it, the record goes to another pair and is listed as reused.
    @Test func recordsAreReusedOnlyAfterTheQuarantine() throws {
        let a = try BackendCounterRecords().assigning([[key(80, 1), key(80, 2)]], now: 0, quarantine: 100)
        let b = try a.next.assigning([[key(80, 1)]], now: 10, quarantine: 100)   // 80/2 leaves
        let c = try b.next.assigning([[key(80, 1), key(80, 3)]], now: 50, quarantine: 100)
        #expect(c.records == [[0, 2]])   // 80/3 does not get 80/2's record yet
        #expect(c.reused.isEmpty)
        let back = try c.next.assigning([[key(80, 1), key(80, 3), key(80, 2)]], now: 60, quarantine: 100)
        #expect(back.records == [[0, 2, 1]])   // 80/2 back: its own record
        let d = try c.next.assigning([[key(80, 1), key(80, 3), key(80, 4)]], now: 200, quarantine: 100)
        #expect(d.records == [[0, 2, 1]])   // quarantine over: 80/4 takes record 1
        #expect(d.reused == [1])
    }

    @Test func exhaustionCountsQuarantinedPairs() throws {
        let a = try BackendCounterRecords().assigning([[key(80, 1), key(80, 2)]], now: 0, quarantine: 100, capacity: 3)
        let b = try a.next.assigning([[key(80, 3)]], now: 10, quarantine: 100, capacity: 3)
        #expect(b.records == [[2]])
        do {
            _ = try b.next.assigning([[key(80, 3), key(80, 4)]], now: 20, quarantine: 100, capacity: 3)
            Issue.record("a fourth record handed out")
        } catch {
            #expect(error == .exhausted(needed: 4))
        }
    }

    /// Hand-built snapshots: pairs beyond the records go to the overflow record, never past it.
    @Test func overflowStaysInBounds() throws {
        let a = BackendCounterRecords.Assignment(records: [[0, 1], [5, -1]], next: BackendCounterRecords(), reused: [])
        let layout = BackendCounterLayout(serviceIDs: [0, 1], assignment: a, capacity: 4)
        defer { layout.deallocate() }
        #expect(layout.slot(serviceID: 1, backend: 0) == 4)
        #expect(layout.slot(serviceID: 1, backend: 1) == 4)
        #expect(layout.record(serviceID: 1, backend: 0) == nil)
        #expect(layout.record(serviceID: 0, backend: 1) == 1)
    }

    @Test func theLastRecordsAreDistinct() {
        let c = WorkerCounters()
        c.countForward(slot: WorkerCounters.backendSlots - 1, bytes: 9)
        c.countNewFlow(slot: WorkerCounters.backendSlots)
        #expect(c.read(backendSlot: WorkerCounters.backendSlots - 1) == BackendCounts(packets: 1, bytes: 9, newFlows: 0))
        #expect(c.read(backendSlot: WorkerCounters.backendSlots) == BackendCounts(packets: 0, bytes: 0, newFlows: 1))
        #expect(c.read(backendSlot: 0) == BackendCounts())
    }

    /// Through the config builder: a reload that adds a backend in front keeps every other
    /// backend's record, so its counters go on.
    @Test func reloadKeepsRecords() throws {
        let before = try makeSnapshot()
        let grown = metricsYAML.replacingOccurrences(of: "backends: [{ address: 198.51.100.11, port: 8080 }",
                                                     with: "backends: [{ address: 198.51.100.10, port: 8080 }, { address: 198.51.100.11, port: 8080 }")
        let after = try SluicedConfig.parse(yaml: grown, file: "m.yaml")
            .makeSnapshot(portMACs: [MACAddress("02:00:00:00:00:01")!, MACAddress("02:00:00:00:00:02")!], previous: before)
        func record(_ s: DataPlaneSnapshot, _ service: Int, _ backend: Int) -> Int? {
            s.backendCounters.record(serviceID: Int(s.services.services[service].id), backend: backend)
        }
        #expect(record(after, 0, 1) == record(before, 0, 0))   // 198.51.100.11
        #expect(record(after, 0, 2) == record(before, 0, 1))   // 198.51.100.12
        #expect(record(after, 1, 0) == record(before, 1, 0))   // dns/v6's backend
        #expect(record(after, 0, 0) == 3)                       // the new one: a new record
    }

    @Test func tooManyBackendsAreRefusedWithTheField() throws {
        let backends = (0..<300).map { "{ address: 198.51.100.\($0 % 250 + 2), port: \(1000 + $0) }" }.joined(separator: ", ")
        let services = (0..<219).map { "  - { name: s\($0), vip: 192.0.2.10, protocol: tcp, port: \($0 + 1), backends: [\(backends)] }" }
        let yaml = """
        ports: [{ name: lan0, device: net_null0, addresses: ["192.0.2.2/24", "198.51.100.1/24"] }]
        vips: [{ address: 192.0.2.10, port: lan0 }]
        services:
        \(services.joined(separator: "\n"))
        """
        let config = try SluicedConfig.parse(yaml: yaml, file: "big.yaml")
        do {
            _ = try config.makeSnapshot(portMACs: [MACAddress("02:00:00:00:00:01")!], file: "big.yaml")
            Issue.record("65,700 backends accepted")
        } catch {
            #expect(error.field == "services")
            #expect(error.reason.contains("65700 backends in all"))
        }
    }
}

@Suite struct TelemetryShape {
    func sample() throws -> MetricsSample {
        let snapshot = try makeSnapshot()
        let w = WorkerCounters()
        w.countForward(slot: snapshot.backendCounters.slot(serviceID: Int(snapshot.services.services[0].id), backend: 1), bytes: 64)
        w.count(.transmit(.forwardToBackend))
        w.countDrop(.noBackend)
        return MetricsSample(ports: [], workers: [(0, 3, w)], snapshot: snapshot,
                             conntrack: ConntrackSample(live: 2, expired: 0, capacity: 1024), generation: 1)
    }

    func names(_ r: TelemetryReply) -> [String] {
        guard case .dict(let entries) = r else { return [] }
        return entries.map(\.0)
    }

    func value(_ r: TelemetryReply, _ name: String) -> TelemetryValue? {
        guard case .dict(let entries) = r else { return nil }
        return entries.first { $0.0 == name }?.1
    }

    /// What DPDK 22.11 accepts: valid names, at most 256 entries, unique keys.
    @Test func repliesFitRteTelData() throws {
        let s = try sample()
        for reply in [TelemetryCommands.reply("/sluice/stats", parameter: nil, sample: s),
                      TelemetryCommands.reply("/sluice/workers", parameter: "0", sample: s),
                      TelemetryCommands.reply("/sluice/services", parameter: "dns/v6", sample: s)] {
            let n = names(reply)
            #expect(!n.isEmpty)
            #expect(n.count <= TelemetryReply.maxDictEntries)
            #expect(Set(n).count == n.count)
            for name in n { #expect(TelemetryReply.isValidName(name), "\(name)") }
        }
        for (command, _) in TelemetryCommands.help { #expect(TelemetryReply.isValidName(command)) }
    }

    @Test func statsAndServicesCarryTheCounters() throws {
        let s = try sample()
        let stats = TelemetryCommands.reply("/sluice/stats", parameter: nil, sample: s)
        #expect(value(stats, "forward_to_backend") == .u64(1))
        #expect(value(stats, "drop_no_backend") == .u64(1))
        #expect(value(stats, "drops") == .u64(1))
        #expect(value(stats, "conntrack_capacity") == .u64(1024))
        #expect(value(stats, "snapshot_generation") == .u64(1))
        let web = TelemetryCommands.reply("/sluice/services", parameter: "web", sample: s)
        #expect(value(web, "backends") == .stringArray(["198.51.100.11:8080", "198.51.100.12:8080"]))
        #expect(value(web, "backend_packets") == .u64Array([0, 1]))
        #expect(value(web, "backend_bytes") == .u64Array([0, 64]))
        #expect(value(web, "packets") == .u64(1))
        #expect(value(web, "vip") == .string("192.0.2.10"))
        #expect(TelemetryCommands.reply("/sluice/services", parameter: nil, sample: s) == .stringArray(["web", "dns/v6"]))
        #expect(TelemetryCommands.reply("/sluice/workers", parameter: nil, sample: s) == .u64Array([0]))
        #expect(value(TelemetryCommands.reply("/sluice/workers", parameter: "0", sample: s), "lcore") == .u64(3))
    }

    @Test func unknownParametersAreRefused() throws {
        let s = try sample()
        #expect(TelemetryCommands.reply("/sluice/services", parameter: "nope", sample: s) == .invalidParameter)
        #expect(TelemetryCommands.reply("/sluice/workers", parameter: "1", sample: s) == .invalidParameter)
        #expect(TelemetryCommands.reply("/sluice/workers", parameter: "x", sample: s) == .invalidParameter)
        #expect(TelemetryCommands.reply("/sluice/stats", parameter: "0", sample: s) == .invalidParameter)
        #expect(TelemetryCommands.reply("/sluice/other", parameter: nil, sample: s) == .invalidParameter)
    }
}
