/// Depthwise convolution (one input channel per group) computed directly. Through im2col
/// each group would be a 1-row GEMM over a kh·kw-deep column matrix: mostly overhead.
/// Here each output plane is a sum of kh·kw shifted, scaled input rows, which vectorises
/// along W when the stride is 1; planes are independent, so they are split across cores.
struct DepthwiseConv {
    let geo: ConvGeometry
    let batch: Int, outChannels: Int
    var multiplier: Int { outChannels / geo.channels }
    /// Per kernel column: the output columns it reaches inside the input, and the input column of the first.
    let columns: [Range<Int>], firstColumn: [Int]

    init(geo: ConvGeometry, batch: Int, outChannels: Int) {
        self.geo = geo; self.batch = batch; self.outChannels = outChannels
        let cols = (0..<geo.kw).map { kj in
            ConvGeometry.validRange(out: geo.outW, size: geo.width, stride: geo.stride.w, pad: geo.padding.left, off: kj * geo.dilation.w)
        }
        columns = cols
        firstColumn = (0..<geo.kw).map { kj in cols[kj].lowerBound * geo.stride.w - geo.padding.left + kj * geo.dilation.w }
    }

    /// Tests turn this off to run the same convs through the grouped GEMM paths (ShiftedConv,
    /// im2col) and compare; nothing else should touch it.
    nonisolated(unsafe) static var enabled = true

    static func applies(_ geo: ConvGeometry, groups: Int) -> Bool {
        enabled && groups > 1 && groups == geo.channels
    }

    /// Calls `body(oh, ih, owRange, iw0)` for every output row and kernel tap that overlap the input.
    @inline(__always)
    func forEachRun(ki: Int, kj: Int, _ body: (Int, Int, Range<Int>, Int) -> Void) {
        let g = geo
        let wr = ConvGeometry.validRange(out: g.outW, size: g.width, stride: g.stride.w, pad: g.padding.left, off: kj * g.dilation.w)
        let hr = ConvGeometry.validRange(out: g.outH, size: g.height, stride: g.stride.h, pad: g.padding.top, off: ki * g.dilation.h)
        if wr.isEmpty { return }
        let iw0 = wr.lowerBound * g.stride.w - g.padding.left + kj * g.dilation.w
        for oh in hr { body(oh, oh * g.stride.h - g.padding.top + ki * g.dilation.h, wr, iw0) }
    }

    /// Each input plane is first copied into a zero-bordered scratch plane, with the columns of
    /// each row split into their `stride` phases (columns ≡ q mod stride), so every tap of every
    /// output is a contiguous, in-bounds read. Then 8 outputs of a row at a time are summed over
    /// all taps in a register and stored once, with the bias first and the clamp last.
    func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 _ y: UnsafeMutablePointer<Float>, clamp: NN.Clamp = .none) {
        let g = geo, taps = g.kh * g.kw, outPlane = g.outH * g.outW, inPlane = g.height * g.width
        let oc = outChannels, mult = multiplier
        let lo = F8(repeating: clamp.low), hi = F8(repeating: clamp.high), clamps = clamp != .none
        let sh = g.stride.h, sw = g.stride.w, dh = g.dilation.h, dw = g.dilation.w
        let ph = g.height + g.padding.top + g.padding.bottom, pw = g.width + g.padding.left + g.padding.right
        // Phase length with room for the last 8-wide read of a row to run past its end.
        let phase = (pw + sw - 1) / sw + 8, pitch = sw * phase
        // Per kernel column: its phase and offset within the phase.
        let tapOffset = (0..<g.kw).map { kj in (kj * dw) % sw * phase + (kj * dw) / sw }
        Parallel.forEach(batch * oc, minChunk: max(1, 8192 / max(outPlane * taps, 1))) { r in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: ph * pitch)
            scratch.initialize(repeating: 0, count: ph * pitch)
            defer { scratch.deallocate() }
            var filled = -1
            for plane in r {
                let n = plane / oc, o = plane % oc, c = n * g.channels + o / mult
                if c != filled {
                    // Channel multipliers > 1: consecutive planes share their input.
                    let src = x + c * inPlane
                    for ih in 0..<g.height {
                        let s = src + ih * g.width, d = scratch + (ih + g.padding.top) * pitch
                        if sw == 1 {
                            (d + g.padding.left).update(from: s, count: g.width)
                        } else {
                            // Counters, not a division per element.
                            var q = g.padding.left % sw, k = g.padding.left / sw
                            for iw in 0..<g.width {
                                d[q * phase + k] = s[iw]
                                q += 1
                                if q == sw { q = 0; k += 1 }
                            }
                        }
                    }
                    filled = c
                }
                let dst = y + plane * outPlane, wo = w + o * taps
                let b = F8(repeating: bias?[o] ?? 0)
                for oh in 0..<g.outH {
                    let rows = scratch + oh * sh * pitch, d = dst + oh * g.outW
                    var ow = 0
                    while ow < g.outW {
                        var acc = b
                        for ki in 0..<g.kh {
                            let row = rows + ki * dh * pitch + ow
                            for kj in 0..<g.kw {
                                acc = acc.addingProduct(F8(repeating: wo[ki * g.kw + kj]), load8(row + tapOffset[kj]))
                            }
                        }
                        if clamps { acc = vmin(vmax(acc, lo), hi) }
                        if ow + 8 <= g.outW { store8(acc, d + ow) } else { storePartial(acc, d + ow, g.outW - ow) }
                        ow += 8
                    }
                }
            }
        }
    }

    /// Each input plane gathers from its `multiplier` output planes, so planes split without races.
    func inputGrad(_ gy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>) {
        let g = geo, taps = g.kh * g.kw, outPlane = g.outH * g.outW, inPlane = g.height * g.width
        let oc = outChannels, mult = multiplier, s = self
        Parallel.forEach(batch * g.channels, minChunk: max(1, 4096 / max(outPlane * taps * mult, 1))) { r in
            for plane in r {
                let n = plane / g.channels, c = plane % g.channels
                let dst = gx + plane * inPlane
                dst.update(repeating: 0, count: inPlane)
                for o in (c * mult)..<((c + 1) * mult) {
                    let src = gy + (n * oc + o) * outPlane
                    for t in 0..<taps {
                        let wv = w[o * taps + t]
                        s.forEachRun(ki: t / g.kw, kj: t % g.kw) { oh, ih, wr, iw0 in
                            let sp = src + oh * g.outW + wr.lowerBound, d = dst + ih * g.width + iw0
                            if g.stride.w == 1 {
                                for i in 0..<wr.count { d[i] += wv * sp[i] }
                            } else {
                                let sw = g.stride.w
                                for i in 0..<wr.count { d[i * sw] += wv * sp[i] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// dW[o, tap] = Σ over batch and output pixels of dy · shifted x; one output channel per job.
    func weightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, _ gw: UnsafeMutablePointer<Float>) {
        let g = geo, taps = g.kh * g.kw, outPlane = g.outH * g.outW, inPlane = g.height * g.width
        let oc = outChannels, mult = multiplier, batch = batch, s = self
        Parallel.forEach(oc, minChunk: max(1, 4096 / max(outPlane * taps * batch, 1))) { r in
            for o in r {
                for t in 0..<taps {
                    var acc: Float = 0
                    for n in 0..<batch {
                        let src = x + (n * g.channels + o / mult) * inPlane, dy = gy + (n * oc + o) * outPlane
                        s.forEachRun(ki: t / g.kw, kj: t % g.kw) { oh, ih, wr, iw0 in
                            let d = dy + oh * g.outW + wr.lowerBound, sp = src + ih * g.width + iw0
                            var part: Float = 0
                            if g.stride.w == 1 {
                                for i in 0..<wr.count { part += d[i] * sp[i] }
                            } else {
                                let sw = g.stride.w
                                for i in 0..<wr.count { part += d[i] * sp[i * sw] }
                            }
                            acc += part
                        }
                    }
                    gw[o * taps + t] = acc
                }
            }
        }
    }
}
