import ArgumentParser
import Foundation
import GuiseFormats

/// `guise model info FILE [--json]`: what a weight file holds, read without Python.
public struct ModelInfo: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show a weight file's format, every tensor's name, dtype and shape, and the parameter count.",
        discussion: "Reads .safetensors files and PyTorch checkpoints (.pt/.pth/.tar, zip or legacy format) "
            + "without running any code from them."
    )

    @Argument(help: "A .safetensors file or a PyTorch checkpoint.")
    public var file: String

    @Flag(help: "Print JSON instead of a table.")
    public var json = false

    @Option(help: "Dotted key path of the state dict inside a PyTorch checkpoint, e.g. 'ema' (default: automatic).")
    public var key: String?

    @Flag(help: "Keep a leading 'module.' (DataParallel) on every name.")
    public var keepModulePrefix = false

    public init() {}

    public func run() throws {
        let checkpoint = try Checkpoint(path: file, select: key, stripModulePrefix: !keepModulePrefix)
        print(try Self.report(checkpoint, json: json), terminator: "")
    }

    /// The text or JSON that `run` prints.
    public static func report(_ c: Checkpoint, json: Bool) throws -> String {
        if json {
            let tensors: [[String: Any]] = c.names.map { n in
                let t = c.tensors[n]!
                return ["name": n, "dtype": t.dtype.rawValue, "shape": t.shape]
            }
            let object: [String: Any] = [
                "path": c.path, "format": c.format.rawValue, "tensor_count": c.names.count,
                "parameters": c.parameterCount, "tensors": tensors,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self) + "\n"
        }
        var out = "file: \(c.path)\nformat: \(c.format.rawValue)\ntensors: \(c.names.count)\n"
        out += "parameters: \(c.parameterCount)\n"
        let width = min(c.names.map(\.count).max() ?? 4, 80)
        for n in c.names {
            let t = c.tensors[n]!
            let pad = String(repeating: " ", count: max(width - n.count, 0))
            out += "  \(n)\(pad)  \(t.dtype.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0))  [\(t.shape.map(String.init).joined(separator: ", "))]\n"
        }
        return out
    }
}
