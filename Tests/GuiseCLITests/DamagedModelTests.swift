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
}
