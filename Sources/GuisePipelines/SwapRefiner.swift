import Foundation
import GuiseDiffusion
import GuiseFace
import GuiseImage
import GuisePrior
import GuiseTensor
import GuiseVision

/// The diffusion half of a swap: SDEdit from the geometric composite, the region outside the
/// mask re-imposed from the noised composite before every step (so it stays the target), and
/// classifier guidance on x̂0 from the embedded experts.
final class SwapRefiner {
    let model: DiffusionModel
    let analyzer: FaceAnalyzer
    let identity: FaceIdentity
    let options: FaceSwapOptions
    /// A user's experts doing the jobs they can in place of the embedded ones.
    var guide: SwapExpertGuide?
    var progress: ((Int, Int) -> Void)?

    init(model: DiffusionModel, analyzer: FaceAnalyzer, identity: FaceIdentity, options: FaceSwapOptions) {
        self.model = model
        self.analyzer = analyzer
        self.identity = identity
        self.options = options
    }

    struct Refined {
        /// Window-sized results, best identity first.
        var samples: [Image]
        var distances: [Double]
        var stepsRun: Int
        var workSize: [Int]
        /// The sampler's outputs in [−1, 1] at the work size (same order as `samples`), the
        /// start it was given, and the guidance energies, for checking what guidance did.
        var workResults: [Tensor]
        var start: Tensor
        var energies: SwapEnergies
        /// Each weighted term of the guidance energy at the last guided step of the best sample.
        var lastTerms: [String: Double]
    }

    /// Energy scales: each guidance weight of 1 gives its energy about the same pull. dlib
    /// distances are about 0.3–0.8, mesh errors a few hundredths of the inter-ocular distance,
    /// gaze features a few hundredths of an eye width.
    static let identityScale: Float = 40
    static let structureScale: Float = 4000
    static let gazeScale: Float = 400

    /// `targetMesh`: the 478 points (mesh and irises) the composite was drawn on, in window pixels.
    func refine(composite: Image, hard: Mask, targetMesh: [Point],
                targetLandmarks tlm: FaceLandmarks, windowOrigin: Point, sourceDescriptor: [Float],
                reference: Image? = nil, seed: UInt64) throws -> Refined {
        let ww = composite.width, wh = composite.height
        // The network works with the window's long side between 256 and maxWorkSize pixels: a
        // small face is enlarged (the prior renders texture at its own scale, which on a face a
        // hundred pixels wide comes out as blotches), a large one reduced.
        let longSide = Double(max(ww, wh))
        let scale = min(Double(options.maxWorkSize) / longSide, max(1, Double(min(256, options.maxWorkSize)) / longSide))
        let workW = max(8, Int((Double(ww) * scale).rounded())), workH = max(8, Int((Double(wh) * scale).rounded()))
        let stride = model.stride
        let padW = (workW + stride - 1) / stride * stride, padH = (workH + stride - 1) / stride * stride
        // Work image: the composite at the work scale, edge-replicated out to the network's stride.
        let small = scale == 1 ? composite
            : try composite.resized(width: workW, height: workH, interpolation: scale < 1 ? .area : .cubic)
        let work = try small.warpedAffine(.identity, width: padW, height: padH, interpolation: .nearest, border: .replicate)
        let sx = Double(workW) / Double(ww), sy = Double(workH) / Double(wh)
        func toWork(_ p: Point) -> Point { Point((p.x + 0.5) * sx - 0.5, (p.y + 0.5) * sy - 0.5) }

        // The region diffusion may change: the hard mask, grown a little so the feathered paste
        // blends into re-rendered pixels, at the work size.
        var region = scale == 1 ? hard : try hard.resized(width: workW, height: workH)
        region.values = region.values.map { $0 > 0.01 ? 1 : 0 }
        region = try region.dilated(radius: 2)
        var regionPad = [Float](repeating: 0, count: padW * padH)
        for y in 0..<workH { for x in 0..<workW { regionPad[y * padW + x] = region.values[y * workW + x] } }
        let mask = Tensor(shape: [1, 1, padH, padW], values: regionPad)

        // The experts' view of the work image: the target's landmarks moved into work pixels
        // (crop placement for mesh and iris), the composite's own for the identity chip.
        var lmWork = SwapRefiner.transformed(tlm, offset: windowOrigin, sx: sx, sy: sy)
        // The composite's features sit on the bent mesh, not the target's.
        lmWork.mesh = zip(lmWork.mesh, targetMesh.prefix(FaceMesh.pointCount)).map { p, q in
            let w = toWork(q)
            return Point3(w.x, w.y, p.z)
        }
        let compositeLM = (try? analyzer.eyes(work, mesh: lmWork.mesh)).map { eyes -> FaceLandmarks in
            var l = lmWork
            l.leftEye = eyes.left
            l.rightEye = eyes.right
            return l
        } ?? lmWork
        // Where the composite's 468 mesh points are meant to be: the target's pose and expression
        // with the bent proportions (the first 468 of the 478 points; the irises are the gaze
        // expert's business).
        let meshPoints = Array(targetMesh.prefix(FaceMesh.pointCount))
        let meshRef = Tensor(shape: [meshPoints.count, 2], values: meshPoints.flatMap { p -> [Float] in let q = toWork(p); return [Float(q.x), Float(q.y)] })
        let iod = Float(SwapGeometry.interOcular(targetMesh.map(toWork)))
        let gazeRef = try Gaze.features(Tensor(shape: [478, 3], values: Gaze.meshWithIrises(tlm.mesh, left: tlm.leftEye, right: tlm.rightEye).flatMap { [Float($0.x), Float($0.y), Float($0.z)] }))
        let sourceD = Tensor(shape: [1, sourceDescriptor.count], values: sourceDescriptor)
        let dlib5 = try compositeLM.dlib5()
        let views = DlibIdentityEnergy.views(count: options.identityViews, points: dlib5, seed: seed)

        let energies = SwapEnergies(analyzer: analyzer, identity: identity, landmarks: compositeLM, meshRef: meshRef,
                                    interOcular: iod, gazeRef: gazeRef, sourceDescriptor: sourceD, views: views)
        let guide = self.guide?.isActive == true ? self.guide : nil
        let wId = guide?.replacesIdentity == true ? 0 : Float(options.identityWeight) * SwapRefiner.identityScale
        let wSt = Float(options.structureWeight) * SwapRefiner.structureScale
        let wGz = guide?.replacesGaze == true ? 0 : Float(options.gazeWeight) * SwapRefiner.gazeScale
        // Work pixels → target photo pixels, for the user's experts' aligned crop.
        let workToImage = GuiseImage.AffineTransform([1 / sx, 0, 0.5 / sx - 0.5 + windowOrigin.x, 0, 1 / sy, 0.5 / sy - 0.5 + windowOrigin.y])
        var viewGenerator = PriorRNG(seed: seed ^ 0xD1FF_FACE)
        let viewCount = max(0, options.identityViews - 1)
        var lastTerms: [String: Double] = [:]
        let energy: (Tensor, Guidance.Context) throws -> Tensor = { x0, _ in
            // x̂0 in [−1, 1] → an image in 0…1.
            let img = x0.scaled(0.5, plus: 0.5)
            var total = Tensor.scalar(0)
            var terms: [String: Double] = [:]
            func add(_ name: String, _ e: Tensor) {
                terms[name] = Double(e.item())
                total = total + e
            }
            if wId > 0 { add("identity", (try energies.identity(img)).scaled(wId)) }
            if wSt > 0 { add("structure", (try energies.structure(img)).scaled(wSt)) }
            if wGz > 0 { add("gaze", (try energies.gaze(img)).scaled(wGz)) }
            if let guide {
                let views = DiffFaceView.random(count: viewCount, generator: &viewGenerator)
                total = total + (try guide.energy(img, toImage: workToImage, views: views) { name, v in
                    terms[name == "semantic" ? "parsing" : name] = Double(v)
                })
            }
            lastTerms = terms
            return total
        }

        let diffusion = try model.diffusion(respacing: "\(options.steps)")
        let run = max(1, min(options.steps, Int((options.strength * Double(options.steps)).rounded())))
        var sampler = SamplerOptions(method: options.ddim ? .ddim(eta: 0) : .ddpm, clipDenoised: true,
                                     skipTimesteps: options.steps - run)
        sampler.mask = MaskBlend(mask: mask, schedule: .hard, timing: .beforeStep, composite: .sample)
        if wId + wSt + wGz > 0 || guide != nil {
            sampler.guidance = Guidance(image: .predictedStart,
                                        gradient: options.gradientThroughNetwork ? .throughDenoiser : .throughPrediction,
                                        energy: energy)
        }
        let x0 = ImageTensor.tensor(work, range: .signed)
        if let reference, options.referenceAttention > 0 {
            // Laid out as the work image is: the same scale and the same edge replication.
            let r = scale == 1 ? reference
                : try reference.resized(width: workW, height: workH, interpolation: scale < 1 ? .area : .cubic)
            let padded = try r.warpedAffine(.identity, width: padW, height: padH, interpolation: .nearest, border: .replicate)
            sampler.reference = ReferenceImage(image: ImageTensor.tensor(padded, range: .signed), weight: options.referenceAttention, seed: 0)
        }
        let total = run * options.samples
        var done = 0
        sampler.progress = { [weak self] p in
            if p.isReverse { done += 1; self?.progress?(done, total) }
        }

        // The composite's finest detail, added back to each result inside the region.
        var fine: Image?
        if options.detail > 0 {
            let blurred = try composite.blurred(sigma: 1.5)
            var f = composite
            for k in 0..<f.rgb.count { f.rgb[k] = Float(options.detail) * (composite.rgb[k] - blurred.rgb[k]) }
            fine = f
        }

        var results: [(Image, Double, Tensor, [String: Double])] = []
        for k in 0..<options.samples {
            sampler.reference?.seed = SwapRefiner.referenceSeed(seed &+ UInt64(k))
            let r = try diffusion.sample(model.denoiser, shape: x0.shape, initImage: x0, options: sampler,
                                         noise: SeededNoise(seed: seed &+ UInt64(k)))
            let outWork = try ImageTensor.image(r.image, range: .signed)
            var refined = try SwapRefiner.backToWindow(outWork, work: work, composite: composite, workW: workW, workH: workH)
            // At full scale the result replaced the composite's detail; when it worked smaller the
            // detail came back with the upsampled correction already.
            if let fine, workW == ww && workH == wh {
                for k in 0..<refined.rgb.count { refined.rgb[k] = min(max(refined.rgb[k] + fine.rgb[k], 0), 1) }
            }
            // Ranked by the identity expert that guided: ArcFace's 1 − cos (as DiffFace ranks)
            // or dlib's distance.
            let windowToImage = GuiseImage.AffineTransform([1, 0, windowOrigin.x, 0, 1, windowOrigin.y])
            let distance: Double
            if let guide = self.guide, let d = try guide.identityDistance(refined, toImage: windowToImage) {
                distance = d
            } else {
                let d = try identity.descriptor(refined, dlib5: dlib5.map { Point(($0.x + 0.5) / sx - 0.5, ($0.y + 0.5) / sy - 0.5) })
                distance = FaceIdentity.distance(d, sourceDescriptor)
            }
            results.append((refined, distance, r.image, lastTerms))
        }
        results.sort { $0.1 < $1.1 }
        return Refined(samples: results.map(\.0), distances: results.map(\.1), stepsRun: run, workSize: [padW, padH],
                       workResults: results.map(\.2), start: x0, energies: energies, lastTerms: results.first?.3 ?? [:])
    }

    /// The reference's noise stream for a sample: apart from the sample's own.
    static func referenceSeed(_ sampleSeed: UInt64) -> UInt64 { sampleSeed ^ 0x5EF_A77E_4710_0000 }

    /// The result at window size. At full scale it is the work result's window part; when the
    /// network worked at another size, the change it made is resized to the window and added to
    /// the composite, so the composite's own detail is kept.
    static func backToWindow(_ out: Image, work: Image, composite: Image, workW: Int, workH: Int) throws -> Image {
        let ww = composite.width, wh = composite.height
        let pw = out.width, pn = out.pixelCount
        if workW == ww && workH == wh {
            return try out.cropped(x: 0, y: 0, width: ww, height: wh)
        }
        var delta = [Float](repeating: 0, count: 3 * workW * workH)
        for c in 0..<3 {
            for y in 0..<workH {
                for x in 0..<workW {
                    delta[c * workW * workH + y * workW + x] = out.rgb[c * pn + y * pw + x] - work.rgb[c * pn + y * pw + x]
                }
            }
        }
        let up = try Image(width: workW, height: workH, rgb: delta)
            .resized(width: ww, height: wh, interpolation: workW > ww ? .area : .linear)
        var res = composite
        for k in 0..<res.rgb.count { res.rgb[k] = min(max(res.rgb[k] + up.rgb[k], 0), 1) }
        return res
    }

    /// `lm` in the pixels of a work image: shifted by −offset, then scaled (pixel-centre convention).
    static func transformed(_ lm: FaceLandmarks, offset: Point, sx: Double, sy: Double) -> FaceLandmarks {
        func p(_ q: Point3) -> Point3 {
            Point3((q.x - offset.x + 0.5) * sx - 0.5, (q.y - offset.y + 0.5) * sy - 0.5, q.z * sx)
        }
        var out = lm
        out.mesh = lm.mesh.map(p)
        out.leftEye = EyeLandmarks(contour: lm.leftEye.contour.map(p), iris: lm.leftEye.iris.map(p))
        out.rightEye = EyeLandmarks(contour: lm.rightEye.contour.map(p), iris: lm.rightEye.iris.map(p))
        let c = p(Point3(lm.roi.centre.x, lm.roi.centre.y, 0))
        out.roi = RotatedRect(centre: c.xy, width: lm.roi.width * sx, height: lm.roi.height * sy, rotation: lm.roi.rotation)
        return out
    }
}

/// The guidance energies of a swap, each on an image tensor [1, 3, H, W] in 0…1 at the work
/// size; lower is better. Unscaled: the refiner weighs them.
struct SwapEnergies {
    let analyzer: FaceAnalyzer
    let identity: FaceIdentity
    /// Where the experts crop (the target's mesh and irises in work pixels).
    let landmarks: FaceLandmarks
    /// The 468 points the face should keep, [468, 2], and the eye distance that normalises them.
    let meshRef: Tensor
    let interOcular: Float
    /// The target's gaze features [2, 2].
    let gazeRef: Tensor
    /// The source's mean dlib descriptor [1, 128].
    let sourceDescriptor: Tensor
    /// The 5 points of each identity view.
    let views: [[Point]]

    /// Squared dlib distance to the source, averaged over the views.
    func identity(_ img: Tensor) throws -> Tensor {
        try DlibIdentityEnergy(identity: identity, target: sourceDescriptor, views: views)(img)
    }

    /// The blur of the geometry experts' gradients, in shares of the work crop's width: 2 px at
    /// 256². Without it the landmark network's gradient, pixel-scale on smooth skin, came out
    /// of the prior as a crackle of fine lines across a pale face.
    static let geometryGradientBlur = 0.008

    /// x̂0 as the geometry experts see it: itself, its gradient from them low-passed.
    func forGeometry(_ img: Tensor) -> Tensor {
        NN.lowPassGradient(img, sigma: SwapEnergies.geometryGradientBlur * Double(img.shape[3]))
    }

    /// Mean squared mesh-point error in inter-ocular distances.
    func structure(_ img: Tensor) throws -> Tensor {
        let pts = try analyzer.meshPoints(forGeometry(img), at: landmarks).slice(dim: 1, start: 0, end: 2)
        let diff = (pts - meshRef).scaled(1 / interOcular)
        return (diff * diff).mean()
    }

    /// Mean squared difference of the gaze features from the target's.
    func gaze(_ img: Tensor) throws -> Tensor {
        let diff = try analyzer.gazeFeatures(forGeometry(img), at: landmarks) - gazeRef
        return (diff * diff).mean()
    }
}
