import Foundation
import XCTest
import GuiseFace
import GuiseVision
import GuiseFormats
import GuiseImage
import GuiseTensor
import GuiseTestSupport

/// End to end on the embedded networks: BlazeFace → mesh and iris → dlib identity.
final class FaceAnalysisTests: XCTestCase {
    static var store: ModelStore?

    func models() throws -> ModelStore {
        if let s = Self.store { return s }
        let s = try ModelStore(directory: repoRoot + "/Models")
        Self.store = s
        return s
    }

    func mirrored(_ image: Image) -> Image {
        var out = image
        let w = image.width
        for c in 0..<3 {
            for y in 0..<image.height {
                for x in 0..<w {
                    out.rgb[(c * image.height + y) * w + x] = image.rgb[(c * image.height + y) * w + (w - 1 - x)]
                }
            }
        }
        return out
    }

    func testBlazeFaceFindsTheAstronautOnly() throws {
        let image = try sample("astronaut.png")
        for ranges in [[BlazeFaceDetector.Range.short], [.full]] {
            let faces = try BlazeFaceDetector(ranges: ranges, store: models()).detect(image)
            XCTAssertEqual(faces.count, 1, "\(ranges)")
            guard let f = faces.first else { continue }
            // The face (brow to chin, cheek to cheek) lies at about x 155–285, y 50–185.
            XCTAssertGreaterThan(f.box.x, 140, "\(ranges)")
            XCTAssertLessThan(f.box.x + f.box.width, 300, "\(ranges)")
            XCTAssertGreaterThan(f.box.y, 35, "\(ranges)")
            XCTAssertLessThan(f.box.y + f.box.height, 200, "\(ranges)")
            XCTAssertGreaterThan(f.box.width, 70)
            let l = try XCTUnwrap(f.keypoints[KeypointName.leftEye]), r = try XCTUnwrap(f.keypoints[KeypointName.rightEye])
            XCTAssertLessThan(l.x, r.x, "image-left eye first")
            XCTAssertTrue(f.box.contains(try XCTUnwrap(f.keypoints[KeypointName.nose])))
        }
    }

    func testNoFaceInACoffeeCup() throws {
        XCTAssertEqual(try BlazeFaceDetector(store: models()).detect(sample("coffee.png")).count, 0)
    }

    func testMeshIrisAndPointSetsFallOnTheFace() throws {
        let image = try sample("astronaut.png")
        let face = try XCTUnwrap(BlazeFaceDetector(store: models()).detect(image).first)
        let lm = try FaceAnalyzer(store: models()).landmarks(image, face: face)
        XCTAssertEqual(lm.mesh.count, 468)
        XCTAssertGreaterThan(lm.presence, 0.9)
        // The mesh covers forehead to chin, so it may leave the detector's box a little; 15% margin.
        let b = face.box
        let grown = Box(x: b.x - 0.15 * b.width, y: b.y - 0.15 * b.height, width: 1.3 * b.width, height: 1.3 * b.height)
        XCTAssertTrue(lm.mesh.allSatisfy { grown.contains($0.xy) })
        let inside = lm.mesh.filter { b.contains($0.xy) }.count
        XCTAssertGreaterThan(inside, 468 * 8 / 10)
        // Each iris centre lies within its eye's contour box, the image-left one left of the other.
        for eye in [lm.leftEye, lm.rightEye] {
            XCTAssertEqual(eye.contour.count, 71)
            XCTAssertEqual(eye.iris.count, 5)
            let xs = eye.contour.map(\.x), ys = eye.contour.map(\.y)
            XCTAssertTrue(xs.min()! < eye.irisCentre.x && eye.irisCentre.x < xs.max()!)
            XCTAssertTrue(ys.min()! < eye.irisCentre.y && eye.irisCentre.y < ys.max()!)
        }
        XCTAssertLessThan(lm.leftEye.irisCentre.x, lm.rightEye.irisCentre.x)
        // She looks roughly at the camera: the iris within a quarter eye width of the eye's middle.
        for g in try lm.gazePerEye() {
            XCTAssertLessThan(abs(g.x), 0.25)
            XCTAssertLessThan(abs(g.y), 0.5)
        }
        XCTAssertEqual(try lm.ibug68().count, 68)
        let five = try lm.fivePoints()
        XCTAssertEqual(five.count, 5)
        XCTAssertTrue(five.values.allSatisfy { b.contains($0) })
        // The mesh's eyes agree with BlazeFace's to a fraction of the eye distance.
        let eyeDistance = five[KeypointName.rightEye]!.x - five[KeypointName.leftEye]!.x
        for name in [KeypointName.leftEye, KeypointName.rightEye] {
            let p = five[name]!, q = face.keypoints[name]!
            XCTAssertLessThan(((p.x - q.x) * (p.x - q.x) + (p.y - q.y) * (p.y - q.y)).squareRoot(), 0.2 * eyeDistance, name)
        }
    }

    /// The gaze expert on the image tensor agrees with the plain pipeline, and its gradient
    /// with a central difference along the gradient's own direction.
    func testGazeFeaturesAreDifferentiableInTheImage() throws {
        let image = try sample("astronaut.png")
        let face = try XCTUnwrap(BlazeFaceDetector(store: models()).detect(image).first)
        let analyzer = try FaceAnalyzer(store: models())
        let lm = try analyzer.landmarks(image, face: face)
        let x = ImageTensor.tensor(image)
        let plain = try lm.gazePerEye()
        let tensor = try Autograd.noGrad { try analyzer.gazeFeatures(x, at: lm) }.values
        XCTAssertEqual(tensor.count, 4)
        for (k, p) in plain.enumerated() {
            // The plain pipeline crops in 8 bits (as MediaPipe), the tensor path in float.
            XCTAssertEqual(Double(tensor[2 * k]), p.x, accuracy: 0.01)
            XCTAssertEqual(Double(tensor[2 * k + 1]), p.y, accuracy: 0.02)
        }
        // Loss: the image-left eye's horizontal feature.
        func loss(_ t: Tensor) throws -> Tensor { try analyzer.gazeFeatures(t, at: lm).slice(dim: 0, start: 0, end: 1).slice(dim: 1, start: 0, end: 1).sum() }
        let (_, g) = try valueAndGradient(at: x, loss)
        let norm = g.values.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
        XCTAssertGreaterThan(norm, 0)
        // x ± h·ĝ with h chosen so the feature moves by about 0.01 eye widths: the slope is |g|.
        let h = 0.01 / norm
        var f: [Double] = []
        for sign in [1.0, -1.0] {
            let step = Float(sign * h / norm)
            let shifted = Tensor(shape: x.shape, values: zip(x.values, g.values).map { $0 + step * $1 })
            f.append(Double(try Autograd.noGrad { try loss(shifted) }.item()))
        }
        let slope = (f[0] - f[1]) / (2 * h)
        print("gaze gradient: |g| \(norm), central difference along ĝ \(slope)")
        XCTAssertEqual(slope, norm, accuracy: 0.1 * norm)
    }

    /// The identity expert on the image tensor agrees with dlib's chip path and has a gradient
    /// that matches a central difference along its own direction.
    func testIdentityIsDifferentiableInTheImage() throws {
        let image = try sample("astronaut.png")
        let face = try XCTUnwrap(BlazeFaceDetector(store: models()).detect(image).first)
        let points = try FaceAnalyzer(store: models()).landmarks(image, face: face).dlib5()
        let identity = try FaceIdentity(store: models())
        let reference = try identity.descriptor(image, dlib5: points)
        let x = ImageTensor.tensor(image)
        let target = Tensor(shape: [1, 128], values: reference)
        // Loss: the squared distance to a descriptor nudged away from the face's own.
        let nudged = target + Tensor(shape: [1, 128], values: (0..<128).map { Float($0 % 2 == 0 ? 0.05 : -0.05) })
        func loss(_ t: Tensor) throws -> Tensor {
            let d = try identity.descriptor(t, dlib5: points) - nudged
            return (d * d).sum()
        }
        let own = try Autograd.noGrad { try identity.descriptor(x, dlib5: points) }.values
        let gap = FaceIdentity.distance(own, reference)
        print("identity expert vs dlib chip path: distance \(gap)")
        XCTAssertLessThan(gap, 0.02)
        let (_, g) = try valueAndGradient(at: x, loss)
        let norm = g.values.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
        XCTAssertGreaterThan(norm, 0)
        let h = 0.01 / norm
        var f: [Double] = []
        for sign in [1.0, -1.0] {
            let step = Float(sign * h / norm)
            let shifted = Tensor(shape: x.shape, values: zip(x.values, g.values).map { $0 + step * $1 })
            f.append(Double(try Autograd.noGrad { try loss(shifted) }.item()))
        }
        let slope = (f[0] - f[1]) / (2 * h)
        print("identity gradient: |g| \(norm), central difference along ĝ \(slope)")
        XCTAssertEqual(slope, norm, accuracy: 0.1 * norm)
    }

    func descriptor(_ image: Image) throws -> [Float] {
        let face = try XCTUnwrap(BlazeFaceDetector(store: models()).detect(image).first)
        let lm = try FaceAnalyzer(store: models()).landmarks(image, face: face)
        return try FaceIdentity(store: models()).descriptor(image, dlib5: lm.dlib5())
    }

    func testIdentityOfAMirrorAndOfAnotherPerson() throws {
        let astronaut = try sample("astronaut.png")
        let a = try descriptor(astronaut)
        XCTAssertEqual(a.count, 128)
        let mirror = FaceIdentity.distance(a, try descriptor(mirrored(astronaut)))
        let other = FaceIdentity.distance(a, try descriptor(sample("messi5.jpg")))
        print("identity distances: astronaut vs mirror \(mirror), vs messi5 \(other)")
        XCTAssertLessThan(mirror, 0.6)
        XCTAssertGreaterThan(other, 0.6)
    }
}
