/// 3×3 stride-1 convolution by Winograd's F(2×2, 3×3).
///
/// Each 2×2 output tile needs 16 multiplies per (in, out) channel pair instead of 36: the
/// 4×4 input tile d and the kernel g are transformed (V = Bᵀ d B, U = G g Gᵀ), the 16
/// elementwise products summed over input channels become 16 GEMMs (U[ξ] [out × in] times
/// V[ξ] [in × tiles]), and Y = Aᵀ M A maps each 4×4 result back to 2×2 outputs. The GEMM
/// work is 2.25× smaller than direct/im2col convolution; the transforms are adds only. Rounding
/// stays near float32's (the F(2×2, 3×3) transforms have entries 0, ±½, ±1).
///
/// Tiles are processed in chunks of tile rows so that V and M stay in cache between the
/// transforms and the GEMMs.
import COpenBLAS
import Foundation

struct Winograd3x3: WinogradTiling {
    static let points = 16
    /// Floats of V and M per job (about 8 MB, in the shared L3). Tests lower it to exercise
    /// many jobs.
    nonisolated(unsafe) static var chunkFloats = 1 << 21

    let channels: Int, height: Int, width: Int
    let outChannels: Int, groups: Int
    let padding: NN.Padding

    var tilesH: Int { (outH + 1) / 2 }
    var tilesW: Int { (outW + 1) / 2 }

    static func applies(_ geo: ConvGeometry, groups: Int, outChannels: Int) -> Bool {
        let p = geo.padding
        return geo.kh == 3 && geo.kw == 3 && geo.stride == NN.Pair(1, 1) && geo.dilation == NN.Pair(1, 1) &&
            geo.outH == geo.height + p.top + p.bottom - 2 && geo.outW == geo.width + p.left + p.right - 2 &&
            geo.channels / groups >= 16 && outChannels / groups >= 16
    }

    init(channels: Int, height: Int, width: Int, outChannels: Int, groups: Int, padding: NN.Padding) {
        self.channels = channels; self.height = height; self.width = width
        self.outChannels = outChannels; self.groups = groups; self.padding = padding
    }

    /// U = G g Gᵀ for every (out, in) pair of W [outChannels, cg, 3, 3], as [16][outChannels][cg].
    static func transformWeights(_ w: UnsafePointer<Float>, outChannels: Int, cg: Int) -> Storage {
        kernelTransform(w, outChannels: outChannels, cg: cg, n: 4) { g0, g1, g2, out in
            out[0] = g0; out[1] = 0.5 * (g0 + g1 + g2); out[2] = 0.5 * (g0 - g1 + g2); out[3] = g2
        }
    }

    /// U = G g Gᵀ for an n×3 matrix G, as [n²][outChannels][cg], for W [outChannels, cg, 3, 3].
    /// `gColumn(v0, v1, v2, out)` writes G·(v0, v1, v2)ᵀ into out[0..<n]; it runs on eight input
    /// channels at once, so U's planes are written eight floats at a time rather than one
    /// (scattering single floats over the n² planes cost more than the GEMMs of a small map).
    @inline(__always)
    static func kernelTransform(_ w: UnsafePointer<Float>, outChannels: Int, cg: Int, n: Int,
                                _ gColumn: (F8, F8, F8, UnsafeMutablePointer<F8>) -> Void) -> Storage {
        let s = Storage(uninitializedCount: n * n * outChannels * cg)
        let u = s.pointer, plane = outChannels * cg
        Parallel.forEach(outChannels, minChunk: max(1, 2048 / max(cg, 1))) { r in
            // (G g) as n rows × 3 columns, column-major, then one row of U.
            let t = UnsafeMutablePointer<F8>.allocate(capacity: 4 * n)
            defer { t.deallocate() }
            let row = t + 3 * n
            for o in r {
                var c = 0
                while c < cg {
                    let lanes = min(8, cg - c), base = w + (o * cg + c) * 9
                    // Tap k of the eight kernels.
                    func tap(_ k: Int) -> F8 {
                        if lanes == 8 {
                            return F8(base[k], base[9 + k], base[18 + k], base[27 + k], base[36 + k], base[45 + k], base[54 + k], base[63 + k])
                        }
                        var v = F8(repeating: 0)
                        for l in 0..<lanes { v[l] = base[9 * l + k] }
                        return v
                    }
                    for j in 0..<3 { gColumn(tap(j), tap(3 + j), tap(6 + j), t + j * n) }
                    for i in 0..<n {
                        gColumn(t[i], t[n + i], t[2 * n + i], row)
                        for l in 0..<n {
                            let d = u + (i * n + l) * plane + o * cg + c
                            if lanes == 8 {
                                store8(row[l], d)
                            } else {
                                for q in 0..<lanes { d[q] = row[l][q] }
                            }
                        }
                    }
                    c += 8
                }
            }
        }
        return s
    }

    /// The kernel of the input-gradient conv: W [outChannels, cg, 3, 3] flipped, with in and
    /// out swapped within each group, as [channels, og, 3, 3].
    static func flippedWeights(_ w: UnsafePointer<Float>, channels: Int, outChannels: Int, groups: Int) -> Storage {
        let cg = channels / groups, og = outChannels / groups
        let s = Storage(uninitializedCount: channels * og * 9)
        let d = s.pointer
        Parallel.forEach(outChannels, minChunk: max(1, 4096 / max(cg * 9, 1))) { r in
            for o in r {
                let g = o / og, ol = o % og
                for cl in 0..<cg {
                    let src = w + (o * cg + cl) * 9
                    let dst = d + ((g * cg + cl) * og + ol) * 9
                    for t in 0..<9 { dst[8 - t] = src[t] }
                }
            }
        }
        return s
    }

    /// The input-gradient conv: 3×3 stride 1 again, padding 2 − p. Nil when p > 2.
    func inputGradConv() -> Winograd3x3? {
        let p = NN.Padding(top: 2 - padding.top, bottom: 2 - padding.bottom, left: 2 - padding.left, right: 2 - padding.right)
        guard p.top >= 0, p.bottom >= 0, p.left >= 0, p.right >= 0 else { return nil }
        return Winograd3x3(channels: outChannels, height: outH, width: outW, outChannels: channels, groups: groups, padding: p)
    }


    /// The weight gradient by the same transforms: with Y = Aᵀ (U ⊙ V) A per tile,
    /// dL/dU = (A dY Aᵀ) ⊙ V and dL/dg = Gᵀ (dL/dU) G. Summed over tiles, dL/dU[ξ] is a GEMM
    /// Z[ξ] [out × tiles] · V[ξ]ᵀ [tiles × in], again 2.25× less work than direct.
    /// gw is [outChannels, cg, 3, 3].
    func weightGrad(_ x: UnsafePointer<Float>, _ gy: UnsafePointer<Float>, batch: Int, _ gw: UnsafeMutablePointer<Float>) {
        let (rowsPerJob, perSample) = jobs(batch: batch)
        let maxTiles = rowsPerJob * tilesW
        let sumCount = 16 * outChannels * cg
        let sums = Storage(zeroedCount: sumCount)
        let lock = NSLock()
        var partials: [(Int, Storage)] = []
        let s = self
        // One piece per thread: each holds a whole partial sum.
        Parallel.forEach(batch * perSample, minChunk: 1, maxChunks: Parallel.threads) { range in
            // Each piece sums its jobs' tiles apart; the pieces are added up afterwards in
            // the order of their ranges, so the result doesn't depend on which finished first.
            let v = Storage(uninitializedCount: 16 * s.channels * maxTiles)
            let z = Storage(uninitializedCount: 16 * s.outChannels * maxTiles)
            let local = Storage(uninitializedCount: sumCount)
            for job in range {
                let n = job / perSample, ty0 = (job % perSample) * rowsPerJob
                let rows = ty0..<min(s.tilesH, ty0 + rowsPerJob), tiles = rows.count * s.tilesW
                s.transformInput(x + n * s.channels * s.height * s.width, rows: rows, into: v.pointer)
                s.transformGradOutput(gy + n * s.outChannels * s.outH * s.outW, rows: rows, into: z.pointer)
                for xi in 0..<16 {
                    for g in 0..<s.groups {
                        gemmRowMajor(transB: true, m: s.og, n: s.cg, k: tiles, z.pointer + (xi * s.outChannels + g * s.og) * tiles,
                              lda: tiles, v.pointer + (xi * s.channels + g * s.cg) * tiles, ldb: tiles,
                              beta: job == range.lowerBound ? 0 : 1, local.pointer + (xi * s.outChannels + g * s.og) * s.cg,
                              ldc: s.cg, singleThreaded: true)
                    }
                }
            }
            lock.lock()
            partials.append((range.lowerBound, local))
            lock.unlock()
        }
        for (_, local) in partials.sorted(by: { $0.0 < $1.0 }) {
            let d = sums.pointer, l = local.pointer
            Parallel.forEach(sumCount, minChunk: 65536) { r in for i in r { d[i] += l[i] } }
        }
        // dL/dg = Gᵀ S G, Gᵀ = [[1, ½, ½, 0], [0, ½, −½, 0], [0, ½, ½, 1]].
        let sp = sums.pointer, plane = outChannels * cg, cg = cg
        Parallel.forEach(outChannels, minChunk: max(1, 4096 / max(cg, 1))) { r in
            let t = UnsafeMutablePointer<Float>.allocate(capacity: 12)     // (Gᵀ S): 3 rows × 4 columns
            defer { t.deallocate() }
            for o in r {
                for c in 0..<cg {
                    for b in 0..<4 {
                        let s0 = sp[(0 * 4 + b) * plane + o * cg + c], s1 = sp[(1 * 4 + b) * plane + o * cg + c]
                        let s2 = sp[(2 * 4 + b) * plane + o * cg + c], s3 = sp[(3 * 4 + b) * plane + o * cg + c]
                        t[b] = s0 + 0.5 * (s1 + s2); t[4 + b] = 0.5 * (s1 - s2); t[8 + b] = 0.5 * (s1 + s2) + s3
                    }
                    let d = gw + (o * cg + c) * 9
                    for i in 0..<3 {
                        let x0 = t[i * 4], x1 = t[i * 4 + 1], x2 = t[i * 4 + 2], x3 = t[i * 4 + 3]
                        d[i * 3] = x0 + 0.5 * (x1 + x2); d[i * 3 + 1] = 0.5 * (x1 - x2); d[i * 3 + 2] = 0.5 * (x1 + x2) + x3
                    }
                }
            }
        }
    }

    /// Z[ξ][o][tile] = (A dY Aᵀ)[ξ], A = [[1, 0], [1, 1], [1, −1], [0, −1]], for the 2×2 blocks of
    /// dy in tile rows `rows`; outputs past an odd edge count as zero.
    func transformGradOutput(_ gy: UnsafePointer<Float>, rows: Range<Int>, into z: UnsafeMutablePointer<Float>) {
        let tw = tilesW, tiles = rows.count * tw
        let s = self
        do {
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: 4 * tw)   // even/odd columns of two rows
            defer { buf.deallocate() }
            let e0 = buf, o0 = buf + tw, e1 = buf + 2 * tw, o1 = buf + 3 * tw
            for o in 0..<s.outChannels {
                let plane = gy + o * s.outH * s.outW
                for ty in 0..<rows.count {
                    for i in 0..<2 {
                        let oh = 2 * (rows.lowerBound + ty) + i
                        let e = i == 0 ? e0 : e1, od = i == 0 ? o0 : o1
                        if oh >= s.outH {
                            e.update(repeating: 0, count: tw); od.update(repeating: 0, count: tw)
                            continue
                        }
                        let row = plane + oh * s.outW
                        for k in 0..<tw {
                            e[k] = row[2 * k]
                            od[k] = 2 * k + 1 < s.outW ? row[2 * k + 1] : 0
                        }
                    }
                    let base = z + o * tiles + ty * tw
                    for a in 0..<4 {
                        let zrow = base + (a * 4) * s.outChannels * tiles, stride = s.outChannels * tiles
                        for k in 0..<tw {
                            // Row pass (A dY): a picks r0, r0 + r1, r0 − r1 or −r1.
                            let xe: Float, xo: Float
                            switch a {
                            case 0: xe = e0[k]; xo = o0[k]
                            case 1: xe = e0[k] + e1[k]; xo = o0[k] + o1[k]
                            case 2: xe = e0[k] - e1[k]; xo = o0[k] - o1[k]
                            default: xe = -e1[k]; xo = -o1[k]
                            }
                            zrow[k] = xe
                            zrow[stride + k] = xe + xo
                            zrow[2 * stride + k] = xe - xo
                            zrow[3 * stride + k] = -xo
                        }
                    }
                }
            }
        }
    }

    /// V[ξ][c][tile] = (Bᵀ d B)[ξ] for the tiles in tile rows `rows`. Done separably: each padded
    /// input row is split into even and odd columns and transformed along W (vectorisable over
    /// tiles), then groups of four such rows are combined along H.
    func transformInput(_ x: UnsafePointer<Float>, rows: Range<Int>, into v: UnsafeMutablePointer<Float>) {
        let tw = tilesW, tiles = rows.count * tw
        let lines = 2 * rows.count + 2
        let s = self
        do {
            let even = UnsafeMutablePointer<Float>.allocate(capacity: tw + 1)
            let odd = UnsafeMutablePointer<Float>.allocate(capacity: tw + 1)
            let r = UnsafeMutablePointer<Float>.allocate(capacity: lines * 4 * tw)
            defer { even.deallocate(); odd.deallocate(); r.deallocate() }
            for c in 0..<s.channels {
                let plane = x + c * s.height * s.width
                for line in 0..<lines {
                    let ih = 2 * rows.lowerBound + line - s.padding.top
                    if ih < 0 || ih >= s.height {
                        (r + line * 4 * tw).update(repeating: 0, count: 4 * tw)
                        continue
                    }
                    Winograd3x3.deinterleave(plane + ih * s.width, width: s.width, shift: s.padding.left,
                                             count: tw + 1, even: even, odd: odd)
                    let r0 = r + line * 4 * tw, r1 = r0 + tw, r2 = r1 + tw, r3 = r2 + tw
                    for k in 0..<tw {
                        r0[k] = even[k] - even[k + 1]
                        r1[k] = odd[k] + even[k + 1]
                        r2[k] = even[k + 1] - odd[k]
                        r3[k] = odd[k] - odd[k + 1]
                    }
                }
                for ty in 0..<rows.count {
                    let l0 = r + (2 * ty) * 4 * tw, l1 = l0 + 4 * tw, l2 = l1 + 4 * tw, l3 = l2 + 4 * tw
                    for b in 0..<4 {
                        let a0 = l0 + b * tw, a1 = l1 + b * tw, a2 = l2 + b * tw, a3 = l3 + b * tw
                        let base = v + c * tiles + ty * tw
                        let v0 = base + (0 * 4 + b) * s.channels * tiles, v1 = base + (1 * 4 + b) * s.channels * tiles
                        let v2 = base + (2 * 4 + b) * s.channels * tiles, v3 = base + (3 * 4 + b) * s.channels * tiles
                        for k in 0..<tw {
                            v0[k] = a0[k] - a2[k]
                            v1[k] = a1[k] + a2[k]
                            v2[k] = a2[k] - a1[k]
                            v3[k] = a1[k] - a3[k]
                        }
                    }
                }
            }
        }
    }

    /// even[k] = row[2k − shift], odd[k] = row[2k + 1 − shift], zero outside the row.
    @inline(__always)
    static func deinterleave(_ row: UnsafePointer<Float>, width: Int, shift: Int, count: Int,
                             even: UnsafeMutablePointer<Float>, odd: UnsafeMutablePointer<Float>) {
        // k's with 0 ≤ 2k + parity − shift < width, clamped to 0..<count.
        func span(_ parity: Int) -> Range<Int> {
            let lo = max(0, (shift - parity + 1) / 2)
            let last = width - 1 + shift - parity
            let hi = last < 0 ? 0 : min(count, last / 2 + 1)
            return min(lo, hi)..<hi
        }
        for parity in 0..<2 {
            let dst = parity == 0 ? even : odd, r = span(parity)
            dst.update(repeating: 0, count: r.lowerBound)
            let src = row + parity - shift
            for k in r { dst[k] = src[2 * k] }
            (dst + r.upperBound).update(repeating: 0, count: count - r.upperBound)
        }
    }

    /// y = Aᵀ M A (+ bias) for the tiles in tile rows `rows`, dropping the outputs past an odd edge.
    func transformOutput(_ m: UnsafePointer<Float>, rows: Range<Int>, bias: UnsafePointer<Float>?,
                         into y: UnsafeMutablePointer<Float>) {
        let tw = tilesW, tiles = rows.count * tw
        let s = self
        do {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: 8 * tw)   // Aᵀ M: 2 rows × 4 columns
            defer { p.deallocate() }
            for o in 0..<s.outChannels {
                let b = bias?[o] ?? 0
                let out = y + o * s.outH * s.outW
                for ty in 0..<rows.count {
                    for col in 0..<4 {
                        let base = m + o * tiles + ty * tw
                        let m0 = base + (0 * 4 + col) * s.outChannels * tiles, m1 = base + (1 * 4 + col) * s.outChannels * tiles
                        let m2 = base + (2 * 4 + col) * s.outChannels * tiles, m3 = base + (3 * 4 + col) * s.outChannels * tiles
                        let p0 = p + col * tw, p1 = p + (4 + col) * tw
                        for k in 0..<tw {
                            p0[k] = m0[k] + m1[k] + m2[k]
                            p1[k] = m1[k] - m2[k] - m3[k]
                        }
                    }
                    for i in 0..<2 {
                        let oh = 2 * (rows.lowerBound + ty) + i
                        if oh >= s.outH { break }
                        let q0 = p + (4 * i) * tw, q1 = q0 + tw, q2 = q1 + tw, q3 = q2 + tw
                        let row = out + oh * s.outW
                        let pairs = s.outW / 2
                        for k in 0..<pairs {
                            row[2 * k] = q0[k] + q1[k] + q2[k] + b
                            row[2 * k + 1] = q1[k] - q2[k] - q3[k] + b
                        }
                        if s.outW % 2 == 1 { row[2 * pairs] = q0[pairs] + q1[pairs] + q2[pairs] + b }
                    }
                }
            }
        }
    }
}

/// What the two Winograd tilings share: `points` transformed values per tile (16 for F(2×2, 3×3),
/// 36 for F(4×4, 3×3)), the geometry, and the input and output transforms; the job split and the
/// forward driver below are the same for both.
protocol WinogradTiling {
    static var points: Int { get }
    /// Floats of V and M per job.
    static var chunkFloats: Int { get }
    var channels: Int { get }
    var height: Int { get }
    var width: Int { get }
    var outChannels: Int { get }
    var groups: Int { get }
    var padding: NN.Padding { get }
    var tilesH: Int { get }
    var tilesW: Int { get }
    func transformInput(_ x: UnsafePointer<Float>, rows: Range<Int>, into v: UnsafeMutablePointer<Float>)
    func transformOutput(_ m: UnsafePointer<Float>, rows: Range<Int>, bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>)
}

extension WinogradTiling {
    var outH: Int { height + padding.top + padding.bottom - 2 }
    var outW: Int { width + padding.left + padding.right - 2 }
    var cg: Int { channels / groups }
    var og: Int { outChannels / groups }

    /// Work is split into jobs of a few tile rows of one sample; each core takes whole jobs
    /// (transform, one GEMM per transformed point and group, transform) with single-threaded
    /// GEMMs. Nothing is shared between jobs, so there is no barrier per GEMM and no BLAS thread
    /// spinning beside our transforms.
    func jobs(batch: Int) -> (rowsPerJob: Int, perSample: Int) {
        let th = tilesH
        var rows = max(1, min(th, Self.chunkFloats / max(Self.points * (channels + outChannels) * tilesW, 1)))
        rows = min(rows, max(1, (th + Parallel.threads - 1) / Parallel.threads))
        return (rows, (th + rows - 1) / rows)
    }

    func forward(_ x: UnsafePointer<Float>, transformedWeights u: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 batch: Int, _ y: UnsafeMutablePointer<Float>) {
        let (rowsPerJob, perSample) = jobs(batch: batch)
        let maxTiles = rowsPerJob * tilesW
        let s = self
        Parallel.forEach(batch * perSample, minChunk: 1) { range in
            let v = Storage(uninitializedCount: Self.points * s.channels * maxTiles)
            let m = Storage(uninitializedCount: Self.points * s.outChannels * maxTiles)
            for job in range {
                let n = job / perSample, ty0 = (job % perSample) * rowsPerJob
                let rows = ty0..<min(s.tilesH, ty0 + rowsPerJob), tiles = rows.count * s.tilesW
                let xn = x + n * s.channels * s.height * s.width, yn = y + n * s.outChannels * s.outH * s.outW
                s.transformInput(xn, rows: rows, into: v.pointer)
                for xi in 0..<Self.points {
                    for g in 0..<s.groups {
                        gemmRowMajor(m: s.og, n: tiles, k: s.cg, u + (xi * s.outChannels + g * s.og) * s.cg, lda: s.cg,
                              v.pointer + (xi * s.channels + g * s.cg) * tiles, ldb: tiles,
                              beta: 0, m.pointer + (xi * s.outChannels + g * s.og) * tiles, ldc: tiles, singleThreaded: true)
                    }
                }
                s.transformOutput(m.pointer, rows: rows, bias: bias, into: yn)
            }
        }
    }
}
