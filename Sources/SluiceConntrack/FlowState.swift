import SluiceCore

/// The protocol state of a tracked flow, four bits in the entry's control word.
///
/// TCP follows IPVS (`net/netfilter/ipvs/ip_vs_proto_tcp.c`), the kernel's own load balancer,
/// because a load balancer — unlike a firewall — often sees only the client's half of the
/// connection (VXLAN / direct-return modes) and IPVS has the tables for exactly that case
/// ("INPUT-ONLY"). States are named from the balancer's point of view, as in IPVS: a client SYN
/// puts the flow in `tcpSynRecv`. IPVS's LISTEN and SYNACK states are not used.
///
/// UDP, ICMP and SCTP follow Linux `nf_conntrack` in spirit with fewer states: UDP is
/// "unreplied" until a packet is seen in the reply direction; SCTP collapses nf_conntrack's
/// eight states into opening / established / closing.
@frozen
public enum FlowState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Any protocol without a state machine (GRE, ESP, ...): one timeout.
    case generic = 0
    /// TCP: a SYN from the client seen (IPVS SYN_RECV). Half-open.
    case tcpSynRecv = 1
    /// TCP: a SYN seen in the reply direction first (IPVS SYN_SENT). Half-open.
    case tcpSynSent = 2
    /// TCP: the handshake completed (or a mid-stream ACK picked the flow up, e.g. after failover
    /// from another balancer host).
    case tcpEstablished = 3
    case tcpFinWait = 4
    case tcpCloseWait = 5
    case tcpLastAck = 6
    case tcpTimeWait = 7
    /// TCP: reset or fully closed.
    case tcpClose = 8
    /// UDP: no packet seen in the reply direction yet.
    case udp = 9
    /// UDP: packets seen both ways (nf_conntrack's "stream" timeout).
    case udpReplied = 10
    /// ICMP / ICMPv6 echo.
    case icmp = 11
    /// SCTP: INIT / INIT-ACK seen.
    case sctpOpening = 12
    /// SCTP: COOKIE-ECHO / COOKIE-ACK or data seen.
    case sctpEstablished = 13
    /// SCTP: SHUTDOWN*, ABORT seen.
    case sctpClosing = 14

    /// The state with this raw value, without the range check of `init?(rawValue:)` (which is
    /// an out-of-line call across modules).
    /// - Precondition: `raw` <= 14 — the 4-bit state field and the packed TCP tables only hold
    ///   values written by this module (the tables are checked by `packedTCPTablesMatchIPVS`).
    @inlinable @inline(__always)
    init(unchecked raw: UInt8) {
        assert(raw <= 14, "invalid FlowState raw value \(raw)")
        // Safe: a @frozen UInt8-backed enum whose cases are exactly 0...14 is laid out as that
        // byte, and the precondition keeps `raw` in range.
        self = unsafeBitCast(raw, to: FlowState.self)
    }

    /// True for TCP states before the handshake completed. These entries are the first evicted
    /// when an insert finds no free slot (after expired ones): a SYN flood can only push out
    /// other half-open flows, never established ones.
    @inlinable public var isHalfOpen: Bool { self == .tcpSynRecv || self == .tcpSynSent }

    /// True for states an insert may evict when its probe window is full: half-open TCP, and
    /// TCP flows already closed (TIME_WAIT, CLOSE) whose late segments Maglev still routes to the
    /// same backend while the backend set is unchanged.
    @inlinable public var isEvictable: Bool {
        switch self {
        case .tcpSynRecv, .tcpSynSent, .tcpClose, .tcpTimeWait: return true
        default: return false
        }
    }

    @inlinable public var isTCP: Bool { rawValue >= 1 && rawValue <= 8 }

    /// The state of a new flow whose first packet is `event`, for IP protocol `proto`.
    @inlinable
    public static func initial(protocol proto: UInt8, event: FlowEvent) -> FlowState {
        switch proto {
        case IPProtocol.tcp:
            // IPVS column sNO; a segment with none of SYN/FIN/ACK/RST is invalid: keep it briefly.
            return event.tcpIndex < 4 ? TCPTable.next(0, event: event, replySeen: event.isReply) : .tcpClose
        case IPProtocol.udp, 136 /* UDP-Lite */:
            return .udp
        case IPProtocol.icmp, IPProtocol.icmpv6:
            return .icmp
        case IPProtocol.sctp:
            return SCTPTable.next(.sctpEstablished, event: event, initial: true)
        default:
            return .generic
        }
    }

    /// The state after `event`. `replySeen` is the entry's flag "a reply-direction packet was
    /// seen", which selects IPVS's INPUT table instead of INPUT-ONLY for client packets.
    @inlinable @inline(__always)
    public func next(_ event: FlowEvent, replySeen: Bool) -> FlowState {
        if isTCP {
            return event.tcpIndex < 4 ? TCPTable.next(rawValue, event: event, replySeen: replySeen) : self
        }
        switch self {
        case .udp: return event.isReply ? .udpReplied : .udp
        case .sctpOpening, .sctpEstablished, .sctpClosing:
            return SCTPTable.next(self, event: event, initial: false)
        default: return self
        }
    }

    public var description: String {
        switch self {
        case .generic: "generic"
        case .tcpSynRecv: "tcp-syn-recv"
        case .tcpSynSent: "tcp-syn-sent"
        case .tcpEstablished: "tcp-established"
        case .tcpFinWait: "tcp-fin-wait"
        case .tcpCloseWait: "tcp-close-wait"
        case .tcpLastAck: "tcp-last-ack"
        case .tcpTimeWait: "tcp-time-wait"
        case .tcpClose: "tcp-close"
        case .udp: "udp"
        case .udpReplied: "udp-replied"
        case .icmp: "icmp"
        case .sctpOpening: "sctp-opening"
        case .sctpEstablished: "sctp-established"
        case .sctpClosing: "sctp-closing"
        }
    }
}

/// What a packet tells the state machine: TCP flags, the first SCTP chunk type, or just "a
/// packet", and whether it travelled in the reply direction of the entry's key. Two bytes,
/// built by the worker from headers it already parsed.
@frozen
public struct FlowEvent: Sendable, Equatable {
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10), or an SCTP chunk type.
    public var bits: UInt8
    /// Bit 0: reply direction. Bit 1: `bits` holds TCP flags. Bit 2: `bits` is an SCTP chunk type.
    @usableFromInline var kind: UInt8

    @inlinable init(bits: UInt8, kind: UInt8) {
        self.bits = bits
        self.kind = kind
    }

    /// A TCP segment with these flags.
    @inlinable public static func tcp(flags: UInt8, reply: Bool = false) -> FlowEvent {
        FlowEvent(bits: flags, kind: 2 | (reply ? 1 : 0))
    }

    /// An SCTP packet whose first chunk has this type (RFC 9260 §3.2).
    @inlinable public static func sctp(chunkType: UInt8, reply: Bool = false) -> FlowEvent {
        FlowEvent(bits: chunkType, kind: 4 | (reply ? 1 : 0))
    }

    /// Any other packet (UDP, ICMP, ...): refreshes the timeout; a reply marks UDP replied.
    @inlinable public static func packet(reply: Bool = false) -> FlowEvent {
        FlowEvent(bits: 0, kind: reply ? 1 : 0)
    }

    @inlinable public var isReply: Bool { kind & 1 != 0 }

    /// A TCP segment with SYN set and ACK clear: an attempt to open a connection.
    @inlinable public var isOpeningSYN: Bool { kind & 2 != 0 && bits & 0x12 == 0x02 }

    /// IPVS `tcp_state_idx`: RST wins over SYN over FIN over ACK; 0 syn, 1 fin, 2 ack, 3 rst,
    /// 4 for a non-TCP event or a segment with none of the four flags (no transition).
    @inlinable var tcpIndex: Int {
        guard kind & 2 != 0 else { return 4 }
        if bits & 0x04 != 0 { return 3 }
        if bits & 0x02 != 0 { return 0 }
        if bits & 0x01 != 0 { return 1 }
        if bits & 0x10 != 0 { return 2 }
        return 4
    }
}

/// IPVS's TCP transition tables, packed: one 64-bit word per (table, event) holding sixteen
/// 4-bit next states indexed by the current state's raw value (0 = IPVS sNO for a new flow;
/// states 9...15 are not TCP and map to themselves). Twelve constants instead of an array, so
/// the hot path does a shift and a mask, with no global initialisation and no bounds check.
///
/// Source (kernel `ip_vs_proto_tcp.c`, `tcp_states[]`), columns sNO sES sSS sSR sFW sTW sCL sCW
/// sLA; `TCPTableTests` rebuilds these words from that readable table.
@usableFromInline
enum TCPTable {
    // INPUT: client → server once the reply direction has been seen.
    @inlinable static var input: (UInt64, UInt64, UInt64, UInt64) {
        (0xFEDC_BA91_1111_3311, 0xFEDC_BA98_7657_5278, 0xFEDC_BA98_7854_3233, 0xFEDC_BA98_8688_8818)
    }
    // OUTPUT: server → client (the reply direction).
    @inlinable static var output: (UInt64, UInt64, UInt64, UInt64) {
        (0xFEDC_BA92_2222_3212, 0xFEDC_BA98_7674_4277, 0xFEDC_BA98_7654_3233, 0xFEDC_BA98_7888_8288)
    }
    // INPUT-ONLY: client → server while no reply has been seen (VXLAN / direct return).
    @inlinable static var inputOnly: (UInt64, UInt64, UInt64, UInt64) {
        (0xFEDC_BA91_1111_3311, 0xFEDC_BA98_7654_4278, 0xFEDC_BA98_7854_3233, 0xFEDC_BA98_8688_8818)
    }

    @inlinable @inline(__always)
    static func pick(_ t: (UInt64, UInt64, UInt64, UInt64), _ i: Int) -> UInt64 {
        switch i {
        case 0: t.0
        case 1: t.1
        case 2: t.2
        default: t.3
        }
    }

    /// - Precondition: `event.tcpIndex < 4`.
    @inlinable @inline(__always)
    static func next(_ state: UInt8, event: FlowEvent, replySeen: Bool) -> FlowState {
        let table = event.isReply ? output : (replySeen ? input : inputOnly)
        let word = pick(table, event.tcpIndex)
        // Safe: for the TCP states 0...8 every nibble of these words is a state 1...8
        // (`packedTCPTablesMatchIPVS` checks it), and only TCP states reach here.
        return FlowState(unchecked: UInt8(truncatingIfNeeded: (word >> (UInt64(state & 0xF) &* 4)) & 0xF))
    }
}

/// SCTP, collapsed from nf_conntrack's states (`nf_conntrack_proto_sctp.c`) by the first chunk's
/// type (RFC 9260 §3.2): INIT / INIT ACK open; COOKIE ECHO / COOKIE ACK establish, as does data on
/// an opening association; ABORT, SHUTDOWN, SHUTDOWN ACK, SHUTDOWN COMPLETE close.
@usableFromInline
enum SCTPTable {
    @inlinable @inline(__always)
    static func next(_ state: FlowState, event: FlowEvent, initial: Bool) -> FlowState {
        guard event.kind & 4 != 0 else { return initial ? .sctpEstablished : state }
        switch event.bits {
        case 1, 2: return .sctpOpening                     // INIT, INIT ACK
        case 10, 11: return .sctpEstablished               // COOKIE ECHO, COOKIE ACK
        case 6, 7, 8, 14: return .sctpClosing              // ABORT, SHUTDOWN, SHUTDOWN ACK, SHUTDOWN COMPLETE
        case 0, 3, 4, 5, 9:                                // DATA, SACK, HEARTBEAT(ACK), ERROR
            return state == .sctpOpening ? .sctpEstablished : state
        default: return state
        }
    }
}

/// Per-state idle timeouts in ticks (the table's time unit; seconds in Sluice).
///
/// Defaults, and where they come from:
///
/// | state | ticks | source |
/// |---|---:|---|
/// | tcpSynRecv, tcpSynSent | 30 | shorter than IPVS (60 / 120) and nf_conntrack (60 / 120): half-open entries are what a SYN flood creates; a client that retries its SYN later is re-balanced by Maglev to the same backend |
/// | tcpEstablished | 7440 | RFC 5382 REQ-5: a NAT's established-TCP idle timeout MUST NOT be less than 2 h 4 min (nf_conntrack: 5 days, IPVS: 15 min) |
/// | tcpFinWait | 120 | IPVS, nf_conntrack |
/// | tcpCloseWait | 60 | IPVS, nf_conntrack |
/// | tcpLastAck | 30 | IPVS, nf_conntrack |
/// | tcpTimeWait | 120 | IPVS, nf_conntrack (2 MSL) |
/// | tcpClose | 10 | IPVS, nf_conntrack |
/// | udp | 30 | nf_conntrack `udp_timeout` |
/// | udpReplied | 120 | nf_conntrack `udp_timeout_stream`; RFC 4787 REQ-5 (≥ 2 min) |
/// | icmp | 30 | nf_conntrack `icmp_timeout` |
/// | sctpOpening | 10 | nf_conntrack COOKIE_WAIT/ECHOED is 3 s per step; one state here spans INIT … COOKIE ECHO |
/// | sctpEstablished | 210 | nf_conntrack ESTABLISHED (since Linux 5.x, heartbeats keep it alive) |
/// | sctpClosing | 3 | nf_conntrack SHUTDOWN_* |
/// | generic | 600 | nf_conntrack `generic_timeout` |
///
/// Every value must lie in `1...FlowTimeouts.maximum` (2²² ticks, 48 days at one tick per second):
/// the table keeps deadlines modulo 2²⁴ and compares them with serial-number arithmetic.
@frozen
public struct FlowTimeouts: Sendable, Equatable {
    /// Indexed by `FlowState.rawValue`; slot 15 is unused.
    public var ticks: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32,
                       UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)

    public static let maximum: UInt32 = 1 << 22

    public static let `default` = FlowTimeouts(
        generic: 600, tcpSynRecv: 30, tcpSynSent: 30, tcpEstablished: 7440, tcpFinWait: 120,
        tcpCloseWait: 60, tcpLastAck: 30, tcpTimeWait: 120, tcpClose: 10, udp: 30, udpReplied: 120,
        icmp: 30, sctpOpening: 10, sctpEstablished: 210, sctpClosing: 3)

    public init(generic: UInt32, tcpSynRecv: UInt32, tcpSynSent: UInt32, tcpEstablished: UInt32,
                tcpFinWait: UInt32, tcpCloseWait: UInt32, tcpLastAck: UInt32, tcpTimeWait: UInt32,
                tcpClose: UInt32, udp: UInt32, udpReplied: UInt32, icmp: UInt32,
                sctpOpening: UInt32, sctpEstablished: UInt32, sctpClosing: UInt32) {
        ticks = (generic, tcpSynRecv, tcpSynSent, tcpEstablished, tcpFinWait, tcpCloseWait,
                 tcpLastAck, tcpTimeWait, tcpClose, udp, udpReplied, icmp, sctpOpening,
                 sctpEstablished, sctpClosing, generic)
    }

    public subscript(state: FlowState) -> UInt32 {
        get { withUnsafeBytes(of: ticks) { $0.load(fromByteOffset: Int(state.rawValue) * 4, as: UInt32.self) } }
        set {
            withUnsafeMutableBytes(of: &ticks) {
                $0.storeBytes(of: newValue, toByteOffset: Int(state.rawValue) * 4, as: UInt32.self)
            }
        }
    }

    public static func == (a: FlowTimeouts, b: FlowTimeouts) -> Bool {
        FlowState.allCases.allSatisfy { a[$0] == b[$0] }
    }

    /// The first state whose timeout is out of range, if any.
    public var invalidState: FlowState? {
        FlowState.allCases.first { self[$0] == 0 || self[$0] > Self.maximum }
    }
}
