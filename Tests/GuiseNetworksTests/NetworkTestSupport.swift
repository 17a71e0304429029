import Foundation
import XCTest
import GuiseFormats
import GuiseTensor
import GuiseTestSupport

/// A sparse direction in input space: (flat index, weight) pairs.
typealias Direction = [(Int, Float)]

/// A pseudo-random ±1 direction over the given flat indices (xorshift, fixed seed).
func signDirection(_ indices: [Int], seed: UInt64) -> Direction {
    var s = seed | 1
    return indices.map { i in
        s ^= s << 13; s ^= s >> 7; s ^= s << 17
        return (i, s & 1 == 0 ? 1 : -1)
    }
}

/// Flat NHWC indices of a rectangle of pixels, all channels (batch 0).
func patchIndices(width: Int, channels: Int, rows: Range<Int>, cols: Range<Int>) -> [Int] {
    rows.flatMap { r in cols.flatMap { c in (0..<channels).map { (r * width + c) * channels + $0 } } }
}

/// Checks reverse-mode gradients against central finite differences along `directions`:
/// for L = Σ f(x)·r with a fixed pseudo-random r, compares ∇L·v with (L(x+εv) − L(x−εv)) / 2ε.
///
/// Both sides use the step as stored: x ± εv rounds in float32 (at ε = 1e-5 and |x| ≤ 1 by up
/// to 0.6 % per coordinate), so the gradient is dotted with (x⁺ − x⁻) / 2ε rather than with v.
/// On the iris network the nominal step alone biased differences by +0.1–0.4 %.
///
/// These networks are piecewise linear (ReLU, max pooling), and a difference whose step crosses
/// a kink measures a blend of two slopes. Such a direction shows itself by disagreeing with the
/// difference at ε/2; it is skipped rather than compared, and at least `minUsable` directions
/// must remain. With `alignWithGradient` each direction's signs follow the gradient's.
///
/// The float32 forward pass rounds L by ~1e-7·|L| (the iris network's L ≈ −254 moves by 2e-5
/// when only the conv summation order changes), so a difference carries noise ≈ 1e-7·|L|/ε
/// whatever the direction. Directions should therefore span many coordinates, so that their
/// signal stands far above it; `floor` is the smallest magnitude treated as signal.
func checkDirectionalGradients(_ x: Tensor, directions: [Direction], eps: Float, rtol: Float, minUsable: Int, floor: Double,
                               alignWithGradient: Bool = false,
                               file: StaticString = #filePath, line: UInt = #line, _ f: (Tensor) -> Tensor) {
    let leaf = x.copy()
    leaf.requiresGrad = true
    let out = f(leaf)
    var s: UInt64 = 0x2545F4914F6CDD1D
    let rv = (0..<out.count).map { _ -> Float in
        s ^= s << 13; s ^= s >> 7; s ^= s << 17
        return Float(s >> 40) / Float(1 << 24) * 2 - 1
    }
    (out * Tensor(shape: out.shape, values: rv)).sum().backward()
    guard let g = leaf.grad?.values else { return XCTFail("no gradient reached the input", file: file, line: line) }
    func loss() -> Double {
        Autograd.noGrad {
            let o = f(leaf).values
            var acc = 0.0
            for i in 0..<o.count { acc += Double(o[i]) * Double(rv[i]) }
            return acc
        }
    }
    /// The difference's error against the gradient along the step actually stored, per 2ε.
    func differenceError(_ v: Direction, _ e: Float) -> (fd: Double, error: Double) {
        let saved = v.map { leaf.data[$0.0] }
        var along = 0.0
        for ((i, w), o) in zip(v, saved) { leaf.data[i] = o + e * w; along += Double(g[i]) * Double(leaf.data[i]) }
        let up = loss()
        for ((i, w), o) in zip(v, saved) { leaf.data[i] = o - e * w; along -= Double(g[i]) * Double(leaf.data[i]) }
        let down = loss()
        for ((i, _), o) in zip(v, saved) { leaf.data[i] = o }
        return ((up - down) / Double(2 * e), (up - down - along) / Double(2 * e))
    }
    var usable = 0
    for (k, d) in directions.enumerated() {
        // Aligned with the gradient's signs, a direction collects Σ|∂L/∂xᵢ|, the largest signal
        // a ±1 step can give; a wrong gradient still disagrees with the difference along it.
        let v = alignWithGradient ? d.map { ($0.0, g[$0.0] < 0 ? -$0.1 * $0.1 : $0.1 * $0.1) } : d
        var analytic = 0.0
        for (i, w) in v { analytic += Double(g[i]) * Double(w) }
        let coarse = differenceError(v, eps), fine = differenceError(v, eps / 2)
        let scale = max(abs(fine.fd), abs(analytic), floor)
        guard abs(coarse.error - fine.error) <= Double(rtol) * scale else { continue }
        usable += 1
        XCTAssertLessThanOrEqual(abs(fine.error), Double(rtol) * scale,
                                 "direction \(k) (\(v.count) coordinates): autodiff \(analytic) vs finite difference \(fine.fd)"
                                 + " (error \(fine.error) against the stored step)",
                                 file: file, line: line)
    }
    XCTAssertGreaterThanOrEqual(usable, minUsable, "only \(usable) of \(directions.count) directions avoided kinks", file: file, line: line)
}

