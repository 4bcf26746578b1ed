/// The memory layout of a `FlowTable` and the encoding of its per-slot control word.
///
/// ```
///  bucket header line (64 bytes, one per bucket, array `buckets`)
///  ┌──────────┬─────────┬─────────┬─────────┬─────────┬─────────┬─────────┬─────────┐
///  │ meta     │ ctrl 0  │ ctrl 1  │ ctrl 2  │ ctrl 3  │ ctrl 4  │ ctrl 5  │ ctrl 6  │  8 × Atomic<UInt64>
///  └──────────┴─────────┴─────────┴─────────┴─────────┴─────────┴─────────┴─────────┘
///  entry block (7 × 48 bytes, one per bucket, array `entries`)
///  ┌───────────────────────────────────────────────┬──────────┐
///  │ key w0 │ key w1 │ key w2 │ key w3 │ key w4     │ value    │  × 7      6 × Atomic<UInt64>
///  └───────────────────────────────────────────────┴──────────┘
/// ```
///
/// A lookup reads one header line, compares the 12-bit tags (and probe distances) of its seven
/// slots, and touches an entry only on a tag match — the VPP `lbhash.h` idea (a bucket is one
/// cache line of "signatures") combined with a full 40-byte key so that a hash collision can
/// never send a packet to another flow's backend. Headers and entries live in two arrays so that
/// the ageing sweep reads only the header array (64 of every 400 bytes).
///
/// Bytes per slot: (64 + 7 × 48) / 7 = 57.14.
///
/// Overflow: a key lives in its home bucket or, when that is full, at probe distance d = 1...15
/// along a double-hashing sequence home + d·step (mod bucketCount), where `step` is derived from
/// the tag so that a slot's home can be recomputed from its control word (bucket, tag, d).
/// The home bucket's header word 0 (`Meta`) summarises its displaced keys: twelve 4-bit counters
/// indexed by a "nibble" of the tag, and the largest distance in use. A lookup whose key is not
/// in its home bucket stops at once when its nibble's counter is zero (about 85 % of misses at
/// 80 % occupancy), otherwise probes up to that distance. Measured by simulation under steady
/// insert/remove churn at 80 % occupancy (`tools/conntrack/probe_sim.py`): 1.37 header lines per
/// miss, 1.47 per hit, 0.003 % of inserts find no slot. (Linear probing with F14-style pass-through counters, the first design,
/// needed ~10 lines per miss under the same churn: every bucket of a cluster had been passed.)
@usableFromInline
enum Layout {
    @usableFromInline static let slotsPerBucket = 7
    @usableFromInline static let headerWords = 8
    @usableFromInline static let entryWords = 6
    @usableFromInline static let headerBytes = headerWords * 8
    @usableFromInline static let entryBytes = entryWords * 8
    /// Probe window: a key lives at most this many steps from its home (4 bits of distance).
    @usableFromInline static let maxProbeDistance = 15
}

/// The 64-bit control word of one slot.
///
/// ```
///  63          47 46 45   42 41   38 37 36 35      24 23              0
/// ┌──────────────┬──┬───────┬───────┬─────┬──────────┬─────────────────┐
/// │ generation   │R │ dist  │ state │life │   tag    │ deadline mod 2²⁴│
/// │ 17 bits      │  │ 4     │ 4     │ 2   │   12     │ 24              │
/// └──────────────┴──┴───────┴───────┴─────┴──────────┴─────────────────┘
/// ```
/// - `life`: 0 FREE, 1 BUSY (claimed, key being written: invisible to everyone but the writer),
///   2 PENDING (key and value final, visible to inserters only: the shared-mode duplicate check),
///   3 VALID (visible to lookups).
/// - `generation`: incremented on every claim (FREE or VALID → BUSY). It is the seqlock sequence
///   of the slot: a reader that read the key and value between two loads of the control word
///   with the same generation read one incarnation of the slot. 2¹⁷ reuses of one slot during one
///   reader's few nanoseconds would be needed to fool it.
/// - `R`: a packet in the reply direction has been seen (selects IPVS's INPUT table).
/// - `dist`: the entry's probe distance from its home bucket (0...15).
/// - `deadline`: the tick at which the entry expires, modulo 2²⁴; "expired" is `now − deadline`
///   in `[0, 2²³)` modulo 2²⁴ (RFC 1982 serial-number arithmetic), valid while timeouts stay
///   below 2²² ticks and every entry is swept at least once per 2²³ ticks (97 days at 1 Hz).
@usableFromInline
enum Ctrl {
    @usableFromInline static let deadlineMask: UInt64 = 0xFF_FFFF
    @usableFromInline static let tagShift: UInt64 = 24
    @usableFromInline static let tagMask: UInt64 = 0xFFF << 24
    @usableFromInline static let lifeShift: UInt64 = 36
    @usableFromInline static let lifeMask: UInt64 = 3 << 36
    @usableFromInline static let stateShift: UInt64 = 38
    @usableFromInline static let stateMask: UInt64 = 0xF << 38
    @usableFromInline static let distShift: UInt64 = 42
    @usableFromInline static let distMask: UInt64 = 0xF << 42
    @usableFromInline static let replyBit: UInt64 = 1 << 46
    @usableFromInline static let genShift: UInt64 = 47
    @usableFromInline static let genMask: UInt64 = 0x1_FFFF << 47

    @usableFromInline static let free: UInt64 = 0
    @usableFromInline static let busy: UInt64 = 1
    @usableFromInline static let pending: UInt64 = 2
    @usableFromInline static let valid: UInt64 = 3

    @inlinable @inline(__always) static func life(_ c: UInt64) -> UInt64 { (c & lifeMask) >> lifeShift }
    @inlinable @inline(__always) static func dist(_ c: UInt64) -> Int { Int(truncatingIfNeeded: (c & distMask) >> distShift) }
    @inlinable @inline(__always) static func deadline(_ c: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: c & deadlineMask) }
    @inlinable @inline(__always) static func gen(_ c: UInt64) -> UInt64 { c & genMask }
    @inlinable @inline(__always) static func replySeen(_ c: UInt64) -> Bool { c & replyBit != 0 }

    @inlinable @inline(__always)
    static func state(_ c: UInt64) -> FlowState {
        // Safe: the 4-bit field only ever holds a FlowState raw value (0...14) written by this
        // module (`claimed`, `with`), never 15.
        FlowState(unchecked: UInt8(truncatingIfNeeded: (c & stateMask) >> stateShift))
    }

    /// The bits a probe compares: life VALID, this tag, this distance.
    @inlinable @inline(__always)
    static func probeBits(tag: UInt64, dist: Int, life: UInt64) -> UInt64 {
        life << lifeShift | tag << tagShift | UInt64(truncatingIfNeeded: dist) << distShift
    }
    @usableFromInline static let probeMask: UInt64 = lifeMask | tagMask | distMask

    /// A claimed word: BUSY, the next generation after `previous`, and every field set.
    @inlinable @inline(__always)
    static func claimed(previous: UInt64, tag: UInt64, dist: Int, state: FlowState,
                        replySeen: Bool, deadline: UInt32) -> UInt64 {
        let gen = ((previous & genMask) &+ (1 << genShift)) & genMask
        return gen | (replySeen ? replyBit : 0) | UInt64(truncatingIfNeeded: dist) << distShift
            | UInt64(state.rawValue) << stateShift | busy << lifeShift | tag << tagShift
            | (UInt64(deadline) & deadlineMask)
    }

    @inlinable @inline(__always)
    static func withLife(_ c: UInt64, _ life: UInt64) -> UInt64 { (c & ~lifeMask) | life << lifeShift }

    /// The FREE word that replaces `c`: only the generation survives, so the next claim bumps it.
    @inlinable @inline(__always)
    static func freed(_ c: UInt64) -> UInt64 { c & genMask }

    @inlinable @inline(__always)
    static func with(_ c: UInt64, state: FlowState, replySeen: Bool, deadline: UInt32) -> UInt64 {
        (c & ~(stateMask | replyBit | deadlineMask)) | UInt64(state.rawValue) << stateShift
            | (replySeen ? replyBit : 0) | (UInt64(deadline) & deadlineMask)
    }

    /// Serial-number comparison modulo 2²⁴: true once `now` has reached the deadline.
    @inlinable @inline(__always)
    static func isExpired(_ c: UInt64, now: UInt32) -> Bool {
        (UInt64(now) &- c) & deadlineMask < (1 << 23)
    }

    /// Ticks left before expiry (0 when expired).
    @inlinable @inline(__always)
    static func remaining(_ c: UInt64, now: UInt32) -> UInt32 {
        isExpired(c, now: now) ? 0 : UInt32(truncatingIfNeeded: (c &- UInt64(now)) & deadlineMask)
    }
}

/// The home bucket's summary of its displaced keys (header word 0).
///
/// ```
///  63    52 51  48 47                                                   0
/// ┌────────┬──────┬──────────────────────────────────────────────────────┐
/// │ spare  │ max  │ 12 × 4-bit counters, indexed by nibble(tag)          │
/// └────────┴──────┴──────────────────────────────────────────────────────┘
/// ```
/// Counter n counts the claimed slots (BUSY, PENDING or VALID) whose key has this home, a tag
/// with nibble n, and distance ≥ 1. `max` is ≥ the distance of every such slot (it only grows,
/// and returns to 0 when every counter is 0). A counter that reaches 15 sticks there (it then
/// over-approximates, which only costs probes). Incremented before the slot is claimed, decremented
/// after it is freed — both by CAS on this one word — so neither field ever understates.
@usableFromInline
enum Meta {
    @usableFromInline static let countersMask: UInt64 = 0xFFFF_FFFF_FFFF
    @usableFromInline static let maxShift: UInt64 = 48

    /// 0...11 from the tag's high bits (multiply-shift, no division).
    @inlinable @inline(__always)
    static func nibble(_ tag: UInt64) -> UInt64 { (tag &* 12) >> 12 }

    @inlinable @inline(__always)
    static func count(_ m: UInt64, _ nibble: UInt64) -> UInt64 { (m >> (nibble &* 4)) & 0xF }

    @inlinable @inline(__always)
    static func maxDistance(_ m: UInt64) -> Int { Int(truncatingIfNeeded: (m >> maxShift) & 0xF) }

    /// How far a key with this nibble may have been displaced: 0 when none can be.
    @inlinable @inline(__always)
    static func probeLimit(_ m: UInt64, _ nibble: UInt64) -> Int {
        count(m, nibble) == 0 ? 0 : maxDistance(m)
    }

    @inlinable @inline(__always)
    static func adding(_ m: UInt64, nibble: UInt64, dist: Int) -> UInt64 {
        var r = count(m, nibble) == 15 ? m : m &+ (1 << (nibble &* 4))
        if dist > maxDistance(r) { r = (r & ~(0xF << maxShift)) | UInt64(dist) << maxShift }
        return r
    }

    @inlinable @inline(__always)
    static func removing(_ m: UInt64, nibble: UInt64) -> UInt64 {
        let c = count(m, nibble)
        guard c != 15, c != 0 else { return m }
        let r = m &- (1 << (nibble &* 4))
        return r & countersMask == 0 ? r & ~(0xF << maxShift) : r
    }
}
