import ArgumentParser
import Foundation
import GuiseFormats
import GuiseNetworks
import GuiseTensor

/// `guise model run` and `model info` for ArcFace face-recognition networks (DiffFace's
/// Arcface.tar, SimSwap's IR-SE, insightface's iresnet state dicts).
extension ModelRun {
    func runArcFace() throws -> [String: Tensor] {
        guard config == nil else { throw ValidationError("--config is for ADM checkpoints, not ArcFace networks") }
        let net = try ArcFaceNetwork(path: file)
        output.note("\(net.description)")
        let given = try readInput(inputs)
        guard given["x"] != nil else {
            throw FormatError("\(inputs): an ArcFace network needs input x [N,3,\(net.inputSize),\(net.inputSize)]; found \(given.names.sorted().joined(separator: ", "))",
                              category: .input)
        }
        let x = try given.tensor("x")
        var outputs: [String: Tensor] = [:]
        if let seeds = try readSeeds() {
            guard seeds["seed"] != nil else { throw FormatError("\(gradSeed!): no tensor named seed", category: .input) }
            let seed = try seeds.tensor("seed")
            let (value, grad) = try vectorJacobianProduct(at: x, seed: seed) { xl -> Tensor in
                let o = try net(xl)
                guard o.shape == seed.shape else { throw FormatError("seed has shape \(seed.shape), the output \(o.shape)", category: .input) }
                return o
            }
            outputs["out"] = value
            outputs["grad_x"] = grad
        } else {
            outputs["out"] = try Autograd.noGrad { try net(x) }
        }
        return outputs
    }
}

/// Networks `model run` recognises from a checkpoint's tensor names (beyond the ADM it assumes).
enum RecognisedNetwork {
    /// Whether `path` is a PyTorch or safetensors checkpoint of an ArcFace network; files that
    /// cannot be read as checkpoints are left to the default path, which reports why.
    static func isArcFace(_ path: String) -> Bool {
        guard !path.hasSuffix(".tflite"), !path.hasSuffix(".dat"), let c = try? Checkpoint(path: path) else { return false }
        return ArcFaceNetwork.recognises(names: c.names)
    }

    /// The architecture `model info` names for a checkpoint, or nil when none is recognised;
    /// a recognised network that fails to load says why.
    static func architecture(_ path: String, _ c: Checkpoint) -> String? {
        guard ArcFaceNetwork.recognises(names: c.names) else { return nil }
        do {
            return try ArcFaceNetwork(path: path).description
        } catch {
            return "ArcFace-like, but it does not load: \(error)"
        }
    }
}
