import Foundation
import XCTest
import GuiseImage

/// `guise pose` through the built binary.
extension CLITests {
    func testPoseReportAnnotationAndMask() throws {
        let annotated = dir + "/pose.png", mask = dir + "/person.png"
        let report = try json(try guise(["pose", "Samples/messi5.jpg", "--json", "--annotate", annotated, "--mask", mask]))
        XCTAssertEqual(report["width"] as? Int, 548)
        let landmarks = try XCTUnwrap(report["landmarks"] as? [[String: Any]])
        XCTAssertEqual(landmarks.count, 39)
        XCTAssertEqual(landmarks.first?["name"] as? String, "nose")
        XCTAssertEqual(landmarks[32]["name"] as? String, "right_foot_index")
        for l in landmarks {
            for key in ["x", "y", "z", "visibility", "presence"] { XCTAssertNotNil(l[key] as? Double, "\(key) in \(l)") }
        }
        // mp.solutions.pose puts his nose at (250.1, 113.9) (Tools/make_fixtures_pose.py).
        XCTAssertEqual(landmarks[0]["x"] as? Double ?? 0, 250.1, accuracy: 0.5)
        XCTAssertEqual(landmarks[0]["y"] as? Double ?? 0, 113.9, accuracy: 0.5)
        XCTAssertGreaterThan(report["presence"] as? Double ?? 0, 0.5)
        XCTAssertNotNil((report["detection"] as? [String: Any])?["hipCentre"])
        XCTAssertNotNil((report["roi"] as? [String: Any])?["rotation"])

        XCTAssertEqual(try pngSize(annotated).0, 548)
        let m = try ImageIO.read(mask)
        XCTAssertEqual(m.width, 548)
        XCTAssertEqual(m.height, 342)
        // The mask holds him: bright at his chest, dark in the crowd's top-left corner.
        XCTAssertGreaterThan(m[245, 150, 0], 0.9)
        XCTAssertLessThan(m[20, 20, 0], 0.1)

        let text = try guise(["pose", "Samples/astronaut.png"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("left_shoulder ("), text.stdout)
        XCTAssertEqual(text.stdout.split(separator: "\n").count, 1 + 39)
    }

    func testPoseWithoutAPersonFailsAndWritesNothing() throws {
        let grey = dir + "/grey.png"
        try ImageIO.write(Image(width: 320, height: 240, red: 0.5, green: 0.5, blue: 0.5), to: grey)
        let annotated = dir + "/annotated.png", mask = dir + "/mask.png"
        let run = try guise(["pose", grey, "--annotate", annotated, "--mask", mask])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertEqual(run.stderrLines, ["guise: error: no person found in \(grey)"])
        XCTAssertEqual(run.stdout, "")
        XCTAssertFalse(FileManager.default.fileExists(atPath: annotated))
        XCTAssertFalse(FileManager.default.fileExists(atPath: mask))
        // An existing output stays as it was.
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: mask))
        XCTAssertNotEqual(try guise(["pose", grey, "--mask", mask]).status, 0)
        XCTAssertEqual(try String(contentsOfFile: mask, encoding: .utf8), "keep me")

        try assertFails(["pose", "Samples/messi5.jpg", "--mask", dir + "/m.txt"], mentions: "unknown image type")
        try assertFails(["pose", "Samples/messi5.jpg", "--mask", mask, "--annotate", mask], mentions: "same file")
        try assertFails(["pose", dir + "/missing.png"], mentions: "missing.png")
    }
}
