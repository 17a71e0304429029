import XCTest
import GuiseTestSupport
import Foundation
import GuiseImage

/// `guise edit --identity-from` and `--appearance-from` through the binary.
extension EditCommandTests {
    func testAppearanceFromAPatchKeepsOutsidePixels() throws {
        let (input, samples) = try writePhoto("in.png", width: 61, height: 47)
        // A patch of warm stripes.
        let (pw, ph) = (40, 36)
        var rgb = [Float](repeating: 0, count: 3 * pw * ph)
        for y in 0..<ph { for x in 0..<pw {
            let i = y * pw + x
            rgb[i] = 0.8; rgb[pw * ph + i] = (x / 2) % 2 == 0 ? 0.5 : 0.3; rgb[2 * pw * ph + i] = 0.1
        } }
        let patch = dir + "/patch.png"
        try ImageIO.write(Image(width: pw, height: ph, rgb: rgb), to: patch)
        let out = dir + "/out.png"
        let run = try guise(["edit", input, "--box", "14,10,30,24", "--appearance-from", patch, "--steps", "4", "-o", out, "--json", "--quiet"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(report?["guidance"] as? String, "appearance")
        XCTAssertEqual(report?["mode"] as? String, "harmonize")
        let s = try ImageIO.read(out).interleaved16(channels: 4)
        var changed = 0
        for y in 0..<47 { for x in 0..<61 {
            let inside = x >= 14 && x < 44 && y >= 10 && y < 34
            for c in 0..<4 {
                let k = 4 * (y * 61 + x) + c
                if inside { if s[k] != samples[k] { changed += 1 } } else { XCTAssertEqual(s[k], samples[k]) }
            }
        } }
        XCTAssertGreaterThan(changed, 100)
    }

    func testGuidanceReferencesThatFailWriteNothing() throws {
        let (input, _) = try writePhoto("in.png", width: 61, height: 47)
        let out = dir + "/out.png"
        let junk = dir + "/junk.jpg"
        try Data("not a photo".utf8).write(to: URL(fileURLWithPath: junk))
        try assertFailsCleanly(["edit", input, "--box", "1,2,30,30", "--appearance-from", dir + "/none.png", "-o", out], output: out, mentions: "none.png")
        try assertFailsCleanly(["edit", input, "--box", "1,2,30,30", "--appearance-from", junk, "-o", out], output: out, mentions: "junk.jpg")
        try assertFailsCleanly(["edit", input, "--box", "1,2,30,30", "--appearance-from", input, "--appearance-weight", "-1", "-o", out],
                               output: out, mentions: "--appearance-weight")
        let small = dir + "/small.png"
        try ImageIO.write(Image(width: 12, height: 12, red: 0.5, green: 0.2, blue: 0.1), to: small)
        try assertFailsCleanly(["edit", input, "--box", "1,2,30,30", "--appearance-from", small, "-o", out], output: out, mentions: "at least")
        try assertFailsCleanly(["edit", input, "--box", "1,2,30,30", "--identity-from", dir + "/none.png", "-o", out], output: out, mentions: "none.png")
        try assertFailsCleanly(["edit", input, "--box", "1,2,30,30", "--identity-from", junk, "-o", out], output: out, mentions: "junk.jpg")
        try assertFailsCleanly(["edit", input, "--box", "1,2,30,30", "--identity-from", input, "--appearance-from", input, "-o", out],
                               output: out, mentions: "only one of")
        let portrait = repoRoot + "/Samples/astronaut.png"
        guard FileManager.default.fileExists(atPath: portrait) else { return XCTFail("\(portrait) is missing: run `make samples`") }
        // A reference without a face.
        try assertFailsCleanly(["edit", portrait, "--identity-from", input, "-o", out], output: out, mentions: "no face found in \(input)")
    }
}
