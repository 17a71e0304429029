import GuiseTensor

/// A TFLite model (`.tflite`, FlatBuffers schema v3), read straight from a memory map.
///
/// Field numbers follow tensorflow/lite/schema/schema.fbs. Everything is validated at load:
/// offsets, vector lengths, tensor/buffer/opcode indices. Constant data stays in the mapping
/// until `constant(_:)` widens (and, for sparse tensors, densifies) it to float32.
public final class TFLiteModel {
    public let path: String
    public let version: UInt32
    public let description: String?
    public let operatorCodes: [TFLiteOperatorCode]
    public let subgraphs: [TFLiteSubGraph]
    public let buffers: [UnsafeRawBufferPointer]
    public let metadata: [(name: String, buffer: Int)]
    private let file: MappedFile?

    public convenience init(path: String) throws {
        let file = try MappedFile(path: path)
        try self.init(bytes: file.bytes, path: path, owner: file)
    }

    /// Parses `bytes`, which `owner` (if any) keeps alive as long as this model.
    public init(bytes: UnsafeRawBufferPointer, path: String, owner: MappedFile? = nil) throws {
        self.path = path
        self.file = owner
        guard bytes.count >= 8 else { throw FormatError("\(path): too short for a TFLite file (\(bytes.count) bytes)") }
        let ident = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[4..<8]), as: UTF8.self)
        guard ident == "TFL3" else {
            throw FormatError("\(path): not a TFLite file (file identifier is not TFL3)")
        }
        let fb = FlatBuffer(bytes: bytes, path: path)
        let model = try fb.root()
        version = try model.scalar(0, UInt32.self, default: 0)
        description = try model.string(3, "description")

        operatorCodes = try model.tables(1, "operator_codes").map { t in
            let deprecated = Int32(try t.scalar(0, Int8.self, default: 0))
            let builtin = try t.scalar(3, Int32.self, default: 0)
            // Old writers fill only the byte-sized deprecated field (codes < 127); newer ones
            // both, with 127 in the byte as a placeholder. The larger of the two is the code.
            let code = max(deprecated, builtin)
            if code == TFLiteBuiltin.custom {
                guard let name = try t.string(1, "custom_code") else {
                    throw fb.fail("custom operator code without a custom_code name", t.pos)
                }
                return .custom(name)
            }
            return .builtin(code)
        }

        buffers = try model.tables(4, "buffers").map { b in
            if let data = try b.byteSlice(0, "data"), data.count > 0 { return data }
            // Models over 2 GB keep buffer data after the FlatBuffer, addressed from the file start.
            let off = try b.scalar(1, UInt64.self, default: 0), size = try b.scalar(2, UInt64.self, default: 0)
            if off > 1 {
                guard off <= UInt64(bytes.count), size <= UInt64(bytes.count) - off else {
                    throw fb.fail("buffer data (\(size) bytes) lies outside the file", Int(min(off, UInt64(Int.max))))
                }
                return UnsafeRawBufferPointer(rebasing: bytes[Int(off)..<Int(off + size)])
            }
            return UnsafeRawBufferPointer(rebasing: bytes[0..<0])
        }

        metadata = try model.tables(6, "metadata").map { m in
            (try m.string(0, "name") ?? "", Int(try m.scalar(1, UInt32.self, default: 0)))
        }

        subgraphs = try model.tables(2, "subgraphs").map { try TFLiteSubGraph(table: $0, fb: fb) }
        guard !subgraphs.isEmpty else { throw FormatError("\(path): TFLite model has no subgraphs") }

        for (s, g) in subgraphs.enumerated() {
            for (i, t) in g.tensors.enumerated() {
                let what = "\(path): tensor #\(i) '\(printable(t.name))' of subgraph \(s)"
                guard t.buffer < buffers.count else {
                    throw FormatError("\(what) refers to buffer \(t.buffer) of \(buffers.count)")
                }
                guard let count = Self.elementCount(t.shape) else {
                    throw FormatError("\(what) has an impossible shape \(t.shape)")
                }
                // Constant data must be exactly what the shape and type call for: kernels later
                // read it by shape, unchecked. Sparse tensors hold fewer values (densify checks them).
                let size = buffers[t.buffer].count
                if size > 0, t.sparsity == nil, let elem = t.type.byteSize {
                    guard t.shape.allSatisfy({ $0 >= 0 }), count * elem == size else {
                        throw FormatError("\(what) holds \(size) bytes, but shape \(t.shape) of \(t.type) needs \(max(count, 0) * elem)")
                    }
                }
            }
            for (i, op) in g.operators.enumerated() {
                guard op.opcodeIndex < operatorCodes.count else {
                    throw FormatError("\(path): operator #\(i) of subgraph \(s) has opcode index \(op.opcodeIndex) of \(operatorCodes.count)")
                }
                for t in op.inputs + op.outputs where t < -1 || t >= g.tensors.count {
                    throw FormatError("\(path): operator #\(i) (\(printable(operatorCodes[op.opcodeIndex].name))) of subgraph \(s) refers to tensor \(t) of \(g.tensors.count)")
                }
            }
            for t in g.inputs + g.outputs where t < 0 || t >= g.tensors.count {
                throw FormatError("\(path): subgraph \(s) input/output refers to tensor \(t) of \(g.tensors.count)")
            }
        }
    }

    public var mainGraph: TFLiteSubGraph { subgraphs[0] }

    /// Elements in `shape` (−1, an unknown size, counts as 1), or nil when the count passes
    /// 2³¹: no tensor Guise runs is that large, and the limit keeps every later product in range.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            let (m, overflow) = n.multipliedReportingOverflow(by: d < 0 ? 1 : d)
            guard !overflow, m <= 1 << 31 else { return nil }
            n = m
        }
        return n
    }

    public func opName(_ op: TFLiteOperator) -> String { operatorCodes[op.opcodeIndex].name }

    /// The constant data of a tensor's buffer (empty for activations).
    public func data(of tensor: TFLiteTensor) -> UnsafeRawBufferPointer { buffers[tensor.buffer] }

    /// Throws, naming the first operator whose name is not in `supported`, so a model with an
    /// op we cannot run fails at load time rather than halfway through a forward pass.
    public func checkOperators(supported: Set<String>) throws {
        for (s, g) in subgraphs.enumerated() {
            for (i, op) in g.operators.enumerated() where !supported.contains(opName(op)) {
                throw FormatError("\(path): unsupported TFLite op \(printable(opName(op))) (operator #\(i) of subgraph \(s))")
            }
        }
    }

    /// A constant tensor as float32: f16 widened, int8/uint8/int16 dequantized with the tensor's
    /// scale and zero point (per axis when it has several), sparse tensors densified.
    /// Nil when the tensor has no data (an activation).
    public func constant(_ index: Int, subgraph: Int = 0) throws -> Tensor? {
        let t = subgraphs[subgraph].tensors[index]
        let raw = data(of: t)
        guard raw.count > 0 else { return nil }
        let what = "\(path): tensor '\(printable(t.name))'"
        guard let elemSize = t.type.byteSize, t.type != .bool, t.type != .string else {
            throw FormatError("\(what) has type \(t.type) that cannot become float32")
        }
        guard raw.count % elemSize == 0 else { throw FormatError("\(what): \(raw.count) bytes is not a whole number of \(t.type) values") }
        var values = (0..<(raw.count / elemSize)).map { t.type.load(raw, $0) }

        if let q = t.quantization, !q.scale.isEmpty, t.type.isInteger, t.type != .int32, t.type != .int64 {
            values = try Self.dequantize(values, shape: t.shape, q, what)
        }
        if let sp = t.sparsity {
            let dense = try TFLiteSparsity.densify(values: values, shape: t.shape, sparsity: sp, what: what)
            return Tensor(shape: t.shape, values: dense)
        }
        guard values.count == Tensor.product(t.shape) else {
            throw FormatError("\(what) holds \(values.count) values for shape \(t.shape)")
        }
        return Tensor(shape: t.shape, values: values)
    }

    /// An int32/int64 constant (shapes, paddings, axes) as Ints.
    public func intConstant(_ index: Int, subgraph: Int = 0) throws -> [Int]? {
        let t = subgraphs[subgraph].tensors[index]
        let raw = data(of: t)
        guard raw.count > 0 else { return nil }
        switch t.type {
        case .int32:
            guard raw.count % 4 == 0 else { break }
            return (0..<(raw.count / 4)).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
        case .int64:
            guard raw.count % 8 == 0 else { break }
            return (0..<(raw.count / 8)).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
        default: break
        }
        throw FormatError("\(path): tensor '\(printable(t.name))' is not an integer constant (type \(t.type), \(raw.count) bytes)")
    }

    /// real = (q − zero_point) · scale, with one (scale, zero point) per slice along
    /// `quantizedDimension` when there are several.
    static func dequantize(_ v: [Float], shape: [Int], _ q: TFLiteQuantization, _ what: String) throws -> [Float] {
        if q.scale.count == 1 {
            let s = q.scale[0], z = Float(q.zeroPoint.first ?? 0)
            return v.map { ($0 - z) * s }
        }
        let axis = q.quantizedDimension
        guard axis >= 0, axis < shape.count, shape[axis] == q.scale.count,
              q.zeroPoint.isEmpty || q.zeroPoint.count == q.scale.count, v.count == Tensor.product(shape) else {
            throw FormatError("\(what): \(q.scale.count) quantization scales do not fit shape \(shape) on axis \(axis)")
        }
        let inner = shape[(axis + 1)...].reduce(1, *)
        return v.indices.map { i in
            let c = (i / inner) % q.scale.count
            return (v[i] - Float(q.zeroPoint.isEmpty ? 0 : q.zeroPoint[c])) * q.scale[c]
        }
    }
}

public enum TFLiteOperatorCode: Equatable, Sendable {
    case builtin(Int32)
    case custom(String)

    public var name: String {
        switch self {
        case .custom(let n): return n
        case .builtin(let c): return TFLiteBuiltin.name(c)
        }
    }
}

public struct TFLiteSubGraph {
    public let name: String
    public let tensors: [TFLiteTensor]
    public let inputs: [Int]
    public let outputs: [Int]
    /// In execution order: TFLite writers emit operators topologically sorted.
    public let operators: [TFLiteOperator]

    init(table g: FBTable, fb: FlatBuffer) throws {
        name = try g.string(4, "name") ?? ""
        tensors = try g.tables(0, "tensors").map { try TFLiteTensor(table: $0, fb: fb) }
        inputs = (try g.ints(1, Int32.self, "inputs") ?? []).map(Int.init)
        outputs = (try g.ints(2, Int32.self, "outputs") ?? []).map(Int.init)
        operators = try g.tables(3, "operators").map { try TFLiteOperator(table: $0, fb: fb) }
    }

    public func tensorIndex(named name: String) -> Int? { tensors.firstIndex { $0.name == name } }
}

public enum TFLiteTensorType: Int8, Sendable {
    case float32 = 0, float16 = 1, int32 = 2, uint8 = 3, int64 = 4, string = 5, bool = 6, int16 = 7
    case complex64 = 8, int8 = 9, float64 = 10, complex128 = 11, uint64 = 12, resource = 13, variant = 14, uint32 = 15, uint16 = 16

    public var byteSize: Int? {
        switch self {
        case .float32, .int32, .uint32: return 4
        case .float16, .int16, .uint16: return 2
        case .uint8, .int8, .bool: return 1
        case .int64, .float64, .uint64, .complex64: return 8
        case .complex128: return 16
        case .string, .resource, .variant: return nil
        }
    }

    var isInteger: Bool { [.int32, .uint8, .int64, .int16, .int8, .uint64, .uint32, .uint16].contains(self) }

    /// Element `i` of little-endian `raw` as a Float (by value).
    func load(_ raw: UnsafeRawBufferPointer, _ i: Int) -> Float {
        switch self {
        case .float32: return Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        case .float16: return HalfFloat.f16ToF32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case .float64: return Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
        case .int32: return Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
        case .uint32: return Float(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        case .int64: return Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
        case .uint64: return Float(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
        case .int16: return Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
        case .uint16: return Float(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case .int8: return Float(raw.load(fromByteOffset: i, as: Int8.self))
        case .uint8, .bool: return Float(raw.load(fromByteOffset: i, as: UInt8.self))
        case .complex64, .complex128, .string, .resource, .variant: return .nan
        }
    }

}

public struct TFLiteQuantization {
    public let scale: [Float]
    public let zeroPoint: [Int64]
    public let quantizedDimension: Int
}

public struct TFLiteTensor {
    public let name: String
    public let shape: [Int]
    public let type: TFLiteTensorType
    public let buffer: Int
    public let quantization: TFLiteQuantization?
    public let sparsity: TFLiteSparsity?
    public let isVariable: Bool

    init(table t: FBTable, fb: FlatBuffer) throws {
        name = try t.string(3, "name") ?? ""
        shape = (try t.ints(0, Int32.self, "shape") ?? []).map(Int.init)
        guard shape.allSatisfy({ $0 >= -1 }) else { throw fb.fail("tensor '\(printable(name))' has a negative dimension \(shape)", t.pos) }
        let code = try t.scalar(1, Int8.self, default: 0)
        guard let ty = TFLiteTensorType(rawValue: code) else { throw fb.fail("tensor '\(printable(name))' has unknown type \(code)", t.pos) }
        type = ty
        buffer = Int(try t.scalar(2, UInt32.self, default: 0))
        isVariable = try t.bool(5)
        if let q = try t.table(4, "quantization") {
            let scale = try q.floats(2, "scale") ?? []
            let zp = try q.ints(3, Int64.self, "zero_point") ?? []
            quantization = scale.isEmpty && zp.isEmpty ? nil
                : TFLiteQuantization(scale: scale, zeroPoint: zp, quantizedDimension: Int(try q.scalar(6, Int32.self, default: 0)))
        } else {
            quantization = nil
        }
        sparsity = try t.table(6, "sparsity").map { try TFLiteSparsity(table: $0, fb: fb) }
    }
}

public struct TFLiteOperator {
    public let opcodeIndex: Int
    /// Tensor indices; −1 marks an omitted optional input.
    public let inputs: [Int]
    public let outputs: [Int]
    public let options: TFLiteOptions
    /// Raw `custom_options` bytes (a custom op's own parameter encoding).
    public let customOptions: [UInt8]

    init(table o: FBTable, fb: FlatBuffer) throws {
        opcodeIndex = Int(try o.scalar(0, UInt32.self, default: 0))
        inputs = (try o.ints(1, Int32.self, "inputs") ?? []).map(Int.init)
        outputs = (try o.ints(2, Int32.self, "outputs") ?? []).map(Int.init)
        let kind = try o.scalar(3, UInt8.self, default: 0)
        let table = try o.table(4, "builtin_options")
        options = try TFLiteOptions(kind: kind, table: table)
        customOptions = (try o.byteSlice(5, "custom_options")).map { Array($0) } ?? []
    }
}
