import Foundation
import GuiseFormats

extension ADMConfig {
    /// What reading a config off a state_dict's shapes found, and what it had to guess.
    public struct Inferred {
        public let config: ADMConfig
        /// One line per setting the weights cannot determine, with the value assumed.
        public let guesses: [String]
    }

    /// Infers the architecture from parameter names and shapes alone.
    ///
    /// Determined by the weights: num_channels, in/out channels (learn_sigma), channel_mult,
    /// num_res_blocks, which levels have attention, use_scale_shift_norm, resblock_updown, learned
    /// conv resampling, class_cond with num_classes, id_dim. Not determined, because no parameter
    /// depends on it: the head split (num_heads / num_head_channels / num_heads_upsample), the QKV
    /// order (use_new_attention_order), image_size (guessed from channel_mult's defaults, which fixes
    /// the attention_resolutions strings), and the diffusion settings.
    public static func infer(fromShapes shapes: [String: [Int]]) throws -> Inferred {
        func shape(_ k: String) throws -> [Int] {
            guard let s = shapes[k] else { throw FormatError("not an ADM checkpoint: \(k) is missing") }
            return s
        }
        func has(_ prefix: String) -> Bool { shapes.keys.contains { $0.hasPrefix(prefix) } }
        var c = ADMConfig()
        var guesses: [String] = []
        let te = try shape("time_embed.0.weight")
        guard te.count == 2 else { throw FormatError("time_embed.0.weight has shape \(te), expected 2-D") }
        let mc = te[1]
        c.numChannels = mc
        let conv0 = try shape("input_blocks.0.0.weight")
        c.inChannels = conv0[1]
        let outC = try shape("out.2.weight")[0]
        c.learnSigma = outC == 2 * c.inChannels
        guard outC == c.inChannels || c.learnSigma else {
            throw FormatError("out.2 has \(outC) channels for \(c.inChannels) input channels: neither ε nor ε+variance")
        }
        if let le = shapes["label_emb.weight"] {
            c.classCond = true
            c.numClasses = le[0]
        }
        if let ie = shapes["id_embed.0.weight"] { c.idDim = ie[1] }

        // Output blocks: layer 0 is a ResBlock; then maybe attention (qkv), then maybe an upsampler
        // (a conv Upsample's `conv`, or an up ResBlock's `in_layers`).
        var nOut = 0
        while has("output_blocks.\(nOut).") { nOut += 1 }
        guard nOut > 0 else { throw FormatError("not an ADM checkpoint: no output_blocks") }
        var upsamplers: [Int] = []
        var upKind: String?
        var attnOut: [Bool] = []
        var outMult: [Int] = []
        for i in 0..<nOut {
            let p = "output_blocks.\(i)"
            let w = try shape("\(p).0.out_layers.3.weight")
            guard w[0] % mc == 0 else { throw FormatError("\(p) has \(w[0]) channels, not a multiple of num_channels \(mc)") }
            outMult.append(w[0] / mc)
            let attn = has("\(p).1.qkv.")
            attnOut.append(attn)
            let u = attn ? 2 : 1
            if has("\(p).\(u).conv.") { upsamplers.append(i); upKind = "conv" }
            if has("\(p).\(u).in_layers.") { upsamplers.append(i); upKind = "res" }
        }
        let perLevel: Int
        if let first = upsamplers.first {
            perLevel = first + 1
            guard nOut % perLevel == 0, upsamplers == Array(stride(from: first, to: nOut - 1, by: perLevel)) else {
                throw FormatError("output_blocks do not form equal levels; not an ADM layout")
            }
        } else {
            // No weighted upsampler: one level, or 2×2 average-pool / plain nearest resampling, whose
            // input blocks hold no parameters and show up as gaps in input_blocks' numbering.
            let inIndices = Set(shapes.keys.compactMap { k -> Int? in
                guard k.hasPrefix("input_blocks.") else { return nil }
                return Int(k.dropFirst("input_blocks.".count).prefix { $0 != "." })
            })
            let maxIn = inIndices.max() ?? 0
            if let gap = (0...maxIn).first(where: { !inIndices.contains($0) }) {
                perLevel = gap
                guard nOut % perLevel == 0 else { throw FormatError("output_blocks do not form equal levels; not an ADM layout") }
            } else {
                perLevel = nOut
            }
        }
        c.numResBlocks = perLevel - 1
        let levels = nOut / perLevel
        c.resblockUpdown = upKind == "res"
        c.convResample = upKind != nil || levels == 1
        c.channelMult = (0..<levels).map { outMult[(levels - 1 - $0) * perLevel] }
        let emb = try shape("middle_block.0.emb_layers.1.weight")[0]
        let midCh = try shape("middle_block.0.out_layers.3.weight")[0]
        c.useScaleShiftNorm = emb == 2 * midCh

        // Attention per level, as downsampling rates: where the layout without attention puts the
        // output blocks that have it.
        var plain = c
        plain.attentionResolutions = []
        plain.numHeadChannels = -1
        plain.numHeads = 1
        let plainBlocks = try ADMLayout(plain).outputBlocks
        guard plainBlocks.count == nOut else { throw FormatError("output_blocks do not form equal levels; not an ADM layout") }
        var rates = Set<Int>()
        for (i, block) in plainBlocks.enumerated() where attnOut[i] { rates.insert(block.downsampling) }
        if !has("middle_block.1.qkv.") { throw FormatError("middle_block.1 is not an attention block; not an ADM layout") }

        let mult = c.channelMult
        switch mult {
        case [1, 1, 2, 2, 4, 4]: c.imageSize = 256; guesses.append("image_size: assumed 256 from channel_mult (512 models share it)")
        case [1, 1, 2, 3, 4]: c.imageSize = 128; guesses.append("image_size: assumed 128 from channel_mult")
        case [1, 2, 3, 4]: c.imageSize = 64; guesses.append("image_size: assumed 64 from channel_mult")
        default:
            c.imageSize = 32 << max(0, levels - 1)
            guesses.append("image_size: not determined by the weights; assumed \(c.imageSize)")
        }
        c.attentionResolutions = rates.sorted().map { c.imageSize / $0 }.sorted(by: >)
        let attnChannels = rates.map { mult[min(levels - 1, $0.trailingZeroBitCount)] * mc }
        if !attnChannels.isEmpty, attnChannels.allSatisfy({ $0 % 64 == 0 }), midCh % 64 == 0 {
            c.numHeadChannels = 64
            c.numHeads = 4
            guesses.append("attention heads: not determined by the weights; assumed num_head_channels 64 (as the released 256² models and DiffFace)")
        } else {
            c.numHeadChannels = -1
            c.numHeads = 4
            guesses.append("attention heads: not determined by the weights; assumed num_heads 4 (model_and_diffusion_defaults)")
        }
        c.numHeadsUpsample = -1
        guesses.append("use_new_attention_order: not determined by the weights; assumed false (legacy order)")
        guesses.append("diffusion settings (noise_schedule, diffusion_steps, rescale_timesteps): not in the weights; defaults used")
        // Every tensor must be where the inferred layout puts it, with its shape.
        try ADMLayout(c).check(shapes: shapes)
        return Inferred(config: c, guesses: guesses)
    }
}
