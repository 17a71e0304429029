import Foundation
import XCTest
@testable import GuiseFormats
@testable import GuiseNetworks
import GuiseTensor
import GuiseTestSupport

/// A damaged `.tflite` file either loads and runs to finite outputs or fails at load with one
/// line naming what is wrong; it never reads out of range (the kernels run unchecked).
final class TFLiteCorruptionTests: XCTestCase {
    static let model = "face_detection_short_range.tflite"

    /// A small input in the model's range, the same every run.
    func input(_ shape: [Int]) -> Tensor {
        let n = Tensor.product(shape)
        return Tensor(shape: shape, values: (0..<n).map { Float(($0 * 37) % 255) / 127.5 - 1 })
    }

    enum Outcome: Equatable { case ran, refused }

    /// Loads `bytes` as a model, runs it, and checks the promise; returns what happened.
    func loadAndRun(_ bytes: [UInt8], _ label: String) throws -> Outcome {
        try bytes.withUnsafeBytes { raw -> Outcome in
            let net: TFLiteNetwork
            do {
                net = try TFLiteNetwork(model: TFLiteModel(bytes: raw, path: label))
            } catch let e as FormatError {
                XCTAssertFalse(e.message.contains("\n"), "\(label): error is not one line: \(e.message)")
                XCTAssertTrue(e.message.hasPrefix(label), "\(label): error does not name the file: \(e.message)")
                XCTAssertEqual(e.category, .model, label)
                if ProcessInfo.processInfo.environment["GUISE_SHOW_REFUSALS"] != nil { print(e.message) }
                return .refused
            }
            let outs = try Autograd.noGrad { try net(net.inputShapes.map(input)) }
            XCTAssertEqual(outs.map(\.shape), net.outputShapes, label)
            for (k, y) in outs.enumerated() {
                XCTAssertTrue(y.values.allSatisfy(\.isFinite), "\(label): output \(k) is not finite")
            }
            return .ran
        }
    }

    /// Byte offsets of the weight buffers and of everything else (the FlatBuffers tables).
    func regions(_ bytes: [UInt8]) throws -> (weights: [Int], tables: [Int]) {
        try bytes.withUnsafeBytes { raw in
            let model = try TFLiteModel(bytes: raw, path: "original")
            var inWeights = [Bool](repeating: false, count: bytes.count)
            for b in model.buffers where b.count > 0 {
                let start = b.baseAddress! - raw.baseAddress!
                for k in start..<(start + b.count) { inWeights[k] = true }
            }
            return (inWeights.indices.filter { inWeights[$0] }, inWeights.indices.filter { !inWeights[$0] })
        }
    }

    /// The byte from the report that used to crash detection with a bad pointer dereference.
    func testReportedByteFlipFailsAtLoad() throws {
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: modelPath(Self.model))))
        XCTAssertEqual(try loadAndRun(bytes, "original"), .ran)
        bytes[210932] = 0x5d
        let path = temporaryPath(Self.model)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try TFLiteNetwork(path: path)) { e in
            let message = (e as? FormatError)?.message ?? "\(e)"
            XCTAssertTrue(message.hasPrefix(path) && message.contains("operator #"), message)
        }
        XCTAssertEqual(try loadAndRun(bytes, "flipped"), .refused)
    }

    /// Fixed, evenly spread offsets in the tables and in the weights: table bytes set to a few
    /// values, weight bytes changed by single-bit flips (exponent bits among them).
    func mutate(_ model: String, tableBytes: Int, weightBytes: Int) throws {
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: modelPath(model))))
        let (weights, tables) = try regions(original)
        XCTAssertGreaterThan(tables.count, 1000)
        XCTAssertGreaterThan(weights.count, 100_000)
        var outcomes: [Outcome: Int] = [:]
        let values: [UInt8] = [0x5d, 0x00, 0xff, 0x80, 0x7f, 0x01]
        for k in 0..<tableBytes {
            var bytes = original
            let at = tables[k * tables.count / tableBytes + (k * 7919) % max(tables.count / tableBytes, 1)]
            bytes[at] = values[k % values.count] == bytes[at] ? ~bytes[at] : values[k % values.count]
            outcomes[try loadAndRun(bytes, "\(model) table byte \(at)"), default: 0] += 1
        }
        for k in 0..<weightBytes {
            var bytes = original
            let at = weights[k * weights.count / weightBytes + (k * 104_729) % (weights.count / weightBytes)]
            bytes[at] ^= UInt8(1) << (k % 8)
            outcomes[try loadAndRun(bytes, "\(model) weight byte \(at)"), default: 0] += 1
        }
        // The mutations must reach both outcomes, or they test nothing.
        XCTAssertGreaterThan(outcomes[.refused, default: 0], 0, model)
        XCTAssertGreaterThan(outcomes[.ran, default: 0], 0, model)
        print("mutated \(model): \(outcomes[.ran, default: 0]) ran, \(outcomes[.refused, default: 0]) refused at load")
    }

    /// The top exponent bit of one float32 weight (−0.019 becomes about −6e36): it would run
    /// and make every output non-finite.
    func testHugeWeightFailsAtLoad() throws {
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: modelPath(Self.model))))
        XCTAssertEqual(bytes[15757], 0xbc)
        bytes[15757] ^= 0x40
        XCTAssertEqual(try loadAndRun(bytes, "huge weight"), .refused)
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try TFLiteNetwork(model: TFLiteModel(bytes: $0, path: "huge weight")) }) { e in
            XCTAssertTrue("\(e)".contains("beyond"), "\(e)")
        }
    }

    func testMutatedBytesNeverCrash() throws {
        try mutate(Self.model, tableBytes: 120, weightBytes: 40)
    }

    /// The full-range model keeps fp16 weights, sparse ones among them, densified at load.
    func testMutatedSparseModelNeverCrashes() throws {
        try mutate("face_detection_full_range_sparse.tflite", tableBytes: 60, weightBytes: 20)
    }
}
