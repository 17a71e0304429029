import ArgumentParser
import Foundation
import GuiseFace
import GuiseFiles
import GuiseImage
import GuisePipelines
import GuiseVision

/// `--target-face`: an index or `all`.
enum TargetFaceChoice: ExpressibleByArgument, Equatable {
    case index(Int)
    case all

    init?(argument: String) {
        if argument == "all" { self = .all; return }
        guard let i = Int(argument), i >= 0 else { return nil }
        self = .index(i)
    }
}

extension SwapRegion: ExpressibleByArgument {}

struct Swap: JobCommand {
    static let op = "swap"

    static let configuration = CommandConfiguration(
        abstract: "Put the source person's face on the target photo, keeping its pose, expression, gaze, light and background.",
        discussion: """
            The target's lower outline (the widths of cheeks and jaw) first moves --outline of the way towards \
            the source's, by a smooth displacement of the photo in a band round the face. The source face is \
            warped onto the target face's mesh (its inner proportions moved --shape of the way \
            towards the source's), relit with the target's low frequencies, and pasted under a soft mask of the \
            inner face; the target's open mouth stays, and so do its eyes where one face's are nearly shut and \
            much narrower than the other's (looking down, blinking). Guided diffusion with the embedded prior \
            (or --model) then re-renders the masked face from a partly noised start (--strength), steered by \
            identity (dlib), structure (face mesh) and gaze (iris) energies on x̂0. Pixels outside the face \
            mask and the outline's band are the target's decoded pixels, bit for bit; alpha is kept. --no-diffusion stops after the \
            warp (fast, for previews). The same inputs, options, seed and thread count give the same bytes.
            With --diffface (DiffFace's published checkpoints, which users bring), the swap is DiffFace's own \
            method on 256² aligned faces: its ID-conditioned UNet from 25 steps down a 100-step chain, guided by \
            ArcFace identity, BiSeNet parsing, EyeNet gaze and background losses, DiffFace's ramped mask, 4 \
            samples ranked by identity. Any expert file left out is replaced by the embedded one. With the \
            gradient back through the UNet a sample takes tens of minutes on a CPU; --grad x0 is about a third \
            of that. Without DiffFace's UNet, its experts guide the embedded swap (with its own settings) on the \
            face's aligned 256² crop: --arcface in place of dlib (samples are then ranked by ArcFace), \
            --gaze-estimator in place of the iris, --face-parser beside the face mesh.
            """)

    @Option(help: "The source photo (the identity to put in); repeat for several photos of the same person.")
    var source: [String] = []

    @Option(help: "The target photo (the scene, pose and expression to keep).")
    var target: String

    @OptionGroup var output: OutputOptions

    @Option(name: .customLong("source-face"), help: "Which face of each source photo, counting from 0 in --order.")
    var sourceFace = 0

    @Option(name: .customLong("target-face"), help: "Which target face: an index from 0 in --order, or all.")
    var targetFace: TargetFaceChoice?

    @Option(help: "Swap only the target faces that look like the face in this photo.")
    var reference: String?

    @Option(name: .customLong("reference-distance"), help: "dlib distance below which a target face matches --reference.")
    var referenceDistance = 0.6

    @Option(help: "How far the inner proportions move from the target's towards the source's (0…1).")
    var shape = 0.1

    @Option(help: "How far the lower face outline (the widths of cheeks and jaw) moves from the target's towards the source's (0…1; 0 keeps the target's silhouette).")
    var outline = 1.0

    @Option(name: .customLong("mask-blur"), help: "Mask feathering, as a multiple of the default (1.8 % of the face width).")
    var maskBlur = 1.0

    @Option(name: .customLong("mask-regions"), parsing: .upToNextOption,
            help: "Regions to replace: \(SwapRegion.allCases.map(\.rawValue).joined(separator: " ")) (default: all).")
    var maskRegions: [SwapRegion] = []

    @Flag(name: .customLong("cover-glasses"), help: "Cover glasses the target face wears with the source's face (by default they stay, as its hair does).")
    var coverGlasses = false

    @Flag(name: .customLong("no-diffusion"), help: "Stop after the warp and relighting (fast preview).")
    var noDiffusion = false

    @Option(help: "Fraction of the diffusion chain run from the warped composite (0…1]; default 0.2 (0.75 with DiffFace's UNet).")
    var strength: Double?

    @Option(help: "Steps of the whole respaced chain; about strength × steps run (default 10, as the embedded prior does best with few; 100 with DiffFace's UNet).")
    var steps: Int?

    @Option(help: "How much of the warped face's finest detail is added back over the diffusion result (0…2).")
    var detail = 1.0

    @Flag(help: "DDPM steps (fresh noise every step) instead of deterministic DDIM (DDPM is the default with DiffFace's UNet).")
    var ddpm = false

    @Flag(help: "With DiffFace's UNet: DDIM steps instead of DDPM.")
    var ddim = false

    @Option(help: "Samples per face; the one closest in identity to the source is the result (default 1; 4 with DiffFace's UNet).")
    var samples: Int?

    @Option(name: .customLong("keep-samples"), help: "Write every sample, best first, into this folder.")
    var keepSamples: String?

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(name: .customLong("identity-weight"), help: "Identity guidance weight (dlib distance to the source, or ArcFace's with --arcface; with DiffFace's UNet, a multiple of its ArcFace weight 6000).")
    var identityWeight = 1.0

    @Option(name: .customLong("structure-weight"), help: "Structure guidance weight (face-mesh landmarks against the target, and the parsing with --face-parser; with DiffFace's UNet, a multiple of its parsing weight 200).")
    var structureWeight = 1.0

    @Option(name: .customLong("gaze-weight"), help: "Gaze guidance weight (iris position against the target, or EyeNet's gaze with --gaze-estimator; with DiffFace's UNet, a multiple of its EyeNet weight 200).")
    var gazeWeight = 1.0

    @Option(help: "Guidance gradient: x0 (through x̂0 only, cheap; the default) or through-unet (back through the network; the default with DiffFace's UNet, as DiffFace).")
    var grad: GradientChoice?

    @Option(help: "Diffusion model: prior (embedded) or an ADM checkpoint path.")
    var model: String?

    @Option(help: "A config JSON (guided-diffusion argument names) for --model.")
    var config: String?

    @Option(name: .customLong("work-size"), help: "Largest side the network works at.")
    var workSize = 512

    @Option(name: .customLong("reference-attention"),
            help: "Reference attention: the source face, aligned to the work crop, runs beside the sample and every self-attention layer of the network also attends to it with this weight (0 = off; 1 = its tokens count as the sample's own; up to 10). Costs up to one more network pass per step (about 20 % more time with the embedded prior).")
    var referenceAttention = 0.0

    @OptionGroup var faces: FaceOptions

    @OptionGroup var diffFace: DiffFaceOptions

    enum GradientChoice: String, ExpressibleByArgument, CaseIterable {
        case x0
        case throughUnet = "through-unet"
    }

    func options() throws -> FaceSwapOptions {
        var o = FaceSwapOptions()
        if let files = try diffFace.files() { o.useDiffFace(files) }
        o.sourceFace = sourceFace
        switch targetFace {
        case .index(let i)?: o.targets = .index(i)
        case .all?: o.targets = .all
        case nil: o.targets = nil
        }
        o.referenceDistance = referenceDistance
        o.detector = faces.detector
        o.order = faces.order
        o.shape = shape
        o.outline = outline
        o.maskBlur = maskBlur
        o.keepGlasses = !coverGlasses
        o.regions = maskRegions.isEmpty ? SwapRegion.all : Set(maskRegions)
        o.diffusion = !noDiffusion
        if let strength { o.strength = strength }
        if let steps { o.steps = steps }
        o.detail = detail
        if ddpm { o.ddim = false }
        if ddim { o.ddim = true }
        if let samples { o.samples = samples }
        o.seed = seed
        o.identityWeight = identityWeight
        o.structureWeight = structureWeight
        o.gazeWeight = gazeWeight
        if let grad { o.gradientThroughNetwork = grad == .throughUnet }
        o.model = model
        o.modelConfig = config
        o.maxWorkSize = workSize
        o.referenceAttention = referenceAttention
        return o
    }

    func validate() throws {
        guard !source.isEmpty else { throw ValidationError("give at least one --source photo") }
        if ddpm && ddim { throw ValidationError("--ddpm and --ddim exclude each other") }
        if ddim && (try? diffFace.files())??.model == nil { throw ValidationError("--ddim is for DiffFace's UNet (--diffface with Model.pt, or --diffface-model); the embedded swap uses DDIM unless --ddpm") }
        do { try options().validate() } catch let e as PipelineError { throw ValidationError(e.message) }
    }

    var inputFiles: [String] { source + [target] + (reference.map { [$0] } ?? []) }
    var modelFiles: [String] { modelFile(model) + (config.map { [$0] } ?? []) + ((try? diffFace.files())?.all ?? []) }

    func run() throws { try runAsCommand() }

    func perform(_ context: JobContext) throws -> JobResult {
        try output.check(kind: .image, inputs: inputFiles + modelFiles)
        if let keepSamples {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: keepSamples, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("--keep-samples \(keepSamples) is not an existing folder")
            }
            try AtomicFile.checkWritable(keepSamples + "/sample-0.png")
        }
        let sources = try source.map { try ImageIO.read($0) }
        let targetImage = try ImageIO.read(target)
        let referenceImage = try reference.map { try ImageIO.read($0) }

        let swap = try FaceSwap(options: try options(), models: context.models)
        swap.note = context.note
        var bars: [String: ProgressBar] = [:]
        swap.progress = { p in
            let bar = bars[p.stage] ?? context.progress(total: p.total, label: p.stage)
            bars[p.stage] = bar
            bar.update(p.done)
        }
        let result = try swap.run(sources: sources, target: targetImage, reference: referenceImage,
                                  labels: (source, target, reference ?? "the reference photo"))
        try ImageIO.write(result.image, to: output.out)
        result.report.warnings.forEach(context.warn)
        if let keepSamples {
            for (f, samples) in result.samples.enumerated() {
                for (k, s) in samples.enumerated() {
                    try ImageIO.write(s, to: keepSamples + "/face\(result.report.faces[f].index)-sample\(k).png")
                }
            }
        }
        let lines = result.report.faces.map { f in
            String(format: "%@: face %d swapped; identity distance to source %.3f, to target %.3f (source to target %.3f); landmark error %.1f%% of eye distance",
                   output.out, f.index, f.identityToSource, f.identityToTarget, f.sourceToTarget, 100 * f.landmarkError)
        }
        return JobResult(report: SwapCommandReport(out: output.out, source: source, target: target, report: result.report),
                         text: lines.joined(separator: "\n"))
    }
}

struct SwapCommandReport: Encodable {
    var out: String
    var source: [String]
    var target: String
    var report: SwapReport
}
