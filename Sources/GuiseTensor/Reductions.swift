import Foundation

/// Sums, means, L2 norms and max over dims. Sums accumulate in Double per run so that
/// large reductions stay within float32 rounding of the exact value.
extension Tensor {
    /// Normalised, sorted, distinct dims; empty means all.
    func reductionAxes(_ dims: [Int]) -> [Int] {
        let a = Set(dims.map { axis($0) }).sorted()
        return a.isEmpty ? Array(0..<rank) : a
    }

    /// Shape with the reduced dims set to 1.
    static func keptShape(_ shape: [Int], _ axes: [Int]) -> [Int] {
        var s = shape
        for a in axes { s[a] = 1 }
        return s
    }

    /// out[o, i] = Σ_d src[o, d, i] for dense src viewed as [outer, D, inner].
    static func sumMiddle(_ src: UnsafePointer<Float>, outer: Int, size: Int, inner: Int, into dst: UnsafeMutablePointer<Float>) {
        if inner == 1 {
            Parallel.forEach(outer, minChunk: max(1, Loop.grain / max(size, 1))) { r in
                for o in r { dst[o] = Float(Loop.sum(src + o * size, size)) }
            }
            return
        }
        // Columns in blocks so each task keeps its partial sums in registers and cache.
        let block = 256
        let blocks = (inner + block - 1) / block
        Parallel.forEach(outer * blocks, minChunk: max(1, Loop.grain / max(size * min(inner, block), 1))) { r in
            var acc = [Double](repeating: 0, count: block)
            var part = [Float](repeating: 0, count: block)
            for job in r {
                let o = job / blocks, lo = (job % blocks) * block, w = min(block, inner - lo)
                for j in 0..<w { acc[j] = 0 }
                var d = 0
                while d < size {
                    // Float partials over 64 rows, flushed to Double: SIMD speed, Double accuracy.
                    let rows = min(64, size - d)
                    part.withUnsafeMutableBufferPointer { pp in
                        let p = pp.baseAddress!
                        for j in 0..<w { p[j] = 0 }
                        for k in 0..<rows {
                            let row = src + (o * size + d + k) * inner + lo
                            var j = 0
                            while j + 8 <= w { store8(load8(p + j) + load8(row + j), p + j); j += 8 }
                            while j < w { p[j] += row[j]; j += 1 }
                        }
                    }
                    for j in 0..<w { acc[j] += Double(part[j]) }
                    d += rows
                }
                for j in 0..<w { dst[o * inner + lo + j] = Float(acc[j]) }
            }
        }
    }

    /// Σ over `dims` (all when empty). Differentiable.
    public func sum(dims: [Int] = [], keepDims: Bool = false) -> Tensor {
        if rank == 0 { return scaled(1) }
        let axes = reductionAxes(dims)
        let kept = Tensor.keptShape(shape, axes)
        let outShape = keepDims ? kept : (0..<rank).filter { !axes.contains($0) }.map { shape[$0] }
        let src = contiguous()
        let out: Tensor
        if axes == Array(axes[0]...axes[axes.count - 1]) {
            // One run of adjacent dims: a single [outer, D, inner] pass.
            let outer = Tensor.product(Array(shape[..<axes[0]]))
            let size = Tensor.product(axes.map { shape[$0] })
            let inner = Tensor.product(Array(shape[(axes.last! + 1)...]))
            out = Tensor(uninitialized: outShape)
            Autograd.noGrad { Tensor.sumMiddle(src.data, outer: outer, size: size, inner: inner, into: out.data) }
        } else {
            // Scattered dims: reduce one at a time, last first so earlier indices stay put.
            out = Autograd.noGrad {
                var t = src
                for a in axes.reversed() { t = t.sum(dims: [a], keepDims: true) }
                return t.reshaped(outShape)
            }
        }
        if Autograd.shouldRecord(src) {
            let full = shape
            out.record("sum", [src]) { g in [g.reshaped(kept).expanded(to: full).contiguous()] }
        }
        return out
    }

    /// Mean over `dims` (all when empty). Differentiable.
    public func mean(dims: [Int] = [], keepDims: Bool = false) -> Tensor {
        let axes = reductionAxes(dims)
        let n = axes.reduce(1) { $0 * shape[$1] }
        return sum(dims: axes, keepDims: keepDims).scaled(1 / Float(n))
    }

    /// Euclidean norm over `dims` (all when empty). The gradient at a zero norm is 0, as PyTorch's.
    public func norm(dims: [Int] = [], keepDims: Bool = false) -> Tensor {
        let axes = reductionAxes(dims)
        let src = contiguous()
        let out = Autograd.noGrad { src.squared().sum(dims: axes, keepDims: keepDims).sqrt() }
        if Autograd.shouldRecord(src) {
            let x = src.detached(), n = out.detached()
            let kept = Tensor.keptShape(shape, axes)
            out.record("norm", [src]) { g in
                let ratio = Tensor(uninitialized: n.shape)
                let gc = g.contiguous()
                for i in 0..<n.count { ratio.data[i] = n.data[i] == 0 ? 0 : gc.data[i] / n.data[i] }
                return [x * ratio.reshaped(kept)]
            }
        }
        return out
    }

    /// Largest element along `dim` and its index; the gradient goes to that index.
    /// Ties pick the first index.
    public func maxAlong(dim: Int, keepDims: Bool = false) -> (values: Tensor, indices: [Int]) {
        extremum(dim: dim, keepDims: keepDims, largest: true)
    }

    public func minAlong(dim: Int, keepDims: Bool = false) -> (values: Tensor, indices: [Int]) {
        extremum(dim: dim, keepDims: keepDims, largest: false)
    }

    func extremum(dim: Int, keepDims: Bool, largest: Bool) -> (values: Tensor, indices: [Int]) {
        let d = axis(dim)
        let src = contiguous()
        let outer = Tensor.product(Array(shape[..<d])), size = shape[d], inner = Tensor.product(Array(shape[(d + 1)...]))
        precondition(size > 0, "max over an empty dim")
        var kept = shape
        kept[d] = 1
        var s = shape
        s.remove(at: d)
        let out = Tensor(uninitialized: keepDims ? kept : s)
        var indices = [Int](repeating: 0, count: outer * inner)
        let p = src.data, o = out.data
        indices.withUnsafeMutableBufferPointer { ip in
            let idx = ip.baseAddress!
            Parallel.forEach(outer, minChunk: max(1, Loop.grain / max(size * inner, 1))) { r in
                for a in r {
                    for i in 0..<inner {
                        var best = p[a * size * inner + i], at = 0
                        for k in 1..<max(size, 1) {
                            let v = p[(a * size + k) * inner + i]
                            if largest ? (v > best || (v.isNaN && !best.isNaN)) : (v < best || (v.isNaN && !best.isNaN)) {
                                best = v; at = k
                            }
                        }
                        o[a * inner + i] = best
                        idx[a * inner + i] = at
                    }
                }
            }
        }
        if Autograd.shouldRecord(src) {
            let full = shape, chosen = indices
            out.record(largest ? "max" : "min", [src]) { g in
                let gi = Tensor(zeros: full)
                let gc = g.contiguous()
                for a in 0..<outer {
                    for i in 0..<inner {
                        gi.data[(a * size + chosen[a * inner + i]) * inner + i] = gc.data[a * inner + i]
                    }
                }
                return [gi]
            }
        }
        return (out, indices)
    }
}
