import SluiceCore

/// What every generated packet carries so that the receive side can tell which flow it belongs
/// to and when it was sent, whatever the load balancer rewrote:
/// - the flow id: in TCP, the sequence number (a load balancer rewrites addresses and ports,
///   never the sequence space); in UDP, 4 bytes of payload after the timestamp;
/// - the timestamp: the low 48 bits of the sender's TSC in the first 6 payload bytes (48 bits
///   wrap after 34 hours at 2.3 GHz; a 64-byte IPv4 TCP frame has exactly 6 payload bytes).
public enum PacketStamp {
    public static let timestampBytes = 6
    public static let flowIDBytes = 4
    public static let timestampMask: UInt64 = (1 << 48) - 1
}

/// The client end of flow `i`: host `i % hosts` of the client network, source port
/// `1024 + i / hosts`. Distinct for every i below hosts × 64512 (TrafficPlan.validate checks).
public struct FlowSpace: Sendable {
    public let flows: Int
    public let hosts: UInt32
    /// First host address (network + 1).
    public let base4: UInt32
    public let base6: IPv6Address
    public let targetCount: Int

    public init(plan: TrafficPlan) {
        flows = plan.flows
        hosts = UInt32(clamping: plan.clientHosts)
        base4 = plan.clientNetwork4.0.value &+ 1
        base6 = IPv6Address(high: plan.clientNetwork6.0.high, low: plan.clientNetwork6.0.low &+ 1)
        targetCount = plan.targets.count
    }

    @inlinable @inline(__always)
    public func hostIndex(_ flow: UInt32) -> UInt32 { flow % hosts }
    @inlinable @inline(__always)
    public func sourcePort(_ flow: UInt32) -> UInt16 { UInt16(truncatingIfNeeded: 1024 &+ flow / hosts) }
    @inlinable @inline(__always)
    public func target(_ flow: UInt32) -> Int { Int(flow) % targetCount }

    public func sourceIPv4(_ flow: UInt32) -> IPv4Address { IPv4Address(value: base4 &+ hostIndex(flow)) }
    public func sourceIPv6(_ flow: UInt32) -> IPv6Address { IPv6Address(high: base6.high, low: base6.low &+ UInt64(hostIndex(flow))) }
}

/// One prebuilt frame (Ethernet + IP + TCP/UDP + zero payload) for one target and one size, with
/// the fields that vary per packet zero (source address and port, sequence number or flow id,
/// timestamp, both checksums) and the checksum sums of everything else computed once. Stamping
/// a packet copies the bytes and adds the varying fields to those sums (RFC 1071's sum is
/// linear: a zero field adds nothing, so adding its value later gives the full sum).
public struct PacketTemplate: @unchecked Sendable {
    // Safe (@unchecked Sendable): `bytes` is written once in init and only read afterwards.
    public let bytes: UnsafeMutableRawPointer
    /// Frame length written to the buffer (wire size minus the 4-byte FCS).
    public let length: Int
    public let isIPv4: Bool
    public let isUDP: Bool
    public let sourceAddressOffset: Int
    public let sourcePortOffset: Int
    /// TCP sequence number offset (TCP only).
    public let sequenceOffset: Int
    public let timestampOffset: Int
    /// UDP payload flow id offset (UDP only).
    public let flowIDOffset: Int
    public let ipChecksumOffset: Int
    public let l4ChecksumOffset: Int
    /// Sum of the IPv4 header with the source address and checksum zero.
    public let ipSum: UInt64
    /// Sum of the pseudo-header and the L4 segment with every varying field zero.
    public let l4Sum: UInt64

    /// Builds the template. `wireSize` includes the FCS; the caller validated it (TrafficPlan).
    public init(target: Target, kind: TrafficKind, wireSize: Int, sourceMAC: MACAddress, destinationMAC: MACAddress) {
        length = wireSize - FrameSizes.fcs
        bytes = UnsafeMutableRawPointer.allocate(byteCount: max(length, 64), alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0, count: max(length, 64))
        let p = bytes
        destinationMAC.store(p, 0)
        sourceMAC.store(p, 6)
        isUDP = kind == .udp
        let proto = isUDP ? IPProtocol.udp : IPProtocol.tcp
        let l3 = HeaderSize.ethernet
        let l4: Int
        switch target.address {
        case .v4(let vip):
            isIPv4 = true
            p.storeBE16(EtherType.ipv4, 12)
            p.storeBE8(0x45, l3)
            p.storeBE16(UInt16(length - l3), l3 + 2)
            p.storeBE16(0x4000, l3 + 6)          // don't fragment, id 0
            p.storeBE8(64, l3 + 8)
            p.storeBE8(proto, l3 + 9)
            p.storeBE32(vip.value, l3 + 16)
            sourceAddressOffset = l3 + 12
            ipChecksumOffset = l3 + 10
            l4 = l3 + HeaderSize.ipv4Minimum
        case .v6(let vip):
            isIPv4 = false
            p.storeBE16(EtherType.ipv6, 12)
            p.storeBE32(0x6000_0000, l3)
            p.storeBE16(UInt16(length - l3 - HeaderSize.ipv6), l3 + 4)
            p.storeBE8(proto, l3 + 6)
            p.storeBE8(64, l3 + 7)
            vip.store(p, l3 + 24)
            sourceAddressOffset = l3 + 8
            ipChecksumOffset = -1
            l4 = l3 + HeaderSize.ipv6
        }
        let l4Length = length - l4
        sourcePortOffset = l4
        p.storeBE16(target.port, l4 + 2)
        if isUDP {
            p.storeBE16(UInt16(l4Length), l4 + 4)
            l4ChecksumOffset = l4 + 6
            sequenceOffset = -1
            timestampOffset = l4 + HeaderSize.udp
            flowIDOffset = timestampOffset + PacketStamp.timestampBytes
        } else {
            sequenceOffset = l4 + 4
            // established: ACK (with PSH when there is data beyond the stamp); syn: SYN only.
            if kind == .syn {
                p.storeBE8(0x02, l4 + 13)
            } else {
                p.storeBE32(1, l4 + 8)           // acknowledgment number
                p.storeBE8(0x18, l4 + 13)        // PSH | ACK
            }
            p.storeBE8(0x50, l4 + 12)            // data offset 5 words
            p.storeBE16(64_240, l4 + 14)         // window
            l4ChecksumOffset = l4 + 16
            timestampOffset = l4 + HeaderSize.tcpMinimum
            flowIDOffset = -1
        }
        if isIPv4 {
            ipSum = InternetChecksum.sum(p + l3, count: HeaderSize.ipv4Minimum)
            // Pseudo-header with a zero source: destination, protocol, length.
            let pseudo = UInt64(p.loadBE32(l3 + 16)) &+ UInt64(proto) &+ UInt64(l4Length)
            l4Sum = InternetChecksum.sum(p + l4, count: l4Length, initial: pseudo)
        } else {
            ipSum = 0
            let vip = IPv6Address.load(p, l3 + 24)
            let pseudo = InternetChecksum.pseudoHeaderSum(source: .unspecified, destination: vip,
                                                          nextHeader: proto, length: l4Length)
            l4Sum = InternetChecksum.sum(p + l4, count: l4Length, initial: pseudo)
        }
    }

    public func release() { bytes.deallocate() }

    /// Writes the packet of `flow` with timestamp `tsc` into `out` (at least `length` bytes).
    /// Hot path: one copy of `length` bytes, a few stores, two folds; no allocation.
    @inlinable @inline(__always)
    public func write(into out: UnsafeMutableRawPointer, flow: UInt32, space: FlowSpace, tsc: UInt64) {
        out.copyMemory(from: bytes, byteCount: length)
        let port = space.sourcePort(flow)
        let host = space.hostIndex(flow)
        let stamp = tsc & PacketStamp.timestampMask
        // The 48-bit stamp as three 16-bit words, and the 32-bit flow id as two.
        var l4 = l4Sum &+ (stamp >> 32) &+ ((stamp >> 16) & 0xFFFF) &+ (stamp & 0xFFFF)
            &+ UInt64(flow >> 16) &+ UInt64(flow & 0xFFFF) &+ UInt64(port)
        out.storeBE16(UInt16(truncatingIfNeeded: stamp >> 32), timestampOffset)
        out.storeBE32(UInt32(truncatingIfNeeded: stamp), timestampOffset + 2)
        out.storeBE16(port, sourcePortOffset)
        if isUDP {
            out.storeBE32(flow, flowIDOffset)
        } else {
            out.storeBE32(flow, sequenceOffset)
        }
        if isIPv4 {
            let source = space.base4 &+ host
            out.storeBE32(source, sourceAddressOffset)
            let sourceWords = UInt64(source >> 16) &+ UInt64(source & 0xFFFF)
            out.storeBE16(~InternetChecksum.fold(ipSum &+ sourceWords), ipChecksumOffset)
            l4 &+= sourceWords
        } else {
            let source = IPv6Address(high: space.base6.high, low: space.base6.low &+ UInt64(host))
            source.store(out, sourceAddressOffset)
            l4 &+= (source.high >> 48) &+ ((source.high >> 32) & 0xFFFF) &+ ((source.high >> 16) & 0xFFFF)
                &+ (source.high & 0xFFFF) &+ (source.low >> 48) &+ ((source.low >> 32) & 0xFFFF)
                &+ ((source.low >> 16) & 0xFFFF) &+ (source.low & 0xFFFF)
        }
        var checksum = ~InternetChecksum.fold(l4)
        // RFC 768: a computed UDP checksum of zero is sent as all ones (zero means "none").
        if isUDP && checksum == 0 { checksum = 0xFFFF }
        out.storeBE16(checksum, l4ChecksumOffset)
    }
}

/// Every template of a plan: one per (size in the size pattern, target), indexed by
/// `sizeSlot * targetCount + target`.
public struct TemplateSet: @unchecked Sendable {
    // Safe (@unchecked Sendable): built once, read-only afterwards.
    public let templates: [PacketTemplate]
    /// Wire sizes in send order (one entry for a fixed size; the 12-entry IMIX pattern).
    public let sizePattern: [Int]
    public let targetCount: Int

    public init(plan: TrafficPlan, sourceMAC: MACAddress, destinationMAC: MACAddress) {
        switch plan.sizes {
        case .smallest: sizePattern = [plan.minimumFrameSize]
        case .fixed(let size): sizePattern = [size]
        case .imix: sizePattern = FrameSizes.imixPattern.map { max($0, plan.minimumFrameSize) }
        }
        targetCount = plan.targets.count
        var all: [PacketTemplate] = []
        for size in sizePattern {
            for target in plan.targets {
                all.append(PacketTemplate(target: target, kind: plan.kind, wireSize: size,
                                          sourceMAC: sourceMAC, destinationMAC: destinationMAC))
            }
        }
        templates = all
    }

    public func release() { for t in templates { t.release() } }

    /// The longest frame any template writes (mbufs must hold it).
    public var maxLength: Int { templates.map(\.length).max() ?? 0 }
}
