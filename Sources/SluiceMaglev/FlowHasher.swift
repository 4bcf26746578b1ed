import SluiceCore

/// The 5-tuple of an IPv4 flow, as seen on the wire in the client-to-VIP direction.
/// For protocols without ports (ICMP, non-first fragments) both ports are 0.
public struct IPv4FlowKey: Hashable, Sendable {
    public var source: IPv4Address
    public var destination: IPv4Address
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// IANA protocol number (`IPProtocol.tcp`, `.udp`, `.sctp`, …).
    public var proto: UInt8

    @inlinable
    public init(source: IPv4Address, destination: IPv4Address, sourcePort: UInt16, destinationPort: UInt16, proto: UInt8) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.proto = proto
    }

    /// The 13 bytes the flow hash reads: source, destination (4 bytes each), source port,
    /// destination port (2 bytes each, all in network byte order), protocol (1 byte).
    /// `FlowHasher` hashes exactly these bytes, without materialising them.
    public var hashedBytes: [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(13)
        for shift in stride(from: 24, through: 0, by: -8) { b.append(UInt8(truncatingIfNeeded: source.value >> UInt32(shift))) }
        for shift in stride(from: 24, through: 0, by: -8) { b.append(UInt8(truncatingIfNeeded: destination.value >> UInt32(shift))) }
        b += [UInt8(sourcePort >> 8), UInt8(truncatingIfNeeded: sourcePort),
              UInt8(destinationPort >> 8), UInt8(truncatingIfNeeded: destinationPort), proto]
        return b
    }
}

/// The 5-tuple of an IPv6 flow; see `IPv4FlowKey`.
public struct IPv6FlowKey: Hashable, Sendable {
    public var source: IPv6Address
    public var destination: IPv6Address
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var proto: UInt8

    @inlinable
    public init(source: IPv6Address, destination: IPv6Address, sourcePort: UInt16, destinationPort: UInt16, proto: UInt8) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.proto = proto
    }

    /// The 37 bytes the flow hash reads: source, destination (16 bytes each), source port,
    /// destination port (network byte order), protocol.
    public var hashedBytes: [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(37)
        for half in [source.high, source.low, destination.high, destination.low] {
            for shift in stride(from: 56, through: 0, by: -8) { b.append(UInt8(truncatingIfNeeded: half >> UInt64(shift))) }
        }
        b += [UInt8(sourcePort >> 8), UInt8(truncatingIfNeeded: sourcePort),
              UInt8(destinationPort >> 8), UInt8(truncatingIfNeeded: destinationPort), proto]
        return b
    }
}

/// The per-deployment key of the flow hash: 16 bytes of configuration.
///
/// Every LB host behind one ECMP group must use the same seed, so that a flow re-routed to
/// another host (an ECMP change, a host restart) hashes to the same Maglev slot there (Maglev
/// paper §3.3–3.4). The seed is therefore configuration, never drawn at random per process; it
/// should still be secret and random per deployment, since SipHash resists crafted collisions
/// only while the key is unknown to the sender.
public struct FlowHashSeed: Hashable, Sendable {
    public var key0: UInt64
    public var key1: UInt64

    @inlinable public init(key0: UInt64, key1: UInt64) {
        self.key0 = key0
        self.key1 = key1
    }

    /// 16 key bytes (byte 0 is the least significant byte of `key0`, as in reference SipHash).
    public init?(bytes: [UInt8]) {
        guard let key = SipHash.key(fromBytes: bytes) else { return nil }
        self.init(key0: key.key0, key1: key.key1)
    }

    /// 32 hexadecimal digits, the form a configuration file holds.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 32 else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: 32, by: 2) {
            guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.init(bytes: bytes)
    }
}

/// The seeded flow hash: SipHash-1-3 over the fixed byte layout of `IPv4FlowKey.hashedBytes` /
/// `IPv6FlowKey.hashedBytes` under a `FlowHashSeed`.
///
/// SipHash-1-3 is the variant CPython and Rust use against hash flooding: with a secret key an
/// attacker cannot craft 5-tuples that collide in the Maglev table or a flow table. The byte
/// layout is fixed (documented in docs/maglev.md and reproduced by tools/maglev/reference.py), so
/// any host with the seed computes the same value. IPv4 and IPv6 messages differ in length, and
/// SipHash mixes the length in, so the two families never share inputs.
///
/// Use of the 64 bits: `MaglevTable` takes the high 32; other consumers (flow-table bucket,
/// VXLAN outer source port) should take low bits, so that their choices are not correlated.
///
/// The hot path is straight-line code: 2 (IPv4) or 5 (IPv6) compressions, no loop, no memory
/// access beyond the key value in registers.
public struct FlowHasher: Sendable {
    public let seed: FlowHashSeed

    @inlinable public init(seed: FlowHashSeed) { self.seed = seed }

    /// SipHash-1-3 of the 13-byte IPv4 layout.
    @inlinable @inline(__always)
    public func hash(_ key: IPv4FlowKey) -> UInt64 {
        var s = SipHashState(key0: seed.key0, key1: seed.key1)
        // Bytes 0–7 read little-endian: the big-endian address bytes become the byte-swapped value.
        s.compress(UInt64(key.source.value.byteSwapped) | UInt64(key.destination.value.byteSwapped) &<< 32, rounds: 1)
        // Bytes 8–12: ports (network order) and protocol.
        let tail = UInt64(key.sourcePort.byteSwapped) | UInt64(key.destinationPort.byteSwapped) &<< 16
            | UInt64(key.proto) &<< 32
        return s.finish(tail: tail, length: 13, rounds: 1, finalRounds: 3)
    }

    /// SipHash-1-3 of the 37-byte IPv6 layout.
    @inlinable @inline(__always)
    public func hash(_ key: IPv6FlowKey) -> UInt64 {
        var s = SipHashState(key0: seed.key0, key1: seed.key1)
        s.compress(key.source.high.byteSwapped, rounds: 1)
        s.compress(key.source.low.byteSwapped, rounds: 1)
        s.compress(key.destination.high.byteSwapped, rounds: 1)
        s.compress(key.destination.low.byteSwapped, rounds: 1)
        let tail = UInt64(key.sourcePort.byteSwapped) | UInt64(key.destinationPort.byteSwapped) &<< 16
            | UInt64(key.proto) &<< 32
        return s.finish(tail: tail, length: 37, rounds: 1, finalRounds: 3)
    }
}

extension IPv4FlowKey {
    /// The 5-tuple of an IPv4 frame that `FrameParser.parse` accepted. Ports are read for TCP,
    /// UDP and SCTP when the L4 header is present; otherwise (ICMP, non-first fragments, other
    /// protocols) they are 0.
    @inlinable @inline(__always)
    public init(packet p: UnsafeRawPointer, frame: ParsedFrame) {
        // Safe: an accepted IPv4 frame has its 20-byte fixed header inside the frame, and with
        // `hasL4Header` the fixed TCP/UDP/SCTP header (≥ 8 bytes) lies inside l4Offset..<l3End.
        let l3 = frame.l3Offset
        self.init(source: IPv4Address(value: p.loadBE32(l3 + 12)),
                  destination: IPv4Address(value: p.loadBE32(l3 + 16)),
                  sourcePort: 0, destinationPort: 0, proto: frame.l4Protocol)
        if frame.hasL4Header, FlowPorts.present(frame.l4Protocol) {
            sourcePort = p.loadBE16(frame.l4Offset)
            destinationPort = p.loadBE16(frame.l4Offset + 2)
        }
    }
}

extension IPv6FlowKey {
    /// The 5-tuple of an IPv6 frame that `FrameParser.parse` accepted; the protocol is the upper
    /// layer after extension headers. Ports as for `IPv4FlowKey.init(packet:frame:)`.
    @inlinable @inline(__always)
    public init(packet p: UnsafeRawPointer, frame: ParsedFrame) {
        // Safe: an accepted IPv6 frame has its 40-byte header inside the frame; ports as for IPv4.
        let l3 = frame.l3Offset
        self.init(source: IPv6Address.load(p, l3 + 8), destination: IPv6Address.load(p, l3 + 24),
                  sourcePort: 0, destinationPort: 0, proto: frame.l4Protocol)
        if frame.hasL4Header, FlowPorts.present(frame.l4Protocol) {
            sourcePort = p.loadBE16(frame.l4Offset)
            destinationPort = p.loadBE16(frame.l4Offset + 2)
        }
    }
}

@usableFromInline enum FlowPorts {
    /// TCP, UDP and SCTP all begin with source port then destination port.
    @inlinable @inline(__always)
    static func present(_ proto: UInt8) -> Bool {
        proto == IPProtocol.tcp || proto == IPProtocol.udp || proto == IPProtocol.sctp
    }
}
