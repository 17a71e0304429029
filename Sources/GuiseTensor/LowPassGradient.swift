import Foundation

extension NN {
    /// x unchanged going forward; going backward the gradient that reaches it is blurred, per
    /// plane of [N, C, H, W], by a Gaussian of `sigma` pixels (truncated at 3σ and renormalised
    /// where it overhangs the border, so a constant gradient stays constant).
    ///
    /// Not the gradient of anything: a filter on it, for guidance by experts that measure
    /// geometry (landmarks, gaze). Their input gradients carry pixel-scale patterns that move
    /// no landmark of a real face but that a diffusion prior grows into texture, a crackle of
    /// fine lines across smooth skin; the shape they ask for lives in the low frequencies.
    public static func lowPassGradient(_ x: Tensor, sigma: Double) -> Tensor {
        precondition(x.rank == 4, "lowPassGradient: input \(x.shape) must be 4-D")
        precondition(sigma.isFinite && sigma >= 0, "lowPassGradient: sigma \(sigma) must be finite and ≥ 0")
        let out = x.contiguous().copy()
        if Autograd.shouldRecord(x) {
            let (h, w) = (x.shape[2], x.shape[3])
            out.record("low_pass_gradient", [x]) { g in [sigma > 0 ? gaussianBlurPlanes(g, height: h, width: w, sigma: sigma) : g] }
        }
        return out
    }

    /// Each H×W plane of g blurred by a separable Gaussian, renormalised at the borders.
    static func gaussianBlurPlanes(_ g: Tensor, height h: Int, width w: Int, sigma: Double) -> Tensor {
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        let taps = (-radius...radius).map { Float(exp(-Double($0 * $0) / (2 * sigma * sigma))) }
        let src = g.contiguous(), planes = src.count / (h * w)
        let out = Tensor(uninitialized: src.shape)
        let sp = src.data, op = out.data
        Parallel.forEach(planes, minChunk: max(1, 16384 / max(h * w, 1))) { r in
            var rows = [Float](repeating: 0, count: h * w)
            for plane in r {
                let s = sp + plane * h * w, o = op + plane * h * w
                // Along rows, then along columns.
                for y in 0..<h {
                    for x in 0..<w {
                        var acc: Float = 0, norm: Float = 0
                        for k in max(-radius, -x)...min(radius, w - 1 - x) {
                            let t = taps[k + radius]
                            acc += t * s[y * w + x + k]
                            norm += t
                        }
                        rows[y * w + x] = acc / norm
                    }
                }
                for y in 0..<h {
                    for x in 0..<w {
                        var acc: Float = 0, norm: Float = 0
                        for k in max(-radius, -y)...min(radius, h - 1 - y) {
                            let t = taps[k + radius]
                            acc += t * rows[(y + k) * w + x]
                            norm += t
                        }
                        o[y * w + x] = acc / norm
                    }
                }
            }
        }
        return out
    }
}
