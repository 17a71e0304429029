/// The architecture a state_dict is, told from its tensor names and shapes alone (nothing is
/// built), in a line for `guise model info`; nil when it is none Guise runs.
public func recognisedArchitecture(_ shapes: [String: [Int]]) -> String? {
    if BiSeNet.recognises(shapes.keys) {
        let classes = shapes["conv_out.conv_out.weight"]?.first ?? 0
        let widths = (1...4).compactMap { shapes["cp.resnet.layer\($0).0.conv1.weight"]?.first }
        return "BiSeNet face parser (DiffFace, face-parsing.PyTorch): \(classes) classes, ResNet-18 context path "
            + "(stage widths \(widths.map(String.init).joined(separator: ", ")))"
    }
    if EyeNet.recognises(shapes.keys) {
        var stacks = 0
        while shapes["hgs.\(stacks).0.up1.bn1.weight"] != nil { stacks += 1 }
        let features = shapes["pre.4.conv3.conv.weight"]?.first ?? 0, landmarks = shapes["outs.0.conv.weight"]?.first ?? 0
        return "EyeNet gaze network (DiffFace, stacked hourglass): \(stacks) stacks, \(features) features, \(landmarks) landmarks, "
            + "input 96×160 grey"
    }
    if let c = try? ADMConfig.infer(fromShapes: shapes).config {
        let mult = (try? c.resolvedChannelMult()) ?? []
        return "ADM UNet (guided-diffusion): \(c.numChannels) channels, channel_mult \(mult.map(String.init).joined(separator: ","))"
            + (c.idDim.map { ", DiffFace id_embed (\($0)-d identity)" } ?? "") + (c.classCond ? ", \(c.numClasses) classes" : "")
    }
    return nil
}
