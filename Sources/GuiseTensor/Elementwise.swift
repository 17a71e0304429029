/// Binary arithmetic with broadcasting. Same-shape dense operands and scalar operands take
/// SIMD fast paths split across cores; anything else goes through strided indexing.
enum BinaryOp {
    case add, sub, mul, div

    @inline(__always) func apply(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        switch self { case .add: return a + b; case .sub: return a - b; case .mul: return a * b; case .div: return a / b }
    }

    @inline(__always) func apply(_ a: Float, _ b: Float) -> Float {
        switch self { case .add: return a + b; case .sub: return a - b; case .mul: return a * b; case .div: return a / b }
    }
}

extension Tensor {
    static func binaryForward(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
        let outShape = a.shape == b.shape ? a.shape : Broadcast.shape(a.shape, b.shape)
        let out = Tensor(uninitialized: outShape)
        let n = out.count
        let o = out.data
        if a.shape == b.shape && a.isContiguous && b.isContiguous {
            let pa = a.data, pb = b.data
            Parallel.forEach(n, minChunk: 32768) { r in
                var i = r.lowerBound
                while i + 8 <= r.upperBound {
                    let va = UnsafeRawPointer(pa + i).loadUnaligned(as: SIMD8<Float>.self)
                    let vb = UnsafeRawPointer(pb + i).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(o + i).storeBytes(of: op.apply(va, vb), as: SIMD8<Float>.self)
                    i += 8
                }
                while i < r.upperBound { o[i] = op.apply(pa[i], pb[i]); i += 1 }
            }
            return out
        }
        if b.count == 1 && a.isContiguous && a.shape == outShape {
            let pa = a.data, s = b.storage.pointer[b.offset]
            let vs = SIMD8<Float>(repeating: s)
            Parallel.forEach(n, minChunk: 32768) { r in
                var i = r.lowerBound
                while i + 8 <= r.upperBound {
                    let va = UnsafeRawPointer(pa + i).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(o + i).storeBytes(of: op.apply(va, vs), as: SIMD8<Float>.self)
                    i += 8
                }
                while i < r.upperBound { o[i] = op.apply(pa[i], s); i += 1 }
            }
            return out
        }
        // One operand constant along the trailing dims (a per-channel scale on NCHW, as in a
        // squeeze-and-excitation block): a scalar per outer index, vectorised over the rest.
        for (full, part, partIsRight) in [(a, b, true), (b, a, false)]
        where full.shape == outShape && full.isContiguous && part.isContiguous && part.count > 1 {
            let ps = [Int](repeating: 1, count: outShape.count - part.rank) + part.shape
            var k = ps.count
            while k > 0 && ps[k - 1] == 1 { k -= 1 }
            guard k < ps.count, Array(ps[0..<k]) == Array(outShape[0..<k]) else { continue }
            let inner = n / part.count
            guard inner >= 8 else { continue }
            let pf = full.data, pp = part.data
            Parallel.forEach(part.count, minChunk: max(1, 16384 / inner)) { r in
                for q in r {
                    let s = pp[q], vs = SIMD8<Float>(repeating: s), src = pf + q * inner, dst = o + q * inner
                    var i = 0
                    while i + 8 <= inner {
                        let v = load8(src + i)
                        store8(partIsRight ? op.apply(v, vs) : op.apply(vs, v), dst + i)
                        i += 8
                    }
                    while i < inner { dst[i] = partIsRight ? op.apply(src[i], s) : op.apply(s, src[i]); i += 1 }
                }
            }
            return out
        }
        // General case: walk rows of the output; operands read through broadcast strides.
        let sa = Broadcast.strides(of: a, as: outShape), sb = Broadcast.strides(of: b, as: outShape)
        let r = outShape.count
        let inner = outShape.last ?? 1
        let ia = sa.last ?? 0, ib = sb.last ?? 0
        let rows = n / max(inner, 1)
        let pa = a.storage.pointer, pb = b.storage.pointer
        Parallel.forEach(rows, minChunk: max(1, 16384 / max(inner, 1))) { range in
            var idx = [Int](repeating: 0, count: max(r - 1, 0))
            for row in range {
                var rem = row, oa = a.offset, ob = b.offset
                for d in stride(from: r - 2, through: 0, by: -1) {
                    idx[d] = rem % outShape[d]; rem /= outShape[d]
                    oa += idx[d] * sa[d]; ob += idx[d] * sb[d]
                }
                let dst = o + row * inner
                for i in 0..<inner { dst[i] = op.apply(pa[oa + i * ia], pb[ob + i * ib]) }
            }
        }
        return out
    }

    public func adding(_ other: Tensor) -> Tensor {
        let out = Tensor.binaryForward(.add, self, other)
        if Autograd.shouldRecord(self, other) {
            let sa = shape, sb = other.shape
            out.record("add", [self, other]) { g in [g.summed(toShape: sa), g.summed(toShape: sb)] }
        }
        return out
    }

    public func subtracting(_ other: Tensor) -> Tensor {
        let out = Tensor.binaryForward(.sub, self, other)
        if Autograd.shouldRecord(self, other) {
            let sa = shape, sb = other.shape
            out.record("sub", [self, other]) { g in [g.summed(toShape: sa), g.scaled(-1).summed(toShape: sb)] }
        }
        return out
    }

    public func multiplying(_ other: Tensor) -> Tensor {
        let out = Tensor.binaryForward(.mul, self, other)
        if Autograd.shouldRecord(self, other) {
            let a = self.detached(), b = other.detached()
            out.record("mul", [self, other]) { g in
                [g.multiplying(b).summed(toShape: a.shape), g.multiplying(a).summed(toShape: b.shape)]
            }
        }
        return out
    }

    public func dividing(_ other: Tensor) -> Tensor {
        let out = Tensor.binaryForward(.div, self, other)
        if Autograd.shouldRecord(self, other) {
            let a = self.detached(), b = other.detached()
            out.record("div", [self, other]) { g in
                let ga = g.dividing(b)
                // d(a/b)/db = -a/b² = -(a/b)/b
                let gb = ga.multiplying(a).dividing(b).scaled(-1)
                return [ga.summed(toShape: a.shape), gb.summed(toShape: b.shape)]
            }
        }
        return out
    }

    /// self * s + bias, elementwise. Differentiable in self.
    public func scaled(_ s: Float, plus bias: Float = 0) -> Tensor {
        let src = contiguous()
        let out = Tensor(uninitialized: shape)
        let p = src.data, o = out.data
        Parallel.forEach(count, minChunk: 32768) { r in
            for i in r { o[i] = p[i] * s + bias }
        }
        if Autograd.shouldRecord(src) {
            out.record("scale", [src]) { g in [g.scaled(s)] }
        }
        return out
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor { a.adding(b) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { a.subtracting(b) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { a.multiplying(b) }
    public static func / (a: Tensor, b: Tensor) -> Tensor { a.dividing(b) }
    public static func * (a: Tensor, s: Float) -> Tensor { a.scaled(s) }
    public static func * (s: Float, a: Tensor) -> Tensor { a.scaled(s) }
    public static func + (a: Tensor, s: Float) -> Tensor { a.scaled(1, plus: s) }
    public static func - (a: Tensor, s: Float) -> Tensor { a.scaled(1, plus: -s) }
    public static prefix func - (a: Tensor) -> Tensor { a.scaled(-1) }
}
