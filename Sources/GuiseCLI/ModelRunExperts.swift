import ArgumentParser
import Foundation
import GuiseFormats
import GuiseNetworks
import GuiseTensor

/// `guise model run` for DiffFace's BiSeNet face parser and EyeNet gaze network.
extension ModelRun {
    /// The outputs when the checkpoint is a BiSeNet or an EyeNet state_dict; nil otherwise.
    func runFaceExpert() throws -> (kind: String, outputs: [String: Tensor])? {
        let checkpoint = try Checkpoint(path: file)
        let kind: String, input: String, net: (Tensor) throws -> Tensor
        if BiSeNet.recognises(checkpoint.names) {
            let parser = try BiSeNet(checkpoint: checkpoint)
            (kind, input) = ("bisenet", "x [N,3,H,W] (DiffFace feeds 512×512)")
            net = { try parser($0) }
        } else if EyeNet.recognises(checkpoint.names) {
            let gaze = try EyeNet(checkpoint: checkpoint)
            let statistics: BatchNormStatistics = batchStatistics ? .batch : .running
            (kind, input) = ("eyenet", "x [N,96,160]")
            net = { try gaze($0, statistics: statistics) }
        } else {
            return nil
        }
        if batchStatistics && kind != "eyenet" {
            throw ValidationError("--batch-statistics is for EyeNet checkpoints")
        }
        if config != nil {
            throw ValidationError("--config is for ADM checkpoints; \(kind == "bisenet" ? "BiSeNet" : "EyeNet") widths are read from the weights")
        }
        return (kind, try runSingleInput(kind == "bisenet" ? "a BiSeNet" : "an EyeNet", needs: input, net))
    }
}
