import Foundation
import XCTest
import GuiseTensor
@testable import GuiseFormats
import GuiseTestSupport

final class DlibReaderTests: XCTestCase {
    static let file = "dlib_face_recognition_resnet_model_v1.dat"

    func testFaceRecognitionResNetStructure() throws {
        let net = try DlibNetwork(path: modelPath(Self.file))
        XCTAssertEqual(net.loss, "loss_metric_2")
        XCTAssertEqual(net.lossParameters[0], 0.04, accuracy: 1e-6)
        XCTAssertEqual(net.lossParameters[1], 0.6, accuracy: 1e-6)

        var counts: [String: Int] = [:]
        for l in net.layers { counts[l.name, default: 0] += 1 }
        // ResNet-29: a 7×7 stem plus 14 residual blocks of two 3×3 convs; 4 blocks downsample
        // through tag2/skip1/avg_pool on the shortcut.
        XCTAssertEqual(counts, ["input_rgb_image_sized": 1, "con": 29, "affine": 29, "relu": 29, "max_pool": 1,
                                "avg_pool": 5, "add_prev": 14, "tag/skip": 22, "fc": 1])

        guard case .inputRGB(let mean, let rows, let cols) = net.layers[0] else { return XCTFail("input first") }
        XCTAssertEqual(rows, 150); XCTAssertEqual(cols, 150)
        XCTAssertEqual(mean[0], 122.782, accuracy: 1e-3)
        XCTAssertEqual(mean[1], 117.001, accuracy: 1e-3)
        XCTAssertEqual(mean[2], 104.298, accuracy: 1e-3)

        guard case .conv(let w, let b, let stride, let pad) = net.layers[1] else { return XCTFail("stem conv") }
        XCTAssertEqual(w.shape, [32, 3, 7, 7]); XCTAssertEqual(b.shape, [32])
        XCTAssertEqual(stride.y, 2); XCTAssertEqual(stride.x, 2); XCTAssertEqual(pad.y, 0)
        guard case .affine(let g, _, let perChannel) = net.layers[2] else { return XCTFail("stem affine") }
        XCTAssertEqual(g.shape, [32]); XCTAssertTrue(perChannel)
        guard case .maxPool(let mp) = net.layers[4] else { return XCTFail("max pool") }
        XCTAssertEqual([mp.rows, mp.cols, mp.stride.y, mp.padding.y], [3, 3, 2, 0])

        guard case .fullyConnected(let fw, let fb) = net.layers.last! else { return XCTFail("fc last") }
        XCTAssertEqual(fw.shape, [256, 128]); XCTAssertNil(fb)
        guard case .avgPool(let everything) = net.layers[net.layers.count - 2] else { return XCTFail("avg pool everything") }
        XCTAssertEqual([everything.rows, everything.cols], [0, 0])

        // The stride-2 convs open the downsampling blocks: 64, 128, 256 and 256 filters.
        var downs: [Int] = []
        for l in net.layers {
            if case .conv(let w, _, let s, let p) = l, s.y == 2, w.shape[2] == 3 {
                downs.append(w.shape[0])
                XCTAssertEqual(p.y, 0)
            }
        }
        XCTAssertEqual(downs, [64, 128, 256, 256])
        // Weights are real numbers of sensible size (a mis-parse gives garbage or NaN).
        for l in net.layers {
            if case .conv(let w, _, _, _) = l {
                let v = w.values
                let sample = Swift.stride(from: 0, to: v.count, by: 97).map { abs(v[$0]) }
                XCTAssert(sample.allSatisfy { $0.isFinite && $0 < 100 })
                XCTAssertGreaterThan(sample.max()!, 1e-3)
            }
        }
    }

    func testIntegerAndFloatEncodings() throws {
        // 300 = 0x012C: two bytes; −5: sign bit; 0.75 = 3·2^−2; −inf via the special exponent.
        let bytes: [UInt8] = [0x02, 0x2C, 0x01, 0x81, 0x05, 0x01, 0x03, 0x81, 0x02, 0x01, 0x00, 0x02, 0x01, 0x7D, 0x31]
        try bytes.withUnsafeBytes { raw in
            var r = DlibReader(bytes: raw, path: "t")
            XCTAssertEqual(try r.int(), 300)
            XCTAssertEqual(try r.int(), -5)
            XCTAssertEqual(try r.float(), 0.75)
            XCTAssertEqual(try r.float(), -.infinity)
            XCTAssertEqual(try r.bool(), true)
            XCTAssertThrowsError(try r.int()) { e in XCTAssert("\(e)".contains("truncated"), "\(e)") }
        }
    }

    func testWrongFilesAreRejected() throws {
        for other in ["shape_predictor_5_face_landmarks.dat", "face_detection_short_range.tflite"] {
            XCTAssertThrowsError(try DlibNetwork(path: modelPath(other)), other) { e in
                XCTAssert("\(e)".contains("not a dlib DNN file") || "\(e)".contains("malformed dlib file"), "\(e)")
            }
        }
    }

    func testTruncatedFilesAreRejected() throws {
        let full = try Data(contentsOf: URL(fileURLWithPath: modelPath(Self.file)))
        for keep in [1, 20, 300, 20_000, full.count / 2, full.count - 1] {
            let path = try Repo.temporaryFile(full.prefix(keep), ".dat")
            defer { try? FileManager.default.removeItem(atPath: path) }
            XCTAssertThrowsError(try DlibNetwork(path: path), "kept \(keep) bytes") { e in
                XCTAssert("\(e)".contains("truncated") || "\(e)".contains("not a dlib DNN file"), "\(e)")
            }
        }
    }

    /// Corrupted structure bytes give an error, never a crash.
    func testCorruptedFilesNeverCrash() throws {
        let full = try Data(contentsOf: URL(fileURLWithPath: modelPath(Self.file)))
        var rng: UInt64 = 777
        var rejected = 0
        var bytes = [UInt8](full)
        for _ in 0..<60 {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
            // The wrapper versions and the first layers' headers sit in the first kilobyte.
            let at = Int(rng >> 16) % 1024, saved = bytes[at]
            bytes[at] = UInt8(truncatingIfNeeded: rng >> 40)
            defer { bytes[at] = saved }
            bytes.withUnsafeBytes { raw in
                do { _ = try DlibNetwork(bytes: raw, path: "c.dat") } catch {
                    rejected += 1
                    XCTAssert("\(error)".hasPrefix("c.dat:"), "\(error)")
                }
            }
        }
        XCTAssertGreaterThan(rejected, 10)
    }
    /// Sizes whose products overflow (each dimension below 2³¹, four of them multiplied; an fc's
    /// inputs × outputs; an affine's 2 × count) are refused with a message, never trapped on
    /// or wrapped into a size that matches.
    func testOverflowingShapesAreRefused() throws {
        func int(_ v: Int64) -> [UInt8] {
            var m = v.magnitude, raw: [UInt8] = []
            repeat { raw.append(UInt8(m & 0xFF)); m >>= 8 } while m > 0
            return [UInt8(raw.count) | (v < 0 ? 0x80 : 0)] + raw
        }
        func string(_ s: String) -> [UInt8] { int(Int64(s.utf8.count)) + Array(s.utf8) }
        func float(_ v: Int64) -> [UInt8] { int(v) + int(0) }
        func alias(_ d: [Int64]) -> [UInt8] { int(1) + d.flatMap(int) }
        let emptyTensor = int(2) + [0, 0, 0, 0].flatMap(int)
        let head = int(1) + string("loss_metric_2") + float(0) + float(1) + int(3)
            + string("input_rgb_image_sized") + float(1) + float(2) + float(3) + int(8) + int(8)
        let big: Int64 = 1 << 31 - 1
        let layers: [(String, [UInt8])] = [
            ("con_", string("con_4") + emptyTensor + [big, 1, 1, 1, 1, 0, 0].flatMap(int) + alias([big, big, big, big]) + alias([1, big, 1, 1])
                + float(1) + float(1) + float(1) + float(1)),
            ("affine_", string("affine_") + emptyTensor + alias([big, big, big, 4]) + alias([big, big, big, 4]) + int(0)),
            ("fc_", string("fc_2") + int(Int64(1) << 40) + int(Int64(1) << 40) + emptyTensor + alias([1, 1, 1, 1]) + alias([1, 1, 1, 1])
                + int(1) + float(1) + float(1) + float(1) + float(1)),
        ]
        for (name, layer) in layers {
            let bytes = head + layer + [UInt8](repeating: UInt8(ascii: "0"), count: 3) + emptyTensor + emptyTensor + emptyTensor + int(1)
            try bytes.withUnsafeBytes { raw in
                XCTAssertThrowsError(try DlibNetwork(bytes: raw, path: "o.dat"), name) { e in
                    let m = (e as? FormatError)?.message ?? "\(e)"
                    XCTAssertTrue(m.hasPrefix("o.dat: malformed dlib file: \(name)") && !m.contains("\n"), m)
                }
            }
        }
        // An input layer of absurd size.
        let wide = int(1) + string("loss_metric_2") + float(0) + float(1) + int(3)
            + string("input_rgb_image_sized") + float(1) + float(2) + float(3) + int(1 << 40) + int(1 << 40)
        try wide.withUnsafeBytes { raw in
            XCTAssertThrowsError(try DlibNetwork(bytes: raw, path: "o.dat")) { e in
                XCTAssertTrue("\(e)".contains("input layer of"), "\(e)")
            }
        }
    }
}
