import Foundation
import XCTest
@testable import GuiseFace
@testable import GuiseVision
import GuiseFormats
import GuiseImage
import GuiseTensor
import GuiseTestSupport

func assertNear(_ p: Point, _ q: Point, _ tol: Double, _ what: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(p.x, q.x, accuracy: tol, "\(what) x", file: file, line: line)
    XCTAssertEqual(p.y, q.y, accuracy: tol, "\(what) y", file: file, line: line)
}

/// The astronaut's 468-point mesh from LiteRT's face_landmark output on the fixture's square crop.
func astronautMesh() throws -> [Point3] {
    let crop = try fixture("dlib_chips").tensor("face_crop").values.map(Double.init)
    let side = crop[2]
    let roi = RotatedRect(centre: Point(crop[0] + side / 2, crop[1] + side / 2), width: side, height: side, rotation: 0)
    return try FaceMesh.landmarks(try fixture("tflite_face_landmark").tensor("out/conv2d_21").values, roi: roi)
}

final class BlazeFaceTests: XCTestCase {
    func testAnchorsMatchTheSSDCalculator() {
        let short = BlazeFaceModel.shortRange.anchors
        XCTAssertEqual(short.count, 896)
        // 16×16 cells of 2 anchors at stride 8, then 8×8 cells of 6 (three stride-16 layers merged).
        XCTAssertEqual(short[0], Anchor(x: 0.5 / 16, y: 0.5 / 16, width: 1, height: 1))
        XCTAssertEqual(short[1], short[0])
        XCTAssertEqual(short[2], Anchor(x: 1.5 / 16, y: 0.5 / 16, width: 1, height: 1))
        XCTAssertEqual(short[511], Anchor(x: 15.5 / 16, y: 15.5 / 16, width: 1, height: 1))
        XCTAssertEqual(short[512], Anchor(x: 0.5 / 8, y: 0.5 / 8, width: 1, height: 1))
        XCTAssertEqual(short[517], short[512])
        XCTAssertEqual(short[518], Anchor(x: 1.5 / 8, y: 0.5 / 8, width: 1, height: 1))
        XCTAssertEqual(short[895], Anchor(x: 7.5 / 8, y: 7.5 / 8, width: 1, height: 1))

        let full = BlazeFaceModel.fullRange.anchors
        XCTAssertEqual(full.count, 2304)
        XCTAssertEqual(full[0], Anchor(x: 0.5 / 48, y: 0.5 / 48, width: 1, height: 1))
        XCTAssertEqual(full[49], Anchor(x: 1.5 / 48, y: 1.5 / 48, width: 1, height: 1))
        XCTAssertEqual(full[2303], Anchor(x: 47.5 / 48, y: 47.5 / 48, width: 1, height: 1))

        // Without fixed sizes: layer 0's scale is min_scale, its interpolated anchor sqrt(s0·s1)
        // with s1 = 0.1484375 + 0.6015625 / 3.
        var o = BlazeFaceModel.shortRange.anchorOptions
        o.fixedAnchorSize = false
        let sized = SSDAnchors.generate(o)
        XCTAssertEqual(sized[0].width, 0.1484375, accuracy: 1e-12)
        XCTAssertEqual(sized[1].width, 0.227593, accuracy: 1e-6)
        XCTAssertEqual(sized[1].height, sized[1].width, accuracy: 1e-12)
    }

    /// Raw regressors built for a known box around anchor 300 decode back to that box.
    func testDecodingASyntheticDetection() throws {
        let model = BlazeFaceModel.shortRange
        let n = model.anchors.count, k = 300
        let a = model.anchors[k]
        XCTAssertEqual(a, Anchor(x: 6.5 / 16, y: 9.5 / 16, width: 1, height: 1))
        var reg = [Float](repeating: 0, count: n * 16)
        var cls = [Float](repeating: -10, count: n)
        let box = (cx: 0.45, cy: 0.55, w: 0.2, h: 0.3)
        var raw: [Double] = [(box.cx - a.x) * 128, (box.cy - a.y) * 128, box.w * 128, box.h * 128]
        for i in 0..<6 {
            let kx: Double = (0.4 + 0.02 * Double(i) - a.x) * 128
            raw += [kx, (0.5 - a.y) * 128]
        }
        for (j, v) in raw.enumerated() { reg[16 * k + j] = Float(v) }
        cls[k] = 2
        cls[k + 1] = 500  // clipped to 100: a valid score, but its box has a negative width, so dropped
        reg[16 * (k + 1) + 2] = -1
        let dets = try model.decode(regressors: reg, classificators: cls)
        XCTAssertEqual(dets.count, 1)
        let d = try XCTUnwrap(dets.first)
        XCTAssertEqual(d.score, 1 / (1 + exp(-2)), accuracy: 1e-12)
        XCTAssertEqual(d.xmin, 0.35, accuracy: 1e-6)
        XCTAssertEqual(d.ymin, 0.40, accuracy: 1e-6)
        XCTAssertEqual(d.width, 0.2, accuracy: 1e-6)
        XCTAssertEqual(d.height, 0.3, accuracy: 1e-6)
        assertNear(d.keypoints[5], Point(0.5, 0.5), 1e-6)

        // A 200×100 image is padded to a 200² square from y = −50.
        let lb = Letterbox(imageWidth: 200, imageHeight: 100, size: 128)
        let faces = try model.faces(regressors: reg, classificators: cls, letterbox: lb)
        XCTAssertEqual(faces.count, 1)
        let b = faces[0].box
        XCTAssertEqual(b.x, 70, accuracy: 1e-4)
        XCTAssertEqual(b.y, 30, accuracy: 1e-4)
        XCTAssertEqual(b.width, 40, accuracy: 1e-4)
        XCTAssertEqual(b.height, 60, accuracy: 1e-4)
        assertNear(try XCTUnwrap(faces[0].keypoints[KeypointName.leftEye]), Point(80, 50), 1e-4)
        assertNear(try XCTUnwrap(faces[0].keypoints[KeypointName.rightEar]), Point(100, 50), 1e-4)

        XCTAssertThrowsError(try model.decode(regressors: [0], classificators: cls))
    }

    func testWeightedNMSMergesOverlaps() {
        let a = Detection(xmin: 0, ymin: 0, width: 1, height: 1, keypoints: [Point(0, 0)], score: 0.9)
        let b = Detection(xmin: 0.2, ymin: 0, width: 1, height: 1, keypoints: [Point(1, 1)], score: 0.6)  // IoU 0.8/1.2
        let c = Detection(xmin: 5, ymin: 5, width: 1, height: 1, keypoints: [Point(5, 5)], score: 0.7)
        let d = Detection(xmin: 0.7, ymin: 0, width: 1, height: 1, keypoints: [Point(2, 2)], score: 0.5)  // IoU with a: 0.3/1.7
        let out = WeightedNMS.apply([b, c, a, d], threshold: 0.3)
        XCTAssertEqual(out.count, 3)
        XCTAssertEqual(out[0].score, 0.9)
        XCTAssertEqual(out[0].xmin, 0.6 * 0.2 / 1.5, accuracy: 1e-12)
        XCTAssertEqual(out[0].width, 1, accuracy: 1e-12)
        assertNear(out[0].keypoints[0], Point(0.4, 0.4), 1e-12)
        for (o, e) in zip(out[1...], [c, d]) {
            XCTAssertEqual(o.score, e.score)
            XCTAssertEqual(o.xmin, e.xmin, accuracy: 1e-12)
            XCTAssertEqual(o.width, e.width, accuracy: 1e-12)
            assertNear(o.keypoints[0], e.keypoints[0], 1e-12)
        }
        XCTAssertEqual(WeightedNMS.iou(a, b), 0.8 / 1.2, accuracy: 1e-12)
    }

    /// LiteRT's raw outputs for astronaut.png (512², resized to the input) decode to exactly one
    /// face on her (at about x 175–270, y 65–160; pupils near (204, 101) and (246, 102)).
    func testLiteRTOutputsGiveOneFaceOnTheAstronaut() throws {
        for (name, model, reg, cls) in [("tflite_face_detection_short_range", BlazeFaceModel.shortRange, "out/regressors", "out/classificators"),
                                         ("tflite_face_detection_full_range_sparse", BlazeFaceModel.fullRange, "out/Identity", "out/Identity_1")] {
            let f = try fixture(name)
            let lb = Letterbox(imageWidth: 512, imageHeight: 512, size: model.inputSize)
            let faces = try model.faces(regressors: try f.tensor(reg).values, classificators: try f.tensor(cls).values, letterbox: lb)
            XCTAssertEqual(faces.count, 1, name)
            guard let face = faces.first else { continue }
            let b = face.box
            XCTAssertGreaterThanOrEqual(b.x, 155, name)
            XCTAssertGreaterThanOrEqual(b.y, 50, name)
            XCTAssertLessThanOrEqual(b.x + b.width, 285, name)
            XCTAssertLessThanOrEqual(b.y + b.height, 185, name)
            XCTAssertGreaterThan(b.width, 70, name)
            XCTAssertGreaterThan(face.score, model.minScore)
            assertNear(try XCTUnwrap(face.keypoints[KeypointName.leftEye]), Point(204, 101), 8, name)
            assertNear(try XCTUnwrap(face.keypoints[KeypointName.rightEye]), Point(246, 102), 8, name)
        }
    }

    func testLetterboxInputAndInverse() throws {
        // A 200×100 white image with one red pixel at (150, 20).
        var image = Image(width: 200, height: 100, red: 1, green: 1, blue: 1)
        image[150, 20, 1] = 0
        image[150, 20, 2] = 0
        let lb = Letterbox(imageWidth: 200, imageHeight: 100, size: 128)
        let t = try lb.input(image)
        XCTAssertEqual(t.shape, [1, 128, 128, 3])
        let v = t.values
        func px(_ x: Int, _ y: Int, _ c: Int) -> Float { v[(y * 128 + x) * 3 + c] }
        // Padding rows are black, i.e. −1; the image band (y 32…96) is white, +1.
        XCTAssertEqual(px(60, 10, 0), -1)
        XCTAssertEqual(px(60, 120, 2), -1)
        XCTAssertEqual(px(60, 64, 0), 1, accuracy: 1e-6)
        // The red pixel lands at 128/200 · (150, 20 + 50) = (96, 44.8).
        XCTAssertLessThan(px(96, 45, 1), 0.5)
        XCTAssertEqual(px(96, 45, 0), 1, accuracy: 1e-6)
        // Tensor → image is the inverse of image → tensor.
        for p in [Point(0, 0), Point(13.5, 77), Point(128, 128)] {
            let back = lb.imagePoint(Point(p.x / 128, p.y / 128))
            assertNear(lb.transform.apply(back), p, 1e-9)
        }
        XCTAssertThrowsError(try lb.input(Image(width: 10, height: 10, red: 0, green: 0, blue: 0)))
    }
}

final class FaceMeshGeometryTests: XCTestCase {
    let face = Face(box: Box(x: 100, y: 100, width: 80, height: 60), score: 1,
                    keypoints: [KeypointName.leftEye: Point(120, 130), KeypointName.rightEye: Point(160, 150)])

    func testROIFromDetection() throws {
        let roi = try FaceMesh.roi(for: face)
        assertNear(roi.centre, Point(140, 130), 1e-12)
        XCTAssertEqual(roi.width, 120, accuracy: 1e-12)
        XCTAssertEqual(roi.height, 120, accuracy: 1e-12)
        XCTAssertEqual(roi.rotation, atan2(20, 40), accuracy: 1e-12)
        // In the crop the eyes are level, left of right.
        let t = roi.cropTransform(width: 192, height: 192)
        let l = t.apply(Point(120, 130)), r = t.apply(Point(160, 150))
        XCTAssertEqual(l.y, r.y, accuracy: 1e-9)
        XCTAssertLessThan(l.x, r.x)
        XCTAssertEqual(r.x - l.x, (40 * 40 + 20 * 20).squareRoot() * 192 / 120, accuracy: 1e-9)
        // The crop's corners are the rectangle's; crop → image inverts image → crop.
        for p in [Point(0, 0), Point(192, 0), Point(50, 170)] {
            let q = roi.imagePoint(cropX: p.x, cropY: p.y, cropWidth: 192, cropHeight: 192)
            assertNear(t.apply(q), p, 1e-9)
        }
        let corner = roi.imagePoint(cropX: 0, cropY: 0, cropWidth: 192, cropHeight: 192)
        XCTAssertEqual(hypot(corner.x - 140, corner.y - 130), 60 * 2.0.squareRoot(), accuracy: 1e-9)
        XCTAssertThrowsError(try FaceMesh.roi(for: Face(box: face.box, score: 1)))
        XCTAssertEqual(RotatedRect.normalised(3 * Double.pi / 2), -Double.pi / 2, accuracy: 1e-12)
    }

    /// The crop samples the image where `imagePoint` says: on a linear ramp, bilinear sampling is exact.
    func testCropSamplesWhereTheTransformSays() throws {
        let w = 300, h = 260
        var rgb = [Float](repeating: 0, count: 3 * w * h)
        for y in 0..<h { for x in 0..<w {
            rgb[y * w + x] = Float(x) / 400
            rgb[w * h + y * w + x] = Float(y) / 400
        } }
        let image = Image(width: w, height: h, rgb: rgb)
        let roi = try FaceMesh.roi(for: face)
        let t = try FaceMesh.input(image, roi: roi)
        XCTAssertEqual(t.shape, [1, 192, 192, 3])
        let v = t.values
        for (u, vv) in [(0, 0), (96, 96), (191, 5), (40, 150)] {
            // Pixel (u, v) samples the image at the inverse transform of (u, v). The mesh crop is
            // MediaPipe's 8-bit one: the image and the result are each rounded to a level.
            let p = try roi.cropTransform(width: 192, height: 192).inverted().apply(Point(Double(u), Double(vv)))
            XCTAssertEqual(Double(v[(vv * 192 + u) * 3]), p.x / 400, accuracy: 1 / 255 + 1e-4)
            XCTAssertEqual(Double(v[(vv * 192 + u) * 3 + 1]), p.y / 400, accuracy: 1 / 255 + 1e-4)
        }
        // A mirrored crop is the plain crop flipped left–right.
        let plain = try roi.crop(image, width: 64, height: 64).values
        let mirrored = try roi.crop(image, width: 64, height: 64, mirrored: true).values
        for (y, x) in [(0, 0), (10, 63), (40, 17)] {
            for c in 0..<3 { XCTAssertEqual(mirrored[(y * 64 + x) * 3 + c], plain[(y * 64 + 63 - x) * 3 + c], accuracy: 1e-5) }
        }
    }

    func testLandmarksMapToTheImage() throws {
        let roi = try FaceMesh.roi(for: face)
        var raw = [Float](repeating: 96, count: 1404)
        raw[3] = 192; raw[4] = 96; raw[5] = 19.2  // point 1: the crop's right edge, z = 0.1 crop widths
        let pts = try FaceMesh.landmarks(raw, roi: roi)
        XCTAssertEqual(pts.count, 468)
        assertNear(pts[0].xy, roi.centre, 1e-4)
        let c = cos(roi.rotation), s = sin(roi.rotation)
        assertNear(pts[1].xy, Point(140 + 60 * c, 130 + 60 * s), 1e-4)
        XCTAssertEqual(pts[1].z, 12, accuracy: 1e-4)
        XCTAssertEqual(FaceMesh.presence(0), 0.5)
        XCTAssertGreaterThan(FaceMesh.presence(3), 0.95)
        XCTAssertThrowsError(try FaceMesh.landmarks([1, 2], roi: roi))
    }

    /// LiteRT's mesh on the fixture crop lands on the face: its eye corners and nose base are
    /// within 3 px of dlib's 5-point shape (a different model, so not exact).
    func testLiteRTMeshFallsOnTheAstronautsFace() throws {
        let mesh = try astronautMesh()
        let dlib = try fixture("dlib_chips").tensor("shape5").values
        for (i, p) in try MeshPoints.dlib5(mesh).enumerated() {
            assertNear(p, Point(Double(dlib[2 * i]), Double(dlib[2 * i + 1])), 3, "dlib part \(i)")
        }
        let presence = try fixture("tflite_face_landmark").tensor("out/conv2d_31").values[0]
        XCTAssertGreaterThan(FaceMesh.presence(presence), FaceMesh.presenceThreshold)
    }

    func testIrisROIsAndDecoding() throws {
        var mesh = [Point3](repeating: Point3(0, 0), count: 468)
        mesh[33] = Point3(100, 100); mesh[133] = Point3(140, 100)
        mesh[362] = Point3(170, 100); mesh[263] = Point3(210, 110)
        let (l, r) = try Iris.rois(mesh: mesh)
        assertNear(l.centre, Point(120, 100), 1e-12)
        XCTAssertEqual(l.width, 92, accuracy: 1e-9)
        XCTAssertEqual(l.rotation, 0, accuracy: 1e-12)
        XCTAssertEqual(r.width, 92, accuracy: 1e-9)
        XCTAssertEqual(r.rotation, atan2(10, 40), accuracy: 1e-12)

        // A point at crop x = 16 decodes to the left quarter, or, mirrored, the right quarter.
        var contour = [Float](repeating: 32, count: 213), iris = [Float](repeating: 32, count: 15)
        iris[0] = 16
        let plain = try Iris.landmarks(contour: contour, iris: iris, roi: l, mirrored: false)
        let flipped = try Iris.landmarks(contour: contour, iris: iris, roi: l, mirrored: true)
        XCTAssertEqual(plain.contour.count, 71)
        XCTAssertEqual(plain.iris.count, 5)
        assertNear(plain.irisCentre, Point(120 - 23, 100), 1e-4)
        assertNear(flipped.irisCentre, Point(120 + 23, 100), 1e-4)
        contour.removeLast()
        XCTAssertThrowsError(try Iris.landmarks(contour: contour, iris: iris, roi: l, mirrored: false))

        // LiteRT's iris outputs on the fixture's (unmirrored) crop of the image-right eye put
        // the iris centre on her pupil, about (246, 102).
        let f = try fixture("tflite_iris_landmark")
        let crop = try fixture("dlib_chips").tensor("eye_crop").values.map(Double.init)
        let roi = RotatedRect(centre: Point(crop[0] + crop[2] / 2, crop[1] + crop[2] / 2), width: crop[2], height: crop[2], rotation: 0)
        let eye = try Iris.landmarks(contour: try f.tensor("out/output_eyes_contours_and_brows").values,
                                     iris: try f.tensor("out/output_iris").values, roi: roi, mirrored: false)
        assertNear(eye.irisCentre, Point(246, 102), 3)
    }
}

final class GazeTests: XCTestCase {
    /// Corners (0,0)–(10,0), lids (5,−2)/(5,2), iris (7,1): 0.2 eye widths right, 0.25 heights down.
    let eye: [Point] = [Point(0, 0), Point(10, 0), Point(5, -2), Point(5, 2), Point(7, 1)]
    let idx = [EyeIndices(cornerLeft: 0, cornerRight: 1, upperLid: 2, lowerLid: 3, irisCentre: 4)]

    func testFeaturesAndInvariance() throws {
        let f = try Gaze.features(eye, eyes: idx)[0]
        XCTAssertEqual(f.horizontal, 0.2, accuracy: 1e-12)
        XCTAssertEqual(f.vertical, 0.25, accuracy: 1e-12)
        // Turned, scaled and moved, the features stay.
        let t = AffineTransform([2 * cos(0.7), -2 * sin(0.7), 30, 2 * sin(0.7), 2 * cos(0.7), -4])
        let g = try Gaze.features(eye.map(t.apply), eyes: idx)[0]
        XCTAssertEqual(g.horizontal, 0.2, accuracy: 1e-12)
        XCTAssertEqual(g.vertical, 0.25, accuracy: 1e-12)
        XCTAssertThrowsError(try Gaze.features(Array(eye.prefix(3)), eyes: idx))
    }

    func testTensorFeaturesMatchAndDifferentiate() throws {
        let pts = eye.map(AffineTransform([0.9, -0.3, 5, 0.3, 0.9, 2]).apply)
        let values: [Float] = pts.flatMap { p -> [Float] in [Float(p.x), Float(p.y), 0.5] }
        let x = Tensor(shape: [5, 3], values: values)
        let plain = try Gaze.features(pts, eyes: idx)[0]
        let out = try Gaze.features(x, eyes: idx + idx)
        XCTAssertEqual(out.shape, [2, 2])
        XCTAssertEqual(Double(out.values[0]), plain.horizontal, accuracy: 1e-5)
        XCTAssertEqual(Double(out.values[1]), plain.vertical, accuracy: 1e-5)

        // Gradients of L = 3·h − 2·v against central differences in double precision.
        let leaf = x.copy()
        leaf.requiresGrad = true
        let y = try Gaze.features(leaf, eyes: idx)
        (y * Tensor(shape: [1, 2], values: [3, -2])).summed(toShape: []).backward()
        let grad = try XCTUnwrap(leaf.grad).values
        for i in 0..<15 {
            var p: [Double] = pts.flatMap { q -> [Double] in [q.x, q.y, 0.5] }
            var m = p
            let eps = 1e-6
            p[i] += eps; m[i] -= eps
            func loss(_ v: [Double]) throws -> Double {
                let q = (0..<5).map { Point(v[3 * $0], v[3 * $0 + 1]) }
                let f = try Gaze.features(q, eyes: idx)[0]
                return 3 * f.horizontal - 2 * f.vertical
            }
            let fd = (try loss(p) - loss(m)) / (2 * eps)
            XCTAssertEqual(Double(grad[i]), fd, accuracy: 1e-3 * max(1, abs(fd)), "d/dx[\(i)]")
        }
        XCTAssertThrowsError(try Gaze.features(Tensor(shape: [3], values: [1, 2, 3]), eyes: idx))
    }
}

final class FaceMaskTests: XCTestCase {
    func area(_ m: Mask) -> Double { m.values.reduce(0) { $0 + Double($1) } }

    func testRegionsNestAndCoverTheirPolygons() throws {
        let mesh = try astronautMesh()
        var masks: [FaceRegion: Mask] = [:]
        for r in FaceRegion.allCases { masks[r] = try FaceMasks.mask(r, mesh: mesh, width: 512, height: 512) }
        func overlap(_ a: FaceRegion, _ b: FaceRegion) -> Double {
            zip(masks[a]!.values, masks[b]!.values).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        for r in FaceRegion.allCases { XCTAssertGreaterThan(area(masks[r]!), 20, "\(r) is not empty") }
        for r: FaceRegion in [.eyes, .brows, .lips, .mouth] { XCTAssertEqual(overlap(.skin, r), 0, "skin ∩ \(r)") }
        for r: FaceRegion in [.skin, .eyes, .nose, .lips, .mouth] {
            XCTAssertGreaterThan(overlap(.face, r), 0.97 * area(masks[r]!), "\(r) ⊂ face")
        }
        XCTAssertEqual(overlap(.lips, .mouth), area(masks[.mouth]!), "mouth ⊂ lips")
        XCTAssertEqual(overlap(.eyes, .brows), 0)
        // The face mask's area is the oval polygon's (shoelace), up to its boundary pixels.
        let oval = MeshRegions.faceOval.map { mesh[$0].xy }
        var shoelace = 0.0
        for i in oval.indices {
            let p = oval[i], q = oval[(i + 1) % oval.count]
            shoelace += p.x * q.y - q.x * p.y
        }
        XCTAssertEqual(area(masks[.face]!), abs(shoelace) / 2, accuracy: 0.02 * abs(shoelace) / 2)
        // The face covers the nose tip and not the image corner.
        XCTAssertEqual(masks[.face]![Int(mesh[1].x), Int(mesh[1].y)], 1)
        XCTAssertEqual(masks[.face]![5, 5], 0)
        // Skin is the face less the other parts (the nose is skin).
        XCTAssertEqual(area(masks[.skin]!), area(masks[.face]!) - overlap(.face, .eyes) - overlap(.face, .brows) - overlap(.face, .lips), accuracy: 1)
    }

    func testResolutionAndFeather() throws {
        let mesh = try astronautMesh()
        // A mask drawn at 2× and area-averaged back agrees with the 1× mask away from edges;
        // they differ only within 2 pixels of the 2× mask's fractional (edge) pixels: fillPoly
        // also fills every pixel the outline touches, growing a region by up to half a pixel
        // at each resolution.
        for r in FaceRegion.allCases {
            let one = try FaceMasks.mask(r, mesh: mesh, width: 512, height: 512)
            let two = try FaceMasks.mask(r, mesh: mesh, width: 1024, height: 1024, scale: 2)
            let down = try two.resized(width: 512, height: 512, interpolation: .area)
            var farMismatch = 0, inter = 0.0, union = 0.0
            for y in 2..<510 {
                for x in 2..<510 {
                    let a = one[x, y], b = down[x, y]
                    inter += Double(min(a, b)); union += Double(max(a, b))
                    guard (b > 0.5 ? 1 : 0) != a else { continue }
                    var nearEdge = false
                    for dy in -2...2 { for dx in -2...2 where down[x + dx, y + dy] > 0 && down[x + dx, y + dy] < 1 { nearEdge = true } }
                    if !nearEdge { farMismatch += 1 }
                }
            }
            XCTAssertEqual(farMismatch, 0, "\(r)")
            XCTAssertGreaterThan(inter / union, r == .face || r == .skin ? 0.96 : 0.8, "\(r)")
        }

        let soft = try FaceMasks.mask(.face, mesh: mesh, width: 512, height: 512, feather: 8)
        XCTAssertEqual(soft[Int(mesh[1].x), Int(mesh[1].y)], 1, accuracy: 1e-4)
        XCTAssertEqual(soft[5, 5], 0, accuracy: 1e-6)
        XCTAssertGreaterThan(soft.values.filter { $0 > 0.05 && $0 < 0.95 }.count, 500)
        XCTAssertEqual(area(soft), area(try FaceMasks.mask(.face, mesh: mesh, width: 512, height: 512)), accuracy: 0.01 * area(soft))

        XCTAssertThrowsError(try FaceMasks.mask(.face, mesh: Array(mesh.prefix(10)), width: 8, height: 8))
        XCTAssertThrowsError(try FaceMasks.mask(.face, mesh: mesh, width: 0, height: 8))
    }

    func testPointSets() throws {
        XCTAssertEqual(MeshPoints.ibug68.count, 68)
        XCTAssertEqual(Set(MeshPoints.ibug68).count, 68)
        XCTAssertTrue(MeshPoints.ibug68.allSatisfy { $0 < 468 })
        let mesh = try astronautMesh()
        let p68 = try MeshPoints.ibug68(mesh)
        let dlib = try fixture("dlib_chips").tensor("shape5").values
        func part(_ i: Int) -> Point { Point(Double(dlib[2 * i]), Double(dlib[2 * i + 1])) }
        // 68-point eye corners 36/39 and 42/45 against dlib's 5-point corners (parts 2/3, 1/0).
        assertNear(p68[36], part(2), 3); assertNear(p68[39], part(3), 3)
        assertNear(p68[42], part(1), 3); assertNear(p68[45], part(0), 3)
        assertNear(p68[33], part(4), 3)
        // The chin (8) is the jaw's lowest point; jaw ends lie left and right of the face.
        XCTAssertEqual(p68[0...16].map(\.y).max(), p68[8].y)
        XCTAssertLessThan(p68[0].x, p68[36].x)
        XCTAssertGreaterThan(p68[16].x, p68[45].x)
        // Lip corners, outer then inner, lie left and right of the mouth's centre.
        XCTAssertLessThan(p68[48].x, p68[51].x); XCTAssertGreaterThan(p68[54].x, p68[51].x)

        let five = try MeshPoints.fivePoints(mesh)
        assertNear(try XCTUnwrap(five[KeypointName.leftEye]), Point(204, 101), 5)
        assertNear(try XCTUnwrap(five[KeypointName.rightEye]), Point(246, 102), 5)
        // Fed to alignment, the eyes land near the template's.
        let aligned = try FaceAligner.align(try sample("astronaut.png"), face: Face(box: Box(x: 0, y: 0, width: 1, height: 1), score: 1, keypoints: five),
                                            template: .arcface112)
        assertNear(aligned.transform.apply(five[KeypointName.leftEye]!), FaceTemplate.arcface112.points[KeypointName.leftEye]!, 4)
    }
}

final class DlibChipTests: XCTestCase {
    func testChipDetailsMatchDlib() throws {
        let f = try fixture("dlib_chips")
        let shapes = try f.tensor("shapes").values.map(Double.init)
        let details = try f.tensor("details").values.map(Double.init)
        let k = details.count / 7
        XCTAssertEqual(k, 5)
        for i in 0..<k {
            let pts = (0..<5).map { Point(shapes[10 * i + 2 * $0], shapes[10 * i + 2 * $0 + 1]) }
            let d = try DlibChip.details(points: pts, size: 150, padding: 0.25)
            let e = Array(details[(7 * i)..<(7 * i + 7)])
            XCTAssertEqual(d.centre.x - d.width / 2, e[0], accuracy: 1e-3, "shape \(i) left")
            XCTAssertEqual(d.centre.y - d.height / 2, e[1], accuracy: 1e-3, "shape \(i) top")
            XCTAssertEqual(d.centre.x + d.width / 2, e[2], accuracy: 1e-3, "shape \(i) right")
            XCTAssertEqual(d.centre.y + d.height / 2, e[3], accuracy: 1e-3, "shape \(i) bottom")
            XCTAssertEqual(d.angle, e[4], accuracy: 1e-6, "shape \(i) angle")
        }
        XCTAssertThrowsError(try DlibChip.details(points: [Point(0, 0)]))
        XCTAssertThrowsError(try DlibChip.details(points: [Point](repeating: Point(3, 3), count: 5)))
    }

    /// Our chips equal dlib.extract_image_chip's: four plain bilinear ones (turned, scaled) and
    /// one 2.6× smaller than its rectangle, which dlib samples from a pyramid_down<2> level, and
    /// which reaches past the image's top edge.
    func testChipsMatchDlib() throws {
        let f = try fixture("dlib_chips")
        let image = try sample("astronaut.png")
        let shapes = try f.tensor("shapes").values.map(Double.init)
        let chips = try f.tensor("chips_u8").values
        for i in 0..<5 {
            let pts = (0..<5).map { Point(shapes[10 * i + 2 * $0], shapes[10 * i + 2 * $0 + 1]) }
            let chip = try DlibChip.details(points: pts).extract(from: image)
            XCTAssertEqual(chip.width, 150)
            var worst: Float = 0, exact = 0
            for y in 0..<150 { for x in 0..<150 { for c in 0..<3 {
                let ours = (chip[x, y, c] * 255).rounded()
                let theirs = chips[((i * 150 + y) * 150 + x) * 3 + c]
                worst = max(worst, abs(ours - theirs))
                if ours == theirs { exact += 1 }
            } } }
            XCTAssertEqual(worst, 0, "chip \(i)")
            XCTAssertEqual(exact, 67500, "chip \(i)")
            if i == 0 {
                // Planar 0…255 values, as the network takes them.
                let t = try DlibChip.tensor([chip, chip])
                XCTAssertEqual(t.shape, [2, 3, 150, 150])
                let index: Int = 4 * 22500 + 7 * 150 + 9  // chip 1, green, row 7, column 9
                XCTAssertEqual(t.values[index], chips[(7 * 150 + 9) * 3 + 1])
            }
        }
        XCTAssertThrowsError(try DlibChip.tensor([]))
    }

    /// A plain chip reads only the pixels round it, wherever the face lies: cut the photo
    /// through the face and the chip is the same where its samples stay inside the cut photo,
    /// and 0 (dlib's border) where they leave it.
    func testChipsReachingPastTheEdgeReadTheRightPixels() throws {
        let f = try fixture("dlib_chips")
        let image = try sample("astronaut.png")
        let shapes = try f.tensor("shapes").values.map(Double.init)
        let pts = (0..<5).map { Point(shapes[2 * $0], shapes[2 * $0 + 1]) }
        let whole = try DlibChip.details(points: pts).extract(from: image)
        for (dx, dy) in [(Int(pts[4].x), 0), (0, Int(pts[4].y)), (Int(pts[0].x) - 10, Int(pts[0].y) - 10)] {
            let cut = try image.cropped(x: dx, y: dy, width: image.width - dx, height: image.height - dy)
            let chip = try DlibChip.details(points: pts.map { Point($0.x - Double(dx), $0.y - Double(dy)) }).extract(from: cut)
            var zeros = 0, same = 0
            for i in 0..<(3 * 150 * 150) {
                if chip.rgb[i] == 0 { zeros += 1 } else if chip.rgb[i] == whole.rgb[i] { same += 1 }
            }
            XCTAssertGreaterThan(zeros, 3 * 150 * 20, "cut at \(dx), \(dy): the chip should reach past the edge")
            XCTAssertEqual(zeros + same, 3 * 150 * 150, "cut at \(dx), \(dy)")
        }
    }

    func testChipTransformsRoundTrip() throws {
        let pts = [Point(255, 104), Point(238, 105), Point(195, 101), Point(212, 103), Point(224, 135)]
        let d = try DlibChip.details(points: pts)
        let toChip = try d.imageToChip()
        // The template points land where dlib puts them: (padding + p) / (1 + 2 padding) · 150, stretched by 150/149.
        for (p, q) in zip(pts, DlibChip.template5) {
            let c = toChip.apply(p), e = Point((0.25 + q.x) / 1.5 * 149, (0.25 + q.y) / 1.5 * 149)
            assertNear(c, e, 3)
        }
        for p in [Point(0, 0), Point(149, 149), Point(20, 100)] { assertNear(toChip.apply(d.chipToImage.apply(p)), p, 1e-9) }
    }
}

final class TensorCropTests: XCTestCase {
    /// A smooth test image (OpenCV's 1/32-pixel weight rounding stays small on it).
    func smoothImage(_ w: Int, _ h: Int) -> Image {
        var rgb = [Float](repeating: 0, count: 3 * w * h)
        for c in 0..<3 { for y in 0..<h { for x in 0..<w {
            rgb[c * w * h + y * w + x] = 0.5 + 0.4 * Float(sin(Double(x) * 0.21 + Double(c)) * cos(Double(y) * 0.17))
        } } }
        return Image(width: w, height: h, rgb: rgb)
    }

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

    func testCropsMatchOpenCV() throws {
        let image = smoothImage(70, 55)
        let t = ImageTensor.tensor(image)
        let roi = RotatedRect(centre: Point(30, 25), width: 50, height: 50, rotation: 0.4)
        for mirrored in [false, true] {
            let ours = try TensorCrops.crop(t, roi: roi, width: 32, height: 32, mirrored: mirrored)
            let cv = try roi.crop(image, width: 32, height: 32, mirrored: mirrored)
            XCTAssertEqual(ours.shape, [1, 32, 32, 3])
            XCTAssertLessThan(maxDiff(ours.values, cv.values), 3e-3, "mirrored \(mirrored)")
        }
        let lb = Letterbox(imageWidth: 70, imageHeight: 55, size: 40)
        let ours = try TensorCrops.letterbox(t, lb)
        // OpenCV's float warp of the same square (`Letterbox.input` warps in 8 bits, as MediaPipe).
        let cv = NHWC.tensor(from: try image.warpedAffine(lb.transform, width: 40, height: 40, interpolation: .linear, border: .constant(0)),
                             range: -1...1)
        XCTAssertLessThan(maxDiff(ours.values, cv.values), 6e-3)
        // The 8-bit square: the image and the result each rounded to a level (2/255 in −1…1).
        XCTAssertLessThan(maxDiff(try lb.input(image).values, cv.values), 2 / 255 + 1e-3)
        XCTAssertEqual(ours.values[0], -1, "padding is black")
        XCTAssertThrowsError(try TensorCrops.letterbox(t, Letterbox(imageWidth: 10, imageHeight: 10, size: 8)))
        XCTAssertThrowsError(try TensorCrops.crop(Tensor(shape: [3, 4], repeating: 0), roi: roi, width: 8, height: 8))
    }

    /// The eye crop on a tensor samples as MediaPipe's 8-bit iris crop (`Iris.input`): enlarged
    /// (INTER_LINEAR), shrunk (INTER_AREA), letterboxed (a non-square rectangle), mirrored.
    func testEyeCropMatchesTheIrisGraphsCrop() throws {
        var image = smoothImage(160, 140)
        // On 8-bit levels, as photos are, so only the result's rounding differs.
        image.rgb = image.rgb.map { ($0 * 255).rounded() / 255 }
        let t = ImageTensor.tensor(image)
        let rois = [RotatedRect(centre: Point(60.3, 50.6), width: 40.2, height: 40.2, rotation: 0.4),
                    RotatedRect(centre: Point(80, 70), width: 101, height: 101, rotation: -1.1),
                    RotatedRect(centre: Point(70.6, 64.4), width: 40, height: 30, rotation: 0.2),
                    RotatedRect(centre: Point(10, 130), width: 35, height: 35, rotation: 2.5)]
        for roi in rois {
            for mirrored in [false, true] {
                let ours = try TensorCrops.eyeCrop(t, roi: roi, mirrored: mirrored)
                let cv = try Iris.input(image, roi: roi, mirrored: mirrored)
                XCTAssertEqual(ours.shape, [1, 64, 64, 3])
                // OpenCV resizes 8-bit values with 11-bit fixed-point weights, then rounds.
                XCTAssertLessThan(maxDiff(ours.values, cv.values), 1 / 255 + 1e-4, "\(roi) mirrored \(mirrored)")
            }
        }
        let fit = Iris.Crop(roi: rois[2], imageWidth: 160, imageHeight: 140).fitted
        XCTAssertEqual([fit.width, fit.height, fit.left, fit.top], [64, 48, 0, 8])
        XCTAssertEqual(Iris.Crop(roi: rois[0], imageWidth: 160, imageHeight: 140),
                       Iris.Crop(roi: RotatedRect(centre: Point(60, 51), width: 40, height: 40, rotation: 0.4), imageWidth: 160, imageHeight: 140))
    }

    /// Gradients of a crop reach the image: bilinear sampling is linear, so central
    /// differences are exact up to rounding.
    func testCropGradientReachesTheImage() throws {
        let base = ImageTensor.tensor(smoothImage(12, 10))
        let roi = RotatedRect(centre: Point(6, 5), width: 8, height: 8, rotation: -0.3)
        let weights = Tensor(shape: [1, 6, 6, 3], values: (0..<108).map { Float(($0 * 37) % 11) / 11 - 0.5 })
        let leaf = base.copy()
        leaf.requiresGrad = true
        (try TensorCrops.crop(leaf, roi: roi, width: 6, height: 6) * weights).summed(toShape: []).backward()
        let grad = try XCTUnwrap(leaf.grad).values
        func loss(_ x: Tensor) throws -> Double {
            let v = try TensorCrops.crop(x, roi: roi, width: 6, height: 6).values
            return zip(v, weights.values).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        var checked = 0
        for i in stride(from: 0, to: 360, by: 7) {
            var p = base.values, m = base.values
            p[i] += 0.01; m[i] -= 0.01
            let fd = (try loss(Tensor(shape: base.shape, values: p)) - loss(Tensor(shape: base.shape, values: m))) / 0.02
            XCTAssertEqual(Double(grad[i]), fd, accuracy: 1e-3, "pixel value \(i)")
            if fd != 0 { checked += 1 }
        }
        XCTAssertGreaterThan(checked, 5)
    }

    /// The eye crop is linear in the image too (a pixel pick, then a resize): central
    /// differences match its gradient, and each picked pixel gets one.
    func testEyeCropGradientReachesTheImage() throws {
        let base = ImageTensor.tensor(smoothImage(12, 10))
        let roi = RotatedRect(centre: Point(6, 5), width: 7, height: 7, rotation: 0.5)
        let weights = Tensor(shape: [1, 64, 64, 3], values: (0..<(64 * 64 * 3)).map { Float(($0 * 37) % 11) / 11 - 0.5 })
        let leaf = base.copy()
        leaf.requiresGrad = true
        (try TensorCrops.eyeCrop(leaf, roi: roi, mirrored: true) * weights).summed(toShape: []).backward()
        let grad = try XCTUnwrap(leaf.grad).values
        func loss(_ x: Tensor) throws -> Double {
            let v = try TensorCrops.eyeCrop(x, roi: roi, mirrored: true).values
            return zip(v, weights.values).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        var checked = 0
        for i in stride(from: 0, to: 360, by: 7) {
            var p = base.values, m = base.values
            p[i] += 0.01; m[i] -= 0.01
            let fd = (try loss(Tensor(shape: base.shape, values: p)) - loss(Tensor(shape: base.shape, values: m))) / 0.02
            XCTAssertEqual(Double(grad[i]), fd, accuracy: 1e-2 * max(1, abs(fd)), "pixel value \(i)")
            if fd != 0 { checked += 1 }
        }
        XCTAssertGreaterThan(checked, 5)
    }

    func testTensorLandmarksMatchAndCarryGradients() throws {
        let roi = RotatedRect(centre: Point(140, 130), width: 120, height: 120, rotation: 0.46)
        let raw = (0..<1404).map { Float(($0 * 53) % 192) }
        let plain = try FaceMesh.landmarks(raw, roi: roi)
        let mesh = try TensorCrops.landmarks(Tensor(shape: [1, 1, 1, 1404], values: raw), roi: roi, cropSize: 192)
        XCTAssertEqual(mesh.shape, [468, 3])
        for i in [0, 33, 467] {
            XCTAssertEqual(Double(mesh.values[3 * i]), plain[i].x, accuracy: 1e-3)
            XCTAssertEqual(Double(mesh.values[3 * i + 1]), plain[i].y, accuracy: 1e-3)
            XCTAssertEqual(Double(mesh.values[3 * i + 2]), plain[i].z, accuracy: 1e-3)
        }
        let eye = RotatedRect(centre: Point(120, 100), width: 40, height: 40, rotation: 0.2)
        let c = (0..<213).map { Float(($0 * 7) % 64) }, ir = (0..<15).map { Float(($0 * 11) % 64) }
        for mirrored in [false, true] {
            let p = try Iris.landmarks(contour: c, iris: ir, roi: eye, mirrored: mirrored)
            let t = try TensorCrops.landmarks(Tensor(shape: [1, 15], values: ir), roi: eye, cropSize: 64, mirrored: mirrored)
            XCTAssertEqual(Double(t.values[3]), p.iris[1].x, accuracy: 1e-3)
            XCTAssertEqual(Double(t.values[4]), p.iris[1].y, accuracy: 1e-3)
        }

        // Raw mesh and iris outputs → image landmarks → gaze features, differentiated end to end.
        let rawMesh = Tensor(shape: [1, 1404], values: raw)
        let rawIris = Tensor(shape: [1, 15], values: ir)
        func gaze(_ m: Tensor, _ i: Tensor) throws -> Tensor {
            let points = Tensor.concat([try TensorCrops.landmarks(m, roi: roi, cropSize: 192),
                                        try TensorCrops.landmarks(i, roi: eye, cropSize: 64),
                                        try TensorCrops.landmarks(i, roi: eye, cropSize: 64, mirrored: true)], dim: 0)
            return try Gaze.features(points)
        }
        let leaf = rawIris.copy()
        leaf.requiresGrad = true
        try gaze(rawMesh, leaf).summed(toShape: []).backward()
        let grad = try XCTUnwrap(leaf.grad).values
        for k in 0..<3 {
            var p = ir, m = ir
            p[k] += 0.05; m[k] -= 0.05
            let fd = (Double(try gaze(rawMesh, Tensor(shape: [1, 15], values: p)).summed(toShape: []).item())
                      - Double(try gaze(rawMesh, Tensor(shape: [1, 15], values: m)).summed(toShape: []).item())) / 0.1
            XCTAssertEqual(Double(grad[k]), fd, accuracy: 2e-2 * max(1, abs(fd)), "iris raw \(k)")
            if k < 2 { XCTAssertNotEqual(grad[k], 0, "the iris centre moves the features") }
        }
    }
}
