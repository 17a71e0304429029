import XCTest
import Foundation
import GuiseTensor
import GuiseFormats
@testable import GuiseNetworks
import GuiseTestSupport

final class ADMTests: XCTestCase {
    static let names = ["tiny", "legacy", "class", "id"]

    func loadModel(_ name: String) throws -> ADMUNet {
        let config = try ADMConfig.load(path: try fixturePath("adm_\(name).json"))
        return try ADMUNet(path: try fixturePath("adm_\(name).pt"), config: config)
    }

    func testForwardAndInputGradientMatchPyTorch() throws {
        for name in Self.names {
            let model = try loadModel(name)
            let io = try fixture("adm_\(name)_io")
            let x = try io.tensor("x"), t = try io.tensor("t")
            let y = io["y"] != nil ? try io.tensor("y") : nil
            let id = io["id"] != nil ? try io.tensor("id") : nil
            let out = try Autograd.noGrad { try model(x, timesteps: t, y: y, id: id) }
            assertClose(out, try io.tensor("out"), tol: 1e-4, "adm_\(name) forward")
            let (_, grad) = try vectorJacobianProduct(at: x, seed: try io.tensor("seed")) { xl in
                try model(xl, timesteps: t, y: y, id: id)
            }
            assertClose(grad, try io.tensor("grad_x"), tol: 1e-3, "adm_\(name) input gradient")
            // Checkpointing recomputes blocks in the backward pass: same values, same gradient.
            model.checkpointing = true
            let (outC, gradC) = try vectorJacobianProduct(at: x, seed: try io.tensor("seed")) { xl in
                try model(xl, timesteps: t, y: y, id: id)
            }
            assertClose(outC, try io.tensor("out"), tol: 1e-4, "adm_\(name) forward, checkpointing")
            assertClose(gradC, try io.tensor("grad_x"), tol: 1e-3, "adm_\(name) input gradient, checkpointing")
            // Only the blocks at the input's full size recompute: the same again.
            model.checkpointMinSide = x.shape[3]
            let (outP, gradP) = try vectorJacobianProduct(at: x, seed: try io.tensor("seed")) { xl in
                try model(xl, timesteps: t, y: y, id: id)
            }
            // And only the output blocks among them.
            model.checkpointInputBlocks = false
            let (outO, gradO) = try vectorJacobianProduct(at: x, seed: try io.tensor("seed")) { xl in
                try model(xl, timesteps: t, y: y, id: id)
            }
            model.checkpointing = false
            model.checkpointMinSide = 0
            model.checkpointInputBlocks = true
            assertClose(outP, try io.tensor("out"), tol: 1e-4, "adm_\(name) forward, full-size blocks checkpointed")
            assertClose(gradP, try io.tensor("grad_x"), tol: 1e-3, "adm_\(name) input gradient, full-size blocks checkpointed")
            assertClose(outO, try io.tensor("out"), tol: 1e-4, "adm_\(name) forward, full-size output blocks checkpointed")
            assertClose(gradO, try io.tensor("grad_x"), tol: 1e-3, "adm_\(name) input gradient, full-size output blocks checkpointed")
            // A batch of one takes its own path through scale-shift norm: same rows as the batch.
            let one = try Autograd.noGrad {
                try model(x.narrow(1..<2).contiguous(), timesteps: t.narrow(1..<2).contiguous(),
                          y: y?.narrow(1..<2).contiguous(), id: id?.narrow(1..<2).contiguous())
            }
            assertClose(one, out.narrow(1..<2).contiguous(), tol: 1e-5, "adm_\(name) batch of one")
        }
    }

    func testConfigStringsAndErrors() throws {
        let c = try ADMConfig.parse(json: Data(#"{"attention_resolutions": "32, 16, 8", "image_size": 256, "num_channels": 256, "learn_sigma": "True", "resblock_updown": true, "num_head_channels": 64, "channel_mult": ""}"#.utf8))
        XCTAssertEqual(c.attentionResolutions, [32, 16, 8])
        XCTAssertEqual(try c.resolvedChannelMult(), [1, 1, 2, 2, 4, 4])
        XCTAssertEqual(c.attentionRates(), [8, 16, 32])
        XCTAssertTrue(c.learnSigma)
        XCTAssertEqual(c.outChannels, 6)
        XCTAssertThrowsError(try ADMConfig.parse(json: Data(#"{"num_chanels": 64}"#.utf8))) { e in
            XCTAssertTrue("\(e)".contains("num_chanels"))
        }
        XCTAssertThrowsError(try ADMConfig.parse(json: Data(#"{"image_size": 48}"#.utf8)))
        XCTAssertThrowsError(try ADMConfig.parse(json: Data(#"{"num_channels": 40, "image_size": 64}"#.utf8)))
        XCTAssertThrowsError(try ADMConfig.parse(json: Data("[1]".utf8)))
    }

    func testMismatchedCheckpointsFailClearly() throws {
        var weights = try ADMUNet.loadStateDict(path: try fixturePath("adm_tiny.pt"))
        let config = try ADMConfig.load(path: try fixturePath("adm_tiny.json"))
        var other = config
        other.useScaleShiftNorm = false
        XCTAssertThrowsError(try ADMUNet(config: other, weights: weights)) { e in
            XCTAssertTrue("\(e)".contains("emb_layers"), "\(e)")
        }
        weights["extra.weight"] = Tensor(zeros: [1])
        XCTAssertThrowsError(try ADMUNet(config: config, weights: weights)) { e in
            XCTAssertTrue("\(e)".contains("extra.weight"), "\(e)")
        }
        weights["extra.weight"] = nil
        weights["out.2.bias"] = nil
        XCTAssertThrowsError(try ADMUNet(config: config, weights: weights)) { e in
            XCTAssertTrue("\(e)".contains("out.2.bias"), "\(e)")
        }
        let model = try loadModel("tiny")
        XCTAssertThrowsError(try model(Tensor(zeros: [1, 3, 31, 31]), timesteps: Tensor(zeros: [1])))
        XCTAssertThrowsError(try model(Tensor(zeros: [1, 3, 32, 32]), timesteps: Tensor(zeros: [2])))
        XCTAssertThrowsError(try model(Tensor(zeros: [1, 3, 32, 32]), timesteps: Tensor(zeros: [1]), y: Tensor(zeros: [1])))
    }
}

final class ADMInferenceTests: XCTestCase {
    func testInferredConfigsMatchTheWrittenOnes() throws {
        for name in ADMTests.names {
            let written = try ADMConfig.load(path: try fixturePath("adm_\(name).json"))
            let file = try Checkpoint(path: try fixturePath("adm_\(name).pt"))
            XCTAssertNotEqual(file.format, .safetensors)
            let shapes = file.tensors.mapValues(\.shape)
            let inferred = try ADMConfig.infer(fromShapes: shapes)
            let c = inferred.config
            XCTAssertEqual(c.numChannels, written.numChannels, name)
            XCTAssertEqual(c.numResBlocks, written.numResBlocks, name)
            XCTAssertEqual(try c.resolvedChannelMult(), try written.resolvedChannelMult(), name)
            XCTAssertEqual(c.attentionRates(), written.attentionRates(), name)
            XCTAssertEqual(c.useScaleShiftNorm, written.useScaleShiftNorm, name)
            XCTAssertEqual(c.resblockUpdown, written.resblockUpdown, name)
            XCTAssertEqual(c.learnSigma, written.learnSigma, name)
            XCTAssertEqual(c.classCond, written.classCond, name)
            if c.classCond { XCTAssertEqual(c.numClasses, written.numClasses, name) }
            XCTAssertEqual(c.idDim, written.idDim, name)
            XCTAssertTrue(inferred.guesses.contains { $0.contains("heads") }, "\(name) must say the heads were guessed")
            XCTAssertTrue(inferred.guesses.contains { $0.contains("use_new_attention_order") })
            // The weights load into the inferred architecture.
            XCTAssertNoThrow(try ADMUNet(config: c, weights: ADMUNet.stateDict(file)), name)
        }
    }

    func testInferenceRejectsOtherFiles() {
        XCTAssertThrowsError(try ADMConfig.infer(fromShapes: ["conv.weight": [3, 3, 3, 3]])) { e in
            XCTAssertTrue("\(e)".contains("not an ADM checkpoint"), "\(e)")
        }
    }
}
