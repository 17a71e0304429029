import ArgumentParser
import Foundation
import GuiseFiles
import GuiseTensor

public struct Guise: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "guise",
        abstract: "Diffusion-based face swap, masked editing and clothes swap on the CPU.",
        discussion: """
            Commands that write a file take -o/--out (the extension picks the format), --json (a report \
            on stdout instead of the usual lines) and --quiet (no progress or notes on stderr); the output \
            path is checked before any work, and a failure leaves no file and keeps an existing one.

            Every error is one line on stderr, "guise: error: …"; the exit status says what kind:
              0   success
              1   an internal failure
              2   an unreadable or invalid input: photo, file, argument, output path
              3   nothing to work on in a valid input: no face, no person
              4   a model file missing, corrupt or not the expected network
              5   not supported by this build or this model
              6   guise batch: some of its jobs failed (its summary lists them)
              64  a malformed command line (see the command's --help)
            Missing model files are installed with `make models`.
            """,
        version: "0.1.0",
        subcommands: [Swap.self, EditCommand.self, Clothes.self, Batch.self, Detect.self, Align.self, Landmarks.self, Identity.self, Segment.self, PoseCommand.self, Sample.self, Denoise.self, TrainPrior.self, ModelCommand.self]
    )
    public init() {}

    /// `guise batch` when some of its jobs failed and the rest ran.
    public static let jobsFailedStatus: Int32 = 6

    /// The exit status for each error category (see the discussion above).
    public static func exitStatus(for category: ErrorCategory) -> Int32 {
        switch category {
        case .internal: return 1
        case .input: return 2
        case .notFound: return 3
        case .model: return 4
        case .unsupported: return 5
        }
    }

    /// The entry point: like `main()`, but every failure is one line on stderr,
    /// `guise: error: …`, with an exit status from its category.
    public static func runMain(_ arguments: [String]? = nil) -> Never {
        Allocator.keepFreedMemory()
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            Foundation.exit(0)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help, --version
            var line = message(for: error).split(whereSeparator: \.isNewline).joined(separator: " ")
            if error is ValidationError || code == .validationFailure { line += " (see --help)" }
            FileHandle.standardError.write(Data("guise: error: \(line)\n".utf8))
            if let categorised = error as? GuiseError { Foundation.exit(exitStatus(for: categorised.category)) }
            if error is JobsFailed { Foundation.exit(jobsFailedStatus) }
            Foundation.exit(code.rawValue)
        }
    }
}
