/// A float32 n-dimensional array with shape and strides over a shared `Storage`.
///
/// Images are NCHW. Views (reshape of a contiguous tensor, `narrow` on the outer
/// dimension, `permuted`) share storage; ops that need dense memory call `contiguous()`,
/// which copies only when the layout is not already dense.
public final class Tensor {
    public let shape: [Int]
    public let strides: [Int]
    public let offset: Int
    public let storage: Storage

    /// Marks a leaf whose gradient `backward()` should store in `grad`.
    public var requiresGrad = false
    public var grad: Tensor?
    /// The op that produced this tensor, present only while gradients are being recorded.
    public internal(set) var gradFn: GradFn?

    public init(shape: [Int], storage: Storage, offset: Int = 0, strides: [Int]? = nil) {
        self.shape = shape
        self.strides = strides ?? Tensor.denseStrides(shape)
        self.offset = offset
        self.storage = storage
    }

    /// A dense tensor whose contents the caller must fully write.
    public convenience init(uninitialized shape: [Int]) {
        self.init(shape: shape, storage: Storage(uninitializedCount: Tensor.product(shape)))
    }

    public convenience init(zeros shape: [Int]) {
        self.init(shape: shape, storage: Storage(zeroedCount: Tensor.product(shape)))
    }

    public convenience init(shape: [Int], repeating value: Float) {
        self.init(uninitialized: shape)
        data.update(repeating: value, count: count)
    }

    public convenience init(shape: [Int], values: [Float]) {
        precondition(values.count == Tensor.product(shape), "\(values.count) values for shape \(shape)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
    }

    public static func scalar(_ v: Float) -> Tensor { Tensor(shape: [], values: [v]) }

    public var rank: Int { shape.count }
    public var count: Int { Tensor.product(shape) }

    public var isContiguous: Bool { strides == Tensor.denseStrides(shape) }

    /// Dense element pointer. Only valid on a contiguous tensor.
    public var data: UnsafeMutablePointer<Float> {
        precondition(isContiguous, "data of a non-contiguous tensor; call contiguous() first")
        return storage.pointer + offset
    }

    /// The elements in row-major order, as a fresh array.
    public var values: [Float] {
        let c = contiguous()
        return Array(UnsafeBufferPointer(start: c.data, count: c.count))
    }

    public func item() -> Float {
        precondition(count == 1, "item() of a tensor with \(count) elements")
        return storage.pointer[offset]
    }

    public subscript(indices: Int...) -> Float {
        get { storage.pointer[flatIndex(indices)] }
        set { storage.pointer[flatIndex(indices)] = newValue }
    }

    private func flatIndex(_ idx: [Int]) -> Int {
        precondition(idx.count == rank, "index rank \(idx.count) for tensor rank \(rank)")
        var o = offset
        for d in 0..<rank {
            precondition(idx[d] >= 0 && idx[d] < shape[d], "index \(idx) out of range for \(shape)")
            o += idx[d] * strides[d]
        }
        return o
    }

    /// A tensor sharing storage but cut off from gradient recording.
    public func detached() -> Tensor {
        Tensor(shape: shape, storage: storage, offset: offset, strides: strides)
    }

    /// A dense copy that owns its memory, never aliasing this tensor.
    public func copy() -> Tensor {
        let out = Tensor(uninitialized: shape)
        Tensor.stridedCopy(from: self, to: out.data)
        return out
    }

    public static func product(_ s: [Int]) -> Int { s.reduce(1, *) }

    public static func denseStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[d] = acc
            acc *= shape[d]
        }
        return strides
    }

    /// Gathers a strided tensor into dense memory. Size-1 dimensions are dropped and dimensions
    /// that are contiguous with each other merged first (a [1, H, W, 1] view of an NCHW plane is
    /// a plain copy). The last two dimensions are then copied as one 2-D block per outer index,
    /// the inner one as a run when it is unit-stride, so permutes between NCHW and NHWC don't
    /// pay index arithmetic per element or per short row.
    static func stridedCopy(from t: Tensor, to dst: UnsafeMutablePointer<Float>) {
        let n = t.count
        if n == 0 { return }
        if t.isContiguous { dst.update(from: t.storage.pointer + t.offset, count: n); return }
        var shape: [Int] = [], strides: [Int] = []
        for (size, st) in zip(t.shape, t.strides) where size != 1 {
            if let last = shape.last, strides.last! == st * size {
                shape[shape.count - 1] = last * size; strides[strides.count - 1] = st
            } else {
                shape.append(size); strides.append(st)
            }
        }
        let src = t.storage.pointer + t.offset
        if shape.count <= 1 {
            let st = strides.first ?? 1
            if st == 1 { dst.update(from: src, count: n) } else { for i in 0..<n { dst[i] = src[i * st] } }
            return
        }
        let r = shape.count
        let rowsIn = shape[r - 2], inner = shape[r - 1], rowStride = strides[r - 2], innerStride = strides[r - 1]
        let block = rowsIn * inner, blocks = n / block
        Parallel.forEach(blocks, minChunk: max(1, 16384 / max(block, 1))) { range in
            for b in range {
                var rem = b, o = 0
                for d in stride(from: r - 3, through: 0, by: -1) {
                    o += (rem % shape[d]) * strides[d]; rem /= shape[d]
                }
                let out = dst + b * block
                for i in 0..<rowsIn {
                    let s = src + o + i * rowStride, d = out + i * inner
                    if innerStride == 1 {
                        d.update(from: s, count: inner)
                    } else {
                        for j in 0..<inner { d[j] = s[j * innerStride] }
                    }
                }
            }
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let v = count <= 8 ? values.map { "\($0)" }.joined(separator: ", ") : "…"
        return "Tensor(\(shape)\(gradFn.map { ", grad_fn: \($0.name)" } ?? ""))[\(v)]"
    }
}

// MARK: - Views

extension Tensor {
    /// Dense layout, copying only when needed. Differentiable.
    public func contiguous() -> Tensor {
        if isContiguous { return self }
        let out = copy()
        if Autograd.shouldRecord(self) {
            out.record("contiguous", [self]) { g in [g] }
        }
        return out
    }

    /// Same elements, new shape; one dimension may be -1. A view when dense. Differentiable.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            s[i] = count / known
        }
        precondition(Tensor.product(s) == count, "cannot reshape \(shape) to \(newShape)")
        let base = contiguous()
        let out = Tensor(shape: s, storage: base.storage, offset: base.offset)
        if Autograd.shouldRecord(base) {
            let inShape = base.shape
            out.record("reshape", [base]) { g in [g.reshaped(inShape)] }
        }
        return out
    }

    public func reshaped(_ dims: Int...) -> Tensor { reshaped(dims) }

    public func flattened() -> Tensor { reshaped([count]) }

    /// Rows `range` of the first dimension, sharing storage. Differentiable.
    public func narrow(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "narrow \(range) of \(shape)")
        var s = shape
        s[0] = range.count
        let out = Tensor(shape: s, storage: storage, offset: offset + range.lowerBound * strides[0], strides: strides)
        if Autograd.shouldRecord(self) {
            let full = shape
            out.record("narrow", [self]) { g in
                let gi = Tensor(zeros: full)
                let inner = Tensor.product(Array(full.dropFirst()))
                let gc = g.contiguous()
                (gi.data + range.lowerBound * inner).update(from: gc.data, count: gc.count)
                return [gi]
            }
        }
        return out
    }

    /// Reorders dimensions as a strided view (no copy). Differentiable.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permutation \(order) of rank \(rank)")
        let out = Tensor(shape: order.map { shape[$0] }, storage: storage, offset: offset, strides: order.map { strides[$0] })
        if Autograd.shouldRecord(self) {
            var inverse = [Int](repeating: 0, count: order.count)
            for (i, o) in order.enumerated() { inverse[o] = i }
            out.record("permute", [self]) { g in [g.permuted(inverse)] }
        }
        return out
    }

    public func permuted(_ order: Int...) -> Tensor { permuted(order) }

    /// Swaps the last two dimensions as a view.
    public var transposedLastTwo: Tensor {
        var o = Array(0..<rank)
        o.swapAt(rank - 1, rank - 2)
        return permuted(o)
    }
}

// MARK: - Half-precision widening

public enum HalfFloat {
    /// IEEE binary16 bits to float32 (subnormals, infinities and NaN included).
    @inlinable
    public static func f16ToF32(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = UInt32(h >> 10) & 0x1F
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            if mant == 0 { return Float(bitPattern: sign) }
            // Subnormal: value = mant * 2^-24.
            let v = Float(mant) * Float(bitPattern: 0x3380_0000)
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
    }

    /// bfloat16 bits are the top half of a float32.
    @inlinable
    public static func bf16ToF32(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// float32 to binary16 with round-to-nearest-even, as numpy and PyTorch do.
    @inlinable
    public static func f32ToF16(_ f: Float) -> UInt16 { Float16(f).bitPattern }

    public static func widenF16(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { dst[i] = f16ToF32(src[i]) }
    }

    public static func widenBF16(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { dst[i] = bf16ToF32(src[i]) }
    }
}
