import Foundation
import XCTest
@testable import GuiseFormats
import GuiseTensor
@testable import GuiseNetworks
import GuiseTestSupport

/// ArcFace IR-SE (DiffFace's Arcface.tar layout) and insightface's iresnet against the float64
/// PyTorch references of Tools/make_fixtures_arcface.py.
final class ArcFaceTests: XCTestCase {
    /// out within 1e-4 and grad_x within 1e-3 of their scales, for the fixture's x and seed.
    func checkParity(_ net: ArcFaceNetwork, _ io: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let fx = try fixture(io)
        let x = try fx.tensor("x"), seed = try fx.tensor("seed")
        let (out, grad) = try vectorJacobianProduct(at: x, seed: seed) { try net($0) }
        assertClose(out, try fx.tensor("out"), tol: 1e-4, "\(io) out", file: file, line: line)
        assertClose(grad, try fx.tensor("grad_x"), tol: 1e-3, "\(io) grad_x", file: file, line: line)
        // Inference without a tape fuses the PReLUs into the convs: the same values.
        let plain = try Autograd.noGrad { try net(x) }
        assertClose(plain, try fx.tensor("out"), tol: 1e-4, "\(io) out without a tape", file: file, line: line)
    }

    func testArcfaceTarMatchesPyTorch() throws {
        let net = try ArcFaceNetwork(path: try fixturePath("arcface_irse.tar"))
        XCTAssertEqual(net.layout, .irse)
        XCTAssertEqual(net.blocks, [2, 1, 1, 1])
        XCTAssertEqual(net.widths, [16, 16, 16, 32])
        XCTAssertTrue(net.squeezeExcitation)
        XCTAssertEqual(net.embeddingSize, 8)
        XCTAssertTrue(net.settingsFromPickle)
        XCTAssertEqual(net.pickledClass, "models.models.ResNet")
        XCTAssertTrue(net.description.hasPrefix("ArcFace IR-SE (SimSwap/DiffFace"), net.description)
        try checkParity(net, "arcface_irse_io")
    }

    /// Written on a GPU (storages on cuda:0) in the legacy format, as older Arcface.tar files are.
    func testLegacyFileFromAGPUMatchesPyTorch() throws {
        let net = try ArcFaceNetwork(path: try fixturePath("arcface_irse_cuda.tar"))
        XCTAssertTrue(net.settingsFromPickle)
        try checkParity(net, "arcface_irse_io")
    }

    func testStateDictAndSafetensorsMatchPyTorch() throws {
        let pth = try fixturePath("arcface_irse_state.pth")
        let net = try ArcFaceNetwork(path: pth)
        XCTAssertFalse(net.settingsFromPickle)
        XCTAssertNil(net.pickledClass)
        try checkParity(net, "arcface_irse_io")

        let st = temporaryPath("arcface.safetensors")
        defer { try? FileManager.default.removeItem(atPath: st) }
        try SafeTensorsWriter.write(stored: try Checkpoint(path: pth).tensors, to: st)
        try checkParity(try ArcFaceNetwork(path: st), "arcface_irse_io")
    }

    func testInsightfaceIResNetMatchesPyTorch() throws {
        let net = try ArcFaceNetwork(path: try fixturePath("arcface_iresnet.pth"))
        XCTAssertEqual(net.layout, .iresnet)
        XCTAssertEqual(net.blocks, [1, 2, 1, 1])
        XCTAssertFalse(net.squeezeExcitation)
        XCTAssertTrue(net.description.hasPrefix("ArcFace IResNet (insightface iresnet"), net.description)
        try checkParity(net, "arcface_iresnet_io")
    }

    /// What the loader reads from the pickled model: the records DiffFace's file holds.
    func testPickledModelRecords() throws {
        let file = try fixturePath("arcface_irse.tar")
        let dp = try XCTUnwrap(try TorchCheckpoint.pickledModule(path: file))
        XCTAssertEqual(dp.className, "torch.nn.parallel.data_parallel.DataParallel")
        let model = try XCTUnwrap(dp["module"])
        XCTAssertEqual(model.className, "models.models.ResNet")
        XCTAssertTrue(model.training, "pickled mid-training, and run in inference mode all the same")
        let conv1 = try XCTUnwrap(model["conv1"])
        XCTAssertEqual(conv1.attributes["padding"], .ints([0, 0]))
        XCTAssertEqual(conv1.attributes["kernel_size"], .ints([3, 3]))
        XCTAssertEqual(conv1.parameters.map(\.name), ["weight", "bias"])
        XCTAssertNil(conv1.parameters[1].tensor, "bias=False is pickled as None")
        XCTAssertEqual(model["layer2"]?["0"]?["conv2"]?.attributes["stride"], .ints([2, 2]))
        XCTAssertEqual(model["layer1"]?["0"]?.attributes["use_se"], .bool(true))
        XCTAssertEqual(model["maxpool"]?.attributes["kernel_size"], .int(2))
        // The training head beside it is another module the network never reads.
        let metric = try XCTUnwrap(try TorchCheckpoint.pickledModule(path: file, select: "metric_fc"))
        XCTAssertEqual(metric["module"]?.parameters.first?.tensor?.shape, [40, 8])

        // The flattened records name the tensors exactly as the generic state-dict reader does.
        let (tensors, _) = try model.flattened()
        XCTAssertEqual(tensors.map(\.0), try Checkpoint(path: file).names)
        // A file with a state dict holds no module.
        XCTAssertNil(try TorchCheckpoint.pickledModule(path: try fixturePath("arcface_irse_state.pth")))
    }

    /// Layer settings come from the pickled records, not the defaults: the same weights with a
    /// stem recorded as padded by 1 compute something else (the map still ends 7×7), padded by 2
    /// give a 112×112 face a larger map than the fc takes.
    func testPickledSettingsAreHonoured() throws {
        let c = try Checkpoint(path: try fixturePath("arcface_irse_state.pth"))
        var weights: [String: Tensor] = [:]
        for (n, t) in c.tensors { weights[n] = t.toTensor() }
        func conv(padding: [Int]) -> TorchModule {
            TorchModule(module: "torch.nn.modules.conv", name: "Conv2d",
                        attributes: ["kernel_size": .ints([3, 3]), "stride": .ints([1, 1]), "padding": .ints(padding),
                                     "dilation": .ints([1, 1]), "groups": .int(1), "padding_mode": .string("zeros")],
                        parameters: [], buffers: [], children: [])
        }
        let fx = try fixture("arcface_irse_io")
        let x = try fx.tensor("x"), expected = try fx.tensor("out")
        let unpadded = try ArcFaceNetwork(path: "m", weights: weights, modules: ["conv1": conv(padding: [0, 0])], pickledClass: nil)
        assertClose(try Autograd.noGrad { try unpadded(x) }, expected, tol: 1e-4, "recorded padding 0")
        let padded = try ArcFaceNetwork(path: "m", weights: weights, modules: ["conv1": conv(padding: [1, 1])], pickledClass: nil)
        let other = try Autograd.noGrad { try padded(x) }
        XCTAssertGreaterThan(closeness(other.values, expected.values, tol: 0).error, 1e-2, "padding 1 must change the embedding")
        XCTAssertThrowsError(try ArcFaceNetwork(path: "m", weights: weights, modules: ["conv1": conv(padding: [2, 2])], pickledClass: nil)) { e in
            XCTAssertTrue("\(e)".contains("fc takes 1568 features, but a 112×112 face gives 32×8×8"), "\(e)")
        }
        XCTAssertThrowsError(try ArcFaceNetwork(path: "m", weights: weights, modules: ["conv1": conv(padding: [0, 1])], pickledClass: nil)) { e in
            XCTAssertTrue("\(e)".contains("conv1.padding is (0, 1)"), "\(e)")
        }
        let pool = TorchModule(module: "torch.nn.modules.pooling", name: "AvgPool2d", attributes: [:], parameters: [], buffers: [], children: [])
        XCTAssertThrowsError(try ArcFaceNetwork(path: "m", weights: weights, modules: ["maxpool": pool], pickledClass: nil)) { e in
            XCTAssertTrue("\(e)".contains("maxpool is a torch.nn.modules.pooling.AvgPool2d, where ArcFace has MaxPool2d"), "\(e)")
        }
    }

    func testOtherPickledModelIsRefusedInOneLine() throws {
        // A whole pickled DataParallel(SmallNet): a model, but not an ArcFace one.
        XCTAssertThrowsError(try ArcFaceNetwork(path: try fixturePath("pickled_module.pt"))) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("the pickled model is __main__.SmallNet, which is not an ArcFace ResNet"), text)
            XCTAssertFalse(text.contains("\n"), text)
        }
        XCTAssertThrowsError(try ArcFaceNetwork(path: try fixturePath("arcface_module_loop.pt"))) { e in
            XCTAssertTrue("\(e)".contains("a pickled module contains itself"), "\(e)")
        }
        XCTAssertThrowsError(try ArcFaceNetwork(path: try fixturePath("adm_tiny.pt"))) { e in
            XCTAssertTrue("\(e)".contains("its tensors are not an ArcFace ResNet"), "\(e)")
        }
    }

    /// A state dict missing a tensor, or with one too many, fails at load naming it.
    func testIncompleteOrExtraWeightsAreRefused() throws {
        let c = try Checkpoint(path: try fixturePath("arcface_irse_state.pth"))
        var weights: [String: Tensor] = [:]
        for (n, t) in c.tensors { weights[n] = t.toTensor() }
        var missing = weights
        missing["layer3.0.se.fc.2.bias"] = nil
        XCTAssertThrowsError(try ArcFaceNetwork(path: "m", weights: missing, modules: nil, pickledClass: nil)) { e in
            XCTAssertTrue("\(e)".contains("layer3.0.se.fc.2.bias"), "\(e)")
        }
        var extra = weights
        extra["layer3.0.surplus"] = Tensor(zeros: [2])
        XCTAssertThrowsError(try ArcFaceNetwork(path: "m", weights: extra, modules: nil, pickledClass: nil)) { e in
            XCTAssertTrue("\(e)".contains("layer3.0.surplus"), "\(e)")
        }
        var shallow = weights
        for n in weights.keys where n.hasPrefix("layer1.1.") { shallow[n] = nil }
        let net = try ArcFaceNetwork(path: "m", weights: shallow, modules: nil, pickledClass: nil)
        XCTAssertEqual(net.blocks, [1, 1, 1, 1], "depth comes from the tensors")
    }

    func testWrongInputShapeIsAnError() throws {
        let net = try ArcFaceNetwork(path: try fixturePath("arcface_irse.tar"))
        XCTAssertThrowsError(try net(Tensor(zeros: [1, 3, 128, 128]))) { e in
            XCTAssertTrue("\(e)".contains("must be [N, 3, 112, 112]"), "\(e)")
        }
    }

    /// What every switching op decided at one input: for each PReLU, per element, whether the
    /// input was positive; for each max pool, per window, which element was the maximum.
    struct Switches: Equatable {
        var decisions: [[UInt8]] = []
    }

    func switches(_ net: ArcFaceNetwork, _ x: Tensor) throws -> Switches {
        var s = Switches()
        _ = try Autograd.noGrad {
            try net.forward(x, observe: { site, t in
                let v = t.contiguous().values
                switch site {
                case .prelu:
                    s.decisions.append(v.map { $0 > 0 ? 1 : 0 })
                case .maxPool(let k):
                    let (planes, h, w) = (t.shape[0] * t.shape[1], t.shape[2], t.shape[3])
                    var picks: [UInt8] = []
                    for p in 0..<planes { for i in 0..<(h / k) { for j in 0..<(w / k) {
                        var best = 0, top = -Float.infinity
                        for a in 0..<k { for b in 0..<k where v[(p * h + i * k + a) * w + j * k + b] > top {
                            top = v[(p * h + i * k + a) * w + j * k + b]; best = a * k + b
                        } }
                        picks.append(UInt8(best))
                    } } }
                    s.decisions.append(picks)
                }
                return nil
            })
        }
        return s
    }

    /// The network with every switch held as it was at some input: PReLUs multiply by 1 or their
    /// slope where that input was positive or not, pools take the element that was the maximum
    /// there. It equals the network wherever no switch flips, and is smooth everywhere.
    func frozen(_ net: ArcFaceNetwork, _ held: Switches, _ x: Tensor) throws -> Tensor {
        var k = 0
        return try Autograd.noGrad {
            try net.forward(x, observe: { site, t in
                let v = t.contiguous().values, d = held.decisions[k]
                k += 1
                switch site {
                case .prelu(let slopes):
                    let a = slopes.values, c = t.shape[1], inner = t.count / (t.shape[0] * c)
                    return Tensor(shape: t.shape, values: (0..<v.count).map { i in d[i] == 1 ? v[i] : v[i] * a[(i / inner) % c] })
                case .maxPool(let ks):
                    let (n, c, h, w) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
                    let (oh, ow) = (h / ks, w / ks)
                    var out = [Float](repeating: 0, count: n * c * oh * ow)
                    for p in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
                        let o = (p * oh + i) * ow + j, pick = Int(d[o])
                        out[o] = v[(p * h + i * ks + pick / ks) * w + j * ks + pick % ks]
                    } } }
                    return Tensor(shape: [n, c, oh, ow], values: out)
                }
            })
        }
    }

    /// The input gradient against central differences. Where the differences are taken along
    /// the network itself, only steps along which no PReLU input changes sign and no pool window
    /// changes its maximum count (checked, not assumed): elsewhere differences are meaningless.
    /// Such steps must be small, so float32 noise limits that check to about 1e-2. The tight
    /// check differentiates the network with its switches held as at the point (equal to it
    /// there, smooth everywhere), with steps large enough to measure to 1e-3.
    func testInputGradientMatchesFiniteDifferences() throws {
        for (file, io) in [("arcface_irse.tar", "arcface_irse_io"), ("arcface_iresnet.pth", "arcface_iresnet_io")] {
            let net = try ArcFaceNetwork(path: try fixturePath(file))
            let x = try fixture(io).tensor("x").narrow(0..<1).contiguous()
            let seed = randomTensor([1, net.embeddingSize], seed: 21)
            let (out, g) = try vectorJacobianProduct(at: x, seed: seed) { try net($0) }
            let gv = g.values
            XCTAssertTrue(gv.allSatisfy(\.isFinite), "gradient of \(file) not finite")
            let held = try switches(net, x)
            XCTAssertEqual(try frozen(net, held, x).values, out.values, "\(file): the held network differs at its own point")
            func loss(_ y: Tensor) -> Double { zip(y.values, seed.values).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

            /// x ± eps along ±1 over `idx`, signs following the gradient's so the signal is Σ|∂L/∂x|;
            /// returns the points and ∇L·(up − down) for the steps as stored.
            func step(_ idx: [Int], _ eps: Float) -> (Tensor, Tensor, Double, Double) {
                let up = x.copy(), down = x.copy()
                var along = 0.0, signal = 0.0
                for i in idx {
                    let s: Float = gv[i] < 0 ? -1 : 1
                    up.data[i] = x.data[i] + eps * s
                    down.data[i] = x.data[i] - eps * s
                    along += Double(gv[i]) * Double(up.data[i] - down.data[i])
                    signal += Double(abs(gv[i])) * Double(2 * eps)
                }
                return (up, down, along, signal)
            }
            func patch(_ r: Int, _ c: Int, _ side: Int, channels: Range<Int> = 0..<3) -> [Int] {
                var idx: [Int] = []
                for ch in channels { for i in r..<(r + side) { for j in c..<(c + side) { idx.append((ch * 112 + i) * 112 + j) } } }
                return idx
            }

            // Held switches: the whole face, halves, one channel, patches, a corner.
            let all = Array(0..<(3 * 112 * 112))
            var directions = [all, patch(0, 0, 56), patch(56, 56, 56), patch(0, 0, 112, channels: 1..<2), patch(100, 100, 12)]
            for r in stride(from: 8, to: 100, by: 30) { for c in stride(from: 10, to: 100, by: 30) { directions.append(patch(r, c, 8)) } }
            for (k, idx) in directions.enumerated() {
                let (up, down, along, signal) = step(idx, 1e-2)
                let fd = loss(try frozen(net, held, up)) - loss(try frozen(net, held, down))
                XCTAssertLessThanOrEqual(abs(fd - along), 1e-3 * max(abs(fd), signal),
                                         "\(file) direction \(k) (\(idx.count) coordinates): autodiff \(along) vs difference \(fd) per 2ε")
            }

            // The network itself, at steps that cross no switching point.
            var usable = 0, tried = 0
            for r in stride(from: 4, to: 100, by: 12) {
                for c in stride(from: 6, to: 100, by: 23) {
                    tried += 1
                    let (up, down, along, signal) = step(patch(r, c, 8), 5e-4)
                    guard try switches(net, up) == held, try switches(net, down) == held else { continue }
                    usable += 1
                    let fd = loss(try Autograd.noGrad { try net(up) }) - loss(try Autograd.noGrad { try net(down) })
                    XCTAssertLessThanOrEqual(abs(fd - along), 1e-2 * max(abs(fd), signal),
                                             "\(file) patch (\(r), \(c)): autodiff \(along) vs difference \(fd) per 2ε")
                }
            }
            XCTAssertGreaterThanOrEqual(usable, 4, "\(file): only \(usable) of \(tried) steps avoided switching points")
        }
    }
}
