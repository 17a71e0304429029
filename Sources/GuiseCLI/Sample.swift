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
            are used. The same --seed gives the same images. --out takes any image type; with --n above 1 \
            the images are OUT-0.png, OUT-1.png, … (with OUT's extension).
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

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard n >= 1 && n <= 64 else { throw ValidationError("--n must be between 1 and 64") }
        guard eta >= 0 && eta <= 1 else { throw ValidationError("--eta must be between 0 and 1") }
    }

    struct Report: Encodable {
        var model: String
        var files: [String]
        var width: Int
        var height: Int
        var channels: Int
        var steps: String
        /// Network evaluations (timesteps after respacing).
        var evaluations: Int
        var method: String
        var eta: Double?
        var seed: UInt64
        var classLabels: [Int]?
        var seconds: Double
    }

    /// Where image `i` of `n` goes: OUT itself for one image, else OUT-i with OUT's extension.
    static func path(_ out: String, index i: Int, of n: Int) -> String {
        guard n > 1 else { return out }
        let o = out as NSString
        return o.deletingPathExtension + "-\(i)." + o.pathExtension
    }

    func run() throws {
        try output.check(kind: .image, inputs: [model, config])
        let start = Date()
        let loaded = try DiffusionModel.load(model, config: config, log: output.note)
        let net = loaded.net
        let cfg = net.config
        if cfg.idDim != nil {
            throw FormatError("\(model) has an identity embedding (a DiffFace model): it needs a source identity, which guise swap provides",
                              category: .unsupported)
        }
        let diffusion = try loaded.diffusion(respacing: steps)
        let noise = SeededNoise(seed: seed)
        let ddim = steps.hasPrefix("ddim")
        var options = SamplerOptions(method: ddim ? .ddim(eta: eta) : .ddpm)
        var classLabels: [Int]?
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
            classLabels = labels.map { Int($0) }
        } else if classLabel != nil {
            throw ValidationError("--class needs a class-conditional model")
        }
        let bar = output.progress(total: diffusion.numTimesteps, label: "sampling")
        options.progress = { p in bar.update(p.index, "t=\(p.t + 1)") }
        let size = cfg.imageSize
        let result = try diffusion.sample(loaded.denoiser,
                                          shape: [n, cfg.inChannels, size, size], options: options, noise: noise)
        let images = result.image
        let plane = size * size
        // Every image is converted before the first is written.
        let pictures = try (0..<n).map { i in
            // A model of other than 3 channels is shown as grey from its first channel.
            cfg.inChannels == 3
                ? try ImageTensor.image(images, range: .signed, index: i)
                : try ImageTensor.image(Tensor(shape: [1, 1, size, size], values: Array(images.narrow(i..<(i + 1)).values.prefix(plane))), range: .signed)
        }
        var files: [String] = []
        for (i, picture) in pictures.enumerated() {
            let path = Self.path(output.out, index: i, of: n)
            try ImageIO.write(picture, to: path)
            files.append(path)
        }
        let report = Report(model: loaded.path, files: files, width: size, height: size, channels: cfg.inChannels,
                            steps: steps, evaluations: diffusion.numTimesteps, method: ddim ? "ddim" : "ddpm",
                            eta: ddim ? eta : nil, seed: seed, classLabels: classLabels, seconds: seconds(since: start))
        try output.report(report, text: files.map { "wrote \($0) (\(size)x\(size))" }.joined(separator: "\n"))
    }
}
