import ArgumentParser
import Foundation
import GuiseFormats
import GuiseTensor

/// `guise model convert FILE --out OUT.safetensors [--dtype f32]`: a checkpoint to safetensors,
/// values bit for bit unless `--dtype f32` widens the half-precision ones.
public struct ModelConvert: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a PyTorch checkpoint (or a safetensors file) to safetensors, values exactly preserved.",
        discussion: "f16 and bf16 tensors stay as they are unless --dtype f32. The output appears only when "
            + "complete: a failure leaves no partial file and keeps any file already at --out."
    )

    @Argument(help: "A PyTorch checkpoint (.pt/.pth/.tar, zip or legacy) or a .safetensors file.")
    public var file: String

    @OptionGroup public var output: OutputOptions

    @Option(help: "f32: widen f16, bf16 and f64 tensors to f32 (integer tensors stay as they are).")
    public var dtype: String?

    @Option(help: "Dotted key path of the state dict inside a PyTorch checkpoint, e.g. 'ema' (default: automatic).")
    public var key: String?

    @Flag(help: "Keep a leading 'module.' (DataParallel) on every name.")
    public var keepModulePrefix = false

    public init() {}

    /// The safetensors file to write.
    public var out: String { output.out }

    struct Report: Encodable {
        var file: String
        var out: String
        var format: String
        var tensors: Int
        var parameters: Int
        var bytes: Int
        var widened: Bool
        var seconds: Double
    }

    public func validate() throws {
        if let dtype, dtype.lowercased() != "f32" {
            throw ValidationError("--dtype accepts only f32 (got '\(dtype)')")
        }
    }

    public func run() throws {
        try output.check(kind: .safetensors, inputs: [file])
        let start = Date()
        let c = try Checkpoint(path: file, select: key, stripModulePrefix: !keepModulePrefix)
        var stored = c.tensors
        if dtype != nil {
            for (name, t) in stored where t.dtype.isFloatingPoint && t.dtype != .f32 { stored[name] = Self.widened(t) }
        }
        try SafeTensorsWriter.write(stored: stored, to: out, metadata: ["format": "pt"])
        let bytes = stored.values.reduce(0) { $0 + $1.bytes.count }
        let report = Report(file: file, out: out, format: c.format.rawValue, tensors: stored.count, parameters: c.parameterCount,
                            bytes: bytes, widened: dtype != nil, seconds: seconds(since: start))
        try output.report(report, text: "wrote \(out): \(stored.count) tensors, \(c.parameterCount) parameters, \(bytes) bytes of data")
    }

    /// f16/bf16 widen exactly; f64 rounds to nearest.
    static func widened(_ t: StoredTensor) -> StoredTensor {
        guard t.count > 0 else {
            return StoredTensor(dtype: .f32, shape: t.shape, bytes: UnsafeRawBufferPointer(start: nil, count: 0), owner: nil)
        }
        let f = t.toTensor()
        return StoredTensor(dtype: .f32, shape: t.shape,
                            bytes: UnsafeRawBufferPointer(start: f.data, count: f.count * 4), owner: f)
    }
}
