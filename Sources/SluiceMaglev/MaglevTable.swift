/// A Maglev lookup table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
/// Balancer", NSDI 2016, §3.4): M slots, each holding the index of a backend, filled so that
/// every backend owns a share of slots proportional to its weight and a change of the backend set
/// moves few slots.
///
/// Invariants, once built (the object is never mutated afterwards, so any number of workers may
/// read it without synchronisation once it has been published, e.g. inside an RCU snapshot):
/// - `size` (M) is prime and in `sizeRange`.
/// - Every slot holds the index, in the caller's `backends` array, of a backend with weight > 0;
///   if no backend has weight > 0 there is no slot to return and every lookup answers `nil`.
/// - The table depends only on the set of (identity, weight) pairs and M: backends are sorted by
///   identity bytes before the fill, so the caller's order changes only the index numbering,
///   never which identity owns a slot.
/// - With equal weights each backend owns ⌊M/N⌋ or ⌈M/N⌉ slots (paper §3.4).
///
/// Building allocates and takes milliseconds; do it off the hot path. The lookup,
/// `backend(forHash:)`, is one multiply, one shift and one load.
public final class MaglevTable: @unchecked Sendable {
    // @unchecked Sendable: all stored properties are `let`; the entry buffer is written only in
    // `init` and freed only in `deinit`, so concurrent readers never see a write.

    /// The paper's production default (§5.3).
    public static let defaultSize = 65537
    /// The paper's "large" table (§5.3), better balance and less disruption for ~1000 backends.
    public static let largeSize = 655373
    /// Accepted M: from the smallest prime with a non-trivial skip range to the largest prime
    /// below 2^24 (a 32 MiB table); the lookup's multiply-shift needs M < 2^32.
    public static let sizeRange = 3...16_777_213
    /// Entries are `UInt16`; `noBackend` (0xFFFF) marks an empty slot during the fill.
    public static let maximumBackends = 65535
    public static let noBackend: UInt16 = .max

    /// M, the number of slots.
    public let size: Int
    /// N, the number of backends given (weight-0 backends included).
    public let backendCount: Int

    /// `lookupSlots` entries; each `< backendCount`, or `noBackend` when no backend is active.
    @usableFromInline let entries: UnsafeMutablePointer<UInt16>
    /// M when some backend has weight > 0; 1 otherwise (a single `noBackend` slot).
    @usableFromInline let lookupSlots: UInt64

    /// Builds the table for `backends` (indices into this array are what lookups return).
    /// - Throws: `MaglevError` when M is not an accepted prime, there are more than
    ///   `maximumBackends` backends, or an identity is empty or repeated.
    public convenience init(backends: [MaglevBackend], size: Int = MaglevTable.defaultSize) throws {
        try Self.validate(size: size)
        guard backends.count <= Self.maximumBackends else { throw MaglevError.tooManyBackends(backends.count) }
        if let empty = backends.firstIndex(where: { $0.identity.isEmpty }) {
            throw MaglevError.emptyIdentity(backend: empty)
        }
        // Deterministic fill order: ascending identity bytes (lexicographic, unsigned).
        let order = backends.indices.sorted { backends[$0].identity.lexicographicallyPrecedes(backends[$1].identity) }
        for k in order.indices.dropFirst() where backends[order[k]].identity == backends[order[k - 1]].identity {
            throw MaglevError.duplicateIdentity(backend: max(order[k], order[k - 1]), sameAs: min(order[k], order[k - 1]))
        }
        let turns = order.map { i -> MaglevFillTurn in
            let p = MaglevPermutation.offsetAndSkip(identity: backends[i].identity, size: size)
            return MaglevFillTurn(offset: p.offset, skip: p.skip, weight: backends[i].weight, entry: UInt16(i))
        }
        self.init(validatedSize: size, backendCount: backends.count, turns: turns)
    }

    /// Builds from explicit preference lists, in fill order. `size` must already be valid and
    /// every skip in 1..<size (so each list is a permutation). Used by `init(backends:size:)`
    /// and by the test that replays the paper's Table 1 with its stated (offset, skip) pairs.
    init(validatedSize size: Int, backendCount: Int, turns: [MaglevFillTurn]) {
        self.size = size
        self.backendCount = backendCount
        let active = turns.contains { $0.weight > 0 }
        let slots = active ? size : 1
        lookupSlots = UInt64(slots)
        entries = .allocate(capacity: slots)
        entries.initialize(repeating: Self.noBackend, count: slots)
        if active { Self.fill(entries, size: size, turns: turns) }
    }

    deinit {
        entries.deallocate()
    }

    /// Whether `size` is an accepted table size.
    public static func validate(size: Int) throws {
        guard sizeRange.contains(size) else { throw MaglevError.tableSizeOutOfRange(size) }
        guard isPrime(size) else { throw MaglevError.tableSizeNotPrime(size) }
    }

    /// Trial division; M ≤ 2^24 needs divisors up to 4096 only.
    public static func isPrime(_ n: Int) -> Bool {
        if n < 2 { return false }
        if n < 4 { return true }
        if n % 2 == 0 { return false }
        var d = 3
        while d * d <= n {
            if n % d == 0 { return false }
            d += 2
        }
        return true
    }

    /// Pseudocode 1 of paper §3.4 with weighted turns.
    ///
    /// Backends take turns in the given order; in each turn a backend walks its preference list
    /// (offset, offset+skip, … mod M) from where it stopped to the first empty slot and takes it.
    /// Weights follow Katran's `MaglevHashV2::generateHashRing` (facebookincubator/katran,
    /// katran/lib/MaglevHashV2.cpp): each round every backend adds its weight to a credit, and
    /// takes a turn only when the credit reaches the largest weight, which then is subtracted.
    /// So per round a backend takes weight/maxWeight turns on average, a weight-0 backend never
    /// takes one, and with equal weights every backend takes a turn every round, which is exactly
    /// Pseudocode 1. The fill stops when all M slots are taken.
    ///
    /// Terminates: some turn has weight > 0 (the caller checks), so each round places ≥ 1 entry,
    /// and a walk always finds an empty slot while one remains, because skip is coprime to the
    /// prime M, so a preference list visits every slot.
    static func fill(_ entries: UnsafeMutablePointer<UInt16>, size: Int, turns: [MaglevFillTurn]) {
        let active = turns.filter { $0.weight > 0 }
        let maxWeight = UInt64(active.map(\.weight).max()!)
        let m = UInt32(size)
        var position = active.map { UInt32($0.offset) }   // permutation[i][next[i]]
        let skip = active.map { UInt32($0.skip) }
        let weight = active.map { UInt64($0.weight) }
        let value = active.map(\.entry)
        var credit = [UInt64](repeating: 0, count: active.count)
        var filled = 0
        position.withUnsafeMutableBufferPointer { position in
            credit.withUnsafeMutableBufferPointer { credit in
                while true {
                    for i in 0..<active.count {
                        credit[i] += weight[i]
                        guard credit[i] >= maxWeight else { continue }
                        credit[i] -= maxWeight
                        var c = position[i]
                        // Safe: c < m = size, the number of entries allocated.
                        while entries[Int(c)] != noBackend {
                            c += skip[i]
                            if c >= m { c -= m }
                        }
                        entries[Int(c)] = value[i]
                        c += skip[i]
                        if c >= m { c -= m }
                        position[i] = c
                        filled += 1
                        if filled == size { return }
                    }
                }
            }
        }
    }

    /// The slot a flow hash selects: the high 32 bits scaled to 0..<slots by one multiply and
    /// shift (Lemire's multiply-shift range reduction), in place of a 64-bit modulo. Slot counts
    /// differ by at most one hash value in 2^32/M, a bias below 2·10⁻⁵ at M = 65537.
    @inlinable @inline(__always)
    public static func slot(forHash hash: UInt64, slots: UInt64) -> Int {
        Int(truncatingIfNeeded: ((hash &>> 32) &* slots) &>> 32)
    }

    /// The backend for a flow hash: its index in the array the table was built from, or `nil`
    /// when no backend has weight > 0. Hot path: no allocation, no reference counting, no lock.
    @inlinable @inline(__always)
    public func backend(forHash hash: UInt64) -> Int? {
        let e = entry(forHash: hash)
        return e == Self.noBackend ? nil : Int(truncatingIfNeeded: e)
    }

    /// The raw entry for a flow hash: a backend index, or `noBackend` (for callers that keep
    /// 16-bit indices, such as a flow table).
    @inlinable @inline(__always)
    public func entry(forHash hash: UInt64) -> UInt16 {
        // Safe: slot(forHash:) < lookupSlots (it is ⌊h·S/2^32⌋ with h < 2^32), and `entries`
        // holds lookupSlots initialised elements for the lifetime of self.
        entries[Self.slot(forHash: hash, slots: lookupSlots)]
    }

    /// The backend index at slot `slot` (0..<size), `nil` when no backend is active. Checked;
    /// for tests, reports and diffs, not for the hot path.
    public func backend(atSlot slot: Int) -> Int? {
        precondition((0..<size).contains(slot), "slot \(slot) outside 0..<\(size)")
        let e = entries[lookupSlots == 1 ? 0 : slot]
        return e == Self.noBackend ? nil : Int(e)
    }

    /// All M slots, as backend indices (`nil` = no backend). Allocates; not for the hot path.
    public var slots: [Int?] { (0..<size).map { backend(atSlot: $0) } }

    /// How many slots each backend owns, indexed like the `backends` array.
    public func entryCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: backendCount)
        guard lookupSlots == UInt64(size) else { return counts }
        for s in 0..<size { counts[Int(entries[s])] += 1 }
        return counts
    }
}

/// One backend's input to the fill: its preference list (offset, skip), weight, and the value
/// its slots receive.
struct MaglevFillTurn {
    var offset: Int
    var skip: Int
    var weight: UInt32
    var entry: UInt16
}
