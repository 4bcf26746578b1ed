import Testing
import SluiceCore
import SluiceConfig
import SluiceConntrack
import SluiceDataPlane

/// Stable ids: what a new snapshot does to established flows (issue: "an established flow keeps
/// its backend when the backend set changes, as long as that backend exists").
@Suite struct SnapshotChange {
    let mac0 = MACAddress("02:00:00:00:00:01")!
    let mac1 = MACAddress("02:00:00:00:00:02")!
    let clientMAC = MACAddress("02:00:00:00:0c:01")!
    let vip: UInt32 = 0xC000_020A
    let smoke = PipelineSmoke()

    func config(backends: [Int], extraService: Bool = false) throws -> SluicedConfig {
        var yaml = """
        ports:
          - { name: lan0, device: net_null0, addresses: ["192.0.2.2/24"] }
          - { name: lan1, device: net_null1, addresses: ["198.51.100.1/24"] }
        vips: [{ address: 192.0.2.10, port: lan0 }]
        services:

        """
        if extraService {
            // Listed first: positions of the web service shift, its id must not.
            yaml += "  - { name: other, vip: 192.0.2.10, protocol: udp, port: 53, backends: [{ address: 198.51.100.99, port: 53 }] }\n"
        }
        yaml += "  - name: web\n    vip: 192.0.2.10\n    protocol: tcp\n    port: 80\n    backends:\n"
        for b in backends { yaml += "      - { address: 198.51.100.\(b), port: 8080 }\n" }
        return try SluicedConfig.parse(yaml: yaml, file: "t.yaml")
    }

    struct Harness {
        let neighbors = NeighborTable(capacity: 256)
        let flows: FlowTable
        let counters = WorkerCounters()
        let fragments = FragmentTable(capacity: 64)
        init() throws { flows = try FlowTable(capacity: 1 << 14) }
    }

    /// Sends one packet of flow `sport` and returns the backend address it was sent to (nil: not forwarded).
    func send(_ sport: UInt16, flags: UInt8, _ context: inout PipelineContext) -> UInt32? {
        var frame = smoke.tcpFrame(dstMAC: mac0, srcMAC: clientMAC, src: 0xC000_0264, dst: vip, sport: sport, dport: 80,
                                   flags: flags)
        guard smoke.run(&frame, ingress: 0, &context).0 == .transmit(.forwardToBackend) else { return nil }
        return frame.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!).loadBE32(30) }
    }

    @Test func establishedFlowsKeepTheirBackendsAcrossSnapshots() throws {
        let h = try Harness()
        for b in 1...20 { h.neighbors.learn(ipv4: 0xC633_6400 + UInt32(b), mac: MACAddress(value: 0x02_00_00_00_BE_00 + UInt64(b)), now: 1) }
        let first = try config(backends: [1, 2, 3, 4, 5]).makeSnapshot(portMACs: [mac0, mac1])
        var context = PipelineContext(snapshot: first, neighbors: h.neighbors, flows: h.flows.view, counters: h.counters,
                                      now: 10, fragments: h.fragments)
        var chosen: [UInt16: UInt32] = [:]
        for sport in UInt16(1000)..<1400 { chosen[sport] = send(sport, flags: 0x02, &context) }
        #expect(chosen.values.allSatisfy { $0 != 0 } && Set(chosen.values).count == 5)

        // Backend .3 leaves, .6 and .7 join, and another service is listed before this one:
        // every position moves. Flows on .1 .2 .4 .5 stay; flows on .3 are re-balanced.
        let second = try config(backends: [7, 1, 2, 6, 4, 5], extraService: true)
            .makeSnapshot(portMACs: [mac0, mac1], previous: first)
        context.snapshot = .passUnretained(second)
        var moved = 0
        for (sport, before) in chosen {
            let now = send(sport, flags: 0x10, &context)
            if before == 0xC633_6403 {
                #expect(now != nil && now != before)
                moved += 1
            } else {
                #expect(now == before, "flow \(sport) moved from \(before) to \(String(describing: now))")
            }
        }
        #expect(moved > 0 && h.counters.read(.flowsRebound) == UInt64(moved))
        // The rebound flows now stay where they were sent.
        for (sport, before) in chosen where before == 0xC633_6403 {
            let a = send(sport, flags: 0x10, &context), b = send(sport, flags: 0x10, &context)
            #expect(a == b)
        }
        #expect(h.counters.read(.flowsRebound) == UInt64(moved))

        // .3 comes back (same identity → same id as before): nothing moves that was not moved.
        let third = try config(backends: [1, 2, 3, 4, 5, 6, 7]).makeSnapshot(portMACs: [mac0, mac1], previous: second)
        #expect(third.services.services[0].backends.first { $0.address.ipv4Value == 0xC633_6403 }?.id
                == first.services.services[0].backends.first { $0.address.ipv4Value == 0xC633_6403 }?.id)
        context.snapshot = .passUnretained(third)
        for (sport, before) in chosen where before != 0xC633_6403 {
            #expect(send(sport, flags: 0x10, &context) == before)
        }
        withExtendedLifetime((first, second, third, h)) {}
    }

    @Test func aServiceThatLeavesAndReturnsDoesNotCaptureOtherFlows() throws {
        let a = try config(backends: [1, 2], extraService: true).makeSnapshot(portMACs: [mac0, mac1])
        let b = try config(backends: [1, 2]).makeSnapshot(portMACs: [mac0, mac1], previous: a)
        let c = try config(backends: [1, 2], extraService: true).makeSnapshot(portMACs: [mac0, mac1], previous: b)
        let webA = a.services.services.first { $0.name == "web" }!, webC = c.services.services.first { $0.name == "web" }!
        let otherA = a.services.services.first { $0.name == "other" }!, otherC = c.services.services.first { $0.name == "other" }!
        #expect(webA.id == webC.id && otherA.id == otherC.id && webA.id != otherA.id)
        #expect(b.services.services[0].id == webA.id)
    }
}

@Suite struct StableIDAssignment {
    @Test func idsAreKeptReusedForTheSameIdentityAndQuarantinedForOthers() throws {
        var r = StableIDs<Int>()
        var ids: [UInt16]
        (ids, r) = try r.assigning([10, 20, 30], now: 0, quarantine: 100)
        #expect(ids == [0, 1, 2])
        (ids, r) = try r.assigning([30, 40], now: 5, quarantine: 100)     // 10, 20 retired
        #expect(ids == [2, 3])
        (ids, r) = try r.assigning([30, 40, 50, 20], now: 50, quarantine: 100)
        #expect(ids == [2, 3, 4, 1], "20 gets its id back; 50 must not take 0 or 1 inside the quarantine")
        (ids, r) = try r.assigning([60], now: 200, quarantine: 100)         // everything else retired at 200
        #expect(ids == [0], "0 (of 10, retired at 5) is free after the quarantine")
        #expect(!r.retired.contains { $0.identity == 10 })
    }
}
