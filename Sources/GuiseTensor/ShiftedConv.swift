/// Stride-1 convolution without im2col.
///
/// Pad the input once into planes of width Wp. Output pixel (i, j) then reads, for kernel
/// tap (ki, kj), the padded pixel at flat offset i·Wp + j + shift, shift = ki·dh·Wp + kj·dw.
/// So if the output is computed on a "wide" grid of Ho × Wp pixels (the last Wp − Wo columns
/// of each row are junk), each tap is one GEMM whose B operand is the padded input itself,
/// offset by `shift`: y_wide = Σ_taps W_tap · x_pad[shift…]. The im2col matrix (kh·kw times
/// the input) is never written; the junk columns cost (Wp − Wo)/Wo extra work.
struct ShiftedConv {
    let channels: Int, height: Int, width: Int          // input per sample
    let outChannels: Int, groups: Int
    let kh: Int, kw: Int
    let padding: NN.Padding, dilation: NN.Pair

    var hp: Int { height + padding.top + padding.bottom }
    var wp: Int { width + padding.left + padding.right }
    var outH: Int { hp - dilation.h * (kh - 1) }
    var outW: Int { wp - dilation.w * (kw - 1) }
    var planeP: Int { hp * wp }
    var wide: Int { outH * wp }                          // GEMM N: output pixels on the wide grid
    var cg: Int { channels / groups }
    var og: Int { outChannels / groups }
    var taps: Int { kh * kw }

    /// Worth it when each tap's GEMM has real depth; depthwise convs stay on im2col.
    static func applies(_ geo: ConvGeometry, groups: Int) -> Bool {
        let p = geo.padding
        // conv_transpose2d may override the output size (output padding); then stay general.
        let natural = geo.outH == geo.height + p.top + p.bottom - geo.dilation.h * (geo.kh - 1) &&
            geo.outW == geo.width + p.left + p.right - geo.dilation.w * (geo.kw - 1)
        return geo.stride == NN.Pair(1, 1) && natural && !geo.isPointwise && geo.channels / groups >= 16
    }

    init(channels: Int, height: Int, width: Int, outChannels: Int, groups: Int, kh: Int, kw: Int,
         padding: NN.Padding, dilation: NN.Pair) {
        self.channels = channels; self.height = height; self.width = width
        self.outChannels = outChannels; self.groups = groups
        self.kh = kh; self.kw = kw; self.padding = padding; self.dilation = dilation
    }

    init(_ geo: ConvGeometry, outChannels: Int, groups: Int) {
        self.init(channels: geo.channels, height: geo.height, width: geo.width, outChannels: outChannels, groups: groups,
                  kh: geo.kh, kw: geo.kw, padding: geo.padding, dilation: geo.dilation)
    }

    func shift(_ t: Int) -> Int { (t / kw) * dilation.h * wp + (t % kw) * dilation.w }

    /// x [channels, height, width] into zero-bordered planes [channels, hp, wp], plus a zero
    /// tail: the last tap of the last row reads up to dw·(kw−1) floats past the final plane.
    func padded(_ x: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>) {
        let tail = dilation.w * (kw - 1) + 1
        let s = self
        (dst + channels * planeP).update(repeating: 0, count: tail)
        Parallel.forEach(channels, minChunk: max(1, 16384 / max(planeP, 1))) { r in
            for c in r {
                let d = dst + c * s.planeP, src = x + c * s.height * s.width
                d.update(repeating: 0, count: s.padding.top * s.wp)
                for i in 0..<s.height {
                    let row = d + (i + s.padding.top) * s.wp
                    row.update(repeating: 0, count: s.padding.left)
                    (row + s.padding.left).update(from: src + i * s.width, count: s.width)
                    (row + s.padding.left + s.width).update(repeating: 0, count: s.padding.right)
                }
                (d + (s.padding.top + s.height) * s.wp).update(repeating: 0, count: s.padding.bottom * s.wp)
            }
        }
    }

    var paddedCount: Int { channels * planeP + dilation.w * (kw - 1) + 1 }

    /// Per-tap weight matrices [taps][outChannels][cg] from W [outChannels, cg, kh, kw].
    static func tapWeights(_ w: UnsafePointer<Float>, outChannels: Int, cg: Int, taps: Int) -> Storage {
        let s = Storage(uninitializedCount: taps * outChannels * cg)
        let d = s.pointer
        Parallel.forEach(outChannels, minChunk: max(1, 16384 / max(cg * taps, 1))) { r in
            for o in r {
                for c in 0..<cg {
                    let src = w + (o * cg + c) * taps
                    for t in 0..<taps { d[(t * outChannels + o) * cg + c] = src[t] }
                }
            }
        }
        return s
    }

    /// y[n] = conv(x[n]) (+ bias) for `batch` samples, weights already per tap.
    ///
    /// `transposedTaps`: this is the input-gradient conv of a conv whose own tap weights `wk`
    /// are, [taps][channels][og] (its out channels are our in channels). Our kernel is that
    /// one flipped with in and out swapped, so our tap t is the transpose of its tap
    /// taps − 1 − t, which the GEMM reads as it is instead of a transposed copy.
    func forward(_ x: UnsafePointer<Float>, tapWeights wk: UnsafePointer<Float>, transposedTaps: Bool = false,
                 bias: UnsafePointer<Float>?, batch: Int, _ y: UnsafeMutablePointer<Float>) {
        let xp = Storage(uninitializedCount: paddedCount)
        let yw = Storage(uninitializedCount: outChannels * wide)
        let s = self
        for n in 0..<batch {
            padded(x + n * channels * height * width, into: xp.pointer)
            for t in 0..<taps {
                for g in 0..<groups {
                    let a = transposedTaps ? wk + ((taps - 1 - t) * channels + g * cg) * og : wk + (t * outChannels + g * og) * cg
                    gemmRowMajor(transA: transposedTaps, m: og, n: wide, k: cg, a, lda: transposedTaps ? og : cg,
                          xp.pointer + g * cg * planeP + shift(t), ldb: planeP,
                          beta: t == 0 ? 0 : 1, yw.pointer + g * og * wide, ldc: wide)
                }
            }
            // Drop the junk columns, adding the bias on the way.
            let yn = y + n * outChannels * outH * outW, src = yw.pointer
            Parallel.forEach(outChannels, minChunk: max(1, 16384 / max(wide, 1))) { r in
                for o in r {
                    let b = bias?[o] ?? 0
                    for i in 0..<s.outH {
                        let d = yn + (o * s.outH + i) * s.outW, w = src + o * s.wide + i * s.wp
                        for j in 0..<s.outW { d[j] = w[j] + b }
                    }
                }
            }
        }
    }

    /// The conv that maps dy back to dx: stride 1, flipped kernel, padding d·(k−1) − p.
    /// Nil when that padding would be negative (padding wider than the kernel's reach).
    func inputGradConv() -> ShiftedConv? {
        let ph = dilation.h * (kh - 1), pw = dilation.w * (kw - 1)
        let p = NN.Padding(top: ph - padding.top, bottom: ph - padding.bottom, left: pw - padding.left, right: pw - padding.right)
        guard p.top >= 0, p.bottom >= 0, p.left >= 0, p.right >= 0 else { return nil }
        return ShiftedConv(channels: outChannels, height: outH, width: outW, outChannels: channels, groups: groups,
                           kh: kh, kw: kw, padding: p, dilation: dilation)
    }

    /// dW = Σₙ Σ_wide-pixels dy_wide · x_pad[shift…]ᵀ per tap, into gw [outChannels, cg, kh, kw].
    func weightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, batch: Int, _ gw: UnsafeMutablePointer<Float>) {
        let xp = Storage(uninitializedCount: paddedCount)
        let gyw = Storage(uninitializedCount: outChannels * wide)
        let gwk = Storage(uninitializedCount: taps * outChannels * cg)
        let s = self
        for n in 0..<batch {
            padded(x + n * channels * height * width, into: xp.pointer)
            // dy on the wide grid, zero in the junk columns so they contribute nothing.
            let gn = gy + n * outChannels * outH * outW, dst = gyw.pointer
            Parallel.forEach(outChannels, minChunk: max(1, 16384 / max(wide, 1))) { r in
                for o in r {
                    for i in 0..<s.outH {
                        let d = dst + o * s.wide + i * s.wp
                        d.update(from: gn + (o * s.outH + i) * s.outW, count: s.outW)
                        (d + s.outW).update(repeating: 0, count: s.wp - s.outW)
                    }
                }
            }
            for t in 0..<taps {
                for g in 0..<groups {
                    gemmRowMajor(transB: true, m: og, n: cg, k: wide, gyw.pointer + g * og * wide, lda: wide,
                          xp.pointer + g * cg * planeP + shift(t), ldb: planeP,
                          beta: n == 0 ? 0 : 1, gwk.pointer + (t * outChannels + g * og) * cg, ldc: cg)
                }
            }
        }
        let src = gwk.pointer
        for o in 0..<outChannels {
            for c in 0..<cg {
                let d = gw + (o * cg + c) * taps
                for t in 0..<taps { d[t] = src[(t * outChannels + o) * cg + c] }
            }
        }
    }
}
