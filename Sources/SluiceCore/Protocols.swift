/// EtherType values (IEEE 802 numbers registry).
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let vlan: UInt16 = 0x8100      // IEEE 802.1Q C-tag
    public static let qinq: UInt16 = 0x88A8      // IEEE 802.1ad S-tag
    public static let ipv6: UInt16 = 0x86DD
}

/// IP protocol / IPv6 next-header numbers (IANA "Assigned Internet Protocol Numbers").
/// TCP header flag bits (RFC 9293 §3.1), in the byte at offset 13.
public enum TCPFlags {
    public static let fin: UInt8 = 0x01
    public static let syn: UInt8 = 0x02
    public static let rst: UInt8 = 0x04
    public static let psh: UInt8 = 0x08
    public static let ack: UInt8 = 0x10
}

/// The TCP option list (RFC 9293 §3.1): EOL (kind 0) ends it, NOP (kind 1) is one byte, every
/// other option is kind, length (≥ 2, counting both), data.
public enum TCPOptions {
    /// Calls `body(kind, offset, length)` for every option other than NOP in the list that
    /// runs from `start` to `end` (the data offset) in `p`, stopping at EOL or when `body`
    /// returns false. Returns false when the list is malformed (a length below 2 or past
    /// `end`): then `body` may have seen the options before the bad one.
    @inlinable @inline(__always)
    public static func walk(_ p: UnsafeRawPointer, from start: Int, to end: Int,
                            _ body: (_ kind: UInt8, _ offset: Int, _ length: Int) -> Bool) -> Bool {
        var i = start
        while i < end {
            let kind = p.loadBE8(i)
            if kind == 0 { return true }                              // EOL
            if kind == 1 { i += 1; continue }                         // NOP
            guard i + 1 < end else { return false }
            let length = Int(p.loadBE8(i + 1))
            guard length >= 2, i + length <= end else { return false }
            if !body(kind, i, length) { return true }
            i += length
        }
        return true
    }
}

public enum IPProtocol {
    public static let hopByHop: UInt8 = 0
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let routing: UInt8 = 43
    public static let fragment: UInt8 = 44
    public static let esp: UInt8 = 50
    public static let ah: UInt8 = 51
    public static let icmpv6: UInt8 = 58
    public static let noNextHeader: UInt8 = 59
    public static let destinationOptions: UInt8 = 60
    public static let sctp: UInt8 = 132
}

/// Fixed header sizes in bytes.
public enum HeaderSize {
    public static let ethernet = 14
    public static let vlanTag = 4
    public static let arpIPv4 = 28          // RFC 826 with hlen 6, plen 4
    public static let ipv4Minimum = 20
    public static let ipv6 = 40
    public static let tcpMinimum = 20
    public static let udp = 8
    public static let sctpCommon = 12
    public static let icmpEcho = 8
    public static let icmpv6Minimum = 4
    public static let neighborSolicitation = 24   // RFC 4861 §4.3, without options
}

/// ICMP (RFC 792) and ICMPv6 (RFC 4443, RFC 4861) message types Sluice handles.
public enum ICMPType {
    public static let echoReply: UInt8 = 0
    public static let destinationUnreachable: UInt8 = 3
    public static let echoRequest: UInt8 = 8
    public static let timeExceeded: UInt8 = 11
}

public enum ICMPv6Type {
    public static let destinationUnreachable: UInt8 = 1
    public static let packetTooBig: UInt8 = 2
    public static let timeExceeded: UInt8 = 3
    public static let echoRequest: UInt8 = 128
    public static let echoReply: UInt8 = 129
    public static let routerSolicitation: UInt8 = 133
    public static let neighborSolicitation: UInt8 = 135
    public static let neighborAdvertisement: UInt8 = 136
}
