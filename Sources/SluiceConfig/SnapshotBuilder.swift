import SluiceConntrack
import SluiceCore
import SluiceDataPlane
import SluiceMaglev

#if canImport(Glibc)
import Glibc
#endif

extension IPAddress {
    /// The form shared tables use: IPv4-mapped for IPv4 (RFC 4291 §2.5.5.2).
    public var mapped: IPv6Address {
        switch self {
        case .v4(let a): IPv6Address(ipv4Mapped: a.value)
        case .v6(let a): a
        }
    }
}

extension IPPrefix {
    public var addressPrefix: AddressPrefix {
        switch self {
        case .v4(let a, let n): AddressPrefix(ipv4: a, length: n)
        case .v6(let a, let n): AddressPrefix(network: a, length: n)
        }
    }
}

extension SluicedConfig {
    /// Builds what the workers read from this configuration, given each port's MAC (the
    /// configured override or the device's). Every backend must be reachable: through a port
    /// whose address prefix holds it (or its VTEP), or through a route.
    ///
    /// `previous` is the snapshot the workers run now, if any: services and backends that are in
    /// both keep their stable ids (`StableIDs`), so established flows stay on their backends.
    /// `portMTUs`: each port's MTU as its device was set up (a port without `mtu` keeps its
    /// device's, e.g. the kernel interface's under af_packet / af_xdp); nil: `mtu`, else 1500.
    public func makeSnapshot(portMACs: [MACAddress], portMTUs: [Int]? = nil, file: String = "config",
                             previous: DataPlaneSnapshot? = nil) throws(ConfigError) -> DataPlaneSnapshot {
        precondition(portMACs.count == ports.count && (portMTUs?.count ?? ports.count) == ports.count)
        var routingEntries: [Routing.Entry] = []
        var contexts: [PortContext] = []
        for (i, port) in ports.enumerated() {
            let base = ownedAddresses(portIndex: i, portMAC: portMACs[i])
            var v4 = base.ipv4Addresses
            var v6 = base.ipv6Addresses
            for prefix in port.addresses {
                switch prefix {
                case .v4(let a, _) where !v4.contains(where: { $0.0 == a }): v4.append((a, portMACs[i]))
                case .v6(let a, _) where !v6.contains(where: { $0.0 == a }): v6.append((a, portMACs[i]))
                default: break
                }
                routingEntries.append(Routing.Entry(prefix: prefix.addressPrefix, port: UInt16(i), gateway: nil))
            }
            let self4 = port.addresses.first(where: { $0.address.isIPv4 })?.address.mapped ?? .unspecified
            let self6 = port.addresses.first(where: { !$0.address.isIPv4 })?.address.mapped ?? .unspecified
            contexts.append(PortContext(mac: portMACs[i], owned: OwnedAddresses(portMAC: portMACs[i], ipv4: v4, ipv6: v6),
                                        selfIPv4: self4, selfIPv6: self6,
                                        connected: port.addresses.map(\.addressPrefix),
                                        mtu: portMTUs?[i] ?? port.mtu ?? 1500))
        }
        for route in routes {
            let portIndex = ports.firstIndex { $0.name == route.port }!
            routingEntries.append(Routing.Entry(prefix: route.prefix.addressPrefix, port: UInt16(portIndex),
                                                gateway: route.via.mapped))
        }
        // full-NAT sources are ours: answered for (ARP / NDP) on the port whose prefix holds them,
        // so backends on that segment can reach them.
        for (s, service) in services.enumerated() where service.method == .fullnat {
            for (i, source) in service.sourcePool.enumerated() {
                let mapped = source.mapped
                guard let p = contexts.firstIndex(where: { c in c.connected.contains { $0.contains(mapped) } }) else {
                    throw ConfigError(file: file, field: "services[\(s)].source_pool[\(i)]",
                                      reason: "\(source) is in no port's address prefix")
                }
                if ports.contains(where: { $0.addresses.contains { $0.address.mapped == mapped } }) {
                    throw ConfigError(file: file, field: "services[\(s)].source_pool[\(i)]",
                                      reason: "\(source) is a port's own address (ports[].addresses)")
                }
                if services.contains(where: { $0.vip.mapped == mapped }) {
                    throw ConfigError(file: file, field: "services[\(s)].source_pool[\(i)]",
                                      reason: "\(source) is also a VIP")
                }
                let owned = contexts[p].owned
                var v4 = owned.ipv4Addresses, v6 = owned.ipv6Addresses
                switch source {
                case .v4(let a) where !v4.contains(where: { $0.0 == a }): v4.append((a, portMACs[p]))
                case .v6(let a) where !v6.contains(where: { $0.0 == a }): v6.append((a, portMACs[p]))
                default: break
                }
                let c = contexts[p]
                contexts[p] = PortContext(mac: c.mac, owned: OwnedAddresses(portMAC: c.mac, ipv4: v4, ipv6: v6),
                                          selfIPv4: c.selfIPv4, selfIPv6: c.selfIPv6, connected: c.connected, mtu: c.mtu)
            }
        }
        let routing = Routing(entries: routingEntries)
        let now = SluicedConfig.monotonicSeconds()
        // No flow outlives the longest timeout: an id unused that long may name something else.
        let quarantine = UInt64(FlowState.allCases.map { FlowTimeouts.default[$0] }.max() ?? 0)
        let previousServices = previous?.services.services ?? []
        let identities = services.map { service in
            ServiceIdentity(vip: service.vip.mapped, proto: service.proto.number, port: service.port,
                            mode: SluicedConfig.serviceMode(service.method).rawValue,
                            sourcePool: service.method == .fullnat ? service.sourcePool.map(\.mapped) : [])
        }
        // Backend ids per service identity, kept while the service is live or remembered (a
        // service that leaves and returns within the quarantine gets its backend ids back too).
        let registries = previous?.services.backendRegistries ?? [:]
        var nextRegistries: [ServiceIdentity: StableIDs<BackendIdentity>] = [:]
        let serviceIDs: (ids: [UInt16], next: StableIDs<ServiceIdentity>)
        do {
            serviceIDs = try (previous?.services.serviceIDs ?? StableIDs()).assigning(identities, now: now,
                                                                                      quarantine: quarantine)
        } catch {
            throw ConfigError(file: file, field: "services", reason: "more than 65535 services")
        }
        var built: [Service] = []
        for (s, service) in services.enumerated() {
            var targets: [BackendTarget] = []
            var maglevBackends: [MaglevBackend] = []
            for (b, backend) in service.backends.enumerated() {
                let path = "services[\(s)].backends[\(b)]"
                let reach = backend.vtep ?? backend.address
                guard let hop = routing.nextHop(reach.mapped) else {
                    throw ConfigError(file: file, field: backend.vtep == nil ? "\(path).address" : "\(path).vtep",
                                      reason: "\(reach) is in no port's address prefix and no route reaches it")
                }
                if backend.vtep != nil {
                    let port = contexts[Int(hop.port)]
                    guard (reach.isIPv4 ? port.selfIPv4 : port.selfIPv6) != .unspecified else {
                        throw ConfigError(file: file, field: "\(path).vtep",
                                          reason: "port \(ports[Int(hop.port)].name) has no \(reach.isIPv4 ? "IPv4" : "IPv6") address to send VXLAN from")
                    }
                }
                targets.append(BackendTarget(address: backend.address.mapped, port: backend.port, weight: backend.weight,
                                             egressPort: hop.port, nextHop: hop.hop, vtep: backend.vtep?.mapped ?? .unspecified,
                                             vni: backend.vni ?? 0, innerMAC: backend.innerMAC ?? .zero))
                switch backend.address {
                case .v4(let a): maglevBackends.append(MaglevBackend(address: a, port: backend.port, weight: backend.weight))
                case .v6(let a): maglevBackends.append(MaglevBackend(address: a, port: backend.port, weight: backend.weight))
                }
            }
            let identity = identities[s]
            let before = registries[identity]
                ?? previousServices.first { $0.id == serviceIDs.ids[s] && $0.identity == identity }?.backendIDs
            let backendIDs: (ids: [UInt16], next: StableIDs<BackendIdentity>)
            do {
                backendIDs = try (before ?? StableIDs()).assigning(targets.map(\.identity), now: now,
                                                                   quarantine: quarantine)
                nextRegistries[identity] = backendIDs.next
            } catch {
                throw ConfigError(file: file, field: "services[\(s)].backends", reason: "more than 65535 backends")
            }
            for i in targets.indices { targets[i].id = backendIDs.ids[i] }
            let maglev: MaglevTable
            do {
                maglev = try MaglevTable(backends: maglevBackends, size: service.maglevSize)
            } catch {
                throw ConfigError(file: file, field: "services[\(s)]", reason: "cannot build the Maglev table: \(error)")
            }
            let mode = SluicedConfig.serviceMode(service.method)
            built.append(Service(name: service.name, mode: mode, vip: service.vip.mapped, proto: service.proto.number,
                                 port: service.port, backends: targets, maglev: maglev, mssClamp: service.mssClamp ?? 0,
                                 sourcePool: service.sourcePool.map(\.mapped), id: serviceIDs.ids[s],
                                 backendIDs: backendIDs.next))
        }
        guard let seed = FlowHashSeed(bytes: flows.hashSeed) else {
            throw ConfigError(file: file, field: "flows.hash_seed", reason: "must be 16 bytes")
        }
        // Metrics: each (service, backend) keeps its counter record from the previous snapshot.
        let pairs = built.map { service in
            service.backends.map { BackendCounterRecords.Key(service: service.identity, backend: $0.identity) }
        }
        let backendRecords: BackendCounterRecords.Assignment
        do {
            backendRecords = try (previous?.backendCounters.registry ?? BackendCounterRecords())
                .assigning(pairs, now: now, quarantine: quarantine)
        } catch {
            let needed = switch error { case .exhausted(let n): n }
            throw ConfigError(file: file, field: "services",
                              reason: "\(needed) backends in all, counting those removed less than \(quarantine) s ago; "
                                  + "per-backend counters hold at most \(WorkerCounters.backendSlots)")
        }
        for retired in serviceIDs.next.retired where nextRegistries[retired.identity] == nil {
            if let registry = registries[retired.identity] { nextRegistries[retired.identity] = registry }
        }
        return DataPlaneSnapshot(ports: contexts, services: built, routing: routing, hasher: FlowHasher(seed: seed),
                                 serviceIDs: serviceIDs.next, backendRegistries: nextRegistries,
                                 backendRecords: backendRecords)
    }

    static func serviceMode(_ method: ForwardingMethod) -> ServiceMode {
        switch method {
        case .dnat: .dnat
        case .vxlan: .vxlan
        case .fullnat: .fullnat
        }
    }

    /// CLOCK_MONOTONIC seconds: the clock of id quarantine (not the workers' TSC ticks).
    static func monotonicSeconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec)
    }
}
