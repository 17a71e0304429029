import GuiseFace
import GuiseImage
import GuiseTensor
import GuiseVision

/// A user's DiffFace experts (ArcFace, BiSeNet, EyeNet) guiding the embedded swap in place of
/// the embedded ones: the work image is warped, differentiably, to the target face's 256² FFHQ
/// crop (the frame DiffFace's experts were trained and called in), and DiffFace's own loss terms
/// are taken there. Identity is 1 − cos of ArcFace embeddings over one clean and `views − 1` of
/// DiffFace's augmented views; the parser's term is the L1 of the face classes' logits against
/// the target's; EyeNet's the L1 of the gaze against the target's. The embedded swap runs only
/// the end of the chain, where DiffFace's gaze term is off, so here it is on at every step, as
/// the iris term it replaces is.
struct SwapExpertGuide {
    var losses: DiffFaceLosses
    /// Target photo pixels → the 256² crop.
    let imageToCrop: AffineTransform
    /// Which expert did each job, for the report.
    let names: [String: String]

    /// The embedded energies' scale for a user's experts. ArcFace's 1 − cos separates two
    /// people by about 0.5 where dlib's squared distance does by about 0.3, so a unit of
    /// identity weight pulls about as hard with either; the parser and gaze terms keep DiffFace's
    /// proportions to its identity term (200 : 6000).
    static let identityScale = SwapRefiner.identityScale * 0.6
    static let semanticScale = identityScale * 200 / 6000
    static let gazeScale = identityScale * 200 / 6000

    /// `sources`: each source photo with its face's landmarks (their embeddings are averaged,
    /// as the embedded swap averages dlib descriptors).
    init(experts: DiffFaceExperts, names expertNames: [String: String], target: Image, targetLM: FaceLandmarks,
         sources: [(Image, FaceLandmarks)], options: FaceSwapOptions) throws {
        imageToCrop = try SwapExpertGuide.alignment(targetLM)
        let crop = try target.with(alpha: nil).warpedAffine(imageToCrop, width: 256, height: 256, interpolation: .linear, border: .replicate)
        let cropLM = SwapExpertGuide.mapped(targetLM, imageToCrop)
        let boxes = DiffFaceLosses.eyeBoxes(ibug68: try cropLM.ibug68().map { (x: $0.x, y: $0.y) }) ?? []
        var used = experts
        if boxes.isEmpty { used.gaze = nil }
        let t = ImageTensor.tensor(crop, range: .signed)
        var losses = try DiffFaceLosses(experts: used, target: t, mask: Tensor(zeros: [1, 1, 256, 256]), source: nil, eyeBoxes: boxes)
        let mask = try losses.targetParsing.map(DiffFaceRefiner.faceMask) ?? DiffFaceRefiner.meshMask(cropLM)
        losses.mask = ImageTensor.tensor(mask)
        if let embed = experts.identity {
            losses.sourceEmbedding = try Autograd.noGrad {
                var sum: Tensor?
                for (photo, lm) in sources {
                    let a = try photo.with(alpha: nil).warpedAffine(try SwapExpertGuide.alignment(lm), width: 256, height: 256,
                                                                     interpolation: .linear, border: .replicate)
                    let e = try DiffFaceLosses.embedding(ImageTensor.tensor(a, range: .signed), mask: nil, embed: embed)
                    let unit = e / e.norm(dims: [1], keepDims: true)
                    sum = sum.map { $0 + unit } ?? unit
                }
                guard let sum else { throw PipelineError("a swap needs at least one source photo") }
                return sum / sum.norm(dims: [1], keepDims: true)
            }
        }
        // The embedded refiner keeps the background itself (it re-imposes the noised composite
        // outside the mask), so DiffFace's background term is left out.
        losses.weights.background = 0
        losses.weights.identity = Float(options.identityWeight) * SwapExpertGuide.identityScale
        losses.weights.semantic = Float(options.structureWeight) * SwapExpertGuide.semanticScale
        losses.weights.gaze = Float(options.gazeWeight) * SwapExpertGuide.gazeScale
        self.losses = losses
        var names = expertNames
        if experts.gaze != nil && boxes.isEmpty {
            names["gaze"] = "iris (embedded; the eye boxes left the aligned crop, so EyeNet could not run)"
        }
        self.names = names
    }

    var replacesIdentity: Bool { losses.experts.identity != nil && losses.sourceEmbedding != nil }
    var replacesGaze: Bool { losses.experts.gaze != nil && losses.targetGaze.count == 2 }
    /// Whether any of its terms has a weight.
    var isActive: Bool {
        (replacesIdentity && losses.weights.identity > 0) || (losses.targetParsing != nil && losses.weights.semantic > 0)
            || (replacesGaze && losses.weights.gaze > 0)
    }

    /// The 256² FFHQ crop of a face: the similarity taking its five points (iris centres, nose
    /// tip, mouth corners from the mesh) onto the template's.
    static func alignment(_ lm: FaceLandmarks) throws -> AffineTransform {
        let five = try lm.fivePoints()
        let names = five.keys.sorted()
        return try AffineTransform.similarity(from: names.map { five[$0]! }, to: names.map { FaceTemplate.ffhq256.points[$0]! })
    }

    /// Landmarks moved by a similarity (depths scale with it).
    static func mapped(_ lm: FaceLandmarks, _ t: AffineTransform) -> FaceLandmarks {
        func p(_ q: Point3) -> Point3 { let r = t.apply(q.xy); return Point3(r.x, r.y, q.z * t.scale) }
        var out = lm
        out.mesh = lm.mesh.map(p)
        out.leftEye = EyeLandmarks(contour: lm.leftEye.contour.map(p), iris: lm.leftEye.iris.map(p))
        out.rightEye = EyeLandmarks(contour: lm.rightEye.contour.map(p), iris: lm.rightEye.iris.map(p))
        return out
    }

    /// `outer ∘ inner`.
    static func composed(_ outer: AffineTransform, _ inner: AffineTransform) -> AffineTransform {
        let a = outer.matrix, b = inner.matrix
        var m = [Double](repeating: 0, count: 6)
        for r in 0..<2 {
            let (p, q, c) = (a[3 * r], a[3 * r + 1], a[3 * r + 2])
            m[3 * r] = p * b[0] + q * b[3]
            m[3 * r + 1] = p * b[1] + q * b[4]
            m[3 * r + 2] = p * b[2] + q * b[5] + c
        }
        return AffineTransform(m)
    }

    /// The crop [1, 3, 256, 256] in [−1, 1] of an image tensor [1, 3, H, W] in 0…1 whose pixels
    /// `toImage` maps into the target photo.
    func crop(_ image: Tensor, toImage: AffineTransform) throws -> Tensor {
        let t = SwapExpertGuide.composed(imageToCrop, toImage)
        return try TensorCrops.warp(image, t, width: 256, height: 256, range: -1...1, replicate: true)
            .permuted(0, 3, 1, 2).contiguous()
    }

    /// The energy of an image tensor in 0…1.
    func energy(_ image: Tensor, toImage: AffineTransform, views: [DiffFaceView],
                terms: ((String, Float) -> Void)? = nil) throws -> Tensor {
        try losses.energy(try crop(image, toImage: toImage), t: nil, views: views, terms: terms)
    }

    /// ArcFace's 1 − cos between a result (an image whose pixels `toImage` maps into the target
    /// photo) and the source, on the clean crop, as DiffFace ranks its samples.
    func identityDistance(_ image: Image, toImage: AffineTransform) throws -> Double? {
        guard let embed = losses.experts.identity, let src = losses.sourceEmbedding else { return nil }
        let crop = try image.with(alpha: nil).warpedAffine(SwapExpertGuide.composed(imageToCrop, toImage), width: 256, height: 256,
                                                           interpolation: .linear, border: .replicate)
        return try Autograd.noGrad {
            let e = try DiffFaceLosses.embedding(ImageTensor.tensor(crop, range: .signed), mask: nil, embed: embed)
            return Double(1 - DiffFaceLosses.cosine(e, src).item())
        }
    }
}
