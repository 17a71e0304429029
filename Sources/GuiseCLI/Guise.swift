import ArgumentParser

public struct Guise: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "guise",
        abstract: "Diffusion-based face swap, masked editing and clothes swap on the CPU.",
        version: "0.1.0"
    )
    public init() {}
}
