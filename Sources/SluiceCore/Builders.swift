/// Builders for the replies and announcements `sluiced` sends for the addresses it owns.
/// In-place builders turn a request into its reply in the same buffer (no copy, no allocation);
/// the others write a whole frame into a buffer the caller owns and return its length.

/// Ethernet II header (IEEE 802.3 §3.1.1), with an optional 802.1Q tag.
public enum EthernetHeader {
    /// Writes destination, source, an optional C-tag and the EtherType; returns the L3 offset.
    @inlinable
    public static func write(_ p: UnsafeMutableRawPointer, destination: MACAddress, source: MACAddress,
                             vlanID: UInt16?, etherType: UInt16) -> Int {
        destination.store(p, 0)
        source.store(p, 6)
        if let vlanID {
            p.storeBE16(EtherType.vlan, 12)
            p.storeBE16(vlanID & 0x0FFF, 14)
            p.storeBE16(etherType, 16)
            return HeaderSize.ethernet + HeaderSize.vlanTag
        }
        p.storeBE16(etherType, 12)
        return HeaderSize.ethernet
    }

    /// Bytes needed for the header.
    @inlinable public static func length(vlanID: UInt16?) -> Int {
        vlanID == nil ? HeaderSize.ethernet : HeaderSize.ethernet + HeaderSize.vlanTag
    }
}

/// ARP for IPv4 over Ethernet (RFC 826). Offsets are from the start of the ARP header.
public enum ARPPacket {
    public static let requestOperation: UInt16 = 1
    public static let replyOperation: UInt16 = 2
    public static let senderMAC = 8, senderIP = 14, targetMAC = 18, targetIP = 24

    /// hardware type Ethernet (1), protocol IPv4, hlen 6, plen 4: the only format Sluice speaks.
    @inlinable
    public static func isIPv4OverEthernet(_ p: UnsafeRawPointer, _ l3: Int) -> Bool {
        p.loadBE16(l3) == 1 && p.loadBE16(l3 + 2) == EtherType.ipv4 && p.loadBE16(l3 + 4) == 0x0604
    }

    /// Turns the request at `l3` into its reply, in place: we become the sender, the requester
    /// the target; the Ethernet header goes back to the requester's address. VLAN tags are kept.
    @inlinable
    public static func turnRequestIntoReply(_ p: UnsafeMutableRawPointer, l3: Int, ownerMAC: MACAddress) {
        let requesterMAC = MACAddress.load(p, l3 + senderMAC)
        let requesterIP = p.loadBE32(l3 + senderIP)
        let ownedIP = p.loadBE32(l3 + targetIP)
        p.storeBE16(replyOperation, l3 + 6)
        ownerMAC.store(p, l3 + senderMAC)
        p.storeBE32(ownedIP, l3 + senderIP)
        requesterMAC.store(p, l3 + targetMAC)
        p.storeBE32(requesterIP, l3 + targetIP)
        MACAddress.load(p, 6).store(p, 0)
        ownerMAC.store(p, 6)
    }

    /// A gratuitous ARP announcement (RFC 5227 §2.3, "ARP Announcement"): a broadcast request
    /// whose sender and target protocol addresses are both the announced address and whose
    /// target hardware address is zero. Returns the frame length, or 0 if `capacity` is too small.
    @inlinable
    public static func writeAnnouncement(_ p: UnsafeMutableRawPointer, capacity: Int, mac: MACAddress,
                                         address: IPv4Address, vlanID: UInt16? = nil) -> Int {
        let total = EthernetHeader.length(vlanID: vlanID) + HeaderSize.arpIPv4
        guard capacity >= total else { return 0 }
        let l3 = EthernetHeader.write(p, destination: .broadcast, source: mac, vlanID: vlanID, etherType: EtherType.arp)
        p.storeBE16(1, l3)
        p.storeBE16(EtherType.ipv4, l3 + 2)
        p.storeBE16(0x0604, l3 + 4)
        p.storeBE16(requestOperation, l3 + 6)
        mac.store(p, l3 + senderMAC)
        p.storeBE32(address.value, l3 + senderIP)
        MACAddress.zero.store(p, l3 + targetMAC)
        p.storeBE32(address.value, l3 + targetIP)
        return total
    }
}

extension ARPPacket {
    /// A broadcast ARP request (RFC 826) asking for `target`'s MAC, from `sender` at `mac`.
    /// Returns the frame length, or 0 if `capacity` is too small.
    @inlinable
    public static func writeRequest(_ p: UnsafeMutableRawPointer, capacity: Int, mac: MACAddress,
                                    sender: IPv4Address, target: IPv4Address) -> Int {
        let length = writeAnnouncement(p, capacity: capacity, mac: mac, address: target)
        guard length > 0 else { return 0 }
        p.storeBE32(sender.value, HeaderSize.ethernet + senderIP)
        return length
    }
}

/// ICMP and ICMPv6 echo (RFC 792, RFC 4443 §4): replies built in place from requests.
public enum ICMPEcho {
    /// The hop limit / TTL of replies Sluice originates (RFC 1700's default TTL).
    public static let replyHopLimit: UInt8 = 64

    /// IPv4: swap the addresses, reset TTL, type 8 → 0; both checksums updated incrementally
    /// (RFC 1624), so the echoed payload is never read. Swapping addresses leaves sums unchanged.
    @inlinable
    public static func turnIPv4RequestIntoReply(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, ownerMAC: MACAddress) {
        let l3 = frame.l3Offset, l4 = frame.l4Offset
        let source = p.loadBE32(l3 + 12)
        let destination = p.loadBE32(l3 + 16)
        p.storeBE32(destination, l3 + 12)
        p.storeBE32(source, l3 + 16)
        let oldTTLProtocol = p.loadBE16(l3 + 8)
        let newTTLProtocol = UInt16(replyHopLimit) << 8 | (oldTTLProtocol & 0xFF)
        p.storeBE16(newTTLProtocol, l3 + 8)
        p.storeBE16(InternetChecksum.update(p.loadBE16(l3 + 10), old: oldTTLProtocol, new: newTTLProtocol), l3 + 10)
        let oldTypeCode = p.loadBE16(l4)
        let newTypeCode = UInt16(ICMPType.echoReply) << 8 | (oldTypeCode & 0xFF)
        p.storeBE16(newTypeCode, l4)
        let icmpChecksum = InternetChecksum.update(p.loadBE16(l4 + 2), old: oldTypeCode, new: newTypeCode)
        p.storeBE16(icmpChecksum, l4 + 2)
        if icmpChecksum == 0 {
            // Eqn. 3 cannot tell a reply summing to -0 (checksum 0x0000) from an all-zero reply,
            // whose checksum must be 0xFFFF or no receiver verifies it. 1 reply in 65536: recompute.
            p.storeBE16(0, l4 + 2)
            p.storeBE16(InternetChecksum.checksum(p + l4, count: frame.l3End - l4), l4 + 2)
        }
        swapEthernet(p, ownerMAC: ownerMAC)
    }

    /// IPv6: swap the addresses, reset the hop limit, type 128 → 129. The pseudo-header sum is
    /// symmetric in source and destination, so only the type word changes the checksum.
    @inlinable
    public static func turnIPv6RequestIntoReply(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, ownerMAC: MACAddress) {
        let l3 = frame.l3Offset, l4 = frame.l4Offset
        let source = IPv6Address.load(p, l3 + 8)
        let destination = IPv6Address.load(p, l3 + 24)
        destination.store(p, l3 + 8)
        source.store(p, l3 + 24)
        p.storeBE8(replyHopLimit, l3 + 7)
        let oldTypeCode = p.loadBE16(l4)
        let newTypeCode = UInt16(ICMPv6Type.echoReply) << 8 | (oldTypeCode & 0xFF)
        p.storeBE16(newTypeCode, l4)
        p.storeBE16(InternetChecksum.update(p.loadBE16(l4 + 2), old: oldTypeCode, new: newTypeCode), l4 + 2)
        swapEthernet(p, ownerMAC: ownerMAC)
    }

    @inlinable @inline(__always)
    public static func swapEthernet(_ p: UnsafeMutableRawPointer, ownerMAC: MACAddress) {
        MACAddress.load(p, 6).store(p, 0)
        ownerMAC.store(p, 6)
    }
}

/// IPv6 Neighbor Discovery (RFC 4861).
public enum NeighborDiscovery {
    /// Hop limit of every ND message; receivers drop others (RFC 4861 §7.1).
    public static let hopLimit: UInt8 = 255
    /// NA (or NS) with one link-layer address option: 24 + 8 bytes (RFC 4861 §4.3, §4.4, §4.6.1).
    public static let advertisementLength = 32
    public static let routerFlag: UInt32 = 0x8000_0000
    public static let solicitedFlag: UInt32 = 0x4000_0000
    public static let overrideFlag: UInt32 = 0x2000_0000
    public static let sourceLinkLayerOption: UInt8 = 1
    public static let targetLinkLayerOption: UInt8 = 2

    /// Checks a Neighbor Solicitation at `frame.l4Offset` as RFC 4861 §7.1.1 requires of a
    /// receiver: hop limit 255, code 0, at least 24 bytes, valid ICMPv6 checksum, target not
    /// multicast, options of non-zero length inside the message, no source link-layer option from
    /// the unspecified address. Returns the target address and the solicitor's link-layer address
    /// (if sent).
    @inlinable
    public static func validateSolicitation(_ p: UnsafeRawPointer, frame: ParsedFrame)
        -> (target: IPv6Address, sourceMAC: MACAddress?)? {
        let l3 = frame.l3Offset, l4 = frame.l4Offset
        guard frame.l4Length >= HeaderSize.neighborSolicitation,
              p.loadBE8(l3 + 7) == hopLimit, p.loadBE8(l4 + 1) == 0 else { return nil }
        let pseudo = InternetChecksum.pseudoHeaderSum(source: IPv6Address.load(p, l3 + 8),
                                                      destination: IPv6Address.load(p, l3 + 24),
                                                      nextHeader: IPProtocol.icmpv6, length: frame.l4Length)
        guard InternetChecksum.verifies(p + l4, count: frame.l4Length, initial: pseudo) else { return nil }
        let target = IPv6Address.load(p, l4 + 8)
        guard !target.isMulticast else { return nil }
        var sourceMAC: MACAddress? = nil
        var option = l4 + HeaderSize.neighborSolicitation
        while option + 2 <= frame.l3End {
            let optionLength = Int(p.loadBE8(option + 1)) * 8
            guard optionLength > 0, option + optionLength <= frame.l3End else { return nil }
            if p.loadBE8(option) == sourceLinkLayerOption, optionLength >= 8 {
                sourceMAC = MACAddress.load(p, option + 2)
            }
            option += optionLength
        }
        guard option == frame.l3End else { return nil }
        if sourceMAC != nil && IPv6Address.load(p, l3 + 8).isUnspecified { return nil }
        return (target, sourceMAC)
    }

    /// Writes a Neighbor Advertisement for `target` at `l3` (the Ethernet header and any VLAN
    /// tags before `l3` are kept; only the MAC addresses are set) and returns the frame length,
    /// or 0 when `capacity` is too small. `solicited` sets S (a reply to a solicitation);
    /// O is always set: an LB owning a VIP overrides stale cache entries (RFC 4861 §7.2.4).
    @inlinable
    public static func writeAdvertisement(_ p: UnsafeMutableRawPointer, capacity: Int, l3: Int,
                                          target: IPv6Address, targetMAC: MACAddress,
                                          destination: IPv6Address, destinationMAC: MACAddress,
                                          solicited: Bool) -> Int {
        let total = l3 + HeaderSize.ipv6 + advertisementLength
        guard capacity >= total else { return 0 }
        destinationMAC.store(p, 0)
        targetMAC.store(p, 6)
        writeMessage(p, l3: l3, type: ICMPv6Type.neighborAdvertisement,
                     flags: overrideFlag | (solicited ? solicitedFlag : 0), source: target, destination: destination,
                     target: target, option: targetLinkLayerOption, optionMAC: targetMAC)
        return total
    }

    /// The IPv6 header (hop limit 255) and a 32-byte solicitation or advertisement at `l3`: the
    /// 24-byte message (RFC 4861 §4.3, §4.4) and one link-layer address option (§4.6.1), with
    /// the ICMPv6 checksum over the pseudo-header. Both ND messages have this one shape.
    @inlinable
    static func writeMessage(_ p: UnsafeMutableRawPointer, l3: Int, type: UInt8, flags: UInt32,
                             source: IPv6Address, destination: IPv6Address, target: IPv6Address,
                             option: UInt8, optionMAC: MACAddress) {
        p.storeBE32(0x6000_0000, l3)                           // version 6, class 0, flow 0
        p.storeBE16(UInt16(advertisementLength), l3 + 4)
        p.storeBE8(IPProtocol.icmpv6, l3 + 6)
        p.storeBE8(hopLimit, l3 + 7)
        source.store(p, l3 + 8)
        destination.store(p, l3 + 24)
        let l4 = l3 + HeaderSize.ipv6
        p.storeBE8(type, l4)
        p.storeBE8(0, l4 + 1)
        p.storeBE16(0, l4 + 2)
        p.storeBE32(flags, l4 + 4)
        target.store(p, l4 + 8)
        p.storeBE8(option, l4 + 24)
        p.storeBE8(1, l4 + 25)
        optionMAC.store(p, l4 + 26)
        let pseudo = InternetChecksum.pseudoHeaderSum(source: source, destination: destination,
                                                      nextHeader: IPProtocol.icmpv6, length: advertisementLength)
        p.storeBE16(InternetChecksum.checksum(p + l4, count: advertisementLength, initial: pseudo), l4 + 2)
    }

    /// A Neighbor Solicitation for `target` (RFC 4861 §4.3, §7.2.2) from `source` at `mac`, to the
    /// target's solicited-node group, with our link-layer address as an option. Returns the frame
    /// length, or 0 if `capacity` is too small.
    @inlinable
    public static func writeSolicitation(_ p: UnsafeMutableRawPointer, capacity: Int, mac: MACAddress,
                                         source: IPv6Address, target: IPv6Address) -> Int {
        let total = HeaderSize.ethernet + HeaderSize.ipv6 + advertisementLength
        guard capacity >= total else { return 0 }
        let group = target.solicitedNodeGroup
        let l3 = EthernetHeader.write(p, destination: .ipv6Multicast(group), source: mac, vlanID: nil,
                                      etherType: EtherType.ipv6)
        writeMessage(p, l3: l3, type: ICMPv6Type.neighborSolicitation, flags: 0, source: source,
                     destination: group, target: target, option: sourceLinkLayerOption, optionMAC: mac)
        return total
    }

    /// An unsolicited Neighbor Advertisement to all nodes (RFC 4861 §7.2.6), sent when Sluice
    /// takes a VIP over: S clear, O set. Returns the frame length, or 0 if `capacity` is too small.
    @inlinable
    public static func writeUnsolicitedAdvertisement(_ p: UnsafeMutableRawPointer, capacity: Int, mac: MACAddress,
                                                     address: IPv6Address, vlanID: UInt16? = nil) -> Int {
        guard capacity >= EthernetHeader.length(vlanID: vlanID) + HeaderSize.ipv6 + advertisementLength else { return 0 }
        let l3 = EthernetHeader.write(p, destination: .ipv6Multicast(.allNodes), source: mac,
                                      vlanID: vlanID, etherType: EtherType.ipv6)
        return writeAdvertisement(p, capacity: capacity, l3: l3, target: address, targetMAC: mac,
                                  destination: .allNodes, destinationMAC: .ipv6Multicast(.allNodes),
                                  solicited: false)
    }
}
