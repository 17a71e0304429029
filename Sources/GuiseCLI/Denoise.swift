import ArgumentParser
import Foundation
import GuiseTensor
import GuiseFormats
import GuiseImage
import GuisePrior
import GuiseNetworks

/// `guise denoise`: removes Gaussian noise of known σ with the diffusion prior.
struct Denoise: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove Gaussian noise of a known level with Guise's diffusion prior.",
        discussion: """
            The image, scaled by √ᾱ, is the diffusion's x_t at the timestep whose noise level matches --sigma \
            (0–255 units); --steps 1 predicts x̂0 there in one network evaluation, more runs a short DDIM from \
            that step. --tta averages the 8 flips and quarter turns (8× the time). The whole image is processed \
            at once, so memory grows with its size (about 1 GB per megapixel).
            """)

    @Argument(help: "The noisy image (PNG, JPEG, …).")
    var input: String

    @Option(help: "The noise standard deviation in 0–255 units.")
    var sigma: Double

    @Option(help: "Where to write the result (8-bit; format from the extension).")
    var out: String

    @Option(help: "Network evaluations: 1 is one x̂0 step, more is DDIM.")
    var steps = 1

    @Option(help: "The prior (default: the shipped one, \(PriorModel.shippedName) in Models/).")
    var model: String?

    @Flag(help: "Average over flips and quarter turns.")
    var tta = false

    func validate() throws {
        guard sigma > 0 && sigma <= 255 else { throw ValidationError("--sigma must be in (0, 255]") }
        guard steps >= 1 && steps <= 100 else { throw ValidationError("--steps must be between 1 and 100") }
    }

    func run() throws {
        let path = try resolvePriorPath(model)
        let denoiser = try PriorDenoiser(path: path)
        let image = try ImageIO.read(input)
        let (w, h) = (image.width, image.height)
        let y = Tensor(shape: [1, 3, h, w], values: image.rgb.map { 2 * $0 - 1 })
        let x = try denoiser.denoise(y, sigma: sigma, steps: steps, tta: tta)
        let rgb = x.values.map { min(max(($0 + 1) / 2, 0), 1) }
        try ImageIO.write(Image(width: w, height: h, rgb: rgb), to: out, bitDepth: 8)
    }
}

/// A prior path: nil or "prior" means the shipped prior listed in Models/manifest.json.
func resolvePriorPath(_ model: String?) throws -> String {
    if let model, model != "prior" { return model }
    return try ModelStore.locate().installedPath(PriorModel.shippedName)
}

/// `guise sample`'s model: "prior" is the shipped prior; a file written by train-prior carries its
/// config (cosine schedule included) in its metadata; anything else goes through loadADM.
func loadSampleModel(_ model: String, config: String?, log: (String) -> Void) throws -> ADMUNet {
    let path = try model == "prior" ? resolvePriorPath(model) : model
    if config == nil, model == "prior" || ((try? SafeTensorsFile(path: path))?.metadata["adm_config"] != nil) {
        return try PriorDenoiser(path: path).net
    }
    return try loadADM(path, config: config, log: log)
}
