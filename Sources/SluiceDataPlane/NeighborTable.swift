import Synchronization
import SluiceCore

/// IP → MAC for the hosts Sluice sends to directly: backends and VTEPs in its ports' connected
/// prefixes, gateways, and clients on the VIPs' segments (learned from the ARP requests and
/// neighbor solicitations they send for a VIP, RFC 826 "merge" and RFC 4861 §7.2.3).
///
/// Lock-free, fixed capacity, open addressing with linear probing; IPv4 addresses are stored
/// IPv4-mapped (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) so one table serves both families.
/// Slots are claimed once and never freed (an address keeps its slot; its MAC may change), so a
/// reader that matched a key can never see the slot reused for another key.
///
/// Memory orderings: a writer claims a slot by CAS on `state` (empty → claimed, acquiring
/// nothing), stores the key halves (relaxed), then publishes with a release store of `state =
/// ready`. A reader loads `state` with acquire and reads the key only when ready, so it sees the
/// key the writer stored. The MAC word is a single atomic (relaxed): a reader sees either the old
/// or the new MAC, never a torn one; nothing else is published with it.
public final class NeighborTable: @unchecked Sendable {
    @usableFromInline static let empty: UInt32 = 0, claimed: UInt32 = 1, ready: UInt32 = 2
    /// Probe at most this many slots; a table this crowded stops learning (counted by the caller).
    public static let maxProbes = 32
    /// The MAC word: bit 63 set when resolved; bit 62 when permanent (configured, never
    /// expired nor overwritten by what the wire says); bits 0...47 the MAC.
    @usableFromInline static let resolvedBit: UInt64 = 1 << 63
    @usableFromInline static let permanentBit: UInt64 = 1 << 62
    /// A learned MAC not confirmed for this long is forgotten (`expire`): the resolver asks
    /// again from `NeighborResolver.refreshAfter` (30 s) on, once a second, so this is five
    /// unanswered solicitations (RFC 4861 §7.3.3: a neighbor that stops answering becomes
    /// unreachable rather than being used forever).
    public static let reachableFor: UInt32 = 35

    @usableFromInline
    struct Slot: ~Copyable {
        @usableFromInline let state = Atomic<UInt32>(0)
        @usableFromInline init() {}
        /// When the MAC was last confirmed by a packet from the host (seconds, caller's clock).
        @usableFromInline let confirmed = Atomic<UInt32>(0)
        @usableFromInline let high = Atomic<UInt64>(0)
        @usableFromInline let low = Atomic<UInt64>(0)
        @usableFromInline let mac = Atomic<UInt64>(0)
    }

    public let capacity: Int
    @usableFromInline let mask: Int
    // Safe: allocated and initialised in `init`, freed in `deinit`; every field is atomic.
    @usableFromInline let slots: UnsafeMutablePointer<Slot>

    /// `capacity` is rounded up to a power of two.
    public init(capacity: Int = 4096) {
        var n = 16
        while n < capacity { n <<= 1 }
        self.capacity = n
        mask = n - 1
        slots = .allocate(capacity: n)
        for i in 0..<n { (slots + i).initialize(to: Slot()) }
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    @inlinable @inline(__always)
    static func key(_ a: UInt32) -> IPv6Address { IPv6Address(high: 0, low: 0x0000_FFFF_0000_0000 | UInt64(a)) }

    @inlinable @inline(__always)
    @usableFromInline func home(_ k: IPv6Address) -> Int {
        // A multiplicative mix (Fibonacci hashing); addresses are not attacker-chosen keys here
        // beyond the bounded probe length, which caps the damage of a crafted cluster.
        let x = (k.high ^ (k.low &* 0x9E37_79B9_7F4A_7C15)) &* 0xBF58_476D_1CE4_E5B9
        return Int(truncatingIfNeeded: x >> 32) & mask
    }

    /// The MAC for `address`, if resolved.
    @inlinable
    public func lookup(_ address: IPv6Address) -> MACAddress? {
        var i = home(address)
        for _ in 0..<Self.maxProbes {
            let slot = slots + i
            let state = slot.pointee.state.load(ordering: .acquiring)
            if state == Self.empty { return nil }
            if state == Self.ready, slot.pointee.high.load(ordering: .relaxed) == address.high,
               slot.pointee.low.load(ordering: .relaxed) == address.low {
                let word = slot.pointee.mac.load(ordering: .relaxed)
                return word & Self.resolvedBit != 0 ? MACAddress(value: word) : nil
            }
            i = (i &+ 1) & mask
        }
        return nil
    }

    @inlinable
    public func lookup(ipv4 address: UInt32) -> MACAddress? { lookup(Self.key(address)) }

    /// Finds or claims the slot of `address`; nil when the probe window is full.
    @inlinable
    @usableFromInline func slot(for address: IPv6Address) -> UnsafeMutablePointer<Slot>? {
        var i = home(address)
        for _ in 0..<Self.maxProbes {
            let slot = slots + i
            var state = slot.pointee.state.load(ordering: .acquiring)
            if state == Self.empty {
                let (won, seen) = slot.pointee.state.compareExchange(
                    expected: Self.empty, desired: Self.claimed, ordering: .acquiring)
                if won {
                    slot.pointee.high.store(address.high, ordering: .relaxed)
                    slot.pointee.low.store(address.low, ordering: .relaxed)
                    slot.pointee.state.store(Self.ready, ordering: .releasing)
                    return slot
                }
                state = seen
            }
            // Another writer is between claim and publish: wait for its key (a few stores).
            while state == Self.claimed { state = slot.pointee.state.load(ordering: .acquiring) }
            if slot.pointee.high.load(ordering: .relaxed) == address.high,
               slot.pointee.low.load(ordering: .relaxed) == address.low {
                return slot
            }
            i = (i &+ 1) & mask
        }
        return nil
    }

    /// Records that `address` is at `mac` (seen at time `now`). Returns false if the table could
    /// not take a new address (full probe window).
    /// `permanent`: a configured neighbor (static `neighbors`), kept until the table goes.
    @inlinable @discardableResult
    public func learn(_ address: IPv6Address, mac: MACAddress, now: UInt32, permanent: Bool = false) -> Bool {
        guard let slot = slot(for: address) else { return false }
        let current = slot.pointee.mac.load(ordering: .relaxed)
        // A configured MAC is not replaced by one learned from the wire.
        if !permanent && current & Self.permanentBit != 0 { return true }
        let word = Self.resolvedBit | (permanent ? Self.permanentBit : 0) | mac.value
        if current != word { slot.pointee.mac.store(word, ordering: .relaxed) }
        if slot.pointee.confirmed.load(ordering: .relaxed) != now { slot.pointee.confirmed.store(now, ordering: .relaxed) }
        return true
    }

    @inlinable @discardableResult
    public func learn(ipv4 address: UInt32, mac: MACAddress, now: UInt32) -> Bool {
        learn(Self.key(address), mac: mac, now: now)
    }

    /// Forgets the MACs of learned neighbors not confirmed for `reachableFor` seconds (their
    /// slots stay; the resolver keeps asking). Returns how many were forgotten. Cold: worker 0
    /// calls it once a second; a racing `learn` of the same slot wins or is redone next second.
    @discardableResult
    public func expire(now: UInt32) -> Int {
        var expired = 0
        for i in 0..<capacity {
            let slot = slots + i
            guard slot.pointee.state.load(ordering: .acquiring) == Self.ready else { continue }
            let word = slot.pointee.mac.load(ordering: .relaxed)
            guard word & Self.resolvedBit != 0, word & Self.permanentBit == 0,
                  now &- slot.pointee.confirmed.load(ordering: .relaxed) > Self.reachableFor else { continue }
            if slot.pointee.mac.compareExchange(expected: word, desired: word & ~Self.resolvedBit, ordering: .relaxed).exchanged {
                expired += 1
            }
        }
        return expired
    }

    /// The MAC (if resolved) and the time it was last confirmed, for the resolver.
    public func status(_ address: IPv6Address) -> (mac: MACAddress?, confirmed: UInt32)? {
        var i = home(address)
        for _ in 0..<Self.maxProbes {
            let slot = slots + i
            let state = slot.pointee.state.load(ordering: .acquiring)
            if state == Self.empty { return nil }
            if state == Self.ready, slot.pointee.high.load(ordering: .relaxed) == address.high,
               slot.pointee.low.load(ordering: .relaxed) == address.low {
                let word = slot.pointee.mac.load(ordering: .relaxed)
                // A permanent entry reports `confirmed` = UInt32.max: nothing asks for it again.
                return (word & Self.resolvedBit != 0 ? MACAddress(value: word & 0xFFFF_FFFF_FFFF) : nil,
                        word & Self.permanentBit != 0 ? UInt32.max : slot.pointee.confirmed.load(ordering: .relaxed))
            }
            i = (i &+ 1) & mask
        }
        return nil
    }

    /// Makes `address` known without a MAC, so that the resolver asks for it.
    @discardableResult
    public func want(_ address: IPv6Address) -> Bool { slot(for: address) != nil }

    /// One entry as the control plane sees it.
    public struct Entry: Sendable, Equatable {
        public var address: IPv6Address
        public var mac: MACAddress?
        public var confirmed: UInt32
        /// Configured (static `neighbors`): never expired, never replaced from the wire.
        public var permanent: Bool = false
        /// The IPv4 address, for an IPv4-mapped entry.
        public var ipv4: IPv4Address? {
            address.high == 0 && address.low >> 32 == 0xFFFF ? IPv4Address(value: UInt32(truncatingIfNeeded: address.low)) : nil
        }
    }

    /// Every entry (for the resolver, stats and the control socket). Not a consistent snapshot.
    public var entries: [Entry] {
        (0..<capacity).compactMap { i in
            let slot = slots + i
            guard slot.pointee.state.load(ordering: .acquiring) == Self.ready else { return nil }
            let word = slot.pointee.mac.load(ordering: .relaxed)
            return Entry(address: IPv6Address(high: slot.pointee.high.load(ordering: .relaxed),
                                              low: slot.pointee.low.load(ordering: .relaxed)),
                         mac: word & Self.resolvedBit != 0 ? MACAddress(value: word) : nil,
                         confirmed: slot.pointee.confirmed.load(ordering: .relaxed),
                         permanent: word & Self.permanentBit != 0)
        }
    }
}
