/// Activations: SIMD kernels split across cores, with fused backward kernels.
extension Tensor {
    public func relu() -> Tensor {
        let zero = F8(repeating: 0)
        let (src, out) = mapped { vmax($0, zero) }
        if Autograd.shouldRecord(src) {
            let x = src.detached()
            out.record("relu", [src]) { g in [Tensor.gradMap(x, x, g) { x, _, g in g.replacing(with: 0, where: x .<= 0) }] }
        }
        return out
    }

    public func leakyReLU(_ slope: Float = 0.01) -> Tensor {
        let (src, out) = mapped { x in x.replacing(with: x * slope, where: x .<= 0) }
        if Autograd.shouldRecord(src) {
            let x = src.detached()
            out.record("leaky_relu", [src]) { g in
                [Tensor.gradMap(x, x, g) { x, _, g in g.replacing(with: g * slope, where: x .<= 0) }]
            }
        }
        return out
    }

    /// min(max(x, 0), 6); the gradient passes strictly inside (0, 6), as PyTorch's hardtanh.
    public func relu6() -> Tensor {
        let zero = F8(repeating: 0), six = F8(repeating: 6)
        let (src, out) = mapped { vmin(vmax($0, zero), six) }
        if Autograd.shouldRecord(src) {
            let x = src.detached()
            out.record("relu6", [src]) { g in
                [Tensor.gradMap(x, x, g) { x, _, g in g.replacing(with: 0, where: (x .<= 0) .| (x .>= 6)) }]
            }
        }
        return out
    }

    public func sigmoid() -> Tensor {
        let (src, out) = mapped { VMath.sigmoid($0) }
        if Autograd.shouldRecord(src) {
            let y = out.detached()
            out.record("sigmoid", [src]) { g in [Tensor.gradMap(y, y, g) { y, _, g in g * y * (1 - y) }] }
        }
        return out
    }

    public func tanh() -> Tensor {
        let (src, out) = mapped { VMath.tanh($0) }
        if Autograd.shouldRecord(src) {
            let y = out.detached()
            out.record("tanh", [src]) { g in [Tensor.gradMap(y, y, g) { y, _, g in g * (1 - y * y) }] }
        }
        return out
    }

    /// x·σ(x), also called swish.
    public func silu() -> Tensor {
        let src = contiguous()
        let out = Tensor(uninitialized: shape)
        Loop.apply(SiLUKernel(), count, src.data, out.data)
        if Autograd.shouldRecord(src) {
            let x = src.detached()
            out.record("silu", [src]) { g in
                let gc = g.contiguous()
                let gx = Tensor(uninitialized: x.shape)
                Loop.apply2(SiLUGradKernel(), x.count, x.data, gc.data, gx.data)
                return [gx]
            }
        }
        return out
    }

    /// GELU, exact (erf) by default or PyTorch's approximate="tanh" form.
    public func gelu(tanhApproximation: Bool = false) -> Tensor {
        let k: Float = 0.7978845608028654  // √(2/π)
        let (src, out): (Tensor, Tensor)
        if tanhApproximation {
            (src, out) = mapped { x in
                let inner: F8 = (x * x * 0.044715 + 1) * x * k
                return x * 0.5 * (VMath.tanh(inner) + 1)
            }
        } else {
            (src, out) = mapped { x in
                let e: F8 = VMath.erf(x * 0.7071067811865476)
                return x * 0.5 * (e + 1)
            }
        }
        if Autograd.shouldRecord(src) {
            let x = src.detached()
            out.record("gelu", [src]) { g in
                if tanhApproximation {
                    return [Tensor.gradMap(x, x, g) { x, _, g in
                        let x2: F8 = x * x
                        let t: F8 = VMath.tanh((x2 * 0.044715 + 1) * x * k)
                        let dInner: F8 = (x2 * (3 * 0.044715) + 1) * k
                        let sech2: F8 = 1 - t * t
                        let d: F8 = (t + 1) * 0.5 + x * 0.5 * sech2 * dInner
                        return g * d
                    }]
                }
                return [Tensor.gradMap(x, x, g) { x, _, g in
                    let cdf: F8 = (VMath.erf(x * 0.7071067811865476) + 1) * 0.5
                    let pdf: F8 = VMath.exp(x * x * -0.5) * 0.3989422804014327
                    return g * (cdf + x * pdf)
                }]
            }
        }
        return out
    }

    /// x·relu6(x+3)/6.
    public func hardSwish() -> Tensor {
        let zero = F8(repeating: 0), six = F8(repeating: 6)
        let (src, out) = mapped { x in
            let r6: F8 = vmin(vmax(x + 3, zero), six)
            return x * r6 * (1.0 / 6)
        }
        if Autograd.shouldRecord(src) {
            let x = src.detached()
            out.record("hardswish", [src]) { g in
                [Tensor.gradMap(x, x, g) { x, _, g in
                    let d: F8 = g * (x * (1.0 / 3) + 0.5)
                    return d.replacing(with: 0, where: x .< -3).replacing(with: g, where: x .> 3)
                }]
            }
        }
        return out
    }

    public func hardSigmoid() -> Tensor {
        let zero = F8(repeating: 0), one = F8(repeating: 1)
        let (src, out) = mapped { x in vmin(vmax(x * (1.0 / 6) + 0.5, zero), one) }
        if Autograd.shouldRecord(src) {
            let x = src.detached()
            out.record("hardsigmoid", [src]) { g in
                [Tensor.gradMap(x, x, g) { x, _, g in (g * (1.0 / 6)).replacing(with: 0, where: (x .<= -3) .| (x .>= 3)) }]
            }
        }
        return out
    }
}

extension NN {
    /// PReLU with one slope per channel (dim 1), or a single shared slope.
    public static func prelu(_ x: Tensor, weight: Tensor) -> Tensor {
        precondition(weight.count == 1 || (x.rank >= 2 && weight.count == x.shape[1]),
                     "prelu: \(weight.count) slopes for input \(x.shape)")
        let src = x.contiguous(), w = weight.contiguous()
        let out = Tensor(uninitialized: x.shape)
        let channels = weight.count
        let inner = channels == 1 ? src.count : Tensor.product(Array(x.shape.dropFirst(2)))
        let planes = src.count / inner
        let p = src.data, o = out.data, wp = w.data
        Parallel.forEach(planes, minChunk: max(1, Loop.grain / max(inner, 1))) { r in
            for plane in r {
                let a = wp[channels == 1 ? 0 : plane % channels]
                let base = plane * inner
                var i = 0
                while i + 8 <= inner {
                    let v = load8(p + base + i)
                    store8(v.replacing(with: v * a, where: v .<= 0), o + base + i); i += 8
                }
                while i < inner { let v = p[base + i]; o[base + i] = v > 0 ? v : v * a; i += 1 }
            }
        }
        if Autograd.shouldRecord(src, w) {
            let xs = src.detached(), ws = w.detached()
            out.record("prelu", [src, w]) { g in
                let gc = g.contiguous()
                let gx = Tensor(uninitialized: xs.shape)
                var gw = [Double](repeating: 0, count: planes)
                let gp = gc.data, xp = xs.data, gxp = gx.data, wq = ws.data
                gw.withUnsafeMutableBufferPointer { gwp in
                    Parallel.forEach(planes, minChunk: max(1, Loop.grain / max(inner, 1))) { r in
                        for plane in r {
                            let a = wq[channels == 1 ? 0 : plane % channels]
                            let base = plane * inner
                            var acc = F8(repeating: 0)
                            var i = 0
                            while i + 8 <= inner {
                                let v = load8(xp + base + i), gv = load8(gp + base + i)
                                let neg = v .<= 0
                                store8(gv.replacing(with: gv * a, where: neg), gxp + base + i)
                                acc += F8(repeating: 0).replacing(with: gv * v, where: neg)
                                i += 8
                            }
                            var s = Double(acc.sum())
                            while i < inner {
                                let v = xp[base + i], gv = gp[base + i]
                                gxp[base + i] = v > 0 ? gv : gv * a
                                if v <= 0 { s += Double(gv * v) }
                                i += 1
                            }
                            gwp[plane] = s
                        }
                    }
                }
                var sums = [Double](repeating: 0, count: channels)
                for plane in 0..<planes { sums[channels == 1 ? 0 : plane % channels] += gw[plane] }
                return [gx, Tensor(shape: ws.shape, values: sums.map { Float($0) })]
            }
        }
        return out
    }
}
