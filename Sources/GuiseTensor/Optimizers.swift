import Foundation

/// Optimisers that update parameters in place from their `grad`, following PyTorch's
/// single-tensor update rules step for step (torch.optim.SGD, Adam, AdamW).
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
    public var lr: Float
    public let momentum: Float, dampening: Float, weightDecay: Float, nesterov: Bool
    public private(set) var momentumBuffers: [Tensor?]

    public init(_ parameters: [Tensor], lr: Float, momentum: Float = 0, dampening: Float = 0,
                weightDecay: Float = 0, nesterov: Bool = false) {
        parameters.forEach(checkParameter)
        precondition(!nesterov || (momentum > 0 && dampening == 0), "Nesterov momentum needs momentum > 0 and no dampening")
        self.parameters = parameters
        self.lr = lr; self.momentum = momentum; self.dampening = dampening
        self.weightDecay = weightDecay; self.nesterov = nesterov
        momentumBuffers = Array(repeating: nil, count: parameters.count)
    }

    public func step() {
        for (i, p) in parameters.enumerated() {
            guard let grad = p.grad else { continue }
            let g = grad.contiguous(), x = p.data, n = p.count
            let d = Tensor(uninitialized: p.shape)
            let dp = d.data, gp = g.data
            for j in 0..<n { dp[j] = weightDecay != 0 ? gp[j] + weightDecay * x[j] : gp[j] }
            if momentum != 0 {
                if let buf = momentumBuffers[i] {
                    let b = buf.data
                    for j in 0..<n { b[j] = b[j] * momentum + (1 - dampening) * dp[j] }
                } else {
                    momentumBuffers[i] = d.copy()
                }
                let b = momentumBuffers[i]!.data
                if nesterov {
                    for j in 0..<n { dp[j] += momentum * b[j] }
                } else {
                    dp.update(from: b, count: n)
                }
            }
            for j in 0..<n { x[j] += -lr * dp[j] }
        }
    }
}

/// Adam, or AdamW when `decoupledWeightDecay` (weight decay applied to the weights, not the gradient).
public final class Adam: Optimizer {
    public let parameters: [Tensor]
    public var lr: Float
    public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float, decoupled: Bool
    public private(set) var steps = 0
    /// First and second moment estimates (exp_avg, exp_avg_sq), one per parameter.
    public let firstMoments: [Tensor], secondMoments: [Tensor]

    public init(_ parameters: [Tensor], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8,
                weightDecay: Float = 0, decoupledWeightDecay: Bool = false) {
        parameters.forEach(checkParameter)
        self.parameters = parameters
        self.lr = lr; beta1 = betas.0; beta2 = betas.1; self.eps = eps
        self.weightDecay = weightDecay; decoupled = decoupledWeightDecay
        firstMoments = parameters.map { Tensor(zeros: $0.shape) }
        secondMoments = parameters.map { Tensor(zeros: $0.shape) }
    }

    /// torch.optim.AdamW's defaults (weight decay 0.01).
    public static func adamW(_ parameters: [Tensor], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                             eps: Float = 1e-8, weightDecay: Float = 1e-2) -> Adam {
        Adam(parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    public func step() {
        steps += 1
        // Bias corrections in Double, as PyTorch computes them with Python floats.
        let bc1 = 1 - Foundation.pow(Double(beta1), Double(steps))
        let bc2 = 1 - Foundation.pow(Double(beta2), Double(steps))
        let stepSize = Float(Double(lr) / bc1)
        let bc2Sqrt = Float(bc2.squareRoot())
        let decay = Float(1 - Double(lr) * Double(weightDecay))
        for (i, p) in parameters.enumerated() {
            guard let grad = p.grad else { continue }
            let g = grad.contiguous()
            let x = p.data, gp = g.data, m = firstMoments[i].data, v = secondMoments[i].data
            let n = p.count
            let w1 = 1 - beta1, w2 = 1 - beta2
            for j in 0..<n {
                var gj = gp[j]
                if weightDecay != 0 {
                    if decoupled { x[j] *= decay } else { gj += weightDecay * x[j] }
                }
                // lerp(m, g, w1) as torch computes it for weights below 0.5.
                m[j] = m[j] + w1 * (gj - m[j])
                v[j] = v[j] * beta2 + w2 * gj * gj
                let denom = v[j].squareRoot() / bc2Sqrt + eps
                x[j] += -stepSize * (m[j] / denom)
            }
        }
    }
}

/// Exponential moving average of weights: shadow ← decay·shadow + (1−decay)·param.
public final class EMA {
    public let decay: Float
    public let shadow: [Tensor]

    /// Starts from a copy of the current parameters.
    public init(_ parameters: [Tensor], decay: Float) {
        self.decay = decay
        shadow = parameters.map { $0.detached().copy() }
    }

    public func update(from parameters: [Tensor]) {
        precondition(parameters.count == shadow.count, "EMA of \(shadow.count) tensors updated from \(parameters.count)")
        for (s, p) in zip(shadow, parameters) {
            precondition(s.shape == p.shape, "EMA shape \(s.shape) vs parameter \(p.shape)")
            let src = p.detached().contiguous()
            let a = s.data, b = src.data, w = 1 - decay
            for j in 0..<s.count { a[j] = a[j] * decay + w * b[j] }
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
