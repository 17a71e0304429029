import XCTest
import Foundation
import GuiseFace
import GuiseImage
import GuiseTensor
import GuiseVision
@testable import GuisePipelines

/// `Edit` on small photos with few steps: the guarantees (exact pixels outside the mask, bit depth,
/// alpha, determinism), the edge cases and the masks.
final class EditTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let model = Result { try DiffusionModel.load(nil) }

    func edit(_ configure: (inout EditOptions) -> Void = { _ in }) throws -> Edit {
        var o = EditOptions()
        o.steps = 4
        o.resample = 2
        o.jump = 2
        configure(&o)
        return Edit(o, model: try Self.model.get())
    }

    /// A textured photo of odd size: stripes and a gradient, so a fill has something to match.
    func photo(_ w: Int, _ h: Int, alpha: Bool = false) -> Image {
        let n = w * h
        var rgb = [Float](repeating: 0, count: 3 * n)
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                rgb[i] = Float((x * 7 + y * 3) % 256) / 255
                rgb[n + i] = Float(y) / Float(h)
                rgb[2 * n + i] = (x / 3) % 2 == 0 ? 0.8 : 0.2
            }
        }
        return Image(width: w, height: h, rgb: rgb, alpha: alpha ? (0..<n).map { Float($0 % 251) / 250 } : nil)
    }

    /// A stroke-like mask: a thick diagonal band plus a blob.
    func strokeMask(_ w: Int, _ h: Int) -> Mask {
        var m = Mask(width: w, height: h, fill: 0)
        for y in 0..<h {
            for x in 0..<w {
                let onBand = abs(Double(x) - Double(y) * Double(w) / Double(h)) < 3
                let dx = Double(x - w * 2 / 3), dy = Double(y - h / 3)
                if onBand || dx * dx + dy * dy < 16 { m[x, y] = 1 }
            }
        }
        return m
    }

    func assertKeptOutside(_ out: Image, _ input: Image, _ mask: Mask, file: StaticString = #filePath, line: UInt = #line) {
        let n = input.pixelCount
        var changedInside = 0
        for i in 0..<n {
            for c in 0..<3 {
                XCTAssertFalse(out.rgb[c * n + i].isNaN, "NaN in the result", file: file, line: line)
                if mask.values[i] == 0 {
                    if out.rgb[c * n + i] != input.rgb[c * n + i] {
                        XCTFail("pixel \(i % input.width),\(i / input.width) outside the mask changed", file: file, line: line)
                        return
                    }
                } else if out.rgb[c * n + i] != input.rgb[c * n + i] {
                    changedInside += 1
                }
            }
        }
        XCTAssertEqual(out.alpha, input.alpha, "alpha must be kept", file: file, line: line)
        XCTAssertGreaterThan(changedInside, 0, "nothing inside the mask changed", file: file, line: line)
    }

    func temp(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("guise-edit-\(getpid())-\(name)").path
    }

    func testFillKeepsEveryPixelOutsideTheMaskOddSizeRGBA() throws {
        let input = photo(37, 29, alpha: true)
        let mask = strokeMask(37, 29)
        let (out, report) = try edit { $0.fillStart = .noise }.run(image: input, mask: mask)
        assertKeptOutside(out, input, mask)
        XCTAssertEqual(report.maskPixels, mask.values.filter { $0 > 0 }.count)
        XCTAssertEqual(report.mode, .fill)
        XCTAssertGreaterThan(report.evaluations, 4, "resampling adds evaluations")
        // Through a PNG file too: what is written outside the mask is what was read.
        let path = temp("rgba.png")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let source = Image(interleaved: input.interleaved8(channels: 4), width: 37, height: 29, channels: 4)
        try ImageIO.write(source, to: path)
        let decoded = try ImageIO.read(path)
        let (edited, _) = try edit().run(image: decoded, mask: mask)
        try ImageIO.write(edited, to: path)
        let back = try ImageIO.read(path)
        let a = decoded.interleaved8(channels: 4), b = back.interleaved8(channels: 4)
        for i in 0..<(37 * 29) where mask.values[i] == 0 {
            XCTAssertEqual(Array(a[(4 * i)..<(4 * i + 4)]), Array(b[(4 * i)..<(4 * i + 4)]))
        }
        XCTAssertEqual(back.sourceFormat, PixelFormat(channels: 4, bitDepth: 8))
    }

    func testSixteenBitPNGKeepsItsDepthAndPixels() throws {
        let (w, h) = (33, 21)
        let samples: [UInt16] = (0..<(w * h * 3)).map { UInt16(($0 * 2654435761) % 65536) }
        let path = temp("deep.png")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ImageIO.write(Image(interleaved: samples, width: w, height: h, channels: 3), to: path)
        let decoded = try ImageIO.read(path)
        XCTAssertEqual(decoded.sourceFormat?.bitDepth, 16)
        let mask = try EditMasks.box(x: 10, y: 5, w: 9, h: 8, width: w, height: h)
        let (out, _) = try edit().run(image: decoded, mask: mask)
        try ImageIO.write(out, to: path)
        let back = try ImageIO.read(path)
        XCTAssertEqual(back.sourceFormat, PixelFormat(channels: 3, bitDepth: 16))
        let s = back.interleaved16(channels: 3)
        var changed = 0
        for i in 0..<(w * h) {
            if mask.values[i] == 0 {
                XCTAssertEqual(Array(s[(3 * i)..<(3 * i + 3)]), Array(samples[(3 * i)..<(3 * i + 3)]))
            } else if s[3 * i] != samples[3 * i] {
                changed += 1
            }
        }
        XCTAssertGreaterThan(changed, 0)
    }

    func testSameSeedSameResultOtherSeedOtherFill() throws {
        let input = photo(40, 24)
        let mask = try EditMasks.box(x: 12, y: 6, w: 14, h: 10, width: 40, height: 24)
        let a = try edit { $0.seed = 5 }.run(image: input, mask: mask).0
        let b = try edit { $0.seed = 5 }.run(image: input, mask: mask).0
        let c = try edit { $0.seed = 6 }.run(image: input, mask: mask).0
        XCTAssertEqual(a.rgb, b.rgb)
        XCTAssertNotEqual(a.rgb, c.rgb)
        // The fill does not copy the erased content: a grey hole comes back textured, not flat grey.
        var erased = input
        let n = input.pixelCount
        for i in 0..<n where mask.values[i] > 0 { for ch in 0..<3 { erased.rgb[ch * n + i] = 0.5 } }
        let filled = try edit().run(image: erased, mask: mask).0
        let inside = (0..<n).filter { mask.values[$0] > 0 }.map { filled.rgb[$0] }
        let mean = inside.reduce(0, +) / Float(inside.count)
        let spread = inside.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(inside.count)
        XCTAssertGreaterThan(spread.squareRoot(), 0.01, "the filled hole is flat")
    }

    func testTeleaStartAndHarmonizeKeepOutside() throws {
        let input = photo(31, 27)
        let mask = strokeMask(31, 27)
        let (t, r1) = try edit { $0.fillStart = .telea; $0.fillStrength = 0.5 }.run(image: input, mask: mask)
        assertKeptOutside(t, input, mask)
        XCTAssertEqual(r1.fillStart, .telea)
        let (hOut, r2) = try edit { $0.mode = .harmonize; $0.strength = 0.5 }.run(image: input, mask: mask)
        assertKeptOutside(hOut, input, mask)
        XCTAssertEqual(r2.mode, .harmonize)
        XCTAssertEqual(r2.strength, 0.5)
    }

    func testHarmonizePullsACastTowardsItsSurroundings() throws {
        // A flat photo with a +0.25 red cast in a box: harmonising must remove part of the cast.
        let (w, h) = (48, 40)
        var input = Image(width: w, height: h, red: 0.4, green: 0.45, blue: 0.5)
        let mask = try EditMasks.box(x: 14, y: 12, w: 20, h: 16, width: w, height: h)
        for i in 0..<(w * h) where mask.values[i] > 0 { input.rgb[i] += 0.25 }
        let (out, _) = try edit { $0.mode = .harmonize; $0.strength = 0.6; $0.steps = 10 }.run(image: input, mask: mask)
        let inside = (0..<(w * h)).filter { mask.values[$0] > 0 }
        let cast = inside.map { out.rgb[$0] - 0.4 }.reduce(0, +) / Float(inside.count)
        XCTAssertLessThan(cast, 0.2, "the cast stayed")
        assertKeptOutside(out, input, mask)
    }

    /// A textured box with a cast: with the region's detail kept, the cast still goes and the
    /// texture inside stays far closer to the un-cast photo's than when the model redraws it.
    func testHarmonizeKeepsTheRegionsDetail() throws {
        let (w, h) = (64, 56)
        let clean = photo(w, h)
        let mask = try EditMasks.box(x: 16, y: 14, w: 32, h: 28, width: w, height: h)
        var input = clean
        for i in 0..<(w * h) where mask.values[i] > 0 { input.rgb[i] = min(1, input.rgb[i] + 0.15) }
        func highPassError(_ detail: Double) throws -> (texture: Float, cast: Float) {
            let (out, _) = try edit { $0.mode = .harmonize; $0.strength = 0.6; $0.steps = 10; $0.detail = detail }.run(image: input, mask: mask)
            assertKeptOutside(out, input, mask)
            let ob = try out.blurred(sigma: 2), cb = try clean.blurred(sigma: 2)
            var texture: Float = 0, cast: Float = 0, count: Float = 0
            for y in 20..<36 {
                for x in 22..<42 {
                    let i = y * w + x
                    for c in 0..<3 {
                        let k = c * w * h + i
                        XCTAssertFalse(out.rgb[k].isNaN)
                        texture += abs((out.rgb[k] - ob.rgb[k]) - (clean.rgb[k] - cb.rgb[k]))
                    }
                    cast += out.rgb[i] - clean.rgb[i]
                    count += 1
                }
            }
            return (texture / (3 * count), cast / count)
        }
        let kept = try highPassError(1), redrawn = try highPassError(0)
        XCTAssertLessThan(kept.texture, 0.5 * redrawn.texture, "detail kept: \(kept), redrawn: \(redrawn)")
        XCTAssertLessThan(kept.cast, 0.1, "the cast goes with the detail kept")
        XCTAssertThrowsError(try edit { $0.mode = .harmonize; $0.detail = 1.5 }.run(image: input, mask: mask))
    }

    func testEmptyMaskReturnsTheInputAndFullMaskStillFills() throws {
        let input = photo(21, 19, alpha: true)
        let (same, r) = try edit().run(image: input, mask: Mask(width: 21, height: 19, fill: 0))
        XCTAssertEqual(same.rgb, input.rgb)
        XCTAssertEqual(same.alpha, input.alpha)
        XCTAssertEqual(r.maskPixels, 0)
        XCTAssertFalse(r.notes.isEmpty)
        XCTAssertEqual(r.evaluations, 0)
        let (full, rf) = try edit().run(image: input, mask: Mask(width: 21, height: 19, fill: 1))
        XCTAssertTrue(rf.warnings.contains { $0.contains("whole photo") }, "\(rf.warnings)")
        XCTAssertEqual(rf.fillStart, .noise, "with nothing known, Telea has nothing to start from")
        XCTAssertFalse(full.rgb.contains { $0.isNaN })
        XCTAssertNotEqual(full.rgb, input.rgb)
        XCTAssertEqual(full.alpha, input.alpha)
    }

    func testWrongSizeMaskIsResizedWithAWarning() throws {
        let input = photo(30, 20)
        let small = try EditMasks.box(x: 5, y: 3, w: 4, h: 4, width: 15, height: 10)
        let (out, r) = try edit().run(image: input, mask: small)
        XCTAssertTrue(r.warnings.contains { $0.contains("resized") }, "\(r.warnings)")
        let big = try EditMasks.resize(small, width: 30, height: 20)
        assertKeptOutside(out, input, big)
    }

    func testLargeWindowsAreTiledAndSmallMasksOnLargePhotosStaySmall() throws {
        let input = photo(70, 45)
        let mask = try EditMasks.box(x: 4, y: 4, w: 60, h: 36, width: 70, height: 45)
        let (out, r) = try edit { $0.tileSize = 32; $0.resample = 1 }.run(image: input, mask: mask)
        assertKeptOutside(out, input, mask)
        XCTAssertEqual(r.evaluations % 4, 0)
        XCTAssertGreaterThanOrEqual(r.evaluations / 4, 4, "a 72x48 window in 32-pixel tiles takes several tiles")
        // Every masked pixel was made by some tile: none is still the grey start.
        var erased = input
        let n = input.pixelCount
        for i in 0..<n where mask.values[i] > 0 { for c in 0..<3 { erased.rgb[c * n + i] = 0.5 } }
        let (filled, _) = try edit { $0.tileSize = 32; $0.resample = 1 }.run(image: erased, mask: mask)
        let flat = (0..<n).filter { i in mask.values[i] > 0 && (0..<3).allSatisfy { filled.rgb[$0 * n + i] == 0.5 } }
        XCTAssertEqual(flat.count, 0)

        // A small hole in a big photo: the window is the hole plus its margin, not the photo.
        let window = Window.around(try EditMasks.box(x: 900, y: 700, w: 40, h: 30, width: 1600, height: 1200), stride: 8, margin: nil)
        XCTAssertLessThanOrEqual(window.width, 40 + 2 * 16 + 8)
        XCTAssertLessThanOrEqual(window.height, 30 + 2 * 16 + 8)
        XCTAssertLessThanOrEqual(window.x, 900)
        XCTAssertGreaterThanOrEqual(window.x + window.width, 940)
        // A window larger than a tiny photo mirrors past its edges.
        XCTAssertEqual(Window.mirror(-1, 5), 1)
        XCTAssertEqual(Window.mirror(5, 5), 3)
        XCTAssertEqual(Window.mirror(-9, 5), 1)
        XCTAssertEqual(Window.mirror(3, 1), 0)
        let tiny = Image(width: 5, height: 3, red: 0.2, green: 0.3, blue: 0.4)
        let (t, _) = try edit().run(image: tiny, mask: try EditMasks.box(x: 2, y: 1, w: 1, h: 1, width: 5, height: 3))
        XCTAssertEqual(t.width, 5)
        XCTAssertFalse(t.rgb.contains { $0.isNaN })
    }

    func testFarApartHolesGetTheirOwnWindows() throws {
        let input = photo(300, 200)
        var mask = try EditMasks.box(x: 10, y: 10, w: 12, h: 9, width: 300, height: 200)
        let other = try EditMasks.box(x: 270, y: 170, w: 15, h: 10, width: 300, height: 200)
        let near = try EditMasks.box(x: 30, y: 12, w: 5, h: 5, width: 300, height: 200)
        for i in 0..<mask.values.count { mask.values[i] = max(mask.values[i], other.values[i], near.values[i]) }
        let (out, r) = try edit { $0.resample = 1 }.run(image: input, mask: mask)
        assertKeptOutside(out, input, mask)
        XCTAssertEqual(r.windows.count, 2, "\(r.windows)")
        for w in r.windows { XCTAssertLessThanOrEqual(w[2] * w[3], 80 * 80) }
        // A speckled mask falls back to one window round it all.
        var specks = Mask(width: 300, height: 200, fill: 0)
        for k in 0..<20 { specks[15 * k + 3, 9 * k + 5] = 1 }
        XCTAssertEqual(Window.covering(specks, stride: 8, margin: nil).count, 1)
    }

    func testGrowAndFeather() throws {
        let m = try EditMasks.box(x: 10, y: 10, w: 5, h: 5, width: 40, height: 40)
        XCTAssertEqual(try EditMasks.refine(m), m)
        let grown = try EditMasks.refine(m, grow: 3)
        XCTAssertEqual(grown[8, 12], 1)
        XCTAssertEqual(grown[18, 12], 0)
        XCTAssertEqual(grown[20, 12], 0)
        let soft = try EditMasks.refine(m, feather: 4)
        XCTAssertEqual(soft[12, 12], 1)
        XCTAssertGreaterThan(soft[16, 12], 0)
        XCTAssertLessThan(soft[16, 12], 1)
        XCTAssertEqual(soft[30, 30], 0, "a feathered mask still ends")
        for (a, b) in zip(m.values, soft.values) where a == 1 { XCTAssertEqual(b, 1) }
        XCTAssertThrowsError(try EditMasks.refine(m, grow: -1))
        // With feathering, the pixels it reaches may change and all others stay.
        let input = photo(40, 40)
        let (out, _) = try edit().run(image: input, mask: soft)
        assertKeptOutside(out, input, soft)
    }

    func testBoxesAndMaskFiles() throws {
        XCTAssertEqual(try EditMasks.parseBox("1, 2,3,4").w, 3)
        XCTAssertThrowsError(try EditMasks.parseBox("1,2,3"))
        XCTAssertThrowsError(try EditMasks.parseBox("a,b,c,d"))
        XCTAssertThrowsError(try EditMasks.box(x: 50, y: 0, w: 5, h: 5, width: 40, height: 40))
        XCTAssertThrowsError(try EditMasks.box(x: 0, y: 0, w: 0, h: 5, width: 40, height: 40))
        let clipped = try EditMasks.box(x: -3, y: 35, w: 10, h: 10, width: 40, height: 40)
        XCTAssertEqual(clipped.values.filter { $0 == 1 }.count, 7 * 5)
        let path = temp("mask.png")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ImageIO.write(Image(grey: clipped.values, width: 40, height: 40), to: path)
        var warned = [String]()
        XCTAssertEqual(try EditMasks.read(path, width: 40, height: 40) { warned.append($0) }, clipped)
        XCTAssertTrue(warned.isEmpty)
        let resized = try EditMasks.read(path, width: 80, height: 80) { warned.append($0) }
        XCTAssertEqual(resized.width, 80)
        XCTAssertEqual(warned.count, 1)
        XCTAssertThrowsError(try EditMasks.read(temp("missing.png"), width: 4, height: 4))
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try EditMasks.read(path, width: 4, height: 4)) { e in
            XCTAssertTrue("\(e)".contains("mask"), "\(e)")
        }
    }

    func testRegionMasksOnAPortrait() throws {
        let path = Self.root + "/Samples/astronaut.png"
        guard FileManager.default.fileExists(atPath: path) else { return XCTFail("\(path) is missing: run `make samples`") }
        let photo = try ImageIO.read(path)
        func area(_ m: Mask) -> Int { m.values.filter { $0 > 0 }.count }
        func box(_ m: Mask) -> (Int, Int, Int, Int) {
            var x0 = m.width, y0 = m.height, x1 = 0, y1 = 0
            for y in 0..<m.height { for x in 0..<m.width where m[x, y] > 0 { x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y) } }
            return (x0, y0, x1, y1)
        }
        let face = try EditMasks.region(.face, in: photo)
        let eyes = try EditMasks.region(.eyes, in: photo)
        let lips = try EditMasks.region(.lips, in: photo)
        let skin = try EditMasks.region(.skin, in: photo)
        for m in [face, eyes, lips, skin] { XCTAssertTrue(m.values.allSatisfy { $0 == 0 || $0 == 1 }) }
        XCTAssertGreaterThan(area(face), 5000)
        XCTAssertGreaterThan(area(eyes), 50)
        XCTAssertLessThan(area(eyes), area(face) / 10)
        let (fx0, fy0, fx1, fy1) = box(face)
        let (ex0, ey0, ex1, ey1) = box(eyes), (lx0, ly0, lx1, ly1) = box(lips)
        XCTAssertTrue(ex0 >= fx0 && ex1 <= fx1 && ey0 >= fy0 && ey1 <= fy1, "eyes inside the face")
        XCTAssertTrue(lx0 >= fx0 && lx1 <= fx1 && ly1 <= fy1, "lips inside the face")
        XCTAssertGreaterThan(ly0, ey1, "lips below the eyes")
        for i in 0..<skin.values.count where eyes.values[i] > 0 { XCTAssertEqual(skin.values[i], 0) }
        let person = try EditMasks.region(.person, in: photo)
        let background = try EditMasks.region(.background, in: photo)
        XCTAssertGreaterThan(area(person), photo.pixelCount / 5)
        XCTAssertEqual(area(person) + area(background), photo.pixelCount)

        // No face: one clear error.
        let blank = Image(width: 64, height: 64, red: 0.5, green: 0.5, blue: 0.5)
        XCTAssertThrowsError(try EditMasks.region(.face, in: blank, label: "blank.png")) { e in
            XCTAssertTrue("\(e)".contains("no face found in blank.png"), "\(e)")
        }
    }

    func testBadOptions() throws {
        let input = photo(16, 16)
        let mask = try EditMasks.box(x: 4, y: 4, w: 4, h: 4, width: 16, height: 16)
        XCTAssertThrowsError(try edit { $0.steps = 0 }.run(image: input, mask: mask))
        XCTAssertThrowsError(try edit { $0.strength = 0 }.run(image: input, mask: mask))
        XCTAssertThrowsError(try edit { $0.resample = 0 }.run(image: input, mask: mask))
        var nan = mask
        nan.values[0] = .nan
        XCTAssertThrowsError(try edit().run(image: input, mask: nan))
    }

    /// A guidance's expert gets its whole context in one tile, however small `tileSize` is, and
    /// a context too large for one tile is refused in one line.
    func testGuidedEditSeesItsWholeContextAtOnce() throws {
        let (w, h) = (120, 96)
        let input = photo(w, h)
        let mask = try EditMasks.box(x: 40, y: 30, w: 30, h: 24, width: w, height: h)
        var shapes = Set<[Int]>()
        let guidance = EditGuidance(name: "probe") { x0, _ in
            shapes.insert(x0.shape)
            return (x0 * x0).sum()
        }
        let (out, report) = try edit {
            $0.mode = .harmonize; $0.steps = 4; $0.strength = 0.5; $0.tileSize = 32
            $0.guidance = guidance; $0.context = [0, 0, w, h]
        }.run(image: input, mask: mask)
        assertKeptOutside(out, input, mask)
        XCTAssertEqual(report.windows.count, 1)
        let window = report.windows[0]
        XCTAssertGreaterThanOrEqual(window[2], w)
        XCTAssertEqual(shapes, [[1, 3, window[3], window[2]]], "the expert saw pieces of its context: \(shapes)")

        let wide = photo(1100, 40)
        let strip = try EditMasks.box(x: 10, y: 10, w: 20, h: 10, width: 1100, height: 40)
        XCTAssertThrowsError(try edit {
            $0.mode = .harmonize; $0.guidance = guidance; $0.context = [0, 0, 1100, 40]
        }.run(image: wide, mask: strip)) { error in
            XCTAssertTrue("\(error)".contains("shrink the photo"), "\(error)")
        }
    }

    func testGazeGuidanceLowersItsOwnLoss() throws {
        let path = Self.root + "/Samples/astronaut.png"
        guard FileManager.default.fileExists(atPath: path) else { return XCTFail("\(path) is missing: run `make samples`") }
        let photo = try ImageIO.read(path)
        XCTAssertEqual(try GazeTarget(parsing: "camera"), .camera)
        XCTAssertEqual(try GazeTarget(parsing: "0.1"), .horizontal(0.1))
        XCTAssertThrowsError(try GazeTarget(parsing: "left"))
        XCTAssertThrowsError(try GazeTarget(parsing: "0.9"))

        let analyzer = try FaceAnalyzer()
        let face = try FaceSelection.pick(try DetectorChoice.blazeface.make().detector.detect(photo, order: .largest), index: 0, label: "astronaut")
        let lm = try FaceSelection.landmarks(photo, face: face, analyzer: analyzer)
        let eyes = try EditMasks.refine(try EditMasks.region(.eyes, in: photo), grow: 2)
        let before = try analyzer.gazeFeatures(ImageTensor.tensor(photo), at: lm).values
        let goal: Float = 0.2  // well away from where the astronaut looks (about −0.05)
        func loss(_ image: Image) throws -> Float {
            let f = try analyzer.gazeFeatures(ImageTensor.tensor(image), at: lm)
            return try EditGuides.gazeLoss(f, horizontal: goal, vertical: [before[1], before[3]]).values[0]
        }
        func run(weight: Double, warp: Bool) throws -> Image {
            var g = try EditGuides.gaze(.horizontal(Double(goal)), image: photo, landmarks: lm, analyzer: analyzer, weight: weight)
            if !warp { g.guidance.start = nil }
            let e = try edit { o in
                o.mode = .harmonize; o.poisson = false; o.steps = 12; o.strength = 0.5
                o.guidance = g.guidance; o.context = g.context
            }
            let (out, report) = try e.run(image: photo, mask: eyes)
            XCTAssertEqual(report.guidance, "gaze")
            assertKeptOutside(out, photo, eyes)
            return out
        }
        // The guidance alone (the model redrawing the eyes), then with the warped start.
        let plain = try loss(try run(weight: 0, warp: false)), guided = try loss(try run(weight: EditGuides.defaultGazeWeight, warp: false))
        let warped = try loss(try run(weight: EditGuides.defaultGazeWeight, warp: true))
        XCTAssertFalse(plain.isNaN || guided.isNaN || warped.isNaN)
        XCTAssertLessThan(warped, plain * 0.3, "the warped start turns the eyes (\(plain) → \(warped))")
        XCTAssertLessThan(guided, plain * 0.8, "gaze guidance should lower the gaze loss (\(plain) → \(guided))")
    }

    /// Grace Hopper's closed mouth given the open smile of the astronaut (cropped round the face,
    /// so the run stays small).
    func testExpressionWarpDoesNotFoldAndGuidanceLowersItsOwnLoss() throws {
        let paths = ["grace_hopper.jpg", "astronaut.png"].map { Self.root + "/Samples/" + $0 }
        for p in paths where !FileManager.default.fileExists(atPath: p) { return XCTFail("\(p) is missing: run `make samples`") }
        let photo = try ImageIO.read(paths[0]).cropped(x: 100, y: 60, width: 300, height: 300)
        let reference = try ImageIO.read(paths[1]).cropped(x: 120, y: 20, width: 200, height: 200)
        let analyzer = try FaceAnalyzer()
        func landmarks(_ image: Image) throws -> FaceLandmarks {
            let face = try FaceSelection.pick(try DetectorChoice.blazeface.make().detector.detect(image, order: .largest), index: 0, label: "photo")
            return try FaceSelection.landmarks(image, face: face, analyzer: analyzer)
        }
        let lm = try landmarks(photo), ref = try landmarks(reference)

        // The warp: no rendered triangle takes its pixels turned over (a sliver on either side,
        // a closed mouth's lips, excepted), and the moved points stay within the cap.
        func assertNoFolds(_ plan: EditExpression.Plan, _ label: String) {
            let src = plan.source + plan.frame, dst = plan.destination + plan.frame
            func thick(_ a: Point, _ b: Point, _ c: Point) -> Double {
                func len(_ p: Point, _ q: Point) -> Double { ((p.x - q.x) * (p.x - q.x) + (p.y - q.y) * (p.y - q.y)).squareRoot() }
                return abs(Delaunay.orientation(a, b, c)) / max(len(a, b), len(b, c), len(c, a))
            }
            XCTAssertFalse(plan.triangles.isEmpty, label)
            var turned = 0
            for t in plan.triangles {
                let d = Delaunay.orientation(dst[t.0], dst[t.1], dst[t.2]), s = Delaunay.orientation(src[t.0], src[t.1], src[t.2])
                XCTAssertGreaterThan(d, 0, "destination triangles are counter-clockwise (\(label))")
                if s < 0 && thick(src[t.0], src[t.1], src[t.2]) >= 1 && thick(dst[t.0], dst[t.1], dst[t.2]) >= 1 { turned += 1 }
            }
            XCTAssertEqual(turned, 0, "\(label): \(turned) folded triangles")
            let fw = hypot(plan.source[234].x - plan.source[454].x, plan.source[234].y - plan.source[454].y)
            let most = zip(plan.source, plan.destination).map { hypot($1.x - $0.x, $1.y - $0.y) }.max()!
            XCTAssertLessThanOrEqual(most, EditExpression.maxShift * fw + 1e-6, label)
            XCTAssertFalse(plan.destination.contains { $0.x.isNaN || $0.y.isNaN }, label)
        }
        let plan = try EditExpression.plan(landmarks: lm, reference: ref, parts: [.mouth])
        assertNoFolds(plan, "smile")
        XCTAssertGreaterThan(plan.amount, 0.5, "most of the smile is carried")
        // A reference whose lips are three times too large (the mouth folding over the chin and
        // nose) is shrunk to a warp that does not fold.
        var wild = ref
        let c = wild.mesh[13]
        for i in Set(MeshRegions.lipsOuter + MeshRegions.lipsInner) {
            wild.mesh[i] = Point3(c.x + 3 * (wild.mesh[i].x - c.x), c.y + 3 * (wild.mesh[i].y - c.y), wild.mesh[i].z)
        }
        let shrunk = try EditExpression.plan(landmarks: lm, reference: wild, parts: [.mouth])
        assertNoFolds(shrunk, "wild")
        XCTAssertLessThan(shrunk.amount, 1)
        for part in [EditExpression.Part.eyes, .brows] { assertNoFolds(try EditExpression.plan(landmarks: lm, reference: ref, parts: [part]), part.rawValue) }

        // The guidance: the moved points' distance from their places on the result, as the
        // guidance measures it, without guidance or start, with the guidance alone, and with both.
        let made = try EditExpression.make(image: photo, landmarks: lm, reference: reference, referenceLandmarks: ref, parts: [.mouth], analyzer: analyzer)
        let goal = Tensor(shape: [468, 2], values: made.plan.destination.flatMap { [Float($0.x), Float($0.y)] })
        let moving = Set(made.plan.moving)
        let chosen = Tensor(shape: [468, 1], values: (0..<468).map { moving.contains($0) ? 1 : 0 })
        func loss(_ image: Image) throws -> Float {
            try Autograd.noGrad { try EditExpression.loss(ImageTensor.tensor(image), landmarks: lm, origin: (0, 0), goal: goal, chosen: chosen, analyzer: analyzer).values[0] }
        }
        func run(weight: Double, start: Bool) throws -> Image {
            var g = try EditExpression.make(image: photo, landmarks: lm, reference: reference, referenceLandmarks: ref, parts: [.mouth],
                                            analyzer: analyzer, weight: weight)
            if !start { g.guidance.start = nil }
            let e = try edit { o in
                o.mode = .harmonize; o.poisson = false; o.steps = 12; o.strength = 0.4
                o.guidance = g.guidance; o.context = g.context; o.startToneSigma = g.plan.toneSigma
            }
            let (out, report) = try e.run(image: photo, mask: g.mask)
            XCTAssertEqual(report.guidance, "expression")
            assertKeptOutside(out, photo, g.mask)
            return out
        }
        let plain = try loss(try run(weight: 0, start: false))
        let guided = try loss(try run(weight: EditExpression.defaultWeight, start: false))
        let warped = try loss(try run(weight: EditExpression.defaultWeight, start: true))
        XCTAssertFalse(plain.isNaN || guided.isNaN || warped.isNaN)
        // Alone (no warp), the guidance moves the points only a little: the prior cannot open a
        // mouth by itself (measured: 7484 → 7107 px²).
        XCTAssertLessThan(guided, plain * 0.97, "the expression guidance lowers its own loss (\(plain) → \(guided))")
        XCTAssertLessThan(warped, plain * 0.3, "the warped start carries the expression (\(plain) → \(warped))")

        // A reference without a face: one clear error.
        let blank = Image(width: 64, height: 64, red: 0.5, green: 0.5, blue: 0.5)
        XCTAssertThrowsError(try EditExpression.forFace(image: photo, reference: blank, parts: [.mouth], referenceLabel: "blank.png")) { e in
            XCTAssertTrue("\(e)".contains("no face found in blank.png"), "\(e)")
        }
    }
}
