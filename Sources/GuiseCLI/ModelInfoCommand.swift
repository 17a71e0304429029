import ArgumentParser
import Foundation
import GuiseFormats
import GuiseNetworks

/// `guise model info FILE [--json]`: what a weight file holds, read without Python.
public struct ModelInfo: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show a weight file's format, every tensor's name, dtype and shape, and the parameter count.",
        discussion: "Reads .safetensors files and PyTorch checkpoints (.pt/.pth/.tar, zip or legacy format) "
            + "without running any code from them; TFLite files (.tflite: the graph's inputs, outputs, operators "
            + "and constant tensors) and dlib networks (.dat: the layers and their weights), the other formats "
            + "`guise model run` runs. A checkpoint of a network model run recognises from its tensors (ArcFace) "
            + "gets an `architecture` line naming it."
    )

    @Argument(help: "A .safetensors file, a PyTorch checkpoint, a .tflite file or a dlib .dat network.")
    public var file: String

    @Flag(help: "Print JSON instead of a table.")
    public var json = false

    @Option(help: "Dotted key path of the state dict inside a PyTorch checkpoint, e.g. 'ema' (default: automatic).")
    public var key: String?

    @Flag(help: "Keep a leading 'module.' (DataParallel) on every name.")
    public var keepModulePrefix = false

    public init() {}

    public func run() throws {
        if file.hasSuffix(".tflite") {
            print(try Self.report(try TFLiteModel(path: file), json: json), terminator: "")
            return
        }
        if file.hasSuffix(".dat") {
            print(try Self.report(try DlibNetwork(path: file), path: file, json: json), terminator: "")
            return
        }
        let checkpoint = try Checkpoint(path: file, select: key, stripModulePrefix: !keepModulePrefix)
        let architecture = key == nil && !keepModulePrefix ? RecognisedNetwork.architecture(file, checkpoint) : nil
        print(try Self.report(checkpoint, json: json, architecture: architecture), terminator: "")
    }

    /// One listed tensor: its name (escaped for the terminal in text), dtype and shape.
    struct Row {
        var name: String
        var dtype: String
        var shape: [Int]
    }

    static func json(_ object: [String: Any]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static func table(_ rows: [Row], indent: String = "  ") -> String {
        let names = rows.map { printable($0.name) }
        let width = min(names.map(\.count).max() ?? 4, 80)
        var out = ""
        for (r, n) in zip(rows, names) {
            let pad = String(repeating: " ", count: max(width - n.count, 0))
            out += "\(indent)\(n)\(pad)  \(r.dtype.padding(toLength: 7, withPad: " ", startingAt: 0))  [\(r.shape.map(String.init).joined(separator: ", "))]\n"
        }
        return out
    }

    /// A TFLite graph: inputs, outputs, operator counts by type, and its constant tensors
    /// (those backed by a buffer in the file), whose element count is the parameter count.
    static func report(_ m: TFLiteModel, json: Bool) throws -> String {
        let g = m.mainGraph
        func row(_ i: Int) -> Row {
            let t = g.tensors[i]
            return Row(name: t.name, dtype: "\(t.type)", shape: t.shape)
        }
        let constants = g.tensors.indices.filter { !m.data(of: g.tensors[$0]).isEmpty }.map(row)
        let parameters = constants.reduce(0) { $0 + (TFLiteModel.elementCount($1.shape) ?? 0) }
        var opCounts: [String: Int] = [:]
        for op in g.operators { opCounts[m.opName(op), default: 0] += 1 }
        if json {
            func list(_ rows: [Row]) -> [[String: Any]] { rows.map { ["name": $0.name, "dtype": $0.dtype, "shape": $0.shape] } }
            return try Self.json([
                "path": m.path, "format": "tflite", "version": Int(m.version), "inputs": list(g.inputs.map(row)),
                "outputs": list(g.outputs.map(row)), "operators": opCounts, "operator_count": g.operators.count,
                "tensor_count": constants.count, "parameters": parameters, "tensors": list(constants),
            ])
        }
        var out = "file: \(m.path)\nformat: tflite (version \(m.version))\n"
        out += "inputs:\n" + table(g.inputs.map(row)) + "outputs:\n" + table(g.outputs.map(row))
        out += "operators: \(g.operators.count) (" + opCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")\n"
        out += "tensors: \(constants.count)\nparameters: \(parameters)\n" + table(constants)
        return out
    }

    /// A dlib network: its loss and its layers in file order, with the weight tensors' shapes.
    static func report(_ net: DlibNetwork, path: String, json: Bool) throws -> String {
        var rows: [Row] = []
        for (i, layer) in net.layers.enumerated() {
            switch layer {
            case .conv(let w, let b, _, _):
                rows.append(Row(name: "\(i).con.weight", dtype: "f32", shape: w.shape))
                rows.append(Row(name: "\(i).con.bias", dtype: "f32", shape: b.shape))
            case .affine(let g, let b, _):
                rows.append(Row(name: "\(i).affine.gamma", dtype: "f32", shape: g.shape))
                rows.append(Row(name: "\(i).affine.beta", dtype: "f32", shape: b.shape))
            case .fullyConnected(let w, let b):
                rows.append(Row(name: "\(i).fc.weight", dtype: "f32", shape: w.shape))
                if let b { rows.append(Row(name: "\(i).fc.bias", dtype: "f32", shape: b.shape)) }
            default:
                break
            }
        }
        let parameters = rows.reduce(0) { $0 + $1.shape.reduce(1, *) }
        if json {
            return try Self.json([
                "path": path, "format": "dlib", "loss": net.loss, "layers": net.layers.map(\.name),
                "tensor_count": rows.count, "parameters": parameters,
                "tensors": rows.map { ["name": $0.name, "dtype": $0.dtype, "shape": $0.shape] as [String: Any] },
            ])
        }
        var out = "file: \(path)\nformat: dlib (\(printable(net.loss)))\nlayers: \(net.layers.count)\n"
        out += "tensors: \(rows.count)\nparameters: \(parameters)\n" + table(rows)
        return out
    }

    /// The text or JSON that `run` prints.
    /// `architecture` names the network recognised from the tensors, when one was; without it the
    /// tensors' shapes are asked.
    public static func report(_ c: Checkpoint, json: Bool, architecture: String? = nil) throws -> String {
        let architecture = architecture ?? recognisedArchitecture(c.tensors.mapValues(\.shape))
        if json {
            let tensors: [[String: Any]] = c.names.map { n in
                let t = c.tensors[n]!
                return ["name": n, "dtype": t.dtype.rawValue, "shape": t.shape]
            }
            var object: [String: Any] = [
                "path": c.path, "format": c.format.rawValue, "tensor_count": c.names.count,
                "parameters": c.parameterCount, "tensors": tensors,
            ]
            if let architecture { object["architecture"] = architecture }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self) + "\n"
        }
        var out = "file: \(c.path)\nformat: \(c.format.rawValue)\n"
        if let architecture { out += "architecture: \(printable(architecture))\n" }
        out += "tensors: \(c.names.count)\n"
        out += "parameters: \(c.parameterCount)\n"
        // Names come from the file: escaped, so a hostile one cannot drive the terminal.
        let width = min(c.names.map { printable($0).count }.max() ?? 4, 80)
        for n in c.names {
            let t = c.tensors[n]!, shown = printable(n)
            let pad = String(repeating: " ", count: max(width - shown.count, 0))
            out += "  \(shown)\(pad)  \(t.dtype.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0))  [\(t.shape.map(String.init).joined(separator: ", "))]\n"
        }
        return out
    }
}
