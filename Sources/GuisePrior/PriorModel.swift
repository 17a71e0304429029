import Foundation
import GuiseTensor
import GuiseFormats
import GuiseNetworks

/// The small ADM that Guise trains as its own natural-image prior, and the tools to
/// build one from scratch: parameter names and shapes in guided-diffusion's layout, and
/// guided-diffusion's initialisation.
public enum PriorModel {
    /// The named presets, for messages.
    public static let configNames = ["small", "medium", "tiny", "tiny-attn"]

    /// Named presets. `small` is the first shipped prior: widths 32/64/64/128, one ResBlock a level,
    /// attention only in the middle block (ADM always has it there), cosine schedule with 1000 steps.
    /// `medium` is 32/96/96/192 with self-attention at the two lowest levels as well (1/4 and 1/8 of
    /// the input: attention_resolutions 64,32 at image_size 256), 32 channels a head; those layers
    /// are where reference attention can inject another image's keys and values. The full-resolution
    /// level stays at 32 channels: it costs the most per channel, and GroupNorm32 rules out 48.
    /// `tiny` exists for tests: two levels of 32 channels, one ResBlock each; `tiny-attn` adds
    /// attention at both levels.
    public static func config(named name: String) throws -> ADMConfig {
        var c = ADMConfig()
        c.inChannels = 3
        c.numChannels = 32
        c.attentionResolutions = []
        c.numHeads = 4
        c.numHeadChannels = -1
        c.useScaleShiftNorm = true
        c.resblockUpdown = false
        c.learnSigma = false
        c.diffusionSteps = 1000
        c.noiseSchedule = "cosine"
        switch name {
        case "small":
            c.imageSize = 256
            c.channelMult = [1, 2, 2, 4]
            c.numResBlocks = 1
        case "medium":
            c.imageSize = 256
            c.channelMult = [1, 3, 3, 6]
            c.numResBlocks = 1
            c.attentionResolutions = [64, 32]
            c.numHeadChannels = 32
        case "tiny":
            c.imageSize = 16
            c.channelMult = [1, 2]
            c.numResBlocks = 1
        case "tiny-attn":
            c.imageSize = 16
            c.channelMult = [1, 2]
            c.numResBlocks = 1
            c.attentionResolutions = [16, 8]
            c.numHeadChannels = 16
        default:
            throw FormatError("unknown prior config '\(name)' (expected \(configNames.joined(separator: ", ")))", category: .input)
        }
        try c.validate()
        return c
    }

    /// A parameter's shape and how guided-diffusion initialises it.
    public struct ParameterSpec: Equatable {
        public enum Kind: Equatable {
            /// PyTorch's default for Conv/Linear: U(−1/√fan_in, 1/√fan_in) for weight and bias alike.
            case fanIn(Int)
            /// guided-diffusion's zero_module: the last conv of each ResBlock, attention's proj_out, out.2.
            case zero
            case ones
        }
        public let shape: [Int]
        public let kind: Kind
    }

    /// Every parameter of `config`'s ADM, with the names ADMUNet reads, from the network's layout.
    public static func parameterSpecs(_ config: ADMConfig) throws -> [String: ParameterSpec] {
        guard config.idDim == nil, !config.classCond, !config.resblockUpdown, config.convResample else {
            throw FormatError("training supports plain unconditional ADMs (no id_embed, class_cond or resblock_updown)", category: .unsupported)
        }
        var specs: [String: ParameterSpec] = [:]
        for p in try ADMLayout(config).parameters {
            let kind: ParameterSpec.Kind
            switch p.kind {
            case .dense(let fanIn, let zero): kind = zero ? .zero : .fanIn(fanIn)
            case .normWeight: kind = .ones
            case .normBias: kind = .zero
            case .classEmbedding: throw FormatError("training supports unconditional ADMs only")
            }
            specs[p.name] = ParameterSpec(shape: p.shape, kind: kind)
        }
        return specs
    }

    /// Fresh parameters drawn from `rng`, in sorted name order so a seed always gives the same
    /// network. Each requires a gradient.
    public static func initialParameters(_ config: ADMConfig, rng: inout PriorRNG) throws -> [String: Tensor] {
        let specs = try parameterSpecs(config)
        var out: [String: Tensor] = [:]
        for name in specs.keys.sorted() {
            let spec = specs[name]!
            let t: Tensor
            switch spec.kind {
            case .zero: t = Tensor(zeros: spec.shape)
            case .ones: t = Tensor(shape: spec.shape, repeating: 1)
            case .fanIn(let fanIn):
                let bound = 1 / Double(fanIn).squareRoot()
                t = Tensor(uninitialized: spec.shape)
                for i in 0..<t.count { t.data[i] = Float((2 * rng.uniform() - 1) * bound) }
            }
            t.requiresGrad = true
            out[name] = t
        }
        return out
    }

    /// Multiply–accumulates ×2 of one forward pass at height×width (convolutions and attention's
    /// two matrix products; the embeddings' linear layers, norms and activations are left out, they
    /// are a few percent). Read off the layout rather than counted under a probe, which would cost
    /// a forward.
    public static func forwardFLOPs(_ config: ADMConfig, height: Int, width: Int) throws -> Double {
        _ = try parameterSpecs(config)
        func pixels(_ ds: Int) -> Double { Double(height / ds) * Double(width / ds) }
        var total = 0.0
        for p in try ADMLayout(config).parameters where p.name.hasSuffix(".weight") && p.shape.count >= 3 {
            // Each weight multiplies once per output pixel of the grid its layer runs on.
            total += 2 * Double(p.shape.reduce(1, *)) * pixels(p.downsampling)
            if p.name.hasSuffix(".qkv.weight") {
                let c = Double(p.shape[1]), t = pixels(p.downsampling)
                total += 2 * 2 * t * t * c
            }
        }
        return total
    }
}

extension PriorModel {
    /// The shipped priors by name, each a path under Models/ listed in Models/manifest.json.
    /// `guise-prior` is the first (small, 3.1M parameters); `guise-prior-2` the medium one.
    public static let shippedPriors = ["guise-prior": "prior/guise-prior.safetensors",
                                       "guise-prior-2": "prior/guise-prior-2.safetensors"]
    /// The prior that `prior` and no --model stand for. guise-prior-2 denoises the held-out photos
    /// better at every σ (Models/prior/README.md), but its attention at 1/4 resolution makes a
    /// forward 5–6× slower and far larger at the pipelines' 384–512² windows, and the swap, edit
    /// and clothes measurements have not been redone with it; until they are, it is opt-in.
    public static let defaultPrior = "guise-prior"
    /// The default prior's path under Models/.
    public static var shippedName: String { shippedPriors[defaultPrior]! }
}
