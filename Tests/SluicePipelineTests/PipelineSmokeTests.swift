import Testing
import SluiceCore
import SluiceConfig
import SluiceConntrack
import SluiceDataPlane
import SluiceMaglev

/// A minimal end-to-end pass through the pipeline on hand-built bytes; the golden fixtures
/// cover the protocols and modes exhaustively.
@Suite struct PipelineSmoke {
    static let yaml = """
    ports:
      - { name: lan0, device: net_null0, addresses: ["192.0.2.2/24"] }
      - { name: lan1, device: net_null1, addresses: ["198.51.100.1/24"] }
    vips: [{ address: 192.0.2.10, port: lan0 }]
    services:
      - name: web
        vip: 192.0.2.10
        protocol: tcp
        port: 80
        backends: [{ address: 198.51.100.11, port: 8080 }, { address: 198.51.100.12, port: 8080 }]
    """
    /// The backends' and the client's MACs, known from the start.
    static let neighborsYAML = """

        neighbors: [{ address: 198.51.100.11, mac: "02:00:00:00:be:11" }, { address: 198.51.100.12, mac: "02:00:00:00:be:12" },
                    { address: 192.0.2.100, mac: "02:00:00:00:0c:01" }]
        """
    static let yamlWithNeighbors = yaml + neighborsYAML
    let mac0 = MACAddress("02:00:00:00:00:01")!
    let mac1 = MACAddress("02:00:00:00:00:02")!
    let clientMAC = MACAddress("02:00:00:00:0c:01")!

    /// Ethernet / IPv4 / TCP with a zero payload, checksums computed in full.
    func tcpFrame(dstMAC: MACAddress, srcMAC: MACAddress, src: UInt32, dst: UInt32, sport: UInt16, dport: UInt16,
                  flags: UInt8) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 54)
        b.withUnsafeMutableBytes { r in
            let p = r.baseAddress!
            dstMAC.store(p, 0); srcMAC.store(p, 6); p.storeBE16(EtherType.ipv4, 12)
            p.storeBE16(0x4500, 14); p.storeBE16(40, 16); p.storeBE16(1, 18); p.storeBE16(0x4000, 20)
            p.storeBE16(64 << 8 | 6, 22); p.storeBE32(src, 26); p.storeBE32(dst, 30)
            p.storeBE16(InternetChecksum.checksum(p + 14, count: 20), 24)
            p.storeBE16(sport, 34); p.storeBE16(dport, 36); p.storeBE32(1, 38); p.storeBE8(5 << 4, 46); p.storeBE8(flags, 47)
            p.storeBE16(65535, 48)
            let pseudo = InternetChecksum.pseudoHeaderSum(source: IPv4Address(value: src), destination: IPv4Address(value: dst),
                                                          protocol: 6, length: 20)
            p.storeBE16(InternetChecksum.checksum(p + 34, count: 20, initial: pseudo), 50)
        }
        return b
    }

    @Test func synIsBalancedAndTheReplyComesBackFromTheVIP() throws {
        let config = try SluicedConfig.parse(yaml: Self.yaml, file: "t.yaml")
        let snapshot = try config.makeSnapshot(portMACs: [mac0, mac1])
        let neighbors = NeighborTable(capacity: 64)
        let flows = try FlowTable(capacity: 1024)
        let counters = WorkerCounters()
        let fragmentTable = FragmentTable(capacity: 64)
        // The context holds its tables unretained: keep them alive to the end of the test.
        defer { withExtendedLifetime((snapshot, neighbors, flows, counters, fragmentTable)) {} }
        var context = PipelineContext(snapshot: snapshot, neighbors: neighbors, flows: flows.view, counters: counters, now: 100,
                                      fragments: fragmentTable)
        let client: UInt32 = 0xC000_0264   // 192.0.2.100
        let vip: UInt32 = 0xC000_020A
        neighbors.learn(ipv4: client, mac: clientMAC, now: 100)

        // Backends unresolved: dropped and counted, nothing sent.
        var syn = tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: 40000, dport: 80, flags: 0x02)
        var verdict = run(&syn, ingress: 0, &context).0
        #expect(verdict == .drop(.neighborUnresolved))

        let backendMAC = [MACAddress("02:00:00:00:be:11")!, MACAddress("02:00:00:00:be:12")!]
        neighbors.learn(ipv4: 0xC633_640B, mac: backendMAC[0], now: 100)
        neighbors.learn(ipv4: 0xC633_640C, mac: backendMAC[1], now: 100)
        syn = tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: 40000, dport: 80, flags: 0x02)
        let (v, port) = run(&syn, ingress: 0, &context)
        verdict = v
        #expect(verdict == .transmit(.forwardToBackend))
        #expect(port == 1)
        let backend = syn.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!).loadBE32(30) }
        #expect(backend == 0xC633_640B || backend == 0xC633_640C)
        syn.withUnsafeBytes { r in
            let p = r.baseAddress!
            #expect(p.loadBE16(36) == 8080)
            #expect(p.loadBE8(22) == 63)
            #expect(InternetChecksum.verifies(p + 14, count: 20))
            let pseudo = InternetChecksum.pseudoHeaderSum(source: IPv4Address(value: client), destination: IPv4Address(value: backend),
                                                          protocol: 6, length: 20)
            #expect(InternetChecksum.verifies(p + 34, count: 20, initial: pseudo))
            #expect(MACAddress.load(p, 0) == backendMAC[backend == 0xC633_640B ? 0 : 1])
            #expect(MACAddress.load(p, 6) == mac1)
        }
        #expect(counters.read(.newFlows) == 1)

        // The same flow again goes to the same backend, without a new entry.
        var again = tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: 40000, dport: 80, flags: 0x10)
        _ = run(&again, ingress: 0, &context)
        #expect(again.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!).loadBE32(30) } == backend)
        #expect(counters.read(.newFlows) == 1)
        // Metrics: the two packets forwarded (54 bytes each as received) and the one flow on the
        // chosen backend's record (the first SYN created the flow, then was dropped unresolved:
        // not a packet forwarded); nothing on the other backend's record.
        let chosen = backend == 0xC633_640B ? 0 : 1
        #expect(counters.read(backendSlot: snapshot.backendCounters.slot(serviceID: Int(snapshot.services.services[0].id), backend: chosen))
                == BackendCounts(packets: 2, bytes: 108, newFlows: 1))
        #expect(counters.read(backendSlot: snapshot.backendCounters.slot(serviceID: Int(snapshot.services.services[0].id), backend: 1 - chosen)) == BackendCounts())

        // The backend's SYN-ACK returns to the client from the VIP:80.
        let bmac = backendMAC[backend == 0xC633_640B ? 0 : 1]
        var reply = tcpFrame(dstMAC: mac1, srcMAC: bmac, src: backend, dst: client, sport: 8080, dport: 40000, flags: 0x12)
        let (rv, rport) = run(&reply, ingress: 1, &context)
        #expect(rv == .transmit(.returnToClient))
        #expect(rport == 0)
        reply.withUnsafeBytes { r in
            let p = r.baseAddress!
            #expect(p.loadBE32(26) == vip)
            #expect(p.loadBE16(34) == 80)
            #expect(MACAddress.load(p, 0) == clientMAC)
            #expect(MACAddress.load(p, 6) == mac0)
            let pseudo = InternetChecksum.pseudoHeaderSum(source: IPv4Address(value: vip), destination: IPv4Address(value: client),
                                                          protocol: 6, length: 20)
            #expect(InternetChecksum.verifies(p + 34, count: 20, initial: pseudo))
        }

        // A packet from an unknown flow on the backend side is not ours.
        var stray = tcpFrame(dstMAC: mac1, srcMAC: bmac, src: backend, dst: client, sport: 8080, dport: 40001, flags: 0x12)
        #expect(run(&stray, ingress: 1, &context).0 == .drop(.notOwnedAddress))
    }

    /// The worker keeps new flows' reverse entries back to the end of the burst: until
    /// `commitDeferred` the backend's reply has no way back; after it, it has. The forward
    /// entry is in at once (the next packet of the flow finds it), and a burst of more new
    /// flows than the buffer holds commits what was kept before keeping more.
    @Test func reverseEntriesKeptBackUntilTheBurstEnds() throws {
        let h = try PipelineHarness(yaml: Self.yamlWithNeighbors, portMACs: [mac0, mac1], keptBack: 2)
        let client: UInt32 = 0xC000_0264
        let vip: UInt32 = 0xC000_020A
        // Three new flows in one "burst": two kept back (the buffer's capacity); the third
        // commits those two, then is kept back itself.
        var backends: [UInt32] = []
        for port: UInt16 in [40000, 40001, 40002] {
            var syn = tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: port, dport: 80, flags: 0x02)
            #expect(run(&syn, ingress: 0, &h.contexts[0]).0 == .transmit(.forwardToBackend))
            backends.append(syn.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!).loadBE32(30) })
        }
        #expect(h.deferred.pointee.count == 1)
        #expect(h.flows.view.count(now: 100) == 5)    // three forward entries and the two reverse ones committed early
        func reply(_ i: Int) -> Verdict {
            let bmac = MACAddress(backends[i] == 0xC633_640B ? "02:00:00:00:be:11" : "02:00:00:00:be:12")!
            var r = tcpFrame(dstMAC: mac1, srcMAC: bmac, src: backends[i], dst: client, sport: 8080, dport: 40000 + UInt16(i), flags: 0x12)
            return run(&r, ingress: 1, &h.contexts[0]).0
        }
        // The forward entry is in: the flow's next packet keeps its backend, no new flow.
        var ack = tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: 40000, dport: 80, flags: 0x10)
        _ = run(&ack, ingress: 0, &h.contexts[0])
        #expect(ack.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!).loadBE32(30) } == backends[0])
        #expect(h.counters[0].read(.newFlows) == 3)
        // Kept back: no way back yet for the third; the first two went in when the buffer was full.
        #expect(reply(0) == .transmit(.returnToClient))
        #expect(reply(1) == .transmit(.returnToClient))
        #expect(reply(2) == .drop(.notOwnedAddress))
        PacketPipeline.commitDeferred(&h.contexts[0])
        #expect(h.deferred.pointee.count == 0)
        #expect(h.flows.view.count(now: 100) == 6)
        #expect(reply(2) == .transmit(.returnToClient))
    }

    /// Two workers share the flow table. Worker A creates a flow and keeps its reverse entry
    /// back; worker B meets the same SYN (another queue, a retransmission), finds A's forward
    /// entry and inserts the reverse entry itself: B's copy of the SYN may reach the backend
    /// before A's burst ends, and its reply must find the way back.
    @Test func aSecondWorkerMeetingTheFlowInsertsItsReverseEntry() throws {
        let h = try PipelineHarness(yaml: Self.yamlWithNeighbors, portMACs: [mac0, mac1], workers: 2, keptBack: 32)
        let client: UInt32 = 0xC000_0264
        let vip: UInt32 = 0xC000_020A
        var synA = tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: 41000, dport: 80, flags: 0x02)
        #expect(run(&synA, ingress: 0, &h.contexts[0]).0 == .transmit(.forwardToBackend))
        var synB = tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: 41000, dport: 80, flags: 0x02)
        #expect(run(&synB, ingress: 0, &h.contexts[1]).0 == .transmit(.forwardToBackend))
        let backend = synA.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!).loadBE32(30) }
        #expect(synB.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!).loadBE32(30) } == backend)
        #expect(h.counters[0].read(.newFlows) == 1 && h.counters[1].read(.newFlows) == 0)
        #expect(h.deferred[0].count == 1 && h.deferred[1].count == 1)
        // B's burst ends first: its frames leave, and the reply has its way back already.
        PacketPipeline.commitDeferred(&h.contexts[1])
        let bmac = MACAddress(backend == 0xC633_640B ? "02:00:00:00:be:11" : "02:00:00:00:be:12")!
        var reply = tcpFrame(dstMAC: mac1, srcMAC: bmac, src: backend, dst: client, sport: 8080, dport: 41000, flags: 0x12)
        #expect(run(&reply, ingress: 1, &h.contexts[1]).0 == .transmit(.returnToClient))
        // A's commit finds the entry in place: still one forward and one reverse entry.
        PacketPipeline.commitDeferred(&h.contexts[0])
        #expect(h.flows.view.count(now: 100) == 2)
    }

    /// A client reuses a 5-tuple whose connection closed: the forward entry is still there (its
    /// TIME_WAIT) but the reverse entry already expired. The new SYN keeps the flow's backend
    /// and puts the reverse entry back, so the SYN-ACK returns (it was dropped before).
    @Test func aSYNOnAKnownFlowRestoresAnExpiredReverseEntry() throws {
        let h = try PipelineHarness(yaml: Self.yamlWithNeighbors, portMACs: [mac0, mac1])
        let client: UInt32 = 0xC000_0264
        let vip: UInt32 = 0xC000_020A
        var syn = tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: 42000, dport: 80, flags: 0x02)
        #expect(run(&syn, ingress: 0, &h.contexts[0]).0 == .transmit(.forwardToBackend))
        let backend = syn.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!).loadBE32(30) }
        let bmac = MACAddress(backend == 0xC633_640B ? "02:00:00:00:be:11" : "02:00:00:00:be:12")!
        func reply() -> Verdict {
            var r = tcpFrame(dstMAC: mac1, srcMAC: bmac, src: backend, dst: client, sport: 8080, dport: 42000, flags: 0x12)
            return run(&r, ingress: 1, &h.contexts[0]).0
        }
        #expect(reply() == .transmit(.returnToClient))
        // The reverse entry expires first; the forward entry stays.
        let reverseKey = ConntrackKey(source: IPv4Address(value: backend), destination: IPv4Address(value: client), sourcePort: 8080,
                                      destinationPort: 42000, protocol: 6, zone: 1)
        let reverseHash = h.snapshot.hasher.hash(IPv4FlowKey(source: IPv4Address(value: backend), destination: IPv4Address(value: client),
                                                           sourcePort: 8080, destinationPort: 42000, proto: 6))
        #expect(h.flows.view.remove(reverseKey, hash: reverseHash))
        #expect(reply() == .drop(.notOwnedAddress))
        #expect(h.flows.view.count(now: 100) == 1)
        // The client opens a new connection on the same 5-tuple.
        syn = tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: 42000, dport: 80, flags: 0x02)
        #expect(run(&syn, ingress: 0, &h.contexts[0]).0 == .transmit(.forwardToBackend))
        #expect(syn.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!).loadBE32(30) } == backend)
        #expect(h.counters[0].read(.newFlows) == 1)
        #expect(reply() == .transmit(.returnToClient))
        // A segment that is not a SYN does not (re)insert it.
        #expect(h.flows.view.remove(reverseKey, hash: reverseHash))
        var ack = tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: 42000, dport: 80, flags: 0x10)
        #expect(run(&ack, ingress: 0, &h.contexts[0]).0 == .transmit(.forwardToBackend))
        #expect(h.flows.view.count(now: 100) == 1)
    }

    /// A new flow whose forward entry fits but whose reverse entry finds its probe window full of
    /// established flows (entries no insert may evict) is still forwarded, but its replies have
    /// no way back: that is counted (`reverse_entries_lost`), whether the entry went in at once or
    /// was kept back to the end of the burst.
    @Test(arguments: [false, true])
    func aReverseEntryWithNoRoomIsCounted(deferredInserts: Bool) throws {
        let h = try PipelineHarness(yaml: Self.yaml.replacingOccurrences(of: ", { address: 198.51.100.12, port: 8080 }", with: "")
                                        + Self.neighborsYAML, portMACs: [mac0, mac1], keptBack: deferredInserts ? 32 : nil)
        let client: UInt32 = 0xC000_0264, vip: UInt32 = 0xC000_020A, backend: UInt32 = 0xC633_640B
        // Fill the table with UDP flows (not evictable) until some inserts fail: some probe
        // windows are full, most still have room.
        var failed = 0, filler: UInt32 = 0
        while failed < 16 {
            filler &+= 1
            let source = IPv4Address(value: 0xCB00_7100 | (filler & 0xFF)), destination = IPv4Address(value: 0xC633_6400 | (filler >> 8 & 0xFF))
            let port = UInt16(truncatingIfNeeded: filler >> 16) &+ 1
            let key = ConntrackKey(source: source, destination: destination, sourcePort: port, destinationPort: 53, protocol: 17)
            let hash = h.snapshot.hasher.hash(IPv4FlowKey(source: source, destination: destination, sourcePort: port,
                                                        destinationPort: 53, proto: 17))
            if case .full = h.flows.view.insert(key, hash: hash, value: FlowValue(backend: 0), event: .packet(), now: 100) {
                failed += 1
            }
        }
        // A client port whose reply 5-tuple (backend:8080 → client:port, the reverse zone 1) has
        // no room and whose SYN still makes a flow (its own window had a slot).
        var found: UInt16?
        for port in UInt16(40000)..<50000 {
            let b = IPv4Address(value: backend), c = IPv4Address(value: client)
            let reverse = ConntrackKey(source: b, destination: c, sourcePort: 8080, destinationPort: port, protocol: 6, zone: 1)
            let hash = h.snapshot.hasher.hash(IPv4FlowKey(source: b, destination: c, sourcePort: 8080, destinationPort: port, proto: 6))
            switch h.flows.view.insert(reverse, hash: hash, value: FlowValue(backend: 0), event: .tcp(flags: 0x02), now: 100) {
            case .full: break
            case .inserted(let entry), .replaced(let entry, _), .existing(let entry):
                _ = h.flows.view.remove(entry)
                continue
            }
            let newFlows = h.counters[0].read(.newFlows)
            var syn = tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: port, dport: 80, flags: 0x02)
            #expect(run(&syn, ingress: 0, &h.contexts[0]).0 == .transmit(.forwardToBackend))
            if h.counters[0].read(.newFlows) > newFlows { found = port; break }
        }
        let port = try #require(found, "no client port with a full reverse window and a free forward one")
        PacketPipeline.commitDeferred(&h.contexts[0])
        #expect(h.counters[0].read(.reverseEntriesLost) == 1)
        var reply = tcpFrame(dstMAC: mac1, srcMAC: MACAddress("02:00:00:00:be:11")!, src: backend, dst: client, sport: 8080,
                             dport: port, flags: 0x12)
        #expect(run(&reply, ingress: 1, &h.contexts[0]).0 == .drop(.notOwnedAddress))
        // The counter is taken once: another commit adds nothing.
        PacketPipeline.commitDeferred(&h.contexts[0])
        #expect(h.counters[0].read(.reverseEntriesLost) == 1)
    }

    func run(_ frame: inout [UInt8], ingress: Int, _ context: inout PipelineContext) -> (Verdict, Int) {
        var length = frame.count
        var output = PacketOutput(port: ingress)
        let capacity = 256
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        defer { buffer.deallocate() }
        frame.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: frame.count) }
        let verdict = PacketPipeline.process(buffer, length: &length, capacity: capacity, headroom: 0, ingress: ingress,
                                             output: &output, context: &context)
        frame = Array(UnsafeRawBufferPointer(start: buffer, count: length))
        return (verdict, output.port)
    }
}

@Suite struct FragmentFollowing {
    let mac0 = MACAddress("02:00:00:00:00:01")!
    let mac1 = MACAddress("02:00:00:00:00:02")!
    let clientMAC = MACAddress("02:00:00:00:0c:01")!

    /// Ethernet / IPv4 fragment of a UDP datagram: `offset` in bytes, `more` the MF flag; the
    /// first fragment carries the UDP header.
    func fragment(id: UInt16, offset: Int, more: Bool, payload: Int) -> [UInt8] {
        let ipLength = 20 + payload
        var b = [UInt8](repeating: 0xAB, count: 14 + ipLength)
        b.withUnsafeMutableBytes { r in
            let p = r.baseAddress!
            mac0.store(p, 0); clientMAC.store(p, 6); p.storeBE16(EtherType.ipv4, 12)
            p.storeBE16(0x4500, 14); p.storeBE16(UInt16(ipLength), 16); p.storeBE16(id, 18)
            p.storeBE16((more ? 0x2000 : 0) | UInt16(offset / 8), 20)
            p.storeBE16(64 << 8 | 17, 22); p.storeBE32(0xC000_0264, 26); p.storeBE32(0xC000_020A, 30)
            p.storeBE16(0, 24)
            p.storeBE16(InternetChecksum.checksum(p + 14, count: 20), 24)
            if offset == 0 {
                p.storeBE16(5353, 34); p.storeBE16(53, 36); p.storeBE16(UInt16(8 + 2 * payload), 38); p.storeBE16(0, 40)
            }
        }
        return b
    }

    @Test func laterFragmentsFollowTheFirstOnesBackend() throws {
        let yaml = """
        ports:
          - { name: lan0, device: net_null0, addresses: ["192.0.2.2/24"] }
          - { name: lan1, device: net_null1, addresses: ["198.51.100.1/24"] }
        vips: [{ address: 192.0.2.10, port: lan0 }]
        services:
          - name: dns
            vip: 192.0.2.10
            protocol: udp
            port: 53
            backends: [{ address: 198.51.100.11, port: 53 }, { address: 198.51.100.12, port: 53 },
                       { address: 198.51.100.13, port: 53 }]
        neighbors: [{ address: 198.51.100.11, mac: "02:00:00:00:be:11" }, { address: 198.51.100.12, mac: "02:00:00:00:be:12" },
                    { address: 198.51.100.13, mac: "02:00:00:00:be:13" }]
        """
        let config = try SluicedConfig.parse(yaml: yaml, file: "t.yaml")
        let snapshot = try config.makeSnapshot(portMACs: [mac0, mac1])
        let neighbors = NeighborTable(capacity: 64)
        for (a, m) in config.neighbors { neighbors.learn(a.mapped, mac: m, now: 10) }
        let flows = try FlowTable(capacity: 1024)
        let counters = WorkerCounters()
        let fragmentTable = FragmentTable(capacity: 64)
        defer { withExtendedLifetime((snapshot, neighbors, flows, counters, fragmentTable)) {} }
        var context = PipelineContext(snapshot: snapshot, neighbors: neighbors, flows: flows.view, counters: counters, now: 10,
                                      fragments: fragmentTable)
        let smoke = PipelineSmoke()
        for id: UInt16 in [1, 2, 3, 4, 5, 6] {
            var first = fragment(id: id, offset: 0, more: true, payload: 16)
            #expect(smoke.run(&first, ingress: 0, &context).0 == .transmit(.forwardToBackend))
            let backend = first.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!).loadBE32(30) }
            var second = fragment(id: id, offset: 16, more: false, payload: 8)
            let (verdict, port) = smoke.run(&second, ingress: 0, &context)
            #expect(verdict == .transmit(.forwardToBackend) && port == 1)
            second.withUnsafeBytes { r in
                let p = r.baseAddress!
                #expect(p.loadBE32(30) == backend, "fragment \(id) went elsewhere")
                #expect(InternetChecksum.verifies(p + 14, count: 20))
                #expect(p.loadBE16(20) == 2)            // offset kept, MF clear
                #expect(p.loadBE8(34) == 0xAB)          // payload untouched
            }
        }
        #expect(counters.read(.fragmentsFollowed) == 6)
        var orphan = fragment(id: 99, offset: 16, more: false, payload: 8)
        #expect(smoke.run(&orphan, ingress: 0, &context).0 == .drop(.fragmentNotHandled))
        // After the lifetime, a late fragment no longer follows.
        context.now = 10 + FragmentTable.lifetime + 1
        var late = fragment(id: 1, offset: 16, more: false, payload: 8)
        #expect(smoke.run(&late, ingress: 0, &context).0 == .drop(.fragmentNotHandled))
    }
}

/// IPv4 header checksum offload: what the pipeline leaves to the port, and what it trusts.
@Suite struct ChecksumOffload {
    let mac0 = MACAddress("02:00:00:00:00:01")!
    let mac1 = MACAddress("02:00:00:00:00:02")!
    let clientMAC = MACAddress("02:00:00:00:0c:01")!

    @Test func vxlanOuterHeaderChecksumIsLeftToAPortThatOffloadsIt() throws {
        let yaml = """
        ports:
          - { name: lan0, device: net_null0, addresses: ["192.0.2.2/24"] }
          - { name: lan1, device: net_null1, addresses: ["198.51.100.1/24"] }
        vips: [{ address: 192.0.2.10, port: lan0 }]
        neighbors: [{ address: 198.51.100.21, mac: "02:00:00:00:ee:21" }]
        services:
          - name: pods
            vip: 192.0.2.10
            protocol: tcp
            port: 80
            mode: vxlan
            backends: [{ address: 203.0.113.5, port: 8080, vtep: 198.51.100.21, vni: 42, inner_mac: "02:42:00:00:00:05" }]
        """
        let config = try SluicedConfig.parse(yaml: yaml, file: "t.yaml")
        let snapshot = try config.makeSnapshot(portMACs: [mac0, mac1])
        let neighbors = NeighborTable(capacity: 64)
        for (a, m) in config.neighbors { neighbors.learn(a.mapped, mac: m, now: 1) }
        let flows = try FlowTable(capacity: 1024)
        let counters = WorkerCounters()
        defer { withExtendedLifetime((snapshot, neighbors, flows, counters)) {} }
        let smoke = PipelineSmoke()
        for offload in [false, true] {
            var context = PipelineContext(snapshot: snapshot, neighbors: neighbors, flows: flows.view, counters: counters, now: 1)
            context.txIPv4ChecksumPorts = offload ? 0b10 : 0
            let syn = smoke.tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: 0xC000_0264, dst: 0xC000_020A,
                                     sport: offload ? 50001 : 50000, dport: 80, flags: 0x02)
            let headroom = 128, capacity = 512
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: headroom + capacity, alignment: 8)
            defer { buffer.deallocate() }
            let p = buffer + headroom
            syn.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: syn.count) }
            var length = syn.count
            var output = PacketOutput(port: 0)
            let verdict = PacketPipeline.process(p, length: &length, capacity: capacity, headroom: headroom, ingress: 0,
                                                 output: &output, context: &context)
            #expect(verdict == .transmit(.forwardToBackend) && output.prepended == 50)
            let outer = p - output.prepended
            #expect(output.ipv4ChecksumOffload == (offload ? 14 : 0))
            if offload {
                #expect(outer.loadBE16(24) == 0, "the port fills in the outer header checksum")
            } else {
                #expect(InternetChecksum.verifies(UnsafeRawPointer(outer + 14), count: 20))
            }
        }
    }

    @Test func aHeaderThePortVerifiedIsNotCheckedAgain() {
        var frame = PipelineSmoke().tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: 0xC000_0264, dst: 0xC000_020A,
                                             sport: 1, dport: 80, flags: 0x02)
        frame[24] ^= 0xFF   // a wrong header checksum
        frame.withUnsafeBytes { r in
            var parsed = ParsedFrame()
            #expect(FrameParser.parse(r.baseAddress!, length: r.count, into: &parsed) == .badIPv4Checksum)
            parsed = ParsedFrame()
            #expect(FrameParser.parse(r.baseAddress!, length: r.count, into: &parsed, ipv4HeaderVerified: true) == nil)
        }
    }
}

/// One data plane for the tests above: `yaml`'s snapshot with its `neighbors` learned, one flow
/// table and one fragment table, and a `PipelineContext` per worker, each with its own counters
/// and — `keptBack` given — its own buffer of kept-back reverse entries of that capacity. Holds
/// every table for the contexts, which hold them unretained.
final class PipelineHarness {
    let snapshot: DataPlaneSnapshot
    let neighbors = NeighborTable(capacity: 64)
    let flows: FlowTable
    let fragments = FragmentTable(capacity: 64)
    let counters: [WorkerCounters]
    let deferred: UnsafeMutablePointer<DeferredReverseEntries>
    var contexts: [PipelineContext] = []

    init(yaml: String, portMACs: [MACAddress], workers: Int = 1, keptBack: Int? = nil, now: UInt32 = 100) throws {
        let config = try SluicedConfig.parse(yaml: yaml, file: "t.yaml")
        snapshot = try config.makeSnapshot(portMACs: portMACs)
        flows = try FlowTable(capacity: 1024)
        counters = (0..<workers).map { _ in WorkerCounters() }
        deferred = .allocate(capacity: workers)
        for i in 0..<workers { (deferred + i).initialize(to: DeferredReverseEntries(capacity: keptBack ?? 1)) }
        for (a, m) in config.neighbors { neighbors.learn(a.mapped, mac: m, now: now) }
        for i in 0..<workers {
            var context = PipelineContext(snapshot: snapshot, neighbors: neighbors, flows: flows.view, counters: counters[i],
                                          now: now, fragments: fragments)
            if keptBack != nil { context.deferredReverse = deferred + i }
            contexts.append(context)
        }
    }

    deinit {
        deferred.deinitialize(count: counters.count)
        deferred.deallocate()
    }
}
