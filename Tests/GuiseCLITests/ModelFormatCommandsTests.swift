import XCTest
import Foundation
import GuiseFormats
@testable import GuiseCLI
import GuiseTestSupport

/// `guise model info` and `guise model convert` on the checkpoint fixtures of Tools/make_fixtures_formats.py.
final class ModelFormatCommandsTests: XCTestCase {
    func path(_ file: String) -> String { fixtureDirectory + "/" + file }

    var scratch = ""

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.path + "/guise-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: scratch) }

    func testInfoListsEveryTensor() throws {
        let c = try Checkpoint(path: path("pickled_module.pt"))
        let text = try ModelInfo.report(c, json: false)
        XCTAssertTrue(text.contains("format: pytorch-zip\n"), text)
        XCTAssertTrue(text.contains("parameters: 147\n"), text)
        XCTAssertTrue(text.contains("conv.weight             F32   [4, 3, 3, 3]\n"), text)
        XCTAssertTrue(text.contains("bn.num_batches_tracked  I64   []\n"), text)

        let json = try ModelInfo.report(try Checkpoint(path: path("zip_half.pt")), json: true)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["format"] as? String, "pytorch-zip")
        XCTAssertEqual(object["parameters"] as? Int, 35 + 7 + 35 + 35)
        let tensors = try XCTUnwrap(object["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.map { $0["name"] as? String }, ["h", "b", "h_t", "b_row"])
        XCTAssertEqual(tensors.map { $0["dtype"] as? String }, ["F16", "BF16", "F16", "BF16"])
        XCTAssertEqual(tensors[2]["shape"] as? [Int], [7, 5])
    }

    /// The formats `guise model run` runs besides checkpoints: a TFLite graph and a dlib network.
    func testInfoReadsTFLiteAndDlibFiles() throws {
        let iris = try TFLiteModel(path: modelPath("iris_landmark.tflite"))
        let text = try ModelInfo.report(iris, json: false)
        XCTAssertTrue(text.contains("format: tflite"), text)
        XCTAssertTrue(text.contains("[1, 64, 64, 3]"), "the input's shape: \(text)")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try ModelInfo.report(iris, json: true).utf8)) as? [String: Any])
        let constants = try XCTUnwrap(object["tensors"] as? [[String: Any]])
        let counted = constants.map { ($0["shape"] as? [Int] ?? []).reduce(1, *) }.reduce(0, +)
        XCTAssertEqual(object["parameters"] as? Int, counted)
        XCTAssertGreaterThan(counted, 10_000)
        XCTAssertEqual((object["inputs"] as? [[String: Any]])?.count, 1)

        let dlib = try DlibNetwork(path: modelPath("dlib_face_recognition_resnet_model_v1.dat"))
        let dtext = try ModelInfo.report(dlib, path: "dlib.dat", json: false)
        XCTAssertTrue(dtext.contains("format: dlib (loss_metric"), dtext)
        XCTAssertTrue(dtext.contains("[32, 3, 7, 7]"), "the first conv's weight: \(dtext)")
    }

    func testConvertPreservesBytes() throws {
        for name in ["legacy_half", "zip_views", "pickled_module_legacy", "state_dict_module_prefix"] {
            let out = scratch + "/\(name).safetensors"
            try ModelConvert.parse([path(name + ".pt"), "--out", out]).run()
            let got = try SafeTensorsFile(path: out), want = try SafeTensorsFile(path: path(name + ".expected.safetensors"))
            XCTAssertEqual(got.names, want.names, name)
            for n in want.names {
                XCTAssertEqual(got[n]?.dtype, want[n]?.dtype, "\(name) \(n)")
                XCTAssertEqual(got[n]?.shape, want[n]?.shape, "\(name) \(n)")
                XCTAssertEqual(got[n].map { Array($0.bytes) }, want[n].map { Array($0.bytes) }, "\(name) \(n)")
            }
        }
    }

    func testConvertToF32WidensFloatsOnly() throws {
        let out = scratch + "/f32.safetensors"
        try ModelConvert.parse([path("zip_half.pt"), "--out", out, "--dtype", "f32"]).run()
        let got = try SafeTensorsFile(path: out), want = try SafeTensorsFile(path: path("zip_half.expected.safetensors"))
        for n in want.names {
            XCTAssertEqual(got[n]?.dtype, .f32, n)
            // f16/bf16 → f32 is exact, so the widened values equal the widened expectation exactly.
            XCTAssertEqual(try got.tensor(n).values, try want.tensor(n).values, n)
        }
        let mixed = scratch + "/mixed.safetensors"
        try ModelConvert.parse([path("zip_dtypes.pt"), "--out", mixed, "--dtype", "f32"]).run()
        let m = try SafeTensorsFile(path: mixed)
        XCTAssertEqual(m["f64"]?.dtype, .f32)
        XCTAssertEqual(m["i64"]?.dtype, .i64)
        XCTAssertEqual(m["mask"]?.dtype, .bool)
        XCTAssertEqual(m["empty"]?.shape, [0, 5])
        XCTAssertThrowsError(try ModelConvert.parse([path("zip_half.pt"), "--out", mixed, "--dtype", "f16"]))
    }

    /// A refused input leaves an existing output untouched and no temporary file behind.
    func testFailedConvertKeepsExistingOutput() throws {
        let out = scratch + "/keep.safetensors"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: out))
        for bad in ["hostile_zip.pt", "bad_short_storage.pt", "hostile_legacy.pt"] {
            XCTAssertThrowsError(try ModelConvert.parse([path(bad), "--out", out]).run(), bad)
        }
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "keep me")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch), ["keep.safetensors"])
        XCTAssertThrowsError(try ModelConvert.parse([path("zip_half.pt"), "--out", scratch + "/no/such/dir/x.safetensors"]).run())
        // Overwriting an explicit --out with a good conversion is fine.
        try ModelConvert.parse([path("zip_half.pt"), "--out", out]).run()
        XCTAssertEqual(try SafeTensorsFile(path: out).names.count, 4)
    }

    /// The built `guise` binary: exit status and a one-line error on stderr.
    func testBinaryEndToEnd() throws {
        let binary = Bundle.main.bundleURL.appendingPathComponent("guise").path
        // The test target depends on the executable, so `swift test` always builds it here.
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            return XCTFail("guise binary not built beside the tests (\(binary))")
        }
        func run(_ args: [String]) throws -> (Int32, String, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = args
            let out = Pipe(), err = Pipe()
            p.standardOutput = out
            p.standardError = err
            try p.run()
            let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
        }
        let (status, stdout, _) = try run(["model", "info", path("legacy_dtypes.pt")])
        XCTAssertEqual(status, 0)
        XCTAssertTrue(stdout.contains("format: pytorch-legacy"), stdout)
        let (bad, _, stderr) = try run(["model", "convert", path("hostile_exec_p4.pkl"), "--out", scratch + "/x.safetensors"])
        XCTAssertNotEqual(bad, 0)
        XCTAssertEqual(stderr.split(separator: "\n").count, 1, stderr)
        XCTAssertTrue(stderr.contains("refusing to call builtins.exec"), stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/guise-pwned"))
    }
}
