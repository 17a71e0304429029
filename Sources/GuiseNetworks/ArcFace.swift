import GuiseFormats
import GuiseTensor

/// ArcFace face-recognition ResNets on the engine, differentiable with respect to the input image:
/// a normalised 3×112×112 face to its raw embedding (before L2 normalisation).
///
/// Two published layouts are recognised from the tensor names:
/// - **IR-SE** (SimSwap's and DiffFace's `models.ResNet` of `IRBlock`s, InsightFace-v2's training
///   code): a 3×3 stem *without* padding (112 → 110), BN, one shared-slope PReLU, 2×2 max pool;
///   blocks `BN → conv3×3 → BN → PReLU → conv3×3(stride) → BN → SE → + skip → PReLU` with the
///   block's one PReLU used twice and squeeze-excitation (avg pool, Linear, PReLU, Linear, sigmoid);
///   then BN, dropout (identity in inference), Linear over the 7×7 map and BatchNorm1d.
/// - **IResNet** (insightface's `iresnet`, `backbone.pth`): a padded stem with per-channel PReLU,
///   no pool, stride 2 in every stage; blocks `BN → conv → BN → PReLU → conv(stride) → BN + skip`;
///   then BN, Linear and the `features` BatchNorm1d.
///
/// Depth, widths and the embedding size come from the tensors. A whole pickled model (DiffFace's
/// `Arcface.tar`: `{'model': DataParallel(ResNet), 'metric_fc': …}`) is read through its module
/// records, and each layer's kernel, stride, padding, eps and pool settings come from what was
/// pickled (the stem's padding 0 is known only there); a plain state dict gets the public code's
/// settings. The `metric_fc` training head is never read, and batch norms and dropout run in
/// inference mode whatever `training` flags were pickled.
public final class ArcFaceNetwork {
    public enum Layout: String, Sendable {
        /// SimSwap / DiffFace / InsightFace-v2 `ResNet` of `IRBlock`s (with or without SE).
        case irse
        /// insightface `iresnet`.
        case iresnet
    }

    public let path: String
    public let layout: Layout
    /// Blocks per stage (4 stages) and output channels per stage.
    public let blocks: [Int]
    public let widths: [Int]
    public let squeezeExcitation: Bool
    public let embeddingSize: Int
    public let inputSize = 112
    /// Whether the layer settings came from a pickled module (else from the public code's defaults).
    public let settingsFromPickle: Bool
    /// The class of the pickled model (after unwrapping DataParallel), if the file held one.
    public let pickledClass: String?

    private let stem: ConvUnit
    private let stemSlopes: Tensor
    private let pool: NN.Pair?
    private let stages: [[Block]]
    private let finalBN: BatchNorm2d
    /// Linear then BatchNorm1d, folded into one affine map.
    private let head: Linear2

    // MARK: loading

    /// Whether a state dict's names (DataParallel's "module." stripped) are those of either layout.
    public static func recognises(names: [String]) -> Bool {
        let set = Set(names)
        return set.contains("conv1.weight") && set.contains("fc.weight") &&
            ((set.contains("layer1.0.bn0.running_mean") && set.contains("bn3.running_mean")) ||
             (set.contains("layer1.0.bn3.running_mean") && set.contains("features.running_mean")))
    }

    public convenience init(path: String) throws {
        if let (module, flat) = try Self.readPickled(path) {
            try self.init(path: path, weights: flat.tensors, modules: flat.modules, pickledClass: module.className)
        } else {
            let c = try Checkpoint(path: path)
            var weights: [String: Tensor] = [:]
            for n in c.names { weights[n] = c.tensors[n]!.toTensor() }
            try self.init(path: path, weights: weights, modules: nil, pickledClass: nil)
        }
    }

    /// The pickled model of a PyTorch file with DataParallel unwrapped, and its state dict and
    /// submodules by prefix; nil when the file holds a state dict rather than a module.
    static func readPickled(_ path: String) throws -> (TorchModule, (tensors: [String: Tensor], modules: [String: TorchModule]))? {
        guard !(try Checkpoint.isSafeTensors(path)), var m = try TorchCheckpoint.pickledModule(path: path) else { return nil }
        var unwrapped = 0
        while ["DataParallel", "DistributedDataParallel"].contains(m.name), unwrapped < 4, let inner = m["module"] {
            m = inner
            unwrapped += 1
        }
        let (tensors, modules) = try m.flattened()
        var t: [String: Tensor] = [:]
        for (n, s) in tensors where t[n] == nil { t[n] = s.toTensor() }
        return (m, (t, Dictionary(modules, uniquingKeysWith: { a, _ in a })))
    }

    /// `weights`: a state dict (DataParallel's "module." already stripped); `modules`: the pickled
    /// submodules by prefix, when the file held a whole model.
    public init(path: String, weights: [String: Tensor], modules: [String: TorchModule]?, pickledClass: String?) throws {
        self.path = path
        self.pickledClass = pickledClass
        settingsFromPickle = modules != nil
        var w = WeightReader(weights)
        let s = Settings(path: path, modules: modules)
        func shape(_ name: String) throws -> [Int] {
            guard let t = weights[name] else {
                throw FormatError("\(path): checkpoint lacks \(name); not a complete ArcFace network")
            }
            return t.shape
        }

        let irse = weights["layer1.0.bn0.running_mean"] != nil && weights["bn3.running_mean"] != nil
        guard Self.recognises(names: Array(weights.keys)), weights["conv1.weight"]?.rank == 4, weights["fc.weight"]?.rank == 2 else {
            let what = pickledClass.map { "the pickled model is \($0), which is" } ?? "its tensors are"
            throw FormatError("\(path): \(what) not an ArcFace ResNet (SimSwap/DiffFace's IR-SE with layer1.0.bn0 and bn3, or insightface's iresnet with features)",
                              category: .model)
        }
        layout = irse ? .irse : .iresnet

        // Stem.
        let stemShape = try shape("conv1.weight")
        guard stemShape[1] == 3 else { throw FormatError("\(path): conv1 takes \(stemShape[1]) channels; ArcFace takes RGB") }
        let c0 = stemShape[0]
        stem = try ConvUnit(&w, s, conv: "conv1", bn: "bn1", in: 3, out: c0, kernel: stemShape[2],
                            stride: 1, padding: irse ? 0 : 1)
        stemSlopes = try Self.slopes(&w, s, "prelu", channels: c0)
        if irse {
            try s.expect("maxpool", ["MaxPool2d"])
            let k = try s.int("maxpool", "kernel_size", default: 2), st = try s.int("maxpool", "stride", default: k)
            guard try s.int("maxpool", "padding", default: 0) == 0, try s.int("maxpool", "dilation", default: 1) == 1,
                  s.attribute("maxpool", "ceil_mode") != .bool(true) else {
                throw FormatError("\(path): maxpool has padding, dilation or ceil_mode, which ArcFace's 2×2 pool does not", category: .unsupported)
            }
            pool = NN.Pair(k, k) == NN.Pair(st, st) ? NN.Pair(k, k) : nil
            guard pool != nil else { throw FormatError("\(path): maxpool stride \(st) differs from its kernel \(k)", category: .unsupported) }
        } else {
            pool = nil
        }

        // Stages.
        var stages: [[Block]] = [], blocks: [Int] = [], widths: [Int] = []
        var channels = c0
        var se = false
        for stage in 1...4 {
            var n = 0
            while weights["layer\(stage).\(n).conv1.weight"] != nil { n += 1 }
            guard n > 0 else { throw FormatError("\(path): checkpoint has no layer\(stage).0; not a complete ArcFace network") }
            var list: [Block] = []
            for b in 0..<n {
                let p = "layer\(stage).\(b)"
                let firstStride = (irse && stage == 1) ? 1 : 2
                let block = try Block(&w, s, p, layout: layout, in: channels, stride: b == 0 ? firstStride : 1, shape: shape)
                if b > 0 && block.skip != nil { throw FormatError("\(path): \(p) has a downsample; only a stage's first block may") }
                se = se || block.se != nil
                channels = block.outChannels
                list.append(block)
            }
            stages.append(list)
            blocks.append(n)
            widths.append(channels)
        }
        self.stages = stages
        self.blocks = blocks
        self.widths = widths
        squeezeExcitation = se

        // Head: BN, flatten, Linear, BatchNorm1d.
        try s.expect("bn2", ["BatchNorm2d"])
        finalBN = try BatchNorm2d(&w, "bn2", channels, eps: try s.eps("bn2"))
        let fc = try shape("fc.weight")
        embeddingSize = fc[0]
        var side = inputSize
        side = (side + 2 * stem.padding - stem.kernel) / stem.stride + 1
        if let pool { side = (side - pool.h) / pool.h + 1 }
        for stage in stages { for b in stage { side = (side + 2 * b.conv2.padding - b.conv2.kernel) / b.conv2.stride + 1 } }
        guard fc[1] == channels * side * side else {
            throw FormatError("\(path): fc takes \(fc[1]) features, but a \(inputSize)×\(inputSize) face gives \(channels)×\(side)×\(side) = \(channels * side * side)")
        }
        try s.expect("fc", ["Linear"])
        let bn1d = irse ? "bn3" : "features"
        try s.expect(bn1d, ["BatchNorm1d"])
        head = try Linear2(&w, s, fc: "fc", bn: bn1d, in: fc[1], out: embeddingSize)
        try w.finish()
    }

    /// A PReLU's slopes as one per channel (a single shared slope repeated).
    fileprivate static func slopes(_ w: inout WeightReader, _ s: Settings, _ prefix: String, channels: Int) throws -> Tensor {
        try s.expect(prefix, ["PReLU"])
        let n = w.all["\(prefix).weight"]?.count ?? 1
        guard n == 1 || n == channels else {
            throw FormatError("\(s.path): \(prefix) has \(n) slopes for \(channels) channels")
        }
        let p = try PReLU(&w, prefix, n)
        return n == channels ? p.weight : Tensor(shape: [channels], repeating: p.weight.values[0])
    }

    // MARK: running

    /// Human-readable name of what was recognised, e.g. "ArcFace IR-SE50 (…)".
    public var description: String {
        let known: [[Int]: Int] = [[2, 2, 2, 2]: 18, [3, 4, 6, 3]: 34, [3, 4, 14, 3]: 50, [3, 13, 30, 3]: 100,
                                   [3, 21, 48, 3]: 152, [6, 26, 60, 6]: 200]
        let family = layout == .irse ? (squeezeExcitation ? "IR-SE" : "IR") : "IResNet"
        let depth = widths == [64, 128, 256, 512] ? known[blocks].map(String.init) ?? "" : ""
        let source = layout == .irse ? "SimSwap/DiffFace ResNet of IRBlocks" : "insightface iresnet"
        var parts = ["blocks \(blocks.map(String.init).joined(separator: "-"))"]
        if widths != [64, 128, 256, 512] { parts.append("widths \(widths.map(String.init).joined(separator: "-"))") }
        parts.append("\(embeddingSize)-d embedding")
        parts.append("input 3×\(inputSize)×\(inputSize)")
        return "ArcFace \(family)\(depth) (\(source); " + parts.joined(separator: ", ") + ")"
    }

    /// x [N, 3, 112, 112], normalised as the network was trained (DiffFace: ImageNet mean/std) →
    /// the raw embedding [N, embeddingSize]. Differentiable with respect to x.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try forward(x, observe: nil)
    }

    /// Where the network switches between linear pieces: a PReLU (with its per-channel slopes)
    /// or a max pool (with its kernel), each seen with the tensor it takes.
    enum Switch { case prelu(Tensor), maxPool(Int) }
    /// Sees each switching op's input; a tensor it returns replaces the op's output.
    typealias Observer = (Switch, Tensor) -> Tensor?

    /// `observe`, for tests, sees every tensor a PReLU or max pool acts on (where the network's
    /// slope can jump) and may replace what the op gives; when given, those ops run unfused.
    func forward(_ x: Tensor, observe: Observer?) throws -> Tensor {
        guard x.rank == 4, x.shape[1] == 3, x.shape[2] == inputSize, x.shape[3] == inputSize else {
            throw NetworkError("\(path): ArcFace input must be [N, 3, \(inputSize), \(inputSize)], got \(x.shape)")
        }
        var h = stem(x, prelu: stemSlopes, observe: observe)
        if let pool {
            h = observe?(.maxPool(pool.h), h) ?? NN.maxPool2d(h, kernel: pool)
        }
        for stage in stages { for block in stage { h = block(h, observe: observe) } }
        h = finalBN(h)
        return head(h.reshaped([h.shape[0], h.count / h.shape[0]]))
    }
}

/// Attribute access on the pickled submodules, with the public code's value where there are none.
private struct Settings {
    let path: String
    let modules: [String: TorchModule]?

    func attribute(_ prefix: String, _ key: String) -> TorchAttribute? { modules?[prefix]?.attributes[key] }

    func int(_ prefix: String, _ key: String, default d: Int) throws -> Int {
        guard let a = attribute(prefix, key) else { return d }
        guard let i = a.int else {
            throw FormatError("\(path): \(prefix).\(key) is \(a.description); ArcFace needs one value for both axes", category: .unsupported)
        }
        return i
    }

    func eps(_ prefix: String) throws -> Float {
        guard let a = attribute(prefix, "eps") else { return 1e-5 }
        guard let d = a.double, d >= 0, d < 1 else { throw FormatError("\(path): \(prefix).eps is \(a.description)") }
        return Float(d)
    }

    /// The pickled submodule at `prefix`, if any, must be one of the torch.nn `classes`. The
    /// model's own classes (ResNet, IRBlock, SEBlock, …) are not checked: their tensors decide.
    func expect(_ prefix: String, _ classes: [String]) throws {
        guard let m = modules?[prefix] else { return }
        guard classes.contains(m.name) else {
            throw FormatError("\(path): \(prefix) is a \(m.className), where ArcFace has \(classes.joined(separator: " or "))", category: .model)
        }
    }
}

/// A bias-free conv followed by an inference batch norm, folded into one conv with a bias.
private struct ConvUnit {
    let weight: Tensor, bias: Tensor
    let kernel: Int, stride: Int, padding: Int

    init(_ w: inout WeightReader, _ s: Settings, conv: String, bn: String, in cin: Int, out: Int, kernel k: Int,
         stride defaultStride: Int, padding defaultPadding: Int) throws {
        try s.expect(conv, ["Conv2d"])
        try s.expect(bn, ["BatchNorm2d"])
        let kernel = try s.int(conv, "kernel_size", default: k)
        guard kernel == k else { throw FormatError("\(s.path): \(conv) records kernel \(kernel) but holds \(k)×\(k) weights") }
        guard try s.int(conv, "dilation", default: 1) == 1, try s.int(conv, "groups", default: 1) == 1 else {
            throw FormatError("\(s.path): \(conv) is dilated or grouped, which ArcFace's convs are not", category: .unsupported)
        }
        if let mode = s.attribute(conv, "padding_mode"), mode != .string("zeros") {
            throw FormatError("\(s.path): \(conv) pads with \(mode.description), not zeros", category: .unsupported)
        }
        stride = try s.int(conv, "stride", default: defaultStride)
        padding = try s.int(conv, "padding", default: defaultPadding)
        guard stride >= 1, padding >= 0, padding < k else {
            throw FormatError("\(s.path): \(conv) has stride \(stride) and padding \(padding)", category: .unsupported)
        }
        self.kernel = k
        let c = try Conv2d(&w, conv, cin, out, kernel: k, stride: stride, padding: padding, bias: false)
        let norm = try BatchNorm2d(&w, bn, out, eps: try s.eps(bn))
        let scale = norm.scale.values, per = cin * k * k
        var folded = c.weight.values
        for o in 0..<out { for i in 0..<per { folded[o * per + i] *= scale[o] } }
        weight = Tensor(shape: c.weight.shape, values: folded)
        bias = norm.shift
    }

    /// conv + BN, then the PReLU when given; fused as the output is written unless observed.
    func callAsFunction(_ x: Tensor, prelu: Tensor?, observe: ArcFaceNetwork.Observer?) -> Tensor {
        let p = NN.Padding(integerLiteral: padding), st = NN.Pair(integerLiteral: stride)
        guard let prelu else { return NN.conv2d(x, weight: weight, bias: bias, stride: st, padding: p) }
        if let observe {
            let y = NN.conv2d(x, weight: weight, bias: bias, stride: st, padding: p)
            return observe(.prelu(prelu), y) ?? NN.prelu(y, weight: prelu)
        }
        return NN.conv2d(x, weight: weight, bias: bias, stride: st, padding: p, prelu: prelu)
    }
}

/// Squeeze-excitation: x · sigmoid(Linear(PReLU(Linear(mean over H, W)))).
private struct SqueezeExcitation {
    let down: Linear, up: Linear
    let slopes: Tensor

    init(_ w: inout WeightReader, _ s: Settings, _ p: String, channels: Int, shape: (String) throws -> [Int]) throws {
        try s.expect("\(p).avg_pool", ["AdaptiveAvgPool2d"])
        if let size = s.attribute("\(p).avg_pool", "output_size"), size.int != 1 {
            throw FormatError("\(s.path): \(p).avg_pool pools to \(size.description), not 1", category: .unsupported)
        }
        try s.expect("\(p).fc.0", ["Linear"])
        try s.expect("\(p).fc.2", ["Linear"])
        try s.expect("\(p).fc.3", ["Sigmoid"])
        let hidden = try shape("\(p).fc.0.weight")[0]
        down = try Linear(&w, "\(p).fc.0", channels, hidden)
        slopes = try ArcFaceNetwork.slopes(&w, s, "\(p).fc.1", channels: hidden)
        up = try Linear(&w, "\(p).fc.2", hidden, channels)
    }

    func callAsFunction(_ x: Tensor, observe: ArcFaceNetwork.Observer?) -> Tensor {
        let (n, c) = (x.shape[0], x.shape[1])
        let squeezed = NN.globalAvgPool2d(x).reshaped([n, c])
        let hidden = down(squeezed)
        let activated = observe?(.prelu(slopes), hidden) ?? NN.prelu(hidden, weight: slopes)
        let gate = up(activated).sigmoid()
        return x * gate.reshaped([n, c, 1, 1])
    }
}

/// One residual block of either layout.
private struct Block {
    /// IR-SE's bn0 / IResNet's bn1: a batch norm on the block's input, before a padded conv (so
    /// it cannot fold into the conv: the padding would be normalised too).
    let inputBN: BatchNorm2d
    let conv1: ConvUnit, conv2: ConvUnit
    let slopes1: Tensor
    /// IR-SE applies its PReLU again after the sum; IResNet does not.
    let slopesOut: Tensor?
    let se: SqueezeExcitation?
    let skip: ConvUnit?
    let outChannels: Int

    init(_ w: inout WeightReader, _ s: Settings, _ p: String, layout: ArcFaceNetwork.Layout, in cin: Int, stride: Int,
         shape: (String) throws -> [Int]) throws {
        let c1 = try shape("\(p).conv1.weight"), c2 = try shape("\(p).conv2.weight")
        guard c1[1] == cin, c2[1] == c1[0], c1.count == 4, c2.count == 4 else {
            throw FormatError("\(s.path): \(p)'s convs \(c1) and \(c2) do not follow \(cin) input channels")
        }
        let mid = c1[0], out = c2[0]
        outChannels = out
        switch layout {
        case .irse:
            try s.expect("\(p).bn0", ["BatchNorm2d"])
            inputBN = try BatchNorm2d(&w, "\(p).bn0", cin, eps: try s.eps("\(p).bn0"))
            conv1 = try ConvUnit(&w, s, conv: "\(p).conv1", bn: "\(p).bn1", in: cin, out: mid, kernel: c1[2], stride: 1, padding: 1)
            conv2 = try ConvUnit(&w, s, conv: "\(p).conv2", bn: "\(p).bn2", in: mid, out: out, kernel: c2[2], stride: stride, padding: 1)
            // One PReLU module serves both places: its slopes must fit both channel counts.
            let n = w.all["\(p).prelu.weight"]?.count ?? 1
            guard n == 1 || (mid == out && n == out) else {
                throw FormatError("\(s.path): \(p).prelu has \(n) slopes, used on \(mid) and \(out) channels")
            }
            slopes1 = try ArcFaceNetwork.slopes(&w, s, "\(p).prelu", channels: mid)
            slopesOut = n == 1 ? Tensor(shape: [out], repeating: slopes1.values[0]) : slopes1
            let useSE = s.attribute(p, "use_se").map { $0 == .bool(true) } ?? (w.all["\(p).se.fc.0.weight"] != nil)
            se = useSE ? try SqueezeExcitation(&w, s, "\(p).se", channels: out, shape: shape) : nil
        case .iresnet:
            try s.expect("\(p).bn1", ["BatchNorm2d"])
            inputBN = try BatchNorm2d(&w, "\(p).bn1", cin, eps: try s.eps("\(p).bn1"))
            conv1 = try ConvUnit(&w, s, conv: "\(p).conv1", bn: "\(p).bn2", in: cin, out: mid, kernel: c1[2], stride: 1, padding: 1)
            conv2 = try ConvUnit(&w, s, conv: "\(p).conv2", bn: "\(p).bn3", in: mid, out: out, kernel: c2[2], stride: stride, padding: 1)
            slopes1 = try ArcFaceNetwork.slopes(&w, s, "\(p).prelu", channels: mid)
            slopesOut = nil
            se = nil
        }
        if w.all["\(p).downsample.0.weight"] != nil {
            try s.expect("\(p).downsample", ["Sequential"])
            let k = try shape("\(p).downsample.0.weight")[2]
            skip = try ConvUnit(&w, s, conv: "\(p).downsample.0", bn: "\(p).downsample.1", in: cin, out: out, kernel: k,
                                stride: stride, padding: 0)
        } else {
            skip = nil
            guard cin == out, conv2.stride == 1 else {
                throw FormatError("\(s.path): \(p) changes the shape (\(cin)→\(out) channels, stride \(conv2.stride)) without a downsample")
            }
        }
        if let skip, skip.stride != conv2.stride {
            throw FormatError("\(s.path): \(p)'s downsample has stride \(skip.stride), its conv2 \(conv2.stride)")
        }
    }

    func callAsFunction(_ x: Tensor, observe: ArcFaceNetwork.Observer?) -> Tensor {
        var h = conv1(inputBN(x), prelu: slopes1, observe: observe)
        h = conv2(h, prelu: nil, observe: observe)
        if let se { h = se(h, observe: observe) }
        let identity = skip.map { $0(x, prelu: nil, observe: observe) } ?? x
        guard let slopesOut else { return h + identity }
        if let observe {
            let sum = h + identity
            return observe(.prelu(slopesOut), sum) ?? NN.prelu(sum, weight: slopesOut)
        }
        return NN.residualAdd(h, identity, .prelu(slopesOut))
    }
}

/// Linear followed by an inference BatchNorm1d, folded into one Linear.
private struct Linear2 {
    let weight: Tensor, bias: Tensor

    init(_ w: inout WeightReader, _ s: Settings, fc: String, bn: String, in inF: Int, out: Int) throws {
        let lin = try Linear(&w, fc, inF, out)
        let norm = try BatchNorm2d(&w, bn, out, eps: try s.eps(bn))
        let scale = norm.scale.values, shift = norm.shift.values
        var wv = lin.weight.values, bv = lin.bias?.values ?? [Float](repeating: 0, count: out)
        for o in 0..<out {
            for i in 0..<inF { wv[o * inF + i] *= scale[o] }
            bv[o] = bv[o] * scale[o] + shift[o]
        }
        weight = Tensor(shape: [out, inF], values: wv)
        bias = Tensor(shape: [out], values: bv)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { NN.linear(x, weight: weight, bias: bias) }
}
