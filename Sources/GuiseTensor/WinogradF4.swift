/// 3×3 stride-1 convolution by Winograd's F(4×4, 3×3), for large maps.
///
/// Each 4×4 output tile needs 36 multiplies per (in, out) channel pair where F(2×2, 3×3)
/// needs 64 for the same 16 outputs and direct convolution 144: the GEMM work is 4× smaller
/// than direct and 1.78× smaller than F(2×2). The price is rounding: the transforms have
/// entries up to 8 (interpolation points 0, ±1, ±2, ∞), and on 256-channel sums the error is
/// about ten times F(2×2)'s, a few 1e-6 of the output's scale. So it is kept to maps of at
/// least 128 pixels a side, a 256² UNet's two upper levels, where most of its time goes.
/// F(2×2) does the rest, including every weight gradient: from 64 pixels on, EyeNet's 96×160
/// layers took it too, and its input gradient, which passes a soft-argmax with β = 100, moved
/// by 5e-3 of its scale against PyTorch's.
///
/// The layout follows `Winograd3x3`: tiles in chunks of tile rows, V [36][in][tiles],
/// 36 GEMMs per group U[ξ] [out × in] · V[ξ], M [36][out][tiles], then Aᵀ M A per tile.
/// Transforms (Lavin & Gray):
///   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
///   G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1]
///   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
import Foundation

struct Winograd4x4: WinogradTiling {
    static let points = 36
    /// Floats of V and M per job. Tests lower it to exercise many jobs.
    nonisolated(unsafe) static var chunkFloats = 1 << 21
    /// The shorter output side from which convs take this path, for the convs set up in the
    /// current task: a network whose precision budget allows it lowers it around its forward
    /// (the ADM, to 64); at 64 px EyeNet's input gradient missed its 1e-3 parity. A conv keeps
    /// the value it was set up with for its backward pass.
    @TaskLocal static var minSide = 128

    let channels: Int, height: Int, width: Int
    let outChannels: Int, groups: Int
    let padding: NN.Padding

    var tilesH: Int { (outH + 3) / 4 }
    var tilesW: Int { (outW + 3) / 4 }

    static func applies(_ geo: ConvGeometry, groups: Int, outChannels: Int, minSide: Int = Winograd4x4.minSide) -> Bool {
        Winograd3x3.applies(geo, groups: groups, outChannels: outChannels) && min(geo.outH, geo.outW) >= minSide
    }

    init(channels: Int, height: Int, width: Int, outChannels: Int, groups: Int, padding: NN.Padding) {
        self.channels = channels; self.height = height; self.width = width
        self.outChannels = outChannels; self.groups = groups; self.padding = padding
    }

    /// The input-gradient conv (flipped kernel, padding 2 − p) when it is large enough for this
    /// path; nil when p > 2 or its output is too small.
    func inputGradConv(minSide: Int = Winograd4x4.minSide) -> Winograd4x4? {
        let p = NN.Padding(top: 2 - padding.top, bottom: 2 - padding.bottom, left: 2 - padding.left, right: 2 - padding.right)
        guard p.top >= 0, p.bottom >= 0, p.left >= 0, p.right >= 0, min(height, width) >= minSide else { return nil }
        return Winograd4x4(channels: outChannels, height: outH, width: outW, outChannels: channels, groups: groups, padding: p)
    }

    /// U = G g Gᵀ for every (out, in) pair of W [outChannels, cg, 3, 3], as [36][outChannels][cg].
    static func transformWeights(_ w: UnsafePointer<Float>, outChannels: Int, cg: Int) -> Storage {
        Winograd3x3.kernelTransform(w, outChannels: outChannels, cg: cg, n: 6) { v0, v1, v2, out in
            let a = (v0 + v2) * (-1 / 6 as Float), b = v1 * (-1 / 6 as Float)
            let e = v0 * (1 / 24 as Float) + v2 * (1 / 6 as Float), f = v1 * (1 / 12 as Float)
            out[0] = v0 * 0.25; out[1] = a + b; out[2] = a - b; out[3] = e + f; out[4] = e - f; out[5] = v2
        }
    }


    /// V[ξ][c][tile] = (Bᵀ d B)[ξ] for the tiles in tile rows `rows`, separably: each padded
    /// input row is split into its four column phases and transformed along W (vectorisable
    /// over tiles), then groups of six such rows are combined along H.
    func transformInput(_ x: UnsafePointer<Float>, rows: Range<Int>, into v: UnsafeMutablePointer<Float>) {
        let tw = tilesW, tiles = rows.count * tw
        let lines = 4 * rows.count + 2
        let plane = channels * tiles
        let ph = UnsafeMutablePointer<Float>.allocate(capacity: 4 * (tw + 1))
        let r = UnsafeMutablePointer<Float>.allocate(capacity: lines * 6 * tw)
        defer { ph.deallocate(); r.deallocate() }
        let p0 = ph, p1 = ph + (tw + 1), p2 = p1 + (tw + 1), p3 = p2 + (tw + 1)
        for c in 0..<channels {
            let src = x + c * height * width
            for line in 0..<lines {
                let ih = 4 * rows.lowerBound + line - padding.top
                let out = r + line * 6 * tw
                if ih < 0 || ih >= height {
                    out.update(repeating: 0, count: 6 * tw)
                    continue
                }
                Winograd4x4.phases(src + ih * width, width: width, shift: padding.left, count: tw + 1, into: ph)
                let t0 = out, t1 = t0 + tw, t2 = t1 + tw, t3 = t2 + tw, t4 = t3 + tw, t5 = t4 + tw
                for k in 0..<tw {
                    // x0…x5 of tile k: columns 4k − shift … 4k + 5 − shift.
                    let x0 = p0[k], x1 = p1[k], x2 = p2[k], x3 = p3[k], x4 = p0[k + 1], x5 = p1[k + 1]
                    t0[k] = 4 * x0 - 5 * x2 + x4
                    t1[k] = x3 + x4 - 4 * (x1 + x2)
                    t2[k] = x4 - x3 + 4 * (x1 - x2)
                    t3[k] = x4 - x2 + 2 * (x3 - x1)
                    t4[k] = x4 - x2 - 2 * (x3 - x1)
                    t5[k] = 4 * x1 - 5 * x3 + x5
                }
            }
            for ty in 0..<rows.count {
                let l0 = r + 4 * ty * 6 * tw
                for j in 0..<6 {
                    let a0 = l0 + j * tw, a1 = a0 + 6 * tw, a2 = a1 + 6 * tw, a3 = a2 + 6 * tw, a4 = a3 + 6 * tw, a5 = a4 + 6 * tw
                    let base = v + c * tiles + ty * tw + j * plane
                    let v0 = base, v1 = base + 6 * plane, v2 = v1 + 6 * plane, v3 = v2 + 6 * plane, v4 = v3 + 6 * plane, v5 = v4 + 6 * plane
                    for k in 0..<tw {
                        let x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k], x4 = a4[k], x5 = a5[k]
                        v0[k] = 4 * x0 - 5 * x2 + x4
                        v1[k] = x3 + x4 - 4 * (x1 + x2)
                        v2[k] = x4 - x3 + 4 * (x1 - x2)
                        v3[k] = x4 - x2 + 2 * (x3 - x1)
                        v4[k] = x4 - x2 - 2 * (x3 - x1)
                        v5[k] = 4 * x1 - 5 * x3 + x5
                    }
                }
            }
        }
    }

    /// phase[q][k] = row[4k + q − shift] for q in 0..<4, k in 0..<count, zero outside the row;
    /// the four phases lie `count` floats apart in `dst`.
    @inline(__always)
    static func phases(_ row: UnsafePointer<Float>, width: Int, shift: Int, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for q in 0..<4 {
            let d = dst + q * count
            // k's with 0 ≤ 4k + q − shift < width, clamped to 0..<count.
            let lo = min(count, max(0, (shift - q + 3) / 4))
            let last = width - 1 + shift - q
            let hi = last < 0 ? 0 : min(count, last / 4 + 1)
            let a = min(lo, hi)
            d.update(repeating: 0, count: a)
            let src = row + q - shift
            for k in a..<hi { d[k] = src[4 * k] }
            (d + hi).update(repeating: 0, count: count - hi)
        }
    }

    /// y = Aᵀ M A (+ bias) for the tiles in tile rows `rows`, dropping outputs past the edges.
    func transformOutput(_ m: UnsafePointer<Float>, rows: Range<Int>, bias: UnsafePointer<Float>?,
                         into y: UnsafeMutablePointer<Float>) {
        let tw = tilesW, tiles = rows.count * tw
        let stride = outChannels * tiles
        let p = UnsafeMutablePointer<Float>.allocate(capacity: 24 * tw)   // Aᵀ M: 4 rows × 6 columns
        defer { p.deallocate() }
        let full = outW / 4, rest = outW % 4
        for o in 0..<outChannels {
            let b = bias?[o] ?? 0
            let out = y + o * outH * outW
            for ty in 0..<rows.count {
                for col in 0..<6 {
                    let m0 = m + col * stride + o * tiles + ty * tw
                    let m1 = m0 + 6 * stride, m2 = m1 + 6 * stride, m3 = m2 + 6 * stride, m4 = m3 + 6 * stride, m5 = m4 + 6 * stride
                    let q0 = p + col * tw, q1 = q0 + 6 * tw, q2 = q1 + 6 * tw, q3 = q2 + 6 * tw
                    for k in 0..<tw {
                        let s12 = m1[k] + m2[k], d12 = m1[k] - m2[k], s34 = m3[k] + m4[k], d34 = m3[k] - m4[k]
                        q0[k] = m0[k] + s12 + s34
                        q1[k] = d12 + 2 * d34
                        q2[k] = s12 + 4 * s34
                        q3[k] = d12 + 8 * d34 + m5[k]
                    }
                }
                for a in 0..<4 {
                    let oh = 4 * (rows.lowerBound + ty) + a
                    if oh >= outH { break }
                    let c0 = p + a * 6 * tw, c1 = c0 + tw, c2 = c1 + tw, c3 = c2 + tw, c4 = c3 + tw, c5 = c4 + tw
                    let row = out + oh * outW
                    func values(_ k: Int) -> (Float, Float, Float, Float) {
                        let s12 = c1[k] + c2[k], d12 = c1[k] - c2[k], s34 = c3[k] + c4[k], d34 = c3[k] - c4[k]
                        return (c0[k] + s12 + s34 + b, d12 + 2 * d34 + b, s12 + 4 * s34 + b, d12 + 8 * d34 + c5[k] + b)
                    }
                    for k in 0..<full {
                        let (y0, y1, y2, y3) = values(k)
                        row[4 * k] = y0; row[4 * k + 1] = y1; row[4 * k + 2] = y2; row[4 * k + 3] = y3
                    }
                    if rest > 0 {
                        let (y0, y1, y2, _) = values(full)
                        row[4 * full] = y0
                        if rest > 1 { row[4 * full + 1] = y1 }
                        if rest > 2 { row[4 * full + 2] = y2 }
                    }
                }
            }
        }
    }
}

extension NN {
    /// Runs `body` with the 3×3 stride-1 convs it sets up taking Winograd F(4×4, 3×3) on maps
    /// from `side` pixels up (128 otherwise), their backward passes included. F(4×4) needs 1.8×
    /// fewer multiplies than F(2×2) but rounds about 10× worse: for networks whose parity
    /// budget allows it.
    public static func withWinogradF4<R>(fromSide side: Int, _ body: () throws -> R) rethrows -> R {
        try Winograd4x4.$minSide.withValue(side) { try body() }
    }
}
