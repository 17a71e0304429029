import XCTest
import GuiseTestSupport
import Foundation
import GuiseImage

/// `guise edit` end to end through the binary: what it writes, what it reports, how it fails.
final class EditCommandTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        XCTAssertNotNil(guiseBinary, "no guise binary; run `swift build --product guise`")
        dir = FileManager.default.temporaryDirectory.path + "/guise-edit-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A 16-bit RGBA photo of odd size with texture and varying alpha.
    func writePhoto(_ name: String, width w: Int = 41, height h: Int = 27) throws -> (String, [UInt16]) {
        var samples = [UInt16](repeating: 0, count: w * h * 4)
        for y in 0..<h {
            for x in 0..<w {
                let i = 4 * (y * w + x)
                samples[i] = UInt16((x * 1597 + y * 331) % 65536)
                samples[i + 1] = UInt16(y * 65535 / h)
                samples[i + 2] = (x / 3) % 2 == 0 ? 50000 : 9000
                samples[i + 3] = UInt16(65535 - (x + y) * 200)
            }
        }
        let path = dir + "/" + name
        try ImageIO.write(Image(interleaved: samples, width: w, height: h, channels: 4), to: path)
        return (path, samples)
    }

    func assertFailsCleanly(_ args: [String], output: String, mentions: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try guise(args)
        XCTAssertNotEqual(run.status, 0, file: file, line: line)
        XCTAssertEqual(run.stderrLines.count, 1, "stderr: \(run.stderr)", file: file, line: line)
        XCTAssertTrue(run.stderr.hasPrefix("guise: error: "), run.stderr, file: file, line: line)
        XCTAssertTrue(run.stderr.contains(mentions), "stderr: \(run.stderr)", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output), "\(output) was written", file: file, line: line)
    }

    func testFillKeepsDepthAlphaAndOutsidePixelsAndReports() throws {
        let (input, samples) = try writePhoto("in.png")
        let out = dir + "/out.png"
        let run = try guise(["edit", input, "--box", "12,7,13,9", "-o", out, "--json", "--steps", "4", "--seed", "3"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(report?["mode"] as? String, "fill")
        XCTAssertEqual(report?["maskPixels"] as? Int, 13 * 9)
        XCTAssertEqual(report?["seed"] as? Int, 3)
        XCTAssertEqual(report?["steps"] as? Int, 4)
        XCTAssertNotNil(report?["seconds"] as? Double)
        let back = try ImageIO.read(out)
        XCTAssertEqual(back.sourceFormat, PixelFormat(channels: 4, bitDepth: 16))
        let s = back.interleaved16(channels: 4)
        var changed = 0
        for y in 0..<27 {
            for x in 0..<41 {
                let i = 4 * (y * 41 + x)
                let inside = x >= 12 && x < 25 && y >= 7 && y < 16
                XCTAssertEqual(s[i + 3], samples[i + 3], "alpha at \(x),\(y)")
                if !inside {
                    XCTAssertEqual(Array(s[i..<(i + 3)]), Array(samples[i..<(i + 3)]), "pixel \(x),\(y)")
                } else if s[i] != samples[i] {
                    changed += 1
                }
            }
        }
        XCTAssertGreaterThan(changed, 0)

        // The same seed writes the same bytes.
        let again = dir + "/again.png"
        XCTAssertEqual(try guise(["edit", input, "--box", "12,7,13,9", "-o", again, "--quiet", "--steps", "4", "--seed", "3"]).status, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), try Data(contentsOf: URL(fileURLWithPath: again)))
    }

    func testMaskFilesHarmonizeEmptyAndResizedMasks() throws {
        let (input, _) = try writePhoto("in.png")
        var m = Mask(width: 41, height: 27, fill: 0)
        let empty = dir + "/empty.png"
        try ImageIO.write(Image(grey: m.values, width: 41, height: 27), to: empty)
        let out = dir + "/same.png"
        let run = try guise(["edit", input, "--mask", empty, "-o", out])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("guise: note:") && run.stderr.contains("unchanged"), run.stderr)
        XCTAssertEqual(try ImageIO.read(out).interleaved16(channels: 4), try ImageIO.read(input).interleaved16(channels: 4))

        for y in 4..<10 { for x in 6..<20 { m[x, y] = 1 } }
        let half = dir + "/half.png"
        try ImageIO.write(try Image(grey: m.values, width: 41, height: 27).resized(width: 82, height: 54, interpolation: .nearest), to: half)
        let h = try guise(["edit", input, "--mask", half, "--harmonize", "--strength", "0.5", "--steps", "4", "-o", dir + "/h.png", "--quiet"])
        XCTAssertEqual(h.status, 0, h.stderr)
        XCTAssertTrue(h.stderr.contains("guise: warning:") && h.stderr.contains("resized"), h.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/h.png"))
    }

    func testFailuresAreOneLineAndWriteNothing() throws {
        let (input, _) = try writePhoto("in.png")
        let out = dir + "/out.png"
        try assertFailsCleanly(["edit", input, "--mask", dir + "/missing.png", "-o", out], output: out, mentions: "missing.png")
        let junk = dir + "/junk.png"
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: junk))
        try assertFailsCleanly(["edit", input, "--mask", junk, "-o", out], output: out, mentions: "mask")
        try assertFailsCleanly(["edit", input, "--region", "face", "-o", out], output: out, mentions: "no face found")
        try assertFailsCleanly(["edit", input, "-o", out], output: out, mentions: "--mask")
        try assertFailsCleanly(["edit", input, "--box", "1,2,3,4", "--mask", junk, "-o", out], output: out, mentions: "exactly one")
        try assertFailsCleanly(["edit", input, "--box", "1,2,3", "-o", out], output: out, mentions: "x,y,w,h")
        try assertFailsCleanly(["edit", input, "--box", "100,100,5,5", "-o", out], output: out, mentions: "outside")
        try assertFailsCleanly(["edit", input, "--box", "1,2,3,4", "--strength", "1.5", "--harmonize", "-o", out], output: out, mentions: "--strength")
        try assertFailsCleanly(["edit", dir + "/nope.png", "--box", "1,2,3,4", "-o", out], output: out, mentions: "nope.png")
        // An existing output survives a failure.
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: out))
        XCTAssertNotEqual(try guise(["edit", input, "--mask", junk, "-o", out]).status, 0)
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "keep me")
    }

    func testGazeAndRegionsOnAPortrait() throws {
        let photo = repoRoot + "/Samples/astronaut.png"
        guard FileManager.default.fileExists(atPath: photo) else { return XCTFail("\(photo) is missing: run `make samples`") }
        let out = dir + "/gaze.png"
        let run = try guise(["edit", photo, "--gaze", "camera", "--steps", "8", "-o", out, "--json", "--quiet"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(report?["guidance"] as? String, "gaze")
        XCTAssertEqual(report?["mode"] as? String, "harmonize")
        let pixels = report?["maskPixels"] as? Int ?? 0
        XCTAssertGreaterThan(pixels, 100)
        XCTAssertLessThan(pixels, 5000, "only the eyes may change")
        try assertFailsCleanly(["edit", photo, "--gaze", "left", "-o", out + ".png"], output: out + ".png", mentions: "--gaze")
        let lips = dir + "/lips.png"
        let r = try guise(["edit", photo, "--region", "lips", "--steps", "6", "-o", lips, "--json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: lips))
    }

    func testExpressionFromAReferencePhoto() throws {
        let samples = ["grace_hopper.jpg", "astronaut.png"].map { repoRoot + "/Samples/" + $0 }
        for p in samples where !FileManager.default.fileExists(atPath: p) { return XCTFail("\(p) is missing: run `make samples`") }
        let photo = dir + "/grace.png", smile = dir + "/smile.png", out = dir + "/expression.png"
        try ImageIO.write(try ImageIO.read(samples[0]).cropped(x: 100, y: 60, width: 300, height: 300), to: photo)
        try ImageIO.write(try ImageIO.read(samples[1]).cropped(x: 120, y: 20, width: 200, height: 200), to: smile)
        let run = try guise(["edit", photo, "--region", "mouth", "--expression-from", smile, "--steps", "6", "-o", out, "--json", "--quiet"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(report?["guidance"] as? String, "expression")
        XCTAssertEqual(report?["mode"] as? String, "harmonize")
        let fraction = report?["maskFraction"] as? Double ?? 0
        XCTAssertGreaterThan(fraction, 0.005)
        XCTAssertLessThan(fraction, 0.4, "only the mouth and the skin round it may change (the face fills the crop)")
        // The mouth's surroundings (the photo's top third: eyes, forehead) come back exactly.
        let a = try ImageIO.read(photo), b = try ImageIO.read(out)
        let n = a.pixelCount
        for c in 0..<3 { for i in 0..<(n / 3) { XCTAssertEqual(a.rgb[c * n + i], b.rgb[c * n + i]); if a.rgb[c * n + i] != b.rgb[c * n + i] { return } } }

        // A reference without a face, a part the expression cannot move, a mask besides: one line, nothing written.
        let coffee = repoRoot + "/Samples/coffee.png"
        let bad = dir + "/bad.png"
        try assertFailsCleanly(["edit", photo, "--expression-from", coffee, "-o", bad], output: bad, mentions: "no face found in \(coffee)")
        try assertFailsCleanly(["edit", photo, "--expression-from", dir + "/nope.png", "-o", bad], output: bad, mentions: "nope.png")
        try assertFailsCleanly(["edit", photo, "--region", "nose", "--expression-from", smile, "-o", bad], output: bad, mentions: "nose")
        try assertFailsCleanly(["edit", photo, "--box", "1,2,3,4", "--expression-from", smile, "-o", bad], output: bad, mentions: "--region")
        try assertFailsCleanly(["edit", photo, "--expression-from", smile, "--expression-weight", "nan", "-o", bad], output: bad, mentions: "--expression-weight")
    }
}
