import ArgumentParser
import Foundation
import GuiseFiles
import GuiseFormats
import GuisePipelines
#if canImport(Glibc)
import Glibc
#endif

/// `guise batch`: many swap, edit and clothes jobs from one JSON Lines file (docs/BATCH.md).
struct Batch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run many swap, edit and clothes jobs from a JSON Lines file; a killed run resumes where it stopped.",
        discussion: """
            Each line is one job: {"op": "swap", "source": "me.jpg", "target": "group.jpg", "out": "a.png", \
            "seed": 3}. "op" is swap, edit or clothes; the other keys are that command's long options without \
            the dashes (true for a flag, a list to repeat an option; edit's photo is "image" or "source"); "json": \
            true writes the command's JSON report to <out>.json. A job is parsed and checked by the command's own \
            parser, so it takes exactly what the command line takes. Relative paths are relative to the current \
            folder. A job that fails (a bad line, an unknown key, a photo without a face) is recorded with its \
            reason and the others go on; a job that finds a model file missing or damaged stops the run.

            The state file (default <jobs>.state, or <jobs>.state.I-of-N with --shard) records every finished \
            job with the sha256 of its canonical JSON and its input files, flushed to disk before the next job \
            counts on it; outputs are written to a temporary file and renamed. Run the same command again after \
            a crash or kill -9: jobs whose output exists and whose inputs are unchanged are skipped, every other \
            job runs, and failed jobs are tried again.

            --shard I/N takes the jobs whose canonical JSON's sha256 is I modulo N, so N processes (a Slurm \
            job array, a Kubernetes Indexed Job) share a file with no coordinator, each with its own state file. \
            The summary (done, skipped, failed with reasons, time) goes to stdout or --summary. Exit status: 0 \
            when every job of the share is done or skipped, 6 when some failed, 4 when a model problem stopped \
            the run, and the usual statuses when the run cannot start.
            """)

    @Argument(help: "The jobs file: one JSON object per line.")
    var file: String

    @Option(help: "The state file (default: <jobs>.state, or <jobs>.state.I-of-N with --shard).")
    var state: String?

    @Option(help: "Run share I of N (0 <= I < N): the jobs whose canonical JSON's sha256 is I modulo N.")
    var shard = "0/1"

    @Option(name: .customLong("jobs"), help: "Jobs run at once in this process; they share the loaded models.")
    var workers = 1

    @Option(help: "Write the summary JSON to this file instead of stdout.")
    var summary: String?

    @Flag(help: "No progress bar or warnings on stderr (errors are still printed).")
    var quiet = false

    func validate() throws {
        _ = try Shard(parsing: shard)
        guard (1...64).contains(workers) else { throw ValidationError("--jobs must be between 1 and 64") }
    }

    /// The state file a shard uses unless --state names one.
    static func defaultState(jobs: String, shard: Shard) -> String {
        shard.count == 1 ? jobs + ".state" : jobs + ".state.\(shard.index)-of-\(shard.count)"
    }

    func run() throws {
        let start = Date()
        let shard = try Shard(parsing: self.shard)
        if let summary { try AtomicFile.checkWritable(summary) }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            let reason = FileManager.default.fileExists(atPath: file) ? "it is not a readable file" : "no such file"
            throw FileError("cannot read the jobs file \(file): \(reason)")
        }
        let all = BatchJobs.read(data)
        let mine = all.filter { shard.contains(key: $0.key) }
        let statePath = state ?? Self.defaultState(jobs: file, shard: shard)
        let journal = try BatchJournal(path: statePath)
        let (records, unreadable) = try journal.read()
        var finished = records.filter { $0.event == "done" }
        if state == nil {
            // Jobs finished under another shard count (the file was re-sharded) are finished too.
            let own = URL(fileURLWithPath: statePath).standardizedFileURL.path
            for other in Self.siblingStates(jobs: file) where other != own {
                finished += BatchJournal.readDone(path: other)
            }
        }
        try journal.append(JournalRecord(event: "start", time: Self.timestamp(), pid: getpid(), shard: shard.description, jobs: file))
        let removed = BatchRunner.removeStaleTemporaries(outs: mine.compactMap(\.out))

        let runner = BatchRunner(journal: journal, finished: Set(finished.compactMap { r in r.job.flatMap { j in r.inputs.map { j + ":" + $0 } } }),
                                 writers: BatchJobs.writers(all), progress: BatchProgress(total: mine.count, enabled: !quiet))
        runner.run(mine, workers: workers)
        try? journal.append(JournalRecord(event: "end", time: Self.timestamp(), pid: getpid(), done: runner.count(.done),
                                          failed: runner.count(.failed), skipped: runner.count(.skipped)))

        let report = BatchSummary(
            jobs: file, state: statePath, shard: shard.description, workers: workers, lines: all.count, selected: mine.count,
            done: runner.count(.done), skipped: runner.count(.skipped), failed: runner.count(.failed),
            notRun: runner.count(.notRun), failures: runner.failures(), seconds: seconds(since: start),
            unreadableStateLines: unreadable > 0 ? unreadable : nil, staleTemporariesRemoved: removed > 0 ? removed : nil)
        let text = try OutputOptions.encode(report)
        if let summary {
            try AtomicFile.write(Data((text + "\n").utf8), to: summary)
        } else {
            print(text)
        }

        if let fatal = runner.fatal { throw fatal }
        if let stop = runner.stoppedBy {
            throw BatchStopped(message: "line \(stop.line): \(stop.failure.message); the batch stopped with \(report.notRun) job\(report.notRun == 1 ? "" : "s") not run")
        }
        if report.failed > 0, let first = report.failures.first {
            throw JobsFailed(message: "\(report.failed) of \(report.selected) job\(report.selected == 1 ? "" : "s") failed (the summary lists them); first, line \(first.line): \(first.error)")
        }
    }

    /// `<jobs>.state` and `<jobs>.state.I-of-N` beside the jobs file, as absolute paths.
    static func siblingStates(jobs: String) -> [String] {
        let url = URL(fileURLWithPath: jobs).standardizedFileURL
        let folder = url.deletingLastPathComponent().path
        let base = url.lastPathComponent + ".state"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { name in
            guard name.hasPrefix(base) else { return false }
            let rest = name.dropFirst(base.count)
            if rest.isEmpty { return true }
            let parts = rest.dropFirst().split(separator: "-", omittingEmptySubsequences: false)
            return rest.first == "." && parts.count == 3 && parts[1] == "of" && Int(parts[0]) != nil && Int(parts[2]) != nil
        }.map { folder + "/" + $0 }
    }

    static func timestamp() -> String {
        ISO8601DateFormatter().string(from: Date())
    }
}

/// The summary a batch prints (or writes to --summary) when it ends.
struct BatchSummary: Encodable {
    struct Failure: Encodable {
        var line: Int
        var op: String?
        var out: String?
        var error: String
        var category: String
    }

    var jobs: String
    var state: String
    var shard: String
    var workers: Int
    /// Jobs in the file (non-blank lines), and those in this shard.
    var lines: Int
    var selected: Int
    var done: Int
    var skipped: Int
    var failed: Int
    /// Jobs of the shard left when a model problem stopped the run.
    var notRun: Int
    var failures: [Failure]
    var seconds: Double
    var unreadableStateLines: Int?
    var staleTemporariesRemoved: Int?
}

/// Some jobs failed; the batch itself ran to the end (exit status 6).
struct JobsFailed: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// A model file missing or damaged stopped the batch (exit status 4, as for one command).
struct BatchStopped: GuiseError {
    let message: String
    var category: ErrorCategory { .model }
}

extension BatchJobs {
    static func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }

    /// Which line writes each output: the first line whose "out" names it. Taken from every line
    /// of the file, so every shard decides alike without parsing the others' jobs.
    static func writers(_ all: [BatchJob]) -> [String: Int] {
        var writers: [String: Int] = [:]
        for job in all {
            guard let out = job.givenOut else { continue }
            let path = absolute(out)
            if writers[path] == nil { writers[path] = job.line }
        }
        return writers
    }

    /// A parsed job that cannot run side by side with the others fails before it runs: a second
    /// job writing the same output (the later line fails), and a job reading a file some job
    /// writes (its own output included), since jobs run in no set order and a rerun would read
    /// a result instead of the input it hashed.
    static func crossChecked(_ job: BatchJob, writers: [String: Int]) -> BatchJob {
        guard case .success(let c)? = job.command else { return job }
        if let first = writers[absolute(c.output.out)], first != job.line {
            return job.failing("its out \(c.output.out) is also the out of line \(first)")
        }
        for f in c.inputFiles + c.modelFiles {
            guard let w = writers[absolute(f)] else { continue }
            return job.failing(w == job.line
                ? "its out \(c.output.out) is also its input: a rerun would work on its own result"
                : "its input \(f) is the out of line \(w): jobs run in no set order (run this one in a later batch)")
        }
        return job
    }
}
