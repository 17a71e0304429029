import Foundation

/// Differentiable geometry: PyTorch's `F.affine_grid` and bilinear `F.grid_sample`.
/// Guidance crops and warps a face out of a larger image, so gradients flow to the image
/// and to the grid (and through affine_grid to theta).
extension NN {
    public enum GridPadding { case zeros, border }

    /// Sampling grid [N, H, W, 2] (x, y in [-1, 1]) for theta [N, 2, 3] and an output of
    /// `size` (H, W). Differentiable in theta.
    public static func affineGrid(_ theta: Tensor, size: Pair, alignCorners: Bool) -> Tensor {
        precondition(theta.rank == 3 && theta.shape[1] == 2 && theta.shape[2] == 3, "affine_grid: theta \(theta.shape) must be [N, 2, 3]")
        precondition(size.h > 0 && size.w > 0, "affine_grid: size \(size) must be positive")
        let n = theta.shape[0], h = size.h, w = size.w
        let xs = baseCoordinates(w, alignCorners), ys = baseCoordinates(h, alignCorners)
        let tc = theta.contiguous()
        let grid = Tensor(uninitialized: [n, h, w, 2])
        let tp = tc.data, gp = grid.data
        for b in 0..<n {
            let t = tp + b * 6
            for i in 0..<h {
                for j in 0..<w {
                    let o = gp + ((b * h + i) * w + j) * 2
                    o[0] = t[0] * xs[j] + t[1] * ys[i] + t[2]
                    o[1] = t[3] * xs[j] + t[4] * ys[i] + t[5]
                }
            }
        }
        if Autograd.shouldRecord(tc) {
            grid.record("affine_grid", [tc]) { g in
                let gg = g.contiguous()
                let gt = Tensor(zeros: [n, 2, 3])
                let s = gg.data, d = gt.data
                for b in 0..<n {
                    // Double accumulators: a 256² grid sums 65536 terms.
                    var acc = [Double](repeating: 0, count: 6)
                    for i in 0..<h {
                        for j in 0..<w {
                            let v = s + ((b * h + i) * w + j) * 2
                            let gx = Double(v[0]), gy = Double(v[1])
                            acc[0] += gx * Double(xs[j]); acc[1] += gx * Double(ys[i]); acc[2] += gx
                            acc[3] += gy * Double(xs[j]); acc[4] += gy * Double(ys[i]); acc[5] += gy
                        }
                    }
                    for k in 0..<6 { d[b * 6 + k] = Float(acc[k]) }
                }
                return [gt]
            }
        }
        return grid
    }

    /// Normalised pixel-centre coordinates along an axis of `count` pixels.
    static func baseCoordinates(_ count: Int, _ alignCorners: Bool) -> [Float] {
        if count == 1 { return [0] }
        return (0..<count).map { i in
            alignCorners ? Float(-1 + 2 * Double(i) / Double(count - 1))
                         : Float((2 * Double(i) + 1) / Double(count) - 1)
        }
    }

    /// Bilinear sampling of x [N, C, H, W] at grid [N, Ho, Wo, 2] → [N, C, Ho, Wo].
    /// Differentiable in x and grid.
    public static func gridSample(_ x: Tensor, grid: Tensor, padding: GridPadding = .zeros, alignCorners: Bool) -> Tensor {
        precondition(x.rank == 4 && grid.rank == 4 && grid.shape[3] == 2 && grid.shape[0] == x.shape[0],
                     "grid_sample: input \(x.shape) must be [N, C, H, W] and grid \(grid.shape) [N, Ho, Wo, 2]")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let oh = grid.shape[1], ow = grid.shape[2], p = oh * ow
        let xc = x.contiguous(), gc = grid.contiguous()
        let sampler = BilinearSampler(height: h, width: w, padding: padding, alignCorners: alignCorners)
        let y = Tensor(uninitialized: [n, c, oh, ow])
        let xp = xc.data, gp = gc.data, yp = y.data
        Parallel.forEach(n * p, minChunk: max(1, 2048 / max(c, 1))) { r in
            for q in r {
                let b = q / p, pix = q % p
                let pt = sampler.point(gp[q * 2], gp[q * 2 + 1])
                for ch in 0..<c {
                    yp[(b * c + ch) * p + pix] = pt.value(xp + (b * c + ch) * h * w, width: w)
                }
            }
        }
        if Autograd.shouldRecord(xc, gc) {
            let xd = xc.detached(), gd = gc.detached()
            let needX = xc.tracksGradient, needGrid = gc.tracksGradient
            y.record("grid_sample", [xc, gc]) { g in
                let gy = g.contiguous()
                let gyp = gy.data, xp = xd.data, gp = gd.data
                var gx: Tensor? = nil, gg: Tensor? = nil
                if needX {
                    // Split by (sample, channel) plane: scatters from different grid points
                    // may land on one pixel, but never in another thread's plane.
                    let t = Tensor(zeros: [n, c, h, w])
                    let d = t.data
                    Parallel.forEach(n * c, minChunk: max(1, 2048 / max(p, 1))) { planes in
                        for pl in planes {
                            let b = pl / c, plane = d + pl * h * w, src = gyp + pl * p
                            for pix in 0..<p {
                                let q = b * p + pix
                                sampler.point(gp[q * 2], gp[q * 2 + 1]).scatter(src[pix], into: plane, width: w)
                            }
                        }
                    }
                    gx = t
                }
                if needGrid {
                    let t = Tensor(uninitialized: [n, oh, ow, 2])
                    let d = t.data
                    Parallel.forEach(n * p, minChunk: max(1, 2048 / max(c, 1))) { r in
                        for q in r {
                            let b = q / p, pix = q % p
                            let pt = sampler.point(gp[q * 2], gp[q * 2 + 1])
                            var dx: Float = 0, dy: Float = 0
                            for ch in 0..<c {
                                let (ax, ay) = pt.gradient(xp + (b * c + ch) * h * w, width: w)
                                let go = gyp[(b * c + ch) * p + pix]
                                dx += ax * go; dy += ay * go
                            }
                            d[q * 2] = dx * pt.dxMult; d[q * 2 + 1] = dy * pt.dyMult
                        }
                    }
                    gg = t
                }
                return [gx, gg]
            }
        }
        return y
    }
}

/// Maps normalised grid coordinates to pixel positions, as PyTorch's grid sampler does.
struct BilinearSampler {
    let height: Int, width: Int
    let padding: NN.GridPadding
    let alignCorners: Bool

    /// Pixel coordinate and d(pixel)/d(normalised) for one axis.
    @inline(__always)
    func source(_ coord: Float, size: Int) -> (Float, Float) {
        var v: Float, mult: Float
        if alignCorners {
            v = (coord + 1) / 2 * Float(size - 1); mult = Float(size - 1) / 2
        } else {
            v = ((coord + 1) * Float(size) - 1) / 2; mult = Float(size) / 2
        }
        if padding == .border {
            // Clamped coordinates pass no gradient, at the bounds included (as PyTorch).
            if v <= 0 { v = 0; mult = 0 } else if v >= Float(size - 1) { v = Float(size - 1); mult = 0 }
        }
        return (v, mult)
    }

    @inline(__always)
    func point(_ gx: Float, _ gy: Float) -> SamplePoint {
        let (ix, mx) = source(gx, size: width), (iy, my) = source(gy, size: height)
        return SamplePoint(ix: ix, iy: iy, dxMult: mx, dyMult: my, height: height, width: width)
    }
}

/// One grid point's four neighbours. Neighbours outside the image read as zero.
struct SamplePoint {
    let ix: Float, iy: Float
    let dxMult: Float, dyMult: Float
    let x0: Int, y0: Int
    let in00: Bool, in01: Bool, in10: Bool, in11: Bool   // (row, column) corner inside the image
    let fx: Float, fy: Float                               // fractional offsets from (x0, y0)

    init(ix: Float, iy: Float, dxMult: Float, dyMult: Float, height: Int, width: Int) {
        self.ix = ix; self.iy = iy; self.dxMult = dxMult; self.dyMult = dyMult
        let fx0 = floorf(ix), fy0 = floorf(iy)
        // Far-off coordinates must not overflow Int; anything beyond ±2 pixels out is simply outside.
        let cx = min(max(fx0, -2), Float(width) + 1), cy = min(max(fy0, -2), Float(height) + 1)
        x0 = Int(cx); y0 = Int(cy)
        fx = ix - fx0; fy = iy - fy0
        let x0in = x0 >= 0 && x0 < width, x1in = x0 + 1 >= 0 && x0 + 1 < width
        let y0in = y0 >= 0 && y0 < height, y1in = y0 + 1 >= 0 && y0 + 1 < height
        in00 = y0in && x0in; in01 = y0in && x1in; in10 = y1in && x0in; in11 = y1in && x1in
    }

    @inline(__always)
    func value(_ plane: UnsafePointer<Float>, width w: Int) -> Float {
        var v: Float = 0
        if in00 { v += plane[y0 * w + x0] * (1 - fx) * (1 - fy) }
        if in01 { v += plane[y0 * w + x0 + 1] * fx * (1 - fy) }
        if in10 { v += plane[(y0 + 1) * w + x0] * (1 - fx) * fy }
        if in11 { v += plane[(y0 + 1) * w + x0 + 1] * fx * fy }
        return v
    }

    @inline(__always)
    func scatter(_ g: Float, into plane: UnsafeMutablePointer<Float>, width w: Int) {
        if in00 { plane[y0 * w + x0] += g * (1 - fx) * (1 - fy) }
        if in01 { plane[y0 * w + x0 + 1] += g * fx * (1 - fy) }
        if in10 { plane[(y0 + 1) * w + x0] += g * (1 - fx) * fy }
        if in11 { plane[(y0 + 1) * w + x0 + 1] += g * fx * fy }
    }

    /// d(value)/d(ix), d(value)/d(iy) in pixel units.
    @inline(__always)
    func gradient(_ plane: UnsafePointer<Float>, width w: Int) -> (Float, Float) {
        let v00: Float = in00 ? plane[y0 * w + x0] : 0
        let v01: Float = in01 ? plane[y0 * w + x0 + 1] : 0
        let v10: Float = in10 ? plane[(y0 + 1) * w + x0] : 0
        let v11: Float = in11 ? plane[(y0 + 1) * w + x0 + 1] : 0
        let dx = (v01 - v00) * (1 - fy) + (v11 - v10) * fy
        let dy = (v10 - v00) * (1 - fx) + (v11 - v01) * fx
        return (dx, dy)
    }
}
