import Foundation
import GuiseDiffusion
import GuiseFormats
import GuiseNetworks
import GuisePrior
import GuiseTensor

/// A diffusion network and the process it was trained with, loaded from a model name or a file.
///
/// `"prior"` (or nil) is Guise's own default prior, and `guise-prior` / `guise-prior-2` name each
/// shipped one, listed in Models/manifest.json. A file written by
/// `guise train-prior` carries its config (its cosine schedule included) in its metadata. Any other
/// file is a guided-diffusion ADM checkpoint (.pt or .safetensors), with a config JSON in
/// guided-diffusion's argument names or, without one, a config inferred from the weights.
public struct DiffusionModel {
    public static let priorName = "prior"

    public let net: ADMUNet
    /// Where the weights came from.
    public let path: String
    public var config: ADMConfig { net.config }

    public init(net: ADMUNet, path: String) {
        self.net = net
        self.path = path
    }

    /// `log` receives what could not be read from the weights (inferred configs).
    public static func load(_ model: String?, config: String? = nil, store: ModelStore? = nil,
                            log: (String) -> Void = { _ in }) throws -> DiffusionModel {
        let path = try resolvePath(model, store: store)
        let isPrior = model == nil || model == priorName || PriorModel.shippedPriors[model!] != nil
        if config == nil, isPrior || ((try? SafeTensorsFile(path: path))?.metadata["adm_config"] != nil) {
            return DiffusionModel(net: try PriorDenoiser(path: path).net, path: path)
        }
        return DiffusionModel(net: try loadADM(path, config: config, log: log), path: path)
    }

    /// The file a model name stands for: nil or "prior" is the default prior, a shipped prior's
    /// name (guise-prior, guise-prior-2) that one; anything else is a path.
    public static func resolvePath(_ model: String?, store: ModelStore? = nil) throws -> String {
        if let model, model != priorName {
            guard let shipped = PriorModel.shippedPriors[model] else { return model }
            return try (store ?? ModelStore.locate()).installedPath(shipped)
        }
        return try (store ?? ModelStore.locate()).installedPath(PriorModel.shippedName)
    }

    /// An ADM checkpoint (safetensors or PyTorch) with a config file, or with a config inferred
    /// from its shapes (the guesses are reported through `log`).
    public static func loadADM(_ path: String, config: String?, log: (String) -> Void) throws -> ADMUNet {
        let checkpoint = try Checkpoint(path: path)
        let cfg: ADMConfig
        if let config {
            cfg = try ADMConfig.load(path: config)
        } else {
            let inferred = try ADMConfig.infer(fromShapes: checkpoint.tensors.mapValues(\.shape))
            cfg = inferred.config
            log("inferred ADM config: \(cfg)")
            for g in inferred.guesses { log("  not from the weights: \(g)") }
            log("  pass --config to set these")
        }
        return try ADMUNet(config: cfg, weights: ADMUNet.stateDict(checkpoint))
    }

    /// The model's diffusion process, respaced (guided-diffusion's section strings: "100",
    /// "10,10,10", "ddim50"; "" keeps every step).
    public func diffusion(respacing: String = "") throws -> GaussianDiffusion {
        let cfg = config
        return try GaussianDiffusion(
            schedule: try BetaSchedule(named: cfg.noiseSchedule), steps: cfg.diffusionSteps, respacing: respacing,
            varianceType: cfg.learnSigma ? .learnedRange : (cfg.sigmaSmall ? .fixedSmall : .fixedLarge),
            rescaleTimesteps: cfg.rescaleTimesteps)
    }

    /// The network as the samplers call it, with the conditioning they pass by name: "y", "id",
    /// and the sampler's reference attention ("reference", "reference_weight": `ReferenceImage`).
    public var denoiser: Denoiser {
        let net = self.net
        return { x, t, c in
            let reference = c[ReferenceImage.conditioningKey].map {
                ADMReference(x: $0, weight: c[ReferenceImage.weightKey]?.item() ?? 1)
            }
            return try net(x, timesteps: t, y: c["y"], id: c["id"], reference: reference)
        }
    }

    /// The side the network's input must be a multiple of (2 per downsampling level).
    public var stride: Int { 1 << max(0, ((try? config.resolvedChannelMult().count) ?? 1) - 1) }
}

extension DiffusionModel {
    /// DiffFace's Model.pt (or any ADM used its way): the layout read from the weights, the
    /// process DiffFace samples with (linear schedule over 1000 steps, timesteps rescaled, the
    /// variance learned when the output has twice the channels). A config file overrides it all.
    public static func loadDiffFace(_ path: String, config: String?) throws -> DiffusionModel {
        if config != nil { return DiffusionModel(net: try loadADM(path, config: config, log: { _ in }), path: path) }
        let checkpoint = try Checkpoint(path: path)
        var cfg = try ADMConfig.infer(fromShapes: checkpoint.tensors.mapValues(\.shape)).config
        cfg.diffusionSteps = 1000
        cfg.noiseSchedule = "linear"
        cfg.rescaleTimesteps = true
        return DiffusionModel(net: try ADMUNet(config: cfg, weights: ADMUNet.stateDict(checkpoint)), path: path)
    }
}
