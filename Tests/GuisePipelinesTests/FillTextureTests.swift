import XCTest
import GuiseImage
@testable import GuisePipelines

/// `FillTexture` scales a fill's detail bands towards the texture around the hole and touches
/// nothing else.
final class FillTextureTests: XCTestCase {
    /// Grey noise of a given amplitude, one value per pixel from a fixed generator, on mid-grey.
    func noise(_ w: Int, _ h: Int, amplitude: Float, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<(w * h)).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return 0.5 + amplitude * (Float(s >> 40) / Float(1 << 24) - 0.5)
        }
    }

    func image(_ grey: [Float], _ w: Int, _ h: Int) -> Image {
        Image(width: w, height: h, rgb: grey + grey + grey)
    }

    /// Variance of the 4-neighbour Laplacian over the pixels `where` picks.
    func laplacianVariance(_ img: Image, _ pick: (Int, Int) -> Bool) -> Double {
        let w = img.width, h = img.height
        var values: [Double] = []
        for y in 1..<(h - 1) {
            for x in 1..<(w - 1) where pick(x, y) {
                let i = y * w + x
                let l = 4 * img.rgb[i] - img.rgb[i - 1] - img.rgb[i + 1] - img.rgb[i - w] - img.rgb[i + w]
                values.append(Double(l))
            }
        }
        let mean = values.reduce(0, +) / Double(values.count)
        return values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
    }

    func check(fillAmplitude: Float, file: StaticString = #filePath, line: UInt = #line) throws {
        let (w, h) = (96, 80)
        let around = noise(w, h, amplitude: 0.3, seed: 1), fill = noise(w, h, amplitude: fillAmplitude, seed: 2)
        func inHole(_ x: Int, _ y: Int) -> Bool { x >= 28 && x < 68 && y >= 22 && y < 58 }
        var grey = around
        for y in 0..<h { for x in 0..<w where inHole(x, y) { grey[y * w + x] = fill[y * w + x] } }
        let input = image(grey, w, h)
        let hole = (0..<(w * h)).map { inHole($0 % w, $0 / w) }
        let out = try FillTexture.match(input, hole: hole)
        for k in 0..<out.rgb.count {
            XCTAssertFalse(out.rgb[k].isNaN, "NaN in the result", file: file, line: line)
            if !hole[k % (w * h)] { XCTAssertEqual(out.rgb[k], input.rgb[k], "a pixel outside the hole changed", file: file, line: line) }
        }
        func core(_ x: Int, _ y: Int) -> Bool { x >= 34 && x < 62 && y >= 28 && y < 52 }
        func ring(_ x: Int, _ y: Int) -> Bool { !inHole(x, y) && x >= 12 && x < 84 && y >= 6 && y < 74 }
        let before = laplacianVariance(input, core) / laplacianVariance(input, ring)
        let after = laplacianVariance(out, core) / laplacianVariance(out, ring)
        XCTAssertLessThan(abs(log(after)), 0.5 * abs(log(before)), "texture ratio \(before) → \(after)", file: file, line: line)
        XCTAssertGreaterThan(after, 0.5, file: file, line: line)
        XCTAssertLessThan(after, 2, file: file, line: line)
    }

    func testTooLittleDetailIsRaised() throws { try check(fillAmplitude: 0.12) }

    func testTooMuchDetailIsLowered() throws { try check(fillAmplitude: 0.9) }

    /// A hole with no detail at all has nothing to scale: it comes back as it was.
    func testFlatFillStaysFlat() throws {
        let (w, h) = (48, 40)
        var grey = noise(w, h, amplitude: 0.3, seed: 3)
        let hole = (0..<(w * h)).map { ($0 % w) >= 16 && ($0 % w) < 32 && ($0 / w) >= 12 && ($0 / w) < 28 }
        for i in 0..<(w * h) where hole[i] { grey[i] = 0.5 }
        let input = image(grey, w, h)
        let out = try FillTexture.match(input, hole: hole)
        for i in 0..<(w * h) where hole[i] {
            // The bands of the hole's own edge reach in; its flat centre has no detail to scale.
            let x = i % w, y = i / w
            if x >= 22 && x < 26 && y >= 18 && y < 22 { XCTAssertEqual(out.rgb[i], 0.5, accuracy: 0.02) }
        }
        XCTAssertFalse(out.rgb.contains { $0.isNaN })
    }
}

/// The membrane blend with a bounded number of sweeps starts from a push–pull guess and lands
/// where the full relaxation does.
final class MembraneTests: XCTestCase {
    func testBoundedSweepsMatchTheFullRelaxation() {
        let (w, h) = (160, 120)
        var rgb = [Float](repeating: 0, count: 3 * w * h)
        for c in 0..<3 {
            for y in 0..<h {
                for x in 0..<w { rgb[c * w * h + y * w + x] = 0.3 + 0.002 * Float(x + c * y) + 0.05 * sin(Float(x * y) * 0.01) }
            }
        }
        let region = (0..<(w * h)).map { p -> Bool in
            let x = p % w, y = p / w
            return x > 20 && x < 140 && y > 15 && y < 105 && !(x > 70 && x < 90 && y > 50)
        }
        // A cast inside the region that the blend must take away.
        var input = Image(width: w, height: h, rgb: rgb)
        for c in 0..<3 { for p in 0..<(w * h) where region[p] { input.rgb[c * w * h + p] += 0.2 } }
        var full = input, bounded = input
        Membrane.blend(&full, region: region)
        Membrane.blend(&bounded, region: region, maxSweeps: 60)
        var worst: Float = 0, castLeft: Float = 0, count: Float = 0
        for k in 0..<full.rgb.count {
            XCTAssertFalse(bounded.rgb[k].isNaN)
            worst = max(worst, abs(full.rgb[k] - bounded.rgb[k]))
            if region[k % (w * h)] { castLeft += bounded.rgb[k] - rgb[k]; count += 1 }
        }
        XCTAssertLessThan(worst, 0.01, "bounded sweeps vs full relaxation")
        XCTAssertLessThan(abs(castLeft / count), 0.01, "the cast is gone")
    }

    func testPushPullKeepsKnownValuesAndInterpolatesBetween() {
        let (w, h) = (33, 17)
        var values = [Float](repeating: 0, count: w * h), known = [Bool](repeating: false, count: w * h)
        for y in 0..<h { values[y * w] = 1; known[y * w] = true; values[y * w + w - 1] = 3; known[y * w + w - 1] = true }
        let out = Membrane.pushPull(values, known: known, width: w, height: h)
        for y in 0..<h {
            XCTAssertEqual(out[y * w], 1)
            XCTAssertEqual(out[y * w + w - 1], 3)
            let mid = out[y * w + w / 2]
            XCTAssertGreaterThan(mid, 1.1, "an unknown pixel takes a value between its known neighbours")
            XCTAssertLessThan(mid, 2.9)
        }
        XCTAssertFalse(out.contains { $0.isNaN })
    }
}
