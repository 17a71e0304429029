import ArgumentParser
import Foundation
import GuiseTensor
import GuiseFormats
import GuiseImage
import GuiseNetworks
import GuiseDiffusion
import GuisePipelines
import GuiseVision

/// `guise sample`: unconditional or class-conditional generation with an ADM checkpoint.
struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate images with a guided-diffusion ADM checkpoint.",
        discussion: """
            DDPM with respacing such as --steps 100 or 10,10,10; DDIM with --steps ddim50 (and --eta). \
            The diffusion settings (diffusion_steps, noise_schedule, rescale_timesteps) come from --config; \
            without one the architecture is inferred from the weights and the defaults of guided-diffusion \
            are used. The same --seed gives the same images.
            """)

    @Option(help: "The ADM checkpoint (.safetensors or .pt), or prior for the shipped prior.")
    var model: String

    @Option(help: "A config JSON with guided-diffusion create_model argument names.")
    var config: String?

    @Option(help: "Timestep respacing: a step count (100), sections (10,10,10) or ddimN.")
    var steps = "100"

    @Option(help: "DDIM's eta (0 is deterministic).")
    var eta = 0.0

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(help: "How many images.")
    var n = 1

    @Option(name: .customLong("class"), help: "Class label for a class-conditional model (default: drawn from the seed).")
    var classLabel: Int?

    @Option(help: "Output PNG; with --n above 1, OUT-0.png, OUT-1.png, ….")
    var out: String

    @Flag(help: "No progress bar.")
    var quiet = false

    func validate() throws {
        guard n >= 1 && n <= 64 else { throw ValidationError("--n must be between 1 and 64") }
        guard eta >= 0 && eta <= 1 else { throw ValidationError("--eta must be between 0 and 1") }
    }

    func run() throws {
        let log: (String) -> Void = { msg in if !quiet { FileHandle.standardError.write(Data("\(msg)\n".utf8)) } }
        let loaded = try DiffusionModel.load(model, config: config, log: log)
        let net = loaded.net
        let cfg = net.config
        if cfg.idDim != nil {
            throw FormatError("\(model) has an identity embedding (a DiffFace model): it needs a source identity, which guise swap provides")
        }
        let diffusion = try loaded.diffusion(respacing: steps)
        let noise = SeededNoise(seed: seed)
        var options = SamplerOptions(method: steps.hasPrefix("ddim") ? .ddim(eta: eta) : .ddpm)
        if cfg.classCond {
            let labels: [Float]
            if let classLabel {
                guard classLabel >= 0 && classLabel < cfg.numClasses else {
                    throw ValidationError("--class must be in 0..<\(cfg.numClasses)")
                }
                labels = Array(repeating: Float(classLabel), count: n)
            } else {
                // Labels from the seed's own stream, independent of the image noise draws.
                let u = try SeededNoise(seed: seed ^ 0x5EED_C1A5).next([n]).values
                labels = u.map { Float(min(cfg.numClasses - 1, Int(Double(cfg.numClasses) * 0.5 * (1 + erf(Double($0) / 2.0.squareRoot()))))) }
            }
            options.conditioning["y"] = Tensor(shape: [n], values: labels)
        } else if classLabel != nil {
            throw ValidationError("--class needs a class-conditional model")
        }
        let bar = ProgressBar(total: diffusion.numTimesteps, label: "sampling", enabled: !quiet)
        options.progress = { p in bar.update(p.index, "t=\(p.t + 1)") }
        let size = cfg.imageSize
        let result = try diffusion.sample(loaded.denoiser,
                                          shape: [n, cfg.inChannels, size, size], options: options, noise: noise)
        let images = result.image
        let plane = size * size
        for i in 0..<n {
            // A model of other than 3 channels is shown as grey from its first channel.
            let picture = cfg.inChannels == 3
                ? try ImageTensor.image(images, range: .signed, index: i)
                : try ImageTensor.image(Tensor(shape: [1, 1, size, size], values: Array(images.narrow(i..<(i + 1)).values.prefix(plane))), range: .signed)
            let path = n == 1 ? out : ((out as NSString).deletingPathExtension + "-\(i)." + ((out as NSString).pathExtension.isEmpty ? "png" : (out as NSString).pathExtension))
            try ImageIO.write(picture, to: path)
            log("wrote \(path)")
        }
    }
}
