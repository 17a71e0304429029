import Foundation
import GuiseDiffusion
import GuiseFace
import GuiseImage
import GuisePrior
import GuiseTensor
import GuiseVision

/// DiffFace's files: its ID-conditioned ADM and its three experts. Any subset may be given; a
/// missing expert's job is done by the embedded one (dlib identity, face-mesh structure and
/// mask, iris gaze).
public struct DiffFaceFiles: Equatable, Sendable {
    public var model: String?
    public var arcface: String?
    public var parser: String?
    public var gaze: String?

    /// The names DiffFace's `checkpoints/` folder uses.
    public static let modelName = "Model.pt", arcfaceName = "Arcface.tar"
    public static let parserName = "FaceParser.pth", gazeName = "GazeEstimator.pt"

    public init(model: String? = nil, arcface: String? = nil, parser: String? = nil, gaze: String? = nil) {
        self.model = model
        self.arcface = arcface
        self.parser = parser
        self.gaze = gaze
    }

    /// The files of a DiffFace `checkpoints/` folder that are present there; an error when the
    /// folder does not exist or holds none of them.
    public init(directory: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw PipelineError("DiffFace folder \(directory) does not exist", category: .notFound)
        }
        func file(_ name: String) -> String? {
            let p = (directory as NSString).appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: p) ? p : nil
        }
        self.init(model: file(Self.modelName), arcface: file(Self.arcfaceName),
                  parser: file(Self.parserName), gaze: file(Self.gazeName))
        guard model != nil || arcface != nil || parser != nil || gaze != nil else {
            throw PipelineError("\(directory) holds none of DiffFace's \(Self.modelName), \(Self.arcfaceName), \(Self.parserName), \(Self.gazeName)", category: .notFound)
        }
    }

    /// The files given, in the order model, ArcFace, parser, gaze.
    public var all: [String] { [model, arcface, parser, gaze].compactMap { $0 } }

    /// Each given file overrides the folder's.
    public func overriding(with other: DiffFaceFiles) -> DiffFaceFiles {
        DiffFaceFiles(model: other.model ?? model, arcface: other.arcface ?? arcface,
                      parser: other.parser ?? parser, gaze: other.gaze ?? gaze)
    }
}

/// DiffFace's sampling on a 256² aligned face (DESIGN §3): from q_sample(target) `skip` steps
/// down a 100-step respaced chain, the ID-conditioned ADM fed the source's ArcFace embedding,
/// classifier guidance on x_in = x̂0·√(1−ᾱ) + x_t·(1−√(1−ᾱ)) from the experts' losses, and the
/// sample blended with the noised target under the face mask with DiffFace's ramp; the result is
/// target·(1−M) + x̂0·M. Samples are ranked by identity distance to the source.
final class DiffFaceRefiner {
    let model: DiffusionModel
    let experts: DiffFaceExperts
    let options: FaceSwapOptions
    /// The embedded experts standing in for missing ones; they see the aligned crop's own mesh.
    let analyzer: FaceAnalyzer
    let identity: FaceIdentity
    var progress: ((Int, Int) -> Void)?
    var note: ((String) -> Void)?

    init(model: DiffusionModel, experts: DiffFaceExperts, analyzer: FaceAnalyzer, identity: FaceIdentity, options: FaceSwapOptions) {
        self.model = model
        self.experts = experts
        self.analyzer = analyzer
        self.identity = identity
        self.options = options
    }

    struct Refined {
        /// 256² results, best first, and their identity distances to the source.
        var samples: [Image]
        var distances: [Double]
        /// DiffFace's face mask on the aligned crop.
        var mask: Mask
        var stepsRun: Int
        /// Each weighted loss term's value at the last guided step of the best sample.
        var lastTerms: [String: Double]
        /// Which expert did each job.
        var experts: [String: String]
    }

    /// `targetLM`/`sourceLM`: landmarks found on the aligned crops themselves (the embedded
    /// experts and the mesh mask need them); `sourceDescriptor`: the source's mean dlib descriptor.
    func refine(target: Image, source: Image, targetLM: FaceLandmarks, sourceDescriptor: [Float],
                expertNames: [String: String], seed: UInt64) throws -> Refined {
        guard target.width == 256, target.height == 256, source.width == 256, source.height == 256 else {
            throw PipelineError("DiffFace works on 256x256 aligned faces", category: .internal)
        }
        let t = ImageTensor.tensor(target.with(alpha: nil), range: .signed)
        let s = ImageTensor.tensor(source.with(alpha: nil), range: .signed)
        let ibug = try targetLM.ibug68().map { (x: $0.x, y: $0.y) }
        let boxes = DiffFaceLosses.eyeBoxes(ibug68: ibug) ?? []

        // DiffFace's mask: the target's parsing in its face classes; without BiSeNet, the same
        // regions from the face mesh.
        var baseExperts = experts
        if boxes.isEmpty { baseExperts.gaze = nil }
        var losses = try DiffFaceLosses(experts: baseExperts, target: t, mask: Tensor(zeros: [1, 1, 256, 256]), source: s, eyeBoxes: boxes)
        let mask: Mask
        if let parsing = losses.targetParsing {
            mask = DiffFaceRefiner.faceMask(parsing)
        } else {
            mask = try DiffFaceRefiner.meshMask(targetLM)
        }
        let maskTensor = ImageTensor.tensor(mask)
        losses.mask = maskTensor
        losses.weights.identity *= Float(options.identityWeight)
        losses.weights.semantic *= Float(options.structureWeight)
        losses.weights.gaze *= Float(options.gazeWeight)
        let viewCount = max(0, options.identityViews - 1)

        // The embedded experts for what is missing, on the same guidance image.
        let embedded = try embeddedEnergy(targetLM: targetLM, sourceDescriptor: sourceDescriptor,
                                          identity: experts.identity == nil, structure: experts.parser == nil,
                                          gaze: experts.gaze == nil || boxes.isEmpty, seed: seed)

        let diffusion = try model.diffusion(respacing: "\(options.steps)")
        let run = max(1, min(options.steps, Int((options.strength * Double(options.steps)).rounded())))
        var sampler = SamplerOptions(method: options.ddim ? .ddim(eta: 0) : .ddpm, clipDenoised: false,
                                     skipTimesteps: options.steps - run)
        if let idDim = model.config.idDim {
            if let e = losses.sourceEmbedding {
                guard e.shape == [1, idDim] else {
                    throw PipelineError("the identity expert gives \(e.shape[1])-d embeddings; the model's id_embed takes \(idDim)", category: .model)
                }
                sampler.conditioning["id"] = e
            } else {
                note?("no ArcFace: the model's identity input is zero, identity comes from guidance alone")
                sampler.conditioning["id"] = Tensor(zeros: [1, idDim])
            }
        }
        // DiffFace's ramp opens the mask over (steps run − 30) steps; a shorter run keeps its proportion.
        let threshold = Int((Double(run) * 30.0 / 75.0).rounded())
        sampler.mask = .diffFace(mask: maskTensor, stepsRun: run, maskingThreshold: threshold)
        var lastTerms: [String: Double] = [:]
        var viewGenerator = PriorRNG(seed: seed ^ 0xD1FF_FACE)
        let guidanceLosses = losses
        sampler.guidance = Guidance(image: .diffFace, gradient: options.gradientThroughNetwork ? .throughDenoiser : .throughPrediction) { xIn, ctx in
            let views = DiffFaceView.random(count: viewCount, generator: &viewGenerator)
            var terms: [String: Double] = [:]
            var e = try guidanceLosses.energy(xIn, t: ctx.t, views: views) { terms[$0] = Double($1) }
            if let embedded {
                let extra = try embedded(xIn, ctx.t)
                terms["embedded"] = Double(extra.item())
                e = e + extra
            }
            lastTerms = terms
            return e
        }
        if options.referenceAttention > 0 {
            // The source's aligned crop: the same FFHQ layout as the target's.
            sampler.reference = ReferenceImage(image: s, weight: options.referenceAttention, seed: 0)
        }
        let total = run * options.samples
        var done = 0
        sampler.progress = { [weak self] p in
            if p.isReverse { done += 1; self?.progress?(done, total) }
        }

        var results: [(Image, Double, [String: Double])] = []
        for k in 0..<options.samples {
            sampler.reference?.seed = SwapRefiner.referenceSeed(seed &+ UInt64(k))
            let r = try diffusion.sample(model.denoiser, shape: t.shape, initImage: t, options: sampler,
                                         noise: SeededNoise(seed: seed &+ UInt64(k)))
            let img = try ImageTensor.image(r.image.clamped(min: -1, max: 1), range: .signed)
            results.append((img, try distance(img, to: losses.sourceEmbedding, sourceDescriptor: sourceDescriptor, targetLM: targetLM), lastTerms))
        }
        results.sort { $0.1 < $1.1 }
        var names = expertNames
        names["identity"] = names["identity"] ?? "dlib (embedded)"
        names["semantic"] = names["semantic"] ?? "face mesh (embedded)"
        names["gaze"] = boxes.isEmpty && experts.gaze != nil ? "iris (embedded; the eye boxes left the crop, so EyeNet could not run)"
            : (names["gaze"] ?? "iris (embedded)")
        return Refined(samples: results.map(\.0), distances: results.map(\.1), mask: mask, stepsRun: run,
                       lastTerms: results.first?.2 ?? [:], experts: names)
    }

    /// The identity distance that ranks samples: ArcFace's 1 − cos on the clean view when it is
    /// there (as DiffFace ranks), else dlib's descriptor distance.
    func distance(_ img: Image, to sourceEmbedding: Tensor?, sourceDescriptor: [Float], targetLM: FaceLandmarks) throws -> Double {
        if let embed = experts.identity, let b = sourceEmbedding {
            return try Autograd.noGrad {
                let a = try DiffFaceLosses.embedding(ImageTensor.tensor(img, range: .signed), mask: nil, embed: embed)
                return Double(1 - DiffFaceLosses.cosine(a, b).item())
            }
        }
        let d = try identity.descriptor(img, dlib5: targetLM.dlib5())
        return FaceIdentity.distance(d, sourceDescriptor)
    }

    /// The energies of the embedded experts standing in for missing ones, weighted as the
    /// embedded swap weighs them; nil when nothing is missing.
    func embeddedEnergy(targetLM: FaceLandmarks, sourceDescriptor: [Float], identity useId: Bool, structure useSt: Bool,
                        gaze useGz: Bool, seed: UInt64) throws -> ((Tensor, Int) throws -> Tensor)? {
        let wId = useId ? Float(options.identityWeight) * SwapRefiner.identityScale : 0
        let wSt = useSt ? Float(options.structureWeight) * SwapRefiner.structureScale : 0
        let wGz = useGz ? Float(options.gazeWeight) * SwapRefiner.gazeScale : 0
        guard wId + wSt + wGz > 0 else { return nil }
        let mesh = Array(targetLM.mesh.prefix(FaceMesh.pointCount))
        let meshRef = Tensor(shape: [mesh.count, 2], values: mesh.flatMap { [Float($0.x), Float($0.y)] })
        let iod = Float(SwapGeometry.interOcular(mesh.map(\.xy)))
        let gazeRef = try Gaze.features(Tensor(shape: [478, 3], values: Gaze.meshWithIrises(targetLM.mesh, left: targetLM.leftEye, right: targetLM.rightEye).flatMap { [Float($0.x), Float($0.y), Float($0.z)] }))
        let energies = SwapEnergies(analyzer: analyzer, identity: identity, landmarks: targetLM, meshRef: meshRef, interOcular: iod,
                                    gazeRef: gazeRef, sourceDescriptor: Tensor(shape: [1, sourceDescriptor.count], values: sourceDescriptor),
                                    views: DlibIdentityEnergy.views(count: options.identityViews, points: try targetLM.dlib5(), seed: seed))
        return { xIn, t in
            let img = xIn.scaled(0.5, plus: 0.5)
            var total = Tensor.scalar(0)
            if wId > 0 { total = total + (try energies.identity(img)).scaled(wId) }
            if wSt > 0 { total = total + (try energies.structure(img)).scaled(wSt) }
            if wGz > 0, DiffFaceLosses.gazeActive(t) { total = total + (try energies.gaze(img)).scaled(wGz) }
            return total
        }
    }

    /// DiffFace's binary mask: pixels whose most likely class is a face class.
    static func faceMask(_ logits: Tensor) -> Mask {
        let l = logits.contiguous()
        let classes = l.shape[1], h = l.shape[2], w = l.shape[3], plane = h * w
        let face = Set(DiffFaceLosses.faceClasses)
        var values = [Float](repeating: 0, count: plane)
        let p = l.data
        for i in 0..<plane {
            var best = 0
            var bestValue = p[i]
            for c in 1..<classes where p[c * plane + i] > bestValue { best = c; bestValue = p[c * plane + i] }
            values[i] = face.contains(best) ? 1 : 0
        }
        return Mask(width: w, height: h, values: values)
    }

    /// The same classes drawn from the face mesh: skin, brows, eyes, nose and lips.
    static func meshMask(_ lm: FaceLandmarks) throws -> Mask {
        var values = [Float](repeating: 0, count: 256 * 256)
        for region in [FaceRegion.skin, .brows, .eyes, .nose, .lips] {
            let m = try FaceMasks.mask(region, mesh: lm.mesh, width: 256, height: 256)
            for k in 0..<values.count where m.values[k] > 0.5 { values[k] = 1 }
        }
        return Mask(width: 256, height: 256, values: values)
    }
}
