import Synchronization
import SluiceCore

/// Where the first fragment of a datagram went, so that its later fragments — which carry no
/// ports and so cannot be balanced or matched by their 5-tuple — follow it, in both directions:
/// a client's datagram to its backend, a backend's reply to its client (VPP lb and Katran
/// handle only first fragments; IPVS relies on defragmentation; Sluice keeps this small table).
///
/// A direct-mapped cache shared by all workers (under RSS the later fragments of a datagram may
/// land on another queue than its first): the key is the keyed flow hash of (source,
/// destination, protocol, IP identification) as the fragments arrive, so a crafted
/// identification cannot aim at a slot. A slot holds three atomic words, written under Boehm's
/// seqlock ("Can seqlocks get along with programming language memory models?", 2012) with the
/// key word as the sequence: its top 8 bits count the slot's writes, so that even a rewrite of
/// the same key changes it. A writer claims the slot by swapping the word for `busy` (a CAS, so
/// two workers never write one slot at once: the loser skips its record, as recording is best
/// effort), then a release fence, the record, and the new word with a release store; the reader
/// loads the word with acquire, the record, an acquire fence, then the word again: a write
/// meanwhile shows as a changed word and reads as a miss. Entries older than `lifetime` seconds
/// are misses (RFC 791 reassembly gives up on a datagram after 15 s at most; fragments of one
/// datagram arrive within milliseconds).
public final class FragmentTable: @unchecked Sendable {
    public static let lifetime: UInt32 = 5
    /// A process-wide table for tools and tests that do not pass their own (sluiced does).
    public static let standalone = FragmentTable(capacity: 1024)

    /// What the first fragment's rewrite needs to be repeated on the later ones.
    public struct Record: Equatable, Sendable {
        public enum Direction: UInt8, Sendable {
            /// A client's datagram to a VIP: the later fragments go to `backend`.
            case toBackend = 1
            /// A backend's reply: the later fragments go to the client from the VIP.
            case toClient = 2
        }
        public var direction: Direction
        /// The service's stable id.
        public var service: Int
        /// toBackend: the backend's stable id (16 bits).
        public var backend: Int
        /// full-NAT only. toBackend: the flow's source pool index; toClient: the forward entry
        /// that the return entry names, `slot << 16 | generation tag` (48 bits).
        public var detail: UInt64

        @inlinable
        public init(direction: Direction, service: Int, backend: Int = 0, detail: UInt64 = 0) {
            self.direction = direction
            self.service = service
            self.backend = backend
            self.detail = detail
        }
    }

    /// The key word while a writer owns the slot: even, so never a key (`key | 1`), nor empty (0).
    @usableFromInline static let busy: UInt64 = 2
    /// The key bits of the key word; the 8 above them count the slot's writes.
    @usableFromInline static let keyMask: UInt64 = (1 << 56) - 1

    @usableFromInline
    struct Slot: ~Copyable {
        @usableFromInline let key = Atomic<UInt64>(0)
        /// service << 48 | backend << 32 | seen-at seconds
        @usableFromInline let value = Atomic<UInt64>(0)
        /// direction << 56 | detail
        @usableFromInline let detail = Atomic<UInt64>(0)
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

    /// Records where the datagram whose keyed hash is `key` went (its top 8 bits are not kept).
    @inlinable
    public func record(_ key: UInt64, _ record: Record, now: UInt32) {
        let slot = slots + (Int(truncatingIfNeeded: key) & mask)
        let current = slot.pointee.key.load(ordering: .relaxed)
        guard current != Self.busy,
              slot.pointee.key.compareExchange(expected: current, desired: Self.busy, ordering: .relaxed).exchanged
        else { return }   // another worker is writing this slot now
        atomicMemoryFence(ordering: .releasing)
        let word = (key | 1) & Self.keyMask | ((current >> 56) &+ 1) << 56
        slot.pointee.value.store(UInt64(truncatingIfNeeded: record.service) << 48
                                     | UInt64(truncatingIfNeeded: record.backend & 0xFFFF) << 32 | UInt64(now),
                                 ordering: .relaxed)
        slot.pointee.detail.store(UInt64(record.direction.rawValue) << 56 | record.detail & 0xFF_FFFF_FFFF_FFFF,
                                  ordering: .relaxed)
        slot.pointee.key.store(word, ordering: .releasing)
    }

    /// Where the datagram's first fragment went, if recent.
    @inlinable
    public func lookup(_ key: UInt64, now: UInt32) -> Record? {
        let slot = slots + (Int(truncatingIfNeeded: key) & mask)
        let word = slot.pointee.key.load(ordering: .acquiring)
        guard word & Self.keyMask == (key | 1) & Self.keyMask else { return nil }
        let value = slot.pointee.value.load(ordering: .relaxed)
        let detail = slot.pointee.detail.load(ordering: .relaxed)
        atomicMemoryFence(ordering: .acquiring)
        guard slot.pointee.key.load(ordering: .relaxed) == word else { return nil }
        guard now &- UInt32(truncatingIfNeeded: value) <= Self.lifetime,
              let direction = Record.Direction(rawValue: UInt8(truncatingIfNeeded: detail >> 56)) else { return nil }
        return Record(direction: direction, service: Int(value >> 48), backend: Int((value >> 32) & 0xFFFF),
                      detail: detail & 0xFF_FFFF_FFFF_FFFF)
    }
}
