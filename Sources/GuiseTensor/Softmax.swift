import Foundation

/// Numerically stable softmax and log-softmax: the row maximum is subtracted before exp.
enum SoftmaxKernel {
    /// In place over `rows` dense rows of `n`.
    static func rows(_ p: UnsafeMutablePointer<Float>, rows: Int, n: Int, log: Bool) {
        Parallel.forEach(rows, minChunk: Swift.max(1, 4096 / Swift.max(n, 1))) { r in
            for row in r { one(p + row * n, n, log: log) }
        }
    }

    @inline(__always)
    static func one(_ x: UnsafeMutablePointer<Float>, _ n: Int, log: Bool) {
        var vm = F8(repeating: -.infinity)
        var i = 0
        while i + 8 <= n { vm = vmax(vm, load8(x + i)); i += 8 }
        var m = vm.max()
        while i < n { m = Swift.max(m, x[i]); i += 1 }
        if m == -.infinity { m = 0 }  // an all −∞ row: keep exp finite rather than NaN from ∞−∞
        let vmx = F8(repeating: m)
        var acc = F8(repeating: 0)
        var tail: Float = 0
        i = 0
        if log {
            while i + 8 <= n { acc += VMath.exp(load8(x + i) - vmx); i += 8 }
            if i < n {
                let k = n - i
                let e = VMath.exp(loadPartial(x + i, k) - vmx)
                for j in 0..<k { tail += e[j] }
            }
            let lse = m + Foundation.log(acc.sum() + tail)
            let vl = F8(repeating: lse)
            i = 0
            while i + 8 <= n { store8(load8(x + i) - vl, x + i); i += 8 }
            while i < n { x[i] -= lse; i += 1 }
        } else {
            while i + 8 <= n { let e = VMath.exp(load8(x + i) - vmx); store8(e, x + i); acc += e; i += 8 }
            if i < n {
                let k = n - i
                let e = VMath.exp(loadPartial(x + i, k) - vmx)
                storePartial(e, x + i, k)
                for j in 0..<k { tail += e[j] }
            }
            let inv = F8(repeating: 1 / (acc.sum() + tail))
            i = 0
            while i + 8 <= n { store8(load8(x + i) * inv, x + i); i += 8 }
            while i < n { x[i] *= inv[0]; i += 1 }
        }
    }

    /// Softmax backward in place in g: g ← y ⊙ (g − Σ g·y), row by row.
    static func backward(_ y: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        Parallel.forEach(rows, minChunk: Swift.max(1, 4096 / Swift.max(n, 1))) { r in
            for row in r {
                let yr = y + row * n, gr = g + row * n
                let s = F8(repeating: Float(Loop.dot(yr, gr, n)))
                var i = 0
                while i + 8 <= n { store8(load8(yr + i) * (load8(gr + i) - s), gr + i); i += 8 }
                while i < n { gr[i] = yr[i] * (gr[i] - s[0]); i += 1 }
            }
        }
    }

    /// Log-softmax backward in place in g: g ← g − e^y·Σ g.
    static func logBackward(_ y: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        Parallel.forEach(rows, minChunk: Swift.max(1, 4096 / Swift.max(n, 1))) { r in
            for row in r {
                let yr = y + row * n, gr = g + row * n
                let s = F8(repeating: Float(Loop.sum(gr, n)))
                var i = 0
                while i + 8 <= n { store8(load8(gr + i) - VMath.exp(load8(yr + i)) * s, gr + i); i += 8 }
                if i < n {
                    let k = n - i
                    storePartial(loadPartial(gr + i, k) - VMath.exp(loadPartial(yr + i, k)) * s, gr + i, k)
                }
            }
        }
    }
}

extension Tensor {
    public func softmax(dim: Int = -1) -> Tensor { softmaxed(dim: dim, log: false) }
    public func logSoftmax(dim: Int = -1) -> Tensor { softmaxed(dim: dim, log: true) }

    func softmaxed(dim: Int, log: Bool) -> Tensor {
        let d = axis(dim)
        if d != rank - 1 {
            // Move the dim last, work on dense rows, move it back: two copies, off the hot path.
            var order = Array(0..<rank)
            order.remove(at: d); order.append(d)
            var inverse = [Int](repeating: 0, count: rank)
            for (i, o) in order.enumerated() { inverse[o] = i }
            return permuted(order).contiguous().softmaxed(dim: -1, log: log).permuted(inverse).contiguous()
        }
        let src = contiguous()
        let out = src.copy()
        let n = shape.last ?? 1
        SoftmaxKernel.rows(out.data, rows: count / Swift.max(n, 1), n: n, log: log)
        if Autograd.shouldRecord(src) {
            let y = out.detached()
            out.record(log ? "log_softmax" : "softmax", [src]) { g in
                let gx = g.copy()
                if log {
                    SoftmaxKernel.logBackward(y.data, gx.data, rows: y.count / Swift.max(n, 1), n: n)
                } else {
                    SoftmaxKernel.backward(y.data, gx.data, rows: y.count / Swift.max(n, 1), n: n)
                }
                return [gx]
            }
        }
        return out
    }
}
