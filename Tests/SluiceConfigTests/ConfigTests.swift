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
  icmp_errors_per_second: 250
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
        #expect(c.workers.icmpErrorsPerSecond == 250)
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
        #expect(c.metrics.enabled)
        #expect(c.metrics.listen.description == "127.0.0.1:9469")
    }

    @Test func metricsSectionParses() throws {
        var c = try SluicedConfig.parse(yaml: "ports: [{name: p, device: net_null0}]\nmetrics: {listen: '[::1]:0'}", file: "m.yaml")
        #expect(c.metrics.enabled)
        #expect(c.metrics.listen == ListenAddress(host: .v6(IPv6Address(high: 0, low: 1)), port: 0))
        #expect(c.metrics.listen.description == "[::1]:0")
        c = try SluicedConfig.parse(yaml: "ports: [{name: p, device: net_null0}]\nmetrics: {enabled: false, listen: '192.0.2.2:9100'}",
                                    file: "m.yaml")
        #expect(!c.metrics.enabled)
        #expect(c.metrics.listen.description == "192.0.2.2:9100")
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
        ("ports: [{name: p, device: net_null0}]\nworkers: {icmp_errors_per_second: -1}", "workers.icmp_errors_per_second",
         "out of range"),
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
        ("ports: [{name: p, device: net_null0}]\ncontrol: {socket: run/s.sock}", "control.socket", "absolute path"),
        ("ports: [{name: p, device: net_null0}]\ncontrol: {mode: '0999'}", "control.mode", "octal file mode"),
        ("ports: [{name: p, device: net_null0}]\ncontrol: {max_clients: 0}", "control.max_clients", "out of range"),
        ("ports: [{name: p, device: net_null0}]\ncontrol: {owner: ''}", "control.owner", "user name"),
        ("ports: [{name: p, device: net_null0}]\ncontrol: {enabled: maybe}", "control.enabled", "true or false"),
        ("ports: [{name: p, device: net_null0}]\ncontrol: {port: 1}", "control.port", "unknown field"),
        ("ports: [{name: p, device: net_null0}]\nmetrics: {listen: 'localhost:9469'}", "metrics.listen", "not ADDRESS:PORT"),
        ("ports: [{name: p, device: net_null0}]\nmetrics: {listen: '127.0.0.1'}", "metrics.listen", "not ADDRESS:PORT"),
        ("ports: [{name: p, device: net_null0}]\nmetrics: {listen: '127.0.0.1:70000'}", "metrics.listen", "not ADDRESS:PORT"),
        ("ports: [{name: p, device: net_null0}]\nmetrics: {listen: '::1:9469'}", "metrics.listen", "not ADDRESS:PORT"),
        ("ports: [{name: p, device: net_null0}]\nmetrics: {enabled: yes}", "metrics.enabled", "true or false"),
        ("ports: [{name: p, device: net_null0}]\nmetrics: {port: 9469}", "metrics.port", "unknown field"),
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

    @Test func controlSection() throws {
        let c = try SluicedConfig.parse(yaml: """
            ports: [{name: p, device: net_null0}]
            control: {socket: /run/x/s.sock, owner: root, group: "0", mode: "0600", max_clients: 4, idle_timeout_s: 5}
            """, file: "t.yaml")
        #expect(c.control.socket == "/run/x/s.sock")
        #expect(c.control.owner == "root" && c.control.group == "0")
        #expect(c.control.mode == 0o600 && c.control.maxClients == 4 && c.control.idleTimeoutSeconds == 5)
        #expect(c.control.isExplicit && c.control.enabled)
        let d = try SluicedConfig.parse(yaml: "ports: [{name: p, device: net_null0}]", file: "t.yaml")
        #expect(d.control.socket == ControlConfig.defaultSocket && d.control.mode == 0o660 && !d.control.isExplicit)
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

let serviceYAML = """
ports:
  - name: lan0
    device: net_af_packet0,iface=veth-lb
    addresses: ["192.0.2.2/24", "2001:db8::2/64"]
  - name: lan1
    device: net_af_packet1,iface=veth-be
    addresses: ["198.51.100.1/24"]
routes:
  - { prefix: 203.0.113.0/24, via: 198.51.100.254, port: lan1 }
flows: { capacity: 65536, hash_seed: "000102030405060708090a0b0c0d0e0f" }
neighbors: [{ address: 198.51.100.11, mac: "02:00:00:00:be:11" }]
vips:
  - { address: 192.0.2.10, port: lan0 }
  - { address: "2001:db8::10", port: lan0 }
services:
  - name: web
    vip: 192.0.2.10
    protocol: tcp
    port: 80
    backends:
      - { address: 198.51.100.11, port: 8080 }
      - { address: 198.51.100.12, port: 8080, weight: 3 }
  - name: dns-all-ports
    vip: 192.0.2.10
    protocol: udp
    mode: fullnat
    source_pool: [198.51.100.200]
    maglev_size: 251
    backends:
      - { address: 203.0.113.5 }
  - name: pods
    vip: "2001:db8::10"
    protocol: tcp
    port: 443
    mode: vxlan
    mss_clamp: 1400
    backends:
      - { address: "2001:db8:1::5", port: 8443, vtep: 198.51.100.21, vni: 42, inner_mac: "02:42:0a:f4:01:05", weight: 0 }
"""

@Suite struct ServiceConfigLoading {
    @Test func servicesRoutesAndFlowsParse() throws {
        let c = try SluicedConfig.parse(yaml: serviceYAML, file: "s.yaml")
        #expect(c.ports[0].addresses == [IPPrefix("192.0.2.2/24")!, IPPrefix("2001:db8::2/64")!])
        #expect(c.routes == [RouteConfig(prefix: IPPrefix("203.0.113.0/24")!, via: IPAddress("198.51.100.254")!, port: "lan1")])
        #expect(c.flows.capacity == 65536)
        #expect(c.flows.hashSeed == Array(0...15))
        #expect(c.neighbors.count == 1 && c.neighbors[0].mac == MACAddress("02:00:00:00:be:11"))
        #expect(c.services.count == 3)
        let web = c.services[0]
        #expect(web.method == .dnat && web.proto == .tcp && web.port == 80 && web.maglevSize == 65537)
        #expect(web.backends[1] == BackendConfig(address: IPAddress("198.51.100.12")!, port: 8080, weight: 3))
        let dns = c.services[1]
        #expect(dns.port == 0 && dns.method == .fullnat && dns.maglevSize == 251 && dns.backends[0].port == 0)
        #expect(dns.sourcePool == [IPAddress("198.51.100.200")!])
        let pods = c.services[2]
        #expect(pods.method == .vxlan && pods.mssClamp == 1400)
        #expect(pods.backends[0].vtep == IPAddress("198.51.100.21") && pods.backends[0].vni == 42 && pods.backends[0].weight == 0)
    }

    @Test func prefixContainment() {
        let p = IPPrefix("192.0.2.0/24")!
        #expect(p.contains(IPAddress("192.0.2.200")!))
        #expect(!p.contains(IPAddress("192.0.3.1")!))
        #expect(!p.contains(IPAddress("2001:db8::1")!))
        #expect(IPPrefix("0.0.0.0/0")!.contains(IPAddress("203.0.113.1")!))
        let q = IPPrefix("2001:db8::/96")!
        #expect(q.contains(IPAddress("2001:db8::ffff:1")!))
        #expect(!q.contains(IPAddress("2001:db8::1:0:0")!))
        #expect(IPPrefix("2001:db8::1/128")!.contains(IPAddress("2001:db8::1")!))
        #expect(IPPrefix("192.0.2.0/33") == nil && IPPrefix("192.0.2.0") == nil && IPPrefix("192.0.2.0/+8") == nil)
    }

    static let base = """
    ports: [{name: p, device: net_null0, addresses: ["192.0.2.2/24"]}]
    vips: [{address: 192.0.2.10, port: p}]

    """

    @Test(arguments: [
        ("services: [{name: s, vip: 192.0.2.11, protocol: tcp, port: 80, backends: []}]", "services[0].vip", "not owned"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: icmp, backends: []}]", "services[0].protocol", "not one of"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80}]", "services[0].backends", "required field missing"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 70000, backends: []}]", "services[0].port", "out of range"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80, mode: dsr, backends: []}]", "services[0].mode", "not one of"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80, maglev_size: 65536, backends: []}]", "services[0].maglev_size", "not a prime"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80, mode: fullnat, backends: []}]", "services[0].source_pool", "at least one"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80, backends: [{address: '2001:db8::1'}]}]", "services[0].backends[0].address", "address family"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80, backends: [{address: 198.51.100.1, weight: -1}]}]", "services[0].backends[0].weight", "out of range"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80, backends: [{address: 198.51.100.1}, {address: 198.51.100.1}]}]", "services[0].backends[1]", "listed twice"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80, backends: [{address: 198.51.100.1, port: 0}]}]", "services[0].backends[0].port", "only allowed for all-ports"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80, mode: vxlan, backends: [{address: 10.0.0.1}]}]", "services[0].backends[0].vtep", "required for vxlan"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80, backends: [{address: 10.0.0.1, vni: 5}]}]", "services[0].backends[0].vni", "only vxlan"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80, backends: []}, {name: s, vip: 192.0.2.10, protocol: udp, port: 80, backends: []}]", "services[1].name", "duplicate"),
        ("services: [{name: s, vip: 192.0.2.10, protocol: tcp, port: 80, backends: []}, {name: t, vip: 192.0.2.10, protocol: tcp, port: 80, backends: []}]", "services[1].port", "already service 's'"),
        ("routes: [{prefix: 203.0.113.0/24, via: 198.51.100.1, port: p}]", "routes[0].via", "not inside"),
        ("routes: [{prefix: 203.0.113.0/24, via: 192.0.2.1, port: q}]", "routes[0].port", "no port named"),
        ("routes: [{prefix: '2001:db8::/32', via: 192.0.2.1, port: p}]", "routes[0].via", "address family"),
        ("routes: [{prefix: 203.0.113.0, via: 192.0.2.1, port: p}]", "routes[0].prefix", "prefix length"),
        ("flows: {hash_seed: '00'}", "flows.hash_seed", "32 hex digits"),
        ("flows: {capacity: 10}", "flows.capacity", "out of range"),
        ("neighbors: [{address: 192.0.2.9}]", "neighbors[0].mac", "required field missing"),
        ("neighbors: [{address: 192.0.2.9, mac: 'ff:ff:ff:ff:ff:ff'}]", "neighbors[0].mac", "multicast"),
    ] as [(String, String, String?)])
    func brokenServiceConfigIsRejected(yaml: String, field: String, reason: String?) {
        do {
            _ = try SluicedConfig.parse(yaml: Self.base + yaml, file: "bad.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.field == field, "\(error)")
            if let reason { #expect(error.reason.contains(reason), "\(error)") }
        }
    }
}
