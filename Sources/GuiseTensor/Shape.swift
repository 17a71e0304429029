/// Shape ops: slices and squeezes are views; concat copies once.
extension Tensor {
    /// Resolves a possibly negative dim against `rank` (PyTorch's convention).
    func axis(_ d: Int, rank r: Int? = nil) -> Int {
        let r = r ?? rank
        let a = d < 0 ? d + r : d
        precondition(a >= 0 && a < max(r, 1), "dim \(d) out of range for rank \(r)")
        return a
    }

    /// Writes this tensor's elements into `dst`, a (possibly strided) view of the same shape.
    func copyElements(into dst: Tensor) {
        precondition(dst.shape == shape, "copy of \(shape) into \(dst.shape)")
        let n = count
        if n == 0 { return }
        if dst.isContiguous { Tensor.stridedCopy(from: self, to: dst.data); return }
        let r = rank
        let inner = shape[r - 1], si = strides[r - 1], di = dst.strides[r - 1]
        let rows = n / inner
        let sp = storage.pointer, dp = dst.storage.pointer
        Parallel.forEach(rows, minChunk: max(1, Loop.grain / max(inner, 1))) { range in
            var idx = [Int](repeating: 0, count: r - 1)
            for row in range {
                var rem = row, so = self.offset, dO = dst.offset
                for d in stride(from: r - 2, through: 0, by: -1) {
                    idx[d] = rem % self.shape[d]; rem /= self.shape[d]
                    so += idx[d] * self.strides[d]; dO += idx[d] * dst.strides[d]
                }
                if si == 1 && di == 1 {
                    (dp + dO).update(from: sp + so, count: inner)
                } else {
                    for i in 0..<inner { dp[dO + i * di] = sp[so + i * si] }
                }
            }
        }
    }

    /// Elements start, start+step, … < end along `dim`, as a view. Differentiable.
    public func slice(dim: Int, start: Int = 0, end: Int? = nil, step: Int = 1) -> Tensor {
        let d = axis(dim)
        precondition(step >= 1, "slice step must be positive, got \(step)")
        let size = shape[d]
        func clampIndex(_ i: Int) -> Int { min(max(i < 0 ? i + size : i, 0), size) }
        let lo = clampIndex(start), hi = max(lo, clampIndex(end ?? size))
        var s = shape, st = strides
        s[d] = (hi - lo + step - 1) / step
        st[d] = strides[d] * step
        let out = Tensor(shape: s, storage: storage, offset: offset + lo * strides[d], strides: st)
        if Autograd.shouldRecord(self) {
            let full = shape
            out.record("slice", [self]) { g in
                let gi = Tensor(zeros: full)
                var ds = gi.strides
                ds[d] *= step
                g.copyElements(into: Tensor(shape: g.shape, storage: gi.storage, offset: lo * gi.strides[d], strides: ds))
                return [gi]
            }
        }
        return out
    }

    /// Removes a size-1 dim, as a view. Differentiable.
    public func squeezed(dim: Int) -> Tensor {
        let d = axis(dim)
        precondition(shape[d] == 1, "squeeze of dim \(dim) with size \(shape[d])")
        var s = shape, st = strides
        s.remove(at: d); st.remove(at: d)
        return viewed(shape: s, strides: st, name: "squeeze")
    }

    /// Removes every size-1 dim, as a view.
    public func squeezed() -> Tensor {
        let keep = (0..<rank).filter { shape[$0] != 1 }
        return viewed(shape: keep.map { shape[$0] }, strides: keep.map { strides[$0] }, name: "squeeze")
    }

    /// Inserts a size-1 dim at `dim` (−1 appends), as a view. Differentiable.
    public func unsqueezed(dim: Int) -> Tensor {
        let d = axis(dim, rank: rank + 1)
        var s = shape, st = strides
        s.insert(1, at: d)
        st.insert(d < rank ? strides[d] * shape[d] : 1, at: d)
        return viewed(shape: s, strides: st, name: "unsqueeze")
    }

    /// A view with the same elements in another shape; the gradient is reshaped back.
    func viewed(shape s: [Int], strides st: [Int], name: String) -> Tensor {
        let out = Tensor(shape: s, storage: storage, offset: offset, strides: st)
        if Autograd.shouldRecord(self) {
            let full = shape
            out.record(name, [self]) { g in [g.reshaped(full)] }
        }
        return out
    }

    /// Joins tensors along `dim`; all other dims must agree. Differentiable.
    public static func concat(_ parts: [Tensor], dim: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat of no tensors")
        let first = parts[0]
        let d = first.axis(dim)
        var s = first.shape
        s[d] = 0
        for p in parts {
            var ps = p.shape
            precondition(p.rank == first.rank, "concat: ranks differ, \(first.shape) and \(p.shape)")
            ps[d] = 0
            var fs = first.shape
            fs[d] = 0
            precondition(ps == fs, "concat along \(dim): shapes \(first.shape) and \(p.shape) differ off that dim")
            s[d] += p.shape[d]
        }
        let out = Tensor(uninitialized: s)
        var at = 0
        var sizes: [Int] = []
        for p in parts {
            let n = p.shape[d]
            var ps = s
            ps[d] = n
            p.copyElements(into: Tensor(shape: ps, storage: out.storage, offset: at * out.strides[d], strides: out.strides))
            at += n
            sizes.append(n)
        }
        if Autograd.shouldRecord(parts) {
            out.record("concat", parts) { g in
                var lo = 0
                return sizes.map { n in
                    defer { lo += n }
                    return g.slice(dim: d, start: lo, end: lo + n).contiguous()
                }
            }
        }
        return out
    }

    /// Pieces of the given sizes along `dim`, as views. Differentiable.
    public func split(sizes: [Int], dim: Int) -> [Tensor] {
        let d = axis(dim)
        precondition(sizes.reduce(0, +) == shape[d], "split sizes \(sizes) do not add up to \(shape[d])")
        var lo = 0
        return sizes.map { n in
            defer { lo += n }
            return slice(dim: d, start: lo, end: lo + n)
        }
    }

    /// `chunks` pieces of equal size along `dim` (the last smaller if it does not divide), as PyTorch's chunk.
    public func chunk(_ chunks: Int, dim: Int) -> [Tensor] {
        let d = axis(dim)
        let size = (shape[d] + chunks - 1) / chunks
        var sizes: [Int] = []
        var left = shape[d]
        while left > 0 { sizes.append(min(size, left)); left -= size }
        return split(sizes: sizes, dim: d)
    }
}
