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
    /// output is a contiguous, in-bounds read. Then a run of outputs of a row is summed over all
    /// taps in registers and stored once, with the bias first and the clamp last. The 3×3 and
    /// 5×5 kernels of MobileNet-style networks have unrolled rows (`row3`, `row5`); other shapes
    /// take the general loop.
    func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 _ y: UnsafeMutablePointer<Float>, clamp: NN.Clamp = .none) {
        let g = geo, taps = g.kh * g.kw, outPlane = g.outH * g.outW
        let oc = outChannels, mult = multiplier
        let lo = F8(repeating: clamp.low), hi = F8(repeating: clamp.high), clamps = clamp != .none
        let sh = g.stride.h, dh = g.dilation.h, dw = g.dilation.w
        let scratch = PhasePlane(geo: g)
        let tapOffset = (0..<g.kw).map { kj in scratch.offset(column: kj * dw) }
        let unrolled = dh == 1 && dw == 1 && g.kh == g.kw && (g.kh == 3 || g.kh == 5)
        Parallel.forEach(batch * oc, minChunk: max(1, 16384 / max(outPlane * taps, 1))) { r in
            let plane = scratch.allocate()
            defer { plane.deallocate() }
            var filled = -1
            for job in r {
                let n = job / oc, o = job % oc, c = n * g.channels + o / mult
                if c != filled {
                    // Channel multipliers > 1: consecutive planes share their input.
                    scratch.fill(plane, from: x + c * g.height * g.width)
                    filled = c
                }
                let dst = y + job * outPlane, wo = w + o * taps
                let b = F8(repeating: bias?[o] ?? 0)
                if unrolled {
                    let t1 = tapOffset[1], t2 = tapOffset[2], t3 = g.kw > 3 ? tapOffset[3] : 0, t4 = g.kw > 4 ? tapOffset[4] : 0
                    for oh in 0..<g.outH {
                        let rows = UnsafePointer(plane + oh * sh * scratch.pitch), d = dst + oh * g.outW
                        // Literal `clamps` so each inlined copy drops the test from its loop.
                        switch (g.kh, clamps) {
                        case (3, true): Self.row3(rows, pitch: scratch.pitch, t1, t2, wo, b, d, count: g.outW,
                                                  lo: lo, hi: hi, clamps: true)
                        case (3, false): Self.row3(rows, pitch: scratch.pitch, t1, t2, wo, b, d, count: g.outW,
                                                   lo: lo, hi: hi, clamps: false)
                        case (_, true): Self.row5(rows, pitch: scratch.pitch, t1, t2, t3, t4, wo, b, d, count: g.outW,
                                                  lo: lo, hi: hi, clamps: true)
                        default: Self.row5(rows, pitch: scratch.pitch, t1, t2, t3, t4, wo, b, d, count: g.outW,
                                           lo: lo, hi: hi, clamps: false)
                        }
                    }
                    continue
                }
                for oh in 0..<g.outH {
                    let rows = plane + oh * sh * scratch.pitch, d = dst + oh * g.outW
                    var ow = 0
                    while ow < g.outW {
                        var acc = b
                        for ki in 0..<g.kh {
                            let row = rows + ki * dh * scratch.pitch + ow
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

    /// One output row of a 3×3 conv: the nine weights stay in registers, so each 8 outputs
    /// cost nine loads and nine multiply-adds. Column taps 1 and 2 are at `t1`, `t2` in a row
    /// of the scratch plane (tap 0 at 0).
    // A call per row (not inlined into the per-plane closure) keeps the loop's state in
    // registers; inlined, the compiler reloaded it from the closure context every vector.
    @inline(never)
    static func row3(_ rows: UnsafePointer<Float>, pitch: Int, _ t1: Int, _ t2: Int, _ w: UnsafePointer<Float>, _ b: F8,
                     _ d: UnsafeMutablePointer<Float>, count: Int, lo: F8, hi: F8, clamps: Bool) {
        let w0 = F8(repeating: w[0]), w1 = F8(repeating: w[1]), w2 = F8(repeating: w[2])
        let w3 = F8(repeating: w[3]), w4 = F8(repeating: w[4]), w5 = F8(repeating: w[5])
        let w6 = F8(repeating: w[6]), w7 = F8(repeating: w[7]), w8 = F8(repeating: w[8])
        let r0 = rows, r1 = rows + pitch, r2 = rows + 2 * pitch
        var ow = 0
        while ow < count {
            var a = b.addingProduct(w0, load8(r0 + ow))
            var c = w1 * load8(r0 + ow + t1)
            a = a.addingProduct(w2, load8(r0 + ow + t2))
            c = c.addingProduct(w3, load8(r1 + ow))
            a = a.addingProduct(w4, load8(r1 + ow + t1))
            c = c.addingProduct(w5, load8(r1 + ow + t2))
            a = a.addingProduct(w6, load8(r2 + ow))
            c = c.addingProduct(w7, load8(r2 + ow + t1))
            a = a.addingProduct(w8, load8(r2 + ow + t2))
            var v = a + c
            if clamps { v = vmin(vmax(v, lo), hi) }
            if ow + 8 <= count { store8(v, d + ow) } else { storePartial(v, d + ow, count - ow) }
            ow += 8
        }
    }

    /// One output row of a 5×5 conv, 16 outputs at a time so each broadcast weight serves two
    /// multiply-adds.
    @inline(never)
    static func row5(_ rows: UnsafePointer<Float>, pitch: Int, _ t1: Int, _ t2: Int, _ t3: Int, _ t4: Int,
                     _ w: UnsafePointer<Float>, _ b: F8, _ d: UnsafeMutablePointer<Float>, count: Int,
                     lo: F8, hi: F8, clamps: Bool) {
        var ow = 0
        while ow + 8 < count {
            var a0 = b, a1 = b, c0 = F8(), c1 = F8()
            for ki in 0..<5 {
                let r = rows + ki * pitch + ow, wk = w + ki * 5
                var s = F8(repeating: wk[0]); a0 = a0.addingProduct(s, load8(r)); a1 = a1.addingProduct(s, load8(r + 8))
                s = F8(repeating: wk[1]); c0 = c0.addingProduct(s, load8(r + t1)); c1 = c1.addingProduct(s, load8(r + t1 + 8))
                s = F8(repeating: wk[2]); a0 = a0.addingProduct(s, load8(r + t2)); a1 = a1.addingProduct(s, load8(r + t2 + 8))
                s = F8(repeating: wk[3]); c0 = c0.addingProduct(s, load8(r + t3)); c1 = c1.addingProduct(s, load8(r + t3 + 8))
                s = F8(repeating: wk[4]); a0 = a0.addingProduct(s, load8(r + t4)); a1 = a1.addingProduct(s, load8(r + t4 + 8))
            }
            var v0 = a0 + c0, v1 = a1 + c1
            if clamps { v0 = vmin(vmax(v0, lo), hi); v1 = vmin(vmax(v1, lo), hi) }
            store8(v0, d + ow)
            if count - ow >= 16 { store8(v1, d + ow + 8) } else { storePartial(v1, d + ow + 8, count - ow - 8) }
            ow += 16
        }
        if ow < count {
            // At most 8 left (a small plane's whole row): one vector, not two, with a sum per
            // kernel row so the 25 multiply-adds form five short chains instead of two long ones.
            var acc = (b, F8(), F8(), F8(), F8())
            @inline(__always) func kernelRow(_ ki: Int) -> F8 {
                let r = rows + ki * pitch + ow, wk = w + ki * 5
                var a = F8(repeating: wk[0]) * load8(r)
                a = a.addingProduct(F8(repeating: wk[1]), load8(r + t1))
                a = a.addingProduct(F8(repeating: wk[2]), load8(r + t2))
                a = a.addingProduct(F8(repeating: wk[3]), load8(r + t3))
                return a.addingProduct(F8(repeating: wk[4]), load8(r + t4))
            }
            acc.1 = kernelRow(1); acc.2 = kernelRow(2); acc.3 = kernelRow(3); acc.4 = kernelRow(4)
            var v0 = (acc.0 + kernelRow(0)) + (acc.1 + acc.2) + (acc.3 + acc.4)
            if clamps { v0 = vmin(vmax(v0, lo), hi) }
            if count - ow == 8 { store8(v0, d + ow) } else { storePartial(v0, d + ow, count - ow) }
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
