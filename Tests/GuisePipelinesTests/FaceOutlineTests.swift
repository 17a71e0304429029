import XCTest
import GuiseFace
import GuiseImage
@testable import GuisePipelines
import GuiseTestSupport
import GuiseVision

final class FaceOutlineTests: XCTestCase {
    func testSimilarity3RecoversARotationScaleAndShift() {
        // A rotation about z then about x (so about a skew axis), scale 1.7 and a shift.
        let cz = cos(0.6), sz = sin(0.6), cx = cos(0.4), sx = sin(0.4)
        let rz: [[Double]] = [[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]
        let rx: [[Double]] = [[1, 0, 0], [0, cx, -sx], [0, sx, cx]]
        var r = [[Double]](repeating: [0, 0, 0], count: 3)
        for i in 0..<3 { for j in 0..<3 { for k in 0..<3 { r[i][j] += rx[i][k] * rz[k][j] } } }
        var a: [Point3] = [], b: [Point3] = []
        for i in 0..<12 {
            let u: [Double] = [Double(i * 7 % 11) - 5, Double(i * 5 % 13) - 6, Double(i * 3 % 7) - 3]
            var v: [Double] = [4, -2, 9]
            for row in 0..<3 { for k in 0..<3 { v[row] += 1.7 * r[row][k] * u[k] } }
            a.append(Point3(u[0], u[1], u[2]))
            b.append(Point3(v[0], v[1], v[2]))
        }
        let fit = FaceOutline.similarity3(a, b)
        for (p, q) in zip(a, b) {
            let m = fit(p)
            XCTAssertTrue(m.x.isFinite && m.y.isFinite && m.z.isFinite)
            XCTAssertEqual(m.x, q.x, accuracy: 1e-6)
            XCTAssertEqual(m.y, q.y, accuracy: 1e-6)
            XCTAssertEqual(m.z, q.z, accuracy: 1e-6)
        }
    }

    struct Case {
        var target: Image
        var targetMesh: [Point3]
        var sourceMesh: [Point3]
        var faceWidth: Double
    }

    /// A wide-jawed man (Biden) onto a narrow-faced woman (Eileen Collins).
    func realCase() throws -> Case {
        let analyzer = try FaceAnalyzer(), detector = try BlazeFaceDetector()
        let src = try sample("biden.jpg"), dst = try sample("astronaut.png")
        let ls = try analyzer.landmarks(src, face: try detector.detect(src)[0]).mesh
        let lt = try analyzer.landmarks(dst, face: try detector.detect(dst)[0]).mesh
        let xs = MeshRegions.faceOval.map { lt[$0].x }
        return Case(target: dst, targetMesh: lt, sourceMesh: ls, faceWidth: xs.max()! - xs.min()!)
    }

    /// The outline's widths move towards those of the source's face fitted onto the target's
    /// (measured along the eye line), never by more than the cap; the inner features stay; and
    /// the reshaped photo really shows the old outline's pixels at the new outline.
    func testOutlineMovesTowardsTheSourcesAndThePhotoFollows() throws {
        let c = try realCase()
        guard let o = try FaceOutline(target: c.targetMesh, source: c.sourceMesh, strength: 1, faceWidth: c.faceWidth) else {
            return XCTFail("a man's outline on a woman's face moves")
        }
        let fit = FaceOutline.similarity3(FaceOutline.anchors.map { c.sourceMesh[$0] }, FaceOutline.anchors.map { c.targetMesh[$0] })
        let goal = MeshRegions.faceOval.map { fit(c.sourceMesh[$0]).xy }
        let le = c.targetMesh[33], re = c.targetMesh[263], el = hypot(re.x - le.x, re.y - le.y)
        func sideways(_ p: Point, _ q: Point) -> Double { abs(((q.x - p.x) * (re.x - le.x) + (q.y - p.y) * (re.y - le.y)) / el) }
        var before = 0.0, after = 0.0, largest = 0.0
        for i in o.old.indices {
            let shift = hypot(o.new[i].x - o.old[i].x, o.new[i].y - o.old[i].y)
            XCTAssertTrue(shift.isFinite)
            XCTAssertLessThanOrEqual(shift, FaceOutline.maxShift * c.faceWidth + 1e-9)
            largest = max(largest, shift)
            before += sideways(o.old[i], goal[i])
            after += sideways(o.new[i], goal[i])
        }
        XCTAssertGreaterThan(largest, 0.01 * c.faceWidth, "the jaw moves visibly")
        XCTAssertLessThan(after, 0.8 * before, "the outline's widths come closer to the source's")
        for k in FaceOutline.held {
            let p = c.targetMesh[k].xy, q = o.apply(p)
            XCTAssertEqual(hypot(q.x - p.x, q.y - p.y), 0, accuracy: 1e-3, "held point \(k) stays")
        }
        for (i, k) in MeshRegions.faceOval.enumerated() {
            let q = o.apply(c.targetMesh[k].xy)
            XCTAssertEqual(hypot(q.x - o.new[i].x, q.y - o.new[i].y), 0, accuracy: 1e-3, "outline point \(k) lands on its goal")
        }
        // A photo whose red and green planes encode each pixel's own position: at each new
        // outline point the reshaped photo must show the old point's position.
        let w = c.target.width, h = c.target.height, n = w * h
        var rgb = [Float](repeating: 0, count: 3 * n)
        for y in 0..<h { for x in 0..<w { rgb[y * w + x] = Float(x); rgb[n + y * w + x] = Float(y) } }
        let (coords, _) = try o.reshape(Image(width: w, height: h, rgb: rgb))
        var worst = 0.0
        for (p, q) in zip(o.new, o.old) {
            let x = Int(p.x.rounded()), y = Int(p.y.rounded())
            guard x >= 0, y >= 0, x < w, y < h else { continue }
            // The pixel centre is up to half a pixel from the point; the map's slope is about 1.
            let sx = Double(coords.rgb[y * w + x]) + (p.x - Double(x)), sy = Double(coords.rgb[n + y * w + x]) + (p.y - Double(y))
            XCTAssertTrue(sx.isFinite && sy.isFinite)
            worst = max(worst, hypot(sx - q.x, sy - q.y))
        }
        XCTAssertLessThan(worst, 0.75, "worst outline point, pixels")
    }

    /// Only pixels within the band change; every other pixel keeps its bits; the same inputs
    /// give the same bytes; nothing is NaN.
    func testPixelsBeyondTheBandAreBitExactAndDeterministic() throws {
        let c = try realCase()
        guard let o = try FaceOutline(target: c.targetMesh, source: c.sourceMesh, strength: 1, faceWidth: c.faceWidth) else {
            return XCTFail("the outline moves")
        }
        let (a, changed) = try o.reshape(c.target)
        let (b, _) = try o.reshape(c.target)
        XCTAssertEqual(a.rgb, b.rgb)
        XCTAssertTrue(a.rgb.allSatisfy(\.isFinite))
        let w = c.target.width, n = w * c.target.height
        let limit = (FaceOutline.maxShift + FaceOutline.band) * c.faceWidth
        var differing = 0
        for i in 0..<n {
            let differs = (0..<3).contains { a.rgb[$0 * n + i] != c.target.rgb[$0 * n + i] }
            guard differs else { continue }
            differing += 1
            XCTAssertEqual(changed.values[i], 1, "a changed pixel is in the mask")
            let p = Point(Double(i % w), Double(i / w))
            if !FaceOutline.contains(o.old, p) {
                let d = FaceOutline.distance(p, to: o.old)
                XCTAssertLessThanOrEqual(d, limit + 1, "changed pixel \(p) is \(d) px outside the outline")
                if d > limit + 1 { break }
            }
        }
        XCTAssertGreaterThan(differing, 100)
        XCTAssertNil(try FaceOutline(target: c.targetMesh, source: c.sourceMesh, strength: 0, faceWidth: c.faceWidth))
        var bad = FaceSwapOptions()
        bad.outline = 1.5
        XCTAssertThrowsError(try bad.validate())
        bad.outline = -0.1
        XCTAssertThrowsError(try bad.validate())
    }

    /// The whole swap with the outline moved: background beyond 15 % of the face width outside
    /// the target's face is bit-exact, and two runs give the same bytes.
    func testSwapWithOutlineKeepsTheBackgroundAndIsDeterministic() throws {
        let target = try sample("astronaut.png"), source = try sample("biden.jpg")
        var o = FaceSwapOptions()
        o.diffusion = false
        o.outline = 1
        let (out, _) = try FaceSwap(options: o).run(source: source, target: target)
        let (again, _) = try FaceSwap(options: o).run(source: source, target: target)
        XCTAssertEqual(out.rgb, again.rgb)
        o.outline = 0
        let (flat, _) = try FaceSwap(options: o).run(source: source, target: target)
        XCTAssertNotEqual(out.rgb, flat.rgb, "the outline option does something")
        let lm = try FaceAnalyzer().landmarks(target, face: try BlazeFaceDetector().detect(target)[0])
        let xs = lm.mesh.map(\.x), faceWidth = xs.max()! - xs.min()!
        let allowed = try FaceMasks.mask(.face, mesh: lm.mesh, width: target.width, height: target.height)
            .dilated(radius: Int((0.15 * faceWidth).rounded()))
        let n = target.pixelCount
        var outside = 0
        for i in 0..<n where allowed.values[i] == 0 && (0..<3).contains(where: { out.rgb[$0 * n + i] != target.rgb[$0 * n + i] }) {
            outside += 1
        }
        XCTAssertEqual(outside, 0, "pixels changed outside the dilated face")
        XCTAssertTrue(out.rgb.allSatisfy(\.isFinite))
    }
}
