/// "Your packet is too big" errors that Sluice sends to a client when the encapsulated packet
/// would exceed the egress port's MTU: IPv4 destination unreachable / fragmentation needed and DF
/// set (RFC 792 type 3 code 4, with the next-hop MTU of RFC 1191 §4) and ICMPv6 packet too big
/// (RFC 4443 §3.2).
///
/// Both are built in place over the offending frame: its IP packet is moved right (memmove) to
/// become the quote, new IP and ICMP headers are written in front of it, and the Ethernet header
/// (VLAN tags kept) is turned back towards the sender. Call them on the packet as received, before
/// any NAT: the quote must be what the sender sent.
///
/// Cold path: a flow sees at most a few of these before its path MTU settles.
public enum ICMPTooBig {
    /// RFC 1812 §4.3.2.3: an ICMPv4 error holds as much of the original datagram as fits in 576
    /// bytes of IP (Linux does the same).
    public static let ipv4ErrorLimit = 576
    /// RFC 4443 §2.4(c): as much of the invoking packet as fits in the IPv6 minimum MTU.
    public static let ipv6ErrorLimit = 1280
    /// TTL / hop limit of the errors Sluice originates.
    public static let hopLimit: UInt8 = 64
    /// New header bytes in front of the quote: IPv4 (20) + ICMP (8); IPv6 (40) + ICMPv6 (8).
    public static let ipv4HeaderBytes = HeaderSize.ipv4Minimum + 8
    public static let ipv6HeaderBytes = HeaderSize.ipv6 + 8

    /// Turns the IPv4 frame (`length` bytes at `p`, `capacity` writable, parsed into `frame`) into
    /// a fragmentation-needed error from `sourceMAC` / `source` to the original sender's MAC and
    /// address, advertising `nextHopMTU`. IP: TOS 0, ID 0, DF clear, TTL 64; both checksums
    /// computed in full. The quote is the original IP packet (Ethernet padding excluded), cut at
    /// 576 bytes of error or at the buffer capacity, but never shorter than the IP header plus
    /// 8 bytes (RFC 792) unless the packet itself is.
    ///
    /// Returns the new frame length, or 0 with the frame untouched when no error may be sent or
    /// there is no room: the original is a non-first fragment or an ICMP error, or its source is
    /// not a unicast host address, or its destination is broadcast or multicast (RFC 1122
    /// §3.2.2, RFC 1812 §4.3.2.7). Whether DF was set is the caller's decision.
    @inline(never)
    public static func fragmentationNeeded(_ p: UnsafeMutableRawPointer, length: Int, capacity: Int,
                                           frame: ParsedFrame, nextHopMTU: UInt16,
                                           sourceMAC: MACAddress, source: IPv4Address) -> Int {
        guard frame.isIPv4, frame.fragmentOffset == 0, frame.l3End <= length else { return 0 }
        let l3 = frame.l3Offset
        // Safe: the parser proved the IPv4 header (and for a first fragment the L4 header) whole.
        let sender = IPv4Address(value: p.loadBE32(l3 + 12))
        let receiver = IPv4Address(value: p.loadBE32(l3 + 16))
        guard !sender.isUnspecified, !sender.isMulticast, !sender.isLimitedBroadcast,
              sender.value >> 24 != 127, sender.value >> 28 != 0xF,
              !receiver.isMulticast, !receiver.isLimitedBroadcast else { return 0 }
        if frame.l4Protocol == IPProtocol.icmp, frame.hasL4Header, isICMPv4Error(p.loadBE8(frame.l4Offset)) {
            return 0
        }
        let originalLength = frame.l3End - l3
        let headerLength = Int(p.loadBE8(l3) & 0x0F) * 4
        let quote = min(originalLength, ipv4ErrorLimit - ipv4HeaderBytes, capacity - l3 - ipv4HeaderBytes)
        guard quote >= min(originalLength, headerLength + 8) else { return 0 }
        let senderMAC = MACAddress.load(p, 6)
        // Safe: l3 + 28 + quote ≤ capacity (checked); copyMemory is memmove, so the overlap is fine.
        (p + l3 + ipv4HeaderBytes).copyMemory(from: p + l3, byteCount: quote)
        senderMAC.store(p, 0)
        sourceMAC.store(p, 6)
        p.storeBE16(0x4500, l3)
        p.storeBE16(UInt16(truncatingIfNeeded: ipv4HeaderBytes + quote), l3 + 2)
        p.storeBE32(0, l3 + 4)                                         // ID 0, no flags, offset 0
        p.storeBE16(UInt16(hopLimit) << 8 | UInt16(IPProtocol.icmp), l3 + 8)
        p.storeBE16(0, l3 + 10)
        p.storeBE32(source.value, l3 + 12)
        p.storeBE32(sender.value, l3 + 16)
        p.storeBE16(InternetChecksum.checksum(p + l3, count: HeaderSize.ipv4Minimum), l3 + 10)
        let l4 = l3 + HeaderSize.ipv4Minimum
        p.storeBE8(ICMPType.destinationUnreachable, l4)
        p.storeBE8(4, l4 + 1)                                          // fragmentation needed and DF set
        p.storeBE16(0, l4 + 2)
        p.storeBE16(0, l4 + 4)                                         // unused (RFC 1191 §4)
        p.storeBE16(nextHopMTU, l4 + 6)
        p.storeBE16(InternetChecksum.checksum(p + l4, count: 8 + quote), l4 + 2)
        return l4 + 8 + quote
    }

    /// Turns the IPv6 frame into a packet-too-big error (type 2, code 0, `mtu`) from `sourceMAC` /
    /// `source` to the original sender, quoting as much of the original packet as keeps the error
    /// within 1280 bytes (and within `capacity`, but at least 48 bytes of it unless it is
    /// shorter). Hop limit 64, traffic class and flow label 0, checksum computed in full.
    ///
    /// Returns the new frame length, or 0 with the frame untouched when the original is an ICMPv6
    /// error or its source is unspecified or multicast (RFC 4443 §2.4(e); a multicast destination
    /// is allowed for packet too big), or there is no room.
    @inline(never)
    public static func packetTooBig(_ p: UnsafeMutableRawPointer, length: Int, capacity: Int,
                                    frame: ParsedFrame, mtu: UInt32,
                                    sourceMAC: MACAddress, source: IPv6Address) -> Int {
        guard frame.isIPv6, frame.l3End <= length else { return 0 }
        let l3 = frame.l3Offset
        // Safe: the parser proved the 40-byte header and any L4 header whole.
        let sender = IPv6Address.load(p, l3 + 8)
        guard !sender.isUnspecified, !sender.isMulticast else { return 0 }
        if frame.l4Protocol == IPProtocol.icmpv6, frame.hasL4Header, p.loadBE8(frame.l4Offset) < 128 {
            return 0                                                   // an ICMPv6 error (RFC 4443 §2.1)
        }
        let originalLength = frame.l3End - l3
        let quote = min(originalLength, ipv6ErrorLimit - ipv6HeaderBytes, capacity - l3 - ipv6HeaderBytes)
        guard quote >= min(originalLength, HeaderSize.ipv6 + 8) else { return 0 }
        let senderMAC = MACAddress.load(p, 6)
        // Safe: l3 + 48 + quote ≤ capacity (checked); copyMemory is memmove.
        (p + l3 + ipv6HeaderBytes).copyMemory(from: p + l3, byteCount: quote)
        senderMAC.store(p, 0)
        sourceMAC.store(p, 6)
        let icmpLength = 8 + quote
        p.storeBE32(0x6000_0000, l3)
        p.storeBE16(UInt16(truncatingIfNeeded: icmpLength), l3 + 4)
        p.storeBE8(IPProtocol.icmpv6, l3 + 6)
        p.storeBE8(hopLimit, l3 + 7)
        source.store(p, l3 + 8)
        sender.store(p, l3 + 24)
        let l4 = l3 + HeaderSize.ipv6
        p.storeBE8(ICMPv6Type.packetTooBig, l4)
        p.storeBE8(0, l4 + 1)
        p.storeBE16(0, l4 + 2)
        p.storeBE32(mtu, l4 + 4)
        let pseudo = InternetChecksum.pseudoHeaderSum(source: source, destination: sender,
                                                      nextHeader: IPProtocol.icmpv6, length: icmpLength)
        p.storeBE16(InternetChecksum.checksum(p + l4, count: icmpLength, initial: pseudo), l4 + 2)
        return l4 + icmpLength
    }

    /// ICMPv4 error types (RFC 792, RFC 1122 §3.2.2): destination unreachable, source quench,
    /// redirect, time exceeded, parameter problem.
    @inlinable
    public static func isICMPv4Error(_ type: UInt8) -> Bool {
        type == 3 || type == 4 || type == 5 || type == 11 || type == 12
    }
}
