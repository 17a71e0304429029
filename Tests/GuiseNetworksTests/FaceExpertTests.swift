import XCTest
import Foundation
import GuiseTensor
import GuiseFormats
@testable import GuiseNetworks
import GuiseTestSupport

/// Flat NCHW indices of a rectangle of pixels in every channel of sample 0.
func planeIndices(channels: Int, height: Int, width: Int, rows: Range<Int>, cols: Range<Int>) -> [Int] {
    (0..<channels).flatMap { c in rows.flatMap { r in cols.map { c * height * width + r * width + $0 } } }
}

/// BiSeNet (DiffFace's face parser) against Tools/make_fixtures_parsing.py's PyTorch reference.
final class BiSeNetTests: XCTestCase {
    func tiny() throws -> BiSeNet { try BiSeNet(path: try fixturePath("bisenet_tiny.pt")) }

    /// A narrow network from a zip state_dict whose storages say 'cuda:0': all three heads, the
    /// main head alone, and the input gradient of the main head, batch of two at 24×40.
    func testCheckpointSavedOnGPUMatchesPyTorch() throws {
        let net = try tiny()
        XCTAssertEqual(net.classes, 5)
        XCTAssertEqual(net.stageWidths, [4, 4, 8, 8, 16])
        let io = try fixture("bisenet_tiny_io")
        let x = try fixtureInput(io, [2, 3, 24, 40])
        let (out, out16, out32) = try Autograd.noGrad { try net.outputs(x) }
        assertClose(out, try io.tensor("out"), tol: 1e-4, "out")
        assertClose(out16, try io.tensor("out16"), tol: 1e-4, "out16")
        assertClose(out32, try io.tensor("out32"), tol: 1e-4, "out32")
        let main = try Autograd.noGrad { try net(x) }
        XCTAssertEqual(main.values, out.values, "the main head alone is the first output")
        let (value, grad) = try vectorJacobianProduct(at: x, seed: fixtureNoise("bisenet_tiny.seed", [2, 5, 24, 40])) { try net($0) }
        assertClose(value, try io.tensor("out"), tol: 1e-4, "out, taped")
        assertClose(grad, try io.tensor("grad_x"), tol: 1e-3, "grad_x")
    }

    /// The published widths (64…512, 19 classes), weights regenerated from the fixture's recipe.
    func testPublishedWidthsMatchPyTorch() throws {
        let io = try fixture("bisenet_full_io")
        let net = try BiSeNet(weights: try fixtureNoiseWeights(io))
        XCTAssertEqual(net.classes, 19)
        XCTAssertEqual(net.stageWidths, [64, 64, 128, 256, 512])
        let x = try fixtureInput(io, [1, 3, 32, 32])
        let (value, grad) = try vectorJacobianProduct(at: x, seed: fixtureNoise("bisenet_full.seed", [1, 19, 32, 32])) { try net($0) }
        assertClose(value, try io.tensor("out"), tol: 1e-4, "out")
        assertClose(grad, try io.tensor("grad_x"), tol: 1e-3, "grad_x")
        assertClose(try Autograd.noGrad { try net(x) }, try io.tensor("out"), tol: 1e-4, "out, inference")
    }

    /// The input gradient against central differences, along ±1 directions over patches in every
    /// channel; directions whose step crosses a ReLU or max-pool switch are told apart by
    /// disagreeing with the half step, and skipped.
    func testInputGradientMatchesFiniteDifferences() throws {
        let net = try tiny()
        let x = try fixtureInput(try fixture("bisenet_tiny_io"), [2, 3, 24, 40]).narrow(0..<1).contiguous()
        let (h, w) = (24, 40)
        let all = Array(0..<(3 * h * w))
        let dirs = [signDirection(all, seed: 3),
                    signDirection(planeIndices(channels: 3, height: h, width: w, rows: 0..<12, cols: 0..<40), seed: 5),
                    signDirection(planeIndices(channels: 3, height: h, width: w, rows: 4..<20, cols: 8..<32), seed: 7),
                    signDirection(planeIndices(channels: 3, height: h, width: w, rows: 0..<24, cols: 20..<40), seed: 9),
                    signDirection(planeIndices(channels: 1, height: h, width: w, rows: 0..<24, cols: 0..<40), seed: 11),
                    signDirection(all, seed: 13)]
        checkDirectionalGradients(x, directions: dirs, eps: 1e-4, rtol: 1e-2, minUsable: 4, floor: 1e-4,
                                  alignWithGradient: true) { try! net($0) }
    }

    func testOtherFilesAndInputsFailInOneLine() throws {
        XCTAssertThrowsError(try BiSeNet(path: try fixturePath("eyenet_tiny.pt"))) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("not a BiSeNet face parser checkpoint"), m)
            XCTAssertFalse(m.contains("\n"), m)
        }
        XCTAssertThrowsError(try BiSeNet(path: try fixturePath("adm_tiny.pt"))) { e in
            XCTAssertTrue("\(e)".contains("not a BiSeNet"), "\(e)")
        }
        var weights = try Checkpoint(path: try fixturePath("bisenet_tiny.pt")).tensors.mapValues { $0.toTensor() }
        weights["cp.arm16.bn_atten.running_var"] = nil
        XCTAssertThrowsError(try BiSeNet(weights: weights)) { e in
            XCTAssertTrue("\(e)".contains("cp.arm16.bn_atten.running_var"), "\(e)")
        }
        weights["cp.arm16.bn_atten.running_var"] = Tensor(shape: [8], repeating: 1)
        XCTAssertNoThrow(try BiSeNet(weights: weights))
        weights["sp.conv1.conv.weight"] = Tensor(zeros: [4, 3, 7, 7])
        XCTAssertThrowsError(try BiSeNet(weights: weights)) { e in XCTAssertTrue("\(e)".contains("sp.conv1.conv.weight"), "\(e)") }
        weights["sp.conv1.conv.weight"] = nil
        weights["cp.arm32.conv.conv.weight"] = Tensor(zeros: [8, 8, 3, 3])
        XCTAssertThrowsError(try BiSeNet(weights: weights)) { e in XCTAssertTrue("\(e)".contains("cp.arm32.conv.conv.weight"), "\(e)") }
        let net = try tiny()
        XCTAssertThrowsError(try net(Tensor(zeros: [1, 1, 32, 32]))) { e in XCTAssertTrue(e is NetworkError, "\(e)") }
        XCTAssertThrowsError(try net(Tensor(zeros: [3, 32, 32])))
    }
}

/// EyeNet (DiffFace's gaze network) against the same script's reference, in both batch-norm modes.
final class EyeNetTests: XCTestCase {
    func tiny() throws -> EyeNet { try EyeNet(path: try fixturePath("eyenet_tiny.pt")) }

    func input(_ io: SafeTensorsFile) throws -> Tensor { try fixtureInput(io, [1, 96, 160]) * 0.5 + 0.5 }

    func check(_ net: EyeNet, _ io: SafeTensorsFile, x: Tensor, seed: Tensor, heatmaps: Bool) throws {
        for mode in BatchNormStatistics.allCases {
            let sfx = mode == .batch ? "_train" : ""
            let (maps, landmarks, gaze) = try Autograd.noGrad { try net.outputs(x, statistics: mode) }
            XCTAssertEqual(maps.shape, [1, net.nstack, net.nlandmarks, 48, 80])
            if heatmaps && mode == .running {
                let first = maps.slice(dim: 1, start: 0, end: 1).contiguous()
                assertClose(first, try io.tensor("heatmaps"), tol: 1e-4, "heatmaps of the first stack")
            }
            assertClose(landmarks, try io.tensor("landmarks" + sfx), tol: 1e-4, "landmarks \(mode)")
            assertClose(gaze, try io.tensor("gaze" + sfx), tol: 1e-4, "gaze \(mode)")
            let (value, grad) = try vectorJacobianProduct(at: x, seed: seed) { try net($0, statistics: mode) }
            assertClose(value, try io.tensor("gaze" + sfx), tol: 1e-4, "gaze \(mode), taped")
            assertClose(grad, try io.tensor("grad_x" + sfx), tol: 1e-3, "grad_x \(mode)")
        }
    }

    /// A narrow network from a legacy `GazeEstimator.pt`-style dict whose storages are
    /// torch.cuda ones on 'cuda:0'.
    func testCheckpointSavedOnGPUMatchesPyTorch() throws {
        let net = try tiny()
        XCTAssertEqual([net.nstack, net.nfeatures, net.nlandmarks], [2, 4, 3])
        let io = try fixture("eyenet_tiny_io")
        try check(net, io, x: try input(io), seed: fixtureNoise("eyenet_tiny.seed", [1, 2]), heatmaps: true)
    }

    /// GazeEstimator.pt's configuration (3 stacks, 32 features, 34 landmarks) at the published
    /// widths, weights regenerated from the fixture's recipe.
    func testPublishedWidthsMatchPyTorch() throws {
        let io = try fixture("eyenet_full_io")
        let net = try EyeNet(weights: try fixtureNoiseWeights(io))
        XCTAssertEqual([net.nstack, net.nfeatures, net.nlandmarks], [3, 32, 34])
        try check(net, io, x: try input(io), seed: fixtureNoise("eyenet_full.seed", [1, 2]), heatmaps: false)
    }

    /// Central differences at the 24 single pixels where the gaze is most sensitive, with
    /// running statistics. The network has some 300 000 ReLU inputs, centred on zero by its batch
    /// norms, and 40 000 max-pool windows: a step across many pixels crosses switches whatever
    /// its size (in float64, differences over 6×6 patches are off by percents at any step above
    /// 1e-5), so each step here moves few units. With batch statistics every pixel moves every
    /// unit of its channels through the mean and variance, and even single-pixel float64
    /// differences at 1e-3 are off by up to 12 %; that mode's gradient is checked against
    /// PyTorch above and its normalisation against differences below.
    func testInputGradientMatchesFiniteDifferences() throws {
        let net = try tiny()
        let x = try input(try fixture("eyenet_tiny_io"))
        for mode in [BatchNormStatistics.running] {
            var sensitivity = [Float](repeating: 0, count: x.count)
            for k in 0..<2 {
                let seed = Tensor(shape: [1, 2], values: k == 0 ? [1, 0] : [0, 1])
                let g = try vectorJacobianProduct(at: x, seed: seed) { try net($0, statistics: mode) }.gradient.values
                for i in 0..<g.count { sensitivity[i] += abs(g[i]) }
            }
            let top = (0..<x.count).sorted { sensitivity[$0] > sensitivity[$1] }
            let dirs = top.prefix(24).enumerated().map { k, i in signDirection([i], seed: UInt64(3 + 2 * k)) }
            checkDirectionalGradients(x, directions: dirs, eps: 2e-3, rtol: 1e-2, minUsable: 16, floor: 1e-3,
                                      alignWithGradient: true) { try! net($0, statistics: mode) }
        }
    }

    /// Batch statistics over several crops: per channel over N·H·W, as training-mode BatchNorm2d;
    /// differentiable through the statistics.
    func testBatchStatisticsNormOverSeveralSamples() throws {
        let x = randomTensor([3, 2, 4, 5], seed: 4, scale: 2)
        let weight = Tensor(shape: [2], values: [1.5, -0.5]), bias = Tensor(shape: [2], values: [0.25, 1])
        let y = batchStatisticsNorm(x, weight: weight, bias: bias, eps: 1e-5).values
        let v = x.values
        for c in 0..<2 {
            let idx = (0..<3).flatMap { n in (0..<20).map { (n * 2 + c) * 20 + $0 } }
            let mean = idx.reduce(0.0) { $0 + Double(v[$1]) } / 60
            let variance = idx.reduce(0.0) { $0 + pow(Double(v[$1]) - mean, 2) } / 60
            for i in idx {
                let want = (Double(v[i]) - mean) / (variance + 1e-5).squareRoot() * Double(weight.values[c]) + Double(bias.values[c])
                XCTAssertEqual(Double(y[i]), want, accuracy: 1e-5)
            }
        }
        assertGradientsMatchFiniteDifferences([x], eps: 1e-2, rtol: 2e-2, atol: 1e-3) { t in
            batchStatisticsNorm(t[0], weight: weight, bias: bias, eps: 1e-5)
        }
    }

    func testOtherFilesAndInputsFailInOneLine() throws {
        XCTAssertThrowsError(try EyeNet(path: try fixturePath("bisenet_tiny.pt"))) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("not an EyeNet gaze network checkpoint"), m)
            XCTAssertFalse(m.contains("\n"), m)
        }
        var weights = try Checkpoint(path: try fixturePath("eyenet_tiny.pt")).tensors.mapValues { $0.toTensor() }
        weights["gaze_fc1.weight"] = Tensor(zeros: [4, 100])
        XCTAssertThrowsError(try EyeNet(weights: weights)) { e in XCTAssertTrue("\(e)".contains("gaze_fc1.weight"), "\(e)") }
        let net = try tiny()
        XCTAssertThrowsError(try net(Tensor(zeros: [1, 1, 96, 160]))) { e in XCTAssertTrue(e is NetworkError, "\(e)") }
        XCTAssertThrowsError(try net(Tensor(zeros: [1, 96, 128])))
    }
}
