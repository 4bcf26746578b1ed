import Synchronization
import SluiceCore

/// Which backend the first fragment of a datagram went to, so that its later fragments — which
/// carry no ports and so cannot be balanced by their 5-tuple — follow it (VPP lb and Katran
/// handle only first fragments; IPVS relies on defragmentation; Sluice keeps this small table).
///
/// A direct-mapped cache shared by all workers (under RSS the later fragments of a datagram may
/// land on another queue than its first): the key is the keyed flow hash of (source,
/// destination, protocol, IP identification), so a crafted identification cannot aim at a slot.
/// A slot holds two atomic words. The writer stores the value, then publishes the key with a
/// release store; the reader loads the key with acquire, the value, then the key again: a
/// concurrent overwrite (another datagram hashing to the slot) shows as a changed key and reads
/// as a miss. Entries older than `lifetime` seconds are misses (RFC 791 reassembly gives up on
/// a datagram after 15 s at most; fragments of one datagram arrive within milliseconds).
public final class FragmentTable: @unchecked Sendable {
    public static let lifetime: UInt32 = 5
    /// A process-wide table for tools and tests that do not pass their own (sluiced does).
    public static let standalone = FragmentTable(capacity: 1024)

    @usableFromInline
    struct Slot: ~Copyable {
        @usableFromInline let key = Atomic<UInt64>(0)
        /// service << 48 | backend << 32 | seen-at seconds
        @usableFromInline let value = Atomic<UInt64>(0)
        @usableFromInline init() {}
    }

    public let capacity: Int
    @usableFromInline let mask: Int
    // Safe: allocated and initialised in `init`, freed in `deinit`; every field is atomic.
    @usableFromInline let slots: UnsafeMutablePointer<Slot>

    public init(capacity: Int = 8192) {
        var n = 64
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

    /// Records that the datagram `key` (0 is never a key: use `key | 1`) went to `backend` of `service`.
    @inlinable
    public func record(_ key: UInt64, service: Int, backend: Int, now: UInt32) {
        let slot = slots + (Int(truncatingIfNeeded: key) & mask)
        slot.pointee.key.store(0, ordering: .relaxed)
        slot.pointee.value.store(UInt64(truncatingIfNeeded: service) << 48 | UInt64(truncatingIfNeeded: backend & 0xFFFF) << 32
                                     | UInt64(now), ordering: .relaxed)
        slot.pointee.key.store(key | 1, ordering: .releasing)
    }

    /// The (service, backend) the datagram's first fragment went to, if recent.
    @inlinable
    public func lookup(_ key: UInt64, now: UInt32) -> (service: Int, backend: Int)? {
        let slot = slots + (Int(truncatingIfNeeded: key) & mask)
        guard slot.pointee.key.load(ordering: .acquiring) == key | 1 else { return nil }
        let value = slot.pointee.value.load(ordering: .relaxed)
        atomicMemoryFence(ordering: .acquiring)
        guard slot.pointee.key.load(ordering: .relaxed) == key | 1 else { return nil }
        guard now &- UInt32(truncatingIfNeeded: value) <= Self.lifetime else { return nil }
        return (Int(value >> 48), Int((value >> 32) & 0xFFFF))
    }
}
