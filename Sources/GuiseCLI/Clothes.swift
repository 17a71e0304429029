import ArgumentParser
import Foundation
import GuiseImage
import GuisePipelines

extension GarmentKind: ExpressibleByArgument {}

struct Clothes: JobCommand {
    static let op = "clothes"

    static let configuration = CommandConfiguration(
        abstract: "Put the garment from one photo onto the person in another, keeping face, hands, pose and background.",
        discussion: """
            The person's clothing region comes from the body pose, the person mask, the face mesh and a skin \
            colour model (face, hands, bare skin and forearms lying across the body stay). The garment is what a \
            person in --garment wears, found the same way, or else the one object on a plain background (a \
            product photo, --kind upper only). A thin-plate spline through neck, shoulders and hips (and a \
            similarity per arm or leg) carries the garment onto the body; the person's own low-frequency shading \
            is put on it; old clothing it leaves uncovered becomes bare arm or is filled from around it. Pixels \
            outside the clothing region and the new garment are the person photo's, bit for bit. No randomness: \
            the same inputs give the same bytes. --harmonize S re-renders the changed region with the diffusion \
            prior from S of the chain (seeded by --seed), and --reference-attention W lets its self-attention \
            also attend to the garment's own unshaded pixels laid out on the person.
            """)

    @Option(help: "The photo of the person to dress.")
    var person: String

    @Option(help: "The garment: a photo of someone wearing it, or of the garment alone on a plain background.")
    var garment: String

    @OptionGroup var output: OutputOptions

    @Option(help: "Which garment: upper, lower or dress.")
    var kind: GarmentKind = .upper

    @Option(name: .customLong("garment-mask"), help: "The garment's region in --garment (white = garment), instead of finding it.")
    var garmentMask: String?

    @Option(name: .customLong("person-mask"), help: "The clothing region to replace in --person (white), instead of finding it.")
    var personMask: String?

    @Option(help: "How much of the person's own folds and light the garment takes (0…1).")
    var shading = 0.8

    @Option(help: "Diffusion harmonise of the changed region: the fraction of the chain re-run there (0 = off; e.g. 0.3).")
    var harmonize = 0.0

    @Option(name: .customLong("harmonize-steps"), help: "Steps of the whole respaced chain the harmonise runs a fraction of.")
    var harmonizeSteps = 20

    @Option(name: .customLong("reference-attention"),
            help: "With --harmonize: the garment's own pixels as the warp lays them on the person run beside the photo, and every self-attention layer of the network also attends to them with this weight (0 = off; 1 = their tokens count as the photo's own; up to 10).")
    var referenceAttention = 0.0

    @Option(help: "Random seed of the harmonise.")
    var seed: UInt64 = 0

    @Option(help: "Diffusion model of the harmonise: prior (embedded) or an ADM checkpoint path.")
    var model: String?

    func options() -> ClothesOptions {
        var o = ClothesOptions()
        o.kind = kind
        o.shading = shading
        o.harmonize = harmonize
        o.harmonizeSteps = harmonizeSteps
        o.referenceAttention = referenceAttention
        o.seed = seed
        o.model = model
        return o
    }

    func validate() throws {
        do { try options().validate() } catch let e as PipelineError { throw ValidationError(e.message) }
    }

    static func readMask(_ path: String) throws -> Mask {
        let m = try ImageIO.read(path)
        return Mask(width: m.width, height: m.height, values: m.grey())
    }

    var inputFiles: [String] { [person, garment] + [personMask, garmentMask].compactMap { $0 } }
    var modelFiles: [String] { harmonize > 0 ? modelFile(model) : [] }

    func run() throws { try runAsCommand() }

    func perform(_ context: JobContext) throws -> JobResult {
        try output.check(kind: .image, inputs: inputFiles + modelFiles)
        let start = Date()
        let personImage = try ImageIO.read(person)
        let garmentImage = try ImageIO.read(garment)
        var o = options()
        o.personMask = try personMask.map(Self.readMask)
        o.garmentMask = try garmentMask.map(Self.readMask)
        let swap = try ClothesSwap(options: o, models: context.models)
        let bar = context.progress(total: 4, label: "clothes")
        var drawn = false
        var diffusionBar: ProgressBar?
        swap.progress = { stage, done, total in
            if stage == "diffusion" {
                let b = diffusionBar ?? context.progress(total: total, label: "clothes: diffusion")
                diffusionBar = b
                b.update(done)
                drawn = context.chatty && done < total
            } else {
                bar.update(done)
                drawn = context.chatty && done < 4
            }
        }
        let image: Image, report: ClothesReport
        do {
            (image, report) = try swap.run(person: personImage, garment: garmentImage)
        } catch {
            // The error goes on a line of its own, not after a half-drawn bar.
            if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
            throw error
        }
        try ImageIO.write(image, to: output.out)
        var text = String(format: "%@: %@ garment (from a %@ photo) painted over %d px, %d px of old clothing filled; upper torso covered %.1f%%, warp residual %.1f px",
                          output.out, report.kind, report.garmentSource, report.paintedArea, report.filledArea, 100 * report.coverage, report.warpResidual)
        if let h = report.harmonize {
            text += String(format: "; harmonised from %.2f of the chain", h)
            if let w = report.referenceAttention { text += String(format: " with reference attention %.2f", w) }
        }
        return JobResult(report: ClothesCommandReport(out: output.out, person: person, garment: garment, seconds: seconds(since: start), report: report),
                         text: text)
    }
}

struct ClothesCommandReport: Encodable {
    var out: String
    var person: String
    var garment: String
    var seconds: Double
    var report: ClothesReport
}
