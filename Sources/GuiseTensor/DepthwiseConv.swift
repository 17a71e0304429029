/// Depthwise convolution (one input channel per group) computed directly. Through im2col
/// each group would be a 1-row GEMM over a kh·kw-deep column matrix: mostly overhead.
/// Here each output plane is a sum of kh·kw shifted, scaled input rows, which vectorises
/// along W when the stride is 1; planes are independent, so they are split across cores.
struct DepthwiseConv {
    let geo: ConvGeometry
    let batch: Int, outChannels: Int
    var multiplier: Int { outChannels / geo.channels }

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

    func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 _ y: UnsafeMutablePointer<Float>) {
        let g = geo, taps = g.kh * g.kw, outPlane = g.outH * g.outW, inPlane = g.height * g.width
        let oc = outChannels, mult = multiplier, s = self
        Parallel.forEach(batch * oc, minChunk: max(1, 4096 / max(outPlane * taps, 1))) { r in
            for plane in r {
                let n = plane / oc, o = plane % oc
                let src = x + (n * g.channels + o / mult) * inPlane, dst = y + plane * outPlane
                dst.update(repeating: bias?[o] ?? 0, count: outPlane)
                for t in 0..<taps {
                    let wv = w[o * taps + t]
                    s.forEachRun(ki: t / g.kw, kj: t % g.kw) { oh, ih, wr, iw0 in
                        let d = dst + oh * g.outW + wr.lowerBound, sp = src + ih * g.width + iw0
                        if g.stride.w == 1 {
                            for i in 0..<wr.count { d[i] += wv * sp[i] }
                        } else {
                            let sw = g.stride.w
                            for i in 0..<wr.count { d[i] += wv * sp[i * sw] }
                        }
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
