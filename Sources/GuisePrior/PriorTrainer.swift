import Foundation
import GuiseTensor
import GuiseFormats
import GuiseNetworks
import GuiseDiffusion

/// Hyperparameters of a training run. Stored in every checkpoint; a resumed run takes them from there.
public struct PriorTrainingOptions: Equatable {
    public var configName = "small"
    public var steps = 1000
    public var batch = 8
    public var crop = 64
    public var lr = 4e-4
    public var warmup = 50
    public var emaDecay = 0.995
    public var seed: UInt64 = 0
    /// Share of samples whose timestep comes from the σ band the denoiser serves, with 8-bit inputs.
    public var bandFraction = 0.5
    /// The band in 0–255 units, drawn log-uniformly.
    public var sigmaMin = 5.0, sigmaMax = 80.0
    /// Crops at log-uniform scales from whole-photo to 1:1 (PriorSampling.multiScale).
    public var multiScale = false
    /// Colour jitter (PriorSampling.jitter).
    public var jitter = 0.0
    /// "face=4,person=2,scene=1", canonical (sorted); empty weighs every photo alike.
    public var kindWeights = ""
    /// Kinds trained upright (mirror only), comma-separated, sorted.
    public var uprightKinds = ""
    /// The data manifest whose `kind` fields the weights and upright kinds read; empty: none.
    public var manifest = ""

    public init() {}

    /// The batch sampling these options describe.
    public func sampling() throws -> PriorSampling {
        var s = PriorSampling()
        s.multiScale = multiScale
        s.jitter = jitter
        s.kindWeights = try PriorSampling.parseKindWeights(kindWeights)
        s.uprightKinds = Set(uprightKinds.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        return s
    }

    var metadata: [String: String] {
        ["config_name": configName, "steps": "\(steps)", "batch": "\(batch)", "crop": "\(crop)", "lr": "\(lr)",
         "warmup": "\(warmup)", "ema_decay": "\(emaDecay)", "seed": "\(seed)", "band_fraction": "\(bandFraction)",
         "sigma_min": "\(sigmaMin)", "sigma_max": "\(sigmaMax)", "multi_scale": "\(multiScale)", "jitter": "\(jitter)",
         "kind_weights": kindWeights, "upright_kinds": uprightKinds, "manifest": manifest]
    }

    init(metadata m: [String: String]) throws {
        func get<T: LosslessStringConvertible>(_ k: String) throws -> T {
            guard let s = m[k], let v = T(s) else { throw FormatError("checkpoint metadata lacks a valid \(k)") }
            return v
        }
        configName = try get("config_name")
        steps = try get("steps"); batch = try get("batch"); crop = try get("crop"); lr = try get("lr")
        warmup = try get("warmup"); emaDecay = try get("ema_decay"); seed = try get("seed")
        bandFraction = try get("band_fraction"); sigmaMin = try get("sigma_min"); sigmaMax = try get("sigma_max")
        // Checkpoints written before these options existed sampled as the defaults do.
        if m["multi_scale"] != nil { multiScale = try get("multi_scale") }
        if m["jitter"] != nil { jitter = try get("jitter") }
        kindWeights = m["kind_weights"] ?? ""
        uprightKinds = m["upright_kinds"] ?? ""
        manifest = m["manifest"] ?? ""
    }
}

/// ε-prediction training of the prior: MSE between the network's ε and the noise in x_t, Adam with
/// linear warm-up and cosine decay, an EMA of the weights, and checkpoints holding everything a
/// resumed run needs to continue exactly (weights, EMA, Adam moments and step counts, RNG state).
public final class PriorTrainer {
    public let options: PriorTrainingOptions
    public let config: ADMConfig
    public let names: [String]
    public let parameters: [Tensor]
    public let net: ADMUNet
    public let adam: Adam
    public let ema: EMA
    public let diffusion: GaussianDiffusion
    public private(set) var step = 0
    public private(set) var lastLoss: Float = .nan
    public var rng: PriorRNG

    public init(options: PriorTrainingOptions) throws {
        guard options.steps > 0, options.batch > 0 else { throw FormatError("steps and batch must be positive", category: .input) }
        guard options.jitter >= 0 && options.jitter < 1 else { throw FormatError("--jitter must be in [0, 1)", category: .input) }
        _ = try options.sampling()
        guard options.manifest.isEmpty || !options.kindWeights.isEmpty || !options.uprightKinds.isEmpty else {
            throw FormatError("--manifest is only read for --kind-weights or --upright", category: .input)
        }
        guard !options.manifest.isEmpty || (options.kindWeights.isEmpty && options.uprightKinds.isEmpty) else {
            throw FormatError("--kind-weights and --upright need --manifest (the kinds come from it)", category: .input)
        }
        self.options = options
        config = try PriorModel.config(named: options.configName)
        let levels = try config.resolvedChannelMult().count
        guard options.crop % (1 << (levels - 1)) == 0 else {
            throw FormatError("--crop \(options.crop) must be a multiple of \(1 << (levels - 1)) for this config", category: .input)
        }
        var r = PriorRNG(seed: options.seed)
        let params = try PriorModel.initialParameters(config, rng: &r)
        rng = r
        names = params.keys.sorted()
        parameters = names.map { params[$0]! }
        // ADMUNet keeps these very tensors (contiguous leaves are not copied), so gradients land on them.
        net = try ADMUNet(config: config, weights: params)
        adam = Adam(parameters, lr: options.lr)
        ema = EMA(parameters, decay: options.emaDecay)
        diffusion = try PriorModel.diffusion(config)
    }

    /// The training photos in `directory`, sampled as the options say; the kinds come from
    /// `manifest`, else from the options' manifest.
    public func dataset(directory: String, manifest: String? = nil) throws -> PriorDataset {
        let path = manifest ?? options.manifest
        let kinds = path.isEmpty ? [:] : try PriorSampling.kinds(manifest: path)
        return try PriorDataset(directory: directory, crop: options.crop, sampling: try options.sampling(), kinds: kinds)
    }

    /// Learning rate at step s (0-based): linear warm-up, then half a cosine down to zero at the end.
    public func learningRate(at s: Int) -> Double {
        let warm = options.warmup > 0 ? min(1, Double(s + 1) / Double(options.warmup)) : 1
        return options.lr * warm * 0.5 * (1 + cos(Double.pi * Double(s) / Double(options.steps)))
    }

    /// Noised inputs, network timesteps and the ε targets for a clean batch x0.
    public func noised(_ x0: Tensor) -> (xt: Tensor, t: [Int], eps: Tensor) {
        let n = x0.shape[0], per = x0.count / n
        let noise = Tensor(uninitialized: x0.shape)
        let xt = Tensor(uninitialized: x0.shape)
        var ts: [Int] = []
        for b in 0..<n {
            let band = rng.uniform() < options.bandFraction
            let t: Int
            if band {
                let s = exp(log(options.sigmaMin) + rng.uniform() * (log(options.sigmaMax) - log(options.sigmaMin)))
                t = PriorModel.timestep(forSigma: s, diffusion)
            } else {
                t = rng.below(diffusion.numTimesteps)
            }
            ts.append(t)
            let a = diffusion.sqrtAlphasCumprod[t], s1 = diffusion.sqrtOneMinusAlphasCumprod[t]
            let e = noise.data + b * per, x = x0.data + b * per, o = xt.data + b * per
            rng.fillNormal(e, count: per)
            if band {
                // As a real noisy file: y = x0 + σ·ε rounded and clipped to 8 bits. The target is the
                // noise y actually holds, so x̂0 = (x_t − √(1−ᾱ)ε)/√ᾱ recovers x0 exactly.
                let sm = s1 / a
                for j in 0..<per {
                    let y = Double(x[j]) + sm * Double(e[j])
                    let yq = min(max(((y + 1) * 127.5).rounded(), 0), 255) / 127.5 - 1
                    o[j] = Float(a * yq)
                    e[j] = Float((yq - Double(x[j])) / sm)
                }
            } else {
                for j in 0..<per { o[j] = Float(a * Double(x[j]) + s1 * Double(e[j])) }
            }
        }
        return (xt, ts, noise)
    }

    /// The loss of the current weights on a batch, without updating anything.
    public func loss(on x0: Tensor, xt: Tensor, t: [Int], eps: Tensor) throws -> Float {
        try Autograd.noGrad {
            let tt = Tensor(shape: [t.count], values: t.map { diffusion.networkTimestep($0) })
            return NN.mseLoss(try net(xt, timesteps: tt), eps).item()
        }
    }

    /// One optimisation step on a batch from `data`; returns the batch loss.
    @discardableResult
    public func trainStep(_ data: PriorDataset) throws -> Float {
        let x0 = data.batch(options.batch, rng: &rng)
        return try trainStep(x0: x0)
    }

    /// One optimisation step on the clean batch x0 (noise and timesteps from the trainer's RNG).
    @discardableResult
    public func trainStep(x0: Tensor) throws -> Float {
        let (xt, t, eps) = noised(x0)
        let tt = Tensor(shape: [t.count], values: t.map { diffusion.networkTimestep($0) })
        let loss = NN.mseLoss(try net(xt, timesteps: tt), eps)
        let value = loss.item()
        guard value.isFinite else { throw FormatError("training diverged: loss \(value) at step \(step + 1)", category: .internal) }
        loss.backward()
        adam.lr = learningRate(at: step)
        adam.step()
        adam.zeroGrad()
        ema.update(from: parameters)
        step += 1
        lastLoss = value
        return value
    }

    // MARK: - Checkpoints

    /// Everything needed to continue: f32 weights, EMA, Adam moments; step, Adam step counts, RNG
    /// state and options in the metadata. Written atomically (temporary file, then rename).
    public func saveCheckpoint(to path: String) throws {
        var tensors: [String: Tensor] = [:]
        for (i, name) in names.enumerated() {
            tensors["model/\(name)"] = parameters[i].detached()
            tensors["ema/\(name)"] = ema.shadow[i]
            tensors["adam_m/\(name)"] = adam.firstMoments[i]
            tensors["adam_v/\(name)"] = adam.secondMoments[i]
        }
        var meta = options.metadata
        meta["step"] = "\(step)"
        meta["rng_state"] = "\(rng.state)"
        meta["adam_steps"] = adam.steps.map(String.init).joined(separator: ",")
        meta["last_loss"] = "\(lastLoss)"
        try SafeTensorsWriter.write(tensors: tensors, to: path, metadata: meta)
    }

    /// A trainer restored from a checkpoint, continuing at its step. `steps` may extend the run
    /// (the learning-rate schedule then stretches to the new end).
    public static func resume(from path: String, steps: Int? = nil) throws -> PriorTrainer {
        let file = try SafeTensorsFile(path: path)
        var options = try PriorTrainingOptions(metadata: file.metadata)
        if let steps { options.steps = steps }
        let trainer = try PriorTrainer(options: options)
        guard let s = file.metadata["step"].flatMap(Int.init), let r = file.metadata["rng_state"].flatMap(UInt64.init),
              let a = file.metadata["adam_steps"] else {
            throw FormatError("\(path): not a train-prior checkpoint (no step, rng_state or adam_steps)")
        }
        let adamSteps = a.split(separator: ",").compactMap { Int($0) }
        guard adamSteps.count == trainer.names.count else { throw FormatError("\(path): adam_steps does not match the model") }
        func load(_ key: String, into t: Tensor) throws {
            guard file[key] != nil else { throw FormatError("\(path): lacks \(key)") }
            let v = try file.tensor(key)
            guard v.shape == t.shape else { throw FormatError("\(path): \(key) has shape \(v.shape), expected \(t.shape)") }
            t.data.update(from: v.contiguous().data, count: t.count)
        }
        for (i, name) in trainer.names.enumerated() {
            try load("model/\(name)", into: trainer.parameters[i])
            try load("ema/\(name)", into: trainer.ema.shadow[i])
            try load("adam_m/\(name)", into: trainer.adam.firstMoments[i])
            try load("adam_v/\(name)", into: trainer.adam.secondMoments[i])
        }
        trainer.adam.steps = adamSteps
        trainer.step = s
        trainer.rng = PriorRNG(seed: 0)
        trainer.rng.state = r
        trainer.lastLoss = file.metadata["last_loss"].flatMap(Float.init) ?? .nan
        return trainer
    }

    /// The EMA weights as fp16 safetensors, with the ADM config and the run's facts in the metadata.
    public func exportEMA(to path: String, extra: [String: String] = [:]) throws {
        var entries: [String: SafeTensorsWriter.Entry] = [:]
        for (i, name) in names.enumerated() {
            let s = ema.shadow[i]
            var bytes = Data(count: s.count * 2)
            bytes.withUnsafeMutableBytes { raw in
                let p = raw.bindMemory(to: UInt16.self)
                for j in 0..<s.count { p[j] = HalfFloat.f32ToF16(s.data[j]).littleEndian }
            }
            entries[name] = .init(dtype: .f16, shape: s.shape, bytes: bytes)
        }
        var meta = extra
        let json = try JSONSerialization.data(withJSONObject: config.jsonObject(), options: [.sortedKeys])
        meta["adm_config"] = String(decoding: json, as: UTF8.self)
        meta["step"] = "\(step)"
        meta["seed"] = "\(options.seed)"
        try SafeTensorsWriter.write(entries, to: path, metadata: meta)
    }
}

extension PriorModel {
    public static func diffusion(_ config: ADMConfig) throws -> GaussianDiffusion {
        try GaussianDiffusion(schedule: try BetaSchedule(named: config.noiseSchedule), steps: config.diffusionSteps,
                              respacing: "", varianceType: .fixedLarge, rescaleTimesteps: config.rescaleTimesteps)
    }

    /// The noise level of timestep t as a standard deviation on x0's scale in 0–255 units:
    /// x_t/√ᾱ = x0 + √((1−ᾱ)/ᾱ)·ε, and x ∈ [−1, 1] spans 255 levels over a width of 2.
    public static func sigma255(_ t: Int, _ d: GaussianDiffusion) -> Double {
        d.sqrtOneMinusAlphasCumprod[t] / d.sqrtAlphasCumprod[t] * 127.5
    }

    /// The timestep whose noise level is closest to σ (0–255 units).
    public static func timestep(forSigma sigma: Double, _ d: GaussianDiffusion) -> Int {
        var best = 0, bestErr = Double.infinity
        // σ grows with t: a binary search would do, but 1000 comparisons cost nothing next to a step.
        for t in 0..<d.numTimesteps {
            let e = abs(log(sigma255(t, d)) - log(sigma))
            if e < bestErr { bestErr = e; best = t }
        }
        return best
    }
}
