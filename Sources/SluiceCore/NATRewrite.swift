/// Address and port translation of one IPv4 or IPv6 packet, in place: DNAT (destination to the
/// backend), its return path (source back to the VIP), and full-NAT (both at once).
///
/// Checksums are updated incrementally (RFC 1624 eqn. 3): the IPv4 header checksum for the
/// addresses and the TTL; the TCP, UDP and ICMPv6 checksums for the ports and for the addresses
/// through the pseudo-header (RFC 793 §3.1, RFC 768, RFC 8200 §8.1). The payload is never read,
/// except for SCTP, whose CRC32c (RFC 9260 §6.8) cannot be updated incrementally in this form and
/// is recomputed over the packet when a port changes; SCTP has no pseudo-header, so an address
/// change alone leaves it alone.
///
/// Per protocol:
/// - TCP: ports at 0 and 2, checksum at 16.
/// - UDP: ports, checksum at 6. A zero checksum ("none", RFC 768; over IPv6 only for tunnels,
///   RFC 6935) stays zero. A computed zero is sent as 0xFFFF (RFC 768).
/// - SCTP: ports; CRC32c recomputed over the packet when a port changes. A port change in a
///   fragment cannot be checksummed (the CRC covers data this packet does not hold): the packet is
///   left untouched and `.sctpFragmentPortChange` returned.
/// - ICMP / ICMPv6 echo (RFC 792, RFC 4443 §4): the identifier plays the port. In a request
///   (type 8 / 128) it is the *source* port, in a reply (type 0 / 129) the *destination* port, so
///   that a request's tuple and its reply's tuple are each other's reverse, as for TCP. Other ICMP
///   types: addresses only (errors are translated by `ICMPErrorQuote`).
/// - Non-first fragments (no L4 header in the packet), ESP, and other protocols: addresses only.
///   A first fragment is rewritten like a whole packet: the incremental update of its L4 checksum
///   (which covers the whole datagram) is exact.
///
/// `decrementTTL` lowers the IPv4 TTL / IPv6 hop limit by one, as a router does (RFC 791 §3.2,
/// RFC 8200 §3); a packet whose TTL is 0 or 1 is then left untouched and `.hopLimitExpired` is
/// returned (the caller drops it, or answers with time exceeded).
///
/// Preconditions (all hold after `FrameParser.parse` returned `nil` for this `frame`): the IP
/// header at `frame.l3Offset` is whole, and when `frame.hasL4Header` the fixed L4 header is inside
/// `frame.l4Offset..<frame.l3End`.
public enum NATRewrite {
    /// What a rewrite did.
    public enum Outcome: UInt8, Sendable, Equatable {
        /// The packet was rewritten and its checksums updated.
        case rewritten
        /// `decrementTTL` was asked and the TTL / hop limit was ≤ 1. Packet untouched.
        case hopLimitExpired
        /// An SCTP port change in a fragment: the CRC32c cannot be recomputed. Packet untouched.
        case sctpFragmentPortChange
    }

    // MARK: IPv4

    /// Full-NAT: both endpoints rewritten (forward: client → pool, VIP → backend; return:
    /// backend → VIP, pool → client).
    @inlinable
    public static func rewriteIPv4(_ p: UnsafeMutableRawPointer, frame: ParsedFrame,
                                   source: IPv4Address, sourcePort: UInt16,
                                   destination: IPv4Address, destinationPort: UInt16,
                                   decrementTTL: Bool = false) -> Outcome {
        ipv4(p, frame, source: source, sourcePort: sourcePort, destination: destination,
             destinationPort: destinationPort, decrementTTL: decrementTTL)
    }

    /// DNAT, forward direction: the destination becomes the backend.
    @inlinable
    public static func rewriteIPv4Destination(_ p: UnsafeMutableRawPointer, frame: ParsedFrame,
                                              address: IPv4Address, port: UInt16,
                                              decrementTTL: Bool = false) -> Outcome {
        ipv4(p, frame, source: nil, sourcePort: nil, destination: address, destinationPort: port,
             decrementTTL: decrementTTL)
    }

    /// DNAT, return direction: the source (the backend) becomes the VIP.
    @inlinable
    public static func rewriteIPv4Source(_ p: UnsafeMutableRawPointer, frame: ParsedFrame,
                                         address: IPv4Address, port: UInt16,
                                         decrementTTL: Bool = false) -> Outcome {
        ipv4(p, frame, source: address, sourcePort: port, destination: nil, destinationPort: nil,
             decrementTTL: decrementTTL)
    }

    // MARK: IPv6

    /// Full-NAT over IPv6.
    @inlinable
    public static func rewriteIPv6(_ p: UnsafeMutableRawPointer, frame: ParsedFrame,
                                   source: IPv6Address, sourcePort: UInt16,
                                   destination: IPv6Address, destinationPort: UInt16,
                                   decrementHopLimit: Bool = false) -> Outcome {
        ipv6(p, frame, source: source, sourcePort: sourcePort, destination: destination,
             destinationPort: destinationPort, decrementHopLimit: decrementHopLimit)
    }

    /// DNAT over IPv6, forward direction.
    @inlinable
    public static func rewriteIPv6Destination(_ p: UnsafeMutableRawPointer, frame: ParsedFrame,
                                              address: IPv6Address, port: UInt16,
                                              decrementHopLimit: Bool = false) -> Outcome {
        ipv6(p, frame, source: nil, sourcePort: nil, destination: address, destinationPort: port,
             decrementHopLimit: decrementHopLimit)
    }

    /// DNAT over IPv6, return direction.
    @inlinable
    public static func rewriteIPv6Source(_ p: UnsafeMutableRawPointer, frame: ParsedFrame,
                                         address: IPv6Address, port: UInt16,
                                         decrementHopLimit: Bool = false) -> Outcome {
        ipv6(p, frame, source: address, sourcePort: port, destination: nil, destinationPort: nil,
             decrementHopLimit: decrementHopLimit)
    }

    // MARK: Implementation

    /// `nil` leaves a field as it is. The public entry points pass constants for the `nil`s, so
    /// once inlined the untouched side costs nothing.
    @inlinable @inline(__always)
    static func ipv4(_ p: UnsafeMutableRawPointer, _ frame: ParsedFrame,
                     source: IPv4Address?, sourcePort: UInt16?,
                     destination: IPv4Address?, destinationPort: UInt16?,
                     decrementTTL: Bool) -> Outcome {
        let l3 = frame.l3Offset
        // Safe: the parser proved the 20-byte fixed header inside the frame.
        let ttlProtocol = p.loadBE16(l3 + 8)
        if decrementTTL, ttlProtocol >> 8 <= 1 { return .hopLimitExpired }
        if sctpPortChangeInFragment(p, frame, sourcePort: sourcePort, destinationPort: destinationPort) {
            return .sctpFragmentPortChange
        }
        let oldSource = p.loadBE32(l3 + 12)
        let oldDestination = p.loadBE32(l3 + 16)
        let newSource = source?.value ?? oldSource
        let newDestination = destination?.value ?? oldDestination
        let addresses = InternetChecksum.difference(old: oldSource, new: newSource)
            &+ InternetChecksum.difference(old: oldDestination, new: newDestination)
        if frame.hasL4Header {
            transport(p, frame, pseudoHeader: addresses, sourcePort: sourcePort,
                      destinationPort: destinationPort, isIPv6: false)
        }
        var header = addresses
        if decrementTTL {
            let newTTLProtocol = ttlProtocol &- 0x0100   // Safe: TTL ≥ 2 checked above.
            p.storeBE16(newTTLProtocol, l3 + 8)
            header &+= InternetChecksum.difference(old: ttlProtocol, new: newTTLProtocol)
        }
        p.storeBE32(newSource, l3 + 12)
        p.storeBE32(newDestination, l3 + 16)
        p.storeBE16(InternetChecksum.adjust(p.loadBE16(l3 + 10), by: header), l3 + 10)
        return .rewritten
    }

    @inlinable @inline(__always)
    static func ipv6(_ p: UnsafeMutableRawPointer, _ frame: ParsedFrame,
                     source: IPv6Address?, sourcePort: UInt16?,
                     destination: IPv6Address?, destinationPort: UInt16?,
                     decrementHopLimit: Bool) -> Outcome {
        let l3 = frame.l3Offset
        // Safe: the parser proved the 40-byte fixed header inside the frame.
        let hopLimit = p.loadBE8(l3 + 7)
        if decrementHopLimit, hopLimit <= 1 { return .hopLimitExpired }
        if sctpPortChangeInFragment(p, frame, sourcePort: sourcePort, destinationPort: destinationPort) {
            return .sctpFragmentPortChange
        }
        var addresses: UInt64 = 0
        if let source {
            addresses &+= InternetChecksum.difference(old: IPv6Address.load(p, l3 + 8), new: source)
        }
        if let destination {
            addresses &+= InternetChecksum.difference(old: IPv6Address.load(p, l3 + 24), new: destination)
        }
        if frame.hasL4Header {
            transport(p, frame, pseudoHeader: addresses, sourcePort: sourcePort,
                      destinationPort: destinationPort, isIPv6: true)
        }
        if decrementHopLimit { p.storeBE8(hopLimit &- 1, l3 + 7) }   // Safe: ≥ 2 checked above.
        source?.store(p, l3 + 8)
        destination?.store(p, l3 + 24)
        return .rewritten
    }

    /// True when this is an SCTP fragment with its common header and a port would change.
    @inlinable @inline(__always)
    static func sctpPortChangeInFragment(_ p: UnsafeMutableRawPointer, _ frame: ParsedFrame,
                                         sourcePort: UInt16?, destinationPort: UInt16?) -> Bool {
        guard frame.isFragment, frame.hasL4Header, frame.l4Protocol == IPProtocol.sctp else { return false }
        let l4 = frame.l4Offset
        // Safe: the parser proved the 12-byte common header inside the packet.
        if let sourcePort, sourcePort != p.loadBE16(l4) { return true }
        if let destinationPort, destinationPort != p.loadBE16(l4 + 2) { return true }
        return false
    }

    /// Rewrites the ports (or echo identifier) of the L4 header at `frame.l4Offset` and updates
    /// its checksum by `pseudoHeader` (the address difference; ignored where the protocol has no
    /// pseudo-header) plus the port difference.
    @inlinable @inline(__always)
    static func transport(_ p: UnsafeMutableRawPointer, _ frame: ParsedFrame, pseudoHeader: UInt64,
                          sourcePort: UInt16?, destinationPort: UInt16?, isIPv6: Bool) {
        let l4 = frame.l4Offset
        switch frame.l4Protocol {
        case IPProtocol.tcp:
            // Safe: the parser proved 20 bytes of TCP header (ports at 0 and 2, checksum at 16).
            let ports = rewritePorts(p, l4, sourcePort: sourcePort, destinationPort: destinationPort)
            p.storeBE16(InternetChecksum.adjust(p.loadBE16(l4 + 16), by: pseudoHeader &+ ports), l4 + 16)
        case IPProtocol.udp:
            // Safe: the parser proved the 8-byte UDP header.
            let ports = rewritePorts(p, l4, sourcePort: sourcePort, destinationPort: destinationPort)
            let checksum = p.loadBE16(l4 + 6)
            if checksum != 0 {
                let updated = InternetChecksum.adjust(checksum, by: pseudoHeader &+ ports)
                p.storeBE16(updated == 0 ? 0xFFFF : updated, l4 + 6)
            }
        case IPProtocol.sctp:
            // Safe: the parser proved the 12-byte common header; a fragment with a port change
            // was turned away before anything was written.
            let oldPorts = p.loadBE32(l4)
            _ = rewritePorts(p, l4, sourcePort: sourcePort, destinationPort: destinationPort)
            if p.loadBE32(l4) != oldPorts {
                SCTPChecksum.store(p + l4, count: frame.l3End - l4)
            }
        case IPProtocol.icmp where !isIPv6:
            // Safe: the parser proved 8 bytes of ICMP (type, code, checksum, identifier, sequence).
            let identifier = echoIdentifier(type: p.loadBE8(l4), request: ICMPType.echoRequest,
                                            reply: ICMPType.echoReply,
                                            sourcePort: sourcePort, destinationPort: destinationPort)
            if let identifier {
                let old = p.loadBE16(l4 + 4)
                p.storeBE16(identifier, l4 + 4)
                // ICMP has no pseudo-header (RFC 792).
                p.storeBE16(InternetChecksum.adjust(p.loadBE16(l4 + 2),
                                                    by: InternetChecksum.difference(old: old, new: identifier)), l4 + 2)
            }
        case IPProtocol.icmpv6 where isIPv6:
            // Safe: the parser proved 4 bytes of ICMPv6; the identifier needs 8, checked here.
            var difference = pseudoHeader
            if frame.l4Length >= HeaderSize.icmpEcho,
               let identifier = echoIdentifier(type: p.loadBE8(l4), request: ICMPv6Type.echoRequest,
                                               reply: ICMPv6Type.echoReply,
                                               sourcePort: sourcePort, destinationPort: destinationPort) {
                let old = p.loadBE16(l4 + 4)
                p.storeBE16(identifier, l4 + 4)
                difference &+= InternetChecksum.difference(old: old, new: identifier)
            }
            p.storeBE16(InternetChecksum.adjust(p.loadBE16(l4 + 2), by: difference), l4 + 2)
        default:
            break
        }
    }

    /// Writes the ports that are not `nil`; returns their checksum difference.
    @inlinable @inline(__always)
    static func rewritePorts(_ p: UnsafeMutableRawPointer, _ l4: Int,
                             sourcePort: UInt16?, destinationPort: UInt16?) -> UInt64 {
        var difference: UInt64 = 0
        if let sourcePort {
            difference &+= InternetChecksum.difference(old: p.loadBE16(l4), new: sourcePort)
            p.storeBE16(sourcePort, l4)
        }
        if let destinationPort {
            difference &+= InternetChecksum.difference(old: p.loadBE16(l4 + 2), new: destinationPort)
            p.storeBE16(destinationPort, l4 + 2)
        }
        return difference
    }

    /// The new echo identifier, or `nil` when the message is not an echo or its "port" is not
    /// being rewritten: a request's identifier is its source port, a reply's its destination port.
    @inlinable @inline(__always)
    static func echoIdentifier(type: UInt8, request: UInt8, reply: UInt8,
                               sourcePort: UInt16?, destinationPort: UInt16?) -> UInt16? {
        if type == request { return sourcePort }
        if type == reply { return destinationPort }
        return nil
    }
}

extension InternetChecksum {
    /// The one's-complement difference `~old + new` of a 16-bit field, to be accumulated and then
    /// applied with `adjust(_:by:)` (RFC 1624 eqn. 3, several fields at once, one fold).
    @inlinable @inline(__always)
    public static func difference(old: UInt16, new: UInt16) -> UInt64 {
        UInt64(~old) &+ UInt64(new)
    }

    /// The difference of a 32-bit field (an IPv4 address). A 32-bit quantity may be summed whole:
    /// 2^16 ≡ 1 (mod 2^16 − 1), so `fold` reduces it to the sum of its two 16-bit words.
    @inlinable @inline(__always)
    public static func difference(old: UInt32, new: UInt32) -> UInt64 {
        UInt64(~old) &+ UInt64(new)
    }

    /// The difference of a 128-bit field (an IPv6 address), as four 32-bit quantities each side.
    @inlinable @inline(__always)
    public static func difference(old: IPv6Address, new: IPv6Address) -> UInt64 {
        let h = ~old.high, l = ~old.low
        return (h & 0xFFFF_FFFF) &+ (h >> 32) &+ (l & 0xFFFF_FFFF) &+ (l >> 32)
            &+ (new.high & 0xFFFF_FFFF) &+ (new.high >> 32) &+ (new.low & 0xFFFF_FFFF) &+ (new.low >> 32)
    }

    /// RFC 1624 eqn. 3 with an accumulated difference: HC' = ~(~HC + Σ(~m + m')).
    /// No overflow: a handful of terms below 2^32 each.
    @inlinable @inline(__always)
    public static func adjust(_ checksum: UInt16, by difference: UInt64) -> UInt16 {
        ~fold(UInt64(~checksum) &+ difference)
    }
}
