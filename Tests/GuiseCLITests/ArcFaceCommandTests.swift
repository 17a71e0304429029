import XCTest
import Foundation
import GuiseTensor
import GuiseFormats
@testable import GuiseCLI
import GuiseTestSupport

/// `guise model run` and `model info` on the ArcFace fixtures of Tools/make_fixtures_arcface.py.
final class ArcFaceCommandTests: XCTestCase {
    func path(_ name: String) -> String { fixtureDirectory + "/" + name }

    func testModelRunWritesEmbeddingAndGradient() throws {
        for (model, io) in [("arcface_irse.tar", "arcface_irse_io"), ("arcface_irse_cuda.tar", "arcface_irse_io"),
                            ("arcface_irse_state.pth", "arcface_irse_io"), ("arcface_iresnet.pth", "arcface_iresnet_io")] {
            let out = temporaryPath("arcface.safetensors")
            defer { try? FileManager.default.removeItem(atPath: out) }
            // The io fixture holds x and seed, so it serves as both the inputs and the seed file.
            let cmd = try ModelRun.parse([path(model), "--inputs", path(io + ".safetensors"), "--out", out,
                                          "--grad-wrt", "x", "--grad-seed", path(io + ".safetensors"), "--quiet"])
            try cmd.run()
            let got = try SafeTensorsFile(path: out), ref = try fixture(io)
            XCTAssertEqual(got.names.sorted(), ["grad_x", "out"], model)
            assertClose(try got.tensor("out"), try ref.tensor("out"), tol: 1e-4, "\(model) out")
            assertClose(try got.tensor("grad_x"), try ref.tensor("grad_x"), tol: 1e-3, "\(model) grad_x")

            let plain = temporaryPath("arcface-plain.safetensors")
            defer { try? FileManager.default.removeItem(atPath: plain) }
            try ModelRun.parse([path(model), "--inputs", path(io + ".safetensors"), "--out", plain, "--quiet"]).run()
            let only = try SafeTensorsFile(path: plain)
            XCTAssertEqual(only.names, ["out"], model)
            assertClose(try only.tensor("out"), try ref.tensor("out"), tol: 1e-4, "\(model) out without a gradient")
        }
    }

    func testModelRunRefusesWrongInputs() throws {
        let out = temporaryPath("arcface-bad.safetensors")
        // The ADM fixture's inputs have x [N,3,32,32] or similar: not a 112² face.
        XCTAssertThrowsError(try ModelRun.parse([path("arcface_irse.tar"), "--inputs", path("adm_tiny_io.safetensors"),
                                                 "--out", out, "--quiet"]).run()) { e in
            XCTAssertTrue("\(e)".contains("must be [N, 3, 112, 112]"), "\(e)")
        }
        XCTAssertThrowsError(try ModelRun.parse([path("arcface_irse.tar"), "--inputs", path("arcface_irse_state.pth"),
                                                 "--out", out, "--quiet"]).run())
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing written on failure")
    }

    func testInfoNamesTheArchitecture() throws {
        let text = try ModelInfo.report(try Checkpoint(path: path("arcface_irse.tar")), json: false,
                                        architecture: RecognisedNetwork.architecture(path("arcface_irse.tar"), try Checkpoint(path: path("arcface_irse.tar"))))
        XCTAssertTrue(text.contains("architecture: ArcFace IR-SE (SimSwap/DiffFace ResNet of IRBlocks; blocks 2-1-1-1"), text)
        XCTAssertFalse(text.contains("metric_fc"), "the training head is not the model")
        let ir = path("arcface_iresnet.pth"), c = try Checkpoint(path: ir)
        let json = try ModelInfo.report(c, json: true, architecture: RecognisedNetwork.architecture(ir, c))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertTrue((object["architecture"] as? String)?.hasPrefix("ArcFace IResNet (insightface iresnet") ?? false, json)
        // Files of other networks name none.
        let adm = path("adm_tiny.pt")
        XCTAssertNil(RecognisedNetwork.architecture(adm, try Checkpoint(path: adm)))
        XCTAssertFalse(RecognisedNetwork.isArcFace(path("pickled_module.pt")))
    }
}
