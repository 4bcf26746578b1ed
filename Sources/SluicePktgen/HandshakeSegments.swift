import SluiceCore

/// Whole TCP connections (`--traffic handshake`), with sluice-pktgen playing both ends: the
/// clients on the transmitting port and the backends on the receiving port. Every connection is
/// five segments, each crossing the load balancer once:
///
///     client                         balancer                        backend
///     SYN            ───────────────────▶ DNAT / full-NAT ──────────▶ (reflected)
///     (reflected)    ◀────────────────── reverse NAT ◀─────────────── SYN-ACK
///     ACK+request+FIN ──────────────────▶ ──────────────────────────▶ (reflected)
///     (reflected)    ◀────────────────── ◀─────────────────────────── FIN-ACK
///     ACK            ───────────────────▶ ──────────────────────────▶ connection complete
///
/// The client's third segment completes the handshake, carries the request and closes its side
/// (RFC 9293 §3.5 allows data and FIN on the segment that ACKs the SYN-ACK); the backend acks
/// it and closes its side; the client's last ACK ends the connection. Both ends are stateless:
/// each end's initial sequence number is `flow << 8`, so every segment names its flow through a
/// sequence or acknowledgment number (the idea of SYN cookies, RFC 4987 §3.6), which a load
/// balancer never rewrites. The flow ids fit: `TrafficPlan.maxFlows` (10M) < 2^24.
///
/// Every segment carries the timestamps option (RFC 7323 §3): TSval is the sender's TSC (low
/// 32 bits), TSecr echoes the peer's. The SYN-ACK's TSecr is therefore the SYN's send time, and
/// the client measures the connect time (SYN → SYN-ACK, through the balancer both ways) with no
/// state. SYN and SYN-ACK also carry an MSS option, as real stacks' SYNs do (and the balancer
/// may clamp it).
public enum HandshakeStep: Int, Sendable, CaseIterable, CustomStringConvertible {
    /// Client → VIP: opens the connection (generated).
    case syn
    /// Backend → client: reflected from a SYN.
    case synAck
    /// Client → VIP: ACK of the SYN-ACK with the request and FIN, reflected from a SYN-ACK.
    case request
    /// Backend → client: ACK of the request and FIN, reflected from a request.
    case finAck
    /// Client → VIP: ACK of the backend's FIN, reflected from a FIN-ACK; ends the connection.
    case lastAck

    public var description: String {
        switch self {
        case .syn: "syn"
        case .synAck: "syn_ack"
        case .request: "request"
        case .finAck: "fin_ack"
        case .lastAck: "last_ack"
        }
    }
}

/// Which end a frame arrived at.
public enum HandshakeSide: Sendable {
    /// The clients' port: segments from backends, after the balancer's reverse translation.
    case client
    /// The backends' port: segments from clients, after the balancer's forward translation.
    case backend
}

/// What became of one received frame.
public enum HandshakeOutcome: Sendable, Equatable {
    /// The frame was rewritten in place into the answer (`length` bytes) to send back out of
    /// the port it arrived on. `received` is the step it was; `flow` its flow; `backend` the
    /// backend key (backend side only, else 0); `echoed` the TSecr it carried.
    case reply(length: Int, received: HandshakeStep, flow: UInt32, backend: UInt64, echoed: UInt32)
    /// The last ACK reached its backend: the connection is complete. Nothing to send.
    case complete(flow: UInt32, backend: UInt64)
    /// Not a segment of ours (ARP, ND, another protocol), or one the parser rejected.
    case foreign(ForeignFrame)
    /// A TCP segment of the generated connections that is not the next step of any: flags or
    /// sequence numbers the generator never sends (a balancer that rewrote them), or a RST.
    case unexpected
    /// Its TCP checksum does not verify (dropped, as a TCP stack would).
    case badChecksum
}

/// Writes and answers the segments of `HandshakeStep`. One value per run; no state per flow.
public struct HandshakeSegments: Sendable {
    /// The request, `GET / HTTP/1.0\r\n\r\n` (18 bytes, then zeros up to the requested frame
    /// size), as three big-endian words: written with three stores, no array on the hot path.
    public static let requestLength = 18
    @usableFromInline static let requestWords: (UInt64, UInt64, UInt16) = (0x4745_5420_2F20_4854, 0x5450_2F31_2E30_0D0A, 0x0D0A)
    /// TCP header of a SYN or SYN-ACK: 20 + MSS (4) + NOP NOP + timestamps (10).
    public static let synHeaderLength = 36
    /// TCP header of the other segments: 20 + NOP NOP + timestamps (10).
    public static let headerLength = 32
    public static let ttl: UInt8 = 64
    public static let window: UInt16 = 64_240

    public let isIPv4: Bool
    /// Payload bytes of the request segment (at least the GET line).
    public let requestPayload: Int
    public let flows: UInt32
    public let verifyChecksums: Bool

    public init(plan: TrafficPlan, verifyChecksums: Bool) {
        isIPv4 = plan.isIPv4
        requestPayload = HandshakeSegments.requestPayload(plan: plan)
        flows = UInt32(plan.flows)
        self.verifyChecksums = verifyChecksums
    }

    /// The request's payload for a plan: the GET line, or what fills a fixed frame size.
    public static func requestPayload(plan: TrafficPlan) -> Int {
        let headers = HeaderSize.ethernet + (plan.isIPv4 ? HeaderSize.ipv4Minimum : HeaderSize.ipv6) + headerLength
        if case .fixed(let size) = plan.sizes { return max(requestLength, size - FrameSizes.fcs - headers) }
        return requestLength
    }

    /// The smallest wire size (FCS included) `--size` may give the request segment: headers and
    /// the GET line.
    public static func minimumRequestWireSize(ipv4: Bool) -> Int {
        HeaderSize.ethernet + (ipv4 ? HeaderSize.ipv4Minimum : HeaderSize.ipv6) + headerLength + requestLength + FrameSizes.fcs
    }

    /// The wire size (FCS included) of the SYN: the smallest frame of a handshake plan.
    public static func synWireSize(ipv4: Bool) -> Int {
        HeaderSize.ethernet + (ipv4 ? HeaderSize.ipv4Minimum : HeaderSize.ipv6) + synHeaderLength + FrameSizes.fcs
    }

    /// The MSS a SYN or SYN-ACK announces: a 1500-byte MTU less the IP and TCP headers.
    @inlinable var mss: UInt16 { isIPv4 ? 1460 : 1440 }
    @inlinable static func isn(_ flow: UInt32) -> UInt32 { flow << 8 }

    /// The longest frame any segment of this plan has (the request), FCS excluded.
    public var maxLength: Int {
        HeaderSize.ethernet + (isIPv4 ? HeaderSize.ipv4Minimum : HeaderSize.ipv6) + HandshakeSegments.headerLength + requestPayload
    }

    /// Writes flow `flow`'s SYN to `target` into `out`; returns the frame length (FCS excluded).
    @inlinable
    public func writeSYN(into out: UnsafeMutableRawPointer, flow: UInt32, space: FlowSpace, target: Target,
                         sourceMAC: MACAddress, destinationMAC: MACAddress, tsc: UInt32) -> Int {
        let source: IPv6Address = isIPv4 ? IPv6Address(ipv4Mapped: space.base4 &+ space.hostIndex(flow)) : space.sourceIPv6(flow)
        let destination: IPv6Address = switch target.address {
        case .v4(let a): IPv6Address(ipv4Mapped: a.value)
        case .v6(let a): a
        }
        return write(into: out, source: sourceMAC, destination: destinationMAC, from: source, to: destination,
                     sourcePort: space.sourcePort(flow), destinationPort: target.port, step: .syn,
                     sequence: HandshakeSegments.isn(flow), acknowledgment: 0, tsval: tsc, tsecr: 0)
    }

    /// Answers a frame received on `side`, in place (the buffer holds at least `capacity`
    /// bytes from `p`). `tsc`: the receive time, written as the answer's TSval.
    @inlinable
    public func respond(_ p: UnsafeMutableRawPointer, length: Int, capacity: Int, side: HandshakeSide, tsc: UInt32) -> HandshakeOutcome {
        var frame = ParsedFrame()
        if let reason = FrameParser.parse(p, length: length, into: &frame) {
            return .foreign(reason == .unsupportedEtherType ? .notTraffic : .malformed)
        }
        guard frame.isIPv4 == isIPv4, frame.isIPv4 || frame.isIPv6, frame.hasL4Header, !frame.isFragment,
              frame.l4Protocol == IPProtocol.tcp else { return .foreign(.notTraffic) }
        let l4 = frame.l4Offset
        let dataOffset = Int(p.loadBE8(l4 + 12) >> 4) * 4
        guard dataOffset >= HeaderSize.tcpMinimum, l4 + dataOffset <= frame.l3End else { return .foreign(.malformed) }
        let from = isIPv4 ? IPv6Address(ipv4Mapped: p.loadBE32(frame.l3Offset + 12)) : IPv6Address.load(p, frame.l3Offset + 8)
        let to = isIPv4 ? IPv6Address(ipv4Mapped: p.loadBE32(frame.l3Offset + 16)) : IPv6Address.load(p, frame.l3Offset + 24)
        if verifyChecksums {
            let segment = frame.l3End - l4
            let pseudo = isIPv4
                ? InternetChecksum.pseudoHeaderSum(source: IPv4Address(value: from.ipv4Value), destination: IPv4Address(value: to.ipv4Value),
                                                   protocol: IPProtocol.tcp, length: segment)
                : InternetChecksum.pseudoHeaderSum(source: from, destination: to, nextHeader: IPProtocol.tcp, length: segment)
            guard InternetChecksum.verifies(p + l4, count: segment, initial: pseudo) else { return .badChecksum }
        }
        let flags = p.loadBE8(l4 + 13) & 0x3F
        let sequence = p.loadBE32(l4 + 4)
        let acknowledgment = p.loadBE32(l4 + 8)
        let payload = frame.l3End - l4 - dataOffset
        guard let (tsval, tsecr) = HandshakeSegments.timestamps(p + l4, headerLength: dataOffset) else { return .unexpected }
        let received: HandshakeStep
        let flow: UInt32
        switch (side, flags) {
        case (.backend, TCPFlags.syn):
            received = .syn
            flow = sequence >> 8
            guard sequence & 0xFF == 0, payload == 0 else { return .unexpected }
        case (.backend, TCPFlags.fin | TCPFlags.ack), (.backend, TCPFlags.fin | TCPFlags.ack | TCPFlags.psh):
            received = .request
            flow = acknowledgment >> 8
            let isn = HandshakeSegments.isn(flow)
            guard acknowledgment == isn &+ 1, sequence == isn &+ 1, payload == requestPayload else { return .unexpected }
        case (.backend, TCPFlags.ack):
            received = .lastAck
            flow = acknowledgment >> 8
            let isn = HandshakeSegments.isn(flow)
            guard acknowledgment == isn &+ 2, sequence == isn &+ 2 &+ UInt32(requestPayload), payload == 0 else { return .unexpected }
        case (.client, TCPFlags.syn | TCPFlags.ack):
            received = .synAck
            flow = sequence >> 8
            let isn = HandshakeSegments.isn(flow)
            guard sequence == isn, acknowledgment == isn &+ 1, payload == 0 else { return .unexpected }
        case (.client, TCPFlags.fin | TCPFlags.ack):
            received = .finAck
            flow = sequence >> 8
            let isn = HandshakeSegments.isn(flow)
            guard sequence == isn &+ 1, acknowledgment == isn &+ 2 &+ UInt32(requestPayload), payload == 0 else { return .unexpected }
        default:
            return .unexpected
        }
        guard flow < flows else { return .unexpected }
        let backend: UInt64 = side == .backend
            ? UInt64(isIPv4 ? to.ipv4Value : UInt32(truncatingIfNeeded: to.low)) << 16 | UInt64(p.loadBE16(l4 + 2)) | (1 << 48)
            : 0
        if received == .lastAck { return .complete(flow: flow, backend: backend) }
        let isn = HandshakeSegments.isn(flow)
        let answer: HandshakeStep
        let answerSequence: UInt32
        let answerAcknowledgment: UInt32
        switch received {
        case .syn: (answer, answerSequence, answerAcknowledgment) = (.synAck, isn, isn &+ 1)
        case .synAck: (answer, answerSequence, answerAcknowledgment) = (.request, isn &+ 1, isn &+ 1)
        case .request: (answer, answerSequence, answerAcknowledgment) = (.finAck, isn &+ 1, isn &+ 2 &+ UInt32(requestPayload))
        default: (answer, answerSequence, answerAcknowledgment) = (.lastAck, isn &+ 2 &+ UInt32(requestPayload), isn &+ 2)
        }
        let sourcePort = p.loadBE16(l4)
        let destinationPort = p.loadBE16(l4 + 2)
        let sourceMAC = MACAddress.load(p, 6)
        let destinationMAC = MACAddress.load(p, 0)
        guard frameLength(answer) <= capacity else { return .foreign(.malformed) }
        let written = write(into: p, source: destinationMAC, destination: sourceMAC, from: to, to: from,
                            sourcePort: destinationPort, destinationPort: sourcePort, step: answer,
                            sequence: answerSequence, acknowledgment: answerAcknowledgment, tsval: tsc, tsecr: tsval)
        return .reply(length: written, received: received, flow: flow, backend: backend, echoed: tsecr)
    }

    /// The frame length (FCS excluded) of a step's segment.
    @inlinable
    public func frameLength(_ step: HandshakeStep) -> Int {
        let l4 = HeaderSize.ethernet + (isIPv4 ? HeaderSize.ipv4Minimum : HeaderSize.ipv6)
        switch step {
        case .syn, .synAck: return l4 + HandshakeSegments.synHeaderLength
        case .request: return l4 + HandshakeSegments.headerLength + requestPayload
        case .finAck, .lastAck: return l4 + HandshakeSegments.headerLength
        }
    }

    /// Writes one whole segment (Ethernet, IPv4 or IPv6, TCP with options, payload) with both
    /// checksums computed; returns its length. IPv4 addresses are given IPv4-mapped.
    @inlinable
    func write(into out: UnsafeMutableRawPointer, source sourceMAC: MACAddress, destination destinationMAC: MACAddress,
               from: IPv6Address, to: IPv6Address, sourcePort: UInt16, destinationPort: UInt16, step: HandshakeStep,
               sequence: UInt32, acknowledgment: UInt32, tsval: UInt32, tsecr: UInt32) -> Int {
        let length = frameLength(step)
        let l3 = HeaderSize.ethernet
        let l4 = l3 + (isIPv4 ? HeaderSize.ipv4Minimum : HeaderSize.ipv6)
        let segment = length - l4
        destinationMAC.store(out, 0)
        sourceMAC.store(out, 6)
        if isIPv4 {
            out.storeBE16(EtherType.ipv4, 12)
            out.storeBE16(0x4500, l3)
            out.storeBE16(UInt16(length - l3), l3 + 2)
            out.storeBE32(0x0000_4000, l3 + 4)            // id 0, don't fragment
            out.storeBE8(HandshakeSegments.ttl, l3 + 8)
            out.storeBE8(IPProtocol.tcp, l3 + 9)
            out.storeBE16(0, l3 + 10)
            out.storeBE32(from.ipv4Value, l3 + 12)
            out.storeBE32(to.ipv4Value, l3 + 16)
            out.storeBE16(InternetChecksum.checksum(out + l3, count: HeaderSize.ipv4Minimum), l3 + 10)
        } else {
            out.storeBE16(EtherType.ipv6, 12)
            out.storeBE32(0x6000_0000, l3)
            out.storeBE16(UInt16(segment), l3 + 4)
            out.storeBE8(IPProtocol.tcp, l3 + 6)
            out.storeBE8(HandshakeSegments.ttl, l3 + 7)
            from.store(out, l3 + 8)
            to.store(out, l3 + 24)
        }
        out.storeBE16(sourcePort, l4)
        out.storeBE16(destinationPort, l4 + 2)
        out.storeBE32(sequence, l4 + 4)
        out.storeBE32(acknowledgment, l4 + 8)
        let flags: UInt8
        var options = l4 + HeaderSize.tcpMinimum
        switch step {
        case .syn: flags = TCPFlags.syn
        case .synAck: flags = TCPFlags.syn | TCPFlags.ack
        case .request: flags = TCPFlags.psh | TCPFlags.ack | TCPFlags.fin
        case .finAck: flags = TCPFlags.fin | TCPFlags.ack
        case .lastAck: flags = TCPFlags.ack
        }
        let headerLength = step == .syn || step == .synAck ? HandshakeSegments.synHeaderLength : HandshakeSegments.headerLength
        out.storeBE8(UInt8(headerLength / 4) << 4, l4 + 12)
        out.storeBE8(flags, l4 + 13)
        out.storeBE16(HandshakeSegments.window, l4 + 14)
        out.storeBE32(0, l4 + 16)                          // checksum (below), urgent pointer
        if headerLength == HandshakeSegments.synHeaderLength {
            out.storeBE16(0x0204, options)                 // MSS, length 4 (RFC 9293 §3.7.1)
            out.storeBE16(mss, options + 2)
            options += 4
        }
        out.storeBE32(0x0101_080A, options)                // NOP, NOP, timestamps, length 10
        out.storeBE32(tsval, options + 4)
        out.storeBE32(tsecr, options + 8)
        if step == .request {
            let payload = l4 + headerLength
            let words = HandshakeSegments.requestWords
            out.storeBE64(words.0, payload)
            out.storeBE64(words.1, payload + 8)
            out.storeBE16(words.2, payload + 16)
            let rest = requestPayload - HandshakeSegments.requestLength
            if rest > 0 { (out + payload + HandshakeSegments.requestLength).initializeMemory(as: UInt8.self, repeating: 0, count: rest) }
        }
        let pseudo = isIPv4
            ? InternetChecksum.pseudoHeaderSum(source: IPv4Address(value: from.ipv4Value), destination: IPv4Address(value: to.ipv4Value),
                                               protocol: IPProtocol.tcp, length: segment)
            : InternetChecksum.pseudoHeaderSum(source: from, destination: to, nextHeader: IPProtocol.tcp, length: segment)
        out.storeBE16(InternetChecksum.checksum(out + l4, count: segment, initial: pseudo), l4 + 16)
        return length
    }

    /// TSval and TSecr of the timestamps option (RFC 7323 §3.2: kind 8, length 10) in a TCP
    /// header of `headerLength` bytes; nil when it has none or the options are malformed.
    @inlinable
    static func timestamps(_ tcp: UnsafeRawPointer, headerLength: Int) -> (UInt32, UInt32)? {
        var found: (UInt32, UInt32)?
        let wellFormed = TCPOptions.walk(tcp, from: HeaderSize.tcpMinimum, to: headerLength) { kind, i, length in
            guard kind == 8, length == 10 else { return true }
            found = (tcp.loadBE32(i + 2), tcp.loadBE32(i + 6))
            return false
        }
        return wellFormed ? found : nil
    }
}
