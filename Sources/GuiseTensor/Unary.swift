import Foundation

/// Elementwise math beyond + − × ÷: what losses, norms and samplers need.
extension Tensor {
    /// A dense result of `f` applied to every element, with no tape cost.
    @inline(__always)
    func mapped(_ f: (F8) -> F8) -> (src: Tensor, out: Tensor) {
        let src = contiguous()
        let out = Tensor(uninitialized: shape)
        Loop.map(count, src.data, out.data, f)
        return (src, out)
    }

    /// g ⊙ f'(·) for a backward, where `f` sees (a, b, g) elementwise; all three dense.
    @inline(__always)
    static func gradMap(_ a: Tensor, _ b: Tensor, _ g: Tensor, _ f: (F8, F8, F8) -> F8) -> Tensor {
        let gc = g.contiguous()
        let out = Tensor(uninitialized: gc.shape)
        Loop.map3(gc.count, a.data, b.data, gc.data, out.data, f)
        return out
    }

    /// Scalar libm fallback for the rarer functions (log, pow).
    @inline(__always)
    func scalarMapped(_ f: (Float) -> Float) -> (src: Tensor, out: Tensor) {
        let src = contiguous()
        let out = Tensor(uninitialized: shape)
        let p = src.data, o = out.data
        Parallel.forEach(count, minChunk: 8192) { r in for i in r { o[i] = f(p[i]) } }
        return (src, out)
    }

    public func exp() -> Tensor {
        let (src, out) = mapped { VMath.exp($0) }
        if Autograd.shouldRecord(src) {
            let y = out.detached()
            out.record("exp", [src]) { g in [Tensor.gradMap(y, y, g) { y, _, g in g * y }] }
        }
        return out
    }

    public func log() -> Tensor {
        let (src, out) = scalarMapped { Foundation.log($0) }
        if Autograd.shouldRecord(src) {
            let x = src.detached()
            out.record("log", [src]) { g in [Tensor.gradMap(x, x, g) { x, _, g in g / x }] }
        }
        return out
    }

    public func sqrt() -> Tensor {
        let (src, out) = mapped { $0.squareRoot() }
        if Autograd.shouldRecord(src) {
            let y = out.detached()
            out.record("sqrt", [src]) { g in [Tensor.gradMap(y, y, g) { y, _, g in g * 0.5 / y }] }
        }
        return out
    }

    /// 1/√x.
    public func rsqrt() -> Tensor {
        let (src, out) = mapped { 1 / $0.squareRoot() }
        if Autograd.shouldRecord(src) {
            let y = out.detached()
            out.record("rsqrt", [src]) { g in [Tensor.gradMap(y, y, g) { y, _, g in g * -0.5 * y * y * y }] }
        }
        return out
    }

    /// x^p for a scalar exponent. (Not `pow`/`abs`/`max`: a Tensor member of that name would hide
    /// the global functions inside every Tensor extension.)
    public func power(_ p: Float) -> Tensor {
        let (src, out): (Tensor, Tensor)
        if p == 2 { (src, out) = mapped { $0 * $0 } } else { (src, out) = scalarMapped { Foundation.pow($0, p) } }
        if Autograd.shouldRecord(src) {
            let x = src.detached()
            out.record("pow", [src]) { g in
                if p == 2 { return [Tensor.gradMap(x, x, g) { x, _, g in g * 2 * x }] }
                let d = x.scalarMapped { p * Foundation.pow($0, p - 1) }.out
                return [Tensor.gradMap(d, d, g) { d, _, g in g * d }]
            }
        }
        return out
    }

    public func squared() -> Tensor { power(2) }

    /// |x|; the gradient at 0 is 0, as PyTorch's sign(x).
    public func absolute() -> Tensor {
        let (src, out) = mapped { vmax($0, -$0) }
        if Autograd.shouldRecord(src) {
            let x = src.detached()
            out.record("abs", [src]) { g in
                [Tensor.gradMap(x, x, g) { x, _, g in
                    F8(repeating: 0).replacing(with: g, where: x .> 0).replacing(with: -g, where: x .< 0)
                }]
            }
        }
        return out
    }

    /// Clamps into [lo, hi] (either bound optional); the gradient passes where lo ≤ x ≤ hi.
    public func clamped(min lo: Float = -.infinity, max hi: Float = .infinity) -> Tensor {
        let vlo = F8(repeating: lo), vhi = F8(repeating: hi)
        let (src, out) = mapped { vmin(vmax($0, vlo), vhi) }
        if Autograd.shouldRecord(src) {
            let x = src.detached()
            out.record("clamp", [src]) { g in
                [Tensor.gradMap(x, x, g) { x, _, g in
                    g.replacing(with: 0, where: (x .< vlo) .| (x .> vhi))
                }]
            }
        }
        return out
    }

    public func negated() -> Tensor { scaled(-1) }

    /// Elementwise max with broadcasting. Ties split the gradient in half, as PyTorch does.
    public func maximum(_ other: Tensor) -> Tensor { Tensor.extremum(self, other, takeMax: true) }
    public func minimum(_ other: Tensor) -> Tensor { Tensor.extremum(self, other, takeMax: false) }

    static func extremum(_ a: Tensor, _ b: Tensor, takeMax: Bool) -> Tensor {
        let shape = a.shape == b.shape ? a.shape : Broadcast.shape(a.shape, b.shape)
        let ae = Autograd.noGrad { a.shape == shape ? a.contiguous() : a.expanded(to: shape).contiguous() }
        let be = Autograd.noGrad { b.shape == shape ? b.contiguous() : b.expanded(to: shape).contiguous() }
        let out = Tensor(uninitialized: shape)
        if takeMax {
            Loop.map2(out.count, ae.data, be.data, out.data) { vmax($0, $1) }
        } else {
            Loop.map2(out.count, ae.data, be.data, out.data) { vmin($0, $1) }
        }
        if Autograd.shouldRecord(a, b) {
            let sa = a.shape, sb = b.shape
            out.record(takeMax ? "maximum" : "minimum", [a, b]) { g in
                let ga = Tensor.gradMap(ae, be, g) { x, y, g in
                    let win = takeMax ? (x .> y) : (x .< y)
                    return F8(repeating: 0).replacing(with: g, where: win).replacing(with: g * 0.5, where: x .== y)
                }
                // Every element's gradient goes to a, to b, or half to each.
                let gb = g.subtracting(ga)
                return [ga.summed(toShape: sa), gb.summed(toShape: sb)]
            }
        }
        return out
    }
}

extension Tensor {
    /// a where `condition` is non-zero, else b, with broadcasting (torch.where). The condition
    /// is data, not differentiable; gradients flow to a and b where each was chosen.
    public static func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        let shape = Broadcast.shape(Broadcast.shape(condition.shape, a.shape), b.shape)
        func dense(_ t: Tensor) -> Tensor { Autograd.noGrad { t.shape == shape ? t.contiguous() : t.expanded(to: shape).contiguous() } }
        let c = dense(condition), ae = dense(a), be = dense(b)
        let out = Tensor(uninitialized: shape)
        let zero = F8(repeating: 0)
        Loop.map3(out.count, c.data, ae.data, be.data, out.data) { c, x, y in y.replacing(with: x, where: c .!= zero) }
        if Autograd.shouldRecord(a, b) {
            let sa = a.shape, sb = b.shape
            out.record("where", [a, b]) { g in
                let ga = Tensor.gradMap(c, c, g) { c, _, g in F8(repeating: 0).replacing(with: g, where: c .!= 0) }
                let gb = Tensor.gradMap(c, c, g) { c, _, g in g.replacing(with: 0, where: c .!= 0) }
                return [ga.summed(toShape: sa), gb.summed(toShape: sb)]
            }
        }
        return out
    }
}
