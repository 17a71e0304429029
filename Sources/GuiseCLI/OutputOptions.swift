import ArgumentParser
import Foundation
import GuiseFiles
import GuiseImage

/// The options of every command that writes a file, and the one way such a command talks:
///
///     @OptionGroup var output: OutputOptions
///
///     func run() throws {
///         try output.check(kind: .image)        // first: before any model or photo is read
///         let bar = output.progress(total: steps, label: "sampling")
///         output.note("inferred config …")      // stderr, unless --quiet
///         …
///         try output.report(MyReport(…), text: "\(output.out): 256x256")
///     }
///
/// - `-o/--out`: the file to write; its extension picks the format.
/// - `--json`: `report` prints its Encodable value as JSON on stdout instead of the text line.
/// - `--quiet`: `note` and `progress` stay silent. Errors still reach stderr.
public struct OutputOptions: ParsableArguments {
    /// What an output file holds; `check(kind:)` accepts only the extensions of its kind.
    public enum Kind: Sendable {
        /// .png, .jpg/.jpeg, .webp, .bmp, .tif/.tiff.
        case image
        /// .safetensors.
        case safetensors
    }

    @Option(name: .shortAndLong, help: "The file to write; its extension picks the format.")
    public var out: String

    @Flag(help: "Print a JSON report on stdout instead of the usual lines.")
    public var json = false

    @Flag(help: "No progress bar or notes on stderr (errors are still printed).")
    public var quiet = false

    public init() {}

    /// Throws unless `out` has an extension of `kind` and its folder exists (and it is not a
    /// folder itself), and it is none of the files the command reads (`inputs`; nil entries
    /// are options not given). Call it before any long work, so a typo costs nothing.
    public func check(kind: Kind, inputs: [String?] = []) throws {
        try Self.check(out, kind: kind, inputs: inputs)
    }

    /// The same check for another path a command writes (an annotated copy, a checkpoint).
    public static func check(_ path: String, kind: Kind, inputs: [String?] = []) throws {
        let ext = URL(fileURLWithPath: path).pathExtension
        switch kind {
        case .image:
            guard ImageFileFormat(pathExtension: ext) != nil else {
                throw ValidationError("\(path): unknown image type .\(ext) (use .png, .jpg, .webp, .bmp or .tif)")
            }
        case .safetensors:
            guard ext.lowercased() == "safetensors" else {
                throw ValidationError("\(path): the output must be a .safetensors file")
            }
        }
        try AtomicFile.checkWritable(path)
        try AtomicFile.checkNotAnInput(path, inputs: inputs.compactMap { $0 })
    }

    /// One line on stderr, unless --quiet.
    public func note(_ message: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data("\(message)\n".utf8))
    }

    /// A progress bar on stderr, drawn only without --quiet.
    public func progress(total: Int, label: String) -> ProgressBar {
        ProgressBar(total: total, label: label, enabled: !quiet)
    }

    /// With --json, `value` as JSON on stdout; else `text` (nothing when empty).
    public func report<Report: Encodable>(_ value: Report, text: @autoclosure () -> String) throws {
        if json {
            print(try Self.encode(value))
        } else {
            let line = text()
            if !line.isEmpty { print(line) }
        }
    }

    /// Pretty-printed with sorted keys, as every `--json` report is printed.
    public static func encode<Report: Encodable>(_ value: Report) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// Seconds since `start`, rounded to milliseconds, for reports.
func seconds(since start: Date) -> Double {
    (Date().timeIntervalSince(start) * 1000).rounded() / 1000
}
