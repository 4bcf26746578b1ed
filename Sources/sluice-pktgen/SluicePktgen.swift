import ArgumentParser
import CDPDK
import Foundation
import SluiceCore
import SluiceDPDK
import SluicePktgen

/// `sluice-pktgen --tx-port SPEC --rx-port SPEC [traffic options] [-- EAL-OPTIONS...]`
///
/// Exit status: 0 after a run (whatever its loss), 2 for a rejected plan or option, 1 when DPDK
/// setup fails or a link does not come up.
@main
struct SluicePktgenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-pktgen",
        abstract: "A DPDK traffic generator for benchmarking sluiced (docs/pktgen.md).",
        discussion: """
            Sends generated flows out of --tx-port (the clients' side of the load balancer) and \
            receives on --rx-port (the backends' side), checking that every flow always reached \
            the same backend, measuring latency from a TSC stamp in each packet, and counting loss. \
            Ports are DPDK device specs, e.g. \
            net_memif0,role=client,socket=/tmp/lb-clients.sock,socket-abstract=no. \
            Unless the EAL options after -- set them, `-l 0` and a per-process --file-prefix are added.
            """)

    @Option(name: .customLong("tx-port"), help: ArgumentHelp("Device spec of the transmitting port.", valueName: "spec"))
    var txPort: String
    @Option(name: .customLong("rx-port"), help: ArgumentHelp("Device spec of the receiving port (default: the transmitting one).", valueName: "spec"))
    var rxPort: String?
    @Option(help: ArgumentHelp("Scenario YAML file (flags given here override it).", valueName: "file"))
    var scenario: String?
    @Option(name: .customLong("target"), help: ArgumentHelp("VIP:PORT or [VIP6]:PORT; repeat for several.", valueName: "vip:port"))
    var targets: [String] = []
    @Option(help: "syn | established | udp | handshake (whole TCP connections, pktgen answering as the backends)")
    var traffic: String?
    @Option(help: "Number of flows (1...10000000).")
    var flows: Int?
    @Option(help: "uniform | zipf")
    var popularity: String?
    @Option(name: .customLong("zipf-exponent"), help: "Zipf exponent s (P(k) ∝ k^-s).")
    var zipfExponent: Double?
    @Option(help: "Wire frame size (FCS included), imix, or smallest (the default: 64 for IPv4).")
    var size: String?
    @Option(help: "Packets per second (0: as fast as the port takes them).")
    var rate: Double?
    @Option(help: "Seconds of measured sending.")
    var duration: Double?
    @Option(help: "Packets to send in the measured phase (0: no count bound).")
    var packets: UInt64?
    @Flag(inversion: .prefixedNo, help: "Send every flow once before measuring.")
    var warmup: Bool?
    @Option(help: "Handshake traffic: connections open at once at most (0: no limit; default 512).")
    var concurrency: Int?
    @Option(name: .customLong("client-network"), help: "Source network of the flows (203.0.113.0/24; IPv6 2001:db8:ffff::/64).")
    var clientNetwork: String?
    @Option(name: .customLong("dst-mac"), help: "Destination MAC of every frame (the balancer port's).")
    var dstMAC: String?
    @Option(name: .customLong("drain-ms"), help: "Longest wait for packets in flight after sending.")
    var drainMilliseconds: Int = 1_000
    @Option(name: .customLong("interval-ms"), help: "Rate-over-time sample period (0: none).")
    var intervalMilliseconds: Int = 100
    @Option(name: .customLong("link-timeout-ms"), help: "How long to wait for the links (memif: for the peer).")
    var linkTimeoutMilliseconds: Int = 10_000
    @Option(name: .customLong("wait-peer-close-ms"), help: ArgumentHelp(
        "After reporting, keep the ports open until the peer closes its side (links down), at most this long.",
        discussion: "With net_memif, a peer that keeps polling while the other side disconnects can crash in DPDK 22.11's memif PMD: stop the load balancer first, then let sluice-pktgen close."))
    var waitPeerCloseMilliseconds: Int = 0
    @Option(help: "Mbufs in the pool.")
    var mbufs: Int = 16_383
    @Flag(name: .customLong("no-verify-checksums"), help: "Do not verify returned packets' L4 checksums.")
    var noVerifyChecksums = false
    @Option(help: ArgumentHelp("Write the report as JSON here.", valueName: "file"))
    var json: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("EAL options (after --).", valueName: "eal-option"))
    var ealOptions: [String] = []

    /// The plan: defaults, then the scenario file, then flags. Throws a PlanError naming the field.
    func makePlan() throws(PlanError) -> TrafficPlan {
        var plan = TrafficPlan()
        if let scenario {
            guard let text = try? String(contentsOfFile: scenario, encoding: .utf8) else {
                throw PlanError(field: "--scenario", reason: "cannot read \(scenario)")
            }
            try ScenarioFile.apply(text, to: &plan)
        }
        if !targets.isEmpty { plan.targets = try ScenarioFile.parseTargets(targets, field: "--target") }
        if let traffic { plan.kind = try ScenarioFile.parseKind(traffic, field: "--traffic") }
        if let flows { plan.flows = flows }
        if let popularity {
            plan.popularity = try ScenarioFile.parsePopularity(popularity, exponent: zipfExponent, field: "--popularity")
        } else if let zipfExponent, case .zipf = plan.popularity {
            plan.popularity = .zipf(exponent: zipfExponent)
        }
        if let size { plan.sizes = try ScenarioFile.parseSizes(size, field: "--size") }
        if let rate { plan.ratePPS = rate }
        if let duration { plan.durationSeconds = duration }
        if let packets { plan.packets = packets }
        if let warmup { plan.warmup = warmup }
        if let concurrency { plan.concurrency = concurrency }
        if let clientNetwork { try ScenarioFile.applyClientNetwork(clientNetwork, to: &plan, field: "--client-network") }
        if let dstMAC { plan.destinationMAC = try ScenarioFile.parseMAC(dstMAC, field: "--dst-mac") }
        if let problem = plan.validate() { throw problem }
        if plan.kind == .handshake && (rxPort == nil || rxPort == txPort) {
            // Each end answers what arrives at it: the two ends must be told apart by port.
            throw PlanError(field: "--rx-port", reason: "handshake traffic needs the backends' side on a port of its own")
        }
        return plan
    }

    func run() throws {
        let plan: TrafficPlan
        do {
            plan = try makePlan()
        } catch {
            FileHandle.standardError.write(Data("sluice-pktgen: \(error)\n".utf8))
            throw ExitCode(2)
        }
        signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
        do {
            try Session(plan: plan, command: self).run { report in
                print(report.humanSummary())
                if let json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    do {
                        // Written whole to a temporary name, then renamed: a watcher never reads half a file.
                        try encoder.encode(report).write(to: URL(fileURLWithPath: json + ".tmp"))
                        _ = rename(json + ".tmp", json)
                    } catch {
                        FileHandle.standardError.write(Data("sluice-pktgen: --json \(json): \(error)\n".utf8))
                    }
                }
            }
        } catch {
            FileHandle.standardError.write(Data("sluice-pktgen: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// The EAL command line: program name, `-l 0` and a file prefix unless given, the options
    /// after --, then one device option per port.
    func ealArguments(devices: [DeviceSpec]) -> [String] {
        var arguments = ["sluice-pktgen"]
        let given = ealOptions
        if !given.contains(where: { $0 == "-l" || $0 == "-c" || $0.hasPrefix("--lcores") || ($0.hasPrefix("-l") && !$0.hasPrefix("--")) }) {
            arguments += ["-l", "0"]
        }
        if !given.contains(where: { $0.hasPrefix("--file-prefix") }) {
            arguments += ["--file-prefix", "sluice-pktgen-\(getpid())"]
        }
        arguments += given
        for device in devices { arguments += device.ealArguments }
        return arguments
    }
}

/// One run: EAL, pool, ports, templates, the phases, the report.
struct Session {
    let plan: TrafficPlan
    let command: SluicePktgenCommand

    func run(deliver: (Report) -> Void) throws(DPDKError) {
        let txDevice = DeviceSpec(command.txPort)
        let rxDevice = command.rxPort.map(DeviceSpec.init) ?? txDevice
        let devices = rxDevice == txDevice ? [txDevice] : [txDevice, rxDevice]
        try EAL.initialize(arguments: command.ealArguments(devices: devices))
        defer { EAL.cleanup() }
        let pool = try Mempool(name: "pktgen_mbufs", mbufs: command.mbufs, cacheSize: 256, dataRoom: 2176, socket: -1)
        defer { pool.release() }
        var ports: [SluiceDPDK.Port] = []
        defer { for port in ports.reversed() { _ = port.close() } }
        for (i, device) in devices.enumerated() {
            let port = try SluiceDPDK.Port(name: i == 0 ? "tx" : "rx", device: device)
            ports.append(port)
            try port.configure(queues: 1, rxDescriptors: 1024, txDescriptors: 1024, mtu: nil, rxInterrupts: false, pool: pool)
            try port.start()
            do { try port.enablePromiscuous() } catch { FileHandle.standardError.write(Data("sluice-pktgen: \(error)\n".utf8)) }
        }
        for port in ports {
            let state = port.waitForLink(timeoutMilliseconds: command.linkTimeoutMilliseconds)
            guard state?.up ?? false else {
                throw DPDKError(subject: port.subject, operation: "link",
                                reason: "still down after \(command.linkTimeoutMilliseconds) ms (is the peer running?)")
            }
        }
        let tx = ports[0]
        let rx = ports.count > 1 ? ports[1] : ports[0]
        let templates = TemplateSet(plan: plan, sourceMAC: tx.mac, destinationMAC: plan.destinationMAC ?? .broadcast)
        defer { templates.release() }
        let maxLength = plan.kind == .handshake ? HandshakeSegments(plan: plan, verifyChecksums: false).maxLength : templates.maxLength
        guard maxLength <= pool.frameCapacity else {
            throw DPDKError(subject: "mempool", operation: "frame size",
                            reason: "frames of \(maxLength) bytes do not fit \(pool.frameCapacity)-byte mbufs")
        }
        let hz = EAL.tscHz
        let generator = Generator(txPort: tx.id, rxPort: rx.id, pool: pool.pointer, templates: templates, plan: plan,
                                  verifyChecksums: !command.noVerifyChecksums, tscHz: hz, sourceMAC: tx.mac)
        let drain = Double(command.drainMilliseconds) / 1000
        let drainIdle = min(drain, 0.2)
        print("sluice-pktgen: tx \(tx.subject) mac \(tx.mac), rx \(rx.subject); \(plan.flows) \(plan.kind.rawValue) flows to "
              + plan.targets.map(\.description).joined(separator: ", ") + ", tsc \(hz / 1_000_000) MHz")
        var probes = 0
        if plan.kind == .handshake {
            // A first connection must complete before the measured phase: a balancer whose
            // workers are still starting would hold the first SYNs and inflate the connect time.
            // One SYN (flow 0) a second; the phase's time bound frees one the port refuses.
            let probeStart = Date()
            var completed = false
            while !completed && Date().timeIntervalSince(probeStart) * 1000 < Double(command.linkTimeoutMilliseconds)
                    && !stopRequested.load(ordering: .relaxed) {
                let probe = generator.run(Generator.PhaseSpec(packets: 1, seconds: 1, ratePPS: 0, inOrder: true, recordLatency: false,
                                                              intervalTicks: 0, drainSeconds: 1, drainIdleSeconds: 1))
                probes += Int(probe.sent)
                completed = probe.received > 0
            }
            if stopRequested.load(ordering: .relaxed) { return }
            guard completed else {
                throw DPDKError(subject: "probe", operation: "handshake",
                                reason: "no connection completed through the balancer in \(command.linkTimeoutMilliseconds) ms "
                                    + "(does it route replies to the client network back out of the clients' port?)")
            }
            print("sluice-pktgen: probe connection completed after \(Int(Date().timeIntervalSince(probeStart) * 1000)) ms")
        }
        var warmupCounters: PhaseCounters?
        if plan.warmup {
            warmupCounters = generator.run(Generator.PhaseSpec(packets: UInt64(plan.flows), seconds: 0, ratePPS: plan.ratePPS, inOrder: true,
                                                 recordLatency: false, intervalTicks: 0, drainSeconds: drain,
                                                 drainIdleSeconds: drainIdle))
            print("sluice-pktgen: warm-up sent \(warmupCounters!.sent), received \(warmupCounters!.received)")
        }
        let interval = UInt64(Double(command.intervalMilliseconds) / 1000 * Double(hz))
        let measuredStart = Date()
        let counters = generator.run(Generator.PhaseSpec(packets: plan.packets, seconds: plan.durationSeconds, ratePPS: plan.ratePPS,
                                           inOrder: false, recordLatency: true, intervalTicks: interval,
                                           drainSeconds: drain, drainIdleSeconds: drainIdle))
        let portStats = ports.map { ($0.name, $0.statistics) }
        deliver(Report(plan: plan, command: command, tscHz: hz, warmup: warmupCounters, measured: counters,
                       measuredStart: measuredStart, probeConnections: probes, generator: generator, portStats: portStats))
        if command.waitPeerCloseMilliseconds > 0 {
            var waited = 0
            while waited < command.waitPeerCloseMilliseconds && ports.contains(where: { $0.link?.up ?? false }) {
                usleep(50_000)
                waited += 50
            }
            // The link reads down as soon as the interrupt thread starts handling the peer's
            // close; closing the port (and unmapping the EAL's memory) while that handler still
            // runs crashes DPDK 22.11's memif PMD. Give it time to finish.
            usleep(200_000)
        }
    }
}
