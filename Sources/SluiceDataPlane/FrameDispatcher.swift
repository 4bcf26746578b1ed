import SluiceCore

/// Parse and dispatch for one frame: the per-packet function every worker runs.
///
/// In this first cut it answers ARP requests and IPv6 Neighbor Solicitations for owned
/// addresses, answers ICMP / ICMPv6 echo to them, and drops everything else with a reason.
/// All work is in place in the frame's buffer; nothing is allocated, locked or retained.
public enum FrameDispatcher {
    /// Processes the frame of `length` bytes at `p` (buffer of `capacity` bytes). On `.transmit`
    /// the reply is in the same buffer and `length` holds its length.
    @inlinable
    public static func process(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int,
                               owned: OwnedAddresses) -> Verdict {
        var frame = ParsedFrame()
        if let reason = FrameParser.parse(UnsafeRawPointer(p), length: length, into: &frame) {
            return .drop(reason)
        }
        return respond(p, length: &length, capacity: capacity, frame: frame, owned: owned)
    }

    /// The responder for a frame `FrameParser` accepted: ARP, neighbor solicitations and echo
    /// for owned addresses; everything else is dropped with a reason.
    @inlinable
    public static func respond(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int,
                               frame: ParsedFrame, owned: OwnedAddresses) -> Verdict {
        let destinationMAC = MACAddress.load(p, 0)
        switch frame.etherType {
        case EtherType.arp:
            return handleARP(p, frame: frame, destinationMAC: destinationMAC, owned: owned)
        case EtherType.ipv4:
            guard let ownerMAC = owned.macFor(p.loadBE32(frame.l3Offset + 16)) else { return .drop(.notOwnedAddress) }
            guard owned.accepts(destinationMAC, ownerMAC: ownerMAC) else { return .drop(.foreignDestinationMAC) }
            guard frame.l4Protocol == IPProtocol.icmp else { return .drop(.noService) }
            guard !frame.isFragment else { return .drop(.fragmentNotHandled) }
            guard p.loadBE8(frame.l4Offset) == ICMPType.echoRequest else { return .drop(.unsupportedICMPType) }
            ICMPEcho.turnIPv4RequestIntoReply(p, frame: frame, ownerMAC: ownerMAC)
            return .transmit(.icmpEchoReply)
        default:
            return handleIPv6(p, length: &length, capacity: capacity, frame: frame,
                              destinationMAC: destinationMAC, owned: owned)
        }
    }

    @inlinable
    public static func handleARP(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, destinationMAC: MACAddress,
                          owned: OwnedAddresses) -> Verdict {
        let l3 = frame.l3Offset
        guard ARPPacket.isIPv4OverEthernet(p, l3) else { return .drop(.unsupportedARPFormat) }
        guard p.loadBE16(l3 + 6) == ARPPacket.requestOperation else { return .drop(.arpNotRequest) }
        let target = p.loadBE32(l3 + ARPPacket.targetIP)
        guard let ownerMAC = owned.macFor(target) else { return .drop(.arpNotForOwnedAddress) }
        guard owned.accepts(destinationMAC, ownerMAC: ownerMAC) else { return .drop(.foreignDestinationMAC) }
        // A requester announcing our own address (sender == target) is a gratuitous ARP, not a
        // question; answering it would only echo the announcement (RFC 5227 §2.1.1).
        guard p.loadBE32(l3 + ARPPacket.senderIP) != target else { return .drop(.arpNotRequest) }
        ARPPacket.turnRequestIntoReply(p, l3: l3, ownerMAC: ownerMAC)
        return .transmit(.arpReply)
    }

    @inlinable
    public static func handleIPv6(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, frame: ParsedFrame,
                           destinationMAC: MACAddress, owned: OwnedAddresses) -> Verdict {
        let l3 = frame.l3Offset
        let destination = IPv6Address.load(p, l3 + 24)
        if frame.l4Protocol == IPProtocol.icmpv6 && !frame.isFragment
            && p.loadBE8(frame.l4Offset) == ICMPv6Type.neighborSolicitation {
            guard let solicitation = NeighborDiscovery.validateSolicitation(UnsafeRawPointer(p), frame: frame) else {
                return .drop(.badNeighborSolicitation)
            }
            guard let ownerMAC = owned.macFor(solicitation.target) else { return .drop(.notOwnedAddress) }
            // RFC 4861 §7.1.1: from the unspecified address (DAD) only to the solicited-node group.
            let solicitor = IPv6Address.load(p, l3 + 8)
            let replyToAll = solicitor.isUnspecified
            guard destination == solicitation.target.solicitedNodeGroup
                    || (destination == solicitation.target && !replyToAll) else {
                return .drop(.badNeighborSolicitation)
            }
            guard owned.accepts(destinationMAC, ownerMAC: ownerMAC) else { return .drop(.foreignDestinationMAC) }
            // RFC 4861 §7.2.4: to the solicitor, or to all nodes when it had no address yet (DAD).
            let replyMAC = replyToAll ? MACAddress.ipv6Multicast(.allNodes)
                                      : (solicitation.sourceMAC ?? MACAddress.load(p, 6))
            let written = NeighborDiscovery.writeAdvertisement(
                p, capacity: capacity, l3: l3, target: solicitation.target, targetMAC: ownerMAC,
                destination: replyToAll ? .allNodes : solicitor, destinationMAC: replyMAC,
                solicited: !replyToAll)
            guard written > 0 else { return .drop(.bufferTooSmall) }
            length = written
            return .transmit(.neighborAdvertisement)
        }
        guard let ownerMAC = owned.macFor(destination) else { return .drop(.notOwnedAddress) }
        guard owned.accepts(destinationMAC, ownerMAC: ownerMAC) else { return .drop(.foreignDestinationMAC) }
        guard frame.l4Protocol == IPProtocol.icmpv6 else { return .drop(.noService) }
        guard !frame.isFragment else { return .drop(.fragmentNotHandled) }
        guard frame.l4Length >= HeaderSize.icmpEcho else { return .drop(.truncatedICMPv6) }
        guard p.loadBE8(frame.l4Offset) == ICMPv6Type.echoRequest else { return .drop(.unsupportedICMPType) }
        ICMPEcho.turnIPv6RequestIntoReply(p, frame: frame, ownerMAC: ownerMAC)
        return .transmit(.icmpv6EchoReply)
    }
}
