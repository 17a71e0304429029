/// 1×1 stride-1 convolution (groups 1) computed directly: y[o, p] = Σ_c w[o, c]·x[c, p].
///
/// It is a GEMM, but the small ones of MobileNet-style networks (tens of channels, a few
/// thousand pixels) lose more to BLAS's packing and thread wake-ups than they spend on
/// arithmetic. Here each job is a 16-pixel column of x, which stays in cache while every
/// output channel is accumulated over it, four output channels at a time in registers; the
/// bias is added to the sums and an optional clamp (ReLU, ReLU6) is applied on the way out.
struct PointwiseConv {
    let channels: Int, outChannels: Int, pixels: Int, batch: Int

    /// Below 16 pixels a job would be mostly tail; BLAS does those matrix-vector products well.
    static func applies(_ geo: ConvGeometry, groups: Int, outChannels: Int) -> Bool {
        groups == 1 && geo.isPointwise && fits(channels: geo.channels, outChannels: outChannels, pixels: geo.height * geo.width)
    }

    /// Every 16-pixel column reads all the weights, so they must stay in cache (or the
    /// columns be few); large GEMMs (an ADM's 1×1 convs) are BLAS's.
    static func fits(channels c: Int, outChannels o: Int, pixels p: Int) -> Bool {
        p >= 16 && (c * o <= 65536 || p <= 256)
    }

    static let tile = 16

    func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 _ y: UnsafeMutablePointer<Float>, clamp: NN.Clamp = .none, slopes: UnsafePointer<Float>? = nil) {
        let c = channels, p = pixels, o = outChannels, t = Self.tile
        let blocks = (p + t - 1) / t
        let lo = F8(repeating: clamp.low), hi = F8(repeating: clamp.high)
        // A job is t·c·o multiply-adds; keep a chunk above ~10⁵ so a dispatch stays cheap.
        Parallel.forEach(batch * blocks, minChunk: max(1, 131072 / max(t * c * o, 1))) { r in
            // The column is copied into a dense [c, t] panel first. Read in place, its c rows lie
            // a plane apart: at 4096 pixels that is 16 KB, so they all fall in one L1 set and
            // evict each other before the next group of output channels comes back to them.
            let panel = UnsafeMutablePointer<Float>.allocate(capacity: c * t)
            defer { panel.deallocate() }
            for job in r {
                let n = job / blocks, p0 = (job % blocks) * t, width = min(t, p - p0)
                let xs = x + n * c * p + p0
                if width == t {
                    for k in 0..<c {
                        let src = xs + k * p, dst = panel + k * t
                        store8(load8(src), dst); store8(load8(src + 8), dst + 8)
                    }
                } else {
                    for k in 0..<c {
                        (panel + k * t).update(from: xs + k * p, count: width)
                        (panel + k * t + width).update(repeating: 0, count: t - width)
                    }
                }
                if width > 8 {
                    Self.column({ UnsafePointer(panel) + $0 * t }, c: c, w, bias: bias, o: o, y + n * o * p + p0, ldy: p,
                                width: width, lo: lo, hi: hi, slopes: slopes, Wide.self)
                } else {
                    Self.column({ UnsafePointer(panel) + $0 * t }, c: c, w, bias: bias, o: o, y + n * o * p + p0, ldy: p,
                                width: width, lo: lo, hi: hi, slopes: slopes, Narrow.self)
                }
            }
        }
    }

    /// One 16-pixel column: y[0..<o, 0..<width] from x[0..<c, 0..<16], row k of x at `row(k)`.
    /// A column of at most 8 pixels (a 7×7 plane's last) runs as `Narrow`, half the work; the
    /// width is a type so that each variant is compiled with its own loops, free of the test.
    /// Six output channels at a time keep twelve sums in registers, enough independent
    /// multiply-adds to cover their latency; the rest go four and one at a time.
    @inline(__always)
    static func column<Width: ColumnWidth>(_ row: (Int) -> UnsafePointer<Float>, c: Int, _ w: UnsafePointer<Float>,
                       bias: UnsafePointer<Float>?, o: Int, _ y: UnsafeMutablePointer<Float>, ldy: Int,
                       width: Int, lo: F8, hi: F8, slopes: UnsafePointer<Float>? = nil,
                                         _ columnWidth: Width.Type = Wide.self) {
        let wide = Width.wide
        // The clamp, then a PReLU with output channel `row`'s slope when there is one.
        @inline(__always) func put(_ row: Int, _ v: F8, _ d: UnsafeMutablePointer<Float>, _ k: Int) {
            var v = vmin(vmax(v, lo), hi)
            if let slopes { v = v.replacing(with: v * F8(repeating: slopes[row]), where: v .< 0) }
            if k >= 8 { store8(v, d) } else if k > 0 { storePartial(v, d, k) }
        }
        // The bias is added after the sum, as BLAS adds C: the same rounding as the GEMM path.
        @inline(__always) func bias8(_ j: Int) -> F8 { F8(repeating: bias?[j] ?? 0) }
        // Six-row blocks, then four-row ones, then single rows (half as efficient). When six-row
        // blocks would leave 2 or 3 rows, one fewer leaves 8 or 9: two four-row blocks instead.
        var sixes = o / 6
        if sixes > 0 && (o % 6 == 2 || o % 6 == 3) { sixes -= 1 }
        var j = 0
        while j < 6 * sixes {
            let w0 = w + j * c, w1 = w0 + c, w2 = w1 + c, w3 = w2 + c, w4 = w3 + c, w5 = w4 + c
            var a00 = F8(), a10 = F8(), a20 = F8(), a30 = F8(), a40 = F8(), a50 = F8()
            var a01 = a00, a11 = a10, a21 = a20, a31 = a30, a41 = a40, a51 = a50
            for k in 0..<c {
                let xp = row(k), v0 = load8(xp), v1 = wide ? load8(xp + 8) : F8()
                var b = F8(repeating: w0[k]); a00 = a00.addingProduct(b, v0); if wide { a01 = a01.addingProduct(b, v1) }
                b = F8(repeating: w1[k]); a10 = a10.addingProduct(b, v0); if wide { a11 = a11.addingProduct(b, v1) }
                b = F8(repeating: w2[k]); a20 = a20.addingProduct(b, v0); if wide { a21 = a21.addingProduct(b, v1) }
                b = F8(repeating: w3[k]); a30 = a30.addingProduct(b, v0); if wide { a31 = a31.addingProduct(b, v1) }
                b = F8(repeating: w4[k]); a40 = a40.addingProduct(b, v0); if wide { a41 = a41.addingProduct(b, v1) }
                b = F8(repeating: w5[k]); a50 = a50.addingProduct(b, v0); if wide { a51 = a51.addingProduct(b, v1) }
            }
            if bias != nil {
                var b = bias8(j); a00 += b; a01 += b
                b = bias8(j + 1); a10 += b; a11 += b
                b = bias8(j + 2); a20 += b; a21 += b
                b = bias8(j + 3); a30 += b; a31 += b
                b = bias8(j + 4); a40 += b; a41 += b
                b = bias8(j + 5); a50 += b; a51 += b
            }
            let d = y + j * ldy
            put(j, a00, d, width); put(j, a01, d + 8, width - 8)
            put(j + 1, a10, d + ldy, width); put(j + 1, a11, d + ldy + 8, width - 8)
            put(j + 2, a20, d + 2 * ldy, width); put(j + 2, a21, d + 2 * ldy + 8, width - 8)
            put(j + 3, a30, d + 3 * ldy, width); put(j + 3, a31, d + 3 * ldy + 8, width - 8)
            put(j + 4, a40, d + 4 * ldy, width); put(j + 4, a41, d + 4 * ldy + 8, width - 8)
            put(j + 5, a50, d + 5 * ldy, width); put(j + 5, a51, d + 5 * ldy + 8, width - 8)
            j += 6
        }
        while j + 4 <= o {
            let w0 = w + j * c, w1 = w0 + c, w2 = w1 + c, w3 = w2 + c
            var a00 = F8(), a10 = F8(), a20 = F8(), a30 = F8()
            var a01 = a00, a11 = a10, a21 = a20, a31 = a30
            for k in 0..<c {
                let xp = row(k), v0 = load8(xp), v1 = wide ? load8(xp + 8) : F8()
                let b0 = F8(repeating: w0[k]), b1 = F8(repeating: w1[k])
                let b2 = F8(repeating: w2[k]), b3 = F8(repeating: w3[k])
                a00 = a00.addingProduct(b0, v0); if wide { a01 = a01.addingProduct(b0, v1) }
                a10 = a10.addingProduct(b1, v0); if wide { a11 = a11.addingProduct(b1, v1) }
                a20 = a20.addingProduct(b2, v0); if wide { a21 = a21.addingProduct(b2, v1) }
                a30 = a30.addingProduct(b3, v0); if wide { a31 = a31.addingProduct(b3, v1) }
            }
            if bias != nil {
                let b0 = bias8(j), b1 = bias8(j + 1), b2 = bias8(j + 2), b3 = bias8(j + 3)
                a00 += b0; a01 += b0; a10 += b1; a11 += b1; a20 += b2; a21 += b2; a30 += b3; a31 += b3
            }
            let d = y + j * ldy
            put(j, a00, d, width); put(j, a01, d + 8, width - 8)
            put(j + 1, a10, d + ldy, width); put(j + 1, a11, d + ldy + 8, width - 8)
            put(j + 2, a20, d + 2 * ldy, width); put(j + 2, a21, d + 2 * ldy + 8, width - 8)
            put(j + 3, a30, d + 3 * ldy, width); put(j + 3, a31, d + 3 * ldy + 8, width - 8)
            j += 4
        }
        while j < o {
            let w0 = w + j * c
            var a0 = F8(), a1 = a0
            for k in 0..<c {
                let b = F8(repeating: w0[k]), xp = row(k)
                a0 = a0.addingProduct(b, load8(xp)); a1 = a1.addingProduct(b, load8(xp + 8))
            }
            if let bias { a0 += F8(repeating: bias[j]); a1 += F8(repeating: bias[j]) }
            put(j, a0, y + j * ldy, width); put(j, a1, y + j * ldy + 8, width - 8)
            j += 1
        }
    }
}

protocol ColumnWidth { static var wide: Bool { get } }
/// 16 pixels per column of PointwiseConv.column.
enum Wide: ColumnWidth { static var wide: Bool { true } }
/// 8 pixels per column.
enum Narrow: ColumnWidth { static var wide: Bool { false } }

/// A convolution whose column matrix is small (few input channels: a network's first layer,
/// RGB in) computed as PointwiseConv's 16-pixel columns, but with each column's rows read
/// straight from zero-bordered, stride-phase-split copies of the input planes instead of
/// from an im2col matrix that would be written out and read back.
struct GatheredConv {
    let geo: ConvGeometry
    let batch: Int, outChannels: Int

    static func applies(_ geo: ConvGeometry, groups: Int, outChannels: Int) -> Bool {
        groups == 1 && !geo.isPointwise && geo.outW >= 4
            && PointwiseConv.fits(channels: geo.colRows, outChannels: outChannels, pixels: geo.outH * geo.outW)
    }

    func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 _ y: UnsafeMutablePointer<Float>, clamp: NN.Clamp = .none, slopes: UnsafePointer<Float>? = nil) {
        let g = geo, c = g.channels, k = g.colRows, o = outChannels, outPlane = g.outH * g.outW
        let planes = PhasePlane(geo: g), size = planes.rows * planes.pitch
        let lo = F8(repeating: clamp.low), hi = F8(repeating: clamp.high)
        // Per column-matrix row (channel, kernel row, kernel column): its offset in a row band.
        var offsets = [Int](repeating: 0, count: k)
        for ch in 0..<c {
            for ki in 0..<g.kh {
                for kj in 0..<g.kw {
                    offsets[(ch * g.kh + ki) * g.kw + kj] = ch * size + ki * g.dilation.h * planes.pitch + planes.offset(column: kj * g.dilation.w)
                }
            }
        }
        // Each plane is zeroed by the thread that fills it, not all up front on one thread.
        let copy = UnsafeMutablePointer<Float>.allocate(capacity: c * size)
        defer { copy.deallocate() }
        let tiles = (g.outW + PointwiseConv.tile - 1) / PointwiseConv.tile
        for n in 0..<batch {
            Parallel.forEach(c, minChunk: 1) { r in
                for ch in r {
                    if n == 0 { (copy + ch * size).initialize(repeating: 0, count: size) }
                    planes.fill(copy + ch * size, from: x + (n * c + ch) * g.height * g.width)
                }
            }
            offsets.withUnsafeBufferPointer { off in
                Parallel.forEach(g.outH * tiles, minChunk: max(1, 131072 / max(PointwiseConv.tile * k * o, 1))) { r in
                    for job in r {
                        let oh = job / tiles, ow = (job % tiles) * PointwiseConv.tile
                        let base = UnsafePointer(copy) + oh * g.stride.h * planes.pitch + ow
                        let width = min(PointwiseConv.tile, g.outW - ow), d = y + n * o * outPlane + oh * g.outW + ow
                        if width > 8 {
                            PointwiseConv.column({ base + off[$0] }, c: k, w, bias: bias, o: o, d, ldy: outPlane,
                                                 width: width, lo: lo, hi: hi, slopes: slopes, Wide.self)
                        } else {
                            PointwiseConv.column({ base + off[$0] }, c: k, w, bias: bias, o: o, d, ldy: outPlane,
                                                 width: width, lo: lo, hi: hi, slopes: slopes, Narrow.self)
                        }
                    }
                }
            }
        }
    }
}
