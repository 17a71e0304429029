import Foundation
import XCTest
import GuiseImage
import GuiseTestSupport

/// `guise clothes` through the built binary.
extension CLITests {
    func testClothesWritesTheResultAndReports() throws {
        let out = dir + "/dressed.png"
        let run = try guise(["clothes", "--person", "Samples/astronaut.png", "--garment", "Samples/grace_hopper.jpg", "-o", out, "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let top = try json(run)
        XCTAssertEqual(top["out"] as? String, out)
        let report = try XCTUnwrap(top["report"] as? [String: Any])
        XCTAssertEqual(report["kind"] as? String, "upper")
        XCTAssertEqual(report["garmentSource"] as? String, "person")
        XCTAssertGreaterThan(report["paintedArea"] as? Int ?? 0, 10_000)
        XCTAssertGreaterThan(report["coverage"] as? Double ?? 0, 0.85)
        XCTAssertLessThan(report["warpResidual"] as? Double ?? .nan, 0.5)
        let keypoints = try XCTUnwrap(report["keypoints"] as? [[String: Any]])
        XCTAssertEqual(keypoints.compactMap { $0["name"] as? String }, ["neck", "left_shoulder", "right_shoulder", "left_shoulder_top", "right_shoulder_top", "left_hip", "right_hip"])
        XCTAssertNotNil((report["seconds"] as? [String: Double])?["person"])
        let result = try ImageIO.read(out), person = try ImageIO.read(repoRoot + "/Samples/astronaut.png")
        XCTAssertEqual(result.width, 512)
        XCTAssertEqual(result.height, 512)
        // The face (top centre) is untouched; the chest is not.
        let n = person.pixelCount
        func pixel(_ im: Image, _ x: Int, _ y: Int) -> [Float] { (0..<3).map { im.rgb[$0 * n + y * 512 + x] } }
        XCTAssertEqual(pixel(result, 235, 120), pixel(person, 235, 120))
        XCTAssertNotEqual(pixel(result, 220, 380), pixel(person, 220, 380))

        let text = try guise(["clothes", "--person", "Samples/astronaut.png", "--garment", "Samples/grace_hopper.jpg", "-o", dir + "/t.png", "--quiet"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertEqual(text.stderr, "")
        XCTAssertTrue(text.stdout.hasPrefix(dir + "/t.png: upper garment (from a person photo) painted over"), text.stdout)
    }

    func testClothesHarmoniseWithReferenceAttentionReports() throws {
        let out = dir + "/harmonised.png"
        let run = try guise(["clothes", "--person", "Samples/astronaut.png", "--garment", "Samples/grace_hopper.jpg", "-o", out, "--json", "--quiet",
                             "--harmonize", "0.3", "--harmonize-steps", "4", "--reference-attention", "1.5"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try XCTUnwrap(try json(run)["report"] as? [String: Any])
        XCTAssertEqual(report["harmonize"] as? Double, 0.3)
        XCTAssertEqual(report["referenceAttention"] as? Double, 1.5)
        XCTAssertGreaterThan(report["diffusionEvaluations"] as? Int ?? 0, 0)
        XCTAssertNotNil((report["seconds"] as? [String: Double])?["harmonize"])
        let help = try guise(["clothes", "--help"]).stdout
        XCTAssertTrue(help.contains("--harmonize") && help.contains("--reference-attention"))
    }

    func testClothesPersonMaskBoundsTheChange() throws {
        // Only the lower middle of the astronaut photo may change.
        var values = [Float](repeating: 0, count: 512 * 512)
        for y in 300..<512 { for x in 140..<320 { values[y * 512 + x] = 1 } }
        let maskPath = dir + "/region.png", out = dir + "/masked.png"
        try ImageIO.write(Image(grey: values, width: 512, height: 512), to: maskPath)
        let run = try guise(["clothes", "--quiet", "--person", "Samples/astronaut.png", "--garment", "Samples/grace_hopper.jpg",
                             "--person-mask", maskPath, "-o", out])
        XCTAssertEqual(run.status, 0, run.stderr)
        let a = try ImageIO.read(repoRoot + "/Samples/astronaut.png"), b = try ImageIO.read(out)
        let n = a.pixelCount
        var inside = 0, outside = 0
        for i in 0..<n where (0..<3).contains(where: { a.rgb[$0 * n + i] != b.rgb[$0 * n + i] }) {
            if values[i] > 0 { inside += 1 } else { outside += 1 }
        }
        XCTAssertEqual(outside, 0)
        XCTAssertGreaterThan(inside, 10_000)
    }

    func testClothesFailuresWriteNothing() throws {
        let grey = dir + "/grey.png"
        try ImageIO.write(Image(width: 320, height: 240, red: 0.5, green: 0.5, blue: 0.5), to: grey)
        let out = dir + "/out.png"
        // With the progress bar on, the error still has a line of its own, the last.
        let shown = try guise(["clothes", "--person", "Samples/astronaut.png", "--garment", grey, "-o", out])
        XCTAssertEqual(shown.status, 3)
        XCTAssertEqual(shown.stderrLines.last, "guise: error: no garment found in the garment photo")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        // Quiet, it is the only line.
        try assertFails(["clothes", "--quiet", "--person", grey, "--garment", "Samples/astronaut.png"], output: out, mentions: "no person found in the person photo")
        try assertFails(["clothes", "--quiet", "--person", "Samples/astronaut.png", "--garment", grey], output: out, mentions: "no garment found in the garment photo")
        try assertFails(["clothes", "--quiet", "--person", "Samples/astronaut.png", "--garment", "Samples/messi5.jpg", "--kind", "lower"], output: out,
                        mentions: "does not show the body parts a lower garment needs")
        try assertFails(["clothes", "--quiet", "--person", "Samples/astronaut.png", "--garment", "Samples/messi5.jpg", "--shading", "3"], output: out,
                        mentions: "--shading")
        try assertFails(["clothes", "--quiet", "--person", "Samples/astronaut.png", "--garment", "Samples/messi5.jpg", "--reference-attention", "1"],
                        output: out, mentions: "give --harmonize too")
        try assertFails(["clothes", "--quiet", "--person", "Samples/astronaut.png", "--garment", "Samples/messi5.jpg", "--harmonize", "2"],
                        output: out, mentions: "--harmonize must be between 0 and 1")
        try assertFails(["clothes", "--quiet", "--person", "Samples/astronaut.png", "--garment", "Samples/messi5.jpg", "--kind", "hat"], output: out,
                        mentions: "hat")
        try assertFails(["clothes", "--quiet", "--person", "Samples/astronaut.png", "--garment", "Samples/messi5.jpg", "-o", dir + "/out.txt"],
                        mentions: "unknown image type")
        try assertFails(["clothes", "--quiet", "--person", "Samples/astronaut.png", "--garment", "Samples/messi5.jpg", "--garment-mask", grey], output: out,
                        mentions: "the garment mask is 320x240")
    }
}
