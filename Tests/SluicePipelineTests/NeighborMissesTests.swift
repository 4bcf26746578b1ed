import SluiceConfig
import SluiceCore
import SluiceDataPlane
import Testing

/// On-demand solicitation of clients found unresolved on the way back (`NeighborMisses`).
@Suite struct NeighborMissesTests {
    let client4 = IPv6Address(ipv4Mapped: IPv4Address("192.0.2.100")!.value)
    let client6 = IPv6Address("2001:db8::100")!

    @Test func notedAddressesAreTakenOnceWhileRecent() {
        let misses = NeighborMisses(capacity: 64)
        misses.note(client4, now: 10)
        misses.note(client4, now: 10)
        misses.note(client6, now: 11)
        #expect(Set(misses.take(now: 11)) == [client4, client6])
        #expect(misses.take(now: 11).isEmpty, "taken once")
        misses.note(client4, now: 20)
        #expect(misses.take(now: 23).isEmpty, "older than the second before: dropped")
    }

    @Test func onlyUnresolvedAddressesOnAConnectedPrefixAreAskedFor() throws {
        let yaml = """
        ports:
          - { name: lan0, device: net_null0, addresses: ["192.0.2.2/24", "2001:db8::2/64"] }
          - { name: lan1, device: net_null1, addresses: ["198.51.100.1/24"] }
        routes: [{ prefix: 203.0.113.0/24, via: 192.0.2.1, port: lan0 }]
        vips: [{ address: 192.0.2.10, port: lan0 }]
        """
        let mac0 = MACAddress("02:00:00:00:00:01")!, mac1 = MACAddress("02:00:00:00:00:02")!
        let snapshot = try SluicedConfig.parse(yaml: yaml, file: "t.yaml").makeSnapshot(portMACs: [mac0, mac1])
        let neighbors = NeighborTable(capacity: 64)
        let known = IPv6Address(ipv4Mapped: IPv4Address("192.0.2.101")!.value)
        neighbors.learn(known, mac: MACAddress("02:00:00:00:0c:01")!, now: 1)
        let behindRouter = IPv6Address(ipv4Mapped: IPv4Address("203.0.113.7")!.value)
        let vip = IPv6Address(ipv4Mapped: IPv4Address("192.0.2.10")!.value)
        let ourOwn = IPv6Address(ipv4Mapped: IPv4Address("192.0.2.2")!.value)
        let multicast = IPv6Address("ff02::1")!
        let requests = NeighborResolver.requests(forMisses: [client4, client6, known, behindRouter, vip, ourOwn, multicast],
                                                 routing: snapshot.routing, ports: snapshot.ports, neighbors: neighbors)
        #expect(requests.map(\.target) == [client4, client6])
        // What the resolver asks for anyway this pass is not asked for twice.
        let again = NeighborResolver.requests(forMisses: [client4, client6], routing: snapshot.routing, ports: snapshot.ports,
                                              neighbors: neighbors, alreadyDue: [requests[0]])
        #expect(again.map(\.target) == [client6])
        #expect(requests.allSatisfy { $0.port == 0 && $0.mac == mac0 })
        #expect(requests[0].source == IPv6Address(ipv4Mapped: IPv4Address("192.0.2.2")!.value))
        #expect(requests[1].source == IPv6Address("2001:db8::2")!)
    }
}
