import Foundation
import GuiseTensor
import GuiseFormats

/// guided-diffusion's ADM UNet (Dhariwal & Nichol 2021), with DiffFace's optional identity
/// embedding. Parameters keep guided-diffusion's state_dict names, so a checkpoint's keys map 1:1:
/// `time_embed.{0,2}`, `label_emb`, `id_embed.{0,2}`, `input_blocks.i.j`, `middle_block.{0,1,2}`,
/// `output_blocks.i.j`, `out.{0,2}`; inside a ResBlock `in_layers.{0,2}`, `emb_layers.1`,
/// `out_layers.{0,3}`, `skip_connection`; inside an AttentionBlock `norm`, `qkv`, `proj_out`;
/// a conv Downsample is `op`, a conv Upsample `conv`. Dropout is inert (inference).
public final class ADMUNet {
    public let config: ADMConfig
    let modelChannels: Int
    let timeEmbed: (Linear, Linear)
    let idEmbed: (Linear, Linear)?
    let labelEmb: Tensor?
    let inputBlocks: [[ADMLayer]]
    let middleBlock: [ADMLayer]
    let outputBlocks: [[ADMLayer]]
    let outNorm: GroupNorm
    let outConv: Conv2d

    /// Builds the network for `config` from a state_dict. Every parameter must be present with its
    /// shape, and nothing else may be; half-precision weights arrive already widened to float32.
    public init(config: ADMConfig, weights: [String: Tensor]) throws {
        let layout = try ADMLayout(config)
        self.config = config
        var w = WeightReader(weights)
        let mc = layout.modelChannels, ted = layout.embedChannels
        modelChannels = mc
        timeEmbed = (try Linear(&w, "time_embed.0", mc, ted), try Linear(&w, "time_embed.2", ted, ted))
        if let idDim = config.idDim {
            idEmbed = (try Linear(&w, "id_embed.0", idDim, ted), try Linear(&w, "id_embed.2", ted, ted))
        } else {
            idEmbed = nil
        }
        labelEmb = config.classCond ? try w.take("label_emb.weight", [config.numClasses, ted]) : nil

        func build(_ block: ADMLayout.Block) throws -> [ADMLayer] {
            try block.layers.map { layer in
                switch layer {
                case .conv(let p, let i, let o):
                    return .conv(try Conv2d(&w, p, i, o, kernel: 3))
                case .res(let p, let i, let o, let r):
                    return .res(try ResBlock(&w, p, i, o, ted, scaleShift: config.useScaleShiftNorm, resample: r))
                case .attention(let p, let c, let heads):
                    return .attention(try AttentionBlock(&w, p, c, heads: heads, newOrder: config.useNewAttentionOrder))
                case .down(let p, let c, let conv):
                    return .down(conv ? try Conv2d(&w, "\(p).op", c, c, kernel: 3, stride: 2) : nil)
                case .up(let p, let c, let conv):
                    return .up(conv ? try Conv2d(&w, "\(p).conv", c, c, kernel: 3) : nil)
                }
            }
        }
        inputBlocks = try layout.inputBlocks.map(build)
        middleBlock = try build(layout.middleBlock)
        outputBlocks = try layout.outputBlocks.map(build)
        outNorm = try GroupNorm(&w, "out.0", layout.finalChannels)
        outConv = try Conv2d(&w, "out.2", layout.finalChannels, config.outChannels, kernel: 3)
        try w.finish()
    }

    /// A checkpoint file, safetensors or PyTorch (`.pt`, zip or legacy), told apart by content.
    public convenience init(path: String, config: ADMConfig) throws {
        try self.init(config: config, weights: try ADMUNet.loadStateDict(path: path))
    }

    /// A state_dict widened to float32 (fp16/bf16 weights included).
    public static func loadStateDict(path: String) throws -> [String: Tensor] {
        try stateDict(Checkpoint(path: path))
    }

    public static func stateDict(_ checkpoint: Checkpoint) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, stored) in checkpoint.tensors { out[name] = stored.toTensor() }
        return out
    }

    /// ε (and variance values with learn_sigma) for x [N, C, H, W] at network timesteps [N]
    /// (float or integer values; fractional ones occur with rescale_timesteps). `y` [N] class labels
    /// for class-conditional models, `id` [N, id_dim] identity embeddings for DiffFace models.
    /// `reference`: reference attention (see `ADMReference`); with weight 0, or nil, the plain
    /// forward, bit for bit. Differentiable in x (and in id).
    public func callAsFunction(_ x: Tensor, timesteps: Tensor, y: Tensor? = nil, id: Tensor? = nil,
                               reference: ADMReference? = nil) throws -> Tensor {
        let c = config
        guard x.rank == 4, x.shape[1] == c.inChannels else {
            throw NetworkError("ADM input must be [N, \(c.inChannels), H, W], got \(x.shape)")
        }
        let n = x.shape[0]
        let levels = (try c.resolvedChannelMult()).count
        let factor = 1 << (levels - 1)
        guard x.shape[2] % factor == 0, x.shape[3] % factor == 0 else {
            throw NetworkError("ADM input \(x.shape[2])×\(x.shape[3]) must be divisible by \(factor) (\(levels) levels)")
        }
        guard timesteps.count == n else { throw NetworkError("timesteps has \(timesteps.count) values for a batch of \(n)") }
        if let reference { try reference.check(sample: x.shape, timesteps: timesteps.values) }
        guard let reference, reference.weight > 0 else {
            return try forward(x, timesteps: timesteps, y: y, id: id, plan: nil)
        }

        // One batch: the N samples in rows 0..<N, the R references after them (row N + i is
        // sample i's reference, or with R = 1 row N serves every sample). A reference row gets
        // its sample's timestep and conditioning (sample 0's when shared).
        let r = reference.x.shape[0]
        let owner = r == n ? Array(0..<n) : [0]
        func withReferenceRows(_ t: Tensor) -> Tensor {
            Tensor.concat([t] + owner.map { t.narrow($0..<($0 + 1)) }, dim: 0)
        }
        let plan = ReferencePlan(samples: n, references: r, logWeight: Foundation.log(reference.weight))
        let out = try forward(Tensor.concat([x, reference.x], dim: 0), timesteps: withReferenceRows(timesteps.reshaped([n])),
                              y: y.map { withReferenceRows($0.reshaped([$0.count])) }, id: id.map(withReferenceRows), plan: plan)
        return out
    }

    /// The network on a batch; with a plan, the batch's last `plan.references` rows are
    /// references and the result has the first `plan.samples` rows only.
    func forward(_ x: Tensor, timesteps: Tensor, y: Tensor?, id: Tensor?, plan: ReferencePlan?) throws -> Tensor {
        let c = config
        let n = x.shape[0]
        var emb = timeEmbed.1(timeEmbed.0(timestepEmbedding(timesteps.values, dim: modelChannels)).silu())
        if let (l0, l2) = idEmbed {
            guard let id, id.rank == 2, id.shape[0] == n, id.shape[1] == c.idDim else {
                throw NetworkError("this model needs an identity embedding id [\(plan?.samples ?? n), \(c.idDim ?? 0)]\(id.map { ", got \($0.shape)" } ?? "")")
            }
            emb = emb + l2(l0(id).silu())
        } else if id != nil {
            throw NetworkError("this model has no id_embed; do not pass an identity embedding")
        }
        if let table = labelEmb {
            guard let y, y.count == n else { throw NetworkError("this class-conditional model needs labels y [\(plan?.samples ?? n)]") }
            emb = emb + (try embeddingRows(table, y.values))
        } else if y != nil {
            throw NetworkError("this model is not class-conditional; do not pass labels y")
        }
        // Every ResBlock starts its embedding path with SiLU: compute it once.
        var embAct = emb.silu()

        // With references in the batch, they run only as far as the last block with attention:
        // after it nothing reads their rows, so they are dropped from the activations.
        var refPlan = plan
        let lastAttention = plan == nil ? -1 : attentionBlockIndices.max() ?? -1
        var blockIndex = 0
        var hs: [Tensor] = []
        var h = x
        func afterBlock() {
            if let p = refPlan, blockIndex == lastAttention {
                h = h.narrow(0..<p.samples)
                hs = hs.map { $0.narrow(0..<p.samples) }
                embAct = embAct.narrow(0..<p.samples)
                refPlan = nil
            }
            blockIndex += 1
        }
        for block in inputBlocks {
            h = run(block, h, embAct, refPlan, recompute: checkpointInputBlocks)
            hs.append(h)
            afterBlock()
        }
        h = run(middleBlock, h, embAct, refPlan)
        afterBlock()
        for block in outputBlocks {
            h = run(block, Tensor.concat([h, hs.removeLast()], dim: 1), embAct, refPlan)
            afterBlock()
        }
        return outConv(outNorm(h).silu())
    }

    /// Positions, in the order input blocks, middle block, output blocks, of the blocks that
    /// hold an attention layer.
    var attentionBlockIndices: [Int] {
        (inputBlocks + [middleBlock] + outputBlocks).enumerated().compactMap { i, block in
            block.contains { if case .attention = $0 { return true } else { return false } } ? i : nil
        }
    }

    /// Gradient checkpointing (guided-diffusion's use_checkpoint): while gradients are recorded,
    /// each block runs without a tape and is run again, taped, during the backward pass. Only block
    /// inputs stay alive between the passes, so forward+backward memory falls to little more than
    /// the forward's, for about one more forward of compute. Off by default; no effect on values.
    public var checkpointing = false
    /// With checkpointing, only blocks whose input is at least this many pixels on its shorter
    /// side recompute. A block's tape grows as C·H·W and its compute as C²·H·W, so the small,
    /// wide blocks deep in the network cost the most to recompute for the least memory saved.
    public var checkpointMinSide = 0
    /// With checkpointing, whether the input blocks recompute too; false leaves that to the
    /// middle and output blocks. An output block's tape is the larger (it starts from the skip
    /// concatenation, twice the channels), so keeping the input blocks' tapes buys back their
    /// recompute for less memory: DiffFace's guided step at 256² recomputing only the output
    /// blocks of 256² peaks at 8.5 GB, against 7.8 GB for both and 9.4 GB for neither.
    public var checkpointInputBlocks = true

    func run(_ layers: [ADMLayer], _ x: Tensor, _ emb: Tensor, _ plan: ReferencePlan? = nil, recompute: Bool = true) -> Tensor {
        let needX = Autograd.shouldRecord(x), needE = Autograd.shouldRecord(emb)
        guard checkpointing, recompute, needX || needE, min(x.shape[2], x.shape[3]) >= checkpointMinSide else { return runTaped(layers, x, emb, plan) }
        let out = Autograd.noGrad { runTaped(layers, x, emb, plan) }
        let xd = x.detached(), ed = emb.detached()
        out.record("adm_block_checkpoint", needE ? [x, emb] : [x]) { [self] g in
            Autograd.enableGrad {
                let lx = xd.detached(), le = ed.detached()
                lx.requiresGrad = needX
                le.requiresGrad = needE
                self.runTaped(layers, lx, le, plan).backward(seed: g)
                return needE ? [lx.grad, le.grad] : [lx.grad]
            }
        }
        return out
    }

    /// The map side from which the UNet's 3×3 convs take Winograd F(4×4): its 64² level too,
    /// where F(2×2) needs 1.8× the multiplies (DiffFace's guided step 7 % faster); the ADM's
    /// parity with PyTorch holds there.
    static let winogradF4MinSide = 64

    func runTaped(_ layers: [ADMLayer], _ x: Tensor, _ emb: Tensor, _ plan: ReferencePlan? = nil) -> Tensor {
        NN.withWinogradF4(fromSide: Self.winogradF4MinSide) { runLayers(layers, x, emb, plan) }
    }

    private func runLayers(_ layers: [ADMLayer], _ x: Tensor, _ emb: Tensor, _ plan: ReferencePlan?) -> Tensor {
        var h = x
        for layer in layers {
            switch layer {
            case .conv(let conv): h = conv(h)
            case .res(let block): h = block(h, emb)
            case .attention(let block): h = block(h, reference: plan)
            case .down(let conv): h = conv.map { $0(h) } ?? NN.avgPool2d(h, kernel: 2, stride: 2)
            case .up(let conv):
                h = NN.upsampleNearest(h, scale: 2)
                if let conv { h = conv(h) }
            }
        }
        return h
    }

    func embeddingRows(_ table: Tensor, _ labels: [Float]) throws -> Tensor {
        let classes = table.shape[0], d = table.shape[1]
        let out = Tensor(uninitialized: [labels.count, d])
        let src = table.contiguous()
        for (i, v) in labels.enumerated() {
            let k = Int(v)
            guard Float(k) == v, k >= 0, k < classes else { throw NetworkError("class label \(v) outside 0..<\(classes)") }
            (out.data + i * d).update(from: src.data + k * d, count: d)
        }
        return out
    }

    public var parameterCount: Int {
        var n = timeEmbed.0.parameterCount + timeEmbed.1.parameterCount
            + (idEmbed.map { $0.0.parameterCount + $0.1.parameterCount } ?? 0) + (labelEmb?.count ?? 0)
        for layer in (inputBlocks + [middleBlock] + outputBlocks).flatMap({ $0 }) { n += layer.parameterCount }
        return n + outNorm.parameterCount + outConv.parameterCount
    }
}

/// Reference attention, as DreamTuner's and ControlNet's "reference-only" use it: a reference
/// image, noised to the sample's timestep, runs through the network in the same batch, and at
/// every self-attention layer (AttentionBlock) each sample's queries attend to the reference's
/// keys and values besides its own. The reference rows themselves run as in a plain forward.
///
/// The weight w enters as a log-weight on the reference's logits: for a query q with own keys
/// k_j and reference keys k'_j, the attention weights are softmax over [q·k_j/√d, q·k'_j/√d + log w].
/// So each reference token counts as w tokens of the sample's own: w = 1 is plain concatenation,
/// w → 0 tends continuously to the plain layer (exp(log w) = w → 0), w > 1 leans on the reference.
/// Chosen over blending the outputs of attention with and without the reference because it needs
/// one attention per layer instead of two, keeps the operation a softmax (a convex combination of
/// values, so it cannot leave their range), and has a direct reading. w = 0 runs the plain forward
/// without the reference, bit for bit. A reference identical to the sample leaves every layer's
/// output unchanged for any w (its weights split p_j into p_j/(1+w) and w·p_j/(1+w) over equal
/// values), which the tests use.
public struct ADMReference {
    /// The reference at the sample's timestep, x_t [R, C, H, W] with the sample's C, H, W:
    /// R = N pairs reference i with sample i; R = 1 serves every sample (then all timesteps of
    /// the batch must be equal). Typically q_sample(reference, t) with fresh noise.
    public var x: Tensor
    /// w ≥ 0, finite.
    public var weight: Float

    public init(x: Tensor, weight: Float) {
        self.x = x
        self.weight = weight
    }

    func check(sample shape: [Int], timesteps: [Float]) throws {
        guard weight.isFinite, weight >= 0 else {
            throw NetworkError("the reference attention weight must be finite and 0 or more, got \(weight)")
        }
        let r = x.shape.first ?? 0
        guard x.rank == 4, Array(x.shape.dropFirst()) == Array(shape.dropFirst()), r == 1 || r == shape[0] else {
            throw NetworkError("the reference must be [1 or \(shape[0]), \(shape.dropFirst().map(String.init).joined(separator: ", "))] like the sample, got \(x.shape)")
        }
        if r == 1, shape[0] > 1, Set(timesteps).count > 1 {
            throw NetworkError("one reference for a batch needs the same timestep for every sample")
        }
    }
}

/// How a batch holding references is laid out for the attention layers.
struct ReferencePlan {
    /// Rows 0..<samples are samples, the next `references` rows their references.
    let samples: Int
    let references: Int
    /// log w, added to every reference logit.
    let logWeight: Float
}

/// Sinusoidal timestep features [cos(t·f_i), sin(t·f_i)], f_i = exp(−ln(10⁴)·i/half), computed in
/// float32 as guided-diffusion does; a zero column pads odd widths.
func timestepEmbedding(_ t: [Float], dim: Int) -> Tensor {
    let half = dim / 2
    let out = Tensor(zeros: [t.count, dim])
    let lnMax = Float(-Foundation.log(10000.0))
    let freqs = (0..<half).map { Foundation.exp(lnMax * Float($0) / Float(half)) }
    for (r, tv) in t.enumerated() {
        let row = out.data + r * dim
        for i in 0..<half {
            let a = tv * freqs[i]
            row[i] = Foundation.cos(a)
            row[half + i] = Foundation.sin(a)
        }
    }
    return out
}

// MARK: - Layers

enum ADMLayer {
    case conv(Conv2d)
    case res(ResBlock)
    case attention(AttentionBlock)
    /// Downsample: a stride-2 conv, or 2×2 average pooling without one.
    case down(Conv2d?)
    /// Upsample: nearest ×2, then an optional conv.
    case up(Conv2d?)

    var parameterCount: Int {
        switch self {
        case .conv(let c): return c.parameterCount
        case .res(let r): return r.count
        case .attention(let a): return a.count
        case .down(let c), .up(let c): return c?.parameterCount ?? 0
        }
    }
}

struct ResBlock {
    let inNorm: GroupNorm
    let inConv: Conv2d
    let embLinear: Linear
    let outNorm: GroupNorm
    let outConv: Conv2d
    let skip: Conv2d?
    let resample: ADMLayout.Resample
    let scaleShift: Bool
    let outChannels: Int

    init(_ w: inout WeightReader, _ p: String, _ ch: Int, _ outCh: Int, _ embCh: Int, scaleShift: Bool,
         resample: ADMLayout.Resample = .none) throws {
        inNorm = try GroupNorm(&w, "\(p).in_layers.0", ch)
        inConv = try Conv2d(&w, "\(p).in_layers.2", ch, outCh, kernel: 3)
        embLinear = try Linear(&w, "\(p).emb_layers.1", embCh, scaleShift ? 2 * outCh : outCh)
        outNorm = try GroupNorm(&w, "\(p).out_layers.0", outCh)
        outConv = try Conv2d(&w, "\(p).out_layers.3", outCh, outCh, kernel: 3)
        skip = outCh == ch ? nil : try Conv2d(&w, "\(p).skip_connection", ch, outCh, kernel: 1)
        self.resample = resample
        self.scaleShift = scaleShift
        outChannels = outCh
    }

    func resampled(_ t: Tensor) -> Tensor {
        switch resample {
        case .none: return t
        case .up: return NN.upsampleNearest(t, scale: 2)
        case .down: return NN.avgPool2d(t, kernel: 2, stride: 2)
        }
    }

    /// `embAct` is SiLU(emb), shared by all blocks.
    func callAsFunction(_ x: Tensor, _ embAct: Tensor) -> Tensor {
        let n = x.shape[0]
        let hIn = inNorm(x).silu()
        let h0 = inConv(resampled(hIn))
        let xs = resampled(x)
        let e = embLinear(embAct)
        var h: Tensor
        if scaleShift && n == 1 {
            // For one sample, GroupNorm's per-channel affine absorbs the FiLM: norm(h)·(1+s) + t is
            // GroupNorm with weight w·(1+s) and bias b·(1+s) + t. Saves two passes over h and the
            // tape's copy of norm(h).
            let parts = e.chunk(2, dim: 1)
            let s1 = parts[0].reshaped([outChannels]) + 1
            let w = outNorm.weight * s1, b = outNorm.bias * s1 + parts[1].reshaped([outChannels])
            h = outConv(NN.groupNorm(h0, groups: outNorm.groups, weight: w, bias: b, eps: outNorm.eps).silu())
        } else if scaleShift {
            let parts = e.chunk(2, dim: 1)
            let scale = parts[0].reshaped([n, outChannels, 1, 1]), shift = parts[1].reshaped([n, outChannels, 1, 1])
            h = outNorm(h0) * (scale + 1) + shift
            h = outConv(h.silu())
        } else {
            h = outConv(outNorm(h0 + e.reshaped([n, outChannels, 1, 1])).silu())
        }
        return (skip.map { $0(xs) } ?? xs) + h
    }

    var count: Int {
        inNorm.parameterCount + inConv.parameterCount + embLinear.parameterCount + outNorm.parameterCount
            + outConv.parameterCount + (skip?.parameterCount ?? 0)
    }
}

struct AttentionBlock {
    let norm: GroupNorm
    let qkv: PointwiseConv1d
    let proj: PointwiseConv1d
    let heads: Int
    let newOrder: Bool

    init(_ w: inout WeightReader, _ p: String, _ ch: Int, heads: Int, newOrder: Bool) throws {
        norm = try GroupNorm(&w, "\(p).norm", ch)
        qkv = try PointwiseConv1d(&w, "\(p).qkv", ch, 3 * ch)
        proj = try PointwiseConv1d(&w, "\(p).proj_out", ch, ch)
        self.heads = heads
        self.newOrder = newOrder
    }

    /// With a plan, rows 0..<samples of the batch are samples and the rest references: each
    /// sample's keys and values are its own followed by its reference's, the reference's logits
    /// raised by log w; a reference row attends to itself alone, as in a plain forward.
    func callAsFunction(_ x: Tensor, reference plan: ReferencePlan? = nil) -> Tensor {
        let (n, c) = (x.shape[0], x.shape[1])
        let t = x.count / (n * c)
        let xf = x.reshaped([n, c, t])
        let qkvOut = qkv(norm(xf))                      // [N, 3C, T]
        let ch = c / heads
        let q: Tensor, k: Tensor, v: Tensor
        if newOrder {
            // Split q, k, v first, then heads: channel blocks [q | k | v], each [H·ch].
            let parts = qkvOut.chunk(3, dim: 1)
            q = parts[0].reshaped([n * heads, ch, t])
            k = parts[1].reshaped([n * heads, ch, t])
            v = parts[2].reshaped([n * heads, ch, t])
        } else {
            // Legacy: heads first, each head's channels [q | k | v].
            let parts = qkvOut.reshaped([n * heads, 3 * ch, t]).split(sizes: [ch, ch, ch], dim: 1)
            q = parts[0]; k = parts[1]; v = parts[2]
        }
        // softmax((q·s)ᵀ(k·s)) with s = ch^(−1/4) is attention with scale 1/√ch.
        let scale = 1 / Float(ch).squareRoot()
        let a: Tensor
        if let plan {
            let ns = plan.samples * heads
            let rows = { (m: Tensor, r: Range<Int>) in m.narrow(r) }
            // Row blocks of heads: sample i is rows i·H..<(i+1)·H, its reference row N + i (or N).
            let refK = rows(k, ns..<(n * heads)), refV = rows(v, ns..<(n * heads))
            let pairedK = plan.references == plan.samples ? refK : Tensor.concat(Array(repeating: refK, count: plan.samples), dim: 0)
            let pairedV = plan.references == plan.samples ? refV : Tensor.concat(Array(repeating: refV, count: plan.samples), dim: 0)
            let kCat = Tensor.concat([rows(k, 0..<ns), pairedK], dim: 2)   // [N·H, ch, 2T]
            let vCat = Tensor.concat([rows(v, 0..<ns), pairedV], dim: 2)
            // w = 1 is plain concatenation: no bias at all.
            let bias: [Float]? = plan.logWeight == 0 ? nil
                : [Float](repeating: 0, count: t) + [Float](repeating: plan.logWeight, count: t)
            let aSample = NN.scaledDotProductAttention(rows(q, 0..<ns).transposedLastTwo, kCat.transposedLastTwo, vCat.transposedLastTwo,
                                                       scale: scale, keyBias: bias)
            let aRef = NN.scaledDotProductAttention(rows(q, ns..<(n * heads)).transposedLastTwo, refK.transposedLastTwo, refV.transposedLastTwo,
                                                    scale: scale)
            a = Tensor.concat([aSample, aRef], dim: 0)
        } else {
            a = NN.scaledDotProductAttention(q.transposedLastTwo, k.transposedLastTwo, v.transposedLastTwo, scale: scale)
        }
        let h = proj(a.transposedLastTwo.reshaped([n, c, t]))
        return (xf + h).reshaped(x.shape)
    }

    var count: Int { norm.parameterCount + qkv.parameterCount + proj.parameterCount }
}
