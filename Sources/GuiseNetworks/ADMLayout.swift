import GuiseFormats

/// guided-diffusion's UNetModel for one ADMConfig, as a list: which blocks exist at which level,
/// their state-dict names, the layers in each and their channels. Walked here once, as
/// UNetModel.__init__ walks it; the network, the prior's initialiser and FLOP count, and config
/// inference all read it.
public struct ADMLayout {
    public enum Resample: Equatable { case none, up, down }

    public enum Layer: Equatable {
        /// A 3×3 conv (input_blocks.0.0).
        case conv(name: String, inChannels: Int, outChannels: Int)
        case res(name: String, inChannels: Int, outChannels: Int, resample: Resample)
        case attention(name: String, channels: Int, heads: Int)
        /// Downsample: a stride-2 3×3 conv `<name>.op` when `conv`, else 2×2 average pooling.
        case down(name: String, channels: Int, conv: Bool)
        /// Upsample: nearest ×2, then a 3×3 conv `<name>.conv` when `conv`.
        case up(name: String, channels: Int, conv: Bool)

        public var name: String {
            switch self {
            case .conv(let n, _, _), .res(let n, _, _, _), .attention(let n, _, _), .down(let n, _, _), .up(let n, _, _): return n
            }
        }
    }

    public struct Block {
        /// "input_blocks.3", "middle_block", "output_blocks.0".
        public let name: String
        public let layers: [Layer]
        /// How much smaller than the image the block's input is (1, 2, 4, …).
        public let downsampling: Int
    }

    public let config: ADMConfig
    /// num_channels, and the timestep embedding's width (4·num_channels).
    public let modelChannels: Int, embedChannels: Int
    public let inputBlocks: [Block]
    public let middleBlock: Block
    public let outputBlocks: [Block]
    /// Channels into `out` (out.0's norm and out.2's conv).
    public let finalChannels: Int

    public init(_ config: ADMConfig) throws {
        try config.validate()
        self.config = config
        let mc = config.numChannels
        modelChannels = mc
        embedChannels = 4 * mc
        let mult = try config.resolvedChannelMult()
        let rates = config.attentionRates()
        let headsUp = config.numHeadsUpsample == -1 ? config.numHeads : config.numHeadsUpsample
        func heads(_ ch: Int, _ n: Int) -> Int { config.numHeadChannels == -1 ? n : ch / config.numHeadChannels }
        let resample = config.resblockUpdown

        var ch = mult[0] * mc
        var input = [Block(name: "input_blocks.0", layers: [.conv(name: "input_blocks.0.0", inChannels: config.inChannels, outChannels: ch)],
                           downsampling: 1)]
        var chans = [ch]
        var ds = 1
        for (level, m) in mult.enumerated() {
            for _ in 0..<config.numResBlocks {
                let p = "input_blocks.\(input.count)"
                var layers: [Layer] = [.res(name: "\(p).0", inChannels: ch, outChannels: m * mc, resample: .none)]
                ch = m * mc
                if rates.contains(ds) { layers.append(.attention(name: "\(p).1", channels: ch, heads: heads(ch, config.numHeads))) }
                input.append(Block(name: p, layers: layers, downsampling: ds))
                chans.append(ch)
            }
            if level != mult.count - 1 {
                let p = "input_blocks.\(input.count)"
                let layer: Layer = resample ? .res(name: "\(p).0", inChannels: ch, outChannels: ch, resample: .down)
                                            : .down(name: "\(p).0", channels: ch, conv: config.convResample)
                input.append(Block(name: p, layers: [layer], downsampling: ds))
                chans.append(ch)
                ds *= 2
            }
        }
        inputBlocks = input
        middleBlock = Block(name: "middle_block", layers: [
            .res(name: "middle_block.0", inChannels: ch, outChannels: ch, resample: .none),
            .attention(name: "middle_block.1", channels: ch, heads: heads(ch, config.numHeads)),
            .res(name: "middle_block.2", inChannels: ch, outChannels: ch, resample: .none),
        ], downsampling: ds)
        var output: [Block] = []
        for (level, m) in mult.enumerated().reversed() {
            for i in 0...config.numResBlocks {
                let p = "output_blocks.\(output.count)"
                var layers: [Layer] = [.res(name: "\(p).0", inChannels: ch + chans.removeLast(), outChannels: m * mc, resample: .none)]
                ch = m * mc
                if rates.contains(ds) { layers.append(.attention(name: "\(p).1", channels: ch, heads: heads(ch, headsUp))) }
                let blockDs = ds
                if level > 0 && i == config.numResBlocks {
                    let q = "\(p).\(layers.count)"
                    layers.append(resample ? .res(name: q, inChannels: ch, outChannels: ch, resample: .up)
                                           : .up(name: q, channels: ch, conv: config.convResample))
                    ds /= 2
                }
                output.append(Block(name: p, layers: layers, downsampling: blockDs))
            }
        }
        outputBlocks = output
        finalChannels = ch
    }

    public var allBlocks: [Block] { inputBlocks + [middleBlock] + outputBlocks }

    /// One tensor of the state dict.
    public struct Parameter: Equatable {
        public enum Kind: Equatable {
            /// A conv's or linear layer's weight or bias, with the layer's fan-in; `zeroModule` where
            /// guided-diffusion starts the layer at zero (each ResBlock's last conv, attention's
            /// proj_out, out.2).
            case dense(fanIn: Int, zeroModule: Bool)
            case normWeight, normBias
            /// label_emb's table.
            case classEmbedding
        }
        public let name: String
        public let shape: [Int]
        public let kind: Kind
        /// How much smaller than the image the layer's output is (the grid a conv runs on); 1 for
        /// the embeddings' linear layers.
        public let downsampling: Int
    }

    /// Every tensor of the network's state dict, in module order.
    public var parameters: [Parameter] {
        var out: [Parameter] = []
        func dense(_ name: String, _ shape: [Int], _ ds: Int, zero: Bool = false) {
            let fanIn = shape.dropFirst().reduce(1, *)
            out.append(Parameter(name: "\(name).weight", shape: shape, kind: .dense(fanIn: fanIn, zeroModule: zero), downsampling: ds))
            out.append(Parameter(name: "\(name).bias", shape: [shape[0]], kind: .dense(fanIn: fanIn, zeroModule: zero), downsampling: ds))
        }
        func norm(_ name: String, _ ch: Int, _ ds: Int) {
            out.append(Parameter(name: "\(name).weight", shape: [ch], kind: .normWeight, downsampling: ds))
            out.append(Parameter(name: "\(name).bias", shape: [ch], kind: .normBias, downsampling: ds))
        }
        let ted = embedChannels
        dense("time_embed.0", [ted, modelChannels], 1)
        dense("time_embed.2", [ted, ted], 1)
        if let idDim = config.idDim {
            dense("id_embed.0", [ted, idDim], 1)
            dense("id_embed.2", [ted, ted], 1)
        }
        if config.classCond {
            out.append(Parameter(name: "label_emb.weight", shape: [config.numClasses, ted], kind: .classEmbedding, downsampling: 1))
        }
        for block in allBlocks {
            let ds = block.downsampling
            for layer in block.layers {
                switch layer {
                case .conv(let p, let i, let o):
                    dense(p, [o, i, 3, 3], ds)
                case .res(let p, let i, let o, let r):
                    // The block's convs run after its resampling.
                    let inner = r == .down ? 2 * ds : r == .up ? ds / 2 : ds
                    norm("\(p).in_layers.0", i, ds)
                    dense("\(p).in_layers.2", [o, i, 3, 3], inner)
                    dense("\(p).emb_layers.1", [config.useScaleShiftNorm ? 2 * o : o, ted], 1)
                    norm("\(p).out_layers.0", o, inner)
                    dense("\(p).out_layers.3", [o, o, 3, 3], inner, zero: true)
                    if o != i { dense("\(p).skip_connection", [o, i, 1, 1], inner) }
                case .attention(let p, let c, _):
                    norm("\(p).norm", c, ds)
                    dense("\(p).qkv", [3 * c, c, 1], ds)
                    dense("\(p).proj_out", [c, c, 1], ds, zero: true)
                case .down(let p, let c, let conv):
                    if conv { dense("\(p).op", [c, c, 3, 3], 2 * ds) }
                case .up(let p, let c, let conv):
                    if conv { dense("\(p).conv", [c, c, 3, 3], ds / 2) }
                }
            }
        }
        norm("out.0", finalChannels, 1)
        dense("out.2", [config.outChannels, finalChannels, 3, 3], 1, zero: true)
        return out
    }

    /// Checks a state dict's names and shapes against the layout: one line naming the first
    /// tensor missing, misshapen or unexpected.
    public func check(shapes: [String: [Int]]) throws {
        let params = parameters
        for p in params {
            guard let s = shapes[p.name] else { throw FormatError("checkpoint lacks \(p.name) (shape \(p.shape)) that this ADM layout needs") }
            guard s == p.shape else { throw FormatError("checkpoint \(p.name) has shape \(s), this ADM layout needs \(p.shape)") }
        }
        let known = Set(params.map(\.name))
        let extra = shapes.keys.filter { !known.contains($0) }.sorted()
        if let first = extra.first {
            throw FormatError("checkpoint has \(extra.count) tensor\(extra.count > 1 ? "s" : "") outside this ADM layout (\(first)\(extra.count > 1 ? ", …" : ""))")
        }
    }
}
