import Foundation

/// Resizing of NCHW tensors with PyTorch's `F.interpolate` index rules. Nearest and
/// bilinear are both separable two-tap filters: output row i reads input rows i0 and i1
/// with weights l0 and l1 (nearest: i1 = i0, l1 = 0).
struct Taps {
    var i0: Int, i1: Int
    var l0: Float, l1: Float
}

extension NN {
    /// Nearest-neighbour resize to `size` ('nearest': src = min(⌊dst·in/out⌋, in−1)).
    public static func upsampleNearest(_ x: Tensor, size: Pair) -> Tensor {
        precondition(x.rank == 4 && size.h > 0 && size.w > 0, "upsample_nearest: input \(x.shape) must be 4-D and size \(size) positive")
        let (h, w) = (x.shape[2], x.shape[3])
        return twoTapResample(x, rows: nearestTaps(out: size.h, size: h, scale: Float(h) / Float(size.h)),
                              cols: nearestTaps(out: size.w, size: w, scale: Float(w) / Float(size.w)), name: "upsample_nearest2d")
    }

    /// Nearest-neighbour upsampling by an integer factor, as `scale_factor=s`.
    public static func upsampleNearest(_ x: Tensor, scale: Int) -> Tensor {
        precondition(x.rank == 4 && scale > 0, "upsample_nearest: input \(x.shape) must be 4-D and scale \(scale) positive")
        // PyTorch uses 1/scale_factor (rounded to float) rather than in/out when given a factor.
        let r = Float(1.0 / Double(scale))
        return twoTapResample(x, rows: nearestTaps(out: x.shape[2] * scale, size: x.shape[2], scale: r),
                              cols: nearestTaps(out: x.shape[3] * scale, size: x.shape[3], scale: r), name: "upsample_nearest2d")
    }

    /// Bilinear resize to `size`, as `F.interpolate(mode='bilinear', align_corners=…)`.
    public static func upsampleBilinear(_ x: Tensor, size: Pair, alignCorners: Bool) -> Tensor {
        precondition(x.rank == 4 && size.h > 0 && size.w > 0, "upsample_bilinear: input \(x.shape) must be 4-D and size \(size) positive")
        let (h, w) = (x.shape[2], x.shape[3])
        return twoTapResample(x, rows: linearTaps(out: size.h, size: h, alignCorners: alignCorners, factor: nil),
                              cols: linearTaps(out: size.w, size: w, alignCorners: alignCorners, factor: nil), name: "upsample_bilinear2d")
    }

    /// Bilinear upsampling by an integer factor, as `scale_factor=s`.
    public static func upsampleBilinear(_ x: Tensor, scale: Int, alignCorners: Bool) -> Tensor {
        precondition(x.rank == 4 && scale > 0, "upsample_bilinear: input \(x.shape) must be 4-D and scale \(scale) positive")
        return twoTapResample(x, rows: linearTaps(out: x.shape[2] * scale, size: x.shape[2], alignCorners: alignCorners, factor: scale),
                              cols: linearTaps(out: x.shape[3] * scale, size: x.shape[3], alignCorners: alignCorners, factor: scale),
                              name: "upsample_bilinear2d")
    }

    /// Area resize, as `F.interpolate(mode='area')`, which is adaptive average pooling.
    public static func resizeArea(_ x: Tensor, size: Pair) -> Tensor {
        adaptiveAvgPool2d(x, outputSize: size)
    }

    static func nearestTaps(out: Int, size: Int, scale: Float) -> [Taps] {
        (0..<out).map { o in
            // PyTorch's special cases keep these exact regardless of float rounding.
            let i: Int
            if out == size { i = o } else if out == 2 * size { i = o >> 1 } else { i = min(Int(floorf(Float(o) * scale)), size - 1) }
            return Taps(i0: i, i1: i, l0: 1, l1: 0)
        }
    }

    static func linearTaps(out: Int, size: Int, alignCorners: Bool, factor: Int?) -> [Taps] {
        let ratio: Float
        if alignCorners {
            ratio = out > 1 ? Float(size - 1) / Float(out - 1) : 0
        } else {
            ratio = factor.map { Float(1.0 / Double($0)) } ?? Float(size) / Float(out)
        }
        return (0..<out).map { o in
            if out == size { return Taps(i0: o, i1: o, l0: 1, l1: 0) }
            var src = alignCorners ? ratio * Float(o) : ratio * (Float(o) + 0.5) - 0.5
            if src < 0 { src = 0 }
            let i0 = Int(src)
            let i1 = i0 + (i0 < size - 1 ? 1 : 0)
            let l1 = min(max(src - Float(i0), 0), 1)
            return Taps(i0: i0, i1: i1, l0: 1 - l1, l1: l1)
        }
    }
}

/// y[i, j] = Σ over the two row taps and two column taps of weight·x, per plane.
func twoTapResample(_ x: Tensor, rows: [Taps], cols: [Taps], name: String) -> Tensor {
    let xc = x.contiguous()
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let oh = rows.count, ow = cols.count
    let y = Tensor(uninitialized: [n, c, oh, ow])
    let src = xc.data, dst = y.data
    // Each output row blends two input rows, each first interpolated along its width. Those
    // horizontal passes (the gathers) are kept in two slots, so an input row shared by
    // neighbouring output rows is interpolated once, and the vertical blend is vectorised.
    // The arithmetic is r.l0·(row i0) + r.l1·(row i1) either way, so results don't change.
    Parallel.forEach(n * c, minChunk: max(1, 4096 / (oh * ow))) { planes in
        let slots = UnsafeMutablePointer<Float>.allocate(capacity: 2 * ow)
        defer { slots.deallocate() }
        for pl in planes {
            let xp = src + pl * h * w, yp = dst + pl * oh * ow
            // Slot a holds the interpolation of input row `ra`, slot b that of row `rb`.
            var (a, ra) = (slots, -1), (b, rb) = (slots + ow, -1)
            func fill(_ d: UnsafeMutablePointer<Float>, _ row: Int) {
                let r = xp + row * w
                for j in 0..<ow {
                    let t = cols[j]
                    d[j] = t.l0 * r[t.i0] + t.l1 * r[t.i1]
                }
            }
            for i in 0..<oh {
                let r = rows[i], d = yp + i * ow
                if ra != r.i0 {
                    if rb == r.i0 { swap(&a, &b); swap(&ra, &rb) } else { fill(a, r.i0); ra = r.i0 }
                }
                if rb != r.i1 && r.i1 != r.i0 { fill(b, r.i1); rb = r.i1 }
                let second = r.i1 == r.i0 ? a : b
                let l0 = F8(repeating: r.l0), l1 = F8(repeating: r.l1)
                var j = 0
                while j + 8 <= ow { store8(l0 * load8(a + j) + l1 * load8(second + j), d + j); j += 8 }
                while j < ow { d[j] = r.l0 * a[j] + r.l1 * second[j]; j += 1 }
            }
        }
    }
    if Autograd.shouldRecord(xc) {
        y.record(name, [xc]) { g in
            let gy = g.contiguous()
            let gx = Tensor(zeros: [n, c, h, w])
            let gp = gy.data, gxp = gx.data
            Parallel.forEach(n * c, minChunk: max(1, 4096 / (oh * ow))) { planes in
                for pl in planes {
                    let d = gxp + pl * h * w, s = gp + pl * oh * ow
                    for i in 0..<oh {
                        let r = rows[i]
                        let r0 = d + r.i0 * w, r1 = d + r.i1 * w, srow = s + i * ow
                        for j in 0..<ow {
                            let t = cols[j], v = srow[j]
                            r0[t.i0] += r.l0 * t.l0 * v; r0[t.i1] += r.l0 * t.l1 * v
                            r1[t.i0] += r.l1 * t.l0 * v; r1[t.i1] += r.l1 * t.l1 * v
                        }
                    }
                }
            }
            return [gx]
        }
    }
    return y
}
