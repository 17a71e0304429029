import XCTest
import GuiseFace
import GuiseImage
@testable import GuisePipelines
import GuiseTensor
import GuiseTestSupport
import GuiseVision

/// A user's DiffFace experts guiding the embedded swap (small random-weight networks saved as
/// DiffFace saves them; their values mean nothing, their plumbing is what is checked).
final class SwapExpertGuideTests: XCTestCase {
    static let dir = fixtureDirectory + "/diffface_step"
    static let files = DiffFaceFiles(arcface: dir + "/Arcface.tar", parser: dir + "/FaceParser.pth", gaze: dir + "/GazeEstimator.pt")

    func landmarks(_ image: Image) throws -> FaceLandmarks {
        try FaceAnalyzer().landmarks(image, face: try BlazeFaceDetector().detect(image)[0])
    }

    func guide(target: Image, source: Image, options: FaceSwapOptions = FaceSwapOptions()) throws -> SwapExpertGuide {
        let (experts, names) = try DiffFaceExperts.load(Self.files)
        return try SwapExpertGuide(experts: experts, names: names, target: target, targetLM: try landmarks(target),
                                   sources: [(source, try landmarks(source))], options: options)
    }

    func testComposedTransformIsTheTwoInTurn() {
        let a = AffineTransform([0.8, -0.3, 12, 0.25, 1.1, -4]), b = AffineTransform([1.5, 0.2, -7, -0.1, 0.9, 3])
        let c = SwapExpertGuide.composed(a, b)
        for p in [Point(0, 0), Point(10, -3), Point(-2.5, 40)] {
            let q = a.apply(b.apply(p)), r = c.apply(p)
            XCTAssertEqual(q.x, r.x, accuracy: 1e-9)
            XCTAssertEqual(q.y, r.y, accuracy: 1e-9)
        }
    }

    /// The tensor crop of a window of the photo is the photo's own aligned crop, wherever the
    /// window reaches (OpenCV rounds sample positions to 1/32 pixel, so values differ a little).
    func testWindowCropIsThePhotosAlignedCrop() throws {
        let target = try sample("astronaut.png"), source = try sample("biden.jpg")
        let g = try guide(target: target, source: source)
        let x0 = 120, y0 = 20, w = 300, h = 300
        let window = try target.with(alpha: nil).cropped(x: x0, y: y0, width: w, height: h)
        let toImage = AffineTransform([1, 0, Double(x0), 0, 1, Double(y0)])
        let crop = try g.crop(ImageTensor.tensor(window), toImage: toImage).values
        let expected = ImageTensor.tensor(try target.with(alpha: nil).warpedAffine(g.imageToCrop, width: 256, height: 256,
                                                                                  interpolation: .linear, border: .replicate),
                                          range: .signed).values
        let back = try g.imageToCrop.inverted()
        var compared = 0, worst: Float = 0, sum: Float = 0
        for y in 0..<256 {
            for x in 0..<256 {
                let p = back.apply(Point(Double(x), Double(y)))
                guard p.x > Double(x0 + 2), p.y > Double(y0 + 2), p.x < Double(x0 + w - 3), p.y < Double(y0 + h - 3) else { continue }
                for c in 0..<3 {
                    let i = c * 65536 + y * 256 + x
                    let d = abs(crop[i] - expected[i])
                    XCTAssertFalse(d.isNaN)
                    worst = max(worst, d); sum += d; compared += 1
                }
            }
        }
        XCTAssertGreaterThan(compared, 3 * 256 * 200, "the window covers most of the crop")
        XCTAssertLessThan(sum / Float(compared), 4e-3, "mean difference (signed range)")
        XCTAssertLessThan(worst, 0.08, "largest difference (signed range)")
    }

    /// Each term's gradient, through the crop into a half-size work image, against a central
    /// difference along the gradient itself. The step is small because EyeNet (batch statistics
    /// over one crop, random weights) curves sharply: at 2e-3 its difference is a third off.
    func testEnergyGradientAgreesWithADifference() throws {
        let target = try sample("astronaut.png"), source = try sample("biden.jpg")
        let full = try guide(target: target, source: source)
        XCTAssertTrue(full.replacesIdentity)
        XCTAssertTrue(full.replacesGaze)
        XCTAssertTrue(full.isActive)
        let x0 = 140, y0 = 30
        let window = try target.with(alpha: nil).cropped(x: x0, y: y0, width: 256, height: 256)
        // A half-size work image: work pixel u ↦ window (u + 0.5)·2 − 0.5.
        let toImage = AffineTransform([2, 0, 0.5 + Double(x0), 0, 2, 0.5 + Double(y0)])
        let x = ImageTensor.tensor(try window.resized(width: 128, height: 128))
        let views = [DiffFaceView(affine: [0.98, 0.05, 0.02, -0.05, 0.98, -0.03])]
        for term in ["identity", "semantic", "gaze"] {
            var g = full
            if term != "identity" { g.losses.weights.identity = 0 }
            if term != "semantic" { g.losses.weights.semantic = 0 }
            if term != "gaze" { g.losses.weights.gaze = 0 }
            var terms: [String: Float] = [:]
            let (value, grad) = try valueAndGradient(at: x) { try g.energy($0, toImage: toImage, views: views) { terms[$0] = $1 } }
            XCTAssertEqual(Array(terms.keys), [term])
            XCTAssertTrue(value.item().isFinite, term)
            let gv = grad.values
            let norm = gv.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            XCTAssertTrue(norm.isFinite && norm > 0, "\(term): gradient norm \(norm)")
            let dir = gv.map { Float(Double($0) / norm) }
            func e(_ s: Double) throws -> Double {
                let moved = Tensor(shape: x.shape, values: zip(x.values, dir).map { $0 + Float(s) * $1 })
                return Double(try Autograd.noGrad { try g.energy(moved, toImage: toImage, views: views) }.item())
            }
            let h = 5e-4
            let numeric = (try e(h) - e(-h)) / (2 * h)
            XCTAssertEqual(numeric, norm, accuracy: 0.03 * norm, "\(term): directional derivative")
        }
    }

    /// With the experts alone (no DiffFace UNet) the embedded swap keeps its settings, the
    /// experts do their jobs, samples are ranked by ArcFace, and identity guidance lowers
    /// ArcFace's distance.
    func testExpertsGuideTheEmbeddedSwap() throws {
        var o = FaceSwapOptions()
        o.useDiffFace(Self.files)
        XCTAssertNoThrow(try o.validate())
        XCTAssertEqual(o.steps, FaceSwapOptions().steps, "the embedded swap's settings stay")
        XCTAssertFalse(o.gradientThroughNetwork)
        o.strength = 0.3
        o.maxWorkSize = 256
        o.detail = 0
        o.samples = 2
        let source = try sample("biden.jpg"), target = try sample("astronaut.png")
        let swap = try FaceSwap(options: o)
        let out = try swap.run(sources: [source], target: target)
        let experts = try XCTUnwrap(out.report.experts)
        XCTAssertTrue(experts["identity"]?.contains("ArcFace") ?? false, "\(experts)")
        XCTAssertTrue(experts["gaze"]?.contains("EyeNet") ?? false, "\(experts)")
        XCTAssertTrue(experts["semantic"]?.contains("BiSeNet") ?? false, "\(experts)")
        XCTAssertEqual(experts["structure"], "face mesh (embedded)")
        let terms = try XCTUnwrap(out.report.lossTerms)
        XCTAssertEqual(Set(terms.keys), ["identity", "parsing", "gaze", "structure"])
        XCTAssertTrue(terms.values.allSatisfy(\.isFinite))
        let d = out.report.faces[0].sampleDistances
        XCTAssertEqual(d.count, 2)
        XCTAssertLessThanOrEqual(d[0], d[1], "best first")
        XCTAssertTrue(d.allSatisfy { $0 >= 0 && $0 <= 2 }, "ArcFace's 1 − cos: \(d)")

        func distance(identityWeight: Double) throws -> Double {
            var p = o
            p.samples = 1
            p.identityWeight = identityWeight
            p.structureWeight = 0
            p.gazeWeight = 0
            return try FaceSwap(options: p).run(sources: [source], target: target).report.faces[0].sampleDistances[0]
        }
        let plain = try distance(identityWeight: 0), guided = try distance(identityWeight: 3)
        XCTAssertLessThan(guided, plain, "ArcFace identity guidance brings the result closer to the source")
    }
}
