import ArgumentParser

public struct Guise: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "guise",
        abstract: "Diffusion-based face swap, masked editing and clothes swap on the CPU.",
        version: "0.1.0",
        subcommands: [ModelCommand.self]
    )
    public init() {}
}

/// `guise model ...`: weight files.
public struct ModelCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Inspect and convert weight files.",
        subcommands: [ModelInfo.self, ModelConvert.self]
    )
    public init() {}
}
