import CVBridge
import XCTest
@testable import GuiseImage

final class GeometryTests: XCTestCase {
    func testSimilarityRecoversAKnownTransform() throws {
        let angle = 0.3, scale = 1.7
        let truth = AffineTransform([scale * cos(angle), -scale * sin(angle), 12.5,
                                     scale * sin(angle), scale * cos(angle), -4.25])
        let source = [Point(0, 0), Point(10, 3), Point(-4, 8), Point(7, -9), Point(2, 2)]
        let fit = try AffineTransform.similarity(from: source, to: source.map(truth.apply))
        for (a, b) in zip(fit.matrix, truth.matrix) { XCTAssertEqual(a, b, accuracy: 1e-9) }
        XCTAssertEqual(fit.scale, scale, accuracy: 1e-9)
        XCTAssertThrowsError(try AffineTransform.similarity(from: [Point(1, 1)], to: [Point(2, 2)]))
    }

    func testInverseComposesToIdentity() throws {
        let t = AffineTransform([0.8, -0.6, 30, 0.6, 0.8, -7])
        let inv = try t.inverted()
        for p in [Point(0, 0), Point(100, -3), Point(5.5, 77)] {
            let q = inv.apply(t.apply(p))
            XCTAssertEqual(q.x, p.x, accuracy: 1e-9)
            XCTAssertEqual(q.y, p.y, accuracy: 1e-9)
        }
        XCTAssertThrowsError(try AffineTransform([1, 2, 0, 2, 4, 0]).inverted()) { error in
            XCTAssertTrue("\(error)".contains("singular"), "\(error)")
        }
    }

    /// A pure translation by whole pixels moves samples exactly; outside becomes the border.
    func testWarpAffineTranslatesAndResizeKeepsConstants() throws {
        let s: [UInt8] = samples(20 * 10 * 3, seed: 3)
        let image = Image(interleaved: s, width: 20, height: 10, channels: 3)
        let moved = try image.warpedAffine(AffineTransform([1, 0, 3, 0, 1, 2]), width: 20, height: 10)
        XCTAssertEqual(moved[5, 4, 1], image[2, 2, 1])
        XCTAssertEqual(moved[0, 0, 0], 0)
        let flat = Image(width: 40, height: 30, red: 0.25, green: 0.5, blue: 0.75)
        for interp in [Interpolation.area, .linear, .cubic] {
            let small = try flat.resized(width: 13, height: 7, interpolation: interp)
            XCTAssertEqual(small.width, 13)
            for v in small.rgb[0..<91] { XCTAssertEqual(v, 0.25, accuracy: 1e-6) }
        }
        XCTAssertThrowsError(try flat.resized(width: 0, height: 5))
    }

    func testMorphologyAndBlur() throws {
        var mask = Mask(width: 41, height: 41, fill: 0)
        for y in 15..<26 { for x in 15..<26 { mask[x, y] = 1 } }
        let eroded = try mask.eroded(radius: 2), dilated = try mask.dilated(radius: 2)
        XCTAssertEqual(eroded.values.reduce(0, +), 49)  // 11×11 shrinks to 7×7
        XCTAssertEqual(dilated[13, 20], 1)
        XCTAssertEqual(dilated[12, 20], 0)
        let blurred = try mask.blurred(sigma: 2)
        XCTAssertEqual(blurred.values.reduce(0, +), 121, accuracy: 0.01)  // mass is kept away from borders
        XCTAssertGreaterThan(blurred[14, 20], 0)
        XCTAssertLessThan(blurred[20, 20], 1.0001)
    }

    /// A 0/1 mask takes a linear-time path (a distance transform) instead of OpenCV's, whose
    /// cost grows with the disc's area. It must give OpenCV's bits: the same mask at 0/0.5,
    /// which is not 0/1, goes through cv::dilate/erode and is compared after doubling.
    func testBinaryMorphologyMatchesOpenCVsDisc() throws {
        var state: UInt64 = 11
        func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
        func check(_ mask: Mask, _ label: String) throws {
            let half = Mask(width: mask.width, height: mask.height, values: mask.values.map { $0 * 0.5 })
            for r in [1, 2, 3, 4, 5, 7, 12, 19, 33, 64] {
                for dilate in [true, false] {
                    let fast = dilate ? try mask.dilated(radius: r) : try mask.eroded(radius: r)
                    let cv = dilate ? try half.dilated(radius: r) : try half.eroded(radius: r)
                    let differ = zip(fast.values, cv.values).filter { $0 != 2 * $1 }.count
                    XCTAssertEqual(differ, 0, "\(label), radius \(r), \(dilate ? "dilated" : "eroded")")
                }
            }
        }
        // Scattered points (every disc drawn whole), blobs touching the borders, a thin line,
        // all set and none set, on sizes smaller and larger than the disc.
        for (w, h) in [(97, 61), (23, 140), (5, 5)] {
            var dots = Mask(width: w, height: h, fill: 0)
            for _ in 0..<(w * h / 150 + 1) { dots.values[next() % (w * h)] = 1 }
            try check(dots, "dots \(w)x\(h)")
            var blobs = Mask(width: w, height: h, fill: 0)
            for y in 0..<h { for x in 0..<w where (x * 7 + y * 3) % 29 < 12 || x < 3 || y > h - 4 { blobs[x, y] = 1 } }
            try check(Mask(width: w, height: h, values: try blobs.blurred(sigma: 2).values.map { $0 > 0.5 ? 1 : 0 }), "blobs \(w)x\(h)")
            var line = Mask(width: w, height: h, fill: 0)
            for y in 0..<h { line[min(w - 1, y * w / h), y] = 1 }
            try check(line, "line \(w)x\(h)")
            try check(Mask(width: w, height: h, fill: 1), "full \(w)x\(h)")
            try check(Mask(width: w, height: h, fill: 0), "empty \(w)x\(h)")
        }
    }

    /// Wide blurs (σ ≥ 16 px) are computed on a padded, averaged-down plane: they must stay
    /// within 1e-3 (a quarter of an 8-bit step) of the sampled Gaussian with OpenCV's
    /// reflect-101 border, computed here directly in double precision, at the border too.
    func testWideBlurMatchesTheGaussian() throws {
        let w = 150, h = 97
        var values = [Float](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                let inside = pow(Double(x - 60) / 45, 2) + pow(Double(y - 40) / 30, 2) < 1
                values[y * w + x] = inside ? Float(0.5 + 0.4 * sin(Double(x) * 0.21) * cos(Double(y) * 0.13)) : (x > 130 ? 1 : 0)
            }
        }
        let mask = Mask(width: w, height: h, values: values)
        func reflect(_ i: Int, _ n: Int) -> Int {
            var i = i
            while i < 0 || i >= n { i = i < 0 ? -i : 2 * (n - 1) - i }
            return i
        }
        for sigma in [16.0, 23.5, 40.0, 64.0] {
            let radius = (Int((sigma * 8 + 1).rounded()) | 1) / 2
            var k = (-radius...radius).map { exp(-Double($0 * $0) / (2 * sigma * sigma)) }
            let total = k.reduce(0, +)
            k = k.map { $0 / total }
            var rows = [Double](repeating: 0, count: w * h)
            for y in 0..<h { for x in 0..<w { rows[y * w + x] = (-radius...radius).reduce(0) { $0 + k[$1 + radius] * Double(values[y * w + reflect(x + $1, w)]) } } }
            var worst = 0.0
            let fast = try mask.blurred(sigma: sigma)
            for y in 0..<h {
                for x in 0..<w {
                    let exact = (-radius...radius).reduce(0) { $0 + k[$1 + radius] * rows[reflect(y + $1, h) * w + x] }
                    let d = abs(Double(fast.values[y * w + x]) - exact)
                    worst = d.isNaN ? .infinity : max(worst, d)
                }
            }
            XCTAssertLessThan(worst, 1e-3, "σ \(sigma)")
        }
    }

    func testSeamlessCloneAndInpaintOnlyChangeTheMask() throws {
        let s: [UInt8] = samples(64 * 48 * 3, seed: 4)
        let base = try Image(interleaved: s, width: 64, height: 48, channels: 3).blurred(sigma: 1)
        let patch = Image(width: 64, height: 48, red: 0.9, green: 0.1, blue: 0.2)
        var mask = Mask(width: 64, height: 48, fill: 0)
        for y in 15..<30 { for x in 20..<40 { mask[x, y] = 1 } }
        let cloned = try base.seamlessCloned(patch, mask: mask)
        let filled = try base.inpainted(mask: mask)
        for i in 0..<base.pixelCount where mask.values[i] == 0 {
            for c in 0..<3 {
                XCTAssertEqual(cloned.rgb[c * base.pixelCount + i], base.rgb[c * base.pixelCount + i])
                XCTAssertEqual(filled.rgb[c * base.pixelCount + i], base.rgb[c * base.pixelCount + i])
            }
        }
        // The flat patch has no gradients, so Poisson blending fills the hole smoothly from its
        // border: the result is near the surroundings, far from the patch's red.
        XCTAssertLessThan(cloned[30, 22, 0], 0.8)
        XCTAssertNotEqual(filled[30, 22, 0], base[30, 22, 0])
    }

    /// A C++ exception inside OpenCV comes back as a status and a one-line message.
    func testOpenCVExceptionsBecomeErrors() throws {
        var buffer: OpaquePointer?
        let pixels = [UInt8](repeating: 0, count: 12)
        XCTAssertEqual(cvb_encode(".xyz", pixels, 2, 2, 3, 8, 90, &buffer), -1)
        XCTAssertNil(buffer)
        let message = String(cString: cvb_last_error())
        XCTAssertTrue(message.hasPrefix("encode: "), message)
        XCTAssertFalse(message.contains("\n"))
        let image = Image(width: 8, height: 8, red: 1, green: 1, blue: 1)
        XCTAssertThrowsError(try image.seamlessCloned(image, mask: Mask(width: 8, height: 8, fill: 0))) { error in
            XCTAssertTrue("\(error)".contains("mask is empty"), "\(error)")
        }
        var broken = image
        broken.rgb.removeLast()
        XCTAssertThrowsError(try broken.resized(width: 4, height: 4))
    }

    func testDrawingStaysInsideTheImage() {
        var image = Image(width: 10, height: 10, red: 0, green: 0, blue: 0)
        image.strokeRectangle(x: 2, y: 2, width: 6, height: 6, colour: (1, 0, 0), thickness: 2)
        XCTAssertEqual(image.rgb[0..<100].filter { $0 == 1 }.count, 36 - 4)
        XCTAssertEqual(image[4, 4, 0], 0)
        image.strokeRectangle(x: -3, y: 8, width: 5, height: 5, colour: (0, 1, 0))
        image.fillDisc(centre: Point(9, 9), radius: 3, colour: (0, 0, 1))
        XCTAssertEqual(image[9, 9, 2], 1)
        XCTAssertEqual(image[0, 9, 1], 1)
    }

    func testInterleavedConversionsAndGrey() {
        let image = Image(interleaved: [UInt8]([10, 20, 30, 40, 50, 60]), width: 2, height: 1, channels: 3)
        XCTAssertEqual(image.interleaved8(channels: 3), [10, 20, 30, 40, 50, 60])
        XCTAssertEqual(image.interleaved16(channels: 4)[3], 65535, "opaque alpha when there is none")
        let luma: Float = 0.299 * 10 + 0.587 * 20 + 0.114 * 30
        XCTAssertEqual(image.interleaved8(channels: 1)[0], UInt8(luma.rounded()))
        XCTAssertFalse(image.isGrey)
        var bad = image
        bad.rgb[0] = .nan
        bad.rgb[1] = 7
        XCTAssertEqual(bad.interleaved8(channels: 3)[0], 0)
        XCTAssertEqual(bad.interleaved8(channels: 3)[3], 255)
    }

    /// MediaPipe's 8-bit crop: the image's own rectangle is the identity; a quarter turn
    /// (clockwise on screen, Guise's and MediaPipe's sense) reads rows off columns.
    func testRotatedRectCrop8Bit() throws {
        let s: [UInt8] = samples(12 * 12 * 3, seed: 5)
        let image = Image(interleaved: s, width: 12, height: 12, channels: 3)
        let same = try image.rotatedRectCrop8Bit(centre: Point(6, 6), width: 12, height: 12, rotation: 0,
                                                 outputWidth: 12, outputHeight: 12, border: .replicate)
        XCTAssertEqual(same.rgb, image.rgb)
        // Crop pixel (u, v) lies at image (12 − v, u): the crop's top row runs down the image's right edge.
        let turned = try image.rotatedRectCrop8Bit(centre: Point(6, 6), width: 12, height: 12, rotation: Double.pi / 2,
                                                   outputWidth: 12, outputHeight: 12, border: .constant(0))
        for v in 1..<12 {
            for u in 0..<12 { for c in 0..<3 { XCTAssertEqual(turned[u, v, c], image[12 - v, u, c], "(\(u), \(v), \(c))") } }
        }
        for u in 0..<12 { XCTAssertEqual(turned[u, 0, 0], 0, "outside reads the zero border") }
        XCTAssertThrowsError(try image.rotatedRectCrop8Bit(centre: Point(6, 6), width: 12, height: 12, rotation: 0,
                                                           outputWidth: 4, outputHeight: 4, border: .constant(0.5)))
        XCTAssertThrowsError(try image.rotatedRectCrop8Bit(centre: Point(6, 6), width: 0, height: 12, rotation: 0,
                                                           outputWidth: 4, outputHeight: 4, border: .replicate))
    }
}

final class CroppedTests: XCTestCase {
    func testCropCopiesTheRectangleExactlyWithAlpha() throws {
        let w = 7, h = 5, n = w * h
        let im = Image(width: w, height: h, rgb: (0..<(3 * n)).map { Float($0) / Float(3 * n) },
                       alpha: (0..<n).map { Float($0) / Float(n) })
        let c = try im.cropped(x: 2, y: 1, width: 4, height: 3)
        XCTAssertEqual(c.width, 4)
        XCTAssertEqual(c.height, 3)
        for ch in 0..<4 { for y in 0..<3 { for x in 0..<4 { XCTAssertEqual(c[x, y, ch], im[x + 2, y + 1, ch]) } } }
        XCTAssertThrowsError(try im.cropped(x: 5, y: 0, width: 4, height: 2))
        XCTAssertThrowsError(try im.cropped(x: 0, y: 0, width: 0, height: 2))
    }
}
