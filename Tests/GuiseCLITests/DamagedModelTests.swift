import Foundation
import XCTest
import GuiseFormats
import GuiseTensor
import GuiseTestSupport

extension CLITests {
    /// A BlazeFace file with one byte changed (it used to crash detection): one error line
    /// saying how to refetch it, never a crash and never a quiet switch to the Haar detector.
    func testDamagedDetectorFileIsAnError() throws {
        let name = "face_detection_short_range.tflite"
        let models = dir + "/models"
        try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
        for file in try FileManager.default.contentsOfDirectory(atPath: repoRoot + "/Models") where file != name {
            try FileManager.default.createSymbolicLink(atPath: models + "/" + file, withDestinationPath: repoRoot + "/Models/" + file)
        }
        var bytes = try Data(contentsOf: URL(fileURLWithPath: repoRoot + "/Models/" + name))
        bytes[210932] = 0x5d
        try bytes.write(to: URL(fileURLWithPath: models + "/" + name))

        try assertFails(["detect", "Samples/astronaut.png"], mentions: "make models", environment: ["GUISE_MODELS": models])
        try assertFails(["detect", "Samples/astronaut.png"], mentions: models + "/" + name, environment: ["GUISE_MODELS": models])
        let inputs = dir + "/in.safetensors"
        try SafeTensorsWriter.write(tensors: ["input": Tensor(zeros: [1, 128, 128, 3])], to: inputs)
        try assertFails(["model", "run", models + "/" + name, "--inputs", inputs], output: dir + "/out.safetensors", mentions: "operator #")
    }

    /// A model folder copied with one byte flipped: the manifest's sha256 refuses it before it is
    /// parsed (a flipped weight bit would otherwise load and run unnoticed). Every command that
    /// loads it fails in one line with the model exit status (4), naming the file and the
    /// remedy; BlazeFace never falls back to Haar.
    func testFlippedByteFailsTheManifestHash() throws {
        let models = dir + "/models"
        try FileManager.default.createDirectory(atPath: models + "/prior", withIntermediateDirectories: true)
        let store = try ModelStore(directory: repoRoot + "/Models")
        for entry in store.manifest.files {
            try FileManager.default.copyItem(atPath: repoRoot + "/Models/" + entry.name, toPath: models + "/" + entry.name)
        }
        try FileManager.default.copyItem(atPath: repoRoot + "/Models/manifest.json", toPath: models + "/manifest.json")
        func flipped(_ name: String, _ arguments: [String], remedy: String) throws {
            let url = URL(fileURLWithPath: models + "/" + name)
            let original = try Data(contentsOf: url)
            var bytes = original
            bytes[bytes.count / 2] ^= 0x01
            try bytes.write(to: url)
            let run = try guise(arguments, environment: ["GUISE_MODELS": models])
            XCTAssertEqual(run.status, 4, run.stderr)
            XCTAssertEqual(run.stderrLines.count, 1, run.stderr)
            XCTAssertFalse(run.stderr.contains("Haar"), run.stderr)
            for part in [models + "/" + name, "sha256", remedy] { XCTAssertTrue(run.stderr.contains(part), run.stderr) }
            try original.write(to: url)
        }
        try flipped("face_detection_short_range.tflite", ["detect", "Samples/astronaut.png"], remedy: "make models")
        try flipped("dlib_face_recognition_resnet_model_v1.dat", ["identity", "Samples/astronaut.png", "Samples/messi5.jpg"], remedy: "make models")
        try flipped("prior/guise-prior-2.safetensors", ["denoise", "Samples/astronaut.png", "--sigma", "10", "--out", dir + "/d.png",
                                                        "--model", "guise-prior-2"],
                    remedy: "git checkout -- Models/prior/guise-prior-2.safetensors")
        try flipped("prior/guise-prior.safetensors", ["denoise", "Samples/astronaut.png", "--sigma", "10", "--out", dir + "/d.png"],
                    remedy: "git checkout -- Models/prior/guise-prior.safetensors")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/d.png"))
        for name in ["face_landmark.tflite", "pose_landmark_full.tflite"] {
            let url = URL(fileURLWithPath: models + "/" + name)
            var bytes = try Data(contentsOf: url)
            bytes[bytes.count / 3] ^= 0x80
            try bytes.write(to: url)
        }
        // `model verify` names every damaged file.
        try assertFails(["model", "verify"], mentions: "2 model files do not match", environment: ["GUISE_MODELS": models])
    }
}

