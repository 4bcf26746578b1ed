import CSluiceIntrinsics
import Synchronization

/// Who may insert into a table.
public enum FlowTableSharing: UInt8, Sendable, CustomStringConvertible {
    /// Any number of threads insert, look up, update, remove and expire concurrently.
    /// An insert claims its slot with a CAS, publishes it PENDING, checks the probe window for a
    /// racing insert of the same key, and commits with a second CAS (see `FlowTableView.insert`).
    case shared
    /// One owner thread inserts (a worker with its own table, fed by symmetric RSS); any thread
    /// may still look up, update, remove, expire, list and flush. The owner's insert skips the
    /// duplicate protocol: its claim of a free slot is a plain store and it publishes VALID
    /// directly. Inserting from two threads into a `perWorker` table is a bug (it may duplicate a
    /// key); every other operation stays lock-free and safe.
    case perWorker

    public var description: String { self == .shared ? "shared" : "per-worker" }
}

/// What a flow entry stores besides its key and state: the backend and one caller-defined word.
///
/// `aux` is room for NAT data: for a full-NAT forward entry, the allocated local port (low 16
/// bits) and the local address's pool index (high 16 bits); for a reverse entry, whatever the
/// caller needs to restore the client's tuple (for example the forward entry's slot).
/// The value of a live entry never changes (it is written once, before the entry is published),
/// so a reader gets it with one atomic load; to change the backend of a flow, `rebind` replaces
/// the entry.
@frozen
public struct FlowValue: Equatable, Sendable {
    public var backend: UInt32
    public var aux: UInt32

    @inlinable public init(backend: UInt32, aux: UInt32 = 0) {
        self.backend = backend
        self.aux = aux
    }

    @inlinable init(word: UInt64) {
        backend = UInt32(truncatingIfNeeded: word)
        aux = UInt32(truncatingIfNeeded: word >> 32)
    }

    @inlinable var word: UInt64 { UInt64(backend) | UInt64(aux) << 32 }
}

/// A reference to one incarnation of a table entry, with the value read when it was found.
/// 24 bytes, trivially copyable, no reference counting. It stays safe to use after the entry is
/// removed or its slot reused: `update` and `remove` then fail (the slot's generation differs).
@frozen
public struct FlowHandle: Sendable {
    /// The slot index (`bucket * 7 + index`), stable for the entry's lifetime.
    public let slot: Int
    /// The control word last observed or written by this handle's owner.
    @usableFromInline var control: UInt64
    /// Backend and NAT data, immutable for the entry's lifetime.
    public let value: FlowValue

    @inlinable init(slot: Int, control: UInt64, value: FlowValue) {
        self.slot = slot
        self.control = control
        self.value = value
    }

    @inlinable public var state: FlowState { Ctrl.state(control) }
    @inlinable public var replySeen: Bool { Ctrl.replySeen(control) }
    /// The expiry tick modulo 2²⁴.
    @inlinable public var deadline: UInt32 { Ctrl.deadline(control) }
    /// Ticks before expiry as of `now` (0 if expired).
    @inlinable public func remaining(now: UInt32) -> UInt32 { Ctrl.remaining(control, now: now) }
    /// True when this handle came from a racing insert that had not committed yet.
    @inlinable public var isPending: Bool { Ctrl.life(control) == Ctrl.pending }
    /// The low 16 bits of the entry's incarnation: with `slot`, a reference another entry can
    /// store (`FlowTableView.entry(slot:generationTag:)` resolves it, or says it is gone).
    @inlinable public var generationTag: UInt16 { UInt16(truncatingIfNeeded: Ctrl.gen(control) >> Ctrl.genShift) }
}

/// The outcome of `insert`.
@frozen
public enum FlowInsertResult: Sendable {
    /// A new entry (in a free slot or one whose entry had expired).
    case inserted(FlowHandle)
    /// A new entry that displaced a live half-open or closed TCP entry in `evicted` state: the
    /// table is crowded; count it.
    case replaced(FlowHandle, evicted: FlowState)
    /// The key was already present (or a racing insert of the same key won): use its value.
    case existing(FlowHandle)
    /// No free, expired or evictable slot in the key's probe window. Forward statelessly
    /// (Maglev alone) and count it. Also returned after `FlowTableView.maxInsertAttempts`
    /// lost races in a row, which needs pathological contention on one bucket.
    case full

    @inlinable public var handle: FlowHandle? {
        switch self {
        case .inserted(let h), .replaced(let h, _), .existing(let h): h
        case .full: nil
        }
    }
}

/// What one `expire` call did.
@frozen
public struct FlowExpiry: Sendable, Equatable {
    /// Buckets visited (7 slots each).
    public var visited: Int
    /// Entries freed.
    public var freed: Int
    /// True when this call visited the table's last bucket: a full pass ended.
    public var passCompleted: Bool
}

/// The hot-path view of a `FlowTable`: raw pointers and sizes, trivially copyable, no reference
/// counting. Every operation is lock-free; lookups never write.
///
/// A worker keeps a copy in its own state and calls it per packet; the `FlowTable` that owns the
/// memory must outlive every copy (the data plane keeps it for the process lifetime, or retires
/// it through its RCU scheme like any other snapshot).
///
/// ## Hash bits
/// The caller passes a 64-bit hash of the key (`ConntrackKey.hash(_:)` or the Maglev flow hash):
/// the high 32 bits pick the home bucket (Lemire's multiply-shift range reduction, no division, any
/// bucket count), the low 12 bits are the tag.
///
/// ## Memory orderings (Swift `Synchronization`, C++11 model)
/// - Writer, claiming a slot: CAS FREE/expired → BUSY with `acquiringAndReleasing` (a plain
///   `relaxed` store for the `perWorker` owner on a FREE slot, which no other thread may claim);
///   then a `releasing` fence; then the key and value words with `relaxed` stores; then the
///   publishing store of the control word (`releasing` VALID for `perWorker`, `sequentiallyConsistent`
///   PENDING for `shared`). This is the seqlock writer of Boehm, "Can seqlocks get along with
///   programming language memory models?" (MSPC 2012): the fence orders the generation bump
///   before the data.
/// - Reader: control word `acquiring`; key and value `relaxed`; an `acquiring` fence; control
///   word again `relaxed`; the read stands if the generation is unchanged and the slot still
///   live. All shared memory is accessed atomically, so there is no data race in the language
///   model (and nothing for ThreadSanitizer to report); on x86-64 every load and the fences are
///   plain `mov`s and compiler barriers.
/// - Duplicate check (`shared` inserts): the PENDING store, the probe-sequence loads and the
///   home bucket's displacement record (its update and its load) are `sequentiallyConsistent`.
///   Of two racing inserts of one key, each publishes before it scans, so in the single total
///   order of these operations at least one scan sees the other (the store-buffer / Dekker
///   argument; a displaced racer recorded itself at home before publishing, so a scan that read
///   the record without it ran before that racer published and will be seen by it). The insert
///   that sees decides by position (earlier probe position wins; a live VALID entry always wins)
///   and, if it wins, frees the loser's PENDING slot by CAS; the loser's commit CAS then fails
///   and it retries.
/// - Updates (state, deadline), removals and expiry: CAS on the whole control word, so none can
///   resurrect a slot that another thread freed or reclaimed (the generation differs).
/// - Displacement records (`Meta`): updated by CAS, incremented (`sequentiallyConsistent`)
///   before the slot they account for is claimed and decremented (`releasing`) after it is
///   freed, so a record never understates; lookups read it `acquiring`.
@frozen
public struct FlowTableView: @unchecked Sendable {
    // @unchecked Sendable: the pointers refer to memory owned by a `FlowTable` and accessed only
    // through `Atomic` operations, from any thread, per the protocol documented above.

    /// `bucketCount × 8` words: per bucket the displacement record (`Meta`), then 7 control words.
    @usableFromInline let buckets: UnsafeMutablePointer<Atomic<UInt64>>
    /// `bucketCount × 7 × 6` words: per slot 5 key words and the value word.
    @usableFromInline let entries: UnsafeMutablePointer<Atomic<UInt64>>
    /// The expiry sweep's cursor (a bucket counter that only grows), on its own cache line.
    @usableFromInline let cursor: UnsafeMutablePointer<Atomic<UInt64>>
    /// 16 per-state timeouts in ticks, indexed by `FlowState.rawValue`, on one cache line.
    @usableFromInline let timeoutTicks: UnsafeMutablePointer<Atomic<UInt32>>
    public let bucketCount: Int
    /// min(15, bucketCount − 1).
    @usableFromInline let maxDistance: Int
    public let sharing: FlowTableSharing

    /// Inserts give up with `.full` after this many lost claim races in a row.
    public static let maxInsertAttempts = 64

    @usableFromInline
    init(buckets: UnsafeMutablePointer<Atomic<UInt64>>, entries: UnsafeMutablePointer<Atomic<UInt64>>,
         cursor: UnsafeMutablePointer<Atomic<UInt64>>, timeouts: UnsafeMutablePointer<Atomic<UInt32>>,
         bucketCount: Int, sharing: FlowTableSharing) {
        self.buckets = buckets
        self.entries = entries
        self.cursor = cursor
        self.timeoutTicks = timeouts
        self.bucketCount = bucketCount
        self.maxDistance = min(Layout.maxProbeDistance, bucketCount - 1)
        self.sharing = sharing
    }

    /// Slots in the table (7 per bucket).
    @inlinable public var slotCount: Int { bucketCount &* Layout.slotsPerBucket }

    // MARK: Addressing

    @inlinable @inline(__always)
    func homeBucket(_ hash: UInt64) -> Int {
        // Lemire, "Fast random integer generation in an interval" (2019): (x · n) >> 32 maps a
        // uniform 32-bit x onto 0..<n; bucketCount < 2³² so the product fits in 64 bits.
        Int(truncatingIfNeeded: ((hash >> 32) &* UInt64(truncatingIfNeeded: bucketCount)) >> 32)
    }

    @inlinable @inline(__always)
    static func tag(_ hash: UInt64) -> UInt64 { hash & 0xFFF }

    /// The double-hashing step of a tag: 1...bucketCount − 1 (1 when there is one bucket). The
    /// tag is scrambled by an odd multiplier first so that the step and `Meta.nibble` (both
    /// functions of the tag, so that a slot's home is recomputable from its control word) are not
    /// the same high bits.
    @inlinable @inline(__always)
    func step(_ tag: UInt64) -> Int {
        1 &+ Int(truncatingIfNeeded: (((tag &* 2531) & 0xFFF) &* UInt64(truncatingIfNeeded: bucketCount &- 1)) >> 12)
    }

    /// The next bucket of a probe sequence: b + step (mod bucketCount), with step < bucketCount.
    @inlinable @inline(__always)
    func advance(_ b: Int, by step: Int) -> Int {
        let x = b &+ step
        return x >= bucketCount ? x &- bucketCount : x
    }

    /// The home bucket of the entry whose control word is `c`, stored in bucket `b`.
    @inlinable
    func home(ofBucket b: Int, control c: UInt64) -> Int {
        let s = step((c & Ctrl.tagMask) >> Ctrl.tagShift)
        var x = b
        for _ in 0..<Ctrl.dist(c) {
            x &-= s
            if x < 0 { x &+= bucketCount }
        }
        return x
    }

    /// The 8-word header line of bucket `b`; word 0 is its displacement record (`Meta`).
    @inlinable @inline(__always)
    func header(_ b: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        // Safe: every caller passes 0 <= b < bucketCount; the array holds bucketCount × 8 words.
        buckets + b &* Layout.headerWords
    }

    /// The 6 words of slot `i` of bucket `b`.
    @inlinable @inline(__always)
    func entry(_ b: Int, _ i: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        // Safe: 0 <= b < bucketCount and 0 <= i < 7; the array holds bucketCount × 7 × 6 words.
        entries + (b &* Layout.slotsPerBucket &+ i) &* Layout.entryWords
    }

    @inlinable @inline(__always)
    func control(slot: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        let b = slot / Layout.slotsPerBucket
        // Safe: a handle's slot was produced by this table, so b < bucketCount.
        return header(b) + (1 &+ slot &- b &* Layout.slotsPerBucket)
    }

    @inlinable @inline(__always)
    func timeout(_ state: FlowState) -> UInt32 {
        // Safe: rawValue <= 14 < 16 entries.
        timeoutTicks[Int(state.rawValue)].load(ordering: .relaxed)
    }

    // MARK: Prefetch (VPP pattern)

    /// Starts loading the home bucket's header line of `hash` into the cache. Call it for packet
    /// `i + D` while processing packet `i` (D ≈ 4–8 for a 32-packet burst) so that `lookup`
    /// finds the line in L1 — VPP `lb` node.c prefetches its flow-table bucket the same way.
    @inlinable @inline(__always)
    public func prefetch(hash: UInt64) {
        // Safe: a prefetch is a hint that never faults; the address is inside the header array.
        sluice_prefetch_read(UnsafeRawPointer(header(homeBucket(hash))))
    }

    /// The second stage: once the header line is cached (issued `prefetch` a few packets ago),
    /// reads its tags and prefetches the entry lines of the home-bucket slots whose tag matches,
    /// so that the key comparison does not wait either (VPP `clib_bihash` prefetches bucket then
    /// data the same way). When no tag matches — a new flow — it prefetches the first free
    /// slot's entry for writing instead, where `insert` will most likely put the key.
    /// Costs seven L1 loads and at most two prefetch instructions per match.
    @inlinable @inline(__always)
    public func prefetchEntry(hash: UInt64) {
        let b = homeBucket(hash)
        let h = header(b)
        let want = Ctrl.probeBits(tag: Self.tag(hash), dist: 0, life: Ctrl.valid)
        var matches: UInt32 = 0
        var free: UInt32 = 0
        for i in 0..<Layout.slotsPerBucket {
            let c = h[1 &+ i].load(ordering: .relaxed)
            matches |= (c & Ctrl.probeMask == want ? 1 : 0) << UInt32(i)
            free |= (c & Ctrl.lifeMask == 0 ? 1 : 0) << UInt32(i)
        }
        if matches == 0 {
            guard free != 0 else { return }
            // Safe: write hints inside the first free slot's 48 bytes (maybe two cache lines).
            let e = UnsafeRawPointer(entry(b, free.trailingZeroBitCount))
            sluice_prefetch_write(e)
            sluice_prefetch_write(e + (Layout.entryBytes - 1))
            return
        }
        repeat {
            // Safe: read hints inside slot i's 48 bytes, which may straddle two cache lines.
            let e = UnsafeRawPointer(entry(b, matches.trailingZeroBitCount))
            sluice_prefetch_read(e)
            sluice_prefetch_read(e + (Layout.entryBytes - 1))
            matches &= matches &- 1
        } while matches != 0
    }

    // MARK: Reading a slot

    @inlinable @inline(__always)
    func keyEquals(_ e: UnsafeMutablePointer<Atomic<UInt64>>, _ key: ConntrackKey) -> Bool {
        let d = (e[0].load(ordering: .relaxed) ^ key.w0) | (e[1].load(ordering: .relaxed) ^ key.w1)
            | (e[2].load(ordering: .relaxed) ^ key.w2) | (e[3].load(ordering: .relaxed) ^ key.w3)
            | (e[4].load(ordering: .relaxed) ^ key.w4)
        return d == 0
    }

    /// Compares slot (b, i), whose control word was `c` (PENDING or VALID), with `key`.
    /// Returns the revalidated control word and the value word if the slot held `key` for the
    /// whole read, else nil (another key, or the slot was freed or reused meanwhile).
    @inlinable @inline(__always)
    func match(_ b: Int, _ i: Int, _ key: ConntrackKey, control c: UInt64) -> (control: UInt64, value: UInt64)? {
        let e = entry(b, i)
        guard keyEquals(e, key) else { return nil }
        let v = e[5].load(ordering: .relaxed)
        // Seqlock read side: order the data loads before the second control load.
        atomicMemoryFence(ordering: .acquiring)
        let c2 = header(b)[1 &+ i].load(ordering: .relaxed)
        guard Ctrl.gen(c2) == Ctrl.gen(c), Ctrl.life(c2) >= Ctrl.pending else { return nil }
        return (c2, v)
    }

    // MARK: Lookup

    /// Finds the live entry for `key`. An entry whose deadline has passed counts as absent (the
    /// next insert reclaims it). Never writes; never blocks; safe from any thread.
    ///
    /// Cost: one header line, one entry line on a tag match; more header lines only when the
    /// key is not at home and keys with its tag nibble were displaced from there.
    @inlinable @inline(__always)
    public func lookup(_ key: ConntrackKey, hash: UInt64, now: UInt32) -> FlowHandle? {
        guard let h = find(key, hash: hash), !Ctrl.isExpired(h.control, now: now) else { return nil }
        return h
    }

    /// The VALID entry for `key`, expired or not.
    @inlinable @inline(__always)
    func find(_ key: ConntrackKey, hash: UInt64) -> FlowHandle? {
        let tag = Self.tag(hash)
        let home = homeBucket(hash)
        if let h = scan(home, key, tag: tag, dist: 0) { return h }
        // Not at home: probe on only if keys with this tag nibble were displaced from here.
        let limit = Meta.probeLimit(header(home)[0].load(ordering: .acquiring), Meta.nibble(tag))
        guard limit > 0 else { return nil }
        let s = step(tag)
        var b = home
        for d in 1...limit {
            b = advance(b, by: s)
            if let h = scan(b, key, tag: tag, dist: d) { return h }
        }
        return nil
    }

    /// The VALID entry for `key` at probe distance `d` in bucket `b`, if any.
    @inlinable @inline(__always)
    func scan(_ b: Int, _ key: ConntrackKey, tag: UInt64, dist d: Int) -> FlowHandle? {
        let h = header(b)
        let want = Ctrl.probeBits(tag: tag, dist: d, life: Ctrl.valid)
        // Compare all seven tags first, without branches (the position of a match is random, so
        // a branch per slot would mispredict on most lookups), then visit the matches: usually
        // none (a miss) or exactly one (a hit) — SwissTable's group match, in scalar form.
        var matches: UInt32 = 0
        for i in 0..<Layout.slotsPerBucket {
            let c = h[1 &+ i].load(ordering: .acquiring)
            matches |= (c & Ctrl.probeMask == want ? 1 : 0) << UInt32(i)
        }
        while matches != 0 {
            let i = matches.trailingZeroBitCount
            matches &= matches &- 1
            let c = h[1 &+ i].load(ordering: .acquiring)
            guard c & Ctrl.probeMask == want, let m = match(b, i, key, control: c),
                  Ctrl.life(m.control) == Ctrl.valid else { continue }
            return FlowHandle(slot: b &* Layout.slotsPerBucket &+ i, control: m.control, value: FlowValue(word: m.value))
        }
        return nil
    }

    /// The key and a handle of the live entry at `slot` whose incarnation has `generationTag`
    /// (a reference kept by another entry: full-NAT's return entry names its forward entry so).
    /// Nil when that entry was removed or expired and its slot freed or reused. Seqlock read:
    /// control word, key and value, control word again.
    @inlinable
    public func entry(slot: Int, generationTag: UInt16) -> (key: ConntrackKey, handle: FlowHandle)? {
        guard slot >= 0, slot < slotCount,
              let read = readValid(slot / Layout.slotsPerBucket, slot % Layout.slotsPerBucket), read.stable,
              UInt16(truncatingIfNeeded: Ctrl.gen(read.control) >> Ctrl.genShift) == generationTag else { return nil }
        return (read.key, FlowHandle(slot: slot, control: read.control, value: read.value))
    }

    /// One seqlock read of slot (b, i): control word, key and value, control word again (the
    /// reader of Boehm's seqlock, see the type's comment). Nil when the slot holds no VALID
    /// entry; `stable` is false when a writer changed it meanwhile (read again, or give up).
    @inlinable @inline(__always)
    func readValid(_ b: Int, _ i: Int) -> (key: ConntrackKey, value: FlowValue, control: UInt64, stable: Bool)? {
        let c = header(b)[1 &+ i].load(ordering: .acquiring)
        guard Ctrl.life(c) == Ctrl.valid else { return nil }
        let e = entry(b, i)
        let key = ConntrackKey(w0: e[0].load(ordering: .relaxed), w1: e[1].load(ordering: .relaxed),
                               w2: e[2].load(ordering: .relaxed), w3: e[3].load(ordering: .relaxed),
                               w4: e[4].load(ordering: .relaxed))
        let v = e[5].load(ordering: .relaxed)
        atomicMemoryFence(ordering: .acquiring)
        let c2 = header(b)[1 &+ i].load(ordering: .relaxed)
        return (key, FlowValue(word: v), c2, Ctrl.gen(c2) == Ctrl.gen(c) && Ctrl.life(c2) == Ctrl.valid)
    }

    // MARK: Insert

    /// Inserts `key` with the state its first packet gives (`FlowState.initial`), or returns the
    /// entry already there. See `insert(_:hash:value:state:replySeen:now:)`.
    @inlinable
    public func insert(_ key: ConntrackKey, hash: UInt64, value: FlowValue, event: FlowEvent,
                       now: UInt32) -> FlowInsertResult {
        insert(key, hash: hash, value: value, state: FlowState.initial(protocol: key.proto, event: event),
               replySeen: event.isReply, now: now)
    }

    /// A candidate slot for an insert. rank 3: this key's own expired entry; 2: free or expired;
    /// 1: a live evictable entry (the one closest to expiry wins); 0: none.
    @usableFromInline
    struct Candidate {
        @usableFromInline var bucket = 0
        @usableFromInline var index = 0
        @usableFromInline var dist = 0
        @usableFromInline var control: UInt64 = 0
        @usableFromInline var rank = 0
        @usableFromInline var remaining: UInt32 = 0
        @inlinable init() {}
        @inlinable init(_ b: Int, _ i: Int, _ d: Int, _ c: UInt64, rank: Int, remaining: UInt32 = 0) {
            bucket = b
            index = i
            dist = d
            control = c
            self.rank = rank
            self.remaining = remaining
        }
    }

    /// Insert-or-lookup. Returns `.existing` if a live entry for `key` exists (also one that a
    /// racing insert is committing), else claims a slot in the probe window — the first free or
    /// expired one, else the live evictable entry closest to expiry (`.replaced`) — else `.full`.
    /// Never allocates, never blocks; lock-free (a retry happens only when another thread made
    /// progress on the same bucket).
    ///
    /// Invariant kept: at most one PENDING-or-VALID entry per key, at probe distance
    /// 0...maxDistance from its home, and when displaced (distance ≥ 1) counted by its home's
    /// displacement record (`Meta`).
    @inlinable
    public func insert(_ key: ConntrackKey, hash: UInt64, value: FlowValue, state: FlowState,
                       replySeen: Bool = false, now: UInt32) -> FlowInsertResult {
        let tag = Self.tag(hash)
        let nibble = Meta.nibble(tag)
        let home = homeBucket(hash)
        let s = step(tag)
        let deadline = now &+ timeout(state)
        var attempts = 0
        while attempts < Self.maxInsertAttempts {
            attempts &+= 1
            // Phase 1: scan the probe sequence for the key (as far as it may have been displaced)
            // and for a slot to claim (as far as needed, up to maxDistance).
            let dupLimit = Meta.probeLimit(header(home)[0].load(ordering: .acquiring), nibble)
            var cand = Candidate()
            var b = home
            var d = 0
            scan: while true {
                let h = header(b)
                let keyBits = tag << Ctrl.tagShift | UInt64(truncatingIfNeeded: d) << Ctrl.distShift
                for i in 0..<Layout.slotsPerBucket {
                    let c = h[1 &+ i].load(ordering: .acquiring)
                    let life = Ctrl.life(c)
                    if life == Ctrl.free {
                        if cand.rank < 2 { cand = Candidate(b, i, d, c, rank: 2) }
                        continue
                    }
                    if life == Ctrl.busy { continue }
                    if c & (Ctrl.tagMask | Ctrl.distMask) == keyBits, let m = match(b, i, key, control: c) {
                        if Ctrl.life(m.control) == Ctrl.valid && Ctrl.isExpired(m.control, now: now) {
                            cand = Candidate(b, i, d, m.control, rank: 3)
                            break scan
                        }
                        return .existing(FlowHandle(slot: b &* Layout.slotsPerBucket &+ i, control: m.control,
                                                    value: FlowValue(word: m.value)))
                    }
                    guard life == Ctrl.valid, cand.rank < 2 else { continue }
                    if Ctrl.isExpired(c, now: now) {
                        cand = Candidate(b, i, d, c, rank: 2)
                    } else if Ctrl.state(c).isEvictable {
                        let r = Ctrl.remaining(c, now: now)
                        if cand.rank == 0 || r < cand.remaining { cand = Candidate(b, i, d, c, rank: 1, remaining: r) }
                    }
                }
                d &+= 1
                if d > maxDistance || (d > dupLimit && cand.rank >= 2) { break }
                b = advance(b, by: s)
            }
            guard cand.rank > 0 else { return .full }

            // Phase 2: record the displacement at home, then claim the slot.
            if cand.dist > 0 { noteDisplaced(home: home, nibble: nibble, dist: cand.dist) }
            let slotControl = header(cand.bucket) + (1 &+ cand.index)
            let mine = Ctrl.claimed(previous: cand.control, tag: tag, dist: cand.dist, state: state,
                                    replySeen: replySeen, deadline: deadline)
            let wasFree = Ctrl.life(cand.control) == Ctrl.free
            if sharing == .perWorker && wasFree {
                // Only the owner ever claims a FREE slot of a per-worker table.
                slotControl.pointee.store(mine, ordering: .relaxed)
            } else if !slotControl.pointee.compareExchange(expected: cand.control, desired: mine,
                                                           ordering: .acquiringAndReleasing).exchanged {
                if cand.dist > 0 { unnoteDisplaced(home: home, nibble: nibble) }
                continue
            }
            // The slot held an expired or evicted entry: undo that entry's displacement record.
            if !wasFree { releaseDisplaced(bucket: cand.bucket, control: cand.control) }

            // Phase 3: write key and value behind the generation bump (seqlock writer).
            atomicMemoryFence(ordering: .releasing)
            let e = entry(cand.bucket, cand.index)
            e[0].store(key.w0, ordering: .relaxed)
            e[1].store(key.w1, ordering: .relaxed)
            e[2].store(key.w2, ordering: .relaxed)
            e[3].store(key.w3, ordering: .relaxed)
            e[4].store(key.w4, ordering: .relaxed)
            e[5].store(value.word, ordering: .relaxed)
            let slot = cand.bucket &* Layout.slotsPerBucket &+ cand.index

            // Phase 4: publish.
            if sharing == .perWorker {
                let live = Ctrl.withLife(mine, Ctrl.valid)
                slotControl.pointee.store(live, ordering: .releasing)
                return Self.result(FlowHandle(slot: slot, control: live, value: value), cand)
            }
            let pending = Ctrl.withLife(mine, Ctrl.pending)
            slotControl.pointee.store(pending, ordering: .sequentiallyConsistent)
            if let winner = resolveDuplicates(key, tag: tag, home: home, dist: cand.dist, index: cand.index, now: now) {
                // A live entry or an earlier pending one holds the key: withdraw ours (unless the
                // winner already freed it, and with it our displacement record).
                if slotControl.pointee.compareExchange(expected: pending, desired: Ctrl.freed(pending),
                                                       ordering: .releasing).exchanged {
                    releaseDisplaced(bucket: cand.bucket, control: pending)
                }
                return .existing(winner)
            }
            let live = Ctrl.withLife(pending, Ctrl.valid)
            if slotControl.pointee.compareExchange(expected: pending, desired: live,
                                                   ordering: .acquiringAndReleasing).exchanged {
                return Self.result(FlowHandle(slot: slot, control: live, value: value), cand)
            }
            // An insert of the same key at an earlier probe position freed our PENDING slot (and
            // undid our displacement record): start over; phase 1 will find its entry.
        }
        return .full
    }

    @inlinable @inline(__always)
    static func result(_ h: FlowHandle, _ cand: Candidate) -> FlowInsertResult {
        cand.rank == 1 ? .replaced(h, evicted: Ctrl.state(cand.control)) : .inserted(h)
    }

    /// The shared-mode duplicate check, run after our slot at probe distance `dist`, index
    /// `index` was published PENDING. Scans the key's probe sequence — home, then as far as the
    /// home's record says keys with this nibble were displaced — with sequentially consistent
    /// loads. Returns the entry we must yield to, or nil if we won (after freeing expired or
    /// later PENDING copies).
    @inlinable
    func resolveDuplicates(_ key: ConntrackKey, tag: UInt64, home: Int, dist myDist: Int, index myIndex: Int,
                           now: UInt32) -> FlowHandle? {
        // Our own record (if displaced) is in this word already, so the limit covers our slot.
        let limit = Meta.probeLimit(header(home)[0].load(ordering: .sequentiallyConsistent), Meta.nibble(tag))
        let s = step(tag)
        var b = home
        for d in 0...limit {
            if d > 0 { b = advance(b, by: s) }
            let h = header(b)
            let keyBits = tag << Ctrl.tagShift | UInt64(truncatingIfNeeded: d) << Ctrl.distShift
            for i in 0..<Layout.slotsPerBucket where !(d == myDist && i == myIndex) {
                var c = h[1 &+ i].load(ordering: .sequentiallyConsistent)
                slot: while Ctrl.life(c) >= Ctrl.pending && c & (Ctrl.tagMask | Ctrl.distMask) == keyBits {
                    // A slot that changed incarnation while we read it was claimed after our
                    // PENDING store; its inserter's own scan will see us.
                    guard let m = match(b, i, key, control: c) else { break slot }
                    let live = Ctrl.life(m.control) == Ctrl.valid
                    if live ? !Ctrl.isExpired(m.control, now: now) : (d, i) < (myDist, myIndex) {
                        return FlowHandle(slot: b &* Layout.slotsPerBucket &+ i, control: m.control,
                                          value: FlowValue(word: m.value))
                    }
                    // An expired copy, or a PENDING one behind ours: free it.
                    let r = h[1 &+ i].compareExchange(expected: m.control, desired: Ctrl.freed(m.control),
                                                      ordering: .acquiringAndReleasing)
                    if r.exchanged {
                        releaseDisplaced(bucket: b, control: m.control)
                        break slot
                    }
                    c = r.original
                }
            }
        }
        return nil
    }

    /// Records at `home` that a key with this tag nibble is about to be claimed at distance
    /// `dist` ≥ 1. Sequentially consistent: the duplicate check relies on it (see above).
    @inlinable
    func noteDisplaced(home: Int, nibble: UInt64, dist: Int) {
        let w = header(home)
        var m = w[0].load(ordering: .relaxed)
        while true {
            let r = w[0].compareExchange(expected: m, desired: Meta.adding(m, nibble: nibble, dist: dist),
                                         ordering: .sequentiallyConsistent)
            if r.exchanged { return }
            m = r.original
        }
    }

    /// Undoes one `noteDisplaced` for `home` and `nibble`.
    @inlinable
    func unnoteDisplaced(home: Int, nibble: UInt64) {
        let w = header(home)
        var m = w[0].load(ordering: .relaxed)
        while true {
            let r = w[0].compareExchange(expected: m, desired: Meta.removing(m, nibble: nibble), ordering: .releasing)
            if r.exchanged { return }
            m = r.original
        }
    }

    /// After freeing (or reclaiming) the slot in bucket `b` whose control word was `c`: if that
    /// entry was displaced, remove its record from its home bucket.
    @inlinable @inline(__always)
    func releaseDisplaced(bucket b: Int, control c: UInt64) {
        guard Ctrl.dist(c) > 0 else { return }
        unnoteDisplaced(home: home(ofBucket: b, control: c), nibble: Meta.nibble((c & Ctrl.tagMask) >> Ctrl.tagShift))
    }

    // MARK: Update, remove

    /// Applies a packet to the entry: the protocol state machine, then the deadline
    /// (`now` + the new state's timeout). Writes (one CAS) only when the state, the reply flag or
    /// the deadline changes — with one-second ticks, at most once per second per flow.
    /// Returns false if the entry is gone (removed, expired and reclaimed): treat as a miss.
    @inlinable @inline(__always)
    public func update(_ handle: inout FlowHandle, event: FlowEvent, now: UInt32) -> Bool {
        let p = control(slot: handle.slot)
        var c = handle.control
        while true {
            if Ctrl.life(c) != Ctrl.valid {
                // The handle may be from a racing insert that had not committed yet.
                let a = p.pointee.load(ordering: .relaxed)
                guard Ctrl.gen(a) == Ctrl.gen(c), Ctrl.life(a) >= Ctrl.pending else { return false }
                if Ctrl.life(a) == Ctrl.pending { return true }  // its owner commits; skip this update
                c = a
            }
            let state = Ctrl.state(c).next(event, replySeen: Ctrl.replySeen(c))
            let desired = Ctrl.with(c, state: state, replySeen: Ctrl.replySeen(c) || event.isReply,
                                    deadline: now &+ timeout(state))
            if desired == c {
                handle.control = c
                return true
            }
            let r = p.pointee.compareExchange(expected: c, desired: desired, ordering: .relaxed)
            if r.exchanged {
                handle.control = desired
                return true
            }
            guard Ctrl.gen(r.original) == Ctrl.gen(c), Ctrl.life(r.original) == Ctrl.valid else { return false }
            c = r.original
        }
    }

    /// Removes the entry `handle` refers to, if it is still that incarnation. True if this call
    /// removed it.
    @inlinable @discardableResult
    public func remove(_ handle: FlowHandle) -> Bool {
        let p = control(slot: handle.slot)
        var c = p.pointee.load(ordering: .relaxed)
        while Ctrl.gen(c) == Ctrl.gen(handle.control) && Ctrl.life(c) == Ctrl.valid {
            let r = p.pointee.compareExchange(expected: c, desired: Ctrl.freed(c), ordering: .releasing)
            if r.exchanged {
                releaseDisplaced(bucket: handle.slot / Layout.slotsPerBucket, control: c)
                return true
            }
            c = r.original
        }
        return false
    }

    /// Removes the entry for `key` (expired or not). True if this call removed it.
    @inlinable @discardableResult
    public func remove(_ key: ConntrackKey, hash: UInt64) -> Bool {
        guard let h = find(key, hash: hash) else { return false }
        return remove(h)
    }

    /// Gives the flow a new value (the backend it had is gone): the entry is replaced by a new
    /// one with the same state. Values are immutable while an entry is live so that readers
    /// need no lock; a rebind is rare (backend removal) and costs a remove and an insert.
    @inlinable
    public func rebind(_ key: ConntrackKey, hash: UInt64, handle: FlowHandle, value: FlowValue,
                       now: UInt32) -> FlowInsertResult {
        remove(handle)
        return insert(key, hash: hash, value: value, state: handle.state, replySeen: handle.replySeen, now: now)
    }

    // MARK: Ageing

    /// Frees the expired entries of the next `budget` buckets (7 slots each) and returns. The
    /// cursor is shared and advanced atomically, so a worker can call this between bursts with a
    /// small budget (e.g. 64 buckets ≈ 4 KiB of header lines, about a microsecond) while another
    /// thread calls it too: each call gets its own range. Never blocks a worker; never touches
    /// entry lines.
    public func expire(now: UInt32, budget: Int) -> FlowExpiry {
        let n = min(max(budget, 0), bucketCount)
        guard n > 0 else { return FlowExpiry(visited: 0, freed: 0, passCompleted: false) }
        let start = cursor.pointee.wrappingAdd(UInt64(n), ordering: .relaxed).oldValue
        var b = Int(start % UInt64(bucketCount))
        let passCompleted = b + n >= bucketCount
        var freed = 0
        for _ in 0..<n {
            let h = header(b)
            for i in 0..<Layout.slotsPerBucket {
                var c = h[1 &+ i].load(ordering: .relaxed)
                while Ctrl.life(c) == Ctrl.valid && Ctrl.isExpired(c, now: now) {
                    let r = h[1 &+ i].compareExchange(expected: c, desired: Ctrl.freed(c), ordering: .releasing)
                    if r.exchanged {
                        releaseDisplaced(bucket: b, control: c)
                        freed += 1
                        break
                    }
                    c = r.original  // refreshed by a packet meanwhile, or removed: re-check
                }
            }
            b = b &+ 1 == bucketCount ? 0 : b &+ 1
        }
        return FlowExpiry(visited: n, freed: freed, passCompleted: passCompleted)
    }
}
