/// The layout of one Ethernet frame, found by `FrameParser.parse`: offsets of each header and
/// the facts the dispatcher needs. It is a plain value on the worker's stack; it refers to the
/// packet only by offsets, so it never outlives or aliases the packet memory.
///
/// Invariant once `parse` returned `nil` (no drop): every header named here lies wholly inside
/// the frame: `l3Offset + l3HeaderLength <= l3End <= length`, and for a first (or only)
/// fragment of TCP/UDP/SCTP/ICMP/ICMPv6 the fixed L4 header lies inside `l4Offset..<l3End`.
public struct ParsedFrame: Sendable, Equatable {
    /// EtherType after any VLAN tags.
    public var etherType: UInt16 = 0
    /// Number of 802.1Q / 802.1ad tags (0...2).
    public var vlanTagCount: UInt8 = 0
    /// The VLAN ID of the innermost tag (0 if untagged).
    public var vlanID: UInt16 = 0
    /// Offset of the ARP or IP header.
    public var l3Offset: Int = HeaderSize.ethernet
    /// Offset one past the IP packet (excludes Ethernet padding); the frame end for ARP.
    public var l3End: Int = 0
    /// Upper-layer protocol (after IPv6 extension headers); 0 for ARP.
    public var l4Protocol: UInt8 = 0
    /// Offset of the upper-layer header; valid only when `hasL4Header`.
    public var l4Offset: Int = 0
    /// True for an IPv4 or IPv6 fragment (offset ≠ 0 or more-fragments set).
    public var isFragment: Bool = false
    /// True when the upper-layer header is present (not a non-first fragment, not ESP / no-next).
    public var hasL4Header: Bool = false
    /// Fragment offset in bytes, the IP identification and the more-fragments flag.
    public var fragmentOffset: Int = 0
    public var fragmentID: UInt32 = 0
    public var moreFragments: Bool = false

    public init() {}

    @inlinable public var isIPv4: Bool { etherType == EtherType.ipv4 }
    @inlinable public var isIPv6: Bool { etherType == EtherType.ipv6 }
    @inlinable public var isARP: Bool { etherType == EtherType.arp }
    /// Bytes of upper-layer data, header included, inside this packet.
    @inlinable public var l4Length: Int { l3End - l4Offset }
}

/// Parses Ethernet, 802.1Q/802.1ad, ARP, IPv4, IPv6 (extension headers skipped) and the fixed
/// headers of TCP, UDP, SCTP, ICMP and ICMPv6, checking every length once against the real
/// frame length. A malformed or truncated frame yields a `DropReason`, never a read out of bounds.
public enum FrameParser {
    /// At most two VLAN tags (802.1ad S-tag + 802.1Q C-tag); deeper stacks are dropped.
    public static let maxVLANTags = 2
    /// At most this many IPv6 extension headers are walked before the packet is dropped, so that
    /// a crafted chain cannot make a worker spin (RFC 8200 §4.1 orders at most 7 kinds).
    public static let maxIPv6ExtensionHeaders = 8

    /// Fills `frame` for the `length` bytes at `p`. Returns `nil` when the frame is well formed,
    /// or why it must be dropped.
    @inlinable
    public static func parse(_ p: UnsafeRawPointer, length: Int, into frame: inout ParsedFrame,
                             ipv4HeaderVerified: Bool = false) -> DropReason? {
        guard length >= HeaderSize.ethernet else { return .truncatedEthernet }
        var offset = 12
        var etherType = p.loadBE16(offset)
        var tags: UInt8 = 0
        while etherType == EtherType.vlan || etherType == EtherType.qinq {
            guard Int(tags) < maxVLANTags else { return .tooManyVLANTags }
            guard offset + 2 + HeaderSize.vlanTag <= length else { return .truncatedVLAN }
            frame.vlanID = p.loadBE16(offset + 2) & 0x0FFF
            offset += HeaderSize.vlanTag
            etherType = p.loadBE16(offset)
            tags += 1
        }
        frame.vlanTagCount = tags
        frame.etherType = etherType
        frame.l3Offset = offset + 2
        switch etherType {
        case EtherType.ipv4: return parseIPv4(p, length: length, into: &frame, headerVerified: ipv4HeaderVerified)
        case EtherType.ipv6: return parseIPv6(p, length: length, into: &frame)
        case EtherType.arp:
            guard frame.l3Offset + HeaderSize.arpIPv4 <= length else { return .truncatedARP }
            frame.l3End = length
            return nil
        default: return .unsupportedEtherType
        }
    }

    /// RFC 791 §3.1. Checks version, IHL, total length, header checksum and the option TLVs.
    @inlinable
    /// `headerVerified`: the port checked the header checksum (RX offload) and found it good.
    public static func parseIPv4(_ p: UnsafeRawPointer, length: Int, into frame: inout ParsedFrame,
                                 headerVerified: Bool = false) -> DropReason? {
        let l3 = frame.l3Offset
        guard l3 + HeaderSize.ipv4Minimum <= length else { return .truncatedIPv4 }
        let versionIHL = p.loadBE8(l3)
        guard versionIHL >> 4 == 4 else { return .badIPVersion }
        let headerLength = Int(versionIHL & 0x0F) * 4
        guard headerLength >= HeaderSize.ipv4Minimum else { return .badIPv4HeaderLength }
        guard l3 + headerLength <= length else { return .truncatedIPv4 }
        let totalLength = Int(p.loadBE16(l3 + 2))
        guard totalLength >= headerLength, l3 + totalLength <= length else { return .badIPv4TotalLength }
        guard headerVerified || InternetChecksum.verifies(p + l3, count: headerLength) else { return .badIPv4Checksum }
        if headerLength > HeaderSize.ipv4Minimum,
           !optionsAreWellFormed(p, from: l3 + HeaderSize.ipv4Minimum, to: l3 + headerLength) {
            return .badIPv4Options
        }
        let flagsOffset = p.loadBE16(l3 + 6)
        guard flagsOffset & 0x8000 == 0 else { return .badIPv4Fragment }  // reserved bit (RFC 791)
        frame.moreFragments = flagsOffset & 0x2000 != 0
        frame.fragmentOffset = Int(flagsOffset & 0x1FFF) * 8
        frame.isFragment = frame.moreFragments || frame.fragmentOffset != 0
        frame.fragmentID = UInt32(p.loadBE16(l3 + 4))
        frame.l3End = l3 + totalLength
        frame.l4Protocol = p.loadBE8(l3 + 9)
        frame.l4Offset = l3 + headerLength
        if frame.isFragment {
            // A fragment's data must be whole 8-byte blocks unless it is the last (RFC 791 §3.2),
            // and a fragment may not reach past the 65535-byte datagram limit.
            let dataLength = totalLength - headerLength
            guard !frame.moreFragments || (dataLength > 0 && dataLength % 8 == 0),
                  frame.fragmentOffset + dataLength <= 65535 else { return .badIPv4Fragment }
        }
        guard frame.fragmentOffset == 0 else { return nil }
        return parseL4(p, into: &frame)
    }

    /// Option TLVs (RFC 791 §3.1): EOL (0) ends the list, NOP (1) is one byte, every other option
    /// has a length byte of at least 2 that keeps it inside the header.
    @inlinable
    public static func optionsAreWellFormed(_ p: UnsafeRawPointer, from start: Int, to end: Int) -> Bool {
        var i = start
        while i < end {
            let kind = p.loadBE8(i)
            if kind == 0 { return true }
            if kind == 1 { i += 1; continue }
            guard i + 1 < end else { return false }
            let optionLength = Int(p.loadBE8(i + 1))
            guard optionLength >= 2, i + optionLength <= end else { return false }
            i += optionLength
        }
        return true
    }

    /// RFC 8200 §3–§4: the fixed header, then extension headers in chain until the upper layer.
    @inlinable
    public static func parseIPv6(_ p: UnsafeRawPointer, length: Int, into frame: inout ParsedFrame) -> DropReason? {
        let l3 = frame.l3Offset
        guard l3 + HeaderSize.ipv6 <= length else { return .truncatedIPv6 }
        guard p.loadBE8(l3) >> 4 == 6 else { return .badIPVersion }
        let payloadLength = Int(p.loadBE16(l3 + 4))
        // Payload length 0 with a Jumbo option (RFC 2675) cannot occur on Ethernet; it falls
        // out below as a truncated chain or an empty upper layer.
        guard l3 + HeaderSize.ipv6 + payloadLength <= length else { return .badIPv6PayloadLength }
        let end = l3 + HeaderSize.ipv6 + payloadLength
        frame.l3End = end
        var next = p.loadBE8(l3 + 6)
        var offset = l3 + HeaderSize.ipv6
        var walked = 0
        var sawFragmentHeader = false
        while true {
            switch next {
            case IPProtocol.hopByHop, IPProtocol.routing, IPProtocol.destinationOptions:
                // Hop-by-Hop must come first, directly after the fixed header (RFC 8200 §4.3).
                guard next != IPProtocol.hopByHop || walked == 0 else { return .badIPv6ExtensionHeader }
                guard offset + 8 <= end else { return .truncatedIPv6ExtensionHeader }
                let headerLength = (Int(p.loadBE8(offset + 1)) + 1) * 8
                guard offset + headerLength <= end else { return .truncatedIPv6ExtensionHeader }
                // Segments left ≠ 0: this node is not the final destination and Sluice routes no
                // routing type, so RFC 8200 §4.4 (and RFC 5095 for type 0) says discard.
                guard next != IPProtocol.routing || p.loadBE8(offset + 3) == 0 else { return .badIPv6ExtensionHeader }
                next = p.loadBE8(offset)
                offset += headerLength
            case IPProtocol.fragment:
                // RFC 8200 §4.5: 8 bytes, offset in 8-byte units, M flag, 32-bit identification.
                guard offset + 8 <= end else { return .truncatedIPv6ExtensionHeader }
                guard !sawFragmentHeader else { return .badIPv6ExtensionHeader }
                sawFragmentHeader = true
                let offsetFlags = p.loadBE16(offset + 2)
                frame.fragmentOffset = Int(offsetFlags >> 3) * 8
                frame.moreFragments = offsetFlags & 1 != 0
                // An atomic fragment (offset 0, M clear) is a whole packet (RFC 6946 §4).
                frame.isFragment = frame.fragmentOffset != 0 || frame.moreFragments
                frame.fragmentID = p.loadBE32(offset + 4)
                next = p.loadBE8(offset)
                offset += 8
                if frame.fragmentOffset != 0 {
                    frame.l4Protocol = next
                    frame.l4Offset = offset
                    return nil
                }
            case IPProtocol.ah:
                // RFC 4302 §2.2: length in 4-byte units, minus 2.
                guard offset + 8 <= end else { return .truncatedIPv6ExtensionHeader }
                let headerLength = (Int(p.loadBE8(offset + 1)) + 2) * 4
                guard offset + headerLength <= end else { return .truncatedIPv6ExtensionHeader }
                next = p.loadBE8(offset)
                offset += headerLength
            default:
                frame.l4Protocol = next
                frame.l4Offset = offset
                return parseL4(p, into: &frame)
            }
            walked += 1
            guard walked <= maxIPv6ExtensionHeaders else { return .badIPv6ExtensionHeader }
        }
    }

    /// The fixed upper-layer header of a first (or only) fragment.
    @inlinable
    public static func parseL4(_ p: UnsafeRawPointer, into frame: inout ParsedFrame) -> DropReason? {
        let available = frame.l3End - frame.l4Offset
        switch frame.l4Protocol {
        case IPProtocol.tcp:
            guard available >= HeaderSize.tcpMinimum else { return .truncatedTCP }
            let dataOffset = Int(p.loadBE8(frame.l4Offset + 12) >> 4) * 4
            guard dataOffset >= HeaderSize.tcpMinimum, dataOffset <= available else { return .badTCPHeaderLength }
        case IPProtocol.udp:
            guard available >= HeaderSize.udp else { return .truncatedUDP }
            // A fragmented datagram's UDP length covers all fragments; check it only when whole.
            let udpLength = Int(p.loadBE16(frame.l4Offset + 4))
            if !frame.isFragment {
                guard udpLength >= HeaderSize.udp, udpLength <= available else { return .badUDPLength }
            }
        case IPProtocol.sctp:
            guard available >= HeaderSize.sctpCommon else { return .truncatedSCTP }
        case IPProtocol.icmp:
            guard available >= HeaderSize.icmpEcho else { return .truncatedICMP }
        case IPProtocol.icmpv6:
            guard available >= HeaderSize.icmpv6Minimum else { return .truncatedICMPv6 }
        case IPProtocol.esp, IPProtocol.noNextHeader:
            return nil
        default:
            break
        }
        frame.hasL4Header = true
        return nil
    }
}
