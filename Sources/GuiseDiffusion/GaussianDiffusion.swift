import Foundation
import GuiseTensor

/// How the reverse step's variance is chosen (guided-diffusion's ModelVarType).
public enum VarianceType: String, Sendable {
    /// The network outputs 2C channels; the second C, v ∈ [−1, 1], interpolate log-variance between
    /// the posterior variance (v = −1) and beta (v = 1). Checkpoints trained with learn_sigma.
    case learnedRange = "learned_range"
    /// The clipped posterior variance β̃_t.
    case fixedSmall = "fixed_small"
    /// β_t, except the first step, which uses β̃_1 for a better decoder likelihood.
    case fixedLarge = "fixed_large"
}

/// The diffusion process of guided-diffusion (a SpacedDiffusion when respaced): its tables and the
/// per-step math. A timestep `t` here is always an index into the (respaced) process, 0…numTimesteps−1;
/// `networkTimestep(t)` is what the denoiser receives.
public struct GaussianDiffusion {
    public let originalSteps: Int
    /// Respaced index → timestep of the original process.
    public let timestepMap: [Int]
    public let varianceType: VarianceType
    /// Feed the network t·1000/originalSteps (a float) instead of the original index.
    public let rescaleTimesteps: Bool

    public let betas: [Double]
    public let alphasCumprod: [Double]
    public let alphasCumprodPrev: [Double]
    public let sqrtAlphasCumprod: [Double]
    public let sqrtOneMinusAlphasCumprod: [Double]
    public let sqrtRecipAlphasCumprod: [Double]
    public let sqrtRecipm1AlphasCumprod: [Double]
    public let posteriorVariance: [Double]
    /// log β̃, with the first entry (β̃_0 = 0) replaced by β̃_1.
    public let posteriorLogVarianceClipped: [Double]
    public let posteriorMeanCoef1: [Double]
    public let posteriorMeanCoef2: [Double]

    public var numTimesteps: Int { betas.count }

    /// `respacing` takes guided-diffusion's section strings: "" (all), "100", "10,10,10", "ddim50".
    public init(schedule: BetaSchedule = .linear, steps: Int = 1000, respacing: String = "",
                varianceType: VarianceType = .fixedLarge, rescaleTimesteps: Bool = false) throws {
        let keep = try Respacing.timesteps(steps, respacing)
        try self.init(baseBetas: schedule.betas(steps: steps), keep: keep,
                      varianceType: varianceType, rescaleTimesteps: rescaleTimesteps)
    }

    /// A process over `baseBetas` that keeps only the original timesteps in `keep`: each kept step's
    /// beta is 1 − ᾱ_i/ᾱ_prev so the kept steps have the original ᾱ values.
    public init(baseBetas: [Double], keep: [Int], varianceType: VarianceType, rescaleTimesteps: Bool) throws {
        guard !baseBetas.isEmpty, baseBetas.allSatisfy({ $0 > 0 && $0 <= 1 }) else {
            throw DiffusionError("betas must be in (0, 1]")
        }
        let keepSet = Set(keep)
        var last = 1.0, acc = 1.0
        var b: [Double] = [], map: [Int] = []
        for (i, beta) in baseBetas.enumerated() {
            acc *= 1 - beta
            if keepSet.contains(i) {
                b.append(1 - acc / last)
                last = acc
                map.append(i)
            }
        }
        guard !b.isEmpty else { throw DiffusionError("respacing keeps no timesteps") }
        originalSteps = baseBetas.count
        timestepMap = map
        self.varianceType = varianceType
        self.rescaleTimesteps = rescaleTimesteps
        betas = b

        var ac: [Double] = []
        var p = 1.0
        for beta in b { p *= 1 - beta; ac.append(p) }
        alphasCumprod = ac
        alphasCumprodPrev = [1.0] + ac.dropLast()
        sqrtAlphasCumprod = ac.map { $0.squareRoot() }
        sqrtOneMinusAlphasCumprod = ac.map { (1 - $0).squareRoot() }
        sqrtRecipAlphasCumprod = ac.map { (1 / $0).squareRoot() }
        sqrtRecipm1AlphasCumprod = ac.map { (1 / $0 - 1).squareRoot() }
        let prev = alphasCumprodPrev
        var pv = [Double](), coef1 = [Double](), coef2 = [Double]()
        for i in 0..<b.count {
            let beta: Double = b[i], abar: Double = ac[i], abarPrev: Double = prev[i]
            pv.append(beta * (1 - abarPrev) / (1 - abar))
            coef1.append(beta * abarPrev.squareRoot() / (1 - abar))
            coef2.append((1 - abarPrev) * (1 - beta).squareRoot() / (1 - abar))
        }
        posteriorVariance = pv
        let first: Double = pv.count > 1 ? pv[1] : pv[0]
        posteriorLogVarianceClipped = [Foundation.log(first)] + pv.dropFirst().map { Foundation.log($0) }
        posteriorMeanCoef1 = coef1
        posteriorMeanCoef2 = coef2
    }

    /// The timestep value the network is given at respaced index t.
    public func networkTimestep(_ t: Int) -> Float {
        let v = Double(timestepMap[t])
        return Float(rescaleTimesteps ? v * (1000.0 / Double(originalSteps)) : v)
    }

    func check(_ t: Int) throws {
        guard t >= 0 && t < numTimesteps else {
            throw DiffusionError("timestep \(t) outside 0..<\(numTimesteps)")
        }
    }

    // MARK: - Closed forms (differentiable where the inputs are)

    /// x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·noise.
    public func qSample(_ x0: Tensor, t: Int, noise: Tensor) -> Tensor {
        x0.scaled(Float(sqrtAlphasCumprod[t])) + noise.scaled(Float(sqrtOneMinusAlphasCumprod[t]))
    }

    /// x̂0 = x_t/√ᾱ_t − √(1/ᾱ_t − 1)·ε.
    public func predictXStart(xt: Tensor, t: Int, eps: Tensor) -> Tensor {
        xt.scaled(Float(sqrtRecipAlphasCumprod[t])) - eps.scaled(Float(sqrtRecipm1AlphasCumprod[t]))
    }

    /// ε recovered from x̂0: (x_t/√ᾱ_t − x̂0)/√(1/ᾱ_t − 1).
    public func predictEps(xt: Tensor, t: Int, xStart: Tensor) -> Tensor {
        (xt.scaled(Float(sqrtRecipAlphasCumprod[t])) - xStart) / Tensor.scalar(Float(sqrtRecipm1AlphasCumprod[t]))
    }

    /// Mean of q(x_{t−1} | x_t, x0).
    public func posteriorMean(xStart: Tensor, xt: Tensor, t: Int) -> Tensor {
        xStart.scaled(Float(posteriorMeanCoef1[t])) + xt.scaled(Float(posteriorMeanCoef2[t]))
    }

    /// The guidance image DiffFace evaluates its losses on: x̂0·√(1−ᾱ) + x_t·(1−√(1−ᾱ)).
    public func diffFaceGuidanceImage(xStart: Tensor, xt: Tensor, t: Int) -> Tensor {
        let fac = Float(sqrtOneMinusAlphasCumprod[t])
        return xStart.scaled(fac) + xt.scaled(1 - fac)
    }

    // MARK: - One prediction

    /// What a denoiser output means at step t: ε, x̂0 (clipped to [−1, 1] when asked), the posterior
    /// mean, and the variance (a scalar tensor for fixed types, per element when learned).
    public struct Prediction {
        public let eps: Tensor
        public let predXStart: Tensor
        public let mean: Tensor
        public let variance: Tensor
        public let logVariance: Tensor
    }

    /// Interprets a denoiser output for x_t. With learned variance the output has 2C channels.
    public func predict(_ output: Tensor, xt: Tensor, t: Int, clip: Bool) throws -> Prediction {
        try check(t)
        let c = xt.shape.count > 1 ? xt.shape[1] : 1
        var eps = output.detached()
        var variance: Tensor, logVariance: Tensor
        switch varianceType {
        case .learnedRange:
            guard output.rank == xt.rank, output.shape[0] == xt.shape[0], output.shape[1] == 2 * c,
                  Array(output.shape.dropFirst(2)) == Array(xt.shape.dropFirst(2)) else {
                throw DiffusionError("learned variance needs a denoiser output of \(2 * c) channels shaped like x, got \(output.shape) for x \(xt.shape)", category: .model)
            }
            let (e, v) = splitChannels(output.detached(), c)
            eps = e
            let minLog = Float(posteriorLogVarianceClipped[t]), maxLog = Float(log(betas[t]))
            logVariance = v.mapValues { val in
                let frac = (val + 1) / 2
                return frac * maxLog + (1 - frac) * minLog
            }
            variance = logVariance.mapValues { Foundation.exp($0) }
        case .fixedSmall, .fixedLarge:
            guard output.shape == xt.shape else {
                throw DiffusionError("denoiser output \(output.shape) does not match x \(xt.shape) (a learned-variance network needs --learn-sigma / variance learned_range)", category: .model)
            }
            let v: Double
            if varianceType == .fixedSmall {
                v = posteriorVariance[t]
                logVariance = Tensor.scalar(Float(posteriorLogVarianceClipped[t]))
            } else {
                v = t == 0 ? (posteriorVariance.count > 1 ? posteriorVariance[1] : betas[0]) : betas[t]
                logVariance = Tensor.scalar(Float(log(v)))
            }
            variance = Tensor.scalar(Float(v))
        }
        var x0 = predictXStart(xt: xt.detached(), t: t, eps: eps)
        if clip { x0 = x0.mapValues { min(max($0, -1), 1) } }
        return Prediction(eps: eps, predXStart: x0, mean: posteriorMean(xStart: x0, xt: xt.detached(), t: t),
                          variance: variance, logVariance: logVariance)
    }
}

// MARK: - Small tensor helpers the sampler needs

extension Tensor {
    /// Elementwise map into a new dense tensor. Not differentiable: for values only.
    func mapValues(_ f: (Float) -> Float) -> Tensor {
        let src = contiguous()
        let out = Tensor(uninitialized: shape)
        let p = src.data, o = out.data
        for i in 0..<count { o[i] = f(p[i]) }
        return out
    }
}

/// Channels [0, c) and [c, 2c) of an [N, 2C, ...] tensor, each dense. Differentiable, since the
/// guidance gradient can flow through the ε half of a network output.
func splitChannels(_ t: Tensor, _ c: Int) -> (Tensor, Tensor) {
    let n = t.shape[0]
    let inner = t.count / (n * 2 * c) * c
    let rest = Array(t.shape.dropFirst(2))
    // [N, 2, C·rest] → [2, N, C·rest]: each half is then an outer-dimension slice.
    let halves = t.reshaped([n, 2, inner]).permuted([1, 0, 2])
    let a = halves.narrow(0..<1).reshaped([n, c] + rest)
    let b = halves.narrow(1..<2).reshaped([n, c] + rest)
    return (a, b)
}
