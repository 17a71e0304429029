/// Losses built from differentiable ops, so their gradients come from the ops' own backward.
extension NN {
    /// Cosine similarity along `dim`: Σ a·b / (max(‖a‖, eps)·max(‖b‖, eps)), as PyTorch's
    /// F.cosine_similarity (each norm clamped separately). The dim is removed.
    public static func cosineSimilarity(_ a: Tensor, _ b: Tensor, dim: Int = 1, eps: Float = 1e-8) -> Tensor {
        let shape = a.shape == b.shape ? a.shape : Broadcast.shape(a.shape, b.shape)
        let ae = a.shape == shape ? a : a.expanded(to: shape)
        let be = b.shape == shape ? b : b.expanded(to: shape)
        let d = ae.axis(dim)
        let na = ae.norm(dims: [d], keepDims: true).clampedNorm(eps)
        let nb = be.norm(dims: [d], keepDims: true).clampedNorm(eps)
        return ((ae / na) * (be / nb)).sum(dims: [d])
    }

    /// Mean absolute error.
    public static func l1Loss(_ x: Tensor, _ target: Tensor) -> Tensor {
        (x - target).absolute().mean()
    }

    /// Mean squared error.
    public static func mseLoss(_ x: Tensor, _ target: Tensor) -> Tensor {
        (x - target).squared().mean()
    }

    /// x / max(‖x‖, eps) along `dim`, as F.normalize (p = 2).
    public static func normalize(_ x: Tensor, dim: Int = 1, eps: Float = 1e-12) -> Tensor {
        x / x.norm(dims: [dim], keepDims: true).clamped(min: eps)
    }
}

extension Tensor {
    /// max(n, eps) where the gradient still flows as if unclamped: PyTorch clamps the norms
    /// in place under no_grad, so its graph sees the plain norm.
    func clampedNorm(_ eps: Float) -> Tensor {
        let src = contiguous()
        let out = Autograd.noGrad { src.clamped(min: eps) }
        if Autograd.shouldRecord(src) {
            out.record("clamp_min_nograd", [src]) { g in [g] }
        }
        return out
    }
}
