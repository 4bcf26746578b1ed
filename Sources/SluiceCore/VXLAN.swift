/// VXLAN (RFC 7348): encapsulation of an Ethernet frame towards a VTEP, and the receive-side
/// check of a VXLAN packet.
///
/// The frame format (RFC 7348 §5):
///
///     outer Ethernet (14, or 18 with an 802.1Q tag)
///     outer IPv4 (20) or IPv6 (40)
///     outer UDP (8): source port from a hash of the inner flow, destination 4789
///     VXLAN (8): flags 0x08 (I: VNI valid), 24 reserved bits, 24-bit VNI, 8 reserved bits
///     inner Ethernet frame (without FCS)
///
/// One value per (backend VTEP, VNI, next hop), built off the hot path and kept in the snapshot.
public struct VXLANEncapsulation: Sendable, Equatable {
    /// The outer IP header's family and addresses.
    public enum Outer: Sendable, Equatable {
        case ipv4(source: IPv4Address, destination: IPv4Address)
        case ipv6(source: IPv6Address, destination: IPv6Address)
    }

    /// The IANA-assigned VXLAN port (RFC 7348 §5). Linux's `vxlan` device defaults to 8472 unless
    /// created with `dstport 4789`.
    public static let defaultPort: UInt16 = 4789
    public static let headerLength = 8
    /// Flags byte: only I (bit 3) set (RFC 7348 §5).
    public static let flags: UInt8 = 0x08
    /// Outer header bytes before the inner frame: untagged Ethernet, IPv4, UDP, VXLAN.
    public static let ipv4Overhead = HeaderSize.ethernet + HeaderSize.ipv4Minimum + HeaderSize.udp + headerLength
    /// Untagged Ethernet, IPv6, UDP, VXLAN.
    public static let ipv6Overhead = HeaderSize.ethernet + HeaderSize.ipv6 + HeaderSize.udp + headerLength

    /// Next hop towards the VTEP (the VTEP itself, or the gateway).
    public var destinationMAC: MACAddress
    /// The egress port's MAC.
    public var sourceMAC: MACAddress
    /// An 802.1Q tag on the outer frame, or `nil`.
    public var vlanID: UInt16?
    public var outer: Outer
    /// VXLAN Network Identifier, 24 bits.
    public var vni: UInt32
    /// Outer UDP destination port.
    public var destinationPort: UInt16
    /// Outer IPv4 TTL / IPv6 hop limit.
    public var hopLimit: UInt8

    /// `vni` must fit 24 bits and `vlanID` 12 bits (the configuration validates both first).
    public init(destinationMAC: MACAddress, sourceMAC: MACAddress, vlanID: UInt16? = nil, outer: Outer,
                vni: UInt32, destinationPort: UInt16 = VXLANEncapsulation.defaultPort, hopLimit: UInt8 = 64) {
        precondition(vni <= 0xFF_FFFF, "VNI is 24 bits")
        precondition(vlanID.map { $0 <= 0x0FFF } ?? true, "VLAN ID is 12 bits")
        self.destinationMAC = destinationMAC
        self.sourceMAC = sourceMAC
        self.vlanID = vlanID
        self.outer = outer
        self.vni = vni
        self.destinationPort = destinationPort
        self.hopLimit = hopLimit
    }

    /// Bytes `encapsulate` prepends: 50 for an untagged IPv4 outer, 70 for IPv6, 4 more tagged.
    @inlinable public var overhead: Int {
        let ethernet = EthernetHeader.length(vlanID: vlanID)
        switch outer {
        case .ipv4: return ethernet + HeaderSize.ipv4Minimum + HeaderSize.udp + Self.headerLength
        case .ipv6: return ethernet + HeaderSize.ipv6 + HeaderSize.udp + Self.headerLength
        }
    }

    /// The largest inner IP packet (inner Ethernet header excluded, untagged) whose encapsulation
    /// fits an outer IP MTU of `portMTU`: the MTU to advertise in fragmentation-needed or
    /// packet-too-big (1450 for IPv4 outer on a 1500-byte port, 1430 for IPv6).
    @inlinable public func innerMTU(portMTU: Int) -> Int {
        portMTU - (overhead - EthernetHeader.length(vlanID: vlanID)) - HeaderSize.ethernet
    }

    /// Outer UDP source port from a flow hash, in the dynamic range 49152–65535 that RFC 7348 §5
    /// recommends: `0xC000 | ((h ^ h >> 16) & 0x3FFF)` (both hash halves contribute).
    @inlinable @inline(__always)
    public static func sourcePort(flowHash h: UInt32) -> UInt16 {
        0xC000 | UInt16(truncatingIfNeeded: (h ^ (h >> 16)) & 0x3FFF)
    }

    /// Prepends the outer headers to the inner Ethernet frame of `length` bytes at `p`, writing
    /// the `overhead` bytes just before `p` (which must be writable: `headroom` bytes are).
    /// Returns the number of bytes prepended, the new frame starting at `p - overhead`, or 0 (and
    /// writes nothing) when `headroom` is too small or the result would exceed 65535 IP bytes.
    ///
    /// IPv4 outer: DF set (RFC 7348 §4.3: VTEPs must not fragment), TTL `hopLimit`, identification
    /// `ipID` (0, or a per-worker counter), header checksum computed; UDP checksum 0 (RFC 7348 §5
    /// "SHOULD be transmitted as zero"). IPv6 outer: traffic class and flow label 0, UDP checksum
    /// computed over the whole datagram (RFC 6935/6936 would allow zero, but Linux drops
    /// zero-checksum UDP over IPv6 unless the device is created with `udp6zerocsumrx`).
    @inlinable
    /// `ipv4HeaderChecksum` false leaves the outer IPv4 header checksum 0 for the port to fill
    /// in (TX checksum offload).
    public func encapsulate(_ p: UnsafeMutableRawPointer, length: Int, headroom: Int,
                            flowHash: UInt32, ipID: UInt16 = 0, ipv4HeaderChecksum: Bool = true) -> Int {
        let prepended = overhead
        guard headroom >= prepended, length >= 0 else { return 0 }
        let udpLength = HeaderSize.udp + Self.headerLength + length
        let q = p - prepended   // Safe: headroom ≥ prepended bytes before p are writable.
        switch outer {
        case let .ipv4(source, destination):
            let totalLength = HeaderSize.ipv4Minimum + udpLength
            guard totalLength <= 0xFFFF else { return 0 }
            let l3 = EthernetHeader.write(q, destination: destinationMAC, source: sourceMAC,
                                          vlanID: vlanID, etherType: EtherType.ipv4)
            q.storeBE16(0x4500, l3)                                   // version 4, IHL 5, TOS 0
            q.storeBE16(UInt16(truncatingIfNeeded: totalLength), l3 + 2)
            q.storeBE16(ipID, l3 + 4)
            q.storeBE16(0x4000, l3 + 6)                               // DF, offset 0
            q.storeBE16(UInt16(hopLimit) << 8 | UInt16(IPProtocol.udp), l3 + 8)
            q.storeBE16(0, l3 + 10)
            q.storeBE32(source.value, l3 + 12)
            q.storeBE32(destination.value, l3 + 16)
            if ipv4HeaderChecksum {
                q.storeBE16(InternetChecksum.checksum(q + l3, count: HeaderSize.ipv4Minimum), l3 + 10)
            }
            let l4 = l3 + HeaderSize.ipv4Minimum
            writeUDPAndVXLAN(q, l4, udpLength: udpLength, flowHash: flowHash)
        case let .ipv6(source, destination):
            guard udpLength <= 0xFFFF else { return 0 }
            let l3 = EthernetHeader.write(q, destination: destinationMAC, source: sourceMAC,
                                          vlanID: vlanID, etherType: EtherType.ipv6)
            q.storeBE32(0x6000_0000, l3)                              // version 6, class 0, flow 0
            q.storeBE16(UInt16(truncatingIfNeeded: udpLength), l3 + 4)
            q.storeBE8(IPProtocol.udp, l3 + 6)
            q.storeBE8(hopLimit, l3 + 7)
            source.store(q, l3 + 8)
            destination.store(q, l3 + 24)
            let l4 = l3 + HeaderSize.ipv6
            writeUDPAndVXLAN(q, l4, udpLength: udpLength, flowHash: flowHash)
            let pseudo = InternetChecksum.pseudoHeaderSum(source: source, destination: destination,
                                                          nextHeader: IPProtocol.udp, length: udpLength)
            // Safe: the UDP datagram is the 16 bytes just written plus the `length` inner bytes.
            let checksum = InternetChecksum.checksum(q + l4, count: udpLength, initial: pseudo)
            q.storeBE16(checksum == 0 ? 0xFFFF : checksum, l4 + 6)    // RFC 8200 §8.1
        }
        return prepended
    }

    /// UDP header with a zero checksum, then the VXLAN header.
    @inlinable @inline(__always)
    func writeUDPAndVXLAN(_ q: UnsafeMutableRawPointer, _ l4: Int, udpLength: Int, flowHash: UInt32) {
        q.storeBE16(Self.sourcePort(flowHash: flowHash), l4)
        q.storeBE16(destinationPort, l4 + 2)
        q.storeBE16(UInt16(truncatingIfNeeded: udpLength), l4 + 4)
        q.storeBE16(0, l4 + 6)
        q.storeBE32(UInt32(Self.flags) << 24, l4 + 8)
        q.storeBE32(vni << 8, l4 + 12)
    }
}

/// The receive side: is a parsed frame a VXLAN packet, and where is its inner frame.
public enum VXLANDecapsulation {
    /// The VNI and where the inner Ethernet frame lies in the outer frame.
    public struct Inner: Sendable, Equatable {
        public var vni: UInt32
        public var offset: Int
        public var length: Int

        @inlinable public init(vni: UInt32, offset: Int, length: Int) {
            self.vni = vni
            self.offset = offset
            self.length = length
        }
    }

    /// A VXLAN packet: an unfragmented UDP datagram to `port` whose payload holds the 8-byte VXLAN
    /// header with the I flag set and at least an inner Ethernet header. Reserved bits are ignored
    /// as RFC 7348 §5 requires of receivers; the UDP checksum is not verified here. Whether the
    /// outer destination address is one of ours is the caller's check. Returns `nil` otherwise.
    @inlinable
    public static func parse(_ p: UnsafeRawPointer, frame: ParsedFrame,
                             port: UInt16 = VXLANEncapsulation.defaultPort) -> Inner? {
        guard frame.hasL4Header, !frame.isFragment, frame.l4Protocol == IPProtocol.udp,
              frame.isIPv4 || frame.isIPv6 else { return nil }
        let l4 = frame.l4Offset
        // Safe: the parser proved the 8-byte UDP header and, unfragmented, UDP length ≤ l4Length.
        guard p.loadBE16(l4 + 2) == port else { return nil }
        let udpLength = Int(p.loadBE16(l4 + 4))
        let innerLength = udpLength - HeaderSize.udp - VXLANEncapsulation.headerLength
        guard innerLength >= HeaderSize.ethernet, udpLength <= frame.l4Length else { return nil }
        guard p.loadBE8(l4 + 8) & VXLANEncapsulation.flags != 0 else { return nil }
        return Inner(vni: p.loadBE32(l4 + 12) >> 8,
                     offset: l4 + HeaderSize.udp + VXLANEncapsulation.headerLength,
                     length: innerLength)
    }
}
