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
        var first = try TrainPrior.parse(common + ["--steps", "2"])
        try first.run()
        var more = try TrainPrior.parse(common + ["--steps", "3", "--resume", dir + "/p.ckpt.safetensors"])
        try more.run()
        let log = try String(contentsOfFile: dir + "/loss.tsv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(log.count, 4, "a header and steps 1, 2, 3: \(log)")
        XCTAssertTrue(log[3].hasPrefix("3\t"))
        let ckpt = try SafeTensorsFile(path: dir + "/p.ckpt.safetensors")
        XCTAssertEqual(ckpt.metadata["step"], "3")

        var denoise = try Denoise.parse([dir + "/data/a.png", "--sigma", "20", "--out", dir + "/d.png",
                                         "--model", dir + "/p.safetensors", "--steps", "2"])
        try denoise.run()
        let d = try ImageIO.read(dir + "/d.png")
        XCTAssertEqual([d.width, d.height], [n, n])

        var sample = try Sample.parse(["--model", dir + "/p.safetensors", "--steps", "ddim2", "--out", dir + "/s.png", "--quiet"])
        try sample.run()
        XCTAssertEqual(try ImageIO.read(dir + "/s.png").width, 16)
        XCTAssertThrowsError(try Denoise.parse([dir + "/data/a.png", "--sigma", "-1", "--out", "x.png"]))
    }
}
