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
        return try runSingleInput("an ArcFace network", needs: "x [N,3,\(net.inputSize),\(net.inputSize)]") { try net($0) }
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
