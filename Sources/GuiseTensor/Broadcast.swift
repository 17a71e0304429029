/// NumPy broadcasting rules, and the reduction that undoes a broadcast in backward.
public enum Broadcast {
    public static func shape(_ a: [Int], _ b: [Int]) -> [Int] {
        let r = max(a.count, b.count)
        let pa = [Int](repeating: 1, count: r - a.count) + a
        let pb = [Int](repeating: 1, count: r - b.count) + b
        return (0..<r).map { d in
            precondition(pa[d] == pb[d] || pa[d] == 1 || pb[d] == 1, "shapes \(a) and \(b) do not broadcast")
            return max(pa[d], pb[d])
        }
    }

    /// Strides that read a tensor of `shape` as if it had `target` shape (0 on broadcast dims).
    static func strides(of t: Tensor, as target: [Int]) -> [Int] {
        let pad = target.count - t.rank
        return (0..<target.count).map { d in
            d < pad ? 0 : (t.shape[d - pad] == 1 && target[d] != 1 ? 0 : t.strides[d - pad])
        }
    }
}

extension Tensor {
    /// This tensor viewed (not copied) at a broadcast shape, with zero strides.
    public func expanded(to target: [Int]) -> Tensor {
        let out = Tensor(shape: target, storage: storage, offset: offset, strides: Broadcast.strides(of: self, as: target))
        if Autograd.shouldRecord(self) {
            let s = shape
            out.record("expand", [self]) { g in [g.summed(toShape: s)] }
        }
        return out
    }

    /// Sums over the dimensions that broadcasting added or stretched, giving `target`'s shape.
    public func summed(toShape target: [Int]) -> Tensor {
        if shape == target { return self }
        let g = contiguous()
        let out = Tensor(zeros: target)
        // Write through zero strides: every output element of a stretched dim lands on one slot.
        let pad = rank - target.count
        precondition(pad >= 0, "cannot sum \(shape) to \(target)")
        let tStrides = Tensor.denseStrides(target)
        let ws: [Int] = (0..<rank).map { d in d < pad || target[d - pad] == 1 && shape[d] != 1 ? 0 : tStrides[d - pad] }
        let inner = shape.last ?? 1
        let innerStride = ws.last ?? 0
        let rows = count / max(inner, 1)
        let src = g.data, dst = out.data
        var idx = [Int](repeating: 0, count: max(rank - 1, 0))
        for row in 0..<rows {
            var rem = row, o = 0
            for d in stride(from: rank - 2, through: 0, by: -1) {
                idx[d] = rem % shape[d]; rem /= shape[d]
                o += idx[d] * ws[d]
            }
            let s = src + row * inner
            if innerStride == 0 {
                var acc: Float = 0
                for i in 0..<inner { acc += s[i] }
                dst[o] += acc
            } else {
                for i in 0..<inner { dst[o + i] += s[i] }
            }
        }
        if Autograd.shouldRecord(self) {
            let full = shape
            out.record("sum_to_shape", [self]) { g in [g.expanded(to: full).contiguous()] }
        }
        return out
    }
}
