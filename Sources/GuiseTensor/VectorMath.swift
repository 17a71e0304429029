/// SIMD8 transcendental kernels and the loops that apply them across cores.
///
/// The stdlib has no vector exp/erf, and calling libm per element costs 5–10× a SIMD
/// polynomial. These are accurate to a few float32 ulps, well inside the 1e-4 budget of
/// the reference fixtures.
public typealias F8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}

@inline(__always) func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}

/// Lanes beyond `n` read as zero, so a tail can run through the same SIMD kernel.
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ n: Int) -> F8 {
    var v = F8(repeating: 0)
    for k in 0..<n { v[k] = p[k] }
    return v
}

@inline(__always) func storePartial(_ v: F8, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for k in 0..<n { p[k] = v[k] }
}

// stdlib pointwiseMin/Max and .clamped are slow (docs/ARCHITECTURE.md, "Speed"); a compare and blend is one instruction each.
@inline(__always) func vmax(_ a: F8, _ b: F8) -> F8 { a.replacing(with: b, where: b .> a) }
@inline(__always) func vmin(_ a: F8, _ b: F8) -> F8 { a.replacing(with: b, where: b .< a) }

public enum VMath {
    /// e^x: x = n·ln2 + r with |r| ≤ ln2/2, a degree-6 minimax polynomial for e^r
    /// (Cephes' expf coefficients), and 2^n assembled in the exponent bits.
    @inline(__always)
    public static func exp(_ x0: F8) -> F8 {
        // Outside the clamp the true value is below the smallest normal or above the largest float.
        expClamped(x0).replacing(with: 0, where: x0 .< -87.33654).replacing(with: .infinity, where: x0 .> 88.72283)
    }

    /// e^x for x inside [−87.3, 88.4]; beyond, the value at the nearer bound (≈1e-38 or ≈2e38).
    /// Enough wherever the result only enters 1/(1+e) or a ratio, and two blends cheaper.
    @inline(__always)
    static func expClamped(_ x0: F8) -> F8 {
        let x = vmin(vmax(x0, F8(repeating: -87.33654)), F8(repeating: 88.37626))
        // Adding 1.5·2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
        let magic = F8(repeating: 12582912)
        let t = magic.addingProduct(x, F8(repeating: 1.44269504))
        let n = t - magic
        // addingProduct is one fused multiply-add (Swift does not contract a·b + c by itself).
        var r = x.addingProduct(n, F8(repeating: -0.693359375))
        r = r.addingProduct(n, F8(repeating: 2.12194440e-4))
        var p = F8(repeating: 1.3981999507e-3).addingProduct(F8(repeating: 1.9875691500e-4), r)
        p = F8(repeating: 8.3334519073e-3).addingProduct(p, r)
        p = F8(repeating: 4.1665795894e-2).addingProduct(p, r)
        p = F8(repeating: 1.6666665459e-1).addingProduct(p, r)
        p = F8(repeating: 5.0000001201e-1).addingProduct(p, r)
        p = (r + 1).addingProduct(p, r * r)
        let bits = unsafeBitCast(t, to: SIMD8<UInt32>.self) &- unsafeBitCast(magic, to: SIMD8<UInt32>.self)
        let pow2 = unsafeBitCast((bits &+ 127) &<< 23, to: F8.self)
        return p * pow2
    }

    @inline(__always)
    public static func sigmoid(_ x: F8) -> F8 {
        1 / (1 + expClamped(-x))
    }

    /// tanh through e^(−2|x|), which never overflows; the sign is put back at the end.
    @inline(__always)
    public static func tanh(_ x: F8) -> F8 {
        let ax = vmax(x, -x)
        let e = expClamped(-2 * ax)
        let t = (1 - e) / (1 + e)
        // Near zero (1−e)/(1+e) loses relative precision; the odd Taylor series is exact there.
        let x2 = x * x
        var poly: F8 = x2 * F8(repeating: -17.0 / 315) + F8(repeating: 2.0 / 15)
        poly = poly * x2 + F8(repeating: -1.0 / 3)
        poly = poly * x2 + F8(repeating: 1)
        let small: F8 = ax * poly
        let mag = t.replacing(with: small, where: ax .< 0.0625)
        return mag.replacing(with: -mag, where: x .< 0)
    }

    /// erf by Abramowitz–Stegun 7.1.26 refined: erf(x) = 1 − t·e^(−x²+P(t)) with a
    /// Numerical-Recipes erfc Chebyshev fit, relative error < 1.2e-7.
    @inline(__always)
    public static func erf(_ x: F8) -> F8 {
        let z = vmax(x, -x)
        let t = 1 / (1 + 0.5 * z)
        var p = F8(repeating: -0.82215223).addingProduct(F8(repeating: 0.17087277), t)
        p = F8(repeating: 1.48851587).addingProduct(p, t)
        p = F8(repeating: -1.13520398).addingProduct(p, t)
        p = F8(repeating: 0.27886807).addingProduct(p, t)
        p = F8(repeating: -0.18628806).addingProduct(p, t)
        p = F8(repeating: 0.09678418).addingProduct(p, t)
        p = F8(repeating: 0.37409196).addingProduct(p, t)
        p = F8(repeating: 1.00002368).addingProduct(p, t)
        p = F8(repeating: -1.26551223).addingProduct(p, t)
        let erfc = t * expClamped(p - z * z)
        let r = 1 - erfc
        // For tiny |x|, 1 − erfc cancels; erf(x) ≈ 2x/√π (1 − x²/3) is exact to float there.
        let z2: F8 = z * z
        let corr: F8 = 1 - z2 * F8(repeating: 1.0 / 3)
        let small: F8 = z * F8(repeating: 1.1283791671) * corr
        let mag = r.replacing(with: small, where: z .< 1e-2)
        return mag.replacing(with: -mag, where: x .< 0)
    }
}

/// Parallel dense loops. Kernels are passed as closures that are inlined at the call site.
enum Loop {
    static let grain = 16384

    /// dst[i] = f(a[i])
    @inline(__always)
    static func map(_ n: Int, _ a: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ f: (F8) -> F8) {
        Parallel.forEach(n, minChunk: grain) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { store8(f(load8(a + i)), dst + i); i += 8 }
            if i < r.upperBound {
                let k = r.upperBound - i
                storePartial(f(loadPartial(a + i, k)), dst + i, k)
            }
        }
    }

    /// dst[i] = f(a[i], b[i])
    @inline(__always)
    static func map2(_ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                     _ f: (F8, F8) -> F8) {
        Parallel.forEach(n, minChunk: grain) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { store8(f(load8(a + i), load8(b + i)), dst + i); i += 8 }
            if i < r.upperBound {
                let k = r.upperBound - i
                storePartial(f(loadPartial(a + i, k), loadPartial(b + i, k)), dst + i, k)
            }
        }
    }

    /// dst[i] = f(a[i], b[i], c[i])
    @inline(__always)
    static func map3(_ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
                     _ dst: UnsafeMutablePointer<Float>, _ f: (F8, F8, F8) -> F8) {
        Parallel.forEach(n, minChunk: grain) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { store8(f(load8(a + i), load8(b + i), load8(c + i)), dst + i); i += 8 }
            if i < r.upperBound {
                let k = r.upperBound - i
                storePartial(f(loadPartial(a + i, k), loadPartial(b + i, k), loadPartial(c + i, k)), dst + i, k)
            }
        }
    }

    /// Float partial sums are flushed to Double every `block` elements, so long runs keep
    /// float32 accuracy instead of drifting by n·ulp.
    static let block = 1024

    /// Σ a[i] over a run, SIMD-accumulated then widened to Double.
    @inline(__always)
    static func sum(_ a: UnsafePointer<Float>, _ n: Int) -> Double {
        var s = 0.0
        var lo = 0
        while lo < n {
            let hi = Swift.min(n, lo + block)
            var acc0 = F8(repeating: 0), acc1 = F8(repeating: 0)
            var i = lo
            while i + 16 <= hi { acc0 += load8(a + i); acc1 += load8(a + i + 8); i += 16 }
            if i + 8 <= hi { acc0 += load8(a + i); i += 8 }
            s += Double((acc0 + acc1).sum())
            while i < hi { s += Double(a[i]); i += 1 }
            lo = hi
        }
        return s
    }

    /// Σ (a[i] − m)² over a run.
    @inline(__always)
    static func sumSquaredDeviation(_ a: UnsafePointer<Float>, _ n: Int, _ m: Float) -> Double {
        let vm = F8(repeating: m)
        var s = 0.0
        var lo = 0
        while lo < n {
            let hi = Swift.min(n, lo + block)
            var acc0 = F8(repeating: 0), acc1 = F8(repeating: 0)
            var i = lo
            while i + 16 <= hi {
                let d0 = load8(a + i) - vm, d1 = load8(a + i + 8) - vm
                acc0 += d0 * d0; acc1 += d1 * d1; i += 16
            }
            if i + 8 <= hi { let d = load8(a + i) - vm; acc0 += d * d; i += 8 }
            s += Double((acc0 + acc1).sum())
            while i < hi { let d = a[i] - m; s += Double(d * d); i += 1 }
            lo = hi
        }
        return s
    }

    /// Σ a[i]·b[i] over a run.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
        var s = 0.0
        var lo = 0
        while lo < n {
            let hi = Swift.min(n, lo + block)
            var acc0 = F8(repeating: 0), acc1 = F8(repeating: 0)
            var i = lo
            while i + 16 <= hi {
                acc0 += load8(a + i) * load8(b + i); acc1 += load8(a + i + 8) * load8(b + i + 8); i += 16
            }
            if i + 8 <= hi { acc0 += load8(a + i) * load8(b + i); i += 8 }
            s += Double((acc0 + acc1).sum())
            while i < hi { s += Double(a[i] * b[i]); i += 1 }
            lo = hi
        }
        return s
    }
}


/// Kernels as types, for the hottest loops: a generic loop specialised on a kernel type
/// inlines it, where a closure captured across the thread dispatch stays an indirect call
/// (measured 20–25 % slower for SiLU).
protocol VectorKernel { func callAsFunction(_ x: F8) -> F8 }
protocol VectorKernel2 { func callAsFunction(_ x: F8, _ g: F8) -> F8 }

struct IdentityKernel: VectorKernel {
    @inline(__always) func callAsFunction(_ x: F8) -> F8 { x }
}

struct SiLUKernel: VectorKernel {
    @inline(__always) func callAsFunction(_ x: F8) -> F8 { x / (1 + VMath.expClamped(-x)) }
}

/// (x, g) ↦ g·d silu/dx
struct SiLUGradKernel: VectorKernel2 {
    @inline(__always) func callAsFunction(_ x: F8, _ g: F8) -> F8 {
        let s = VMath.sigmoid(x)
        let d: F8 = (1 - s) * x + 1
        return g * s * d
    }
}

extension Loop {
    static func apply<K: VectorKernel>(_ k: K, _ n: Int, _ a: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
        Parallel.forEach(n, minChunk: grain) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { store8(k(load8(a + i)), dst + i); i += 8 }
            if i < r.upperBound {
                let c = r.upperBound - i
                storePartial(k(loadPartial(a + i, c)), dst + i, c)
            }
        }
    }

    static func apply2<K: VectorKernel2>(_ k: K, _ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                         _ dst: UnsafeMutablePointer<Float>) {
        Parallel.forEach(n, minChunk: grain) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { store8(k(load8(a + i), load8(b + i)), dst + i); i += 8 }
            if i < r.upperBound {
                let c = r.upperBound - i
                storePartial(k(loadPartial(a + i, c), loadPartial(b + i, c)), dst + i, c)
            }
        }
    }
}
