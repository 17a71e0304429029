import ArgumentParser
import Foundation

public struct Guise: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "guise",
        abstract: "Diffusion-based face swap, masked editing and clothes swap on the CPU.",
        version: "0.1.0",
        subcommands: [Detect.self, Align.self, Landmarks.self, Identity.self, Segment.self, PoseCommand.self, Sample.self, Denoise.self, TrainPrior.self, ModelCommand.self, EditCommand.self]
    )
    public init() {}

    /// The entry point: like `main()`, but every failure is one line on stderr,
    /// `guise: error: …`, with a non-zero exit status.
    public static func runMain(_ arguments: [String]? = nil) -> Never {
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
            Foundation.exit(code.rawValue)
        }
    }
}
