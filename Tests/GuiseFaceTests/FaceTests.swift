import Foundation
import XCTest
@testable import GuiseFace
@testable import GuiseVision
import GuiseImage
import GuiseTestSupport

final class DetectionTests: XCTestCase {
    /// The astronaut's face lies at about x 175–270, y 65–160 of the 512² photo (checked by eye).
    func testHaarFindsTheAstronautsFaceOnly() throws {
        let image = try sample("astronaut.png")
        for cascade in HaarFaceDetector.Cascade.allCases {
            let faces = try HaarFaceDetector(cascade: cascade).detect(image)
            XCTAssertEqual(faces.count, 1, "\(cascade)")
            guard let b = faces.first?.box else { continue }
            XCTAssertGreaterThanOrEqual(b.x, 155)
            XCTAssertGreaterThanOrEqual(b.y, 50)
            XCTAssertLessThanOrEqual(b.x + b.width, 285)
            XCTAssertLessThanOrEqual(b.y + b.height, 185)
            XCTAssertTrue(b.contains(Point(222, 112)), "the box holds the nose")
            XCTAssertGreaterThan(b.width, 70)
            XCTAssertGreaterThanOrEqual(faces[0].score, 5)
            // Her pupils are at about (204, 101) and (246, 102) (checked by eye).
            let l = try XCTUnwrap(faces[0].keypoints[KeypointName.leftEye]), r = try XCTUnwrap(faces[0].keypoints[KeypointName.rightEye])
            XCTAssertEqual(l.x, 204, accuracy: 6)
            XCTAssertEqual(l.y, 101, accuracy: 6)
            XCTAssertEqual(r.x, 246, accuracy: 6)
            XCTAssertEqual(r.y, 102, accuracy: 6)
        }
        let plain = try HaarFaceDetector(findEyes: false).detect(image)
        XCTAssertEqual(plain.count, 1)
        XCTAssertEqual(plain.first?.keypoints, [:])
    }

    /// messi5.jpg: the frontal cascade also fires on the shirt in a box enclosing half of the
    /// real face (about x 226–263, y 94–131); nested suppression keeps the better-scored face.
    func testNestedFalseDetectionIsSuppressed() throws {
        let faces = try HaarFaceDetector().detect(try sample("messi5.jpg"))
        XCTAssertEqual(faces.count, 1)
        XCTAssertTrue(faces.first?.box.contains(Point(244, 112)) ?? false, "\(faces)")
        XCTAssertLessThan(faces.first?.box.width ?? 0, 60)

        let big = Face(box: Box(x: 0, y: 0, width: 100, height: 100), score: 5)
        let inside = Face(box: Box(x: 40, y: 40, width: 30, height: 30), score: 9)
        let apart = Face(box: Box(x: 200, y: 0, width: 30, height: 30), score: 1)
        XCTAssertEqual(FaceOrder.largest.sorted(HaarFaceDetector.suppressNested([big, inside, apart])), [inside, apart])
    }

    func testNoFaceInACoffeeCup() throws {
        XCTAssertEqual(try HaarFaceDetector().detect(try sample("coffee.png")).count, 0)
    }

    func testFaceOrders() {
        let a = Face(box: Box(x: 100, y: 0, width: 50, height: 50), score: 3)
        let b = Face(box: Box(x: 0, y: 0, width: 20, height: 20), score: 9)
        let c = Face(box: Box(x: 300, y: 0, width: 30, height: 30), score: 5)
        XCTAssertEqual(FaceOrder.largest.sorted([b, c, a]), [a, c, b])
        XCTAssertEqual(FaceOrder.score.sorted([a, c, b]), [b, c, a])
        XCTAssertEqual(FaceOrder.leftToRight.sorted([c, a, b]), [b, a, c])
    }
}

final class AlignmentTests: XCTestCase {
    func testTemplates() {
        let arc = FaceTemplate.arcface112.points
        XCTAssertEqual(arc[KeypointName.leftEye], Point(38.2946, 51.6963))
        XCTAssertEqual(arc[KeypointName.mouthRight], Point(70.7299, 92.2041))
        // The derived FFHQ template's eyes and nose land within 1.5 px of the 5-point FFHQ
        // template that facexlib measured on FFHQ (scaled from 512 to 256); its mouth corners
        // sit ~6 px lower and ~2.5 px closer to the middle (ArcFace's mean face differs).
        let ffhq = FaceTemplate.ffhq256.points
        let reference: [String: Point] = [
            KeypointName.leftEye: Point(96.49, 119.97), KeypointName.rightEye: Point(159.45, 120.10),
            KeypointName.nose: Point(128.32, 157.01), KeypointName.mouthLeft: Point(100.63, 185.71),
            KeypointName.mouthRight: Point(156.54, 185.58),
        ]
        for (name, p) in reference {
            if name.hasPrefix("mouth") {
                XCTAssertEqual(ffhq[name]!.y - p.y, 6.3, accuracy: 1, name)
                XCTAssertEqual(abs(ffhq[name]!.x - 128), abs(p.x - 128) - 2.5, accuracy: 1, name)
            } else {
                XCTAssertEqual(ffhq[name]!.x, p.x, accuracy: 1.5, name)
                XCTAssertEqual(ffhq[name]!.y, p.y, accuracy: 1.5, name)
            }
        }
        XCTAssertNil(FaceTemplate.forSize(128))
    }

    /// With 5 keypoints the fit maps them onto the template: a face made by moving the
    /// template with a known similarity aligns back with that similarity's inverse.
    func testAlignFromKeypointsInvertsAKnownSimilarity() throws {
        let template = FaceTemplate.arcface112
        let angle = 0.2, scale = 2.5
        let placed = AffineTransform([scale * cos(angle), -scale * sin(angle), 100, scale * sin(angle), scale * cos(angle), 60])
        let face = Face(box: Box(x: 0, y: 0, width: 1, height: 1), score: 1, keypoints: template.points.mapValues(placed.apply))
        let image = Image(width: 400, height: 400, red: 0.2, green: 0.4, blue: 0.6)
        let aligned = try FaceAligner.align(image, face: face, template: template)
        let expected = try placed.inverted()
        for (a, b) in zip(aligned.transform.matrix, expected.matrix) { XCTAssertEqual(a, b, accuracy: 1e-9) }
        XCTAssertEqual(aligned.crop.width, 112)
        XCTAssertEqual(aligned.crop[50, 50, 2], 0.6, accuracy: 1e-6)

        // BlazeFace-style keypoints (no mouth corners) use the mouth centre instead.
        var six = face
        six.keypoints[KeypointName.mouthLeft] = nil
        six.keypoints[KeypointName.mouthRight] = nil
        let l = template.points[KeypointName.mouthLeft]!, r = template.points[KeypointName.mouthRight]!
        six.keypoints[KeypointName.mouthCentre] = placed.apply(Point((l.x + r.x) / 2, (l.y + r.y) / 2))
        let fromSix = try FaceAligner.align(image, face: six, template: template)
        for (a, b) in zip(fromSix.transform.matrix, expected.matrix) { XCTAssertEqual(a, b, accuracy: 1e-9) }
    }

    /// Whether image pixel (x, y) lies outside the crop's footprint (with a 1-pixel margin for
    /// bilinear sampling), computed from the transform alone.
    func outsideFootprint(_ x: Int, _ y: Int, _ aligned: AlignedFace) -> Bool {
        let p = aligned.transform.apply(Point(Double(x), Double(y)))
        let s = Double(aligned.template.size)
        return p.x < -1 || p.y < -1 || p.x > s || p.y > s
    }

    func testPasteBackIsBitExactOutsideTheFace() throws {
        let image = try sample("astronaut.png")
        let face = try XCTUnwrap(try HaarFaceDetector().detect(image).first)
        for template in [FaceTemplate.ffhq256, .arcface112] {
            let aligned = try FaceAligner.align(image, face: face, template: template)
            var edited = aligned.crop
            for i in edited.rgb.indices { edited.rgb[i] = 1 - edited.rgb[i] }
            for poisson in [false, true] {
                let same = try FaceAligner.pasteBack(aligned.crop, of: aligned, into: image, poisson: poisson)
                let changed = try FaceAligner.pasteBack(edited, of: aligned, into: image, poisson: poisson)
                var outside = 0, inside = 0, movedInside = 0
                var diff: Float = 0
                for y in 0..<image.height {
                    for x in 0..<image.width {
                        if outsideFootprint(x, y, aligned) {
                            outside += 1
                            for c in 0..<3 {
                                XCTAssertEqual(same[x, y, c], image[x, y, c])
                                XCTAssertEqual(changed[x, y, c], image[x, y, c])
                            }
                        } else {
                            inside += 1
                            diff += abs(same[x, y, 1] - image[x, y, 1])
                            if abs(changed[x, y, 1] - image[x, y, 1]) > 0.1 { movedInside += 1 }
                        }
                    }
                }
                XCTAssertGreaterThan(outside, 100_000)
                // Resampling the unmodified crop there and back blurs it only slightly, and the
                // inverted crop visibly changes much of the footprint (Poisson blending keeps
                // the border colours, so less of it).
                XCTAssertLessThan(diff / Float(inside), poisson ? 0.03 : 0.02, "\(template.size) poisson \(poisson)")
                XCTAssertGreaterThan(movedInside, inside / (poisson ? 3 : 2), "\(template.size) poisson \(poisson)")
            }
        }
    }

    /// Without keypoints the fit uses points guessed from the box; the crop still puts the
    /// astronaut's eyes near the template's (the fractions were measured on this photo).
    func testAlignFromBoxAlone() throws {
        let image = try sample("astronaut.png")
        let face = try XCTUnwrap(try HaarFaceDetector(findEyes: false).detect(image).first)
        let aligned = try FaceAligner.align(image, face: face, template: .ffhq256)
        for (name, pupil) in [(KeypointName.leftEye, Point(204, 101)), (KeypointName.rightEye, Point(246, 102))] {
            let p = aligned.transform.apply(pupil), t = FaceTemplate.ffhq256.points[name]!
            XCTAssertEqual(p.x, t.x, accuracy: 12, name)
            XCTAssertEqual(p.y, t.y, accuracy: 12, name)
        }
    }

    /// A crop-space mask limits the paste to its region: outside the warped mask, exact.
    func testPasteBackWithARegionMask() throws {
        let image = try sample("astronaut.png")
        let face = try XCTUnwrap(try HaarFaceDetector().detect(image).first)
        let aligned = try FaceAligner.align(image, face: face, template: .ffhq256)
        var region = Mask(width: 256, height: 256, fill: 0)
        for y in 96..<160 { for x in 96..<160 { region[x, y] = 1 } }
        var edited = aligned.crop
        for i in edited.rgb.indices { edited.rgb[i] = 1 - edited.rgb[i] }
        let out = try FaceAligner.pasteBack(edited, of: aligned, into: image, mask: region)
        var changed = 0
        for y in 0..<image.height {
            for x in 0..<image.width {
                let p = aligned.transform.apply(Point(Double(x), Double(y)))
                let outside = p.x < 95 || p.y < 95 || p.x > 160 || p.y > 160
                if outside {
                    XCTAssertEqual(out[x, y, 0], image[x, y, 0])
                } else if abs(out[x, y, 0] - image[x, y, 0]) > 0.1 {
                    changed += 1
                }
            }
        }
        XCTAssertGreaterThan(changed, 200)
        XCTAssertThrowsError(try FaceAligner.pasteBack(edited, of: aligned, into: image, mask: Mask(width: 8, height: 8, fill: 1)))
    }

    func testPasteBackRejectsAWrongCropSize() throws {
        let image = Image(width: 64, height: 64, red: 0.5, green: 0.5, blue: 0.5)
        let face = Face(box: Box(x: 16, y: 16, width: 32, height: 32), score: 1)
        let aligned = try FaceAligner.align(image, face: face, template: .arcface112)
        XCTAssertThrowsError(try FaceAligner.pasteBack(image, of: aligned, into: image))
    }
}

final class TiledDetectionTests: XCTestCase {
    /// The group photo: one pass over the whole photo finds three of its six faces; with tiles all
    /// six, each once, and no extra face on the single-person photos.
    /// Obama's portrait turned upside down: one pass alone puts the eyes above the mouth as on
    /// an upright face; the detector finds the face upright in the photo turned back, so its
    /// keypoints are the upright photo's turned over. On the upright photo nothing changes.
    func testAnUpsideDownFaceIsFoundTheRightWayUp() throws {
        let d = try BlazeFaceDetector()
        let image = try sample("obama.jpg")
        let up = try d.detect(image)
        XCTAssertEqual(up, try d.firstFound(image), "the turned pass leaves an upright photo's faces as they were")
        let face = try XCTUnwrap(up.first)
        let turnedImage = image.turnedOver()
        let single = try XCTUnwrap(try d.firstFound(turnedImage).first)
        XCTAssertLessThan(try XCTUnwrap(single.keypoints[KeypointName.leftEye]).y, try XCTUnwrap(single.keypoints[KeypointName.mouthCentre]).y,
                          "one pass sees an upright face")
        let found = try d.detect(turnedImage)
        XCTAssertEqual(found.count, up.count)
        let f = try XCTUnwrap(found.first)
        XCTAssertGreaterThan(f.score, single.score + 0.1)
        let w = Double(image.width), h = Double(image.height)
        for (name, p) in face.keypoints {
            let q = try XCTUnwrap(f.keypoints[name], name)
            XCTAssertLessThan(hypot(q.x - (w - p.x), q.y - (h - p.y)), 0.05 * face.box.width, name)
        }
        XCTAssertGreaterThan(try XCTUnwrap(f.keypoints[KeypointName.leftEye]).y, try XCTUnwrap(f.keypoints[KeypointName.mouthCentre]).y,
                             "the eyes lie below the mouth in the upside-down photo")
    }

    /// A turned detection replaces an overlapping upright one only when it scores over 0.1
    /// more, and stands alone only from 0.75.
    func testTurnedDetectionsReplaceOrJoinOnlyWhenClearlyBetter() {
        func face(_ x: Double, _ score: Double, _ tag: Double) -> Face {
            Face(box: Box(x: x, y: 0, width: 10, height: 10), score: score, keypoints: [KeypointName.nose: Point(tag, 0)])
        }
        let upright = [face(0, 0.7, 1), face(50, 0.9, 2)]
        XCTAssertEqual(BlazeFaceDetector.merged(upright: upright, turned: [face(1, 0.75, 3), face(51, 0.6, 4), face(100, 0.7, 5)]), upright)
        let merged = BlazeFaceDetector.merged(upright: upright, turned: [face(1, 0.85, 3), face(100, 0.8, 5)])
        XCTAssertEqual(merged.map { $0.keypoints[KeypointName.nose]!.x }.sorted(), [2, 3, 5])
    }

    func testTilesFindTheSmallFacesOfAGroupPhoto() throws {
        let blaze = try BlazeFaceDetector()
        let tiled = TiledBlazeFaceDetector(blaze)
        let group = try sample("t1.jpg")
        let whole = try blaze.detect(group), all = try tiled.detect(group)
        XCTAssertEqual(whole.count, 3)
        XCTAssertEqual(all.count, 6)
        for (i, a) in all.enumerated() {
            for b in all[(i + 1)...] { XCTAssertLessThan(TiledBlazeFaceDetector.iou(a.box, b.box), 0.3, "a face found twice") }
        }
        // Every face the whole-photo pass found is among them, unchanged.
        for f in whole { XCTAssertTrue(all.contains(f)) }
        for name in ["astronaut.png", "messi5.jpg", "biden.jpg"] {
            XCTAssertEqual(try tiled.detect(try sample(name)).count, 1, name)
        }
    }
}
