import Foundation
import GuiseTensor

/// Where a sampler's Gaussian noise comes from. Samplers draw in a fixed, documented order
/// (see `GaussianDiffusion.sample`), so a source can be replayed.
public protocol NoiseSource: AnyObject {
    /// The next tensor of independent standard normal values.
    func next(_ shape: [Int]) throws -> Tensor
}

/// Counter-based Gaussian noise: value i of draw d depends only on (seed, d, i), so results do not
/// depend on thread count or on how much noise earlier draws used.
///
/// Element pair k = i/2 of draw d takes two 64-bit words from the SplitMix64 finaliser,
/// w₁ = mix(key + 2k), w₂ = mix(key + 2k + 1) with key = mix(seed ⊕ mix(d + 1)), turns them into
/// uniforms u = (top 53 bits + ½)/2⁵³ ∈ (0, 1), and applies Box–Muller:
/// z_{2k} = √(−2 ln u₁)·cos 2πu₂, z_{2k+1} = √(−2 ln u₁)·sin 2πu₂ (computed in Double, stored as Float).
public final class SeededNoise: NoiseSource {
    public let seed: UInt64
    /// How many tensors have been drawn so far.
    public private(set) var draws: UInt64 = 0

    public init(seed: UInt64) { self.seed = seed }

    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public func next(_ shape: [Int]) throws -> Tensor {
        let out = Tensor(uninitialized: shape)
        let n = out.count
        let key = SeededNoise.mix(seed ^ SeededNoise.mix(draws &+ 1))
        draws &+= 1
        let o = out.data
        let pairs = (n + 1) / 2
        Parallel.forEach(pairs, minChunk: 8192) { range in
            for k in range {
                let w1 = SeededNoise.mix(key &+ 2 &* UInt64(k)), w2 = SeededNoise.mix(key &+ 2 &* UInt64(k) &+ 1)
                let u1 = (Double(w1 >> 11) + 0.5) / 9_007_199_254_740_992.0
                let u2 = (Double(w2 >> 11) + 0.5) / 9_007_199_254_740_992.0
                let r = (-2 * Foundation.log(u1)).squareRoot()
                let a = 2 * Double.pi * u2
                o[2 * k] = Float(r * Foundation.cos(a))
                if 2 * k + 1 < n { o[2 * k + 1] = Float(r * Foundation.sin(a)) }
            }
        }
        return out
    }
}

/// Hands out given tensors in order: replays noise recorded elsewhere (e.g. PyTorch's) exactly.
public final class ReplayNoise: NoiseSource {
    private var queue: [Tensor]
    private var index = 0

    public init(_ tensors: [Tensor]) { queue = tensors }

    public var remaining: Int { queue.count - index }

    public func next(_ shape: [Int]) throws -> Tensor {
        guard index < queue.count else {
            throw DiffusionError("replayed noise ran out after \(queue.count) tensors", category: .internal)
        }
        let t = queue[index]
        guard t.shape == shape else {
            throw DiffusionError("replayed noise tensor \(index) has shape \(t.shape), the sampler asked for \(shape)", category: .internal)
        }
        index += 1
        return t
    }
}
