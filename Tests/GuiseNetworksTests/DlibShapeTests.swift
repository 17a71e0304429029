import Foundation
import XCTest
@testable import GuiseFormats
import GuiseTensor
@testable import GuiseNetworks
import GuiseTestSupport

/// The encoder follows the activation's shape through every layer at load: a network whose
/// layers do not fit together is refused there, naming the layer, instead of reaching kernels
/// that trust their shapes.
final class DlibShapeTests: XCTestCase {
    func conv(_ out: Int, _ input: Int, _ k: Int, stride: Int = 1, pad: Int = 0) -> DlibLayer {
        .conv(weight: Tensor(shape: [out, input, k, k], repeating: 0.1), bias: Tensor(shape: [out], repeating: 0),
              stride: (stride, stride), padding: (pad, pad))
    }

    func fc(_ inputs: Int, _ outputs: Int) -> DlibLayer {
        .fullyConnected(weight: Tensor(shape: [inputs, outputs], repeating: 0.1), bias: nil)
    }

    func pool(_ n: Int, stride: Int = 1, pad: Int = 0) -> DlibPool {
        DlibPool(rows: n, cols: n, stride: (stride, stride), padding: (pad, pad))
    }

    /// A residual block, a downsampling block (tag, skip back, pool, add) and the descriptor.
    var valid: [DlibLayer] {
        [conv(4, 3, 3, pad: 1), .relu, .tagOrSkip, conv(4, 4, 3, pad: 1), .addPrev,
         .tagOrSkip, conv(4, 4, 3, stride: 2, pad: 1), .tagOrSkip, .tagOrSkip, .avgPool(pool(2, stride: 2)), .addPrev,
         .affine(gamma: Tensor(shape: [4], repeating: 1), beta: Tensor(shape: [4], repeating: 0), perChannel: true),
         .avgPool(pool(0)), fc(4, 3)]
    }

    func assertRefused(_ layers: [DlibLayer], chip: Int = 8, layer: Int, _ mentions: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try DlibFaceEncoder.checkShapes(layers, chip: chip, path: "n.dat"), file: file, line: line) { e in
            let m = (e as? FormatError)?.message ?? "\(e)"
            XCTAssertTrue(m.hasPrefix("n.dat: layer #\(layer) ") && m.contains(mentions) && !m.contains("\n"), m, file: file, line: line)
        }
    }

    func testValidNetworkRunsWithTheCheckedShapes() throws {
        XCTAssertEqual(try DlibFaceEncoder.checkShapes(valid, chip: 8, path: "n.dat"), 4 * 8 * 8)
        // The shipped recogniser passes and its largest activation is the stem's output.
        let shipped = try DlibFaceEncoder(path: modelPath("dlib_face_recognition_resnet_model_v1.dat"))
        XCTAssertEqual(shipped.largestActivation, 32 * 72 * 72)
    }

    func testLayersThatDoNotFitAreNamed() {
        var l = valid
        l[3] = conv(4, 5, 3, pad: 1)
        assertRefused(l, layer: 4, "do not fit an input of 4 channels")
        l = valid
        l[0] = conv(4, 3, 9)
        assertRefused(l, layer: 1, "does not fit a 8×8 input")
        l = valid
        l[0] = conv(4, 3, 3, pad: 3)  // dlib requires padding below the filter size
        assertRefused(l, layer: 1, "padding 3×3")
        l = valid
        l[9] = .avgPool(pool(2, stride: 2, pad: 2))
        assertRefused(l, layer: 10, "window")
        l = valid
        l[9] = .maxPool(pool(0))
        assertRefused(l, layer: 10, "0×0 window")
        l = valid
        l[11] = .affine(gamma: Tensor(shape: [3], repeating: 1), beta: Tensor(shape: [3], repeating: 0), perChannel: true)
        assertRefused(l, layer: 12, "3 scales")
        l = valid
        l[13] = fc(5, 3)
        assertRefused(l, layer: 14, "weights [5, 3]")
        l = valid
        l.insert(fc(4, 4), at: 13)
        assertRefused(l, layer: 14, "must be the last")
    }

    func testTagsAndSkipsMustExist() {
        // A skip back to a tag that was never set (the forward pass would index before the start).
        assertRefused([conv(4, 3, 3), .tagOrSkip, .tagOrSkip, .addPrev, .avgPool(pool(0)), fc(4, 3)], layer: 2, "never set")
        // An add_prev with no tag to add.
        assertRefused([conv(4, 3, 3), .addPrev, .avgPool(pool(0)), fc(4, 3)], layer: 2, "never set")
    }

    func testHugeSizesAreRefusedNotWrapped() {
        let wide = DlibPool(rows: Int.max, cols: Int.max, stride: (1, 1), padding: (Int.max / 2, Int.max / 2))
        assertRefused([conv(4, 3, 3), .maxPool(wide), .avgPool(pool(0)), fc(4, 3)], layer: 2, "window")
        let padded = DlibLayer.conv(weight: Tensor(shape: [4, 3, 3, 3], repeating: 0), bias: Tensor(shape: [4], repeating: 0),
                                    stride: (1, 1), padding: (Int.max, Int.max))
        assertRefused([padded, .avgPool(pool(0)), fc(4, 3)], layer: 1, "does not fit")
        // Activations past the per-sample limit.
        assertRefused([conv(32, 3, 1), .avgPool(pool(0)), fc(32, 3)], chip: 4096, layer: 1, "over \(DlibFaceEncoder.maxActivation) elements")
    }
}
