import ArgumentParser
import Foundation
import GuiseTensor
import GuiseFormats
import GuiseImage
import GuisePrior
import GuiseNetworks
import GuisePipelines
import GuiseVision

/// `guise denoise`: removes Gaussian noise of known σ with the diffusion prior.
struct Denoise: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove Gaussian noise of a known level with Guise's diffusion prior.",
        discussion: """
            The image, scaled by √ᾱ, is the diffusion's x_t at the timestep whose noise level matches --sigma \
            (0–255 units); --steps 1 predicts x̂0 there in one network evaluation, more runs a short DDIM from \
            that step. --tta averages the 8 flips and quarter turns (8× the time). The whole image is processed \
            at once, so memory grows with its size (about 1 GB per megapixel). --out takes any image type; \
            the result is written with 8 bits per channel.
            """)

    @Argument(help: "The noisy image (PNG, JPEG, …).")
    var input: String

    @Option(help: "The noise standard deviation in 0–255 units.")
    var sigma: Double

    @OptionGroup var output: OutputOptions

    @Option(help: "Network evaluations: 1 is one x̂0 step, more is DDIM.")
    var steps = 1

    @Option(help: "The prior: a file, or a shipped prior's name (\(PriorModel.shippedPriors.keys.sorted().joined(separator: ", "))); default \(PriorModel.defaultPrior).")
    var model: String?

    @Flag(help: "Average over flips and quarter turns.")
    var tta = false

    func validate() throws {
        guard sigma > 0 && sigma <= 255 else { throw ValidationError("--sigma must be in (0, 255]") }
        guard steps >= 1 && steps <= 100 else { throw ValidationError("--steps must be between 1 and 100") }
    }

    struct Report: Encodable {
        var input: String
        var out: String
        var model: String
        var width: Int
        var height: Int
        var sigma: Double
        var steps: Int
        var tta: Bool
        var seconds: Double
    }

    func run() throws {
        try output.check(kind: .image, inputs: [input, model])
        let start = Date()
        let path = try DiffusionModel.resolvePath(model)
        let denoiser = try PriorDenoiser(path: path)
        let image = try ImageIO.read(input)
        output.note("denoising \(input) (\(image.width)x\(image.height)) at σ \(sigma), \(steps) step\(steps == 1 ? "" : "s")\(tta ? ", 8 views" : "")")
        let y = ImageTensor.tensor(image, range: .signed)
        let x = try denoiser.denoise(y, sigma: sigma, steps: steps, tta: tta)
        try ImageIO.write(ImageTensor.image(x, range: .signed), to: output.out, bitDepth: 8)
        let report = Report(input: input, out: output.out, model: path, width: image.width, height: image.height,
                            sigma: sigma, steps: steps, tta: tta, seconds: seconds(since: start))
        try output.report(report, text: "\(output.out): \(image.width)x\(image.height), σ \(sigma), \(steps) step\(steps == 1 ? "" : "s") in \(String(format: "%.1f", report.seconds)) s")
    }
}
