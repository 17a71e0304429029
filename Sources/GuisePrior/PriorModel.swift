import Foundation
import GuiseTensor
import GuiseFormats
import GuiseNetworks

/// The small ADM that Guise trains as its own natural-image prior (issue 6), and the tools to
/// build one from scratch: parameter names and shapes in guided-diffusion's layout, and
/// guided-diffusion's initialisation.
public enum PriorModel {
    /// Named presets. `small` is the shipped prior: widths 32/64/64/128, two ResBlocks a level,
    /// attention only in the middle block (ADM always has it there), cosine schedule with 1000 steps.
    /// `tiny` exists for tests: two levels of 32 channels, one ResBlock each.
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
        case "tiny":
            c.imageSize = 16
            c.channelMult = [1, 2]
            c.numResBlocks = 1
        default:
            throw FormatError("unknown prior config '\(name)' (expected small or tiny)", category: .input)
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

    /// Every parameter of `config`'s ADM, with the names ADMUNet reads. Walks the network as
    /// guided-diffusion's UNetModel.__init__ does.
    public static func parameterSpecs(_ config: ADMConfig) throws -> [String: ParameterSpec] {
        try config.validate()
        var specs: [String: ParameterSpec] = [:]
        func dense(_ name: String, _ shape: [Int], zero: Bool = false) {
            let fanIn = shape.dropFirst().reduce(1, *)
            specs["\(name).weight"] = ParameterSpec(shape: shape, kind: zero ? .zero : .fanIn(fanIn))
            specs["\(name).bias"] = ParameterSpec(shape: [shape[0]], kind: zero ? .zero : .fanIn(fanIn))
        }
        func norm(_ name: String, _ ch: Int) {
            specs["\(name).weight"] = ParameterSpec(shape: [ch], kind: .ones)
            specs["\(name).bias"] = ParameterSpec(shape: [ch], kind: .zero)
        }
        func conv(_ name: String, _ inC: Int, _ outC: Int, _ k: Int, zero: Bool = false) {
            dense(name, [outC, inC, k, k], zero: zero)
        }
        let mc = config.numChannels, ted = 4 * mc
        let ss = config.useScaleShiftNorm
        func res(_ p: String, _ ch: Int, _ out: Int) {
            norm("\(p).in_layers.0", ch)
            conv("\(p).in_layers.2", ch, out, 3)
            dense("\(p).emb_layers.1", [ss ? 2 * out : out, ted])
            norm("\(p).out_layers.0", out)
            conv("\(p).out_layers.3", out, out, 3, zero: true)
            if out != ch { conv("\(p).skip_connection", ch, out, 1) }
        }
        func attention(_ p: String, _ ch: Int) {
            norm("\(p).norm", ch)
            dense("\(p).qkv", [3 * ch, ch, 1])
            dense("\(p).proj_out", [ch, ch, 1], zero: true)
        }
        guard config.idDim == nil, !config.classCond, !config.resblockUpdown, config.convResample else {
            throw FormatError("training supports plain unconditional ADMs (no id_embed, class_cond or resblock_updown)", category: .unsupported)
        }
        dense("time_embed.0", [ted, mc])
        dense("time_embed.2", [ted, ted])
        let mult = try config.resolvedChannelMult()
        let rates = config.attentionRates()
        var ch = mult[0] * mc
        let inputCh = ch
        conv("input_blocks.0.0", config.inChannels, ch, 3)
        var block = 1
        var chans = [ch]
        var ds = 1
        for (level, m) in mult.enumerated() {
            for _ in 0..<config.numResBlocks {
                res("input_blocks.\(block).0", ch, m * mc)
                ch = m * mc
                if rates.contains(ds) { attention("input_blocks.\(block).1", ch) }
                block += 1
                chans.append(ch)
            }
            if level != mult.count - 1 {
                conv("input_blocks.\(block).0.op", ch, ch, 3)
                block += 1
                chans.append(ch)
                ds *= 2
            }
        }
        res("middle_block.0", ch, ch)
        attention("middle_block.1", ch)
        res("middle_block.2", ch, ch)
        var out = 0
        for (level, m) in mult.enumerated().reversed() {
            for i in 0...config.numResBlocks {
                let p = "output_blocks.\(out)"
                res("\(p).0", ch + chans.removeLast(), m * mc)
                ch = m * mc
                var layer = 1
                if rates.contains(ds) { attention("\(p).1", ch); layer += 1 }
                if level > 0 && i == config.numResBlocks {
                    conv("\(p).\(layer).conv", ch, ch, 3)
                    ds /= 2
                }
                out += 1
            }
        }
        norm("out.0", ch)
        conv("out.2", inputCh, config.outChannels, 3, zero: true)
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

    /// Multiply–accumulates ×2 of one forward pass at height×width (convolutions, linear layers
    /// and attention's two matrix products; norms and activations are left out, they are a few
    /// percent). Counted by running the network under a probe would cost a forward; this walks
    /// the same structure instead.
    public static func forwardFLOPs(_ config: ADMConfig, height: Int, width: Int) throws -> Double {
        let specs = try parameterSpecs(config)
        let mult = try config.resolvedChannelMult()
        // Pixels at which each conv runs: from its block's level.
        var total = 0.0
        let levels = mult.count
        func pixels(_ ds: Int) -> Double { Double(height / ds) * Double(width / ds) }
        // Level of a block, replayed from the same walk.
        var inputLevel: [Int: Int] = [:]
        var block = 1, ds = 1
        inputLevel[0] = 1
        for level in 0..<levels {
            for _ in 0..<config.numResBlocks { inputLevel[block] = ds; block += 1 }
            if level != levels - 1 { inputLevel[block] = ds; block += 1; ds *= 2 }
        }
        var outputLevel: [Int: Int] = [:]
        var out = 0
        for level in (0..<levels).reversed() {
            for _ in 0...config.numResBlocks { outputLevel[out] = 1 << level; out += 1 }
        }
        for (name, spec) in specs where name.hasSuffix(".weight") && spec.shape.count >= 3 {
            let macsPerPixel = Double(spec.shape.reduce(1, *))
            let parts = name.split(separator: ".")
            var d = 1
            if parts[0] == "input_blocks", let i = Int(parts[1]) {
                d = inputLevel[i] ?? 1
                if name.hasSuffix(".op.weight") { d *= 2 }  // stride 2: output at the next level
            } else if parts[0] == "output_blocks", let i = Int(parts[1]) {
                d = outputLevel[i] ?? 1
                if name.hasSuffix(".conv.weight") { d /= 2 }  // after the nearest ×2 upsample
            } else if parts[0] == "middle_block" {
                d = 1 << (levels - 1)
            }
            total += 2 * macsPerPixel * pixels(d)
            if name.hasSuffix(".qkv.weight") {
                let c = Double(spec.shape[1]), t = pixels(d)
                total += 2 * 2 * t * t * c
            }
        }
        return total
    }
}

extension PriorModel {
    /// The shipped prior's name in Models/manifest.json (a path under Models/).
    public static let shippedName = "prior/guise-prior.safetensors"
}
