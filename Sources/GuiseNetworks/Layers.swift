import GuiseTensor
import GuiseFormats

// Building blocks for networks loaded from PyTorch state dicts: each layer takes its tensors by
// the module's name prefix (`<prefix>.weight`, `<prefix>.bias`, …) through a WeightReader, which
// checks every shape and reports what is missing or left over in one line.

/// Takes a state dict's tensors by name with a shape check, and reports the ones nothing took.
public struct WeightReader {
    public let all: [String: Tensor]
    public private(set) var used = Set<String>()

    public init(_ all: [String: Tensor]) { self.all = all }

    public func contains(_ name: String) -> Bool { all[name] != nil }

    /// The tensor `name`, which must exist with exactly `shape`; returned dense.
    public mutating func take(_ name: String, _ shape: [Int]) throws -> Tensor {
        guard let t = all[name] else {
            throw FormatError("checkpoint lacks \(name) (shape \(shape)); the network's configuration may not match the file")
        }
        guard t.shape == shape else {
            throw FormatError("checkpoint \(name) has shape \(t.shape), the network needs \(shape)")
        }
        used.insert(name)
        return t.contiguous()
    }

    /// Marks `name` as read without using it, if present (e.g. a batch norm's num_batches_tracked).
    public mutating func skip(_ name: String) {
        if all[name] != nil { used.insert(name) }
    }

    /// Throws if the state dict holds tensors no layer took.
    public func finish() throws {
        let extra = all.keys.filter { !used.contains($0) }.sorted()
        if !extra.isEmpty {
            let shown = extra.prefix(5).joined(separator: ", ")
            throw FormatError("checkpoint has \(extra.count) parameter\(extra.count > 1 ? "s" : "") the network does not use (\(shown)\(extra.count > 5 ? ", …" : "")); the network's configuration may not match the file")
        }
    }
}

/// nn.Linear: weight [out, in], optional bias [out].
public struct Linear {
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ w: inout WeightReader, _ prefix: String, _ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) throws {
        weight = try w.take("\(prefix).weight", [outFeatures, inFeatures])
        self.bias = bias ? try w.take("\(prefix).bias", [outFeatures]) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { NN.linear(x, weight: weight, bias: bias) }
    public var parameterCount: Int { weight.count + (bias?.count ?? 0) }
}

/// nn.Conv2d with a square kernel: weight [out, in/groups, k, k], optional bias [out]. Padding
/// defaults to k/2 (same size at stride 1, for odd k).
public struct Conv2d {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: Int, padding: Int, dilation: Int, groups: Int

    public init(_ w: inout WeightReader, _ prefix: String, _ inChannels: Int, _ outChannels: Int, kernel: Int,
                stride: Int = 1, padding: Int? = nil, dilation: Int = 1, groups: Int = 1, bias: Bool = true) throws {
        guard groups >= 1, inChannels % groups == 0, outChannels % groups == 0 else {
            throw FormatError("\(prefix): \(inChannels)→\(outChannels) channels do not split into \(groups) groups")
        }
        weight = try w.take("\(prefix).weight", [outChannels, inChannels / groups, kernel, kernel])
        self.bias = bias ? try w.take("\(prefix).bias", [outChannels]) : nil
        self.stride = stride
        self.padding = padding ?? dilation * (kernel / 2)
        self.dilation = dilation
        self.groups = groups
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        NN.conv2d(x, weight: weight, bias: bias, stride: .init(integerLiteral: stride),
                  padding: .init(integerLiteral: padding), dilation: .init(integerLiteral: dilation), groups: groups)
    }

    public var parameterCount: Int { weight.count + (bias?.count ?? 0) }
}

/// nn.Conv1d with kernel 1, weight [out, in, 1], applied to [N, C, T] (attention's qkv and proj_out).
public struct PointwiseConv1d {
    /// Kept as [out, in, 1, 1], so it runs as a 1×1 conv2d over [N, C, T, 1].
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ w: inout WeightReader, _ prefix: String, _ inChannels: Int, _ outChannels: Int, bias: Bool = true) throws {
        weight = try w.take("\(prefix).weight", [outChannels, inChannels, 1]).reshaped([outChannels, inChannels, 1, 1])
        self.bias = bias ? try w.take("\(prefix).bias", [outChannels]) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, c, t) = (x.shape[0], x.shape[1], x.shape[2])
        return NN.conv2d(x.reshaped([n, c, t, 1]), weight: weight, bias: bias).reshaped([n, weight.shape[0], t])
    }

    public var parameterCount: Int { weight.count + (bias?.count ?? 0) }
}

/// nn.GroupNorm with a per-channel affine; guided-diffusion's `normalization` is 32 groups, eps 1e-5.
public struct GroupNorm {
    public let weight: Tensor, bias: Tensor
    public let groups: Int
    public let eps: Float

    public init(_ w: inout WeightReader, _ prefix: String, _ channels: Int, groups: Int = 32, eps: Float = 1e-5) throws {
        guard groups >= 1, channels % groups == 0 else {
            throw FormatError("\(prefix): \(channels) channels do not split into \(groups) groups")
        }
        weight = try w.take("\(prefix).weight", [channels])
        bias = try w.take("\(prefix).bias", [channels])
        self.groups = groups
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { NN.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps) }
    public var parameterCount: Int { weight.count + bias.count }
}

/// nn.BatchNorm2d in inference mode, folded at load into one per-channel affine:
/// scale = w/√(running_var + eps), shift = b − running_mean·scale. eps is the module's (PyTorch's
/// default 1e-5; state dicts do not store it). num_batches_tracked is accepted and ignored.
public struct BatchNorm2d {
    public let scale: Tensor, shift: Tensor
    public let parameterCount: Int

    public init(_ w: inout WeightReader, _ prefix: String, _ channels: Int, eps: Float = 1e-5, affine: Bool = true) throws {
        guard eps >= 0 else { throw FormatError("\(prefix): batch norm eps must not be negative") }
        let mean = try w.take("\(prefix).running_mean", [channels]).values
        let variance = try w.take("\(prefix).running_var", [channels]).values
        let weight = affine ? try w.take("\(prefix).weight", [channels]).values : [Float](repeating: 1, count: channels)
        let bias = affine ? try w.take("\(prefix).bias", [channels]).values : [Float](repeating: 0, count: channels)
        w.skip("\(prefix).num_batches_tracked")
        if let c = (0..<channels).first(where: { !(variance[$0] + eps > 0) || !variance[$0].isFinite || !mean[$0].isFinite }) {
            throw FormatError("\(prefix): channel \(c) has running mean \(mean[c]) and variance \(variance[c]); the statistics are unusable")
        }
        var s = [Float](repeating: 0, count: channels), t = s
        for c in 0..<channels {
            s[c] = weight[c] / (variance[c] + eps).squareRoot()
            t[c] = bias[c] - mean[c] * s[c]
        }
        scale = Tensor(shape: [channels], values: s)
        shift = Tensor(shape: [channels], values: t)
        parameterCount = (affine ? 4 : 2) * channels
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        // The engine's batch norm with statistics (0, 1) and eps 0 is exactly x·scale + shift, in one pass.
        let c = scale.count
        return NN.batchNorm(x, runningMean: Tensor(zeros: [c]), runningVar: Tensor(shape: [c], repeating: 1),
                            weight: scale, bias: shift, eps: 0)
    }
}

/// nn.PReLU: one learned negative slope per channel (weight [C]), or one for all (weight [1]).
public struct PReLU {
    public let weight: Tensor

    /// `channels` 1 reads a single shared slope.
    public init(_ w: inout WeightReader, _ prefix: String, _ channels: Int) throws {
        weight = try w.take("\(prefix).weight", [channels])
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { NN.prelu(x, weight: weight) }
    public var parameterCount: Int { weight.count }
}
