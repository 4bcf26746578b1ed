import SluiceCore
import SluiceMaglev
import SluiceConntrack

/// What the pipeline needs besides the packet, for one worker and one burst. Trivial to copy
/// (no stored references, only unmanaged ones):
/// references are unmanaged (the worker keeps the objects alive for the whole loop), the flow
/// table is a view (a struct of pointers).
public struct PipelineContext {
    public var snapshot: Unmanaged<DataPlaneSnapshot>
    public var neighbors: Unmanaged<NeighborTable>
    public var flows: FlowTableView
    public var counters: Unmanaged<WorkerCounters>
    /// Where first fragments went (shared by the workers).
    public var fragments: Unmanaged<FragmentTable>
    /// Clients' next hops found unresolved, for the resolver (shared by the workers).
    public var neighborMisses: Unmanaged<NeighborMisses>
    /// Coarse time in the flow table's ticks (seconds), read once per burst.
    public var now: UInt32
    /// Outer IPv4 identification for VXLAN, per worker.
    public var ipID: UInt16 = 0
    /// Bit i set: port i computes IPv4 header checksums on TX (the VXLAN outer header's is then
    /// left to it: `PacketOutput.ipv4ChecksumOffload`).
    public var txIPv4ChecksumPorts: UInt64 = 0
    /// Where new flows' reverse entries wait for the end of the burst (nil: inserted at once).
    /// See `DeferredReverseEntries`.
    public var deferredReverse: UnsafeMutablePointer<DeferredReverseEntries>?
    /// The ICMP errors this worker may still originate this second: towards clients (which any
    /// sender to a VIP can provoke) and towards backends (which only replies of known flows
    /// can), kept apart so that a flood of oversized packets to a VIP cannot starve the
    /// backends' path MTU discovery.
    public var icmpErrorsToClients = ICMPErrorBudget(perSecond: ICMPErrorBudget.defaultPerSecond)
    public var icmpErrorsToBackends = ICMPErrorBudget(perSecond: ICMPErrorBudget.defaultPerSecond)

    /// Both ICMP error budgets at `perSecond` each.
    public mutating func limitICMPErrors(perSecond: Int) {
        icmpErrorsToClients = ICMPErrorBudget(perSecond: perSecond)
        icmpErrorsToBackends = ICMPErrorBudget(perSecond: perSecond)
    }

    public init(snapshot: DataPlaneSnapshot, neighbors: NeighborTable, flows: FlowTableView,
                counters: WorkerCounters, now: UInt32, fragments: FragmentTable = .standalone,
                neighborMisses: NeighborMisses = .standalone) {
        // Unretained like the others: the context stays trivial, so passing or copying it never
        // touches a reference count (the caller keeps every table alive).
        self.fragments = .passUnretained(fragments)
        self.neighborMisses = .passUnretained(neighborMisses)
        self.snapshot = .passUnretained(snapshot)
        self.neighbors = .passUnretained(neighbors)
        self.flows = flows
        self.counters = .passUnretained(counters)
        self.now = now
    }
}

/// How many ICMP errors a worker originates: RFC 4443 §2.4(f) requires a node to limit the
/// rate of the ICMPv6 errors it sends (RFC 1812 §4.3.2.8 recommends it for ICMP), so that a
/// flood of packets that each earn one (too big for the egress port) cannot turn the balancer
/// into a flood of errors. `perSecond` per worker (a node of N workers sends up to N times it),
/// refilled when the coarse clock's second changes (at most twice that in a second that
/// straddles two); 0 sends none.
public struct ICMPErrorBudget: Sendable {
    /// As Linux's `net.ipv4.icmp_msgs_per_sec`.
    public static let defaultPerSecond = 1000
    public let perSecond: Int
    @usableFromInline var left: Int
    @usableFromInline var second: UInt32 = 0

    public init(perSecond: Int) {
        self.perSecond = perSecond
        left = perSecond
    }

    /// Takes one error from the budget of second `now`; false when none is left.
    @inlinable
    public mutating func take(now: UInt32) -> Bool {
        if now != second {
            second = now
            left = perSecond
        }
        guard left > 0 else { return false }
        left -= 1
        return true
    }
}

/// New flows' reverse entries (backend → client, dnat and vxlan), kept back until the end of
/// the burst. Inserting one at once costs two cache misses on a table of a million flows — its
/// bucket and its slot, in a part of the table nothing prefetched — and `insert`'s sequentially
/// consistent stores wait for them: profiled in memory (bench/pipeline-bench, 1M SYNs), the
/// reverse insert was 58 % of a new flow's time. Kept back, its bucket is prefetched when the
/// flow is created, its slot when the burst ends (`commit`), and the misses overlap the rest of
/// the burst, as the forward entries' do (VPP's two-pass pattern).
///
/// Invariant: every entry is inserted before any frame of its burst leaves (the worker commits
/// before a mid-burst transmit and at the end of the burst), so a backend's reply can never
/// arrive before the entry that lets it back. Another worker that meets the same new flow (a
/// client SYN that its lookup or its racing insert finds ours for) inserts the reverse entry
/// too, under the same rule, so this holds across workers. Full-NAT return entries are never deferred: their insert is what reserves
/// the source port.
public struct DeferredReverseEntries: ~Copyable {
    @usableFromInline
    struct Entry {
        @usableFromInline var key: ConntrackKey
        @usableFromInline var hash: UInt64
        @usableFromInline var value: FlowValue
        @usableFromInline var event: FlowEvent

        @inlinable init(key: ConntrackKey, hash: UInt64, value: FlowValue, event: FlowEvent) {
            self.key = key
            self.hash = hash
            self.value = value
            self.event = event
        }
    }
    @usableFromInline let entries: UnsafeMutablePointer<Entry>
    public let capacity: Int
    /// Entries kept back now.
    @usableFromInline var kept = 0
    @inlinable public var count: Int { kept }
    /// Entries committed since the last `takeLost()` that found the table full.
    @usableFromInline var lost = 0

    /// `capacity`: the burst size (when it is full, what is kept is committed early).
    public init(capacity: Int) {
        precondition(capacity >= 1, "DeferredReverseEntries needs room for one entry")
        self.capacity = capacity
        entries = .allocate(capacity: capacity)
    }

    deinit { entries.deallocate() }

    /// Keeps an entry back and prefetches its bucket. When full, the entries kept so far go in
    /// first (in order: of two entries with one key, the earlier wins, as inserted at once).
    @inlinable @inline(__always)
    mutating func keep(_ key: ConntrackKey, hash: UInt64, value: FlowValue, event: FlowEvent, flows: FlowTableView,
                       now: UInt32) {
        if kept == capacity { commit(into: flows, now: now) }
        (entries + kept).initialize(to: Entry(key: key, hash: hash, value: value, event: event))
        kept &+= 1
        flows.prefetch(hash: hash)
    }

    /// Inserts every entry kept back: first the slot lines (their buckets' headers were
    /// prefetched when the entries were kept), then the inserts.
    @inlinable
    public mutating func commit(into flows: FlowTableView, now: UInt32) {
        let n = kept
        guard n > 0 else { return }
        for i in 0..<n { flows.prefetchEntry(hash: entries[i].hash) }
        for i in 0..<n {
            let e = entries[i]
            if case .full = flows.insert(e.key, hash: e.hash, value: e.value, event: e.event, now: now) { lost &+= 1 }
        }
        kept = 0
    }

    /// The entries lost to a full table since the last call (for `Counter.reverseEntriesLost`).
    @inlinable
    public mutating func takeLost() -> Int {
        defer { lost = 0 }
        return lost
    }
}

/// One packet's fate when it is not simply sent back where it came from.
public struct PacketOutput {
    /// The port to transmit on (starts as the ingress port).
    public var port: Int
    /// Bytes prepended in front of the original frame start (VXLAN encapsulation); the frame now
    /// begins at `p - prepended`. Negative when leading bytes were removed (decapsulation).
    public var prepended: Int = 0
    /// Non-zero: the frame's IPv4 header at this offset (its Ethernet header's length) has a zero
    /// checksum for the port to compute (TX offload, a port in `txIPv4ChecksumPorts`).
    public var ipv4ChecksumOffload: Int = 0

    @inlinable public init(port: Int) { self.port = port }
}

/// How a flow-table entry names its service and backend — by their stable ids (`StableIDs`), so
/// that a new snapshot keeps established flows on their backends — and what the reverse entry
/// needs to restore the VIP side. Forward entries (zone 0) are keyed on the client's 5-tuple; reverse
/// entries (zone 1) on the backend's reply 5-tuple.
@usableFromInline
enum FlowBinding {
    @usableFromInline static let forwardZone: UInt16 = 0
    @usableFromInline static let reverseZone: UInt16 = 1

    @inlinable @inline(__always)
    static func value(service: Int, backend: Int, vipPort: UInt16, ingress: Int) -> FlowValue {
        FlowValue(backend: UInt32(truncatingIfNeeded: service) << 16 | UInt32(truncatingIfNeeded: backend),
                  aux: UInt32(vipPort) | UInt32(truncatingIfNeeded: ingress) << 16)
    }
    @inlinable @inline(__always) static func service(_ v: FlowValue) -> Int { Int(v.backend >> 16) }
    @inlinable @inline(__always) static func backend(_ v: FlowValue) -> Int { Int(v.backend & 0xFFFF) }
    @inlinable @inline(__always) static func vipPort(_ v: FlowValue) -> UInt16 { UInt16(truncatingIfNeeded: v.aux) }
    @inlinable @inline(__always) static func ingress(_ v: FlowValue) -> Int { Int(v.aux >> 16) }

    // full-NAT. Forward entries (zone 0): `backend` as above, `aux` = source port | pool index << 16.
    // Return entries (zone 2, keyed on backend → pool address:port): `backend` = the forward
    // entry's slot, `aux` = service id << 16 | the forward entry's generation tag; the client's
    // address and port are read from the forward entry's key, so IPv6 clients fit as well.
    @usableFromInline static let fullNATReturnZone: UInt16 = 2

    @inlinable @inline(__always)
    static func fullNATValue(service: Int, backend: Int, source: FullNATSource) -> FlowValue {
        FlowValue(backend: UInt32(truncatingIfNeeded: service) << 16 | UInt32(truncatingIfNeeded: backend),
                  aux: UInt32(source.port) | UInt32(truncatingIfNeeded: source.poolIndex) << 16)
    }
    @inlinable @inline(__always) static func fullNATSource(_ v: FlowValue) -> FullNATSource {
        FullNATSource(poolIndex: Int(v.aux >> 16), port: UInt16(truncatingIfNeeded: v.aux))
    }
    @inlinable @inline(__always)
    static func fullNATReturnValue(forward: FlowHandle, service: Int) -> FlowValue {
        FlowValue(backend: UInt32(truncatingIfNeeded: forward.slot),
                  aux: UInt32(truncatingIfNeeded: service) << 16 | UInt32(forward.generationTag))
    }
}

/// The source a full-NAT flow was given: `Service.source(poolIndex)`:`port`.
public struct FullNATSource: Equatable, Sendable {
    public var poolIndex: Int
    public var port: UInt16
    @inlinable public init(poolIndex: Int, port: UInt16) {
        self.poolIndex = poolIndex
        self.port = port
    }

    /// Source ports handed out: 1024...65535 (below are the well-known ports).
    public static let firstPort: UInt32 = 1024
    public static let portCount: UInt32 = 65536 - 1024
    /// Candidates tried for one new flow before it is dropped (`no_source_port`).
    public static let attempts = 32

    /// Candidate `attempt` for a flow with keyed hash `hash`: RFC 6056 §3.3.3 ("Simple Hash-Based
    /// Port Selection"): a keyed per-flow offset, then further ports by a keyed odd step (not
    /// +1: runs of taken neighbours, which consecutive probing creates, are skipped at once);
    /// successive candidates also move to the next pool address. Uniqueness is not assumed: the
    /// return entry's insert, atomic in the shared flow table, is what reserves a candidate.
    @inlinable @inline(__always)
    public static func candidate(hash: UInt64, attempt: Int, poolSize: Int) -> FullNATSource {
        let offset = UInt32(truncatingIfNeeded: hash)
        let pool = Int(truncatingIfNeeded: (hash >> 32) % UInt64(poolSize))
        let step = UInt32(truncatingIfNeeded: hash >> 48) | 1
        return FullNATSource(poolIndex: (pool &+ attempt) % poolSize,
                             port: UInt16(truncatingIfNeeded: firstPort &+ (offset &+ UInt32(truncatingIfNeeded: attempt) &* step) % portCount))
    }
}

/// The per-packet pipeline: parse once, then either answer for an owned address (ARP, NDP,
/// echo), balance a packet to a service VIP towards a backend (Maglev for new flows, the flow
/// table for known ones), or restore a backend's reply to come from the VIP. Everything else is
/// dropped with a reason. In place, no allocation, no lock, no reference counting.
/// A frame after the first stage of the pipeline: parsed, and for TCP/UDP/SCTP its 5-tuple's
/// flow hash computed and its flow-table bucket prefetched.
public struct PreparedFrame {
    public var frame = ParsedFrame()
    /// Why the parser rejected the frame; nil when it was accepted.
    public var reason: DropReason?
    /// The keyed flow hash of the packet's own 5-tuple (0 when not balanced traffic): both the
    /// flow-table hash and the Maglev hash, forward or reverse.
    public var hash: UInt64 = 0

    @inlinable public init() {}
}

public enum PacketPipeline {
    /// Processes one frame: `prepare` then `process(prepared:)`. The worker runs the two stages
    /// over a whole burst instead, so that the bucket prefetches of stage one overlap (VPP's
    /// pattern: the flow table's cache misses, not the code, bound the rate at a million flows).
    @inlinable
    public static func process(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, headroom: Int,
                               ingress: Int, output: inout PacketOutput, context: inout PipelineContext) -> Verdict {
        let prepared = prepare(p, length: length, context: context)
        return process(p, length: &length, capacity: capacity, headroom: headroom, ingress: ingress,
                       prepared: prepared, output: &output, context: &context)
    }

    /// Stage one: parse; for a TCP, UDP or SCTP packet, hash its 5-tuple and prefetch the flow
    /// table's bucket header for that hash.
    /// `ipv4HeaderVerified`: the port verified the IPv4 header checksum and found it good.
    @inlinable
    public static func prepare(_ p: UnsafeMutableRawPointer, length: Int, context: PipelineContext,
                               ipv4HeaderVerified: Bool = false) -> PreparedFrame {
        var prepared = PreparedFrame()
        prepared.reason = FrameParser.parse(UnsafeRawPointer(p), length: length, into: &prepared.frame,
                                            ipv4HeaderVerified: ipv4HeaderVerified)
        let frame = prepared.frame
        let proto = frame.l4Protocol
        if prepared.reason == nil, frame.hasL4Header,
           proto == IPProtocol.tcp || proto == IPProtocol.udp || proto == IPProtocol.sctp {
            prepared.hash = context.snapshot._withUnsafeGuaranteedRef { snapshot in
                frame.isIPv4 ? snapshot.hasher.hash(IPv4FlowKey(packet: p, frame: frame))
                             : snapshot.hasher.hash(IPv6FlowKey(packet: p, frame: frame))
            }
            context.flows.prefetch(hash: prepared.hash)
        }
        return prepared
    }

    /// Stage two, for a frame `prepare` saw in this same buffer.
    @inlinable
    public static func process(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, headroom: Int,
                               ingress: Int, prepared: PreparedFrame, output: inout PacketOutput,
                               context: inout PipelineContext) -> Verdict {
        if let reason = prepared.reason { return .drop(reason) }
        let frame = prepared.frame
        let flowHash = prepared.hash
        return context.snapshot._withUnsafeGuaranteedRef { snapshot in
            let port = snapshot.port(ingress)
            return port.pointee.ownedRef._withUnsafeGuaranteedRef { owned in
                switch frame.etherType {
                case EtherType.arp:
                    learnFromARP(p, frame: frame, port: port, owned: owned, context: context)
                    return FrameDispatcher.respond(p, length: &length, capacity: capacity, frame: frame, owned: owned)
                case EtherType.ipv4:
                    let destination = IPv6Address(ipv4Mapped: p.loadBE32(frame.l3Offset + 16))
                    return dispatchIP(p, length: &length, capacity: capacity, headroom: headroom, frame: frame,
                                      destination: destination, ingress: ingress, port: port, owned: owned,
                                      flowHash: flowHash, snapshot: snapshot, output: &output, context: &context)
                default:
                    if frame.l4Protocol == IPProtocol.icmpv6, frame.hasL4Header, !frame.isFragment {
                        learnFromNeighborDiscovery(p, frame: frame, port: port, owned: owned, context: context)
                        // A solicitation goes to the target's solicited-node group, not to an owned
                        // address: the responder matches it on its target.
                        if p.loadBE8(frame.l4Offset) == ICMPv6Type.neighborSolicitation {
                            return FrameDispatcher.respond(p, length: &length, capacity: capacity, frame: frame, owned: owned)
                        }
                    }
                    let destination = IPv6Address.load(p, frame.l3Offset + 24)
                    return dispatchIP(p, length: &length, capacity: capacity, headroom: headroom, frame: frame,
                                      destination: destination, ingress: ingress, port: port, owned: owned,
                                      flowHash: flowHash, snapshot: snapshot, output: &output, context: &context)
                }
            }
        }
    }

    /// The IP packet to an owned address (a service, or the responder), or a backend's reply.
    @inlinable
    static func dispatchIP(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, headroom: Int,
                           frame: ParsedFrame, destination: IPv6Address, ingress: Int,
                           port: UnsafeMutablePointer<PortContext>, owned: OwnedAddresses, flowHash: UInt64,
                           snapshot: DataPlaneSnapshot, output: inout PacketOutput,
                           context: inout PipelineContext) -> Verdict {
        let proto = frame.l4Protocol
        let balanced = frame.hasL4Header
            && (proto == IPProtocol.tcp || proto == IPProtocol.udp || proto == IPProtocol.sctp)
        let ownerMAC = frame.isIPv4 ? owned.macFor(destination.ipv4Value) : owned.macFor(destination)
        if let ownerMAC {
            if balanced {
                let destinationPort = p.loadBE16(frame.l4Offset + 2)
                if let index = snapshot.services.lookup(vip: destination, proto: proto, port: destinationPort) {
                    // RFC 1812 §5.3.4: a packet received as a link-layer broadcast or multicast is not
                    // forwarded (the VIP is unicast); only a frame sent to the VIP's or the port's MAC.
                    let destinationMAC = MACAddress.load(p, 0)
                    guard !destinationMAC.isMulticast, owned.accepts(destinationMAC, ownerMAC: ownerMAC) else {
                        return .drop(.foreignDestinationMAC)
                    }
                    return snapshot.services.service(index)._withUnsafeGuaranteedRef { service in
                        forward(p, length: &length, capacity: capacity, headroom: headroom, frame: frame,
                                hash: flowHash, service: service, ingress: ingress, snapshot: snapshot,
                                output: &output, context: &context)
                    }
                }
                if snapshot.isFullNATSource(destination) {
                    let destinationMAC = MACAddress.load(p, 0)
                    guard !destinationMAC.isMulticast, owned.accepts(destinationMAC, ownerMAC: ownerMAC) else {
                        return .drop(.foreignDestinationMAC)
                    }
                    return fullNATReturn(p, length: &length, capacity: capacity, frame: frame, hash: flowHash,
                                         snapshot: snapshot, output: &output,
                                         context: &context)
                }
                // Only our own VTEP addresses take VXLAN, never a VIP: a client of a VIP must not be able
                // to inject "replies" into other clients' flows.
                if proto == IPProtocol.udp, destinationPort == snapshot.vxlanPort,
                   destination == port.pointee.selfIPv4 || destination == port.pointee.selfIPv6 {
                    // The inner packet is forwarded: as for the VIP (RFC 1812 §5.3.4), only from a
                    // unicast frame sent to us, like the plain return path's frame to our port MAC.
                    let destinationMAC = MACAddress.load(p, 0)
                    guard !destinationMAC.isMulticast, owned.accepts(destinationMAC, ownerMAC: ownerMAC) else {
                        return .drop(.foreignDestinationMAC)
                    }
                    return decapsulatedReturn(p, length: &length, frame: frame, snapshot: snapshot,
                                              output: &output, context: &context)
                }
            }
            if frame.isFragment, frame.fragmentOffset != 0,
               proto == IPProtocol.tcp || proto == IPProtocol.udp || proto == IPProtocol.sctp {
                let destinationMAC = MACAddress.load(p, 0)
                guard !destinationMAC.isMulticast, owned.accepts(destinationMAC, ownerMAC: ownerMAC) else {
                    return .drop(.foreignDestinationMAC)
                }
                return followFragment(p, length: &length, capacity: capacity, headroom: headroom, frame: frame,
                                      toOwnedAddress: true, snapshot: snapshot, output: &output, context: &context)
            }
            if frame.hasL4Header, frame.l4Protocol == (frame.isIPv4 ? IPProtocol.icmp : IPProtocol.icmpv6) {
                let type = p.loadBE8(frame.l4Offset)
                if frame.isIPv4 ? ICMPErrorQuote.isIPv4FlowError(type) : ICMPErrorQuote.isIPv6FlowError(type) {
                    // Delivering the error forwards it: as for the VIP (RFC 1812 §5.3.4), only from
                    // a unicast frame sent to the VIP's or the port's MAC.
                    let destinationMAC = MACAddress.load(p, 0)
                    guard !destinationMAC.isMulticast, owned.accepts(destinationMAC, ownerMAC: ownerMAC) else {
                        return .drop(.foreignDestinationMAC)
                    }
                    return deliverICMPError(p, length: &length, headroom: headroom, frame: frame, snapshot: snapshot,
                                            output: &output, context: &context)
                }
            }
            return FrameDispatcher.respond(p, length: &length, capacity: capacity, frame: frame, owned: owned)
        }
        if balanced {
            // A backend's reply is sent to its gateway: our port.
            guard MACAddress.load(p, 0) == port.pointee.mac else { return .drop(.foreignDestinationMAC) }
            return returnPath(p, length: &length, capacity: capacity, frame: frame, hash: flowHash, snapshot: snapshot,
                              output: &output, context: &context)
        }
        if frame.isFragment, frame.fragmentOffset != 0,
           proto == IPProtocol.tcp || proto == IPProtocol.udp || proto == IPProtocol.sctp {
            // A later fragment of a backend's reply, to its gateway like the first.
            guard MACAddress.load(p, 0) == port.pointee.mac else { return .drop(.foreignDestinationMAC) }
            return followFragment(p, length: &length, capacity: capacity, headroom: headroom, frame: frame,
                                  toOwnedAddress: false, snapshot: snapshot, output: &output, context: &context)
        }
        return .drop(.notOwnedAddress)
    }

    // MARK: Forward: client → backend

    @inlinable
    static func forward(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, headroom: Int,
                        frame: ParsedFrame, hash: UInt64, service: Service, ingress: Int,
                        snapshot: DataPlaneSnapshot, output: inout PacketOutput,
                        context: inout PipelineContext) -> Verdict {
        let counters = context.counters
        // Safe: parse accepted the frame and its L4 header is present (the caller checked).
        let key = ConntrackKey(packet: p, frame: frame, zone: FlowBinding.forwardZone).unsafelyUnwrapped
        let event = flowEvent(p, frame: frame, reply: false)
        var backendIndex = -1
        var stale: FlowHandle? = nil
        let fullNAT = service.mode == .fullnat
        var source = FullNATSource(poolIndex: -1, port: 0)
        if var handle = context.flows.lookup(key, hash: hash, now: context.now) {
            let v = handle.value
            // A known flow keeps its backend while that backend still exists in this service
            // (weight 0 included: draining lets existing flows finish).
            if FlowBinding.service(v) == Int(service.id), let index = service.backendIndex(id: FlowBinding.backend(v)),
               !fullNAT || FlowBinding.fullNATSource(v).poolIndex < service.sourceCount {
                backendIndex = index
                let before = handle.deadline
                _ = context.flows.update(&handle, event: event, now: context.now)
                // A client SYN on a known flow opens a connection on its 5-tuple again: its reply
                // needs the reverse entry, which may be gone (it expires on its own timeline: the
                // reply direction's last segment is not the connection's) or not in yet (another
                // worker created the flow a moment ago and keeps the entry back to the end of its
                // burst, DeferredReverseEntries). Insert it (an existing entry is left as it is).
                if !fullNAT, event.isOpeningSYN {
                    insertReverse(p, frame: frame, service: service, backendIndex: index, value: v, event: event,
                                  snapshot: snapshot, context: &context)
                }
                if fullNAT {
                    source = FlowBinding.fullNATSource(v)
                    // The return entry lives as long as the forward one and follows the client's
                    // FIN / RST: it is refreshed whenever the forward entry was (at most once a
                    // tick per flow), so neither outlives the other.
                    if handle.deadline != before {
                        refreshFullNATReturn(p, frame: frame, service: service, backendIndex: index, source: source,
                                             event: event, snapshot: snapshot, context: context)
                    }
                }
            } else {
                stale = handle
            }
        }
        if backendIndex < 0 && fullNAT {
            let entry = service.maglev.entry(forHash: hash)
            guard entry != MaglevTable.noBackend else { return .drop(.noBackend) }
            backendIndex = Int(entry)
            switch bindFullNAT(p, frame: frame, key: key, hash: hash, service: service, backendIndex: backendIndex,
                               event: event, stale: stale, snapshot: snapshot, context: context) {
            case .bound(let s):
                source = s
                // Metrics: as for dnat below.
                let slot = snapshot.backendCounters.slot(serviceID: Int(service.id), backend: backendIndex)
                counters._withUnsafeGuaranteedRef {
                    $0.add(stale == nil ? .newFlows : .flowsRebound)
                    if stale == nil { $0.countNewFlow(slot: slot) }
                }
            case .existing(let h):
                guard FlowBinding.service(h.value) == Int(service.id),
                      let index = service.backendIndex(id: FlowBinding.backend(h.value)) else { return .drop(.noSourcePort) }
                backendIndex = index
                source = FlowBinding.fullNATSource(h.value)
            case .exhausted:
                return .drop(.noSourcePort)
            }
        }
        if backendIndex < 0 {
            let entry = service.maglev.entry(forHash: hash)
            guard entry != MaglevTable.noBackend else { return .drop(.noBackend) }
            backendIndex = Int(entry)
            let vipPort = p.loadBE16(frame.l4Offset + 2)
            let value = FlowBinding.value(service: Int(service.id), backend: Int(service.backend(backendIndex).pointee.id),
                                          vipPort: vipPort, ingress: ingress)
            // Its backend left the service: Maglev picks again and the entry is rebound, keeping its state.
            let result = stale.map { context.flows.rebind(key, hash: hash, handle: $0, value: value, now: context.now) }
                ?? context.flows.insert(key, hash: hash, value: value, event: event, now: context.now)
            switch result {
            case .inserted, .replaced:
                // Metrics: a new flow for the worker and for its (service, backend); a rebound one
                // for the worker only (its flow was counted new when it began).
                let slot = snapshot.backendCounters.slot(serviceID: Int(service.id), backend: backendIndex)
                counters._withUnsafeGuaranteedRef {
                    $0.add(stale == nil ? .newFlows : .flowsRebound)
                    if stale == nil { $0.countNewFlow(slot: slot) }
                }
                insertReverse(p, frame: frame, service: service, backendIndex: backendIndex, value: value,
                              event: event, snapshot: snapshot, context: &context)
            case .existing(let h):
                // Another worker inserted it first: follow its choice. Its reverse entry may still
                // be kept back in that worker's burst, and this copy of the packet may reach the
                // backend first: insert it here too (the same key and value; the second insert
                // finds the first), so the reply finds its way back whichever lands first.
                if FlowBinding.service(h.value) == Int(service.id),
                   let index = service.backendIndex(id: FlowBinding.backend(h.value)) {
                    backendIndex = index
                    insertReverse(p, frame: frame, service: service, backendIndex: index, value: h.value,
                                  event: event, snapshot: snapshot, context: &context)
                }
            case .full:
                // Maglev alone still sends this flow to the same backend while the set is unchanged.
                counters._withUnsafeGuaranteedRef { $0.add(.statelessForwards) }
            }
        }
        let backend = service.backend(backendIndex)
        // A first fragment: its later fragments will follow it to this backend (full-NAT: from
        // the flow's pool address) — once it has left (named by its addresses as it came).
        let firstFragmentKey = frame.moreFragments ? fragmentKey(p, frame: frame, snapshot: snapshot) : 0
        let targetPort = backend.pointee.port == 0 ? p.loadBE16(frame.l4Offset + 2) : backend.pointee.port
        let receivedLength = length
        let verdict = transmitToBackend(p, length: &length, capacity: capacity, headroom: headroom, frame: frame,
                                        service: service, backend: backend, targetPort: targetPort, hash: hash,
                                        source: source, snapshot: snapshot, output: &output, context: &context)
        if frame.moreFragments, verdict == .transmit(.forwardToBackend) {
            recordFirstFragment(firstFragmentKey, FragmentTable.Record(
                direction: .toBackend, service: Int(service.id), backend: Int(backend.pointee.id),
                detail: fullNAT ? UInt64(source.poolIndex) : 0), context: context)
        }
        // Metrics: a client packet leaves for its backend.
        if verdict == .transmit(.forwardToBackend) {
            let slot = snapshot.backendCounters.slot(serviceID: Int(service.id), backend: backendIndex)
            counters._withUnsafeGuaranteedRef { $0.countForward(slot: slot, bytes: receivedLength) }
        }
        return verdict
    }

    @usableFromInline
    enum FullNATBinding {
        case bound(FullNATSource)
        /// Another worker created the flow first.
        case existing(FlowHandle)
        case exhausted
    }

    /// A new full-NAT flow: the forward entry with a candidate source (address, port), then its
    /// return entry (backend → source); the return entry's insert is what reserves the source
    /// — if that tuple is taken, the forward entry is withdrawn and the next candidate tried.
    @inline(never) @usableFromInline
    static func bindFullNAT(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, key: ConntrackKey, hash: UInt64,
                            service: Service, backendIndex: Int, event: FlowEvent, stale: FlowHandle?,
                            snapshot: DataPlaneSnapshot, context: PipelineContext) -> FullNATBinding {
        let backend = service.backend(backendIndex)
        let backendPort = backend.pointee.port == 0 ? p.loadBE16(frame.l4Offset + 2) : backend.pointee.port
        let proto = frame.l4Protocol
        guard service.sourceCount > 0 else { return .exhausted }
        var stale = stale
        for attempt in 0..<FullNATSource.attempts {
            let source = FullNATSource.candidate(hash: hash, attempt: attempt, poolSize: service.sourceCount)
            let value = FlowBinding.fullNATValue(service: Int(service.id), backend: Int(backend.pointee.id), source: source)
            let forward: FlowHandle
            let result = stale.map { context.flows.rebind(key, hash: hash, handle: $0, value: value, now: context.now) }
                ?? context.flows.insert(key, hash: hash, value: value, event: event, now: context.now)
            stale = nil
            switch result {
            case .inserted(let h), .replaced(let h, _): forward = h
            case .existing(let h): return .existing(h)
            case .full: return .exhausted
            }
            let (returnKey, returnHash) = fullNATReturnKey(backend: backend, backendPort: backendPort, source: source,
                                                           service: service, proto: proto, snapshot: snapshot)
            switch context.flows.insert(returnKey, hash: returnHash,
                                        value: FlowBinding.fullNATReturnValue(forward: forward, service: Int(service.id)),
                                        event: event, now: context.now) {
            case .inserted, .replaced:
                return .bound(source)
            case .existing:
                context.flows.remove(forward)   // that source is another flow's: try the next one
            case .full:
                context.flows.remove(forward)
                return .exhausted
            }
        }
        return .exhausted
    }

    /// A full-NAT flow's return entry: backend:port → pool address:port, in the return zone.
    @inlinable @inline(__always)
    static func fullNATReturnKey(backend: UnsafeMutablePointer<BackendTarget>, backendPort: UInt16, source: FullNATSource,
                                 service: Service, proto: UInt8, snapshot: DataPlaneSnapshot) -> (ConntrackKey, UInt64) {
        let local = service.source(source.poolIndex)
        if backend.pointee.address.isIPv4Mapped {
            let b = IPv4Address(value: backend.pointee.address.ipv4Value), l = IPv4Address(value: local.ipv4Value)
            return (ConntrackKey(source: b, destination: l, sourcePort: backendPort, destinationPort: source.port,
                                 protocol: proto, zone: FlowBinding.fullNATReturnZone),
                    snapshot.hasher.hash(IPv4FlowKey(source: b, destination: l, sourcePort: backendPort,
                                                     destinationPort: source.port, proto: proto)))
        }
        return (ConntrackKey(source: backend.pointee.address, destination: local, sourcePort: backendPort,
                             destinationPort: source.port, protocol: proto, zone: FlowBinding.fullNATReturnZone),
                snapshot.hasher.hash(IPv6FlowKey(source: backend.pointee.address, destination: local, sourcePort: backendPort,
                                                 destinationPort: source.port, proto: proto)))
    }

    /// Applies a client packet's event to the flow's return entry too (see `forward`). Cold:
    /// at most once a tick per flow.
    @inline(never) @usableFromInline
    static func refreshFullNATReturn(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, service: Service, backendIndex: Int,
                                     source: FullNATSource, event: FlowEvent, snapshot: DataPlaneSnapshot,
                                     context: PipelineContext) {
        let backend = service.backend(backendIndex)
        let backendPort = backend.pointee.port == 0 ? p.loadBE16(frame.l4Offset + 2) : backend.pointee.port
        let (key, hash) = fullNATReturnKey(backend: backend, backendPort: backendPort, source: source, service: service,
                                           proto: frame.l4Protocol, snapshot: snapshot)
        if var handle = context.flows.lookup(key, hash: hash, now: context.now) {
            _ = context.flows.update(&handle, event: event, now: context.now)
        }
    }

    /// The rewrite (and for vxlan, the encapsulation) towards a chosen backend.
    @inlinable
    static func transmitToBackend(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, headroom: Int,
                                  frame: ParsedFrame, service: Service, backend: UnsafeMutablePointer<BackendTarget>,
                                  targetPort: UInt16, hash: UInt64, source: FullNATSource = FullNATSource(poolIndex: -1, port: 0),
                                  snapshot: DataPlaneSnapshot,
                                  output: inout PacketOutput, context: inout PipelineContext) -> Verdict {
        let egress = Int(backend.pointee.egressPort)
        let egressPort = snapshot.port(egress)
        guard let nextHopMAC = context.neighbors._withUnsafeGuaranteedRef({ $0.lookup(backend.pointee.nextHop) }) else {
            return .drop(.neighborUnresolved)
        }
        if service.mode == .vxlan {
            return encapsulate(p, length: &length, capacity: capacity, headroom: headroom, frame: frame,
                               service: service, backend: backend, targetPort: targetPort, hash: hash,
                               egressPort: egressPort, nextHopMAC: nextHopMAC, output: &output, context: &context)
        }
        if frame.l3End - frame.l3Offset > egressPort.pointee.mtu {
            return tooBig(p, length: &length, capacity: capacity, frame: frame, mtu: egressPort.pointee.mtu,
                          output: &output, context: &context)
        }
        if service.mssClamp != 0, frame.hasL4Header, frame.l4Protocol == IPProtocol.tcp {
            _ = TCPMSSClamp.clamp(p, frame: frame, maximum: service.mssClamp)
        }
        let outcome: NATRewrite.Outcome
        if service.mode == .fullnat {
            // Both ends (RFC 2663 §4.1's "twice NAT"): the backend replies to our source, over any route.
            let local = service.source(source.poolIndex)
            outcome = frame.isIPv4
                ? NATRewrite.rewriteIPv4(p, frame: frame, source: IPv4Address(value: local.ipv4Value), sourcePort: source.port,
                                         destination: IPv4Address(value: backend.pointee.address.ipv4Value),
                                         destinationPort: targetPort, decrementTTL: true)
                : NATRewrite.rewriteIPv6(p, frame: frame, source: local, sourcePort: source.port,
                                         destination: backend.pointee.address, destinationPort: targetPort,
                                         decrementHopLimit: true)
        } else {
            outcome = frame.isIPv4
                ? NATRewrite.rewriteIPv4Destination(p, frame: frame, address: IPv4Address(value: backend.pointee.address.ipv4Value),
                                                    port: targetPort, decrementTTL: true)
                : NATRewrite.rewriteIPv6Destination(p, frame: frame, address: backend.pointee.address,
                                                    port: targetPort, decrementHopLimit: true)
        }
        if let reason = dropReason(outcome) { return .drop(reason) }
        nextHopMAC.store(p, 0)
        egressPort.pointee.mac.store(p, 6)
        output.port = egress
        return .transmit(.forwardToBackend)
    }

    /// Records where a first fragment went (`FragmentTable`), after it left: one that was
    /// dropped (too big, no route, …) leaves no record for its later fragments to follow.
    @inline(never) @usableFromInline
    static func recordFirstFragment(_ key: UInt64, _ record: FragmentTable.Record, context: PipelineContext) {
        context.fragments._withUnsafeGuaranteedRef { $0.record(key, record, now: context.now) }
    }

    /// The keyed hash naming a fragmented datagram: (source, destination, protocol, IP
    /// identification) through the flow hasher, the identification in the port fields.
    @inlinable @inline(__always)
    static func fragmentKey(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, snapshot: DataPlaneSnapshot) -> UInt64 {
        let id = frame.fragmentID
        let l3 = frame.l3Offset
        if frame.isIPv4 {
            return snapshot.hasher.hash(IPv4FlowKey(source: IPv4Address(value: p.loadBE32(l3 + 12)),
                                                    destination: IPv4Address(value: p.loadBE32(l3 + 16)),
                                                    sourcePort: UInt16(truncatingIfNeeded: id >> 16),
                                                    destinationPort: UInt16(truncatingIfNeeded: id), proto: frame.l4Protocol))
        }
        return snapshot.hasher.hash(IPv6FlowKey(source: IPv6Address.load(p, l3 + 8), destination: IPv6Address.load(p, l3 + 24),
                                                sourcePort: UInt16(truncatingIfNeeded: id >> 16),
                                                destinationPort: UInt16(truncatingIfNeeded: id), proto: frame.l4Protocol))
    }

    /// A later fragment (no transport header): it goes where its datagram's first fragment went —
    /// to the backend, or back to the client from the VIP — rewritten as that one was, addresses
    /// only (the ports, and the transport checksum over the whole datagram, are in the first
    /// fragment), if that one was seen lately; else it is dropped and counted.
    /// `toOwnedAddress`: it was sent to one of our addresses (a VIP, a full-NAT pool address),
    /// not to a client behind us (a dnat backend's reply).
    @inline(never) @usableFromInline
    static func followFragment(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, headroom: Int,
                               frame: ParsedFrame, toOwnedAddress: Bool, snapshot: DataPlaneSnapshot,
                               output: inout PacketOutput, context: inout PipelineContext) -> Verdict {
        let key = fragmentKey(p, frame: frame, snapshot: snapshot)
        guard let first = context.fragments._withUnsafeGuaranteedRef({ $0.lookup(key, now: context.now) }),
              let serviceIndex = snapshot.services.index(id: first.service) else { return .drop(.fragmentNotHandled) }
        let serviceRef = snapshot.services.service(serviceIndex)
        let fullNAT = serviceRef._withUnsafeGuaranteedRef { $0.mode == .fullnat }
        switch first.direction {
        case .toBackend:
            guard toOwnedAddress else { return .drop(.fragmentNotHandled) }
            return serviceRef._withUnsafeGuaranteedRef { service in
                guard let backendIndex = service.backendIndex(id: first.backend) else { return .drop(.noBackend) }
                var source = FullNATSource(poolIndex: -1, port: 0)
                if fullNAT {
                    // The pool may have shrunk since the first fragment.
                    guard first.detail < UInt64(service.sourceCount) else { return .drop(.fragmentNotHandled) }
                    source = FullNATSource(poolIndex: Int(first.detail), port: 0)
                }
                context.counters._withUnsafeGuaranteedRef { $0.add(.fragmentsFollowed) }
                let receivedLength = length
                let verdict = transmitToBackend(p, length: &length, capacity: capacity, headroom: headroom, frame: frame,
                                                service: service, backend: service.backend(backendIndex), targetPort: 0,
                                                hash: key, source: source, snapshot: snapshot, output: &output,
                                                context: &context)
                // Metrics: a later fragment leaves for its backend (as in `forward`).
                if verdict == .transmit(.forwardToBackend) {
                    let slot = snapshot.backendCounters.slot(serviceID: Int(service.id), backend: backendIndex)
                    context.counters._withUnsafeGuaranteedRef { $0.countForward(slot: slot, bytes: receivedLength) }
                }
                return verdict
            }
        case .toClient:
            // A dnat reply is addressed to the client, a full-NAT one to our pool address; the
            // VIP it leaves from is of the packet's family (see `returnPath`).
            guard toOwnedAddress == fullNAT,
                  serviceRef._withUnsafeGuaranteedRef({ $0.vip.isIPv4Mapped }) == frame.isIPv4 else {
                return .drop(.fragmentNotHandled)
            }
            if fullNAT {
                // The flow's forward entry, as the return entry named it when the first fragment
                // came (`fullNATReturn`): it holds the client and the VIP.
                guard let forward = context.flows.entry(slot: Int(truncatingIfNeeded: first.detail >> 16),
                                                        generationTag: UInt16(truncatingIfNeeded: first.detail)),
                      forward.key.zone == FlowBinding.forwardZone, forward.key.isIPv6 == frame.isIPv6,
                      forward.key.proto == frame.l4Protocol,
                      FlowBinding.service(forward.handle.value) == first.service else { return .drop(.fragmentNotHandled) }
                context.counters._withUnsafeGuaranteedRef { $0.add(.fragmentsFollowed) }
                return leaveForClient(p, length: &length, capacity: capacity, frame: frame, client: forward.key.sourceIPv6,
                                      service: serviceRef, snapshot: snapshot, output: &output, context: &context) { _ in
                    rewriteFullNATReply(p, frame: frame, forward: forward.key)
                }
            }
            context.counters._withUnsafeGuaranteedRef { $0.add(.fragmentsFollowed) }
            let client = frame.isIPv4 ? IPv6Address(ipv4Mapped: p.loadBE32(frame.l3Offset + 16))
                                      : IPv6Address.load(p, frame.l3Offset + 24)
            return leaveForClient(p, length: &length, capacity: capacity, frame: frame, client: client,
                                  service: serviceRef, snapshot: snapshot, output: &output, context: &context) { service in
                rewriteReplySource(p, frame: frame, vip: service.vip, port: 0)
            }
        }
    }

    /// The entry that lets the backend's reply find its way back to the VIP: keyed on the reply's
    /// 5-tuple (backend → client) in the reverse zone. Kept back for the end of the burst when
    /// the context has room (`DeferredReverseEntries`), else inserted now.
    @inlinable
    static func insertReverse(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, service: Service, backendIndex: Int,
                              value: FlowValue, event: FlowEvent, snapshot: DataPlaneSnapshot,
                              context: inout PipelineContext) {
        let backend = service.backend(backendIndex)
        let l3 = frame.l3Offset
        let clientPort = p.loadBE16(frame.l4Offset)
        let backendPort = backend.pointee.port == 0 ? p.loadBE16(frame.l4Offset + 2) : backend.pointee.port
        let key: ConntrackKey
        let hash: UInt64
        if frame.isIPv4 {
            let client = IPv4Address(value: p.loadBE32(l3 + 12))
            let address = IPv4Address(value: backend.pointee.address.ipv4Value)
            key = ConntrackKey(source: address, destination: client, sourcePort: backendPort,
                               destinationPort: clientPort, protocol: frame.l4Protocol, zone: FlowBinding.reverseZone)
            hash = snapshot.hasher.hash(IPv4FlowKey(source: address, destination: client, sourcePort: backendPort,
                                                    destinationPort: clientPort, proto: frame.l4Protocol))
        } else {
            let client = IPv6Address.load(p, l3 + 8)
            key = ConntrackKey(source: backend.pointee.address, destination: client, sourcePort: backendPort,
                               destinationPort: clientPort, protocol: frame.l4Protocol, zone: FlowBinding.reverseZone)
            hash = snapshot.hasher.hash(IPv6FlowKey(source: backend.pointee.address, destination: client,
                                                    sourcePort: backendPort, destinationPort: clientPort,
                                                    proto: frame.l4Protocol))
        }
        if let deferred = context.deferredReverse {
            deferred.pointee.keep(key, hash: hash, value: value, event: event, flows: context.flows, now: context.now)
            return
        }
        if case .full = context.flows.insert(key, hash: hash, value: value, event: event, now: context.now) {
            context.counters._withUnsafeGuaranteedRef { $0.add(.reverseEntriesLost) }
        }
    }

    /// Inserts the reverse entries kept back during this burst. The worker calls it at the end
    /// of every burst and before any transmit within one; a no-op without deferral.
    @inlinable
    public static func commitDeferred(_ context: inout PipelineContext) {
        guard let deferred = context.deferredReverse else { return }
        if deferred.pointee.count > 0 { deferred.pointee.commit(into: context.flows, now: context.now) }
        // Also what an early commit in `keep` lost (it always leaves one entry kept, but that is
        // `keep`'s business, not this count's).
        let lost = deferred.pointee.takeLost()
        if lost > 0 { context.counters._withUnsafeGuaranteedRef { $0.add(.reverseEntriesLost, UInt64(lost)) } }
    }

    /// vxlan mode: DNAT the inner packet, then wrap it for the node's VTEP (RFC 7348). A packet
    /// that would exceed the egress MTU once wrapped gets an ICMP "too big" back instead when
    /// it may not be fragmented (IPv4 DF, or any IPv6).
    @inlinable
    static func encapsulate(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, headroom: Int,
                            frame: ParsedFrame, service: Service, backend: UnsafeMutablePointer<BackendTarget>,
                            targetPort: UInt16, hash: UInt64, egressPort: UnsafeMutablePointer<PortContext>,
                            nextHopMAC: MACAddress, output: inout PacketOutput,
                            context: inout PipelineContext) -> Verdict {
        let vtep = backend.pointee.vtep
        let outer: VXLANEncapsulation.Outer
        if vtep.isIPv4Mapped {
            outer = .ipv4(source: IPv4Address(value: egressPort.pointee.selfIPv4.ipv4Value),
                          destination: IPv4Address(value: vtep.ipv4Value))
        } else {
            outer = .ipv6(source: egressPort.pointee.selfIPv6, destination: vtep)
        }
        let encapsulation = VXLANEncapsulation(destinationMAC: nextHopMAC, sourceMAC: egressPort.pointee.mac,
                                               outer: outer, vni: backend.pointee.vni)
        let packetBytes = frame.l3End - frame.l3Offset
        if packetBytes > encapsulation.innerMTU(portMTU: egressPort.pointee.mtu) {
            return tooBig(p, length: &length, capacity: capacity, frame: frame,
                          mtu: encapsulation.innerMTU(portMTU: egressPort.pointee.mtu), output: &output, context: &context)
        }
        if service.mssClamp != 0, frame.l4Protocol == IPProtocol.tcp {
            _ = TCPMSSClamp.clamp(p, frame: frame, maximum: service.mssClamp)
        }
        let outcome = frame.isIPv4
            ? NATRewrite.rewriteIPv4Destination(p, frame: frame, address: IPv4Address(value: backend.pointee.address.ipv4Value),
                                                port: targetPort, decrementTTL: true)
            : NATRewrite.rewriteIPv6Destination(p, frame: frame, address: backend.pointee.address,
                                                port: targetPort, decrementHopLimit: true)
        if let reason = dropReason(outcome) { return .drop(reason) }
        return wrap(p, length: &length, headroom: headroom, frame: frame, backend: backend, hash: hash,
                    encapsulation: encapsulation, egressPort: egressPort, output: &output, context: &context)
    }

    /// The VXLAN wrapping of a rewritten packet (RFC 7348 §5): the inner frame to the pod's MAC
    /// from ours, the outer headers in front, the outer UDP source port from the flow hash.
    @inlinable
    static func wrap(_ p: UnsafeMutableRawPointer, length: inout Int, headroom: Int, frame: ParsedFrame,
                     backend: UnsafeMutablePointer<BackendTarget>, hash: UInt64, encapsulation: VXLANEncapsulation,
                     egressPort: UnsafeMutablePointer<PortContext>, output: inout PacketOutput,
                     context: inout PipelineContext) -> Verdict {
        // The inner frame: to the pod's MAC, from ours; VLAN tags of the client side are dropped
        // by moving the L3 packet to right after a plain Ethernet header when there were any.
        var inner = p
        var innerLength = length
        if frame.l3Offset != HeaderSize.ethernet {
            let shift = frame.l3Offset - HeaderSize.ethernet
            inner = p + shift
            // Safe: the 12 MAC bytes are rewritten below; only the EtherType must move, and the
            // L3 packet stays where it is.
            inner.storeBE16(frame.etherType, 12)
            innerLength -= shift
        }
        backend.pointee.innerMAC.store(inner, 0)
        egressPort.pointee.mac.store(inner, 6)
        context.ipID &+= 1
        let egress = Int(backend.pointee.egressPort)
        let offload = context.txIPv4ChecksumPorts >> UInt64(truncatingIfNeeded: egress & 63) & 1 != 0
            && backend.pointee.vtep.isIPv4Mapped
        let added = encapsulation.encapsulate(inner, length: innerLength, headroom: headroom + (inner - p),
                                              flowHash: UInt32(truncatingIfNeeded: hash), ipID: context.ipID,
                                              ipv4HeaderChecksum: !offload)
        guard added > 0 else { return .drop(.bufferTooSmall) }
        if offload { output.ipv4ChecksumOffload = EthernetHeader.length(vlanID: encapsulation.vlanID) }
        output.prepended = added - (inner - p)
        length = innerLength + added
        output.port = Int(backend.pointee.egressPort)
        return .transmit(.forwardToBackend)
    }

    /// The packet does not fit the egress MTU: an ICMP "fragmentation needed" (RFC 1191) or
    /// "packet too big" (RFC 4443 §3.2, RFC 8201) goes back to its sender out of the port it came
    /// in by (`output.port`), from `source` — or, nil, from the packet's destination (a VIP: the
    /// client sees the VIP's path as one hop). Sluice does not fragment, so an IPv4 packet
    /// without DF gets the error too (RFC 1191 asks senders for DF; most stacks set it).
    /// Cold: outlined, so that the callers on the hot path stay small.
    @inline(never) @usableFromInline
    static func tooBig(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, frame: ParsedFrame,
                       mtu: Int, from source: IPv6Address? = nil, output: inout PacketOutput,
                       context: inout PipelineContext) -> Verdict {
        // Never to a link-layer multicast or broadcast sender (RFC 1812 §4.3.2.7): the error's
        // Ethernet destination is the frame's source.
        guard !MACAddress.load(p, 6).isMulticast else { return .drop(.packetTooBig) }
        return context.snapshot._withUnsafeGuaranteedRef { snapshot in
            let ingress = snapshot.port(output.port)
            let written: Int
            if frame.isIPv4 {
                let from = source.map { IPv4Address(value: $0.ipv4Value) } ?? IPv4Address(value: p.loadBE32(frame.l3Offset + 16))
                guard source.map({ $0.isIPv4Mapped }) ?? true else { return .drop(.packetTooBig) }
                written = ICMPTooBig.fragmentationNeeded(p, length: length, capacity: capacity, frame: frame,
                                                         nextHopMTU: UInt16(clamping: mtu), sourceMAC: ingress.pointee.mac,
                                                         source: from)
            } else {
                let from = source ?? IPv6Address.load(p, frame.l3Offset + 24)
                guard !from.isUnspecified else { return .drop(.packetTooBig) }
                written = ICMPTooBig.packetTooBig(p, length: length, capacity: capacity, frame: frame,
                                                  mtu: UInt32(clamping: mtu), sourceMAC: ingress.pointee.mac, source: from)
            }
            guard written > 0 else { return .drop(.packetTooBig) }
            // Written in place over the packet, which is dropped either way.
            let allowed = source == nil ? context.icmpErrorsToClients.take(now: context.now)
                                        : context.icmpErrorsToBackends.take(now: context.now)
            guard allowed else { return .drop(.icmpRateLimited) }
            length = written
            return .transmit(.icmpTooBig)
        }
    }

    // MARK: Return: backend → client

    /// An ICMP error about a balanced flow's return traffic (a client or a router on its path
    /// answering "fragmentation needed", "port unreachable", "packet too big" to the VIP) goes to
    /// that flow's backend, so that its path-MTU discovery and error handling work: the quoted
    /// header (VIP:port → client) finds the flow, the outer destination becomes the backend and
    /// the quote is rewritten to what the backend sent (backend:port → client).
    @inline(never) @usableFromInline
    static func deliverICMPError(_ p: UnsafeMutableRawPointer, length: inout Int, headroom: Int, frame: ParsedFrame,
                                 snapshot: DataPlaneSnapshot, output: inout PacketOutput,
                                 context: inout PipelineContext) -> Verdict {
        let key: ConntrackKey
        let hash: UInt64
        var vipPort: UInt16 = 0
        var clientPort: UInt16 = 0
        var client = IPv6Address.unspecified
        var quoteV4: ICMPErrorQuote.IPv4Quote? = nil
        var quoteV6: ICMPErrorQuote.IPv6Quote? = nil
        var proto: UInt8 = 0
        if frame.isIPv4 {
            guard let q = ICMPErrorQuote.parseIPv4(UnsafeRawPointer(p), frame: frame) else { return .drop(.unsupportedICMPType) }
            quoteV4 = q
            proto = q.proto
            vipPort = q.sourcePort
            clientPort = q.destinationPort
            client = IPv6Address(ipv4Mapped: q.destination.value)
            key = ConntrackKey(source: q.destination, destination: q.source, sourcePort: q.destinationPort,
                               destinationPort: q.sourcePort, protocol: q.proto, zone: FlowBinding.forwardZone)
            hash = snapshot.hasher.hash(IPv4FlowKey(source: q.destination, destination: q.source, sourcePort: q.destinationPort,
                                                    destinationPort: q.sourcePort, proto: q.proto))
        } else {
            guard let q = ICMPErrorQuote.parseIPv6(UnsafeRawPointer(p), frame: frame) else { return .drop(.unsupportedICMPType) }
            quoteV6 = q
            proto = q.proto
            vipPort = q.sourcePort
            clientPort = q.destinationPort
            client = q.destination
            key = ConntrackKey(source: q.destination, destination: q.source, sourcePort: q.destinationPort,
                               destinationPort: q.sourcePort, protocol: q.proto, zone: FlowBinding.forwardZone)
            hash = snapshot.hasher.hash(IPv6FlowKey(source: q.destination, destination: q.source, sourcePort: q.destinationPort,
                                                    destinationPort: q.sourcePort, proto: q.proto))
        }
        guard proto == IPProtocol.tcp || proto == IPProtocol.udp || proto == IPProtocol.sctp,
              let handle = context.flows.lookup(key, hash: hash, now: context.now) else { return .drop(.notOwnedAddress) }
        guard let serviceIndex = snapshot.services.index(id: FlowBinding.service(handle.value)) else {
            return .drop(.noService)
        }
        return snapshot.services.service(serviceIndex)._withUnsafeGuaranteedRef { service in
            guard let backendIndex = service.backendIndex(id: FlowBinding.backend(handle.value)) else {
                return .drop(.noBackend)
            }
            let backend = service.backend(backendIndex)
            let backendPort = backend.pointee.port == 0 ? vipPort : backend.pointee.port
            guard let mac = context.neighbors._withUnsafeGuaranteedRef({ $0.lookup(backend.pointee.nextHop) }) else {
                return .drop(.neighborUnresolved)
            }
            // What the backend sent is quoted: backend:port → client:port for dnat; for full-NAT
            // backend:port → pool address:port, and the error comes from that pool address too
            // (the backend knows no other peer; IPVS's FULLNAT does the same).
            var peer = client, peerPort = clientPort
            let fullNAT = service.mode == .fullnat
            if fullNAT {
                let source = FlowBinding.fullNATSource(handle.value)
                guard source.poolIndex < service.sourceCount else { return .drop(.noSourcePort) }
                peer = service.source(source.poolIndex)
                peerPort = source.port
            }
            let outcome: NATRewrite.Outcome
            var rewritten: Bool
            if let q = quoteV4 {
                let b = IPv4Address(value: backend.pointee.address.ipv4Value), peer4 = IPv4Address(value: peer.ipv4Value)
                outcome = fullNAT
                    ? NATRewrite.rewriteIPv4(p, frame: frame, source: peer4, sourcePort: 0, destination: b, destinationPort: 0,
                                             decrementTTL: true)
                    : NATRewrite.rewriteIPv4Destination(p, frame: frame, address: b, port: 0, decrementTTL: true)
                rewritten = outcome == .rewritten && ICMPErrorQuote.rewriteIPv4(
                    p, frame: frame, quote: q, source: b, sourcePort: backendPort, destination: peer4, destinationPort: peerPort)
            } else {
                // Outer first: the quote rewrite recomputes the ICMPv6 checksum over the new outer addresses.
                outcome = fullNAT
                    ? NATRewrite.rewriteIPv6(p, frame: frame, source: peer, sourcePort: 0, destination: backend.pointee.address,
                                             destinationPort: 0, decrementHopLimit: true)
                    : NATRewrite.rewriteIPv6Destination(p, frame: frame, address: backend.pointee.address,
                                                        port: 0, decrementHopLimit: true)
                rewritten = outcome == .rewritten && ICMPErrorQuote.rewriteIPv6(
                    p, frame: frame, quote: quoteV6.unsafelyUnwrapped, source: backend.pointee.address,
                    sourcePort: backendPort, destination: peer, destinationPort: peerPort)
            }
            if let reason = dropReason(outcome) { return .drop(reason) }
            guard rewritten else { return .drop(.fragmentNotHandled) }
            let egress = Int(backend.pointee.egressPort)
            if service.mode == .vxlan {
                // To the pod through its node's VTEP, with the flow's outer source port (the same
                // hash: the forward 5-tuple). Errors are short (RFC 1812 §4.3.2.3: 576 bytes;
                // RFC 4443 §2.4: 1280): one that would not fit the port once wrapped is dropped.
                let egressPort = snapshot.port(egress)
                let vtep = backend.pointee.vtep
                let outer: VXLANEncapsulation.Outer = vtep.isIPv4Mapped
                    ? .ipv4(source: IPv4Address(value: egressPort.pointee.selfIPv4.ipv4Value),
                            destination: IPv4Address(value: vtep.ipv4Value))
                    : .ipv6(source: egressPort.pointee.selfIPv6, destination: vtep)
                let encapsulation = VXLANEncapsulation(destinationMAC: mac, sourceMAC: egressPort.pointee.mac,
                                                       outer: outer, vni: backend.pointee.vni)
                guard frame.l3End - frame.l3Offset <= encapsulation.innerMTU(portMTU: egressPort.pointee.mtu) else {
                    return .drop(.packetTooBig)
                }
                length = frame.l3End   // Ethernet padding, if any, stays out of the tunnel
                let verdict = wrap(p, length: &length, headroom: headroom, frame: frame, backend: backend, hash: hash,
                                   encapsulation: encapsulation, egressPort: egressPort, output: &output,
                                   context: &context)
                return verdict == .transmit(.forwardToBackend) ? .transmit(.icmpErrorToBackend) : verdict
            }
            // An error about an error is never sent (RFC 1812 §4.3.2.7): one too big is dropped.
            guard frame.l3End - frame.l3Offset <= snapshot.port(egress).pointee.mtu else { return .drop(.packetTooBig) }
            mac.store(p, 0)
            snapshot.port(egress).pointee.mac.store(p, 6)
            output.port = egress
            return .transmit(.icmpErrorToBackend)
        }
    }

    /// A pod's reply that its node sent back over VXLAN to our address (RFC 7348): the inner
    /// frame is unwrapped in place and takes the ordinary return path; the outer headers are
    /// dropped from the front of the buffer (`output.prepended` goes negative).
    @inlinable
    static func decapsulatedReturn(_ p: UnsafeMutableRawPointer, length: inout Int, frame: ParsedFrame,
                                   snapshot: DataPlaneSnapshot, output: inout PacketOutput,
                                   context: inout PipelineContext) -> Verdict {
        guard let inner = VXLANDecapsulation.parse(UnsafeRawPointer(p), frame: frame, port: snapshot.vxlanPort) else {
            return .drop(.badVXLAN)
        }
        let q = p + inner.offset   // Safe: parse proved offset + length lie inside the UDP payload.
        var innerFrame = ParsedFrame()
        if let reason = FrameParser.parse(UnsafeRawPointer(q), length: inner.length, into: &innerFrame) {
            return .drop(reason)
        }
        let proto = innerFrame.l4Protocol
        // RFC 7348 §6.1: a decapsulated frame with an inner VLAN tag SHOULD be discarded (the
        // tag would otherwise reach the client's segment).
        guard innerFrame.vlanTagCount == 0, innerFrame.isIPv4 || innerFrame.isIPv6, innerFrame.hasL4Header,
              proto == IPProtocol.tcp || proto == IPProtocol.udp || proto == IPProtocol.sctp else {
            return .drop(.badVXLAN)
        }
        let innerHash = innerFrame.isIPv4 ? snapshot.hasher.hash(IPv4FlowKey(packet: q, frame: innerFrame))
                                          : snapshot.hasher.hash(IPv6FlowKey(packet: q, frame: innerFrame))
        var innerLength = inner.length
        let verdict = returnPath(q, length: &innerLength, capacity: inner.length, frame: innerFrame, hash: innerHash,
                                 snapshot: snapshot, output: &output, context: &context, tunnelled: true)
        if case .transmit = verdict {
            output.prepended = -inner.offset
            length = inner.length
        }
        return verdict
    }

    @inlinable
    /// `tunnelled`: a pod's reply unwrapped from VXLAN (`decapsulatedReturn`), whose later
    /// fragments, each in its own tunnel packet, are not followed: its first is not recorded.
    static func returnPath(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, frame: ParsedFrame, hash: UInt64,
                           snapshot: DataPlaneSnapshot, output: inout PacketOutput, context: inout PipelineContext,
                           tunnelled: Bool = false) -> Verdict {
        // Safe: the caller checked that the L4 header of a TCP/UDP/SCTP packet is present.
        let key = ConntrackKey(packet: p, frame: frame, zone: FlowBinding.reverseZone).unsafelyUnwrapped
        guard var handle = context.flows.lookup(key, hash: hash, now: context.now) else { return .drop(.notOwnedAddress) }
        let value = handle.value
        // A service keeps its id across a reload that moves its VIP to the other family: its
        // old flows' replies have no VIP of theirs to leave from.
        guard let serviceIndex = snapshot.services.index(id: FlowBinding.service(value)),
              snapshot.services.service(serviceIndex)._withUnsafeGuaranteedRef({ $0.vip.isIPv4Mapped }) == frame.isIPv4
        else { return .drop(.noService) }
        _ = context.flows.update(&handle, event: flowEvent(p, frame: frame, reply: true), now: context.now)
        // A reply's first fragment: its later fragments will follow it to the client
        // (`followFragment`) once it has left.
        let firstFragmentKey = frame.moreFragments && !tunnelled ? fragmentKey(p, frame: frame, snapshot: snapshot) : 0
        let client = frame.isIPv4 ? IPv6Address(ipv4Mapped: p.loadBE32(frame.l3Offset + 16))
                                  : IPv6Address.load(p, frame.l3Offset + 24)
        let verdict = leaveForClient(p, length: &length, capacity: capacity, frame: frame, client: client,
                                     service: snapshot.services.service(serviceIndex),
                                     snapshot: snapshot, output: &output, context: &context, tunnelled: tunnelled) { service in
            rewriteReplySource(p, frame: frame, vip: service.vip, port: FlowBinding.vipPort(value))
        }
        if frame.moreFragments, !tunnelled, verdict == .transmit(.returnToClient) {
            recordFirstFragment(firstFragmentKey, FragmentTable.Record(direction: .toClient, service: FlowBinding.service(value)),
                                context: context)
        }
        return verdict
    }

    /// A dnat / vxlan reply's NAT: it leaves from the VIP and `port` (a later fragment has no
    /// port to rewrite: only its address changes).
    @inlinable @inline(__always)
    static func rewriteReplySource(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, vip: IPv6Address,
                                   port: UInt16) -> NATRewrite.Outcome {
        frame.isIPv4
            ? NATRewrite.rewriteIPv4Source(p, frame: frame, address: IPv4Address(value: vip.ipv4Value), port: port,
                                           decrementTTL: true)
            : NATRewrite.rewriteIPv6Source(p, frame: frame, address: vip, port: port, decrementHopLimit: true)
    }

    /// A full-NAT reply's NAT: from the VIP:port to the client:port that the flow's forward entry
    /// holds (IPv4-mapped for IPv4, ConntrackKey's layout; a later fragment keeps its ports).
    @inlinable @inline(__always)
    static func rewriteFullNATReply(_ p: UnsafeMutableRawPointer, frame: ParsedFrame,
                                    forward key: ConntrackKey) -> NATRewrite.Outcome {
        let client = key.sourceIPv6, vip = key.destinationIPv6
        return frame.isIPv4
            ? NATRewrite.rewriteIPv4(p, frame: frame, source: IPv4Address(value: vip.ipv4Value), sourcePort: key.destinationPort,
                                     destination: IPv4Address(value: client.ipv4Value), destinationPort: key.sourcePort,
                                     decrementTTL: true)
            : NATRewrite.rewriteIPv6(p, frame: frame, source: vip, sourcePort: key.destinationPort, destination: client,
                                     destinationPort: key.sourcePort, decrementHopLimit: true)
    }

    /// The last leg of every reply to a client: the route to `client` and its next hop's MAC,
    /// the MSS clamp, `rewrite` (the reply's NAT), then the Ethernet header for the egress port.
    /// The backend's SYN-ACK MSS limits the client's segments, the direction vxlan wraps: it is
    /// clamped as the client's SYN is (RFC 9293 §3.7.1, RFC 4459 §3.2); a no-op unless SYN.
    @inlinable @inline(__always)
    static func leaveForClient(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, frame: ParsedFrame,
                               client: IPv6Address, service: Unmanaged<Service>, snapshot: DataPlaneSnapshot,
                               output: inout PacketOutput, context: inout PipelineContext, tunnelled: Bool = false,
                               rewrite: (Service) -> NATRewrite.Outcome) -> Verdict {
        guard let route = snapshot.routing.nextHop(client) else { return .drop(.noRoute) }
        guard let mac = context.neighbors._withUnsafeGuaranteedRef({ $0.lookup(route.hop) }) else {
            // Ask for it (a client whose cache holds our MAC sends us nothing to learn it from).
            context.neighborMisses._withUnsafeGuaranteedRef { $0.note(route.hop, now: context.now) }
            return .drop(.neighborUnresolved)
        }
        let mtu = snapshot.port(Int(route.port)).pointee.mtu
        if frame.l3End - frame.l3Offset > mtu {
            // As a router on the backend's path (its gateway, or the owner of its pool address):
            // the error comes from our address on the port the reply came in by. A pod's reply
            // came through a tunnel the error could not go back into unwrapped.
            guard !tunnelled else { return .drop(.packetTooBig) }
            let port = snapshot.port(output.port)
            return tooBig(p, length: &length, capacity: capacity, frame: frame, mtu: mtu,
                          from: frame.isIPv4 ? port.pointee.selfIPv4 : port.pointee.selfIPv6, output: &output,
                          context: &context)
        }
        let outcome = service._withUnsafeGuaranteedRef { service in
            if service.mssClamp != 0, frame.l4Protocol == IPProtocol.tcp {
                _ = TCPMSSClamp.clamp(p, frame: frame, maximum: service.mssClamp)
            }
            return rewrite(service)
        }
        if let reason = dropReason(outcome) { return .drop(reason) }
        mac.store(p, 0)
        snapshot.port(Int(route.port)).pointee.mac.store(p, 6)
        output.port = Int(route.port)
        return .transmit(.returnToClient)
    }

    /// A backend's reply to a full-NAT flow (backend:port → pool address:port): the return
    /// entry names the forward entry, whose key holds the client and the VIP; the packet leaves
    /// from VIP:port to client:port.
    @inlinable
    static func fullNATReturn(_ p: UnsafeMutableRawPointer, length: inout Int, capacity: Int, frame: ParsedFrame, hash: UInt64,
                              snapshot: DataPlaneSnapshot,
                              output: inout PacketOutput, context: inout PipelineContext) -> Verdict {
        // Safe: the caller checked that the L4 header of a TCP/UDP/SCTP packet is present.
        let key = ConntrackKey(packet: p, frame: frame, zone: FlowBinding.fullNATReturnZone).unsafelyUnwrapped
        guard var handle = context.flows.lookup(key, hash: hash, now: context.now) else { return .drop(.notOwnedAddress) }
        let serviceID = Int(handle.value.aux >> 16)
        // The forward entry named by (slot, generation tag), checked to be this flow's: its
        // service, its backend (still in the service, at this address and port), and the pool
        // address and port this packet is addressed to. The return tuple is unique in the
        // table, so an entry that matches all of them is the one that reserved it.
        guard let forward = context.flows.entry(slot: Int(handle.value.backend),
                                                generationTag: UInt16(truncatingIfNeeded: handle.value.aux)),
              forward.key.zone == FlowBinding.forwardZone, forward.key.proto == key.proto,
              forward.key.isIPv6 == key.isIPv6,
              FlowBinding.service(forward.handle.value) == serviceID,
              let serviceIndex = snapshot.services.index(id: serviceID),
              fullNATBindingMatches(forward.handle.value, returnKey: key,
                                    service: snapshot.services.service(serviceIndex)) else {
            // The forward entry is gone (expired, flushed, rebound) or its backend left: so is
            // the flow, and its return entry goes too (it would hold the source port).
            context.flows.remove(handle)
            return .drop(.notOwnedAddress)
        }
        let event = flowEvent(p, frame: frame, reply: true)
        _ = context.flows.update(&handle, event: event, now: context.now)
        var forwardHandle = forward.handle
        _ = context.flows.update(&forwardHandle, event: event, now: context.now)
        // A reply's first fragment: its later fragments will follow it once it has left, naming
        // the forward entry as the return entry does (`followFragment`).
        let firstFragmentKey = frame.moreFragments ? fragmentKey(p, frame: frame, snapshot: snapshot) : 0
        let verdict = leaveForClient(p, length: &length, capacity: capacity, frame: frame, client: forward.key.sourceIPv6,
                                     service: snapshot.services.service(serviceIndex),
                                     snapshot: snapshot, output: &output, context: &context) { _ in
            rewriteFullNATReply(p, frame: frame, forward: forward.key)
        }
        if frame.moreFragments, verdict == .transmit(.returnToClient) {
            recordFirstFragment(firstFragmentKey, FragmentTable.Record(
                direction: .toClient, service: serviceID,
                detail: UInt64(handle.value.backend) << 16 | UInt64(handle.value.aux & 0xFFFF)), context: context)
        }
        return verdict
    }

    /// True when the forward value's backend and source are what `returnKey` (backend:port →
    /// pool address:port) says.
    @inlinable
    static func fullNATBindingMatches(_ value: FlowValue, returnKey key: ConntrackKey, service: Unmanaged<Service>) -> Bool {
        service._withUnsafeGuaranteedRef { service in
            guard service.mode == .fullnat, let index = service.backendIndex(id: FlowBinding.backend(value)) else { return false }
            let source = FlowBinding.fullNATSource(value)
            guard source.poolIndex < service.sourceCount, source.port == key.destinationPort,
                  service.source(source.poolIndex) == key.destinationIPv6 else { return false }
            let backend = service.backend(index)
            return backend.pointee.address == key.sourceIPv6
                && (backend.pointee.port == 0 || backend.pointee.port == key.sourcePort)
        }
    }

    // MARK: Helpers

    @inlinable @inline(__always)
    static func dropReason(_ outcome: NATRewrite.Outcome) -> DropReason? {
        switch outcome {
        case .rewritten: nil
        case .hopLimitExpired: .ttlExceeded
        case .sctpFragmentPortChange: .unsupportedSCTPRewrite
        }
    }

    /// The state-machine input of a packet: TCP flags, the first SCTP chunk type, or a plain packet.
    @inlinable @inline(__always)
    static func flowEvent(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, reply: Bool) -> FlowEvent {
        switch frame.l4Protocol {
        case IPProtocol.tcp: return .tcp(flags: p.loadBE8(frame.l4Offset + 13), reply: reply)
        case IPProtocol.sctp where frame.l4Length > HeaderSize.sctpCommon:
            return .sctp(chunkType: p.loadBE8(frame.l4Offset + HeaderSize.sctpCommon), reply: reply)
        default: return .packet(reply: reply)
        }
    }

    /// RFC 826 "merge": a host on the port's segment that sends us ARP tells us its MAC.
    @inlinable
    static func learnFromARP(_ p: UnsafeMutableRawPointer, frame: ParsedFrame, port: UnsafeMutablePointer<PortContext>,
                             owned: OwnedAddresses, context: PipelineContext) {
        let l3 = frame.l3Offset
        guard ARPPacket.isIPv4OverEthernet(p, l3) else { return }
        let sender = p.loadBE32(l3 + ARPPacket.senderIP)
        let mac = MACAddress.load(p, l3 + ARPPacket.senderMAC)
        guard sender != 0, !mac.isMulticast, mac.value != 0 else { return }
        let address = IPv6Address(ipv4Mapped: sender)
        guard port.pointee.isConnected(address) else { return }
        // RFC 826: only a packet for us (its target is one of our addresses) adds its sender; any
        // ARP updates ("merges") a sender already in the table. Requests between other hosts of
        // the segment must not fill the table (its slots are never freed).
        guard owned.macFor(p.loadBE32(l3 + ARPPacket.targetIP)) != nil
                || context.neighbors._withUnsafeGuaranteedRef({ $0.status(address) != nil }) else { return }
        if context.neighbors._withUnsafeGuaranteedRef({ $0.learn(address, mac: mac, now: context.now) }) {
            context.counters._withUnsafeGuaranteedRef { $0.add(.neighborsLearned) }
        }
    }

    /// RFC 4861 §7.2.3 / §7.2.5: a solicitation's source link-layer option, an advertisement's
    /// target link-layer option. Only from hosts in a connected prefix, with hop limit 255.
    @inlinable
    static func learnFromNeighborDiscovery(_ p: UnsafeMutableRawPointer, frame: ParsedFrame,
                                           port: UnsafeMutablePointer<PortContext>, owned: OwnedAddresses,
                                           context: PipelineContext) {
        let l3 = frame.l3Offset, l4 = frame.l4Offset
        let type = p.loadBE8(l4)
        guard type == ICMPv6Type.neighborSolicitation || type == ICMPv6Type.neighborAdvertisement,
              frame.l4Length >= HeaderSize.neighborSolicitation, p.loadBE8(l3 + 7) == NeighborDiscovery.hopLimit else { return }
        let address = type == ICMPv6Type.neighborSolicitation ? IPv6Address.load(p, l3 + 8) : IPv6Address.load(p, l4 + 8)
        guard !address.isUnspecified, !address.isMulticast, port.pointee.isConnected(address) else { return }
        // RFC 4861 §7.2.3: a solicitation whose target is not one of our addresses is discarded,
        // cache untouched (it is another host's address resolution).
        if type == ICMPv6Type.neighborSolicitation, owned.macFor(IPv6Address.load(p, l4 + 8)) == nil { return }
        let wanted: UInt8 = type == ICMPv6Type.neighborSolicitation ? NeighborDiscovery.sourceLinkLayerOption
                                                                     : NeighborDiscovery.targetLinkLayerOption
        var option = l4 + HeaderSize.neighborSolicitation
        while option + 8 <= frame.l3End {
            let optionLength = Int(p.loadBE8(option + 1)) * 8
            guard optionLength > 0, option + optionLength <= frame.l3End else { return }
            if p.loadBE8(option) == wanted {
                let mac = MACAddress.load(p, option + 2)
                guard !mac.isMulticast, mac.value != 0 else { return }
                if context.neighbors._withUnsafeGuaranteedRef({ $0.learn(address, mac: mac, now: context.now) }) {
                    context.counters._withUnsafeGuaranteedRef { $0.add(.neighborsLearned) }
                }
                return
            }
            option += optionLength
        }
    }
}
