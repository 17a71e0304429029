import Foundation
import GuiseTensor

// DiffFace's sampler, in these terms (docs/ARCHITECTURE.md, "DiffFace's recipe"):
//
//   let d = try GaussianDiffusion(respacing: "100", varianceType: .learnedRange, rescaleTimesteps: true)
//   var o = SamplerOptions(method: .ddpm, clipDenoised: false, skipTimesteps: 25)
//   o.conditioning["id"] = sourceIdentity                        // [1, 512], L2-normalised
//   o.guidance = Guidance(image: .diffFace, gradient: .throughDenoiser) { xIn, ctx in losses(xIn, ctx.t) }
//   o.mask = .diffFace(mask: faceMask, stepsRun: 75, maskingThreshold: 30)
//   let r = try d.sample(denoiser, shape: [1, 3, 256, 256], initImage: target, options: o, noise: SeededNoise(seed: s))
//   // r.image = target·(1−M) + x̂0·M
//
// `.throughPrediction` instead of `.throughDenoiser` skips the backward through the UNet (about a
// third of the cost per step) at the price of ignoring how ε changes with x_t.

/// A noise-predicting network: given x_t [N, C, ...], the timesteps it expects [N] (already mapped
/// through respacing and rescaled: `GaussianDiffusion.networkTimestep`) and named conditioning
/// tensors (e.g. "y" class labels, "id" identity embeddings), returns ε [N, C, ...], or ε and the
/// variance values [N, 2C, ...] for a learned-variance model. It must be differentiable in x when
/// guidance goes through it.
public typealias Denoiser = (_ x: Tensor, _ t: Tensor, _ conditioning: [String: Tensor]) throws -> Tensor

/// Classifier-style guidance from a user energy E (lower is better) on a guidance image.
/// The gradient g = −∇_{x_t} E shifts DDPM's mean by Σ·g (guided-diffusion's condition_mean) and
/// DDIM's ε by −√(1−ᾱ)·g (condition_score).
public struct Guidance {
    public enum Image {
        /// x̂0 itself.
        case predictedStart
        /// DiffFace's x̂0·√(1−ᾱ) + x_t·(1−√(1−ᾱ)).
        case diffFace
    }

    public enum Gradient {
        /// Back through the denoiser, exactly as DiffFace: the network runs on a leaf x_t that
        /// requires a gradient (a forward with a tape plus a backward, ≈ 3 forwards a step).
        case throughDenoiser
        /// Through x̂0 = (x_t − √(1−ᾱ)ε)/√ᾱ with ε held constant: ∂x̂0/∂x_t = 1/√ᾱ. Costs only the
        /// energy's own backward; ignores how ε moves with x_t, so it is an approximation.
        case throughPrediction
    }

    /// What the energy sees besides the image.
    public struct Context {
        /// Reverse steps taken before this one (0 for the first).
        public let step: Int
        /// The respaced timestep index.
        public let t: Int
        /// The timestep the network receives.
        public let networkT: Float
    }

    public var image: Image
    public var gradient: Gradient
    /// A scalar, differentiable in the image.
    public var energy: (_ image: Tensor, _ context: Context) throws -> Tensor

    public init(image: Image = .predictedStart, gradient: Gradient = .throughDenoiser,
                energy: @escaping (_ image: Tensor, _ context: Context) throws -> Tensor) {
        self.image = image
        self.gradient = gradient
        self.energy = energy
    }
}

/// Per-step blending of the sample with the noised input image outside a region.
public struct MaskBlend {
    public enum Schedule {
        /// M_j = M at every step.
        case hard
        /// DiffFace's ramp M_j = M·min(1, j/steps): at first everything is the noised input, then the
        /// region opens up. DiffFace uses steps = (steps run) − masking_threshold.
        case linearRamp(steps: Int)
        /// Any mask per step: (step j, respaced t, base mask) → M_j.
        case custom((_ step: Int, _ t: Int, _ mask: Tensor) -> Tensor)
    }

    public enum Timing {
        /// After the step at t: x ← x·M_j + q_sample(input, t)·(1−M_j) (DiffFace's postprocess_fn).
        case afterStep
        /// Before each reverse step at t but the first: x_t ← x_t·M_j + q_sample(input, t)·(1−M_j)
        /// (RePaint's known-region injection).
        case beforeStep
    }

    public enum Composite {
        /// Return the last sample as it is.
        case none
        /// input·(1−M) + sample·M: the kept region is exactly the input.
        case sample
        /// input·(1−M) + x̂0·M, as DiffFace assembles its result.
        case predictedStart
    }

    /// 1 where new content is made, 0 where the input is kept; broadcastable to x.
    public var mask: Tensor
    public var schedule: Schedule
    public var timing: Timing
    public var composite: Composite

    public init(mask: Tensor, schedule: Schedule = .hard, timing: Timing = .afterStep, composite: Composite = .sample) {
        self.mask = mask
        self.schedule = schedule
        self.timing = timing
        self.composite = composite
    }

    /// DiffFace's setting: a ramp over (stepsRun − maskingThreshold) steps, blending after each step,
    /// the result assembled from x̂0.
    public static func diffFace(mask: Tensor, stepsRun: Int, maskingThreshold: Int = 30) -> MaskBlend {
        MaskBlend(mask: mask, schedule: .linearRamp(steps: max(1, stepsRun - maskingThreshold)),
                  timing: .afterStep, composite: .predictedStart)
    }

    func mask(step j: Int, t: Int) -> Tensor {
        switch schedule {
        case .hard: return mask
        case .linearRamp(let steps): return mask.scaled(Float(min(1.0, Double(j) / Double(max(steps, 1)))))
        case .custom(let f): return f(j, t, mask)
        }
    }
}

/// Reference attention for a denoiser that supports it (the ADM: `ADMReference`): a clean
/// reference image, noised at every reverse step to that step's timestep by q_sample with the
/// process's own schedule and its own noise stream (seeded here, so the sampler's noise is drawn
/// exactly as without it), reaches the denoiser as `conditioning["reference"]`, with the weight
/// as the scalar `conditioning["reference_weight"]`. Weight 0 passes nothing and draws nothing.
public struct ReferenceImage {
    public static let conditioningKey = "reference"
    public static let weightKey = "reference_weight"

    /// x0 of the reference in the sampler's range, [1 or N, C, ...] with the sample's other dims.
    public var image: Tensor
    /// w ≥ 0: the weight of the reference's keys in every self-attention layer.
    public var weight: Double
    /// Seeds the reference's noise, one draw per reverse step.
    public var seed: UInt64

    public init(image: Tensor, weight: Double, seed: UInt64) {
        self.image = image
        self.weight = weight
        self.seed = seed
    }
}

public struct SamplerOptions {
    public enum Method {
        case ddpm
        /// DDIM; eta 0 is deterministic, eta 1 has DDPM-like noise.
        case ddim(eta: Double)
    }

    public var method: Method = .ddpm
    /// Clip x̂0 to [−1, 1] before forming the mean (guided-diffusion's clip_denoised).
    public var clipDenoised = true
    /// Start this many steps down from the top, from q_sample(initImage, t) (SDEdit, DiffFace's
    /// skip_timesteps). Without an init image that is q_sample(0, t), as guided-diffusion does.
    public var skipTimesteps = 0
    public var conditioning: [String: Tensor] = [:]
    public var guidance: Guidance?
    public var mask: MaskBlend?
    public var repaint: RePaintJumps?
    public var reference: ReferenceImage?
    /// Called after every transition (reverse or RePaint forward).
    public var progress: ((SamplerProgress) -> Void)?

    public init(method: Method = .ddpm, clipDenoised: Bool = true, skipTimesteps: Int = 0) {
        self.method = method
        self.clipDenoised = clipDenoised
        self.skipTimesteps = skipTimesteps
    }
}

public struct SamplerProgress {
    /// Transitions done, including this one, and their total.
    public let index: Int
    public let total: Int
    /// The respaced timestep the state is now at (−1 when finished).
    public let t: Int
    public let isReverse: Bool
    public let x: Tensor
    public let predXStart: Tensor?
}

public struct SampleResult {
    /// The last sample, after any composite.
    public let image: Tensor
    /// The last sample before the composite.
    public let sample: Tensor
    /// The last x̂0.
    public let predXStart: Tensor
}

extension GaussianDiffusion {
    /// Runs the reverse process.
    ///
    /// Noise is drawn in this order: the starting noise; then per transition, for a reverse step at
    /// t: (with a `.beforeStep` mask, except on the first reverse step) one tensor for the noised
    /// input, one for the step itself (drawn even where the step adds none, as guided-diffusion
    /// does), (with an `.afterStep` mask) one for the noised input; for a RePaint forward step, one.
    public func sample(_ denoiser: Denoiser, shape: [Int], initImage: Tensor? = nil,
                       options: SamplerOptions, noise: NoiseSource) throws -> SampleResult {
        let input = try prepare(shape: shape, initImage: initImage, options: options)
        let firstT = numTimesteps - options.skipTimesteps - 1
        var x = try noise.next(shape)
        if let input { x = qSample(input, t: firstT, noise: x) }
        return try run(denoiser, from: x, input: input, options: options, noise: noise)
    }

    /// Runs the reverse process from a given x_t at t = numTimesteps − 1 − skipTimesteps instead of
    /// from drawn noise: e.g. a noisy photograph already scaled to the x_t its noise level matches.
    /// No starting noise is drawn; the rest is as `sample(_:shape:initImage:options:noise:)`.
    public func sample(_ denoiser: Denoiser, startingFrom xt: Tensor, initImage: Tensor? = nil,
                       options: SamplerOptions, noise: NoiseSource) throws -> SampleResult {
        let input = try prepare(shape: xt.shape, initImage: initImage, options: options)
        return try run(denoiser, from: xt, input: input, options: options, noise: noise)
    }

    /// Checks the options against the shape; returns the input image the mask and SDEdit use.
    func prepare(shape: [Int], initImage: Tensor?, options: SamplerOptions) throws -> Tensor? {
        guard shape.count >= 2, shape.allSatisfy({ $0 > 0 }) else {
            throw DiffusionError("sample shape must be [N, C, ...] with positive sizes, got \(shape)")
        }
        guard options.skipTimesteps >= 0, numTimesteps - options.skipTimesteps >= 1 else {
            throw DiffusionError("skip_timesteps \(options.skipTimesteps) leaves no steps of \(numTimesteps)")
        }
        var input: Tensor?
        if let i = initImage {
            input = try broadcastBatch(i, to: shape, what: "init image")
        } else if options.skipTimesteps > 0 {
            input = Tensor(zeros: shape)
        }
        if options.mask != nil && input == nil {
            throw DiffusionError("masked blending needs an input image")
        }
        if let m = options.mask {
            _ = try checkBroadcast(m.mask, to: shape, what: "mask")
        }
        if let r = options.reference {
            guard r.weight.isFinite, r.weight >= 0 else {
                throw DiffusionError("the reference attention weight must be finite and 0 or more, got \(r.weight)")
            }
            let rs = r.image.shape
            guard rs.count == shape.count, rs[0] == 1 || rs[0] == shape[0], Array(rs.dropFirst()) == Array(shape.dropFirst()) else {
                throw DiffusionError("reference image has shape \(rs); expected \(shape) or [1, \(shape.dropFirst().map(String.init).joined(separator: ", "))]")
            }
        }
        return input
    }

    func run(_ denoiser: Denoiser, from start: Tensor, input: Tensor?, options: SamplerOptions,
             noise: NoiseSource) throws -> SampleResult {
        let shape = start.shape
        let runSteps = numTimesteps - options.skipTimesteps
        let firstT = runSteps - 1
        let times = try options.repaint?.times(from: runSteps) ?? (Array((0...firstT).reversed()) + [-1])
        var x = start
        var lastX0: Tensor?
        var reverseSteps = 0
        let total = times.count - 1
        let referenceNoise = options.reference.flatMap { $0.weight > 0 ? SeededNoise(seed: $0.seed) : nil }

        for k in 0..<total {
            let tLast = times[k], tCur = times[k + 1]
            if tCur < tLast {
                let t = tLast
                let j = firstT - t
                if let m = options.mask, m.timing == .beforeStep, reverseSteps > 0, let input {
                    x = blend(x, input: input, mask: m.mask(step: j, t: t), t: t, noise: try noise.next(shape))
                }
                let (next, x0) = try reverseStep(denoiser, x: x, t: t, step: j, options: options, noise: noise,
                                                 referenceNoise: referenceNoise)
                x = next
                lastX0 = x0
                if let m = options.mask, m.timing == .afterStep, let input {
                    x = blend(x, input: input, mask: m.mask(step: j, t: t), t: t, noise: try noise.next(shape))
                }
                reverseSteps += 1
            } else {
                // RePaint's forward re-noising from t to t+1: x ← √(1−β_{t+1})·x + √β_{t+1}·z.
                let b = betas[tLast + 1]
                x = x.scaled(Float((1 - b).squareRoot())) + (try noise.next(shape)).scaled(Float(b.squareRoot()))
            }
            options.progress?(SamplerProgress(index: k + 1, total: total, t: tCur, isReverse: tCur < tLast,
                                              x: x, predXStart: lastX0))
        }

        let predX0 = lastX0 ?? x
        var image = x
        if let m = options.mask, let input {
            switch m.composite {
            case .none: break
            case .sample: image = composite(input: input, result: x, mask: m.mask)
            case .predictedStart: image = composite(input: input, result: predX0, mask: m.mask)
            }
        }
        return SampleResult(image: image, sample: x, predXStart: predX0)
    }

    /// One reverse step at t: the denoiser, optional guidance, then DDPM or DDIM.
    func reverseStep(_ denoiser: Denoiser, x: Tensor, t: Int, step: Int, options: SamplerOptions,
                     noise: NoiseSource, referenceNoise: NoiseSource? = nil) throws -> (Tensor, Tensor) {
        let n = x.shape[0], c = x.shape[1]
        let tTensor = Tensor(shape: [n], repeating: networkTimestep(t))
        var conditioning = options.conditioning
        if let r = options.reference, r.weight > 0, let referenceNoise {
            conditioning[ReferenceImage.conditioningKey] = qSample(r.image, t: t, noise: try referenceNoise.next(r.image.shape))
            conditioning[ReferenceImage.weightKey] = Tensor.scalar(Float(r.weight))
        }
        var output: Tensor
        var gradient: Tensor?
        if let g = options.guidance {
            let context = Guidance.Context(step: step, t: t, networkT: networkTimestep(t))
            let leaf = x.detached().copy()
            leaf.requiresGrad = true
            var eps: Tensor
            switch g.gradient {
            case .throughDenoiser:
                output = try denoiser(leaf, tTensor, conditioning)
                eps = varianceType == .learnedRange ? try splitLearned(output, c).0 : output
            case .throughPrediction:
                output = try Autograd.noGrad { try denoiser(x, tTensor, conditioning) }
                eps = varianceType == .learnedRange ? try splitLearned(output.detached(), c).0 : output.detached()
            }
            let x0 = predictXStart(xt: leaf, t: t, eps: eps)
            let image = g.image == .diffFace ? diffFaceGuidanceImage(xStart: x0, xt: leaf, t: t) : x0
            let e = try g.energy(image, context)
            guard e.count == 1 else { throw DiffusionError("guidance energy must be a scalar, got shape \(e.shape)", category: .internal) }
            if Autograd.shouldRecord(e) {
                e.backward()
                gradient = leaf.grad.map { $0.scaled(-1) }
            }
            output = output.detached()
        } else {
            output = try Autograd.noGrad { try denoiser(x, tTensor, conditioning) }
        }
        let p = try predict(output, xt: x, t: t, clip: options.clipDenoised)
        let z = try noise.next(x.shape)

        switch options.method {
        case .ddpm:
            var mean = p.mean
            if let gradient { mean = mean + p.variance * gradient }
            if t == 0 { return (mean, p.predXStart) }
            return (mean + p.logVariance.mapValues { Foundation.exp(0.5 * $0) } * z, p.predXStart)
        case .ddim(let eta):
            var x0 = p.predXStart
            if let gradient {
                let eps = predictEps(xt: x, t: t, xStart: x0) - gradient.scaled(Float((1 - alphasCumprod[t]).squareRoot()))
                x0 = predictXStart(xt: x, t: t, eps: eps)
            }
            let eps = predictEps(xt: x, t: t, xStart: x0)
            let ab = alphasCumprod[t], abPrev = alphasCumprodPrev[t]
            let sigma = eta * ((1 - abPrev) / (1 - ab)).squareRoot() * (1 - ab / abPrev).squareRoot()
            let mean = x0.scaled(Float(abPrev.squareRoot())) + eps.scaled(Float(max(0, 1 - abPrev - sigma * sigma).squareRoot()))
            if t == 0 { return (mean, x0) }
            return (mean + z.scaled(Float(sigma)), x0)
        }
    }

    func splitLearned(_ output: Tensor, _ c: Int) throws -> (Tensor, Tensor) {
        guard output.rank >= 2, output.shape[1] == 2 * c else {
            throw DiffusionError("learned variance needs a denoiser output of \(2 * c) channels, got \(output.shape)", category: .model)
        }
        return splitChannels(output, c)
    }

    /// x·M + q_sample(input, t)·(1−M).
    func blend(_ x: Tensor, input: Tensor, mask m: Tensor, t: Int, noise z: Tensor) -> Tensor {
        x * m + qSample(input, t: t, noise: z) * m.scaled(-1, plus: 1)
    }

    func composite(input: Tensor, result: Tensor, mask m: Tensor) -> Tensor {
        input * m.scaled(-1, plus: 1) + result * m
    }

    func broadcastBatch(_ t: Tensor, to shape: [Int], what: String) throws -> Tensor {
        if t.shape == shape { return t }
        guard t.rank == shape.count, t.shape[0] == 1, Array(t.shape.dropFirst()) == Array(shape.dropFirst()) else {
            throw DiffusionError("\(what) has shape \(t.shape); expected \(shape) or [1, \(shape.dropFirst().map(String.init).joined(separator: ", "))]")
        }
        return t.expanded(to: shape).contiguous()
    }

    func checkBroadcast(_ t: Tensor, to shape: [Int], what: String) throws -> [Int] {
        guard t.rank <= shape.count else { throw DiffusionError("\(what) shape \(t.shape) does not broadcast to \(shape)") }
        let pad = shape.count - t.rank
        for d in 0..<t.rank where t.shape[d] != 1 && t.shape[d] != shape[d + pad] {
            throw DiffusionError("\(what) shape \(t.shape) does not broadcast to \(shape)")
        }
        return shape
    }
}
