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
            the same inputs give the same bytes.
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

    func validate() throws {
        var o = ClothesOptions()
        o.shading = shading
        do { try o.validate() } catch let e as PipelineError { throw ValidationError(e.message) }
    }

    static func readMask(_ path: String) throws -> Mask {
        let m = try ImageIO.read(path)
        return Mask(width: m.width, height: m.height, values: m.grey())
    }

    var inputFiles: [String] { [person, garment] + [personMask, garmentMask].compactMap { $0 } }

    func run() throws { try runAsCommand() }

    func perform(_ context: JobContext) throws -> JobResult {
        try output.check(kind: .image)
        let start = Date()
        let personImage = try ImageIO.read(person)
        let garmentImage = try ImageIO.read(garment)
        var o = ClothesOptions()
        o.kind = kind
        o.shading = shading
        o.personMask = try personMask.map(Self.readMask)
        o.garmentMask = try garmentMask.map(Self.readMask)
        let swap = try ClothesSwap(options: o, models: context.models)
        let bar = context.progress(total: 4, label: "clothes")
        var drawn = false
        swap.progress = { _, done, _ in bar.update(done); drawn = context.chatty && done < 4 }
        let image: Image, report: ClothesReport
        do {
            (image, report) = try swap.run(person: personImage, garment: garmentImage)
        } catch {
            // The error goes on a line of its own, not after a half-drawn bar.
            if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
            throw error
        }
        try ImageIO.write(image, to: output.out)
        let text = String(format: "%@: %@ garment (from a %@ photo) painted over %d px, %d px of old clothing filled; upper torso covered %.1f%%, warp residual %.1f px",
                          output.out, report.kind, report.garmentSource, report.paintedArea, report.filledArea, 100 * report.coverage, report.warpResidual)
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
