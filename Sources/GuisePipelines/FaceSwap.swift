import Foundation
import GuiseDiffusion
import GuiseFace
import GuiseFiles
import GuiseFormats
import GuiseImage
import GuiseTensor
import GuiseVision

/// Everything a face swap can be told. The defaults are what `guise swap` does.
public struct FaceSwapOptions {
    /// Which faces of the target photo receive the source's identity.
    public enum Targets: Equatable, Sendable {
        case index(Int)
        case all
    }

    /// Which face of each source photo (detector order).
    public var sourceFace = 0
    /// nil: face 0, or with a reference photo every face that matches it.
    public var targets: Targets?
    /// With a reference photo: only target faces whose dlib distance to the reference's face is
    /// below this are swapped.
    public var referenceDistance = 0.6
    public var detector: DetectorChoice = .blazeface
    public var order: FaceOrder = .largest

    /// How far the face's inner proportions (eye spacing, nose and mouth position and size)
    /// move from the target's towards the source's: 0 keeps the target's geometry exactly.
    public var shape = 0.1
    /// How far the lower face outline (the widths of cheeks and jaw) moves from the target's
    /// towards the source's, by displacing the target photo in a band round the face
    /// (`FaceOutline`): 0 keeps the target's silhouette. No outline point moves more than 4 % of
    /// the face width.
    public var outline = 1.0
    /// Which regions are replaced.
    public var regions: Set<SwapRegion> = SwapRegion.all
    /// Feathering of the mask edge, as a multiple of the default (1.8 % of the face width).
    public var maskBlur = 1.0
    /// Glasses the target face wears stay on it (frames, and tinted lenses round the eyes), as its hair
    /// does; false covers them with the source's face.
    public var keepGlasses = true

    /// Guided diffusion refinement after the geometric swap; false is the fast preview mode.
    public var diffusion = true
    /// SDEdit start: the fraction of the diffusion chain run (0…1).
    public var strength = 0.2
    /// Steps of the whole (respaced) chain; about strength × steps are run. The embedded prior
    /// does best with a few large steps: many small ones pile up its errors into blotches.
    public var steps = 10
    /// How much of the geometric composite's finest detail (pores, stubble, wrinkles: the band
    /// under about a pixel and a half) is added back on top of the diffusion result, which the
    /// embedded prior renders smoother than the photo around it. 0 keeps the diffusion's own.
    public var detail = 1.0
    /// DDIM (deterministic given the start) or DDPM (fresh noise every step).
    public var ddim = true
    /// Samples per face, ranked by identity distance to the source; the best is the result.
    public var samples = 1
    public var seed: UInt64 = 0
    /// Guidance weights: dlib descriptor distance to the source's mean descriptor; mesh
    /// landmarks against the target's (in inter-ocular distances); gaze features against the target's.
    public var identityWeight = 1.0
    public var structureWeight = 1.0
    public var gazeWeight = 1.0
    /// Identity guidance averages this many random small affine views of x̂0 (DiffFace uses 8).
    public var identityViews = 4
    /// Gradient of the guidance energies through x̂0 only (cheap) or back through the network.
    public var gradientThroughNetwork = false
    /// The diffusion model: nil is the embedded prior; else a name or checkpoint path.
    public var model: String?
    public var modelConfig: String?
    /// The largest side the network works at; larger windows are refined at this size and the
    /// correction is added back at full resolution.
    public var maxWorkSize = 512
    /// DiffFace's own method with its published weights (any subset; see `useDiffFace`).
    public var diffFace: DiffFaceFiles?
    /// Reference attention (`ADMReference`): the source's face, aligned to the work crop by a
    /// similarity on the mesh, runs through the network beside the sample, and every
    /// self-attention layer also attends to its keys and values with this weight. 0 is off
    /// (the same bytes as without it).
    public var referenceAttention = 0.0

    public init() {}

    /// DiffFace's recipe with these files: DDPM over a 100-step chain from 25 steps down (75
    /// run), gradients back through the network, 4 samples ranked by identity. The guidance
    /// weights multiply DiffFace's own (6000 identity, 200 semantic, 200 gaze). Without its UNet
    /// the files are experts only: the embedded swap runs with its own settings, and the experts
    /// given (ArcFace, BiSeNet, EyeNet) guide it in place of dlib and the iris, the parser
    /// alongside the mesh.
    public mutating func useDiffFace(_ files: DiffFaceFiles) {
        diffFace = files
        guard files.model != nil else { return }
        steps = 100
        strength = 0.75
        ddim = false
        gradientThroughNetwork = true
        samples = 4
        identityViews = 8
    }

    public func validate() throws {
        guard sourceFace >= 0 else { throw PipelineError("the source face index must be 0 or more") }
        if case .index(let i)? = targets, i < 0 { throw PipelineError("the target face index must be 0 or more") }
        guard shape >= 0 && shape <= 1 else { throw PipelineError("shape must be between 0 and 1") }
        guard outline >= 0 && outline <= 1 else { throw PipelineError("outline must be between 0 and 1") }
        guard !regions.isEmpty else { throw PipelineError("the mask needs at least one region") }
        guard maskBlur >= 0 && maskBlur <= 10 else { throw PipelineError("mask blur must be between 0 and 10") }
        guard strength > 0 && strength <= 1 else { throw PipelineError("strength must be in (0, 1]") }
        guard steps >= 2 && steps <= 1000 else { throw PipelineError("steps must be between 2 and 1000") }
        guard samples >= 1 && samples <= 16 else { throw PipelineError("samples must be between 1 and 16") }
        guard detail >= 0 && detail <= 2 else { throw PipelineError("detail must be between 0 and 2") }
        guard [identityWeight, structureWeight, gazeWeight].allSatisfy({ $0 >= 0 && $0.isFinite }) else {
            throw PipelineError("guidance weights must be 0 or more")
        }
        guard identityViews >= 1 && identityViews <= 16 else { throw PipelineError("identity views must be between 1 and 16") }
        guard referenceDistance > 0 else { throw PipelineError("the reference distance must be positive") }
        guard maxWorkSize >= 64 && maxWorkSize <= 2048 else { throw PipelineError("the work size must be between 64 and 2048") }
        guard referenceAttention.isFinite, referenceAttention >= 0, referenceAttention <= 10 else {
            throw PipelineError("the reference attention weight must be between 0 and 10")
        }
        if referenceAttention > 0 && !diffusion {
            throw PipelineError("reference attention works in the diffusion: drop --no-diffusion or --reference-attention")
        }
    }
}

/// What a swap did, per face and overall; `guise swap --json` prints it.
public struct SwapReport: Encodable {
    public struct FaceResult: Encodable {
        /// The face's index in the target photo (detector order) and its box.
        public var index: Int
        public var box: Box
        /// Which source photo gave the warp (closest in pose), by position in the sources.
        public var sourcePhoto: Int
        /// dlib descriptor distances: result↔source (mean over the source photos), result↔target,
        /// source↔target. Below 0.6 dlib calls two faces the same person.
        public var identityToSource: Double
        public var identityToTarget: Double
        public var sourceToTarget: Double
        /// Mean 68-point landmark error of the result against the target, in inter-ocular distances.
        public var landmarkError: Double
        /// Difference of the gaze features (eye widths/heights) of result and target.
        public var gazeDifference: Double
        /// Per sample, best first: identity distance to the source.
        public var sampleDistances: [Double]
        /// The work window (image pixels) and the size the network saw.
        public var window: [Int]
        public var workSize: [Int]
        public var maskArea: Int
        /// The share of the source's inner-face skin found covered (hair): cut out, and filled
        /// from the source's skin round about where the target's face is skin.
        public var sourceOccluded = 0.0
        /// The share of the warped source face taken from the face's other half, flipped,
        /// where the source is turned away.
        public var sourceMirrored = 0.0
        /// Whether the target's own eyes were kept, one face's eyes being nearly shut and much
        /// narrower than the other's.
        public var targetEyesKept = false
        /// Whether glasses were found on the target face and kept (`SwapOptions.keepGlasses`).
        public var targetGlassesKept = false
        /// Whether glasses were found on the source face and filled in from its skin round
        /// about before it was pasted.
        public var sourceGlassesRemoved = false
        /// How much the source face is enlarged onto the target's: the target's eye distance in
        /// pixels over the source's. Far above 1, the swapped face is softer than the photo.
        public var sourceEnlargement = 1.0
        /// Head turn (yaw, degrees, `SwapGeometry.yaw`) of the source face less the target's.
        /// Far from 0, one face shows a side the other hides, and the warp fills it from the
        /// other half or stretches a sliver over it.
        public var turnDifference = 0.0
    }

    public var faces: [FaceResult] = []
    public var seed: UInt64 = 0
    public var diffusion = true
    public var strength = 0.0
    public var stepsRun = 0
    public var samples = 1
    public var shape = 0.0
    public var outline = 0.0
    public var model = ""
    /// The reference attention weight, when the diffusion ran with the source as reference.
    public var referenceAttention: Double?
    /// Seconds per stage, summed over faces.
    public var seconds: [String: Double] = [:]
    /// The fastest diffusion step's wall time, the steady state a benchmark compares (loading
    /// and the first step's warm-up excluded); nil with fewer than two steps.
    public var fastestStepSeconds: Double?
    /// With DiffFace's method or its experts: which expert did each job, the guidance gradient's
    /// path, and each weighted loss term at the best sample's last guided step (last face).
    public var experts: [String: String]?
    public var gradient: String?
    public var lossTerms: [String: Double]?
    /// What the user should know about the result (a source face much smaller than the target's).
    public var warnings: [String] = []
}

/// A progress event: a stage name, and how far through it (done of total).
public struct SwapProgress {
    public let stage: String
    public let done: Int
    public let total: Int
}

/// Face swap: the source person's identity on the target photo's face, keeping its pose,
/// expression, gaze, light, hair and background.
///
/// The geometric part puts the source's face on the target's mesh (a piecewise-affine warp over
/// the 468 mesh points, the inner proportions bent towards the source's), relights it with the
/// target's low frequencies and keeps the target's eye openings and open mouth. Guided diffusion
/// with the embedded prior then re-renders the inside of the mask from a partly noised start,
/// steered on x̂0 by identity (dlib), structure (mesh) and gaze (iris) energies, so the face reads
/// as one photo. Everything outside the face mask is the target's decoded pixels, bit for bit.
public final class FaceSwap {
    public let options: FaceSwapOptions
    let models: ModelCache
    let analyzer: FaceAnalyzer
    let identity: FaceIdentity
    let detector: FaceDetector
    public let detectorName: String
    lazy var model: Result<DiffusionModel, Error> = Result {
        if let m = options.diffFace?.model {
            let model = try DiffusionModel.loadDiffFace(m, config: options.modelConfig)
            // Backpropagating through DiffFace's 256-channel UNet would keep every block's
            // activations (about 9.4 GB). Recomputing the output blocks at full resolution in the
            // backward peaks at 8.5 GB (under PyTorch's 9.1 GB for the same step); recomputing the
            // input blocks there too, 7.8 GB for about one more 256² block pair a step, and every
            // block 6.4 GB for about a quarter of a step.
            model.net.checkpointing = options.gradientThroughNetwork
            model.net.checkpointMinSide = 256
            model.net.checkpointInputBlocks = false
            return model
        }
        return try models.diffusion(options.model, config: options.modelConfig)
    }
    /// DiffFace's experts (those given), and what each is, for the report.
    public var diffFaceExperts = DiffFaceExperts()
    public var diffFaceExpertNames: [String: String] = [:]
    var lastDiffFaceTerms: [String: Double] = [:]
    var lastDiffFaceExperts: [String: String] = [:]
    /// What the last run's diffusion refinements did, face by face (for tests of the guidance).
    var lastRefinements: [SwapRefiner.Refined] = []
    /// Wall time between consecutive diffusion steps of this run (a face's first step, which
    /// carries loading and warm-up, is not among them).
    var stepSeconds: [Double] = []
    var lastStepAt: Date?
    /// Notes a finished diffusion step: `done` counts from 1 within a face.
    func stepFinished(_ done: Int) {
        let now = Date()
        if done > 1, let last = lastStepAt { stepSeconds.append(now.timeIntervalSince(last)) }
        lastStepAt = now
    }
    /// Progress events and notes go here (the CLI draws a bar on stderr).
    public var progress: ((SwapProgress) -> Void)?
    public var note: ((String) -> Void)?

    /// `models`: networks already loaded (a batch shares one cache between its jobs); without
    /// it they are loaded from `store`.
    public init(options: FaceSwapOptions = FaceSwapOptions(), store: ModelStore? = nil, models: ModelCache? = nil) throws {
        try options.validate()
        self.options = options
        let models = try models ?? ModelCache(store: store ?? ModelStore.locate())
        self.models = models
        analyzer = try models.faceAnalyzer()
        identity = try models.faceIdentity()
        var notes: [String] = []
        (detector, detectorName) = try models.detector(options.detector, note: { notes.append($0) })
        for n in notes { note?(n) }
        if let files = options.diffFace {
            (diffFaceExperts, diffFaceExpertNames) = try DiffFaceExperts.load(files)
        }
    }

    /// One source photo onto one target photo.
    public func run(source: Image, target: Image) throws -> (Image, SwapReport) {
        let r = try run(sources: [source], target: target)
        return (r.image, r.report)
    }

    /// The result, its report, and per swapped face every sample ranked best first (each a
    /// whole photo), for `--keep-samples`.
    public struct Output {
        public var image: Image
        public var report: SwapReport
        public var samples: [[Image]]
    }

    /// Several photos of one person (identity guidance uses their mean descriptor, the warp the
    /// photo closest in pose to each target face) onto the chosen faces of the target photo;
    /// with a `reference`, only target faces that look like the reference's face.
    public func run(sources: [Image], target: Image, reference: Image? = nil,
                    labels: (sources: [String], target: String, reference: String) = ([], "the target photo", "the reference photo")) throws -> Output {
        guard !sources.isEmpty else { throw PipelineError("a swap needs at least one source photo") }
        try target.validate()
        var seconds: [String: Double] = [:]
        func timed<T>(_ stage: String, _ body: () throws -> T) rethrows -> T {
            let start = Date()
            defer { seconds[stage, default: 0] += Date().timeIntervalSince(start) }
            return try body()
        }

        // Analysis: every source's chosen face, its mesh and descriptor.
        var sourceFaces: [SourceFace] = []
        try timed("analyse") {
            for (k, photo) in sources.enumerated() {
                let label = k < labels.sources.count ? labels.sources[k] : "source photo \(k + 1)"
                let face = try FaceSelection.pick(try detector.detect(photo, order: options.order), index: options.sourceFace, label: label)
                let lm = try FaceSelection.landmarks(photo, face: face, analyzer: analyzer)
                let d = try identity.descriptor(photo, dlib5: lm.dlib5())
                sourceFaces.append(SourceFace(image: photo, face: face, landmarks: lm, descriptor: d))
            }
        }
        let sourceDescriptor = FaceSwap.mean(sourceFaces.map(\.descriptor))

        let allTargets = try timed("analyse") { try detector.detect(target, order: options.order) }
        guard !allTargets.isEmpty else { throw FaceError("no face found in \(labels.target)", category: .notFound) }
        var chosen: [Int]
        switch options.targets {
        case .index(let i)?:
            _ = try FaceSelection.pick(allTargets, index: i, label: labels.target)
            chosen = [i]
        case .all?:
            chosen = Array(allTargets.indices)
        case nil:
            chosen = reference == nil ? [0] : Array(allTargets.indices)
        }
        var targetLandmarks: [Int: FaceLandmarks] = [:]
        try timed("analyse") {
            for i in chosen {
                do {
                    targetLandmarks[i] = try FaceSelection.landmarks(target, face: allTargets[i], analyzer: analyzer)
                } catch where chosen.count > 1 {
                    // With several faces, one the mesh cannot read (too small, cut off) is skipped.
                    note?("skipping face \(i) of \(labels.target): \(error)")
                }
            }
        }
        if let reference {
            let refFace = try FaceSelection.pick(try detector.detect(reference, order: options.order), index: 0, label: labels.reference)
            let refLM = try FaceSelection.landmarks(reference, face: refFace, analyzer: analyzer)
            let refD = try identity.descriptor(reference, dlib5: refLM.dlib5())
            chosen = try chosen.filter { i in
                guard let lm = targetLandmarks[i] else { return false }
                let d = try identity.descriptor(target, dlib5: lm.dlib5())
                return FaceIdentity.distance(d, refD) < options.referenceDistance
            }
            guard !chosen.isEmpty else {
                throw FaceError("no face in \(labels.target) is within distance \(options.referenceDistance) of the face in \(labels.reference)", category: .notFound)
            }
        }
        chosen = chosen.filter { targetLandmarks[$0] != nil }
        guard !chosen.isEmpty else { throw FaceError("no face in \(labels.target) could be analysed", category: .notFound) }

        lastRefinements = []
        stepSeconds = []
        lastStepAt = nil
        var out = target
        var report = SwapReport()
        report.seed = options.seed
        report.diffusion = options.diffusion
        report.strength = options.diffusion ? options.strength : 0
        report.samples = options.samples
        report.shape = options.shape
        report.outline = options.outline
        if options.diffusion && options.referenceAttention > 0 { report.referenceAttention = options.referenceAttention }
        var allSamples: [[Image]] = []
        for (n, i) in chosen.enumerated() {
            guard let tlm = targetLandmarks[i] else { continue }
            let face = try swapFace(into: &out, original: target, face: allTargets[i], landmarks: tlm,
                                    sources: sourceFaces, sourceDescriptor: sourceDescriptor, faceNumber: n,
                                    timed: { stage, body in try timed(stage, body) })
            var result = face.result
            result.index = i
            let sourceMesh = sourceFaces[min(result.sourcePhoto, sourceFaces.count - 1)].landmarks.mesh.map(\.xy)
            let eyesS = SwapGeometry.interOcular(sourceMesh), eyesT = SwapGeometry.interOcular(tlm.mesh.map(\.xy))
            result.sourceEnlargement = ((eyesT / max(eyesS, 1e-6)) * 100).rounded() / 100
            if result.sourceEnlargement > Self.softEnlargement {
                report.warnings.append(String(format: "face %d: the source face is enlarged %.1f× (its outer eye corners %.0f px apart, the target's %.0f px), so the swapped face is softer than the photo around it; a larger photo of the source gives a sharper result",
                                              i, result.sourceEnlargement, eyesS, eyesT))
            }
            let yawS = SwapGeometry.yaw(sourceFaces[min(result.sourcePhoto, sourceFaces.count - 1)].landmarks.mesh)
            let yawT = SwapGeometry.yaw(tlm.mesh)
            result.turnDifference = ((yawS - yawT) * 10).rounded() / 10
            if abs(result.turnDifference) > Self.farTurn {
                report.warnings.append(String(format: "face %d: the source face is turned %.0f° from the target's (%.0f° against %.0f°), so the side one hides and the other shows is made up from the face's other half or stretched; a source photo in a pose closer to the target's (or several, with --source) gives a better likeness",
                                              i, abs(result.turnDifference), yawS, yawT))
            }
            report.faces.append(result)
            report.stepsRun = face.stepsRun
            allSamples.append(face.samples)
        }
        // A grey photo stays grey: the swapped face is written as its luma.
        if target.sourceFormat?.isGrey ?? false { out.greyWhereChanged(from: target) }
        if options.diffusion, case .success(let m) = model { report.model = m.path }
        if options.diffFace != nil {
            report.gradient = options.gradientThroughNetwork ? "through-unet" : "x0"
            report.experts = lastDiffFaceExperts
            report.lossTerms = lastDiffFaceTerms
        }
        report.seconds = seconds.mapValues { ($0 * 1000).rounded() / 1000 }
        report.fastestStepSeconds = stepSeconds.min().map { ($0 * 1000).rounded() / 1000 }
        return Output(image: out, report: report, samples: allSamples)
    }

    /// Above this enlargement of the source face the report warns that the result will be soft:
    /// sampled up threefold, a face has a third of the photo's detail around it.
    public static let softEnlargement = 3.0

    /// Above this difference in head turn (degrees) the report warns that the likeness suffers:
    /// at 30° a face's far cheek is already half hidden behind its nose.
    public static let farTurn = 30.0

    struct SourceFace {
        var image: Image
        var face: Face
        var landmarks: FaceLandmarks
        var descriptor: [Float]
    }

    static func mean(_ ds: [[Float]]) -> [Float] {
        guard let first = ds.first else { return [] }
        var m = [Float](repeating: 0, count: first.count)
        for d in ds { for k in 0..<m.count { m[k] += d[k] / Float(ds.count) } }
        return m
    }

    struct FaceOutcome {
        var result: SwapReport.FaceResult
        var samples: [Image]
        var stepsRun: Int
    }

    /// Swaps one target face in place in `out` (pixels outside its window are never touched).
    func swapFace(into out: inout Image, original target: Image, face: Face, landmarks tlm: FaceLandmarks,
                  sources: [SourceFace], sourceDescriptor: [Float], faceNumber: Int,
                  timed: (String, () throws -> Void) throws -> Void) throws -> FaceOutcome {
        if options.diffFace?.model != nil {
            return try swapFaceDiffFace(into: &out, original: target, face: face, landmarks: tlm, sources: sources,
                                        sourceDescriptor: sourceDescriptor, faceNumber: faceNumber, timed: timed)
        }
        // The mesh with both irises (478 points, `Gaze.meshWithIrises`): with the iris centres
        // and rims as control points the warp puts the source's irises where the target's are, so
        // the result looks where the target looks, with the source's own eyes.
        let meshImage = Gaze.meshWithIrises(tlm.mesh, left: tlm.leftEye, right: tlm.rightEye).map(\.xy)
        // The source closest in pose: smallest residual after a similarity fit onto the target mesh.
        var best = 0, bestResidual = Double.infinity
        for (k, s) in sources.enumerated() {
            let (_, r) = try SwapGeometry.similarity(s.landmarks.mesh.map(\.xy), tlm.mesh.map(\.xy))
            let rel = r / SwapGeometry.interOcular(meshImage)
            if rel < bestResidual { bestResidual = rel; best = k }
        }
        let source = sources[best]

        // The work window: the face outline's box with a margin, in whole image pixels.
        let oval = MeshRegions.faceOval.map { meshImage[$0] }
        let ox0 = oval.map(\.x).min()!, ox1 = oval.map(\.x).max()!, oy0 = oval.map(\.y).min()!, oy1 = oval.map(\.y).max()!
        let faceWidth = max(ox1 - ox0, 1), faceSize = max(ox1 - ox0, oy1 - oy0)
        let margin = 0.25 * faceSize
        let wx0 = max(0, Int((ox0 - margin).rounded(.down))), wy0 = max(0, Int((oy0 - margin).rounded(.down)))
        let wx1 = min(target.width, Int((ox1 + margin).rounded(.up))), wy1 = min(target.height, Int((oy1 + margin).rounded(.up)))
        guard wx1 - wx0 >= 8, wy1 - wy0 >= 8 else { throw FaceError("target face \(faceNumber) is too small to swap", category: .notFound) }
        let ww = wx1 - wx0, wh = wy1 - wy0
        var window = try target.cropped(x: wx0, y: wy0, width: ww, height: wh)
        var meshT = meshImage.map { Point($0.x - Double(wx0), $0.y - Double(wy0)) }

        // The target's lower outline moved towards the source's first: the warp, the mask and
        // the diffusion then work on the reshaped photo. The photo as it stands now (an earlier
        // face swapped into it included) is reshaped the same way for pasting the band round
        // the face that the mask does not cover.
        var reshapedOut: (image: Image, changed: Mask)?
        if options.outline > 0 {
            try timed("outline") {
                let shift = { (p: Point3) in Point3(p.x - Double(wx0), p.y - Double(wy0), p.z) }
                if let o = try FaceOutline(target: tlm.mesh.map(shift), source: source.landmarks.mesh,
                                           strength: options.outline, faceWidth: faceWidth) {
                    window = try o.reshape(window).0
                    meshT = meshT.map(o.apply)
                    reshapedOut = try o.reshape(try out.cropped(x: wx0, y: wy0, width: ww, height: wh))
                }
            }
        }

        var composite = window
        var hard = Mask(width: ww, height: wh, fill: 0)
        var soft = hard
        var meshD = meshT
        var reference: Image?
        var occludedShare = 0.0
        var mirroredShare = 0.0
        var keptTargetEyes = false
        var sourceGlassesRemoved = false
        var hiddenBrows: Mask?
        var hiddenEyes: Mask?
        var glasses: Mask?
        try timed("warp") {
            // The source at about the target face's scale, so the warp never shrinks by much
            // (bilinear sampling would alias a large source face).
            var src = source.image
            let sl = source.landmarks
            var meshS = Gaze.meshWithIrises(sl.mesh, left: sl.leftEye, right: sl.rightEye).map(\.xy)
            let ratio = SwapGeometry.interOcular(meshT) / SwapGeometry.interOcular(meshS)
            if ratio < 0.75 {
                let w = max(8, Int((Double(src.width) * ratio).rounded())), h = max(8, Int((Double(src.height) * ratio).rounded()))
                let sx = Double(w) / Double(src.width), sy = Double(h) / Double(src.height)
                src = try src.resized(width: w, height: h, interpolation: .area)
                meshS = meshS.map { Point(($0.x + 0.5) * sx - 0.5, ($0.y + 0.5) * sy - 0.5) }
            }
            meshD = try SwapGeometry.morphedMesh(target: meshT, source: meshS, amount: options.shape)
            if options.diffusion && options.referenceAttention > 0 {
                // The source photo as it is (its own light and texture), only moved, turned and
                // scaled onto the bent mesh, so the reference shows the source's face at the
                // sample's scale and place.
                let (sim, _) = try SwapGeometry.similarity(Array(meshS.prefix(FaceMesh.pointCount)), Array(meshD.prefix(FaceMesh.pointCount)))
                reference = try src.with(alpha: nil).warpedAffine(sim, width: ww, height: wh, border: .replicate)
            }
            // The face's own triangles, drawn nearest first where the target's far cheek hides
            // behind its nose. Each samples its own source triangle wherever the source shows it
            // fairly: a mirror image from the other half brings the other side's light along, and
            // triangle by triangle that leaves strips brighter or darker than their neighbours.
            let (warp, depthD) = SwapGeometry.faceWarp(
                target: Gaze.meshWithIrises(tlm.mesh, left: tlm.leftEye, right: tlm.rightEye),
                source: Gaze.meshWithIrises(sl.mesh, left: sl.leftEye, right: sl.rightEye), destination: meshD)
            // Where the source is turned far away (its far cheek a sliver seen edge-on or hidden
            // behind the nose, its outline running into the background) the face's other half,
            // flipped, takes over: a weight per mesh point, smooth across the face, so the light
            // changes gradually and the relighting below evens it out. The midline, which has no
            // other half, is then sampled just inside the outline where it folds.
            let seen = depthD == nil ? nil
                : SourceVisibility(mesh: Gaze.meshWithIrises(sl.mesh, left: sl.leftEye, right: sl.rightEye), triangles: warp.triangles)
            let sampled = seen.map { $0.mirrors ? $0.sampledInside(meshS) : meshS } ?? meshS
            var warpedSource = warp.render(src, from: sampled, to: meshD, depth: depthD, width: ww, height: wh)
            var mirrorField: [Float]?
            if let seen, seen.mirrors {
                let mirrored = warp.render(src, triangles: warp.triangles.map { (sampled[seen.mirror[$0.0]], sampled[seen.mirror[$0.1]], sampled[seen.mirror[$0.2]]) },
                                           to: meshD, depth: depthD, width: ww, height: wh)
                let weight = warp.renderField(seen.mirrorWeight.map { Float($0) }, to: meshD, depth: depthD, width: ww, height: wh)
                mirrorField = weight
                warpedSource.image = try warpedSource.image.blended(with: mirrored.image, mask: Mask(width: ww, height: wh, values: weight))
                mirroredShare = Double(weight.reduce(0, +)) / Double(max(1, warpedSource.coverage.values.reduce(0, +)))
            }
            // Glasses the source wears are not who the source is: pasted, the rims and bridge sat
            // on the target's face as a print, with no arms running back to its ears. They are
            // found in the source's own photo, where the rims are sharpest, carried onto the
            // window as its face is, and filled in from the face round about (push–pull, with
            // its skin's grain) before anything reads the source's skin, light or detail.
            let faceWidthS = faceWidth * SwapGeometry.interOcular(meshS) / max(SwapGeometry.interOcular(meshD), 1e-6)
            if let (frames, crop, tinted) = try FaceGlasses.worn(src, mesh: Array(meshS.prefix(FaceMesh.pointCount)), faceWidth: faceWidthS) {
                let drawn = Image(grey: frames.values, width: frames.width, height: frames.height)
                let local = sampled.map { Point($0.x - Double(crop.x), $0.y - Double(crop.y)) }
                var onWindow = warp.render(drawn, from: local, to: meshD, depth: depthD, width: ww, height: wh).image.grey()
                if let seen, seen.mirrors, let mirrorField {
                    let mirrored = warp.render(drawn, triangles: warp.triangles.map { (local[seen.mirror[$0.0]], local[seen.mirror[$0.1]], local[seen.mirror[$0.2]]) },
                                               to: meshD, depth: depthD, width: ww, height: wh).image.grey()
                    for k in 0..<onWindow.count { onWindow[k] += mirrorField[k] * (mirrored[k] - onWindow[k]) }
                }
                if let filled = try FaceGlasses.filled(&warpedSource.image, coverage: warpedSource.coverage,
                                                       frames: Mask(width: ww, height: wh, values: onWindow), tinted: tinted,
                                                       mesh: meshD, faceWidth: faceWidth) {
                    (hiddenBrows, hiddenEyes) = (filled.hiddenBrows, filled.hiddenEyes)
                    sourceGlassesRemoved = true
                }
            }
            // Where the outline runs concave in the photo the surface leaves pixels uncovered; the
            // mask closes over small gaps, so they take their neighbours' colour, not black.
            let nearby = try SwapGeometry.maskedLowPass(warpedSource.image, warpedSource.coverage, sigma: max(1, 0.01 * faceWidth))
            let nw = ww * wh
            for i in 0..<nw where warpedSource.coverage.values[i] == 0 {
                for c in 0..<3 { warpedSource.image.rgb[c * nw + i] = nearby.rgb[c * nw + i] }
            }
            // An enlarged source arrives softer than the photo round it.
            if ratio > 1.2 {
                let inner = try SwapGeometry.region(MeshRegions.faceOval, meshD, width: ww, height: wh).eroded(radius: max(1, Int((0.05 * faceWidth).rounded())))
                let measured = Region(width: ww, height: wh, bits: (0..<(ww * wh)).map { inner.values[$0] > 0.5 && warpedSource.coverage.values[$0] > 0.5 })
                warpedSource.image = try SwapGeometry.sharpened(warpedSource.image, like: window, region: measured, sigma: 0.5 * ratio).image
            }
            // The target moved onto the same geometry: its eyes and open mouth go where the new
            // features are, with the target's gaze and teeth.
            let movedTarget = warp.render(window, from: meshT, to: meshD, depth: depthD, width: ww, height: wh)
            let warpedTarget = try window.with(alpha: nil).blended(with: movedTarget.image, mask: movedTarget.coverage)

            // Regions, drawn on the bent mesh, inside the target's own face outline.
            var ovalMask = try SwapGeometry.region(MeshRegions.faceOval, meshT, width: ww, height: wh)
            // A face turned well aside shows its nose and lips beyond the outline's points: left
            // out, the target's nose stood beside the source's, a second profile at the cheek.
            for mesh in [meshT, meshD] {
                let flat = mesh.map { Point3($0.x, $0.y, 0) }
                for part in [FaceRegion.nose, .lips] {
                    let m = try FaceMasks.mask(part, mesh: flat, width: ww, height: wh)
                    ovalMask.values = zip(ovalMask.values, m.values).map { max($0, $1) }
                }
            }
            var region = ovalMask
            if options.regions != SwapRegion.all {
                var sel = [Float](repeating: 0, count: ww * wh)
                let m3 = meshD.map { Point3($0.x, $0.y, 0) }
                for r in options.regions {
                    let m: Mask
                    switch r {
                    case .skin: m = try FaceMasks.mask(.skin, mesh: m3, width: ww, height: wh)
                    case .brows: m = try FaceMasks.mask(.brows, mesh: m3, width: ww, height: wh).dilated(radius: max(1, Int(0.02 * faceWidth)))
                    case .eyes: m = try FaceMasks.mask(.eyes, mesh: m3, width: ww, height: wh).dilated(radius: max(1, Int(0.04 * faceWidth)))
                    case .nose: m = try FaceMasks.mask(.nose, mesh: m3, width: ww, height: wh)
                    case .lips: m = try FaceMasks.mask(.lips, mesh: m3, width: ww, height: wh).dilated(radius: max(1, Int(0.01 * faceWidth)))
                    }
                    for k in 0..<sel.count { sel[k] = max(sel[k], m.values[k]) }
                }
                region.values = zip(region.values, sel).map { $0 * $1 }
            }
            hard = Mask(width: ww, height: wh, values: zip(region.values, warpedSource.coverage.values).map { $0 * $1 })
            // Above the brows the mesh's outline reaches into the hairline: there only pixels that
            // are skin in both the target and the warped source are replaced, so neither's fringe
            // or hat is pasted onto the other. Along the outline a turned source face shows
            // background or hair, which is left out too. Inside (brows, eyes, nose, mouth, beard)
            // the source is taken whatever its colour.
            let le = meshD[33], re = meshD[263]
            let ex = re.x - le.x, ey = re.y - le.y, el = max((ex * ex + ey * ey).squareRoot(), 1e-6)
            let up = Point(ey / el, -ex / el)  // perpendicular to the eye line, towards the forehead
            let browIdx = MeshRegions.imageLeftBrow + MeshRegions.imageRightBrow
            let brow = Point(browIdx.map { meshD[$0].x }.reduce(0, +) / Double(browIdx.count),
                             browIdx.map { meshD[$0].y }.reduce(0, +) / Double(browIdx.count))
            func height(_ x: Int, _ y: Int, above p: Point) -> Double { (Double(x) - p.x) * up.x + (Double(y) - p.y) * up.y }
            let skinD = try FaceMasks.mask(.skin, mesh: meshD.map { Point3($0.x, $0.y, 0) }, width: ww, height: wh)
            let cheeks = try FaceGlasses.cheekSample(meshD, width: ww, height: wh)
            // The source's forehead is held to a stricter test (darker than its cheeks or
            // textured like strands: a fringe) than the target's, whose skin there is only
            // being covered.
            let skinTarget = try SwapGeometry.skinLike(warpedTarget, sample: cheeks, highlights: true)
            let skinSource = try SwapGeometry.skinLike(warpedSource.image, sample: cheeks, minLuma: 0.72, highlights: true)
            let rim = try ovalMask.eroded(radius: max(1, Int((0.1 * faceWidth).rounded())))
            for y in 0..<wh {
                for x in 0..<ww {
                    let k = y * ww + x
                    guard hard.values[k] > 0 else { continue }
                    let h = height(x, y, above: brow)
                    if h > 0.45 * el {
                        // The upper forehead stays the target's: hairlines differ too much
                        // between people for a colour test to part hair from skin reliably.
                        hard.values[k] = 0
                    } else if h > 0.1 * el {
                        if !(skinTarget[k] && skinSource[k]) { hard.values[k] = 0 }
                    } else if rim.values[k] == 0 && !skinSource[k] {
                        // Along the sides only the source is tested: a target's glasses arm or
                        // shadow there is covered like the rest of its face.
                        hard.values[k] = 0
                    }
                }
            }
            // Misjudged pixels would become specks and holes: close the region, then open it.
            let speck = max(1, Int((0.01 * faceWidth).rounded()))
            let hole = max(1, Int((0.03 * faceWidth).rounded()))
            hard = try hard.dilated(radius: hole).eroded(radius: hole)
            hard = try hard.eroded(radius: speck).dilated(radius: speck)
            hard.values = zip(hard.values, region.values).map { min($0, $1) }
            // Whatever lies over the source's face (a fringe, strands across a cheek) would be
            // pasted onto the target's skin: it is cut out of the region, and filled below.
            var occlusion = try SwapGeometry.sourceOcclusion(warpedSource.image, mesh: meshD, sample: cheeks, faceWidth: faceWidth)
            occludedShare = occlusion.share
            for k in 0..<hard.values.count where occlusion.mask.values[k] > 0.5 { hard.values[k] = 0 }
            // Left out for the source's sake alone (a fringe, strands across a cheek) where the
            // target's face is skin: the target's own skin showing through there sat beside the
            // relit source as a patch of another colour. The source's skin round about is carried
            // in instead (push–pull, with its grain), and the relighting gives it the target's
            // light. The target's hair, brows and hairline (above 0.45 eye widths over the brows)
            // stay its own, and so does the outer band along the outline, where filling up to the
            // target's hair at a temple drew a hard edge along it.
            var holes = Region(width: ww, height: wh)
            for y in 0..<wh {
                for x in 0..<ww {
                    let k = y * ww + x
                    holes.bits[k] = hard.values[k] < 0.5 && region.values[k] > 0.5 && rim.values[k] > 0.5 && skinTarget[k]
                        && height(x, y, above: brow) <= 0.45 * el
                }
            }
            holes = try holes.eroded(speck).dilated(speck)
            // Skin the source shows only at a glancing angle and the target broadly (a frontal
            // source's cheek by the ear, on a turned target's near cheek): stretched over it, a
            // few pixels of the face's edge would draw streaks of its shadow, ear and background,
            // so it is carried in from the source's skin round about instead. Not where the
            // face's other half, flipped, was taken.
            var stretched = SwapGeometry.stretchedSkin(triangles: warp.triangles, source: sampled, destination: meshD,
                                                       field: { warp.renderField($0, to: meshD, depth: depthD, width: ww, height: wh) })
            if let mirrorField { for k in 0..<(ww * wh) where mirrorField[k] > 0.01 { stretched[k] = 0 } }
            // Broad stretches of plain skin only: away from the features, whose small triangles
            // stretch unevenly, and no specks.
            if stretched.contains(where: { $0 > SwapGeometry.overStretched }) {
                var features = Mask(width: ww, height: wh, fill: 0)
                let flatMesh = meshD.map { Point3($0.x, $0.y, 0) }
                for part in [FaceRegion.brows, .eyes, .nose, .lips] {
                    let m = try FaceMasks.mask(part, mesh: flatMesh, width: ww, height: wh)
                    features.values = zip(features.values, m.values).map { max($0, $1) }
                }
                features = try features.dilated(radius: max(1, Int((0.05 * faceWidth).rounded())))
                var sliver = Region(width: ww, height: wh, bits: (0..<(ww * wh)).map {
                    stretched[$0] > SwapGeometry.overStretched && hard.values[$0] > 0.5 && skinD.values[$0] > 0.5 && features.values[$0] < 0.5 })
                let open = max(1, Int((0.02 * faceWidth).rounded()))
                sliver = try sliver.eroded(open).dilated(open).withoutComponents(smallerThan: Int(0.005 * faceWidth * faceWidth))
                holes = holes || sliver
            }
            let known = Region(width: ww, height: wh, bits: (0..<(ww * wh)).map {
                hard.values[$0] > 0.5 && skinSource[$0] && stretched[$0] <= SwapGeometry.overStretched })
            if holes.area > 0, known.area >= 64 {
                let grain = try ClothesSwap.skinGrain(warpedSource.image, source: known)
                for c in 0..<3 {
                    let plane = Array(warpedSource.image.rgb[(c * ww * wh)..<((c + 1) * ww * wh)])
                    let filled = Membrane.pushPull(plane, known: known.bits, width: ww, height: wh)
                    for k in 0..<(ww * wh) where holes.bits[k] {
                        warpedSource.image.rgb[c * ww * wh + k] = min(max(filled[k] + grain[k], 0), 1)
                    }
                }
                for k in 0..<(ww * wh) where holes.bits[k] {
                    hard.values[k] = 1
                    occlusion.mask.values[k] = 0
                }
            }

            // Keep the target's mouth opening (its teeth and tongue) when its lips are parted:
            // a closed source mouth stretched open would smear.
            let mouthT = try SwapGeometry.region(MeshRegions.lipsInner, meshT, width: ww, height: wh)
            let mouthOpen = Double(mouthT.values.reduce(0, +)) > 0.002 * faceWidth * faceWidth
            var keep = mouthOpen ? try SwapGeometry.region(MeshRegions.lipsInner, meshD, width: ww, height: wh)
                                 : Mask(width: ww, height: wh, fill: 0)
            // So do its eyes (inside the lids' contour: iris and whites, or the lowered lid) where
            // one face's eyes are nearly shut and much narrower than the other's. A source looking down, blinking or laughing has its slit
            // stretched open, smeared across the eye, and the target's gaze is lost; a target
            // looking down, given a source's open eyes, would look up out of a lowered face. Both
            // eyes or neither, so the two never differ.
            let shut: Bool
            if let openT = SwapGeometry.eyeOpenness(tlm), let openS = SwapGeometry.eyeOpenness(sl) {
                shut = min(openS, openT) < SwapGeometry.nearlyShutEyes && min(openS, openT) < SwapGeometry.narrowerEyes * max(openS, openT)
            } else {
                shut = false
            }
            if shut || hiddenEyes != nil {
                for contour in [MeshRegions.imageLeftEye, MeshRegions.imageRightEye] {
                    let eye = try SwapGeometry.region(contour, meshD, width: ww, height: wh)
                    keep.values = zip(keep.values, eye.values).map { max($0, $1) }
                }
                keptTargetEyes = true
            }
            // And the glasses it wears, as its hair: a mask over the eyes would cover the rims and
            // leave the arms beyond it.
            if options.keepGlasses,
               let frames = try FaceGlasses.frames(warpedTarget, mesh: meshD, skin: skinTarget, faceWidth: faceWidth) {
                glasses = try frames.blurred(sigma: max(0.6, 0.006 * faceWidth))
                keep.values = zip(keep.values, frames.values).map { max($0, $1) }
            }
            if let hiddenBrows { keep.values = zip(keep.values, hiddenBrows.values).map { max($0, $1) } }
            keep = try keep.blurred(sigma: max(0.6, 0.006 * faceWidth))
            if let hiddenEyes { keep.values = zip(keep.values, hiddenEyes.values).map { max($0, $1) } }

            // Relit first, then the target's own mouth opening goes in as it is (relighting it
            // with the source's darker lips around would blow its teeth out).
            var relit = try SwapGeometry.relight(warpedSource.image, like: warpedTarget, mask: hard, faceWidth: faceWidth, skin: try skinD.blurred(sigma: max(1, 0.01 * faceWidth)))
                .blended(with: warpedTarget, mask: keep)
            // A source smaller than the target face arrives softer than the photo around it:
            // its skin takes grain up to the target skin's own.
            relit = try SwapGeometry.matchedGrain(relit, like: warpedTarget, skin: Region(width: ww, height: wh, bits: (0..<(ww * wh)).map {
                hard.values[$0] > 0.5 && skinD.values[$0] > 0.5 && keep.values[$0] < 0.01 }), seed: options.seed &+ UInt64(faceNumber))
            // The paste weight: the region pulled in from its edge, then feathered. A narrow
            // inset and feather, so the source's skin reaches out to the cheeks and jaw, where the
            // outline is part of the identity (mean dlib distance over the evaluation pairs 0.500
            // against 0.513 with 2 % and 2.5 % of the face width, the seam ratio unchanged).
            let feather = options.maskBlur * 0.018 * faceWidth
            let inset = max(1, Int((0.008 * faceWidth).rounded()))
            soft = try hard.eroded(radius: inset)
            if feather > 0 { soft = try soft.blurred(sigma: feather) }
            soft.values = zip(soft.values, hard.values).map { min($0, 1) * ($1 > 0 ? 1 : 0) }
            soft.values = zip(soft.values, occlusion.mask.values).map { $0 * (1 - $1) }
            composite = try window.with(alpha: nil).blended(with: relit, mask: soft)
        }

        var samples: [Image] = [composite]
        var sampleDistances: [Double] = []
        var stepsRun = 0
        var workSize = [ww, wh]
        if options.diffusion {
            let m = try model.get()
            let refiner = SwapRefiner(model: m, analyzer: analyzer, identity: identity, options: options)
            let experts = diffFaceExperts
            if experts.identity != nil || experts.parser != nil || experts.gaze != nil {
                try timed("analyse") {
                    refiner.guide = try SwapExpertGuide(experts: experts, names: diffFaceExpertNames, target: target, targetLM: tlm,
                                                        sources: sources.map { ($0.image, $0.landmarks) }, options: options)
                }
            }
            refiner.progress = { [weak self] done, total in
                self?.stepFinished(done)
                self?.progress?(SwapProgress(stage: "face \(faceNumber + 1): diffusion", done: done, total: total))
            }
            try timed("diffusion") {
                let refined = try refiner.refine(composite: composite, hard: hard,
                                                 targetMesh: meshD, targetLandmarks: tlm, windowOrigin: Point(Double(wx0), Double(wy0)),
                                                 sourceDescriptor: sourceDescriptor, reference: reference,
                                                 seed: options.seed &+ UInt64(faceNumber) &* 1_000_003)
                lastRefinements.append(refined)
                if let guide = refiner.guide {
                    var names = guide.names
                    if !guide.replacesIdentity { names["identity"] = "dlib (embedded)" }
                    if !guide.replacesGaze { names["gaze"] = names["gaze"] ?? "iris (embedded)" }
                    names["structure"] = "face mesh (embedded)"
                    names["semantic"] = names["semantic"].map { $0 + ", beside the face mesh" }
                    lastDiffFaceExperts = names
                    lastDiffFaceTerms = refined.lastTerms
                }
                // The kept glasses as the composite has them: the prior softens thin rims.
                samples = try refined.samples.map { s in try glasses.map { try s.blended(with: composite, mask: $0) } ?? s }
                sampleDistances = refined.distances
                stepsRun = refined.stepsRun
                workSize = refined.workSize
            }
        }

        // Paste: only where the soft mask is above 0, or the outline's displacement moved the
        // photo, do pixels change. Each sample is also pasted into the photo as it stands (faces
        // swapped before this one included).
        if let (image, changed) = reshapedOut { FaceSwap.paste(image, mask: changed, into: &out, x: wx0, y: wy0) }
        var pastedSamples: [Image] = []
        for s in samples {
            var whole = out
            FaceSwap.paste(s, mask: soft, into: &whole, x: wx0, y: wy0)
            pastedSamples.append(whole)
        }
        out = pastedSamples[0]

        // The report's measurements on the pasted result.
        var result = SwapReport.FaceResult(index: 0, box: face.box, sourcePhoto: best, identityToSource: 0, identityToTarget: 0,
                                           sourceToTarget: 0, landmarkError: 0, gazeDifference: 0, sampleDistances: sampleDistances,
                                           window: [wx0, wy0, ww, wh], workSize: workSize,
                                           maskArea: soft.values.filter { $0 > 0 }.count)
        result.sourceOccluded = (occludedShare * 1000).rounded() / 1000
        result.sourceMirrored = (mirroredShare * 1000).rounded() / 1000
        result.targetEyesKept = keptTargetEyes
        result.targetGlassesKept = glasses != nil
        result.sourceGlassesRemoved = sourceGlassesRemoved
        try timed("report") {
            try measure(out, target: target, face: face, landmarks: tlm, sourceDescriptor: sourceDescriptor, into: &result)
        }
        return FaceOutcome(result: result, samples: pastedSamples, stepsRun: stepsRun)
    }

    /// The report's measurements of a swapped face in the result photo: dlib distances, the
    /// 68-point landmark error and the gaze difference against the target.
    func measure(_ out: Image, target: Image, face: Face, landmarks tlm: FaceLandmarks, sourceDescriptor: [Float],
                 into result: inout SwapReport.FaceResult) throws {
        let targetD = try identity.descriptor(target, dlib5: tlm.dlib5())
        let rlm = try analyzer.landmarks(out, face: face)
        let rd = try identity.descriptor(out, dlib5: rlm.dlib5())
        result.identityToSource = FaceIdentity.distance(rd, sourceDescriptor)
        result.identityToTarget = FaceIdentity.distance(rd, targetD)
        result.sourceToTarget = FaceIdentity.distance(sourceDescriptor, targetD)
        let a = try tlm.ibug68(), b = try rlm.ibug68()
        let iod = ((a[36].x - a[45].x) * (a[36].x - a[45].x) + (a[36].y - a[45].y) * (a[36].y - a[45].y)).squareRoot()
        result.landmarkError = zip(a, b).map { (($0.x - $1.x) * ($0.x - $1.x) + ($0.y - $1.y) * ($0.y - $1.y)).squareRoot() }
            .reduce(0, +) / Double(a.count) / max(iod, 1e-6)
        let ga = try tlm.gaze(), gb = try rlm.gaze()
        result.gazeDifference = ((ga.x - gb.x) * (ga.x - gb.x) + (ga.y - gb.y) * (ga.y - gb.y)).squareRoot()
    }

    /// `patch`'s colour blended into `image` at (x, y) by `mask`; where the mask is 0 the image's
    /// own values stay (bit-exact), and the image's alpha is never changed.
    static func paste(_ patch: Image, mask: Mask, into image: inout Image, x: Int, y: Int) {
        let n = image.pixelCount, m = patch.pixelCount
        for r in 0..<patch.height {
            for q in 0..<patch.width {
                let w = mask.values[r * patch.width + q]
                guard w > 0 else { continue }
                let i = (y + r) * image.width + x + q, k = r * patch.width + q
                for c in 0..<3 {
                    let a = image.rgb[c * n + i]
                    image.rgb[c * n + i] = a + (patch.rgb[c * m + k] - a) * min(w, 1)
                }
            }
        }
    }
}

extension Image {
    /// The same picture with its alpha plane replaced (nil: opaque).
    func with(alpha: [Float]?) -> Image {
        Image(width: width, height: height, rgb: rgb, alpha: alpha, sourceFormat: sourceFormat)
    }
}
