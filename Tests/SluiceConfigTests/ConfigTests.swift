import Testing
import SluiceCore
@testable import SluiceConfig

let validYAML = """
eal: ["--no-huge", "-m", "512", "--no-pci"]
ports:
  - name: lan0
    device: net_af_packet0,iface=veth-lb
    mac: "02:00:00:00:00:01"
    rx_descriptors: 512
  - name: lan1
    device: "0000:01:00.0"
workers:
  lcores: [1]
  mode: pipeline
  idle: { mode: interrupt, empty_polls: 64, sleep_us: 20 }
  tx_drain_us: 50
mempool: { mbufs: 4095, cache_size: 128 }
vips:
  - { address: 192.0.2.10, port: lan0 }
  - { address: "2001:db8::10", port: lan0, mac: "02:00:00:00:00:99" }
"""

@Suite struct ConfigLoading {
    @Test func validConfigParses() throws {
        let c = try SluicedConfig.parse(yaml: validYAML, file: "t.yaml")
        #expect(c.eal == ["--no-huge", "-m", "512", "--no-pci"])
        #expect(c.ports.count == 2)
        #expect(c.ports[0].mac == MACAddress("02:00:00:00:00:01"))
        #expect(c.ports[0].rxDescriptors == 512)
        #expect(c.ports[0].txDescriptors == 1024)
        #expect(c.ports[0].isVirtualDevice)
        #expect(!c.ports[1].isVirtualDevice)
        #expect(c.workers.lcores == [1])
        #expect(c.workers.effectiveMainLcore == 0)
        #expect(c.workers.idle == IdleConfig(mode: .interrupt, emptyPollsBeforeBackoff: 64, sleepMicroseconds: 20))
        #expect(c.workers.txDrainMicroseconds == 50)
        #expect(c.mempool.mbufs == 4095 && c.mempool.cacheSize == 128)
        #expect(c.vips == [
            VIPConfig(address: .v4(IPv4Address("192.0.2.10")!), port: "lan0"),
            VIPConfig(address: .v6(IPv6Address("2001:db8::10")!), port: "lan0", mac: MACAddress("02:00:00:00:00:99")),
        ])
    }

    @Test func ownedAddressesUseVIPOrPortMAC() throws {
        let c = try SluicedConfig.parse(yaml: validYAML, file: "t.yaml")
        let portMAC = MACAddress("02:00:00:00:00:01")!
        let owned = c.ownedAddresses(portIndex: 0, portMAC: portMAC)
        #expect(owned.macFor(IPv4Address("192.0.2.10")!.value) == portMAC)
        #expect(owned.macFor(IPv6Address("2001:db8::10")!) == MACAddress("02:00:00:00:00:99"))
        #expect(owned.macFor(IPv4Address("192.0.2.11")!.value) == nil)
        #expect(c.ownedAddresses(portIndex: 1, portMAC: portMAC).ipv4Addresses.isEmpty)
    }

    @Test func minimalConfigTakesDefaults() throws {
        let c = try SluicedConfig.parse(yaml: "ports: [{name: p, device: net_null0}]", file: "m.yaml")
        #expect(c.workers == WorkerConfig())
        #expect(c.mempool == MempoolConfig())
        #expect(c.vips.isEmpty)
    }

    /// Each broken file is rejected whole, naming the field.
    @Test(arguments: [
        ("", "", "empty configuration"),
        ("ports: [", "", "not valid YAML"),
        ("- 1", "", "expected a mapping"),
        ("workers: {lcores: [1]}", "ports", "required field missing"),
        ("ports: []", "ports", "at least one port"),
        ("ports: [{name: p}]", "ports[0].device", "required field missing"),
        ("ports: [{device: net_null0}]", "ports[0].name", "required field missing"),
        ("ports: [{name: p, device: eth0}]", "ports[0].device", "neither a virtual device"),
        ("ports: [{name: 'a b', device: net_null0}]", "ports[0].name", "must be 1-32"),
        ("ports: [{name: p, device: net_null0, speed: 10}]", "ports[0].speed", "unknown field"),
        ("ports: [{name: p, device: net_null0, mac: '02:00:00:00:00'}]", "ports[0].mac", "not a MAC"),
        ("ports: [{name: p, device: net_null0, mac: '01:00:5e:00:00:01'}]", "ports[0].mac", "multicast"),
        ("ports: [{name: p, device: net_null0, rx_descriptors: 1000}]", "ports[0].rx_descriptors", "power of two"),
        ("ports: [{name: p, device: net_null0, rx_descriptors: many}]", "ports[0].rx_descriptors", "expected an integer"),
        ("ports: [{name: p, device: net_null0}, {name: p, device: net_null1}]", "ports[1].name", "duplicate port name"),
        ("ports: [{name: p, device: net_null0}, {name: q, device: net_null0}]", "ports[1].device", "already used"),
        ("ports: [{name: p, device: net_null0}]\nworkers: {lcores: []}", "workers.lcores", "at least one"),
        ("ports: [{name: p, device: net_null0}]\nworkers: {lcores: [1, 1]}", "workers.lcores[1]", "listed twice"),
        ("ports: [{name: p, device: net_null0}]\nworkers: {lcores: [1], main_lcore: 1}", "workers.main_lcore", "also a worker"),
        ("ports: [{name: p, device: net_null0}]\nworkers: {lcores: [5000]}", "workers.lcores[0]", "out of range"),
        ("ports: [{name: p, device: net_null0}]\nworkers: {mode: turbo}", "workers.mode", "not one of"),
        ("ports: [{name: p, device: net_null0}]\nworkers: {mode: io}", "workers.mode", "exactly two ports"),
        ("ports: [{name: p, device: net_null0}]\nworkers: {idle: {mode: nap}}", "workers.idle.mode", "not one of"),
        ("ports: [{name: p, device: net_null0}]\nmempool: {mbufs: 10}", "mempool.mbufs", "out of range"),
        ("ports: [{name: p, device: net_null0}]\nmempool: {mbufs: 1024, cache_size: 512}", "mempool.cache_size", "quarter"),
        ("ports: [{name: p, device: net_null0}]\nvips: [{address: 192.0.2.300, port: p}]", "vips[0].address", "not an IPv4 or IPv6"),
        ("ports: [{name: p, device: net_null0}]\nvips: [{address: 192.0.2.01, port: p}]", "vips[0].address", "not an IPv4 or IPv6"),
        ("ports: [{name: p, device: net_null0}]\nvips: [{address: 224.0.0.1, port: p}]", "vips[0].address", "cannot be a VIP"),
        ("ports: [{name: p, device: net_null0}]\nvips: [{address: 'ff02::1', port: p}]", "vips[0].address", "cannot be a VIP"),
        ("ports: [{name: p, device: net_null0}]\nvips: [{address: 192.0.2.1, port: q}]", "vips[0].port", "no port named 'q'"),
        ("ports: [{name: p, device: net_null0}]\nvips: [{address: 192.0.2.1}]", "vips[0].port", "required field missing"),
        ("ports: [{name: p, device: net_null0}]\nvips: [{address: 192.0.2.1, port: p}, {address: 192.0.2.1, port: p}]", "vips[1].address", "listed twice"),
        ("ports: [{name: p, device: net_null0}]\neal: --no-huge", "eal", "expected a list"),
    ] as [(String, String, String)])
    func brokenConfigIsRejected(yaml: String, field: String, reason: String) {
        do {
            _ = try SluicedConfig.parse(yaml: yaml, file: "bad.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.file == "bad.yaml")
            #expect(error.field == field, "\(error)")
            #expect(error.reason.contains(reason), "\(error)")
            #expect(error.description.hasPrefix(field.isEmpty ? "bad.yaml: " : "bad.yaml: \(field): "))
        }
    }

    @Test func unreadableFileIsAnError() {
        do {
            _ = try SluicedConfig.load(path: "/nonexistent/sluice.yaml")
            Issue.record("accepted a missing file")
        } catch {
            #expect(error.file == "/nonexistent/sluice.yaml")
            #expect(error.reason.contains("cannot read file"))
        }
    }
}
