import SluiceConfig
import SluiceConntrack
import SluiceControl
import SluiceCore
import SluiceDataPlane
import SluiceDPDK
import SluiceMetrics
import SluiceMetricsHTTP

#if canImport(Glibc)
import Glibc
#endif

/// One `sluiced` process: start-up on the main lcore, the wait for a stop signal, shutdown.
///
/// Threads: the main lcore runs everything here; workers run `Worker.run` on their own lcores.
/// SIGINT and SIGTERM are blocked before the EAL creates any thread, so every thread inherits
/// the mask and the signals are only ever taken synchronously by `sigtimedwait` here: no
/// handler runs on a worker, and nothing async-signal-unsafe can happen. SIGHUP re-reads the
/// configuration file and publishes its services, VIPs, routes and neighbors live (`reload`).
final class Daemon {
    /// The configuration in force: the file as loaded at start, then as last reloaded.
    private(set) var config: SluicedConfig
    let mode: ForwardingMode
    let ealOptions: [String]
    let configPath: String
    private let stop = StopSignal()
    /// The load-balancing tables the workers share; kept alive here until they are joined.
    private var resources: PipelineResources?
    private var ealStarted = false
    private var pool: Mempool?
    private var ports: [Port] = []
    private var workers: [Worker] = []
    /// The control socket (issue 4), started once the workers run.
    private var control: ControlServer?
    /// What the metrics endpoint and the telemetry commands read; closed first in shutdown.
    private var metrics: LiveMetrics?
    private var metricsServer: MetricsHTTPServer?

    /// How long to wait for a link that is down at start before announcing anyway.
    static let linkWaitMilliseconds = 3_000
    /// How often the main lcore checks that every worker is still running.
    static let watchIntervalNanoseconds = 200_000_000

    init(config: SluicedConfig, forwardIO: Bool, ealOptions: [String], configPath: String) {
        self.config = config
        self.configPath = configPath
        self.mode = forwardIO || config.workers.mode == .io ? .io : .pipeline
        self.ealOptions = ealOptions
    }

    /// Checks that involve more than one field or the command line, made before the EAL starts.
    /// Returns `FILE: FIELD: REASON` (ConfigError's form), or nil when all is well.
    static func validate(_ config: SluicedConfig, forwardIO: Bool, file: String) -> String? {
        let main = config.workers.effectiveMainLcore
        if config.workers.lcores.isEmpty {
            return "\(file): workers.lcores: at least one worker lcore is required"
        }
        if config.workers.lcores.contains(main) {
            return "\(file): workers.main_lcore: lcore \(main) is also a worker lcore; the main lcore must be another one"
        }
        if forwardIO && config.ports.count != 2 {
            return "\(file): ports: --forward-io needs exactly two ports (has \(config.ports.count))"
        }
        // Reachability of every backend and the Maglev tables depend only on the file: build the
        // snapshot once with stand-in MACs so these errors, too, come before the EAL.
        do {
            _ = try config.makeSnapshot(portMACs: config.ports.map { _ in MACAddress(value: 0x02_00_00_00_00_01) }, file: file)
        } catch {
            return error.description
        }
        return nil
    }

    /// Runs until SIGINT or SIGTERM; returns the exit status.
    func run() -> Int32 {
        Daemon.blockStopSignals()
        do {
            try start()
        } catch {
            Log.error(error.description)
            _ = shutdown(reason: "start-up failed")
            return 1
        }
        let stopped = waitForStop()
        let workersFailed = shutdown(reason: stopped.reason)
        return stopped.clean && !workersFailed ? 0 : 1
    }

    // MARK: - Start-up

    private func start() throws(DPDKError) {
        let arguments = EALArguments(config: config, extra: ealOptions).arguments
        try EAL.initialize(arguments: arguments)
        ealStarted = true
        try checkLcores()

        let firstWorkerSocket = EAL.socket(ofLcore: config.workers.lcores[0])
        let pool = try Mempool(name: "sluiced_mbufs", mbufs: config.mempool.mbufs, cacheSize: config.mempool.cacheSize,
                               dataRoom: config.mempool.dataRoom, socket: firstWorkerSocket)
        self.pool = pool

        let idle = Daemon.idlePolicy(config.workers.idle)
        let vxlanPorts = Daemon.vxlanEgressPorts(config)
        for (index, portConfig) in config.ports.enumerated() {
            let port = try Port(name: portConfig.name, device: DeviceSpec(portConfig.device))
            ports.append(port)
            try port.configure(queues: config.workers.lcores.count, rxDescriptors: portConfig.rxDescriptors,
                               txDescriptors: portConfig.txDescriptors, mtu: portConfig.mtu,
                               rxInterrupts: idle.mode == .interrupt, txIPv4Checksum: vxlanPorts.contains(index),
                               pool: pool)
            if let mac = portConfig.mac, mac != port.mac {
                do {
                    try port.setMAC(mac)
                } catch {
                    Log.error("\(error); answering as \(mac) anyway (the port is promiscuous)")
                    port.assumeMAC(mac)
                }
            }
            if port.mac == .zero {
                Log.error("\(port.subject): the device has no MAC address (00:00:00:00:00:00); set ports[].mac")
            }
            try port.start()
            do {
                try port.enablePromiscuous()
            } catch {
                Log.error("\(error); frames to VIP MACs other than \(port.mac) may not arrive")
            }
        }

        let snapshot: DataPlaneSnapshot
        do {
            snapshot = try config.makeSnapshot(portMACs: ports.map(\.mac), portMTUs: ports.map(\.effectiveMTU), file: configPath)
        } catch {
            throw DPDKError(subject: "config", operation: "services", reason: error.description)
        }
        let owned = snapshot.ports.map(\.owned)
        if mode == .pipeline {
            for (port, addresses) in zip(ports, owned) { announce(addresses, on: port, pool: pool) }
        }
        for (port, addresses) in zip(ports, owned) { Output.line(Daemon.describe(port, addresses)) }
        for service in snapshot.services.services {
            Output.line("service \(service.name): \(service.mode) \(Daemon.describeVIP(service)) backends=\(service.backendCount) maglev=\(service.maglev.size)")
        }
        let flows: FlowTable
        do {
            // Committed up front (MAP_POPULATE): first-touch faults of a large table, transparent
            // huge pages above all, would otherwise stall the workers' expiry sweep for seconds.
            flows = try FlowTable(FlowTable.Configuration(capacity: config.flows.capacity, prefault: true))
        } catch {
            throw DPDKError(subject: "flows", operation: "allocate", reason: "\(error)")
        }
        let neighbors = NeighborTable()
        for (address, mac) in config.neighbors { neighbors.learn(address.mapped, mac: mac, now: 0, permanent: true) }
        let resources = try PipelineResources(snapshot: snapshot, neighbors: neighbors, flows: flows, pool: pool,
                                              maxWorkers: config.workers.lcores.count)
        self.resources = resources

        for (index, lcore) in config.workers.lcores.enumerated() {
            let queues = ports.indices.map { p in
                // io mode forwards each burst to the peer port; the pipeline's lane p buffers
                // frames leaving by port p (the pipeline picks the lane).
                WorkerQueue(port: ports[p].id, queue: UInt16(index),
                            transmitPort: mode == .io ? ports[Daemon.peer(of: p, in: ports.count)].id : ports[p].id,
                            txIPv4Checksum: mode == .pipeline && (ports[p].setup?.txIPv4Checksum ?? false),
                            rxIPv4Checksum: mode == .pipeline && (ports[p].setup?.rxIPv4Checksum ?? false))
            }
            let worker = Worker(index: index, lcore: lcore, queues: queues, mode: mode, idle: idle,
                                txDrainMicroseconds: config.workers.txDrainMicroseconds, stop: stop,
                                counters: WorkerCounters(), resources: resources,
                                icmpErrorsPerSecond: config.workers.icmpErrorsPerSecond)
            try worker.launch()
            workers.append(worker)
        }
        startMetrics(resources: resources)
        Output.line("sluiced: \(workers.count) worker(s) on lcore(s) \(config.workers.lcores.map(String.init).joined(separator: ",")), "
                    + "main lcore \(EAL.mainLcore), mode \(mode.rawValue), idle \(idle.mode.rawValue), "
                    + "tsc \(EAL.tscHz / 1_000_000) MHz")
        if !config.services.isEmpty && config.flows.hashSeed == FlowConfig.defaultSeed {
            // The built-in key is public: anyone can craft flows that collide in the flow table
            // or all pick one backend. Every LB host of one ECMP group needs the same secret seed.
            Log.error("flows.hash_seed is the built-in default; set a secret 32-hex-digit seed (the same on every LB host)")
        }
        try startControl(resources: resources)
        Output.line("sluiced: running")
    }

    /// Opens the control socket on its own thread (not an lcore). Without a `control` section a
    /// failure is logged and sluiced forwards without the socket; with one, start-up fails.
    private func startControl(resources: PipelineResources) throws(DPDKError) {
        guard config.control.enabled else { return }
        do throws(ControlServerError) {
            let options = try ControlServerOptions(config.control)
            // `metrics` is read at each publication: it may start after the control socket.
            let target = DaemonControlTarget(resources: resources, ports: ports, workers: workers,
                                             willPublish: { [weak self] in self?.metrics?.willPublish($0) })
            let server = ControlServer(options: options, plane: ControlPlane(config: config, target: target))
            try server.start()
            control = server
            Output.line("sluiced: control socket \(options.path)")
        } catch {
            guard config.control.isExplicit else {
                Log.error("control socket not opened: \(error) (forwarding without it)")
                return
            }
            throw DPDKError(subject: "control", operation: "socket", reason: error.description)
        }
    }

    /// The DPDK telemetry commands, and the Prometheus endpoint unless `metrics.enabled` is
    /// false. An endpoint that cannot listen is reported and left off: forwarding goes on.
    private func startMetrics(resources: PipelineResources) {
        let live = LiveMetrics(ports: ports, workers: workers, resources: resources)
        metrics = live
        for failure in Telemetry.register(sample: { live.sample() }) { Log.error(failure) }
        guard config.metrics.enabled else { return }
        let listen = config.metrics.listen
        let host = switch listen.host {
        case .v4(let a): a.description
        case .v6(let a): a.description
        }
        do {
            let server = try MetricsHTTPServer(host: host, port: Int(listen.port)) { live.sample()?.prometheusText }
            metricsServer = server
            Output.line("metrics: listening on \(server.url)")
        } catch {
            Log.error("metrics.listen: cannot listen on \(listen): \(error); the Prometheus endpoint is off")
        }
    }

    /// Every worker lcore must be one the EAL runs, and none may be the main lcore (which runs
    /// this control loop and is never given to rte_eal_remote_launch).
    private func checkLcores() throws(DPDKError) {
        let main = EAL.mainLcore
        for lcore in config.workers.lcores {
            guard EAL.isEnabled(lcore: lcore) else {
                throw DPDKError(subject: "workers", operation: "lcore \(lcore)",
                                reason: "not in the EAL's lcore set (check -l / --lcores after --)")
            }
            guard lcore != main else {
                throw DPDKError(subject: "workers", operation: "lcore \(lcore)",
                                reason: "is the EAL main lcore; the main lcore cannot be a worker")
            }
        }
    }

    /// Ports that VXLAN leaves by in the configuration at start: those get the IPv4 header
    /// checksum TX offload (services added later by reload use the software checksum elsewhere).
    static func vxlanEgressPorts(_ config: SluicedConfig) -> Set<Int> {
        guard let snapshot = try? config.makeSnapshot(portMACs: config.ports.map { _ in MACAddress(value: 0x02_00_00_00_00_01) }) else {
            return []
        }
        var ports = Set<Int>()
        for service in snapshot.services.services where service.mode == .vxlan {
            for backend in service.backends { ports.insert(Int(backend.egressPort)) }
        }
        return ports
    }

    /// io mode's forwarding pairs: 0 ↔ 1, 2 ↔ 3, …; a lone last port forwards to itself.
    static func peer(of port: Int, in count: Int) -> Int {
        let peer = port ^ 1
        return peer < count ? peer : port
    }

    static func idlePolicy(_ idle: IdleConfig) -> IdlePolicy {
        let mode: IdlePolicy.Mode = switch idle.mode {
        case .poll: .poll
        case .sleep: .sleep
        case .interrupt: .interrupt
        }
        return IdlePolicy(mode: mode, emptyPollsBeforeBackoff: idle.emptyPollsBeforeBackoff,
                          sleepMicroseconds: idle.sleepMicroseconds)
    }

    /// Gratuitous ARP / unsolicited NA for the port's VIPs, on TX queue 0 from the main lcore:
    /// the workers are not running yet, so queue 0 has no other user.
    private func announce(_ owned: OwnedAddresses, on port: Port, pool: Mempool) {
        guard !owned.ipv4Addresses.isEmpty || !owned.ipv6Addresses.isEmpty else { return }
        if !(port.link?.up ?? false) {
            let state = port.waitForLink(timeoutMilliseconds: Daemon.linkWaitMilliseconds)
            if !(state?.up ?? false) {
                Log.error("\(port.subject): link still down after \(Daemon.linkWaitMilliseconds) ms; announcing anyway")
            }
        }
        let report = Announcer.announce(owned, on: port, queue: 0, pool: pool)
        if report.failed > 0 {
            Log.error("\(port.subject): \(report.failed) of \(report.sent + report.failed) announcements not sent")
        }
    }

    static func describeVIP(_ service: Service) -> String {
        let vip = service.vip.isIPv4Mapped ? IPv4Address(value: service.vip.ipv4Value).description : service.vip.description
        let proto = service.proto == IPProtocol.tcp ? "tcp" : service.proto == IPProtocol.udp ? "udp" : "sctp"
        return service.port == 0 ? "\(vip) \(proto) all-ports" : "\(vip):\(service.port)/\(proto)"
    }

    /// `rx,tx`, `rx`, `tx` or `off`: which IPv4 header checksums the port handles.
    static func describeOffload(_ setup: PortSetup?) -> String {
        let sides = [setup?.rxIPv4Checksum == true ? "rx" : nil, setup?.txIPv4Checksum == true ? "tx" : nil].compactMap { $0 }
        return sides.isEmpty ? "off" : sides.joined(separator: ",")
    }

    static func describe(_ port: Port, _ owned: OwnedAddresses) -> String {
        let link = port.link.map { $0.up ? "up speed=\($0.speedMbps) duplex=\($0.fullDuplex ? "full" : "half")" : "down" }
            ?? "unknown"
        let setup = port.setup
        let vips = owned.ipv4Addresses.map { $0.0.description } + owned.ipv6Addresses.map { $0.0.description }
        return "port \(port.name): dpdk_port=\(port.id) device=\(port.device.spec) driver=\(port.driver) mac=\(port.mac) "
            + "link=\(link) queues=\(setup?.queues ?? 0) rxd=\(setup?.rxDescriptors ?? 0) txd=\(setup?.txDescriptors ?? 0) "
            + "mtu=\(setup?.mtu ?? 0) rss=\(setup.map { $0.rssHashFunctions == 0 ? "off" : "0x" + String($0.rssHashFunctions, radix: 16) } ?? "off") "
            + "rx_interrupts=\(setup?.rxInterrupts ?? false ? "on" : "off") fast_free=\(setup?.fastFree ?? false ? "on" : "off") "
            + "ipv4_checksum_offload=\(describeOffload(setup)) "
            + "vips=\(vips.isEmpty ? "none" : vips.joined(separator: ","))"
    }

    // MARK: - Running

    private static func stopSignalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGHUP)
        return set
    }

    /// Must run before rte_eal_init: threads the EAL creates inherit this mask.
    private static func blockStopSignals() {
        var set = stopSignalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for SIGINT/SIGTERM, checking every 200 ms that no worker has returned on its own.
    private func waitForStop() -> (reason: String, clean: Bool) {
        var set = Daemon.stopSignalSet()
        var timeout = timespec(tv_sec: 0, tv_nsec: Daemon.watchIntervalNanoseconds)
        while true {
            let signal = sigtimedwait(&set, nil, &timeout)
            if signal == SIGINT { return ("SIGINT", true) }
            if signal == SIGTERM { return ("SIGTERM", true) }
            if signal == SIGHUP { reload() }
            if let gone = workers.first(where: { !$0.isRunning }) {
                Log.error("worker \(gone.index) (lcore \(gone.lcore)) stopped on its own")
                return ("worker \(gone.index) stopped", false)
            }
        }
    }

    /// SIGHUP: loads the configuration file again and, if it is valid and changes only what can
    /// change live, publishes the new snapshot (flows keep their backends where those remain).
    /// A rejected file changes nothing; the error names the field.
    func reload() {
        guard let resources, mode == .pipeline else {
            Log.error("reload: ignored (no load-balancing pipeline in this mode)")
            return
        }
        do throws(ConfigError) {
            let next = try SluicedConfig.load(path: configPath)
            try config.checkLiveChange(to: next, file: configPath)
            if let control {
                // One writer: the reload is a change like any other on the control thread's
                // state (serialised with socket requests; subscribers are told).
                let generation = try control.withPlane { plane throws(ConfigError) in
                    try plane.replaceConfiguration(next, reason: "reload")
                }
                config = next
                Output.line("sluiced: reloaded \(configPath): generation \(generation), \(next.services.count) service(s)")
                return
            }
            let snapshot = try next.makeSnapshot(portMACs: ports.map(\.mac), portMTUs: ports.map(\.effectiveMTU),
                                                 file: configPath, previous: resources.snapshot)
            for (address, mac) in next.neighbors { resources.neighbors.learn(address.mapped, mac: mac, now: 0, permanent: true) }
            metrics?.willPublish(snapshot)
            let generation = resources.publish(snapshot)
            config = next
            Output.line("sluiced: reloaded \(configPath): generation \(generation), \(snapshot.services.count) service(s)")
        } catch {
            Log.error("reload rejected, configuration unchanged: \(error.description)")
        }
    }

    // MARK: - Shutdown

    /// Stops and joins the workers, reports, closes ports, frees the pool, cleans up the EAL.
    /// Safe to call after a partial start. Returns true when a worker reported failure.
    private func shutdown(reason: String) -> Bool {
        // The control thread publishes to the workers: it stops first.
        control?.stop()
        control = nil
        // Then metrics: no sample may read a port or a worker being torn down.
        metricsServer?.stop()
        metrics?.close()
        stop.request()
        var failed = false
        for worker in workers {
            let status = worker.wait()
            if status != 0 {
                Log.error("worker \(worker.index) (lcore \(worker.lcore)) returned \(status)")
                failed = true
            }
        }

        let hz = ealStarted ? EAL.tscHz : 0
        for port in ports where !workers.isEmpty {
            guard let s = port.statistics else { continue }
            Output.line("port \(port.name): stats rx_packets=\(s.rxPackets) tx_packets=\(s.txPackets) "
                        + "rx_missed=\(s.rxMissed) rx_no_mbuf=\(s.rxNoMbuf) rx_errors=\(s.rxErrors) tx_errors=\(s.txErrors)")
        }
        for port in ports.reversed() {
            if let error = port.close() { Log.error(error.description) }
        }
        pool?.release()
        if ealStarted { EAL.cleanup() }

        guard !workers.isEmpty else { return failed }
        let counters = workers.map(\.counters)
        for line in CounterSnapshot(summing: counters).lines { Output.line("counter " + line) }
        Output.line(Daemon.summary(counters, tscHz: hz, reason: reason))
        return failed
    }

    /// `sluiced: stopped by SIGINT after 10.001 s: 123 packets received, 12.300 Mpps, busy 99.9%`.
    /// Elapsed time is the longest worker's loop time, from its own TSC cycle count.
    static func summary(_ counters: [WorkerCounters], tscHz: UInt64, reason: String) -> String {
        let received = counters.reduce(UInt64(0)) { $0 &+ $1.read(.rxPackets) }
        let cycles = counters.map { $0.read(.totalCycles) }.max() ?? 0
        let busy = counters.reduce(UInt64(0)) { $0 &+ $1.read(.busyCycles) }
        let total = counters.reduce(UInt64(0)) { $0 &+ $1.read(.totalCycles) }
        let seconds = tscHz > 0 ? Double(cycles) / Double(tscHz) : 0
        let mpps = seconds > 0 ? Double(received) / seconds / 1e6 : 0
        let busyShare = total > 0 ? 100 * Double(busy) / Double(total) : 0
        return "sluiced: stopped by \(reason) after \(fixed(seconds, 3)) s: \(received) packets received, "
            + "\(fixed(mpps, 3)) Mpps, busy \(fixed(busyShare, 1))%"
    }

    static func fixed(_ value: Double, _ decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        let whole = Int(rounded)
        var fraction = String(Int(((rounded - Double(whole)) * scale).rounded()))
        while fraction.count < decimals { fraction = "0" + fraction }
        return decimals == 0 ? String(whole) : "\(whole).\(fraction)"
    }
}
