import Foundation
import XCTest
import GuiseTestSupport

/// The `guise` binary `swift test` built beside this test bundle (the test target depends on
/// it), else one in .build/debug or .build/release.
let guiseBinary: String? = {
    var dirs = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path,
                Bundle.main.bundleURL.deletingLastPathComponent().path]
    dirs += ["debug", "release"].map { repoRoot + "/.build/" + $0 }
    return dirs.map { $0 + "/guise" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}()

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
    var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast() }
}

func guise(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
    guard let binary = guiseBinary else { throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "guise binary"]) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary)
    p.arguments = arguments
    p.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

final class CLITests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        XCTAssertNotNil(guiseBinary, "no guise binary; run `swift build --product guise`")
        for s in ["astronaut.png", "coffee.png", "messi5.jpg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: repoRoot + "/Samples/" + s), "run `make samples`")
        }
        dir = FileManager.default.temporaryDirectory.path + "/guise-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A failing command: non-zero exit, exactly one `guise: error:` line on stderr, the
    /// output not created, and an existing output left as it was.
    func assertFails(_ arguments: [String], output: String? = nil, mentions: String,
                     environment: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) throws {
        var args = arguments
        if let output { args += ["--out", output] }
        let run = try guise(args, environment: environment)
        XCTAssertNotEqual(run.status, 0, "exit status", file: file, line: line)
        XCTAssertEqual(run.stderrLines.count, 1, "stderr: \(run.stderr)", file: file, line: line)
        XCTAssertTrue(run.stderr.hasPrefix("guise: error: "), run.stderr, file: file, line: line)
        XCTAssertTrue(run.stderr.contains(mentions), "stderr: \(run.stderr)", file: file, line: line)
        guard let output else { return }
        XCTAssertFalse(FileManager.default.fileExists(atPath: output), "\(output) was created", file: file, line: line)
        // Again with an existing output: it must survive untouched.
        let folder = URL(fileURLWithPath: output).deletingLastPathComponent().path
        if FileManager.default.fileExists(atPath: folder) {
            let existing = output
            try Data("keep me".utf8).write(to: URL(fileURLWithPath: existing))
            let again = try guise(args, environment: environment)
            XCTAssertNotEqual(again.status, 0, file: file, line: line)
            XCTAssertEqual(try String(contentsOfFile: existing, encoding: .utf8), "keep me", "output overwritten", file: file, line: line)
            try FileManager.default.removeItem(atPath: existing)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".partial-") }
        XCTAssertEqual(leftovers, [], "temporary files left behind", file: file, line: line)
    }

    func testHelpAndVersion() throws {
        let version = try guise(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertEqual(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "0.1.0")
        let help = try guise(["--help"])
        XCTAssertEqual(help.status, 0)
        for word in ["detect", "align", "model"] { XCTAssertTrue(help.stdout.contains(word), help.stdout) }
        let modelHelp = try guise(["model", "--help"])
        XCTAssertTrue(modelHelp.stdout.contains("verify"), modelHelp.stdout)
    }

    func testDetectPrintsJSONAndAnnotates() throws {
        let annotated = dir + "/faces.png"
        let run = try guise(["detect", "Samples/astronaut.png", "--json", "--annotate", annotated])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stderr, "")
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        let faces = try XCTUnwrap(report?["faces"] as? [[String: Any]])
        XCTAssertEqual(faces.count, 1)
        let box = try XCTUnwrap(faces[0]["box"] as? [String: Double])
        XCTAssertEqual(box["x"]!, 177, accuracy: 20)
        XCTAssertEqual(report?["width"] as? Int, 512)
        XCTAssertTrue(FileManager.default.fileExists(atPath: annotated))

        let none = try guise(["detect", "Samples/coffee.png"])
        XCTAssertEqual(none.status, 0, "no face is a result, not an error")
        XCTAssertTrue(none.stdout.contains("no faces"))
    }

    func testAlignWritesCrops() throws {
        for size in [256, 112] {
            let out = dir + "/crop\(size).png"
            let run = try guise(["align", "Samples/astronaut.png", "--out", out, "--size", String(size)])
            XCTAssertEqual(run.status, 0, run.stderr)
            let data = try Data(contentsOf: URL(fileURLWithPath: out))
            // PNG IHDR width and height, big-endian at bytes 16 and 20.
            XCTAssertEqual(Int(data[18]) << 8 | Int(data[19]), size)
            XCTAssertEqual(Int(data[22]) << 8 | Int(data[23]), size)
        }
    }

    func testErrorPaths() throws {
        let out = dir + "/out.png"
        try assertFails(["align", "Samples/nope.png"], output: out, mentions: "no such file")
        let corrupt = dir + "/corrupt.png"
        try Data("not a picture at all".utf8).write(to: URL(fileURLWithPath: corrupt))
        try assertFails(["align", corrupt], output: out, mentions: "not a supported image")
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: repoRoot + "/Samples/messi5.jpg"))
        let truncated = dir + "/truncated.jpg"
        try jpeg.prefix(jpeg.count / 2).write(to: URL(fileURLWithPath: truncated))
        try assertFails(["align", truncated], output: out, mentions: "truncated JPEG")
        var garbled = jpeg
        for k in stride(from: 2000, to: 5000, by: 7) { garbled[k] = k % 2 == 1 ? 0xFF : 0x13 }
        try garbled.write(to: URL(fileURLWithPath: dir + "/garbled.jpg"))
        try assertFails(["align", dir + "/garbled.jpg"], output: out, mentions: "Corrupt JPEG data")
        let png = try Data(contentsOf: URL(fileURLWithPath: repoRoot + "/Samples/astronaut.png"))
        let cut = dir + "/cut.png"
        try png.prefix(png.count / 3).write(to: URL(fileURLWithPath: cut))
        try assertFails(["align", cut], output: out, mentions: "truncated")
        try assertFails(["align", "Samples/coffee.png"], output: out, mentions: "no face found")
        try assertFails(["align", "Samples/astronaut.png", "--face", "3"], output: out, mentions: "out of range")
        try assertFails(["align", "Samples/astronaut.png"], output: dir + "/missing-folder/out.png", mentions: "does not exist")
        try assertFails(["align", "Samples/astronaut.png", "--size", "300"], output: out, mentions: "--size")
        try assertFails(["detect", "Samples/nope.png", "--annotate", out], mentions: "no such file")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        try assertFails(["detect", "Samples/astronaut.png", "--annotate", dir + "/none/a.png"], mentions: "does not exist")
        try assertFails(["detect"], mentions: "Missing expected argument")
    }

    func testModelListAndVerify() throws {
        // A private models folder: one intact file, one corrupted, the rest not installed.
        let models = dir + "/models"
        try FileManager.default.createDirectory(atPath: models, withIntermediateDirectories: true)
        let manifest = """
        {"sources": {"test": {"kind": "wheel", "package": "test==1"}},
         "files": [
          {"name": "abc.bin", "role": "test", "source": "test", "path": "x", "size": 3,
           "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "licence": "CC0-1.0"},
          {"name": "bad.bin", "role": "test", "source": "test", "path": "x", "size": 3,
           "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "licence": "MIT"},
          {"name": "absent.bin", "role": "test", "source": "test", "path": "x", "size": 3,
           "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "licence": "MIT"}]}
        """
        try Data(manifest.utf8).write(to: URL(fileURLWithPath: models + "/manifest.json"))
        try Data("abc".utf8).write(to: URL(fileURLWithPath: models + "/abc.bin"))
        let env = ["GUISE_MODELS": models]

        let list = try guise(["model", "list", "--json"], environment: env)
        XCTAssertEqual(list.status, 0, list.stderr)
        let files = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any])?["files"] as? [[String: Any]])
        XCTAssertEqual(files.map { $0["status"] as? String }, ["installed", "missing", "missing"])
        XCTAssertEqual(files.map { $0["licence"] as? String }, ["CC0-1.0", "MIT", "MIT"])

        let good = try guise(["model", "verify"], environment: env)
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertTrue(good.stdout.contains("ok        abc.bin"))

        try Data("abd".utf8).write(to: URL(fileURLWithPath: models + "/bad.bin"))
        try assertFails(["model", "verify"], mentions: "bad.bin", environment: env)

        try assertFails(["model", "list"], mentions: "manifest", environment: ["GUISE_MODELS": dir + "/nowhere"])
    }
}
