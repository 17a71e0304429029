import Foundation
import XCTest
import GuiseImage
import GuiseTestSupport

extension CLITests {
    func testSwapWritesThePhotoAndAJSONReport() throws {
        let out = dir + "/swap.png"
        let run = try guise(["swap", "--source", "Samples/biden.jpg", "--target", "Samples/astronaut.png", "-o", out,
                             "--no-diffusion", "--json", "--quiet"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stderr, "", "--quiet leaves stderr empty")
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        let faces = (report?["report"] as? [String: Any])?["faces"] as? [[String: Any]]
        XCTAssertEqual(faces?.count, 1)
        let toSource = faces?.first?["identityToSource"] as? Double ?? 9, toTarget = faces?.first?["identityToTarget"] as? Double ?? 0
        XCTAssertLessThan(toSource, toTarget, "the result is closer to the source than to the target")
        let written = try ImageIO.read(out), target = try ImageIO.read(repoRoot + "/Samples/astronaut.png")
        XCTAssertEqual(written.width, target.width)
        XCTAssertEqual(written.height, target.height)
        XCTAssertNotEqual(written.rgb, target.rgb)
    }

    func testKeepSamplesWritesEverySampleBestFirst() throws {
        let out = dir + "/swap.png", kept = dir + "/ranked"
        try FileManager.default.createDirectory(atPath: kept, withIntermediateDirectories: true)
        let run = try guise(["swap", "--source", "Samples/biden.jpg", "--target", "Samples/astronaut.png", "-o", out,
                             "--samples", "2", "--keep-samples", kept, "--work-size", "256", "--json", "--quiet"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let files = try FileManager.default.contentsOfDirectory(atPath: kept).sorted()
        XCTAssertEqual(files, ["face0-sample0.png", "face0-sample1.png"])
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        let face = ((report?["report"] as? [String: Any])?["faces"] as? [[String: Any]])?.first
        let distances = face?["sampleDistances"] as? [Double] ?? []
        XCTAssertEqual(distances.count, 2)
        XCTAssertLessThanOrEqual(distances.first ?? 1, distances.last ?? 0, "ranked best first")
        // The result is the best sample.
        XCTAssertEqual(try ImageIO.read(out).rgb, try ImageIO.read(kept + "/face0-sample0.png").rgb)
    }

    func testSwapFailuresAreOneLineAndWriteNothing() throws {
        let out = dir + "/swap.png"
        try assertFails(["swap", "--source", "Samples/coffee.png", "--target", "Samples/astronaut.png", "--no-diffusion"],
                        output: out, mentions: "no face found in Samples/coffee.png")
        XCTAssertEqual(try guise(["swap", "--source", "Samples/coffee.png", "--target", "Samples/astronaut.png", "-o", out]).status, 3,
                       "nothing found is exit status 3")
        try assertFails(["swap", "--source", "Samples/biden.jpg", "--target", "Samples/astronaut.png", "--target-face", "4", "--no-diffusion"],
                        output: out, mentions: "face 4 is out of range")
        try assertFails(["swap", "--source", "Samples/biden.jpg", "--target", "Samples/astronaut.png", "--reference", "Samples/obama.jpg",
                         "--no-diffusion"], output: out, mentions: "within distance")
        try assertFails(["swap", "--source", "Samples/biden.jpg", "--target", "Samples/astronaut.png", "--strength", "0"],
                        output: out, mentions: "strength")
        try assertFails(["swap", "--target", "Samples/astronaut.png"], output: out, mentions: "--source")
    }

    /// DiffFace's ArcFace alone (no UNet): the embedded swap runs with it as the identity
    /// expert and says so; a file that is no such network is a one-line error.
    func testSwapWithAUsersArcFace() throws {
        let out = dir + "/swap-arcface.png"
        let arcface = fixtureDirectory + "/diffface_step/Arcface.tar"
        let run = try guise(["swap", "--source", "Samples/biden.jpg", "--target", "Samples/astronaut.png", "-o", out,
                             "--arcface", arcface, "--work-size", "256", "--json", "--quiet"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = (try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])?["report"] as? [String: Any]
        let experts = report?["experts"] as? [String: String] ?? [:]
        XCTAssertTrue(experts["identity"]?.hasPrefix("ArcFace IR-SE") ?? false, "\(experts)")
        XCTAssertEqual(experts["gaze"], "iris (embedded)")
        XCTAssertEqual(report?["stepsRun"] as? Int, 2, "the embedded swap's own settings: 0.2 of 10 steps")
        XCTAssertNotNil((report?["lossTerms"] as? [String: Double])?["identity"])
        XCTAssertNoThrow(try ImageIO.read(out))
        try assertFails(["swap", "--source", "Samples/biden.jpg", "--target", "Samples/astronaut.png",
                         "--arcface", fixtureDirectory + "/bisenet_tiny.pt"], output: dir + "/swap-bad.png", mentions: "bisenet_tiny.pt")
    }
}
