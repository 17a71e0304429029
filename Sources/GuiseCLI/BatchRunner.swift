import Foundation
import GuiseFiles
import GuisePipelines
#if canImport(Glibc)
import Glibc
#endif

/// Runs a shard's jobs, one at a time or on several threads, and records each in the journal.
///
/// Workers share one `ModelCache`, so every network is loaded once (see `ModelCache` for why
/// sharing is safe). They also share the engine's thread pool: a worker that calls it while
/// another worker's loop holds it runs its own loop on its own thread instead of waiting
/// (`guise_pool_run`), so K workers never wait on each other there, and each result is the one
/// a single worker would compute, since a loop's split into pieces depends on the pool's size,
/// not on who runs the pieces.
final class BatchRunner: @unchecked Sendable {
    enum Outcome: Equatable {
        case done, skipped, failed, notRun
    }

    private let journal: BatchJournal
    /// "key:inputs" of every job the state files record as done.
    private let finished: Set<String>
    /// The line that writes each output (absolute path), over the whole file.
    private let writers: [String: Int]
    private let progress: BatchProgress
    private let models = ModelCache()
    private let hasher = InputHasher()

    private let lock = NSLock()
    private var queue: [BatchJob] = []
    private var next = 0
    private var outcomes: [Int: (Outcome, BatchJob, JobFailure?)] = [:]
    /// The job whose model failure stopped the run.
    private(set) var stoppedBy: (line: Int, failure: JobFailure)?
    /// A state file that cannot be written: nothing more can be recorded, so nothing more runs.
    private(set) var fatal: Error?

    init(journal: BatchJournal, finished: Set<String>, writers: [String: Int], progress: BatchProgress) {
        self.journal = journal
        self.finished = finished
        self.writers = writers
        self.progress = progress
    }

    func run(_ jobs: [BatchJob], workers: Int) {
        queue = jobs
        next = 0
        if workers == 1 || jobs.count <= 1 {
            work()
        } else {
            let group = DispatchGroup()
            for _ in 0..<min(workers, jobs.count) {
                group.enter()
                let thread = Thread { [self] in
                    work()
                    group.leave()
                }
                // The networks recurse no deeper than on the main thread, whose stack is 8 MiB.
                thread.stackSize = 16 << 20
                thread.start()
            }
            group.wait()
        }
        lock.lock()
        for (k, job) in queue.enumerated() where outcomes[k] == nil { outcomes[k] = (.notRun, job, nil) }
        lock.unlock()
        progress.finish()
    }

    private func take() -> (Int, BatchJob)? {
        lock.lock()
        defer { lock.unlock() }
        guard stoppedBy == nil, fatal == nil, next < queue.count else { return nil }
        next += 1
        return (next - 1, queue[next - 1])
    }

    private func work() {
        while let (index, job) = take() {
            let (outcome, failure) = execute(job)
            lock.lock()
            outcomes[index] = (outcome, job, failure)
            if outcome == .failed, let failure, failure.category == ErrorCategory.model.rawValue, stoppedBy == nil {
                stoppedBy = (job.line, failure)
            }
            lock.unlock()
            progress.advance(outcome)
        }
    }

    private func execute(_ job: BatchJob) -> (Outcome, JobFailure?) {
        // Parsed here rather than up front, so a big file starts at once and K workers parse in parallel.
        var job = job
        job.parse()
        job = BatchJobs.crossChecked(job, writers: writers)
        let command: any JobCommand
        switch job.command {
        case .failure(let f)?:
            return record(failure: f, of: job)
        case .success(let c)?:
            command = c
        case nil:
            return record(failure: JobFailure(message: "the job was not parsed", category: ErrorCategory.internal.rawValue), of: job)
        }
        let type = Swift.type(of: command)
        do {
            let inputs = try hasher.inputsHash(canonical: job.canonical, files: command.inputFiles, models: command.modelFiles)
            let out = command.output.out
            let report = command.output.json ? out + ".json" : nil
            let exists = { (path: String) in FileManager.default.fileExists(atPath: path) }
            if finished.contains(job.key + ":" + inputs), exists(out), report.map(exists) ?? true {
                return (.skipped, nil)
            }
            let start = Date()
            let context = JobContext(models: models, chatty: false) { [progress] in progress.warn(line: job.line, $0) }
            let result = try command.perform(context)
            if let report {
                try AtomicFile.write(Data((try OutputOptions.encode(result.report) + "\n").utf8), to: report)
                try BatchJournal.sync(file: report)
            }
            try BatchJournal.sync(file: out)
            do {
                try journal.append(JournalRecord(event: "done", job: job.key, inputs: inputs, line: job.line, out: out,
                                                 seconds: seconds(since: start), time: Batch.timestamp()))
            } catch {
                setFatal(error)
                return (.failed, JobFailure(error, command: type))
            }
            return (.done, nil)
        } catch {
            return record(failure: JobFailure(error, command: type), of: job)
        }
    }

    private func record(failure: JobFailure, of job: BatchJob) -> (Outcome, JobFailure?) {
        do {
            try journal.append(JournalRecord(event: "failed", job: job.key, line: job.line, out: job.out, error: failure.message,
                                             category: failure.category, time: Batch.timestamp()))
        } catch {
            setFatal(error)
        }
        return (.failed, failure)
    }

    private func setFatal(_ error: Error) {
        lock.lock()
        if fatal == nil { fatal = error }
        lock.unlock()
    }

    func count(_ outcome: Outcome) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return outcomes.values.filter { $0.0 == outcome }.count
    }

    /// Failed jobs in line order.
    func failures() -> [BatchSummary.Failure] {
        lock.lock()
        defer { lock.unlock() }
        return outcomes.values.compactMap { o -> BatchSummary.Failure? in
            guard o.0 == .failed, let f = o.2 else { return nil }
            return BatchSummary.Failure(line: o.1.line, op: o.1.op, out: o.1.out, error: f.message, category: f.category)
        }.sorted { $0.line < $1.line }
    }

    /// Removes what a killed run left of its writes to these outputs: the hidden temporary files
    /// `AtomicFile` writes beside an output (and its JSON report) before renaming, whose writing
    /// process is gone. Returns how many were removed.
    static func removeStaleTemporaries(outs: [String]) -> Int {
        var byFolder: [String: Set<String>] = [:]
        for out in outs {
            let url = URL(fileURLWithPath: out)
            byFolder[url.deletingLastPathComponent().path, default: []].insert(url.lastPathComponent)
        }
        var removed = 0
        for (folder, names) in byFolder {
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { continue }
            for entry in entries where entry.hasPrefix(".") {
                guard let marker = entry.range(of: ".partial-", options: .backwards) else { continue }
                var target = String(entry[entry.index(after: entry.startIndex)..<marker.lowerBound])
                if target.hasSuffix(".json"), !names.contains(target) { target.removeLast(5) }
                guard names.contains(target) else { continue }
                let pidText = entry[marker.upperBound...].prefix { $0 != "-" }
                guard let pid = Int32(pidText), pid > 0 else { continue }
                // A process still running may be writing it.
                if kill(pid, 0) == 0 || errno != ESRCH { continue }
                if unlink(folder + "/" + entry) == 0 { removed += 1 }
            }
        }
        return removed
    }
}

/// The batch's progress bar on stderr and the warnings of its jobs, drawn from any worker.
final class BatchProgress: @unchecked Sendable {
    private let lock = NSLock()
    private let bar: ProgressBar
    private let enabled: Bool
    private var counts: [BatchRunner.Outcome: Int] = [:]
    /// The bar is on screen without its final newline.
    private var open = false

    init(total: Int, enabled: Bool) {
        bar = ProgressBar(total: total, label: "batch", enabled: enabled && total > 0, unit: "job")
        self.enabled = enabled
    }

    func advance(_ outcome: BatchRunner.Outcome) {
        lock.lock()
        defer { lock.unlock() }
        counts[outcome, default: 0] += 1
        let finished = counts.values.reduce(0, +)
        var note = "\(counts[.done] ?? 0) done"
        if let s = counts[.skipped] { note += ", \(s) skipped" }
        if let f = counts[.failed] { note += ", \(f) failed" }
        bar.update(finished, note)
        open = bar.enabled && finished < bar.total
    }

    func warn(line: Int, _ message: String) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        FileHandle.standardError.write(Data("\(open ? "\n" : "")guise: warning: line \(line): \(message)\n".utf8))
        open = false
    }

    /// Ends the bar's line when the run stopped before every job was counted.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if open { FileHandle.standardError.write(Data("\n".utf8)) }
        open = false
    }
}
