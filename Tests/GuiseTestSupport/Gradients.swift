import XCTest
import GuiseTensor

/// A fixed pseudo-random tensor (xorshift), so tests don't depend on a generator's version.
public func randomTensor(_ shape: [Int], seed: UInt64 = 1, scale: Float = 1) -> Tensor {
    var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    let n = shape.reduce(1, *)
    var v = [Float](repeating: 0, count: n)
    for i in 0..<n {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17
        v[i] = (Float(s >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
    return Tensor(shape: shape, values: v)
}

/// Checks reverse-mode gradients of `f` against central finite differences.
///
/// The scalar checked is L = Σ f(x) ⊙ r for a fixed random r, so every output element
/// matters. Up to `samples` coordinates of each input are perturbed by ±eps. In float32 the
/// difference quotient carries about 1e-7·|L|/eps of rounding noise, hence the tolerances.
public func assertGradientsMatchFiniteDifferences(
    _ inputs: [Tensor], eps: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 1e-3, samples: Int = 24,
    file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor
) {
    let leaves = inputs.map { t -> Tensor in let l = t.copy(); l.requiresGrad = true; return l }
    let out = f(leaves)
    let r = randomTensor(out.shape, seed: 99)
    (out * r).summed(toShape: []).backward()
    func loss() -> Double {
        Autograd.noGrad {
            let o = f(leaves).values, rv = r.values
            var acc = 0.0
            for i in 0..<o.count { acc += Double(o[i]) * Double(rv[i]) }
            return acc
        }
    }
    for (k, leaf) in leaves.enumerated() {
        guard let g = leaf.grad?.values else { XCTFail("input \(k) got no gradient", file: file, line: line); continue }
        let n = leaf.count
        let step = max(1, n / samples)
        for i in stride(from: 0, to: n, by: step) {
            let p = leaf.data + i
            let orig = p.pointee
            p.pointee = orig + eps
            let up = loss()
            p.pointee = orig - eps
            let down = loss()
            p.pointee = orig
            let numeric = Float((up - down) / Double(2 * eps))
            XCTAssertLessThanOrEqual(abs(g[i] - numeric), atol + rtol * abs(numeric),
                                     "input \(k)[\(i)]: autodiff \(g[i]) vs finite difference \(numeric)", file: file, line: line)
        }
    }
}
