/// Normalisation layers over NCHW-style tensors, viewed as planes [N·C, inner].
/// Statistics are SIMD sums widened to Double; passes are split across cores by plane or group.
enum PlaneKernels {
    /// out[p, i] = k(x[p, i]·a[p] + b[p]), k an activation fused into the same pass.
    static func affine<K: VectorKernel>(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, planes: Int, inner: Int,
                                        _ a: [Float], _ b: [Float], then k: K = IdentityKernel()) {
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                Parallel.forEach(planes * inner, minChunk: Loop.grain) { r in
                    var i = r.lowerBound
                    while i < r.upperBound {
                        let p = i / inner, end = Swift.min(r.upperBound, (p + 1) * inner)
                        let va = F8(repeating: ap[p]), vb = F8(repeating: bp[p])
                        while i + 8 <= end { store8(k(load8(x + i) * va + vb), out + i); i += 8 }
                        if i < end {
                            let c = end - i
                            storePartial(k(loadPartial(x + i, c) * va + vb), out + i, c)
                            i = end
                        }
                    }
                }
            }
        }
    }

    /// out = g·α[p] + x·β[p] + γ[p]: the shape of every norm's input gradient.
    static func gradient(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                         planes: Int, inner: Int, _ alpha: [Float], _ beta: [Float], _ gamma: [Float]) {
        alpha.withUnsafeBufferPointer { al in
            beta.withUnsafeBufferPointer { be in
                gamma.withUnsafeBufferPointer { ga in
                    Parallel.forEach(planes * inner, minChunk: Loop.grain) { r in
                        var i = r.lowerBound
                        while i < r.upperBound {
                            let p = i / inner, end = Swift.min(r.upperBound, (p + 1) * inner)
                            let va = F8(repeating: al[p]), vb = F8(repeating: be[p]), vc = F8(repeating: ga[p])
                            while i + 8 <= end { store8(load8(g + i) * va + load8(x + i) * vb + vc, out + i); i += 8 }
                            while i < end { out[i] = g[i] * al[p] + x[i] * be[p] + ga[p]; i += 1 }
                        }
                    }
                }
            }
        }
    }

    /// Per plane: Σ g and Σ g·x.
    static func sums(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, planes: Int, inner: Int) -> (sg: [Double], sgx: [Double]) {
        var sg = [Double](repeating: 0, count: planes), sgx = sg
        sg.withUnsafeMutableBufferPointer { a in
            sgx.withUnsafeMutableBufferPointer { b in
                let pa = a.baseAddress!, pb = b.baseAddress!
                Parallel.forEach(planes, minChunk: Swift.max(1, Loop.grain / Swift.max(inner, 1))) { r in
                    for p in r {
                        pa[p] = Loop.sum(g + p * inner, inner)
                        pb[p] = Loop.dot(g + p * inner, x + p * inner, inner)
                    }
                }
            }
        }
        return (sg, sgx)
    }

    /// Mean and 1/√(var+eps) of each of `groups` runs of `size` (biased variance, two passes).
    static func stats(_ x: UnsafePointer<Float>, groups: Int, size: Int, eps: Float) -> (mean: [Double], rstd: [Double]) {
        var mean = [Double](repeating: 0, count: groups), rstd = mean
        mean.withUnsafeMutableBufferPointer { mp in
            rstd.withUnsafeMutableBufferPointer { rp in
                let m = mp.baseAddress!, rs = rp.baseAddress!
                Parallel.forEach(groups, minChunk: Swift.max(1, Loop.grain / Swift.max(size, 1))) { r in
                    for k in r {
                        let base = x + k * size
                        let mu = Loop.sum(base, size) / Double(size)
                        let v = Loop.sumSquaredDeviation(base, size, Float(mu)) / Double(size)
                        m[k] = mu
                        rs[k] = 1 / (v + Double(eps)).squareRoot()
                    }
                }
            }
        }
        return (mean, rstd)
    }
}

extension NN {
    /// Group norm over [N, C, *]: statistics per (sample, group of C/groups channels), then a
    /// per-channel affine. Differentiable in x, weight and bias.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
        groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, then: IdentityKernel())
    }

    /// SiLU(groupNorm(x)), the ADM ResBlock's opening pair. In inference the activation is
    /// applied in the normalising pass (one read and one write of x); when recording it is the
    /// two differentiable ops.
    public static func groupNormSiLU(_ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
        if Autograd.shouldRecord([x, weight, bias]) {
            return groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps).silu()
        }
        return groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, then: SiLUKernel())
    }

    static func groupNorm<K: VectorKernel>(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float, then k: K) -> Tensor {
        precondition(x.rank >= 2, "groupNorm needs [N, C, ...], got \(x.shape)")
        let n = x.shape[0], c = x.shape[1]
        precondition(groups > 0 && c % groups == 0, "groupNorm: \(c) channels do not split into \(groups) groups")
        if let weight { precondition(weight.count == c, "groupNorm: weight \(weight.shape) for \(c) channels") }
        if let bias { precondition(bias.count == c, "groupNorm: bias \(bias.shape) for \(c) channels") }
        let src = x.contiguous()
        let w = weight?.contiguous(), b = bias?.contiguous()
        let inner = src.count / Swift.max(n * c, 1)
        let cpg = c / groups
        let planes = n * c
        let wv = w?.values, bv = b?.values
        let out = Tensor(uninitialized: x.shape)
        let groupCount = n * groups
        var mean = [Double](repeating: 0, count: groupCount), rstd = mean
        if groupCount >= 4 * Parallel.threads {
            // Enough groups to share out: each task normalises whole groups, so a group is
            // read from memory once and its second and third passes hit the core's cache.
            let size = cpg * inner
            let xp = src.data, op = out.data
            mean.withUnsafeMutableBufferPointer { mp in
                rstd.withUnsafeMutableBufferPointer { rp in
                    let m = mp.baseAddress!, rs = rp.baseAddress!
                    Parallel.forEach(groupCount, minChunk: 1) { r in
                        for grp in r {
                            let base = xp + grp * size
                            let mu = Loop.sum(base, size) / Double(size)
                            let r = 1 / (Loop.sumSquaredDeviation(base, size, Float(mu)) / Double(size) + Double(eps)).squareRoot()
                            m[grp] = mu; rs[grp] = r
                            for p in (grp * cpg)..<((grp + 1) * cpg) {
                                let ch = p % c
                                let scale = r * Double(wv?[ch] ?? 1)
                                let va = F8(repeating: Float(scale)), vb = F8(repeating: Float(Double(bv?[ch] ?? 0) - mu * scale))
                                let xr = xp + p * inner, yr = op + p * inner
                                var i = 0
                                while i + 8 <= inner { store8(k(load8(xr + i) * va + vb), yr + i); i += 8 }
                                if i < inner {
                                    let cnt = inner - i
                                    storePartial(k(loadPartial(xr + i, cnt) * va + vb), yr + i, cnt)
                                }
                            }
                        }
                    }
                }
            }
        } else {
            (mean, rstd) = PlaneKernels.stats(src.data, groups: groupCount, size: cpg * inner, eps: eps)
            var a = [Float](repeating: 0, count: planes), sh = a
            for p in 0..<planes {
                let ch = p % c, grp = p / cpg
                let scale = rstd[grp] * Double(wv?[ch] ?? 1)
                a[p] = Float(scale)
                sh[p] = Float(Double(bv?[ch] ?? 0) - mean[grp] * scale)
            }
            PlaneKernels.affine(src.data, out.data, planes: planes, inner: inner, a, sh, then: k)
        }
        if K.self == IdentityKernel.self && Autograd.shouldRecord([src, w, b]) {
            let xs = src.detached()
            out.record("group_norm", [src] + (w.map { [$0] } ?? []) + (b.map { [$0] } ?? [])) { g in
                let gc = g.contiguous()
                let (sg, sgx) = PlaneKernels.sums(gc.data, xs.data, planes: planes, inner: inner)
                let count = Double(cpg * inner)
                var alpha = [Float](repeating: 0, count: planes), beta = alpha, gamma = alpha
                for k in 0..<(n * groups) {
                    var sumA = 0.0, sumB = 0.0  // Σ γ·Σg and Σ γ·Σgx over the group's channels
                    for p in (k * cpg)..<((k + 1) * cpg) {
                        let gw = Double(wv?[p % c] ?? 1)
                        sumA += gw * sg[p]; sumB += gw * sgx[p]
                    }
                    let mu = mean[k], r = rstd[k]
                    let k2 = -r * r * r * (sumB - mu * sumA) / count
                    let k3 = -r * sumA / count - mu * k2
                    for p in (k * cpg)..<((k + 1) * cpg) {
                        alpha[p] = Float(r * Double(wv?[p % c] ?? 1)); beta[p] = Float(k2); gamma[p] = Float(k3)
                    }
                }
                let gx = Tensor(uninitialized: xs.shape)
                PlaneKernels.gradient(gc.data, xs.data, gx.data, planes: planes, inner: inner, alpha, beta, gamma)
                var grads: [Tensor?] = [gx]
                if let w {
                    var gw = [Float](repeating: 0, count: c)
                    for p in 0..<planes {
                        let k = p / cpg
                        gw[p % c] += Float(rstd[k] * (sgx[p] - mean[k] * sg[p]))
                    }
                    grads.append(Tensor(shape: w.shape, values: gw))
                }
                if let b {
                    var gb = [Float](repeating: 0, count: c)
                    for p in 0..<planes { gb[p % c] += Float(sg[p]) }
                    grads.append(Tensor(shape: b.shape, values: gb))
                }
                return grads
            }
        }
        return out
    }

    /// Instance norm: statistics per (sample, channel), optional per-channel affine.
    public static func instanceNorm(_ x: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
        precondition(x.rank >= 2, "instanceNorm needs [N, C, ...], got \(x.shape)")
        return groupNorm(x, groups: x.shape[1], weight: weight, bias: bias, eps: eps)
    }

    /// Batch norm in inference mode: fixed running statistics per channel (dim 1).
    /// Differentiable in x, weight and bias.
    public static func batchNorm(_ x: Tensor, runningMean: Tensor, runningVar: Tensor, weight: Tensor? = nil,
                                 bias: Tensor? = nil, eps: Float = 1e-5) -> Tensor {
        precondition(x.rank >= 2, "batchNorm needs [N, C, ...], got \(x.shape)")
        let n = x.shape[0], c = x.shape[1]
        precondition(runningMean.count == c && runningVar.count == c, "batchNorm: running stats for \(c) channels expected")
        let src = x.contiguous(), w = weight?.contiguous(), b = bias?.contiguous()
        let inner = src.count / Swift.max(n * c, 1), planes = n * c
        let rm = runningMean.values, rv = runningVar.values, wv = w?.values, bv = b?.values
        let rstd = rv.map { 1 / ($0 + eps).squareRoot() }
        var a = [Float](repeating: 0, count: planes), sh = a
        for p in 0..<planes {
            let ch = p % c
            a[p] = rstd[ch] * (wv?[ch] ?? 1)
            sh[p] = (bv?[ch] ?? 0) - rm[ch] * a[p]
        }
        let out = Tensor(uninitialized: x.shape)
        PlaneKernels.affine(src.data, out.data, planes: planes, inner: inner, a, sh)
        if Autograd.shouldRecord([src, w, b]) {
            let xs = src.detached()
            out.record("batch_norm", [src] + (w.map { [$0] } ?? []) + (b.map { [$0] } ?? [])) { g in
                let gc = g.contiguous()
                let gx = Tensor(uninitialized: xs.shape)
                let zeros = [Float](repeating: 0, count: planes)
                PlaneKernels.gradient(gc.data, xs.data, gx.data, planes: planes, inner: inner, a, zeros, zeros)
                var grads: [Tensor?] = [gx]
                if w != nil || b != nil {
                    let (sg, sgx) = PlaneKernels.sums(gc.data, xs.data, planes: planes, inner: inner)
                    if let w {
                        var gw = [Double](repeating: 0, count: c)
                        for p in 0..<planes { let ch = p % c; gw[ch] += Double(rstd[ch]) * (sgx[p] - Double(rm[ch]) * sg[p]) }
                        grads.append(Tensor(shape: w.shape, values: gw.map { Float($0) }))
                    }
                    if let b {
                        var gb = [Double](repeating: 0, count: c)
                        for p in 0..<planes { gb[p % c] += sg[p] }
                        grads.append(Tensor(shape: b.shape, values: gb.map { Float($0) }))
                    }
                }
                return grads
            }
        }
        return out
    }

    /// Layer norm over the trailing dims `normalizedShape`, with elementwise affine of that shape.
    public static func layerNorm(_ x: Tensor, normalizedShape: [Int], weight: Tensor? = nil, bias: Tensor? = nil,
                                 eps: Float = 1e-5) -> Tensor {
        precondition(x.rank >= normalizedShape.count && Array(x.shape.suffix(normalizedShape.count)) == normalizedShape,
                     "layerNorm: input \(x.shape) does not end in \(normalizedShape)")
        let d = Tensor.product(normalizedShape)
        if let weight { precondition(weight.count == d, "layerNorm: weight \(weight.shape) for \(normalizedShape)") }
        if let bias { precondition(bias.count == d, "layerNorm: bias \(bias.shape) for \(normalizedShape)") }
        let src = x.contiguous(), w = weight?.contiguous(), b = bias?.contiguous()
        let rows = src.count / Swift.max(d, 1)
        let (mean, rstd) = PlaneKernels.stats(src.data, groups: rows, size: d, eps: eps)
        let out = Tensor(uninitialized: x.shape)
        let xp = src.data, op = out.data
        // Without affine parameters the row runs against ones and zeros.
        let ones = w == nil ? Tensor(shape: [d], repeating: 1) : nil, zeros = b == nil ? Tensor(zeros: [d]) : nil
        let wp = (w ?? ones!).data, bp = (b ?? zeros!).data
        Parallel.forEach(rows, minChunk: Swift.max(1, Loop.grain / Swift.max(d, 1))) { r in
            for row in r {
                let mu = F8(repeating: Float(mean[row])), rs = F8(repeating: Float(rstd[row]))
                let xr = xp + row * d, yr = op + row * d
                var j = 0
                while j + 8 <= d {
                    store8(((load8(xr + j) - mu) * rs) * load8(wp + j) + load8(bp + j), yr + j); j += 8
                }
                if j < d {
                    let c = d - j
                    let h = (loadPartial(xr + j, c) - mu) * rs
                    storePartial(h * loadPartial(wp + j, c) + loadPartial(bp + j, c), yr + j, c)
                }
            }
        }
        if Autograd.shouldRecord([src, w, b]) {
            let xs = src.detached()
            out.record("layer_norm", [src] + (w.map { [$0] } ?? []) + (b.map { [$0] } ?? [])) { g in
                let gc = g.contiguous()
                let gx = Tensor(uninitialized: xs.shape)
                // x̂ is needed for the weight's gradient; build it once.
                let xhat = Tensor(uninitialized: xs.shape)
                let gp = gc.data, xq = xs.data, gxp = gx.data, hp = xhat.data
                let wq = w?.data
                Parallel.forEach(rows, minChunk: Swift.max(1, Loop.grain / Swift.max(d, 1))) { r in
                    for row in r {
                        let mu = Float(mean[row]), rs = Float(rstd[row])
                        let base = row * d
                        var sA = 0.0, sB = 0.0  // Σ dx̂ and Σ dx̂·x̂
                        for j in 0..<d {
                            let h = (xq[base + j] - mu) * rs
                            hp[base + j] = h
                            let dh = gp[base + j] * (wq?[j] ?? 1)
                            sA += Double(dh); sB += Double(dh * h)
                        }
                        let ma = Float(sA / Double(d)), mb = Float(sB / Double(d))
                        for j in 0..<d {
                            let dh = gp[base + j] * (wq?[j] ?? 1)
                            gxp[base + j] = rs * (dh - ma - hp[base + j] * mb)
                        }
                    }
                }
                var grads: [Tensor?] = [gx]
                if let w { grads.append((gc * xhat).reshaped([rows, d]).sum(dims: [0]).reshaped(w.shape)) }
                if let b { grads.append(gc.reshaped([rows, d]).sum(dims: [0]).reshaped(b.shape)) }
                return grads
            }
        }
        return out
    }
}
