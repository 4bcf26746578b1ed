import SluiceCore

/// The identity of one direction of a connection: an IPv4 or IPv6 5-tuple plus a 16-bit zone.
///
/// Layout: five host-order 64-bit words, so that a key comparison is five loads, five XORs and an
/// OR, and a key is stored in a table entry without padding (40 bytes):
///
/// | word | bits   | field                                                                  |
/// |------|--------|------------------------------------------------------------------------|
/// | `w0` | 63...0 | source address, high 64 bits                                           |
/// | `w1` | 63...0 | source address, low 64 bits                                            |
/// | `w2` | 63...0 | destination address, high 64 bits                                      |
/// | `w3` | 63...0 | destination address, low 64 bits                                       |
/// | `w4` | 63..48 | source port · 47..32 destination port · 31..24 protocol · 23..16 flags · 15..0 zone |
///
/// IPv4 addresses are stored as IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2)
/// and flag bit 0 says "this is an IPv6 packet", so an IPv6 packet that carries a mapped address
/// never aliases an IPv4 flow.
///
/// "Ports" are the TCP/UDP/SCTP ports; for ICMP/ICMPv6 echo the identifier is the source port and
/// the destination port is 0 (both directions then share the identifier, as in Linux conntrack).
///
/// The `zone` is the caller's discriminator: for instance a direction bit plus a VIP or local
/// address pool index, so that the reverse (backend → local) entry of a full-NAT flow and an
/// unrelated forward flow with the same 5-tuple never collide. The table treats it as key bits.
@frozen
public struct ConntrackKey: Hashable, Sendable, CustomStringConvertible {
    public var w0: UInt64
    public var w1: UInt64
    public var w2: UInt64
    public var w3: UInt64
    public var w4: UInt64

    /// The raw words, e.g. as read back from a table entry.
    @inlinable
    public init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64, w4: UInt64) {
        self.w0 = w0
        self.w1 = w1
        self.w2 = w2
        self.w3 = w3
        self.w4 = w4
    }

    /// `::ffff:0:0/96`, the IPv4-mapped prefix, as the low word's high half.
    @usableFromInline static let v4MappedHigh32: UInt64 = 0x0000_FFFF

    /// Flag bit 0 of `w4`: the packet was IPv6.
    @usableFromInline static let ipv6Flag: UInt64 = 1 << 16

    @inlinable
    static func portsWord(srcPort: UInt16, dstPort: UInt16, proto: UInt8, ipv6: Bool, zone: UInt16) -> UInt64 {
        UInt64(srcPort) << 48 | UInt64(dstPort) << 32 | UInt64(proto) << 24
            | (ipv6 ? ipv6Flag : 0) | UInt64(zone)
    }

    /// An IPv4 5-tuple (addresses as host-order `UInt32`, e.g. 192.0.2.1 is 0xC0000201).
    @inlinable
    public init(ipv4Source src: UInt32, destination dst: UInt32, sourcePort: UInt16,
                destinationPort: UInt16, protocol proto: UInt8, zone: UInt16 = 0) {
        w0 = 0
        w1 = Self.v4MappedHigh32 << 32 | UInt64(src)
        w2 = 0
        w3 = Self.v4MappedHigh32 << 32 | UInt64(dst)
        w4 = Self.portsWord(srcPort: sourcePort, dstPort: destinationPort, proto: proto, ipv6: false, zone: zone)
    }

    /// An IPv4 5-tuple from SluiceCore address values.
    @inlinable
    public init(source: IPv4Address, destination: IPv4Address, sourcePort: UInt16,
                destinationPort: UInt16, protocol proto: UInt8, zone: UInt16 = 0) {
        self.init(ipv4Source: source.value, destination: destination.value, sourcePort: sourcePort,
                  destinationPort: destinationPort, protocol: proto, zone: zone)
    }

    /// An IPv6 5-tuple.
    @inlinable
    public init(source: IPv6Address, destination: IPv6Address, sourcePort: UInt16,
                destinationPort: UInt16, protocol proto: UInt8, zone: UInt16 = 0) {
        w0 = source.high
        w1 = source.low
        w2 = destination.high
        w3 = destination.low
        w4 = Self.portsWord(srcPort: sourcePort, dstPort: destinationPort, proto: proto, ipv6: true, zone: zone)
    }

    /// Builds the key of a parsed frame straight from packet memory (no copies beyond the key):
    /// addresses from the IP header at `frame.l3Offset`, ports from the first four bytes of the
    /// L4 header (TCP, UDP, SCTP), or the echo identifier for ICMP/ICMPv6 echo request/reply.
    /// Returns `nil` when the frame has no L4 header (a non-first fragment) or is not IP.
    ///
    /// - Precondition: `FrameParser.parse` accepted the frame, so every offset used here lies
    ///   inside the packet (its documented invariant).
    @inlinable
    public init?(packet p: UnsafeRawPointer, frame: ParsedFrame, zone: UInt16 = 0) {
        guard frame.hasL4Header else { return nil }
        let l4 = frame.l4Offset
        var sport: UInt16 = 0
        var dport: UInt16 = 0
        switch frame.l4Protocol {
        case IPProtocol.tcp, IPProtocol.udp, IPProtocol.sctp:
            // Safe: the parser guaranteed the fixed L4 header (≥ 8 bytes) inside the frame.
            sport = p.loadBE16(l4)
            dport = p.loadBE16(l4 + 2)
        case IPProtocol.icmp, IPProtocol.icmpv6:
            // Safe: ICMP echo headers are 8 bytes, checked by the parser (`HeaderSize.icmpEcho`).
            let type = p.load(fromByteOffset: l4, as: UInt8.self)
            if type == ICMPType.echoRequest || type == ICMPType.echoReply
                || type == ICMPv6Type.echoRequest || type == ICMPv6Type.echoReply {
                sport = p.loadBE16(l4 + 4)
            }
        default:
            break
        }
        let l3 = frame.l3Offset
        if frame.isIPv4 {
            // Safe: the IPv4 header (≥ 20 bytes) lies inside the frame.
            self.init(ipv4Source: p.loadBE32(l3 + 12), destination: p.loadBE32(l3 + 16),
                      sourcePort: sport, destinationPort: dport, protocol: frame.l4Protocol, zone: zone)
        } else if frame.isIPv6 {
            // Safe: the fixed IPv6 header (40 bytes) lies inside the frame.
            self.init(source: IPv6Address.load(p, l3 + 8), destination: IPv6Address.load(p, l3 + 24),
                      sourcePort: sport, destinationPort: dport, protocol: frame.l4Protocol, zone: zone)
        } else {
            return nil
        }
    }

    // MARK: Fields

    @inlinable public var sourcePort: UInt16 { UInt16(truncatingIfNeeded: w4 >> 48) }
    @inlinable public var destinationPort: UInt16 { UInt16(truncatingIfNeeded: w4 >> 32) }
    @inlinable public var proto: UInt8 { UInt8(truncatingIfNeeded: w4 >> 24) }
    @inlinable public var zone: UInt16 { UInt16(truncatingIfNeeded: w4) }
    @inlinable public var isIPv6: Bool { w4 & Self.ipv6Flag != 0 }

    /// The IPv4 source address, or `nil` for an IPv6 key.
    @inlinable public var sourceIPv4: IPv4Address? {
        isIPv6 ? nil : IPv4Address(value: UInt32(truncatingIfNeeded: w1))
    }
    @inlinable public var destinationIPv4: IPv4Address? {
        isIPv6 ? nil : IPv4Address(value: UInt32(truncatingIfNeeded: w3))
    }
    /// The source address as IPv6 (IPv4-mapped for an IPv4 key).
    @inlinable public var sourceIPv6: IPv6Address { IPv6Address(high: w0, low: w1) }
    @inlinable public var destinationIPv6: IPv6Address { IPv6Address(high: w2, low: w3) }

    /// The same key with source and destination (addresses and ports) swapped, zone and protocol
    /// kept: the tuple of the reply direction as it appears on the wire.
    @inlinable public var reversed: ConntrackKey {
        let ports = (w4 >> 48) << 32 | ((w4 >> 32) & 0xFFFF) << 48
        return ConntrackKey(w0: w2, w1: w3, w2: w0, w3: w1, w4: ports | (w4 & 0xFFFF_FFFF))
    }

    /// The same key in another zone.
    @inlinable public func withZone(_ zone: UInt16) -> ConntrackKey {
        var k = self
        k.w4 = (w4 & ~0xFFFF) | UInt64(zone)
        return k
    }

    public var description: String {
        func addr(_ v6: IPv6Address, _ v4: IPv4Address?) -> String {
            if let v4 { return v4.description }
            return "[\(v6)]"
        }
        return "\(proto) \(addr(sourceIPv6, sourceIPv4)):\(sourcePort) -> "
            + "\(addr(destinationIPv6, destinationIPv4)):\(destinationPort) zone \(zone)"
    }

    // MARK: Hashing

    /// A seeded 64-bit hash of the key for the table's bucket index and tag.
    ///
    /// The construction is wyhash's multiply-fold ("mum": the XOR of the two halves of a 64×64→128
    /// bit product) over the key words XORed with secret seed words: four multiplications, about
    /// 2 ns. With a random secret seed an outsider cannot aim flows at one bucket (hash flooding),
    /// though it is not a cryptographic PRF. The data plane may instead pass the Maglev flow hash
    /// (also seeded) to the table, computed once per packet; any hash whose high 32 bits and low
    /// 12 bits are uniformly distributed works (`FlowTable` documents which bits it uses).
    @inlinable
    public func hash(_ seed: ConntrackHashSeed) -> UInt64 {
        let a = Self.mum(w0 ^ seed.k0, w1 ^ seed.k1)
        let b = Self.mum(w2 ^ seed.k2, w3 ^ seed.k3)
        let c = Self.mum(w4 ^ seed.k4, a ^ b ^ seed.k5)
        return Self.mum(c ^ seed.k0, seed.k3 ^ 0x9E37_79B9_7F4A_7C15) ^ c
    }

    @inlinable @inline(__always)
    static func mum(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let r = a.multipliedFullWidth(by: b)
        return r.high ^ r.low
    }
}

/// The secret of `ConntrackKey.hash`: six 64-bit words. One seed per process (or per table);
/// LB hosts behind ECMP need not share it — the conntrack table is local to a host.
@frozen
public struct ConntrackHashSeed: Sendable, Equatable {
    public var k0, k1, k2, k3, k4, k5: UInt64

    /// Expands `seed` with SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
    /// generators", OOPSLA 2014) so that nearby seeds give unrelated words; every word is odd so a
    /// multiplication by it is a bijection.
    public init(_ seed: UInt64) {
        var s = seed
        func next() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return (z ^ (z >> 31)) | 1
        }
        k0 = next(); k1 = next(); k2 = next(); k3 = next(); k4 = next(); k5 = next()
    }

    /// A seed from the system's random source.
    public static func random() -> ConntrackHashSeed {
        var g = SystemRandomNumberGenerator()
        return ConntrackHashSeed(g.next())
    }
}
