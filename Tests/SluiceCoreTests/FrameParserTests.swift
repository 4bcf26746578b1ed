import Testing
import SluiceCore

/// Parses the input of the golden fixture with this description.
private func parse(_ description: String) throws -> (ParsedFrame, DropReason?, [UInt8]) {
    let bytes = try #require(Fixtures.input(description), "no fixture named \(description)")
    var frame = ParsedFrame()
    let reason = withExactAllocation(bytes) { FrameParser.parse($0, length: bytes.count, into: &frame) }
    return (frame, reason, bytes)
}

@Suite("Frame parser: field extraction")
struct FrameParserTests {
    @Test("plain IPv4 ICMP echo: offsets and protocol")
    func ipv4Plain() throws {
        let (f, reason, bytes) = try parse("ICMP echo to a v4 VIP -> echo reply")
        #expect(reason == nil)
        #expect(f.etherType == EtherType.ipv4 && f.isIPv4 && !f.isIPv6 && !f.isARP)
        #expect(f.vlanTagCount == 0 && f.vlanID == 0)
        #expect(f.l3Offset == 14)
        #expect(f.l3End == bytes.count)
        #expect(f.l4Protocol == IPProtocol.icmp)
        #expect(f.l4Offset == 34)
        #expect(f.l4Length == bytes.count - 34)
        #expect(f.hasL4Header && !f.isFragment && !f.moreFragments && f.fragmentOffset == 0)
        #expect(f.fragmentID == 0x1C46)
    }

    @Test("IPv4 options move the L4 offset by IHL")
    func ipv4Options() throws {
        let (f, reason, _) = try parse("ICMP echo with IP options (NOP, NOP, NOP, EOL) -> options kept")
        #expect(reason == nil)
        #expect(f.l4Offset == 14 + 24)
        let (g, reason2, _) = try parse("ICMP echo with a Router Alert option (RFC 2113) -> option kept")
        #expect(reason2 == nil)
        #expect(g.l4Offset == 14 + 24)
    }

    @Test("Ethernet padding is outside l3End")
    func padding() throws {
        let (f, reason, bytes) = try parse("ICMP echo with Ethernet padding -> padding kept, not checksummed")
        #expect(reason == nil)
        #expect(bytes.count == 60)
        #expect(f.l3End == 14 + 20 + 8 + 1)
        #expect(f.l4Length == 9)
    }

    @Test("ARP: l3End is the frame end")
    func arp() throws {
        let (f, reason, bytes) = try parse("ARP request padded to the 60-byte Ethernet minimum -> reply keeps the frame length")
        #expect(reason == nil)
        #expect(f.isARP && f.l3Offset == 14 && f.l3End == bytes.count && bytes.count == 60)
        #expect(f.l4Protocol == 0 && !f.hasL4Header)
    }

    @Test("802.1Q: one tag, VLAN ID without the PCP bits")
    func singleTag() throws {
        let (f, reason, _) = try parse("ARP request in an 802.1Q tag -> reply in the same tag")
        #expect(reason == nil)
        #expect(f.vlanTagCount == 1 && f.vlanID == 100 && f.l3Offset == 18 && f.isARP)
        let (g, reason2, _) = try parse("ICMP echo in an 802.1Q tag -> reply in the same tag")
        #expect(reason2 == nil)
        #expect(g.vlanTagCount == 1 && g.vlanID == 100 && g.l3Offset == 18 && g.l4Offset == 38)
    }

    @Test("QinQ: two tags, the inner (C-tag) VLAN ID")
    func qinq() throws {
        let (f, reason, _) = try parse("ICMP echo in QinQ (802.1ad S-tag + 802.1Q C-tag) -> reply in the same tags")
        #expect(reason == nil)
        #expect(f.vlanTagCount == 2 && f.vlanID == 100 && f.l3Offset == 22 && f.l4Offset == 42)
    }

    @Test("VLAN ID masks PCP and DEI; 0x88a8 and 0x8100 in either order")
    func vlanBits() {
        // dst, src, 0x8100 TCI=0xF123 (PCP 7, DEI 1, VID 0x123), 0x88a8 TCI 0x0fff, 0x0806, 28 bytes ARP
        var bytes: [UInt8] = [UInt8](repeating: 0xFF, count: 6) + [2, 0, 0, 0, 1, 1]
        bytes += [0x81, 0x00, 0xF1, 0x23, 0x88, 0xA8, 0x0F, 0xFF, 0x08, 0x06]
        bytes += [0, 1, 8, 0, 6, 4, 0, 1] + [UInt8](repeating: 0, count: 20)
        var f = ParsedFrame()
        let reason = withExactAllocation(bytes) { FrameParser.parse($0, length: bytes.count, into: &f) }
        #expect(reason == nil)
        #expect(f.vlanTagCount == 2 && f.vlanID == 0xFFF && f.l3Offset == 22)
        // Only the first tag.
        var one = Array(bytes[0..<16]) + [0x08, 0x06] + Array(bytes[22...])
        var g = ParsedFrame()
        #expect(withExactAllocation(one) { FrameParser.parse($0, length: one.count, into: &g) } == nil)
        #expect(g.vlanTagCount == 1 && g.vlanID == 0x123)
        one[14] = 0x00  // TCI 0x0023
        #expect(withExactAllocation(one) { FrameParser.parse($0, length: one.count, into: &g) } == nil)
        #expect(g.vlanID == 0x023)
    }

    @Test("IPv4 first fragment: MF, offset 0, ID, L4 header present")
    func ipv4FirstFragment() throws {
        let (f, reason, _) = try parse("IPv4 first fragment (MF, offset 0) of an ICMP echo to a VIP")
        #expect(reason == nil)
        #expect(f.isFragment && f.moreFragments && f.fragmentOffset == 0 && f.fragmentID == 0x2222)
        #expect(f.hasL4Header && f.l4Protocol == IPProtocol.icmp)
    }

    @Test("IPv4 later fragment: byte offset, no L4 header")
    func ipv4LaterFragment() throws {
        let (f, reason, _) = try parse("IPv4 later fragment (offset 24) of an ICMP echo to a VIP")
        #expect(reason == nil)
        #expect(f.isFragment && !f.moreFragments && f.fragmentOffset == 24 && f.fragmentID == 0x2222)
        #expect(!f.hasL4Header && f.l4Protocol == IPProtocol.icmp && f.l4Offset == 34)
        let (g, reason2, _) = try parse("IPv4 last fragment (offset 8, no MF, odd length) of an ICMP echo to a VIP")
        #expect(reason2 == nil)
        #expect(g.isFragment && !g.moreFragments && g.fragmentOffset == 8 && g.l4Length == 3)
    }

    @Test("IPv6 plain: offsets, no extension headers")
    func ipv6Plain() throws {
        let (f, reason, bytes) = try parse("ICMPv6 echo to a v6 VIP -> echo reply")
        #expect(reason == nil)
        #expect(f.isIPv6 && f.l3Offset == 14 && f.l4Offset == 54 && f.l3End == bytes.count)
        #expect(f.l4Protocol == IPProtocol.icmpv6 && f.hasL4Header && !f.isFragment)
    }

    @Test("IPv6 extension headers are walked to the upper layer")
    func ipv6ExtensionHeaders() throws {
        let (f, reason, _) = try parse("ICMPv6 echo behind hop-by-hop and destination-options headers -> reply keeps them")
        #expect(reason == nil)
        #expect(f.l4Offset == 14 + 40 + 8 + 8 && f.l4Protocol == IPProtocol.icmpv6 && f.hasL4Header)
        let (g, reason2, _) = try parse("ICMPv6 echo behind 8 destination-options headers (the walk limit) -> reply")
        #expect(reason2 == nil)
        #expect(g.l4Offset == 14 + 40 + 8 * 8)
    }

    @Test("IPv6 fragment header: 32-bit ID, byte offset, M flag")
    func ipv6Fragments() throws {
        let (f, reason, _) = try parse("IPv6 first fragment (offset 0, M set) of an ICMPv6 echo to a VIP")
        #expect(reason == nil)
        #expect(f.isFragment && f.moreFragments && f.fragmentOffset == 0 && f.fragmentID == 0x1234)
        #expect(f.hasL4Header && f.l4Protocol == IPProtocol.icmpv6 && f.l4Offset == 14 + 48)
        let (g, reason2, _) = try parse("IPv6 later fragment (offset 40) of an ICMPv6 echo to a VIP")
        #expect(reason2 == nil)
        #expect(g.isFragment && !g.moreFragments && g.fragmentOffset == 40 && g.fragmentID == 0x1234)
        #expect(!g.hasL4Header && g.l4Protocol == IPProtocol.icmpv6 && g.l4Offset == 14 + 48)
        let (h, reason3, _) = try parse("ICMPv6 echo in an atomic fragment (offset 0, M clear) -> processed whole (RFC 6946 §4)")
        #expect(reason3 == nil)
        #expect(!h.isFragment && !h.moreFragments && h.fragmentOffset == 0 && h.fragmentID == 0xABCD_EF01)
        #expect(h.hasL4Header && h.l4Offset == 14 + 48)
    }

    @Test("ESP and no-next-header carry no L4 header")
    func noUpperHeader() throws {
        let (f, reason, _) = try parse("ESP to a v4 VIP")
        #expect(reason == nil)
        #expect(f.l4Protocol == IPProtocol.esp && !f.hasL4Header)
        let (g, reason2, _) = try parse("IPv6 no-next-header (59) to a v6 VIP")
        #expect(reason2 == nil)
        #expect(g.l4Protocol == IPProtocol.noNextHeader && !g.hasL4Header && g.l4Length == 0)
    }

    @Test("the IPv4 option walker on hand-made option lists")
    func optionWalker() {
        func ok(_ options: [UInt8]) -> Bool {
            withExactAllocation(options) { FrameParser.optionsAreWellFormed($0, from: 0, to: options.count) }
        }
        #expect(ok([]))
        #expect(ok([1, 1, 1, 1]))
        #expect(ok([0, 0xFF, 0xFF, 0xFF]), "EOL ends the list: what follows is padding")
        #expect(ok([0x94, 4, 0, 0]))
        #expect(ok([1, 0x83, 7, 4, 0, 0, 0, 0]), "NOP, then a 7-byte loose source route filling the rest")
        #expect(!ok([0x83, 0, 0, 0]))
        #expect(!ok([0x83, 1, 0, 0]))
        #expect(!ok([0x83, 5, 0, 0]))
        #expect(!ok([1, 1, 1, 0x44]))
    }
}
