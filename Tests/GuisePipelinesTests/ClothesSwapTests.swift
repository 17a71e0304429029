import XCTest
import GuiseFiles
import GuiseFormats
import GuiseImage
import GuiseTestSupport
@testable import GuisePipelines

final class ClothesSwapTests: XCTestCase {
    static var shared: ClothesSwap?

    func swapper() throws -> ClothesSwap {
        if let s = Self.shared { return s }
        let s = try ClothesSwap(store: ModelStore(directory: repoRoot + "/Models"))
        Self.shared = s
        return s
    }

    // MARK: colour difference

    /// Pairs from Sharma, Wu and Dalal's CIEDE2000 test data.
    func testCIEDE2000MatchesPublishedPairs() {
        let pairs: [((Double, Double, Double), (Double, Double, Double), Double)] = [
            ((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
            ((50, 3.1571, -77.2803), (50, 0, -82.7485), 2.8615),
            ((50, 2.5, 0), (50, 0, -2.5), 4.3065),
            ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
            ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
        ]
        for (a, b, expected) in pairs {
            let d = ColourDifference.ciede2000((a.0, a.1, a.2), (b.0, b.1, b.2))
            XCTAssertEqual(d, expected, accuracy: 1e-4, "\(a) vs \(b)")
            XCTAssertEqual(ColourDifference.ciede2000((b.0, b.1, b.2), (a.0, a.1, a.2)), d, accuracy: 1e-9, "symmetric")
        }
        let white = ColourDifference.lab(1, 1, 1)
        XCTAssertEqual(white.l, 100, accuracy: 1e-3)
        XCTAssertEqual(white.a, 0, accuracy: 1e-3)
        XCTAssertEqual(white.b, 0, accuracy: 1e-3)
    }

    /// On bare skin the garment stays where it runs on from the part over old clothing (a sleeve
    /// from the torso); a patch cut off from it, or hanging on by a 1-pixel thread, goes. Off the
    /// skin nothing is taken away.
    func testGarmentPatchesFloatingOnBareSkinAreDropped() throws {
        let w = 100, h = 60
        var painted = Region(width: w, height: h), skin = Region(width: w, height: h)
        func fill(_ xs: Range<Int>, _ ys: Range<Int>, _ r: inout Region) { for y in ys { for x in xs { r.bits[y * w + x] = true } } }
        fill(40..<w, 0..<h, &skin)
        fill(0..<40, 0..<h, &painted)          // torso, over old clothing
        fill(40..<70, 0..<10, &painted)        // sleeve over the bare arm
        fill(70..<80, 30..<40, &painted)       // a patch on its own
        fill(50..<60, 45..<55, &painted)       // a patch on a thread
        fill(45..<46, 10..<45, &painted)       // the thread
        fill(10..<12, 20..<22, &skin)          // skin under the torso's garment stays painted
        let out = try ClothesSwap.anchoredOnBareSkin(painted, skin: skin, scale: 100)
        func all(_ xs: Range<Int>, _ ys: Range<Int>, _ v: Bool) -> Bool { ys.allSatisfy { y in xs.allSatisfy { out.bits[y * w + $0] == v } } }
        XCTAssertTrue(all(0..<40, 0..<h, true), "the garment off the bare skin is all kept")
        XCTAssertTrue(all(40..<70, 0..<10, true), "the sleeve is kept")
        XCTAssertTrue(all(70..<80, 30..<40, false), "the floating patch goes")
        XCTAssertTrue(all(50..<60, 45..<55, false), "the patch on a thread goes")
        XCTAssertTrue(all(45..<46, 13..<45, false), "and the thread, but for its root at the sleeve")
        XCTAssertTrue((out && !painted).area == 0, "nothing is added")
    }

    /// A navy garment cut out of a photo onto a white backdrop, its outer ring of pixels half
    /// backdrop as a photo's edge is: after bleeding, the garment's colour runs on past its edge
    /// and through that ring, so a bilinear sample across the edge is navy, not a light line.
    func testTheGarmentsColourRunsOnPastItsEdge() throws {
        let w = 48, h = 48, n = w * h
        let navy: [Float] = [0.1, 0.15, 0.3]
        var rgb = [Float](repeating: 0.96, count: 3 * n)
        var region = Region(width: w, height: h)
        for y in 0..<h {
            for x in 0..<w {
                let r = ((Double(x) - 24) * (Double(x) - 24) + (Double(y) - 24) * (Double(y) - 24)).squareRoot()
                guard r <= 14 else { continue }
                region.bits[y * w + x] = true
                let edge = r > 13 ? Float(0.5) : 0      // the ring mixed with the backdrop
                for c in 0..<3 { rgb[c * n + y * w + x] = (1 - edge) * (navy[c] + 0.02 * Float((x + y) % 3)) + edge * 0.96 }
            }
        }
        let garment = Image(width: w, height: h, rgb: rgb)
        let core = try region.eroded(2)
        let bled = try ClothesSwap.bled(garment, region: region)
        var worst: Float = 0
        for i in 0..<n where !core.bits[i] {
            for c in 0..<3 { worst = max(worst, abs(bled.rgb[c * n + i] - navy[c])) }
        }
        XCTAssertLessThan(worst, 0.05, "past the core the garment's own colour, not the backdrop's")
        XCTAssertFalse(worst.isNaN)
        for i in 0..<n where core.bits[i] {
            for c in 0..<3 where bled.rgb[c * n + i] != garment.rgb[c * n + i] { XCTFail("the core's pixels are its own"); return }
        }
        // Without the bleed the ring is light.
        var ringLight: Float = 0
        for i in 0..<n where region.bits[i] && !core.bits[i] { ringLight = max(ringLight, garment.rgb[i]) }
        XCTAssertGreaterThan(ringLight, 0.4)
    }

    func testSmallHolesAreFilledAndLargeOnesAndOpeningsKept() throws {
        // A 40×40 ring region with a 3×3 hole and a 10×10 hole inside, and a notch open to the border.
        let w = 40, h = 40
        var r = Region(width: w, height: h, value: true)
        for y in 5..<8 { for x in 5..<8 { r.bits[y * w + x] = false } }
        for y in 20..<30 { for x in 20..<30 { r.bits[y * w + x] = false } }
        for y in 0..<4 { for x in 30..<33 { r.bits[y * w + x] = false } }
        let f = r.smallHolesFilled(maxArea: 20)
        XCTAssertTrue((5..<8).allSatisfy { y in (5..<8).allSatisfy { f.bits[y * w + $0] } }, "the 9-pixel hole is filled")
        XCTAssertEqual((20..<30).flatMap { y in (20..<30).map { f.bits[y * w + $0] } }.filter { $0 }.count, 0, "the 100-pixel hole stays")
        XCTAssertFalse(f.bits[0 * w + 31], "an opening to the border is not a hole")
        XCTAssertEqual(f.area, r.area + 9)
    }

    /// Blonde hair (x < 30) over a black top (x ≥ 32), two columns between where strands let the
    /// top through by half, and a red garment now behind: the mixed columns become half hair,
    /// half red; pure hair and everything far from the edge stay as they were.
    /// Growing from seeds keeps the pieces a seed lies in, joined through corners too, and
    /// drops the rest; a seed outside the region grows nothing.
    func testARegionGrowsFromItsSeedsThroughCorners() {
        let w = 10, h = 6
        var r = Region(width: w, height: h), seeds = Region(width: w, height: h)
        for (x, y) in [(1, 1), (2, 2), (3, 3), (7, 1), (8, 1)] { r.bits[y * w + x] = true }
        seeds.bits[1 * w + 1] = true
        seeds.bits[5 * w + 9] = true
        let grown = r.connected(to: seeds)
        XCTAssertEqual(grown.area, 3)
        XCTAssertTrue(grown.bits[3 * w + 3], "joined diagonally")
        XCTAssertFalse(grown.bits[1 * w + 7], "another piece")
    }

    func testTheHairsEdgeIsRecompositedOverTheNewGarment() throws {
        let w = 64, h = 32, n = w * h
        let hairColour: [Float] = [0.9, 0.8, 0.5], red: [Float] = [0.8, 0.1, 0.1]
        var person = Image(width: w, height: h, red: 0, green: 0, blue: 0)
        var hair = Region(width: w, height: h), clothing = Region(width: w, height: h)
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                let a: Float = x < 30 ? 1 : (x < 32 ? 0.5 : 0)
                for c in 0..<3 { person.rgb[c * n + i] = a * hairColour[c] }
                if x < 32 { hair.bits[i] = true } else { clothing.bits[i] = true }
            }
        }
        var result = person
        for i in 0..<n where clothing.bits[i] { for c in 0..<3 { result.rgb[c * n + i] = red[c] } }
        let before = result
        let changed = try ClothesSwap.hairFringe(person: person, result: &result, hair: hair, clothing: clothing, scale: 100)
        XCTAssertFalse(result.rgb.contains { $0.isNaN })
        for y in 4..<(h - 4) {
            for x in 30..<32 {
                let i = y * w + x
                XCTAssertTrue(changed.bits[i])
                for c in 0..<3 { XCTAssertEqual(result.rgb[c * n + i], 0.5 * hairColour[c] + 0.5 * red[c], accuracy: 0.03, "(\(x), \(y)) channel \(c)") }
            }
            for x in [0, 10, 25, 40, 63] {
                let i = y * w + x
                for c in 0..<3 { XCTAssertEqual(result.rgb[c * n + i], before.rgb[c * n + i], "(\(x), \(y))") }
            }
        }
        XCTAssertEqual((changed && !hair).area, 0)
    }

    // MARK: warp

    /// A body seen at one size and pose (the person) and another (the garment's wearer).
    func frames() -> (BodyFrame, BodyFrame) {
        func frame(_ pts: [BodyFrame.Joint: Point], w: Int, h: Int) -> BodyFrame {
            var p = [Point](repeating: Point(Double(w) / 2, Double(h) / 2), count: 33)
            var v = [Double](repeating: 0, count: 33)
            for (j, q) in pts { p[j.rawValue] = q; v[j.rawValue] = 1 }
            return BodyFrame(points: p, visibility: v, width: w, height: h)
        }
        let person = frame([.nose: Point(200, 80), .leftShoulder: Point(260, 180), .rightShoulder: Point(140, 175),
                            .leftElbow: Point(285, 280), .rightElbow: Point(120, 285), .leftWrist: Point(290, 370), .rightWrist: Point(110, 372),
                            .leftHip: Point(240, 400), .rightHip: Point(160, 398)], w: 400, h: 500)
        // Arms raised and the torso smaller and shifted: the sleeves must turn, not just scale.
        let garment = frame([.nose: Point(310, 60), .leftShoulder: Point(350, 130), .rightShoulder: Point(270, 128),
                             .leftElbow: Point(420, 110), .rightElbow: Point(200, 100), .leftWrist: Point(480, 90), .rightWrist: Point(140, 85),
                             .leftHip: Point(340, 280), .rightHip: Point(285, 282)], w: 600, h: 400)
        return (person, garment)
    }

    /// A hole in the garment beside the neck takes the garment at its mirror image across the
    /// body's midline; the neck column stays bare, and nothing outside the old clothing region is
    /// painted.
    func testGarmentOpeningsBesideTheNeckTakeTheGarmentsMirrorImage() throws {
        let (person, _) = frames()
        let w = person.width, h = person.height, n = w * h
        // A garment below y = 190 whose left and right halves differ in colour, with a hole on
        // the image-right chest (x 215…245, y 200…230), and a collar's edge in the neck column
        // above the shoulders; the old clothing covers y ≥ 120.
        var layer = Image(width: w, height: h, rgb: [Float](repeating: 0.5, count: 3 * n))
        var painted = Region(width: w, height: h), region = Region(width: w, height: h)
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                region.bits[i] = y >= 120 && x > 100 && x < 300
                if x >= 190 && x <= 196 && y >= 160 && y <= 170 {
                    // A collar's edge on the image-left side of the neck column.
                    painted.bits[i] = true
                    layer.rgb[i] = 0.9
                }
                guard y >= 190 && x > 110 && x < 290 else { continue }
                if x > 215 && x < 245 && y > 200 && y < 230 { continue }
                painted.bits[i] = true
                layer.rgb[i] = x < 200 ? 0.9 : 0.2
                layer.rgb[n + i] = Float(y) / Float(h)
            }
        }
        let before = layer
        let mirrored = ClothesSwap.mirroredAcrossBody(&layer, painted: painted, region: region, frame: person)
        let hole = 215 * w + 230
        XCTAssertTrue(mirrored.bits[hole], "the hole is filled")
        XCTAssertEqual(layer.rgb[hole], 0.9, "from the other half")
        XCTAssertFalse(mirrored.bits[110 * w + 230], "nothing outside the old clothing")
        XCTAssertFalse(mirrored.bits[165 * w + 207], "the neck stays bare")
        for i in 0..<n where painted.bits[i] { XCTAssertEqual(layer.rgb[i], before.rgb[i]) }

        XCTAssertFalse(layer.rgb.contains { !$0.isFinite })
    }

    /// A bare hand's disc is cut to its skin grown a little, so the cloth round a fist on the
    /// torso is the garment's to repaint; a gloved hand (hardly any skin) keeps its whole disc.
    func testAHandsZoneIsCutToItsSkinUnlessItShowsNone() throws {
        let w = 120, h = 60
        let bare = Region.capsule(Point(30, 30), Point(30, 30), radius: 25, width: w, height: h)
        let gloved = Region.capsule(Point(90, 30), Point(90, 30), radius: 25, width: w, height: h)
        var skin = Region(width: w, height: h)
        for y in 22..<38 { for x in 22..<38 { skin.bits[y * w + x] = true } }  // the fist, a tenth of its disc
        skin.bits[30 * w + 90] = true  // a speck in the glove's disc
        // Scale 100: skin grown by 3 px.
        let hands = try BodyAnalysis.handsCutToSkin([bare, gloved], skin: skin, scale: 100)
        XCTAssertTrue(hands.bits[30 * w + 30], "the fist")
        XCTAssertTrue(hands.bits[30 * w + 40], "its edge, grown")
        XCTAssertFalse(hands.bits[30 * w + 45], "the cloth beside it, inside the disc")
        XCTAssertFalse(hands.bits[8 * w + 30])
        XCTAssertEqual((hands && gloved).area, gloved.area, "the glove keeps its disc")
        XCTAssertEqual((hands && !(bare || gloved)).area, 0)
        // A forearm in front ends 3 px past its wrist, square to the arm, not in a round cap.
        let side = BodyAnalysis.beforeWrist(elbow: Point(100, 30), wrist: Point(40, 30), margin: 3, width: w, height: h)
        XCTAssertTrue(side.bits[30 * w + 37] && side.bits[5 * w + 37] && side.bits[30 * w + 110])
        XCTAssertFalse(side.bits[30 * w + 36] || side.bits[55 * w + 20])
    }

    /// A neck filled under the jaw lies in its shadow, 0.8 at the jaw and back to 1 below; where
    /// the fill meets visible neck skin it takes that skin's light (factor 1), so no step.
    func testAFilledNeckLiesInTheChinsShadowButMeetsVisibleSkinWithoutAStep() {
        let w = 100, h = 200
        var face = Region(width: w, height: h), region = Region(width: w, height: h), skin = Region(width: w, height: h)
        for y in 0..<h {
            for x in 0..<w {
                face.bits[y * w + x] = y < 50
                region.bits[y * w + x] = y >= 50 && x < 50
                skin.bits[y * w + x] = y >= 50 && x >= 50
            }
        }
        // Scale 100: the shadow reaches about 35 px below the jaw.
        let shade = ClothesSwap.chinShadow(face: face, skin: skin, region: region, scale: 100)
        XCTAssertFalse(shade.contains { !$0.isFinite })
        XCTAssertEqual(shade[50 * w + 5], 0.8, accuracy: 0.02, "just under the jaw, far from the other skin")
        XCTAssertGreaterThan(shade[150 * w + 5], 0.99, "far below the jaw")
        XCTAssertLessThan(shade[60 * w + 5], shade[60 * w + 49], "lighter towards the visible skin")
        XCTAssertGreaterThan(shade[60 * w + 49], 0.95, "beside the visible skin")
        XCTAssertEqual(shade[20 * w + 5], 1, "outside the fill nothing changes")
        XCTAssertEqual(shade[60 * w + 70], 1, "nor on the visible skin")
        // Without any other skin, the fill's whole width is shaded alike.
        let alone = ClothesSwap.chinShadow(face: face, skin: Region(width: w, height: h), region: region, scale: 100)
        XCTAssertEqual(alone[60 * w + 5], alone[60 * w + 45], accuracy: 1e-6)
    }

    /// A neck filled under a face lit from the image's right: darker towards the neck's sides
    /// (1 − 0.22·t²), tilted by the face's side light (+0.2 here, so 1 + 0.2·t), back to 1 past
    /// one and a half radii from the middle; near visible neck skin below, it gives way.
    func testAFilledNeckIsRoundAndLitFromTheFacesSide() throws {
        let w = 200, h = 200, n = w * h
        var p = [Point](repeating: Point(100, 100), count: 33)
        var v = [Double](repeating: 0, count: 33)
        for (j, q) in [BodyFrame.Joint.leftShoulder: Point(150, 150), .rightShoulder: Point(50, 150),
                       .leftHip: Point(140, 300), .rightHip: Point(60, 300), .nose: Point(100, 60)] {
            p[j.rawValue] = q; v[j.rawValue] = 1
        }
        // Scale 100, the neck column 12 px wide each side of x = 100, from y = 150 up to y = 110.
        let frame = BodyFrame(points: p, visibility: v, width: w, height: h)
        var face = Region(width: w, height: h), fill = Region(width: w, height: h), skin = Region(width: w, height: h)
        var grey = [Float](repeating: 0.5, count: n)
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                face.bits[i] = y < 90 && x >= 70 && x < 130
                if face.bits[i] { grey[i] = x < 100 ? 0.4 : 0.6 }
                fill.bits[i] = y >= 90 && y < 160 && x >= 80 && x < 121
            }
        }
        let person = Image(grey: grey, width: w, height: h)
        let relief = ClothesSwap.neckRelief(person, face: face, skin: skin, fill: fill, frame: frame)
        XCTAssertFalse(relief.contains { !$0.isFinite })
        let y = 130
        XCTAssertEqual(relief[y * w + 100], 1, accuracy: 0.01, "the neck's middle")
        XCTAssertEqual(relief[y * w + 112], 0.78 * 1.2, accuracy: 0.02, "its lit side")
        XCTAssertEqual(relief[y * w + 88], 0.78 * 0.8, accuracy: 0.02, "its shaded side")
        XCTAssertEqual(relief[y * w + 80], 1, "past one and a half radii")
        XCTAssertEqual(relief[175 * w + 112], 1, "outside the fill")
        // Visible neck skin just below the fill: the fill gives way to its light near it.
        for y in 160..<170 { for x in 80..<121 { skin.bits[y * w + x] = true } }
        let joined = ClothesSwap.neckRelief(person, face: face, skin: skin, fill: fill, frame: frame)
        XCTAssertLessThan(abs(joined[158 * w + 112] - 1), 0.2 * abs(joined[115 * w + 112] - 1))
    }

    /// Old clothing the garment leaves uncovered on the top of a shoulder, or in a narrow gap
    /// within it, takes the garment's colour; the neck, an arm below its shoulder, hair, and clothing beyond reach do not, and
    /// the garment's interior is left as it was.
    func testTheGarmentRunsOnOverAShoulderItLeavesUncovered() throws {
        let (person, _) = frames()
        let w = person.width, h = person.height, n = w * h
        var layer = Image(width: w, height: h, rgb: [Float](repeating: 0.5, count: 3 * n))
        var painted = Region(width: w, height: h), region = Region(width: w, height: h)
        var hair = Region(width: w, height: h)
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                region.bits[i] = y >= 130 && x > 100 && x < 300
                hair.bits[i] = x >= 146 && x <= 148 && y >= 163 && y <= 167
                guard y >= 160 && x >= 150 && x <= 250 else { continue }
                // A sliver down the torso, 4 px wide (0.03 of the body's scale).
                if x >= 220 && x <= 223 && y >= 250 && y <= 300 { continue }
                painted.bits[i] = true
                for c in 0..<3 { layer.rgb[c * n + i] = [0.2, 0.3, 0.6][c] }
            }
        }
        let before = layer
        let body = Region(width: w, height: h, bits: [Bool](repeating: true, count: n))
        let out = try ClothesSwap.extendedOverBody(&layer, painted: painted, region: region, person: body, hair: hair,
                                                   face: Region(width: w, height: h), frame: person, kind: .upper)
        let shoulder = 170 * w + 144
        XCTAssertTrue(out.bits[shoulder], "the shoulder's top takes the garment")
        XCTAssertEqual(layer.rgb[shoulder], 0.2, accuracy: 0.02)
        XCTAssertEqual(layer.rgb[2 * n + shoulder], 0.6, accuracy: 0.02)
        let sliver = 270 * w + 221
        XCTAssertTrue(out.bits[sliver], "a sliver the garment closes round is garment, on the torso too")
        XCTAssertEqual(layer.rgb[sliver], 0.2, accuracy: 0.02)
        XCTAssertEqual(layer.rgb[2 * n + sliver], 0.6, accuracy: 0.02)
        XCTAssertFalse(out.bits[150 * w + 200], "the neck stays bare")
        XCTAssertFalse(out.bits[150 * w + 160], "above the shoulders' slope beside the neck (where a suit's ring stood) it does not")
        XCTAssertFalse(out.bits[230 * w + 140], "so does the arm below the shoulder")
        XCTAssertFalse(out.bits[165 * w + 147], "and hair")
        XCTAssertFalse(out.bits[140 * w + 110], "too far from the garment")
        XCTAssertFalse((out && painted).area > 0 || (out && !region).area > 0)
        XCTAssertEqual(layer.rgb[300 * w + 200], before.rgb[300 * w + 200], "the garment's interior as it was")
        XCTAssertFalse(layer.rgb.contains { !$0.isFinite })

        // A garment whose sleeves reach the forearms runs on over the old clothing on the arms
        // as well: a long sleeve that missed an elbow left the old jacket there.
        var sleevedLayer = before
        let sleeved = try ClothesSwap.extendedOverBody(&sleevedLayer, painted: painted, region: region, person: body, hair: hair,
                                                       face: Region(width: w, height: h), frame: person, kind: .upper, sleeved: true)
        let arm = 230 * w + 140
        XCTAssertTrue(sleeved.bits[arm], "the arm below the shoulder takes the long sleeve")
        XCTAssertEqual(sleevedLayer.rgb[arm], 0.2, accuracy: 0.02)
        XCTAssertEqual(sleevedLayer.rgb[2 * n + arm], 0.6, accuracy: 0.02)
        XCTAssertFalse(sleeved.bits[150 * w + 200], "the neck still stays bare")
        XCTAssertFalse(sleeved.bits[165 * w + 147], "and the hair")
        XCTAssertFalse((sleeved && painted).area > 0 || (sleeved && !region).area > 0)
        XCTAssertTrue((out && !sleeved).area == 0, "everything the short-sleeved garment covers, the long-sleeved one does")
    }

    func testWarpTakesPersonLandmarksOntoTheGarmentsOwn() throws {
        let (person, garment) = frames()
        let warp = try GarmentWarp.fit(person: person, garment: garment, kind: .upper, neckline: nil, limbsFromGarment: true)
        XCTAssertEqual(warp.pairs.map(\.name), ["neck", "left_shoulder", "right_shoulder", "left_hip", "right_hip"])
        // The spline is smoothed a little, so each landmark lands within half a pixel, not exactly.
        for p in warp.pairs {
            let q = warp.torso.apply(p.person)
            XCTAssertTrue(q.x.isFinite && q.y.isFinite, p.name)
            XCTAssertLessThan(distance(q, p.garment), 0.5, "\(p.name): \(q) vs \(p.garment)")
        }
        XCTAssertLessThan(warp.residual, 0.5)
        XCTAssertFalse(warp.residual.isNaN)
        // Each limb's similarity takes both of the person's joints onto the garment's.
        XCTAssertEqual(warp.limbs.count, 4)
        for ((name, a, b, _), t) in zip(person.limbs(.upper), warp.limbs) {
            let t = try XCTUnwrap(t, name)
            XCTAssertLessThan(distance(t.apply(person[a]), garment[a]), 1e-6, name)
            XCTAssertLessThan(distance(t.apply(person[b]), garment[b]), 1e-6, name)
        }
        // A limb the garment photo does not show follows the torso.
        var hidden = garment
        hidden.visibility[BodyFrame.Joint.leftElbow.rawValue] = 0
        let partial = try GarmentWarp.fit(person: person, garment: hidden, kind: .upper, neckline: nil, limbsFromGarment: true)
        XCTAssertNil(partial.limbs[0])
        XCTAssertNil(partial.limbs[2])
        XCTAssertNotNil(partial.limbs[1])
    }

    /// A product's neckline keeps its own height above the shoulders, in units of the body's
    /// scale: a high collar stays high on the person and a deep V stays deep.
    func testAProductNecklineKeepsItsHeightAboveTheShoulders() throws {
        let (person, garment) = frames()
        for (side, rise) in [(0.0, 0.2), (0.05, -0.3)] {
            func at(_ f: BodyFrame) -> Point {
                add(add(f.shoulderCentre, scaled(f.across, side * f.scale)), scaled(f.up, rise * f.scale))
            }
            let pair = try XCTUnwrap(GarmentWarp.torsoPairs(person: person, garment: garment, kind: .upper, neckline: at(garment), outline: nil)
                .first { $0.name == "neckline" })
            XCTAssertEqual(pair.garment, at(garment))
            XCTAssertLessThan(distance(pair.person, at(person)), 1e-9, "\(pair.person) vs \(at(person))")
        }
    }

    func testSamplingFollowsTheWarpAndMirrorsAtTheEdge() throws {
        let (person, garment) = frames()
        let warp = try GarmentWarp.fit(person: person, garment: garment, kind: .upper, neckline: nil, limbsFromGarment: false)
        // A garment photo whose red channel is x/width and green y/height: the sample says where it
        // came from. It ends above the garment's hem, as a portrait cut at the waist does.
        let gw = garment.width, gh = 320
        var rgb = [Float](repeating: 0, count: 3 * gw * gh)
        for y in 0..<gh { for x in 0..<gw { rgb[y * gw + x] = Float(x) / Float(gw); rgb[gw * gh + y * gw + x] = Float(y) / Float(gh) } }
        let g = Image(width: gw, height: gh, rgb: rgb)
        let zone = Region(width: person.width, height: person.height, value: true)
        let s = warp.sample(garment: g, alpha: [Float](repeating: 1, count: gw * gh), shade: [Float](repeating: 1, count: gw * gh),
                            zone: zone, limbZones: [])
        let n = person.width * person.height
        XCTAssertFalse(s.rgb.contains { $0.isNaN })
        for p in warp.pairs {
            let i = Int(p.person.y.rounded()) * person.width + Int(p.person.x.rounded())
            let q = warp.torso.apply(Point(p.person.x.rounded(), p.person.y.rounded()))
            XCTAssertEqual(Double(s.rgb[i]) * Double(gw), q.x, accuracy: 0.05, p.name)
            XCTAssertEqual(Double(s.rgb[n + i]) * Double(gh), q.y, accuracy: 0.05, p.name)
        }
        // Past the garment photo's bottom edge the picture is mirrored: rows gh − 1 − k.
        let below = (0..<n).first { i in let q = warp.torso.apply(Point(Double(i % person.width), Double(i / person.width))); return q.y > Double(gh) + 5 && q.y < Double(gh) + 20 && q.x > 10 && q.x < Double(gw - 10) }
        let i = try XCTUnwrap(below, "some person pixel maps below the garment photo")
        let q = warp.torso.apply(Point(Double(i % person.width), Double(i / person.width)))
        XCTAssertEqual(Double(s.rgb[n + i]) * Double(gh), 2 * Double(gh - 1) - q.y, accuracy: 0.05)
        // With an edge band, whatever lies past the edge comes from the band's rows only: the
        // torso running far past a portrait's cut does not reach back up to its collar.
        let band = 12
        let banded = warp.sample(garment: g, alpha: [Float](repeating: 1, count: gw * gh), shade: [Float](repeating: 1, count: gw * gh),
                                 zone: zone, limbZones: [], edgeBand: band)
        XCTAssertEqual(banded.rgb[n + i], s.rgb[n + i], accuracy: 1e-6, "the first rows past the edge mirror as before")
        var far = 0
        for j in 0..<n {
            let q = warp.torso.apply(Point(Double(j % person.width), Double(j / person.width)))
            guard q.y > Double(gh + band + 4), q.x > 10, q.x < Double(gw - 10) else { continue }
            far += 1
            XCTAssertGreaterThanOrEqual(Double(banded.rgb[n + j]) * Double(gh), Double(gh - band - 1), "from y \(q.y)")
        }
        XCTAssertGreaterThan(far, 100, "person pixels map far below the garment photo")
    }

    // MARK: product photos

    /// A T-shirt with red and blue vertical stripes 12 px wide on a plain light background: torso
    /// 120 wide from y 60 to 300, sleeves out to 60 px each side, a V neckline.
    func productShirt() throws -> (Image, Region) {
        let w = 400, h = 360
        let shirt: [Point] = [Point(140, 60), Point(180, 60), Point(200, 95), Point(220, 60), Point(260, 60), Point(330, 110),
                              Point(300, 150), Point(260, 130), Point(260, 300), Point(140, 300), Point(140, 130), Point(100, 150), Point(70, 110)]
        let truth = try Region.polygon(shirt, width: w, height: h)
        var image = Image(width: w, height: h, red: 0.95, green: 0.95, blue: 0.93)
        let n = w * h
        for i in 0..<n where truth.bits[i] {
            let stripe = (i % w / 12) % 2 == 0
            image.rgb[i] = stripe ? 0.7 : 0.1; image.rgb[n + i] = 0.1; image.rgb[2 * n + i] = stripe ? 0.2 : 0.6
        }
        return (image, truth)
    }

    func testProductGarmentIsSegmentedAndItsLandmarksFound() throws {
        let (image, truth) = try productShirt()
        let w = image.width
        let region = try XCTUnwrap(ProductGarment.segment(image))
        let iou = Double((region && truth).area) / Double((region || truth).area)
        XCTAssertGreaterThan(iou, 0.97)
        let product = try ProductGarment.landmarks(region)
        let neck = try XCTUnwrap(product.landmarks["neckline"])
        XCTAssertEqual(neck.x, 200, accuracy: 3)
        XCTAssertEqual(neck.y, 95, accuracy: 4)
        // Shoulders sit inside the outline near its top corners, the person's left on the image's right.
        let ls = product.frame[.leftShoulder], rs = product.frame[.rightShoulder]
        XCTAssertGreaterThan(ls.x, 200)
        XCTAssertLessThan(rs.x, 200)
        XCTAssertTrue(truth.bits[Int(ls.y) * w + Int(ls.x)])
        XCTAssertTrue(truth.bits[Int(rs.y) * w + Int(rs.x)])
        XCTAssertLessThan(ls.y, 130)
        XCTAssertEqual(try XCTUnwrap(product.outline["left_hem"]).x, 260, accuracy: 2)
        XCTAssertEqual(try XCTUnwrap(product.outline["right_hem"]).x, 140, accuracy: 2)
        // A plain photo holds no garment.
        XCTAssertNil(ProductGarment.segment(Image(width: 200, height: 200, red: 0.9, green: 0.9, blue: 0.9)))
    }

    // MARK: the whole pipeline

    func testAGarmentFromAnotherPhotoLeavesEverythingElseBitExact() throws {
        let person = try sample("astronaut.png"), garment = try sample("grace_hopper.jpg")
        let swap = try swapper()
        let r = try swap.runDetailed(person: person, garment: garment)
        XCTAssertEqual(r.report.garmentSource, "person")
        XCTAssertFalse(r.image.rgb.contains { $0.isNaN })
        let n = person.pixelCount
        // Outside the old clothing and the painted garment every pixel is the person photo's.
        var outside = 0, changedOutside = 0, changedInside = 0
        for i in 0..<n {
            let same = (0..<3).allSatisfy { r.image.rgb[$0 * n + i] == person.rgb[$0 * n + i] }
            if r.changed.bits[i] { if !same { changedInside += 1 } } else { outside += 1; if !same { changedOutside += 1 } }
        }
        XCTAssertEqual(changedOutside, 0)
        XCTAssertGreaterThan(outside, n / 3)
        XCTAssertGreaterThan(changedInside, n / 10, "the garment was put on")
        // The changed region stays on the body: within the person mask grown by 2 % of the shoulder width.
        let grown = try Region(try swap.pose.estimate(person, segmentation: true)!.mask!).dilated(Int(0.03 * r.personFrame.scale) + 2)
        XCTAssertEqual((r.changed && !grown).area, 0)
        // Fit and colour as the report measures them.
        XCTAssertGreaterThan(r.report.coverage, 0.85)
        XCTAssertLessThan(r.report.spill, 0.03)
        let dE = try XCTUnwrap(r.report.deltaE), dE0 = try XCTUnwrap(r.report.deltaEOriginal)
        XCTAssertLessThan(dE, 8)
        XCTAssertGreaterThan(dE0, 20, "the orange suit differs from the navy uniform")
        XCTAssertLessThan(r.report.warpResidual, 0.5)
        // The wearer's shoulder tops go to hers.
        XCTAssertTrue(Set(r.report.keypoints.map(\.name)).isSuperset(of: ["neck", "left_shoulder_top", "right_shoulder_top"]))
        // Her short hair is found on her head, none of it on the suit.
        XCTAssertGreaterThan(r.hair.area, 500)
        let torso = try Region.polygon(r.personFrame.upperTorso, width: person.width, height: person.height)
        XCTAssertEqual((r.hair && torso).area, 0)

        // Deterministic: the same inputs give the same pixels.
        let again = try swap.runDetailed(person: person, garment: garment)
        XCTAssertEqual(again.image.rgb, r.image.rgb)
    }

    /// Shoulder-length blonde hair over a black top: the hair found reaches below the chin onto
    /// the shoulders without taking in the chest, stays in front of the new garment bit for bit,
    /// and nothing of the old top is left as it was.
    func testHairStaysInFrontAndNoOldClothingIsLeft() throws {
        let person = try sample("anne_helene.jpg"), garment = try sample("astronaut.png")
        let r = try swapper().runDetailed(person: person, garment: garment)
        XCTAssertFalse(r.image.rgb.contains { $0.isNaN })
        let n = person.pixelCount, w = person.width
        let f = r.personFrame
        let shoulderY = Int(min(f[.leftShoulder].y, f[.rightShoulder].y))
        // Hair down the sides of the face and onto the shoulders, none over the middle of the chest.
        var low = 0
        for i in 0..<n where r.hair.bits[i] && i / w >= shoulderY - Int(0.25 * f.scale) { low += 1 }
        XCTAssertGreaterThan(low, 400, "hair below the chin")
        let chest = try Region.polygon([lerp(f[.rightShoulder], f[.leftShoulder], 0.3), lerp(f[.rightShoulder], f[.leftShoulder], 0.7),
                                        lerp(f[.leftShoulder], f[.leftHip], 0.7), lerp(f[.rightShoulder], f[.rightHip], 0.7)],
                                       width: w, height: person.height)
        XCTAssertLessThan((r.hair && chest).area, chest.area / 50)
        // Only the hair's edge over the old top (2.5 % of the scale) is re-composited over the new one.
        let fringe = max(2, Int((0.025 * f.scale).rounded()))
        let nearRegion = try r.region.dilated(fringe)
        var hairChanged = 0, oldLeft = 0, fringeChanged = 0
        for i in 0..<n {
            let same = (0..<3).allSatisfy { r.image.rgb[$0 * n + i] == person.rgb[$0 * n + i] }
            if r.hair.bits[i] && !same { if nearRegion.bits[i] { fringeChanged += 1 } else { hairChanged += 1 } }
            if r.region.bits[i] && same { oldLeft += 1 }
            if !r.changed.bits[i] && !same { return XCTFail("pixel \(i) changed outside the region") }
        }
        XCTAssertEqual(hairChanged, 0, "the hair is the photo's")
        XCTAssertGreaterThan(fringeChanged, 0, "the hair's edge over the black top is re-composited")
        XCTAssertLessThan(fringeChanged, r.hair.area / 4)
        XCTAssertFalse((r.hair && r.painted).area > 0, "no garment over the hair")
        XCTAssertLessThan(oldLeft, r.region.area / 200, "the old top is covered, or made skin or background")
        XCTAssertGreaterThan(r.report.coverage, 0.85)
        XCTAssertLessThan(try XCTUnwrap(r.report.deltaE), 12)
    }

    func testAProductShotGoesOnWithItsStripesUpright() throws {
        let person = try sample("astronaut.png")
        let (shirt, _) = try productShirt()
        let r = try swapper().runDetailed(person: person, garment: shirt)
        XCTAssertEqual(r.report.garmentSource, "product")
        // Her hips are below the frame, so the hem goes where the pose puts them.
        XCTAssertEqual(Set(r.report.keypoints.map(\.name)), ["neckline", "left_shoulder", "right_shoulder", "left_shoulder_top", "right_shoulder_top",
                                                              "left_chest", "right_chest", "left_hip", "right_hip"])
        // The outline's tops go to the tops of her shoulders: on the body, straight above the joints.
        for side in ["left", "right"] {
            let top = try XCTUnwrap(r.report.keypoints.first { $0.name == side + "_shoulder_top" }).person
            let joint = r.personFrame[side == "left" ? .leftShoulder : .rightShoulder]
            XCTAssertGreaterThan(joint.y - top.y, 0.05 * r.personFrame.scale, side)
            XCTAssertEqual(top.x, joint.x, accuracy: 0.1 * r.personFrame.scale, side)
        }
        XCTAssertGreaterThan(r.report.coverage, 0.85)
        XCTAssertLessThan(try XCTUnwrap(r.report.deltaE), 8)
        let n = person.pixelCount, w = person.width
        for i in 0..<n where !r.changed.bits[i] {
            guard (0..<3).allSatisfy({ r.image.rgb[$0 * n + i] == person.rgb[$0 * n + i] }) else { return XCTFail("pixel \(i) changed outside the region") }
        }
        // Vertical stripes stay vertical: across the chest the red channel changes far more from
        // column to column than from row to row.
        let chest = try Region.polygon(r.personFrame.upperTorso, width: w, height: person.height).eroded(4) && r.painted
        var dx = 0.0, dy = 0.0
        for i in 0..<n where chest.bits[i] && chest.bits[i + 1] && chest.bits[i + w] {
            dx += Double(abs(r.image.rgb[i + 1] - r.image.rgb[i]))
            dy += Double(abs(r.image.rgb[i + w] - r.image.rgb[i]))
        }
        XCTAssertGreaterThan(dx, 3 * dy)
    }

    /// Obama's white shirt collar reaches his jaw and the striped shirt's V neckline sits lower:
    /// none of the collar may stay as a white line under the jaw, and the neck filled in between
    /// must run on from the skin it meets, without a step at the edge of the skin kept.
    func testAWhiteCollarComesOffAndTheNeckRunsOnFromTheSkin() throws {
        let person = try sample("obama.jpg")
        let (shirt, _) = try productShirt()
        let r = try swapper().runDetailed(person: person, garment: shirt)
        XCTAssertFalse(r.image.rgb.contains { $0.isNaN })
        let n = person.pixelCount, w = person.width, f = r.personFrame
        func white(_ image: Image, _ i: Int) -> Bool { (0..<3).allSatisfy { image.rgb[$0 * n + i] > 0.75 } }
        // Between the jaw and the shoulders, round the neck (below his teeth).
        let box = try Region.polygon([add(f.neck, Point(-0.4 * f.scale, 0)), add(f.neck, Point(0.4 * f.scale, 0)),
                                      add(f.neck, Point(0.4 * f.scale, -0.3 * f.scale)), add(f.neck, Point(-0.4 * f.scale, -0.3 * f.scale))],
                                     width: w, height: person.height)
        var before = 0, after = 0
        for i in 0..<n where box.bits[i] {
            if white(person, i) { before += 1 }
            if white(r.image, i) { after += 1 }
        }
        XCTAssertGreaterThan(before, 2000, "the collar is there to begin with")
        XCTAssertLessThan(after, before / 50, "white pixels left round the neck: \(after) of \(before)")
        // Across the edge between the filled skin and the skin kept (brown: red over green over
        // blue, green at least 0.55 of red, which the red curtain behind him is not), neighbours
        // differ by little more than neighbours inside the kept skin do.
        let filled = r.region && !r.painted
        func skin(_ i: Int) -> Bool {
            let red = person.rgb[i], green = person.rgb[n + i], blue = person.rgb[2 * n + i]
            return !r.changed.bits[i] && red > green && green > blue && green > 0.55 * red && red > 0.2
        }
        // The neck's middle only: at its sides the body meets the background, a true edge.
        let neck = try Region.polygon([add(f.neck, Point(-0.2 * f.scale, 0)), add(f.neck, Point(0.2 * f.scale, 0)),
                                       add(f.neck, Point(0.2 * f.scale, -0.45 * f.scale)), add(f.neck, Point(-0.2 * f.scale, -0.45 * f.scale))],
                                      width: w, height: person.height)
        var edge = 0.0, edges = 0.0, inner = 0.0, inners = 0.0
        for i in 0..<(n - w) where neck.bits[i] && i % w < w - 1 {
            for j in [i + 1, i + w] where neck.bits[j] {
                let d = (0..<3).map { Double(abs(r.image.rgb[$0 * n + i] - r.image.rgb[$0 * n + j])) }.reduce(0, +) / 3
                if (filled.bits[i] && skin(j)) || (filled.bits[j] && skin(i)) { edge += d; edges += 1 }
                if skin(i) && skin(j) { inner += d; inners += 1 }
            }
        }
        XCTAssertGreaterThan(edges, 50)
        print("edge step", edge / edges, "inside kept", inner / inners)
        XCTAssertLessThan(edge / edges, 3.5 * inner / max(inners, 1))
    }

    /// Obama's arms are crossed over his jacket, a white cuff and a watch beside his hand. Taken
    /// as a garment, the jacket under his forearms and hands is filled from the jacket's own
    /// cloth: nothing light (cuff, watch, skin) may stay in the filled part, which a fill from
    /// whatever bordered the hole carried in and the warp pasted onto the person as a white patch.
    func testAGarmentHiddenByArmsIsFilledFromItsOwnCloth() throws {
        let swap = try swapper()
        let garment = try sample("obama.jpg")
        let source = try swap.analyseGarment(garment, kind: .upper)
        XCTAssertTrue(source.fromPerson)
        let b = try BodyAnalysis.analyse(garment, kind: .upper, pose: swap.pose, faceDetector: swap.faceDetector,
                                         analyzer: swap.analyzer, label: "garment", override: nil)
        let hidden = (b.frontArms || b.handZones) && b.torso && b.person
        let n = garment.pixelCount
        var light = 0, before = 0
        for i in 0..<n where hidden.bits[i] {
            func luma(_ im: Image) -> Float { 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i] }
            if luma(garment) > 0.45 { before += 1 }
            if luma(source.image) > 0.45 { light += 1 }
        }
        XCTAssertGreaterThan(hidden.area, 5000)
        XCTAssertGreaterThan(before, 2000, "hands, cuff and watch are there to begin with")
        XCTAssertLessThan(light, 20, "light pixels left in the filled jacket: \(light) of \(hidden.area)")
        XCTAssertTrue((hidden && !source.region).area == 0, "the filled part is garment")
    }

    /// Hair over a worn garment is filled from the cloth only where the cloth closes round it.
    /// Messi's hair falls beside his face onto the jersey's shoulder: that part has cloth below it
    /// only, and filled, a blur of the stripes, it was warped beside another wearer's neck as a
    /// purple haze. On a grid: a hole in the cloth's middle is enclosed; a notch in its top edge,
    /// or a hole wider than the reach, is not.
    func testHairIsFilledIntoTheGarmentOnlyWhereTheClothClosesRoundIt() throws {
        let w = 30, h = 20
        var cloth = Region(width: w, height: h), hair = Region(width: w, height: h)
        for y in 5..<20 { for x in 0..<30 { cloth.bits[y * w + x] = true } }
        for y in 10..<13 { for x in 4..<7 { cloth.bits[y * w + x] = false; hair.bits[y * w + x] = true } }      // a small hole
        for y in 5..<8 { for x in 8..<17 { cloth.bits[y * w + x] = false; hair.bits[y * w + x] = true } }        // a notch in the top
        for y in 9..<19 { for x in 18..<29 { cloth.bits[y * w + x] = false; hair.bits[y * w + x] = true } }      // a wide hole
        let enclosed = hair.enclosed(by: cloth, reach: 4)
        XCTAssertTrue(enclosed.bits[11 * w + 5])
        XCTAssertFalse(enclosed.bits[6 * w + 13], "cloth below the notch only")
        XCTAssertFalse(enclosed.bits[14 * w + 23], "cloth farther than the reach")
        XCTAssertEqual((enclosed && !hair).area, 0)

        let swap = try swapper()
        let garment = try sample("messi5.jpg")
        let source = try swap.analyseGarment(garment, kind: .upper)
        let b = try BodyAnalysis.analyse(garment, kind: .upper, pose: swap.pose, faceDetector: swap.faceDetector,
                                         analyzer: swap.analyzer, label: "garment", override: nil)
        let hairOnCloth = try b.hair.dilated(max(1, Int((0.04 * b.frame.scale).rounded()))) && b.person && b.torso && !b.region
        let filled = (hairOnCloth && source.region).area
        print("hair over the jersey: \(hairOnCloth.area) px, filled into the garment: \(filled)")
        XCTAssertGreaterThan(hairOnCloth.area, 200, "his hair lies on the jersey's shoulder")
        XCTAssertLessThan(filled, hairOnCloth.area / 4, "all of it before: the whole hidden part was filled")
    }

    /// Eileen Collins's neck shows as a band of skin above her black turtleneck; its last row
    /// of pixels mixes the two, and kept beside the neck filled on below it drew a dotted dark
    /// line across her throat. That row is filled as the neck is: none of it stays much darker
    /// than her neck skin above, and it counts as changed.
    func testNoDottedLineWhereTheNeckMetItsOldCollar() throws {
        let person = try sample("astronaut.png"), garment = try sample("messi5.jpg")
        let swap = try swapper()
        let body = try BodyAnalysis.analyse(person, kind: .upper, pose: swap.pose, faceDetector: swap.faceDetector,
                                            analyzer: swap.analyzer, label: "person", override: nil)
        let edge = try ClothesSwap.neckEdge(body, kind: .upper)
        let r = try swap.runDetailed(person: person, garment: garment)
        let n = person.pixelCount
        func luma(_ im: Image, _ i: Int) -> Float { 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i] }
        let neck = body.skin && !body.face && !body.region && !edge && body.frame.neckColumn(width: person.width, height: person.height)
        XCTAssertGreaterThan(neck.area, 200, "her neck shows above the collar")
        // Darker than 0.85 of the neck skin round it (within 3 px): a dot.
        let w = person.width, h = person.height
        func local(_ i: Int) -> Float? {
            var sum: Float = 0, count: Float = 0
            for y in max(0, i / w - 3)...min(h - 1, i / w + 3) {
                for x in max(0, i % w - 3)...min(w - 1, i % w + 3) where neck.bits[y * w + x] { sum += luma(person, y * w + x); count += 1 }
            }
            return count >= 5 ? sum / count : nil
        }
        let edgePixels = edge.bits.indices.filter { edge.bits[$0] }
        let around = edgePixels.map(local)
        let darkBefore = zip(edgePixels, around).filter { i, m in m.map { luma(person, i) < 0.85 * $0 } ?? false }.count
        let darkAfter = zip(edgePixels, around).filter { i, m in m.map { luma(r.image, i) < 0.85 * $0 } ?? false }.count
        print("neck edge: \(edgePixels.count) px, dots darker than 0.85 of the neck round them: \(darkBefore) in the photo, \(darkAfter) in the result")
        XCTAssertGreaterThan(darkBefore, 10, "the mixed pixels are there to begin with")
        XCTAssertLessThan(darkAfter, darkBefore / 3)
        XCTAssertEqual((edge && !r.changed).area, 0)
    }

    /// Grace Hopper's neck is wrinkled and its middle shadowed: the skin colour test passes its
    /// lit sides only. Between them and the jaw it is neck, and its creases and its edge against
    /// the collar are not garment: taken for her uniform, they were pasted as brown blotches
    /// into another wearer's collar.
    func testAWrinkledNeckIsNeckNotClothing() throws {
        let swap = try swapper()
        let image = try sample("grace_hopper.jpg")
        let b = try BodyAnalysis.analyse(image, kind: .upper, pose: swap.pose, faceDetector: swap.faceDetector,
                                         analyzer: swap.analyzer, label: "person", override: nil)
        let garment = try swap.analyseGarment(image, kind: .upper)
        let f = b.frame, s = f.scale, n = image.pixelCount
        let column = Region.capsule(f.shoulderCentre, add(f.neck, scaled(f.up, 0.2 * s)), radius: 0.12 * s,
                                    width: image.width, height: image.height)
        // Skin's tones: red over green over blue, well apart; her white collar and navy jacket are not.
        var skinToned = 0, clothed = 0, garmentPixels = 0
        for i in 0..<n where column.bits[i] {
            let r = image.rgb[i], g = image.rgb[n + i], bl = image.rgb[2 * n + i]
            guard r > g, g > bl, r - bl > 0.12 else { continue }
            skinToned += 1
            if b.region.bits[i] { clothed += 1 }
            if garment.region.bits[i] { garmentPixels += 1 }
        }
        XCTAssertGreaterThan(skinToned, 2000, "her neck is in the column")
        // The clothing region keeps the skin's outermost pixels, mixed with the collar, to clear them.
        XCTAssertLessThan(clothed, skinToned / 10, "skin-toned pixels of her neck taken for clothing: \(clothed) of \(skinToned)")
        // Left: a line of the collar's edge, its pixels mixed with the neck.
        XCTAssertLessThan(garmentPixels, skinToned / 50, "skin-toned pixels of her neck in the garment: \(garmentPixels) of \(skinToned)")
    }

    /// Obama's forearms lie across his chest. The new garment runs on under them: next to an arm
    /// it is as dark as the navy uniform a little farther out, not faded into a tan halo of the
    /// bare-skin fill beneath.
    func testTheGarmentMeetsACrossedArmWithoutAHalo() throws {
        let swap = try swapper()
        // At half size, to keep the test quick.
        let full = try sample("obama.jpg")
        let person = try full.resized(width: full.width / 2, height: full.height / 2)
        let r = try swap.runDetailed(person: person, garment: try sample("grace_hopper.jpg"))
        let b = try BodyAnalysis.analyse(person, kind: .upper, pose: swap.pose, faceDetector: swap.faceDetector,
                                         analyzer: swap.analyzer, label: "person", override: nil)
        let arms = b.frontArms || b.hands
        let ring = r.painted && (try arms.dilated(2)) && !arms
        let farther = r.painted && (try arms.dilated(12)) && !(try arms.dilated(6))
        let n = person.pixelCount
        func meanLuma(_ region: Region) -> Double {
            var sum = 0.0
            for i in 0..<n where region.bits[i] {
                sum += Double(0.299 * r.image.rgb[i] + 0.587 * r.image.rgb[n + i] + 0.114 * r.image.rgb[2 * n + i])
            }
            return sum / Double(max(1, region.area))
        }
        XCTAssertGreaterThan(ring.area, 500)
        XCTAssertGreaterThan(farther.area, 500)
        let near = meanLuma(ring), far = meanLuma(farther)
        XCTAssertFalse(near.isNaN || far.isNaN)
        XCTAssertLessThan(near, far + 0.03, "beside the arms \(near), farther out \(far)")
    }

    /// Obama with his arms crossed, at half size, and his body analysis.
    func halfSizeObama() throws -> (ClothesSwap, Image, BodyAnalysis) {
        let swap = try swapper()
        let full = try sample("obama.jpg")
        let person = try full.resized(width: full.width / 2, height: full.height / 2)
        let b = try BodyAnalysis.analyse(person, kind: .upper, pose: swap.pose, faceDetector: swap.faceDetector,
                                         analyzer: swap.analyzer, label: "person", override: nil)
        return (swap, person, b)
    }

    /// Obama's crossed forearms in his navy sleeves: under the astronaut's long-sleeved suit they
    /// keep their place and folds but turn the suit's orange; under Messi's short-sleeved shirt
    /// they turn to bare skin like his hands'. His hands stay bit for bit.
    func testOldSleevesOnForearmsInFrontTakeTheNewSleeveOrBareSkin() throws {
        let (swap, person, b) = try halfSizeObama()
        let sleeves = b.frontSleeves
        XCTAssertGreaterThan(sleeves.area, 2000, "his sleeves across the body")
        XCTAssertEqual((sleeves && !b.region).area, 0, "the sleeves are part of the region that may change")
        XCTAssertEqual((sleeves && b.hands).area, 0)
        let n = person.pixelCount
        let before = try XCTUnwrap(ColourDifference.meanLab(person, sleeves))
        for (garment, long) in [("astronaut.png", true), ("messi5.jpg", false)] {
            let g = try sample(garment)
            let source = try swap.analyseGarment(g, kind: .upper)
            XCTAssertEqual(source.sleeveColour != nil, long, garment)
            let r = try swap.runDetailed(person: person, garment: g)
            let after = try XCTUnwrap(ColourDifference.meanLab(r.image, sleeves))
            XCTAssertGreaterThan(ColourDifference.ciede2000(after, before), 20, "\(garment): the navy is gone")
            let want: ColourDifference.Lab
            if let c = source.sleeveColour {
                want = ColourDifference.lab(Double(c.0), Double(c.1), Double(c.2))
            } else {
                // The skin it is filled from: his hands'.
                want = try XCTUnwrap(ColourDifference.meanLab(person, b.hands && b.skin))
            }
            XCTAssertLessThan(ColourDifference.ciede2000(after, want), 12, "\(garment): \(after) against \(want)")
            let moved = (0..<n).filter { i in b.hands.bits[i] && (0..<3).contains { r.image.rgb[$0 * n + i] != person.rgb[$0 * n + i] } }
            XCTAssertEqual(moved.count, 0, "\(garment): the hands stay")
        }
    }

    /// A product shot of a jacket on a headless model, a hand on it: the hand (and a margin
    /// round it, for a cuff or a watch) takes the jacket's cloth; the rest of the jacket keeps
    /// its pixels. A beige jacket, skin-coloured all over, is left as it is.
    func testAProductShotsHandsTakeTheGarmentsCloth() throws {
        let w = 120, h = 120, n = w * h
        let navy: [Float] = [0.12, 0.14, 0.3], hand: [Float] = [0.85, 0.62, 0.5], beige: [Float] = [0.86, 0.75, 0.63]
        func shot(_ cloth: [Float]) -> (Image, Region) {
            var rgb = [Float](repeating: 0.96, count: 3 * n)
            var region = Region(width: w, height: h)
            for y in 10..<110 {
                for x in 15..<105 {
                    let i = y * w + x
                    region.bits[i] = true
                    let onHand = x >= 50 && x < 70 && y >= 60 && y < 75
                    for c in 0..<3 { rgb[c * n + i] = (onHand ? hand : cloth)[c] + 0.01 * Float((x * 7 + y * 3) % 5) }
                }
            }
            return (Image(width: w, height: h, rgb: rgb), region)
        }
        let (jacket, region) = shot(navy)
        let out = try ClothesSwap.productHandsFilled(jacket, region: region, scale: 100)
        for (x, y) in [(55, 65), (60, 70), (68, 62)] {
            let i = y * w + x
            XCTAssertEqual(out.rgb[i], navy[0], accuracy: 0.06, "the hand at \(x),\(y) takes the cloth")
            XCTAssertEqual(out.rgb[2 * n + i], navy[2], accuracy: 0.06)
        }
        XCTAssertFalse(out.rgb.contains { !$0.isFinite })
        XCTAssertEqual(out.rgb[20 * w + 20], jacket.rgb[20 * w + 20], "far from the hand the jacket's own pixel")
        XCTAssertEqual(out.rgb[5 * w + 5], jacket.rgb[5 * w + 5], "the backdrop is not touched")
        let (tan, tanRegion) = shot(beige)
        XCTAssertEqual(try ClothesSwap.productHandsFilled(tan, region: tanRegion, scale: 100).rgb, tan.rgb)
    }

    /// A black-and-white photo (the cameraman) in Messi's red and blue shirt stays grey: the
    /// garment is written as its luma.
    func testAGreyPersonPhotoStaysGrey() throws {
        let person = try sample("camera.png")
        XCTAssertEqual(person.sourceFormat?.isGrey, true)
        let (out, report) = try swapper().run(person: person, garment: try sample("messi5.jpg"))
        XCTAssertGreaterThan(report.paintedArea, 1000)
        XCTAssertTrue(out.isGrey)
        XCTAssertNotEqual(out.rgb, person.rgb)
    }

    /// Obama's hand on his upper arm: the zone's margin round its skin, off the forearm, takes in
    /// his jacket between and round the fingers. That jacket is clothing (it changes); kept as
    /// hand it stayed a dark rim round the hand in the new garment.
    func testTheJacketRoundAHandOnTheTorsoIsClothing() throws {
        let (_, person, b) = try halfSizeObama()
        let jacket = try XCTUnwrap(ColourDifference.meanLab(person, b.region && b.torso && !b.frontSleeves))
        let n = person.pixelCount
        let offForearm = b.handZones && !b.frontArms && !b.skin
        let navy = (0..<n).filter { i in
            offForearm.bits[i] && ColourDifference.ciede2000(
                ColourDifference.lab(Double(person.rgb[i]), Double(person.rgb[n + i]), Double(person.rgb[2 * n + i])), jacket) < 8
        }
        let kept = navy.filter { !b.region.bits[$0] }
        print("jacket-coloured pixels in the hands' zones off the forearms: \(navy.count), kept as hand: \(kept.count)")
        XCTAssertGreaterThan(navy.count, 300, "the zones take in some of the jacket")
        XCTAssertLessThan(kept.count, navy.count / 20, "224 of 2981 were kept before the margin was tested")
        XCTAssertEqual((b.hands && b.region).area, 0, "what is hand is not clothing")
    }

    /// The sleeve's colour is its main colour (a median), so a white cuff in the sample does not
    /// widen it; its shadows pass, other colours do not.
    func testTheSleeveIsTheClothOfItsOwnColour() {
        let w = 10, h = 1, n = w * h
        let colours: [(Float, Float, Float)] = [(0.1, 0.1, 0.3), (0.12, 0.1, 0.32), (0.1, 0.12, 0.28), (0.11, 0.1, 0.3), (0.09, 0.11, 0.31),
                                                (0.95, 0.95, 0.95), (0.95, 0.95, 0.95),   // a cuff, in the sample
                                                (0.04, 0.04, 0.16),                        // the sleeve in shadow
                                                (0.8, 0.1, 0.1), (0.95, 0.95, 0.95)]       // red, white: not the sleeve
        var rgb = [Float](repeating: 0, count: 3 * n)
        for (i, c) in colours.enumerated() { rgb[i] = c.0; rgb[n + i] = c.1; rgb[2 * n + i] = c.2 }
        let image = Image(width: w, height: h, rgb: rgb)
        var sample = Region(width: w, height: h)
        for i in 0..<7 { sample.bits[i] = true }
        let out = BodyAnalysis.coloured(like: sample, in: Region(width: w, height: h, value: true), image: image)
        XCTAssertEqual(out.bits, [true, true, true, true, true, false, false, true, false, false])
    }

    /// Recoloured, a sleeve's pixel at its mean luma takes the new colour exactly; brighter and
    /// darker ones keep 0.6 of their relative departure.
    func testARecolouredSleeveKeepsItsFolds() {
        let w = 3, n = 3
        let grey: [Float] = [0.3, 0.4, 0.5]
        let person = Image(width: w, height: 1, rgb: grey + grey + grey)
        var out = Image(width: w, height: 1, red: 0, green: 0, blue: 0)
        ClothesSwap.recolouredSleeves(&out, person: person, sleeves: Region(width: w, height: 1, value: true), colour: (0.8, 0.4, 0.2))
        XCTAssertEqual(out.rgb[1], 0.8, accuracy: 1e-5)
        XCTAssertEqual(out.rgb[n + 1], 0.4, accuracy: 1e-5)
        XCTAssertEqual(out.rgb[0], 0.8 * (1 - 0.6 * 0.25), accuracy: 1e-4)
        XCTAssertEqual(out.rgb[2 * n + 2], 0.2 * (1 + 0.6 * 0.25), accuracy: 1e-4)
    }

    func testBadInputsAreOneLineErrors() throws {
        let swap = try swapper()
        let grey = Image(width: 320, height: 240, red: 0.5, green: 0.5, blue: 0.5)
        let astronaut = try sample("astronaut.png")
        XCTAssertThrowsError(try swap.run(person: grey, garment: astronaut)) { e in
            XCTAssertEqual((e as? GuiseError)?.message, "no person found in the person photo")
            XCTAssertEqual((e as? GuiseError)?.category, .notFound)
        }
        XCTAssertThrowsError(try swap.run(person: astronaut, garment: grey)) { e in
            XCTAssertEqual((e as? GuiseError)?.message, "no garment found in the garment photo")
            XCTAssertEqual((e as? GuiseError)?.category, .notFound)
        }
        // Trousers asked of a photo that shows no legs.
        var o = ClothesOptions()
        o.kind = .lower
        let lower = try ClothesSwap(options: o, store: ModelStore(directory: repoRoot + "/Models"))
        XCTAssertThrowsError(try lower.run(person: astronaut, garment: astronaut)) { e in
            let message = (e as? GuiseError)?.message ?? ""
            XCTAssertTrue(message.hasPrefix("the person photo does not show the body parts a lower garment needs"), message)
            XCTAssertEqual((e as? GuiseError)?.category, .input)
        }
        o = ClothesOptions()
        o.shading = 2
        XCTAssertThrowsError(try o.validate())
        o.shading = .nan
        XCTAssertThrowsError(try o.validate())
    }
}
