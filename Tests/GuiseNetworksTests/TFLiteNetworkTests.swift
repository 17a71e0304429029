import Foundation
import XCTest
import GuiseFormats
@testable import GuiseTensor
@testable import GuiseFormats
@testable import GuiseNetworks
import GuiseTestSupport

/// Parity with LiteRT on the inputs Tools/make_fixtures_face.py made from astronaut.png.
final class TFLiteNetworkTests: XCTestCase {
    /// The model's float input, rebuilt from the stored uint8 image exactly as the script did.
    func input(_ fx: SafeTensorsFile) throws -> Tensor {
        let u8 = try fx.tensor("input_u8")
        let zeroToOne = fx.metadata["range"] == "0..1"
        return Tensor(shape: u8.shape, values: u8.values.map { zeroToOne ? $0 * Float(1.0 / 255.0) : $0 / 127.5 - 1 })
    }

    func checkParity(_ name: String, tol: Float = 1e-3) throws {
        let fx = try fixture("tflite_\(name)")
        let net = try TFLiteNetwork(path: modelPath("\(name).tflite"))
        let outs = try Autograd.noGrad { try net([try input(fx)]) }
        for (n, y) in zip(net.outputNames, outs) {
            let e = try fx.tensor("out/\(n)")
            assertClose(y, e, tol: tol, "\(name) output \(n)")
        }
    }

    func testFaceDetectionShortRange() throws { try checkParity("face_detection_short_range") }
    func testFaceDetectionFullRangeSparse() throws { try checkParity("face_detection_full_range_sparse") }
    func testFaceLandmark() throws { try checkParity("face_landmark") }
    func testIrisLandmark() throws { try checkParity("iris_landmark") }
    func testSelfieSegmentation() throws { try checkParity("selfie_segmentation") }
    func testPoseDetection() throws { try checkParity("pose_detection") }
    func testPoseLandmarkFull() throws { try checkParity("pose_landmark_full") }

    /// Inference runs fused steps (PADs folded into convs and adds, activations into adds);
    /// with a tape every op runs on its own. Both must compute the same sums, and the load must
    /// actually have fused something in each network that has the patterns.
    func testFusedInferenceMatchesUnfusedOps() throws {
        let expectFusion = ["face_detection_short_range", "face_detection_full_range_sparse", "face_landmark",
                            "iris_landmark", "pose_detection", "pose_landmark_full"]
        for name in expectFusion + ["selfie_segmentation"] {
            let fx = try fixture("tflite_\(name)")
            let net = try TFLiteNetwork(path: modelPath("\(name).tflite"))
            let x = try input(fx)
            let fused = try Autograd.noGrad { try net([x]) }
            let leaf = x.copy()
            leaf.requiresGrad = true
            let separate = try net([leaf])
            for (k, (a, b)) in zip(fused, separate).enumerated() {
                assertClose(a, b.detached(), tol: 1e-6, "\(name) output \(k), fused vs separate ops")
            }
            if expectFusion.contains(name) { XCTAssertGreaterThan(net.fusedOperators, 0, "\(name): nothing fused") }
        }
        // An absorbed op's output is never stored, and fetching it says so.
        let model = try TFLiteModel(path: modelPath("face_detection_short_range.tflite"))
        let g = model.mainGraph
        let pad = try XCTUnwrap(g.operators.first { model.opName($0) == "PAD" })
        let net = try TFLiteNetwork(model: model)
        let fx = try fixture("tflite_face_detection_short_range")
        XCTAssertThrowsError(try net([try input(fx)], fetching: [g.tensors[pad.outputs[0]].name])) { e in
            XCTAssertTrue("\(e)".contains("never stored"), "\(e)")
        }
    }

    func testBatchOfTwoMatchesSingles() throws {
        let fx = try fixture("tflite_face_detection_short_range")
        let net = try TFLiteNetwork(path: modelPath("face_detection_short_range.tflite"))
        let x = try input(fx)
        let both = Tensor.concat([x, x.scaled(0.5)], dim: 0)
        let y = try net([both])[0], y0 = try net([x])[0], y1 = try net([x.scaled(0.5)])[0]
        assertClose(y, Tensor.concat([y0, y1], dim: 0), tol: 1e-5, "batched regressors")
    }

    /// 12×12 patches at the corners, edges and centre, where SAME padding and pooling borders
    /// differ. Aligned with the gradient's signs, a patch's difference stands well above float32
    /// rounding even at a step of 3e-5, which BlazeFace's dense ReLU kinks need (at 1e-3 its
    /// differences are still tens of percent away from their limit).
    func directions(side: Int, seed: UInt64, patch: Int = 12) -> [Direction] {
        let c = side / 2 - patch / 2, e = side - patch
        func at(_ r: Int, _ c: Int) -> (Int, Int) { (min(max(r, 0), e), min(max(c, 0), e)) }
        let corners = [(0, 0), (0, e), (e, 0), (e, e), (0, c), (c, 0), (c, c), at(c - 20, c + 10), at(c + 15, c - 25), (e, c)]
        return corners.enumerated().map { k, p in
            signDirection(patchIndices(width: side, channels: 3, rows: p.0..<(p.0 + patch), cols: p.1..<(p.1 + patch)),
                          seed: seed + UInt64(k))
        }
    }

    func testShortRangeDetectorGradient() throws {
        let fx = try fixture("tflite_face_detection_short_range")
        let net = try TFLiteNetwork(path: modelPath("face_detection_short_range.tflite"))
        checkDirectionalGradients(try input(fx), directions: directions(side: 128, seed: 11), eps: 3e-5, rtol: 1e-2,
                                  minUsable: 6, floor: 1, alignWithGradient: true) { t in
            let o = try! net([t])
            return Tensor.concat([o[0].reshaped([-1]), o[1].reshaped([-1])], dim: 0)
        }
    }

    /// Also covers DENSIFY'd weights, DEPTH_TO_SPACE and bilinear resizing. Its differences at
    /// ε and ε/2 spread by about 1 %, so the bound is 2 %.
    func testFullRangeDetectorGradient() throws {
        let fx = try fixture("tflite_face_detection_full_range_sparse")
        let net = try TFLiteNetwork(path: modelPath("face_detection_full_range_sparse.tflite"))
        checkDirectionalGradients(try input(fx), directions: directions(side: 192, seed: 31), eps: 3e-5, rtol: 2e-2,
                                  minUsable: 6, floor: 1, alignWithGradient: true) { t in
            let o = try! net([t])
            return Tensor.concat([o[0].reshaped([-1]), o[1].reshaped([-1])], dim: 0)
        }
    }

    /// The iris network carries the gaze loss. Its kinks sit closer together than BlazeFace's, so
    /// ε stays at 1e-5, where the loss's float32 rounding (~2e-5 on L ≈ −254) puts ~2 of noise
    /// on a difference at ε/2: on 12×12 patches (signal 90–460) that was up to 1.4 %, so a 2 % bound
    /// there could be crossed by a mere change of summation order in the depthwise kernel. 24×24 patches collect 500–1700; measured against the stored step every
    /// difference at ε/2 lies within 0.2 % of autodiff and within 0.6 % of the one at ε. Scaling
    /// the backward of the PReLUs, of all depthwise convs or of only the 2×2 ones by 1.05 fails
    /// 9–10 of the 10 directions, by 1.7× the 1 % bound or more.
    func testIrisLandmarkGradient() throws {
        let fx = try fixture("tflite_iris_landmark")
        let net = try TFLiteNetwork(path: modelPath("iris_landmark.tflite"))
        checkDirectionalGradients(try input(fx), directions: directions(side: 64, seed: 51, patch: 24), eps: 1e-5, rtol: 1e-2,
                                  minUsable: 8, floor: 1, alignWithGradient: true) { t in
            Tensor.concat(try! net([t]).map { $0.reshaped([-1]) }, dim: 0)
        }
    }

    /// Several outputs as one vector, each scaled so that its share of the input gradient is
    /// comparable; otherwise the largest head drowns the others in L = Σ f(x)·r.
    func weighted(_ outputs: [Tensor], _ weights: [Float]) -> Tensor {
        Tensor.concat(zip(outputs, weights).map { $0.reshaped([-1]).scaled($1) }, dim: 0)
    }

    /// FaceMesh: the 1404 landmark coordinates and the presence logit, weighted ×100 so that its
    /// Σ|∂L/∂x| (4.6e4) matches the landmarks' (3.4e4). PReLU kinks are mild, but on 12×12 and
    /// 24×24 patches rounding noise (~1e-4 on L ≈ 740, ~5 on a difference at ε = 1e-5) was
    /// 1–2 % of a patch's signal, and one 24×24 patch sat 1.1–2.2 % off at every ε from 2e-5 to
    /// 3e-4 because a max pool is within float32 reach of a tie there (its one-sided differences
    /// disagree by 15 % down to ε = 3e-6). Larger ε is no cure: kinks put 24×24 patches up to
    /// 1.7 % off at 1e-4 and 9 % at 1e-3. 96×96 patches (signal 6e3–1.5e4) shrink both: measured
    /// against the stored step, differences at ε/2 lie within 0.21 % of autodiff and within
    /// 0.36 % of those at ε, under the 1 % bound. Scaling one op's backward by 1.05 fails 10/10
    /// directions for the first conv, a trunk PReLU, or the first block's depthwise or 1×1 conv
    /// (by 3.8–4.9 %), for the second max pool or channel PAD (2.3–2.8 %), a 6×6 depthwise conv
    /// (#112, 1.3–2.1 %) or the presence head's conv (#206, 2.4–4.1 %), and 9/10 for the
    /// landmark head's last PReLU (#203).
    func testFaceLandmarkGradient() throws {
        let fx = try fixture("tflite_face_landmark")
        let net = try TFLiteNetwork(path: modelPath("face_landmark.tflite"))
        checkDirectionalGradients(try input(fx), directions: directions(side: 192, seed: 71, patch: 96), eps: 1e-5, rtol: 1e-2,
                                  minUsable: 8, floor: 1, alignWithGradient: true) { t in
            self.weighted(try! net([t]), [1, 100])
        }
    }

    /// The selfie mask's logits, fetched before its final LOGISTIC: the sigmoid saturates over
    /// most of the image (outputs 0.0 and 1.0 exactly), where its gradient vanishes. ReLUs and
    /// hard-swishes make this the kinkiest network here: the difference's error shrinks linearly
    /// with ε (one 128×128 patch: 4.4 % at 1e-4, 1.6 % at 5e-6, 0.4 % at 1.25e-6), so ε is
    /// 2.5e-6 (1/1600 of an 8-bit step), and 128×128 patches (signal 3e6–6e6) keep rounding
    /// noise small at that step. Differences at ε/2 lie within 0.43 % of autodiff and within
    /// 0.54 % of those at ε. Scaling one op's backward by 1.05 fails 10/10 directions for the
    /// transpose conv, the first hard-swish or any of the three bilinear resizes (1.5–4.9 %),
    /// 9/10 for a mid-network depthwise conv or squeeze-excite MUL, 7/10 for the last
    /// hard-swish. The squeeze-excite gates' own path (average pool → convs → LOGISTIC) carries
    /// little of the input gradient: scaling all ten gates' backward by 1.05 fails only 2/10
    /// (1.15 %), by 1.25 all 10.
    func testSelfieSegmentationGradient() throws {
        let fx = try fixture("tflite_selfie_segmentation")
        let model = try TFLiteModel(path: modelPath("selfie_segmentation.tflite"))
        let g = model.mainGraph
        let last = try XCTUnwrap(g.operators.first { $0.outputs.contains(g.outputs[0]) })
        XCTAssertEqual(model.opName(last), "LOGISTIC")
        let logits = g.tensors[last.inputs[0]].name
        let net = try TFLiteNetwork(model: model)
        checkDirectionalGradients(try input(fx), directions: directions(side: 256, seed: 91, patch: 128), eps: 2.5e-6, rtol: 1e-2,
                                  minUsable: 8, floor: 1, alignWithGradient: true) { t in
            try! net([t], fetching: [logits])[0]
        }
    }

    /// The pose detector: box regressors and score logits, weighted ×4 so that the scores carry
    /// half as much of Σ|∂L/∂x| as the boxes (3.4e6 against 6.1e6; unweighted, a seventh).
    /// ReLU6 everywhere, DENSIFY'd weights, and DEPTH_TO_SPACE and bilinear upsampling in its
    /// feature pyramid. On 48×48 patches near-kinks
    /// left several differences 0.5–0.8 % off at every ε from 2e-5 down to 5e-6; on 112×112
    /// patches (signal 1e6–2.4e6) differences at ε/2 lie within 0.56 % of autodiff and within
    /// 0.28 % of those at ε. Scaling one op's backward by 1.05 fails 10/10 directions for the
    /// input PAD, a stride-2 5×5 depthwise conv, either bilinear resize, the stride-16 and
    /// stride-8 DEPTH_TO_SPACE and the box CONCATENATION (1.1–4.9 %), 9/10 for the score
    /// CONCATENATION. The stride-32 DEPTH_TO_SPACE (#199) feeds only the 294 coarsest anchors,
    /// whose share of the gradient is too small to see: even ×1.5 passes.
    func testPoseDetectionGradient() throws {
        let fx = try fixture("tflite_pose_detection")
        let net = try TFLiteNetwork(path: modelPath("pose_detection.tflite"))
        checkDirectionalGradients(try input(fx), directions: directions(side: 224, seed: 111, patch: 112), eps: 1e-5, rtol: 1e-2,
                                  minUsable: 8, floor: 1, alignWithGradient: true) { t in
            self.weighted(try! net([t]), [1, 4])
        }
    }

    /// The pose landmark network's 39 landmarks (x, y, z, visibility, presence), its main output,
    /// checked on its own: in a loss shared with the other heads it nearly cancels along their
    /// joint gradient (scaling its head's backward by 1.05 then went unseen). At this input the
    /// differences through it sit 0.5–0.95 % below autodiff at every ε from 2.5e-6 down to
    /// 6.25e-7, with one-sided differences disagreeing by as much: some ReLU6 or max-pool unit of
    /// the trunk is within float32 reach of its kink. It is the point, not the gradient: with the
    /// input dithered by ±0.002 the same directions lie within 0.26 % (by ±0.01, within 0.8 %
    /// but above autodiff), and a 2×2 conv 288→195 like the head's matches an exact difference
    /// to 1e-7. So the bound is 1.5 %; measured, differences at ε/2 lie within 0.95 % of
    /// autodiff and within 0.33 % of those at ε. Scaling one op's backward by 1.05 fails 10/10
    /// directions for the head's conv or RESHAPE, any trunk op (input PAD, first conv, first
    /// depthwise conv, last ADD; 4.9–5.7 %) and the 8×8 max pool (2.2–3.0 %), 9/10 for the 4×4
    /// max pool; with a depthwise conv in a 2×2 residual branch (#300) it stays within 1.3 % and
    /// passes.
    func testPoseLandmarkGradient() throws {
        let fx = try fixture("tflite_pose_landmark_full")
        let net = try TFLiteNetwork(path: modelPath("pose_landmark_full.tflite"))
        checkDirectionalGradients(try input(fx), directions: directions(side: 256, seed: 131, patch: 160), eps: 2.5e-6, rtol: 1.5e-2,
                                  minUsable: 8, floor: 1, alignWithGradient: true) { t in
            try! net([t], fetching: ["Identity"])[0]
        }
    }

    /// The pose landmark network's other heads: world landmarks, the 64×64×39 heatmaps (the only
    /// head behind the decoder's bilinear upsampling and skip ADDs) and the pose-flag logit,
    /// fetched before its LOGISTIC. Weighted 300, 0.25 and 100, each carries 4.7e5–5.6e5 of
    /// Σ|∂L/∂x|. The segmentation head is left out: its logits reach −1650 and the high-resolution ReLU6
    /// decoder feeding them is so steep that differences through it stay 4–60 % off at every ε
    /// from 1e-5 to 1e-6, at this input and dithered ones alike (kinks denser than any step
    /// float32 can take); testPoseSegmentationHeadOpGradients checks its linear ops instead.
    /// The heatmaps' kink error shrinks linearly with ε (−1.3 % at 2.5e-6, −0.7 % at 6.25e-7 on
    /// the worst 192×192 patch), hence ε = 1.25e-6. Differences at ε/2 lie within 0.38 % of
    /// autodiff and within 0.47 % of those at ε. Scaling one op's backward by 1.05 fails 10/10
    /// directions for the heatmap conv, 9/10 for the world head's RESHAPE, the 32→64 and 16→32
    /// resizes and the skip ADDs, 8/10 for the flag conv, 4/10 for the 8→16 resize (0.8–2.5 %).
    func testPoseAuxiliaryHeadsGradient() throws {
        let fx = try fixture("tflite_pose_landmark_full")
        let net = try TFLiteNetwork(path: modelPath("pose_landmark_full.tflite"))
        XCTAssertEqual(net.outputNames, ["Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4"])
        let flag = "model_1/model/conv_poseflag/BiasAdd;model_1/model/conv_poseflag/Conv2D;"
            + "model_1/model/conv_poseflag/BiasAdd/ReadVariableOp/resource1"
        checkDirectionalGradients(try input(fx), directions: directions(side: 256, seed: 151, patch: 192), eps: 1.25e-6, rtol: 1e-2,
                                  minUsable: 8, floor: 1, alignWithGradient: true) { t in
            self.weighted(try! net([t], fetching: ["Identity_4", "Identity_3", flag]), [300, 0.25, 100])
        }
    }

    /// The pose segmentation head's linear ops, at the shapes they run at in pose_landmark_full
    /// (operators #193–#230): 3×3 depthwise convs on 64²×48, 128²×8 and 256²×8, 1×1 convs 48→8
    /// and 8→8, half-pixel bilinear upsampling 64→128→256, and the final 3×3 conv 8→1, whose
    /// forward takes the engine's segmentation-head path. Their ReLU6s are elementwise clamps.
    /// A linear op's difference is exact at any step, so a step of 1 along the gradient's signs
    /// leaves only float32 rounding: measured errors are at most 5e-10 of the difference, and
    /// scaling any of these ops' backward by 1.0001 fails it against the 1e-5 bound.
    func testPoseSegmentationHeadOpGradients() {
        var s: UInt64 = 0x9E3779B97F4A7C15
        func random(_ n: Int) -> [Float] {
            (0..<n).map { _ in s ^= s << 13; s ^= s >> 7; s ^= s << 17; return Float(s >> 40) / Float(1 << 24) * 2 - 1 }
        }
        func check(_ what: String, _ shape: [Int], _ f: (Tensor) -> Tensor) {
            let x = Tensor(shape: shape, values: random(shape.reduce(1, *)))
            let n = Autograd.noGrad { f(x) }.count
            let r = random(n)
            let g = vectorJacobianProduct(at: x, seed: Tensor(shape: [n], values: r)) { f($0).reshaped([-1]) }.gradient.values
            let v: [Float] = g.map { $0 < 0 ? -1 : 1 }
            let up = Autograd.noGrad { f(Tensor(shape: shape, values: zip(x.values, v).map { $0 + $1 })) }.values
            let down = Autograd.noGrad { f(Tensor(shape: shape, values: zip(x.values, v).map { $0 - $1 })) }.values
            var difference = 0.0, autodiff = 0.0
            for i in 0..<n { difference += Double(r[i]) * (Double(up[i]) - Double(down[i])) / 2 }
            for i in 0..<g.count { autodiff += Double(g[i]) * Double(v[i]) }
            XCTAssertLessThanOrEqual(abs(autodiff - difference), 1e-5 * abs(difference), "\(what): autodiff \(autodiff) vs difference \(difference)")
        }
        func conv(_ cin: Int, _ cout: Int, side: Int, kernel k: Int, depthwise: Bool) {
            let groups = depthwise ? cin : 1
            let w = Tensor(shape: [cout, cin / groups, k, k], values: random(cout * cin / groups * k * k))
            let b = Tensor(shape: [cout], values: random(cout))
            let pad = NN.Padding(top: k / 2, bottom: k / 2, left: k / 2, right: k / 2)
            check("\(depthwise ? "depthwise " : "")conv \(cin)→\(cout) \(k)×\(k) on \(side)²", [1, cin, side, side]) {
                NN.conv2d($0, weight: w, bias: b, padding: pad, groups: groups)
            }
        }
        conv(48, 48, side: 64, kernel: 3, depthwise: true)
        conv(48, 8, side: 64, kernel: 1, depthwise: false)
        for side in [128, 256] {
            conv(8, 8, side: side, kernel: 3, depthwise: true)
            conv(8, 8, side: side, kernel: 1, depthwise: false)
        }
        conv(8, 1, side: 256, kernel: 3, depthwise: false)
        for side in [64, 128] {
            check("bilinear ×2 upsampling of 8×\(side)²", [1, 8, side, side]) {
                NN.upsampleBilinear($0, size: NN.Pair(2 * side, 2 * side), alignCorners: false)
            }
        }
    }

    /// The direct depthwise kernel and the GEMM paths it replaced give the iris network the same
    /// outputs (to ~1e-7 of their scale) and the same input gradient, so its finite-difference
    /// check measures the gradient, not which conv kernel ran.
    func testIrisDepthwisePathsAgree() throws {
        let fx = try fixture("tflite_iris_landmark")
        let net = try TFLiteNetwork(path: modelPath("iris_landmark.tflite"))
        let x = try input(fx)
        func run(direct: Bool) -> (Tensor, Tensor) {
            DepthwiseConv.enabled = direct
            defer { DepthwiseConv.enabled = true }
            let f = { (t: Tensor) in Tensor.concat(try! net([t]).map { $0.reshaped([-1]) }, dim: 0) }
            let n = Autograd.noGrad { f(x) }.count
            let seed = Tensor(shape: [n], values: (0..<n).map { Float(($0 * 7919) % 13) - 6 })
            return vectorJacobianProduct(at: x, seed: seed, f)
        }
        let (yd, gd) = run(direct: true), (yg, gg) = run(direct: false)
        assertClose(yd, yg, tol: 1e-5, "iris outputs, direct vs GEMM depthwise")
        assertClose(gd, gg, tol: 1e-5, "iris input gradient, direct vs GEMM depthwise")
    }

    /// Intermediate tensors can be fetched by name, e.g. the selfie mask's logits before its sigmoid.
    func testFetchingIntermediateLogits() throws {
        let fx = try fixture("tflite_selfie_segmentation")
        let model = try TFLiteModel(path: modelPath("selfie_segmentation.tflite"))
        let g = model.mainGraph
        let last = try XCTUnwrap(g.operators.first { $0.outputs.contains(g.outputs[0]) })
        XCTAssertEqual(model.opName(last), "LOGISTIC")
        let net = try TFLiteNetwork(model: model)
        let x = try input(fx)
        let logits = try net([x], fetching: [g.tensors[last.inputs[0]].name])[0]
        assertClose(logits.sigmoid(), try fx.tensor("out/\(net.outputNames[0])"), tol: 1e-3, "sigmoid of fetched logits")
        XCTAssertThrowsError(try net([x], fetching: ["no such tensor"]))
    }

    /// A builtin op we don't run (the first operator code patched to SOFTMAX) is named at load.
    func testUnsupportedBuiltinOpIsNamedAtLoad() throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: modelPath("face_detection_short_range.tflite"))))
        try bytes.withUnsafeMutableBytes { raw in
            let fb = FlatBuffer(bytes: UnsafeRawBufferPointer(raw), path: "patched")
            let code = try XCTUnwrap(try fb.root().tables(1, "operator_codes").first)
            let softmax: Int32 = 25
            if let at = try code.field(0, size: 1) { raw[at] = UInt8(softmax) }
            if let at = try code.field(3, size: 4) { raw.storeBytes(of: softmax.littleEndian, toByteOffset: at, as: Int32.self) }
        }
        try bytes.withUnsafeBytes { raw in
            let model = try TFLiteModel(bytes: raw, path: "patched.tflite")
            XCTAssertThrowsError(try TFLiteNetwork(model: model)) { e in
                XCTAssert("\(e)".contains("unsupported TFLite op SOFTMAX (operator #"), "\(e)")
            }
        }
    }

    /// So is a custom op other than MediaPipe's transpose convolution.
    func testUnknownCustomOpIsNamedAtLoad() throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: modelPath("selfie_segmentation.tflite")))
        let name = Data("Convolution2DTransposeBias".utf8)
        let range = try XCTUnwrap(data.range(of: name))
        data[range.upperBound - 1] = UInt8(ascii: "X")
        try data.withUnsafeBytes { raw in
            let model = try TFLiteModel(bytes: raw, path: "patched.tflite")
            XCTAssertThrowsError(try TFLiteNetwork(model: model)) { e in
                XCTAssert("\(e)".contains("unsupported TFLite op Convolution2DTransposeBiaX"), "\(e)")
            }
        }
    }

    func testWrongInputShapeIsAnError() throws {
        let net = try TFLiteNetwork(path: modelPath("iris_landmark.tflite"))
        XCTAssertThrowsError(try net([Tensor(zeros: [1, 32, 32, 3])])) { e in
            XCTAssert("\(e)".contains("must have shape [1, 64, 64, 3]"), "\(e)")
        }
    }
}
