import SluiceCore

/// What the receive side learns from one frame that came back from the load balancer.
public struct ReturnedPacket: Sendable, Equatable {
    /// The flow id the generator put in the packet.
    public var flow: UInt32
    /// The backend the packet was sent to: the innermost destination address (its low 32 bits
    /// for IPv6) and port, as `address << 16 | port`, with bit 48 set so that 0 means "none".
    public var backend: UInt64
    /// The 48-bit TSC stamp the generator wrote.
    public var timestamp: UInt64
    /// False when the innermost L4 checksum does not verify (the balancer's rewrite broke it).
    public var checksumOK: Bool
    /// True when it arrived VXLAN-encapsulated.
    public var encapsulated: Bool

    @inlinable
    public init(flow: UInt32, backend: UInt64, timestamp: UInt64, checksumOK: Bool, encapsulated: Bool) {
        self.flow = flow
        self.backend = backend
        self.timestamp = timestamp
        self.checksumOK = checksumOK
        self.encapsulated = encapsulated
    }
}

/// Why a received frame is not a generated packet coming back.
public enum ForeignFrame: Error, Sendable {
    /// ARP, IPv6 neighbor discovery, ICMP and any protocol other than the generated one
    /// (announcements, probes).
    case notTraffic
    /// Malformed: the parser rejected it.
    case malformed
    /// The generated protocol, but too short to hold the stamp or with a flow id out of range.
    case noStamp
}

/// Recognises returned packets: plain (DNAT, full-NAT, or forwarded unchanged) or VXLAN
/// encapsulated (RFC 7348: outer UDP to port 4789, 8-byte VXLAN header, inner Ethernet frame).
public struct ReturnClassifier: Sendable {
    public let isUDP: Bool
    public let flows: UInt32
    public let verifyChecksums: Bool
    public static let vxlanPort: UInt16 = 4789

    public init(kind: TrafficKind, flows: Int, verifyChecksums: Bool) {
        isUDP = kind == .udp
        self.flows = UInt32(flows)
        self.verifyChecksums = verifyChecksums
    }

    @inlinable
    public func classify(_ p: UnsafeRawPointer, length: Int) -> Result<ReturnedPacket, ForeignFrame> {
        var frame = ParsedFrame()
        if let reason = FrameParser.parse(p, length: length, into: &frame) {
            return .failure(reason == .unsupportedEtherType ? .notTraffic : .malformed)
        }
        guard (frame.isIPv4 || frame.isIPv6), frame.hasL4Header, !frame.isFragment else { return .failure(.notTraffic) }
        var base = p
        var available = length
        var encapsulated = false
        if frame.l4Protocol == IPProtocol.udp && p.loadBE16(frame.l4Offset + 2) == ReturnClassifier.vxlanPort {
            // Outer headers: step into the inner frame and parse it as the real packet.
            let inner = frame.l4Offset + HeaderSize.udp + VXLANEncapsulation.headerLength
            guard inner < frame.l3End else { return .failure(.malformed) }
            base = p + inner
            available = frame.l3End - inner
            frame = ParsedFrame()
            if FrameParser.parse(base, length: available, into: &frame) != nil { return .failure(.malformed) }
            guard (frame.isIPv4 || frame.isIPv6), frame.hasL4Header, !frame.isFragment else { return .failure(.notTraffic) }
            encapsulated = true
        }
        let expected = isUDP ? IPProtocol.udp : IPProtocol.tcp
        // ICMP, ICMPv6 (neighbor discovery), other protocols: the balancer's own frames.
        guard frame.l4Protocol == expected else { return .failure(.notTraffic) }
        let l4 = frame.l4Offset
        let payload = l4 + (isUDP ? HeaderSize.udp : Int(base.loadBE8(l4 + 12) >> 4) * 4)
        let stampEnd = payload + PacketStamp.timestampBytes + (isUDP ? PacketStamp.flowIDBytes : 0)
        guard stampEnd <= frame.l3End else { return .failure(.noStamp) }
        let flow = isUDP ? base.loadBE32(payload + PacketStamp.timestampBytes) : base.loadBE32(l4 + 4)
        guard flow < flows else { return .failure(.noStamp) }
        let timestamp = UInt64(base.loadBE16(payload)) << 32 | UInt64(base.loadBE32(payload + 2))
        let addressLow: UInt32 = frame.isIPv4 ? base.loadBE32(frame.l3Offset + 16) : base.loadBE32(frame.l3Offset + 36)
        let backend = UInt64(addressLow) << 16 | UInt64(base.loadBE16(l4 + 2)) | (1 << 48)
        var checksumOK = true
        if verifyChecksums {
            let l4Length = frame.l3End - l4
            let pseudo: UInt64 = frame.isIPv4
                ? InternetChecksum.pseudoHeaderSum(source: IPv4Address(value: base.loadBE32(frame.l3Offset + 12)),
                                                   destination: IPv4Address(value: addressLow),
                                                   protocol: expected, length: l4Length)
                : InternetChecksum.pseudoHeaderSum(source: IPv6Address.load(base, frame.l3Offset + 8),
                                                   destination: IPv6Address.load(base, frame.l3Offset + 24),
                                                   nextHeader: expected, length: l4Length)
            // A zero UDP checksum means "not computed" (allowed for IPv4, RFC 768).
            let unchecked = isUDP && frame.isIPv4 && base.loadBE16(l4 + 6) == 0
            checksumOK = unchecked || InternetChecksum.verifies(base + l4, count: l4Length, initial: pseudo)
        }
        return .success(ReturnedPacket(flow: flow, backend: backend, timestamp: timestamp,
                                       checksumOK: checksumOK, encapsulated: encapsulated))
    }

    /// `198.51.100.11:8080` (IPv4) or `…:0a0b0c0d:8080` (the low 32 bits of an IPv6 address).
    public static func describeBackend(_ key: UInt64, ipv4: Bool) -> String {
        let address = UInt32(truncatingIfNeeded: key >> 16)
        let port = UInt16(truncatingIfNeeded: key)
        if ipv4 { return "\(IPv4Address(value: address)):\(port)" }
        return "…:\(String(address >> 16, radix: 16)):\(String(address & 0xFFFF, radix: 16)):\(port)"
    }
}
