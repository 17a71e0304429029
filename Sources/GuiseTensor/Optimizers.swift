import Foundation

/// Optimisers that update parameters in place from their `grad`, following PyTorch's
/// single-tensor update rules step for step (torch.optim.SGD, Adam, AdamW).
///
/// Hyperparameters are Double, as Python floats are: PyTorch derives coefficients such as
/// 1 − β₂ in double and rounds them to float only when they reach the kernel, and 1 − Float(0.999)
/// differs from Float(1 − 0.999) by 1e-5 relative.
public protocol Optimizer: AnyObject {
    var parameters: [Tensor] { get }
    func step()
}

extension Optimizer {
    /// Drops every parameter's gradient, as `zero_grad(set_to_none=True)`.
    public func zeroGrad() { for p in parameters { p.grad = nil } }
}

func checkParameter(_ p: Tensor) {
    precondition(p.isContiguous, "optimiser parameters must be dense leaf tensors, got a view of shape \(p.shape)")
}

/// SGD with momentum, dampening, Nesterov and L2 weight decay.
public final class SGD: Optimizer {
    public let parameters: [Tensor]
    public var lr: Double
    public let momentum: Double, dampening: Double, weightDecay: Double, nesterov: Bool
    public private(set) var momentumBuffers: [Tensor?]

    public init(_ parameters: [Tensor], lr: Double, momentum: Double = 0, dampening: Double = 0,
                weightDecay: Double = 0, nesterov: Bool = false) {
        parameters.forEach(checkParameter)
        precondition(!nesterov || (momentum > 0 && dampening == 0), "Nesterov momentum needs momentum > 0 and no dampening")
        self.parameters = parameters
        self.lr = lr; self.momentum = momentum; self.dampening = dampening
        self.weightDecay = weightDecay; self.nesterov = nesterov
        momentumBuffers = Array(repeating: nil, count: parameters.count)
    }

    public func step() {
        let wd = Float(weightDecay), mom = Float(momentum), keep = Float(1 - dampening), rate = Float(-lr)
        for (i, p) in parameters.enumerated() {
            guard let grad = p.grad else { continue }
            let g = grad.contiguous(), x = p.data, n = p.count
            let d = Tensor(uninitialized: p.shape)
            let dp = d.data, gp = g.data
            for j in 0..<n { dp[j] = wd != 0 ? gp[j] + wd * x[j] : gp[j] }
            if momentum != 0 {
                if let buf = momentumBuffers[i] {
                    let b = buf.data
                    for j in 0..<n { b[j] = b[j] * mom + keep * dp[j] }
                } else {
                    momentumBuffers[i] = d.copy()
                }
                let b = momentumBuffers[i]!.data
                if nesterov {
                    for j in 0..<n { dp[j] += mom * b[j] }
                } else {
                    dp.update(from: b, count: n)
                }
            }
            for j in 0..<n { x[j] += rate * dp[j] }
        }
    }
}

/// Adam, or AdamW when `decoupledWeightDecay` (weight decay applied to the weights, not the gradient).
public final class Adam: Optimizer {
    public let parameters: [Tensor]
    public var lr: Double
    public let beta1: Double, beta2: Double, eps: Double, weightDecay: Double, decoupled: Bool
    /// Steps taken by each parameter; like PyTorch's per-parameter `state['step']`, a
    /// parameter without a gradient does not advance.
    public var steps: [Int]
    /// First and second moment estimates (exp_avg, exp_avg_sq), one per parameter.
    public let firstMoments: [Tensor], secondMoments: [Tensor]

    public init(_ parameters: [Tensor], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                weightDecay: Double = 0, decoupledWeightDecay: Bool = false) {
        parameters.forEach(checkParameter)
        self.parameters = parameters
        self.lr = lr; beta1 = betas.0; beta2 = betas.1; self.eps = eps
        self.weightDecay = weightDecay; decoupled = decoupledWeightDecay
        firstMoments = parameters.map { Tensor(zeros: $0.shape) }
        secondMoments = parameters.map { Tensor(zeros: $0.shape) }
        steps = Array(repeating: 0, count: parameters.count)
    }

    /// torch.optim.AdamW's defaults (weight decay 0.01).
    public static func adamW(_ parameters: [Tensor], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                             eps: Double = 1e-8, weightDecay: Double = 1e-2) -> Adam {
        Adam(parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    public func step() {
        let wd = Float(weightDecay), b2 = Float(beta2), w1 = Float(1 - beta1), w2 = Float(1 - beta2), e = Float(eps)
        let decay = Float(1 - lr * weightDecay)
        for (i, p) in parameters.enumerated() {
            guard let grad = p.grad else { continue }
            steps[i] += 1
            // Bias corrections in Double, as PyTorch computes them with Python floats.
            let bc1 = 1 - Foundation.pow(beta1, Double(steps[i]))
            let bc2 = 1 - Foundation.pow(beta2, Double(steps[i]))
            let stepSize = Float(lr / bc1)
            let bc2Sqrt = Float(bc2.squareRoot())
            let g = grad.contiguous()
            let x = p.data, gp = g.data, m = firstMoments[i].data, v = secondMoments[i].data
            for j in 0..<p.count {
                var gj = gp[j]
                if wd != 0 {
                    if decoupled { x[j] *= decay } else { gj += wd * x[j] }
                }
                // m.lerp_(g, 1 − β₁), with torch's two formulas either side of weight 0.5.
                m[j] = w1 < 0.5 ? m[j] + w1 * (gj - m[j]) : gj - (gj - m[j]) * (1 - w1)
                v[j] = v[j] * b2 + w2 * gj * gj
                let denom = v[j].squareRoot() / bc2Sqrt + e
                x[j] += -stepSize * (m[j] / denom)
            }
        }
    }
}

/// Exponential moving average of weights: shadow ← decay·shadow + (1−decay)·param.
public final class EMA {
    public let decay: Double
    public let shadow: [Tensor]

    /// Starts from a copy of the current parameters.
    public init(_ parameters: [Tensor], decay: Double) {
        self.decay = decay
        shadow = parameters.map { $0.detached().copy() }
    }

    public func update(from parameters: [Tensor]) {
        precondition(parameters.count == shadow.count, "EMA of \(shadow.count) tensors updated from \(parameters.count)")
        for (s, p) in zip(shadow, parameters) {
            precondition(s.shape == p.shape, "EMA shape \(s.shape) vs parameter \(p.shape)")
            let src = p.detached().contiguous()
            let a = s.data, b = src.data, keep = Float(decay), w = Float(1 - decay)
            for j in 0..<s.count { a[j] = a[j] * keep + w * b[j] }
        }
    }

    /// Writes the averaged weights into `parameters` (e.g. a model used for evaluation).
    public func copy(into parameters: [Tensor]) {
        precondition(parameters.count == shadow.count, "EMA of \(shadow.count) tensors copied into \(parameters.count)")
        for (s, p) in zip(shadow, parameters) {
            precondition(s.shape == p.shape && p.isContiguous, "EMA shape \(s.shape) into parameter \(p.shape)")
            p.data.update(from: s.data, count: s.count)
        }
    }
}
