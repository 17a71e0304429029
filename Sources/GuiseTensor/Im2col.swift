/// Geometry shared by convolution, its transpose and the im2col/col2im kernels.
///
/// Padding is per side: PyTorch's conv only pads symmetrically, but an asymmetric pad
/// (TensorFlow "SAME" with stride 2) then costs nothing extra here.
public extension NN {
    /// A (height, width) pair. An integer literal means the same value for both.
    struct Pair: Equatable, ExpressibleByIntegerLiteral, CustomStringConvertible {
        public var h: Int, w: Int
        public init(_ h: Int, _ w: Int) { self.h = h; self.w = w }
        public init(integerLiteral v: Int) { self.init(v, v) }
        public var description: String { "(\(h), \(w))" }
    }

    /// Padding on each side of H and W. An integer literal pads every side equally;
    /// `Padding(h, w)` is PyTorch's `padding=(h, w)`.
    struct Padding: Equatable, ExpressibleByIntegerLiteral, CustomStringConvertible {
        public var top: Int, bottom: Int, left: Int, right: Int
        public init(top: Int, bottom: Int, left: Int, right: Int) {
            self.top = top; self.bottom = bottom; self.left = left; self.right = right
        }
        public init(_ h: Int, _ w: Int) { self.init(top: h, bottom: h, left: w, right: w) }
        public init(integerLiteral v: Int) { self.init(v, v) }
        public var description: String { "(top \(top), bottom \(bottom), left \(left), right \(right))" }
        public static func + (a: Padding, b: Padding) -> Padding {
            Padding(top: a.top + b.top, bottom: a.bottom + b.bottom, left: a.left + b.left, right: a.right + b.right)
        }
    }
}

/// Everything that fixes how a convolution window walks one image plane.
struct ConvGeometry {
    let channels: Int, height: Int, width: Int        // input plane (per sample, all groups)
    let kh: Int, kw: Int
    let stride: NN.Pair, padding: NN.Padding, dilation: NN.Pair
    var outH: Int, outW: Int

    init(channels: Int, height: Int, width: Int, kh: Int, kw: Int,
         stride: NN.Pair, padding: NN.Padding, dilation: NN.Pair) {
        precondition(stride.h > 0 && stride.w > 0 && dilation.h > 0 && dilation.w > 0, "conv: stride \(stride) and dilation \(dilation) must be positive")
        precondition(padding.top >= 0 && padding.bottom >= 0 && padding.left >= 0 && padding.right >= 0, "conv: negative padding \(padding)")
        self.channels = channels; self.height = height; self.width = width
        self.kh = kh; self.kw = kw
        self.stride = stride; self.padding = padding; self.dilation = dilation
        outH = (height + padding.top + padding.bottom - dilation.h * (kh - 1) - 1) / stride.h + 1
        outW = (width + padding.left + padding.right - dilation.w * (kw - 1) - 1) / stride.w + 1
        precondition(outH > 0 && outW > 0, "conv: kernel \(kh)×\(kw) (dilation \(dilation)) is larger than the padded input \(height)×\(width)")
    }

    /// Rows of the column matrix: one per (channel, kernel row, kernel column).
    var colRows: Int { channels * kh * kw }
    var colCols: Int { outH * outW }

    /// A 1×1, stride-1, unpadded conv reads its input as the GEMM operand directly.
    var isPointwise: Bool {
        kh == 1 && kw == 1 && stride == NN.Pair(1, 1) &&
            padding == NN.Padding(top: 0, bottom: 0, left: 0, right: 0)
    }

    /// The output columns `ow` whose input column `ow*stride - pad + off` lies inside 0..<size.
    @inline(__always)
    static func validRange(out: Int, size: Int, stride: Int, pad: Int, off: Int) -> Range<Int> {
        // ow*stride >= pad - off  and  ow*stride <= size - 1 + pad - off
        let lo0 = pad - off
        let lo = lo0 <= 0 ? 0 : (lo0 + stride - 1) / stride
        let hi0 = size - 1 + pad - off
        let hi = hi0 < 0 ? 0 : hi0 / stride + 1
        return min(lo, out)..<max(min(hi, out), min(lo, out))
    }

    /// Fills `col` ([colRows, outH*outW]) from one sample `x` ([channels, height, width]).
    /// Rows are independent, so they are split across cores; within a row, stride-1 runs
    /// are plain copies.
    func im2col(_ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>) {
        let rows = colRows, plane = height * width, cols = colCols
        let g = self
        Parallel.forEach(rows, minChunk: max(1, 8192 / max(cols, 1))) { range in
            for r in range {
                let c = r / (g.kh * g.kw), k = r % (g.kh * g.kw)
                let ki = k / g.kw, kj = k % g.kw
                let src = x + c * plane
                let dst = col + r * cols
                let wr = ConvGeometry.validRange(out: g.outW, size: g.width, stride: g.stride.w, pad: g.padding.left, off: kj * g.dilation.w)
                let hr = ConvGeometry.validRange(out: g.outH, size: g.height, stride: g.stride.h, pad: g.padding.top, off: ki * g.dilation.h)
                if hr.isEmpty || wr.isEmpty { dst.update(repeating: 0, count: cols); continue }
                if hr.lowerBound > 0 { dst.update(repeating: 0, count: hr.lowerBound * g.outW) }
                if hr.upperBound < g.outH {
                    (dst + hr.upperBound * g.outW).update(repeating: 0, count: (g.outH - hr.upperBound) * g.outW)
                }
                let iw0 = wr.lowerBound * g.stride.w - g.padding.left + kj * g.dilation.w
                for oh in hr {
                    let ih = oh * g.stride.h - g.padding.top + ki * g.dilation.h
                    let d = dst + oh * g.outW
                    let s = src + ih * g.width + iw0
                    if wr.lowerBound > 0 { d.update(repeating: 0, count: wr.lowerBound) }
                    if g.stride.w == 1 {
                        (d + wr.lowerBound).update(from: s, count: wr.count)
                    } else {
                        let sw = g.stride.w
                        var i = 0
                        for ow in wr { d[ow] = s[i * sw]; i += 1 }
                    }
                    if wr.upperBound < g.outW { (d + wr.upperBound).update(repeating: 0, count: g.outW - wr.upperBound) }
                }
            }
        }
    }

    /// Adds the column matrix back onto one sample's input gradient `gx` (which the caller
    /// zeroes). Each channel owns its kh·kw rows and its own plane, so splitting by channel
    /// needs no locks.
    func col2im(_ col: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>) {
        let plane = height * width, cols = colCols
        let g = self
        Parallel.forEach(channels, minChunk: max(1, 4096 / max(cols * kh * kw, 1))) { range in
            for c in range {
                let dstPlane = gx + c * plane
                for k in 0..<(g.kh * g.kw) {
                    let ki = k / g.kw, kj = k % g.kw
                    let src = col + (c * g.kh * g.kw + k) * cols
                    let wr = ConvGeometry.validRange(out: g.outW, size: g.width, stride: g.stride.w, pad: g.padding.left, off: kj * g.dilation.w)
                    let hr = ConvGeometry.validRange(out: g.outH, size: g.height, stride: g.stride.h, pad: g.padding.top, off: ki * g.dilation.h)
                    if wr.isEmpty { continue }
                    let iw0 = wr.lowerBound * g.stride.w - g.padding.left + kj * g.dilation.w
                    for oh in hr {
                        let ih = oh * g.stride.h - g.padding.top + ki * g.dilation.h
                        let s = src + oh * g.outW + wr.lowerBound
                        let d = dstPlane + ih * g.width + iw0
                        let n = wr.count
                        if g.stride.w == 1 {
                            for i in 0..<n { d[i] += s[i] }
                        } else {
                            let sw = g.stride.w
                            for i in 0..<n { d[i * sw] += s[i] }
                        }
                    }
                }
            }
        }
    }
}

/// A zero-bordered copy of one input plane, each padded row split into `stride` phases
/// (padded columns ≡ q mod stride, in order), each phase with room for 16-wide reads to
/// run past its end.
struct PhasePlane {
    let geo: ConvGeometry
    let phase: Int, pitch: Int, rows: Int

    init(geo g: ConvGeometry) {
        geo = g
        let paddedWidth = g.width + g.padding.left + g.padding.right
        phase = (paddedWidth + g.stride.w - 1) / g.stride.w + 16
        pitch = g.stride.w * phase
        rows = g.height + g.padding.top + g.padding.bottom
    }

    /// Where padded column `col` of a row lies within the row.
    func offset(column col: Int) -> Int { col % geo.stride.w * phase + col / geo.stride.w }

    /// `count` planes, zeroed once; `fill` rewrites only the interior, so the border stays zero.
    func allocate(count: Int = 1) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: count * rows * pitch)
        p.initialize(repeating: 0, count: count * rows * pitch)
        return p
    }

    func fill(_ plane: UnsafeMutablePointer<Float>, from src: UnsafePointer<Float>) {
        let g = geo, sw = g.stride.w, pl = g.padding.left, wd = g.width
        for ih in 0..<g.height {
            let s = src + ih * wd, d = plane + (ih + g.padding.top) * pitch
            if sw == 1 {
                // Short rows (7×7, 14×14 planes): a call to memmove costs more than the copy.
                if wd <= 32 { for i in 0..<wd { d[pl + i] = s[i] } } else { (d + pl).update(from: s, count: wd) }
            } else if sw == 2 {
                // Even input columns land in one phase and odd ones in the other.
                let evens = d + offset(column: pl), odds = d + offset(column: pl + 1)
                var m = 0
                while 2 * m + 16 <= wd {
                    let v = UnsafeRawPointer(s + 2 * m).loadUnaligned(as: SIMD16<Float>.self)
                    store8(v.evenHalf, evens + m); store8(v.oddHalf, odds + m)
                    m += 8
                }
                while 2 * m < wd {
                    evens[m] = s[2 * m]
                    if 2 * m + 1 < wd { odds[m] = s[2 * m + 1] }
                    m += 1
                }
            } else {
                // Counters, not a division per element.
                var q = pl % sw, k = pl / sw
                for iw in 0..<wd {
                    d[q * phase + k] = s[iw]
                    q += 1
                    if q == sw { q = 0; k += 1 }
                }
            }
        }
    }
}
