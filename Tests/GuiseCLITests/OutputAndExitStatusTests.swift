import Foundation
import XCTest
import GuiseFormats
import GuiseImage
import GuiseTensor
import GuiseTestSupport

/// The options every writing command shares (-o/--out, --json, --quiet), the early check of the
/// output path, and the exit status each kind of error gets.
extension CLITests {
    var admFixtures: String { fixtureDirectory }

    /// A small photo of smooth colour, in `dir`.
    func smoothPhoto(_ name: String = "smooth.png", size n: Int = 48) throws -> String {
        let path = dir + "/" + name
        let rgb = (0..<(3 * n * n)).map { i -> Float in Float(0.5 + 0.4 * sin(Double(i % n) * 0.3 + Double(i / (n * n)))) }
        try ImageIO.write(Image(width: n, height: n, rgb: rgb), to: path)
        return path
    }

    /// Runs a command whose output folder does not exist: it must fail before the work it would
    /// otherwise do, so its one-line error is all of stderr (no "denoising …" line, no progress
    /// bar), with exit status 2 and nothing written. No clock is read: a slow machine is no fault.
    func assertRefusesMissingFolder(_ arguments: [String], out: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try guise(arguments)
        XCTAssertEqual(run.status, 2, run.stderr, file: file, line: line)
        XCTAssertFalse(run.stderr.contains("\r"), "the output check came after the work: \(run.stderr)", file: file, line: line)
        XCTAssertEqual(run.stderrLines.count, 1, run.stderr, file: file, line: line)
        XCTAssertTrue(run.stderr.hasPrefix("guise: error: cannot write \(out): the folder"), run.stderr, file: file, line: line)
        XCTAssertEqual(run.stdout, "", file: file, line: line)
        let folder = URL(fileURLWithPath: out).deletingLastPathComponent().path
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder), "\(folder) was created", file: file, line: line)
    }

    func testUnwritableOutputFailsBeforeTheWork() throws {
        let photo = try smoothPhoto()
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        _ = try smoothPhoto("data/a.png")
        // Each of these runs for seconds (denoising with 8 views, 1000 sampling steps, 500
        // training steps) before it reaches its output.
        let png = dir + "/missing/out.png", weights = dir + "/missing/p.safetensors"
        try assertRefusesMissingFolder(["denoise", photo, "--sigma", "20", "--tta", "--steps", "20", "--out", png], out: png)
        try assertRefusesMissingFolder(["sample", "--model", admFixtures + "/adm_class.pt", "--config", admFixtures + "/adm_class.json",
                                        "--steps", "1000", "--n", "16", "-o", png], out: png)
        try assertRefusesMissingFolder(["train-prior", "--data", dir + "/data", "--config", "tiny", "--crop", "16", "--batch", "2",
                                        "--steps", "500", "--out", weights], out: weights)
        // The checkpoint and the loss log are outputs too.
        try assertRefusesMissingFolder(["train-prior", "--data", dir + "/data", "--config", "tiny", "--crop", "16", "--steps", "500",
                                        "--out", dir + "/p.safetensors", "--checkpoint", weights], out: weights)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/p.safetensors"))
        try assertRefusesMissingFolder(["model", "run", admFixtures + "/adm_legacy.pt", "--config", admFixtures + "/adm_legacy.json",
                                        "--inputs", admFixtures + "/adm_legacy_io.safetensors", "--out", weights], out: weights)
        try assertRefusesMissingFolder(["model", "convert", fixtureDirectory + "/zip_half.pt", "-o", weights], out: weights)
        try assertRefusesMissingFolder(["segment", photo, "--what", "person", "--out", png], out: png)

        // A wrong kind of output is a usage error, found as early.
        let wrongKind = try guise(["model", "convert", fixtureDirectory + "/zip_half.pt", "--out", dir + "/x.png"])
        XCTAssertEqual(wrongKind.status, 64, wrongKind.stderr)
        XCTAssertTrue(wrongKind.stderr.contains("must be a .safetensors file"), wrongKind.stderr)
        let noType = try guise(["sample", "--model", admFixtures + "/adm_class.pt", "--out", dir + "/x"])
        XCTAssertEqual(noType.status, 64, noType.stderr)
        XCTAssertTrue(noType.stderr.contains("unknown image type"), noType.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["data", "smooth.png"])
    }

    /// An output that is one of the command's own inputs (named as it is, another way, or
    /// through a link) is refused before any work: the photo it reads would be lost.
    func testAnOutputThatIsAnInputIsRefused() throws {
        let photo = try smoothPhoto("photo.png")
        let original = try Data(contentsOf: URL(fileURLWithPath: photo))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.png", withDestinationPath: photo)
        let other = dir + "/../" + URL(fileURLWithPath: dir).lastPathComponent + "/photo.png"
        let face = repoRoot + "/Samples/obama.jpg"
        let runs: [([String], String)] = [
            (["segment", photo, "--what", "person", "-o", photo], photo),
            (["segment", photo, "--what", "person", "-o", other], other),
            (["segment", photo, "--what", "person", "-o", dir + "/link.png"], dir + "/link.png"),
            (["denoise", photo, "--sigma", "20", "-o", photo], photo),
            (["swap", "--source", face, "--target", photo, "-o", photo, "--no-diffusion"], photo),
            (["swap", "--source", photo, "--target", face, "-o", photo, "--no-diffusion"], photo),
            (["edit", photo, "--box", "4,4,8,8", "-o", photo], photo),
            (["clothes", "--person", photo, "--garment", face, "-o", photo], photo),
        ]
        for (arguments, out) in runs {
            let run = try guise(arguments)
            XCTAssertEqual(run.status, 2, "\(arguments): \(run.stderr)")
            XCTAssertEqual(run.stderrLines.count, 1, run.stderr)
            XCTAssertEqual(run.stderr, "guise: error: cannot write \(out): it is the input \(photo), which it would replace; write to another file\n")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: photo)), original, "\(arguments) changed the input")
        }
        // Another file of the same name elsewhere is written as usual.
        let elsewhere = dir + "/elsewhere"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        let fine = try guise(["segment", photo, "--what", "person", "-o", elsewhere + "/photo.png", "--quiet"])
        XCTAssertEqual(fine.status, 0, fine.stderr)
    }

    func testJSONReportsAndQuiet() throws {
        // sample: progress on stderr unless --quiet; --json replaces the lines on stdout.
        let out = dir + "/s.png"
        let sampleArgs = ["sample", "--model", admFixtures + "/adm_class.pt", "--config", admFixtures + "/adm_class.json",
                          "--steps", "ddim4", "--seed", "3", "--class", "1", "--n", "2", "--out", out]
        let loud = try guise(sampleArgs)
        XCTAssertEqual(loud.status, 0, loud.stderr)
        XCTAssertTrue(loud.stderr.contains("sampling ["), loud.stderr)
        XCTAssertEqual(loud.stdout.split(separator: "\n").count, 2, loud.stdout)
        let quiet = try guise(sampleArgs + ["--quiet", "--json"])
        XCTAssertEqual(quiet.status, 0, quiet.stderr)
        XCTAssertEqual(quiet.stderr, "")
        let sample = try json(quiet)
        XCTAssertEqual(sample["files"] as? [String], [dir + "/s-0.png", dir + "/s-1.png"])
        XCTAssertEqual(sample["evaluations"] as? Int, 4)
        XCTAssertEqual(sample["classLabels"] as? [Int], [1, 1])
        XCTAssertEqual(sample["method"] as? String, "ddim")
        XCTAssertNotNil(sample["seconds"] as? Double)
        for f in sample["files"] as? [String] ?? [] { XCTAssertEqual(try ImageIO.read(f).width, sample["width"] as? Int) }

        // denoise with the shipped prior.
        let photo = try smoothPhoto()
        let denoised = try guise(["denoise", photo, "--sigma", "25", "-o", dir + "/d.png", "--json", "--quiet"])
        XCTAssertEqual(denoised.status, 0, denoised.stderr)
        XCTAssertEqual(denoised.stderr, "")
        let d = try json(denoised)
        XCTAssertEqual(d["out"] as? String, dir + "/d.png")
        XCTAssertEqual(d["width"] as? Int, 48)
        XCTAssertEqual(d["sigma"] as? Double, 25)
        XCTAssertTrue((d["model"] as? String ?? "").hasSuffix("guise-prior.safetensors"), "\(d)")
        XCTAssertEqual(try ImageIO.read(dir + "/d.png").height, 48)
        let noisy = try guise(["denoise", photo, "--sigma", "25", "-o", dir + "/d.png"])
        XCTAssertEqual(noisy.status, 0, noisy.stderr)
        XCTAssertTrue(noisy.stderr.contains("denoising"), noisy.stderr)
        XCTAssertTrue(noisy.stdout.hasPrefix(dir + "/d.png: 48x48"), noisy.stdout)

        // train-prior: two steps of the tiny prior.
        try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
        _ = try smoothPhoto("data/a.png")
        let trained = try guise(["train-prior", "--data", dir + "/data", "--config", "tiny", "--crop", "16", "--batch", "2",
                                 "--steps", "2", "--out", dir + "/p.safetensors", "--json", "--quiet"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        XCTAssertEqual(trained.stderr, "")
        let t = try json(trained)
        XCTAssertEqual(t["steps"] as? Int, 2)
        XCTAssertEqual(t["checkpoint"] as? String, dir + "/p.ckpt.safetensors")
        let loss = try XCTUnwrap(t["finalLoss"] as? Double)
        XCTAssertTrue(loss.isFinite && loss > 0, "loss \(loss)")
        XCTAssertGreaterThan(t["parameters"] as? Int ?? 0, 0)
        XCTAssertEqual(try SafeTensorsFile(path: dir + "/p.ckpt.safetensors").metadata["step"], "2")

        // model convert and model run.
        let converted = try guise(["model", "convert", fixtureDirectory + "/zip_half.pt",
                                   "-o", dir + "/c.safetensors", "--json"])
        XCTAssertEqual(converted.status, 0, converted.stderr)
        let c = try json(converted)
        XCTAssertEqual(c["tensors"] as? Int, 4)
        XCTAssertEqual(c["tensors"] as? Int, try SafeTensorsFile(path: dir + "/c.safetensors").names.count)
        let ran = try guise(["model", "run", admFixtures + "/adm_legacy.pt", "--config", admFixtures + "/adm_legacy.json",
                             "--inputs", admFixtures + "/adm_legacy_io.safetensors", "-o", dir + "/r.safetensors", "--json"])
        XCTAssertEqual(ran.status, 0, ran.stderr)
        let r = try json(ran)
        let written = try XCTUnwrap(r["tensors"] as? [[String: Any]])
        XCTAssertEqual(written.map { $0["name"] as? String }, ["out"])
        XCTAssertEqual(written.first?["shape"] as? [Int], try SafeTensorsFile(path: dir + "/r.safetensors").tensor("out").shape)

        // align and segment.
        let aligned = try json(try guise(["align", "Samples/astronaut.png", "--out", dir + "/a.png", "--size", "112", "--json"]))
        XCTAssertEqual(aligned["size"] as? Int, 112)
        XCTAssertEqual(aligned["faces"] as? Int, 1)
        let segmented = try json(try guise(["segment", "Samples/astronaut.png", "--what", "lips", "-o", dir + "/m.png", "--json"]))
        XCTAssertEqual(segmented["width"] as? Int, 512)
        let covered = try XCTUnwrap(segmented["covered"] as? Double)
        XCTAssertTrue(covered > 0 && covered < 0.05, "lips cover \(covered)")
    }

    func testExitStatusSaysWhatWentWrong() throws {
        func status(_ arguments: [String], environment: [String: String] = [:], mentions: String) throws -> Int32 {
            let run = try guise(arguments, environment: environment)
            XCTAssertEqual(run.stderrLines.count, 1, run.stderr)
            XCTAssertTrue(run.stderr.hasPrefix("guise: error: ") && run.stderr.contains(mentions), run.stderr)
            return run.status
        }
        let png = dir + "/out.png"
        // 2: the input is unreadable or invalid.
        let corrupt = dir + "/corrupt.png"
        try Data("not a picture at all".utf8).write(to: URL(fileURLWithPath: corrupt))
        XCTAssertEqual(try status(["align", corrupt, "--out", png], mentions: "not a supported image"), 2)
        XCTAssertEqual(try status(["landmarks", dir + "/nope.jpg"], mentions: "no such file"), 2)
        XCTAssertEqual(try status(["align", "Samples/astronaut.png", "--face", "2", "--out", png], mentions: "out of range"), 2)
        // ADM inputs of the wrong shape are the caller's error, not a broken weight file.
        let inputs = dir + "/in.safetensors"
        try SafeTensorsWriter.write(tensors: ["x": Tensor(zeros: [1, 5, 8, 8]), "t": Tensor(shape: [1], values: [3])], to: inputs)
        XCTAssertEqual(try status(["model", "run", admFixtures + "/adm_legacy.pt", "--config", admFixtures + "/adm_legacy.json",
                                   "--inputs", inputs, "--out", dir + "/o.safetensors"], mentions: "ADM input must be"), 2)
        // 3: a valid photo with nothing to work on.
        XCTAssertEqual(try status(["align", "Samples/coffee.png", "--out", png], mentions: "no face found"), 3)
        XCTAssertEqual(try status(["segment", "Samples/coffee.png", "--what", "skin", "--out", png], mentions: "no face found"), 3)
        let grey = dir + "/grey.png"
        try ImageIO.write(Image(width: 320, height: 240, red: 0.5, green: 0.5, blue: 0.5), to: grey)
        XCTAssertEqual(try status(["pose", grey], mentions: "no person found"), 3)
        // 4: a model file missing, without a manifest or with one that lists files not installed.
        let empty = dir + "/empty", listed = dir + "/listed"
        for d in [empty, listed] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try FileManager.default.copyItem(atPath: repoRoot + "/Models/manifest.json", toPath: listed + "/manifest.json")
        for models in [empty, listed] {
            let env = ["GUISE_MODELS": models]
            // Haar needs no model file and finds the face; the mesh model is what is missing.
            XCTAssertEqual(try status(["landmarks", "Samples/astronaut.png", "--detector", "haar"], environment: env, mentions: models), 4)
            XCTAssertEqual(try status(["pose", "Samples/messi5.jpg"], environment: env, mentions: models), 4)
            XCTAssertEqual(try status(["denoise", "Samples/astronaut.png", "--sigma", "10", "--out", png], environment: env, mentions: models), 4)
        }
        let cut = dir + "/cut.pt"
        let weights = try Data(contentsOf: URL(fileURLWithPath: admFixtures + "/adm_legacy.pt"))
        try weights.prefix(weights.count / 2).write(to: URL(fileURLWithPath: cut))
        XCTAssertEqual(try status(["sample", "--model", cut, "--out", png], mentions: cut), 4)
        // 5: a request this model cannot carry out.
        XCTAssertEqual(try status(["sample", "--model", admFixtures + "/adm_id.pt", "--config", admFixtures + "/adm_id.json",
                                   "--out", png, "--quiet"], mentions: "identity embedding"), 5)
        // 64: a malformed command line.
        XCTAssertEqual(try status(["align", "Samples/astronaut.png", "--size", "300", "--out", png], mentions: "--size"), 64)
        XCTAssertFalse(FileManager.default.fileExists(atPath: png))

        let help = try guise(["--help"])
        for line in ["2   an unreadable or invalid input", "3   nothing to work on", "4   a model file missing", "64  a malformed command line"] {
            XCTAssertTrue(help.stdout.contains(line), help.stdout)
        }
    }
}
