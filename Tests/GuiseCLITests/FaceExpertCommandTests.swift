import XCTest
import Foundation
import GuiseTensor
import GuiseFormats
import GuiseTestSupport

/// `guise model info` and `guise model run` on the BiSeNet and EyeNet fixtures of
/// Tools/make_fixtures_parsing.py (checkpoints whose storages say 'cuda:0').
final class FaceExpertCommandTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        XCTAssertNotNil(guiseBinary, "no guise binary; run `swift build --product guise`")
        dir = temporaryPath("experts")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ name: String, _ tensors: [String: Tensor]) throws -> String {
        let path = dir + "/" + name
        try SafeTensorsWriter.write(tensors: tensors, to: path)
        return path
    }

    func testInfoNamesTheArchitecture() throws {
        let parser = try guise(["model", "info", try fixturePath("bisenet_tiny.pt")])
        XCTAssertEqual(parser.status, 0, parser.stderr)
        XCTAssertTrue(parser.stdout.contains("architecture: BiSeNet face parser"), parser.stdout)
        XCTAssertTrue(parser.stdout.contains("5 classes"), parser.stdout)
        let gaze = try guise(["model", "info", "--json", try fixturePath("eyenet_tiny.pt")])
        XCTAssertEqual(gaze.status, 0, gaze.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(gaze.stdout.utf8)) as? [String: Any]
        let architecture = object?["architecture"] as? String ?? ""
        XCTAssertTrue(architecture.hasPrefix("EyeNet gaze network"), gaze.stdout)
        XCTAssertTrue(architecture.contains("2 stacks, 4 features, 3 landmarks"), architecture)
        let other = try guise(["model", "info", try fixturePath("zip_dtypes.pt")])
        XCTAssertEqual(other.status, 0, other.stderr)
        XCTAssertFalse(other.stdout.contains("architecture:"), other.stdout)
    }

    /// out and grad_x as the network library gives them against the PyTorch fixture, for both.
    func testRunWritesOutputAndInputGradient() throws {
        let bisenetIO = try fixture("bisenet_tiny_io")
        let x = try fixtureInput(bisenetIO, [2, 3, 24, 40])
        let inputs = try write("parser-in.safetensors", ["x": x])
        let seed = try write("parser-seed.safetensors", ["seed": fixtureNoise("bisenet_tiny.seed", [2, 5, 24, 40])])
        let out = dir + "/parser-out.safetensors"
        let run = try guise(["model", "run", try fixturePath("bisenet_tiny.pt"), "--inputs", inputs, "--out", out,
                             "--grad-wrt", "x", "--grad-seed", seed, "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("\"kind\" : \"bisenet\""), run.stdout)
        let got = try SafeTensorsFile(path: out)
        assertClose(try got.tensor("out"), try bisenetIO.tensor("out"), tol: 1e-4, "bisenet out")
        assertClose(try got.tensor("grad_x"), try bisenetIO.tensor("grad_x"), tol: 1e-3, "bisenet grad_x")

        let eyeIO = try fixture("eyenet_tiny_io")
        let eye = try fixtureInput(eyeIO, [1, 96, 160]) * 0.5 + 0.5
        let eyeInputs = try write("gaze-in.safetensors", ["x": eye])
        let eyeSeed = try write("gaze-seed.safetensors", ["seed": fixtureNoise("eyenet_tiny.seed", [1, 2])])
        for (flag, sfx) in [([String](), ""), (["--batch-statistics"], "_train")] {
            let eyeOut = dir + "/gaze-out\(sfx).safetensors"
            let r = try guise(["model", "run", try fixturePath("eyenet_tiny.pt"), "--inputs", eyeInputs, "--out", eyeOut,
                               "--grad-wrt", "x", "--grad-seed", eyeSeed] + flag)
            XCTAssertEqual(r.status, 0, r.stderr)
            let g = try SafeTensorsFile(path: eyeOut)
            assertClose(try g.tensor("out"), try eyeIO.tensor("gaze" + sfx), tol: 1e-4, "eyenet out\(sfx)")
            assertClose(try g.tensor("grad_x"), try eyeIO.tensor("grad_x" + sfx), tol: 1e-3, "eyenet grad_x\(sfx)")
        }
        let plain = dir + "/gaze-plain.safetensors"
        XCTAssertEqual(try guise(["model", "run", try fixturePath("eyenet_tiny.pt"), "--inputs", eyeInputs, "--out", plain]).status, 0)
        XCTAssertEqual(try SafeTensorsFile(path: plain).names, ["out"])
    }

    /// One `guise: error:` line and no output file for inputs or flags the network cannot take.
    func testMisfitsFailInOneLine() throws {
        let eyeInputs = try write("gaze-in.safetensors", ["x": Tensor(zeros: [1, 96, 160])])
        let wrongShape = try write("wrong.safetensors", ["x": Tensor(zeros: [1, 3, 96, 160])])
        let noX = try write("nox.safetensors", ["image": Tensor(zeros: [1, 96, 160])])
        let out = dir + "/out.safetensors"
        let cases: [([String], String)] = [
            (["model", "run", try fixturePath("eyenet_tiny.pt"), "--inputs", wrongShape], "EyeNet input must be"),
            (["model", "run", try fixturePath("bisenet_tiny.pt"), "--inputs", eyeInputs], "BiSeNet input must be"),
            (["model", "run", try fixturePath("eyenet_tiny.pt"), "--inputs", noX], "needs input x [N,96,160]"),
            (["model", "run", try fixturePath("bisenet_tiny.pt"), "--inputs", wrongShape, "--batch-statistics"], "--batch-statistics"),
        ]
        for (args, mention) in cases {
            let run = try guise(args + ["--out", out])
            XCTAssertNotEqual(run.status, 0, "\(args)")
            XCTAssertEqual(run.stderrLines.count, 1, run.stderr)
            XCTAssertTrue(run.stderr.contains(mention), run.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }
}
