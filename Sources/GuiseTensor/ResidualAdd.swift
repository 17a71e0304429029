extension NN {
    /// What follows a residual add in MobileNet-style graphs: nothing, a clamp (ReLU, ReLU6)
    /// or a PReLU with one slope per channel.
    public enum AddActivation {
        case clamp(Clamp)
        case prelu(Tensor)
    }

    /// `activation(a + b)` for NCHW tensors, where `b` may have fewer channels than `a`: its
    /// missing trailing channels count as zero, as after TFLite's channel PAD in front of a
    /// residual ADD. Without a tape it is one pass over the output instead of the three or
    /// four (pad, add, activation) the separate ops take; with one it is those ops, recorded.
    public static func residualAdd(_ a: Tensor, _ b: Tensor, _ activation: AddActivation = .clamp(.none)) -> Tensor {
        precondition(a.rank == 4 && b.rank == 4 && a.shape[0] == b.shape[0] && a.shape[2...] == b.shape[2...]
                     && b.shape[1] <= a.shape[1], "residualAdd: \(b.shape) does not fit into \(a.shape)")
        let channels = a.shape[1]
        if case .prelu(let s) = activation {
            precondition(s.count == channels, "residualAdd: \(s.count) PReLU slopes for \(channels) channels")
        }
        var inputs = [a, b]
        if case .prelu(let s) = activation { inputs.append(s) }
        if Autograd.shouldRecord(inputs) {
            var bb = b
            if b.shape[1] < channels {
                let (n, h, w) = (b.shape[0], b.shape[2], b.shape[3])
                bb = Tensor.concat([b, Tensor(zeros: [n, channels - b.shape[1], h, w])], dim: 1)
            }
            switch activation {
            case .clamp(let c): return c.apply(a + bb)
            case .prelu(let s): return NN.prelu(a + bb, weight: s)
            }
        }
        let ac = a.contiguous(), bc = b.contiguous()
        let out = Tensor(uninitialized: a.shape)
        let (n, cb, plane) = (a.shape[0], b.shape[1], a.shape[2] * a.shape[3])
        let pa = ac.data, pb = bc.data, o = out.data
        var lo = F8(repeating: -.infinity), hi = F8(repeating: .infinity)
        var slopes: UnsafePointer<Float>? = nil
        var sc: Tensor? = nil
        switch activation {
        case .clamp(let c): lo = F8(repeating: c.low); hi = F8(repeating: c.high)
        case .prelu(let s): sc = s.contiguous(); slopes = UnsafePointer(sc!.data)
        }
        withExtendedLifetime(sc) {
            Parallel.forEach(n * channels, minChunk: max(1, Loop.grain / max(plane, 1))) { r in
                for job in r {
                    let (k, c) = (job / channels, job % channels)
                    let src = pa + job * plane, dst = o + job * plane
                    let other: UnsafePointer<Float>? = c < cb ? UnsafePointer(pb + (k * cb + c) * plane) : nil
                    let s = F8(repeating: slopes?[c] ?? 1)
                    @inline(__always) func finish(_ v: F8) -> F8 {
                        slopes == nil ? vmin(vmax(v, lo), hi) : v.replacing(with: v * s, where: v .<= 0)
                    }
                    var i = 0
                    while i + 8 <= plane {
                        var v = load8(src + i)
                        if let other { v += load8(other + i) }
                        store8(finish(v), dst + i)
                        i += 8
                    }
                    if i < plane {
                        var v = loadPartial(src + i, plane - i)
                        if let other { v += loadPartial(other + i, plane - i) }
                        storePartial(finish(v), dst + i, plane - i)
                    }
                }
            }
        }
        return out
    }
}
