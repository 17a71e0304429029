import XCTest
import GuiseFace
import GuiseFiles
import GuiseImage
import GuisePrior
@testable import GuisePipelines
import GuiseTensor
import GuiseTestSupport
import GuiseVision

final class DelaunayTests: XCTestCase {
    /// Pseudo-random points (xorshift), so the test does not depend on a generator's version.
    func points(_ n: Int, seed: UInt64) -> [Point] {
        var s = seed | 1
        func u() -> Double { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return Double(s >> 11) / Double(1 << 53) }
        return (0..<n).map { _ in Point(u() * 300, u() * 200) }
    }

    func testEmptyCircumcirclesAndEulerCount() {
        let p = points(200, seed: 7)
        let tris = Delaunay.triangulate(p)
        // Every triangle counter-clockwise in the orientation convention, none degenerate.
        for (a, b, c) in tris { XCTAssertGreaterThan(Delaunay.orientation(p[a], p[b], p[c]), 0) }
        // No point inside any triangle's circumcircle (the Delaunay property).
        for (a, b, c) in tris {
            let ax = p[a].x, ay = p[a].y, bx = p[b].x, by = p[b].y, cx = p[c].x, cy = p[c].y
            let d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
            let ux = ((ax * ax + ay * ay) * (by - cy) + (bx * bx + by * by) * (cy - ay) + (cx * cx + cy * cy) * (ay - by)) / d
            let uy = ((ax * ax + ay * ay) * (cx - bx) + (bx * bx + by * by) * (ax - cx) + (cx * cx + cy * cy) * (bx - ax)) / d
            let r2 = (ax - ux) * (ax - ux) + (ay - uy) * (ay - uy)
            for (i, q) in p.enumerated() where i != a && i != b && i != c {
                XCTAssertGreaterThanOrEqual((q.x - ux) * (q.x - ux) + (q.y - uy) * (q.y - uy), r2 * (1 - 1e-9))
            }
        }
        // A triangulation of n points with h on the convex hull has 2n − 2 − h triangles.
        var edges: [Int: Int] = [:]
        for (a, b, c) in tris { for (u, v) in [(a, b), (b, c), (c, a)] { edges[min(u, v) * 1000 + max(u, v), default: 0] += 1 } }
        let hull = edges.values.filter { $0 == 1 }.count
        XCTAssertEqual(tris.count, 2 * p.count - 2 - hull)
    }

    /// A value per point, interpolated across the triangles: at a vertex its own value, inside
    /// the barycentric mix; with depths, the nearer of two overlapping triangles; 0 outside.
    func testRenderFieldInterpolatesAndDrawsTheNearerLayer() {
        let pts = [Point(2, 2), Point(30, 2), Point(2, 30), Point(30, 30)]
        let warp = MeshWarp(triangles: [(0, 1, 2), (1, 2, 3)])
        let field = warp.renderField([0, 3, 6, 9], to: pts, width: 40, height: 40)
        XCTAssertEqual(field[2 * 40 + 30], 3, accuracy: 1e-5)
        XCTAssertEqual(field[30 * 40 + 2], 6, accuracy: 1e-5)
        XCTAssertEqual(field[7 * 40 + 7], 3 * 5 / 28 + 6 * 5 / 28, accuracy: 1e-5)
        XCTAssertEqual(field[35 * 40 + 35], 0)
        // Two copies of one triangle: the one with the smaller depths is drawn.
        let layered = MeshWarp(triangles: [(0, 1, 2), (3, 4, 5)])
        let both = pts.prefix(3) + pts.prefix(3)
        let nearer = layered.renderField([1, 1, 1, 2, 2, 2], to: Array(both), depth: [1, 1, 1, 0, 0, 0], width: 40, height: 40)
        XCTAssertEqual(nearer[5 * 40 + 5], 2)
        let farther = layered.renderField([1, 1, 1, 2, 2, 2], to: Array(both), depth: [0, 0, 0, 1, 1, 1], width: 40, height: 40)
        XCTAssertEqual(farther[5 * 40 + 5], 1)
    }

    func testTooFewPointsGiveNoTriangles() {
        XCTAssertTrue(Delaunay.triangulate([Point(0, 0), Point(1, 1)]).isEmpty)
    }
}

final class ThinPlateSplineTests: XCTestCase {
    func testInterpolatesControlsAndReproducesAffineMaps() throws {
        let c = [Point(0, 0), Point(100, 0), Point(0, 80), Point(100, 80), Point(40, 30), Point(70, 60)]
        let bent = c.enumerated().map { i, p in Point(p.x + Double(i % 3) * 4 - 3, p.y + Double(i % 2) * 5) }
        let tps = try ThinPlateSpline(from: c, to: bent)
        for (p, q) in zip(c, bent) {
            let r = tps.apply(p)
            XCTAssertEqual(r.x, q.x, accuracy: 1e-6)
            XCTAssertEqual(r.y, q.y, accuracy: 1e-6)
        }
        // An affine map is its own thin-plate spline: every point, not just the controls, follows it.
        let affine = AffineTransform([1.1, 0.2, 5, -0.1, 0.9, -3])
        let a = try ThinPlateSpline(from: c, to: c.map(affine.apply))
        for p in [Point(13, 57), Point(88, 4), Point(-20, 120)] {
            let r = a.apply(p), e = affine.apply(p)
            XCTAssertEqual(r.x, e.x, accuracy: 1e-6)
            XCTAssertEqual(r.y, e.y, accuracy: 1e-6)
        }
    }

    func testDegenerateControlsAreAnError() {
        let line = [Point(0, 0), Point(1, 1), Point(2, 2), Point(3, 3)]
        XCTAssertThrowsError(try ThinPlateSpline(from: line, to: line))
        XCTAssertThrowsError(try ThinPlateSpline(from: [Point(0, 0)], to: [Point(0, 0)]))
    }
}

final class FaceSwapTests: XCTestCase {
    static var cache: [String: Image] = [:]
    func photo(_ name: String) throws -> Image {
        if let im = Self.cache[name] { return im }
        let im = try sample(name)
        Self.cache[name] = im
        return im
    }

    func fast() -> FaceSwapOptions {
        var o = FaceSwapOptions()
        o.diffusion = false
        return o
    }

    /// The warp itself: a source image whose red and green planes encode each pixel's own x and y
    /// is rendered onto another face's mesh; at every destination mesh point the decoded source
    /// position must be that point's source landmark.
    func testWarpPutsSourceLandmarksOnTargetLandmarks() throws {
        let analyzer = try FaceAnalyzer()
        let detector = try BlazeFaceDetector()
        let src = try photo("biden.jpg"), dst = try photo("astronaut.png")
        let ls = try analyzer.landmarks(src, face: try detector.detect(src)[0]).mesh.map(\.xy)
        // The destination mesh on whole pixels of a 2× canvas, so each mesh point is a pixel
        // centre and the warp must reproduce its source landmark exactly there.
        let ld = try analyzer.landmarks(dst, face: try detector.detect(dst)[0]).mesh.map { Point(($0.x * 2).rounded(), ($0.y * 2).rounded()) }
        let cw = 2 * dst.width, ch = 2 * dst.height
        let w = src.width, h = src.height, n = w * h
        var rgb = [Float](repeating: 0, count: 3 * n)
        for y in 0..<h { for x in 0..<w { rgb[y * w + x] = Float(x) / Float(w); rgb[n + y * w + x] = Float(y) / Float(h) } }
        let coords = Image(width: w, height: h, rgb: rgb)
        let out = MeshWarp(destination: ld).render(coords, from: ls, to: ld, width: cw, height: ch)
        var seen = Set<[Double]>(), worst = 0.0, counted = 0
        let m = cw * ch
        for (i, p) in ld.enumerated() where seen.insert([p.x, p.y]).inserted {
            let x = Int(p.x), y = Int(p.y)
            XCTAssertGreaterThan(out.coverage[x, y], 0, "mesh point \(i) is covered")
            let sx = Double(out.image.rgb[y * cw + x]) * Double(w), sy = Double(out.image.rgb[m + y * cw + x]) * Double(h)
            worst = max(worst, hypot(sx - ls[i].x, sy - ls[i].y))
            counted += 1
        }
        XCTAssertGreaterThan(counted, 460)
        // Float32 coordinates over a ~1000-pixel ramp: a few thousandths of a pixel.
        XCTAssertLessThan(worst, 0.01, "worst landmark error in source pixels")
    }

    /// Turned faces of `t1.jpg` (BlazeFace finds these people on crops of the group) warped onto
    /// a man turned three-quarters, whose far cheek hides behind his nose: planes marking the
    /// source's lips, eyes and nose must land on the target's own (grown by 3 % of the face
    /// width), and no pixel of the target's face may be left uncovered. A Delaunay triangulation
    /// of the target's points as they lie in the photo joins points far apart on the face there
    /// and smears lip, eye and nose across the cheek (3 to 6 % of each region's area).
    func testTurnedFaceWarpKeepsEachFeatureInPlace() throws {
        let analyzer = try FaceAnalyzer()
        let detector = try BlazeFaceDetector()
        let group = try photo("t1.jpg")
        func person(_ x: Int, _ y: Int, _ w: Int, _ h: Int) throws -> (Image, FaceLandmarks) {
            let crop = try group.cropped(x: x, y: y, width: w, height: h)
            return (crop, try analyzer.landmarks(crop, face: try XCTUnwrap(try detector.detect(crop).first)))
        }
        // A woman rolled and turned, one turned slightly the other way, the man turned left.
        let rolled = try person(150, 50, 350, 400), slight = try person(960, 100, 320, 500), turned = try person(760, 0, 350, 350)
        for source in [rolled, slight] {
            let (leaks, uncovered) = try misplaced(source: source, target: turned, surface: true)
            let (photoPlane, _) = try misplaced(source: source, target: turned, surface: false)
            print("lips, eyes, nose outside the target's: \(leaks) (photo-plane Delaunay \(photoPlane)); face uncovered \(uncovered)")
            XCTAssertEqual(leaks.count, 3)
            for leak in leaks { XCTAssertLessThan(leak, 0.01) }
            XCTAssertEqual(uncovered, 0)
            XCTAssertGreaterThan(photoPlane.max() ?? 0, 0.03, "the measure tells a smearing warp apart")
        }
    }

    /// For the lips, eyes and nose, the share of the source's region that the warp puts inside the
    /// target's face outline but outside the target's region (grown by 3 % of the face width),
    /// over the target region's area; and the share of the
    /// target's face (inset by a pixel) that no triangle covers. `surface`: the swap's warp; otherwise
    /// a Delaunay triangulation of the target's points in the photo, drawn first come first served.
    func misplaced(source: (Image, FaceLandmarks), target: (Image, FaceLandmarks), surface: Bool) throws -> ([Double], Double) {
        let (crop, sl) = source, (picture, tl) = target
        let s3 = Gaze.meshWithIrises(sl.mesh, left: sl.leftEye, right: sl.rightEye)
        let t3 = Gaze.meshWithIrises(tl.mesh, left: tl.leftEye, right: tl.rightEye)
        let src = s3.map(\.xy), dst = t3.map(\.xy)
        let w = picture.width, h = picture.height, n = w * h
        let (warp, depth) = surface ? SwapGeometry.faceWarp(target: t3, source: s3, destination: dst) : (MeshWarp(destination: dst), nil)
        if surface { XCTAssertNotNil(depth, "the meshes turn to the front") }
        let xs = tl.mesh.map(\.x), faceWidth = xs.max()! - xs.min()!
        let regions: [FaceRegion] = [.lips, .eyes, .nose]
        var planes: [Float] = []
        for region in regions { planes += try FaceMasks.mask(region, mesh: sl.mesh, width: crop.width, height: crop.height).values }
        let out = warp.render(Image(width: crop.width, height: crop.height, rgb: planes), from: src, to: dst, depth: depth, width: w, height: h)
        let face = try FaceMasks.mask(.face, mesh: tl.mesh, width: w, height: h)
        var leaks: [Double] = []
        for (k, region) in regions.enumerated() {
            let own = try FaceMasks.mask(region, mesh: tl.mesh, width: w, height: h)
            let allowed = try own.dilated(radius: Int((0.03 * faceWidth).rounded()))
            var stray = 0
            for i in 0..<n where face.values[i] > 0 && out.image.rgb[k * n + i] > 0.5 && allowed.values[i] == 0 { stray += 1 }
            let area = own.values.reduce(0, +)
            XCTAssertGreaterThan(area, 20, "\(region) of the target")
            leaks.append(Double(stray) / Double(area))
        }
        let inset = try face.eroded(radius: 1)
        let inside = inset.values.filter { $0 > 0 }.count
        let holes = (0..<n).filter { inset.values[$0] > 0 && out.coverage.values[$0] == 0 }.count
        XCTAssertGreaterThan(inside, 100)
        return (leaks, Double(holes) / Double(max(inside, 1)))
    }

    /// The face warp turns no triangle over round the eyes between a smiling source's narrow
    /// eyes and a target's: the irises are in no triangle (pinned to the target's iris, a source
    /// iris half under its lid folded the triangles between iris and lid, drawing dark blocks).
    func testTheFaceWarpFoldsNothingRoundTheEyes() throws {
        func analysed(_ name: String) throws -> FaceLandmarks {
            let im = try photo(name)
            return try FaceAnalyzer().landmarks(im, face: try BlazeFaceDetector().detect(im)[0])
        }
        let sl = try analysed("astronaut.png"), tl = try analysed("obama.jpg")
        let s3 = Gaze.meshWithIrises(sl.mesh, left: sl.leftEye, right: sl.rightEye)
        let t3 = Gaze.meshWithIrises(tl.mesh, left: tl.leftEye, right: tl.rightEye)
        let (warp, _) = SwapGeometry.faceWarp(target: t3, source: s3, destination: t3.map(\.xy))
        let eyes = Set(MeshRegions.imageLeftEye + MeshRegions.imageRightEye + Array(FaceMesh.pointCount..<t3.count))
        var folded = 0, round = 0
        for (a, b, c) in warp.triangles where eyes.contains(a) || eyes.contains(b) || eyes.contains(c) {
            round += 1
            XCTAssertTrue(a < FaceMesh.pointCount && b < FaceMesh.pointCount && c < FaceMesh.pointCount, "an iris point in a triangle")
            let so = Delaunay.orientation(s3[a].xy, s3[b].xy, s3[c].xy), to = Delaunay.orientation(t3[a].xy, t3[b].xy, t3[c].xy)
            if so * to < 0 { folded += 1 }
        }
        XCTAssertGreaterThan(round, 20)
        XCTAssertEqual(folded, 0)
    }

    func testOnlyTheFaceChangesAndTheRestIsBitExact() throws {
        let target = try photo("astronaut.png")
        let swap = try FaceSwap(options: fast())
        let (out, report) = try swap.run(source: try photo("biden.jpg"), target: target)
        XCTAssertEqual(report.faces.count, 1)
        let lm = try FaceAnalyzer().landmarks(target, face: try BlazeFaceDetector().detect(target)[0])
        let xs = lm.mesh.map(\.x), faceWidth = xs.max()! - xs.min()!
        let allowed = try FaceMasks.mask(.face, mesh: lm.mesh, width: target.width, height: target.height)
            .dilated(radius: Int((0.15 * faceWidth).rounded()))
        let n = target.pixelCount
        var changed = 0, outside = 0
        for i in 0..<n {
            let differs = (0..<3).contains { out.rgb[$0 * n + i] != target.rgb[$0 * n + i] }
            if differs {
                changed += 1
                if allowed.values[i] == 0 { outside += 1 }
            }
        }
        XCTAssertEqual(outside, 0, "pixels changed outside the dilated face")
        XCTAssertGreaterThan(Double(changed), 0.3 * Double(allowed.values.filter { $0 > 0 }.count) / 2.0, "the face was swapped")
        XCTAssertLessThan(report.faces[0].identityToSource, report.faces[0].identityToTarget)
    }

    /// Lisa Kudrow in t1.jpg looks down, her lids half closed; Eileen Collins looks at the
    /// camera. Stretched open, the source's lids smeared across the eyes and her gaze went with
    /// them: the target's own eyes must stay, pixel for pixel at their centres, with the gaze the
    /// report measures close to the target's. A source whose eyes are open, if less than the
    /// target's (Obama's smile), gives its own eyes; onto her lowered lids, it keeps hers.
    func testASourceWithNarrowerEyesLeavesTheTargetsEyes() throws {
        let target = try photo("astronaut.png")
        let lm = try FaceAnalyzer().landmarks(target, face: try BlazeFaceDetector().detect(target)[0])
        let looking = try photo("t1.jpg").cropped(x: 960, y: 100, width: 320, height: 500)
        let swap = try FaceSwap(options: fast())
        let (out, report) = try swap.run(source: looking, target: target)
        XCTAssertTrue(report.faces[0].targetEyesKept)
        XCTAssertLessThan(report.faces[0].gazeDifference, 0.1)
        // At each iris centre the target's dark iris, not the source's lid stretched over it.
        let n = target.pixelCount
        func luma(_ im: Image, _ p: Point) -> Float {
            var sum: Float = 0
            for dy in -1...1 {
                for dx in -1...1 {
                    let i = (Int(p.y.rounded()) + dy) * im.width + Int(p.x.rounded()) + dx
                    sum += 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i]
                }
            }
            return sum / 9
        }
        var worst: Float = 0
        for iris in [lm.leftEye.irisCentre, lm.rightEye.irisCentre] {
            worst = max(worst, abs(luma(out, iris) - luma(target, iris)))
        }
        XCTAssertLessThan(worst, 0.08, "the target's eyes are kept")
        let (_, open) = try swap.run(source: try photo("obama.jpg"), target: target)
        XCTAssertFalse(open.faces[0].targetEyesKept)
        // The other way round: her lowered lids stay, and Obama's open eyes do not look up out of them.
        let (_, lowered) = try swap.run(source: try photo("obama.jpg"), target: looking)
        XCTAssertTrue(lowered.faces[0].targetEyesKept)
    }

    /// A source face much smaller than the target's is enlarged and comes out soft: the report
    /// says by how much and warns above 3×; at about the same size it does not.
    func testASmallSourceFaceIsReportedAsEnlarged() throws {
        let target = try photo("obama.jpg")
        let small = try target.resized(width: target.width / 4, height: target.height / 4, interpolation: .area)
        let (_, enlarged) = try FaceSwap(options: fast()).run(source: small, target: target)
        XCTAssertEqual(enlarged.faces[0].sourceEnlargement, 4, accuracy: 0.3)
        XCTAssertEqual(enlarged.warnings.count, 1)
        XCTAssertTrue(enlarged.warnings.first?.contains("enlarged 4.") ?? false, enlarged.warnings.first ?? "no warning")
        let (_, same) = try FaceSwap(options: fast()).run(source: try photo("grace_hopper.jpg"), target: target)
        XCTAssertLessThan(same.faces[0].sourceEnlargement, 2)
        XCTAssertTrue(same.warnings.isEmpty, same.warnings.joined())
    }

    /// A target turned well aside shows its nose beyond the face outline's points: that nose is
    /// swapped with the rest, not left standing beside the source's as a second profile. Matt
    /// LeBlanc turned to the side, from Matthew Perry (both from the group photo): most of the
    /// target's nose outside its outline polygon changes.
    func testATurnedTargetsNoseIsSwappedWhole() throws {
        let group = try photo("t1.jpg")
        let target = try group.cropped(x: 760, y: 0, width: 350, height: 350)
        let m = try FaceAnalyzer().landmarks(target, face: try BlazeFaceDetector().detect(target)[0]).mesh
        var options = fast()
        options.sourceFace = 1
        let (out, _) = try FaceSwap(options: options).run(source: group, target: target)
        let flat = m.map { Point3($0.x, $0.y, 0) }
        let nose = try FaceMasks.mask(.nose, mesh: flat, width: target.width, height: target.height)
        let oval = try SwapGeometry.region(MeshRegions.faceOval, m.map(\.xy), width: target.width, height: target.height)
        let n = target.pixelCount
        var beyond = 0, changed = 0
        for i in 0..<n where nose.values[i] > 0.5 && oval.values[i] < 0.5 {
            beyond += 1
            if (0..<3).contains(where: { out.rgb[$0 * n + i] != target.rgb[$0 * n + i] }) { changed += 1 }
        }
        XCTAssertGreaterThan(beyond, 50, "the turned nose reaches past the outline")
        XCTAssertGreaterThan(Double(changed) / Double(max(beyond, 1)), 0.6, "\(changed) of \(beyond) nose pixels past the outline changed")
    }

    /// A source turned far from the target's pose is reported: Matt LeBlanc turned to the side
    /// onto Obama facing the camera differs by over 30° of head turn and draws a warning; two
    /// frontal faces do not.
    func testASourceTurnedFarFromTheTargetIsReported() throws {
        let turned = try photo("t1.jpg").cropped(x: 760, y: 0, width: 350, height: 350)
        let target = try photo("obama.jpg")
        let (_, far) = try FaceSwap(options: fast()).run(source: turned, target: target)
        XCTAssertGreaterThan(abs(far.faces[0].turnDifference), 35)
        XCTAssertLessThan(abs(far.faces[0].turnDifference), 65)
        XCTAssertEqual(far.warnings.filter { $0.contains("turned") }.count, 1, far.warnings.joined(separator: "; "))
        let (_, near) = try FaceSwap(options: fast()).run(source: try photo("grace_hopper.jpg"), target: target)
        XCTAssertLessThan(abs(near.faces[0].turnDifference), 15)
        XCTAssertTrue(near.warnings.isEmpty, near.warnings.joined())
    }

    /// Obama, seen from the front, onto Matt LeBlanc turned to the side: the near cheek the target
    /// shows broadly is, in the source, a sliver by the face's edge, and stretched over the cheek
    /// it drew streaks of the edge's shadow and ear, grey against the skin. That skin comes from
    /// the source's skin round about instead: on the outer half of the near cheek, between the
    /// eye line and the mouth, the warped result's mean luma gradient is 1.7× the target's own
    /// there (the source's pores and the matched grain), 2.4× with the streaks.
    func testAFrontalSourceLeavesNoStreaksOnATurnedCheek() throws {
        let target = try photo("t1.jpg").cropped(x: 760, y: 0, width: 350, height: 350)
        let m = try FaceAnalyzer().landmarks(target, face: try BlazeFaceDetector().detect(target)[0]).mesh
        let (out, _) = try FaceSwap(options: fast()).run(source: try photo("obama.jpg"), target: target)
        let nose = m[1], edge = m[454]
        let x0 = min(nose.x + 0.5 * (edge.x - nose.x), edge.x), x1 = max(nose.x + 0.5 * (edge.x - nose.x), edge.x)
        let y0 = m[263].y, y1 = m[13].y
        func energy(_ im: Image) -> Double {
            let g = im.grey(), w = im.width
            var sum = 0.0, count = 0.0
            for y in Int(y0.rounded(.up))...Int(y1) {
                for x in Int(x0.rounded(.up))...Int(x1) {
                    let gx = g[y * w + x + 1] - g[y * w + x - 1], gy = g[(y + 1) * w + x] - g[(y - 1) * w + x]
                    sum += Double((gx * gx + gy * gy).squareRoot()); count += 1
                }
            }
            return sum / max(count, 1)
        }
        XCTAssertGreaterThan(x1 - x0, 20, "the near cheek is broad")
        let ratio = energy(out) / energy(target)
        XCTAssertFalse(ratio.isNaN)
        XCTAssertLessThan(ratio, 2, "streaks on the near cheek: gradient \(ratio)× the target's")
    }

    /// Dark-rimmed round glasses drawn on Obama, their arms running out past his temples: swapped
    /// over, the rims stay on the new face, as the arms outside the mask do; covered, the rims
    /// inside the mask go and the arms stay, the two hinges DiffFace's parser mask avoids. His
    /// own face, without glasses, keeps nothing.
    func testTheTargetsGlassesStayOnTheNewFace() throws {
        let plain = try photo("obama.jpg")
        let (target, rims) = try drawnGlasses(on: plain)
        let n = plain.pixelCount
        func darkShare(_ im: Image) -> Double {
            var dark = 0
            for i in 0..<n where rims.bits[i] && 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i] < 0.2 { dark += 1 }
            return Double(dark) / Double(max(1, rims.area))
        }
        XCTAssertGreaterThan(rims.area, 1000)
        let source = try photo("biden.jpg")
        let (kept, report) = try FaceSwap(options: fast()).run(source: source, target: target)
        XCTAssertTrue(report.faces[0].targetGlassesKept)
        XCTAssertGreaterThan(darkShare(kept), 0.8, "the rims stay")
        var o = fast()
        o.keepGlasses = false
        let (covered, coveredReport) = try FaceSwap(options: o).run(source: source, target: target)
        XCTAssertFalse(coveredReport.faces[0].targetGlassesKept)
        XCTAssertLessThan(darkShare(covered), 0.5, "covered, the rims go")
        let (_, none) = try FaceSwap(options: fast()).run(source: source, target: plain)
        XCTAssertFalse(none.faces[0].targetGlassesKept, "no glasses, nothing kept")
    }

    /// Dark-rimmed round glasses drawn on a face: a ring round each eye, a bridge, and arms
    /// running out past the temples. Also the rings' pixels.
    func drawnGlasses(on plain: Image) throws -> (Image, Region) {
        let m = try FaceAnalyzer().landmarks(plain, face: try BlazeFaceDetector().detect(plain)[0]).mesh
        func p(_ i: Int) -> Point { Point(m[i].x, m[i].y) }
        let el = distance(p(33), p(263)), half = 0.0175 * el
        let centres = [mid(p(33), p(133)), mid(p(263), p(362))]
        let w = plain.width, n = plain.pixelCount
        var target = plain
        var rims = Region(width: w, height: plain.height)
        for y in 0..<plain.height {
            for x in 0..<w {
                let q = Point(Double(x), Double(y))
                var on = false
                for (k, c) in centres.enumerated() {
                    let u = (q.x - c.x) / (0.3 * el), v = (q.y - c.y) / (0.2 * el)
                    // Distance to the ellipse, roughly: the radial excess in units of its smaller radius.
                    if abs((u * u + v * v).squareRoot() - 1) * 0.2 * el < half { on = true; rims.bits[y * w + x] = true }
                    let outward = k == 0 ? c.x - q.x : q.x - c.x
                    if abs(q.y - c.y) < half && outward > 0.3 * el && outward < 0.55 * el { on = true }
                }
                if abs(q.y - centres[0].y) < half && q.x > centres[0].x + 0.3 * el && q.x < centres[1].x - 0.3 * el { on = true }
                if on { for c in 0..<3 { target.rgb[c * n + y * w + x] = 0.08 } }
            }
        }
        return (target, rims)
    }

    /// The same glasses on the source: filled in from its face before it is pasted, so Biden
    /// takes Obama's face without a print of rims and bridge and no arms to hold them. Round
    /// Biden's eyes (where the rims land: a band from above the brows to the cheekbones, the
    /// eyes' own contours left out), the result has nearly no more dark pixels than a swap from
    /// Obama's plain photo (pasted as they were, the rims made 13 % of the band dark). The rims
    /// hide Obama's brows, so Biden's own are kept there and the band has fewer dark pixels.
    func testTheSourcesGlassesAreNotPasted() throws {
        let plain = try photo("obama.jpg")
        let (wearing, _) = try drawnGlasses(on: plain)
        let target = try photo("biden.jpg")
        let swap = try FaceSwap(options: fast())
        let (withGlasses, report) = try swap.run(source: wearing, target: target)
        let (without, plainReport) = try swap.run(source: plain, target: target)
        XCTAssertTrue(report.faces[0].sourceGlassesRemoved)
        XCTAssertFalse(plainReport.faces[0].sourceGlassesRemoved, "no glasses, nothing filled")
        XCTAssertFalse(report.faces[0].targetGlassesKept)
        let m = try FaceAnalyzer().landmarks(target, face: try BlazeFaceDetector().detect(target)[0]).mesh
        let mesh = m.map { Point($0.x, $0.y) }
        var eyes = try SwapGeometry.region(MeshRegions.imageLeftEye, mesh, width: target.width, height: target.height)
        let right = try SwapGeometry.region(MeshRegions.imageRightEye, mesh, width: target.width, height: target.height)
        eyes.values = zip(eyes.values, right.values).map { max($0, $1) }
        eyes = try eyes.dilated(radius: 3)
        let le = mesh[33], re = mesh[263], el = distance(le, re), c = mid(le, re)
        let along = Point((re.x - le.x) / el, (re.y - le.y) / el), up = Point(along.y, -along.x)
        let w = target.width, n = target.pixelCount
        var band = 0, dark = (glasses: 0, plain: 0)
        for i in 0..<n where eyes.values[i] < 0.5 {
            let dx = Double(i % w) - c.x, dy = Double(i / w) - c.y
            let u = dx * along.x + dy * along.y, v = dx * up.x + dy * up.y
            guard abs(u) < 0.6 * el, v > -0.35 * el, v < 0.3 * el else { continue }
            band += 1
            func luma(_ im: Image) -> Float { 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i] }
            if luma(withGlasses) < 0.15 { dark.glasses += 1 }
            if luma(without) < 0.15 { dark.plain += 1 }
        }
        let extra = Double(dark.glasses - dark.plain) / Double(max(band, 1))
        print("eye band \(band) px: dark \(dark.glasses) with the source's glasses, \(dark.plain) without")
        XCTAssertGreaterThan(band, 5000)
        XCTAssertLessThan(extra, 0.004, "the source's rims were pasted: \(extra) of the band darker")
    }

    /// Anne Helene wears sunglasses: nothing of her eyes is seen, so the target keeps its own
    /// eyes, lids and sockets behind where her lenses would land, and her tinted lenses are
    /// not pasted (they left a band of shadow across the face). Round Biden's eyes the result
    /// stays within a few levels of his photo; Grace Hopper's clear lenses show her eyes, which
    /// are swapped.
    func testSunglassesOnTheSourceLeaveTheTargetsEyes() throws {
        let target = try photo("biden.jpg")
        let swap = try FaceSwap(options: fast())
        let (out, report) = try swap.run(source: try photo("anne_helene.jpg"), target: target)
        XCTAssertTrue(report.faces[0].sourceGlassesRemoved)
        XCTAssertTrue(report.faces[0].targetEyesKept)
        let m = try FaceAnalyzer().landmarks(target, face: try BlazeFaceDetector().detect(target)[0]).mesh.map { Point($0.x, $0.y) }
        var eyes = try SwapGeometry.region(MeshRegions.imageLeftEye, m, width: target.width, height: target.height)
        let right = try SwapGeometry.region(MeshRegions.imageRightEye, m, width: target.width, height: target.height)
        eyes.values = zip(eyes.values, right.values).map { max($0, $1) }
        let n = target.pixelCount
        var sum = 0.0, count = 0
        for i in 0..<n where eyes.values[i] > 0.5 {
            for c in 0..<3 { sum += Double(abs(out.rgb[c * n + i] - target.rgb[c * n + i])) }
            count += 3
        }
        let meanDifference = sum / Double(max(count, 1))
        print("Biden's eyes under Anne Helene's sunglasses: mean difference \(meanDifference * 255) levels over \(count / 3) px")
        XCTAssertGreaterThan(count, 300)
        XCTAssertFalse(meanDifference.isNaN)
        XCTAssertLessThan(meanDifference, 8.0 / 255, "the target's own eyes stay")
        let (_, clear) = try swap.run(source: try photo("grace_hopper.jpg"), target: target)
        XCTAssertTrue(clear.faces[0].sourceGlassesRemoved)
        XCTAssertFalse(clear.faces[0].targetEyesKept, "behind clear lenses the source's eyes are swapped")
    }

    /// Grace Hopper's cat-eye frames have dark upper rims but a light gold bridge, which passes
    /// the skin test: they are found all the same, and their dark wings beside the eyes stay on
    /// the new face (covered, they left two dark hinges at the temples).
    func testGlassesWithALightBridgeStay() throws {
        let target = try photo("grace_hopper.jpg")
        let (out, report) = try FaceSwap(options: fast()).run(source: try photo("obama.jpg"), target: target)
        XCTAssertTrue(report.faces[0].targetGlassesKept)
        let m = try FaceAnalyzer().landmarks(target, face: try BlazeFaceDetector().detect(target)[0]).mesh
        let le = Point(m[33].x, m[33].y), re = Point(m[263].x, m[263].y)
        let el = distance(le, re), c = mid(le, re)
        let along = Point((re.x - le.x) / el, (re.y - le.y) / el), up = Point(along.y, -along.x)
        let w = target.width, n = target.pixelCount
        func luma(_ im: Image, _ i: Int) -> Float { 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i] }
        var wings = 0, stayed = 0
        for i in 0..<n {
            let dx = Double(i % w) - c.x, dy = Double(i / w) - c.y
            let u = abs(dx * along.x + dy * along.y), v = dx * up.x + dy * up.y
            guard u > 0.5 * el, u < 0.75 * el, v > 0, v < 0.35 * el, luma(target, i) < 0.25 else { continue }
            wings += 1
            if luma(out, i) < 0.3 { stayed += 1 }
        }
        print("dark frame wings: \(wings) pixels, \(stayed) still dark")
        XCTAssertGreaterThan(wings, 100)
        XCTAssertGreaterThan(Double(stayed), 0.8 * Double(wings), "the frames' wings stay")
    }

    /// Glasses are kept only on faces that wear them: of every face in the sample photos, Grace
    /// Hopper's frames and Anne Helene's sunglasses are found, and no other face's brows, bridge
    /// shadow or temple hair passes for frames (each would keep the target's brows and hair over
    /// the new face).
    func testGlassesAreFoundOnlyWhereWorn() throws {
        var o = fast()
        o.targets = .all
        let swap = try FaceSwap(options: o)
        let source = try photo("obama.jpg")
        for (name, worn) in [("grace_hopper.jpg", true), ("anne_helene.jpg", true), ("obama2.jpg", false), ("obama3.jpg", false),
                             ("biden.jpg", false), ("astronaut.png", false), ("t1.jpg", false), ("messi5.jpg", false), ("hanks.png", false)] {
            let (_, report) = try swap.run(source: source, target: try photo(name))
            XCTAssertFalse(report.faces.isEmpty, name)
            for face in report.faces {
                XCTAssertEqual(face.targetGlassesKept, worn, "\(name), face \(face.index)")
            }
        }
    }

    /// Eileen Collins' fringe hangs over her forehead: it must not be pasted onto Obama's, and
    /// her skin, not his, fills in under it. Over his forehead, between the eyes' centres and
    /// 0.25 to 0.4 eye distances above the brows, the share much darker than its own median, as a
    /// fringe's strands are, must stay small (4.4 % with the fringe pasted); from 0.15 to 0.35
    /// eye distances over the brows nearly all of it must be changed (87 % when his own forehead
    /// showed through where the fringe was, a band of another colour). Sources with nothing over
    /// their faces (Grace Hopper's glasses and wrinkles, Obama's shadows) report nothing occluded.
    func testHairOverTheSourceFaceIsNotPasted() throws {
        let target = try photo("obama.jpg")
        let swap = try FaceSwap(options: fast())
        let (out, report) = try swap.run(source: try photo("astronaut.png"), target: target)
        XCTAssertGreaterThan(report.faces[0].sourceOccluded, 0.1, "the fringe is found")
        let lm = try FaceAnalyzer().landmarks(target, face: try BlazeFaceDetector().detect(target)[0])
        let mesh = lm.mesh.map(\.xy)
        let le = mesh[33], re = mesh[263]
        let el = hypot(re.x - le.x, re.y - le.y)
        let up = Point((re.y - le.y) / el, -(re.x - le.x) / el)
        let browIdx = MeshRegions.imageLeftBrow + MeshRegions.imageRightBrow
        let brow = Point(browIdx.map { mesh[$0].x }.reduce(0, +) / Double(browIdx.count),
                         browIdx.map { mesh[$0].y }.reduce(0, +) / Double(browIdx.count))
        let face = try FaceMasks.mask(.face, mesh: lm.mesh, width: target.width, height: target.height).eroded(radius: 7)
        let w = target.width, n = target.pixelCount
        var luma: [Float] = []
        var replaced = 0, band = 0
        for i in 0..<n where face.values[i] > 0 {
            let h = (Double(i % w) - brow.x) * up.x + (Double(i / w) - brow.y) * up.y
            if h > 0.15 * el && h < 0.35 * el {
                band += 1
                if (0..<3).contains(where: { out.rgb[$0 * n + i] != target.rgb[$0 * n + i] }) { replaced += 1 }
            }
            // Strands: between the eyes' centres, where the fringe hung (the temples carry the
            // target's own shading), above the brows' arches.
            let along = (Double(i % w) - brow.x) * up.y - (Double(i / w) - brow.y) * up.x
            guard h > 0.25 * el && h < 0.4 * el && abs(along) < 0.5 * el else { continue }
            luma.append(0.299 * out.rgb[i] + 0.587 * out.rgb[n + i] + 0.114 * out.rgb[2 * n + i])
        }
        // Under the fringe the source's skin is carried in, not the target's forehead left
        // as a patch of another colour: the forehead up to 0.35 eye widths is the source's.
        print("forehead replaced: \(Double(replaced) / Double(max(band, 1)))")
        XCTAssertGreaterThan(Double(replaced), 0.9 * Double(band))
        XCTAssertGreaterThan(luma.count, 1000)
        XCTAssertFalse(luma.contains { !$0.isFinite })
        let median = luma.sorted()[luma.count / 2]
        let dark = Double(luma.filter { $0 < 0.85 * median }.count) / Double(luma.count)
        print("forehead dark: \(dark)")
        XCTAssertLessThan(dark, 0.02, "share of the forehead darker than 0.85 of its median")

        for name in ["grace_hopper.jpg", "obama.jpg"] {
            let (_, r) = try swap.run(source: try photo(name), target: try photo("biden.jpg"))
            XCTAssertEqual(r.faces[0].sourceOccluded, 0, "\(name): nothing lies over the face")
        }
    }

    /// A man turned far to one side shows his far cheek edge-on, its outline against the window
    /// behind him: that half comes from his near half, flipped, and nothing of a frontal face is
    /// mirrored. Mirror partners are the face's symmetric points (eye corners, irises swap; the
    /// midline keeps its own).
    func testATurnedAwaySourceTakesItsOtherHalf() throws {
        let analyzer = try FaceAnalyzer()
        let detector = try BlazeFaceDetector()
        func mesh(_ image: Image) throws -> [Point3] {
            let lm = try analyzer.landmarks(image, face: try XCTUnwrap(try detector.detect(image).first))
            return Gaze.meshWithIrises(lm.mesh, left: lm.leftEye, right: lm.rightEye)
        }
        let turnedPhoto = try photo("t1.jpg").cropped(x: 760, y: 0, width: 350, height: 350)
        let turned = try mesh(turnedPhoto)
        let frontal = try mesh(try photo("grace_hopper.jpg"))
        let triangles = try XCTUnwrap(MeshWarp(surface: [frontal, turned])).triangles
        let f = try XCTUnwrap(SourceVisibility(mesh: frontal, triangles: triangles))
        XCTAssertEqual(f.mirror[33], 263)
        XCTAssertEqual(f.mirror[263], 33)
        XCTAssertEqual(f.mirror[468], 473, "iris centres")
        for midline in [1, 10, 152, 168] { XCTAssertEqual(f.mirror[midline], midline) }
        let involutive = f.mirror.indices.filter { f.mirror[f.mirror[$0]] == $0 }.count
        XCTAssertGreaterThan(Double(involutive), 0.9 * Double(f.mirror.count))
        XCTAssertFalse(f.mirrors, "a frontal face keeps both its halves")

        let t = try XCTUnwrap(SourceVisibility(mesh: turned, triangles: triangles))
        XCTAssertTrue(t.mirrors)
        // The cheek outline points on the two sides (234 and 454): the far one is mirrored, the
        // near one is its own.
        let cheeks = [t.mirrorWeight[234], t.mirrorWeight[454]]
        XCTAssertGreaterThan(cheeks.max()!, 0.5)
        XCTAssertEqual(cheeks.min()!, 0)
        XCTAssertFalse(t.mirrorWeight.contains { !$0.isFinite || $0 < 0 || $0 > 1 })
        // Turned this far, the nose's far side is mirrored too; a face turned a little (Tom
        // Hanks) keeps its own nose, whose far nostril flipped from the near one left a notch.
        let share = { (v: SourceVisibility) in v.mirrorWeight.reduce(0, +) / Double(v.mirrorWeight.count) }
        XCTAssertGreaterThan(share(t), 0.25)
        XCTAssertGreaterThan(MeshRegions.nose.map { t.mirrorWeight[$0] }.max()!, 0.5)
        let slight = try mesh(try photo("hanks.png"))
        let hanks = try XCTUnwrap(SourceVisibility(mesh: slight, triangles: try XCTUnwrap(MeshWarp(surface: [frontal, slight])).triangles))
        XCTAssertTrue(hanks.mirrors, "his far cheek is mirrored")
        XCTAssertLessThan(share(hanks), 0.15)
        XCTAssertEqual(MeshRegions.nose.map { hanks.mirrorWeight[$0] }.max()!, 0)
        // The nose ridge lies on the turned face's outline: those midline points sample just
        // inside it; no point off the midline moves.
        let points = turned.map(\.xy), inside = t.sampledInside(points)
        let moved = points.indices.filter { points[$0] != inside[$0] }
        print("midline points on a fold, sampled inside: \(moved)")
        XCTAssertFalse(moved.isEmpty)
        for i in moved { XCTAssertTrue(t.midline[i], "point \(i) is on the midline") }
        XCTAssertTrue(t.midline[1] && t.midline[168] && !t.midline[33] && !t.midline[263])
        XCTAssertFalse(inside.contains { !$0.x.isFinite || !$0.y.isFinite })

        let swap = try FaceSwap(options: fast())
        let (_, report) = try swap.run(source: turnedPhoto, target: try photo("grace_hopper.jpg"))
        XCTAssertGreaterThan(report.faces[0].sourceMirrored, 0.1)
        let (_, frontalReport) = try swap.run(source: try photo("grace_hopper.jpg"), target: try photo("biden.jpg"))
        XCTAssertEqual(frontalReport.faces[0].sourceMirrored, 0)
    }

    /// The relighting takes the target's skin tone and light but keeps a highlight neutral: an
    /// orange source face with a white highlight, relit like a paler, cooler target face, has
    /// the target's mean colour on its skin and a highlight with no blue cast (shifting chroma by
    /// the difference of the tones gave it b − y ≈ +0.18). A grey source takes the target's tone.
    func testRelightKeepsHighlightsNeutral() throws {
        let w = 64, h = 64, n = w * h
        func flat(_ r: Float, _ g: Float, _ b: Float) -> Image {
            Image(width: w, height: h, rgb: [Float](repeating: r, count: n) + [Float](repeating: g, count: n) + [Float](repeating: b, count: n))
        }
        var source = flat(0.85, 0.55, 0.35)
        let highlight = (24..<32).flatMap { y in (24..<32).map { y * w + $0 } }
        for i in highlight { source.rgb[i] = 0.95; source.rgb[n + i] = 0.95; source.rgb[2 * n + i] = 0.95 }
        let target = flat(0.8, 0.68, 0.62)
        let mask = Mask(width: w, height: h, fill: 1)
        func chroma(_ im: Image, _ i: Int) -> (y: Float, cb: Float, cr: Float) {
            let y = 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i]
            return (y, im.rgb[2 * n + i] - y, im.rgb[i] - y)
        }
        let relit = try SwapGeometry.relight(source, like: target, mask: mask, faceWidth: 64)
        let skin = chroma(relit, 4 * w + 4), wanted = chroma(target, 0)
        XCTAssertEqual(skin.cb, wanted.cb, accuracy: 0.03)
        XCTAssertEqual(skin.cr, wanted.cr, accuracy: 0.03)
        let spot = chroma(relit, 28 * w + 28)
        XCTAssertLessThan(abs(spot.cb), 0.03, "the highlight stays neutral, not blue")
        XCTAssertLessThan(abs(spot.cr), 0.03)
        XCTAssertGreaterThan(spot.y, skin.y, "and stays a highlight")

        let grey = try SwapGeometry.relight(flat(0.5, 0.5, 0.5), like: target, mask: mask, faceWidth: 64)
        let g = chroma(grey, 4 * w + 4)
        XCTAssertEqual(g.cb, wanted.cb, accuracy: 0.02)
        XCTAssertEqual(g.cr, wanted.cr, accuracy: 0.02)
        XCTAssertFalse(relit.rgb.contains { !$0.isFinite } || grey.rgb.contains { !$0.isFinite })

        // On skin, a washed-out patch is raised towards 0.6 of the target's saturation at its
        // light instead of turning grey when darkened; off skin (an eye's white) it stays pale.
        var washed = flat(0.85, 0.55, 0.35)
        for i in highlight { washed.rgb[i] = 0.87; washed.rgb[n + i] = 0.83; washed.rgb[2 * n + i] = 0.79 }
        let darker = flat(0.6, 0.45, 0.38)
        func saturation(_ im: Image) -> Float {
            let c = chroma(im, 28 * w + 28)
            return (c.cb * c.cb + c.cr * c.cr).squareRoot() / c.y
        }
        let wantedSaturation = saturation(darker)
        let onSkin = try SwapGeometry.relight(washed, like: darker, mask: mask, faceWidth: 64, skin: mask)
        let offSkin = try SwapGeometry.relight(washed, like: darker, mask: mask, faceWidth: 64)
        print("saturation on skin \(saturation(onSkin)), off skin \(saturation(offSkin)), target \(wantedSaturation)")
        XCTAssertGreaterThan(saturation(onSkin), 0.45 * wantedSaturation)
        XCTAssertLessThan(saturation(offSkin), 0.3 * wantedSaturation)
    }

    /// Colour follows luma as chromaticity: relit like a much darker target, a brown brow on the
    /// source keeps its saturation relative to the skin's (an additive chroma kept the brow's
    /// chroma while its luma fell, and dark features glowed orange), and brightened like a pale
    /// target the skin does not wash out to grey. The light is measured on skin only: a target's
    /// dark band of brows outside `skin` does not darken the source there.
    func testRelightScalesColourWithLightAndMeasuresSkinOnly() throws {
        let w = 64, h = 64, n = w * h
        func flat(_ r: Float, _ g: Float, _ b: Float) -> Image {
            Image(width: w, height: h, rgb: [Float](repeating: r, count: n) + [Float](repeating: g, count: n) + [Float](repeating: b, count: n))
        }
        func saturation(_ im: Image, _ i: Int) -> Float {
            let y = 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i]
            let cb = im.rgb[2 * n + i] - y, cr = im.rgb[i] - y
            return (cb * cb + cr * cr).squareRoot() / y
        }
        var source = flat(0.85, 0.6, 0.45)
        let brow = (28..<36).flatMap { y in (8..<56).map { y * w + $0 } }
        for i in brow { source.rgb[i] = 0.45; source.rgb[n + i] = 0.28; source.rgb[2 * n + i] = 0.18 }
        let mask = Mask(width: w, height: h, fill: 1)
        let skinAt = 4 * w + 4, browAt = 32 * w + 32
        let sourceRatio = saturation(source, browAt) / saturation(source, skinAt)
        for target in [flat(0.4, 0.27, 0.2), flat(0.95, 0.8, 0.72)] {
            let relit = try SwapGeometry.relight(source, like: target, mask: mask, faceWidth: 64)
            XCTAssertFalse(relit.rgb.contains { !$0.isFinite })
            XCTAssertEqual(saturation(relit, skinAt), saturation(target, 0), accuracy: 0.2 * saturation(target, 0))
            XCTAssertEqual(saturation(relit, browAt) / saturation(relit, skinAt), sourceRatio, accuracy: 0.05 * sourceRatio)
        }

        var banded = flat(0.7, 0.5, 0.4)
        var skin = Mask(width: w, height: h, fill: 1)
        for i in brow {
            banded.rgb[i] = 0.15; banded.rgb[n + i] = 0.1; banded.rgb[2 * n + i] = 0.08
            skin.values[i] = 0
        }
        let plain = flat(0.7, 0.5, 0.4)
        let onSkin = try SwapGeometry.relight(plain, like: banded, mask: mask, faceWidth: 64, skin: skin)
        let everywhere = try SwapGeometry.relight(plain, like: banded, mask: mask, faceWidth: 64)
        XCTAssertEqual(onSkin.rgb[n + browAt], onSkin.rgb[n + skinAt], accuracy: 0.03)
        XCTAssertLessThan(everywhere.rgb[n + browAt], onSkin.rgb[n + browAt] - 0.1, "without the skin mask the band darkens it")
    }

    /// An enlarged source's detail is raised towards the target's at the scale of its own
    /// pixels, magnified: a blurred copy of a textured photo comes back closer to the photo's
    /// detail but not above it; a source as sharp as its target, or sharper, is left as it is.
    func testAnEnlargedSourceIsSharpenedUpToTheTargetsDetail() throws {
        let photo = try photo("grace_hopper.jpg").cropped(x: 150, y: 150, width: 200, height: 200)
        let soft = try photo.blurred(sigma: 1.5)
        let region = Region(width: 200, height: 200, value: true)
        func detail(_ im: Image) throws -> Double {
            let l = im.grey(), low = try Image(grey: l, width: im.width, height: im.height).blurred(sigma: 1.5).grey()
            return zip(l, low).map { Double(abs($0 - $1)) }.reduce(0, +) / Double(l.count)
        }
        let (sharp, amount) = try SwapGeometry.sharpened(soft, like: photo, region: region, sigma: 1.5)
        print("detail: photo \(try detail(photo)), blurred \(try detail(soft)), sharpened \(try detail(sharp)) (amount \(amount))")
        XCTAssertFalse(sharp.rgb.contains { !$0.isFinite })
        XCTAssertGreaterThan(amount, 0.3)
        XCTAssertLessThanOrEqual(amount, SwapGeometry.maxSharpening)
        XCTAssertGreaterThan(try detail(sharp), 1.3 * (try detail(soft)))
        XCTAssertLessThan(try detail(sharp), 1.05 * (try detail(photo)))
        let (same, none) = try SwapGeometry.sharpened(photo, like: soft, region: region, sigma: 1.5)
        XCTAssertEqual(none, 0)
        XCTAssertEqual(same.rgb, photo.rgb)
    }

    /// On skin the tone follows the target's locally: a washed-out source, grey where it is lit
    /// and orange in two shadowed patches, relit like evenly warm skin leaves far less of the
    /// patches' colour against the lit skin than the broad colour match alone (which kept it
    /// whole: war paint round the eyes and nose).
    func testSkinTakesTheTargetsToneWithoutTheSourcesPatches() throws {
        let w = 64, h = 64, n = w * h
        func flat(_ r: Float, _ g: Float, _ b: Float) -> Image {
            Image(width: w, height: h, rgb: [Float](repeating: r, count: n) + [Float](repeating: g, count: n) + [Float](repeating: b, count: n))
        }
        func chromaticity(_ im: Image, _ i: Int) -> (b: Float, r: Float) {
            let y = 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i]
            return ((im.rgb[2 * n + i] - y) / y, (im.rgb[i] - y) / y)
        }
        var source = flat(0.9, 0.87, 0.84)
        for (x0, y0) in [(12, 20), (40, 36)] {
            for y in y0..<(y0 + 10) { for x in x0..<(x0 + 10) {
                let i = y * w + x
                source.rgb[i] = 0.78; source.rgb[n + i] = 0.52; source.rgb[2 * n + i] = 0.34
            } }
        }
        let target = flat(0.8, 0.62, 0.5)
        let mask = Mask(width: w, height: h, fill: 1)
        let patchAt = 25 * w + 17, litAt = 50 * w + 12
        func patchContrast(_ im: Image) -> Float {
            let p = chromaticity(im, patchAt), l = chromaticity(im, litAt)
            return ((p.b - l.b) * (p.b - l.b) + (p.r - l.r) * (p.r - l.r)).squareRoot()
        }
        let broad = try SwapGeometry.relight(source, like: target, mask: mask, faceWidth: 64)
        let onSkin = try SwapGeometry.relight(source, like: target, mask: mask, faceWidth: 64, skin: mask)
        XCTAssertFalse(onSkin.rgb.contains { !$0.isFinite })
        let kept = patchContrast(onSkin) / patchContrast(broad)
        print("patch colour against the lit skin: \(patchContrast(onSkin)) on skin, \(patchContrast(broad)) broad only")
        XCTAssertLessThan(kept, 0.5)
        XCTAssertGreaterThan(patchContrast(onSkin), 0.02, "some of the source's colour detail stays")
        let lit = chromaticity(onSkin, litAt), wanted = chromaticity(target, 0)
        XCTAssertEqual(lit.b, wanted.b, accuracy: 0.05, "the lit skin takes the target's tone")
        XCTAssertEqual(lit.r, wanted.r, accuracy: 0.05)
    }

    /// Skin darker than the target's at its place (the source's stubble or a crease) takes the
    /// colour the target's own skin has at that luma: on a pale, lit face whose shadows are
    /// warm, a grey source's dark patch comes out warm like those shadows, not grey. A highlight
    /// of the source's own light on the shadowed half keeps the warm tone round it, not the
    /// pale colour of the target's lit skin (white blotches).
    func testDarkerSkinTakesTheTargetsShadowColour() throws {
        let w = 64, h = 64, n = w * h
        func chromaticity(_ im: Image, _ i: Int) -> (b: Float, r: Float) {
            let y = 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i]
            return ((im.rgb[2 * n + i] - y) / y, (im.rgb[i] - y) / y)
        }
        var target = Image(width: w, height: h, rgb: [Float](repeating: 0, count: 3 * n))
        for y in 0..<h { for x in 0..<w {
            let (r, g, b): (Float, Float, Float) = x < 32 ? (0.95, 0.9, 0.87) : (0.7, 0.45, 0.3)
            target.rgb[y * w + x] = r; target.rgb[n + y * w + x] = g; target.rgb[2 * n + y * w + x] = b
        } }
        var source = Image(width: w, height: h, rgb: [Float](repeating: 0.6, count: 3 * n))
        for y in 28..<36 { for x in 10..<18 { for c in 0..<3 { source.rgb[c * n + y * w + x] = 0.3 } } }
        // A highlight of the source's own light on the shadowed half.
        for y in 28..<36 { for x in 46..<54 { for c in 0..<3 { source.rgb[c * n + y * w + x] = 0.8 } } }
        let mask = Mask(width: w, height: h, fill: 1)
        let relit = try SwapGeometry.relight(source, like: target, mask: mask, faceWidth: 64, skin: mask)
        XCTAssertFalse(relit.rgb.contains { !$0.isFinite })
        let patch = chromaticity(relit, 32 * w + 14), lit = chromaticity(relit, 10 * w + 14)
        let shadow = chromaticity(target, 32 * w + 48), pale = chromaticity(target, 32 * w + 14)
        // The target's skin colour runs linearly between its two tones' lumas, so the patch
        // should have moved that share of the way from the lit skin's colour to the shadow's.
        func luma(_ im: Image, _ i: Int) -> Float { 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i] }
        let share = min(1, max(0, (luma(relit, 10 * w + 14) - luma(relit, 32 * w + 14)) / (luma(target, 32 * w + 14) - luma(target, 32 * w + 48))))
        print("patch \(patch), lit skin beside it \(lit); the target's shadow \(shadow), its lit skin \(pale); expected share \(share)")
        XCTAssertGreaterThan(share, 0.25, "the patch is darker than the lit skin round it")
        XCTAssertEqual(patch.r - lit.r, share * (shadow.r - pale.r), accuracy: 0.25 * share * (shadow.r - pale.r), "the patch is warmer than the lit skin round it")
        XCTAssertEqual(patch.b - lit.b, share * (shadow.b - pale.b), accuracy: 0.25 * share * abs(shadow.b - pale.b))
        XCTAssertEqual(lit.r, pale.r, accuracy: 0.1, "the lit skin keeps the target's pale tone")
        let highlight = chromaticity(relit, 32 * w + 50)
        XCTAssertGreaterThan(highlight.r, 0.85 * shadow.r, "a highlight keeps the warm tone round it, not the pale skin's: \(highlight)")
    }

    /// A harshly lit source's shadows at a few percent of the face (a nose's cast shadow, deep
    /// eye sockets) soften to the contrast the target's skin has at that scale; shadows the
    /// target's own skin matches are left, and a source is never given more contrast than its own.
    func testAHarshSourcesShadowsSoftenOnASoftlyLitTarget() throws {
        let w = 96, h = 96, n = w * h
        func face(_ depth: Float, base: Float, sigma: Double = 3) -> Image {
            var im = Image(width: w, height: h, rgb: [Float](repeating: 0, count: 3 * n))
            for y in 0..<h { for x in 0..<w {
                var l = base
                for (cx, cy) in [(30.0, 40.0), (66.0, 40.0), (48.0, 66.0)] {
                    let d2 = (Double(x) - cx) * (Double(x) - cx) + (Double(y) - cy) * (Double(y) - cy)
                    l *= 1 - depth * Float(exp(-d2 / (2 * sigma * sigma)))
                }
                im.rgb[y * w + x] = 1.1 * l; im.rgb[n + y * w + x] = 0.97 * l; im.rgb[2 * n + y * w + x] = 0.85 * l
            } }
            return im
        }
        let mask = Mask(width: w, height: h, fill: 1)
        func luma(_ im: Image, _ x: Int, _ y: Int) -> Float {
            let i = y * w + x
            return 0.299 * im.rgb[i] + 0.587 * im.rgb[n + i] + 0.114 * im.rgb[2 * n + i]
        }
        // Shadow depth: the shadow's centre against the skin a little way off it.
        func depth(_ im: Image) -> Float { 1 - luma(im, 48, 66) / luma(im, 48, 80) }
        let harsh = face(0.5, base: 0.6)
        for (target, kept) in [(face(0.05, base: 0.65), false), (face(0.5, base: 0.65), true), (face(0.8, base: 0.65), true)] {
            let relit = try SwapGeometry.relight(harsh, like: target, mask: mask, faceWidth: 96, skin: mask)
            let broadOnly = try SwapGeometry.relight(harsh, like: target, mask: mask, faceWidth: 96)
            XCTAssertFalse(relit.rgb.contains { !$0.isFinite })
            let (d, d0) = (depth(relit), depth(broadOnly))
            print("shadow depth \(d) against \(d0) with the broad ratio alone; target's \(depth(target))")
            if kept {
                XCTAssertEqual(d, d0, accuracy: 0.03 * d0, "a target with shadows as deep or deeper leaves the source's")
            } else {
                XCTAssertLessThan(d, 0.7 * d0, "on a softly lit target the shadow softens")
                XCTAssertGreaterThan(d, 0.2 * d0, "but does not vanish: it is part of the face")
            }
        }
    }

    /// Skin washed out by light (brighter than the cheeks, smooth, its chroma between grey and
    /// the skin's tone) is skin when highlights are asked for; pale strands (grey hair, as light
    /// but striped), a blue patch and a darker brown one are not, either way.
    func testSkinLikeAcceptsSmoothHighlightsOnly() throws {
        let w = 64, h = 64, n = w * h
        var im = Image(width: w, height: h, rgb: [Float](repeating: 0.8, count: n) + [Float](repeating: 0.55, count: n) + [Float](repeating: 0.42, count: n))
        var noise = PriorRNG(seed: 3)
        for i in 0..<(3 * n) { im.rgb[i] += 0.02 * Float(noise.uniform() - 0.5) }
        func paint(_ x0: Int, _ y0: Int, _ rgb: (Int, Int) -> (Float, Float, Float)) {
            for y in y0..<(y0 + 18) { for x in x0..<(x0 + 18) { let v = rgb(x, y); im.rgb[y * w + x] = v.0; im.rgb[n + y * w + x] = v.1; im.rgb[2 * n + y * w + x] = v.2 } }
        }
        paint(1, 1) { _, _ in (0.97, 0.9, 0.86) }                                  // shine
        paint(22, 1) { x, _ in x % 4 < 2 ? (0.95, 0.93, 0.92) : (0.55, 0.54, 0.53) } // grey strands
        paint(43, 1) { _, _ in (0.5, 0.6, 0.9) }                                     // blue
        paint(1, 22) { _, _ in (0.35, 0.22, 0.15) }                                  // dark brown
        var sample = Mask(width: w, height: h, fill: 0)
        for y in 44..<62 { for x in 4..<60 { sample.values[y * w + x] = 1 } }
        let plain = try SwapGeometry.skinLike(im, sample: sample)
        let lit = try SwapGeometry.skinLike(im, sample: sample, highlights: true)
        XCTAssertTrue(plain[50 * w + 30] && lit[50 * w + 30], "the sampled skin")
        XCTAssertFalse(plain[10 * w + 10], "shine fails the chroma test alone")
        XCTAssertTrue(lit[10 * w + 10], "and passes as a highlight")
        for at in [10 * w + 30, 10 * w + 32, 10 * w + 52, 31 * w + 10] {
            XCTAssertFalse(lit[at], "pixel \(at % w),\(at / w)")
            XCTAssertFalse(plain[at], "pixel \(at % w),\(at / w)")
        }
    }

    /// A smooth face on a grainy target takes grain on its skin (towards the target's fine
    /// detail, at most 1 % of full scale), nothing off it, the same grain for the same seed; a
    /// face already as detailed as the target is left as it is.
    func testGrainIsMatchedOnSkinOnly() throws {
        let w = 96, h = 96, n = w * h
        var rng = PriorRNG(seed: 11)
        var target = Image(width: w, height: h, rgb: [Float](repeating: 0.55, count: 3 * n))
        for i in 0..<n { let g = 0.03 * Float(rng.uniform() - 0.5); for c in 0..<3 { target.rgb[c * n + i] += g } }
        let smooth = Image(width: w, height: h, rgb: [Float](repeating: 0.5, count: 3 * n))
        let skin = Region(width: w, height: h, bits: (0..<n).map { ($0 % w) < 64 })
        let grained = try SwapGeometry.matchedGrain(smooth, like: target, skin: skin, seed: 1)
        let inside = Region(width: w, height: h, bits: (0..<n).map { ($0 % w) > 4 && ($0 % w) < 58 })
        let before = try XCTUnwrap(try SwapGeometry.grainStrength(smooth, region: inside))
        let after = try XCTUnwrap(try SwapGeometry.grainStrength(grained, region: inside))
        let wanted = try XCTUnwrap(try SwapGeometry.grainStrength(target, region: inside))
        XCTAssertEqual(before, 0, accuracy: 1e-6)
        XCTAssertGreaterThan(after, 0.3 * wanted)
        XCTAssertLessThan(after, 1.2 * wanted)
        for y in 0..<h { for x in 72..<w { XCTAssertEqual(grained.rgb[y * w + x], 0.5, "off the skin") } }
        XCTAssertEqual(grained.rgb, try SwapGeometry.matchedGrain(smooth, like: target, skin: skin, seed: 1).rgb)
        XCTAssertNotEqual(grained.rgb, try SwapGeometry.matchedGrain(smooth, like: target, skin: skin, seed: 2).rgb)
        XCTAssertEqual(try SwapGeometry.matchedGrain(target, like: target, skin: skin, seed: 1).rgb, target.rgb)
        XCTAssertFalse(grained.rgb.contains { !$0.isFinite })
    }

    func testAlphaIsKeptAndOutsidePixelsAreExact() throws {
        let target = try photo("obama2_rgba.png")
        XCTAssertNotNil(target.alpha)
        let (out, _) = try FaceSwap(options: fast()).run(source: try photo("grace_hopper.jpg"), target: target)
        XCTAssertEqual(out.alpha, target.alpha)
        XCTAssertNotEqual(out.rgb, target.rgb)
    }

    func testAGreyTargetStaysGrey() throws {
        let target = try photo("camera.png")
        XCTAssertEqual(target.sourceFormat?.isGrey, true)
        let (out, report) = try FaceSwap(options: fast()).run(source: try photo("obama.jpg"), target: target)
        XCTAssertEqual(report.faces.count, 1)
        XCTAssertTrue(out.isGrey)
        XCTAssertNotEqual(out.rgb, target.rgb)
    }

    func testSameSeedSameBytesWithDiffusion() throws {
        var o = FaceSwapOptions()
        o.steps = 10
        o.strength = 0.2
        o.maxWorkSize = 256
        o.seed = 3
        let a = try FaceSwap(options: o).run(source: try photo("biden.jpg"), target: try photo("astronaut.png")).0
        let b = try FaceSwap(options: o).run(source: try photo("biden.jpg"), target: try photo("astronaut.png")).0
        XCTAssertEqual(a.rgb, b.rgb)
        o.seed = 4
        let c = try FaceSwap(options: o).run(source: try photo("biden.jpg"), target: try photo("astronaut.png")).0
        XCTAssertNotEqual(a.rgb, c.rgb, "the seed reaches the sampler")
    }

    /// Each guidance energy, switched on alone, ends lower than with no guidance from the same
    /// start and noise.
    func testEachGuidanceLowersItsOwnEnergy() throws {
        var base = FaceSwapOptions()
        base.steps = 10
        base.strength = 0.3
        base.maxWorkSize = 256
        base.identityWeight = 0
        base.structureWeight = 0
        base.gazeWeight = 0
        base.detail = 0
        let source = try photo("biden.jpg"), target = try photo("astronaut.png")
        func refine(_ o: FaceSwapOptions) throws -> SwapRefiner.Refined {
            let swap = try FaceSwap(options: o)
            _ = try swap.run(source: source, target: target)
            return try XCTUnwrap(swap.lastRefinements.first)
        }
        let plain = try refine(base)
        func value(_ r: SwapRefiner.Refined, _ e: (Tensor) throws -> Tensor) throws -> Float {
            try Autograd.noGrad { try e(r.workResults[0].scaled(0.5, plus: 0.5)).values[0] }
        }
        let cases: [(String, WritableKeyPath<FaceSwapOptions, Double>, (SwapEnergies) -> (Tensor) throws -> Tensor)] = [
            ("identity", \.identityWeight, { e in e.identity }),
            ("structure", \.structureWeight, { e in e.structure }),
            ("gaze", \.gazeWeight, { e in e.gaze }),
        ]
        for (name, key, energy) in cases {
            var o = base
            o[keyPath: key] = 3
            let guided = try refine(o)
            let before = try value(plain, energy(plain.energies)), after = try value(guided, energy(guided.energies))
            XCTAssertTrue(before.isFinite && after.isFinite, name)
            XCTAssertLessThan(after, before, "\(name) energy with its guidance")
        }
    }

    func testSeveralSourcesAndAllTargetFaces() throws {
        var o = fast()
        o.targets = .all
        let r = try FaceSwap(options: o).run(sources: [try photo("obama.jpg"), try photo("obama3.jpg")], target: try photo("t1.jpg"))
        XCTAssertGreaterThanOrEqual(r.report.faces.count, 3)
        XCTAssertEqual(Set(r.report.faces.map(\.index)).count, r.report.faces.count)
        for f in r.report.faces { XCTAssertTrue((0...1).contains(f.sourcePhoto)) }
    }

    func testBadInputsAreOneLineErrors() throws {
        let swap = try FaceSwap(options: fast())
        XCTAssertThrowsError(try swap.run(source: try photo("coffee.png"), target: try photo("astronaut.png"))) { e in
            XCTAssertEqual((e as? GuiseError)?.category, .notFound)
            XCTAssertFalse("\(e)".contains("\n"))
        }
        XCTAssertThrowsError(try swap.run(source: try photo("astronaut.png"), target: try photo("chelsea.png"))) { e in
            XCTAssertEqual((e as? GuiseError)?.category, .notFound)
        }
        var o = fast()
        o.targets = .index(5)
        XCTAssertThrowsError(try FaceSwap(options: o).run(source: try photo("biden.jpg"), target: try photo("astronaut.png"))) { e in
            XCTAssertTrue("\(e)".contains("out of range"), "\(e)")
        }
        XCTAssertThrowsError(try FaceSwap(options: fast()).run(sources: [try photo("biden.jpg")], target: try photo("astronaut.png"),
                                                                reference: try photo("obama.jpg"))) { e in
            XCTAssertEqual((e as? GuiseError)?.category, .notFound)
        }
        var bad = FaceSwapOptions()
        bad.strength = 0
        XCTAssertThrowsError(try FaceSwap(options: bad))
    }

    func testReferenceSelectsTheMatchingFace() throws {
        var o = fast()
        o.referenceDistance = 0.6
        let r = try FaceSwap(options: o).run(sources: [try photo("biden.jpg")], target: try photo("obama.jpg"),
                                             reference: try photo("obama3.jpg"))
        XCTAssertEqual(r.report.faces.map(\.index), [0])
    }
}
