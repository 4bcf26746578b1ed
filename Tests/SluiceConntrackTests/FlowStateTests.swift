@testable import SluiceConntrack
import SluiceCore
import Testing

@Suite("Flow state machines and timeouts")
struct FlowStateTests {
    /// The packed constants are exactly IPVS's tables (ip_vs_proto_tcp.c `tcp_states[]`),
    /// rebuilt here from the readable form. Columns: sNO sES sSS sSR sFW sTW sCL sCW sLA.
    @Test func packedTCPTablesMatchIPVS() {
        let num = ["NO": 0, "SR": 1, "SS": 2, "ES": 3, "FW": 4, "CW": 5, "LA": 6, "TW": 7, "CL": 8]
        let cols = ["NO", "ES", "SS", "SR", "FW", "TW", "CL", "CW", "LA"]
        let readable: [(String, [String])] = [
            ("input", ["SR ES ES SR SR SR SR SR SR", "CL CW SS TW TW TW CL CW LA",
                       "ES ES SS ES FW TW CL CW CL", "CL CL CL SR CL CL CL CL LA"]),
            ("output", ["SS ES SS SR SS SS SS SS SS", "TW FW SS TW FW TW CL TW LA",
                        "ES ES SS ES FW TW CL CW LA", "CL CL SS CL CL TW CL CL CL"]),
            ("inputOnly", ["SR ES ES SR SR SR SR SR SR", "CL FW SS TW FW TW CL CW LA",
                           "ES ES SS ES FW TW CL CW CL", "CL CL CL SR CL CL CL CL LA"]),
        ]
        let packed = ["input": TCPTable.input, "output": TCPTable.output, "inputOnly": TCPTable.inputOnly]
        for (name, rows) in readable {
            for (event, row) in rows.enumerated() {
                var word: UInt64 = 0
                for (col, next) in zip(cols, row.split(separator: " ")) {
                    word |= UInt64(num[String(next)]!) << (4 * UInt64(num[col]!))
                }
                for s in 9..<16 { word |= UInt64(s) << (4 * UInt64(s)) }
                #expect(TCPTable.pick(packed[name]!, event) == word, "\(name) event \(event)")
                // No TCP state maps to the unused value 15.
                for s in 0..<9 { #expect((word >> (4 * UInt64(s))) & 0xF != 15) }
            }
        }
    }

    @Test func tcpHandshakeEstablishAndClose() {
        var s = FlowState.initial(protocol: IPProtocol.tcp, event: T.syn)
        #expect(s == .tcpSynRecv && s.isHalfOpen && s.isEvictable)
        s = s.next(T.synAck, replySeen: false)          // server SYN-ACK (reply direction)
        #expect(s == .tcpSynRecv)
        s = s.next(T.ack, replySeen: true)              // client ACK completes the handshake
        #expect(s == .tcpEstablished && !s.isEvictable)
        s = s.next(T.ack, replySeen: true)
        #expect(s == .tcpEstablished)
        s = s.next(T.finAck, replySeen: true)           // client FIN, both directions seen: CLOSE_WAIT
        #expect(s == .tcpCloseWait)
        s = s.next(T.rst, replySeen: true)
        #expect(s == .tcpClose)
    }

    @Test func tcpInputOnlyFinGoesToFinWait() {
        // VXLAN / direct return: the balancer never sees the server's packets.
        var s = FlowState.initial(protocol: IPProtocol.tcp, event: T.syn)
        s = s.next(T.ack, replySeen: false)
        #expect(s == .tcpEstablished)
        s = s.next(T.finAck, replySeen: false)
        #expect(s == .tcpFinWait)
        s = s.next(T.ack, replySeen: false)
        #expect(s == .tcpFinWait)
        s = s.next(T.rst, replySeen: false)
        #expect(s == .tcpClose)
    }

    @Test func tcpMidStreamPickupAndOddSegments() {
        // An ACK for an unknown flow (another balancer failed over to this one) is established.
        #expect(FlowState.initial(protocol: IPProtocol.tcp, event: T.ack) == .tcpEstablished)
        #expect(FlowState.initial(protocol: IPProtocol.tcp, event: T.rst) == .tcpClose)
        #expect(FlowState.initial(protocol: IPProtocol.tcp, event: T.finAck) == .tcpClose)
        // No SYN/FIN/ACK/RST: invalid, kept briefly, and no transition on a live flow.
        #expect(FlowState.initial(protocol: IPProtocol.tcp, event: .tcp(flags: 0x08)) == .tcpClose)
        #expect(FlowState.tcpEstablished.next(.tcp(flags: 0x08), replySeen: true) == .tcpEstablished)
        #expect(FlowState.tcpEstablished.next(.packet(), replySeen: true) == .tcpEstablished)
        // RST wins over SYN (IPVS tcp_state_idx).
        #expect(FlowState.tcpEstablished.next(.tcp(flags: 0x06), replySeen: true) == .tcpClose)
    }

    @Test func udpIcmpSctpGeneric() {
        var u = FlowState.initial(protocol: IPProtocol.udp, event: .packet())
        #expect(u == .udp)
        u = u.next(.packet(), replySeen: false)
        #expect(u == .udp)
        u = u.next(.packet(reply: true), replySeen: false)
        #expect(u == .udpReplied)
        #expect(u.next(.packet(), replySeen: true) == .udpReplied)

        #expect(FlowState.initial(protocol: IPProtocol.icmp, event: .packet()) == .icmp)
        #expect(FlowState.initial(protocol: IPProtocol.icmpv6, event: .packet()) == .icmp)
        #expect(FlowState.initial(protocol: 47, event: .packet()) == .generic)

        var s = FlowState.initial(protocol: IPProtocol.sctp, event: .sctp(chunkType: 1))  // INIT
        #expect(s == .sctpOpening)
        s = s.next(.sctp(chunkType: 2, reply: true), replySeen: false)  // INIT ACK
        #expect(s == .sctpOpening)
        s = s.next(.sctp(chunkType: 10), replySeen: true)               // COOKIE ECHO
        #expect(s == .sctpEstablished)
        s = s.next(.sctp(chunkType: 0), replySeen: true)                // DATA
        #expect(s == .sctpEstablished)
        s = s.next(.sctp(chunkType: 7), replySeen: true)                // SHUTDOWN
        #expect(s == .sctpClosing)
        #expect(FlowState.initial(protocol: IPProtocol.sctp, event: .sctp(chunkType: 0)) == .sctpEstablished)
        #expect(FlowState.sctpOpening.next(.sctp(chunkType: 0), replySeen: false) == .sctpEstablished)
        #expect(FlowState.initial(protocol: IPProtocol.sctp, event: .sctp(chunkType: 6)) == .sctpClosing)
    }

    @Test func defaultTimeoutsAreValidAndDocumented() {
        let t = FlowTimeouts.default
        #expect(t.invalidState == nil)
        #expect(t[.tcpSynRecv] == 30 && t[.tcpEstablished] == 7440 && t[.tcpClose] == 10)
        #expect(t[.udp] == 30 && t[.udpReplied] == 120 && t[.icmp] == 30 && t[.generic] == 600)
        #expect(t[.sctpEstablished] == 210)
        var bad = t
        bad[.tcpFinWait] = 0
        #expect(bad.invalidState == .tcpFinWait)
        bad[.tcpFinWait] = FlowTimeouts.maximum + 1
        #expect(bad.invalidState == .tcpFinWait)
        #expect(throws: FlowTableError.invalidTimeout(.tcpFinWait, FlowTimeouts.maximum + 1)) {
            _ = try FlowTable(FlowTable.Configuration(capacity: 7, timeouts: bad))
        }
    }

    /// Deadlines follow the state: each transition re-arms the new state's timeout.
    @Test(arguments: [FlowTableSharing.shared, .perWorker])
    func timeoutsFollowTransitions(sharing: FlowTableSharing) throws {
        let table = try T.table(70, sharing)
        let v = table.view
        let k = T.v4(1)
        let h = k.hash(T.seed)
        var e = try #require(v.insert(k, hash: h, value: FlowValue(backend: 1), event: T.syn, now: 100).handle)
        #expect(e.state == .tcpSynRecv && e.remaining(now: 100) == 30)
        #expect(v.update(&e, event: T.ack, now: 110))
        #expect(e.state == .tcpEstablished && e.remaining(now: 110) == 7440)
        #expect(v.lookup(k, hash: h, now: 110 + 7439) != nil)
        #expect(v.lookup(k, hash: h, now: 110 + 7440) == nil)        // expired at its deadline
        #expect(v.update(&e, event: T.rst, now: 200))
        #expect(e.state == .tcpClose && e.remaining(now: 200) == 10)
        #expect(v.lookup(k, hash: h, now: 209)?.state == .tcpClose)
        #expect(v.lookup(k, hash: h, now: 210) == nil)
        // A changed timeout applies from the next packet on.
        #expect(v.setTimeout(5, for: .tcpClose))
        #expect(!v.setTimeout(0, for: .tcpClose))
        #expect(v.update(&e, event: T.rst, now: 205))
        #expect(e.remaining(now: 205) == 5)
        #expect(v.timeouts[.tcpClose] == 5)
    }

    /// Deadlines are kept modulo 2²⁴: entries keep working across the wrap of the tick counter.
    @Test func deadlinesSurviveTickWrap() throws {
        let table = try T.table(70)
        let v = table.view
        let k = T.v4(2, proto: IPProtocol.udp)
        let h = k.hash(T.seed)
        for now: UInt32 in [(1 << 24) - 5, UInt32.max - 5] {
            var e = try #require(v.insert(k, hash: h, value: FlowValue(backend: 1), event: .packet(), now: now).handle)
            #expect(v.lookup(k, hash: h, now: now &+ 29) != nil)
            #expect(v.lookup(k, hash: h, now: now &+ 30) == nil)
            #expect(v.update(&e, event: .packet(), now: now &+ 20))
            #expect(v.lookup(k, hash: h, now: now &+ 49) != nil)
            #expect(v.remove(k, hash: h))
        }
    }
}
