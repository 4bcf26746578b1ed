import Synchronization
import SluiceCore

/// Clients on a connected segment that a reply found unresolved, for the resolver to ask for.
/// Sluice learns such a client from the ARP request or neighbor solicitation it sends for a VIP;
/// one whose cache still holds our MAC (sluiced restarted, a VIP moved to this host with the
/// same MAC) sends none, and its replies would be dropped until its entry went stale. A router
/// solicits on demand (RFC 1122 §2.3.2.2, RFC 4861 §7.2.2): the worker notes the miss here, and
/// worker 0's once-a-second resolver pass (`NeighborResolver.requests(forMisses:)`) asks for
/// every address noted in the last two seconds that is still unresolved and on a connected
/// prefix.
///
/// Bounded and lossy on purpose: direct-mapped, `capacity` slots, overwritten, never grown, so
/// that replies to spoofed clients across a /64 cost at most `capacity` solicitations a second
/// and no neighbor-table slot for an address nobody answers (slots are never freed; a real
/// host that answers is learned, as it would be from its own request). Two workers writing one slot at once
/// can leave a torn address; the resolver asks only for addresses inside a connected prefix,
/// so the worst case is one solicitation for a host that does not exist.
public final class NeighborMisses: @unchecked Sendable {
    // Safe (@unchecked Sendable): every field of every slot is atomic.
    public static let standalone = NeighborMisses(capacity: 64)

    @usableFromInline
    struct Slot: ~Copyable {
        @usableFromInline let high = Atomic<UInt64>(0)
        @usableFromInline let low = Atomic<UInt64>(0)
        /// The second of the last miss, + 1 (0: empty).
        @usableFromInline let second = Atomic<UInt32>(0)
        @usableFromInline init() {}
    }

    public let capacity: Int
    @usableFromInline let mask: Int
    // Safe: allocated and initialised in `init`, freed in `deinit`; every field is atomic.
    @usableFromInline let slots: UnsafeMutablePointer<Slot>

    /// `capacity` is rounded up to a power of two.
    public init(capacity: Int = 64) {
        var n = 8
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

    /// Notes that `address` was needed and unresolved at second `now`. Cold (a drop path), and
    /// cheap when the address is already noted this second; outlined to keep its caller small.
    @inline(never)
    public func note(_ address: IPv6Address, now: UInt32) {
        let mix = (address.high ^ address.low) &* 0x9E37_79B9_7F4A_7C15
        let slot = slots + (Int(truncatingIfNeeded: mix >> 40) & mask)
        if slot.pointee.second.load(ordering: .relaxed) == now &+ 1, slot.pointee.low.load(ordering: .relaxed) == address.low,
           slot.pointee.high.load(ordering: .relaxed) == address.high { return }
        slot.pointee.high.store(address.high, ordering: .relaxed)
        slot.pointee.low.store(address.low, ordering: .relaxed)
        slot.pointee.second.store(now &+ 1, ordering: .releasing)
    }

    /// The addresses noted at `now` or the second before, each once; their slots are emptied.
    public func take(now: UInt32) -> [IPv6Address] {
        var taken: [IPv6Address] = []
        for i in 0..<capacity {
            let slot = slots + i
            let stamp = slot.pointee.second.load(ordering: .acquiring)
            guard stamp != 0 else { continue }
            let address = IPv6Address(high: slot.pointee.high.load(ordering: .relaxed), low: slot.pointee.low.load(ordering: .relaxed))
            slot.pointee.second.store(0, ordering: .relaxed)
            let age = now &+ 1 &- stamp
            if age <= 1, !taken.contains(address) { taken.append(address) }
        }
        return taken
    }
}
