import SluiceCore
import SluicePktgen
import Testing

private let lbMAC = MACAddress("02:00:00:00:5e:10")!
private let lbBackendMAC = MACAddress("02:00:00:00:5e:11")!
private let genMAC = MACAddress("02:00:00:00:aa:01")!

private func handshakePlan(_ target: String, flows: Int = 1000, size: FrameSizes = .smallest) -> TrafficPlan {
    var p = TrafficPlan()
    p.targets = [Target(parsing: target)!]
    p.kind = .handshake
    p.flows = flows
    p.sizes = size
    return p
}

/// (Internal: a test argument type.) A stand-in for the balancer between the two ends, built from the same NAT rewrite sluiced
/// uses: client → VIP segments get the backend (DNAT) or the backend and a pool source
/// (full-NAT); backend → client segments get the VIP back (and the client, for full-NAT).
struct Balancer {
    enum Mode { case dnat, fullnat }
    var mode: Mode
    var vip: IPv6Address
    var vipPort: UInt16
    var backend: IPv6Address
    var backendPort: UInt16
    var pool: IPv6Address
    var poolPort: UInt16 = 40_000
    /// The client end of the one connection in flight (full-NAT restores it on return).
    var client: (IPv6Address, UInt16)?

    mutating func forward(_ p: UnsafeMutableRawPointer, length: Int) {
        var frame = ParsedFrame()
        #expect(FrameParser.parse(p, length: length, into: &frame) == nil)
        let v4 = frame.isIPv4
        let source = v4 ? IPv6Address(ipv4Mapped: p.loadBE32(frame.l3Offset + 12)) : IPv6Address.load(p, frame.l3Offset + 8)
        client = (source, p.loadBE16(frame.l4Offset))
        switch (mode, v4) {
        case (.dnat, true):
            _ = NATRewrite.rewriteIPv4Destination(p, frame: frame, address: IPv4Address(value: backend.ipv4Value), port: backendPort)
        case (.dnat, false):
            _ = NATRewrite.rewriteIPv6Destination(p, frame: frame, address: backend, port: backendPort)
        case (.fullnat, true):
            _ = NATRewrite.rewriteIPv4(p, frame: frame, source: IPv4Address(value: pool.ipv4Value), sourcePort: poolPort,
                                       destination: IPv4Address(value: backend.ipv4Value), destinationPort: backendPort)
        case (.fullnat, false):
            _ = NATRewrite.rewriteIPv6(p, frame: frame, source: pool, sourcePort: poolPort, destination: backend, destinationPort: backendPort)
        }
        lbBackendMAC.store(p, 6)
    }

    func back(_ p: UnsafeMutableRawPointer, length: Int) {
        var frame = ParsedFrame()
        #expect(FrameParser.parse(p, length: length, into: &frame) == nil)
        let (address, port) = client!
        switch (mode, frame.isIPv4) {
        case (.dnat, true):
            _ = NATRewrite.rewriteIPv4Source(p, frame: frame, address: IPv4Address(value: vip.ipv4Value), port: vipPort)
        case (.dnat, false):
            _ = NATRewrite.rewriteIPv6Source(p, frame: frame, address: vip, port: vipPort)
        case (.fullnat, true):
            _ = NATRewrite.rewriteIPv4(p, frame: frame, source: IPv4Address(value: vip.ipv4Value), sourcePort: vipPort,
                                       destination: IPv4Address(value: address.ipv4Value), destinationPort: port)
        case (.fullnat, false):
            _ = NATRewrite.rewriteIPv6(p, frame: frame, source: vip, sourcePort: vipPort, destination: address, destinationPort: port)
        }
        lbMAC.store(p, 6)
    }
}

/// The TCP checksum of the segment in `p` verifies (and, for IPv4, the header checksum: the parser checks it).
private func checksumsVerify(_ p: UnsafeRawPointer, length: Int) -> Bool {
    var frame = ParsedFrame()
    guard FrameParser.parse(p, length: length, into: &frame) == nil else { return false }
    let segment = frame.l3End - frame.l4Offset
    let pseudo = frame.isIPv4
        ? InternetChecksum.pseudoHeaderSum(source: IPv4Address(value: p.loadBE32(frame.l3Offset + 12)),
                                           destination: IPv4Address(value: p.loadBE32(frame.l3Offset + 16)),
                                           protocol: IPProtocol.tcp, length: segment)
        : InternetChecksum.pseudoHeaderSum(source: IPv6Address.load(p, frame.l3Offset + 8), destination: IPv6Address.load(p, frame.l3Offset + 24),
                                           nextHeader: IPProtocol.tcp, length: segment)
    return InternetChecksum.verifies(p + frame.l4Offset, count: segment, initial: pseudo)
}

/// (sequence, acknowledgment) numbers of the TCP segment in `p`.
private func numbers(_ p: UnsafeRawPointer) -> (UInt32, UInt32) {
    var frame = ParsedFrame()
    _ = FrameParser.parse(p, length: 1514, into: &frame)
    return (p.loadBE32(frame.l4Offset + 4), p.loadBE32(frame.l4Offset + 8))
}

/// The TCP header's option bytes (after the 20 fixed ones) and the payload.
private func optionsAndPayload(_ p: UnsafeRawPointer, length: Int) -> ([UInt8], [UInt8]) {
    var frame = ParsedFrame()
    _ = FrameParser.parse(p, length: length, into: &frame)
    let header = Int(p.loadBE8(frame.l4Offset + 12) >> 4) * 4
    let options = Array(UnsafeRawBufferPointer(start: p + frame.l4Offset + 20, count: header - 20))
    let payload = Array(UnsafeRawBufferPointer(start: p + frame.l4Offset + header, count: frame.l3End - frame.l4Offset - header))
    return (options, payload)
}

private func tcpFlags(_ p: UnsafeRawPointer) -> UInt8 {
    var frame = ParsedFrame()
    _ = FrameParser.parse(p, length: 1514, into: &frame)
    return p.loadBE8(frame.l4Offset + 13) & 0x3F
}

@Suite("sluice-pktgen handshake traffic: whole TCP connections through a NAT")
struct HandshakeSegmentsTests {
    @Test("five segments, both ends answered in place, through DNAT and full-NAT, IPv4 and IPv6", arguments: [
        ("192.0.2.10:80", Balancer.Mode.dnat, FrameSizes.smallest), ("192.0.2.10:80", .fullnat, .smallest),
        ("[2001:db8::10]:80", .dnat, .smallest), ("[2001:db8::10]:80", .fullnat, .fixed(600)),
        ("192.0.2.10:80", .dnat, .fixed(1518)),
    ])
    func wholeConnection(_ target: String, _ mode: Balancer.Mode, _ size: FrameSizes) throws {
        let plan = handshakePlan(target, flows: 100_000, size: size)
        #expect(plan.validate() == nil)
        let segments = HandshakeSegments(plan: plan, verifyChecksums: true)
        let space = FlowSpace(plan: plan)
        let v4 = plan.isIPv4
        var balancer = Balancer(mode: mode, vip: v4 ? IPv6Address(ipv4Mapped: 0xC000_020A) : IPv6Address("2001:db8::10")!, vipPort: 80,
                                backend: v4 ? IPv6Address(ipv4Mapped: 0xC633_640B) : IPv6Address("2001:db8:1::11")!, backendPort: 8080,
                                pool: v4 ? IPv6Address(ipv4Mapped: 0xC633_64C8) : IPv6Address("2001:db8:1::200")!)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 64)
        defer { buffer.deallocate() }
        let expectedBackend = v4 ? "198.51.100.11:8080" : "…:0:11:8080"
        for flow: UInt32 in [0, 1, 99_999] {
            var length = segments.writeSYN(into: buffer, flow: flow, space: space, target: plan.targets[0], sourceMAC: genMAC,
                                           destinationMAC: lbMAC, tsc: 1000 + flow)
            #expect(length + FrameSizes.fcs == plan.minimumFrameSize)
            #expect(checksumsVerify(buffer, length: length))
            #expect(tcpFlags(buffer) == TCPFlags.syn)
            #expect(MACAddress.load(buffer, 0) == lbMAC && MACAddress.load(buffer, 6) == genMAC)
            // On the wire, independently of `respond`: ISN = flow << 8, MSS then NOP NOP and the
            // timestamps option (RFC 7323 §3.2) with TSecr 0 in a SYN.
            let isn = flow << 8
            let mss: [UInt8] = v4 ? [0x02, 0x04, 0x05, 0xB4] : [0x02, 0x04, 0x05, 0xA0]
            let tsval = 1000 + flow
            let stamp: [UInt8] = [UInt8(tsval >> 24), UInt8(tsval >> 16 & 0xFF), UInt8(tsval >> 8 & 0xFF), UInt8(tsval & 0xFF)]
            #expect(numbers(buffer) == (isn, 0))
            #expect(optionsAndPayload(buffer, length: length).0 == mss + [0x01, 0x01, 0x08, 0x0A] + stamp + [0, 0, 0, 0])
            #expect(optionsAndPayload(buffer, length: length).1.isEmpty)

            // SYN → backend: answered with a SYN-ACK that echoes the SYN's TSval.
            balancer.forward(buffer, length: length)
            guard case .reply(let synAckLength, .syn, flow, let backend, 0) =
                    segments.respond(buffer, length: length, capacity: 2048, side: .backend, tsc: 5000) else {
                Issue.record("SYN not answered"); return
            }
            #expect(ReturnClassifier.describeBackend(backend, ipv4: v4) == expectedBackend)
            length = synAckLength
            #expect(checksumsVerify(buffer, length: length))
            #expect(tcpFlags(buffer) == TCPFlags.syn | TCPFlags.ack)
            #expect(numbers(buffer) == (isn, isn + 1))
            #expect(optionsAndPayload(buffer, length: length).0 == mss + [0x01, 0x01, 0x08, 0x0A, 0, 0, 0x13, 0x88] + stamp)
            #expect(MACAddress.load(buffer, 0) == lbBackendMAC)   // back to the balancer's backend port

            // SYN-ACK → client: the connect time is measured from the echoed stamp; the answer
            // acks it with the request and FIN.
            balancer.back(buffer, length: length)
            guard case .reply(let requestLength, .synAck, flow, 0, let echoed) =
                    segments.respond(buffer, length: length, capacity: 2048, side: .client, tsc: 6000) else {
                Issue.record("SYN-ACK not answered"); return
            }
            #expect(echoed == 1000 + flow)
            length = requestLength
            #expect(length == segments.frameLength(.request))
            if case .fixed(let wire) = size { #expect(length + FrameSizes.fcs == wire) }
            #expect(checksumsVerify(buffer, length: length))
            #expect(tcpFlags(buffer) == TCPFlags.psh | TCPFlags.ack | TCPFlags.fin)
            #expect(numbers(buffer) == (isn + 1, isn + 1))
            let (requestOptions, request) = optionsAndPayload(buffer, length: length)
            #expect(requestOptions == [0x01, 0x01, 0x08, 0x0A, 0, 0, 0x17, 0x70, 0, 0, 0x13, 0x88])
            #expect(Array(request.prefix(18)) == Array("GET / HTTP/1.0\r\n\r\n".utf8))
            #expect(request.dropFirst(18).allSatisfy { $0 == 0 })
            let payload = UInt32(request.count)

            // Request → backend: answered with FIN-ACK.
            balancer.forward(buffer, length: length)
            guard case .reply(let finLength, .request, flow, backend, 5000) =
                    segments.respond(buffer, length: length, capacity: 2048, side: .backend, tsc: 7000) else {
                Issue.record("request not answered"); return
            }
            length = finLength
            #expect(checksumsVerify(buffer, length: length))
            #expect(tcpFlags(buffer) == TCPFlags.fin | TCPFlags.ack)
            #expect(numbers(buffer) == (isn + 1, isn + 2 + payload))   // the request's bytes and its FIN acked

            // FIN-ACK → client: answered with the last ACK.
            balancer.back(buffer, length: length)
            guard case .reply(let lastLength, .finAck, flow, 0, 6000) =
                    segments.respond(buffer, length: length, capacity: 2048, side: .client, tsc: 8000) else {
                Issue.record("FIN-ACK not answered"); return
            }
            length = lastLength
            #expect(tcpFlags(buffer) == TCPFlags.ack)
            #expect(numbers(buffer) == (isn + 2 + payload, isn + 2))    // the backend's FIN acked
            #expect(optionsAndPayload(buffer, length: length).1.isEmpty)
            #expect(checksumsVerify(buffer, length: length))

            // Last ACK → backend: the connection is complete, at the same backend.
            balancer.forward(buffer, length: length)
            #expect(segments.respond(buffer, length: length, capacity: 2048, side: .backend, tsc: 9000)
                    == .complete(flow: flow, backend: backend))
        }
    }

    @Test("segments a correct peer never sends are not answered")
    func unexpectedSegments() {
        let plan = handshakePlan("192.0.2.10:80", flows: 100)
        let segments = HandshakeSegments(plan: plan, verifyChecksums: true)
        let space = FlowSpace(plan: plan)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 64)
        defer { buffer.deallocate() }
        func syn(flow: UInt32 = 5) -> Int {
            segments.writeSYN(into: buffer, flow: flow, space: space, target: plan.targets[0], sourceMAC: genMAC,
                              destinationMAC: lbMAC, tsc: 1)
        }
        var length = syn()
        // A SYN arriving at the clients' end (a balancer that reflected it) is not a step there.
        #expect(segments.respond(buffer, length: length, capacity: 2048, side: .client, tsc: 2) == .unexpected)
        // A rewritten sequence number.
        length = syn()
        var frame = ParsedFrame()
        _ = FrameParser.parse(buffer, length: length, into: &frame)
        let sequence = frame.l4Offset + 4
        let checksum = frame.l4Offset + 16
        buffer.storeBE32(buffer.loadBE32(sequence) &+ 1, sequence)
        buffer.storeBE16(InternetChecksum.update(buffer.loadBE16(checksum), old: UInt16(0), new: UInt16(1)), checksum)
        #expect(checksumsVerify(buffer, length: length))
        #expect(segments.respond(buffer, length: length, capacity: 2048, side: .backend, tsc: 2) == .unexpected)
        // A RST.
        length = syn()
        buffer.storeBE8(TCPFlags.rst, frame.l4Offset + 13)
        buffer.storeBE16(InternetChecksum.update(buffer.loadBE16(checksum), old: UInt16(TCPFlags.syn), new: UInt16(TCPFlags.rst)), checksum)
        #expect(segments.respond(buffer, length: length, capacity: 2048, side: .backend, tsc: 2) == .unexpected)
        // A flow id beyond the plan's flows.
        length = segments.writeSYN(into: buffer, flow: 100, space: FlowSpace(plan: handshakePlan("192.0.2.10:80", flows: 1000)),
                                   target: plan.targets[0], sourceMAC: genMAC, destinationMAC: lbMAC, tsc: 1)
        #expect(segments.respond(buffer, length: length, capacity: 2048, side: .backend, tsc: 2) == .unexpected)
        // A broken checksum is dropped as a TCP stack drops it.
        length = syn()
        buffer.storeBE8(buffer.loadBE8(length - 1) ^ 0x40, length - 1)
        #expect(segments.respond(buffer, length: length, capacity: 2048, side: .backend, tsc: 2) == .badChecksum)
        // A segment without the timestamps option: the end could not echo a stamp.
        length = syn()
        let options = frame.l4Offset + 20 + 4
        for i in 0..<12 { buffer.storeBE8(1, options + i) }   // NOPs where NOP, NOP, timestamps were
        buffer.storeBE16(0, checksum)
        let segment = length - frame.l4Offset
        let pseudo = InternetChecksum.pseudoHeaderSum(source: IPv4Address(value: buffer.loadBE32(frame.l3Offset + 12)),
                                                      destination: IPv4Address(value: buffer.loadBE32(frame.l3Offset + 16)),
                                                      protocol: IPProtocol.tcp, length: segment)
        buffer.storeBE16(InternetChecksum.checksum(buffer + frame.l4Offset, count: segment, initial: pseudo), checksum)
        #expect(segments.respond(buffer, length: length, capacity: 2048, side: .backend, tsc: 2) == .unexpected)
        // ARP (a well-formed request) is not a segment; a truncated frame is malformed.
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: 60)
        buffer.storeBE16(EtherType.arp, 12)
        buffer.storeBE16(1, 14); buffer.storeBE16(EtherType.ipv4, 16); buffer.storeBE8(6, 18); buffer.storeBE8(4, 19)
        buffer.storeBE16(1, 20)
        #expect(segments.respond(buffer, length: 60, capacity: 2048, side: .backend, tsc: 2) == .foreign(.notTraffic))
        length = syn()
        #expect(segments.respond(buffer, length: length - 30, capacity: 2048, side: .backend, tsc: 2) == .foreign(.malformed))
        // An answer longer than the buffer holds is not written: a SYN-ACK (70 bytes) into 69.
        length = syn()
        let before = Array(UnsafeRawBufferPointer(start: buffer, count: length))
        #expect(segments.respond(buffer, length: length, capacity: length - 1, side: .backend, tsc: 2) == .foreign(.malformed))
        #expect(Array(UnsafeRawBufferPointer(start: buffer, count: length)) == before)
    }

    @Test("plans: the SYN is the smallest frame; warm-up and IMIX are refused with the field named")
    func plans() {
        var p = handshakePlan("192.0.2.10:80")
        #expect(p.minimumFrameSize == 74)
        #expect(handshakePlan("[2001:db8::10]:80").minimumFrameSize == 94)
        #expect(HandshakeSegments.requestPayload(plan: p) == 18)
        p.warmup = true
        #expect(p.validate()?.field == "warmup")
        p.warmup = false
        p.sizes = .imix
        #expect(p.validate()?.field == "sizes")
        p.sizes = .fixed(87)    // 14 + 20 + 32 + 18 + 4 = 88: the GET line would not fit
        #expect(p.validate()?.field == "sizes")
        p.sizes = .fixed(88)
        #expect(p.validate() == nil)
        p.sizes = .fixed(1518)
        #expect(p.validate() == nil)
        #expect(HandshakeSegments.requestPayload(plan: p) == 1518 - 4 - 14 - 20 - 32)
        #expect(TrafficKind(rawValue: "handshake") == .handshake)
        p.concurrency = -1
        #expect(p.validate()?.field == "concurrency")
        var q = TrafficPlan()
        do {
            try ScenarioFile.apply("targets: [\"192.0.2.10:80\"]\ntraffic: handshake\nconcurrency: 64\n", to: &q)
        } catch {
            Issue.record("scenario file refused: \(error)")
        }
        #expect(q.kind == .handshake && q.concurrency == 64 && q.validate() == nil)
    }
}
