import Foundation

/// The training's random stream: SplitMix64, whose whole state is one UInt64, so a checkpoint
/// can store it and a resumed run draws exactly what an uninterrupted one would.
public struct PriorRNG {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform integer in 0..<n.
    public mutating func below(_ n: Int) -> Int { Int(uniform() * Double(n)) % n }

    /// Standard normals by Box–Muller, two per pair of uniforms.
    public mutating func fillNormal(_ p: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i < count {
            let u1 = max(uniform(), 0x1.0p-60), u2 = uniform()
            let r = (-2 * Foundation.log(u1)).squareRoot(), a = 2 * Double.pi * u2
            p[i] = Float(r * Foundation.cos(a))
            if i + 1 < count { p[i + 1] = Float(r * Foundation.sin(a)) }
            i += 2
        }
    }
}
