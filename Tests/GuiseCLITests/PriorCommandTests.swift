import XCTest
import Foundation
import GuiseImage
import GuiseFormats
@testable import GuiseCLI

/// `guise train-prior`, `guise denoise` and `guise sample` on a tiny prior trained for a few steps.
final class PriorCommandTests: XCTestCase {
    func testTrainResumeDenoiseAndSample() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("guise-prior-cli-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let n = 48
        let rgb = (0..<(3 * n * n)).map { i -> Float in Float(0.5 + 0.4 * sin(Double(i % n) * 0.3 + Double(i / (n * n)))) }
        try ImageIO.write(Image(width: n, height: n, rgb: rgb), to: dir + "/data/a.png")
        let common = ["--data", dir + "/data", "--out", dir + "/p.safetensors", "--config", "tiny", "--crop", "16",
                      "--batch", "2", "--log", dir + "/loss.tsv", "--quiet"]
        let first = try TrainPrior.parse(common + ["--steps", "2"])
        try first.run()
        let more = try TrainPrior.parse(common + ["--steps", "3", "--resume", dir + "/p.ckpt.safetensors"])
        try more.run()
        let log = try String(contentsOfFile: dir + "/loss.tsv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(log.count, 4, "a header and steps 1, 2, 3: \(log)")
        XCTAssertTrue(log[3].hasPrefix("3\t"))
        let ckpt = try SafeTensorsFile(path: dir + "/p.ckpt.safetensors")
        XCTAssertEqual(ckpt.metadata["step"], "3")

        let denoise = try Denoise.parse([dir + "/data/a.png", "--sigma", "20", "--out", dir + "/d.png",
                                         "--model", dir + "/p.safetensors", "--steps", "2"])
        try denoise.run()
        let d = try ImageIO.read(dir + "/d.png")
        XCTAssertEqual([d.width, d.height], [n, n])

        let sample = try Sample.parse(["--model", dir + "/p.safetensors", "--steps", "ddim2", "--out", dir + "/s.png", "--quiet"])
        try sample.run()
        XCTAssertEqual(try ImageIO.read(dir + "/s.png").width, 16)
        XCTAssertThrowsError(try Denoise.parse([dir + "/data/a.png", "--sigma", "-1", "--out", "x.png"]))
    }

    func testSamplingOptionsAreKeptInTheCheckpoint() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("guise-prior-cli2-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let n = 40
        let rgb = (0..<(3 * n * n)).map { i -> Float in Float(0.5 + 0.4 * cos(Double(i % n) * 0.2 + Double(i / n) * 0.05)) }
        try ImageIO.write(Image(width: n, height: n, rgb: rgb), to: dir + "/data/face.png")
        try ImageIO.write(Image(width: n, height: n, rgb: rgb.reversed()), to: dir + "/data/other.png")
        try Data(#"{"files": [{"name": "face.png", "kind": "face"}]}"#.utf8).write(to: URL(fileURLWithPath: dir + "/m.json"))
        let common = ["--data", dir + "/data", "--out", dir + "/p.safetensors", "--config", "tiny-attn", "--crop", "16",
                      "--batch", "2", "--quiet"]
        let first = try TrainPrior.parse(common + ["--steps", "2", "--multi-scale", "--jitter", "0.04", "--manifest", dir + "/m.json",
                                                   "--kind-weights", "scene=1,face=3", "--upright", "person, face"])
        try first.run()
        let more = try TrainPrior.parse(common + ["--steps", "3", "--resume", dir + "/p.ckpt.safetensors"])
        try more.run()
        let meta = try SafeTensorsFile(path: dir + "/p.ckpt.safetensors").metadata
        XCTAssertEqual(meta["step"], "3")
        XCTAssertEqual(meta["multi_scale"], "true")
        XCTAssertEqual(meta["jitter"], "0.04")
        XCTAssertEqual(meta["kind_weights"], "face=3.0,scene=1.0")
        XCTAssertEqual(meta["upright_kinds"], "face,person")
        XCTAssertEqual(meta["manifest"], dir + "/m.json")
        XCTAssertThrowsError(try TrainPrior.parse(common + ["--kind-weights", "face=x"]))
        XCTAssertThrowsError(try TrainPrior.parse(common + ["--jitter", "2"]))
        let noManifest = try TrainPrior.parse(common + ["--kind-weights", "face=2", "--out", dir + "/q.safetensors"])
        XCTAssertThrowsError(try noManifest.run())
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/q.safetensors"))
    }

    func testStopAtKeepsTheScheduleAndResumesToTheSameWeights() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("guise-prior-cli3-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let n = 36
        let rgb = (0..<(3 * n * n)).map { i -> Float in Float(0.5 + 0.3 * sin(Double(i % n) * 0.4 + Double(i / n) * 0.07)) }
        try ImageIO.write(Image(width: n, height: n, rgb: rgb), to: dir + "/data/a.png")
        func args(_ name: String, _ extra: [String]) -> [String] {
            ["--data", dir + "/data", "--out", dir + "/\(name).safetensors", "--config", "tiny", "--crop", "16", "--batch", "2",
             "--steps", "6", "--multi-scale", "--jitter", "0.03", "--log", dir + "/\(name).tsv", "--quiet"] + extra
        }
        let whole = try TrainPrior.parse(args("whole", []))
        try whole.run()
        let part = try TrainPrior.parse(args("part", ["--stop-at", "3"]))
        try part.run()
        XCTAssertEqual(try SafeTensorsFile(path: dir + "/part.safetensors").metadata["step"], "3")
        let rest = try TrainPrior.parse(args("part", ["--resume", dir + "/part.ckpt.safetensors"]))
        try rest.run()
        // The stopped run used the 6-step schedule, and finishing it gives the same bytes.
        let a = try String(contentsOfFile: dir + "/whole.tsv", encoding: .utf8).split(separator: "\n").map { $0.split(separator: "\t").prefix(3) }
        let b = try String(contentsOfFile: dir + "/part.tsv", encoding: .utf8).split(separator: "\n").map { $0.split(separator: "\t").prefix(3) }
        XCTAssertEqual(a, b)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/whole.safetensors"), FileManager.default.contents(atPath: dir + "/part.safetensors"))
        let past = try TrainPrior.parse(args("part", ["--resume", dir + "/part.ckpt.safetensors", "--stop-at", "2"]))
        XCTAssertThrowsError(try past.run())
        XCTAssertThrowsError(try TrainPrior.parse(args("x", ["--stop-at", "7"])))
    }
}
