import Foundation
import XCTest
import GuiseFormats
import GuiseTestSupport
@testable import GuiseCLI

/// The parts of `guise batch` that need no photos: reading job lines, canonical JSON, arguments,
/// shards and the state journal.
final class BatchJobsTests: XCTestCase {
    func job(_ text: String, line: Int = 1) -> BatchJob {
        var j = BatchJobs.job(line: line, bytes: Array(text.utf8))
        j.parse()
        return j
    }

    func failure(_ j: BatchJob) -> JobFailure? {
        if case .failure(let f)? = j.command { return f }
        return nil
    }

    func testCanonicalJSONIgnoresKeyOrderAndSpacing() throws {
        let a = job(#"{"op":"edit","image":"a.png","out":"b.png","steps":4,"box":"1,2,3,4"}"#)
        let b = job(#"  { "box" : "1,2,3,4",  "steps": 4, "out": "b.png", "image": "a.png", "op": "edit" }"#)
        XCTAssertEqual(a.canonical, #"{"box":"1,2,3,4","image":"a.png","op":"edit","out":"b.png","steps":4}"#)
        XCTAssertEqual(a.canonical, b.canonical)
        XCTAssertEqual(a.key, b.key)
        XCTAssertEqual(a.key, BatchJobs.sha256(Array(a.canonical.utf8)))
        // Any difference in a value is another job.
        XCTAssertNotEqual(a.key, job(#"{"op":"edit","image":"a.png","out":"b.png","steps":5,"box":"1,2,3,4"}"#).key)
        // Escapes are normalised: "\u0041" and "A" are one string.
        XCTAssertEqual(job(#"{"op":"edit","image":"\u0041.png"}"#).canonical, job(#"{"op":"edit","image":"A.png"}"#).canonical)
        XCTAssertEqual(BatchJobs.canonicalJSON(.object([("k", .string("a\"b\\c\n\u{1}"))])), #"{"k":"a\"b\\c\n\u0001"}"#)
    }

    func testKeysBecomeTheCommandsArguments() throws {
        let fields: [(String, StrictJSON)] = [
            ("source", .array([.string("a.jpg"), .string("b.jpg")])), ("target", .string("t.jpg")), ("out", .string("-o.png")),
            ("steps", .number("4")), ("no-diffusion", .bool(true)), ("ddpm", .bool(false)), ("mask-regions", .array([.string("eyes"), .string("lips")])),
        ]
        XCTAssertEqual(try BatchJobs.arguments(for: Swap.self, fields: fields),
                       ["--source=a.jpg", "--source=b.jpg", "--target=t.jpg", "--out=-o.png", "--steps=4", "--no-diffusion",
                        "--mask-regions=eyes", "--mask-regions=lips"])
        XCTAssertEqual(try BatchJobs.arguments(for: EditCommand.self, fields: [("box", .string("-1,0,4,4")), ("image", .string("-p.png"))]),
                       ["--box=-1,0,4,4", "--", "-p.png"])
        // Parsed by the command's own parser, with its validation.
        guard case .success(let swap as Swap)? = job(#"{"op":"swap","source":["a.jpg","b.jpg"],"target":"t.jpg","out":"o.png","steps":4,"seed":18446744073709551615,"mask-regions":["eyes","lips"]}"#).command else {
            return XCTFail("the swap job did not parse")
        }
        XCTAssertEqual(swap.source, ["a.jpg", "b.jpg"])
        XCTAssertEqual(swap.steps, 4)
        XCTAssertEqual(swap.seed, .max)
        XCTAssertEqual(Set(swap.maskRegions.map(\.rawValue)), ["eyes", "lips"])
        XCTAssertEqual(swap.inputFiles, ["a.jpg", "b.jpg", "t.jpg"])
        XCTAssertEqual(swap.modelFiles, [])
        XCTAssertTrue(failure(job(#"{"op":"swap","source":"a.jpg","target":"t.jpg","out":"o.png","steps":1}"#))?.message.contains("steps") ?? false,
                      "the swap's own validation refuses 1 step")
        guard case .success(let edit as EditCommand)? = job(#"{"op":"edit","source":"p.png","mask":"m.png","out":"o.png","model":"prior"}"#).command else {
            return XCTFail("the edit job did not parse")
        }
        XCTAssertEqual(edit.image, "p.png")
        XCTAssertEqual(edit.inputFiles, ["p.png", "m.png"])
        XCTAssertEqual(edit.modelFiles, [], "the embedded prior is not a file the job names")
    }

    func testBadLinesAreOneLineFailures() throws {
        let cases: [(String, String)] = [
            (#"{"op":"edit""#, "not valid JSON"),
            (#"["op","edit"]"#, "must be a JSON object"),
            (#"{"image":"a.png"}"#, "no \"op\""),
            (#"{"op":3}"#, "unknown op"),
            (#"{"op":"edit","op":"swap"}"#, "appears twice"),
            (#"{"op":"edit","image":"a.png","out":"o.png","box":"1,1,2,2","--steps":3}"#, "is not an option name"),
            (#"{"op":"edit","image":"a.png","out":"o.png","box":"1,1,2,2","steps=3":3}"#, "is not an option name"),
            (#"{"op":"edit","image":"a.png","out":"o.png","box":"1,1,2,2","seed":null}"#, "must be a string, a number"),
            (#"{"op":"edit","image":"a.png","out":"o.png","box":{"x":1}}"#, "must be a string, a number"),
            (#"{"op":"edit","image":"a.png","out":"o.png","box":"1,1,2,2","help":true}"#, "not job options"),
            (#"{"op":"clothes","person":"a.png","garment":"b.png","out":"o.png","shading":2}"#, "shading"),
        ]
        for (text, mention) in cases {
            let f = failure(job(text))
            XCTAssertNotNil(f, text)
            XCTAssertTrue(f?.message.contains(mention) ?? false, "\(text): \(f?.message ?? "")")
            XCTAssertFalse(f?.message.contains("\n") ?? true, text)
            XCTAssertEqual(f?.category, "options", text)
        }
    }

    func testBlankLinesAreNotJobsAndLinesKeepTheirNumbers() {
        let jobs = BatchJobs.read(Data("\u{FEFF}{\"op\":\"edit\"}\r\n\n   \n{\"op\":\"swap\"}".utf8))
        XCTAssertEqual(jobs.map(\.line), [1, 4])
        XCTAssertEqual(jobs.map(\.op), ["edit", "swap"])
    }

    func testShardsSplitEveryJobExactlyOnce() throws {
        let keys = (0..<500).map { BatchJobs.sha256(Array("job \($0)".utf8)) }
        for n in [1, 2, 3, 7] {
            let shards = (0..<n).map { Shard(index: $0, count: n) }
            var sizes = [Int](repeating: 0, count: n)
            for key in keys {
                let owners = shards.indices.filter { shards[$0].contains(key: key) }
                XCTAssertEqual(owners.count, 1, "\(key) in shards \(owners) of \(n)")
                sizes[owners.first ?? 0] += 1
            }
            XCTAssertGreaterThan(sizes.min() ?? 0, 500 / n / 2, "shards of \(n) are far from even: \(sizes)")
        }
        // The documented rule: the key's first 16 hex digits as a number, modulo N.
        let key = "00000000000000070123456789abcdef0123456789abcdef0123456789abcdef"
        XCTAssertTrue(Shard(index: 3, count: 4).contains(key: key))
        XCTAssertTrue(Shard(index: 1, count: 2).contains(key: key))
        XCTAssertEqual(try Shard(parsing: "3/8"), Shard(index: 3, count: 8))
        for bad in ["8/8", "-1/2", "1", "a/b", "1/0", "1/2/3"] { XCTAssertThrowsError(try Shard(parsing: bad), bad) }
        XCTAssertEqual(Batch.defaultState(jobs: "/data/jobs.jsonl", shard: Shard(index: 2, count: 5)), "/data/jobs.jsonl.state.2-of-5")
        XCTAssertEqual(Batch.defaultState(jobs: "jobs.jsonl", shard: .all), "jobs.jsonl.state")
    }

    func testJournalSkipsATornLastLineAndAppendsOnAFreshLine() throws {
        let path = temporaryPath("journal.state")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let done = JournalRecord(event: "done", job: "k1", inputs: "i1", line: 1, out: "a.png")
        do {
            let j = try BatchJournal(path: path)
            try j.append(done)
        }
        // A run killed in the middle of a record.
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"event":"done","job":"k2","inp"#.utf8))
        handle.closeFile()

        let j = try BatchJournal(path: path)
        var (records, unreadable) = try j.read()
        XCTAssertEqual(records, [done])
        XCTAssertEqual(unreadable, 1)
        let next = JournalRecord(event: "failed", job: "k3", line: 3, error: "no face", category: "notFound")
        try j.append(next)
        (records, unreadable) = try j.read()
        XCTAssertEqual(records, [done, next], "the record after the torn line is whole")
        XCTAssertEqual(unreadable, 1)
        // A second run on the same state file is refused while this one holds it.
        XCTAssertThrowsError(try BatchJournal(path: path)) { e in
            XCTAssertTrue("\(e)".contains("in use by another guise batch"), "\(e)")
        }
    }

    func testInputsHashFollowsEveryInputFile() throws {
        let a = temporaryPath("a.bin"), b = temporaryPath("b.bin")
        defer { for p in [a, b] { try? FileManager.default.removeItem(atPath: p) } }
        try Data("first".utf8).write(to: URL(fileURLWithPath: a))
        try Data("second".utf8).write(to: URL(fileURLWithPath: b))
        let hasher = InputHasher()
        XCTAssertEqual(try hasher.digest(of: a), BatchJobs.sha256(Array("first".utf8)))
        let h1 = try hasher.inputsHash(canonical: "{}", files: [a, b])
        XCTAssertEqual(try hasher.inputsHash(canonical: "{}", files: [a, b]), h1)
        XCTAssertNotEqual(try hasher.inputsHash(canonical: "{\"x\":1}", files: [a, b]), h1)
        XCTAssertNotEqual(try hasher.inputsHash(canonical: "{}", files: [b, a]), h1)
        usleep(10_000)
        try Data("changed".utf8).write(to: URL(fileURLWithPath: b))
        XCTAssertNotEqual(try hasher.inputsHash(canonical: "{}", files: [a, b]), h1, "a changed input file changes the hash")
        XCTAssertThrowsError(try hasher.digest(of: temporaryPath("none.bin")))
    }
}
