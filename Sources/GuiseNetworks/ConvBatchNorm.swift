import GuiseTensor
import GuiseFormats

// Conv and batch-norm pairs for networks whose widths are read from the checkpoint (BiSeNet,
// EyeNet): each layer is given its input width and takes its output width from the weight's
// shape, so a file of another width fails at load naming the tensor, not inside a conv.

/// Where a batch norm takes its statistics from.
public enum BatchNormStatistics: String, Sendable, CaseIterable {
    /// The running mean and variance stored in the checkpoint: the module in eval() mode.
    case running
    /// The batch's own per-channel mean and biased variance over (N, H, W): the module left in
    /// training mode, as DiffFace leaves its gaze network. Nothing is updated.
    case batch
}

extension WeightReader {
    /// The shape of `name` in the checkpoint, which must have `rank` dimensions.
    func shape(of name: String, rank: Int) throws -> [Int] {
        guard let t = all[name] else {
            throw FormatError("checkpoint lacks \(name); the network's configuration may not match the file")
        }
        guard t.shape.count == rank, t.shape.allSatisfy({ $0 > 0 }) else {
            throw FormatError("checkpoint \(name) has shape \(t.shape), expected \(rank) non-empty dimensions")
        }
        return t.shape
    }
}

/// nn.BatchNorm2d, run with either kind of statistics. With running statistics it is the folded
/// per-channel affine of `BatchNorm2d`.
struct BatchNorm {
    let folded: BatchNorm2d
    let weight: Tensor, bias: Tensor
    let eps: Float

    init(_ w: inout WeightReader, _ prefix: String, _ channels: Int, eps: Float = 1e-5) throws {
        folded = try BatchNorm2d(&w, prefix, channels, eps: eps)
        weight = try w.take("\(prefix).weight", [channels])
        bias = try w.take("\(prefix).bias", [channels])
        self.eps = eps
    }

    func callAsFunction(_ x: Tensor, _ statistics: BatchNormStatistics) -> Tensor {
        switch statistics {
        case .running: return folded(x)
        case .batch: return batchStatisticsNorm(x, weight: weight, bias: bias, eps: eps)
        }
    }
}

/// Batch norm over [N, C, H, W] with the batch's statistics: per channel over N·H·W values,
/// biased variance, then the affine. Differentiable in x (through the statistics too).
func batchStatisticsNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float) -> Tensor {
    let (n, c) = (x.shape[0], x.shape[1])
    if n == 1 { return NN.instanceNorm(x, weight: weight, bias: bias, eps: eps) }
    // Channels first, so that each channel's N·H·W values are one instance.
    let channelsFirst = x.permuted([1, 0, 2, 3]).contiguous().reshaped([1, c, -1])
    let y = NN.instanceNorm(channelsFirst, weight: weight, bias: bias, eps: eps)
    return y.reshaped([c, n, x.shape[2], x.shape[3]]).permuted([1, 0, 2, 3]).contiguous()
}

/// A conv (square kernel, optional bias) followed by a batch norm and optionally a ReLU. With
/// running statistics the norm is folded into the conv's weight and bias at load, so inference
/// and the input gradient are one conv with the ReLU applied as it writes.
struct ConvBN {
    let weight: Tensor, bias: Tensor?
    let norm: BatchNorm
    let foldedWeight: Tensor, foldedBias: Tensor
    let stride: Int, padding: Int
    let outChannels: Int

    /// `conv` and `norm` are the two modules' name prefixes; the output width comes from the file.
    init(_ w: inout WeightReader, conv: String, norm normPrefix: String, in inChannels: Int, kernel: Int,
         stride: Int = 1, padding: Int, bias: Bool = false) throws {
        let out = try w.shape(of: "\(conv).weight", rank: 4)[0]
        weight = try w.take("\(conv).weight", [out, inChannels, kernel, kernel])
        self.bias = bias ? try w.take("\(conv).bias", [out]) : nil
        norm = try BatchNorm(&w, normPrefix, out)
        let s = norm.folded.scale.values, t = norm.folded.shift.values
        let per = inChannels * kernel * kernel
        var fw = weight.values
        for o in 0..<out { for i in 0..<per { fw[o * per + i] *= s[o] } }
        let b = self.bias?.values ?? [Float](repeating: 0, count: out)
        foldedWeight = Tensor(shape: weight.shape, values: fw)
        foldedBias = Tensor(shape: [out], values: (0..<out).map { b[$0] * s[$0] + t[$0] })
        self.stride = stride
        self.padding = padding
        outChannels = out
    }

    func callAsFunction(_ x: Tensor, _ statistics: BatchNormStatistics = .running, relu: Bool) -> Tensor {
        let pad = NN.Padding(integerLiteral: padding), st = NN.Pair(integerLiteral: stride)
        switch statistics {
        case .running:
            return NN.conv2d(x, weight: foldedWeight, bias: foldedBias, stride: st, padding: pad, clamp: relu ? .relu : .none)
        case .batch:
            let y = norm(NN.conv2d(x, weight: weight, bias: bias, stride: st, padding: pad), .batch)
            return relu ? y.relu() : y
        }
    }
}

/// A plain conv whose output width comes from the file (square kernel, padding k/2 unless given).
func conv2d(_ w: inout WeightReader, _ prefix: String, in inChannels: Int, kernel: Int, stride: Int = 1,
            padding: Int? = nil, bias: Bool) throws -> Conv2d {
    let out = try w.shape(of: "\(prefix).weight", rank: 4)[0]
    return try Conv2d(&w, prefix, inChannels, out, kernel: kernel, stride: stride, padding: padding, bias: bias)
}
