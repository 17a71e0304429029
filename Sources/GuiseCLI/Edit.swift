import ArgumentParser
import Foundation
import GuiseImage
import GuisePipelines

extension EditRegion: ExpressibleByArgument {}
extension EditOptions.FillStart: ExpressibleByArgument {}
extension EditOptions.Sampler: ExpressibleByArgument {}

/// `guise edit`: change only a masked region of a photo with the diffusion model.
struct EditCommand: JobCommand {
    static let op = "edit"
    static let positionalKeys = ["image", "source"]

    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "Fill or harmonise a masked region of a photo; every other pixel is kept exactly.",
        discussion: """
        White in the mask means "may change". Give the region as --mask FILE (any size; resized to \
        the photo with a warning), --box x,y,w,h, or --region (person and background from selfie \
        segmentation; face, skin, eyes, brows, nose, lips, mouth from the face mesh of --face). \
        --fill (the default) makes the region anew from its surroundings: OpenCV's Telea fill, \
        noised to --start-strength and denoised with the known part re-imposed at every step \
        (--resample N adds RePaint's resampling, walking each stretch of --jump steps N times). \
        --harmonize blends the region's edge into its surroundings, noises it to --strength and \
        denoises it, re-imposing the unmasked part from the noised original at each step, so a \
        rough paste-in takes on its surroundings' colour and light, keeping its own fine detail (--detail). \
        --expression-from PHOTO gives the mouth, eyes or brows of --face (--region) the shape they have in PHOTO: \
        the part is warped over the face mesh (the skin round it following, no triangle folding, the move \
        capped), the reference's mouth opening brought in where the mouth opens, and the changed area \
        harmonised under the face mesh's guidance (--expression-weight). \
        --gaze turns the eyes of --face: the irises are warped along their eyes to the new place (checked by the \
        iris network and corrected), then the eyes are harmonised under the iris expert's guidance. \
        --identity-from re-renders the region (the face by default) under dlib's identity guidance towards \
        another photo's face, keeping the region's fine detail. --appearance-from moves the region's \
        colours and texture to an image patch's, then re-renders it guided by their colour \
        statistics and a filter bank's responses (Gram matrices). One guidance per edit. \
        The network sees a window around the mask at the \
        photo's own resolution, so the cost follows the mask's size, not the photo's. \
        The same --seed gives the same bytes.
        """)

    /// -o/--out (.png keeps 16-bit and alpha), --json (mask area, mode, steps, seed, time), --quiet.
    @OptionGroup var output: OutputOptions
    var out: String { output.out }
    var json: Bool { output.json }
    var quiet: Bool { output.quiet }

    @Argument(help: "The photo (PNG, JPEG, WebP, BMP or TIFF).")
    var image: String

    @Option(help: "A mask image: white may change, black is kept.")
    var mask: String?

    @Option(help: "A rectangle that may change: x,y,w,h in pixels.")
    var box: String?

    @Option(help: "A region found in the photo (person and background from selfie segmentation, the rest from the face mesh).")
    var region: EditRegion?

    @Option(help: "Which face a face region belongs to, largest first, counting from 0.")
    var face = 0

    @Flag(help: "Make the region anew from its surroundings (the default).")
    var fill = false

    @Flag(name: [.customLong("harmonize"), .customLong("harmonise")], help: "Redraw the region in place so it fits its surroundings.")
    var harmonize = false

    @Option(help: "Harmonise: how far the photo is noised, 0…1 (more changes more).")
    var strength = 0.4

    @Option(help: "Harmonise: how much of the region's own fine detail is kept over the model's, 0…1 (0 redraws it all, e.g. a scribble).")
    var detail = 1.0

    @Option(name: .customLong("detail-scale"), help: "Harmonise: the detail kept is the band under this many pixels (Gaussian σ; default 4; with --identity-from 2 pixels of dlib's 150-pixel face chip).")
    var detailScale: Double?

    @Flag(name: .customLong("no-texture-match"), help: "Fill: keep the model's fill as drawn, without blending its edge in and scaling its detail to the texture around the hole.")
    var noTextureMatch = false
    @Flag(name: .customLong("no-poisson"), help: "Harmonise with the model alone, without the gradient-domain blend first.")
    var noPoisson = false

    @Option(help: "Fill: start from OpenCV's Telea fill noised to --start-strength, or from pure noise.")
    var start: EditOptions.FillStart = .telea

    @Option(name: .customLong("start-strength"), help: "Fill from Telea: how far its fill is noised, 0…1.")
    var startStrength = 0.6

    @Option(help: "ddpm (stochastic) or ddim (deterministic between resampling jumps).")
    var sampler: EditOptions.Sampler = .ddpm

    @Option(help: "Reverse diffusion steps of the whole schedule (a Telea start or harmonise runs the last part).")
    var steps = 50

    @Option(help: "Fill: how many times each stretch of --jump steps is walked (1: no resampling).")
    var resample = 1

    @Option(help: "Fill: the length of a resampling jump, in steps.")
    var jump = 5

    @Option(help: "Grow the mask by this many pixels before editing.")
    var grow = 0

    @Option(help: "Feather the mask's edge outwards over about this many pixels.")
    var feather = 0.0

    @Option(help: "Context around the mask the network sees, in pixels (default: a quarter of its size, 16 to 64).")
    var margin: Int?

    @Option(help: "The largest window side the network sees at once; larger windows are tiled.")
    var tile = 384

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(help: "Turn the eyes: the irises warped along their eyes to camera (the centre line) or a horizontal offset in eye widths (-0.5…0.5), then re-rendered with the iris expert's guidance.")
    var gaze: String?

    @Option(name: .customLong("gaze-weight"), help: "The gaze guidance's weight.")
    var gazeWeight = EditGuides.defaultGazeWeight

    @Option(name: .customLong("identity-from"), help: "Re-render the region (default --region face) towards the identity of the largest face in this photo, under dlib's identity guidance.")
    var identityFrom: String?

    @Option(name: .customLong("identity-weight"), help: "The identity guidance's weight.")
    var identityWeight = EditGuides.defaultIdentityWeight

    @Option(name: .customLong("appearance-from"), help: "Re-render the region with the colours and texture of this image patch (at least 32x32): both moved first, then guided by colour statistics and filter-bank Gram matrices.")
    var appearanceFrom: String?

    @Option(name: .customLong("appearance-weight"), help: "The appearance guidance's weight.")
    var appearanceWeight = EditGuides.defaultAppearanceWeight

    @Option(name: .customLong("expression-from"), help: "Give the face the mouth (--region mouth or lips, the default), eyes or brows (or all three: --region face) of the face in this photo: warped over the face mesh, then re-rendered under the mesh expert's guidance.")
    var expressionFrom: String?

    @Option(name: .customLong("expression-weight"), help: "The expression guidance's weight.")
    var expressionWeight = EditExpression.defaultWeight

    @Option(help: "The diffusion model: prior (the embedded one) or an ADM checkpoint file.")
    var model: String?

    func validate() throws {
        let given = [mask != nil, box != nil, region != nil].filter { $0 }.count
        if let gaze { _ = try GazeTarget(parsing: gaze) }
        guard gazeWeight >= 0 && gazeWeight.isFinite else { throw ValidationError("--gaze-weight must be 0 or more") }
        guard [identityWeight, appearanceWeight, expressionWeight].allSatisfy({ $0 >= 0 && $0.isFinite }) else {
            throw ValidationError("--identity-weight, --appearance-weight and --expression-weight must be 0 or more")
        }
        let guides = [gaze, identityFrom, appearanceFrom, expressionFrom].compactMap { $0 }.count
        guard guides <= 1 else { throw ValidationError("give only one of --gaze, --identity-from, --appearance-from and --expression-from") }
        if expressionFrom != nil {
            guard mask == nil && box == nil else {
                throw ValidationError("--expression-from makes its own mask: choose the parts with --region (mouth, lips, eyes, brows or face), not --mask or --box")
            }
            if let region, region != .face, EditExpression.Part(region: region) == nil {
                throw ValidationError("--expression-from moves the mouth, lips, eyes, brows or face, not \(region.rawValue)")
            }
        } else {
            guard given == 1 || (given == 0 && (gaze != nil || identityFrom != nil)) else { throw ValidationError("give exactly one of --mask, --box and --region") }
        }
        guard !(fill && harmonize) else { throw ValidationError("--fill and --harmonize exclude each other") }
        guard strength > 0 && strength <= 1 else { throw ValidationError("--strength must be in (0, 1]") }
        guard startStrength > 0 && startStrength <= 1 else { throw ValidationError("--start-strength must be in (0, 1]") }
        guard steps >= 1 && steps <= 1000 else { throw ValidationError("--steps must be between 1 and 1000") }
        guard resample >= 1, jump >= 1 else { throw ValidationError("--resample and --jump must be 1 or more") }
        guard grow >= 0 else { throw ValidationError("--grow must be 0 or more") }
        guard feather >= 0 && feather.isFinite else { throw ValidationError("--feather must be 0 or more") }
        guard face >= 0 else { throw ValidationError("--face must be 0 or more") }
        guard tile >= 32 else { throw ValidationError("--tile must be at least 32") }
        if let margin, margin < 0 { throw ValidationError("--margin must be 0 or more") }
    }

    var inputFiles: [String] { [image] + [mask, identityFrom, appearanceFrom, expressionFrom].compactMap { $0 } }
    var modelFiles: [String] { modelFile(model) }

    func run() throws { try runAsCommand() }

    func perform(_ context: JobContext) throws -> JobResult {
        try output.check(kind: .image, inputs: inputFiles + modelFiles)
        let photo = try ImageIO.read(image)
        var m: Mask
        var expression: (guidance: EditGuidance, context: [Int], mask: Mask, plan: EditExpression.Plan)?
        if let expressionFrom {
            let reference = try ImageIO.read(expressionFrom)
            let parts = region.flatMap(EditExpression.Part.init(region:)).map { [$0] } ?? (region == .face ? EditExpression.Part.allCases : [.mouth])
            let e = try EditExpression.forFace(image: photo, reference: reference, parts: parts, faceIndex: face, label: image,
                                               referenceLabel: expressionFrom, weight: expressionWeight, models: context.models, note: context.note)
            if e.plan.amount < 0.999 {
                let why = e.plan.amount < e.plan.capped - 1e-3 ? "shrunk so the warp does not fold" : "the move capped at \(Int(EditExpression.maxShift * 100)) % of the face width"
                context.note("the expression is carried \(Int((e.plan.amount * 100).rounded())) % of the way (\(why))")
            }
            expression = e
            m = e.mask
        } else if let mask {
            m = try EditMasks.read(mask, width: photo.width, height: photo.height, warn: context.warn)
        } else if let box {
            let b = try EditMasks.parseBox(box)
            m = try EditMasks.box(x: b.x, y: b.y, w: b.w, h: b.h, width: photo.width, height: photo.height)
        } else {
            m = try EditMasks.region(region ?? (identityFrom != nil ? .face : .eyes), in: photo, faceIndex: face, label: image, models: context.models, note: context.note)
            // The irises move within the eye: the eye outline alone would clip them.
            if region == nil, gaze != nil, grow == 0 { m = try EditMasks.refine(m, grow: max(2, photo.width / 200)) }
        }
        m = try EditMasks.refine(m, grow: grow, feather: feather)

        var options = EditOptions()
        options.mode = harmonize ? .harmonize : .fill
        options.model = model
        options.steps = steps
        options.resample = resample
        options.jump = jump
        options.strength = strength
        options.fillStart = start
        options.fillStrength = startStrength
        options.sampler = sampler
        options.poisson = !noPoisson
        options.matchTexture = !noTextureMatch
        options.detail = detail
        options.detailSigma = detailScale ?? options.detailSigma
        options.seed = seed
        options.margin = margin
        options.tileSize = tile
        if let expression {
            options.mode = .harmonize
            // The moved part keeps its own gradients; the membrane would flatten them.
            options.poisson = false
            options.guidance = expression.guidance
            options.context = expression.context
            options.startToneSigma = expression.plan.toneSigma
        }
        if let gaze {
            options.mode = .harmonize
            // The region is the photo's own eye: nothing to blend in, and the blend would flatten it.
            options.poisson = false
            let g = try EditGuides.gazeForFace(try GazeTarget(parsing: gaze), image: photo, faceIndex: face, label: image,
                                               weight: gazeWeight, models: context.models, note: context.note)
            options.guidance = g.guidance
            options.context = g.context
        }
        if let identityFrom {
            options.mode = .harmonize
            options.poisson = false
            let reference = try ImageIO.read(identityFrom)
            let g = try EditGuides.identityForFace(reference: reference, referenceLabel: identityFrom, image: photo, faceIndex: face,
                                                   label: image, weight: identityWeight, seed: seed, models: context.models, note: context.note)
            options.guidance = g.guidance
            options.context = g.context
            if detailScale == nil { options.detailSigma = g.detailScale }
        }
        if let appearanceFrom {
            options.mode = .harmonize
            // The membrane blend would pull the region's new colours back to its surroundings'.
            options.poisson = false
            options.guidance = try EditGuides.appearance(patch: try ImageIO.read(appearanceFrom), mask: m, weight: appearanceWeight)
        }
        var bar: ProgressBar?
        options.progress = { done, total in
            if bar == nil { bar = context.progress(total: total, label: options.mode.rawValue) }
            bar?.update(done)
        }
        let (result, report) = try Edit(options, models: context.models).run(image: photo, mask: m)
        report.warnings.forEach(context.warn)
        report.notes.forEach(context.note)
        try ImageIO.write(result, to: out)
        return JobResult(report: report, text: quiet ? "" : "\(out): \(report.mode.rawValue), \(report.maskPixels) px (\(String(format: "%.1f", report.maskFraction * 100))%) in \(String(format: "%.1f", report.seconds)) s")
    }
}
