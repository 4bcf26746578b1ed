#if canImport(Glibc)
import Glibc
#endif

/// The order in which flows are sent. Uniform: round-robin over all flows. Zipf: a precomputed
/// cycle of samples (drawn once, before sending, so that the send loop only reads an array).
public struct FlowSequence: @unchecked Sendable {
    // Safe (@unchecked Sendable): `samples` is filled in init and only read afterwards.
    public let flows: UInt32
    /// Zipf samples (flow ids); nil for uniform. Its count is a power of two.
    public let samples: UnsafeMutablePointer<UInt32>?
    public let mask: Int

    /// Zipf cycles hold at least this many samples per flow (up to `maxSamples`): long enough
    /// that the cycle repeats rarely relative to the popularity it draws.
    public static let samplesPerFlow = 4
    public static let minSamples = 1 << 16
    public static let maxSamples = 1 << 23

    public init(flows: Int, popularity: Popularity, seed: UInt64 = 0x5EED_5EED_5EED_5EED) {
        self.flows = UInt32(flows)
        switch popularity {
        case .uniform:
            samples = nil
            mask = 0
        case .zipf(let exponent):
            var count = FlowSequence.minSamples
            while count < flows * FlowSequence.samplesPerFlow && count < FlowSequence.maxSamples { count <<= 1 }
            let buffer = UnsafeMutablePointer<UInt32>.allocate(capacity: count)
            var sampler = ZipfSampler(elements: flows, exponent: exponent, seed: seed)
            for i in 0..<count { buffer[i] = UInt32(sampler.next() - 1) }
            samples = buffer
            mask = count - 1
        }
    }

    public func release() { samples?.deallocate() }

    /// The flow of the `index`-th packet of a run.
    @inlinable @inline(__always)
    public func flow(at index: UInt64) -> UInt32 {
        if let samples { return samples[Int(truncatingIfNeeded: index) & mask] }
        return UInt32(truncatingIfNeeded: index % UInt64(flows))
    }
}

/// Zipf-distributed integers in 1...n, P(k) ∝ k^-s, by rejection-inversion: W. Hörmann and
/// G. Derflinger, "Rejection-inversion to generate variates from monotone discrete
/// distributions", ACM TOMACS 6(3), 1996 (the form Apache Commons RNG uses). O(1) per sample
/// for any n, no table.
public struct ZipfSampler {
    var n: Double
    var exponent: Double
    var hIntegralX1: Double = 0
    var hIntegralN: Double = 0
    var s: Double = 0
    var state: UInt64

    public init(elements: Int, exponent: Double, seed: UInt64) {
        n = Double(elements)
        self.exponent = exponent
        state = seed
        hIntegralX1 = hIntegral(1.5) - 1
        hIntegralN = hIntegral(n + 0.5)
        s = 2 - hIntegralInverse(hIntegral(2.5) - h(2))
    }

    /// splitmix64 (Steele, Lea, Flood 2014): a fast, well-mixed, reproducible generator.
    mutating func nextDouble() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1.0p-53
    }

    public mutating func next() -> Int {
        while true {
            let u = hIntegralN + nextDouble() * (hIntegralX1 - hIntegralN)
            let x = hIntegralInverse(u)
            var k = (x + 0.5).rounded(.down)
            if k < 1 { k = 1 } else if k > n { k = n }
            if k - x <= s || u >= hIntegral(k + 0.5) - h(k) { return Int(k) }
        }
    }

    func h(_ x: Double) -> Double { exp(-exponent * log(x)) }
    func hIntegral(_ x: Double) -> Double {
        let logX = log(x)
        return helper2((1 - exponent) * logX) * logX
    }
    func hIntegralInverse(_ x: Double) -> Double {
        var t = x * (1 - exponent)
        if t < -1 { t = -1 }
        return exp(helper1(t) * x)
    }
    /// log1p(x) / x, continuous at 0.
    func helper1(_ x: Double) -> Double { abs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x)) }
    /// expm1(x) / x, continuous at 0.
    func helper2(_ x: Double) -> Double { abs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x * (1.0 / 3.0) * (1 + 0.25 * x)) }
}
