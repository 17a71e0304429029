import XCTest
import GuisePrior
import GuiseFace
import GuiseFormats
import GuiseImage
import GuisePipelines
import GuiseTensor
import GuiseVision

final class ImageTensorTests: XCTestCase {
    func image(_ w: Int, _ h: Int, alpha: Bool = false) -> Image {
        let n = w * h
        let rgb = (0..<(3 * n)).map { Float($0 % 256) / 255 }
        return Image(width: w, height: h, rgb: rgb, alpha: alpha ? (0..<n).map { Float($0 % 7) / 6 } : nil)
    }

    func testRoundTripIsExactInBothRanges() throws {
        let im = image(5, 3, alpha: true)
        for range in [ImageTensor.Range.unit, .signed] {
            let t = ImageTensor.tensor(im, range: range)
            XCTAssertEqual(t.shape, [1, 3, 3, 5])
            let back = try ImageTensor.image(t, range: range, alpha: im.alpha)
            // 8-bit levels survive v ↦ 2v − 1 ↦ (v + 1)/2 in float32 to well under half a level.
            for (a, b) in zip(back.rgb, im.rgb) { XCTAssertEqual(a, b, accuracy: 1e-6) }
            XCTAssertEqual(back.alpha, im.alpha)
        }
    }

    func testSignedRangeMapsEnds() throws {
        let im = Image(width: 2, height: 1, rgb: [0, 1, 0, 1, 0, 1])
        XCTAssertEqual(ImageTensor.tensor(im, range: .signed).values, [-1, 1, -1, 1, -1, 1])
        // Out-of-range network values are clamped when they become pixels.
        let t = Tensor(shape: [1, 3, 1, 2], values: [-3, 3, -1, 1, 0, 0.5])
        XCTAssertEqual(try ImageTensor.image(t, range: .signed).rgb, [0, 1, 0, 1, 0.5, 0.75])
    }

    func testNaNIsKeptNotHidden() throws {
        let t = Tensor(shape: [1, 3, 1, 1], values: [.nan, 0, 0])
        XCTAssertTrue(try ImageTensor.image(t).rgb[0].isNaN)
    }

    func testBatchAndIndexing() throws {
        let a = image(4, 2), b = Image(width: 4, height: 2, red: 0.25, green: 0.5, blue: 1)
        let t = try ImageTensor.batch([a, b], range: .signed)
        XCTAssertEqual(t.shape, [2, 3, 2, 4])
        XCTAssertEqual(try ImageTensor.image(t, range: .signed, index: 1).rgb, b.rgb)
        XCTAssertThrowsError(try ImageTensor.batch([a, image(3, 2)]))
        XCTAssertThrowsError(try ImageTensor.image(t, index: 2))
        XCTAssertThrowsError(try ImageTensor.image(Tensor(shape: [1, 2, 2, 2], values: Array(repeating: 0, count: 8))))
    }

    func testGreyTensorBecomesThreeEqualPlanes() throws {
        let t = Tensor(shape: [1, 1, 1, 3], values: [0, 0.5, 1])
        let im = try ImageTensor.image(t)
        XCTAssertTrue(im.isGrey)
        XCTAssertEqual(im.rgb, [0, 0.5, 1, 0, 0.5, 1, 0, 0.5, 1])
    }

    func testMaskRoundTrip() throws {
        let m = Mask(width: 3, height: 2, values: [0, 0.5, 1, 1, 0.25, 0])
        let t = ImageTensor.tensor(m)
        XCTAssertEqual(t.shape, [1, 1, 2, 3])
        XCTAssertEqual(try ImageTensor.mask(t), m)
        XCTAssertThrowsError(try ImageTensor.mask(Tensor(shape: [1, 3, 2, 3], values: Array(repeating: 0, count: 18))))
    }
}

final class FaceSelectionTests: XCTestCase {
    let faces = [Face(box: Box(x: 0, y: 0, width: 10, height: 10), score: 1),
                 Face(box: Box(x: 20, y: 0, width: 5, height: 5), score: 0.5)]

    func testPickInRangeAndErrors() throws {
        XCTAssertEqual(try FaceSelection.pick(faces, index: 1, label: "p.jpg"), faces[1])
        XCTAssertThrowsError(try FaceSelection.pick(faces, index: 2, label: "p.jpg")) { e in
            XCTAssertEqual("\(e)", "face 2 is out of range: p.jpg has 2 faces (0...1)")
        }
        XCTAssertThrowsError(try FaceSelection.pick([], index: 0, label: "p.jpg")) { e in
            XCTAssertEqual("\(e)", "no face found in p.jpg")
        }
    }

    func testMeshNeedsEyeKeypoints() throws {
        let im = Image(width: 8, height: 8, red: 0, green: 0, blue: 0)
        XCTAssertThrowsError(try FaceSelection.landmarks(im, face: faces[0], analyzer: FaceAnalyzer())) { e in
            XCTAssertTrue("\(e)".contains("needs a detector that finds the eyes"), "\(e)")
        }
    }
}

final class DiffusionModelTests: XCTestCase {
    func testPriorByNameLoadsWithItsOwnSchedule() throws {
        let m = try DiffusionModel.load(nil)
        XCTAssertEqual(m.path, try DiffusionModel.resolvePath("prior"))
        XCTAssertEqual(m.config.noiseSchedule, "cosine")
        let d = try m.diffusion(respacing: "ddim10")
        XCTAssertEqual(d.numTimesteps, 10)
        XCTAssertGreaterThanOrEqual(m.stride, 1)
        // The denoiser closure runs the network: ε for a small input has x's shape.
        let x = Tensor(shape: [1, 3, 2 * m.stride, 2 * m.stride], repeating: 0)
        let eps = try Autograd.noGrad { try m.denoiser(x, Tensor(shape: [1], values: [d.networkTimestep(5)]), [:]) }
        XCTAssertEqual(eps.shape, x.shape)
        XCTAssertFalse(eps.values.contains { !$0.isFinite })
    }

    func testEveryShippedPriorLoadsByName() throws {
        XCTAssertEqual(try DiffusionModel.resolvePath("prior"), try DiffusionModel.resolvePath(PriorModel.defaultPrior))
        var paths: Set<String> = []
        for name in PriorModel.shippedPriors.keys.sorted() {
            let m = try DiffusionModel.load(name)
            XCTAssertTrue(m.path.hasSuffix("/" + PriorModel.shippedPriors[name]!), m.path)
            XCTAssertEqual(m.config.noiseSchedule, "cosine")
            paths.insert(m.path)
        }
        XCTAssertEqual(paths.count, PriorModel.shippedPriors.count)
    }

    func testAPathIsTakenAsIsAndAMissingFileIsAnError() throws {
        XCTAssertEqual(try DiffusionModel.resolvePath("/nonexistent/m.pt"), "/nonexistent/m.pt")
        XCTAssertThrowsError(try DiffusionModel.load("/nonexistent/m.pt"))
    }
}
