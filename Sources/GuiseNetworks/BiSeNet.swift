import GuiseTensor
import GuiseFormats

/// The BiSeNet face parser DiffFace uses (its models/parsing.py, the face-parsing.PyTorch layout;
/// `FaceParser.pth` is its state_dict), in inference mode, differentiable with respect to the image.
///
/// - Context path: a ResNet-18 (7×7/2 conv, BN, ReLU, 3×3/2 max pool, four stages of two basic
///   blocks) gives features at 1/8, 1/16 and 1/32. The 1/32 feature's global average goes
///   through a 1×1 ConvBNReLU and is added to the attention-refined 1/32 feature (an ARM:
///   ConvBNReLU, then × sigmoid(BN(1×1 conv(global average)))); nearest upsampling to 1/16,
///   ConvBNReLU (`conv_head32`); added to the refined 1/16 feature; nearest upsampling to 1/8,
///   ConvBNReLU (`conv_head16`).
/// - There is no spatial path: the feature-fusion module takes the backbone's 1/8 feature with
///   the context path's 1/8 output (concatenated, 1×1 ConvBNReLU, then f·(1 + sigmoid(1×1 conv(
///   ReLU(1×1 conv(global average)))))).
/// - Heads (ConvBNReLU 3×3, 1×1 conv to the classes) on the fused feature (`out`, the one DiffFace
///   reads), the 1/8 context feature (`out16`) and the 1/16 one (`out32`), each upsampled
///   bilinearly with align_corners=True to the input size.
///
/// The public class fixes the widths (64…512, 128, 256; 19 classes); here every width is read
/// from the checkpoint's shapes, so narrower copies load too.
public final class BiSeNet {
    public let classes: Int
    /// Output widths of the stem and the four ResNet stages.
    public let stageWidths: [Int]
    let stem: ConvBN
    let stages: [[BasicBlock]]
    let arm16: AttentionRefinement, arm32: AttentionRefinement
    let convAvg: ConvBN, head32: ConvBN, head16: ConvBN
    let fusion: FeatureFusion
    let out: Head, out16: Head, out32: Head

    /// Tensor names that only this network's state_dict has.
    static let signature = ["cp.resnet.conv1.weight", "cp.arm32.conv_atten.weight", "ffm.convblk.conv.weight", "conv_out.conv_out.weight"]

    /// Whether a state_dict's names are this network's.
    public static func recognises<C: Collection>(_ names: C) -> Bool where C.Element == String {
        let set = Set(names)
        return signature.allSatisfy(set.contains)
    }

    /// A state_dict: every tensor must be used and none may be missing.
    public init(weights: [String: Tensor]) throws {
        guard Self.recognises(weights.keys) else {
            throw FormatError("not a BiSeNet face parser state_dict (it lacks \(Self.signature.filter { weights[$0] == nil }.joined(separator: ", ")))")
        }
        var w = WeightReader(weights)
        stem = try ConvBN(&w, conv: "cp.resnet.conv1", norm: "cp.resnet.bn1", in: 3, kernel: 7, stride: 2, padding: 3)
        var widths = [stem.outChannels]
        var layers: [[BasicBlock]] = []
        var c = stem.outChannels
        for k in 1...4 {
            var blocks: [BasicBlock] = []
            while w.contains("cp.resnet.layer\(k).\(blocks.count).conv1.weight") {
                let b = try BasicBlock(&w, "cp.resnet.layer\(k).\(blocks.count)", in: c, stride: blocks.isEmpty && k > 1 ? 2 : 1)
                c = b.outChannels
                blocks.append(b)
            }
            guard !blocks.isEmpty else { throw FormatError("checkpoint lacks cp.resnet.layer\(k).0; not a BiSeNet layout") }
            layers.append(blocks)
            widths.append(c)
        }
        stages = layers
        stageWidths = widths
        arm16 = try AttentionRefinement(&w, "cp.arm16", in: widths[3])
        arm32 = try AttentionRefinement(&w, "cp.arm32", in: widths[4])
        let a = arm32.outChannels
        guard arm16.outChannels == a else {
            throw FormatError("cp.arm16 gives \(arm16.outChannels) channels and cp.arm32 \(a); they are added, so they must match")
        }
        convAvg = try ConvBN(&w, conv: "cp.conv_avg.conv", norm: "cp.conv_avg.bn", in: widths[4], kernel: 1, padding: 0)
        head32 = try ConvBN(&w, conv: "cp.conv_head32.conv", norm: "cp.conv_head32.bn", in: a, kernel: 3, padding: 1)
        head16 = try ConvBN(&w, conv: "cp.conv_head16.conv", norm: "cp.conv_head16.bn", in: a, kernel: 3, padding: 1)
        for (name, got) in [("cp.conv_avg", convAvg.outChannels), ("cp.conv_head32", head32.outChannels), ("cp.conv_head16", head16.outChannels)]
        where got != a {
            throw FormatError("\(name) gives \(got) channels; the context path adds it to \(a)-channel features")
        }
        fusion = try FeatureFusion(&w, "ffm", in: widths[2] + a)
        out = try Head(&w, "conv_out", in: fusion.outChannels, classes: nil)
        classes = out.classes
        out16 = try Head(&w, "conv_out16", in: a, classes: classes)
        out32 = try Head(&w, "conv_out32", in: a, classes: classes)
        try w.finish()
    }

    /// A checkpoint file (`FaceParser.pth`, any PyTorch or safetensors state_dict).
    public convenience init(path: String) throws {
        try self.init(checkpoint: try Checkpoint(path: path))
    }

    public convenience init(checkpoint: Checkpoint) throws {
        let path = checkpoint.path
        guard Self.recognises(checkpoint.names) else {
            throw FormatError("\(path): not a BiSeNet face parser checkpoint (it lacks \(Self.signature.filter { checkpoint[$0] == nil }.joined(separator: ", ")))")
        }
        do {
            try self.init(weights: checkpoint.tensors.mapValues { $0.toTensor() })
        } catch let e as FormatError {
            throw FormatError("\(path): \(e.message)", category: e.category)
        }
    }

    func check(_ x: Tensor) throws {
        guard x.rank == 4, x.shape[1] == 3, x.shape[2] > 0, x.shape[3] > 0 else {
            throw NetworkError("BiSeNet input must be [N, 3, H, W] (RGB, normalised as its training was), got \(x.shape)")
        }
    }

    /// The main head's logits [N, classes, H, W], the output DiffFace reads (`netSeg(x)[0]`).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try check(x)
        let (f8, cp8, _) = contextPath(x)
        return upsampled(out(fusion(f8, cp8)), like: x)
    }

    /// All three heads' logits, each [N, classes, H, W]: the fused head and the auxiliary heads on
    /// the 1/8 and 1/16 context features, as the public forward returns them.
    public func outputs(_ x: Tensor) throws -> (out: Tensor, out16: Tensor, out32: Tensor) {
        try check(x)
        let (f8, cp8, cp16) = contextPath(x)
        return (upsampled(out(fusion(f8, cp8)), like: x), upsampled(out16(cp8), like: x), upsampled(out32(cp16), like: x))
    }

    func upsampled(_ t: Tensor, like x: Tensor) -> Tensor {
        NN.upsampleBilinear(t, size: NN.Pair(x.shape[2], x.shape[3]), alignCorners: true)
    }

    /// The backbone's 1/8 feature and the context path's outputs at 1/8 and 1/16.
    func contextPath(_ x: Tensor) -> (Tensor, Tensor, Tensor) {
        var h = NN.maxPool2d(stem(x, relu: true), kernel: 3, stride: 2, padding: 1)
        var features: [Tensor] = []
        for stage in stages {
            for block in stage { h = block(h) }
            features.append(h)
        }
        let (f8, f16, f32) = (features[1], features[2], features[3])
        // The global context is 1×1: its nearest upsampling to the 1/32 grid is a broadcast.
        let context = convAvg(NN.globalAvgPool2d(f32), relu: true)
        let sum32 = arm32(f32) + context
        let up32 = head32(NN.upsampleNearest(sum32, size: NN.Pair(f16.shape[2], f16.shape[3])), relu: true)
        let sum16 = arm16(f16) + up32
        let up16 = head16(NN.upsampleNearest(sum16, size: NN.Pair(f8.shape[2], f8.shape[3])), relu: true)
        return (f8, up16, up32)
    }
}

/// ResNet's basic block: ReLU(shortcut + BN(conv(ReLU(BN(conv(x)))))), the shortcut a strided
/// 1×1 ConvBN when the width or the stride changes.
struct BasicBlock {
    let conv1: ConvBN, conv2: ConvBN
    let down: ConvBN?
    var outChannels: Int { conv2.outChannels }

    init(_ w: inout WeightReader, _ p: String, in c: Int, stride: Int) throws {
        conv1 = try ConvBN(&w, conv: "\(p).conv1", norm: "\(p).bn1", in: c, kernel: 3, stride: stride, padding: 1)
        conv2 = try ConvBN(&w, conv: "\(p).conv2", norm: "\(p).bn2", in: conv1.outChannels, kernel: 3, padding: 1)
        if c != conv2.outChannels || stride != 1 {
            down = try ConvBN(&w, conv: "\(p).downsample.0", norm: "\(p).downsample.1", in: c, kernel: 1, stride: stride, padding: 0)
            guard down!.outChannels == conv2.outChannels else {
                throw FormatError("\(p).downsample gives \(down!.outChannels) channels, the block \(conv2.outChannels)")
            }
        } else {
            down = nil
            if w.contains("\(p).downsample.0.weight") {
                throw FormatError("\(p) keeps width and stride but the checkpoint has a downsample for it; not a BiSeNet layout")
            }
        }
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let r = conv2(conv1(x, relu: true), relu: false)
        return NN.residualAdd(r, down.map { $0(x, relu: false) } ?? x, .clamp(.relu))
    }
}

/// ARM: ConvBNReLU, then the feature scaled per channel by sigmoid(BN(1×1 conv(global average))).
struct AttentionRefinement {
    let conv: ConvBN, attention: ConvBN
    var outChannels: Int { conv.outChannels }

    init(_ w: inout WeightReader, _ p: String, in c: Int) throws {
        conv = try ConvBN(&w, conv: "\(p).conv.conv", norm: "\(p).conv.bn", in: c, kernel: 3, padding: 1)
        attention = try ConvBN(&w, conv: "\(p).conv_atten", norm: "\(p).bn_atten", in: conv.outChannels, kernel: 1, padding: 0)
        guard attention.outChannels == conv.outChannels else {
            throw FormatError("\(p).conv_atten gives \(attention.outChannels) channels for a \(conv.outChannels)-channel feature")
        }
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let f = conv(x, relu: true)
        return f * attention(NN.globalAvgPool2d(f), relu: false).sigmoid()
    }
}

/// FFM: the two features concatenated, a 1×1 ConvBNReLU, then f + f·sigmoid(excite(ReLU(squeeze(
/// global average)))), both 1×1 convs without bias.
struct FeatureFusion {
    let block: ConvBN
    let squeeze: Conv2d, excite: Conv2d
    var outChannels: Int { block.outChannels }

    init(_ w: inout WeightReader, _ p: String, in c: Int) throws {
        block = try ConvBN(&w, conv: "\(p).convblk.conv", norm: "\(p).convblk.bn", in: c, kernel: 1, padding: 0)
        squeeze = try conv2d(&w, "\(p).conv1", in: block.outChannels, kernel: 1, bias: false)
        excite = try Conv2d(&w, "\(p).conv2", squeeze.weight.shape[0], block.outChannels, kernel: 1, bias: false)
    }

    func callAsFunction(_ spatial: Tensor, _ context: Tensor) -> Tensor {
        let f = block(Tensor.concat([spatial, context], dim: 1), relu: true)
        let a = excite(squeeze(NN.globalAvgPool2d(f)).relu()).sigmoid()
        return f * (a + 1)
    }
}

/// BiSeNetOutput: ConvBNReLU 3×3, then a 1×1 conv without bias to the classes.
struct Head {
    let conv: ConvBN
    let classifier: Conv2d
    var classes: Int { classifier.weight.shape[0] }

    /// `classes` nil reads the count from the file.
    init(_ w: inout WeightReader, _ p: String, in c: Int, classes: Int?) throws {
        conv = try ConvBN(&w, conv: "\(p).conv.conv", norm: "\(p).conv.bn", in: c, kernel: 3, padding: 1)
        if let classes {
            classifier = try Conv2d(&w, "\(p).conv_out", conv.outChannels, classes, kernel: 1, bias: false)
        } else {
            classifier = try conv2d(&w, "\(p).conv_out", in: conv.outChannels, kernel: 1, bias: false)
        }
    }

    func callAsFunction(_ x: Tensor) -> Tensor { classifier(conv(x, relu: true)) }
}
