import Foundation
import XCTest
import GuiseImage
import GuiseTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `guise batch` end to end through the binary: bad jobs fail alone, reruns resume, shards split
/// the work, a run killed at random points still ends with every job done once, and K workers
/// write what one writes.
final class BatchCommandTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        XCTAssertNotNil(guiseBinary, "no guise binary; run `swift build --product guise`")
        for s in ["astronaut.png", "hanks.png", "coffee.png", "messi5.jpg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: repoRoot + "/Samples/" + s), "run `make samples`")
        }
        dir = FileManager.default.temporaryDirectory.path + "/guise-batch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    // MARK: - Inputs and jobs

    /// A small textured RGB photo (cheap to edit), different for each `variant`.
    @discardableResult
    func writePhoto(_ name: String, variant: Int = 0, width w: Int = 48, height h: Int = 40) throws -> String {
        var samples = [UInt16](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let i = 3 * (y * w + x)
                samples[i] = UInt16((x * 1597 + y * 331 + variant * 7919) % 65536)
                samples[i + 1] = UInt16((y * 65535 / h + variant * 4099) % 65536)
                samples[i + 2] = (x / 3 + variant) % 2 == 0 ? 50000 : 9000
            }
        }
        let path = dir + "/" + name
        try ImageIO.write(Image(interleaved: samples, width: w, height: h, channels: 3), to: path)
        return path
    }

    /// The astronaut's head on a 200×200 crop: a face BlazeFace finds, small enough to swap fast.
    func writeFaceTarget() throws -> String {
        let path = dir + "/face.png"
        try ImageIO.write(try ImageIO.read(repoRoot + "/Samples/astronaut.png").cropped(x: 110, y: 20, width: 200, height: 200), to: path)
        return path
    }

    func edit(_ image: String, out: String, seed: Int, steps: Int = 3, extra: [String: Any] = [:]) -> [String: Any] {
        ["op": "edit", "image": image, "box": "14,10,12,9", "steps": steps, "seed": seed, "out": out].merging(extra) { $1 }
    }

    func line(_ job: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: job, options: [.sortedKeys]), as: UTF8.self)
    }

    func writeJobs(_ lines: [String], to name: String = "jobs.jsonl") throws -> String {
        let path = dir + "/" + name
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func summary(_ run: Run) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        return try XCTUnwrap(object, "no summary on stdout: \(run.stdout) \(run.stderr)")
    }

    /// The state file's readable records.
    func records(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// How many "done" records each job key has.
    func doneCounts(_ path: String) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for r in try records(path) where r["event"] as? String == "done" { counts[r["job"] as? String ?? "?", default: 0] += 1 }
        return counts
    }

    func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    // MARK: - Tests

    func testBadJobsFailAloneAndTheOthersRun() throws {
        let photo = try writePhoto("p.png")
        let face = try writeFaceTarget()
        // Half-size person and garment photos keep the clothes job quick.
        let person = dir + "/person.png", garment = dir + "/garment.png"
        let m = try ImageIO.read(repoRoot + "/Samples/messi5.jpg"), a = try ImageIO.read(repoRoot + "/Samples/astronaut.png")
        try ImageIO.write(try m.resized(width: m.width / 2, height: m.height / 2), to: person)
        try ImageIO.write(try a.resized(width: a.width / 2, height: a.height / 2), to: garment)
        let lines = [
            try line(edit(photo, out: dir + "/good1.png", seed: 1)),                                    // 1
            "{\"op\": \"edit\", \"image\": ",                                                           // 2 malformed
            try line(["op": "resize", "image": photo, "out": dir + "/x.png"]),                          // 3 unknown op
            try line(edit(dir + "/missing.png", out: dir + "/missing-out.png", seed: 1)),              // 4 missing file
            "",                                                                                         // 5 blank: not a job
            try line(edit(photo, out: dir + "/unknown-key.png", seed: 1, extra: ["frobnicate": 2])),   // 6 unknown key
            try line(edit(photo, out: dir + "/bad-value.png", seed: 1, extra: ["steps": "many"])),     // 7 bad value
            try line(["op": "swap", "source": repoRoot + "/Samples/coffee.png", "target": face,         // 8 no face
                      "out": dir + "/noface.png", "no-diffusion": true]),
            try line(["op": "swap", "source": repoRoot + "/Samples/hanks.png", "target": face,          // 9 good swap
                      "out": dir + "/swap.png", "no-diffusion": true, "json": true]),
            try line(edit(photo, out: dir + "/twice.png", seed: 2, extra: ["source": photo])),         // 10 photo twice
            try line(["op": "edit", "source": photo, "box": "-4,-4,20,20", "steps": 2, "out": dir + "/good2.png"]), // 11 edit's photo as "source"
            try line(["op": "clothes", "person": person, "garment": garment, "out": dir + "/clothes.png", "kind": "upper"]), // 12
        ]
        let jobs = try writeJobs(lines)
        let run = try guise(["batch", jobs, "--quiet"])
        XCTAssertEqual(run.status, 6, "some jobs failed: exit status 6; stderr: \(run.stderr)")
        XCTAssertEqual(run.stderrLines.count, 1, run.stderr)
        XCTAssertTrue(run.stderr.hasPrefix("guise: error: 7 of 11 jobs failed"), run.stderr)
        let s = try summary(run)
        XCTAssertEqual(s["lines"] as? Int, 11)
        XCTAssertEqual(s["done"] as? Int, 4)
        XCTAssertEqual(s["failed"] as? Int, 7)
        XCTAssertEqual(s["skipped"] as? Int, 0)
        let failures = try XCTUnwrap(s["failures"] as? [[String: Any]])
        let byLine = Dictionary(uniqueKeysWithValues: failures.map { ($0["line"] as? Int ?? 0, $0) })
        XCTAssertEqual(byLine.keys.sorted(), [2, 3, 4, 6, 7, 8, 10])
        func check(_ line: Int, _ category: String, _ mentions: String, file: StaticString = #filePath, fileLine: UInt = #line) {
            let f = byLine[line] ?? [:]
            XCTAssertEqual(f["category"] as? String, category, "line \(line): \(f)", file: file, line: fileLine)
            let error = f["error"] as? String ?? ""
            XCTAssertTrue(error.contains(mentions), "line \(line): \(error)", file: file, line: fileLine)
            XCTAssertFalse(error.contains("\n"), "one line", file: file, line: fileLine)
        }
        check(2, "options", "not valid JSON")
        check(3, "options", "unknown op \"resize\"")
        check(4, "input", "missing.png")
        check(6, "options", "frobnicate")
        check(7, "options", "many")
        check(8, "notFound", "no face")
        check(10, "options", "give the photo once")
        for name in ["good1.png", "good2.png", "swap.png", "swap.png.json", "clothes.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + name), "\(name) missing")
        }
        for name in ["x.png", "missing-out.png", "unknown-key.png", "bad-value.png", "noface.png", "twice.png"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/" + name), "\(name) written by a failed job")
        }
        // The report beside the swap's output is the command's --json report.
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/swap.png.json"))) as? [String: Any]
        XCTAssertEqual(report?["out"] as? String, dir + "/swap.png")
        XCTAssertEqual(((report?["report"] as? [String: Any])?["faces"] as? [Any])?.count, 1)
        let state = try records(jobs + ".state")
        XCTAssertEqual(state.filter { $0["event"] as? String == "done" }.count, 4)
        XCTAssertEqual(state.filter { $0["event"] as? String == "failed" }.count, 7)
        XCTAssertEqual(state.first?["event"] as? String, "start")
        XCTAssertEqual(state.last?["event"] as? String, "end")
    }

    func testRerunSkipsFinishedJobsAndRedoesChangedOnes() throws {
        let photos = try (0..<3).map { try writePhoto("p\($0).png", variant: $0) }
        let face = try writeFaceTarget()
        var lines = try photos.enumerated().map { try line(edit($1, out: dir + "/e\($0).png", seed: $0)) }
        lines.append(try line(["op": "swap", "source": repoRoot + "/Samples/hanks.png", "target": face,
                               "out": dir + "/s.png", "no-diffusion": true]))
        let jobs = try writeJobs(lines)
        let first = try guise(["batch", jobs, "--quiet"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(try summary(first)["done"] as? Int, 4)
        let outs = (0..<3).map { dir + "/e\($0).png" } + [dir + "/s.png"]
        let before = outs.map(bytes)

        XCTAssertEqual(first.stderr, "", "--quiet: nothing on stderr")
        let again = try guise(["batch", jobs])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.hasPrefix("\rbatch [") && again.stderr.contains("4/4") && again.stderr.hasSuffix("\n"),
                      "the progress bar: \(again.stderr.debugDescription)")
        XCTAssertEqual(try summary(again)["skipped"] as? Int, 4)
        XCTAssertEqual(try summary(again)["done"] as? Int, 0)

        // A changed input photo, a deleted output and a changed option each make their job run again.
        try writePhoto("p1.png", variant: 7)
        try FileManager.default.removeItem(atPath: dir + "/e2.png")
        lines[3] = try line(["op": "swap", "source": repoRoot + "/Samples/hanks.png", "target": face,
                             "out": dir + "/s.png", "no-diffusion": true, "shape": 0.3])
        _ = try writeJobs(lines)
        let third = try guise(["batch", jobs, "--quiet"])
        XCTAssertEqual(third.status, 0, third.stderr)
        let s = try summary(third)
        XCTAssertEqual(s["done"] as? Int, 3)
        XCTAssertEqual(s["skipped"] as? Int, 1)
        XCTAssertEqual(bytes(outs[0]), before[0], "an unchanged job's output is untouched")
        XCTAssertNotEqual(bytes(outs[1]), before[1], "the job whose photo changed ran again")
        XCTAssertEqual(bytes(outs[2]), before[2], "a deleted output is made again, the same")
        XCTAssertNotEqual(bytes(outs[3]), before[3], "the job whose options changed ran again")
    }

    func testShardsSideBySideTakeEveryJobExactlyOnce() throws {
        let photo = try writePhoto("p.png")
        let lines = try (0..<10).map { try line(edit(photo, out: dir + "/e\($0).png", seed: $0, steps: 2)) }
        let jobs = try writeJobs(lines)
        // Both shards at once, as two array tasks would run.
        let runs = try [0, 1].map { i -> (Process, Pipe) in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: guiseBinary!)
            p.arguments = ["batch", jobs, "--shard", "\(i)/2", "--quiet", "--summary", dir + "/summary\(i).json"]
            let err = Pipe()
            p.standardError = err
            try p.run()
            return (p, err)
        }
        var selected: [Int] = []
        for (i, (p, err)) in runs.enumerated() {
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, stderr)
            let s = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/summary\(i).json"))) as? [String: Any]
            XCTAssertEqual(s?["done"] as? Int, s?["selected"] as? Int)
            XCTAssertEqual(s?["state"] as? String, jobs + ".state.\(i)-of-2")
            selected.append(s?["selected"] as? Int ?? -1)
        }
        XCTAssertEqual(selected.reduce(0, +), 10)
        let shard0 = try doneCounts(jobs + ".state.0-of-2"), shard1 = try doneCounts(jobs + ".state.1-of-2")
        XCTAssertEqual(shard0.count + shard1.count, 10)
        XCTAssertTrue(Set(shard0.keys).isDisjoint(with: shard1.keys), "a job ran in both shards")
        XCTAssertEqual(Set(shard0.values).union(shard1.values), [1])
        for k in 0..<10 { XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/e\(k).png")) }

        // A job's shard follows from the job, not its line: reordered, each shard has its own jobs again.
        _ = try writeJobs(lines.reversed())
        for i in [0, 1] {
            let again = try guise(["batch", jobs, "--shard", "\(i)/2", "--quiet"])
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertEqual(try summary(again)["skipped"] as? Int, selected[i])
        }
        // Re-sharded to 3, every job counts as finished: the shards' old state files are read too.
        var skipped = 0
        for i in 0..<3 {
            let run = try guise(["batch", jobs, "--shard", "\(i)/3", "--quiet"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertEqual(try summary(run)["done"] as? Int, 0)
            skipped += try summary(run)["skipped"] as? Int ?? 0
        }
        XCTAssertEqual(skipped, 10)
    }

    func testRunsKilledAtRandomPointsEndWithEveryJobDoneOnce() throws {
        let photos = try (0..<3).map { try writePhoto("p\($0).png", variant: $0, width: 64, height: 48) }
        func jobLines(_ folder: String) throws -> [String] {
            try (0..<24).map { k in
                try line(edit(photos[k % 3], out: folder + "/e\(k).png", seed: k, steps: 2 + k % 2,
                              extra: k % 4 == 3 ? ["json": true] : [:]))
            }
        }
        // The outputs an uninterrupted run writes.
        let reference = dir + "/reference", faulty = dir + "/faulty"
        for f in [reference, faulty] { try FileManager.default.createDirectory(atPath: f, withIntermediateDirectories: true) }
        let clean = try guise(["batch", try writeJobs(try jobLines(reference), to: "reference.jsonl"), "--quiet"])
        XCTAssertEqual(clean.status, 0, clean.stderr)
        let expected = (0..<24).map { bytes(reference + "/e\($0).png") }
        XCTAssertFalse(expected.contains(nil))
        // A job's own time here, from the reference run.
        let perJob = try records(dir + "/reference.jsonl.state").compactMap { $0["seconds"] as? Double }.reduce(0, +) / 24

        // Kill points follow the run's progress, not a clock, so they land among the jobs on a
        // fast machine as on a slow one: each run is killed at a random moment within half a
        // job's time, mostly after one more job is recorded done (in the next job, its output's
        // rename or its record), now and then right away (in its start-up).
        let jobs = try writeJobs(try jobLines(faulty), to: "faulty.jsonl")
        let outs = (0..<24).map { faulty + "/e\($0).png" }
        func recordedDone() -> Int { ((try? records(jobs + ".state")) ?? []).filter { $0["event"] as? String == "done" }.count }
        var rng = SplitMix(seed: UInt64(Date().timeIntervalSince1970 * 1000))
        let seed = rng.state
        var schedule: [String] = []
        var interrupted = 0
        for attempt in 0..<20 {
            let wait = rng.next() % 4 == 0 ? 0 : 1, delay = Int(perJob * 500 * Double(rng.next() % 1000) / 1000)
            schedule.append("+\(wait) job, \(delay) ms")
            let target = recordedDone() + wait
            let p = Process()
            p.executableURL = URL(fileURLWithPath: guiseBinary!)
            p.arguments = ["batch", jobs, "--quiet", "--jobs", attempt % 2 == 0 ? "1" : "2"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(30)
            while recordedDone() < target && p.isRunning && Date() < deadline { usleep(2000) }
            usleep(UInt32(delay * 1000))
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            // Whatever is at an output path is the whole, final output.
            var present = 0
            for (k, out) in outs.enumerated() {
                guard let b = bytes(out) else { continue }
                present += 1
                XCTAssertEqual(b, expected[k], "\(out) after kill \(attempt) (seed \(seed), schedule \(schedule)) is not the finished output")
            }
            if present < outs.count { interrupted += 1 }
        }
        let finishedUnderKills = outs.filter { bytes($0) != nil }.count
        print("batch fault test: \(interrupted) of 20 kills cut a run short; \(finishedUnderKills) of 24 jobs finished between kills (seed \(seed))")
        // The kills must have cut runs short while jobs were finishing, or this test shows nothing.
        XCTAssertGreaterThanOrEqual(interrupted, 10, "seed \(seed), schedule \(schedule)")
        XCTAssertGreaterThanOrEqual(finishedUnderKills, 6, "seed \(seed), schedule \(schedule)")
        let last = try guise(["batch", jobs, "--quiet"])
        XCTAssertEqual(last.status, 0, last.stderr)
        for (k, out) in outs.enumerated() { XCTAssertEqual(bytes(out), expected[k], "\(out)") }
        let counts = try doneCounts(jobs + ".state")
        XCTAssertEqual(counts.count, 24, "seed \(seed), schedule \(schedule)")
        XCTAssertEqual(Set(counts.values), [1], "every job is recorded done exactly once (seed \(seed), schedule \(schedule))")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: faulty).filter { $0.contains(".partial-") }
        XCTAssertEqual(leftovers, [], "temporary files left beside the outputs")
        for k in stride(from: 3, to: 24, by: 4) { XCTAssertNotNil(bytes(outs[k] + ".json"), "report of job \(k)") }
    }

    func testTwoWorkersWriteWhatOneWrites() throws {
        let photos = try (0..<2).map { try writePhoto("p\($0).png", variant: $0) }
        let face = try writeFaceTarget()
        func jobLines(_ folder: String) throws -> [String] {
            [
                try line(["op": "swap", "source": repoRoot + "/Samples/hanks.png", "target": face, "out": folder + "/swap.png",
                          "steps": 4, "strength": 0.5, "seed": 5, "work-size": 128]),
                try line(["op": "swap", "source": repoRoot + "/Samples/hanks.png", "target": face, "out": folder + "/warp.png",
                          "no-diffusion": true]),
                try line(edit(photos[0], out: folder + "/fill.png", seed: 1, steps: 4)),
                try line(edit(photos[1], out: folder + "/harmonize.png", seed: 2, steps: 4, extra: ["harmonize": true])),
                try line(edit(photos[1], out: folder + "/ddim.png", seed: 3, steps: 4, extra: ["sampler": "ddim"])),
            ]
        }
        var results: [[Data?]] = []
        for workers in [1, 2] {
            let folder = dir + "/jobs\(workers)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let run = try guise(["batch", try writeJobs(try jobLines(folder), to: "jobs\(workers).jsonl"), "--jobs", "\(workers)", "--quiet"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertEqual(try summary(run)["done"] as? Int, 5)
            results.append(["swap", "warp", "fill", "harmonize", "ddim"].map { bytes(folder + "/\($0).png") })
        }
        XCTAssertFalse(results[0].contains(nil))
        for (k, name) in ["swap", "warp", "fill", "harmonize", "ddim"].enumerated() {
            XCTAssertEqual(results[0][k], results[1][k], "\(name): --jobs 2 wrote other bytes than --jobs 1")
        }
        // And what the command line writes for the same job.
        let alone = dir + "/alone.png"
        let run = try guise(["swap", "--source", repoRoot + "/Samples/hanks.png", "--target", face, "-o", alone,
                             "--steps", "4", "--strength", "0.5", "--seed", "5", "--work-size", "128", "--quiet"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(bytes(alone), results[0][0], "a batch job wrote other bytes than guise swap")
    }

    func testAMissingModelStopsTheRun() throws {
        let photo = try writePhoto("p.png")
        let jobs = try writeJobs([
            try line(edit(photo, out: dir + "/e0.png", seed: 0)),
            try line(edit(photo, out: dir + "/e1.png", seed: 1, extra: ["model": dir + "/nothere.safetensors"])),
            try line(edit(photo, out: dir + "/e2.png", seed: 2)),
        ])
        let run = try guise(["batch", jobs, "--quiet"])
        XCTAssertEqual(run.status, 4, "a model problem: exit status 4; \(run.stderr)")
        XCTAssertEqual(run.stderrLines.count, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("line 2: ") && run.stderr.contains("nothere.safetensors") && run.stderr.contains("1 job not run"), run.stderr)
        let s = try summary(run)
        XCTAssertEqual(s["done"] as? Int, 1)
        XCTAssertEqual(s["failed"] as? Int, 1)
        XCTAssertEqual(s["notRun"] as? Int, 1)
        XCTAssertEqual((s["failures"] as? [[String: Any]])?.first?["category"] as? String, "model")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/e2.png"))
    }

    func testRunLevelFailuresStopBeforeAnyJob() throws {
        let photo = try writePhoto("p.png")
        let jobs = try writeJobs([try line(edit(photo, out: dir + "/e.png", seed: 1))])
        let missing = try guise(["batch", dir + "/nothere.jsonl"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("cannot read the jobs file"), missing.stderr)
        let badShard = try guise(["batch", jobs, "--shard", "2/2"])
        XCTAssertEqual(badShard.status, 64)
        XCTAssertTrue(badShard.stderr.contains("--shard takes I/N"), badShard.stderr)
        // A state file held by a running batch (here, this process's lock on it) cannot be shared.
        let fd = open(jobs + ".state", O_RDWR | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        let locked = try guise(["batch", jobs, "--quiet"])
        XCTAssertEqual(locked.status, 2, locked.stderr)
        XCTAssertTrue(locked.stderr.contains("in use by another guise batch"), locked.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/e.png"))
    }
}

/// A small seeded generator, so a failing kill schedule can be replayed from its seed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
