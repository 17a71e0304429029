import XCTest
@testable import GuiseDiffusion
import GuiseFormats
import GuiseNetworks
import GuisePrior
@testable import GuisePipelines
import GuiseTensor
import GuiseTestSupport

/// One guided DiffFace step against `Tools/reference_diffface.py`: small random-weight networks of
/// the public layouts saved as DiffFace's files, the same inputs (hash noise both sides make), the
/// same augmented views and replayed noise.
final class DiffFaceStepTests: XCTestCase {
    struct Setup {
        var step: SafeTensorsFile
        var model: DiffusionModel
        var experts: DiffFaceExperts
        var names: [String: String]
        var losses: DiffFaceLosses
        var target: Tensor, source: Tensor, mask: Tensor
        var views: [DiffFaceView]
        var t: Int, j: Int
    }

    static let shape = [1, 3, 256, 256]

    func setup() throws -> Setup {
        let dir = fixtureDirectory + "/diffface_step"
        let step = try SafeTensorsFile(path: dir + "/step.safetensors")
        let files = DiffFaceFiles(model: dir + "/Model.pt", arcface: dir + "/Arcface.tar", parser: dir + "/FaceParser.pth",
                                  gaze: dir + "/GazeEstimator.pt")
        let (experts, names) = try DiffFaceExperts.load(files)
        let model = try DiffusionModel.loadDiffFace(dir + "/Model.pt", config: dir + "/model.json")
        let target = fixtureNoise("diffface.target", Self.shape, scale: 0.8)
        let source = fixtureNoise("diffface.source", Self.shape, scale: 0.8)
        let box = try step.tensor("mask_box").values.map { Int($0) }
        var m = [Float](repeating: 0, count: 256 * 256)
        for y in box[0]..<box[1] { for x in box[2]..<box[3] { m[y * 256 + x] = 1 } }
        let mask = Tensor(shape: [1, 1, 256, 256], values: m)
        let b = try step.tensor("boxes").values.map { Int($0) }
        let boxes = [Array(b[0..<4]), Array(b[4..<8])]
        let losses = try DiffFaceLosses(experts: experts, target: target, mask: mask, source: source, eyeBoxes: boxes)

        let affine = try step.tensor("view_affine").values, affineUsed = try step.tensor("view_affine_used").values
        let persp = try step.tensor("view_perspective").values, perspUsed = try step.tensor("view_perspective_used").values
        let views = (0..<affineUsed.count).map { k in
            DiffFaceView(affine: affineUsed[k] != 0 ? Array(affine[6 * k..<6 * k + 6]) : nil,
                         perspective: perspUsed[k] != 0 ? Array(persp[9 * k..<9 * k + 9]) : nil)
        }
        return Setup(step: step, model: model, experts: experts, names: names, losses: losses, target: target, source: source,
                     mask: mask, views: views, t: Int(try step.tensor("t").item()), j: Int(try step.tensor("step").item()))
    }

    /// Compares a 256² result with the reference's values at its sampled places (the largest
    /// difference relative to their largest value within `tol`, the RMS difference within `rms`)
    /// and its float64 sum and sum of squares over everything.
    func assertSampled(_ actual: Tensor, _ name: String, _ s: SafeTensorsFile, tol: Float, rms: Float? = nil,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let idx = try s.tensor("\(name)_idx").values.map { Int($0) }
        let a = actual.contiguous().values
        let expected = try s.tensor("\(name)_val")
        let picked = idx.map { a[$0] }
        _ = assertClose(Tensor(shape: [idx.count], values: picked), expected, tol: tol, name, file: file, line: line)
        if let rms {
            let e = expected.values
            let scale = max(1, e.map(abs).max() ?? 1)
            let r = (zip(picked, e).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +) / Double(e.count)).squareRoot()
            XCTAssertLessThanOrEqual(r, Double(rms * scale), "\(name): RMS difference", file: file, line: line)
        }
        let sums = try s.tensor("\(name)_sums").values.map(Double.init)
        var sum = 0.0, sq = 0.0
        for v in a { sum += Double(v); sq += Double(v) * Double(v) }
        XCTAssertTrue(sum.isFinite && sq.isFinite, "\(name): not finite", file: file, line: line)
        // The sum of squares is a scale; the sum cancels, so it is held to the same scale.
        let scale = (sums[1] / Double(a.count)).squareRoot() * Double(a.count).squareRoot()
        XCTAssertEqual(sum, sums[0], accuracy: Double(tol) * 10 * max(scale, 1), "\(name): sum", file: file, line: line)
        XCTAssertEqual(sq, sums[1], accuracy: Double(tol) * 10 * sums[1], "\(name): sum of squares", file: file, line: line)
    }

    func testExpertsLoadFromDiffFaceFiles() throws {
        let s = try setup()
        XCTAssertNotNil(s.experts.identity)
        XCTAssertNotNil(s.experts.parser)
        XCTAssertNotNil(s.experts.gaze)
        XCTAssertTrue(s.names["identity"]?.contains("ArcFace IR-SE") ?? false, "\(s.names)")
        XCTAssertEqual(s.model.config.idDim, 32)
        XCTAssertTrue(s.model.config.rescaleTimesteps)
    }

    func testReferencesOfTheTargetAndSource() throws {
        let s = try setup()
        _ = assertClose(try XCTUnwrap(s.losses.sourceEmbedding), try s.step.tensor("source_embedding"), tol: 1e-4, "source embedding")
        try assertSampled(try XCTUnwrap(s.losses.targetParsing), "target_parsing", s.step, tol: 1e-4)
        _ = assertClose(Tensor.concat(s.losses.targetGaze, dim: 0), try s.step.tensor("target_gaze"), tol: 1e-4, "target gaze")
    }

    /// The loss terms, the gradient w.r.t. x_t back through the UNet (and through x̂0 only), the
    /// guided DDPM mean and the blend with the noised target.
    func testGuidedStepMatchesPyTorch() throws {
        let s = try setup()
        let d = try s.model.diffusion(respacing: "100")
        let noiseStart = fixtureNoise("diffface.noise_start", Self.shape, scale: Float(3).squareRoot())
        let noiseStep = fixtureNoise("diffface.noise_step", Self.shape, scale: Float(3).squareRoot())
        let noiseBlend = fixtureNoise("diffface.noise_blend", Self.shape, scale: Float(3).squareRoot())
        let xt = d.qSample(s.target, t: s.t, noise: noiseStart)
        let src = try XCTUnwrap(s.losses.sourceEmbedding)
        let tt = Tensor(shape: [1], repeating: d.networkTimestep(s.t))

        var grads: [String: Tensor] = [:]
        for mode in ["unet", "x0"] {
            let leaf = xt.detached().copy()
            leaf.requiresGrad = true
            let out = try s.model.denoiser(leaf, tt, ["id": src])
            var eps = splitChannels(out, 3).0
            if mode == "x0" { eps = eps.detached() }
            let x0 = d.predictXStart(xt: leaf, t: s.t, eps: eps)
            let xIn = d.diffFaceGuidanceImage(xStart: x0, xt: leaf, t: s.t)
            var terms: [String: Float] = [:]
            let e = try s.losses.energy(xIn, t: s.t, views: s.views) { terms[$0] = $1 }
            XCTAssertEqual(Set(terms.keys), ["identity", "semantic", "gaze", "background"])
            for (k, v) in terms {
                let ref = try s.step.tensor("\(mode)_term_\(k)").item()
                XCTAssertEqual(v, ref, accuracy: 1e-4 * max(1, abs(ref)), "\(mode) \(k)")
            }
            e.backward()
            let g = try XCTUnwrap(leaf.grad).scaled(-1)
            // Four networks with ReLU, PReLU and max-pool switches in float32 on both sides: a
            // few elements land on the other side of a switch (how many depends on the BLAS
            // thread count's summation order), so the largest difference is held to 2e-3 of the
            // scale and the typical one to 1e-4.
            try assertSampled(g, "\(mode)_grad", s.step, tol: 2e-3, rms: 1e-4)
            grads[mode] = g
        }
        // The gradient through the network differs from the one through x̂0 alone.
        let diff = (grads["unet"]! - grads["x0"]!).absolute().mean().item()
        XCTAssertGreaterThan(diff, 1e-3 * grads["unet"]!.absolute().mean().item())

        // The step as the sampler takes it, with the noise replayed.
        var o = SamplerOptions(method: .ddpm, clipDenoised: false, skipTimesteps: 25)
        o.conditioning["id"] = src
        let losses = s.losses, views = s.views
        o.guidance = Guidance(image: .diffFace, gradient: .throughDenoiser) { x, ctx in try losses.energy(x, t: ctx.t, views: views) }
        let (next, predX0) = try d.reverseStep(s.model.denoiser, x: xt, t: s.t, step: s.j, options: o, noise: ReplayNoise([noiseStep]))
        try assertSampled(predX0, "pred_xstart", s.step, tol: 1e-4)
        let out = try Autograd.noGrad { try s.model.denoiser(xt, tt, ["id": src]) }
        let p = try d.predict(out, xt: xt, t: s.t, clip: false)
        try assertSampled(p.mean + p.variance * grads["unet"]!, "mean", s.step, tol: 2e-3, rms: 1e-4)
        let ramp = MaskBlend.diffFace(mask: s.mask, stepsRun: 75, maskingThreshold: 30)
        let blended = d.blend(next, input: s.target, mask: ramp.mask(step: s.j, t: s.t), t: s.t, noise: noiseBlend)
        try assertSampled(blended, "blended", s.step, tol: 2e-3, rms: 1e-4)
    }

    /// The views are DiffFace's kind: at most one affine and one perspective warp each, about
    /// 70 % of views with each, drawn the same for the same seed.
    func testRandomViews() {
        var g1 = PriorRNG(seed: 3), g2 = PriorRNG(seed: 3)
        let a = DiffFaceView.random(count: 200, generator: &g1), b = DiffFaceView.random(count: 200, generator: &g2)
        XCTAssertEqual(a, b)
        let affine = a.filter { $0.affine != nil }.count, persp = a.filter { $0.perspective != nil }.count
        XCTAssertTrue((110...170).contains(affine), "\(affine)")
        XCTAssertTrue((110...170).contains(persp), "\(persp)")
        // A homography made from corners maps them where asked.
        let from = [(-0.5, -0.7), (0.9, -0.6), (0.6, 0.8), (-0.8, 0.5)], to = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]
        let h = DiffFaceView.homography(from: from, to: to)
        for (p, q) in zip(from, to) {
            let w = h[6] * p.0 + h[7] * p.1 + h[8]
            XCTAssertEqual((h[0] * p.0 + h[1] * p.1 + h[2]) / w, q.0, accuracy: 1e-9)
            XCTAssertEqual((h[3] * p.0 + h[4] * p.1 + h[5]) / w, q.1, accuracy: 1e-9)
        }
    }

    func testEyeBoxesFollowDiffFaceRounding() throws {
        var pts = [(x: Double, y: Double)](repeating: (0, 0), count: 68)
        pts[36] = (80.7, 110.2); pts[39] = (110.3, 111.9); pts[42] = (140.5, 112.4); pts[45] = (171.9, 109.0)
        let b = try XCTUnwrap(DiffFaceLosses.eyeBoxes(ibug68: pts))
        // x: int(x) ∓ 5; y: (y36 + y39) // 2 = 111, then int(111 ∓ 9).
        XCTAssertEqual(b[0], [75, 102, 115, 120])
        XCTAssertEqual(b[1], [135, 101, 176, 119])
        XCTAssertNil(DiffFaceLosses.eyeBoxes(ibug68: Array(pts.prefix(10))))
    }

    func testFilesFromAFolder() throws {
        let dir = temporaryPath("diffface-folder")
        try? FileManager.default.removeItem(atPath: dir)
        XCTAssertThrowsError(try DiffFaceFiles(directory: dir))
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        XCTAssertThrowsError(try DiffFaceFiles(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("none of DiffFace's"), "\(e)")
        }
        _ = FileManager.default.createFile(atPath: dir + "/Model.pt", contents: Data([1]))
        _ = FileManager.default.createFile(atPath: dir + "/Arcface.tar", contents: Data([1]))
        let f = try DiffFaceFiles(directory: dir)
        XCTAssertEqual(f.model, dir + "/Model.pt")
        XCTAssertEqual(f.arcface, dir + "/Arcface.tar")
        XCTAssertNil(f.parser)
        XCTAssertEqual(f.overriding(with: DiffFaceFiles(arcface: "/x")).arcface, "/x")
        // Experts without the UNet guide the embedded swap with its own settings.
        var o = FaceSwapOptions()
        o.useDiffFace(DiffFaceFiles(arcface: "/x"))
        XCTAssertNoThrow(try o.validate())
        XCTAssertEqual(o.samples, 1)
        o.useDiffFace(f)
        XCTAssertEqual(o.samples, 4)
    }
}
