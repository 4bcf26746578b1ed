@testable import SluiceConntrack
import SluiceCore

/// Keys and hashes for tests. Addresses come from the documentation ranges (RFC 5737, RFC 3849).
enum T {
    static let seed = ConntrackHashSeed(0x5EED)

    /// Client 198.51.100.0/24 + n (wrapping into 203.0.113.0/24), port from n, to VIP 192.0.2.10:80.
    static func v4(_ n: Int, proto: UInt8 = IPProtocol.tcp, zone: UInt16 = 0) -> ConntrackKey {
        ConntrackKey(ipv4Source: 0xC633_6400 &+ UInt32(truncatingIfNeeded: n >> 16),
                     destination: 0xC000_020A,
                     sourcePort: UInt16(truncatingIfNeeded: 1024 &+ n), destinationPort: 80,
                     protocol: proto, zone: zone)
    }

    /// Client 2001:db8:1::n to VIP 2001:db8::10 port 443.
    static func v6(_ n: Int, proto: UInt8 = IPProtocol.tcp, zone: UInt16 = 0) -> ConntrackKey {
        ConntrackKey(source: IPv6Address(high: 0x2001_0DB8_0001_0000, low: UInt64(n)),
                     destination: IPv6Address(high: 0x2001_0DB8_0000_0000, low: 0x10),
                     sourcePort: UInt16(truncatingIfNeeded: 40000 &+ n), destinationPort: 443,
                     protocol: proto, zone: zone)
    }

    /// A hash whose home bucket is `bucket` in a table of `buckets` buckets, with tag `tag`.
    static func hash(bucket: Int, of buckets: Int, tag: UInt64) -> UInt64 {
        // Smallest x with (x · n) >> 32 == bucket: ceil(bucket · 2³² / n).
        let hi = ((UInt64(bucket) << 32) + UInt64(buckets) - 1) / UInt64(buckets)
        return hi << 32 | (tag & 0xFFF)
    }

    static let syn = FlowEvent.tcp(flags: 0x02)
    static let synAck = FlowEvent.tcp(flags: 0x12, reply: true)
    static let ack = FlowEvent.tcp(flags: 0x10)
    static let finAck = FlowEvent.tcp(flags: 0x11)
    static let rst = FlowEvent.tcp(flags: 0x04)

    static func table(_ capacity: Int, _ sharing: FlowTableSharing = .shared) throws -> FlowTable {
        try FlowTable(FlowTable.Configuration(capacity: capacity, sharing: sharing, hugePages: false))
    }
}

extension FlowInsertResult {
    var isInserted: Bool { if case .inserted = self { true } else { false } }
    var isExisting: Bool { if case .existing = self { true } else { false } }
    var isFull: Bool { if case .full = self { true } else { false } }
    var evicted: FlowState? { if case .replaced(_, let s) = self { s } else { nil } }
}
