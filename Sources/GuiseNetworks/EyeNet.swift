import GuiseTensor
import GuiseFormats

/// DiffFace's gaze network (its models/gaze_estimation/, a stacked-hourglass EyeNet in the
/// GazeML style; `GazeEstimator.pt` is {'nstack', 'nfeatures', 'nlandmarks', 'model_state_dict'}),
/// differentiable with respect to the eye image.
///
/// Input: grey eye crops [N, 96, 160] (DiffFace resizes each crop to 96×160 first).
/// - `pre`: 7×7 conv + BN + ReLU, a residual to the middle width, 2×2 max pool, two residuals to
///   `nfeatures`: the 48×80 working grid.
/// - `pre2` on that grid: 7×7/2 conv + BN + ReLU, residual, 2×2 max pool, two residuals: a 12×20
///   feature flattened for the gaze head.
/// - `nstack` hourglasses (depth 4; max-pool down, bilinear up without corner alignment, a
///   residual on each skip), each followed by a residual and a 1×1 conv + BN + ReLU (`features`)
///   and a 1×1 conv to `nlandmarks` heatmaps (`outs`); between stacks the grid gets both back
///   through 1×1 convs (`merge_preds`, `merge_features`).
/// - Landmarks: soft-argmax (β = 100) over the last stack's heatmaps, (row, column) on the grid.
/// - Gaze (pitch, yaw): Linear → ReLU → Linear on the flattened `pre2` feature and landmarks.
///
/// Residual blocks are pre-activation (BN, ReLU, 1×1 conv to half width, BN, ReLU, 3×3 conv, BN,
/// ReLU, 1×1 conv) plus the input, or a 1×1 `skip_layer` conv of it when the widths differ; the
/// public class builds `skip_layer` either way, so unused ones are in every state_dict.
/// The public class fixes the stem widths (64, 128) and the gaze head's 256; here every width is
/// read from the checkpoint's shapes.
///
/// Batch norm uses the running statistics (eval mode) unless told to use the batch's own:
/// DiffFace never calls eval() on this network, so in its guidance the batch norms normalise each
/// call's batch (one eye crop) by its own statistics.
public final class EyeNet {
    public static let inputHeight = 96, inputWidth = 160
    /// The soft-argmax's sharpness.
    public static let beta: Float = 100
    public let nstack: Int, nfeatures: Int, nlandmarks: Int
    let pre: Stem, pre2: Stem
    let hourglasses: [Hourglass]
    let features: [(Residual, ConvBN)]
    let outs: [Conv2d]
    let mergeFeatures: [Conv2d], mergePreds: [Conv2d]
    let fc1: Linear, fc2: Linear

    static let signature = ["pre.0.conv.weight", "pre2.0.conv.weight", "hgs.0.0.up1.conv1.conv.weight", "outs.0.conv.weight", "gaze_fc1.weight"]

    /// Whether a state_dict's names are this network's.
    public static func recognises<C: Collection>(_ names: C) -> Bool where C.Element == String {
        let set = Set(names)
        return signature.allSatisfy(set.contains)
    }

    /// A state_dict: every tensor must be used and none may be missing.
    public init(weights: [String: Tensor]) throws {
        guard Self.recognises(weights.keys) else {
            throw FormatError("not an EyeNet gaze network state_dict (it lacks \(Self.signature.filter { weights[$0] == nil }.joined(separator: ", ")))")
        }
        var w = WeightReader(weights)
        pre = try Stem(&w, "pre", in: 1, stride: 1)
        let nf = pre.outChannels
        pre2 = try Stem(&w, "pre2", in: nf, stride: 2)
        var stacks = 0
        while w.contains("hgs.\(stacks).0.up1.bn1.weight") { stacks += 1 }
        var hgs: [Hourglass] = [], feats: [(Residual, ConvBN)] = [], outs: [Conv2d] = []
        var mergeF: [Conv2d] = [], mergeP: [Conv2d] = []
        var landmarks = 0
        for i in 0..<stacks {
            hgs.append(try Hourglass(&w, "hgs.\(i).0", f: nf, depth: 0))
            let r = try Residual(&w, "features.\(i).0", in: nf)
            let c = try ConvBN(&w, conv: "features.\(i).1.conv", norm: "features.\(i).1.bn", in: r.outChannels, kernel: 1,
                               padding: 0, bias: true)
            guard r.outChannels == nf, c.outChannels == nf else {
                throw FormatError("features.\(i) gives \(c.outChannels) channels; the stacks work at \(nf)")
            }
            feats.append((r, c))
            let o = try conv2d(&w, "outs.\(i).conv", in: nf, kernel: 1, bias: true)
            if i == 0 { landmarks = o.weight.shape[0] }
            guard o.weight.shape[0] == landmarks else {
                throw FormatError("outs.\(i) gives \(o.weight.shape[0]) heatmaps, outs.0 \(landmarks)")
            }
            outs.append(o)
            if i < stacks - 1 {
                mergeF.append(try Conv2d(&w, "merge_features.\(i).conv.conv", nf, nf, kernel: 1))
                mergeP.append(try Conv2d(&w, "merge_preds.\(i).conv.conv", landmarks, nf, kernel: 1))
            }
        }
        nstack = stacks
        nfeatures = nf
        nlandmarks = landmarks
        hourglasses = hgs
        features = feats
        self.outs = outs
        mergeFeatures = mergeF
        mergePreds = mergeP
        // pre2 ends on a 12×20 grid for a 96×160 input.
        let flat = pre2.outChannels * (Self.inputHeight / 8) * (Self.inputWidth / 8) + 2 * landmarks
        let hidden = try w.shape(of: "gaze_fc1.weight", rank: 2)[0]
        fc1 = try Linear(&w, "gaze_fc1", flat, hidden)
        fc2 = try Linear(&w, "gaze_fc2", hidden, 2)
        try w.finish()
    }

    /// A checkpoint file: `GazeEstimator.pt` (the state_dict is found under 'model_state_dict')
    /// or any PyTorch or safetensors state_dict of the network.
    public convenience init(path: String) throws {
        try self.init(checkpoint: try Checkpoint(path: path))
    }

    public convenience init(checkpoint: Checkpoint) throws {
        let path = checkpoint.path
        guard Self.recognises(checkpoint.names) else {
            throw FormatError("\(path): not an EyeNet gaze network checkpoint (it lacks \(Self.signature.filter { checkpoint[$0] == nil }.joined(separator: ", ")))")
        }
        do {
            try self.init(weights: checkpoint.tensors.mapValues { $0.toTensor() })
        } catch let e as FormatError {
            throw FormatError("\(path): \(e.message)", category: e.category)
        }
    }

    /// Gaze [N, 2] (pitch, yaw), the output DiffFace's guidance reads.
    public func callAsFunction(_ x: Tensor, statistics: BatchNormStatistics = .running) throws -> Tensor {
        try outputs(x, statistics: statistics).gaze
    }

    /// heatmaps [N, nstack, nlandmarks, 48, 80], landmarks [N, nlandmarks, 2] as (row, column) on
    /// the heatmap grid, gaze [N, 2].
    public func outputs(_ x: Tensor, statistics s: BatchNormStatistics = .running) throws
        -> (heatmaps: Tensor, landmarks: Tensor, gaze: Tensor) {
        guard x.rank == 3, x.shape[1] == Self.inputHeight, x.shape[2] == Self.inputWidth, x.shape[0] > 0 else {
            throw NetworkError("EyeNet input must be grey eye crops [N, \(Self.inputHeight), \(Self.inputWidth)], got \(x.shape)")
        }
        let n = x.shape[0]
        var h = pre(x.unsqueezed(dim: 1), s)
        let gazeFeature = pre2(h, s).reshaped([n, -1])
        var maps: [Tensor] = []
        for i in 0..<nstack {
            let feature = features[i].1(features[i].0(hourglasses[i](h, s), s), s, relu: true)
            let preds = outs[i](feature)
            maps.append(preds.unsqueezed(dim: 1))
            if i < nstack - 1 {
                h = h + mergePreds[i](preds) + mergeFeatures[i](feature)
            }
        }
        let landmarks = NN.softArgmax2d(maps[nstack - 1].squeezed(dim: 1), beta: Self.beta)
        let joined = Tensor.concat([gazeFeature, landmarks.reshaped([n, 2 * nlandmarks])], dim: 1)
        let gaze = fc2(fc1(joined).relu())
        return (Tensor.concat(maps, dim: 1), landmarks, gaze)
    }

}

/// `pre` and `pre2`: 7×7 conv (+bias) + BN + ReLU, residual, 2×2 max pool, residual, residual.
struct Stem {
    let conv: ConvBN
    let r1: Residual, r3: Residual, r4: Residual
    var outChannels: Int { r4.outChannels }

    init(_ w: inout WeightReader, _ p: String, in c: Int, stride: Int) throws {
        conv = try ConvBN(&w, conv: "\(p).0.conv", norm: "\(p).0.bn", in: c, kernel: 7, stride: stride, padding: 3, bias: true)
        r1 = try Residual(&w, "\(p).1", in: conv.outChannels)
        r3 = try Residual(&w, "\(p).3", in: r1.outChannels)
        r4 = try Residual(&w, "\(p).4", in: r3.outChannels)
    }

    func callAsFunction(_ x: Tensor, _ s: BatchNormStatistics) -> Tensor {
        let h = NN.maxPool2d(r1(conv(x, s, relu: true), s), kernel: 2, stride: 2)
        return r4(r3(h, s), s)
    }
}

/// The pre-activation residual block (see `EyeNet`). Each conv is followed by the next BN, so
/// with running statistics conv1+bn2 and conv2+bn3 fold into single convs.
struct Residual {
    let bn1: BatchNorm
    let conv1: ConvBN, conv2: ConvBN
    let conv3: Conv2d
    let skip: Conv2d?
    var outChannels: Int { conv3.weight.shape[0] }

    init(_ w: inout WeightReader, _ p: String, in c: Int) throws {
        bn1 = try BatchNorm(&w, "\(p).bn1", c)
        conv1 = try ConvBN(&w, conv: "\(p).conv1.conv", norm: "\(p).bn2", in: c, kernel: 1, padding: 0, bias: true)
        conv2 = try ConvBN(&w, conv: "\(p).conv2.conv", norm: "\(p).bn3", in: conv1.outChannels, kernel: 3, padding: 1, bias: true)
        conv3 = try conv2d(&w, "\(p).conv3.conv", in: conv2.outChannels, kernel: 1, bias: true)
        let out = conv3.weight.shape[0]
        if c != out {
            skip = try Conv2d(&w, "\(p).skip_layer.conv", c, out, kernel: 1)
        } else {
            // Built by the public class but not used when the widths agree.
            _ = try Conv2d(&w, "\(p).skip_layer.conv", c, out, kernel: 1)
            skip = nil
        }
    }

    func callAsFunction(_ x: Tensor, _ s: BatchNormStatistics) -> Tensor {
        let r = skip.map { $0(x) } ?? x
        let o = conv2(conv1(bn1(x, s).relu(), s, relu: true), s, relu: true)
        return conv3(o) + r
    }

}

/// An hourglass level: up1(x) + upsample(low3(low2(low1(maxpool(x))))), low2 the next level down
/// or, at the bottom, a residual. The depth is read from the checkpoint (4 in the public code).
final class Hourglass {
    let up1: Residual, low1: Residual, low3: Residual
    let inner: Hourglass?, bottom: Residual?

    init(_ w: inout WeightReader, _ p: String, f: Int, depth: Int) throws {
        guard depth < 16 else { throw FormatError("\(p): hourglass nested deeper than 16 levels; not an EyeNet layout") }
        up1 = try Residual(&w, "\(p).up1", in: f)
        low1 = try Residual(&w, "\(p).low1", in: f)
        let nf = low1.outChannels
        if w.contains("\(p).low2.up1.bn1.weight") {
            inner = try Hourglass(&w, "\(p).low2", f: nf, depth: depth + 1)
            bottom = nil
        } else {
            bottom = try Residual(&w, "\(p).low2", in: nf)
            inner = nil
        }
        low3 = try Residual(&w, "\(p).low3", in: inner?.outChannels ?? bottom!.outChannels)
        guard up1.outChannels == f, low3.outChannels == f else {
            throw FormatError("\(p): the two branches give \(up1.outChannels) and \(low3.outChannels) channels for a \(f)-channel input")
        }
    }

    var outChannels: Int { up1.outChannels }

    func callAsFunction(_ x: Tensor, _ s: BatchNormStatistics) -> Tensor {
        let down = low1(NN.maxPool2d(x, kernel: 2, stride: 2), s)
        let mid = inner.map { $0(down, s) } ?? bottom!(down, s)
        let up = NN.upsampleBilinear(low3(mid, s), size: NN.Pair(x.shape[2], x.shape[3]), alignCorners: false)
        return up1(x, s) + up
    }

}
