import Foundation
import XCTest
import GuiseTensor
@testable import GuiseFormats
import GuiseTestSupport

enum Repo {
    /// `data` written to a fresh temporary file whose name ends in `suffix`.
    static func temporaryFile(_ data: Data, _ suffix: String) throws -> String {
        let path = temporaryPath(suffix)
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }
}

final class TFLiteReaderTests: XCTestCase {
    static let models = ["face_detection_short_range", "face_detection_full_range_sparse", "face_landmark",
                         "iris_landmark", "selfie_segmentation", "pose_detection", "pose_landmark_full"]

    /// LiteRT's view of each model, written by Tools/make_fixtures_face.py.
    func reference() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: try fixturePath("tflite_reference.json")))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static let dtypeNames: [TFLiteTensorType: String] = [
        .float32: "float32", .float16: "float16", .int32: "int32", .uint8: "uint8", .int8: "int8", .int64: "int64",
    ]

    func testOperatorsAndTensorsMatchLiteRT() throws {
        let ref = try reference()
        for name in Self.models {
            let m = try TFLiteModel(path: modelPath("\(name).tflite"))
            let r = try XCTUnwrap(ref[name] as? [String: Any], name)
            let g = m.mainGraph
            let ops = try XCTUnwrap(r["ops"] as? [[String: Any]])
            XCTAssertEqual(g.operators.count, ops.count, "\(name) operator count")
            for (i, (op, rop)) in zip(g.operators, ops).enumerated() {
                XCTAssertEqual(m.opName(op), rop["name"] as? String, "\(name) op #\(i)")
                XCTAssertEqual(op.inputs, rop["inputs"] as? [Int], "\(name) op #\(i) inputs")
                XCTAssertEqual(op.outputs, rop["outputs"] as? [Int], "\(name) op #\(i) outputs")
            }
            let tensors = try XCTUnwrap(r["tensors"] as? [[String: Any]])
            XCTAssertGreaterThan(tensors.count, 0)
            for rt in tensors {
                let i = try XCTUnwrap(rt["index"] as? Int)
                XCTAssertLessThan(i, g.tensors.count, name)
                guard i < g.tensors.count else { continue }
                let t = g.tensors[i]
                XCTAssertEqual(t.name, rt["name"] as? String, "\(name) tensor \(i)")
                XCTAssertEqual(t.shape, rt["shape"] as? [Int], "\(name) tensor \(i) '\(t.name)' shape")
                XCTAssertEqual(Self.dtypeNames[t.type], rt["dtype"] as? String, "\(name) tensor \(i) '\(t.name)' type")
            }
            XCTAssertEqual(g.inputs.map { g.tensors[$0].name }, [r["input"] as? String ?? "?"], "\(name) inputs")
            let outs = try XCTUnwrap(r["outputs"] as? [String: Any])
            XCTAssertEqual(Set(g.outputs.map { g.tensors[$0].name }), Set(outs.keys), "\(name) outputs")
        }
    }

    /// Every op these models use has decoded options that make sense for it, and every
    /// constant input (weights, biases, paddings) can be materialised.
    func testOptionsAndConstantsDecode() throws {
        for name in Self.models {
            let m = try TFLiteModel(path: modelPath("\(name).tflite"))
            let g = m.mainGraph
            for (i, op) in g.operators.enumerated() {
                let what = "\(name) op #\(i) \(m.opName(op))"
                switch (m.opName(op), op.options) {
                case ("CONV_2D", .conv2D(let o)):
                    XCTAssert(o.strideW >= 1 && o.strideW == o.strideH && o.dilationW == 1, "\(what) \(o)")
                    XCTAssertEqual(g.tensors[op.inputs[1]].shape.count, 4, what)
                case ("DEPTHWISE_CONV_2D", .depthwiseConv2D(let o)):
                    XCTAssert([1, 2].contains(o.strideW) && o.depthMultiplier == 1, what)
                case ("MAX_POOL_2D", .pool2D(let o)), ("AVERAGE_POOL_2D", .pool2D(let o)):
                    XCTAssert(o.filterW >= 1 && o.strideW >= 1, what)
                case ("ADD", .arithmetic), ("MUL", .arithmetic), ("CONCATENATION", .concatenation),
                     ("RESHAPE", .reshape), ("RESHAPE", .none), ("RESIZE_BILINEAR", .resizeBilinear),
                     ("DEQUANTIZE", _), ("DENSIFY", _), ("PAD", _), ("RELU", .none), ("PRELU", .none),
                     ("LOGISTIC", .none), ("HARD_SWISH", _):
                    break
                case ("DEPTH_TO_SPACE", .depthToSpace(let b)):
                    XCTAssertEqual(b, 2, what)
                case ("Convolution2DTransposeBias", .none):
                    let o = try TFLiteTransposeConvBiasOptions(customOptions: op.customOptions, what: what)
                    XCTAssertEqual(o.strideW, 2, what)
                    XCTAssertEqual(o.padding, .same, what)
                default:
                    XCTFail("\(what): unexpected options \(op.options)")
                }
                for t in op.inputs where t >= 0 && m.data(of: g.tensors[t]).count > 0 {
                    if g.tensors[t].type == .int32 {
                        XCTAssertNotNil(try m.intConstant(t), what)
                    } else {
                        let c = try XCTUnwrap(try m.constant(t), what)
                        XCTAssertEqual(c.shape, g.tensors[t].shape, what)
                    }
                }
            }
        }
    }

    /// DENSIFY constants match LiteRT's densified tensors (which the fixture script also checked
    /// against an independent numpy densification).
    func testDensifiedWeightsMatchLiteRT() throws {
        let fx = try SafeTensorsFile(path: try fixturePath("tflite_densify.safetensors"))
        for name in ["face_detection_full_range_sparse", "pose_detection"] {
            let m = try TFLiteModel(path: modelPath("\(name).tflite"))
            let statsT = try fx.tensor("\(name)/stats")
            let rows = statsT.shape[0]
            XCTAssertGreaterThan(rows, 10)
            let s = statsT.values
            // Stats were stored as F64; widening to F32 loses digits, so compare at float32 precision.
            for r in 0..<rows {
                let src = Int(s[5 * r]), dst = Int(s[5 * r + 1])
                let sparse = m.mainGraph.tensors[src]
                XCTAssertNotNil(sparse.sparsity, "\(name) tensor \(src)")
                XCTAssertEqual(sparse.shape, m.mainGraph.tensors[dst].shape)
                let dense = try XCTUnwrap(try m.constant(src)).values
                var sum = 0.0, sumAbs = 0.0, weighted = 0.0
                for (i, v) in dense.enumerated() {
                    sum += Double(v); sumAbs += Double(abs(v)); weighted += Double(v) * Double(i % 97 + 1)
                }
                XCTAssertEqual(Float(sum), s[5 * r + 2], accuracy: 1e-5 * max(1, abs(s[5 * r + 2])), "\(name) \(src) sum")
                XCTAssertEqual(Float(sumAbs), s[5 * r + 3], accuracy: 1e-6 * s[5 * r + 3], "\(name) \(src) sum|x|")
                XCTAssertEqual(Float(weighted), s[5 * r + 4], accuracy: 1e-5 * max(1, abs(s[5 * r + 4])), "\(name) \(src) weighted")
                if let full = fx["\(name)/dense/\(src)"] {
                    XCTAssertEqual(dense, full.toTensor().values, "\(name) tensor \(src) densified")
                }
            }
        }
    }

    /// A 4×4 matrix in 2×2 blocks, three blocks present, traversed block-row, block-column (CSR),
    /// then densely within the block.
    func testBlockSparseDensify() throws {
        let sp = TFLiteSparsity(
            traversalOrder: [0, 1, 2, 3], blockMap: [0, 1],
            dimMetadata: [
                .init(format: .dense, denseSize: 2, arraySegments: [], arrayIndices: []),
                .init(format: .sparseCSR, denseSize: 0, arraySegments: [0, 2, 3], arrayIndices: [0, 1, 1]),
                .init(format: .dense, denseSize: 2, arraySegments: [], arrayIndices: []),
                .init(format: .dense, denseSize: 2, arraySegments: [], arrayIndices: []),
            ])
        let values: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        let dense = try TFLiteSparsity.densify(values: values, shape: [4, 4], sparsity: sp, what: "test")
        XCTAssertEqual(dense, [1, 2, 5, 6,
                               3, 4, 7, 8,
                               0, 0, 9, 10,
                               0, 0, 11, 12])
    }

    /// Column-major traversal with a sparse inner level: the stored order is by column.
    func testColumnMajorCSRDensify() throws {
        let sp = TFLiteSparsity(
            traversalOrder: [1, 0], blockMap: [],
            dimMetadata: [
                .init(format: .dense, denseSize: 3, arraySegments: [], arrayIndices: []),
                .init(format: .sparseCSR, denseSize: 0, arraySegments: [0, 1, 1, 3], arrayIndices: [1, 0, 1]),
            ])
        let dense = try TFLiteSparsity.densify(values: [7, 8, 9], shape: [2, 3], sparsity: sp, what: "test")
        XCTAssertEqual(dense, [0, 0, 8,
                               7, 0, 9])
    }

    func testInconsistentSparsityIsRejected() {
        let sp = TFLiteSparsity(
            traversalOrder: [0, 1], blockMap: [],
            dimMetadata: [
                .init(format: .dense, denseSize: 2, arraySegments: [], arrayIndices: []),
                .init(format: .sparseCSR, denseSize: 0, arraySegments: [0, 1, 5], arrayIndices: [0, 2]),
            ])
        XCTAssertThrowsError(try TFLiteSparsity.densify(values: [1, 2], shape: [2, 3], sparsity: sp, what: "w")) { e in
            XCTAssert("\(e)".contains("bad sparsity"), "\(e)")
        }
    }

    /// Densifying happens at load, so the dense shape may not dwarf what is stored: one stored
    /// value for a 30000×30000 weight (3.6 GB dense) is refused before anything is allocated.
    func testDenseCopyIsBoundedByTheStoredValues() {
        let rows = 30000
        let sp = TFLiteSparsity(
            traversalOrder: [0, 1], blockMap: [],
            dimMetadata: [
                .init(format: .dense, denseSize: rows, arraySegments: [], arrayIndices: []),
                .init(format: .sparseCSR, denseSize: 0, arraySegments: [0] + [Int](repeating: 1, count: rows), arrayIndices: [7]),
            ])
        XCTAssertThrowsError(try TFLiteSparsity.densify(values: [1], shape: [rows, 30000], sparsity: sp, what: "w")) { e in
            XCTAssert("\(e)".contains("over 64 times as many"), "\(e)")
        }
        // A third of the values stored, as in the shipped sparse detector, is fine.
        let third = TFLiteSparsity(
            traversalOrder: [0, 1], blockMap: [],
            dimMetadata: [
                .init(format: .dense, denseSize: 2, arraySegments: [], arrayIndices: []),
                .init(format: .sparseCSR, denseSize: 0, arraySegments: [0, 1, 2], arrayIndices: [0, 2]),
            ])
        XCTAssertEqual(try TFLiteSparsity.densify(values: [1, 2], shape: [2, 3], sparsity: third, what: "w"), [1, 0, 0, 0, 0, 2])
    }

    /// Per-tensor and per-axis (axis 0 of a [2, 3] int8 weight) dequantization.
    func testDequantization() throws {
        let perTensor = TFLiteQuantization(scale: [0.5], zeroPoint: [3], quantizedDimension: 0)
        XCTAssertEqual(try TFLiteModel.dequantize([3, 5, -1], shape: [3], perTensor, "t"), [0, 1, -2])
        let perAxis = TFLiteQuantization(scale: [0.1, 2], zeroPoint: [0, -1], quantizedDimension: 0)
        let d = try TFLiteModel.dequantize([10, 20, -10, 1, 0, -1], shape: [2, 3], perAxis, "t")
        for (a, e) in zip(d, [1, 2, -1, 4, 2, 0] as [Float]) { XCTAssertEqual(a, e, accuracy: 1e-6) }
        let wrongAxis = TFLiteQuantization(scale: [0.1, 2], zeroPoint: [], quantizedDimension: 1)
        XCTAssertThrowsError(try TFLiteModel.dequantize([1, 2, 3, 4, 5, 6], shape: [2, 3], wrongAxis, "w")) { e in
            XCTAssert("\(e)".contains("do not fit shape [2, 3] on axis 1"), "\(e)")
        }
    }

    func testUnsupportedOpIsNamedAtLoad() throws {
        let m = try TFLiteModel(path: modelPath("face_landmark.tflite"))
        XCTAssertThrowsError(try m.checkOperators(supported: ["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "DEQUANTIZE", "PAD", "MAX_POOL_2D"])) { e in
            XCTAssert("\(e)".contains("unsupported TFLite op PRELU (operator #"), "\(e)")
        }
    }

    func testWrongFileIsRejected() throws {
        XCTAssertThrowsError(try TFLiteModel(path: modelPath("shape_predictor_5_face_landmarks.dat"))) { e in
            XCTAssert("\(e)".contains("not a TFLite file"), "\(e)")
        }
    }

    func testTruncatedFilesAreRejected() throws {
        let full = try Data(contentsOf: URL(fileURLWithPath: modelPath("face_detection_short_range.tflite")))
        for keep in [6, 64, 1000, full.count / 3, full.count / 2, full.count - 5000] {
            let path = try Repo.temporaryFile(full.prefix(keep), ".tflite")
            defer { try? FileManager.default.removeItem(atPath: path) }
            XCTAssertThrowsError(try TFLiteModel(path: path), "kept \(keep) bytes") { e in
                XCTAssert("\(e)".contains("offset") || "\(e)".contains("too short"), "\(e)")
            }
        }
    }

    /// Corrupted bytes anywhere in the FlatBuffer tables must give an error or a model whose
    /// constants still read safely; never a crash.
    func testCorruptedFilesNeverCrash() throws {
        let full = try Data(contentsOf: URL(fileURLWithPath: modelPath("face_detection_full_range_sparse.tflite")))
        var rng: UInt64 = 12345
        var rejected = 0
        for _ in 0..<150 {
            var bytes = [UInt8](full)
            for _ in 0..<4 {
                rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
                // Concentrate on the tables: the root, vtables and index vectors near the start and end.
                let pos = rng % 2 == 0 ? Int(rng >> 8) % 4096 : full.count - 1 - Int(rng >> 8) % 60000
                bytes[pos] = UInt8(truncatingIfNeeded: rng >> 32)
            }
            let ok: Bool = bytes.withUnsafeBytes { raw in
                do {
                    let m = try TFLiteModel(bytes: raw, path: "corrupt.tflite")
                    for i in m.mainGraph.tensors.indices where m.mainGraph.tensors[i].type != .int32 {
                        _ = try? m.constant(i)
                    }
                    return true
                } catch {
                    XCTAssert("\(error)".hasPrefix("corrupt.tflite:"), "\(error)")
                    return false
                }
            }
            if !ok { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 0)
    }
}
