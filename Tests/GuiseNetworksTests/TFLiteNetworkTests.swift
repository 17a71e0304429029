import Foundation
import XCTest
import GuiseFormats
@testable import GuiseTensor
@testable import GuiseFormats
@testable import GuiseNetworks

/// Parity with LiteRT on the inputs Tools/make_fixtures_face.py made from astronaut.png.
final class TFLiteNetworkTests: XCTestCase {
    /// The model's float input, rebuilt from the stored uint8 image exactly as the script did.
    func input(_ fx: SafeTensorsFile) throws -> Tensor {
        let u8 = try fx.tensor("input_u8")
        let zeroToOne = fx.metadata["range"] == "0..1"
        return Tensor(shape: u8.shape, values: u8.values.map { zeroToOne ? $0 * Float(1.0 / 255.0) : $0 / 127.5 - 1 })
    }

    func checkParity(_ name: String, tol: Float = 1e-3) throws {
        let fx = try networkFixture("tflite_\(name)")
        let net = try TFLiteNetwork(path: modelPath("\(name).tflite"))
        let outs = try Autograd.noGrad { try net([try input(fx)]) }
        for (n, y) in zip(net.outputNames, outs) {
            let e = try fx.tensor("out/\(n)")
            assertCloseToScale(y, e, tol: tol, "\(name) output \(n)")
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
            let fx = try networkFixture("tflite_\(name)")
            let net = try TFLiteNetwork(path: modelPath("\(name).tflite"))
            let x = try input(fx)
            let fused = try Autograd.noGrad { try net([x]) }
            let leaf = x.copy()
            leaf.requiresGrad = true
            let separate = try net([leaf])
            for (k, (a, b)) in zip(fused, separate).enumerated() {
                assertCloseToScale(a, b.detached(), tol: 1e-6, "\(name) output \(k), fused vs separate ops")
            }
            if expectFusion.contains(name) { XCTAssertGreaterThan(net.fusedOperators, 0, "\(name): nothing fused") }
        }
        // An absorbed op's output is never stored, and fetching it says so.
        let model = try TFLiteModel(path: modelPath("face_detection_short_range.tflite"))
        let g = model.mainGraph
        let pad = try XCTUnwrap(g.operators.first { model.opName($0) == "PAD" })
        let net = try TFLiteNetwork(model: model)
        let fx = try networkFixture("tflite_face_detection_short_range")
        XCTAssertThrowsError(try net([try input(fx)], fetching: [g.tensors[pad.outputs[0]].name])) { e in
            XCTAssertTrue("\(e)".contains("never stored"), "\(e)")
        }
    }

    func testBatchOfTwoMatchesSingles() throws {
        let fx = try networkFixture("tflite_face_detection_short_range")
        let net = try TFLiteNetwork(path: modelPath("face_detection_short_range.tflite"))
        let x = try input(fx)
        let both = Tensor.concat([x, x.scaled(0.5)], dim: 0)
        let y = try net([both])[0], y0 = try net([x])[0], y1 = try net([x.scaled(0.5)])[0]
        assertCloseToScale(y, Tensor.concat([y0, y1], dim: 0), tol: 1e-5, "batched regressors")
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
        let fx = try networkFixture("tflite_face_detection_short_range")
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
        let fx = try networkFixture("tflite_face_detection_full_range_sparse")
        let net = try TFLiteNetwork(path: modelPath("face_detection_full_range_sparse.tflite"))
        checkDirectionalGradients(try input(fx), directions: directions(side: 192, seed: 31), eps: 3e-5, rtol: 2e-2,
                                  minUsable: 6, floor: 1, alignWithGradient: true) { t in
            let o = try! net([t])
            return Tensor.concat([o[0].reshaped([-1]), o[1].reshaped([-1])], dim: 0)
        }
    }

    /// The iris network carries the gaze loss. Its kinks sit closer together than BlazeFace's, so
    /// ε stays at 1e-5, where the loss's float32 rounding (~2e-5 on L ≈ −254) puts ~2 of noise
    /// on a difference at ε/2: on 12×12 patches (signal 90–460) that was up to 1.4 %, as much
    /// as the old 2 % bound, and merely changing the depthwise kernel's summation order tipped
    /// one patch over it. 24×24 patches collect 500–1700; measured against the stored step every
    /// difference at ε/2 lies within 0.2 % of autodiff and within 0.6 % of the one at ε. Scaling
    /// the backward of the PReLUs, of all depthwise convs or of only the 2×2 ones by 1.05 fails
    /// 9–10 of the 10 directions, by 1.7× the 1 % bound or more.
    func testIrisLandmarkGradient() throws {
        let fx = try networkFixture("tflite_iris_landmark")
        let net = try TFLiteNetwork(path: modelPath("iris_landmark.tflite"))
        checkDirectionalGradients(try input(fx), directions: directions(side: 64, seed: 51, patch: 24), eps: 1e-5, rtol: 1e-2,
                                  minUsable: 8, floor: 1, alignWithGradient: true) { t in
            Tensor.concat(try! net([t]).map { $0.reshaped([-1]) }, dim: 0)
        }
    }

    /// The direct depthwise kernel and the GEMM paths it replaced give the iris network the same
    /// outputs (to ~1e-7 of their scale) and the same input gradient, so its finite-difference
    /// check measures the gradient, not which conv kernel ran.
    func testIrisDepthwisePathsAgree() throws {
        let fx = try networkFixture("tflite_iris_landmark")
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
        assertCloseToScale(yd, yg, tol: 1e-5, "iris outputs, direct vs GEMM depthwise")
        assertCloseToScale(gd, gg, tol: 1e-5, "iris input gradient, direct vs GEMM depthwise")
    }

    /// Intermediate tensors can be fetched by name, e.g. the selfie mask's logits before its sigmoid.
    func testFetchingIntermediateLogits() throws {
        let fx = try networkFixture("tflite_selfie_segmentation")
        let model = try TFLiteModel(path: modelPath("selfie_segmentation.tflite"))
        let g = model.mainGraph
        let last = try XCTUnwrap(g.operators.first { $0.outputs.contains(g.outputs[0]) })
        XCTAssertEqual(model.opName(last), "LOGISTIC")
        let net = try TFLiteNetwork(model: model)
        let x = try input(fx)
        let logits = try net([x], fetching: [g.tensors[last.inputs[0]].name])[0]
        assertCloseToScale(logits.sigmoid(), try fx.tensor("out/\(net.outputNames[0])"), tol: 1e-3, "sigmoid of fetched logits")
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
