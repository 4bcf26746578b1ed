import SluiceCore
import SluicePktgen
import Testing

private let lbMAC = MACAddress("02:00:00:00:5e:10")!
private let genMAC = MACAddress("02:00:00:00:aa:01")!

private func plan(_ target: String, _ kind: TrafficKind, flows: Int = 1000) -> TrafficPlan {
    var p = TrafficPlan()
    p.targets = [Target(parsing: target)!]
    p.kind = kind
    p.flows = flows
    return p
}

/// Writes flow `flow`'s packet of `plan` (wire size `size`) into a fresh buffer with headroom.
private func written(_ p: TrafficPlan, size: Int, flow: UInt32, tsc: UInt64) -> (UnsafeMutableRawPointer, Int) {
    let template = PacketTemplate(target: p.targets[0], kind: p.kind, wireSize: size, sourceMAC: genMAC, destinationMAC: lbMAC)
    defer { template.release() }
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 64)
    template.write(into: buffer + 128, flow: flow, space: FlowSpace(plan: p), tsc: tsc)
    return (buffer, template.length)
}

@Suite("sluice-pktgen packets: templates, stamps, the receive side")
struct PktgenPacketTests {
    @Test("every kind and family: checksums verify, flow and stamp come back", arguments: [
        ("192.0.2.10:80", TrafficKind.established, 64), ("192.0.2.10:80", .syn, 64), ("192.0.2.10:53", .udp, 64),
        ("192.0.2.10:80", .established, 1518), ("[2001:db8::10]:80", .established, 84),
        ("[2001:db8::10]:80", .syn, 200), ("[2001:db8::10]:53", .udp, 76), ("192.0.2.10:53", .udp, 594),
    ])
    func roundTrip(_ target: String, _ kind: TrafficKind, _ size: Int) throws {
        var p = plan(target, kind, flows: 100_000)
        p.sizes = .fixed(size)
        #expect(p.validate() == nil)
        for flow: UInt32 in [0, 1, 253, 254, 99_999] {
            let tsc: UInt64 = 0x1234_5678_9ABC_DEF0 &+ UInt64(flow)
            let (buffer, length) = written(p, size: size, flow: flow, tsc: tsc)
            defer { buffer.deallocate() }
            let frame = buffer + 128
            #expect(length == size - 4)
            var parsed = ParsedFrame()
            #expect(FrameParser.parse(frame, length: length, into: &parsed) == nil)   // verifies the IPv4 header checksum
            let classifier = ReturnClassifier(kind: kind, flows: p.flows, verifyChecksums: true)
            let back = try classifier.classify(frame, length: length).get()
            #expect(back.flow == flow)
            #expect(back.timestamp == tsc & PacketStamp.timestampMask)
            #expect(back.checksumOK)
            #expect(!back.encapsulated)
            // The source is the flow's client end.
            let space = FlowSpace(plan: p)
            #expect(frame.loadBE16(parsed.l4Offset) == space.sourcePort(flow))
            if parsed.isIPv4 {
                #expect(IPv4Address(value: frame.loadBE32(parsed.l3Offset + 12)) == space.sourceIPv4(flow))
                #expect(frame.loadBE8(parsed.l3Offset + 9) == (kind == .udp ? IPProtocol.udp : IPProtocol.tcp))
            } else {
                #expect(IPv6Address.load(frame, parsed.l3Offset + 8) == space.sourceIPv6(flow))
            }
            if kind == .syn { #expect(frame.loadBE8(parsed.l4Offset + 13) == 0x02) }
            if kind == .established { #expect(frame.loadBE8(parsed.l4Offset + 13) & 0x10 != 0) }
        }
    }

    @Test("client ends are distinct per flow and stay in the client network")
    func distinctClients() {
        var p = plan("192.0.2.10:80", .established, flows: 20_000)
        p.clientNetwork4 = (IPv4Address("203.0.113.0")!, 24)
        let space = FlowSpace(plan: p)
        var seen = Set<UInt64>()
        for flow in 0..<UInt32(p.flows) {
            let a = space.sourceIPv4(flow)
            #expect(a.value >> 8 == 0xCB0071 && a.value & 0xFF != 0 && a.value & 0xFF != 0xFF)
            seen.insert(UInt64(a.value) << 16 | UInt64(space.sourcePort(flow)))
        }
        #expect(seen.count == p.flows)
    }

    @Test("a DNAT'ed packet (checksums updated) names its backend; a broken checksum is caught")
    func dnatBackend() throws {
        let p = plan("192.0.2.10:80", .established)
        let (buffer, length) = written(p, size: 64, flow: 7, tsc: 42)
        defer { buffer.deallocate() }
        let frame = buffer + 128
        var parsed = ParsedFrame()
        #expect(FrameParser.parse(frame, length: length, into: &parsed) == nil)
        _ = NATRewrite.rewriteIPv4Destination(frame, frame: parsed, address: IPv4Address("198.51.100.11")!, port: 8080)
        let classifier = ReturnClassifier(kind: .established, flows: p.flows, verifyChecksums: true)
        let back = try classifier.classify(frame, length: length).get()
        #expect(back.flow == 7 && back.checksumOK)
        #expect(ReturnClassifier.describeBackend(back.backend, ipv4: true) == "198.51.100.11:8080")
        frame.storeBE8(frame.loadBE8(length - 1) ^ 0x01, length - 1)   // corrupt the payload
        #expect(try classifier.classify(frame, length: length).get().checksumOK == false)
    }

    @Test("a VXLAN-encapsulated packet is recognised through the inner frame")
    func vxlan() throws {
        let p = plan("192.0.2.10:80", .established)
        let (buffer, length) = written(p, size: 64, flow: 9, tsc: 1000)
        defer { buffer.deallocate() }
        let inner = buffer + 128
        var parsed = ParsedFrame()
        #expect(FrameParser.parse(inner, length: length, into: &parsed) == nil)
        _ = NATRewrite.rewriteIPv4Destination(inner, frame: parsed, address: IPv4Address("10.244.1.10")!, port: 8080)
        let encap = VXLANEncapsulation(destinationMAC: MACAddress("02:00:00:00:0b:01")!, sourceMAC: lbMAC,
                                       outer: .ipv4(source: IPv4Address("198.51.100.1")!, destination: IPv4Address("198.51.100.101")!),
                                       vni: 4097)
        let prepended = encap.encapsulate(inner, length: length, headroom: 128, flowHash: 0x1234)
        #expect(prepended == encap.overhead)
        let total = length + prepended
        let outer = UnsafeRawPointer(inner - encap.overhead)
        let classifier = ReturnClassifier(kind: .established, flows: p.flows, verifyChecksums: true)
        let back = try classifier.classify(outer, length: total).get()
        #expect(back.flow == 9 && back.encapsulated && back.checksumOK && back.timestamp == 1000)
        #expect(ReturnClassifier.describeBackend(back.backend, ipv4: true) == "10.244.1.10:8080")
    }

    @Test("ARP and foreign flow ids are not counted as returned traffic")
    func foreign() {
        var arp = [UInt8](repeating: 0, count: 60)
        arp[12] = 0x08; arp[13] = 0x06
        let classifier = ReturnClassifier(kind: .established, flows: 10, verifyChecksums: true)
        arp.withUnsafeBytes { b in
            if case .failure(let why) = classifier.classify(b.baseAddress!, length: 60) {
                #expect(why == .notTraffic || why == .malformed)
            } else {
                Issue.record("ARP classified as traffic")
            }
        }
        let p = plan("192.0.2.10:80", .established, flows: 100)
        let (buffer, length) = written(p, size: 64, flow: 50, tsc: 1)
        defer { buffer.deallocate() }
        if case .failure(let why) = classifier.classify(buffer + 128, length: length) {
            #expect(why == .noStamp)   // flow 50 is beyond this classifier's 10 flows
        } else {
            Issue.record("flow id beyond the flow count accepted")
        }
    }
}

@Suite("sluice-pktgen flows: backends, popularity, plans")
struct PktgenFlowTests {
    @Test("a flow that changes backend is counted once, with its packets")
    func moves() {
        var b = FlowBackends(flows: 4)
        b.record(flow: 0, backend: 1 << 48 | 1)
        b.record(flow: 1, backend: 1 << 48 | 2)
        b.record(flow: 0, backend: 1 << 48 | 1)
        #expect(b.flowsSeen == 2 && b.movedFlows == 0 && b.movedPackets == 0)
        b.record(flow: 0, backend: 1 << 48 | 2)
        b.record(flow: 0, backend: 1 << 48 | 2)
        b.record(flow: 0, backend: 1 << 48 | 1)   // its first backend again: not a move
        #expect(b.movedFlows == 1 && b.movedPackets == 2)
        #expect(b.movedExamples.count == 1 && b.movedExamples[0].flow == 0)
        #expect(b.backends.count == 2 && b.backends[0].flows == 1 && b.backends[1].flows == 1)
        b.resetMoves()
        #expect(b.movedFlows == 0)
        b.record(flow: 0, backend: 1 << 48 | 1)
        #expect(b.movedFlows == 0)
    }

    @Test("uniform visits every flow once per pass; Zipf favours low ranks as 1/k^s")
    func popularity() {
        let uniform = FlowSequence(flows: 1000, popularity: .uniform)
        #expect(Set((0..<1000).map { uniform.flow(at: UInt64($0)) }).count == 1000)
        #expect(uniform.flow(at: 1000) == 0)
        let zipf = FlowSequence(flows: 1000, popularity: .zipf(exponent: 1.0))
        defer { zipf.release() }
        var counts = [Int](repeating: 0, count: 1000)
        for i in 0...zipf.mask { counts[Int(zipf.flow(at: UInt64(i)))] += 1 }
        let ratio12 = Double(counts[0]) / Double(counts[1])
        let ratio110 = Double(counts[0]) / Double(counts[9])
        #expect(abs(ratio12 - 2) < 0.2, "rank 1 / rank 2 = \(ratio12)")
        #expect(abs(ratio110 - 10) < 1.5, "rank 1 / rank 10 = \(ratio110)")
        // H(1000) ≈ 7.485: rank 1 gets about 13.4 % of all samples.
        let share = Double(counts[0]) / Double(zipf.mask + 1)
        #expect(abs(share - 1 / 7.485) < 0.01)
    }

    @Test("plan errors name the field", arguments: [
        ("targets: []", "targets"), ("targets: [\"192.0.2.10\"]", "targets[0]"),
        ("targets: [\"192.0.2.10:80\"]\nflows: 0", "flows"), ("targets: [\"192.0.2.10:80\"]\ntraffic: fin", "traffic"),
        ("targets: [\"192.0.2.10:80\"]\nsizes: 40", "sizes"), ("targets: [\"192.0.2.10:80\"]\nduration: 0", "duration"),
        ("targets: [\"192.0.2.10:80\", \"[2001:db8::1]:80\"]", "targets"),
        ("targets: [\"192.0.2.10:80\"]\nflows: 200000\nclient_network: 203.0.113.0/30", "client_network"),
        ("targets: [\"192.0.2.10:80\"]\npopularity: pareto", "popularity"), ("flows: many", "flows"),
        ("targets: [\"[2001:db8::10]:80\"]\nsizes: 64", "sizes"), ("targets: [\"192.0.2.10:80\"]\nsizes: 1519", "sizes"),
    ])
    func planErrors(_ yaml: String, _ field: String) {
        var p = TrafficPlan()
        let before = p
        do {
            try ScenarioFile.apply(yaml, to: &p)
            let problem = p.validate()
            #expect(problem?.field == field, "\(yaml): \(String(describing: problem))")
        } catch {
            #expect(error.field == field, "\(yaml): \(error)")
            #expect(p == before)
        }
    }

    @Test("without sizes, a plan sends its smallest frame: 64 bytes over IPv4, more over IPv6")
    func smallest() {
        var p = plan("[2001:db8::10]:80", .established)
        #expect(p.validate() == nil)
        let set = TemplateSet(plan: p, sourceMAC: genMAC, destinationMAC: lbMAC)
        #expect(set.sizePattern == [84])
        set.release()
        p = plan("192.0.2.10:80", .syn)
        let set4 = TemplateSet(plan: p, sourceMAC: genMAC, destinationMAC: lbMAC)
        #expect(set4.sizePattern == [64])
        set4.release()
    }

    @Test("a scenario file sets every field")
    func scenarioFile() throws {
        var p = TrafficPlan()
        try ScenarioFile.apply("""
            targets: ["192.0.2.10:80", "192.0.2.11:443"]
            traffic: udp
            flows: 5000
            popularity: zipf
            zipf_exponent: 1.1
            sizes: imix
            rate: 100000
            duration: 2
            packets: 1000
            warmup: true
            client_network: 198.51.100.0/24
            dst_mac: "02:00:00:00:5e:10"
            """, to: &p)
        #expect(p.validate() == nil)
        #expect(p.targets.count == 2 && p.kind == .udp && p.flows == 5000 && p.popularity == .zipf(exponent: 1.1))
        #expect(p.sizes == .imix && p.ratePPS == 100_000 && p.durationSeconds == 2 && p.packets == 1000 && p.warmup)
        #expect(p.clientNetwork4.0 == IPv4Address("198.51.100.0")! && p.destinationMAC == MACAddress("02:00:00:00:5e:10"))
        let set = TemplateSet(plan: p, sourceMAC: genMAC, destinationMAC: lbMAC)
        defer { set.release() }
        #expect(set.templates.count == 24 && set.maxLength == 1514)
    }
}

@Suite("sluice-pktgen receive side: the balancer's own frames")
struct PktgenForeignProtocolTests {
    @Test("a frame of another protocol (an ICMPv6 neighbor advertisement) is not traffic")
    func otherProtocol() {
        // TCP packet, then the classifier for UDP: same addresses, other protocol.
        var p = plan("[2001:db8::10]:80", .established)
        p.sizes = .smallest
        let (buffer, length) = written(p, size: p.minimumFrameSize, flow: 1, tsc: 1)
        defer { buffer.deallocate() }
        let classifier = ReturnClassifier(kind: .udp, flows: 10, verifyChecksums: true)
        if case .failure(let why) = classifier.classify(buffer + 128, length: length) {
            #expect(why == .notTraffic)
        } else {
            Issue.record("a TCP frame passed as UDP traffic")
        }
    }
}
