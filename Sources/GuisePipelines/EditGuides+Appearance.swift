import Foundation
import GuiseImage
import GuiseTensor
import GuiseVision

/// A region's or a patch's look, as `--appearance-from` compares them: per colour channel
/// (luma and two colour differences, 0…1 units) the mean and standard deviation, and per scale
/// of a small fixed filter bank (Gaussian derivatives along x and y and a Laplacian of
/// Gaussian at σ 1 and 2 px, and σ 2 on the photo halved) the Gram matrix of the filter
/// responses over the three channels: how strong the texture is at each scale, along which
/// directions, and in which colours.
public struct AppearanceStatistics {
    /// [3] each.
    public var mean: Tensor
    public var std: Tensor
    /// One [9, 9] per scale.
    public var grams: [Tensor]
}

extension EditGuides {
    /// The default weight of the appearance energy (squared colour-statistic differences in 0…1
    /// units, and the texture terms, see `appearanceLoss`).
    public static let defaultAppearanceWeight = 2000.0
    /// How much the filter responses' spreads and correlations count against the colour terms.
    static let textureScale: Float = 10
    static let correlationShare: Float = 0.05
    /// The smallest patch side: twice the widest filter.
    public static let minimumPatchSide = 32

    /// Guidance that pulls the masked region's colour and texture statistics towards `patch`'s,
    /// measured on x̂0 over the region, starting from the region with its colours and detail
    /// contrast moved to the patch's (`appearanceTransfer`). `mask` is the edit's mask (photo size).
    public static func appearance(patch: Image, mask: Mask, weight: Double = defaultAppearanceWeight) throws -> EditGuidance {
        guard patch.width >= minimumPatchSide, patch.height >= minimumPatchSide else {
            throw EditError("the appearance patch is \(patch.width)x\(patch.height): it must be at least \(minimumPatchSide)x\(minimumPatchSide) pixels")
        }
        let target = try Autograd.noGrad {
            try appearanceStatistics(ImageTensor.tensor(patch), weight: Tensor(shape: [1, 1, patch.height, patch.width], repeating: 1))
        }
        let w = Float(weight)
        return EditGuidance(name: "appearance", start: { try appearanceTransfer($0, mask: mask, patch: patch) }) { x0, origin in
            let h = x0.shape[2], wd = x0.shape[3]
            var m = [Float](repeating: 0, count: h * wd)
            for y in 0..<h {
                let py = Window.mirror(origin.y + y, mask.height) * mask.width
                for x in 0..<wd { m[y * wd + x] = mask.values[py + Window.mirror(origin.x + x, mask.width)] }
            }
            let stats = try appearanceStatistics(x0.scaled(0.5, plus: 0.5), weight: Tensor(shape: [1, 1, h, wd], values: m))
            return appearanceLoss(stats, target).scaled(w)
        }
    }

    /// Σ over channels of (mean − mean′)² + (std − std′)², plus per scale of the filter bank
    /// `textureScale` × Σ over filters of (σ − σ′)² (each response's spread, sqrt of the Gram's
    /// diagonal, in the same units as the colours') and `correlationShare` × the mean squared
    /// difference of the responses' correlations (the Gram normalised by those spreads: which
    /// directions and colours the texture runs in, whatever its strength).
    public static func appearanceLoss(_ a: AppearanceStatistics, _ target: AppearanceStatistics) -> Tensor {
        let dm = a.mean - target.mean, ds = a.std - target.std
        var total = (dm * dm).sum() + (ds * ds).sum()
        for (g, t) in zip(a.grams, target.grams) {
            let (gs, gc) = spreadAndCorrelation(g), (ts, tc) = spreadAndCorrelation(t)
            let d = gs - ts, c = gc - tc
            total = total + (d * d).sum().scaled(textureScale) + (c * c).mean().scaled(correlationShare)
        }
        return total
    }

    /// A Gram matrix [k, k] as the responses' spreads [k] and their correlations [k, k].
    static func spreadAndCorrelation(_ g: Tensor) -> (Tensor, Tensor) {
        let k = g.shape[0]
        var eye = [Float](repeating: 0, count: k * k)
        for i in 0..<k { eye[i * k + i] = 1 }
        let spread = ((g * Tensor(shape: [k, k], values: eye)).sum(dims: [1]) + 1e-8).sqrt()
        let corr = g / (spread.reshaped([k, 1]) * spread.reshaped([1, k]))
        return (spread, corr)
    }

    /// RGB → luma and two colour differences (a YCbCr without offsets), as a 1×1 convolution.
    static let opponent: [[Float]] = [[0.299, 0.587, 0.114], [-0.169, -0.331, 0.5], [0.5, -0.419, -0.081]]

    /// The statistics of `image` ([1, 3, H, W] in 0…1) over `weight` ([1, 1, H, W], ≥ 0),
    /// differentiable in the image. Filter responses within a filter's reach of the tensor's
    /// edge are left out (the zero padding there is no texture).
    public static func appearanceStatistics(_ image: Tensor, weight: Tensor) throws -> AppearanceStatistics {
        let h = image.shape[2], w = image.shape[3]
        guard h >= minimumPatchSide, w >= minimumPatchSide else { throw EditError("the appearance region is too small to measure (\(w)x\(h))") }
        let y = NN.conv2d(image, weight: Tensor(shape: [3, 3, 1, 1], values: opponent.flatMap { $0 }))
        let n = max(Float(weight.sum().item()), 1e-6)
        let mean = (y * weight).sum(dims: [0, 2, 3]).scaled(1 / n)
        let centred = y - mean.reshaped([1, 3, 1, 1])
        let std = ((centred * centred * weight).sum(dims: [0, 2, 3]).scaled(1 / n) + 1e-6).sqrt()
        var grams: [Tensor] = []
        let half = NN.avgPool2d(y, kernel: 2), halfWeight = NN.avgPool2d(weight, kernel: 2)
        for (input, wt, sigma) in [(y, weight, 1.0), (y, weight, 2.0), (half, halfWeight, 2.0)] {
            let r = Int((3 * sigma).rounded(.up))
            let f = NN.conv2d(input, weight: filterBank(sigma: sigma, radius: r), padding: NN.Padding(integerLiteral: r), groups: 3)
            let fh = f.shape[2], fw = f.shape[3]
            // Only responses whose whole footprint is inside the tensor.
            var inner = [Float](repeating: 0, count: fh * fw)
            if fh > 2 * r, fw > 2 * r { for yy in r..<(fh - r) { for xx in r..<(fw - r) { inner[yy * fw + xx] = 1 } } }
            let m = wt * Tensor(shape: [1, 1, fh, fw], values: inner)
            let count = max(Float(m.sum().item()), 1e-6)
            let k = f.shape[1]
            let fm = (f * m.sqrt()).reshaped([k, fh * fw])
            grams.append(fm.matmul(fm.permuted(1, 0).contiguous()).scaled(1 / count))
        }
        return AppearanceStatistics(mean: mean, std: std, grams: grams)
    }

    /// [9, 1, 2r+1, 2r+1]: for each of the three channels (grouped convolution), the x and y
    /// derivatives of a Gaussian of `sigma` and its Laplacian, scale-normalised (σ·∂, σ²·∇²).
    static func filterBank(sigma: Double, radius r: Int) -> Tensor {
        let side = 2 * r + 1
        var g = [Double](repeating: 0, count: side * side)
        for y in -r...r { for x in -r...r { g[(y + r) * side + x + r] = exp(-Double(x * x + y * y) / (2 * sigma * sigma)) } }
        let sum = g.reduce(0, +)
        g = g.map { $0 / sum }
        var dx = g, dy = g, lap = g
        let s2 = sigma * sigma
        for y in -r...r {
            for x in -r...r {
                let i = (y + r) * side + x + r
                dx[i] = -Double(x) / s2 * g[i] * sigma
                dy[i] = -Double(y) / s2 * g[i] * sigma
                lap[i] = (Double(x * x + y * y) - 2 * s2) / (s2 * s2) * g[i] * s2
            }
        }
        // The Laplacian's taps sum to zero on the grid, so flat colour gives no response.
        let lm = lap.reduce(0, +) / Double(side * side)
        lap = lap.map { $0 - lm }
        let three = [dx, dy, lap].flatMap { $0.map(Float.init) }
        return Tensor(shape: [9, 1, side, side], values: Array([[Float]](repeating: three, count: 3).joined()))
    }

    /// The photo with the masked region's look moved to `patch`'s, in luma and colour-difference
    /// channels and three bands (under a Gaussian of 4 px, between 1 and 4 px, finer): the broad band's mean and
    /// spread become the patch's (the spread scaled by ¼…4×), so the region keeps its shading and
    /// shapes in the patch's colours. Each finer band (texture) becomes as strong as the patch's:
    /// a region rougher than the patch has its own detail toned down; a smoother one keeps its
    /// detail and gets the patch's detail, repeated (mirrored) over it, for the rest, since
    /// scaling up a flat region's detail would only amplify its noise. The colour change fades
    /// in over a few pixels inside the mask's edge (5 % of the square root of its area, 2–10 px)
    /// so the region has no colour step where it meets the kept pixels. Pixels outside the
    /// mask are returned exactly.
    public static func appearanceTransfer(_ image: Image, mask: Mask, patch: Image) throws -> Image {
        let w = image.width, h = image.height
        guard mask.width == w, mask.height == h else { throw EditError("the mask is \(mask.width)x\(mask.height), the photo \(w)x\(h)") }
        var x0 = w, y0 = h, x1 = -1, y1 = -1, area = 0
        for y in 0..<h { for x in 0..<w where mask.values[y * w + x] > 0 { x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y); area += 1 } }
        guard area > 0 else { return image }
        let pad = 12
        let cx = max(0, x0 - pad), cy = max(0, y0 - pad)
        let cw = min(w, x1 + pad + 1) - cx, ch = min(h, y1 + pad + 1) - cy
        let crop = try image.cropped(x: cx, y: cy, width: cw, height: ch)
        let region = (0..<(cw * ch)).map { mask.values[(cy + $0 / cw) * w + cx + $0 % cw] > 0 }

        /// Per opponent channel: the band under a Gaussian of 4 px, then the detail between 1 and
        /// 4 px, then the finest.
        func bands(_ img: Image) throws -> [[[Float]]] {
            let blurs = [try img.blurred(sigma: 4), try img.blurred(sigma: 1), img]
            let n = img.pixelCount
            var out = [[[Float]]](repeating: [[Float]](repeating: [Float](repeating: 0, count: n), count: 3), count: 3)
            for band in 0..<3 {
                for c in 0..<3 {
                    for i in 0..<n {
                        var v: Float = 0
                        for k in 0..<3 {
                            let upper = blurs[band].rgb[k * n + i], lower = band == 0 ? 0 : blurs[band - 1].rgb[k * n + i]
                            v += opponent[c][k] * (upper - lower)
                        }
                        out[band][c][i] = v
                    }
                }
            }
            return out
        }
        func moments(_ v: [Float], _ use: [Bool]?) -> (Float, Float) {
            var s = 0.0, s2 = 0.0, cnt = 0.0
            for i in v.indices where use?[i] ?? true { s += Double(v[i]); s2 += Double(v[i]) * Double(v[i]); cnt += 1 }
            let m = s / max(cnt, 1)
            return (Float(m), Float(max(s2 / max(cnt, 1) - m * m, 0).squareRoot()))
        }
        let r = try bands(crop), p = try bands(patch.with(alpha: nil))
        let n = cw * ch
        // The patch repeated over the region, mirrored at its edges so the repeats meet without a step.
        func mirrored(_ x: Int, _ y: Int) -> Int {
            func fold(_ v: Int, _ len: Int) -> Int {
                guard len > 1 else { return 0 }
                let k = v % (2 * len)
                return k < len ? k : 2 * len - 1 - k
            }
            return fold(y, patch.height) * patch.width + fold(x, patch.width)
        }
        let tiled = (0..<n).map { mirrored($0 % cw, $0 / cw) }
        // The change to the broad band and to the detail, per opponent channel.
        var low = [[Float]](repeating: [Float](repeating: 0, count: n), count: 3), detail = low
        for c in 0..<3 {
            let (rm, rs) = moments(r[0][c], region), (pm, ps) = moments(p[0][c], nil)
            let lowGain = min(max(ps / max(rs, 1e-4), 0.25), 4)
            for i in 0..<n { low[c][i] = pm + (r[0][c][i] - rm) * lowGain - r[0][c][i] }
            for band in 1..<3 {
                let (_, rds) = moments(r[band][c], region), (_, pds) = moments(p[band][c], nil)
                // The region's own detail is only ever toned down; where it is weaker than the
                // patch's, the patch's detail makes up the rest of the variance.
                let gain = min(pds / max(rds, 1e-6), 1)
                let kept = gain * rds / max(pds, 1e-6)
                let added = max(0, 1 - kept * kept).squareRoot()
                for i in 0..<n { detail[c][i] += r[band][c][i] * (gain - 1) + added * p[band][c][tiled[i]] }
            }
        }
        // Back to RGB: the inverse of `opponent`.
        let inv = invert3(opponent)
        // Colour fades in over a ramp; texture changes within two pixels (a fading texture
        // would leave the old one showing through along the edge).
        let ramp = Float(min(10, max(2, Int((0.05 * Double(area).squareRoot()).rounded()))))
        let inside = chamferDistance(region, width: cw, height: ch)
        var out = image
        let pn = w * h
        for i in 0..<n where region[i] {
            let a = min(1, inside[i] / ramp), b = min(1, inside[i] / 2)
            let px = (cy + i / cw) * w + cx + i % cw
            for k in 0..<3 {
                var v = image.rgb[k * pn + px]
                for c in 0..<3 { v += inv[k][c] * (a * low[c][i] + b * detail[c][i]) }
                out.rgb[k * pn + px] = min(max(v, 0), 1)
            }
        }
        return out
    }

    static func invert3(_ m: [[Float]]) -> [[Float]] {
        let a = m.map { $0.map(Double.init) }
        let det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        var out = [[Float]](repeating: [0, 0, 0], count: 3)
        for i in 0..<3 {
            for j in 0..<3 {
                let r = [0, 1, 2].filter { $0 != j }, c = [0, 1, 2].filter { $0 != i }
                let minor = a[r[0]][c[0]] * a[r[1]][c[1]] - a[r[0]][c[1]] * a[r[1]][c[0]]
                out[i][j] = Float(((i + j) % 2 == 0 ? 1 : -1) * minor / det)
            }
        }
        return out
    }

    /// Per pixel of `region`, the distance (3-4 chamfer, in pixels) to the nearest pixel
    /// outside it; pixels beyond the rectangle's edge count as outside unless `edgeIsOutside`
    /// is false (a region covering everything then stays at 1e9).
    static func chamferDistance(_ region: [Bool], width w: Int, height h: Int, edgeIsOutside: Bool = true) -> [Float] {
        let big: Float = 1e9
        var d = region.map { $0 ? big : 0 }
        let beyond: Float = edgeIsOutside ? 0 : big
        func at(_ x: Int, _ y: Int) -> Float { x < 0 || y < 0 || x >= w || y >= h ? beyond : d[y * w + x] }
        for y in 0..<h {
            for x in 0..<w where region[y * w + x] {
                d[y * w + x] = min(d[y * w + x], at(x - 1, y) + 1, at(x, y - 1) + 1, at(x - 1, y - 1) + 1.4142, at(x + 1, y - 1) + 1.4142)
            }
        }
        for y in stride(from: h - 1, through: 0, by: -1) {
            for x in stride(from: w - 1, through: 0, by: -1) where region[y * w + x] {
                d[y * w + x] = min(d[y * w + x], at(x + 1, y) + 1, at(x, y + 1) + 1, at(x + 1, y + 1) + 1.4142, at(x - 1, y + 1) + 1.4142)
            }
        }
        return d
    }
}
