import Testing
import SluiceCore
import SluiceConfig
import SluiceConntrack
import SluiceDataPlane

/// Full-NAT return-entry lifetime, pool and mode changes, and a service that leaves and returns:
/// the cases an independent review found broken (each failed before its fix).
@Suite struct SnapshotChangeEdgeCases {
    let mac0 = MACAddress("02:00:00:00:00:01")!
    let mac1 = MACAddress("02:00:00:00:00:02")!
    let clientMAC = MACAddress("02:00:00:00:0c:01")!
    let bmac = MACAddress("02:00:00:00:be:0b")!
    let smoke = PipelineSmoke()
    let vip: UInt32 = 0xC000_020A
    let client: UInt32 = 0xC000_0264

    func yaml(mode: String?, pool: [String], backends: [Int], web: Bool = true) -> String {
        var y = """
        ports:
          - { name: lan0, device: net_null0, addresses: ["192.0.2.2/24"] }
          - { name: lan1, device: net_null1, addresses: ["198.51.100.1/24"] }
        vips: [{ address: 192.0.2.10, port: lan0 }]
        services:
          - { name: other, vip: 192.0.2.10, protocol: udp, port: 53, backends: [{ address: 198.51.100.99, port: 53 }] }

        """
        if web {
            y += "  - name: web\n    vip: 192.0.2.10\n    protocol: tcp\n    port: 80\n"
            if let mode { y += "    mode: \(mode)\n" }
            if !pool.isEmpty { y += "    source_pool: [\(pool.joined(separator: ", "))]\n" }
            y += "    backends:\n"
            for b in backends { y += "      - { address: 198.51.100.\(b), port: 8080 }\n" }
        }
        return y
    }

    func fwd(_ sport: UInt16, _ flags: UInt8, _ c: inout PipelineContext) -> (Verdict, src: UInt32, sport: UInt16, dst: UInt32) {
        var f = smoke.tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: client, dst: vip, sport: sport, dport: 80, flags: flags)
        let v = smoke.run(&f, ingress: 0, &c).0
        return f.withUnsafeBytes { r in (v, r.baseAddress!.loadBE32(26), r.baseAddress!.loadBE16(34), r.baseAddress!.loadBE32(30)) }
    }
    func back(_ b: UInt32, _ pool: UInt32, _ dport: UInt16, _ flags: UInt8, _ c: inout PipelineContext) -> Verdict {
        var f = smoke.tcpFrame(dstMAC: mac1, srcMAC: bmac, src: b, dst: pool, sport: 8080, dport: dport, flags: flags)
        return smoke.run(&f, ingress: 1, &c).0
    }

    @Test func idleFullNATConnectionSurvives30s() throws {
        let s = try SluicedConfig.parse(yaml: yaml(mode: "fullnat", pool: ["198.51.100.50"], backends: [11]), file: "t").makeSnapshot(portMACs: [mac0, mac1])
        let n = NeighborTable(capacity: 64); let flows = try FlowTable(capacity: 1 << 12); let k = WorkerCounters(); let fr = FragmentTable(capacity: 64)
        defer { withExtendedLifetime((s, n, flows, k, fr)) {} }
        n.learn(ipv4: client, mac: clientMAC, now: 100); n.learn(ipv4: 0xC633_640B, mac: bmac, now: 100)
        var c = PipelineContext(snapshot: s, neighbors: n, flows: flows.view, counters: k, now: 100, fragments: fr)
        let syn = fwd(40000, 0x02, &c)
        #expect(syn.0 == .transmit(.forwardToBackend))
        #expect(back(syn.dst, syn.src, syn.sport, 0x12, &c) == .transmit(.returnToClient))
        #expect(fwd(40000, 0x10, &c).0 == .transmit(.forwardToBackend))
        c.now = 140   // 40 s idle after the handshake
        let r = back(syn.dst, syn.src, syn.sport, 0x18, &c)
        #expect(r == .transmit(.returnToClient))
        // A client RST closes both entries' state machines: the return entry then expires with
        // the forward one instead of holding its source port for the established timeout.
        c.now = 150
        #expect(fwd(40000, 0x04, &c).0 == .transmit(.forwardToBackend))
        c.now = 150 + 11   // past tcpClose (10 s)
        #expect(back(syn.dst, syn.src, syn.sport, 0x10, &c) == .drop(.notOwnedAddress))
    }

    @Test func poolShrinkOnReload() throws {
        let a = try SluicedConfig.parse(yaml: yaml(mode: "fullnat", pool: ["198.51.100.50", "198.51.100.51"], backends: [11]), file: "t").makeSnapshot(portMACs: [mac0, mac1])
        let b = try SluicedConfig.parse(yaml: yaml(mode: "fullnat", pool: ["198.51.100.50"], backends: [11]), file: "t").makeSnapshot(portMACs: [mac0, mac1], previous: a)
        let n = NeighborTable(capacity: 64); let flows = try FlowTable(capacity: 1 << 12); let k = WorkerCounters(); let fr = FragmentTable(capacity: 64)
        defer { withExtendedLifetime((a, b, n, flows, k, fr)) {} }
        n.learn(ipv4: client, mac: clientMAC, now: 100); n.learn(ipv4: 0xC633_640B, mac: bmac, now: 100)
        var c = PipelineContext(snapshot: a, neighbors: n, flows: flows.view, counters: k, now: 100, fragments: fr)
        var sp: UInt16 = 0
        for p in UInt16(40000)..<40100 { let r = fwd(p, 0x02, &c); if r.src == 0xC633_6433 { sp = p; break } }
        #expect(sp != 0)
        c.snapshot = .passUnretained(b)
        let r = fwd(sp, 0x10, &c)
        // The pool changed, so the service is a new one: the flow is rebound with a source from
        // the new pool (never an index past its end), and its replies find their way back.
        #expect(r.0 == .transmit(.forwardToBackend) && r.src == 0xC633_6432)
        #expect(k.read(.flowsRebound) == 1)
        #expect(back(0xC633_640B, r.src, r.sport, 0x10, &c) == .transmit(.returnToClient))
    }

    @Test func modeChangeDNATToFullNAT() throws {
        let a = try SluicedConfig.parse(yaml: yaml(mode: nil, pool: [], backends: [11]), file: "t").makeSnapshot(portMACs: [mac0, mac1])
        let b = try SluicedConfig.parse(yaml: yaml(mode: "fullnat", pool: ["198.51.100.50"], backends: [11]), file: "t").makeSnapshot(portMACs: [mac0, mac1], previous: a)
        let n = NeighborTable(capacity: 64); let flows = try FlowTable(capacity: 1 << 12); let k = WorkerCounters(); let fr = FragmentTable(capacity: 64)
        defer { withExtendedLifetime((a, b, n, flows, k, fr)) {} }
        n.learn(ipv4: client, mac: clientMAC, now: 100); n.learn(ipv4: 0xC633_640B, mac: bmac, now: 100)
        var c = PipelineContext(snapshot: a, neighbors: n, flows: flows.view, counters: k, now: 100, fragments: fr)
        _ = fwd(40000, 0x02, &c)
        c.snapshot = .passUnretained(b)
        let r = fwd(40000, 0x10, &c)
        #expect(r.0 == .transmit(.forwardToBackend) && r.src == 0xC633_6432 && k.read(.flowsRebound) == 1)
        #expect(back(0xC633_640B, r.src, r.sport, 0x10, &c) == .transmit(.returnToClient))
    }

    @Test func serviceLeavesAndReturnsWithOtherBackendOrder() throws {
        let a = try SluicedConfig.parse(yaml: yaml(mode: nil, pool: [], backends: [11, 12]), file: "t").makeSnapshot(portMACs: [mac0, mac1])
        let b = try SluicedConfig.parse(yaml: yaml(mode: nil, pool: [], backends: [11, 12], web: false), file: "t").makeSnapshot(portMACs: [mac0, mac1], previous: a)
        let c3 = try SluicedConfig.parse(yaml: yaml(mode: nil, pool: [], backends: [12, 11]), file: "t").makeSnapshot(portMACs: [mac0, mac1], previous: b)
        let n = NeighborTable(capacity: 64); let flows = try FlowTable(capacity: 1 << 12); let k = WorkerCounters(); let fr = FragmentTable(capacity: 64)
        defer { withExtendedLifetime((a, b, c3, n, flows, k, fr)) {} }
        n.learn(ipv4: client, mac: clientMAC, now: 100); n.learn(ipv4: 0xC633_640B, mac: bmac, now: 100); n.learn(ipv4: 0xC633_640C, mac: bmac, now: 100)
        var c = PipelineContext(snapshot: a, neighbors: n, flows: flows.view, counters: k, now: 100, fragments: fr)
        var before: [UInt16: UInt32] = [:]
        for p in UInt16(40000)..<40040 { before[p] = fwd(p, 0x02, &c).dst }
        c.snapshot = .passUnretained(c3)
        var moved = 0
        for (p, d) in before where fwd(p, 0x10, &c).dst != d { moved += 1 }
        #expect(moved == 0)
    }
}
