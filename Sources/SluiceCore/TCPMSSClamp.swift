/// TCP MSS clamping: lowers the Maximum Segment Size option (RFC 9293 §3.7.1, kind 2, length 4)
/// of a SYN or SYN-ACK so that the peer's segments fit a smaller path, such as one that adds
/// VXLAN encapsulation (RFC 7348 §4.3). The TCP checksum is updated incrementally (RFC 1624).
public enum TCPMSSClamp {
    public static let optionKind: UInt8 = 2
    public static let optionLength = 4

    /// The MSS that fills an IP MTU: MTU − IP header − 20-byte TCP header (RFC 9293 §3.7.1;
    /// RFC 8200 §5 for IPv6).
    @inlinable
    public static func mss(forMTU mtu: Int, ipv6: Bool) -> UInt16 {
        UInt16(clamping: mtu - (ipv6 ? HeaderSize.ipv6 : HeaderSize.ipv4Minimum) - HeaderSize.tcpMinimum)
    }

    /// If the TCP segment in `frame` has SYN set and carries an MSS option larger than `maximum`,
    /// lowers it to `maximum`, updates the checksum, and returns true. Returns false, with the
    /// segment untouched, otherwise: not TCP, no L4 header, SYN clear, no MSS option, MSS already
    /// ≤ `maximum`, or malformed options (an option length below 2 or past the data offset, an
    /// MSS option whose length is not 4). Options after EOL (kind 0) are not looked at
    /// (RFC 9293 §3.1). Every MSS option in the list is clamped.
    @inlinable
    public static func clamp(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, maximum: UInt16) -> Bool {
        guard frame.hasL4Header, frame.l4Protocol == IPProtocol.tcp else { return false }
        let l4 = frame.l4Offset
        // Safe: the parser proved 20 bytes of TCP header and data offset ≤ the segment.
        guard p.loadBE8(l4 + 13) & TCPFlags.syn != 0 else { return false }
        let start = l4 + HeaderSize.tcpMinimum
        let end = l4 + Int(p.loadBE8(l4 + 12) >> 4) * 4
        // First pass: validate the whole list, note whether any MSS needs lowering.
        var needsClamp = false
        var badMSS = false
        let wellFormed = TCPOptions.walk(UnsafeRawPointer(p), from: start, to: end) { kind, i, length in
            if kind == optionKind {
                guard length == optionLength else { badMSS = true; return false }
                if p.loadBE16(i + 2) > maximum { needsClamp = true }     // Safe: i + 4 ≤ end.
            }
            return true
        }
        guard wellFormed, !badMSS, needsClamp else { return false }
        // Second pass over the list just validated.
        var difference: UInt64 = 0
        _ = TCPOptions.walk(UnsafeRawPointer(p), from: start, to: end) { kind, i, _ in
            if kind == optionKind {
                let old = p.loadBE16(i + 2)
                if old > maximum {
                    p.storeBE16(maximum, i + 2)
                    // The checksum sums 16-bit words from the TCP header's start; a value at an
                    // odd offset straddles two words and contributes byte-swapped (RFC 1071 §2(A)).
                    difference &+= (i + 2 - l4) & 1 == 0
                        ? InternetChecksum.difference(old: old, new: maximum)
                        : InternetChecksum.difference(old: old.byteSwapped, new: maximum.byteSwapped)
                }
            }
            return true
        }
        p.storeBE16(InternetChecksum.adjust(p.loadBE16(l4 + 16), by: difference), l4 + 16)
        return true
    }
}
