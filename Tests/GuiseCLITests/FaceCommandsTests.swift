import Foundation
import XCTest
import GuiseFormats
import GuiseTensor
import GuiseTestSupport

/// `guise landmarks`, `identity`, `segment` and `model run` on the embedded face networks,
/// through the built binary.
extension CLITests {
    func json(_ run: Run) throws -> [String: Any] {
        XCTAssertEqual(run.status, 0, run.stderr)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], run.stdout)
    }

    /// Width and height from a PNG's IHDR.
    func pngSize(_ path: String) throws -> (Int, Int) {
        let d = try Data(contentsOf: URL(fileURLWithPath: path))
        return (Int(d[18]) << 8 | Int(d[19]), Int(d[22]) << 8 | Int(d[23]))
    }

    func testDetectDefaultsToBlazeFace() throws {
        let report = try json(try guise(["detect", "Samples/astronaut.png", "--json"]))
        XCTAssertEqual(report["detector"] as? String, "blazeface")
        let faces = try XCTUnwrap(report["faces"] as? [[String: Any]])
        XCTAssertEqual(faces.count, 1)
        let keypoints = try XCTUnwrap(faces.first?["keypoints"] as? [String: Any])
        XCTAssertEqual(Set(keypoints.keys), ["leftEye", "rightEye", "nose", "mouthCentre", "leftEar", "rightEar"])
        let full = try json(try guise(["detect", "Samples/astronaut.png", "--json", "--detector", "blazeface-full"]))
        XCTAssertEqual((full["faces"] as? [Any])?.count, 1)
    }

    func testLandmarksReportAndAnnotate() throws {
        let annotated = dir + "/landmarks.png"
        let report = try json(try guise(["landmarks", "Samples/astronaut.png", "--json", "--annotate", annotated]))
        let mesh = try XCTUnwrap(report["mesh"] as? [[String: Double]])
        XCTAssertEqual(mesh.count, 468)
        let box = try XCTUnwrap((report["detection"] as? [String: Any])?["box"] as? [String: Double])
        let (x, y, w, h) = (box["x"]!, box["y"]!, box["width"]!, box["height"]!)
        for p in mesh {
            XCTAssertTrue(p["x"]! > x - 0.15 * w && p["x"]! < x + 1.15 * w && p["y"]! > y - 0.15 * h && p["y"]! < y + 1.15 * h, "\(p)")
        }
        XCTAssertEqual((report["points68"] as? [Any])?.count, 68)
        XCTAssertEqual((report["fivePoints"] as? [String: Any])?.count, 5)
        XCTAssertEqual((report["irisLeft"] as? [Any])?.count, 5)
        XCTAssertEqual((report["eyeContourRight"] as? [Any])?.count, 71)
        XCTAssertNotNil((report["gaze"] as? [String: Double])?["x"])
        XCTAssertGreaterThan(report["presence"] as? Double ?? 0, 0.9)
        XCTAssertEqual(try pngSize(annotated).0, 512)
    }

    func testIdentityVerdicts() throws {
        let same = try json(try guise(["identity", "Samples/astronaut.png", "Samples/astronaut.png", "--json"]))
        XCTAssertEqual(same["distance"] as? Double ?? 1, 0, accuracy: 1e-6)
        XCTAssertEqual(same["samePerson"] as? Bool, true)
        let other = try json(try guise(["identity", "Samples/astronaut.png", "Samples/messi5.jpg", "--json"]))
        XCTAssertGreaterThan(other["distance"] as? Double ?? 0, 0.6)
        XCTAssertEqual(other["samePerson"] as? Bool, false)
        let text = try guise(["identity", "Samples/astronaut.png", "Samples/messi5.jpg"])
        XCTAssertTrue(text.stdout.contains("different people"), text.stdout)
    }

    func testSegmentWritesMasks() throws {
        for (what, extra) in [("person", [String]()), ("lips", []), ("skin", ["--soft"])] {
            let out = dir + "/\(what).png"
            let run = try guise(["segment", "Samples/astronaut.png", "--what", what, "--out", out] + extra)
            XCTAssertEqual(run.status, 0, run.stderr)
            let size = try pngSize(out)
            XCTAssertEqual(size.0, 512)
            XCTAssertEqual(size.1, 512)
        }
    }

    /// The iris model through `model run`, against LiteRT's outputs in the network fixture,
    /// and its gradient against a central difference along the gradient itself.
    func testModelRunTFLiteWithGradient() throws {
        let fx = try fixture("tflite_iris_landmark")
        let model = repoRoot + "/Models/iris_landmark.tflite"
        let tfl = try TFLiteModel(path: model)
        let inputName = tfl.mainGraph.tensors[tfl.mainGraph.inputs[0]].name
        let u8 = try fx.tensor("input_u8")
        let x = Tensor(shape: u8.shape, values: u8.values.map { $0 / 255 })
        let inputs = dir + "/in.safetensors", seedPath = dir + "/seed.safetensors", out = dir + "/out.safetensors"
        try SafeTensorsWriter.write(tensors: [inputName: x], to: inputs)
        let seed = Tensor(shape: [1, 15], values: (0..<15).map { Float($0 % 3 == 0 ? 1 : -0.5) })
        try SafeTensorsWriter.write(tensors: ["output_iris": seed], to: seedPath)
        let run = try guise(["model", "run", model, "--inputs", inputs, "--out", out, "--grad-wrt", inputName, "--grad-seed", seedPath])
        XCTAssertEqual(run.status, 0, run.stderr)
        let got = try SafeTensorsFile(path: out)
        for name in ["output_eyes_contours_and_brows", "output_iris"] {
            let a = try got.tensor(name).values, e = try fx.tensor("out/" + name).values
            let scale = e.map(abs).max()!
            XCTAssertLessThanOrEqual(zip(a, e).map { abs($0 - $1) }.max()! / scale, 1e-3, name)
        }
        let g = try got.tensor("grad_" + inputName)
        XCTAssertEqual(g.shape, [1, 64, 64, 3])
        let norm = g.values.map { $0 * $0 }.reduce(0, +).squareRoot()
        XCTAssertGreaterThan(norm, 0)
        // f(x ± εĝ) with f = sum(seed · iris): the slope along ĝ is |g|.
        let eps: Float = 1e-3
        var f: [Float] = []
        for sign: Float in [1, -1] {
            let shifted = Tensor(shape: x.shape, values: zip(x.values, g.values).map { $0 + sign * eps * $1 / norm })
            try SafeTensorsWriter.write(tensors: [inputName: shifted], to: inputs)
            XCTAssertEqual(try guise(["model", "run", model, "--inputs", inputs, "--out", out]).status, 0)
            f.append(zip(try SafeTensorsFile(path: out).tensor("output_iris").values, seed.values).map(*).reduce(0, +))
        }
        XCTAssertEqual((f[0] - f[1]) / (2 * eps), norm, accuracy: 0.05 * norm)
    }

    func testModelRunDlib() throws {
        let fx = try fixture("dlib_descriptors")
        let chips = try fx.tensor("chips_u8").narrow(0..<1).permuted(0, 3, 1, 2).contiguous()
        let inputs = dir + "/chips.safetensors", out = dir + "/desc.safetensors", seedPath = dir + "/seed.safetensors"
        try SafeTensorsWriter.write(tensors: ["x": chips], to: inputs)
        try SafeTensorsWriter.write(tensors: ["seed": Tensor(shape: [1, 128], values: [Float](repeating: 1, count: 128))], to: seedPath)
        let model = repoRoot + "/Models/dlib_face_recognition_resnet_model_v1.dat"
        let run = try guise(["model", "run", model, "--inputs", inputs, "--out", out, "--grad-wrt", "x", "--grad-seed", seedPath])
        XCTAssertEqual(run.status, 0, run.stderr)
        let got = try SafeTensorsFile(path: out)
        let a = try got.tensor("out").values, e = Array(try fx.tensor("descriptors").values.prefix(128))
        XCTAssertLessThanOrEqual(zip(a, e).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot(), 1e-3)
        XCTAssertEqual(try got.tensor("grad_x").shape, [1, 3, 150, 150])
    }

    func testFaceCommandErrors() throws {
        let png = dir + "/out.png"
        try assertFails(["landmarks", "Samples/coffee.png", "--annotate", png], mentions: "no face found")
        XCTAssertFalse(FileManager.default.fileExists(atPath: png))
        try assertFails(["segment", "Samples/coffee.png", "--what", "lips"], output: png, mentions: "no face found")
        try assertFails(["identity", "Samples/astronaut.png", "Samples/coffee.png"], mentions: "no face found in Samples/coffee.png")
        try assertFails(["landmarks", "Samples/astronaut.png", "--face", "3"], mentions: "out of range")

        // Truncated network files: one line naming the file, nothing written.
        let inputs = dir + "/in.safetensors", out = dir + "/out.safetensors"
        try SafeTensorsWriter.write(tensors: ["x": Tensor(zeros: [1, 3, 150, 150])], to: inputs)
        for name in ["iris_landmark.tflite", "dlib_face_recognition_resnet_model_v1.dat"] {
            let data = try Data(contentsOf: URL(fileURLWithPath: repoRoot + "/Models/" + name))
            let cut = dir + "/cut-" + name
            try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
            try assertFails(["model", "run", cut, "--inputs", inputs], output: out, mentions: cut)
        }
        try assertFails(["model", "run", repoRoot + "/Models/iris_landmark.tflite", "--inputs", inputs], output: out, mentions: "the model takes")

        // Models missing: BlazeFace falls back to Haar with a note; the mesh cannot run.
        let empty = dir + "/models"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: repoRoot + "/Models/manifest.json", toPath: empty + "/manifest.json")
        let env = ["GUISE_MODELS": empty]
        let fallback = try guise(["detect", "Samples/astronaut.png", "--json"], environment: env)
        XCTAssertEqual(try json(fallback)["detector"] as? String, "haar")
        XCTAssertTrue(fallback.stderr.contains("using the Haar detector"), fallback.stderr)
        try assertFails(["segment", "Samples/astronaut.png", "--what", "person"], output: png, mentions: "is missing", environment: env)
    }
}
