import CGemm
import COpenBLAS

/// Row-major single-precision GEMM: C = alpha·op(A)·op(B) + beta·C, op(A) m×k, op(B) k×n.
/// Split across the engine's pool (`pooledGemm`), unless `singleThreaded`: one call on this
/// thread, for callers that split the work across the pool themselves (Winograd's 36 GEMMs).
@inline(__always)
func gemmRowMajor(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
           _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
           beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int, singleThreaded: Bool = false) {
    pooledGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a, lda: lda, b, ldb: ldb, beta: beta, c, ldc: ldc,
               split: !singleThreaded)
}

/// One GEMM as blocks of C's columns or rows (whichever side is longer), a block per thread of
/// the pool, each a single-threaded call of the process's sgemm (`GemmKernel`: OpenBLAS, see
/// `BLASThreads`, or Guise's own). Block edges fall on multiples of 16, so every block but the
/// last keeps the kernels on full tiles. Below 2¹⁸ multiply-adds the split costs more than it
/// saves, and the GEMM runs as one call, as it does unless `split`. The blocks depend only on
/// the shapes and the pool's thread count, so the bits do too.
func pooledGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int, split: Bool = true) {
    let threads = Parallel.threads
    let blocks = !split || m * n * k < 1 << 18 || threads == 1 ? 1 : min(threads, max(m, n) / 16)
    func call(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ m: Int, _ n: Int) {
        if GemmKernel.active == .guise {
            guise_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        BLASThreads.run {
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }
    if blocks <= 1 { call(a, b, c, m, n); return }
    // Addresses, not pointers, cross into the pool's closure.
    let aAddress = Int(bitPattern: a), bAddress = Int(bitPattern: b), cAddress = Int(bitPattern: c)
    func edge(_ side: Int, _ block: Int) -> Int { block == blocks ? side : (side * block / blocks) & ~15 }
    Parallel.forEach(blocks, minChunk: 1) { range in
        let a = UnsafePointer<Float>(bitPattern: aAddress)!, b = UnsafePointer<Float>(bitPattern: bAddress)!
        let c = UnsafeMutablePointer<Float>(bitPattern: cAddress)!
        for block in range {
            if n >= m {
                let j0 = edge(n, block), j1 = edge(n, block + 1)
                if j1 > j0 { call(a, transB ? b + j0 * ldb : b + j0, c + j0, m, j1 - j0) }
            } else {
                let i0 = edge(m, block), i1 = edge(m, block + 1)
                if i1 > i0 { call(transA ? a + i0 : a + i0 * lda, b, c + i0 * ldc, i1 - i0, n) }
            }
        }
    }
}

/// The three kernels of a grouped convolution, on dense NCHW memory. Convolution is
/// `forward`; its transpose is `inputGrad`, so both public ops share every line.
///
/// Each kernel picks the first path that fits: depthwise convs directly (DepthwiseConv),
/// 3×3 stride 1 by Winograd (Winograd3x3), other stride-1 kernels by one GEMM per tap
/// (ShiftedConv), 1×1 stride-1 unpadded convs by one GEMM on the input as it is, and
/// everything else by im2col + GEMM (+ col2im in backward).
struct ConvKernels {
    let geo: ConvGeometry
    let batch: Int, groups: Int, outChannels: Int
    /// Read when the conv is set up, so its backward pass takes the same paths.
    var f4MinSide = Winograd4x4.minSide

    var inPerGroup: Int { geo.channels / groups }
    var outPerGroup: Int { outChannels / groups }
    var k: Int { inPerGroup * geo.kh * geo.kw }      // GEMM depth per group
    var p: Int { geo.outH * geo.outW }               // output pixels
    var inSample: Int { geo.channels * geo.height * geo.width }
    var outSample: Int { outChannels * p }

    /// y[n] = W ⋆ x[n] (+ bias), W as [outChannels, k].
    /// `slopes`, when given, is a PReLU after the clamp, one slope per output channel: the 1×1
    /// and gathered kernels apply it as they write; after the other paths it is a pass of its own.
    func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 _ y: UnsafeMutablePointer<Float>, clamp: NN.Clamp = .none, slopes: UnsafePointer<Float>? = nil) {
        let applied = run(x, w, bias: bias, y, clamp: clamp, slopes: slopes)
        guard let slopes, !applied else { return }
        let plane = p
        Parallel.forEach(batch * outChannels, minChunk: max(1, 16384 / max(plane, 1))) { r in
            for job in r {
                let s = slopes[job % outChannels], a = F8(repeating: s), d = y + job * plane
                var i = 0
                while i + 8 <= plane { let v = load8(d + i); store8(v.replacing(with: v * a, where: v .< 0), d + i); i += 8 }
                while i < plane { if d[i] < 0 { d[i] *= s }; i += 1 }
            }
        }
    }

    /// Runs the first path that fits; returns whether it applied `slopes` itself.
    private func run(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                     _ y: UnsafeMutablePointer<Float>, clamp: NN.Clamp, slopes: UnsafePointer<Float>?) -> Bool {
        if DepthwiseConv.applies(geo, groups: groups) {
            DepthwiseConv(geo: geo, batch: batch, outChannels: outChannels).forward(x, w, bias: bias, y, clamp: clamp)
            return false
        }
        if PointwiseConv.applies(geo, groups: groups, outChannels: outChannels) {
            PointwiseConv(channels: geo.channels, outChannels: outChannels, pixels: p, batch: batch)
                .forward(x, w, bias: bias, y, clamp: clamp, slopes: slopes)
            return true
        }
        if groups == 1 && outChannels <= 2 && geo.channels <= 32 && p >= 4096 && geo.kh * geo.kw > 1 {
            // One or two output planes from a few input channels (a segmentation head): per output
            // channel, the input's depthwise responses summed over channels, instead of a column
            // matrix taps·channels times the size of the output.
            let c = geo.channels, taps = geo.kh * geo.kw
            let dw = DepthwiseConv(geo: geo, batch: 1, outChannels: c)
            let parts = Storage(uninitializedCount: c * p)
            for n in 0..<batch {
                for o in 0..<outChannels {
                    dw.forward(x + n * inSample, w + o * c * taps, bias: nil, parts.pointer)
                    let d = y + n * outSample + o * p, src = parts.pointer, b = bias?[o] ?? 0
                    Parallel.forEach(p, minChunk: 16384) { r in
                        for i in r {
                            var acc: Float = 0
                            for k in 0..<c { acc += src[k * p + i] }
                            d[i] = acc + b
                        }
                    }
                }
            }
            clamp.apply(y, count: batch * outSample)
            return false
        }
        if GatheredConv.applies(geo, groups: groups, outChannels: outChannels)
            && !Winograd3x3.applies(geo, groups: groups, outChannels: outChannels) && !ShiftedConv.applies(geo, groups: groups) {
            // Small convs (few input channels, e.g. a network's first layer) are small GEMMs over
            // a column matrix that the direct 1×1 kernel reads in place, without BLAS's overheads.
            GatheredConv(geo: geo, batch: batch, outChannels: outChannels).forward(x, w, bias: bias, y, clamp: clamp, slopes: slopes)
            return true
        }
        general(x, w, bias: bias, y)
        clamp.apply(y, count: batch * outSample)
        return false
    }

    private func general(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                         _ y: UnsafeMutablePointer<Float>) {
        // A few output pixels (a head reducing 3×3 to 1×1) don't repay transforming the weights each call.
        let tiny = p < 16
        // Nor do maps up to 16×16 repay Winograd's: its weight transform (16 floats per channel
        // pair, every call) and its narrow GEMMs (one column per 2×2 tile) cost more than the
        // multiplies it saves; one GEMM per tap is 1.3–2.5× faster there (ArcFace's 14×14 and
        // 7×7 stages, an ADM's 16×16 and 8×8 levels).
        if Winograd4x4.applies(geo, groups: groups, outChannels: outChannels, minSide: f4MinSide) {
            let wino = Winograd4x4(channels: geo.channels, height: geo.height, width: geo.width,
                                   outChannels: outChannels, groups: groups, padding: geo.padding)
            let u = Winograd4x4.transformWeights(w, outChannels: outChannels, cg: inPerGroup)
            wino.forward(x, transformedWeights: u.pointer, bias: bias, batch: batch, y)
            return
        }
        if p > 256 && Winograd3x3.applies(geo, groups: groups, outChannels: outChannels) {
            let wino = Winograd3x3(channels: geo.channels, height: geo.height, width: geo.width,
                                   outChannels: outChannels, groups: groups, padding: geo.padding)
            let u = Winograd3x3.transformWeights(w, outChannels: outChannels, cg: inPerGroup)
            wino.forward(x, transformedWeights: u.pointer, bias: bias, batch: batch, y)
            return
        }
        if !tiny && ShiftedConv.applies(geo, groups: groups) {
            let sc = ShiftedConv(geo, outChannels: outChannels, groups: groups)
            let wk = ShiftedConv.tapWeights(w, outChannels: outChannels, cg: inPerGroup, taps: geo.kh * geo.kw)
            sc.forward(x, tapWeights: wk.pointer, bias: bias, batch: batch, y)
            return
        }
        let col = geo.isPointwise ? nil : Storage(uninitializedCount: geo.colRows * p)
        let og = outPerGroup, k = k, p = p
        if let bias {
            // Start from the bias and let GEMM accumulate: one pass over y fewer.
            Parallel.forEach(batch * outChannels, minChunk: max(1, 16384 / max(p, 1))) { r in
                for row in r { (y + row * p).update(repeating: bias[row % outChannels], count: p) }
            }
        }
        for n in 0..<batch {
            let xn = x + n * inSample
            let b: UnsafePointer<Float>
            if let col { geo.im2col(xn, col.pointer); b = UnsafePointer(col.pointer) } else { b = xn }
            for g in 0..<groups {
                gemmRowMajor(m: og, n: p, k: k, w + g * og * k, lda: k, b + g * k * p, ldb: p,
                      beta: bias == nil ? 0 : 1, y + n * outSample + g * og * p, ldc: p)
            }
        }
    }

    /// dx = Wᵀ·dy, folded back onto the input by col2im.
    func inputGrad(_ gy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>) {
        if DepthwiseConv.applies(geo, groups: groups) {
            DepthwiseConv(geo: geo, batch: batch, outChannels: outChannels).inputGrad(gy, w, gx)
            return
        }
        // As in forward: F(4×4) on large maps, F(2×2) on middling ones, and small maps go to
        // one GEMM per tap rather than Winograd.
        if Winograd4x4.applies(geo, groups: groups, outChannels: outChannels, minSide: f4MinSide),
           let back = Winograd4x4(channels: geo.channels, height: geo.height, width: geo.width, outChannels: outChannels,
                                  groups: groups, padding: geo.padding).inputGradConv(minSide: f4MinSide) {
            let flipped = Winograd3x3.flippedWeights(w, channels: geo.channels, outChannels: outChannels, groups: groups)
            let u = Winograd4x4.transformWeights(flipped.pointer, outChannels: geo.channels, cg: outPerGroup)
            back.forward(gy, transformedWeights: u.pointer, bias: nil, batch: batch, gx)
            return
        }
        if p > 256, Winograd3x3.applies(geo, groups: groups, outChannels: outChannels),
           let back = Winograd3x3(channels: geo.channels, height: geo.height, width: geo.width, outChannels: outChannels,
                                  groups: groups, padding: geo.padding).inputGradConv() {
            let flipped = Winograd3x3.flippedWeights(w, channels: geo.channels, outChannels: outChannels, groups: groups)
            let u = Winograd3x3.transformWeights(flipped.pointer, outChannels: geo.channels, cg: outPerGroup)
            back.forward(gy, transformedWeights: u.pointer, bias: nil, batch: batch, gx)
            return
        }
        // Few output channels make shallow per-tap GEMMs, but im2col's shallow GEMM writes a column
        // matrix taps × the input: for an ADM's last conv (256 → 6 at 256²) 600 MB, at the
        // backward's start, where memory peaks. Above 64 MB of columns, per tap it is.
        if ShiftedConv.applies(geo, groups: groups) && (outPerGroup >= 16 || geo.colRows * p > 1 << 24) {
            let sc = ShiftedConv(geo, outChannels: outChannels, groups: groups)
            if let back = sc.inputGradConv() {
                let wk = ShiftedConv.tapWeights(w, outChannels: outChannels, cg: inPerGroup, taps: geo.kh * geo.kw)
                back.forward(gy, tapWeights: wk.pointer, transposedTaps: true, bias: nil, batch: batch, gx)
                return
            }
        }
        let col = geo.isPointwise ? nil : Storage(uninitializedCount: geo.colRows * p)
        let og = outPerGroup, k = k, p = p
        if col != nil { gx.update(repeating: 0, count: batch * inSample) }
        for n in 0..<batch {
            let dst = col?.pointer ?? (gx + n * inSample)
            for g in 0..<groups {
                gemmRowMajor(transA: true, m: k, n: p, k: og, w + g * og * k, lda: k, gy + n * outSample + g * og * p, ldb: p,
                      beta: 0, dst + g * k * p, ldc: p)
            }
            if let col { geo.col2im(col.pointer, gx + n * inSample) }
        }
    }

    /// dW = Σₙ dy[n]·col(x[n])ᵀ.
    func weightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ gw: UnsafeMutablePointer<Float>) {
        if DepthwiseConv.applies(geo, groups: groups) {
            DepthwiseConv(geo: geo, batch: batch, outChannels: outChannels).weightGrad(x, gy, gw)
            return
        }
        if Winograd3x3.applies(geo, groups: groups, outChannels: outChannels) {
            Winograd3x3(channels: geo.channels, height: geo.height, width: geo.width, outChannels: outChannels,
                        groups: groups, padding: geo.padding).weightGrad(x, gy, batch: batch, gw)
            return
        }
        if ShiftedConv.applies(geo, groups: groups) {
            ShiftedConv(geo, outChannels: outChannels, groups: groups).weightGrad(x, gy, batch: batch, gw)
            return
        }
        let col = geo.isPointwise ? nil : Storage(uninitializedCount: geo.colRows * p)
        let og = outPerGroup, k = k, p = p
        for n in 0..<batch {
            let xn = x + n * inSample
            let b: UnsafePointer<Float>
            if let col { geo.im2col(xn, col.pointer); b = UnsafePointer(col.pointer) } else { b = xn }
            for g in 0..<groups {
                gemmRowMajor(transB: true, m: og, n: k, k: p, gy + n * outSample + g * og * p, lda: p, b + g * k * p, ldb: p,
                      beta: n == 0 ? 0 : 1, gw + g * og * k, ldc: k)
            }
        }
    }

    /// db[c] = Σ over batch and pixels of dy, for dy [batch, channels, plane].
    static func channelSums(_ gy: UnsafePointer<Float>, batch: Int, channels: Int, plane p: Int,
                            _ gb: UnsafeMutablePointer<Float>) {
        Parallel.forEach(channels, minChunk: max(1, 16384 / max(p * batch, 1))) { r in
            for o in r {
                var acc: Float = 0
                for n in 0..<batch {
                    let s = gy + (n * channels + o) * p
                    var v = SIMD8<Float>(repeating: 0)
                    var i = 0
                    while i + 8 <= p { v += UnsafeRawPointer(s + i).loadUnaligned(as: SIMD8<Float>.self); i += 8 }
                    var tail: Float = 0
                    while i < p { tail += s[i]; i += 1 }
                    acc += v.sum() + tail
                }
                gb[o] = acc
            }
        }
    }
}

extension NN {
    /// An activation that is a clamp of its input (ReLU, ReLU6), which a conv applies as it
    /// writes its output instead of in a pass of its own.
    public struct Clamp: Equatable, Sendable {
        public let low: Float, high: Float
        public init(low: Float, high: Float) { self.low = low; self.high = high }
        public static let none = Clamp(low: -.infinity, high: .infinity)
        public static let relu = Clamp(low: 0, high: .infinity)
        public static let relu6 = Clamp(low: 0, high: 6)

        /// The same clamp as differentiable tensor ops.
        public func apply(_ x: Tensor) -> Tensor {
            if self == .none { return x }
            if self == .relu { return x.relu() }
            if self == .relu6 { return x.relu6() }
            return x.clamped(min: low, max: high)
        }

        func apply(_ y: UnsafeMutablePointer<Float>, count: Int) {
            if self == .none { return }
            let lo = F8(repeating: low), hi = F8(repeating: high)
            Loop.map(count, y, y) { vmin(vmax($0, lo), hi) }
        }
    }

    /// 2-D convolution as PyTorch's `F.conv2d`: x [N, C, H, W], weight [O, C/groups, kh, kw],
    /// bias [O], then `clamp`. Differentiable in x, weight and bias.
    ///
    /// `prelu`, one slope per output channel, follows the clamp: without a tape both are applied
    /// as the output is written (TFLite's CONV_2D then PRELU), with one they are ops of their own.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Pair = 1,
                              padding: Padding = 0, dilation: Pair = 1, groups: Int = 1, clamp: Clamp = .none,
                              prelu: Tensor? = nil) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4, "conv2d: input \(x.shape) and weight \(weight.shape) must be 4-D")
        precondition(groups >= 1 && x.shape[1] % groups == 0 && weight.shape[0] % groups == 0,
                     "conv2d: \(x.shape[1]) input and \(weight.shape[0]) output channels are not divisible into \(groups) groups")
        precondition(weight.shape[1] * groups == x.shape[1],
                     "conv2d: weight \(weight.shape) expects \(weight.shape[1] * groups) input channels, input has \(x.shape[1])")
        if let bias { precondition(bias.shape == [weight.shape[0]], "conv2d: bias \(bias.shape) for \(weight.shape[0]) output channels") }
        let xc = x.contiguous(), wc = weight.contiguous(), bc = bias?.contiguous()
        let geo = ConvGeometry(channels: x.shape[1], height: x.shape[2], width: x.shape[3], kh: weight.shape[2], kw: weight.shape[3],
                               stride: stride, padding: padding, dilation: dilation)
        let kern = ConvKernels(geo: geo, batch: x.shape[0], groups: groups, outChannels: weight.shape[0])
        let y = Tensor(uninitialized: [x.shape[0], weight.shape[0], geo.outH, geo.outW])
        let inputs = [xc, wc] + (bc.map { [$0] } ?? [])
        // With a tape the clamp is a separate op, so its gradient is recorded.
        if let prelu { precondition(prelu.count == weight.shape[0], "conv2d: \(prelu.count) PReLU slopes for \(weight.shape[0]) output channels") }
        let recording = Autograd.shouldRecord(inputs + (prelu.map { [$0] } ?? []))
        let slopes = recording ? nil : prelu?.contiguous()
        withExtendedLifetime(slopes) {
            kern.forward(xc.data, wc.data, bias: bc?.data, y.data, clamp: recording ? .none : clamp,
                         slopes: slopes.map { UnsafePointer($0.data) })
        }

        if recording {
            let xd = xc.detached(), wd = wc.detached()
            let needX = xc.tracksGradient, needW = wc.tracksGradient, needB = bc?.tracksGradient ?? false
            y.record("conv2d", inputs) { g in
                let gy = g.contiguous()
                var grads: [Tensor?] = [nil, nil]
                if needX {
                    let gx = Tensor(uninitialized: xd.shape)
                    kern.inputGrad(gy.data, wd.data, gx.data)
                    grads[0] = gx
                }
                if needW {
                    let gw = Tensor(uninitialized: wd.shape)
                    kern.weightGrad(xd.data, gy.data, gw.data)
                    grads[1] = gw
                }
                if bc != nil {
                    var gb: Tensor? = nil
                    if needB {
                        gb = Tensor(uninitialized: [kern.outChannels])
                        ConvKernels.channelSums(gy.data, batch: kern.batch, channels: kern.outChannels, plane: kern.p, gb!.data)
                    }
                    grads.append(gb)
                }
                return grads
            }
        }
        guard recording else { return y }
        let clamped = clamp.apply(y)
        return prelu.map { NN.prelu(clamped, weight: $0.reshaped([$0.count])) } ?? clamped
    }

    /// Transposed convolution as PyTorch's `F.conv_transpose2d`: x [N, Cin, H, W],
    /// weight [Cin, Cout/groups, kh, kw], bias [Cout]. It is conv2d's input gradient, so
    /// it runs conv2d's kernels with the roles of input and output swapped.
    public static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Pair = 1,
                                       padding: Padding = 0, outputPadding: Pair = 0, dilation: Pair = 1,
                                       groups: Int = 1) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4, "conv_transpose2d: input \(x.shape) and weight \(weight.shape) must be 4-D")
        precondition(weight.shape[0] == x.shape[1], "conv_transpose2d: weight \(weight.shape) expects \(weight.shape[0]) input channels, input has \(x.shape[1])")
        precondition(groups >= 1 && x.shape[1] % groups == 0, "conv_transpose2d: \(x.shape[1]) input channels are not divisible into \(groups) groups")
        precondition(outputPadding.h >= 0 && outputPadding.w >= 0 &&
                     (outputPadding.h < stride.h || outputPadding.h < dilation.h) &&
                     (outputPadding.w < stride.w || outputPadding.w < dilation.w),
                     "conv_transpose2d: output padding \(outputPadding) must be smaller than stride \(stride) or dilation \(dilation)")
        let cout = weight.shape[1] * groups
        if let bias { precondition(bias.shape == [cout], "conv_transpose2d: bias \(bias.shape) for \(cout) output channels") }
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let kh = weight.shape[2], kw = weight.shape[3]
        let outH = (h - 1) * stride.h - padding.top - padding.bottom + dilation.h * (kh - 1) + outputPadding.h + 1
        let outW = (w - 1) * stride.w - padding.left - padding.right + dilation.w * (kw - 1) + outputPadding.w + 1
        precondition(outH > 0 && outW > 0, "conv_transpose2d: padding \(padding) leaves an empty output")
        // The conv whose input is our output: it maps [Cout, outH, outW] back to [Cin, h, w].
        var geo = ConvGeometry(channels: cout, height: outH, width: outW, kh: kh, kw: kw,
                               stride: stride, padding: padding, dilation: dilation)
        // Output padding beyond the stride (allowed when dilation is larger) makes the
        // conv formula overshoot; the window positions are still those of x's pixels.
        geo.outH = h; geo.outW = w
        let kern = ConvKernels(geo: geo, batch: n, groups: groups, outChannels: x.shape[1])
        let xc = x.contiguous(), wc = weight.contiguous(), bc = bias?.contiguous()
        let y = Tensor(uninitialized: [n, cout, outH, outW])
        kern.inputGrad(xc.data, wc.data, y.data)
        if let bc {
            let yp = y.data, bp = bc.data, plane = outH * outW
            Parallel.forEach(n * cout, minChunk: max(1, 16384 / plane)) { r in
                for row in r {
                    let b = bp[row % cout], d = yp + row * plane
                    for i in 0..<plane { d[i] += b }
                }
            }
        }

        let inputs = [xc, wc] + (bc.map { [$0] } ?? [])
        if Autograd.shouldRecord(inputs) {
            let xd = xc.detached(), wd = wc.detached()
            let needX = xc.tracksGradient, needW = wc.tracksGradient, needB = bc?.tracksGradient ?? false
            y.record("conv_transpose2d", inputs) { g in
                let gy = g.contiguous()
                var grads: [Tensor?] = [nil, nil]
                if needX {
                    let gx = Tensor(uninitialized: xd.shape)
                    kern.forward(gy.data, wd.data, bias: nil, gx.data)
                    grads[0] = gx
                }
                if needW {
                    let gw = Tensor(uninitialized: wd.shape)
                    kern.weightGrad(gy.data, xd.data, gw.data)
                    grads[1] = gw
                }
                if bc != nil {
                    var gb: Tensor? = nil
                    if needB {
                        gb = Tensor(uninitialized: [cout])
                        ConvKernels.channelSums(gy.data, batch: n, channels: cout, plane: outH * outW, gb!.data)
                    }
                    grads.append(gb)
                }
                return grads
            }
        }
        return y
    }
}
