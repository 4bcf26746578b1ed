import CDPDK
import SluiceCore

#if canImport(Glibc)
import Glibc
#endif

/// How a configured `device` string becomes a DPDK port.
///
/// Devices are handed to the EAL on its command line, so they exist when rte_eal_init returns
/// (no hotplug, which needs the multi-process channel and differs between buses):
/// - a PCI address (`0000:01:00.0` or `01:00.0`, optionally followed by `,key=value` driver
///   arguments) becomes `-a SPEC`: the EAL then probes only the PCI devices Sluice was given;
/// - anything else is a virtual device spec (`net_af_packet0,iface=veth0`, `net_null0`,
///   `net_pcap0,rx_pcap=f.pcap`) and becomes `--vdev SPEC`.
/// The port is then found by its DPDK name: the text before the first comma, with the PCI
/// domain `0000:` added when it was left out.
public struct DeviceSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Bus: Sendable { case pci, virtual }
    public let spec: String
    public let bus: Bus
    /// The ethdev name DPDK gives the device (rte_eth_dev_get_port_by_name).
    public let name: String

    public init(_ spec: String) {
        self.spec = spec
        let head = String(spec.prefix { $0 != "," })
        if let address = DeviceSpec.normalizedPCIAddress(head) {
            bus = .pci
            name = address
        } else {
            bus = .virtual
            name = head
        }
    }

    /// The kernel interface a virtual device sits on (its `iface=` argument: af_packet, af_xdp).
    public var kernelInterface: String? { argument("iface") }

    /// The value of a virtual device's `name=value` argument.
    public func argument(_ name: String) -> String? {
        guard bus == .virtual else { return nil }
        for argument in spec.split(separator: ",").dropFirst() where argument.hasPrefix(name + "=") {
            return String(argument.dropFirst(name.count + 1))
        }
        return nil
    }

    /// The EAL arguments that make the EAL create or probe this device.
    public var ealArguments: [String] { bus == .pci ? ["-a", spec] : ["--vdev", spec] }

    public var description: String { spec }

    /// `DDDD:BB:DD.F` for `DDDD:BB:DD.F` or `BB:DD.F` (hex digits, function 0-7); nil otherwise.
    static func normalizedPCIAddress(_ text: String) -> String? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { return nil }
        let domain = parts.count == 3 ? parts[0] : "0000"
        let bus = parts[parts.count - 2]
        let deviceFunction = parts[parts.count - 1].split(separator: ".", omittingEmptySubsequences: false)
        func isHex(_ s: Substring, _ count: Int) -> Bool { s.count == count && s.allSatisfy(\.isHexDigit) }
        guard isHex(domain, 4), isHex(bus, 2), deviceFunction.count == 2, isHex(deviceFunction[0], 2),
              deviceFunction[1].count == 1, let function = Int(deviceFunction[1]), function < 8 else { return nil }
        return "\(domain):\(bus):\(deviceFunction[0]).\(function)".lowercased()
    }
}

/// Link state as the driver reports it right now.
public struct LinkState: Sendable, CustomStringConvertible {
    public var up: Bool
    public var speedMbps: Int
    public var fullDuplex: Bool

    public var description: String {
        guard up else { return "down" }
        let speed = speedMbps > 0 ? "\(speedMbps)Mbps" : "unknown-speed"
        return "up \(speed) \(fullDuplex ? "full-duplex" : "half-duplex")"
    }
}

/// The port's hardware counters (rte_eth_stats_get), for the exit report.
public struct PortStatistics: Sendable {
    public var rxPackets: UInt64, txPackets: UInt64, rxBytes: UInt64, txBytes: UInt64
    /// Dropped by the device because the RX ring was full (the worker fell behind).
    public var rxMissed: UInt64
    public var rxErrors: UInt64, txErrors: UInt64
    /// RX failed to get an mbuf: the pool was empty.
    public var rxNoMbuf: UInt64
}

/// What `Port.configure` set up, for the start-up report.
public struct PortSetup: Sendable {
    public var queues: Int
    public var rxDescriptors: Int
    public var txDescriptors: Int
    /// Hash functions RSS spreads on (RTE_ETH_RSS_* bits); 0 when RSS is off.
    public var rssHashFunctions: UInt64
    /// True when RX interrupts were requested and, once started, the driver has them (idle
    /// mode `interrupt` can arm them).
    public var rxInterrupts: Bool
    public var fastFree: Bool
    public var mtu: Int
    /// IPv4 header checksums verified on RX / computed on TX by the port.
    public var rxIPv4Checksum = false
    public var txIPv4Checksum = false
}

/// One DPDK Ethernet port, from lookup through configure, start, stop and close.
///
/// Queue model (as DPDK l3fwd): with N workers the port gets N RX and N TX queues; worker i
/// polls RX queue i and transmits on TX queue i, so no queue is ever shared between threads.
/// Before the workers launch, the main lcore may use TX queue 0 (announcements); afterwards
/// only worker 0 does. Methods here are for the main lcore only.
public final class Port: @unchecked Sendable {
    // Safe (@unchecked Sendable): mutable state is touched only by the main lcore, before the
    // workers launch and after they have been joined.
    public let name: String
    public let device: DeviceSpec
    public let id: UInt16
    public let driver: String
    /// NUMA socket of the device; -1 when unknown (every virtual device).
    public let socket: Int32
    public let maxRxQueues: Int
    public let maxTxQueues: Int
    public let rssHashCapabilities: UInt64
    public private(set) var mac: MACAddress
    public private(set) var setup: PortSetup?
    /// The MTU the port was set up with (`configure`: the configured one, else the device's),
    /// before that the device's own, else 1500. What the pipeline checks packets against.
    public var effectiveMTU: Int { setup?.mtu ?? (currentMTU > 0 ? currentMTU : 1500) }
    private var started = false
    private var closed = false

    /// `port NAME (DPDK-NAME)`: how every message about this port starts.
    public var subject: String { "port \(name) (\(device.name))" }

    /// Finds the port the EAL created for `device`. Call after `EAL.initialize`.
    public init(name: String, device: DeviceSpec) throws(DPDKError) {
        let subject = "port \(name) (\(device.name))"
        var id: UInt16 = 0
        let found = sl_port_by_name(device.name, &id)
        guard found == 0 else {
            let hint = device.bus == .pci
                ? "no such port; is the device bound to vfio-pci (or a bifurcated driver), and is --no-pci absent?"
                : "no such port; did the EAL accept --vdev \(device.spec)?"
            throw DPDKError(subject: subject, operation: "rte_eth_dev_get_port_by_name", reason: hint)
        }
        var info = sl_port_info()
        let ret = sl_port_info(id, &info)
        guard ret == 0 else { throw DPDKError(subject: subject, operation: "rte_eth_dev_info_get", code: ret) }
        self.name = name
        self.device = device
        self.id = id
        self.driver = String(cArray: info.driver)
        self.socket = info.socket
        self.maxRxQueues = Int(info.max_rx_queues)
        self.maxTxQueues = Int(info.max_tx_queues)
        self.rssHashCapabilities = info.rss_hash_functions
        self.mac = MACAddress(bytes: info.mac)
        // af_packet and af_xdp sit on a kernel interface whose MTU they do not report (DPDK's
        // default until one is set through them): ask the kernel.
        if let interface = device.kernelInterface, self.driver == "net_af_packet" || self.driver == "net_af_xdp" {
            let mtu = sl_kernel_interface_mtu(interface)
            var usable = mtu > 0 ? Int(mtu) : Int(info.mtu)
            if self.driver == "net_af_packet" {
                // Its ring frames hold `framesz` bytes (default 2048) after a 64-byte TPACKET2
                // header: a bigger packet is cut on RX and refused on TX. Cap the MTU there (an
                // Ethernet header and one VLAN tag besides), so that a bigger one gets ICMP
                // "too big" rather than vanishing.
                let frame = Int(device.argument("framesz") ?? "") ?? 2048
                usable = min(usable, frame - 64 - 18)
            }
            self.currentMTU = usable
        } else {
            self.currentMTU = Int(info.mtu)
        }
    }

    private let currentMTU: Int

    /// Bytes of a frame beyond its MTU that one mbuf must also hold: Ethernet header, two VLAN
    /// tags (QinQ) and the FCS. RX scatter is never enabled, so a frame must fit one mbuf.
    public static let frameOverhead = 14 + 2 * 4 + 4

    /// Configures `queues` RX and TX queue pairs (one per worker) with RSS when there is more
    /// than one and the device hashes, sets the MTU, and sets up every queue. Does not start.
    @discardableResult
    /// `txIPv4Checksum`: use the port's IPv4 header checksum TX offload if it has one (for
    /// ports that send VXLAN).
    public func configure(queues: Int, rxDescriptors: Int, txDescriptors: Int, mtu: Int?,
                          rxInterrupts: Bool, txIPv4Checksum: Bool = false, pool: Mempool) throws(DPDKError) -> PortSetup {
        guard queues >= 1, queues <= maxRxQueues, queues <= maxTxQueues else {
            throw DPDKError(subject: subject, operation: "queues",
                            reason: "\(queues) workers need \(queues) RX and TX queues; \(driver) offers "
                                + "\(maxRxQueues) RX and \(maxTxQueues) TX")
        }
        let effectiveMTU = mtu ?? (currentMTU > 0 ? currentMTU : 1500)
        guard effectiveMTU + Port.frameOverhead <= pool.frameCapacity else {
            throw DPDKError(subject: subject, operation: "mtu",
                            reason: "MTU \(effectiveMTU) needs \(effectiveMTU + Port.frameOverhead)-byte frames; "
                                + "mempool mbufs hold \(pool.frameCapacity) (raise mempool data room)")
        }
        var request = sl_port_setup()
        request.queues = UInt16(queues)
        request.rx_descriptors = UInt16(clamping: rxDescriptors)
        request.tx_descriptors = UInt16(clamping: txDescriptors)
        request.mtu = UInt16(clamping: mtu ?? 0)
        request.rss = queues > 1
        request.rx_interrupts = rxInterrupts
        request.tx_ipv4_checksum = txIPv4Checksum
        request.pool = pool.pointer
        var result = sl_port_setup_result()
        let ret = sl_port_configure(id, &request, &result)
        guard ret == 0 else {
            var call = result.failed_call.map { String(cString: $0) } ?? "configure"
            if result.failed_queue >= 0 { call += "(queue \(result.failed_queue))" }
            throw DPDKError(subject: subject, operation: call, code: ret)
        }
        let done = PortSetup(queues: queues, rxDescriptors: Int(result.rx_descriptors),
                             txDescriptors: Int(result.tx_descriptors),
                             rssHashFunctions: result.rss_hash_functions, rxInterrupts: result.rx_interrupts,
                             fastFree: result.fast_free, mtu: effectiveMTU,
                             rxIPv4Checksum: result.rx_ipv4_checksum, txIPv4Checksum: result.tx_ipv4_checksum)
        setup = done
        return done
    }

    /// Sets the port's own MAC (rte_eth_dev_default_mac_addr_set).
    public func setMAC(_ newMAC: MACAddress) throws(DPDKError) {
        var bytes = newMAC.bytes
        let ret = withUnsafeBytes(of: &bytes) { sl_port_set_mac(id, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        guard ret == 0 else { throw DPDKError(subject: subject, operation: "rte_eth_dev_default_mac_addr_set(\(newMAC))", code: ret) }
        mac = newMAC
    }

    /// Uses `newMAC` as the port's address without telling the device: for drivers that cannot
    /// change their MAC. Frames to it still arrive because the port is promiscuous.
    public func assumeMAC(_ newMAC: MACAddress) { mac = newMAC }

    /// Receives every frame, whatever its destination MAC: VIPs may have MACs of their own.
    public func enablePromiscuous() throws(DPDKError) {
        let ret = sl_port_promiscuous_enable(id)
        guard ret == 0 else { throw DPDKError(subject: subject, operation: "rte_eth_promiscuous_enable", code: ret) }
    }

    /// Starts the port. Drivers set up RX interrupt vectors only now, so this is also where
    /// `setup.rxInterrupts` learns whether the driver really has them.
    public func start() throws(DPDKError) {
        let ret = sl_port_start(id)
        guard ret == 0 else { throw DPDKError(subject: subject, operation: "rte_eth_dev_start", code: ret) }
        started = true
        if setup?.rxInterrupts == true && !sl_rx_interrupt_available(id, 0) { setup?.rxInterrupts = false }
    }

    /// Stops the port if it was started. Errors are returned for the log, not thrown: stopping
    /// happens on the way out, when there is nothing better to do than report.
    @discardableResult
    public func stop() -> DPDKError? {
        guard started else { return nil }
        started = false
        let ret = sl_port_stop(id)
        return ret == 0 ? nil : DPDKError(subject: subject, operation: "rte_eth_dev_stop", code: ret)
    }

    /// Stops (if needed) and closes the port, releasing its queues (and their mbufs).
    @discardableResult
    public func close() -> DPDKError? {
        guard !closed else { return nil }
        let stopError = stop()
        closed = true
        let ret = sl_port_close(id)
        return ret == 0 ? stopError : DPDKError(subject: subject, operation: "rte_eth_dev_close", code: ret)
    }

    /// The link state now, or nil when the driver cannot say.
    public var link: LinkState? {
        var state = sl_link()
        guard sl_port_link(id, &state) == 0 else { return nil }
        return LinkState(up: state.up, speedMbps: Int(state.speed_mbps), fullDuplex: state.full_duplex)
    }

    /// Polls the link every 100 ms until it is up or `timeoutMilliseconds` pass; returns the last state.
    public func waitForLink(timeoutMilliseconds: Int) -> LinkState? {
        var waited = 0
        while true {
            let state = link
            if state?.up ?? false || waited >= timeoutMilliseconds { return state }
            usleep(100_000)
            waited += 100
        }
    }

    public var statistics: PortStatistics? {
        var raw = sl_port_stats()
        guard sl_port_stats(id, &raw) == 0 else { return nil }
        return PortStatistics(rxPackets: raw.rx_packets, txPackets: raw.tx_packets, rxBytes: raw.rx_bytes,
                              txBytes: raw.tx_bytes, rxMissed: raw.rx_missed, rxErrors: raw.rx_errors,
                              txErrors: raw.tx_errors, rxNoMbuf: raw.rx_no_mbuf)
    }
}

extension MACAddress {
    /// From the 6-byte array C hands over (imported as a tuple), first octet on the wire first.
    init(bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
        self = withUnsafeBytes(of: bytes) { MACAddress.load($0.baseAddress!, 0) }
    }

    /// The six octets in wire order, as C's `uint8_t[6]`.
    var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) {
        var out: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &out) { store($0.baseAddress!, 0) }
        return out
    }
}
