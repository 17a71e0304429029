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
}
