/// The packet quoted inside an ICMP or ICMPv6 error: where it is, and its 5-tuple, so that an
/// error about a balanced flow (fragmentation needed, port unreachable, packet too big, time
/// exceeded) can be delivered to that flow's backend; and the rewrite of the quote that goes with
/// a NAT of the error.
///
/// An ICMPv4 error (RFC 792: destination unreachable 3, time exceeded 11, parameter problem 12)
/// quotes the IP header and at least the first 8 bytes of the datagram after the 8-byte ICMP
/// header; an ICMPv6 error (RFC 4443 §3: destination unreachable 1, packet too big 2, time
/// exceeded 3, parameter problem 4) quotes as much of the packet as fits in 1280 bytes.
///
/// The quoted packet travelled in the opposite direction to the error: an error sent to the VIP
/// about a reply (VIP → client) quotes source VIP, destination client. The flow's forward key is
/// the quoted tuple reversed.
public enum ICMPErrorQuote {
    /// A quoted IPv4 packet. Ports are the TCP/UDP/SCTP ports; for a quoted ICMP echo request the
    /// identifier is `sourcePort` (and `destinationPort` 0), for an echo reply it is
    /// `destinationPort` (as `NATRewrite` treats them); 0 for other protocols.
    public struct IPv4Quote: Sendable, Equatable {
        /// Offset of the quoted IP header in the frame.
        public var ipOffset: Int
        /// Offset of the quoted upper-layer header; at least 8 of its bytes are in the frame.
        public var l4Offset: Int
        public var proto: UInt8
        public var source: IPv4Address
        public var destination: IPv4Address
        public var sourcePort: UInt16
        public var destinationPort: UInt16

        @inlinable
        public init(ipOffset: Int, l4Offset: Int, proto: UInt8, source: IPv4Address, destination: IPv4Address,
                    sourcePort: UInt16, destinationPort: UInt16) {
            self.ipOffset = ipOffset
            self.l4Offset = l4Offset
            self.proto = proto
            self.source = source
            self.destination = destination
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
        }
    }

    /// A quoted IPv6 packet; `l4Offset` is after any quoted extension headers.
    public struct IPv6Quote: Sendable, Equatable {
        public var ipOffset: Int
        public var l4Offset: Int
        public var proto: UInt8
        public var source: IPv6Address
        public var destination: IPv6Address
        public var sourcePort: UInt16
        public var destinationPort: UInt16

        @inlinable
        public init(ipOffset: Int, l4Offset: Int, proto: UInt8, source: IPv6Address, destination: IPv6Address,
                    sourcePort: UInt16, destinationPort: UInt16) {
            self.ipOffset = ipOffset
            self.l4Offset = l4Offset
            self.proto = proto
            self.source = source
            self.destination = destination
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
        }
    }

    /// ICMPv4 errors that quote a datagram and concern a flow: 3, 11, 12.
    @inlinable
    public static func isIPv4FlowError(_ type: UInt8) -> Bool {
        type == ICMPType.destinationUnreachable || type == ICMPType.timeExceeded || type == 12
    }

    /// ICMPv6 errors: 1 (destination unreachable), 2 (packet too big), 3 (time exceeded),
    /// 4 (parameter problem).
    @inlinable
    public static func isIPv6FlowError(_ type: UInt8) -> Bool {
        type >= ICMPv6Type.destinationUnreachable && type <= 4
    }

    // MARK: Locating the quote

    /// The quote of the ICMPv4 error in `frame`, or `nil` when the frame is not such an error
    /// or the quote is malformed: shorter than its IP header plus 8 bytes, not version 4, IHL
    /// below 5, or a non-first fragment (which holds no ports). The quoted header checksum and
    /// total length are not checked: the quote is a copy, usually truncated.
    @inlinable
    public static func parseIPv4(_ p: UnsafeRawPointer, frame: ParsedFrame) -> IPv4Quote? {
        guard frame.isIPv4, frame.hasL4Header, frame.fragmentOffset == 0,
              frame.l4Protocol == IPProtocol.icmp else { return nil }
        let end = frame.l3End
        // Safe: the parser proved 8 bytes of ICMP header at l4Offset.
        guard isIPv4FlowError(p.loadBE8(frame.l4Offset)) else { return nil }
        let q = frame.l4Offset + 8
        guard q + HeaderSize.ipv4Minimum <= end else { return nil }
        let versionIHL = p.loadBE8(q)
        let headerLength = Int(versionIHL & 0x0F) * 4
        guard versionIHL >> 4 == 4, headerLength >= HeaderSize.ipv4Minimum,
              q + headerLength + 8 <= end else { return nil }
        guard p.loadBE16(q + 6) & 0x1FFF == 0 else { return nil }
        let proto = p.loadBE8(q + 9)
        let l4 = q + headerLength
        // Safe: l4 + 8 ≤ end, checked above.
        let ports = quotedPorts(p, l4, proto: proto, echoProtocol: IPProtocol.icmp,
                                request: ICMPType.echoRequest, reply: ICMPType.echoReply)
        return IPv4Quote(ipOffset: q, l4Offset: l4, proto: proto,
                         source: IPv4Address(value: p.loadBE32(q + 12)),
                         destination: IPv4Address(value: p.loadBE32(q + 16)),
                         sourcePort: ports.source, destinationPort: ports.destination)
    }

    /// The quote of the ICMPv6 error in `frame`, or `nil` when the frame is not such an error or
    /// the quote is malformed: a truncated fixed header, not version 6, an extension header that
    /// does not fit the quote, a chain longer than `FrameParser.maxIPv6ExtensionHeaders`, a
    /// non-first fragment, or fewer than 8 bytes of the upper-layer header.
    @inlinable
    public static func parseIPv6(_ p: UnsafeRawPointer, frame: ParsedFrame) -> IPv6Quote? {
        guard frame.isIPv6, frame.hasL4Header, frame.fragmentOffset == 0,
              frame.l4Protocol == IPProtocol.icmpv6, frame.l4Length >= 8 else { return nil }
        let end = frame.l3End
        // Safe: l4Length ≥ 8 checked above.
        guard isIPv6FlowError(p.loadBE8(frame.l4Offset)) else { return nil }
        let q = frame.l4Offset + 8
        guard q + HeaderSize.ipv6 <= end, p.loadBE8(q) >> 4 == 6 else { return nil }
        var next = p.loadBE8(q + 6)
        var offset = q + HeaderSize.ipv6
        var walked = 0
        // The quoted chain is walked like FrameParser.parseIPv6, but against the quote's end and
        // without the rules for a packet addressed to us (the quoted packet was not).
        while true {
            let headerLength: Int
            switch next {
            case IPProtocol.hopByHop, IPProtocol.routing, IPProtocol.destinationOptions:
                guard offset + 8 <= end else { return nil }
                headerLength = (Int(p.loadBE8(offset + 1)) + 1) * 8   // RFC 8200 §4.3
            case IPProtocol.fragment:
                guard offset + 8 <= end else { return nil }
                guard p.loadBE16(offset + 2) >> 3 == 0 else { return nil }   // non-first: no ports
                headerLength = 8
            case IPProtocol.ah:
                guard offset + 8 <= end else { return nil }
                headerLength = (Int(p.loadBE8(offset + 1)) + 2) * 4   // RFC 4302 §2.2
            default:
                guard offset + 8 <= end else { return nil }
                // Safe: offset + 8 ≤ end.
                let ports = quotedPorts(p, offset, proto: next, echoProtocol: IPProtocol.icmpv6,
                                        request: ICMPv6Type.echoRequest, reply: ICMPv6Type.echoReply)
                return IPv6Quote(ipOffset: q, l4Offset: offset, proto: next,
                                 source: IPv6Address.load(p, q + 8), destination: IPv6Address.load(p, q + 24),
                                 sourcePort: ports.source, destinationPort: ports.destination)
            }
            guard offset + headerLength <= end else { return nil }
            next = p.loadBE8(offset)
            offset += headerLength
            walked += 1
            guard walked <= FrameParser.maxIPv6ExtensionHeaders else { return nil }
        }
    }

    /// Ports from the first 8 bytes of a quoted upper-layer header.
    @inlinable @inline(__always)
    static func quotedPorts(_ p: UnsafeRawPointer, _ l4: Int, proto: UInt8, echoProtocol: UInt8,
                            request: UInt8, reply: UInt8) -> (source: UInt16, destination: UInt16) {
        switch proto {
        case IPProtocol.tcp, IPProtocol.udp, IPProtocol.sctp:
            return (p.loadBE16(l4), p.loadBE16(l4 + 2))
        case echoProtocol:
            let type = p.loadBE8(l4)
            if type == request { return (p.loadBE16(l4 + 4), 0) }
            if type == reply { return (0, p.loadBE16(l4 + 4)) }
            return (0, 0)
        default:
            return (0, 0)
        }
    }

    // MARK: Rewriting the quote

    /// Rewrites the quoted packet's addresses and ports to `source`:`sourcePort` →
    /// `destination`:`destinationPort` (pass the quote's own values for what stays), updating the
    /// quoted IP header checksum incrementally, the quoted L4 checksum where the quote holds it
    /// (UDP always — a zero UDP checksum stays zero; TCP when 18 bytes are quoted; ICMP echo), and
    /// then recomputing the outer ICMP checksum in full. A quoted SCTP CRC32c cannot be recomputed
    /// over a truncated quote and is left as it is (receivers do not check it). Ports are ignored
    /// for protocols without them; for a quoted echo the identifier follows the rule of
    /// `IPv4Quote`.
    ///
    /// The outer header is the caller's: rewrite it with `NATRewrite` (which for an ICMP error
    /// changes addresses only), before or after this call. Returns false, with the frame
    /// untouched, when the outer packet is a fragment (its ICMP checksum covers bytes not here).
    /// `quote` must come from `parseIPv4` on this same frame.
    @inline(never)
    public static func rewriteIPv4(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, quote: IPv4Quote,
                                   source: IPv4Address, sourcePort: UInt16,
                                   destination: IPv4Address, destinationPort: UInt16) -> Bool {
        guard !frame.isFragment else { return false }
        let q = quote.ipOffset, end = frame.l3End
        // Safe: parseIPv4 proved the quoted IP header and 8 bytes of L4 inside the frame.
        let addresses = InternetChecksum.difference(old: p.loadBE32(q + 12), new: source.value)
            &+ InternetChecksum.difference(old: p.loadBE32(q + 16), new: destination.value)
        p.storeBE16(InternetChecksum.adjust(p.loadBE16(q + 10), by: addresses), q + 10)
        p.storeBE32(source.value, q + 12)
        p.storeBE32(destination.value, q + 16)
        rewriteQuotedTransport(p, quote.l4Offset, end: end, proto: quote.proto, pseudoHeader: addresses,
                               sourcePort: sourcePort, destinationPort: destinationPort, isIPv6: false)
        let l4 = frame.l4Offset
        p.storeBE16(0, l4 + 2)
        p.storeBE16(InternetChecksum.checksum(p + l4, count: end - l4), l4 + 2)
        return true
    }

    /// `rewriteIPv4` for an ICMPv6 error; the outer ICMPv6 checksum is recomputed with the
    /// pseudo-header of the outer addresses as they are when this is called.
    @inline(never)
    public static func rewriteIPv6(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, quote: IPv6Quote,
                                   source: IPv6Address, sourcePort: UInt16,
                                   destination: IPv6Address, destinationPort: UInt16) -> Bool {
        guard !frame.isFragment else { return false }
        let q = quote.ipOffset, end = frame.l3End
        // Safe: parseIPv6 proved the quoted fixed header and 8 bytes of L4 inside the frame.
        let addresses = InternetChecksum.difference(old: IPv6Address.load(p, q + 8), new: source)
            &+ InternetChecksum.difference(old: IPv6Address.load(p, q + 24), new: destination)
        source.store(p, q + 8)
        destination.store(p, q + 24)
        rewriteQuotedTransport(p, quote.l4Offset, end: end, proto: quote.proto, pseudoHeader: addresses,
                               sourcePort: sourcePort, destinationPort: destinationPort, isIPv6: true)
        let l3 = frame.l3Offset, l4 = frame.l4Offset
        let pseudo = InternetChecksum.pseudoHeaderSum(source: IPv6Address.load(p, l3 + 8),
                                                      destination: IPv6Address.load(p, l3 + 24),
                                                      nextHeader: IPProtocol.icmpv6, length: end - l4)
        p.storeBE16(0, l4 + 2)
        p.storeBE16(InternetChecksum.checksum(p + l4, count: end - l4, initial: pseudo), l4 + 2)
        return true
    }

    /// The quoted upper-layer header: ports (or echo identifier) and its checksum where quoted.
    @inlinable @inline(__always)
    static func rewriteQuotedTransport(_ p: UnsafeMutableRawPointer, _ l4: Int, end: Int, proto: UInt8,
                                       pseudoHeader: UInt64, sourcePort: UInt16, destinationPort: UInt16,
                                       isIPv6: Bool) {
        // Safe: l4 + 8 ≤ end (parse*); every other offset is checked against `end` here.
        switch proto {
        case IPProtocol.tcp:
            let ports = NATRewrite.rewritePorts(p, l4, sourcePort: sourcePort, destinationPort: destinationPort)
            if l4 + 18 <= end {
                p.storeBE16(InternetChecksum.adjust(p.loadBE16(l4 + 16), by: pseudoHeader &+ ports), l4 + 16)
            }
        case IPProtocol.udp:
            let ports = NATRewrite.rewritePorts(p, l4, sourcePort: sourcePort, destinationPort: destinationPort)
            let checksum = p.loadBE16(l4 + 6)
            if checksum != 0 {
                let updated = InternetChecksum.adjust(checksum, by: pseudoHeader &+ ports)
                p.storeBE16(updated == 0 ? 0xFFFF : updated, l4 + 6)
            }
        case IPProtocol.sctp:
            _ = NATRewrite.rewritePorts(p, l4, sourcePort: sourcePort, destinationPort: destinationPort)
        case IPProtocol.icmp where !isIPv6, IPProtocol.icmpv6 where isIPv6:
            let type = p.loadBE8(l4)
            let identifier = isIPv6
                ? NATRewrite.echoIdentifier(type: type, request: ICMPv6Type.echoRequest, reply: ICMPv6Type.echoReply,
                                            sourcePort: sourcePort, destinationPort: destinationPort)
                : NATRewrite.echoIdentifier(type: type, request: ICMPType.echoRequest, reply: ICMPType.echoReply,
                                            sourcePort: sourcePort, destinationPort: destinationPort)
            var difference: UInt64 = isIPv6 ? pseudoHeader : 0
            if let identifier {
                difference &+= InternetChecksum.difference(old: p.loadBE16(l4 + 4), new: identifier)
                p.storeBE16(identifier, l4 + 4)
            }
            p.storeBE16(InternetChecksum.adjust(p.loadBE16(l4 + 2), by: difference), l4 + 2)
        default:
            break
        }
    }
}
