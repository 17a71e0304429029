import ArgumentParser
import Foundation
import GuiseFiles
import GuisePipelines
import GuisePrior

/// What a command needs from whoever runs it: the command line (one job, bars and notes on
/// stderr) or `guise batch` (many jobs sharing loaded models, quiet, warnings tagged with
/// the job's line).
struct JobContext {
    var models: ModelCache
    /// Progress bars and notes on stderr.
    var chatty: Bool
    /// A warning the user should see even with --quiet.
    var warn: (String) -> Void

    /// The command line's: models loaded for this one command, bars and notes unless --quiet.
    static func command(_ output: OutputOptions) -> JobContext {
        JobContext(models: ModelCache(), chatty: !output.quiet) { message in
            FileHandle.standardError.write(Data("guise: warning: \(message)\n".utf8))
        }
    }

    func note(_ message: String) {
        if chatty { FileHandle.standardError.write(Data("guise: note: \(message)\n".utf8)) }
    }

    func progress(total: Int, label: String) -> ProgressBar {
        ProgressBar(total: total, label: label, enabled: chatty)
    }
}

/// What a finished job hands back: the value `--json` prints and the line printed without it.
struct JobResult {
    var report: any Encodable
    var text: String
}

/// A command that `guise batch` can run as a job: one JSON object per job, its keys the
/// command's long options (see docs/BATCH.md). The batch parses a job through the command's
/// own parser, so a job accepts exactly the options and values the command line does.
protocol JobCommand: ParsableCommand {
    /// The job's "op".
    static var op: String { get }
    /// A job key that stands for a positional argument ("image" for `edit`), passed after `--`.
    static var positionalKeys: [String] { get }
    var output: OutputOptions { get }
    /// The photos and masks the command reads, in a fixed order: a batch hashes them (with
    /// `modelFiles`) to tell whether a finished job's inputs are still the ones it was made from.
    var inputFiles: [String] { get }
    /// The model and config files the job names (not the embedded ones).
    var modelFiles: [String] { get }
    /// Checks the output path, does the work and writes the output file(s).
    func perform(_ context: JobContext) throws -> JobResult
}

extension JobCommand {
    static var positionalKeys: [String] { [] }
    var modelFiles: [String] { [] }

    /// What `run()` of every job command does.
    func runAsCommand() throws {
        let result = try perform(.command(output))
        try output.report(result.report, text: result.text)
    }
}

/// The diffusion model option as an input file: nil and the embedded prior's name are not files
/// a job names.
func modelFile(_ model: String?) -> [String] {
    guard let model, model != DiffusionModel.priorName, PriorModel.shippedPriors[model] == nil else { return [] }
    return [model]
}
