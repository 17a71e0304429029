import GuiseTensor

/// A dlib DNN (`dlib::serialize(net)`), such as dlib_face_recognition_resnet_model_v1.dat.
///
/// dlib writes a network as nested objects, outermost first:
///   add_loss_layer: int 1, loss details, subnetwork
///   add_layer:      int 2, subnetwork, layer details, trailer
///   add_layer over the input layer: int 3, input layer, layer details, trailer, int sample expansion
///   add_tag_layer / add_skip_layer: int 1, subnetwork
/// so the file holds every wrapper's version, then the input layer, then each layer's details from
/// the input outwards. A tag and a skip look the same on disk (the tag ids live in the C++ type),
/// so they come back as `.tagOrSkip` markers in their place; the network definition gives them meaning.
/// The trailer is three bools ('0'/'1' bytes) and three scratch tensors, usually empty.
///
/// Encodings: an integer is one byte (low nibble = byte count, 0x80 = negative) then that many
/// little-endian magnitude bytes; a float or double is the integer pair (mantissa, exponent) with
/// value mantissa·2^exponent (exponent 32000/32001/32002 = +inf/−inf/nan); a string is an integer
/// length then bytes; a tensor is version, num_samples, k, nr, nc, then (version 2) little-endian
/// float32 values, or (version 1) dlib floats.
public struct DlibNetwork {
    public let loss: String
    /// Metric loss margin and distance threshold (0.04 and 0.6 for the face recogniser).
    public let lossParameters: [Float]
    public let layers: [DlibLayer]
    /// The largest input layer side accepted: a face chip is 150 pixels.
    public static let maxInputSide = 4096

    public init(path: String) throws {
        let file = try MappedFile(path: path)
        // The parsed layers own copies of the weights, but the mapping must last the parse.
        self = try withExtendedLifetime(file) { try DlibNetwork(bytes: file.bytes, path: path) }
    }

    public init(bytes: UnsafeRawBufferPointer, path: String) throws {
        var r = DlibReader(bytes: bytes, path: path)
        let lossVersion = try r.int()
        guard lossVersion == 1, r.peekIsString() else {
            throw FormatError("\(path): not a dlib DNN file (no loss layer at the start)")
        }
        loss = try r.string()
        switch loss {
        case "loss_metric_2": lossParameters = [try r.float(), try r.float()]
        default: throw FormatError("\(path): unsupported dlib loss layer '\(printable(loss))'")
        }

        // Wrapper versions, outermost first, down to the layer over the input.
        var wrappers: [Int64] = []
        while true {
            let at = r.pos
            let v = try r.int()
            guard v == 1 || v == 2 || v == 3 else { throw r.fail("unexpected layer wrapper version \(v)", at) }
            wrappers.append(v)
            if v == 3 { break }
            guard wrappers.count < 100_000 else { throw r.fail("implausibly deep network", at) }
        }

        var forward: [DlibLayer] = [try Self.inputLayer(&r)]
        for v in wrappers.reversed() {
            if v == 1 { forward.append(.tagOrSkip); continue }
            forward.append(try Self.layerDetails(&r))
            // Trailer: setup flags and scratch tensors that inference doesn't need.
            for _ in 0..<3 { _ = try r.bool() }
            for _ in 0..<3 { _ = try r.tensor() }
            if v == 3 { _ = try r.int() }
        }
        guard r.pos == bytes.count else {
            throw r.fail("\(bytes.count - r.pos) unexpected bytes after the network", r.pos)
        }
        layers = forward
    }

    private static func inputLayer(_ r: inout DlibReader) throws -> DlibLayer {
        let at = r.pos
        let name = try r.string()
        guard name == "input_rgb_image_sized" else { throw r.fail("unsupported dlib input layer '\(printable(name))'", at) }
        let mean = [try r.float(), try r.float(), try r.float()]
        let rows = Int(try r.int()), cols = Int(try r.int())
        guard rows > 0, cols > 0, rows <= Self.maxInputSide, cols <= Self.maxInputSide else {
            throw r.fail("input layer of \(rows)×\(cols) pixels (at most \(Self.maxInputSide) a side)", at)
        }
        return .inputRGB(mean: mean, rows: rows, cols: cols)
    }

    private static func layerDetails(_ r: inout DlibReader) throws -> DlibLayer {
        let at = r.pos
        let name = try r.string()
        switch name {
        case "con_4":
            let params = try r.tensor()
            let numFilters = Int(try r.int()), nr = Int(try r.int()), nc = Int(try r.int())
            let strideY = Int(try r.int()), strideX = Int(try r.int())
            let padY = Int(try r.int()), padX = Int(try r.int())
            let filters = try r.aliasShape(), biases = try r.aliasShape()
            for _ in 0..<4 { _ = try r.double() }  // learning-rate and weight-decay multipliers
            // Products checked: each dimension may be up to 2³¹, and a wrapped product could match.
            let fCount = elements(filters), bCount = elements(biases)
            guard let fCount, let bCount, filters.count == 4, filters[0] == numFilters, filters[2] == nr, filters[3] == nc,
                  bCount == numFilters, fCount == params.values.count - bCount,
                  strideY > 0, strideX > 0, padY >= 0, padX >= 0 else {
                throw r.fail("con_ layer with inconsistent shapes (filters \(filters), biases \(biases), \(params.values.count) parameters)", at)
            }
            return .conv(weight: Tensor(shape: filters, values: Array(params.values[0..<fCount])),
                         bias: Tensor(shape: [numFilters], values: Array(params.values[fCount...])),
                         stride: (strideY, strideX), padding: (padY, padX))
        case "affine_":
            let params = try r.tensor()
            let gamma = try r.aliasShape(), beta = try r.aliasShape()
            let mode = try r.int()
            guard let g = elements(gamma), gamma == beta, g == params.values.count - g, mode == 0 || mode == 1 else {
                throw r.fail("affine_ layer with inconsistent shapes (gamma \(gamma), \(params.values.count) parameters, mode \(mode))", at)
            }
            // dlib's layer_mode: CONV_MODE = 0 scales each channel; FC_MODE = 1 each element.
            return .affine(gamma: Tensor(shape: [g], values: Array(params.values[0..<g])),
                           beta: Tensor(shape: [g], values: Array(params.values[g...])), perChannel: mode == 0)
        case "relu_":
            return .relu
        case "add_prev_":
            return .addPrev
        case "max_pool_2", "avg_pool_2":
            let nr = Int(try r.int()), nc = Int(try r.int())
            let sy = Int(try r.int()), sx = Int(try r.int())
            let py = Int(try r.int()), px = Int(try r.int())
            guard nr >= 0, nc >= 0, sy > 0, sx > 0, py >= 0, px >= 0 else {
                throw r.fail("\(name) layer with window \(nr)×\(nc), stride \(sy)×\(sx), padding \(py)×\(px)", at)
            }
            let p = DlibPool(rows: nr, cols: nc, stride: (sy, sx), padding: (py, px))
            return name == "max_pool_2" ? .maxPool(p) : .avgPool(p)
        case "fc_2":
            let outputs = Int(try r.int()), inputs = Int(try r.int())
            let params = try r.tensor()
            _ = try r.aliasShape(); _ = try r.aliasShape()
            let biasMode = try r.int()
            for _ in 0..<4 { _ = try r.double() }
            let hasBias = biasMode == 0
            guard inputs > 0, outputs > 0, case let (w, false) = inputs.multipliedReportingOverflow(by: outputs),
                  params.values.count - (hasBias ? outputs : 0) == w else {
                throw r.fail("fc_ layer with \(inputs) inputs, \(outputs) outputs and \(params.values.count) parameters", at)
            }
            return .fullyConnected(weight: Tensor(shape: [inputs, outputs], values: Array(params.values[0..<w])),
                                   bias: hasBias ? Tensor(shape: [outputs], values: Array(params.values[w...])) : nil)
        default:
            throw r.fail("unsupported dlib layer '\(printable(name))'", at)
        }
    }
}

/// The element count of an alias shape, or nil when the product overflows.
fileprivate func elements(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        let (m, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow else { return nil }
        n = m
    }
    return n
}

public struct DlibPool {
    /// Window size; 0 means the whole input (dlib's *_pool_everything).
    public let rows: Int, cols: Int
    public let stride: (y: Int, x: Int)
    public let padding: (y: Int, x: Int)
}

public enum DlibLayer {
    /// Input: RGB 0–255 minus `mean` (r, g, b), divided by 256.
    case inputRGB(mean: [Float], rows: Int, cols: Int)
    /// weight [outC, inC, kH, kW], as dlib stores it.
    case conv(weight: Tensor, bias: Tensor, stride: (y: Int, x: Int), padding: (y: Int, x: Int))
    /// y = gamma·x + beta, per channel (a batch norm folded for inference) or per element.
    case affine(gamma: Tensor, beta: Tensor, perChannel: Bool)
    case relu
    case maxPool(DlibPool)
    case avgPool(DlibPool)
    /// Adds the output of the most recent tag (sizes may differ; the excess is added to zero).
    case addPrev
    case tagOrSkip
    /// y = x · weight (+ bias), weight [inputs, outputs].
    case fullyConnected(weight: Tensor, bias: Tensor?)

    public var name: String {
        switch self {
        case .inputRGB: return "input_rgb_image_sized"
        case .conv: return "con"
        case .affine: return "affine"
        case .relu: return "relu"
        case .maxPool: return "max_pool"
        case .avgPool: return "avg_pool"
        case .addPrev: return "add_prev"
        case .tagOrSkip: return "tag/skip"
        case .fullyConnected: return "fc"
        }
    }
}

/// A cursor over dlib's serialisation with a range check before every read.
struct DlibReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var pos = 0

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    func fail(_ what: String, _ offset: Int) -> FormatError {
        FormatError("\(path): malformed dlib file: \(what) at offset \(offset)")
    }

    private mutating func take(_ n: Int, _ what: String) throws -> Int {
        guard n >= 0, n <= bytes.count - pos else {
            throw FormatError("\(path): truncated dlib file: \(what) needs \(n) bytes at offset \(pos), \(bytes.count - pos) left")
        }
        defer { pos += n }
        return pos
    }

    mutating func int() throws -> Int64 {
        let at = try take(1, "an integer")
        let head = bytes[at]
        let size = Int(head & 0x0F)
        guard head & 0x70 == 0, size >= 1, size <= 8 else { throw fail("bad integer header 0x\(String(head, radix: 16))", at) }
        let start = try take(size, "an integer")
        var magnitude: UInt64 = 0
        for i in (0..<size).reversed() { magnitude = magnitude << 8 | UInt64(bytes[start + i]) }
        guard magnitude <= UInt64(Int64.max) else { throw fail("integer out of range", at) }
        return head & 0x80 != 0 ? -Int64(magnitude) : Int64(magnitude)
    }

    mutating func double() throws -> Double {
        let at = pos
        let mantissa = try int(), exponent = try int()
        switch exponent {
        case 32000: return .infinity
        case 32001: return -.infinity
        case 32002: return .nan
        default:
            guard exponent >= -32768, exponent <= 32767 else { throw fail("float exponent \(exponent) out of range", at) }
            return Double(sign: .plus, exponent: Int(exponent), significand: Double(mantissa))
        }
    }

    mutating func float() throws -> Float { Float(try double()) }

    mutating func bool() throws -> Bool {
        let at = try take(1, "a bool")
        switch bytes[at] {
        case UInt8(ascii: "1"): return true
        case UInt8(ascii: "0"): return false
        default: throw fail("bad bool byte 0x\(String(bytes[at], radix: 16))", at)
        }
    }

    /// Whether the next item looks like a short string: an integer length then printable bytes.
    func peekIsString() -> Bool {
        var probe = self
        guard let n = try? probe.int(), n > 0, n < 64, Int(n) <= bytes.count - probe.pos else { return false }
        return (0..<Int(n)).allSatisfy { (0x20..<0x7F).contains(bytes[probe.pos + $0]) }
    }

    mutating func string() throws -> String {
        let at = pos
        let n = try int()
        guard n >= 0, n < 1 << 20 else { throw fail("bad string length \(n)", at) }
        let start = try take(Int(n), "a string")
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + Int(n))]), as: UTF8.self)
    }

    private mutating func dims(_ what: String) throws -> [Int] {
        let at = pos
        let d = try (0..<4).map { _ in try int() }
        guard d.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }) else { throw fail("\(what) has dimensions \(d)", at) }
        return d.map(Int.init)
    }

    /// A tensor's shape [num_samples, k, nr, nc] and values.
    mutating func tensor() throws -> (shape: [Int], values: [Float]) {
        let at = pos
        let version = try int()
        guard version == 1 || version == 2 else { throw fail("unsupported tensor version \(version)", at) }
        let shape = try dims("tensor")
        let (count, overflow) = shape.reduce((1, false)) { acc, d in
            let (m, o) = acc.0.multipliedReportingOverflow(by: d); return (m, acc.1 || o)
        }
        // Each value takes at least 2 bytes in either encoding, which bounds a corrupt count.
        guard !overflow, count <= (bytes.count - pos) / 2 + 1 else {
            throw FormatError("\(path): truncated dlib file: tensor \(shape) at offset \(at) is larger than the rest of the file")
        }
        if version == 2 {
            let start = try take(4 * count, "tensor \(shape)")
            // Little-endian IEEE floats, the host's own layout on every platform we build for.
            let values = [Float](unsafeUninitializedCapacity: count) { buf, n in
                UnsafeMutableRawBufferPointer(buf).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + 4 * count)]))
                n = count
            }
            return (shape, values)
        }
        return (shape, try (0..<count).map { _ in try float() })
    }

    /// An alias_tensor: version 1 and a shape, describing a view into a layer's parameters.
    mutating func aliasShape() throws -> [Int] {
        let at = pos
        let version = try int()
        guard version == 1 else { throw fail("unsupported alias_tensor version \(version)", at) }
        return try dims("alias_tensor")
    }
}
