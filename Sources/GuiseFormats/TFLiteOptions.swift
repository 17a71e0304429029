/// Padding as the TFLite schema encodes it.
public enum TFLitePadding: Int8, Sendable { case same = 0, valid = 1 }

/// The activation an op applies to its own output.
public enum TFLiteActivation: Int8, Sendable { case none = 0, relu = 1, reluN1To1 = 2, relu6 = 3, tanh = 4, signBit = 5 }

public struct TFLiteConv2DOptions: Sendable {
    public var padding: TFLitePadding
    public var strideW: Int, strideH: Int
    public var dilationW: Int, dilationH: Int
    public var activation: TFLiteActivation
}

public struct TFLiteDepthwiseConv2DOptions: Sendable {
    public var padding: TFLitePadding
    public var strideW: Int, strideH: Int
    public var depthMultiplier: Int
    public var dilationW: Int, dilationH: Int
    public var activation: TFLiteActivation
}

public struct TFLitePool2DOptions: Sendable {
    public var padding: TFLitePadding
    public var strideW: Int, strideH: Int
    public var filterW: Int, filterH: Int
    public var activation: TFLiteActivation
}

public struct TFLiteResizeOptions: Sendable {
    public var alignCorners: Bool
    public var halfPixelCenters: Bool
}

public struct TFLiteTransposeConvOptions: Sendable {
    public var padding: TFLitePadding
    public var strideW: Int, strideH: Int
    public var activation: TFLiteActivation
}

public struct TFLiteStridedSliceOptions: Sendable {
    public var beginMask: Int, endMask: Int, ellipsisMask: Int, newAxisMask: Int, shrinkAxisMask: Int
}

/// The decoded `builtin_options` union. Option tables of ops these models don't use are kept
/// as `.other(unionType)` so they are still reported, never misread.
public enum TFLiteOptions: Sendable {
    case none
    case conv2D(TFLiteConv2DOptions)
    case depthwiseConv2D(TFLiteDepthwiseConv2DOptions)
    case pool2D(TFLitePool2DOptions)
    case fullyConnected(activation: TFLiteActivation, keepNumDims: Bool)
    case concatenation(axis: Int, activation: TFLiteActivation)
    /// ADD, MUL, SUB and DIV carry only a fused activation.
    case arithmetic(activation: TFLiteActivation)
    case reshape(newShape: [Int]?)
    case resizeBilinear(TFLiteResizeOptions)
    case resizeNearestNeighbor(TFLiteResizeOptions)
    case depthToSpace(blockSize: Int)
    case transposeConv(TFLiteTransposeConvOptions)
    case stridedSlice(TFLiteStridedSliceOptions)
    case softmax(beta: Float)
    /// Options tables without fields (Pad, Dequantize, Densify, HardSwish, ...).
    case empty(unionType: Int)
    case other(unionType: Int)

    init(kind: UInt8, table: FBTable?) throws {
        guard kind != 0 else { self = .none; return }
        guard let t = table else { self = .empty(unionType: Int(kind)); return }
        func act(_ id: Int) throws -> TFLiteActivation {
            let v = try t.scalar(id, Int8.self, default: 0)
            guard let a = TFLiteActivation(rawValue: v) else { throw t.fb.fail("unknown fused activation \(v)", t.pos) }
            return a
        }
        func pad(_ id: Int) throws -> TFLitePadding {
            let v = try t.scalar(id, Int8.self, default: 0)
            guard let p = TFLitePadding(rawValue: v) else { throw t.fb.fail("unknown padding \(v)", t.pos) }
            return p
        }
        func int(_ id: Int, _ d: Int32 = 0) throws -> Int { Int(try t.scalar(id, Int32.self, default: d)) }

        switch kind {
        case 1:
            self = .conv2D(.init(padding: try pad(0), strideW: try int(1), strideH: try int(2),
                                 dilationW: try int(4, 1), dilationH: try int(5, 1), activation: try act(3)))
        case 2:
            self = .depthwiseConv2D(.init(padding: try pad(0), strideW: try int(1), strideH: try int(2),
                                          depthMultiplier: try int(3), dilationW: try int(5, 1), dilationH: try int(6, 1),
                                          activation: try act(4)))
        case 5:
            self = .pool2D(.init(padding: try pad(0), strideW: try int(1), strideH: try int(2),
                                 filterW: try int(3), filterH: try int(4), activation: try act(5)))
        case 8: self = .fullyConnected(activation: try act(0), keepNumDims: try t.bool(2))
        case 9: self = .softmax(beta: try t.float(0, default: 0))
        case 10: self = .concatenation(axis: try int(0), activation: try act(1))
        case 11, 21, 28, 29: self = .arithmetic(activation: try act(0))
        case 15: self = .resizeBilinear(.init(alignCorners: try t.bool(2), halfPixelCenters: try t.bool(3)))
        case 17: self = .reshape(newShape: try t.ints(0, Int32.self, "new_shape")?.map(Int.init))
        case 32:
            self = .stridedSlice(.init(beginMask: try int(0), endMask: try int(1), ellipsisMask: try int(2),
                                       newAxisMask: try int(3), shrinkAxisMask: try int(4)))
        case 49: self = .transposeConv(.init(padding: try pad(0), strideW: try int(1), strideH: try int(2), activation: try act(3)))
        case 74: self = .resizeNearestNeighbor(.init(alignCorners: try t.bool(0), halfPixelCenters: try t.bool(1)))
        case 94: self = .depthToSpace(blockSize: try int(0))
        case 22, 38, 91, 99: self = .empty(unionType: Int(kind))
        default: self = .other(unionType: Int(kind))
        }
    }
}

/// MediaPipe's custom `Convolution2DTransposeBias`: its custom_options are the raw bytes of
/// TFLite's C struct `TfLiteTransposeConvParams` {padding, stride_width, stride_height} as
/// int32s, where padding uses the C enum (1 = SAME, 2 = VALID), not the schema's.
public struct TFLiteTransposeConvBiasOptions: Sendable {
    public var padding: TFLitePadding
    public var strideW: Int, strideH: Int

    public init(customOptions b: [UInt8], what: String) throws {
        guard b.count >= 12 else {
            throw FormatError("\(what): Convolution2DTransposeBias options are \(b.count) bytes, expected at least 12")
        }
        func i32(_ k: Int) -> Int { Int(Int32(bitPattern: UInt32(b[k]) | UInt32(b[k + 1]) << 8 | UInt32(b[k + 2]) << 16 | UInt32(b[k + 3]) << 24)) }
        switch i32(0) {
        case 1: padding = .same
        case 2: padding = .valid
        default: throw FormatError("\(what): Convolution2DTransposeBias has unknown padding \(i32(0))")
        }
        strideW = i32(4)
        strideH = i32(8)
        guard strideW > 0, strideH > 0, strideW <= 1 << 16, strideH <= 1 << 16 else {
            throw FormatError("\(what): Convolution2DTransposeBias has strides \(strideW)×\(strideH)")
        }
    }
}

/// Builtin operator codes (schema.fbs `BuiltinOperator`).
public enum TFLiteBuiltin {
    public static let custom: Int32 = 32

    static let names: [String] = [
        "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE",
        "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP", "L2_NORMALIZATION", "L2_POOL_2D",
        "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU",
        "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH",
        "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
        "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN",
        "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN",
        "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU",
        "MAXIMUM", "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT",
        "SLICE", "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG",
        "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK",
        "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY",
        "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU",
        "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND",
        "COS", "WHERE", "RANK", "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND",
        "HARD_SWISH", "IF", "WHILE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2",
        "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL",
    ]

    public static func name(_ code: Int32) -> String {
        code >= 0 && Int(code) < names.count ? names[Int(code)] : "BUILTIN_\(code)"
    }
}
