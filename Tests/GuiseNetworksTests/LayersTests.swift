import XCTest
import GuiseTestSupport
import Foundation
import GuiseTensor
import GuiseFormats
import GuiseNetworks

final class LayersTests: XCTestCase {
    private func ramp(_ shape: [Int], _ seed: Int) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<n).map { Float(sin(Double($0 * 5 + seed * 11) * 0.61)) * 2 })
    }

    func testBatchNormIsTheHandComputedAffine() throws {
        let c = 3
        let x = ramp([2, c, 3, 2], 1)
        let mean: [Float] = [0.3, -0.2, 1.1], variance: [Float] = [0.5, 2.0, 0.01]
        let weight: [Float] = [1.5, -0.7, 0.2], bias: [Float] = [0.1, 0.0, -2.0]
        let dict: [String: Tensor] = [
            "bn.running_mean": Tensor(shape: [c], values: mean), "bn.running_var": Tensor(shape: [c], values: variance),
            "bn.weight": Tensor(shape: [c], values: weight), "bn.bias": Tensor(shape: [c], values: bias),
            "bn.num_batches_tracked": Tensor(shape: [], values: [7]),
        ]
        for eps in [Float(1e-5), 1e-3] {
            var w = WeightReader(dict)
            let bn = try BatchNorm2d(&w, "bn", c, eps: eps)
            XCTAssertNoThrow(try w.finish(), "num_batches_tracked is read")
            let y = bn(x)
            XCTAssertEqual(y.shape, x.shape)
            let xv = x.values, yv = y.values
            let inner = 6
            for i in 0..<xv.count {
                let ch = (i / inner) % c
                let want = (Double(xv[i]) - Double(mean[ch])) / (Double(variance[ch]) + Double(eps)).squareRoot()
                    * Double(weight[ch]) + Double(bias[ch])
                XCTAssertFalse(yv[i].isNaN)
                XCTAssertEqual(Double(yv[i]), want, accuracy: 1e-5 * max(1, abs(want)), "eps \(eps) element \(i)")
            }
        }

        var w = WeightReader(dict.filter { !$0.key.hasSuffix("weight") && !$0.key.hasSuffix("bias") })
        let plain = try BatchNorm2d(&w, "bn", c, affine: false)
        let yv = plain(x).values, xv = x.values
        for i in 0..<xv.count {
            let ch = (i / 6) % c
            let want = (Double(xv[i]) - Double(mean[ch])) / (Double(variance[ch]) + 1e-5).squareRoot()
            XCTAssertEqual(Double(yv[i]), want, accuracy: 1e-5 * max(1, abs(want)))
        }
    }

    func testPReLUSlopesPerChannelAndShared() throws {
        let x = ramp([1, 2, 2, 3], 2)
        var w = WeightReader(["a.weight": Tensor(shape: [2], values: [0.25, -0.5]), "b.weight": Tensor(shape: [1], values: [0.1])])
        let perChannel = try PReLU(&w, "a", 2), shared = try PReLU(&w, "b", 1)
        try w.finish()
        let xv = x.values, pv = perChannel(x).values, sv = shared(x).values
        XCTAssertTrue(xv.contains { $0 < 0 } && xv.contains { $0 > 0 })
        for i in 0..<xv.count {
            let slope: Float = i / 6 == 0 ? 0.25 : -0.5
            XCTAssertEqual(pv[i], xv[i] > 0 ? xv[i] : slope * xv[i], accuracy: 1e-6)
            XCTAssertEqual(sv[i], xv[i] > 0 ? xv[i] : 0.1 * xv[i], accuracy: 1e-6)
        }
    }

    func testMissingMisshapenAndLeftoverWeightsAreNamed() throws {
        let c = 4
        var full: [String: Tensor] = [
            "body.0.running_mean": Tensor(zeros: [c]), "body.0.running_var": Tensor(shape: [c], repeating: 1),
            "body.0.weight": Tensor(shape: [c], repeating: 1), "body.0.bias": Tensor(zeros: [c]),
        ]
        var missing = full
        missing["body.0.running_var"] = nil
        var w = WeightReader(missing)
        XCTAssertThrowsError(try BatchNorm2d(&w, "body.0", c)) { e in
            XCTAssertTrue("\(e)".contains("lacks body.0.running_var"), "\(e)")
            XCTAssertFalse("\(e)".contains("\n"))
        }
        var w2 = WeightReader(full)
        XCTAssertThrowsError(try BatchNorm2d(&w2, "body.0", c + 1)) { e in
            XCTAssertTrue("\(e)".contains("body.0.running_mean has shape [4]"), "\(e)")
        }
        var w3 = WeightReader(["fc.weight": Tensor(zeros: [3, 5])])
        XCTAssertThrowsError(try Linear(&w3, "fc", 5, 3)) { e in XCTAssertTrue("\(e)".contains("fc.bias"), "\(e)") }
        var w4 = WeightReader(["fc.weight": Tensor(zeros: [3, 5])])
        XCTAssertNoThrow(try Linear(&w4, "fc", 5, 3, bias: false))
        full["body.1.weight"] = Tensor(zeros: [c])
        var w5 = WeightReader(full)
        _ = try BatchNorm2d(&w5, "body.0", c)
        XCTAssertThrowsError(try w5.finish()) { e in XCTAssertTrue("\(e)".contains("body.1.weight"), "\(e)") }
        var w6 = WeightReader(["c.weight": Tensor(zeros: [8, 3, 3, 3])])
        XCTAssertThrowsError(try Conv2d(&w6, "c", 3, 8, kernel: 3, bias: true)) { e in XCTAssertTrue("\(e)".contains("c.bias"), "\(e)") }
    }

    func testConvWithoutBiasMatchesTheEngineOp() throws {
        let x = ramp([1, 4, 7, 6], 3), k = ramp([6, 2, 3, 3], 4)
        var w = WeightReader(["c.weight": k])
        let conv = try Conv2d(&w, "c", 4, 6, kernel: 3, stride: 2, groups: 2, bias: false)
        XCTAssertEqual(conv(x).values, NN.conv2d(x, weight: k, stride: 2, padding: 1, groups: 2).values)
    }
}

final class ADMLayoutTests: XCTestCase {
    private func fixture(_ name: String, _ ext: String) throws -> String {
        try fixturePath(name + "." + ext)
    }

    /// The layout names every tensor of the reference checkpoints with its shape, and nothing else.
    func testLayoutMatchesTheReferenceCheckpoints() throws {
        for name in ["tiny", "legacy", "class", "id"] {
            let config = try ADMConfig.load(path: try fixture("adm_\(name)", "json"))
            let file = try Checkpoint(path: try fixture("adm_\(name)", "pt"))
            var shapes = file.tensors.mapValues(\.shape)
            let layout = try ADMLayout(config)
            XCTAssertNoThrow(try layout.check(shapes: shapes), name)
            XCTAssertEqual(layout.parameters.map { $0.shape.reduce(1, *) }.reduce(0, +),
                           try ADMUNet(config: config, weights: ADMUNet.stateDict(file)).parameterCount, name)
            XCTAssertEqual(layout.inputBlocks.count, layout.outputBlocks.count, name)
            shapes["middle_block.1.qkv.weight"] = [1, 1, 1]
            XCTAssertThrowsError(try layout.check(shapes: shapes)) { e in
                XCTAssertTrue("\(e)".contains("middle_block.1.qkv.weight"), "\(e)")
            }
        }
    }
}
