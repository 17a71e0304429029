import XCTest
@testable import GuiseTensor
import GuiseFormats
import GuiseTestSupport

/// Forward and backward of the spatial ops against PyTorch (Tools/make_fixtures_conv.py),
/// to 1e-4 of the output's scale, plus finite-difference checks on small shapes.
final class ConvOpsTests: XCTestCase {
    /// Runs `f` on fixture case `name`, compares its output and the gradient of
    /// Σ y ⊙ gy w.r.t. each named input with PyTorch's.
    func checkFixture(_ name: String, inputs: [String], file: StaticString = #filePath, line: UInt = #line,
                      _ f: ([Tensor], [Int]) -> Tensor) throws {
        let st = try fixture("conv_ops")
        let p = try st.tensor("\(name).p").values.map { Int($0) }
        let leaves = try inputs.map { k -> Tensor in
            let t = try st.tensor("\(name).\(k)")
            t.requiresGrad = true
            return t
        }
        let y = f(leaves, p)
        assertClose(y, try st.tensor("\(name).y"), "\(name) forward", file: file, line: line)
        y.backward(seed: try st.tensor("\(name).gy"))
        for (k, leaf) in zip(inputs, leaves) {
            guard let g = leaf.grad else { XCTFail("\(name): no gradient for \(k)", file: file, line: line); continue }
            assertClose(g, try st.tensor("\(name).g_\(k)"), "\(name) d/d\(k)", file: file, line: line)
        }
    }

    // MARK: conv2d

    static func conv(_ t: [Tensor], _ p: [Int]) -> Tensor {
        NN.conv2d(t[0], weight: t[1], bias: p[9] == 1 ? t[2] : nil, stride: NN.Pair(p[0], p[1]),
                  padding: NN.Padding(top: p[2], bottom: p[3], left: p[4], right: p[5]),
                  dilation: NN.Pair(p[6], p[7]), groups: p[8])
    }

    func testConv2dMatchesPyTorch() throws {
        for (name, bias) in [("conv_basic", true), ("conv_stride2_groups2", true), ("conv_dilation2", false),
                             ("conv_depthwise", true), ("conv_depth_mult", false), ("conv_pointwise", true),
                             ("conv_asym_pad", true), ("conv_1x1_stride2", false), ("conv_5x5_rect", true),
                             ("conv_wide_c16", true), ("conv_wide_groups_dil_asym", true), ("conv_wide_overpad", false),
                             ("conv_wino_odd_groups", true), ("conv_wino_batch", true)] {
            try checkFixture(name, inputs: bias ? ["x", "w", "b"] : ["x", "w"], Self.conv)
        }
    }

    func testConv2dGradientsMatchFiniteDifferences() {
        let x = randomTensor([2, 4, 6, 5], seed: 3), w = randomTensor([4, 2, 3, 3], seed: 4), b = randomTensor([4], seed: 5)
        assertGradientsMatchFiniteDifferences([x, w, b]) { t in
            NN.conv2d(t[0], weight: t[1], bias: t[2], stride: NN.Pair(2, 1), padding: NN.Padding(top: 1, bottom: 0, left: 2, right: 1),
                      dilation: NN.Pair(1, 2), groups: 2)
        }
        let xp = randomTensor([1, 3, 4, 4], seed: 6), wp = randomTensor([2, 3, 1, 1], seed: 7)
        assertGradientsMatchFiniteDifferences([xp, wp]) { t in NN.conv2d(t[0], weight: t[1]) }
        // 16 channels per group: the stride-1 path without im2col.
        let xs = randomTensor([2, 16, 4, 5], seed: 20), ws = randomTensor([16, 16, 3, 3], seed: 21, scale: 0.2)
        assertGradientsMatchFiniteDifferences([xs, ws]) { t in
            NN.conv2d(t[0], weight: t[1], padding: NN.Padding(top: 1, bottom: 2, left: 0, right: 1), dilation: NN.Pair(1, 2))
        }
        // Depthwise with a channel multiplier: the direct path.
        let xd = randomTensor([2, 3, 6, 5], seed: 23), wdw = randomTensor([6, 1, 3, 3], seed: 24), bd = randomTensor([6], seed: 25)
        assertGradientsMatchFiniteDifferences([xd, wdw, bd]) { t in
            NN.conv2d(t[0], weight: t[1], bias: t[2], stride: NN.Pair(1, 2), padding: NN.Padding(top: 2, bottom: 1, left: 1, right: 0),
                      dilation: NN.Pair(2, 1), groups: 3)
        }
        // 3×3 stride 1 with 16 channels: Winograd, odd output width.
        let wb = randomTensor([16], seed: 22)
        assertGradientsMatchFiniteDifferences([xs, ws, wb]) { t in NN.conv2d(t[0], weight: t[1], bias: t[2], padding: NN.Padding(1, 0)) }
    }

    /// The direct depthwise kernel against the grouped GEMM paths it replaced, forward and all
    /// three gradients, at the iris network's geometries (3×3 SAME, 32×32 down to 2×2) and at
    /// stride 2 after an explicit pad, odd sizes, a channel multiplier and dilation.
    /// The direct depthwise kernel (its unrolled 3×3 and 5×5 rows, stride-2 phase split with even
    /// and odd left padding, row tails shorter than 8 and 16) against the grouped GEMM paths.
    func testDirectDepthwiseMatchesGEMMPaths() {
        typealias Case = (x: [Int], mult: Int, k: Int, stride: NN.Pair, pad: NN.Padding, dilation: NN.Pair)
        let cases: [Case] = [
            ([1, 32, 32, 32], 1, 3, NN.Pair(1, 1), NN.Padding(1, 1), NN.Pair(1, 1)),
            ([1, 64, 16, 16], 1, 3, NN.Pair(1, 1), NN.Padding(1, 1), NN.Pair(1, 1)),
            ([1, 64, 4, 4], 1, 3, NN.Pair(1, 1), NN.Padding(1, 1), NN.Pair(1, 1)),
            ([1, 64, 2, 2], 1, 3, NN.Pair(1, 1), NN.Padding(1, 1), NN.Pair(1, 1)),
            ([2, 8, 17, 15], 1, 3, NN.Pair(2, 2), NN.Padding(0, 0), NN.Pair(1, 1)),
            ([2, 3, 9, 11], 2, 3, NN.Pair(2, 1), NN.Padding(top: 0, bottom: 1, left: 1, right: 0), NN.Pair(1, 2)),
            ([1, 6, 40, 40], 1, 3, NN.Pair(2, 2), NN.Padding(top: 0, bottom: 1, left: 0, right: 1), NN.Pair(1, 1)),
            ([1, 5, 13, 37], 2, 3, NN.Pair(2, 2), NN.Padding(1, 1), NN.Pair(1, 1)),
            ([1, 7, 19, 21], 1, 5, NN.Pair(1, 1), NN.Padding(2, 2), NN.Pair(1, 1)),
            ([1, 4, 12, 35], 1, 5, NN.Pair(1, 1), NN.Padding(2, 2), NN.Pair(1, 1)),
            ([2, 6, 28, 28], 1, 5, NN.Pair(2, 2), NN.Padding(top: 1, bottom: 2, left: 1, right: 2), NN.Pair(1, 1)),
            ([1, 3, 33, 47], 2, 5, NN.Pair(2, 2), NN.Padding(0, 0), NN.Pair(1, 1)),
        ]
        for (k, c) in cases.enumerated() {
            let ch = c.x[1], x = randomTensor(c.x, seed: 60 + UInt64(k))
            let w = randomTensor([ch * c.mult, 1, c.k, c.k], seed: 70 + UInt64(k)), b = randomTensor([ch * c.mult], seed: 80 + UInt64(k))
            func run(direct: Bool) -> [Tensor] {
                DepthwiseConv.enabled = direct
                defer { DepthwiseConv.enabled = true }
                let xs = x.copy(), ws = w.copy(), bs = b.copy()
                for t in [xs, ws, bs] { t.requiresGrad = true }
                let y = NN.conv2d(xs, weight: ws, bias: bs, stride: c.stride, padding: c.pad, dilation: c.dilation, groups: ch)
                (y * randomTensor(y.shape, seed: 90 + UInt64(k))).sum().backward()
                return [y.detached(), xs.grad!, ws.grad!, bs.grad!]
            }
            let direct = run(direct: true), gemm = run(direct: false)
            for (i, what) in ["output", "input grad", "weight grad", "bias grad"].enumerated() {
                assertClose(direct[i], gemm[i], tol: 1e-5, "case \(k) \(what)")
            }
            // Inference runs the same kernel with the clamp fused.
            let fused = NN.conv2d(x, weight: w, bias: b, stride: c.stride, padding: c.pad, dilation: c.dilation, groups: ch, clamp: .relu6)
            assertClose(fused, direct[0].relu6(), tol: 1e-6, "case \(k) fused relu6")
        }
    }

    func testConvOnlyInputNeedsGradient() {
        // Frozen weights (guidance through a fixed network): only the input gets a gradient.
        let x = randomTensor([1, 2, 5, 5], seed: 8), w = randomTensor([3, 2, 3, 3], seed: 9)
        let g = valueAndGradient(at: x) { NN.conv2d($0, weight: w, padding: 1).summed(toShape: []) }.gradient
        XCTAssertEqual(g.shape, x.shape)
        XCTAssertNil(w.grad)
    }

    func testConvRecordsNothingInInference() {
        let y = NN.conv2d(randomTensor([1, 2, 5, 5]), weight: randomTensor([3, 2, 3, 3]), padding: 1)
        XCTAssertNil(y.gradFn)
    }

    // MARK: conv_transpose2d

    static func convT(_ t: [Tensor], _ p: [Int]) -> Tensor {
        NN.convTranspose2d(t[0], weight: t[1], bias: p[9] == 1 ? t[2] : nil, stride: NN.Pair(p[0], p[1]),
                           padding: NN.Padding(p[2], p[3]), outputPadding: NN.Pair(p[4], p[5]),
                           dilation: NN.Pair(p[6], p[7]), groups: p[8])
    }

    func testConvTranspose2dMatchesPyTorch() throws {
        for (name, bias) in [("convt_stride2", true), ("convt_groups_dil", true), ("convt_4x4_up", false), ("convt_dil_opad", false),
                             ("convt_wide", true)] {
            try checkFixture(name, inputs: bias ? ["x", "w", "b"] : ["x", "w"], Self.convT)
        }
    }

    func testConvTranspose2dGradientsMatchFiniteDifferences() {
        let x = randomTensor([2, 4, 3, 4], seed: 10), w = randomTensor([4, 1, 3, 3], seed: 11), b = randomTensor([2], seed: 12)
        assertGradientsMatchFiniteDifferences([x, w, b]) { t in
            NN.convTranspose2d(t[0], weight: t[1], bias: t[2], stride: 2, padding: 1, outputPadding: NN.Pair(1, 0), groups: 2)
        }
    }

    // MARK: pooling

    func testMaxPoolMatchesPyTorch() throws {
        for name in ["maxpool_k3s2p1", "maxpool_k2", "maxpool_dil2_rect"] {
            try checkFixture(name, inputs: ["x"]) { t, p in
                NN.maxPool2d(t[0], kernel: NN.Pair(p[0], p[1]), stride: NN.Pair(p[2], p[3]), padding: NN.Pair(p[4], p[5]),
                             dilation: NN.Pair(p[6], p[7]))
            }
        }
    }

    /// Values spaced 0.1 apart in shuffled order: no ties within ±eps, so the argmax is stable.
    func distinctValues(_ shape: [Int], seed: UInt64) -> Tensor {
        let n = shape.reduce(1, *)
        let keys = randomTensor([n], seed: seed).values
        let order = (0..<n).sorted { keys[$0] < keys[$1] }
        var v = [Float](repeating: 0, count: n)
        for (rank, i) in order.enumerated() { v[i] = Float(rank) * 0.1 - Float(n) * 0.05 }
        return Tensor(shape: shape, values: v)
    }

    func testPoolingGradientsMatchFiniteDifferences() {
        assertGradientsMatchFiniteDifferences([distinctValues([2, 2, 7, 6], seed: 13)]) { t in
            NN.maxPool2d(t[0], kernel: 3, stride: 2, padding: 1)
        }
        assertGradientsMatchFiniteDifferences([randomTensor([1, 2, 7, 6], seed: 14)]) { t in
            NN.avgPool2d(t[0], kernel: NN.Pair(3, 2), stride: NN.Pair(2, 1), padding: 1, countIncludePad: false)
        }
        assertGradientsMatchFiniteDifferences([randomTensor([1, 2, 7, 6], seed: 15)]) { t in
            NN.adaptiveAvgPool2d(t[0], outputSize: NN.Pair(3, 4))
        }
    }

    func testAvgPoolMatchesPyTorch() throws {
        for name in ["avgpool_k3s2p1", "avgpool_rect_nopad"] {
            try checkFixture(name, inputs: ["x"]) { t, p in
                NN.avgPool2d(t[0], kernel: NN.Pair(p[0], p[1]), stride: NN.Pair(p[2], p[3]), padding: NN.Pair(p[4], p[5]),
                             countIncludePad: p[6] == 1)
            }
        }
    }

    func testAdaptiveAvgPoolAndAreaMatchPyTorch() throws {
        for name in ["adaptive_down", "adaptive_up"] {
            try checkFixture(name, inputs: ["x"]) { t, p in NN.adaptiveAvgPool2d(t[0], outputSize: NN.Pair(p[0], p[1])) }
        }
        try checkFixture("adaptive_global", inputs: ["x"]) { t, _ in NN.globalAvgPool2d(t[0]) }
        try checkFixture("area_resize", inputs: ["x"]) { t, p in NN.resizeArea(t[0], size: NN.Pair(p[0], p[1])) }
    }

    // MARK: padding

    static func pad(_ t: [Tensor], _ p: [Int]) -> Tensor {
        let mode: NN.PadMode = p[4] == 0 ? .constant(0.5) : p[4] == 1 ? .reflect : .replicate
        return NN.pad(t[0], NN.Padding(top: p[0], bottom: p[1], left: p[2], right: p[3]), mode: mode)
    }

    func testPaddingMatchesPyTorch() throws {
        for name in ["pad_constant", "pad_reflect", "pad_replicate"] {
            try checkFixture(name, inputs: ["x"], Self.pad)
        }
    }

    func testPaddingGradientsMatchFiniteDifferences() {
        for mode in [NN.PadMode.constant(1), .reflect, .replicate] {
            assertGradientsMatchFiniteDifferences([randomTensor([1, 2, 4, 5], seed: 16)]) { t in
                NN.pad(t[0], NN.Padding(top: 2, bottom: 1, left: 3, right: 1), mode: mode)
            }
        }
    }

    // MARK: resampling

    static func resize(_ t: [Tensor], _ p: [Int]) -> Tensor {
        let size = NN.Pair(p[4], p[5])
        if p[0] == 0 {
            return p[2] == 1 ? NN.upsampleNearest(t[0], scale: p[3]) : NN.upsampleNearest(t[0], size: size)
        }
        return p[2] == 1 ? NN.upsampleBilinear(t[0], scale: p[3], alignCorners: p[1] == 1)
                         : NN.upsampleBilinear(t[0], size: size, alignCorners: p[1] == 1)
    }

    func testResamplingMatchesPyTorch() throws {
        for name in ["nearest_x2", "nearest_x3", "nearest_x7", "nearest_size", "nearest_down",
                     "bilinear_x2", "bilinear_x3", "bilinear_size_align", "bilinear_size", "bilinear_down", "bilinear_align_one"] {
            try checkFixture(name, inputs: ["x"], Self.resize)
        }
    }

    func testResamplingGradientsMatchFiniteDifferences() {
        let x = randomTensor([1, 2, 4, 5], seed: 17)
        assertGradientsMatchFiniteDifferences([x]) { t in NN.upsampleNearest(t[0], size: NN.Pair(7, 3)) }
        assertGradientsMatchFiniteDifferences([x]) { t in NN.upsampleBilinear(t[0], size: NN.Pair(7, 9), alignCorners: false) }
        assertGradientsMatchFiniteDifferences([x]) { t in NN.upsampleBilinear(t[0], size: NN.Pair(3, 8), alignCorners: true) }
    }

    // MARK: geometry

    func testGridSampleMatchesPyTorch() throws {
        for name in ["grid_zeros", "grid_border", "grid_zeros_align", "grid_border_align"] {
            try checkFixture(name, inputs: ["x", "grid"]) { t, p in
                NN.gridSample(t[0], grid: t[1], padding: p[0] == 0 ? .zeros : .border, alignCorners: p[1] == 1)
            }
        }
    }

    func testAffineGridAndCropMatchPyTorch() throws {
        for name in ["affine", "affine_align"] {
            try checkFixture(name, inputs: ["theta"]) { t, p in
                NN.affineGrid(t[0], size: NN.Pair(p[0], p[1]), alignCorners: p[2] == 1)
            }
            try checkFixture(name + "_crop", inputs: ["x", "theta"]) { t, p in
                let grid = NN.affineGrid(t[1], size: NN.Pair(p[0], p[1]), alignCorners: p[2] == 1)
                return NN.gridSample(t[0], grid: grid, padding: .zeros, alignCorners: p[2] == 1)
            }
        }
    }

    func testGridSampleOfFarAndNaNCoordinatesIsZero() {
        let x = randomTensor([1, 1, 3, 3], seed: 40)
        let grid = Tensor(shape: [1, 1, 3, 2], values: [1e30, 0, -1e30, .nan, .nan, .nan])
        XCTAssertEqual(NN.gridSample(x, grid: grid, alignCorners: false).values, [0, 0, 0])
    }

    func testGridSampleGradientsMatchFiniteDifferences() {
        // Bilinear sampling has kinks at integer pixel positions; with this seed every grid
        // coordinate lies at least 0.03 pixels from one in both align modes, far beyond eps.
        let x = randomTensor([1, 2, 5, 6], seed: 18)
        let grid = randomTensor([1, 3, 4, 2], seed: 35, scale: 1.1)
        for padding in [NN.GridPadding.zeros, .border] {
            for align in [false, true] {
                assertGradientsMatchFiniteDifferences([x, grid], eps: 1e-3, rtol: 3e-2, atol: 2e-3) { t in
                    NN.gridSample(t[0], grid: t[1], padding: padding, alignCorners: align)
                }
            }
        }
        let theta = Tensor(shape: [1, 2, 3], values: [0.7, 0.1, 0.05, -0.12, 0.8, 0.1])
        assertGradientsMatchFiniteDifferences([x, theta], eps: 1e-3, rtol: 3e-2, atol: 2e-3) { t in
            NN.gridSample(t[0], grid: NN.affineGrid(t[1], size: NN.Pair(4, 3), alignCorners: false), alignCorners: false)
        }
    }
}

/// The fast paths (Winograd, per-tap GEMMs) at sizes where many tiles and chunks add up,
/// against direct sums in double precision.
final class ConvFastPathTests: XCTestCase {
    func direct(_ x: Tensor, _ w: Tensor, pad: Int, dil: Int) -> (y: [Double], gx: [Double], gw: [Double], gy: Tensor) {
        let (c, h, wd) = (x.shape[1], x.shape[2], x.shape[3]), (o, k) = (w.shape[0], w.shape[2])
        let oh = h + 2 * pad - dil * (k - 1), ow = wd + 2 * pad - dil * (k - 1)
        let xv = x.values, wv = w.values
        let gy = randomTensor([1, o, oh, ow], seed: 77)
        let gv = gy.values
        var y = [Double](repeating: 0, count: o * oh * ow), gx = [Double](repeating: 0, count: xv.count)
        var gw = [Double](repeating: 0, count: wv.count)
        for oc in 0..<o {
            for ic in 0..<c {
                for ki in 0..<k {
                    for kj in 0..<k {
                        let wi = ((oc * c + ic) * k + ki) * k + kj, wval = Double(wv[wi])
                        for i in 0..<oh {
                            let ih = i - pad + ki * dil
                            if ih < 0 || ih >= h { continue }
                            for j in 0..<ow {
                                let iw = j - pad + kj * dil
                                if iw < 0 || iw >= wd { continue }
                                let xi = (ic * h + ih) * wd + iw, yi = (oc * oh + i) * ow + j
                                y[yi] += wval * Double(xv[xi])
                                gx[xi] += wval * Double(gv[yi])
                                gw[wi] += Double(xv[xi]) * Double(gv[yi])
                            }
                        }
                    }
                }
            }
        }
        return (y, gx, gw, gy)
    }

    func check(channels: Int, size: Int, pad: Int, dil: Int, tol: Float = 1e-4) {
        let x = randomTensor([1, channels, size, size + 3], seed: 31), w = randomTensor([channels, channels, 3, 3], seed: 32, scale: 0.2)
        let ref = direct(x, w, pad: pad, dil: dil)
        x.requiresGrad = true; w.requiresGrad = true
        let y = NN.conv2d(x, weight: w, padding: NN.Padding(pad, pad), dilation: NN.Pair(dil, dil))
        y.backward(seed: ref.gy)
        let toTensor = { (v: [Double], s: [Int]) in Tensor(shape: s, values: v.map { Float($0) }) }
        assertClose(y, toTensor(ref.y, y.shape), tol: tol, "forward \(channels)ch @\(size) dil \(dil)")
        assertClose(x.grad!, toTensor(ref.gx, x.shape), tol: tol, "d/dx \(channels)ch @\(size) dil \(dil)")
        assertClose(w.grad!, toTensor(ref.gw, w.shape), tol: tol, "d/dw \(channels)ch @\(size) dil \(dil)")
    }

    func testWinogradAtSize() {
        check(channels: 16, size: 33, pad: 1, dil: 1)
        // 20 channels: the weight transform's last group of eight input channels is partial.
        check(channels: 20, size: 33, pad: 1, dil: 1)
        // Chunks of 3 tile rows: many chunks, the last one partial.
        let saved = Winograd3x3.chunkFloats
        Winograd3x3.chunkFloats = 3 * 16 * 32 * 18
        defer { Winograd3x3.chunkFloats = saved }
        check(channels: 16, size: 33, pad: 1, dil: 1)
    }

    /// F(4×4, 3×3), taken here from 64 pixels on to keep the double-precision reference quick:
    /// outputs 66×69 (padding 1) and 68×71 (padding 0, so the input gradient's conv pads by 2)
    /// end in partial tiles on both edges; then in jobs of one tile row. Its error is a few 1e-7
    /// of the scale here, so 1e-5 still catches a wrong transform coefficient.
    func testWinogradF4AtSize() {
        Winograd4x4.$minSide.withValue(64) { checkWinogradF4AtSize() }
    }

    private func checkWinogradF4AtSize() {
        for (size, pad) in [(66, 1), (70, 0)] {
            let geo = ConvGeometry(channels: 16, height: size, width: size + 3, kh: 3, kw: 3, stride: 1,
                                   padding: NN.Padding(pad, pad), dilation: 1)
            XCTAssertTrue(Winograd4x4.applies(geo, groups: 1, outChannels: 16), "F(4×4) should take \(size) px, padding \(pad)")
            check(channels: 16, size: size, pad: pad, dil: 1, tol: 1e-5)
        }
        let saved = Winograd4x4.chunkFloats
        Winograd4x4.chunkFloats = 36 * 32 * 18
        defer { Winograd4x4.chunkFloats = saved }
        check(channels: 16, size: 66, pad: 1, dil: 1, tol: 1e-5)
    }

    func testPerTapGEMMAtSize() { check(channels: 16, size: 33, pad: 2, dil: 2) }

    /// The per-tap input gradient's weight transpose with groups and an output count per group
    /// that is not a multiple of its 16-channel tiles (2 groups of 16 in, 20 out).
    func testPerTapGEMMGroupedInputGradient() {
        let x = randomTensor([1, 32, 6, 7], seed: 51), w = randomTensor([40, 16, 5, 5], seed: 52, scale: 0.1)
        assertGradientsMatchFiniteDifferences([x], samples: 48) { t in NN.conv2d(t[0], weight: w, padding: 2, groups: 2) }
    }

    /// The direct 1×1 kernel: short last pixel columns (15 and 1 pixels) and output channel
    /// counts that take every mix of register blocks (6, 4 and single rows), against a double-precision
    /// loop; then its fused clamp.
    func testPointwiseDirect() {
        // 7×9 ends on a 15-pixel column, 7×7 on a 1-pixel one (the 8-wide variant).
        for (k, (o, side)) in [(7, 9), (8, 9), (11, 7), (28, 9), (32, 7)].enumerated() {
            let seed = UInt64(41 + 3 * k), p = 7 * side
            let x = randomTensor([2, 19, 7, side], seed: seed), w = randomTensor([o, 19, 1, 1], seed: seed + 1)
            let b = randomTensor([o], seed: seed + 2)
            let xv = x.values, wv = w.values, bv = b.values
            var ref = [Float](repeating: 0, count: 2 * o * p)
            for n in 0..<2 {
                for j in 0..<o {
                    for i in 0..<p {
                        var acc = Double(bv[j])
                        for c in 0..<19 { acc += Double(wv[j * 19 + c]) * Double(xv[(n * 19 + c) * p + i]) }
                        ref[(n * o + j) * p + i] = Float(acc)
                    }
                }
            }
            let expected = Tensor(shape: [2, o, 7, side], values: ref)
            assertClose(NN.conv2d(x, weight: w, bias: b), expected, "pointwise forward, \(o) outputs")
            assertClose(NN.conv2d(x, weight: w), expected - b.reshaped([1, o, 1, 1]), "pointwise without bias, \(o) outputs")
            assertClose(NN.conv2d(x, weight: w, bias: b, clamp: .relu6), expected.relu6(), "pointwise + relu6, \(o) outputs")
            // With a tape the clamp is recorded as its own op, with the same value.
            x.requiresGrad = true
            let y = NN.conv2d(x, weight: w, bias: b, clamp: .relu)
            assertClose(y, expected.relu(), "pointwise + relu, recorded")
            XCTAssertNotNil(y.gradFn)
        }
    }

    /// Few-input-channel convs (a network's RGB layer) read their column rows straight from the
    /// padded, phase-split input planes: strides 1–3, dilation, asymmetric padding, row tails,
    /// against a double-precision loop.
    func testGatheredSmallInputConv() {
        typealias Case = (x: [Int], o: Int, k: Int, stride: Int, pad: NN.Padding, dil: Int)
        let cases: [Case] = [
            ([2, 3, 20, 21], 16, 3, 2, NN.Padding(top: 0, bottom: 1, left: 0, right: 1), 1),
            ([1, 3, 32, 37], 24, 5, 2, NN.Padding(top: 1, bottom: 2, left: 1, right: 2), 1),
            ([1, 1, 19, 40], 7, 3, 1, NN.Padding(1, 1), 1),
            ([1, 4, 23, 30], 11, 3, 1, NN.Padding(2, 2), 2),
            ([1, 2, 30, 50], 6, 4, 3, NN.Padding(top: 0, bottom: 2, left: 3, right: 0), 1),
            ([1, 64, 10, 10], 8, 2, 2, NN.Padding(0, 0), 1),
        ]
        for (n, c) in cases.enumerated() {
            let x = randomTensor(c.x, seed: 200 + UInt64(n)), w = randomTensor([c.o, c.x[1], c.k, c.k], seed: 210 + UInt64(n))
            let b = randomTensor([c.o], seed: 220 + UInt64(n))
            let (batch, ch, h, wd) = (c.x[0], c.x[1], c.x[2], c.x[3])
            let oh = (h + c.pad.top + c.pad.bottom - c.dil * (c.k - 1) - 1) / c.stride + 1
            let ow = (wd + c.pad.left + c.pad.right - c.dil * (c.k - 1) - 1) / c.stride + 1
            let xv = x.values, wv = w.values, bv = b.values
            var ref = [Float](repeating: 0, count: batch * c.o * oh * ow)
            for s in 0..<batch {
                for o in 0..<c.o {
                    for i in 0..<oh {
                        for j in 0..<ow {
                            var acc = Double(bv[o])
                            for q in 0..<ch {
                                for ki in 0..<c.k {
                                    for kj in 0..<c.k {
                                        let r = i * c.stride - c.pad.top + ki * c.dil, col = j * c.stride - c.pad.left + kj * c.dil
                                        guard r >= 0, r < h, col >= 0, col < wd else { continue }
                                        acc += Double(wv[((o * ch + q) * c.k + ki) * c.k + kj]) * Double(xv[((s * ch + q) * h + r) * wd + col])
                                    }
                                }
                            }
                            ref[((s * c.o + o) * oh + i) * ow + j] = Float(acc)
                        }
                    }
                }
            }
            let expected = Tensor(shape: [batch, c.o, oh, ow], values: ref)
            let y = NN.conv2d(x, weight: w, bias: b, stride: NN.Pair(c.stride, c.stride), padding: c.pad,
                              dilation: NN.Pair(c.dil, c.dil), clamp: .relu6)
            assertClose(y, expected.relu6(), "case \(n)")
        }
    }

    /// A PReLU after the conv, applied as the output is written (1×1 and gathered paths) or in a
    /// pass of its own (the others), against conv then NN.prelu; with a tape, the separate ops.
    func testConvWithPReLU() {
        typealias Case = (x: [Int], o: Int, k: Int, stride: Int, pad: Int, groups: Int)
        let cases: [Case] = [([1, 19, 7, 9], 11, 1, 1, 0, 1), ([1, 3, 20, 21], 16, 3, 2, 1, 1),
                             ([1, 8, 16, 16], 8, 3, 1, 1, 1), ([1, 6, 9, 9], 6, 3, 1, 1, 6),
                             ([1, 4, 64, 64], 1, 3, 1, 1, 1)]  // the few-output-planes path
        for (n, c) in cases.enumerated() {
            let x = randomTensor(c.x, seed: 300 + UInt64(n)), w = randomTensor([c.o, c.x[1] / c.groups, c.k, c.k], seed: 310 + UInt64(n))
            let b = randomTensor([c.o], seed: 320 + UInt64(n)), slopes = randomTensor([c.o], seed: 330 + UInt64(n), scale: 0.3)
            let plain = NN.conv2d(x, weight: w, bias: b, stride: NN.Pair(c.stride, c.stride), padding: NN.Padding(c.pad, c.pad), groups: c.groups)
            let expected = NN.prelu(plain, weight: slopes)
            let fused = NN.conv2d(x, weight: w, bias: b, stride: NN.Pair(c.stride, c.stride), padding: NN.Padding(c.pad, c.pad),
                                  groups: c.groups, prelu: slopes)
            XCTAssertEqual(fused.values, expected.values, "case \(n)")
            let xs = x.copy()
            xs.requiresGrad = true
            let recorded = NN.conv2d(xs, weight: w, bias: b, stride: NN.Pair(c.stride, c.stride), padding: NN.Padding(c.pad, c.pad),
                                     groups: c.groups, prelu: slopes)
            XCTAssertEqual(recorded.values, expected.values, "case \(n), recorded")
            XCTAssertNotNil(recorded.gradFn)
        }
    }

    /// Two output planes from five channels at 64×67: the per-channel depthwise-and-sum path.
    func testFewOutputPlanes() {
        let x = randomTensor([1, 5, 64, 67], seed: 48), w = randomTensor([2, 5, 3, 3], seed: 49, scale: 0.3)
        let ref = direct(x, w, pad: 1, dil: 1)
        assertClose(NN.conv2d(x, weight: w, padding: 1), Tensor(shape: [1, 2, 64, 67], values: ref.y.map { Float($0) }), "2 planes")
    }

    /// The inference-only 2×2/2 max pool against the general (recording) one, NaN included.
    func testMaxPool2x2FastPath() {
        let x = randomTensor([2, 3, 6, 10], seed: 47)
        x.data[13] = .nan
        let fast = NN.maxPool2d(x, kernel: 2)
        x.requiresGrad = true
        let general = NN.maxPool2d(x, kernel: 2)
        XCTAssertNil(fast.gradFn)
        XCTAssertNotNil(general.gradFn)
        XCTAssertEqual(fast.values.map { $0.isNaN }, general.values.map { $0.isNaN })
        XCTAssertEqual(fast.values.filter { !$0.isNaN }, general.values.filter { !$0.isNaN })
        XCTAssertTrue(fast.values[1].isNaN)  // x[0, 0, 1, 3] is in output (0, 1)
    }

    func testDepthwiseFusedClamp() {
        let x = randomTensor([1, 5, 9, 11], seed: 44), w = randomTensor([5, 1, 3, 3], seed: 45), b = randomTensor([5], seed: 46)
        for stride in [1, 2] {
            let plain = NN.conv2d(x, weight: w, bias: b, stride: NN.Pair(stride, stride), padding: 1, groups: 5)
            let clamp = NN.Clamp(low: -0.5, high: 0.5)
            assertClose(NN.conv2d(x, weight: w, bias: b, stride: NN.Pair(stride, stride), padding: 1, groups: 5, clamp: clamp),
                        plain.clamped(min: -0.5, max: 0.5), "depthwise stride \(stride) + clamp")
        }
    }
}

final class LowPassGradientTests: XCTestCase {
    /// Forward the input itself; backward the seed blurred by a normalised Gaussian per plane:
    /// a constant seed stays constant (borders included), an impulse spreads into the kernel
    /// (summing to one away from the border), each plane on its own; σ = 0 passes it through.
    func testForwardIsIdentityAndTheGradientIsBlurred() {
        let x = randomTensor([2, 3, 9, 11], seed: 5)
        x.requiresGrad = true
        let y = NN.lowPassGradient(x, sigma: 1.2)
        XCTAssertEqual(y.values, x.values)
        y.backward(seed: Tensor(shape: x.shape, repeating: 0.5))
        for g in x.grad!.values { XCTAssertEqual(g, 0.5, accuracy: 1e-6) }

        // 17×19 planes: every pixel the impulse reaches has its whole kernel inside.
        let z = randomTensor([1, 2, 17, 19], seed: 6)
        z.requiresGrad = true
        let plane = 17 * 19
        var seed = [Float](repeating: 0, count: 2 * plane)
        seed[8 * 19 + 9] = 1  // plane 0, centre
        NN.lowPassGradient(z, sigma: 1.2).backward(seed: Tensor(shape: z.shape, values: seed))
        let g = z.grad!.values
        XCTAssertEqual(g[..<plane].reduce(0, +), 1, accuracy: 1e-5)
        XCTAssertEqual(g[plane...].reduce(0, +), 0, "planes stay apart")
        let k = { (d: Int) in Float(exp(-Double(d * d) / (2 * 1.44))) }
        let norm = (-4...4).map(k).reduce(0, +)
        XCTAssertEqual(g[8 * 19 + 9], 1 / (norm * norm), accuracy: 1e-6)
        XCTAssertEqual(g[7 * 19 + 11], k(1) * k(2) / (norm * norm), accuracy: 1e-6)
        XCTAssertFalse(g.contains { $0.isNaN })

        let w = randomTensor([1, 1, 4, 4], seed: 7)
        w.requiresGrad = true
        let s = randomTensor([1, 1, 4, 4], seed: 8)
        NN.lowPassGradient(w, sigma: 0).backward(seed: s)
        XCTAssertEqual(w.grad!.values, s.values)
    }
}
